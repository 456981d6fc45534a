//! Backups as a scheduled capability: restore drills of Lookout's own backup, scheduled
//! pgBackRest backups and drills of the user's PostgreSQL, status refreshes, and the
//! `backup.failed` / `backup.stale` / `backup.ok` domain events that alert policies react to.
//!
//! One leased periodic job ([`JOB`]) does it all, so on PostgreSQL exactly one replica runs a
//! given backup or drill.

pub mod api;
pub mod pgbackrest;
pub mod ui;
pub mod view;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use axum::routing::get;
use axum::Router;
use lookout_core::seal::Sealer;
use lookout_core::time::{iso, now_ms};
use lookout_outbound::NetPolicy;
use lookout_store::backup::catalog::{self, NewRun, RunRow, TargetRow, BUILTIN};
use lookout_store::backup::{self as sbackup, Target};
use lookout_store::events;
use lookout_store::Store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The periodic job's id and kind.
pub const JOB: &str = "backups.run";
/// How often the job runs.
pub const EVERY_MS: i64 = 60_000;
/// Shipping that has said nothing for this long is stale (it writes at least every 10 s).
const SHIPPING_STALE_MS: i64 = 5 * 60_000;

/// How the built-in backup is drilled.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often Lookout's own backup is restored and checked (0: never).
    pub drill_every: Duration,
}

/// Restores the built-in backup to an exact point marked now into a scratch file, runs
/// `PRAGMA integrity_check`, compares every table's row count with the live database at that
/// point, and records the drill. Returns the recorded run.
pub async fn drill_builtin(store: &Store) -> Result<RunRow, String> {
    let started_at = now_ms();
    let clock = Instant::now();
    let outcome = drill_builtin_in(store).await;
    let (error, details) = match outcome {
        Ok(d) => {
            let mismatches = d["mismatches"].as_array().map_or(0, Vec::len);
            let err = if d["integrity"] != "ok" {
                Some(format!("integrity_check: {}", d["integrity"]))
            } else if mismatches > 0 {
                Some(format!(
                    "{mismatches} tables' row counts differ from the live database"
                ))
            } else {
                None
            };
            (err, d)
        }
        Err(e) => (Some(e), json!({})),
    };
    let run = NewRun {
        target: BUILTIN,
        target_id: None,
        kind: "drill",
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
        error,
        details,
    };
    record(store, &run).await
}

async fn drill_builtin_in(store: &Store) -> Result<Value, String> {
    let (dir, _) = store
        .backup_run()
        .await
        .ok_or("backups are off (start the server with --backup-dir)")?;
    let (position, live) = store.backup_mark().await.map_err(|e| e.to_string())?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out = scratch.path().join("lookout.db");
    let restoring = Instant::now();
    let target = Target::Position(position.clone());
    let (dir2, out2) = (dir.clone(), out.clone());
    let restored = tokio::task::spawn_blocking(move || sbackup::restore(&dir2, &target, &out2))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let restore_ms = restoring.elapsed().as_millis() as u64;
    let (integrity, counts) = sbackup::check_copy(&out).await.map_err(|e| e.to_string())?;
    let mut mismatches = Vec::new();
    for (table, n) in &live {
        let got = counts.get(table).copied();
        if got != Some(*n) {
            mismatches.push(json!({"table": table, "live": n, "restored": got}));
        }
    }
    let db_bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    Ok(json!({
        "restore_ms": restore_ms,
        "run": position.run,
        "snapshot": restored.snapshot,
        "replayed_transactions": restored.transactions,
        "as_of": iso(restored.as_of),
        "integrity": integrity,
        "tables": live.len(),
        "rows": live.values().sum::<i64>(),
        "mismatches": mismatches,
        "db_bytes": db_bytes,
    }))
}

/// After a drill run on demand: a failure raises `backup.failed` at once (a scheduled pass
/// would only notice within the minute), a success after a failure clears it.
pub async fn publish_drill(store: &Store, run: &RunRow) -> Result<(), String> {
    let health = if run.ok {
        Health::Ok
    } else {
        Health::Failed(format!(
            "restore drill failed: {}",
            run.error.clone().unwrap_or_default()
        ))
    };
    publish_health(store, &run.target, health).await
}

/// Records a run and says so in the log.
async fn record(store: &Store, run: &NewRun<'_>) -> Result<RunRow, String> {
    let row = catalog::record_run(store, run)
        .await
        .map_err(|e| e.to_string())?;
    match &run.error {
        None => tracing::info!(
            target = run.target,
            kind = run.kind,
            ms = run.duration_ms,
            "Backup {} succeeded.",
            run.kind
        ),
        Some(e) => {
            tracing::warn!(target = run.target, kind = run.kind, error = %e, "Backup {} failed.", run.kind)
        }
    }
    Ok(row)
}

/// One turn at a target's pgBackRest work on this replica: a backup asked for through the API
/// waits for the scheduled one instead of failing on pgBackRest's lock (replicas still meet at
/// that lock, and the loser records pgBackRest's error).
async fn target_turn(id: i64) -> tokio::sync::OwnedMutexGuard<()> {
    static TURNS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<i64, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let turn = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_default()
        .clone();
    turn.lock_owned().await
}

/// Takes a pgBackRest backup of `kind` for `t` and records it.
pub async fn backup_target(store: &Store, t: &TargetRow, kind: &str) -> Result<RunRow, String> {
    let _turn = target_turn(t.id).await;
    let started_at = now_ms();
    let clock = Instant::now();
    let out = pgbackrest::backup(t, kind).await;
    let info = pgbackrest::info(t).await;
    let details = json!({"info": info.as_ref().ok(),
                         "output": out.as_ref().ok().map(|o| o.chars().take(2000).collect::<String>())});
    let run = NewRun {
        target: &t.spec.name,
        target_id: Some(t.id),
        kind,
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
        error: out.err(),
        details,
    };
    record(store, &run).await
}

/// Runs a restore drill of `t` (the newest backup, or the state at `to`) and records it.
pub async fn drill_target(
    store: &Store,
    sealer: &Sealer,
    policy: &NetPolicy,
    t: &TargetRow,
    to: Option<i64>,
) -> Result<RunRow, String> {
    let _turn = target_turn(t.id).await;
    let started_at = now_ms();
    let clock = Instant::now();
    let live = t
        .spec
        .pg_url_sealed
        .as_deref()
        .and_then(|s| sealer.open(s).ok());
    let report = pgbackrest::drill(t, to, live.as_deref(), policy).await;
    let run = NewRun {
        target: &t.spec.name,
        target_id: Some(t.id),
        kind: "drill",
        started_at,
        duration_ms: clock.elapsed().as_millis() as i64,
        error: (!report.problems.is_empty()).then(|| report.problems.join("; ")),
        details: serde_json::to_value(&report).unwrap_or_default(),
    };
    record(store, &run).await
}

/// Reads a target's status (pgBackRest info, the archiver, read from the target's database
/// only where the outbound policy allows) and keeps it.
pub async fn refresh_status(
    store: &Store,
    sealer: &Sealer,
    policy: &NetPolicy,
    t: &TargetRow,
) -> Value {
    let info = pgbackrest::info(t).await;
    let url = t
        .spec
        .pg_url_sealed
        .as_deref()
        .and_then(|s| sealer.open(s).ok());
    let archiver = match &url {
        Some(u) => Some(pgbackrest::archiver(u, policy).await),
        None => None,
    };
    let status = pgbackrest::status_json(&info, archiver.as_ref());
    if let Err(e) = catalog::set_status(store, t.id, &status).await {
        tracing::warn!(target = t.id, error = %e, "Could not keep a backup target's status.");
    }
    status
}

/// Whether work last attempted at `last` (or never) is due again after `every_hours`; a
/// failed attempt is retried after an hour at most.
fn due(last: Option<&RunRow>, every_hours: i64, now: i64) -> bool {
    if every_hours <= 0 {
        return false;
    }
    let every = every_hours * 3_600_000;
    match last {
        None => true,
        Some(r) if r.ok => now - r.started_at >= every,
        Some(r) => now - r.started_at >= every.min(3_600_000),
    }
}

/// A target's health, for events.
#[derive(Debug, Clone, PartialEq)]
enum Health {
    Ok,
    Failed(String),
    Stale(String),
}

/// Publishes `backup.failed`, `backup.stale` or `backup.ok` when a target's health changed
/// since the last such event.
async fn publish_health(store: &Store, target: &str, health: Health) -> Result<(), String> {
    let last = catalog::last_event_kind(store, target)
        .await
        .map_err(|e| e.to_string())?;
    let (kind, reason) = match &health {
        Health::Ok => ("backup.ok", String::new()),
        Health::Failed(r) => ("backup.failed", r.clone()),
        Health::Stale(r) => ("backup.stale", r.clone()),
    };
    let changed = match last.as_deref() {
        None => health != Health::Ok,
        Some(k) => k != kind,
    };
    if !changed {
        return Ok(());
    }
    tracing::info!(target, kind, reason = %reason, "Backup health changed.");
    let mut tx = store.begin_write().await.map_err(|e| e.to_string())?;
    let ev = events::publish(
        kind,
        None,
        Some(target.to_string()),
        &json!({"target": target, "reason": reason}),
    );
    events::publish_in_tx(store, &mut tx, &[ev])
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// The built-in backup's health: its newest drill, and whether shipping keeps up.
async fn builtin_health(store: &Store, settings: &Settings) -> Result<Health, String> {
    let Some((dir, _)) = store.backup_run().await else {
        return Ok(Health::Ok);
    };
    let now = now_ms();
    let inv = tokio::task::spawn_blocking(move || sbackup::inventory(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if let Some(newest) = inv.newest.filter(|n| now - n > SHIPPING_STALE_MS) {
        return Ok(Health::Stale(format!(
            "nothing shipped to the backup directory since {}",
            iso(newest)
        )));
    }
    let drill = catalog::newest_run(store, BUILTIN, &["drill"], false)
        .await
        .map_err(|e| e.to_string())?;
    target_health(
        store,
        BUILTIN,
        drill.as_ref(),
        settings.drill_every.as_millis() as i64,
        now,
    )
    .await
}

/// Failed when the newest drill failed; stale when no drill succeeded within twice the drill
/// interval.
async fn target_health(
    store: &Store,
    target: &str,
    last_drill: Option<&RunRow>,
    drill_every_ms: i64,
    now: i64,
) -> Result<Health, String> {
    if let Some(d) = last_drill.filter(|d| !d.ok) {
        return Ok(Health::Failed(format!(
            "restore drill failed: {}",
            d.error.clone().unwrap_or_default()
        )));
    }
    if drill_every_ms > 0 {
        let ok = catalog::newest_run(store, target, &["drill"], true)
            .await
            .map_err(|e| e.to_string())?;
        if ok
            .as_ref()
            .is_none_or(|d| now - d.started_at > 2 * drill_every_ms)
        {
            return Ok(Health::Stale(format!(
                "no successful restore drill since {}",
                ok.map_or("ever".into(), |d| iso(d.started_at))
            )));
        }
    }
    Ok(Health::Ok)
}

/// One pass: drills and backups that are due, status refreshes, health events.
pub async fn run(
    store: &Store,
    sealer: &Sealer,
    policy: &NetPolicy,
    settings: &Settings,
) -> Result<(), String> {
    let now = now_ms();
    if store.backup_run().await.is_some() {
        let every = settings.drill_every.as_millis() as i64;
        let last = catalog::newest_run(store, BUILTIN, &["drill"], false)
            .await
            .map_err(|e| e.to_string())?;
        if every > 0 && last.as_ref().is_none_or(|d| now - d.started_at >= every) {
            drill_builtin(store).await?;
        }
        let health = builtin_health(store, settings).await?;
        publish_health(store, BUILTIN, health).await?;
    }
    for t in catalog::list_targets(store)
        .await
        .map_err(|e| e.to_string())?
    {
        let name = t.spec.name.as_str();
        let last_backup = catalog::newest_run(store, name, &["full", "diff", "incr"], false)
            .await
            .map_err(|e| e.to_string())?;
        let last_full = catalog::newest_run(store, name, &["full"], false)
            .await
            .map_err(|e| e.to_string())?;
        let last_backup = if due(last_full.as_ref(), t.spec.full_every_hours, now) {
            Some(backup_target(store, &t, "full").await?)
        } else if due(last_backup.as_ref(), t.spec.diff_every_hours, now) {
            Some(backup_target(store, &t, "diff").await?)
        } else {
            last_backup
        };
        // Read after any backup this pass took, so its age reflects it.
        let status = refresh_status(store, sealer, policy, &t).await;
        let last_drill = catalog::newest_run(store, name, &["drill"], false)
            .await
            .map_err(|e| e.to_string())?;
        let last_drill = if due(last_drill.as_ref(), t.spec.drill_every_hours, now) {
            Some(drill_target(store, sealer, policy, &t, None).await?)
        } else {
            last_drill
        };
        let health = pg_health(
            store,
            &t,
            &status,
            last_backup.as_ref(),
            last_drill.as_ref(),
            now,
        )
        .await?;
        publish_health(store, name, health).await?;
    }
    Ok(())
}

/// A target's health: a failed backup or drill, a backup older than twice its schedule, WAL
/// archiving that fails, or no recent successful drill.
async fn pg_health(
    store: &Store,
    t: &TargetRow,
    status: &Value,
    last_backup: Option<&RunRow>,
    last_drill: Option<&RunRow>,
    now: i64,
) -> Result<Health, String> {
    let name = t.spec.name.as_str();
    if let Some(b) = last_backup.filter(|b| !b.ok) {
        return Ok(Health::Failed(format!(
            "{} backup failed: {}",
            b.kind,
            b.error.clone().unwrap_or_default()
        )));
    }
    if let Some(e) = status["info_error"].as_str() {
        return Ok(Health::Failed(format!("pgbackrest info: {e}")));
    }
    let every = [t.spec.full_every_hours, t.spec.diff_every_hours]
        .into_iter()
        .filter(|h| *h > 0)
        .min()
        .unwrap_or(0)
        * 3_600_000;
    let last_stop = status["info"]["last_stop_ms"].as_i64();
    if every > 0 && last_stop.is_none_or(|s| now - s > 2 * every) {
        return Ok(Health::Stale(format!(
            "no backup since {}",
            last_stop.map_or("ever".into(), iso)
        )));
    }
    if status["archiver"]["failed_count"].as_i64().unwrap_or(0) > 0
        && status["archiver"]["lag_segments"].as_i64().unwrap_or(0) > 0
    {
        return Ok(Health::Stale(format!(
            "WAL archiving is failing ({} segments behind, last failed {})",
            status["archiver"]["lag_segments"],
            status["archiver"]["last_failed_wal"]
                .as_str()
                .unwrap_or("?")
        )));
    }
    target_health(
        store,
        name,
        last_drill,
        t.spec.drill_every_hours * 3_600_000,
        now,
    )
    .await
}

/// Backups, drills and their runs in the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::overview))
        .routes(routes!(api::drill_builtin))
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get_one, api::delete))
        .routes(routes!(api::backup_now))
        .routes(routes!(api::drill))
        .routes(routes!(api::check))
        .routes(routes!(api::runs))
}

/// The backups page.
pub fn pages() -> Router<AppState> {
    Router::new().route("/backups", get(ui::page))
}

/// Backups and drills of every target that is due, and drills of Lookout's own backup.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    let (sealer, policy, settings) = (bg.sealer.clone(), bg.outbound().clone(), bg.backups);
    vec![crate::tasks::PeriodicJob::on_store(
        JOB,
        EVERY_MS,
        &bg.store,
        move |store| {
            let (sealer, policy) = (sealer.clone(), policy.clone());
            async move { run(&store, &sealer, &policy, &settings).await }
        },
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ok: bool, started_at: i64) -> RunRow {
        RunRow {
            id: 1,
            target: "t".into(),
            target_id: None,
            kind: "full".into(),
            started_at,
            duration_ms: 1,
            ok,
            error: None,
            details: None,
        }
    }

    async fn drill_at(store: &Store, started_at: i64, error: Option<&str>) -> RunRow {
        let run = NewRun {
            target: "shop",
            target_id: None,
            kind: "drill",
            started_at,
            duration_ms: 5,
            error: error.map(str::to_string),
            details: json!({}),
        };
        record(store, &run).await.unwrap()
    }

    async fn health_events(store: &Store) -> Vec<String> {
        lookout_store::events::read_after(store, 0, 10_000, None)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind.starts_with("backup."))
            .map(|e| format!("{} {}", e.kind, e.payload["reason"]))
            .collect()
    }

    /// A missing drill makes a target stale, a failed one failed; each change is published
    /// once, and recovery publishes `backup.ok`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_and_failed_drills_raise_events_once_and_recovery_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url_for_dir(dir.path()))
            .await
            .unwrap();
        let day = 86_400_000;
        let now = now_ms();
        // Never drilled with drills due daily: stale.
        let h = target_health(&store, "shop", None, day, now).await.unwrap();
        assert!(
            matches!(&h, Health::Stale(r) if r.contains("no successful restore drill since ever"))
        );
        publish_health(&store, "shop", h.clone()).await.unwrap();
        publish_health(&store, "shop", h).await.unwrap();
        assert_eq!(health_events(&store).await.len(), 1, "published once");
        // A drill three days ago passed: still stale (older than twice the interval).
        drill_at(&store, now - 3 * day, None).await;
        let h = target_health(&store, "shop", None, day, now).await.unwrap();
        assert!(matches!(h, Health::Stale(_)));
        // A recent one passed: ok, and the recovery is published.
        let ok = drill_at(&store, now - day / 2, None).await;
        let h = target_health(&store, "shop", Some(&ok), day, now)
            .await
            .unwrap();
        assert_eq!(h, Health::Ok);
        publish_health(&store, "shop", h).await.unwrap();
        // The newest drill failed: failed, whatever the older ones did.
        let bad = drill_at(&store, now - 1_000, Some("restore: checksum")).await;
        let h = target_health(&store, "shop", Some(&bad), day, now)
            .await
            .unwrap();
        publish_health(&store, "shop", h).await.unwrap();
        assert_eq!(
            health_events(&store).await,
            vec![
                "backup.stale \"no successful restore drill since ever\"".to_string(),
                "backup.ok \"\"".to_string(),
                "backup.failed \"restore drill failed: restore: checksum\"".to_string(),
            ]
        );
        store.close().await;
    }

    #[test]
    fn work_is_due_on_schedule_and_failures_retry_within_the_hour() {
        let h = 3_600_000;
        assert!(due(None, 24, 0), "never run: due at once");
        assert!(!due(None, 0, 0), "0 hours: never scheduled");
        assert!(!due(Some(&run(true, 0)), 24, 23 * h));
        assert!(due(Some(&run(true, 0)), 24, 24 * h));
        assert!(!due(Some(&run(false, 0)), 24, h - 1));
        assert!(
            due(Some(&run(false, 0)), 24, h),
            "a failure retries after an hour"
        );
    }
}
