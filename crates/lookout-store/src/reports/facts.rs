//! The reads reports are built from, each over a period `[since, until)` in ms: error activity
//! per issue, domain events of a kind, monitors' state changes and check counts, incidents and
//! their timeline kinds, load-test runs, database checks. Figures are computed from these by
//! the server's reports module; nothing here interprets them.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use sqlx::Row;

use crate::alerting::incidents::{self, IncidentRow};
use crate::dbhealth::CheckRow;
use crate::load::RunRow;
use crate::row::RowExt;
use crate::{Result, Store};

/// An issue's activity in a period and the one before it.
#[derive(Debug, Clone)]
pub struct IssueActivity {
    pub id: i64,
    pub project_id: i64,
    pub title: String,
    pub level: String,
    pub status: String,
    pub first_seen: i64,
    /// Events in the period.
    pub events: i64,
    /// Distinct users in the period.
    pub users: i64,
    /// Events in the previous period.
    pub events_previous: i64,
}

/// Every issue of `projects` with events in `[prev_since, until)`, with its counts in
/// `[since, until)` and `[prev_since, since)`. Events are counted by their own timestamp.
pub async fn issue_activity(
    store: &Store,
    projects: &[i64],
    prev_since: i64,
    since: i64,
    until: i64,
) -> Result<Vec<IssueActivity>> {
    let mut out = Vec::new();
    for &p in projects {
        let rows = sqlx::query(
            "SELECT i.id, i.project_id, i.title, i.level, i.status, i.first_seen,
                    CAST(SUM(CASE WHEN e.timestamp >= $2 THEN 1 ELSE 0 END) AS BIGINT) AS events_now,
                    CAST(COUNT(DISTINCT CASE WHEN e.timestamp >= $2 THEN e.user_key END) AS BIGINT) AS users_now,
                    CAST(SUM(CASE WHEN e.timestamp < $2 THEN 1 ELSE 0 END) AS BIGINT) AS events_before
             FROM error_events e JOIN issues i ON i.id = e.issue_id
             WHERE e.project_id = $1 AND e.timestamp >= $3 AND e.timestamp < $4
             GROUP BY i.id, i.project_id, i.title, i.level, i.status, i.first_seen",
        )
        .bind(p)
        .bind(since)
        .bind(prev_since)
        .bind(until)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            out.push(IssueActivity {
                id: r.try_get("id")?,
                project_id: r.try_get("project_id")?,
                title: r.try_get("title")?,
                level: r.try_get("level")?,
                status: r.try_get("status")?,
                first_seen: r.try_get("first_seen")?,
                events: r.try_get("events_now")?,
                users: r.try_get("users_now")?,
                events_previous: r.try_get("events_before")?,
            });
        }
    }
    Ok(out)
}

/// A domain event, as reports read it.
#[derive(Debug, Clone)]
pub struct EventFact {
    pub kind: String,
    pub project_id: Option<i64>,
    pub subject: Option<String>,
    pub payload: Json,
    pub at: i64,
}

/// Domain events of `kinds` published in `[since, until)`, oldest first.
pub async fn events(
    store: &Store,
    kinds: &[&str],
    since: i64,
    until: i64,
) -> Result<Vec<EventFact>> {
    let mut out = Vec::new();
    for kind in kinds {
        let rows = sqlx::query(
            "SELECT kind, project_id, subject, payload, created_at FROM domain_events
             WHERE kind = $1 AND created_at >= $2 AND created_at < $3 ORDER BY seq",
        )
        .bind(*kind)
        .bind(since)
        .bind(until)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            let payload: String = r.try_get("payload")?;
            out.push(EventFact {
                kind: r.try_get("kind")?,
                project_id: r.try_get("project_id")?,
                subject: r.try_get("subject")?,
                payload: serde_json::from_str(&payload).unwrap_or(Json::Null),
                at: r.try_get("created_at")?,
            });
        }
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}

/// A monitor's health changes that matter for `[since, until)`: the last one before `since`
/// (the state the period starts in) and every one inside it, oldest first, as `(at, to_health)`.
pub async fn monitor_changes(
    store: &Store,
    monitor_id: i64,
    since: i64,
    until: i64,
) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    if let Some(r) = sqlx::query(
        "SELECT at, to_health FROM monitor_changes WHERE monitor_id = $1 AND at < $2
         ORDER BY at DESC, id DESC LIMIT 1",
    )
    .bind(monitor_id)
    .bind(since)
    .fetch_optional(store.pool())
    .await?
    {
        out.push((r.try_get("at")?, r.try_get("to_health")?));
    }
    for r in sqlx::query(
        "SELECT at, to_health FROM monitor_changes WHERE monitor_id = $1 AND at >= $2 AND at < $3
         ORDER BY at, id",
    )
    .bind(monitor_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?
    {
        out.push((r.try_get("at")?, r.try_get("to_health")?));
    }
    Ok(out)
}

/// Passing and failing checks of a monitor in `[since, until)`, as the uptime pages count them.
pub use crate::uptime::results::counts_between as check_counts;

/// Every monitor of the organization: `(id, name, kind, paused)`.
pub async fn monitors(store: &Store, org_id: i64) -> Result<Vec<(i64, String, String, bool)>> {
    let rows =
        sqlx::query("SELECT id, name, kind, paused FROM monitors WHERE org_id = $1 ORDER BY id")
            .bind(org_id)
            .fetch_all(store.pool())
            .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("name")?,
                r.try_get("kind")?,
                r.flag("paused")?,
            ))
        })
        .collect()
}

/// Incidents of the organization opened in `[since, until)`, oldest first.
pub async fn incidents_opened(
    store: &Store,
    org_id: i64,
    since: i64,
    until: i64,
) -> Result<Vec<IncidentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM incidents WHERE org_id = $1 AND created_at >= $2 AND created_at < $3 ORDER BY created_at, id",
        incidents::COLS
    ))
    .bind(org_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(incidents::row).collect()
}

/// The timeline of the incidents opened in `[since, until)`: per incident, its entries as
/// `(kind, actor)`, in order.
pub async fn incident_log_kinds(
    store: &Store,
    org_id: i64,
    since: i64,
    until: i64,
) -> Result<BTreeMap<i64, Vec<(String, String)>>> {
    let rows = sqlx::query(
        "SELECT l.incident_id, l.kind, l.actor FROM incident_log l JOIN incidents i ON i.id = l.incident_id
         WHERE i.org_id = $1 AND i.created_at >= $2 AND i.created_at < $3 ORDER BY l.incident_id, l.id",
    )
    .bind(org_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    let mut out: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    for r in &rows {
        out.entry(r.try_get("incident_id")?)
            .or_default()
            .push((r.try_get("kind")?, r.try_get("actor")?));
    }
    Ok(out)
}

/// Load-test runs of `projects` started in `[since, until)`, oldest first.
pub async fn load_runs(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
) -> Result<Vec<RunRow>> {
    let mut out = Vec::new();
    for &p in projects {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM load_runs WHERE project_id = $1 AND started_at >= $2 AND started_at < $3 ORDER BY started_at",
            crate::load::COLUMNS
        ))
        .bind(p)
        .bind(since)
        .bind(until)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            out.push(crate::load::row(r)?);
        }
    }
    out.sort_by_key(|r| r.started_at);
    Ok(out)
}

/// A database target's first and newest successful checks in `[since, until)`, with reports.
pub async fn db_checks_span(
    store: &Store,
    target_id: i64,
    since: i64,
    until: i64,
) -> Result<(Option<CheckRow>, Option<CheckRow>)> {
    let mut ends = Vec::new();
    for order in ["ASC", "DESC"] {
        let row = sqlx::query(&format!(
            "SELECT id, target_id, started_at, duration_ms, ok, error, report FROM db_checks
             WHERE target_id = $1 AND ok = 1 AND started_at >= $2 AND started_at < $3
             ORDER BY started_at {order}, id {order} LIMIT 1"
        ))
        .bind(target_id)
        .bind(since)
        .bind(until)
        .fetch_optional(store.pool())
        .await?;
        ends.push(row.as_ref().map(crate::dbhealth::check_of).transpose()?);
    }
    let newest = ends.pop().flatten();
    let first = ends.pop().flatten();
    Ok((first, newest))
}

/// Backups and drills of `target` (`lookout` or a target's name) started in `[since, until)`:
/// `(runs, failed)`.
pub async fn backup_run_counts(
    store: &Store,
    target: &str,
    since: i64,
    until: i64,
) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS runs,
                CAST(COALESCE(SUM(CASE WHEN ok = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed
         FROM backup_runs WHERE target = $1 AND started_at >= $2 AND started_at < $3",
    )
    .bind(target)
    .bind(since)
    .bind(until)
    .fetch_one(store.pool())
    .await?;
    Ok((r.try_get("runs")?, r.try_get("failed")?))
}

/// The newest run of `target` of one of `kinds` that started before `until`.
pub async fn newest_backup_run_before(
    store: &Store,
    target: &str,
    kinds: &[&str],
    until: i64,
) -> Result<Option<crate::backup::catalog::RunRow>> {
    let mut newest: Option<crate::backup::catalog::RunRow> = None;
    for kind in kinds {
        let row = sqlx::query(
            "SELECT id, target, target_id, kind, started_at, duration_ms, ok, error, details FROM backup_runs
             WHERE target = $1 AND kind = $2 AND started_at < $3 ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(target)
        .bind(*kind)
        .bind(until)
        .fetch_optional(store.pool())
        .await?;
        if let Some(r) = row {
            let run = crate::backup::catalog::run_of(&r)?;
            if newest
                .as_ref()
                .is_none_or(|n| run.started_at > n.started_at)
            {
                newest = Some(run);
            }
        }
    }
    Ok(newest)
}

/// Every target name that has backup runs (the built-in `lookout` among them once it ran).
pub async fn backup_targets_with_runs(store: &Store) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT target FROM backup_runs ORDER BY target")
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| Ok(r.try_get("target")?)).collect()
}
