//! Database health targets (connection string sealed), their scheduled checks with the report
//! kept as JSON, statement statistics per check for trends, and `db.finding` domain events for
//! findings and failed verifications that the previous check did not have.

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;

use crate::row::RowExt;
use crate::{events, Result, Store, StoreError};
use lookout_core::time::now_ms;

/// What a target is made of (the URL already sealed).
#[derive(Debug, Clone)]
pub struct NewTarget {
    pub project_id: i64,
    pub name: String,
    pub url_sealed: String,
    pub verify: Option<String>,
    pub interval_seconds: i64,
    pub slow_ms: f64,
    pub slow_calls: i64,
    pub enabled: bool,
}

/// A stored target, with its newest check.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    #[serde(skip)]
    pub url_sealed: String,
    pub verify: Option<String>,
    pub interval_seconds: i64,
    pub slow_ms: f64,
    pub slow_calls: i64,
    pub enabled: bool,
    pub next_check_at: i64,
    pub created_at: i64,
}

/// One check of a target.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    pub id: i64,
    pub target_id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub ok: bool,
    pub error: Option<String>,
    /// `{database, server_version, findings, verifications, slow_queries}`.
    pub report: Option<Value>,
}

/// A statement's figures at one check.
#[derive(Debug, Clone)]
pub struct QueryStat {
    pub queryid: String,
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub rows: i64,
}

const TARGET_COLUMNS: &str = "id, project_id, name, url, verify, interval_seconds, slow_ms, slow_calls, enabled, next_check_at, created_at";

fn target_of(r: &sqlx::any::AnyRow) -> Result<TargetRow> {
    Ok(TargetRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        url_sealed: r.try_get("url")?,
        verify: r.try_get("verify")?,
        interval_seconds: r.try_get("interval_seconds")?,
        slow_ms: r.try_get("slow_ms")?,
        slow_calls: r.try_get("slow_calls")?,
        enabled: r.flag("enabled")?,
        next_check_at: r.try_get("next_check_at")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Creates a target; its scheduled checks start one interval from now (the API checks it at
/// once on its own).
pub async fn create(store: &Store, t: &NewTarget) -> Result<TargetRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&format!(
        "INSERT INTO db_targets (project_id, name, url, verify, interval_seconds, slow_ms, slow_calls, enabled, next_check_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {TARGET_COLUMNS}"
    ))
    .bind(t.project_id)
    .bind(&t.name)
    .bind(&t.url_sealed)
    .bind(t.verify.clone())
    .bind(t.interval_seconds)
    .bind(t.slow_ms)
    .bind(t.slow_calls)
    .bind(i64::from(t.enabled))
    .bind(now + t.interval_seconds * 1000)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a database target with that name exists"))?;
    crate::commit_audited(tx).await?;
    target_of(&row)
}

/// Replaces a target's definition; the next scheduled check is one interval from now.
pub async fn update(store: &Store, id: i64, t: &NewTarget) -> Result<TargetRow> {
    let mut tx = store.begin_write().await?;
    let row = sqlx::query(&format!(
        "UPDATE db_targets SET name = $2, url = $3, verify = $4, interval_seconds = $5, slow_ms = $6,
             slow_calls = $7, enabled = $8, next_check_at = $9
         WHERE id = $1 RETURNING {TARGET_COLUMNS}"
    ))
    .bind(id)
    .bind(&t.name)
    .bind(&t.url_sealed)
    .bind(t.verify.clone())
    .bind(t.interval_seconds)
    .bind(t.slow_ms)
    .bind(t.slow_calls)
    .bind(i64::from(t.enabled))
    .bind(now_ms() + t.interval_seconds * 1000)
    .fetch_optional(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a database target with that name exists"))?
    .ok_or(StoreError::NotFound)?;
    crate::commit_audited(tx).await?;
    target_of(&row)
}

/// Deletes a target with its checks.
pub async fn delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "db_targets", id).await
}

/// One target.
pub async fn get(store: &Store, id: i64) -> Result<TargetRow> {
    let row = sqlx::query(&format!(
        "SELECT {TARGET_COLUMNS} FROM db_targets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    target_of(&row)
}

/// The projects' targets, by name.
pub async fn list(store: &Store, project_ids: &[i64]) -> Result<Vec<TargetRow>> {
    let mut out = Vec::new();
    for &pid in project_ids {
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM db_targets WHERE project_id = $1 ORDER BY name"
        ))
        .bind(pid)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            out.push(target_of(r)?);
        }
    }
    Ok(out)
}

/// Enabled targets due at `now`, most overdue first.
pub async fn due(store: &Store, now: i64, limit: i64) -> Result<Vec<TargetRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {TARGET_COLUMNS} FROM db_targets WHERE enabled = 1 AND next_check_at <= $1
         ORDER BY next_check_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(target_of).collect()
}

/// `(kind, object, severity, detail)` of the problems in a report: findings of warning or worse,
/// and failed verifications.
fn problems(report: &Value) -> Vec<(String, String, String, String)> {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut out: Vec<(String, String, String, String)> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] != "info")
        .map(|f| {
            (
                text(f, "kind"),
                text(f, "object"),
                text(f, "severity"),
                text(f, "detail"),
            )
        })
        .collect();
    out.extend(
        report["verifications"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["passed"] == false)
            .map(|v| {
                (
                    "verification_failed".to_string(),
                    text(v, "name"),
                    "critical".to_string(),
                    text(v, "detail"),
                )
            }),
    );
    out
}

/// Stores a check (its report, or why it failed) with its statement statistics, schedules the
/// next one, and publishes `db.finding` for each problem the previous successful check did not
/// have.
pub async fn record(
    store: &Store,
    target: &TargetRow,
    started_at: i64,
    outcome: std::result::Result<(Value, Vec<QueryStat>), String>,
) -> Result<i64> {
    let duration_ms = now_ms() - started_at;
    let mut tx = store.begin_write().await?;
    let previous: Option<String> = sqlx::query(
        "SELECT report FROM db_checks WHERE target_id = $1 AND ok = 1 ORDER BY id DESC LIMIT 1",
    )
    .bind(target.id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("report"))
    .transpose()?
    .flatten();
    let (ok, error, report, stats) = match &outcome {
        Ok((report, stats)) => (true, None, Some(report.to_string()), stats.as_slice()),
        Err(e) => (false, Some(e.clone()), None, &[][..]),
    };
    let id: i64 = sqlx::query(
        "INSERT INTO db_checks (target_id, started_at, duration_ms, ok, error, report)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(target.id)
    .bind(started_at)
    .bind(duration_ms)
    .bind(i64::from(ok))
    .bind(error)
    .bind(report)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    for q in stats {
        sqlx::query(
            "INSERT INTO db_query_stats (check_id, target_id, at, queryid, query, calls, total_ms, rows_returned)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(target.id)
        .bind(started_at)
        .bind(&q.queryid)
        .bind(&q.query)
        .bind(q.calls)
        .bind(q.total_ms)
        .bind(q.rows)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE db_targets SET next_check_at = $2 WHERE id = $1")
        .bind(target.id)
        .bind(started_at + target.interval_seconds * 1000)
        .execute(&mut *tx)
        .await?;
    if let Ok((report, _)) = &outcome {
        let before: Vec<(String, String)> = previous
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            .map(|p| problems(&p).into_iter().map(|x| (x.0, x.1)).collect())
            .unwrap_or_default();
        let fresh: Vec<crate::Write> = problems(report)
            .into_iter()
            .filter(|p| !before.contains(&(p.0.clone(), p.1.clone())))
            .map(|(kind, object, severity, detail)| {
                events::publish(
                    "db.finding",
                    Some(target.project_id),
                    Some(target.id.to_string()),
                    &json!({"target_id": target.id, "target": target.name, "check_id": id,
                            "kind": kind, "object": object, "severity": severity, "detail": detail}),
                )
            })
            .collect();
        if !fresh.is_empty() {
            events::publish_in_tx(store, &mut tx, &fresh).await?;
        }
    }
    // Thirty days of checks per target.
    sqlx::query("DELETE FROM db_checks WHERE target_id = $1 AND started_at < $2")
        .bind(target.id)
        .bind(started_at - 30 * 86_400_000)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

pub(crate) fn check_of(r: &sqlx::any::AnyRow) -> Result<CheckRow> {
    Ok(CheckRow {
        id: r.try_get("id")?,
        target_id: r.try_get("target_id")?,
        started_at: r.try_get("started_at")?,
        duration_ms: r.try_get("duration_ms")?,
        ok: r.flag("ok")?,
        error: r.try_get("error")?,
        report: r.opt_json("report")?,
    })
}

/// A target's checks, newest first (with their reports when `with_reports`).
pub async fn checks(
    store: &Store,
    target_id: i64,
    limit: i64,
    with_reports: bool,
) -> Result<Vec<CheckRow>> {
    let report = if with_reports {
        "report"
    } else {
        "NULL AS report"
    };
    let rows = sqlx::query(&format!(
        "SELECT id, target_id, started_at, duration_ms, ok, error, {report} FROM db_checks
         WHERE target_id = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(target_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(check_of).collect()
}

/// A statement's snapshots, oldest first: `(at, calls, total_ms)`.
pub type Snapshots = Vec<(i64, i64, f64)>;

/// The statements of a target's newest `checks` checks with their snapshots, for trends.
pub async fn query_history(
    store: &Store,
    target_id: i64,
    since: i64,
) -> Result<Vec<(String, String, Snapshots)>> {
    let rows = sqlx::query(
        "SELECT queryid, query, at, calls, total_ms FROM db_query_stats
         WHERE target_id = $1 AND at >= $2 ORDER BY queryid, at",
    )
    .bind(target_id)
    .bind(since)
    .fetch_all(store.pool())
    .await?;
    let mut out: Vec<(String, String, Snapshots)> = Vec::new();
    for r in &rows {
        let qid: String = r.try_get("queryid")?;
        let snap = (
            r.try_get("at")?,
            r.try_get("calls")?,
            r.try_get("total_ms")?,
        );
        match out.last_mut() {
            Some(last) if last.0 == qid => last.2.push(snap),
            _ => out.push((qid, r.try_get("query")?, vec![snap])),
        }
    }
    Ok(out)
}
