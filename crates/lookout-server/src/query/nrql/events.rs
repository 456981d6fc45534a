//! The event types NRQL reads when the rollups cannot answer, as rows of attributes:
//! `Transaction` (request spans) and `Span` (every span) from the raw span blocks,
//! `TransactionError` / `ErrorEvent` (error events), `Log`, `Metric` (per-minute points),
//! `SyntheticCheck` (uptime check results), `LoadTestRun` and `BenchmarkPoint`.
//!
//! Attribute names are OpenTelemetry's plus New Relic's common aliases (`appName`, `name`,
//! `duration` in seconds, `http.statusCode`, `error`, `timestamp` in ms); each type's list is in
//! docs/query.md.
//!
//! Rows are handed to the caller one at a time as they are read ([`scan`]), never collected:
//! the executor folds them into its aggregates or its bounded page of raw rows, so a query's
//! memory is its answer's state, not its window's events. A row holds only the attributes the
//! query reads ([`Need`]), which is most of the time of a scan.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt as _;
use serde_json::Value;
use sqlx::Row as _;

use lookout_apm::span::Span;
use lookout_store::{Store, StoreError};

use super::QueryError;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Num(f64),
    Str(String),
    Bool(bool),
}

impl V {
    /// As JSON.
    pub fn json(&self) -> Value {
        match self {
            V::Null => Value::Null,
            V::Num(n) => serde_json::json!(n),
            V::Str(s) => Value::String(s.clone()),
            V::Bool(b) => Value::Bool(*b),
        }
    }

    fn of(v: &Value) -> V {
        match v {
            Value::Number(n) => n.as_f64().map_or(V::Null, V::Num),
            Value::String(s) => V::Str(s.clone()),
            Value::Bool(b) => V::Bool(*b),
            Value::Null => V::Null,
            other => V::Str(other.to_string()),
        }
    }
}

/// One event: its time (ms) and attributes.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub timestamp: i64,
    pub attrs: BTreeMap<String, V>,
}

impl Row {
    /// An estimate of the bytes the row holds, for a query's memory budget.
    pub fn weight(&self) -> usize {
        self.attrs
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 64
                    + match v {
                        V::Str(s) => s.len(),
                        _ => 0,
                    }
            })
            .sum::<usize>()
            + 48
    }
}

/// The attributes a query reads: `None` for every one (`SELECT *`).
pub type Need = Option<BTreeSet<String>>;

/// Builds a row with the attributes its query reads only.
struct Build<'n> {
    row: Row,
    need: Option<&'n BTreeSet<String>>,
}

impl<'n> Build<'n> {
    fn new(timestamp: i64, need: &'n Need) -> Build<'n> {
        let mut attrs = BTreeMap::new();
        attrs.insert("timestamp".into(), V::Num(timestamp as f64));
        Build {
            row: Row { timestamp, attrs },
            need: need.as_ref(),
        }
    }

    fn wants(&self, k: &str) -> bool {
        self.need.is_none_or(|n| n.contains(k))
    }

    fn set(&mut self, k: &str, v: V) {
        if v != V::Null && self.wants(k) {
            self.row.attrs.insert(k.to_string(), v);
        }
    }

    fn text(&mut self, keys: &[&str], v: Option<String>) {
        if let Some(v) = v {
            for k in keys {
                if self.wants(k) {
                    self.row.attrs.insert((*k).to_string(), V::Str(v.clone()));
                }
            }
        }
    }

    /// Adds every scalar of a JSON object (nested objects as `a.b`).
    fn flatten(&mut self, prefix: &str, v: &Value) {
        if let Value::Object(m) = v {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match x {
                    Value::Object(_) => self.flatten(&key, x),
                    Value::Array(_) => {}
                    _ if self.wants(&key) => {
                        self.row.attrs.entry(key).or_insert_with(|| V::of(x));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Flattens a JSON text's object (a stored column), unless the query reads none of it.
    fn flatten_text(&mut self, text: &str) {
        if self.need.is_some_and(BTreeSet::is_empty) {
            return;
        }
        self.flatten("", &serde_json::from_str(text).unwrap_or(Value::Null));
    }

    fn done(self) -> Row {
        self.row
    }
}

/// The event types and what they are.
pub const TYPES: &[&str] = &[
    "Transaction",
    "Span",
    "TransactionError",
    "ErrorEvent",
    "Log",
    "Metric",
    "SyntheticCheck",
    "LoadTestRun",
    "BenchmarkPoint",
];

/// The attributes every span row has, whatever its `detail` holds (a `detail` attribute of the
/// same name never replaces them); optional fields such as `http.statusCode` are not here, as
/// `detail` may supply them when the span lacks them.
const SPAN_FIELDS: &[&str] = &[
    "timestamp",
    "appName",
    "service.name",
    "name",
    "duration",
    "duration.ms",
    "error",
    "trace.id",
    "traceId",
    "id",
    "guid",
    "span.kind",
];
const TRANSACTION_FIELDS: &[&str] = &["transactionName", "http.route"];
const OTHER_SPAN_FIELDS: &[&str] = &["category", "operation"];

fn span_row(s: Span, transaction: bool, need: &Need) -> Row {
    let mut r = Build::new(s.start_ns / 1_000_000, need);
    r.text(&["appName", "service.name"], Some(s.service));
    if transaction {
        r.text(
            &["name", "transactionName", "http.route"],
            Some(s.operation),
        );
    } else {
        r.text(&["name"], Some(s.name));
        r.text(&["category"], Some(s.category.as_str().to_string()));
        r.text(&["operation"], Some(s.operation));
    }
    r.set("duration", V::Num(s.duration_ns as f64 / 1e9));
    r.set("duration.ms", V::Num(s.duration_ns as f64 / 1e6));
    r.set("error", V::Bool(s.error));
    if let Some(code) = s.http_status {
        r.set("http.statusCode", V::Num(code as f64));
        r.set("http.response.status_code", V::Num(code as f64));
    }
    r.text(&["host", "service.instance.id"], s.instance);
    r.text(&["trace.id", "traceId"], Some(s.trace_id));
    r.text(&["id", "guid"], Some(s.span_id));
    r.text(&["parent.id"], s.parent_span_id);
    r.text(&["db.system"], s.db_system);
    r.text(&["db.statement", "db.query.text"], s.db_statement);
    r.text(&["peer.address", "server.address"], s.peer);
    r.set("span.kind", V::Num(s.kind as f64));
    // Parsing `detail` is most of a span's cost: only when the query reads an attribute
    // beyond the span's own fields.
    let own = if transaction {
        TRANSACTION_FIELDS
    } else {
        OTHER_SPAN_FIELDS
    };
    if need.as_ref().is_none_or(|n| {
        n.iter()
            .any(|k| !SPAN_FIELDS.contains(&k.as_str()) && !own.contains(&k.as_str()))
    }) {
        let detail: Value = serde_json::from_str(&s.detail).unwrap_or(Value::Null);
        r.flatten("", &detail["attributes"]);
    }
    r.done()
}

fn ids(projects: &[i64]) -> String {
    // Project ids are integers from the database, never user text.
    projects
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `sql` with `$1` = since and `$2` = until, streaming its rows: each becomes an event
/// through `build` and goes to `visit` before the next is read.
async fn each(
    store: &Store,
    sql: &str,
    since: i64,
    until: i64,
    build: impl Fn(&sqlx::any::AnyRow) -> Result<Row, sqlx::Error>,
    visit: &mut (dyn FnMut(Row) -> Result<(), QueryError> + Send),
) -> Result<(), QueryError> {
    let mut found = sqlx::query(sql).bind(since).bind(until).fetch(store.pool());
    while let Some(f) = found.try_next().await.map_err(StoreError::from)? {
        visit(build(&f).map_err(StoreError::from)?)?;
    }
    Ok(())
}

/// Hands every row of `event_type` in `[since, until)` to `visit`, as it is read; the first
/// error of `visit` (a deadline, a memory budget) stops the scan and is returned.
pub async fn scan(
    store: &Store,
    projects: &[i64],
    event_type: &str,
    (since, until): (i64, i64),
    need: &Need,
    visit: &mut (dyn FnMut(Row) -> Result<(), QueryError> + Send),
) -> Result<(), QueryError> {
    if projects.is_empty() {
        return Ok(());
    }
    match event_type {
        "Transaction" | "Span" => {
            let transaction = event_type == "Transaction";
            let category = transaction.then_some("request");
            lookout_store::apm::query::scan_each(
                store,
                projects,
                category,
                since,
                until,
                |_, s| visit(span_row(s, transaction, need)),
            )
            .await
        }
        "TransactionError" | "ErrorEvent" => {
            each(store, &format!(
                "SELECT e.timestamp, e.project_id, e.issue_id, e.event_id, e.level, e.release, e.environment,
                        e.user_key, e.title, p.slug FROM error_events e JOIN projects p ON p.id = e.project_id
                 WHERE e.project_id IN ({}) AND e.timestamp >= $1 AND e.timestamp < $2 ORDER BY e.timestamp",
                ids(projects)
            ), since, until, |f| {
                let mut r = Build::new(f.try_get(0)?, need);
                r.set("projectId", V::Num(f.try_get::<i64, _>(1)? as f64));
                r.set("issueId", V::Num(f.try_get::<i64, _>(2)? as f64));
                r.text(&["id", "guid"], f.try_get(3)?);
                r.text(&["level"], f.try_get(4)?);
                r.text(&["release", "service.version"], f.try_get(5)?);
                r.text(&["environment"], f.try_get(6)?);
                r.text(&["enduser.id", "userId"], f.try_get(7)?);
                let title: String = f.try_get(8)?;
                let (class, message) = title
                    .split_once(": ")
                    .map_or((title.clone(), String::new()), |(a, b)| {
                        (a.to_string(), b.to_string())
                    });
                r.text(&["error.class", "exception.type"], Some(class));
                r.text(&["error.message", "exception.message"], Some(message));
                r.text(&["message", "title"], Some(title));
                r.text(&["appName", "project"], f.try_get(9)?);
                Ok(r.done())
            }, visit).await
        }
        "Log" => {
            each(store, &format!(
                "SELECT time_ns, service, severity, body, trace_id, span_id, attributes FROM apm_logs
                 WHERE project_id IN ({}) AND time_ns >= $1 AND time_ns < $2 ORDER BY time_ns",
                ids(projects)
            ), since.saturating_mul(1_000_000), until.saturating_mul(1_000_000), |f| {
                let mut r = Build::new(f.try_get::<i64, _>(0)? / 1_000_000, need);
                r.text(&["appName", "service.name"], f.try_get(1)?);
                r.text(&["level", "severity.text"], f.try_get(2)?);
                r.text(&["message"], f.try_get(3)?);
                r.text(&["trace.id"], f.try_get(4)?);
                r.text(&["span.id"], f.try_get(5)?);
                let attrs: String = f.try_get(6)?;
                r.flatten_text(&attrs);
                Ok(r.done())
            }, visit).await
        }
        "Metric" => {
            each(store, &format!(
                "SELECT p.minute, s.name, s.service, s.attributes, s.kind, s.unit, p.count, p.sum, p.min, p.max, p.last
                 FROM apm_metric_points p JOIN apm_metric_series s ON s.id = p.series_id
                 WHERE s.project_id IN ({}) AND p.minute >= $1 AND p.minute < $2 ORDER BY p.minute",
                ids(projects)
            ), since, until, |f| {
                let mut r = Build::new(f.try_get(0)?, need);
                let name: String = f.try_get(1)?;
                let kind: String = f.try_get(4)?;
                let (count, sum): (f64, f64) = (f.try_get(6)?, f.try_get(7)?);
                let last: Option<f64> = f.try_get(10)?;
                // The point's value under the metric's own name: a gauge's newest value, a
                // sum's increase in the minute, a distribution's mean.
                let value = match kind.as_str() {
                    "gauge" => last,
                    "sum" => Some(sum),
                    _ => (count > 0.0).then(|| sum / count),
                };
                r.set(&name, value.map_or(V::Null, V::Num));
                r.text(&["metricName"], Some(name));
                r.text(&["appName", "service.name"], f.try_get(2)?);
                r.text(&["metric.type"], Some(kind));
                r.text(&["unit"], f.try_get(5)?);
                r.set("count", V::Num(count));
                r.set("sum", V::Num(sum));
                r.set(
                    "min",
                    f.try_get::<Option<f64>, _>(8)?.map_or(V::Null, V::Num),
                );
                r.set(
                    "max",
                    f.try_get::<Option<f64>, _>(9)?.map_or(V::Null, V::Num),
                );
                let attrs: String = f.try_get(3)?;
                r.flatten_text(&attrs);
                Ok(r.done())
            }, visit).await
        }
        "SyntheticCheck" => {
            each(store, "SELECT r.at, m.id, m.name, m.kind, r.ok, r.maintenance, r.latency_us, r.message FROM monitor_results r
                 JOIN monitors m ON m.id = r.monitor_id WHERE r.at >= $1 AND r.at < $2 ORDER BY r.at", since, until, |f| {
                let mut r = Build::new(f.try_get(0)?, need);
                r.set("monitorId", V::Num(f.try_get::<i64, _>(1)? as f64));
                r.text(&["monitorName"], f.try_get(2)?);
                r.text(&["type", "monitorType"], f.try_get(3)?);
                let ok = f.try_get::<i64, _>(4)? != 0;
                r.text(
                    &["result"],
                    Some(if ok { "SUCCESS" } else { "FAILED" }.to_string()),
                );
                r.set("error", V::Bool(!ok));
                r.set("maintenance", V::Bool(f.try_get::<i64, _>(5)? != 0));
                if let Some(us) = f.try_get::<Option<i64>, _>(6)? {
                    r.set("duration", V::Num(us as f64 / 1e6));
                }
                r.text(&["error.message"], f.try_get(7)?);
                Ok(r.done())
            }, visit).await
        }
        "LoadTestRun" => {
            // One row per load test run: few, so read at once.
            for run in
                lookout_store::reports::facts::load_runs(store, projects, since, until).await?
            {
                let mut r = Build::new(run.started_at, need);
                r.set("id", V::Num(run.id as f64));
                r.text(&["name"], Some(run.name));
                r.text(&["commit"], run.commit);
                r.set("passed", V::Bool(run.passed));
                r.set("requests", V::Num(run.requests as f64));
                r.set("throughput", V::Num(run.rps));
                r.set("duration", V::Num(run.duration_ms as f64 / 1000.0));
                r.set("p95", V::Num(run.p95_ms / 1000.0));
                r.set("errorRate", V::Num(run.error_rate));
                visit(r.done())?;
            }
            Ok(())
        }
        "BenchmarkPoint" => {
            each(store, &format!(
                "SELECT p.at, s.name, s.tags, s.unit, p.value, p.commit_sha, p.version, p.build FROM series_points p
                 JOIN series s ON s.id = p.series_id WHERE s.project_id IN ({}) AND p.at >= $1 AND p.at < $2
                 ORDER BY p.at",
                ids(projects)
            ), since, until, |f| {
                let mut r = Build::new(f.try_get(0)?, need);
                r.text(&["name", "series"], f.try_get(1)?);
                r.text(&["unit"], f.try_get(3)?);
                r.set("value", V::Num(f.try_get(4)?));
                r.text(&["commit"], f.try_get(5)?);
                r.text(&["version"], f.try_get(6)?);
                r.text(&["build"], f.try_get(7)?);
                let tags: String = f.try_get(2)?;
                r.flatten_text(&tags);
                Ok(r.done())
            }, visit).await
        }
        _ => Ok(()),
    }
}
