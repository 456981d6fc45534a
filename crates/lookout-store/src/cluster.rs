//! Replicas and the leases they hold: heartbeats, fenced leases, and the guard a write carries.
//!
//! Every replica heartbeats a row in `replicas`; one whose heartbeat is older than the live
//! window is treated as gone. Work that one replica at a time must do (an uptime shard, a
//! heartbeat ping) is a row in `leases`. Claiming one increments its `fence`, a token that every
//! write done under the lease checks through [`guard`]: a replica that lost its lease, even to
//! itself after an outage, cannot record anything under the old token.
//!
//! All times here come from the database's clock ([`crate::dialect::now_ms_sql`]), so a replica
//! with a skewed clock neither steals leases nor loses its own.

use sqlx::Row;

use crate::dialect::now_ms_sql;
use crate::{Result, Store, Write};

/// One replica as its heartbeat row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Its name (host, pid and a random suffix).
    pub name: String,
    /// The Lookout version it runs.
    pub version: String,
    /// When it started, by the database's clock (ms).
    pub started_at: i64,
    /// Its last heartbeat, by the database's clock (ms).
    pub heartbeat_at: i64,
    /// How far its own clock is from the database's, ms (positive: it runs fast).
    pub clock_offset_ms: i64,
    /// Whether its joining has been announced (and its loss not yet).
    pub announced: bool,
    /// Where its UI and API answer (`http://10.0.0.11:8800`), if it said.
    pub address: Option<String>,
}

/// Records a heartbeat of replica `name`; returns the database's time of it (ms). The first
/// heartbeat also records when the replica started.
pub async fn heartbeat(
    store: &Store,
    name: &str,
    version: &str,
    clock_offset_ms: i64,
    address: Option<&str>,
) -> Result<i64> {
    let now = now_ms_sql(store.backend());
    let sql = format!(
        "INSERT INTO replicas (name, version, started_at, heartbeat_at, clock_offset_ms, announced, address)
         VALUES ($1, $2, {now}, {now}, $3, 0, $4)
         ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
             version = excluded.version, clock_offset_ms = excluded.clock_offset_ms,
             address = excluded.address
         RETURNING heartbeat_at"
    );
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&sql)
        .bind(name)
        .bind(version)
        .bind(clock_offset_ms)
        .bind(address)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row.try_get("heartbeat_at")?)
}

/// The database's clock now, ms.
pub async fn db_now(store: &Store) -> Result<i64> {
    let row = sqlx::query(&format!("SELECT {} AS now", now_ms_sql(store.backend())))
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get("now")?)
}

/// The database's clock now, ms, read inside `tx` (for times set in the same transaction).
pub async fn db_now_in(tx: &mut crate::Tx) -> Result<i64> {
    let backend = if tx.backend_name() == "PostgreSQL" {
        crate::Backend::Postgres
    } else {
        crate::Backend::Sqlite
    };
    let row = sqlx::query(&format!("SELECT {} AS now", now_ms_sql(backend)))
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("now")?)
}

/// Every replica row, newest heartbeat first, with the database's time of the reading.
pub async fn replicas(store: &Store) -> Result<(i64, Vec<Replica>)> {
    let sql = format!(
        "SELECT name, version, started_at, heartbeat_at, clock_offset_ms, announced, address, {} AS now
         FROM replicas ORDER BY heartbeat_at DESC, name",
        now_ms_sql(store.backend())
    );
    let rows = sqlx::query(&sql).fetch_all(store.pool()).await?;
    let now = match rows.first() {
        Some(r) => r.try_get("now")?,
        None => db_now(store).await?,
    };
    let list = rows
        .iter()
        .map(|r| {
            Ok(Replica {
                name: r.try_get("name")?,
                version: r.try_get("version")?,
                started_at: r.try_get("started_at")?,
                heartbeat_at: r.try_get("heartbeat_at")?,
                clock_offset_ms: r.try_get("clock_offset_ms")?,
                announced: r.try_get::<i64, _>("announced")? != 0,
                address: r.try_get("address")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((now, list))
}

/// Sets replica `name`'s `announced` flag to `announced` and publishes `event` in the same
/// transaction; false (and nothing published) when the flag already had that value, because
/// another replica announced the change first. So each join and loss is announced once.
pub async fn announce(store: &Store, name: &str, announced: bool, event: Write) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query("UPDATE replicas SET announced = $1 WHERE name = $2 AND announced = $3")
        .bind(i64::from(announced))
        .bind(name)
        .bind(i64::from(!announced))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    crate::events::publish_in_tx(store, &mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(true)
}

/// Forgets replica `name` and frees its leases: a replica that stops cleanly hands its work
/// over at once instead of after the live window.
pub async fn leave(store: &Store, name: &str) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("UPDATE leases SET owner = NULL, lease_until = NULL WHERE owner = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM replicas WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes replica rows silent for longer than `older_than_ms` (after their loss was announced).
pub async fn forget_gone(store: &Store, older_than_ms: i64) -> Result<u64> {
    let sql = format!(
        "DELETE FROM replicas WHERE announced = 0 AND heartbeat_at < {} - $1",
        now_ms_sql(store.backend())
    );
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(&sql)
        .bind(older_than_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its name (`uptime.shard.3`).
    pub name: String,
    /// Who holds it, if anyone.
    pub owner: Option<String>,
    /// Until when, by the database's clock (ms).
    pub lease_until: Option<i64>,
    /// The fencing token of the current holder's claim.
    pub fence: i64,
    /// The last batch written under the lease ([`guard`]).
    pub seq: i64,
    /// When the current holder took it (ms).
    pub taken_at: Option<i64>,
}

/// Makes sure leases `names` exist (unheld).
pub async fn ensure_leases(store: &Store, names: &[String]) -> Result<()> {
    let mut tx = store.begin_write().await?;
    for name in names {
        sqlx::query(
            "INSERT INTO leases (name, fence) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Claims lease `name` for `owner` for `lease_ms`, when it is free, expired, or held by a
/// replica whose heartbeat is older than `live_ms`; returns the new fencing token and the last
/// batch number written under the lease. A claim by the current holder also takes a new token:
/// work it started under the old one is fenced off.
pub async fn claim(
    store: &Store,
    name: &str,
    owner: &str,
    lease_ms: i64,
    live_ms: i64,
) -> Result<Option<(i64, i64)>> {
    let now = now_ms_sql(store.backend());
    let sql = format!(
        "UPDATE leases SET owner = $1, lease_until = {now} + $2, fence = fence + 1, taken_at = {now}
         WHERE name = $3 AND (owner IS NULL OR lease_until IS NULL OR lease_until < {now}
             OR owner NOT IN (SELECT name FROM replicas WHERE heartbeat_at >= {now} - $4))
         RETURNING fence, seq"
    );
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(lease_ms)
        .bind(name)
        .bind(live_ms)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    row.map(|r| Ok((r.try_get("fence")?, r.try_get("seq")?)))
        .transpose()
}

/// Extends the leases in `held` (name and token) that `owner` still holds by `lease_ms`; returns
/// those still held, so the caller can stop work whose token moved on. Only the leases the
/// caller runs work for are extended: one it failed to release expires instead of staying held
/// by a replica that no longer runs it.
pub async fn renew(
    store: &Store,
    owner: &str,
    held: &[(String, i64)],
    lease_ms: i64,
) -> Result<Vec<(String, i64)>> {
    let sql = format!(
        "UPDATE leases SET lease_until = {} + $1 WHERE name = $2 AND fence = $3 AND owner = $4",
        now_ms_sql(store.backend())
    );
    let mut tx = store.begin_write().await?;
    let mut ours = Vec::with_capacity(held.len());
    for (name, fence) in held {
        let n = sqlx::query(&sql)
            .bind(lease_ms)
            .bind(name)
            .bind(fence)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            ours.push((name.clone(), *fence));
        }
    }
    tx.commit().await?;
    Ok(ours)
}

/// Gives lease `name` back, if token `fence` still holds it.
pub async fn release(store: &Store, name: &str, fence: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "UPDATE leases SET owner = NULL, lease_until = NULL WHERE name = $1 AND fence = $2",
    )
    .bind(name)
    .bind(fence)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Every lease whose name starts with `prefix`, by name.
pub async fn leases(store: &Store, prefix: &str) -> Result<Vec<Lease>> {
    let rows = sqlx::query(
        "SELECT name, owner, lease_until, fence, seq, taken_at FROM leases
         WHERE substr(name, 1, length($1)) = $1 ORDER BY name",
    )
    .bind(prefix)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Lease {
                name: r.try_get("name")?,
                owner: r.try_get("owner")?,
                lease_until: r.try_get("lease_until")?,
                fence: r.try_get("fence")?,
                seq: r.try_get("seq")?,
                taken_at: r.try_get("taken_at")?,
            })
        })
        .collect()
}

/// The fencing check of [`guard`] (and of `prom::rules::guard_in`, which runs it in its own
/// transaction): binds name, fence, seq; one row updated means the lease is still the token's.
/// An UPDATE rather than a SELECT: it locks the lease row until the batch commits, so on
/// PostgreSQL a claim cannot slip in between the check and the commit.
pub(crate) const GUARD_SQL: &str =
    "UPDATE leases SET seq = $3 WHERE name = $1 AND fence = $2 AND seq = $3 - 1";

/// A write that fails its whole transaction unless token `fence` still holds lease `name`; it
/// also records `seq` as the lease's last batch (batches are numbered 1, 2, … after the `seq` a
/// claim returned, one number per attempt that may have committed).
///
/// Put first in a batch of writes done under a lease: the group commit then applies the batch
/// only while the lease is this holder's and the previous batch is the last one written, and
/// answers [`crate::StoreError::Fenced`] otherwise — [`batch_written`] then tells a batch that
/// did commit (its acknowledgement was lost) from a lost lease. It checks the token only, not
/// the lease's time: a holder that could not renew through a database outage still owns its work
/// until somebody else claims it, and its buffered results are worth keeping.
pub fn guard(name: &str, fence: i64, seq: i64) -> Write {
    Write::Guard {
        sql: GUARD_SQL,
        args: vec![name.into(), fence.into(), seq.into()],
    }
}

/// After a guarded batch failed: `Some(true)` if batch `seq` under token `fence` did commit,
/// `Some(false)` if the lease is still this token's and the batch did not, `None` if another
/// claim took the lease.
pub async fn batch_written(
    store: &Store,
    name: &str,
    fence: i64,
    seq: i64,
) -> Result<Option<bool>> {
    let row = sqlx::query("SELECT fence, seq FROM leases WHERE name = $1")
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    let Some(r) = row else { return Ok(None) };
    let (f, s): (i64, i64) = (r.try_get("fence")?, r.try_get("seq")?);
    Ok((f == fence).then_some(s >= seq))
}
