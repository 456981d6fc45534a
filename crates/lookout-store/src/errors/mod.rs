//! Error tracking's storage: the ingest inbox, issues and their events.
//!
//! [`process`] turns ingested events into issues; this module answers the questions the API and
//! UI ask: lists of issues with filters and sorting, an issue with its tag breakdowns, its events,
//! one event's JSON, and the status changes and merges users make.

pub mod attachments;
pub mod feedback;
mod group;
pub mod hashes;
pub mod health;
mod prepare;
pub mod process;
pub mod sourcemaps;
pub mod triage;

pub use hashes::{issue_hashes, unmerge, IssueHash};

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::row::RowExt;
use crate::{events, Result, Store, StoreError};

/// An attachment that arrived with an event, size-capped at ingest.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    /// The event it belongs to.
    pub event_id: String,
    /// File name as sent.
    pub filename: String,
    /// MIME type as sent.
    pub content_type: Option<String>,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// An issue as lists show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Issue {
    /// Numeric id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// First event's `Type: value` or message.
    pub title: String,
    /// Where it happens (`module in function`).
    pub culprit: String,
    /// Level of the first event.
    pub level: String,
    /// `unresolved`, `resolved`, `resolved_next_release` or `ignored`.
    pub status: String,
    /// `new`, `ongoing`, `regressed`, `escalating`, or none.
    pub substatus: Option<String>,
    /// Events counted.
    pub count: i64,
    /// Distinct affected users.
    pub user_count: i64,
    /// First event, ms.
    pub first_seen: i64,
    /// Last event, ms.
    pub last_seen: i64,
    /// Release of the first event.
    pub first_release: Option<String>,
    /// Release of the last event.
    pub last_release: Option<String>,
    /// The platform.
    pub platform: String,
    /// Who it is assigned to, if anyone.
    pub assignee: Option<triage::Assignee>,
}

const ISSUE_COLUMNS: &str = "i.id, i.project_id, i.title, i.culprit, i.level, i.status, i.substatus, i.times_seen, i.user_count,
    i.first_seen, i.last_seen, i.first_release, i.last_release, i.platform,
    i.assignee_user_id, i.assignee_team_id,
    (SELECT u.email FROM users u WHERE u.id = i.assignee_user_id) AS assignee_email,
    (SELECT u.name FROM users u WHERE u.id = i.assignee_user_id) AS assignee_name,
    (SELECT t.slug FROM teams t WHERE t.id = i.assignee_team_id) AS assignee_slug,
    (SELECT t.name FROM teams t WHERE t.id = i.assignee_team_id) AS assignee_team_name";

fn issue_from_row(r: &AnyRow) -> Result<Issue> {
    Ok(Issue {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        title: r.try_get("title")?,
        culprit: r.try_get("culprit")?,
        level: r.try_get("level")?,
        status: r.try_get("status")?,
        substatus: r.try_get("substatus")?,
        count: r.try_get("times_seen")?,
        user_count: r.try_get("user_count")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        first_release: r.try_get("first_release")?,
        last_release: r.try_get("last_release")?,
        platform: r.try_get("platform")?,
        assignee: triage::assignee_from_row(r)?,
    })
}

/// How an issue list is filtered and ordered.
#[derive(Debug, Clone, Default)]
pub struct IssueFilter {
    /// Only this status (default: unresolved).
    pub status: Option<String>,
    /// Only issues seen in this environment.
    pub environment: Option<String>,
    /// Only issues seen in this release.
    pub release: Option<String>,
    /// Only issues first seen in this release ("new in this release").
    pub first_release: Option<String>,
    /// Words that must appear in the title or culprit (case-insensitive).
    pub query: Option<String>,
    /// `last_seen` (default), `first_seen`, `events` or `users`; all descending.
    pub sort: Option<String>,
    /// Only issues assigned this way (`assigned:me`, `assigned:#team`, `is:unassigned`).
    pub assigned: Option<triage::AssignedFilter>,
}

/// The statuses an issue can have.
pub const STATUSES: &[&str] = &["unresolved", "resolved", "resolved_next_release", "ignored"];

/// Lists a project's issues, by `f.sort` (newest activity first by default).
///
/// Keyset pages: the cursor is the last row's sort value and id (`value:id`), so a far page costs
/// what the first does (OFFSET read and dropped every row before it). Only the filters asked for
/// become conditions, so each shape of the statement gets its own plan, and text search goes
/// through the trigram index of migration 0031 ([`search_condition`]) instead of reading every
/// issue's title.
pub async fn list_issues(
    store: &Store,
    project_id: i64,
    f: &IssueFilter,
    cursor: &Cursor,
) -> Result<Page<Issue>> {
    let col = match f.sort.as_deref() {
        Some("first_seen") => "first_seen",
        Some("events") => "times_seen",
        Some("users") => "user_count",
        _ => "last_seen",
    };
    let limit = cursor.limit();
    let after = match cursor.after.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            parse_issue_cursor(c)
                .ok_or_else(|| StoreError::BadCursor(c.chars().take(64).collect()))?,
        ),
    };
    let status = match f.status.as_deref() {
        Some("all") => None,
        Some(s) => Some(s.to_string()),
        None => Some("unresolved".to_string()),
    };
    let mut w = Conditions::default();
    let p = w.arg(project_id);
    w.and(format!("i.project_id = {p} AND i.merged_into IS NULL"));
    if let Some(s) = status {
        let p = w.arg(s);
        w.and(format!("i.status = {p}"));
    }
    for (key, value) in [("environment", &f.environment), ("release", &f.release)] {
        if let Some(v) = value {
            let p = w.arg(v.clone());
            w.and(format!(
                "EXISTS (SELECT 1 FROM issue_tags t WHERE t.issue_id = i.id AND t.key = '{key}' AND t.value = {p})"
            ));
        }
    }
    if let Some(r) = &f.first_release {
        let p = w.arg(r.clone());
        w.and(format!("i.first_release = {p}"));
    }
    if let Some(q) = f.query.as_deref().filter(|q| !q.is_empty()) {
        search_condition(store.backend(), &mut w, &q.to_lowercase());
    }
    if let Some(a) = &f.assigned {
        let (sql, id) = triage::filter_sql(Some(a));
        let p = w.arg(id);
        w.and(sql.replace("$9", &p));
    }
    if let Some((v, id)) = after {
        let (pv, pid) = (w.arg(v), w.arg(id));
        // The same as `col < v OR (col = v AND id < pid)`, with the range on its own in front:
        // both planners then start the sort index at the cursor instead of scanning every row
        // before it and filtering (which made a far page cost what OFFSET did).
        w.and(format!(
            "i.{col} <= {pv} AND (i.{col} < {pv} OR i.id < {pid})"
        ));
    }
    let pl = w.arg(limit + 1);
    let sql = format!(
        "SELECT {ISSUE_COLUMNS} FROM issues i WHERE {} ORDER BY i.{col} DESC, i.id DESC LIMIT {pl}",
        w.conds.join(" AND ")
    );
    let mut q = sqlx::query(&sql);
    for v in &w.args {
        q = crate::writer::bind(q, v);
    }
    let rows = q.fetch_all(store.pool()).await?;
    let key = |i: &Issue| {
        let v = match col {
            "first_seen" => i.first_seen,
            "times_seen" => i.count,
            "user_count" => i.user_count,
            _ => i.last_seen,
        };
        format!("{v}:{}", i.id)
    };
    Page::try_from_rows(&rows, limit, issue_from_row, key)
}

/// A cursor of [`list_issues`]: `value:id`.
pub fn parse_issue_cursor(c: &str) -> Option<(i64, i64)> {
    let (v, id) = c.split_once(':')?;
    Some((v.parse().ok()?, id.parse().ok()?))
}

/// The WHERE conditions of a statement and the values they bind, numbered as they are added.
#[derive(Default)]
struct Conditions {
    conds: Vec<String>,
    args: Vec<crate::writer::Value>,
}

impl Conditions {
    /// Binds `v`; its placeholder.
    fn arg(&mut self, v: impl Into<crate::writer::Value>) -> String {
        self.args.push(v.into());
        format!("${}", self.args.len())
    }

    fn and(&mut self, cond: String) {
        self.conds.push(cond);
    }
}

/// Words the title or culprit must contain (`text` lowercased), as conditions on `i`.
///
/// The trigram index (FTS5 on SQLite, pg_trgm on PostgreSQL; migration 0031) narrows the issues
/// to those holding every trigram of the text; the LIKE then keeps exactly what it always
/// matched. Text under three characters has no trigram: it is matched by the LIKE alone, which
/// stops after one page of hits in the list's order.
fn search_condition(backend: crate::Backend, w: &mut Conditions, text: &str) {
    let like = w.arg(crate::like_contains(text));
    if text.chars().count() >= 3 {
        match backend {
            crate::Backend::Sqlite => {
                // An FTS5 phrase: the text quoted, its quotes doubled, so nothing in it is syntax.
                let p = w.arg(format!("\"{}\"", text.replace('"', "\"\"")));
                w.and(format!(
                    "i.id IN (SELECT rowid FROM issues_fts WHERE issues_fts MATCH {p})"
                ));
            }
            crate::Backend::Postgres => {
                w.and(format!(
                    "i.id IN (SELECT issue_id FROM issues_fts WHERE text LIKE {like} ESCAPE '\\')"
                ));
            }
        }
    }
    w.and(format!(
        "(LOWER(i.title) LIKE {like} ESCAPE '\\' OR LOWER(i.culprit) LIKE {like} ESCAPE '\\')"
    ));
}

/// One issue (following merges is the caller's business: a merged issue answers as itself).
pub async fn get_issue(store: &Store, id: i64) -> Result<Issue> {
    let row = sqlx::query(&format!(
        "SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    issue_from_row(&row)
}

/// One value of a tag and how often it was seen.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TagValue {
    /// The value.
    pub value: String,
    /// Events with it.
    pub count: i64,
    /// Last seen, ms.
    pub last_seen: i64,
}

/// An issue's tag breakdowns: for each key, its values by count (top 10).
pub async fn issue_tags(store: &Store, id: i64) -> Result<Vec<(String, Vec<TagValue>)>> {
    let rows = sqlx::query("SELECT key, value, times_seen, last_seen FROM issue_tags WHERE issue_id = $1 ORDER BY key, times_seen DESC, value")
        .bind(id)
        .fetch_all(store.pool())
        .await?;
    let mut out: Vec<(String, Vec<TagValue>)> = Vec::new();
    for r in &rows {
        let key: String = r.try_get("key")?;
        let v = TagValue {
            value: r.try_get("value")?,
            count: r.try_get("times_seen")?,
            last_seen: r.try_get("last_seen")?,
        };
        match out.last_mut() {
            Some((k, vals)) if *k == key => {
                if vals.len() < 10 {
                    vals.push(v);
                }
            }
            _ => out.push((key, vec![v])),
        }
    }
    Ok(out)
}

/// A status change a user asks for.
#[derive(Debug, Clone)]
pub enum StatusChange {
    /// Back to unresolved.
    Unresolve,
    /// Resolved now: any new event regresses it.
    Resolve,
    /// Resolved in the next release: events from the current release are expected.
    ResolveInNextRelease,
    /// Ignored forever, until a time (ms), or until this many more events.
    Ignore {
        /// Until when, ms since the epoch.
        until: Option<i64>,
        /// Until this many more events.
        more_events: Option<i64>,
    },
}

/// Changes an issue's status and announces it (`issue.resolved`, `issue.ignored`, …).
pub async fn set_status(store: &Store, id: i64, change: StatusChange) -> Result<Issue> {
    let issue = get_issue(store, id).await?;
    let mut tx = store.begin_write().await?;
    let ann = set_status_in(&mut tx, &issue, change).await?;
    events::publish_in_tx(store, &mut tx, &[ann]).await?;
    tx.commit().await?;
    get_issue(store, id).await
}

/// [`set_status`] inside a transaction; the announcement to publish with it.
pub(crate) async fn set_status_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    issue: &Issue,
    change: StatusChange,
) -> Result<crate::writer::Write> {
    let id = issue.id;
    let (status, event) = match &change {
        StatusChange::Unresolve => ("unresolved", "issue.unresolved"),
        StatusChange::Resolve => ("resolved", "issue.resolved"),
        StatusChange::ResolveInNextRelease => ("resolved_next_release", "issue.resolved"),
        StatusChange::Ignore { .. } => ("ignored", "issue.ignored"),
    };
    let (until, until_count) = match change {
        StatusChange::Ignore { until, more_events } => {
            (until, more_events.map(|n| issue.count + n))
        }
        _ => (None, None),
    };
    let resolved_in = matches!(change, StatusChange::ResolveInNextRelease)
        .then(|| issue.last_release.clone())
        .flatten();
    sqlx::query(
        "UPDATE issues SET status = $1, substatus = NULL, resolved_in_release = $2, ignore_until = $3, ignore_until_count = $4 WHERE id = $5",
    )
    .bind(status)
    .bind(resolved_in)
    .bind(until)
    .bind(until_count)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(events::publish(
        event,
        Some(issue.project_id),
        Some(id.to_string()),
        &json!({ "issue_id": id, "status": status }),
    ))
}

/// Merges `others` into `target`: their hashes and events move, counts are recomputed, and the
/// merged issues point at the target (a later event for one of their hashes lands in the target).
pub async fn merge(store: &Store, target: i64, others: &[i64]) -> Result<Issue> {
    let t = get_issue(store, target).await?;
    let mut tx = store.begin_write().await?;
    for &o in others.iter().filter(|o| **o != target) {
        let other =
            sqlx::query("SELECT project_id FROM issues WHERE id = $1 AND merged_into IS NULL")
                .bind(o)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let pid: i64 = other.try_get("project_id")?;
        if pid != t.project_id {
            return Err(StoreError::Conflict("an issue of another project".into()));
        }
        for sql in [
            "UPDATE issue_hashes SET issue_id = $1 WHERE issue_id = $2",
            "UPDATE error_events SET issue_id = $1 WHERE issue_id = $2",
            "INSERT INTO issue_users (issue_id, user_key) SELECT $1, user_key FROM issue_users WHERE issue_id = $2 ON CONFLICT DO NOTHING",
            "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen)
               SELECT $1, key, value, times_seen, first_seen, last_seen FROM issue_tags WHERE issue_id = $2
               ON CONFLICT (issue_id, key, value) DO UPDATE SET times_seen = issue_tags.times_seen + excluded.times_seen",
            "UPDATE issues SET merged_into = $1 WHERE id = $2",
        ] {
            sqlx::query(sql).bind(target).bind(o).execute(&mut *tx).await?;
        }
    }
    refresh_counts(&mut tx, target).await?;
    let ann = events::publish(
        "issue.merged",
        Some(t.project_id),
        Some(target.to_string()),
        &json!({ "issue_id": target, "merged": others }),
    );
    events::publish_in_tx(store, &mut tx, &[ann]).await?;
    tx.commit().await?;
    get_issue(store, target).await
}

/// An event as lists show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventSummary {
    /// 32-hex event id.
    pub event_id: String,
    /// The issue.
    pub issue_id: i64,
    /// When it happened, ms.
    pub timestamp: i64,
    /// Level.
    pub level: String,
    /// Release.
    pub release: Option<String>,
    /// Environment.
    pub environment: String,
    /// Title as sent.
    pub title: String,
}

/// An issue's events, newest first (cursor: the internal row id).
pub async fn issue_events(
    store: &Store,
    issue_id: i64,
    cursor: &Cursor,
) -> Result<Page<(i64, EventSummary)>> {
    let limit = cursor.limit();
    let rows = sqlx::query(
        "SELECT id, event_id, issue_id, timestamp, level, release, environment, title FROM error_events
         WHERE issue_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(issue_id)
    .bind(cursor.after_i64()?.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(
        &rows,
        limit,
        |r| {
            Ok::<_, StoreError>((
                r.try_get::<i64, _>("id")?,
                EventSummary {
                    event_id: r.try_get("event_id")?,
                    issue_id: r.try_get("issue_id")?,
                    timestamp: r.try_get("timestamp")?,
                    level: r.try_get("level")?,
                    release: r.try_get("release")?,
                    environment: r.try_get("environment")?,
                    title: r.try_get("title")?,
                },
            ))
        },
        |(id, _)| id.to_string(),
    )
}

/// One stored event: its summary, normalised JSON, and its neighbours in the issue.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: EventSummary,
    /// The normalised event JSON.
    pub body: Value,
    /// The next older event of the same issue.
    pub previous_event_id: Option<String>,
    /// The next newer event of the same issue.
    pub next_event_id: Option<String>,
}

/// One event of a project by its event id (dashed or not).
pub async fn get_event(store: &Store, project_id: i64, event_id: &str) -> Result<StoredEvent> {
    let id = lookout_protocol::event::normalize_id(event_id).ok_or(StoreError::NotFound)?;
    let r = sqlx::query(
        "SELECT id, event_id, issue_id, timestamp, level, release, environment, title, body FROM error_events
         WHERE project_id = $1 AND event_id = $2",
    )
    .bind(project_id)
    .bind(&id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    let row_id: i64 = r.try_get("id")?;
    let issue_id: i64 = r.try_get("issue_id")?;
    let neighbour = |sql: &'static str| async move {
        let n = sqlx::query(sql)
            .bind(issue_id)
            .bind(row_id)
            .fetch_optional(store.pool())
            .await?;
        Ok::<_, StoreError>(n.map(|n| n.try_get::<String, _>("event_id")).transpose()?)
    };
    Ok(StoredEvent {
        summary: EventSummary {
            event_id: r.try_get("event_id")?,
            issue_id,
            timestamp: r.try_get("timestamp")?,
            level: r.try_get("level")?,
            release: r.try_get("release")?,
            environment: r.try_get("environment")?,
            title: r.try_get("title")?,
        },
        body: r.json("body")?,
        previous_event_id: neighbour("SELECT event_id FROM error_events WHERE issue_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1").await?,
        next_event_id: neighbour("SELECT event_id FROM error_events WHERE issue_id = $1 AND id > $2 ORDER BY id LIMIT 1").await?,
    })
}

/// Client-report totals of a project: (reason, category, quantity).
pub async fn client_reports(store: &Store, project_id: i64) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query("SELECT reason, category, quantity FROM client_report_counts WHERE project_id = $1 ORDER BY reason, category")
        .bind(project_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("reason")?,
                r.try_get("category")?,
                r.try_get("quantity")?,
            ))
        })
        .collect()
}

/// Items of one kind waiting in the inbox (or all) — for tests and the UI's ingest status.
pub async fn inbox_count(store: &Store, project_id: i64, kind: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM ingest_items WHERE project_id = $1 AND kind = $2")
            .bind(project_id)
            .bind(kind)
            .fetch_one(store.pool())
            .await?
            .try_get("n")?,
    )
}

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Error events past a project's age or count limit.
    pub events: u64,
    /// Issues with no event left inside the retention window.
    pub issues: u64,
    /// Inbox items already grouped, or past the retention age.
    pub inbox_items: u64,
}

/// Enforces every project's retention: events older than `retention_days` or beyond the newest
/// `max_events` go, then issues not seen within the window, attachments and old inbox items.
/// Inbox items the error processor has already grouped are deleted right away: their content
/// lives on in `error_events`. This is what keeps the disk bounded.
pub async fn enforce_retention(store: &Store) -> Result<RetentionReport> {
    let now = lookout_core::time::now_ms();
    let mut report = RetentionReport::default();
    let projects = sqlx::query("SELECT id, retention_days, max_events FROM projects")
        .fetch_all(store.pool())
        .await?;
    for p in &projects {
        let (id, days, max): (i64, i64, i64) = (
            p.try_get("id")?,
            p.try_get("retention_days")?,
            p.try_get("max_events")?,
        );
        let cutoff = now - days.max(1) * 86_400_000;
        report.events +=
            sqlx::query("DELETE FROM error_events WHERE project_id = $1 AND timestamp < $2")
                .bind(id)
                .bind(cutoff)
                .execute(store.pool())
                .await?
                .rows_affected();
        // Over the cap: delete everything older than the max_events-th newest event.
        report.events += sqlx::query(
            "DELETE FROM error_events WHERE project_id = $1 AND id <= (
                 SELECT id FROM error_events WHERE project_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(id)
        .bind(max.max(0))
        .execute(store.pool())
        .await?
        .rows_affected();
        report.issues += sqlx::query("DELETE FROM issues WHERE project_id = $1 AND last_seen < $2")
            .bind(id)
            .bind(cutoff)
            .execute(store.pool())
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM attachments WHERE project_id = $1 AND created_at < $2")
            .bind(id)
            .bind(cutoff)
            .execute(store.pool())
            .await?;
        report.inbox_items +=
            sqlx::query("DELETE FROM ingest_items WHERE project_id = $1 AND received_at < $2")
                .bind(id)
                .bind(cutoff)
                .execute(store.pool())
                .await?
                .rows_affected();
    }
    let grouped_up_to = crate::cursor::position(store, process::CURSOR).await?;
    report.inbox_items += sqlx::query(
        "DELETE FROM ingest_items WHERE kind IN ('event', 'client_report') AND seq <= $1",
    )
    .bind(grouped_up_to)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(report)
}

/// Events per bucket for each of `issue_ids` since `since` (for sparklines): (issue, bucket start, count).
pub async fn issue_histograms(
    store: &Store,
    issue_ids: &[i64],
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<(i64, i64, i64)>> {
    if issue_ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = issue_ids.iter().map(i64::to_string).collect();
    // The ids are integers from our own query, so inlining them is safe and keeps one statement.
    let sql = format!(
        "SELECT issue_id, (timestamp / $2) * $2 AS bucket, COUNT(*) AS n FROM error_events
         WHERE issue_id IN ({}) AND timestamp >= $1 GROUP BY issue_id, bucket",
        list.join(", ")
    );
    let rows = sqlx::query(&sql)
        .bind(since)
        .bind(bucket_ms)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("issue_id")?,
                r.try_get("bucket")?,
                r.try_get("n")?,
            ))
        })
        .collect()
}

/// How many of a project's most recently seen issues the filter menus look at.
const TAG_MENU_ISSUES: i64 = 250;

/// The values of a tag in a project's recently seen issues (for filter menus), most frequent
/// first.
///
/// Bounded: the [`TAG_MENU_ISSUES`] issues seen last, not every issue the project ever had,
/// which made the Errors page read every tag row of every issue on each load (55 ms at 30,000
/// issues, issue 31). The menu offers what is happening now; a value only old issues carry can
/// still be filtered on by URL.
pub async fn project_tag_values(store: &Store, project_id: i64, key: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT t.value FROM issue_tags t
         WHERE t.key = $2 AND t.issue_id IN (
             SELECT i.id FROM issues i WHERE i.project_id = $1
             ORDER BY i.last_seen DESC LIMIT $3)
         GROUP BY t.value ORDER BY SUM(t.times_seen) DESC, t.value LIMIT 50",
    )
    .bind(project_id)
    .bind(key)
    .bind(TAG_MENU_ISSUES)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("value")?)).collect()
}

/// Recomputes an issue's event count, user count and first/last seen from its stored events and
/// users (after a merge or an unmerge moved them).
pub(crate) async fn refresh_counts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    issue: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE issues SET
            times_seen = (SELECT COUNT(*) FROM error_events WHERE issue_id = $1),
            user_count = (SELECT COUNT(*) FROM issue_users WHERE issue_id = $1),
            first_seen = COALESCE((SELECT MIN(timestamp) FROM error_events WHERE issue_id = $1), first_seen),
            last_seen = COALESCE((SELECT MAX(timestamp) FROM error_events WHERE issue_id = $1), last_seen)
         WHERE id = $1",
    )
    .bind(issue)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
