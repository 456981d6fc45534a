//! Cron check-ins: what the watched jobs reported, waiting for the shard runner to judge them.
//!
//! A check-in row is created by the first report of a run (`in_progress`, or a terminal status
//! sent alone) and completed by the terminal one with the same `check_in_id`. The runner turns
//! each finished (or timed-out) run into one result and sets `recorded`, in the same commit.

use sqlx::{Any, Row, Transaction};

use crate::writer::Write;
use crate::{Result, Store};

/// One reported run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckIn {
    /// Row id.
    pub id: i64,
    /// The SDK's id for the run.
    pub check_in_id: String,
    /// `in_progress`, `ok`, `error`, `timeout` or `missed`.
    pub status: String,
    /// When the run started, ms.
    pub started_at: i64,
    /// When it finished, ms.
    pub finished_at: Option<i64>,
    /// Reported duration, ms.
    pub duration_ms: Option<i64>,
    /// Environment.
    pub environment: Option<String>,
}

/// Applies one report inside `tx`: opens the run or completes it. A terminal report for a run
/// that already finished is ignored (SDKs retry).
#[allow(clippy::too_many_arguments)]
pub async fn apply_report(
    tx: &mut Transaction<'static, Any>,
    monitor_id: i64,
    check_in_id: &str,
    status: &str,
    at: i64,
    duration_ms: Option<i64>,
    environment: Option<&str>,
) -> Result<()> {
    let terminal = status != "in_progress";
    let existing = sqlx::query(
        "SELECT id, status FROM cron_checkins WHERE monitor_id = $1 AND check_in_id = $2",
    )
    .bind(monitor_id)
    .bind(check_in_id)
    .fetch_optional(&mut **tx)
    .await?;
    match existing {
        None => {
            let started = if terminal {
                at - duration_ms.unwrap_or(0)
            } else {
                at
            };
            sqlx::query(
                "INSERT INTO cron_checkins (monitor_id, check_in_id, status, started_at, finished_at, duration_ms, environment)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(monitor_id)
            .bind(check_in_id)
            .bind(status)
            .bind(started)
            .bind(terminal.then_some(at))
            .bind(duration_ms)
            .bind(environment)
            .execute(&mut **tx)
            .await?;
        }
        Some(r) => {
            let old: String = r.try_get("status")?;
            if terminal && old == "in_progress" {
                sqlx::query(
                    "UPDATE cron_checkins SET status = $1, finished_at = $2,
                            duration_ms = COALESCE($3, $2 - started_at) WHERE id = $4",
                )
                .bind(status)
                .bind(at)
                .bind(duration_ms)
                .bind(r.try_get::<i64, _>("id")?)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<CheckIn> {
    Ok(CheckIn {
        id: r.try_get("id")?,
        check_in_id: r.try_get("check_in_id")?,
        status: r.try_get("status")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        duration_ms: r.try_get("duration_ms")?,
        environment: r.try_get("environment")?,
    })
}

/// Runs not yet turned into results, oldest first.
pub async fn unrecorded(store: &Store, monitor_id: i64) -> Result<Vec<CheckIn>> {
    sqlx::query(
        "SELECT id, check_in_id, status, started_at, finished_at, duration_ms, environment FROM cron_checkins
         WHERE monitor_id = $1 AND recorded = 0 ORDER BY started_at",
    )
    .bind(monitor_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Whether any run started in `[from, to]`.
pub async fn started_between(store: &Store, monitor_id: i64, from: i64, to: i64) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM cron_checkins WHERE monitor_id = $1 AND started_at >= $2 AND started_at <= $3 LIMIT 1",
    )
    .bind(monitor_id)
    .bind(from)
    .bind(to)
    .fetch_optional(store.pool())
    .await?
    .is_some())
}

/// The write that marks a run judged, with its final status (`timeout` for overdue runs).
pub fn recorded_write(id: i64, status: &str) -> Write {
    Write::Exec {
        sql: "UPDATE cron_checkins SET recorded = 1, status = $1 WHERE id = $2",
        args: vec![status.into(), id.into()],
    }
}

/// The write that records a missed run (no check-in within the margin).
pub fn missed_write(monitor_id: i64, slot: i64) -> Write {
    Write::Insert {
        table: "cron_checkins",
        columns: &[
            "monitor_id",
            "check_in_id",
            "status",
            "started_at",
            "recorded",
        ],
        values: vec![
            monitor_id.into(),
            format!("missed-{slot}").into(),
            "missed".into(),
            slot.into(),
            1i64.into(),
        ],
    }
}

/// A monitor's newest runs.
pub async fn recent(store: &Store, monitor_id: i64, limit: i64) -> Result<Vec<CheckIn>> {
    sqlx::query(
        "SELECT id, check_in_id, status, started_at, finished_at, duration_ms, environment FROM cron_checkins
         WHERE monitor_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(monitor_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(from_row)
    .collect()
}
