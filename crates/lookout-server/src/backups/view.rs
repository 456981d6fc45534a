//! What the API and the Backups page show of a backup: a run, a target with its newest backup
//! and drill, and Lookout's own backup with what it can restore. Written once for both.

use serde_json::{json, Value};

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_store::backup::catalog::{self, RunRow, TargetRow, BUILTIN};

/// A run as the API shows it.
pub fn run_view(r: &RunRow) -> Value {
    json!({"id": r.id, "target": r.target, "kind": r.kind, "at": iso(r.started_at),
           "duration_ms": r.duration_ms, "ok": r.ok, "error": r.error, "details": r.details})
}

/// A target with its newest backup and drill and the figures the Backups page shows.
pub async fn target_view(state: &AppState, t: &TargetRow) -> ServiceResult<Value> {
    let store = state.store();
    let name = t.spec.name.as_str();
    let last_backup = catalog::newest_run(store, name, &["full", "diff", "incr"], false).await?;
    let last_drill = catalog::newest_run(store, name, &["drill"], false).await?;
    let info = t.status.as_ref().map(|s| &s["info"]);
    let last_stop = info.and_then(|i| i["last_stop_ms"].as_i64());
    Ok(json!({
        "id": t.id, "name": name, "stanza": t.spec.stanza, "config": t.spec.config,
        "run_as": t.spec.run_as, "pg_bin": t.spec.pg_bin, "has_pg_url": t.has_pg_url,
        "full_every_hours": t.spec.full_every_hours, "diff_every_hours": t.spec.diff_every_hours,
        "drill_every_hours": t.spec.drill_every_hours,
        "last_backup_at": last_stop.map(iso),
        "age_seconds": last_stop.map(|s| (now_ms() - s) / 1000),
        "size_bytes": info.and_then(|i| i["last_size"].as_i64()),
        "repo_size_bytes": info.and_then(|i| i["last_repo_size"].as_i64()),
        "backups": info.and_then(|i| i["backups"].as_u64()),
        "restorable_from": info.and_then(|i| i["oldest_stop_ms"].as_i64()).map(iso),
        "wal_lag_segments": t.status.as_ref().and_then(|s| s["archiver"]["lag_segments"].as_i64()),
        "wal_archived_seconds_ago": t.status.as_ref().and_then(|s| s["archiver"]["since_last_archived_s"].as_f64()),
        "status": t.status, "status_at": t.status_at.map(iso),
        "last_backup": last_backup.as_ref().map(run_view),
        "last_drill": last_drill.as_ref().map(run_view),
        "created_at": iso(t.created_at),
    }))
}

/// Lookout's own backup: where it goes, what it holds, its newest drill.
pub async fn builtin_view(state: &AppState) -> ServiceResult<Value> {
    let store = state.store();
    let last_drill = catalog::newest_run(store, BUILTIN, &["drill"], false).await?;
    let Some((dir, run)) = store.backup_run().await else {
        return Ok(json!({"enabled": false, "last_drill": last_drill.as_ref().map(run_view)}));
    };
    let d = dir.clone();
    let inv = tokio::task::spawn_blocking(move || lookout_store::backup::inventory(&d))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(json!({
        "enabled": true, "dir": dir.display().to_string(), "run": run,
        "restorable_from": inv.oldest.map(iso), "restorable_to": inv.newest.map(iso),
        "age_seconds": inv.newest.map(|n| (now_ms() - n) / 1000),
        "snapshots": inv.snapshots.len(), "runs": inv.runs.len(),
        "wal_bytes": inv.wal_bytes, "total_bytes": inv.total_bytes,
        "newest_snapshot": inv.snapshots.last().map(|s| json!({"as_of": iso(s.as_of), "db_bytes": s.db_bytes, "file_bytes": s.file_bytes})),
        "last_drill": last_drill.as_ref().map(run_view),
    }))
}
