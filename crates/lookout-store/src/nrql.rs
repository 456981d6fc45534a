//! The stored events NRQL reads when the rollups cannot answer: error events, logs, metric
//! points, uptime check results and benchmark points, each in a window of time for a set of
//! projects, oldest first. (Spans come from [`crate::apm::query::scan_each`], load-test runs
//! from [`crate::reports::facts::load_runs`].)
//!
//! Rows are handed to `visit` one at a time as the database streams them, never collected: the
//! query executor folds each into its aggregates before the next is read, so a query's memory
//! is its answer's state, not its window's events. The first error `visit` returns (a deadline,
//! a memory budget) stops the scan and is returned.

use futures_util::TryStreamExt as _;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError};

/// One error event with its project's slug.
#[derive(Debug, Clone)]
pub struct ErrorEventRow {
    /// When it happened (the SDK's time), ms.
    pub timestamp: i64,
    pub project_id: i64,
    pub issue_id: i64,
    /// The SDK's event id.
    pub event_id: String,
    pub level: String,
    pub release: Option<String>,
    pub environment: String,
    /// The user the event was sent for (id, email, username or IP).
    pub user_key: Option<String>,
    /// `Class: message`.
    pub title: String,
    pub project_slug: String,
}

/// One log record.
#[derive(Debug, Clone)]
pub struct LogRow {
    /// When it was logged, ns.
    pub time_ns: i64,
    pub service: String,
    pub severity: String,
    pub body: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Its attributes, a JSON object.
    pub attributes: String,
}

/// One metric series' value in one minute.
#[derive(Debug, Clone)]
pub struct MetricPointRow {
    /// The minute's start, ms.
    pub minute: i64,
    pub name: String,
    pub service: String,
    /// The series' attributes, a JSON object.
    pub attributes: String,
    /// `gauge`, `sum` or a distribution kind.
    pub kind: String,
    pub unit: String,
    pub count: f64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A gauge's newest value in the minute.
    pub last: Option<f64>,
}

/// One uptime check result with its monitor.
#[derive(Debug, Clone)]
pub struct CheckResultRow {
    /// When the check ran, ms.
    pub at: i64,
    pub monitor_id: i64,
    pub monitor_name: String,
    /// The monitor's kind (`http`, `tcp`, `cron`, …).
    pub kind: String,
    pub ok: bool,
    /// Whether it ran inside a maintenance window.
    pub maintenance: bool,
    pub latency_us: Option<i64>,
    /// Why it failed, or what it saw.
    pub message: Option<String>,
}

/// One benchmark (baseline series) point with its series.
#[derive(Debug, Clone)]
pub struct BenchmarkPointRow {
    /// When it was measured, ms.
    pub at: i64,
    pub name: String,
    /// The series' tags, a JSON object.
    pub tags: String,
    pub unit: String,
    pub value: f64,
    pub commit: Option<String>,
    pub version: Option<String>,
    pub build: Option<String>,
}

/// `projects` as a SQL list. Project ids are integers from the database, never user text, and
/// a list of them cannot be bound as one parameter on both backends.
fn ids(projects: &[i64]) -> String {
    projects
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `sql` with `$1` = since and `$2` = until, streaming its rows: each is read by `read`
/// and goes to `visit` before the next is fetched.
async fn each<T, E: From<StoreError>>(
    store: &Store,
    sql: &str,
    (since, until): (i64, i64),
    read: fn(&AnyRow) -> Result<T, sqlx::Error>,
    mut visit: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let mut found = sqlx::query(sql).bind(since).bind(until).fetch(store.pool());
    while let Some(r) = found.try_next().await.map_err(StoreError::from)? {
        visit(read(&r).map_err(StoreError::from)?)?;
    }
    Ok(())
}

/// Error events of `projects` that happened in `[since, until)` (ms).
pub async fn error_events<E: From<StoreError>>(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
    visit: impl FnMut(ErrorEventRow) -> Result<(), E>,
) -> Result<(), E> {
    if projects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT e.timestamp, e.project_id, e.issue_id, e.event_id, e.level, e.release, e.environment,
                e.user_key, e.title, p.slug AS project_slug
         FROM error_events e JOIN projects p ON p.id = e.project_id
         WHERE e.project_id IN ({}) AND e.timestamp >= $1 AND e.timestamp < $2 ORDER BY e.timestamp",
        ids(projects)
    );
    let read = |r: &AnyRow| {
        Ok(ErrorEventRow {
            timestamp: r.try_get("timestamp")?,
            project_id: r.try_get("project_id")?,
            issue_id: r.try_get("issue_id")?,
            event_id: r.try_get("event_id")?,
            level: r.try_get("level")?,
            release: r.try_get("release")?,
            environment: r.try_get("environment")?,
            user_key: r.try_get("user_key")?,
            title: r.try_get("title")?,
            project_slug: r.try_get("project_slug")?,
        })
    };
    each(store, &sql, (since, until), read, visit).await
}

/// Log records of `projects` logged in `[since, until)` (ms).
pub async fn logs<E: From<StoreError>>(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
    visit: impl FnMut(LogRow) -> Result<(), E>,
) -> Result<(), E> {
    if projects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT time_ns, service, severity, body, trace_id, span_id, attributes FROM apm_logs
         WHERE project_id IN ({}) AND time_ns >= $1 AND time_ns < $2 ORDER BY time_ns",
        ids(projects)
    );
    let read = |r: &AnyRow| {
        Ok(LogRow {
            time_ns: r.try_get("time_ns")?,
            service: r.try_get("service")?,
            severity: r.try_get("severity")?,
            body: r.try_get("body")?,
            trace_id: r.try_get("trace_id")?,
            span_id: r.try_get("span_id")?,
            attributes: r.try_get("attributes")?,
        })
    };
    let window = (
        since.saturating_mul(1_000_000),
        until.saturating_mul(1_000_000),
    );
    each(store, &sql, window, read, visit).await
}

/// Per-minute metric points of `projects` whose minute starts in `[since, until)` (ms).
pub async fn metric_points<E: From<StoreError>>(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
    visit: impl FnMut(MetricPointRow) -> Result<(), E>,
) -> Result<(), E> {
    if projects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT p.minute, s.name, s.service, s.attributes, s.kind, s.unit, p.count, p.sum, p.min, p.max, p.last
         FROM apm_metric_points p JOIN apm_metric_series s ON s.id = p.series_id
         WHERE s.project_id IN ({}) AND p.minute >= $1 AND p.minute < $2 ORDER BY p.minute",
        ids(projects)
    );
    let read = |r: &AnyRow| {
        Ok(MetricPointRow {
            minute: r.try_get("minute")?,
            name: r.try_get("name")?,
            service: r.try_get("service")?,
            attributes: r.try_get("attributes")?,
            kind: r.try_get("kind")?,
            unit: r.try_get("unit")?,
            count: r.try_get("count")?,
            sum: r.try_get("sum")?,
            min: r.try_get("min")?,
            max: r.try_get("max")?,
            last: r.try_get("last")?,
        })
    };
    each(store, &sql, (since, until), read, visit).await
}

/// Uptime check results of every monitor in `[since, until)` (ms).
pub async fn check_results<E: From<StoreError>>(
    store: &Store,
    since: i64,
    until: i64,
    visit: impl FnMut(CheckResultRow) -> Result<(), E>,
) -> Result<(), E> {
    let sql =
        "SELECT r.at, m.id AS monitor_id, m.name AS monitor_name, m.kind, r.ok, r.maintenance,
                      r.latency_us, r.message
               FROM monitor_results r JOIN monitors m ON m.id = r.monitor_id
               WHERE r.at >= $1 AND r.at < $2 ORDER BY r.at";
    let read = |r: &AnyRow| {
        Ok(CheckResultRow {
            at: r.try_get("at")?,
            monitor_id: r.try_get("monitor_id")?,
            monitor_name: r.try_get("monitor_name")?,
            kind: r.try_get("kind")?,
            ok: r.try_get::<i64, _>("ok")? != 0,
            maintenance: r.try_get::<i64, _>("maintenance")? != 0,
            latency_us: r.try_get("latency_us")?,
            message: r.try_get("message")?,
        })
    };
    each(store, sql, (since, until), read, visit).await
}

/// Benchmark points of `projects`' series measured in `[since, until)` (ms).
pub async fn benchmark_points<E: From<StoreError>>(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
    visit: impl FnMut(BenchmarkPointRow) -> Result<(), E>,
) -> Result<(), E> {
    if projects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT p.at, s.name, s.tags, s.unit, p.value, p.commit_sha, p.version, p.build
         FROM series_points p JOIN series s ON s.id = p.series_id
         WHERE s.project_id IN ({}) AND p.at >= $1 AND p.at < $2 ORDER BY p.at",
        ids(projects)
    );
    let read = |r: &AnyRow| {
        Ok(BenchmarkPointRow {
            at: r.try_get("at")?,
            name: r.try_get("name")?,
            tags: r.try_get("tags")?,
            unit: r.try_get("unit")?,
            value: r.try_get("value")?,
            commit: r.try_get("commit_sha")?,
            version: r.try_get("version")?,
            build: r.try_get("build")?,
        })
    };
    each(store, &sql, (since, until), read, visit).await
}
