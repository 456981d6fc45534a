//! Load-test runs as reported by `lookout load --report-to`: the key figures as columns (for
//! lists and comparisons), the full summary as JSON (charts, thresholds, checks), and, in the
//! same transaction, the run's baseline-series points and a `load.run.completed` event.

use serde::Serialize;
use serde_json::{json, Value as Json};
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::row::RowExt;
use crate::series::{self, NewPoint};
use crate::{events, Result, Store, StoreError};
use lookout_core::time::now_ms;

/// A run to store.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub project_id: i64,
    pub name: String,
    pub commit: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub passed: bool,
    pub requests: i64,
    pub rps: f64,
    pub p95_ms: f64,
    pub error_rate: f64,
    pub summary: Json,
    pub scenario_file: Option<String>,
}

/// A stored run without its summary (lists).
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub commit: Option<String>,
    pub started_at: i64,
    pub duration_ms: i64,
    pub passed: bool,
    pub requests: i64,
    pub rps: f64,
    pub p95_ms: f64,
    pub error_rate: f64,
    pub created_at: i64,
}

pub(crate) const COLUMNS: &str = "id, project_id, name, commit_sha, started_at, duration_ms, passed, requests, rps, p95_ms, error_rate, created_at";

pub(crate) fn row(r: &sqlx::any::AnyRow) -> Result<RunRow> {
    Ok(RunRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        name: r.try_get("name")?,
        commit: r.try_get("commit_sha")?,
        started_at: r.try_get("started_at")?,
        duration_ms: r.try_get("duration_ms")?,
        passed: r.flag("passed")?,
        requests: r.try_get("requests")?,
        rps: r.try_get("rps")?,
        p95_ms: r.try_get("p95_ms")?,
        error_rate: r.try_get("error_rate")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Stores a run with its series points; returns it as a list row.
pub async fn record(store: &Store, run: &NewRun, points: &[NewPoint]) -> Result<RunRow> {
    let created_at = now_ms();
    let mut tx = store.begin_write().await?;
    let id: i64 = sqlx::query(
        "INSERT INTO load_runs (project_id, name, commit_sha, started_at, duration_ms, passed, requests, rps, p95_ms, error_rate, summary, scenario_file, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(run.project_id)
    .bind(&run.name)
    .bind(run.commit.clone())
    .bind(run.started_at)
    .bind(run.duration_ms)
    .bind(i64::from(run.passed))
    .bind(run.requests)
    .bind(run.rps)
    .bind(run.p95_ms)
    .bind(run.error_rate)
    .bind(run.summary.to_string())
    .bind(run.scenario_file.clone())
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    let points: Vec<NewPoint> = points
        .iter()
        .cloned()
        .map(|mut p| {
            p.source = format!("load_run:{id}");
            p
        })
        .collect();
    for series_id in series::add_in(&mut tx, run.project_id, &points).await? {
        crate::regress::recompute_in(store, &mut tx, series_id).await?;
    }
    let event = events::publish(
        "load.run.completed",
        Some(run.project_id),
        Some(id.to_string()),
        &json!({"name": run.name, "passed": run.passed, "rps": run.rps, "p95_ms": run.p95_ms, "error_rate": run.error_rate}),
    );
    events::publish_in_tx(store, &mut tx, &[event]).await?;
    tx.commit().await?;
    Ok(RunRow {
        id,
        project_id: run.project_id,
        name: run.name.clone(),
        commit: run.commit.clone(),
        started_at: run.started_at,
        duration_ms: run.duration_ms,
        passed: run.passed,
        requests: run.requests,
        rps: run.rps,
        p95_ms: run.p95_ms,
        error_rate: run.error_rate,
        created_at,
    })
}

/// Runs of the given projects, newest first.
pub async fn list(store: &Store, project_ids: &[i64], cursor: &Cursor) -> Result<Page<RunRow>> {
    if project_ids.is_empty() {
        return Ok(Page {
            items: vec![],
            next: None,
        });
    }
    let limit = cursor.limit();
    let before: i64 = cursor.after_i64()?.unwrap_or(i64::MAX);
    let ids: Vec<String> = project_ids.iter().map(i64::to_string).collect();
    // Project ids are integers from the database, never user text.
    let sql = format!(
        "SELECT {COLUMNS} FROM load_runs WHERE project_id IN ({}) AND id < $1 ORDER BY id DESC LIMIT $2",
        ids.join(",")
    );
    let rows = sqlx::query(&sql)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(store.pool())
        .await?;
    let mut items: Vec<RunRow> = rows.iter().map(row).collect::<Result<_>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// One run with its summary and scenario file.
pub async fn get(store: &Store, id: i64) -> Result<(RunRow, Json, Option<String>)> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS}, summary, scenario_file FROM load_runs WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    let summary: String = r.try_get("summary")?;
    Ok((
        row(&r)?,
        serde_json::from_str(&summary).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        r.try_get("scenario_file")?,
    ))
}

/// Deletes a run (its series points stay: they are history of their own).
pub async fn delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "load_runs", id).await
}
