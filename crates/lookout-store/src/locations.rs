//! Locations: remote vantage points whose `lookout probe` agents check monitors, their agent
//! tokens (stored hashed, shown once), the agents seen per location, the results agents report
//! and each monitor's state as each location sees it.
//!
//! A monitor names its locations in its spec (`locations`), which stays the one definition; the
//! monitors a location checks are found by reading specs ([`monitors_with_locations`]).

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::row::RowExt;
use crate::uptime::MonitorRow;
use crate::{Result, Store, StoreError};
use lookout_core::secret::{hash_token, random_hex};
use lookout_core::time::now_ms;

/// The prefix of location agent tokens, so a leaked one is recognisable (and not an API token).
pub const TOKEN_PREFIX: &str = "lkp_";

/// A stored location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationRow {
    /// Id.
    pub id: i64,
    /// Owning organization.
    pub org_id: i64,
    /// Unique name monitors refer to (`eu-west`).
    pub name: String,
    /// Free text.
    pub description: String,
    /// When the current token was made, ms (`None` before the first).
    pub token_created_at: Option<i64>,
    /// When the token was revoked, ms; a revoked location's agents are refused until a rotation.
    pub revoked_at: Option<i64>,
    /// Whether the location was last announced offline.
    pub offline: bool,
    /// Created, ms.
    pub created_at: i64,
    /// Last changed, ms.
    pub updated_at: i64,
}

const COLS: &str =
    "id, org_id, name, description, token_created_at, revoked_at, offline, created_at, updated_at";

fn location_from(r: &AnyRow) -> Result<LocationRow> {
    Ok(LocationRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        token_created_at: r.try_get("token_created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        offline: r.flag("offline")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// A new agent token: `lkp_` and 40 hex characters (160 bits).
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(20))
}

/// Creates a location with a fresh token; returns the token (shown once) and the row.
pub async fn create_location(
    store: &Store,
    org_id: i64,
    name: &str,
    description: &str,
) -> Result<(String, LocationRow)> {
    let token = new_token();
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO locations (org_id, name, description, token_hash, token_created_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5, $5) RETURNING id",
    )
    .bind(org_id)
    .bind(name)
    .bind(description)
    .bind(hash_token(&token))
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a location with this name"))?
    .try_get("id")?;
    crate::commit_audited(tx).await?;
    Ok((token, get_location(store, id).await?))
}

/// One location.
pub async fn get_location(store: &Store, id: i64) -> Result<LocationRow> {
    sqlx::query(&format!("SELECT {COLS} FROM locations WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(location_from)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// Every location, by name.
pub async fn list_locations(store: &Store) -> Result<Vec<LocationRow>> {
    sqlx::query(&format!("SELECT {COLS} FROM locations ORDER BY name"))
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(location_from)
        .collect()
}

/// Renames or redescribes a location.
pub async fn update_location(
    store: &Store,
    id: i64,
    name: &str,
    description: &str,
) -> Result<LocationRow> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE locations SET name = $1, description = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(name)
    .bind(description)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a location with this name"))?
    .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    get_location(store, id).await
}

/// Replaces a location's token (the old one stops working at once, a revocation is lifted);
/// returns the new token, shown once.
pub async fn rotate_token(store: &Store, id: i64) -> Result<String> {
    let token = new_token();
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE locations SET token_hash = $1, token_created_at = $2, revoked_at = NULL, updated_at = $2
         WHERE id = $3",
    )
    .bind(hash_token(&token))
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    Ok(token)
}

/// Revokes a location's token. The hash is kept so its agents are told "revoked" rather than
/// "unknown token", but a revoked token never authenticates ([`location_for_token`]).
pub async fn revoke_token(store: &Store, id: i64) -> Result<LocationRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE locations SET revoked_at = COALESCE(revoked_at, $1), updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    get_location(store, id).await
}

/// Deletes a location with its agents, results and per-monitor state (the caller checks that no
/// monitor still names it).
pub async fn delete_location(store: &Store, id: i64) -> Result<()> {
    crate::delete_with(
        store,
        &[
            "DELETE FROM location_agents WHERE location_id = $1",
            "DELETE FROM location_results WHERE location_id = $1",
            "DELETE FROM location_checks WHERE location_id = $1",
        ],
        "locations",
        id,
    )
    .await
}

/// The location a token belongs to, revoked or not (the caller refuses a revoked one with its
/// own message); `None` for an unknown or rotated-away token.
pub async fn location_for_token(store: &Store, token: &str) -> Result<Option<LocationRow>> {
    sqlx::query(&format!(
        "SELECT {COLS} FROM locations WHERE token_hash = $1"
    ))
    .bind(hash_token(token))
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(location_from)
    .transpose()
}

/// Records the location's announced health (offline or online) and publishes `event` in the same
/// transaction, only when the health changed: one replica announces each change once, and the
/// event never claims a change the database does not hold. True when it changed.
pub async fn set_offline(
    store: &Store,
    id: i64,
    offline: bool,
    event: crate::writer::Write,
) -> Result<bool> {
    let mut tx = store.begin_write().await?;
    let changed = sqlx::query("UPDATE locations SET offline = $1 WHERE id = $2 AND offline <> $1")
        .bind(i64::from(offline))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if changed {
        crate::events::publish_in_tx(store, &mut tx, &[event]).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

// ---------------------------------------------------------------- agents

/// An agent as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// The location.
    pub location_id: i64,
    /// The agent's id (chosen by the agent).
    pub agent_id: String,
    /// Its version.
    pub version: String,
    /// First seen, ms.
    pub first_seen_at: i64,
    /// Last request, ms.
    pub last_seen_at: i64,
    /// Results it holds, not yet uploaded.
    pub buffered: i64,
    /// Results it dropped (buffer full) since it started.
    pub dropped: i64,
}

fn agent_from(r: &AnyRow) -> Result<AgentRow> {
    Ok(AgentRow {
        location_id: r.try_get("location_id")?,
        agent_id: r.try_get("agent_id")?,
        version: r.try_get("version")?,
        first_seen_at: r.try_get("first_seen_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        buffered: r.try_get("buffered")?,
        dropped: r.try_get("dropped")?,
    })
}

/// What an agent says about itself on each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSeen<'a> {
    /// Its id.
    pub agent_id: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Results buffered.
    pub buffered: i64,
    /// Results dropped.
    pub dropped: i64,
}

/// Notes that an agent of `location_id` was seen at `now`.
pub async fn touch_agent(
    store: &Store,
    location_id: i64,
    seen: &AgentSeen<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO location_agents (location_id, agent_id, version, first_seen_at, last_seen_at, buffered, dropped)
         VALUES ($1, $2, $3, $4, $4, $5, $6)
         ON CONFLICT (location_id, agent_id) DO UPDATE SET version = excluded.version,
             last_seen_at = excluded.last_seen_at, buffered = excluded.buffered, dropped = excluded.dropped",
    )
    .bind(location_id)
    .bind(seen.agent_id)
    .bind(seen.version)
    .bind(now)
    .bind(seen.buffered)
    .bind(seen.dropped)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A location's agents, newest seen first.
pub async fn agents(store: &Store, location_id: i64) -> Result<Vec<AgentRow>> {
    sqlx::query(
        "SELECT location_id, agent_id, version, first_seen_at, last_seen_at, buffered, dropped
         FROM location_agents WHERE location_id = $1 ORDER BY last_seen_at DESC, agent_id",
    )
    .bind(location_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(agent_from)
    .collect()
}

/// Forgets agents not seen since `before` (they show as gone, then disappear).
pub async fn forget_agents(store: &Store, before: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM location_agents WHERE last_seen_at < $1")
            .bind(before)
            .execute(store.pool())
            .await?
            .rows_affected(),
    )
}

// ---------------------------------------------------------------- monitors and results

/// Monitors whose spec names locations (a cheap text filter; the caller reads the specs).
pub async fn monitors_with_locations(store: &Store) -> Result<Vec<MonitorRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM monitors m WHERE m.spec LIKE '%\"locations\"%' ORDER BY m.id",
        crate::uptime::MONITOR_COLS
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(crate::uptime::monitor_from).collect()
}

/// The newest definition change among monitors that name locations, and their count: agents'
/// assignment lists change only when this does (or the pool's agents do).
pub async fn definitions_version(store: &Store) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT COALESCE(MAX(updated_at), 0) AS newest, COUNT(*) AS n FROM monitors
         WHERE spec LIKE '%\"locations\"%'",
    )
    .fetch_one(store.pool())
    .await?;
    Ok((r.try_get("newest")?, r.try_get("n")?))
}

/// One result an agent reported.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationResult {
    /// The monitor.
    pub monitor_id: i64,
    /// When the check was due, ms: with the monitor and location, the result's identity.
    pub scheduled_at: i64,
    /// When it ran, ms.
    pub at: i64,
    /// Passed.
    pub ok: bool,
    /// Latency, µs.
    pub latency_us: Option<i64>,
    /// Failure reason.
    pub message: Option<String>,
}

/// A monitor's state as one location sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationCheck {
    /// The monitor.
    pub monitor_id: i64,
    /// The location.
    pub location_id: i64,
    /// `pending`, `up` or `down`, by the monitor's thresholds over this location's results.
    pub health: String,
    /// Failures in a row.
    pub failures: i64,
    /// Successes in a row.
    pub successes: i64,
    /// Scheduled time of the newest result counted, ms (older ones arriving late are stored,
    /// not counted).
    pub last_scheduled_at: Option<i64>,
    /// When the newest result ran, ms.
    pub last_check_at: Option<i64>,
    /// Whether it passed.
    pub last_ok: Option<bool>,
    /// Its latency, µs.
    pub last_latency_us: Option<i64>,
    /// The newest failure reason.
    pub last_failure: Option<String>,
    /// Last health change, ms.
    pub changed_at: Option<i64>,
}

const CHECK_COLS: &str =
    "monitor_id, location_id, health, failures, successes, last_scheduled_at, \
     last_check_at, last_ok, last_latency_us, last_failure, changed_at";

fn check_from(r: &AnyRow) -> Result<LocationCheck> {
    Ok(LocationCheck {
        monitor_id: r.try_get("monitor_id")?,
        location_id: r.try_get("location_id")?,
        health: r.try_get("health")?,
        failures: r.try_get("failures")?,
        successes: r.try_get("successes")?,
        last_scheduled_at: r.try_get("last_scheduled_at")?,
        last_check_at: r.try_get("last_check_at")?,
        last_ok: r.opt_flag("last_ok")?,
        last_latency_us: r.try_get("last_latency_us")?,
        last_failure: r.try_get("last_failure")?,
        changed_at: r.try_get("changed_at")?,
    })
}

/// A monitor's per-location states.
pub async fn checks_of_monitor(store: &Store, monitor_id: i64) -> Result<Vec<LocationCheck>> {
    sqlx::query(&format!(
        "SELECT {CHECK_COLS} FROM location_checks WHERE monitor_id = $1"
    ))
    .bind(monitor_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(check_from)
    .collect()
}

/// What storing a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Results stored (a retried batch stores none).
    pub stored: usize,
    /// Results already stored before (same monitor, location and scheduled time).
    pub duplicates: usize,
    /// Per-location states whose health changed: (monitor, from, to).
    pub changes: Vec<(i64, String, String)>,
}

/// Stores a batch of one location's results in one transaction: each result is stored once (a
/// result already stored is skipped), and each new result newer than the last counted one is
/// applied to the monitor's state for this location by `apply` (the caller's thresholds).
/// Results must name monitors that exist; the caller checks that before.
pub async fn record_batch<F>(
    store: &Store,
    location_id: i64,
    results: &[LocationResult],
    mut apply: F,
) -> Result<BatchOutcome>
where
    F: FnMut(&mut LocationCheck, &LocationResult),
{
    let mut ordered: Vec<&LocationResult> = results.iter().collect();
    ordered.sort_by_key(|r| (r.monitor_id, r.scheduled_at));
    let mut out = BatchOutcome::default();
    let mut tx = store.begin_write().await?;
    // Two batches of one location (two agents, or a retry) may be stored at once: on PostgreSQL
    // the row is locked so neither counts its streak from a stale read (SQLite's writes are
    // already one at a time).
    let lock = crate::dialect::for_update(store.backend());
    let mut current: Option<LocationCheck> = None;
    let mut dirty = false;
    for r in ordered {
        if current.as_ref().map(|c| c.monitor_id) != Some(r.monitor_id) {
            if let (Some(c), true) = (current.take(), dirty) {
                save_check(&mut tx, &c).await?;
            }
            dirty = false;
            let row = sqlx::query(&format!(
                "SELECT {CHECK_COLS} FROM location_checks WHERE monitor_id = $1 AND location_id = $2{lock}"
            ))
            .bind(r.monitor_id)
            .bind(location_id)
            .fetch_optional(&mut *tx)
            .await?;
            current = Some(match row {
                Some(row) => check_from(&row)?,
                None => LocationCheck {
                    monitor_id: r.monitor_id,
                    location_id,
                    health: "pending".into(),
                    ..Default::default()
                },
            });
        }
        let n = sqlx::query(
            "INSERT INTO location_results (monitor_id, location_id, scheduled_at, at, ok, latency_us, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(r.monitor_id)
        .bind(location_id)
        .bind(r.scheduled_at)
        .bind(r.at)
        .bind(i64::from(r.ok))
        .bind(r.latency_us)
        .bind(&r.message)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            out.duplicates += 1;
            continue;
        }
        out.stored += 1;
        let c = current.as_mut().expect("loaded above");
        if c.last_scheduled_at.is_some_and(|s| s >= r.scheduled_at) {
            continue;
        }
        let before = c.health.clone();
        apply(c, r);
        c.last_scheduled_at = Some(r.scheduled_at);
        c.last_check_at = Some(r.at);
        c.last_ok = Some(r.ok);
        c.last_latency_us = r.latency_us;
        if !r.ok {
            c.last_failure = r.message.clone();
        }
        if c.health != before {
            c.changed_at = Some(r.at);
            out.changes.push((r.monitor_id, before, c.health.clone()));
            // The monitor's runner re-judges it at its next reload (seconds), not at its next
            // own check: a location turning down or up moves the quorum now. Same write, so a
            // stored change always reaches the runner.
            sqlx::query(
                "UPDATE monitors SET check_requested_at =
                     CASE WHEN COALESCE(check_requested_at, 0) >= $1 THEN check_requested_at + 1 ELSE $1 END
                 WHERE id = $2",
            )
            .bind(now_ms())
            .bind(r.monitor_id)
            .execute(&mut *tx)
            .await?;
        }
        dirty = true;
    }
    if let (Some(c), true) = (current.take(), dirty) {
        save_check(&mut tx, &c).await?;
    }
    tx.commit().await?;
    Ok(out)
}

async fn save_check(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    c: &LocationCheck,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO location_checks (monitor_id, location_id, health, failures, successes, last_scheduled_at,
             last_check_at, last_ok, last_latency_us, last_failure, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (monitor_id, location_id) DO UPDATE SET health = excluded.health,
             failures = excluded.failures, successes = excluded.successes,
             last_scheduled_at = excluded.last_scheduled_at, last_check_at = excluded.last_check_at,
             last_ok = excluded.last_ok, last_latency_us = excluded.last_latency_us,
             last_failure = excluded.last_failure, changed_at = excluded.changed_at",
    )
    .bind(c.monitor_id)
    .bind(c.location_id)
    .bind(&c.health)
    .bind(c.failures)
    .bind(c.successes)
    .bind(c.last_scheduled_at)
    .bind(c.last_check_at)
    .bind(c.last_ok.map(i64::from))
    .bind(c.last_latency_us)
    .bind(&c.last_failure)
    .bind(c.changed_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many results a location has stored for a monitor (tests, the Locations page).
pub async fn result_count(store: &Store, monitor_id: i64, location_id: i64) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM location_results WHERE monitor_id = $1 AND location_id = $2",
    )
    .bind(monitor_id)
    .bind(location_id)
    .fetch_one(store.pool())
    .await?
    .try_get("n")?)
}

/// When location `location_id`'s newest stored result ran, ms (its lag on the Locations page).
pub async fn newest_result_at(store: &Store, location_id: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT MAX(at) AS at FROM location_results WHERE location_id = $1")
            .bind(location_id)
            .fetch_one(store.pool())
            .await?
            .try_get("at")?,
    )
}

/// One stored result of a location, for the monitor page's per-location chart and uptime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationSample {
    /// The location.
    pub location_id: i64,
    /// When it ran, ms.
    pub at: i64,
    /// Passed.
    pub ok: bool,
    /// Latency, µs.
    pub latency_us: Option<i64>,
}

/// A monitor's results from every location since `since`, oldest first, at most `limit`: the
/// newest ones when there are more (a busy monitor's chart loses its oldest part, never its
/// latest). Raw results are kept 24 h, so this is a day at most.
pub async fn samples_since(
    store: &Store,
    monitor_id: i64,
    since: i64,
    limit: i64,
) -> Result<Vec<LocationSample>> {
    sqlx::query(
        "SELECT location_id, at, ok, latency_us FROM location_results
         WHERE monitor_id = $1 AND at >= $2 ORDER BY at DESC LIMIT $3",
    )
    .bind(monitor_id)
    .bind(since)
    .bind(limit)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(LocationSample {
            location_id: r.try_get("location_id")?,
            at: r.try_get("at")?,
            ok: r.flag("ok")?,
            latency_us: r.try_get("latency_us")?,
        })
    })
    .rev()
    .collect()
}

/// Deletes results older than `before` (the same 24 h raw retention as the replicas' results).
pub async fn prune_results(store: &Store, before: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM location_results WHERE at < $1")
        .bind(before)
        .execute(store.pool())
        .await?
        .rows_affected())
}
