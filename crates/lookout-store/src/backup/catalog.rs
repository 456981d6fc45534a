//! The backup catalogue as rows: pgBackRest targets (with their newest `info` summary) and the
//! history of backups taken and restore drills run, for targets and for Lookout's own backup.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::row::RowExt;
use crate::{delete_by_id, Result, Store, StoreError};
use lookout_core::time::now_ms;

/// The name runs of Lookout's own (SQLite) backup are kept under.
pub const BUILTIN: &str = "lookout";

/// A pgBackRest target as given (the connection string already sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTarget {
    pub name: String,
    pub stanza: String,
    /// pgBackRest's configuration file (default: its own default).
    pub config: Option<String>,
    /// The operating-system user pgBackRest and the drill's PostgreSQL run as (needed when
    /// Lookout runs as root; usually `postgres`).
    pub run_as: Option<String>,
    /// Sealed connection string, read for `pg_stat_archiver` (WAL archive lag).
    #[serde(skip)]
    pub pg_url_sealed: Option<String>,
    /// Directory of PostgreSQL's server programs for drills (`initdb`, `pg_ctl`, `postgres`).
    pub pg_bin: Option<String>,
    pub full_every_hours: i64,
    /// 0: no differential backups.
    pub diff_every_hours: i64,
    /// 0: no scheduled drills.
    pub drill_every_hours: i64,
}

/// A stored target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub id: i64,
    #[serde(flatten)]
    pub spec: NewTarget,
    /// Whether a connection string is stored (it is never shown).
    pub has_pg_url: bool,
    /// The newest `pgbackrest info` summary.
    pub status: Option<Value>,
    pub status_at: Option<i64>,
    pub created_at: i64,
}

/// One backup or drill.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub target: String,
    pub target_id: Option<i64>,
    /// `full`, `diff`, `incr`, `snapshot` or `drill`.
    pub kind: String,
    pub started_at: i64,
    pub duration_ms: i64,
    pub ok: bool,
    pub error: Option<String>,
    pub details: Option<Value>,
}

const TARGET_COLUMNS: &str = "id, name, stanza, config, run_as, pg_url, pg_bin, full_every_hours, diff_every_hours, drill_every_hours, status, status_at, created_at";

fn target_of(r: &sqlx::any::AnyRow) -> Result<TargetRow> {
    let pg_url: Option<String> = r.try_get("pg_url")?;
    let status: Option<String> = r.try_get("status")?;
    Ok(TargetRow {
        id: r.try_get("id")?,
        has_pg_url: pg_url.is_some(),
        spec: NewTarget {
            name: r.try_get("name")?,
            stanza: r.try_get("stanza")?,
            config: r.try_get("config")?,
            run_as: r.try_get("run_as")?,
            pg_url_sealed: pg_url,
            pg_bin: r.try_get("pg_bin")?,
            full_every_hours: r.try_get("full_every_hours")?,
            diff_every_hours: r.try_get("diff_every_hours")?,
            drill_every_hours: r.try_get("drill_every_hours")?,
        },
        status: status.and_then(|s| serde_json::from_str(&s).ok()),
        status_at: r.try_get("status_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Adds a target; `Conflict` when the name is taken.
pub async fn create_target(store: &Store, t: &NewTarget) -> Result<TargetRow> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO backup_targets (name, stanza, config, run_as, pg_url, pg_bin, full_every_hours,
            diff_every_hours, drill_every_hours, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TARGET_COLUMNS}"
    ))
    .bind(&t.name)
    .bind(&t.stanza)
    .bind(&t.config)
    .bind(&t.run_as)
    .bind(&t.pg_url_sealed)
    .bind(&t.pg_bin)
    .bind(t.full_every_hours)
    .bind(t.diff_every_hours)
    .bind(t.drill_every_hours)
    .bind(now_ms())
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a backup target with that name"))?;
    crate::commit_audited(tx).await?;
    target_of(&row)
}

/// Every target, by name.
pub async fn list_targets(store: &Store) -> Result<Vec<TargetRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {TARGET_COLUMNS} FROM backup_targets ORDER BY name"
    ))
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(target_of).collect()
}

/// One target.
pub async fn get_target(store: &Store, id: i64) -> Result<TargetRow> {
    let row = sqlx::query(&format!(
        "SELECT {TARGET_COLUMNS} FROM backup_targets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    target_of(&row)
}

/// Deletes a target and its history.
pub async fn delete_target(store: &Store, id: i64) -> Result<()> {
    delete_by_id(store, "backup_targets", id).await
}

/// Keeps a target's newest `pgbackrest info` summary.
pub async fn set_status(store: &Store, id: i64, status: &Value) -> Result<()> {
    sqlx::query("UPDATE backup_targets SET status = $1, status_at = $2 WHERE id = $3")
        .bind(status.to_string())
        .bind(now_ms())
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// What a finished backup or drill records.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub target: &'a str,
    pub target_id: Option<i64>,
    pub kind: &'a str,
    pub started_at: i64,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub details: Value,
}

/// Records a backup or drill and returns it as stored.
pub async fn record_run(store: &Store, run: &NewRun<'_>) -> Result<RunRow> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO backup_runs (target, target_id, kind, started_at, duration_ms, ok, error, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(run.target)
    .bind(run.target_id)
    .bind(run.kind)
    .bind(run.started_at)
    .bind(run.duration_ms)
    .bind(i64::from(run.error.is_none()))
    .bind(&run.error)
    .bind(run.details.to_string())
    .fetch_one(store.pool())
    .await?;
    Ok(RunRow {
        id,
        target: run.target.to_string(),
        target_id: run.target_id,
        kind: run.kind.to_string(),
        started_at: run.started_at,
        duration_ms: run.duration_ms,
        ok: run.error.is_none(),
        error: run.error.clone(),
        details: Some(run.details.clone()),
    })
}

/// `AND kind IN (…)` for kinds from this crate's callers (fixed words, never user text).
fn kind_clause(kinds: &[&str]) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let list = kinds
        .iter()
        .filter(|k| k.chars().all(|c| c.is_ascii_lowercase()))
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("AND kind IN ({list})")
}

pub(crate) fn run_of(r: &sqlx::any::AnyRow) -> Result<RunRow> {
    let details: Option<String> = r.try_get("details")?;
    Ok(RunRow {
        id: r.try_get("id")?,
        target: r.try_get("target")?,
        target_id: r.try_get("target_id")?,
        kind: r.try_get("kind")?,
        started_at: r.try_get("started_at")?,
        duration_ms: r.try_get("duration_ms")?,
        ok: r.flag("ok")?,
        error: r.try_get("error")?,
        details: details.and_then(|d| serde_json::from_str(&d).ok()),
    })
}

/// The newest runs of `target` (any kind when `kind` is `None`), newest first.
pub async fn runs(
    store: &Store,
    target: &str,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>> {
    let kinds = kind.map(|k| vec![k]).unwrap_or_default();
    let rows = sqlx::query(&format!(
        "SELECT id, target, target_id, kind, started_at, duration_ms, ok, error, details
         FROM backup_runs WHERE target = $1 {} ORDER BY id DESC LIMIT $2",
        kind_clause(&kinds)
    ))
    .bind(target)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(run_of).collect()
}

/// The newest run of `target` of one of `kinds`, successful only when `ok_only`.
pub async fn newest_run(
    store: &Store,
    target: &str,
    kinds: &[&str],
    ok_only: bool,
) -> Result<Option<RunRow>> {
    let row = sqlx::query(&format!(
        "SELECT id, target, target_id, kind, started_at, duration_ms, ok, error, details
         FROM backup_runs WHERE target = $1 {} {} ORDER BY id DESC LIMIT 1",
        kind_clause(kinds),
        if ok_only { "AND ok = 1" } else { "" }
    ))
    .bind(target)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(run_of).transpose()
}

/// The kind of the newest `backup.failed` / `backup.stale` / `backup.ok` event about `target`.
pub async fn last_event_kind(store: &Store, target: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT kind FROM domain_events
         WHERE kind IN ('backup.failed', 'backup.stale', 'backup.ok') AND subject = $1
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(target)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|(k,)| k))
}
