//! User feedback: what users said about an error (`user_report` items and feedback events,
//! normalised at ingest), stored by the processor and listed per issue and per project.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::page::{Cursor, Page};
use crate::{Result, Store};

/// One report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserReport {
    /// Numeric id.
    pub id: i64,
    /// The event it is about, if it named one.
    pub event_id: Option<String>,
    /// That event's issue, if the event is stored.
    pub issue_id: Option<i64>,
    /// The user's name, as given.
    pub name: Option<String>,
    /// The user's email, as given.
    pub email: Option<String>,
    /// What they said.
    pub comments: String,
    /// Received, ms.
    pub created_at: i64,
}

/// Stores a report from the inbox (`{event_id, name, email, comments}`); malformed ones are
/// skipped (ingest checked them).
pub(crate) async fn store(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    received_at: i64,
    payload: &str,
) -> Result<()> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Ok(());
    };
    let s = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let Some(comments) = s("comments") else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO user_reports (project_id, event_id, name, email, comments, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(project_id)
    .bind(s("event_id"))
    .bind(s("name"))
    .bind(s("email"))
    .bind(comments)
    .bind(received_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const COLUMNS: &str = "r.id, r.event_id, e.issue_id, r.name, r.email, r.comments, r.created_at";

fn report(r: &sqlx::any::AnyRow) -> Result<UserReport> {
    Ok(UserReport {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        issue_id: r.try_get("issue_id")?,
        name: r.try_get("name")?,
        email: r.try_get("email")?,
        comments: r.try_get("comments")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Reports about an issue's events, newest first (at most 200).
///
/// Driven from the reports: a project has far fewer reports than a loud issue has events, and
/// SQLite, free to choose, walked every event of the issue looking each one up in the reports
/// (issue 31: 30 ms for an issue of 8,000 events and no report at all).
pub async fn for_issue(store: &Store, issue_id: i64) -> Result<Vec<UserReport>> {
    sqlx::query(
        "SELECT r.id, r.event_id, r.name, r.email, r.comments, r.created_at,
                (SELECT e.issue_id FROM error_events e
                 WHERE e.project_id = r.project_id AND e.event_id = r.event_id) AS issue_id
         FROM user_reports r
         WHERE r.project_id = (SELECT i.project_id FROM issues i WHERE i.id = $1)
           AND EXISTS (SELECT 1 FROM error_events e
                       WHERE e.project_id = r.project_id AND e.event_id = r.event_id AND e.issue_id = $1)
         ORDER BY r.id DESC LIMIT 200",
    )
    .bind(issue_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(report)
    .collect()
}

/// A project's reports, newest first.
pub async fn for_project(
    store: &Store,
    project_id: i64,
    cursor: &Cursor,
) -> Result<Page<UserReport>> {
    let limit = cursor.limit();
    let before = cursor.after_i64()?.unwrap_or(i64::MAX);
    let items = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM user_reports r
         LEFT JOIN error_events e ON e.project_id = r.project_id AND e.event_id = r.event_id
         WHERE r.project_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
    ))
    .bind(project_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(report)
    .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, limit, |r| r.id.to_string()))
}
