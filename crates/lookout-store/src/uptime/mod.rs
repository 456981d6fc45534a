//! Uptime monitoring's storage: monitors and their state ([this file]), raw results, rollups and
//! retention ([`results`]), cron check-ins ([`cron`]), maintenance windows and status pages
//! ([`pages`]).
//!
//! The monitor's definition is kept as the JSON document users wrote (`spec`); the columns beside
//! it are what queries filter on. Monitors are spread over [`SHARDS`] shards; each shard is checked
//! by one replica at a time under a job lease.

pub mod checkins;
pub mod cron;
pub mod pages;
pub mod results;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::ownership::TeamChange;
use crate::row::RowExt;
use crate::writer::{Value, Write};
use crate::{Cursor, Page, Result, Store, StoreError};
use lookout_core::time::now_ms;

/// How many shards monitors are spread over (each is one leased job).
pub const SHARDS: i64 = 16;

/// A stored monitor.
#[derive(Debug, Clone)]
pub struct MonitorRow {
    /// Id.
    pub id: i64,
    /// Owning organization.
    pub org_id: i64,
    /// Project (cron monitors: whose DSN key check-ins use).
    pub project_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// `http`, `tcp`, …
    pub kind: String,
    /// Cron slug.
    pub slug: Option<String>,
    /// The spec as JSON.
    pub spec: String,
    /// Not checked while paused.
    pub paused: bool,
    /// The monitor this one depends on.
    pub parent_id: Option<i64>,
    /// Secret of the push URL (heartbeat).
    pub push_token: Option<String>,
    /// Its shard.
    pub shard: i64,
    /// `config` when declared in the config file.
    pub managed_by: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms (strictly increasing per change, so shards notice edits).
    pub updated_at: i64,
    /// When a check was last asked for ("Check now", or a ping to a heartbeat that is not up):
    /// the shard's runner checks the monitor at once when this moves.
    pub check_requested_at: Option<i64>,
    /// The owning team, if any (set through [`crate::ownership::set_owner`]).
    pub team_id: Option<i64>,
}

/// What the API or the config file asks to store.
#[derive(Debug, Clone)]
pub struct NewMonitor {
    /// Owning organization.
    pub org_id: i64,
    /// Project, for cron monitors.
    pub project_id: Option<i64>,
    /// Display name.
    pub name: String,
    /// Kind name.
    pub kind: String,
    /// Cron slug.
    pub slug: Option<String>,
    /// Spec JSON.
    pub spec: String,
    /// Paused.
    pub paused: bool,
    /// Parent monitor.
    pub parent_id: Option<i64>,
    /// Push secret (heartbeats).
    pub push_token: Option<String>,
    /// `config` for config-file monitors.
    pub managed_by: Option<String>,
}

/// A monitor's current state, owned by the runner of its shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorState {
    /// `pending`, `up` or `down`.
    pub health: String,
    /// A down was announced and no up yet.
    pub alerted: bool,
    /// Failures in a row.
    pub failures: i64,
    /// Successes in a row.
    pub successes: i64,
    /// Last check, ms.
    pub last_check_at: Option<i64>,
    /// Whether it passed.
    pub last_ok: Option<bool>,
    /// Its latency, µs.
    pub last_latency_us: Option<i64>,
    /// Last failure reason.
    pub last_failure: Option<String>,
    /// When.
    pub last_failure_at: Option<i64>,
    /// Certificate expiry, ms.
    pub cert_expires_at: Option<i64>,
    /// Whether the certificate chain verified at the last TLS handshake.
    pub cert_chain_valid: Option<bool>,
    /// `monitor.certificate_expiring` sent for this certificate.
    pub cert_warned: bool,
    /// Cron: the last expected run that was judged, ms.
    pub cron_slot: Option<i64>,
    /// Last health change, ms.
    pub changed_at: Option<i64>,
    /// Heartbeat: last ping, ms (written by the push endpoint only).
    pub last_ping_at: Option<i64>,
}

pub(crate) const MONITOR_COLS: &str =
    "m.id, m.org_id, m.project_id, m.name, m.kind, m.slug, m.spec, m.paused, m.parent_id, \
     m.push_token, m.shard, m.managed_by, m.created_at, m.updated_at, m.check_requested_at, m.team_id";
const STATE_COLS: &str = "s.health, s.alerted, s.failures, s.successes, s.last_check_at, s.last_ok, \
     s.last_latency_us, s.last_failure, s.last_failure_at, s.cert_expires_at, s.cert_warned, s.cron_slot, \
     s.changed_at, s.last_ping_at, s.cert_chain_valid";

pub(crate) fn monitor_from(r: &AnyRow) -> Result<MonitorRow> {
    Ok(MonitorRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        slug: r.try_get("slug")?,
        spec: r.try_get("spec")?,
        paused: r.flag("paused")?,
        parent_id: r.try_get("parent_id")?,
        push_token: r.try_get("push_token")?,
        shard: r.try_get("shard")?,
        managed_by: r.try_get("managed_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        check_requested_at: r.try_get("check_requested_at")?,
        team_id: r.try_get("team_id")?,
    })
}

/// The state columns of a monitor row; all NULL (a fresh monitor) reads as `pending`.
fn state_from(r: &AnyRow) -> Result<MonitorState> {
    let health: Option<String> = r.try_get("health")?;
    Ok(MonitorState {
        health: health.unwrap_or_else(|| "pending".into()),
        alerted: r.opt_flag("alerted")?.unwrap_or(false),
        failures: r.try_get::<Option<i64>, _>("failures")?.unwrap_or(0),
        successes: r.try_get::<Option<i64>, _>("successes")?.unwrap_or(0),
        last_check_at: r.try_get("last_check_at")?,
        last_ok: r.opt_flag("last_ok")?,
        last_latency_us: r.try_get("last_latency_us")?,
        last_failure: r.try_get("last_failure")?,
        last_failure_at: r.try_get("last_failure_at")?,
        cert_expires_at: r.try_get("cert_expires_at")?,
        cert_warned: r.opt_flag("cert_warned")?.unwrap_or(false),
        cron_slot: r.try_get("cron_slot")?,
        changed_at: r.try_get("changed_at")?,
        last_ping_at: r.try_get("last_ping_at")?,
        cert_chain_valid: r.opt_flag("cert_chain_valid")?,
    })
}

fn with_state(r: &AnyRow) -> Result<(MonitorRow, MonitorState)> {
    Ok((monitor_from(r)?, state_from(r)?))
}

fn select_sql(filter: &str) -> String {
    format!(
        "SELECT {MONITOR_COLS}, {STATE_COLS} FROM monitors m LEFT JOIN monitor_state s ON s.monitor_id = m.id {filter}"
    )
}

/// Creates a monitor (state `pending`).
pub async fn create_monitor(store: &Store, m: &NewMonitor) -> Result<MonitorRow> {
    create_monitor_owned(store, m, None).await
}

/// [`create_monitor`] owned by `team`, set in the same transaction.
pub async fn create_monitor_owned(
    store: &Store,
    m: &NewMonitor,
    team: Option<i64>,
) -> Result<MonitorRow> {
    let mut tx = store.begin_write().await?;
    let id = create_monitor_in_tx(&mut tx, m).await?;
    let owned = sqlx::query("UPDATE monitors SET team_id = $1 WHERE id = $2")
        .bind(team)
        .bind(id)
        .execute(&mut *tx)
        .await;
    if let Err(e) = owned {
        return Err(crate::team_gone(store, tx, e.into(), team).await);
    }
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(get_monitor(store, id).await?.0)
}

/// Creates a monitor inside `tx` (the check-in consumer creates cron monitors from SDK
/// `monitor_config`); returns its id.
pub async fn create_monitor_in_tx(
    tx: &mut Transaction<'static, Any>,
    m: &NewMonitor,
) -> Result<i64> {
    let now = now_ms();
    let shard = i64::from(rand::random::<u16>()) % SHARDS;
    let row = sqlx::query(
        "INSERT INTO monitors (org_id, project_id, name, kind, slug, spec, paused, parent_id, push_token, shard, managed_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
    )
    .bind(m.org_id)
    .bind(m.project_id)
    .bind(&m.name)
    .bind(&m.kind)
    .bind(&m.slug)
    .bind(&m.spec)
    .bind(i64::from(m.paused))
    .bind(m.parent_id)
    .bind(&m.push_token)
    .bind(shard)
    .bind(&m.managed_by)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(StoreError::conflict_as("a cron monitor with this slug in this project"))?;
    let id: i64 = row.try_get("id")?;
    sqlx::query(
        "INSERT INTO monitor_state (monitor_id, health, changed_at) VALUES ($1, 'pending', $2)",
    )
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Replaces a monitor's definition. The shard's runner notices through `updated_at`.
pub async fn update_monitor(store: &Store, id: i64, m: &NewMonitor) -> Result<MonitorRow> {
    update_monitor_owned(store, id, m, TeamChange::Keep).await
}

/// [`update_monitor`] that also sets or keeps the owning team, in the same statement.
pub async fn update_monitor_owned(
    store: &Store,
    id: i64,
    m: &NewMonitor,
    team: TeamChange,
) -> Result<MonitorRow> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE monitors SET project_id = $1, name = $2, kind = $3, slug = $4, spec = $5, paused = $6,
                parent_id = $7, managed_by = $8,
                updated_at = CASE WHEN updated_at >= $9 THEN updated_at + 1 ELSE $9 END,
                team_id = CASE WHEN $11 = 1 THEN $12 ELSE team_id END
         WHERE id = $10",
    )
    .bind(m.project_id)
    .bind(&m.name)
    .bind(&m.kind)
    .bind(&m.slug)
    .bind(&m.spec)
    .bind(i64::from(m.paused))
    .bind(m.parent_id)
    .bind(&m.managed_by)
    .bind(now_ms())
    .bind(id)
    .bind(team.flag())
    .bind(team.value())
    .execute(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a cron monitor with this slug in this project"));
    let n = match n {
        Ok(r) => r.rows_affected(),
        Err(e) => return Err(crate::team_gone(store, tx, e, team.value()).await),
    };
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(get_monitor(store, id).await?.0)
}

/// Every monitor's id and stored spec, in id order (for upkeep that rewrites stored specs).
pub async fn all_specs(store: &Store) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT id, spec FROM monitors ORDER BY id")
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("spec")?)))
        .collect()
}

/// Rewrites a stored spec in place when it still reads `expected` (no other change: the runner
/// does not reload, since the spec means the same once opened).
pub async fn reseal_spec(store: &Store, id: i64, expected: &str, spec: &str) -> Result<bool> {
    Ok(
        sqlx::query("UPDATE monitors SET spec = $1 WHERE id = $2 AND spec = $3")
            .bind(spec)
            .bind(id)
            .bind(expected)
            .execute(store.pool())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Deletes a monitor with its history.
pub async fn delete_monitor(store: &Store, id: i64) -> Result<()> {
    crate::delete_with(
        store,
        &[
            "DELETE FROM monitor_results WHERE monitor_id = $1",
            "DELETE FROM monitor_rollups WHERE monitor_id = $1",
            "DELETE FROM monitor_changes WHERE monitor_id = $1",
            "DELETE FROM cron_checkins WHERE monitor_id = $1",
            "DELETE FROM heartbeat_pings WHERE monitor_id = $1",
            "DELETE FROM location_results WHERE monitor_id = $1",
            "DELETE FROM location_checks WHERE monitor_id = $1",
            "DELETE FROM monitor_state WHERE monitor_id = $1",
            "UPDATE monitors SET parent_id = NULL WHERE parent_id = $1",
        ],
        "monitors",
        id,
    )
    .await
}

/// One monitor with its state.
pub async fn get_monitor(store: &Store, id: i64) -> Result<(MonitorRow, MonitorState)> {
    let row = sqlx::query(&select_sql("WHERE m.id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
    with_state(&row)
}

/// An organization's monitors by id, with state.
pub async fn list_monitors(
    store: &Store,
    org_id: i64,
    cursor: &Cursor,
) -> Result<Page<(MonitorRow, MonitorState)>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&select_sql(
        "WHERE m.org_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3",
    ))
    .bind(org_id)
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(&rows, limit, with_state, |(m, _)| m.id.to_string())
}

/// Monitors with these ids (status pages), in the order given.
pub async fn monitors_by_ids(
    store: &Store,
    ids: &[i64],
) -> Result<Vec<(MonitorRow, MonitorState)>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match get_monitor(store, *id).await {
            Ok(m) => out.push(m),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Monitors declared by `managed_by` (the config file), for reconciliation.
pub async fn managed_monitors(store: &Store, managed_by: &str) -> Result<Vec<MonitorRow>> {
    sqlx::query(&format!(
        "SELECT {MONITOR_COLS} FROM monitors m WHERE m.managed_by = $1 ORDER BY m.id"
    ))
    .bind(managed_by)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(monitor_from)
    .collect()
}

/// A cheap fingerprint of a shard's definitions: newest change, count and newest check request.
pub async fn shard_version(store: &Store, shard: i64) -> Result<(i64, i64, i64)> {
    let r = sqlx::query(
        "SELECT COALESCE(MAX(updated_at), 0) AS newest, COUNT(*) AS n,
                COALESCE(MAX(check_requested_at), 0) AS asked
         FROM monitors WHERE shard = $1",
    )
    .bind(shard)
    .fetch_one(store.pool())
    .await?;
    Ok((r.try_get("newest")?, r.try_get("n")?, r.try_get("asked")?))
}

/// Asks the shard's runner to check monitor `id` now. The request time only moves forward, so
/// two requests in one millisecond are still two changes the runner can see.
pub async fn request_check(store: &Store, id: i64, at: i64) -> Result<()> {
    let n = sqlx::query(
        "UPDATE monitors SET check_requested_at =
             CASE WHEN COALESCE(check_requested_at, 0) >= $1 THEN check_requested_at + 1 ELSE $1 END
         WHERE id = $2",
    )
    .bind(at)
    .bind(id)
    .execute(store.pool())
    .await?
    .rows_affected();
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Every monitor of a shard, with state.
pub async fn shard_monitors(store: &Store, shard: i64) -> Result<Vec<(MonitorRow, MonitorState)>> {
    sqlx::query(&select_sql("WHERE m.shard = $1"))
        .bind(shard)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(with_state)
        .collect()
}

/// The monitor a push URL's token belongs to.
pub async fn monitor_by_push_token(store: &Store, token: &str) -> Result<Option<MonitorRow>> {
    sqlx::query(&format!(
        "SELECT {MONITOR_COLS} FROM monitors m WHERE m.push_token = $1"
    ))
    .bind(token)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(monitor_from)
    .transpose()
}

/// The cron monitor `slug` of a project.
pub async fn cron_monitor(
    store: &Store,
    project_id: i64,
    slug: &str,
) -> Result<Option<MonitorRow>> {
    sqlx::query(&format!(
        "SELECT {MONITOR_COLS} FROM monitors m WHERE m.project_id = $1 AND m.slug = $2"
    ))
    .bind(project_id)
    .bind(slug)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(monitor_from)
    .transpose()
}

/// Pings kept per heartbeat monitor for its ping log.
pub const PINGS_KEPT: i64 = 100;

/// Notes a heartbeat ping: its time on the state, a line in the ping log (with the sender's
/// address and method), and, while the monitor is not up, a check request, so the first ping
/// takes a pending heartbeat up at once instead of at its next scheduled check (a day later for
/// a daily job).
pub async fn record_ping(
    store: &Store,
    monitor_id: i64,
    at: i64,
    source: Option<&str>,
    method: &str,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("UPDATE monitor_state SET last_ping_at = $1 WHERE monitor_id = $2")
        .bind(at)
        .bind(monitor_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO heartbeat_pings (monitor_id, at, source, method) VALUES ($1, $2, $3, $4)",
    )
    .bind(monitor_id)
    .bind(at)
    .bind(source)
    .bind(method)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM heartbeat_pings WHERE monitor_id = $1 AND id < (
             SELECT MIN(id) FROM (SELECT id FROM heartbeat_pings WHERE monitor_id = $1
                                  ORDER BY id DESC LIMIT $2) AS newest)",
    )
    .bind(monitor_id)
    .bind(PINGS_KEPT)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE monitors SET check_requested_at =
             CASE WHEN COALESCE(check_requested_at, 0) >= $1 THEN check_requested_at + 1 ELSE $1 END
         WHERE id = $2
           AND EXISTS (SELECT 1 FROM monitor_state WHERE monitor_id = $2 AND health <> 'up')",
    )
    .bind(at)
    .bind(monitor_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One line of a heartbeat's ping log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// When, ms.
    pub at: i64,
    /// The sender's address, when the listener knew it.
    pub source: Option<String>,
    /// `GET` or `POST`.
    pub method: String,
}

/// A heartbeat's newest pings, newest first.
pub async fn pings(store: &Store, monitor_id: i64, limit: i64) -> Result<Vec<Ping>> {
    sqlx::query(
        "SELECT at, source, method FROM heartbeat_pings WHERE monitor_id = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(monitor_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(Ping {
            at: r.try_get("at")?,
            source: r.try_get("source")?,
            method: r.try_get("method")?,
        })
    })
    .collect()
}

/// A monitor's current health (`None` if it does not exist).
pub async fn health_of(store: &Store, monitor_id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT health FROM monitor_state WHERE monitor_id = $1")
            .bind(monitor_id)
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get("health"))
            .transpose()?,
    )
}

/// The monitor whose state `w` stores, when it is a [`state_write`] (an upsert: a later one for
/// the same monitor makes an earlier one unneeded, which lets a runner's unstored writes
/// coalesce).
pub fn state_write_monitor(w: &Write) -> Option<i64> {
    match w {
        Write::Exec { sql, args } if *sql == STATE_SQL => match args.first() {
            Some(crate::Value::I64(id)) => *id,
            _ => None,
        },
        _ => None,
    }
}

const STATE_SQL: &str = "INSERT INTO monitor_state (monitor_id, health, alerted, failures, successes, last_check_at, last_ok,
                 last_latency_us, last_failure, last_failure_at, cert_expires_at, cert_warned, cron_slot, changed_at,
                 cert_chain_valid)
              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
              ON CONFLICT (monitor_id) DO UPDATE SET health = excluded.health, alerted = excluded.alerted,
                 failures = excluded.failures, successes = excluded.successes,
                 last_check_at = excluded.last_check_at, last_ok = excluded.last_ok,
                 last_latency_us = excluded.last_latency_us, last_failure = excluded.last_failure,
                 last_failure_at = excluded.last_failure_at, cert_expires_at = excluded.cert_expires_at,
                 cert_warned = excluded.cert_warned, cron_slot = excluded.cron_slot,
                 changed_at = excluded.changed_at, cert_chain_valid = excluded.cert_chain_valid";

/// The write that stores a monitor's state (everything but `last_ping_at`, which pings own).
pub fn state_write(monitor_id: i64, s: &MonitorState) -> Write {
    Write::Exec {
        sql: STATE_SQL,
        args: vec![
            monitor_id.into(),
            s.health.clone().into(),
            i64::from(s.alerted).into(),
            s.failures.into(),
            s.successes.into(),
            s.last_check_at.into(),
            s.last_ok.map(i64::from).into(),
            s.last_latency_us.into(),
            s.last_failure.clone().into(),
            s.last_failure_at.into(),
            s.cert_expires_at.into(),
            i64::from(s.cert_warned).into(),
            s.cron_slot.into(),
            s.changed_at.into(),
            s.cert_chain_valid.map(i64::from).into(),
        ],
    }
}

/// The write that records a health change and why.
pub fn change_write(
    monitor_id: i64,
    at: i64,
    from: &str,
    to: &str,
    reason: &str,
    alerted: bool,
) -> Write {
    Write::Insert {
        table: "monitor_changes",
        columns: &[
            "monitor_id",
            "at",
            "from_health",
            "to_health",
            "reason",
            "alerted",
        ],
        values: vec![
            monitor_id.into(),
            at.into(),
            from.into(),
            to.into(),
            reason.into(),
            Value::I64(Some(i64::from(alerted))),
        ],
    }
}

/// A recorded health change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    /// When, ms.
    pub at: i64,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
    /// Why (the failing condition, maintenance, a parent being down…).
    pub reason: String,
    /// Whether it was announced to alerting.
    pub alerted: bool,
}

/// A monitor's newest health changes.
pub async fn changes(store: &Store, monitor_id: i64, limit: i64) -> Result<Vec<Change>> {
    sqlx::query(
        "SELECT at, from_health, to_health, reason, alerted FROM monitor_changes
         WHERE monitor_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(monitor_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(Change {
            at: r.try_get("at")?,
            from: r.try_get("from_health")?,
            to: r.try_get("to_health")?,
            reason: r.try_get("reason")?,
            alerted: r.flag("alerted")?,
        })
    })
    .collect()
}
