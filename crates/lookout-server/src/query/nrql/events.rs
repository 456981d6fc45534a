//! The event types NRQL reads when the rollups cannot answer, as rows of attributes:
//! `Transaction` (request spans) and `Span` (every span) from the raw span blocks,
//! `TransactionError` / `ErrorEvent` (error events), `Log`, `Metric` (APM per-minute points and
//! every sample of the Prometheus store),
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

use serde_json::Value;

use lookout_apm::span::Span;
use lookout_store::nrql as scans;
use lookout_store::Store;

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
const TRANSACTION_FIELDS: &[&str] = &["transactionName"];
const OTHER_SPAN_FIELDS: &[&str] = &["category", "operation"];

fn span_row(s: Span, transaction: bool, need: &Need) -> Row {
    let mut r = Build::new(s.start_ns / 1_000_000, need);
    r.text(&["appName", "service.name"], Some(s.service));
    if transaction {
        // The transaction name the rollups group by (`GET /orders`); `http.route` (`/orders`)
        // and the other attributes come from the span's own, in `detail`.
        r.text(&["name", "transactionName"], Some(s.operation));
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

/// What a scan is told besides its window: the query's `WHERE` (a source may use it to read
/// less; the caller still tests every row) and where notes for the answer go.
pub struct Scope<'a> {
    /// The rows' `WHERE`, if any.
    pub filter: Option<&'a lookout_nrql::ast::Expr>,
    /// Warnings for the answer (a part of the data left out, and why).
    pub warnings: &'a mut Vec<String>,
}

/// Hands every row of `event_type` in `[since, until)` to `visit`, as it is read; the first
/// error of `visit` (a deadline, a memory budget) stops the scan and is returned.
pub async fn scan(
    store: &Store,
    projects: &[i64],
    event_type: &str,
    (since, until): (i64, i64),
    need: &Need,
    scope: Scope<'_>,
    visit: &mut (dyn FnMut(Row) -> Result<(), QueryError> + Send),
) -> Result<(), QueryError> {
    if projects.is_empty() {
        return Ok(());
    }
    match event_type {
        "Transaction" | "Span" => {
            let transaction = event_type == "Transaction";
            let category = transaction.then_some("request");
            lookout_store::apm::query::scan_each(store, projects, category, since, until, |_, s| {
                visit(span_row(s, transaction, need))
            })
            .await
        }
        "TransactionError" | "ErrorEvent" => {
            scans::error_events(store, projects, since, until, |e| visit(error_row(e, need))).await
        }
        "Log" => scans::logs(store, projects, since, until, |l| visit(log_row(l, need))).await,
        "Metric" => {
            scans::metric_points(store, projects, since, until, |m| {
                visit(metric_row(m, need))
            })
            .await?;
            prometheus_rows(store, projects, (since, until), need, scope, visit).await
        }
        "SyntheticCheck" => {
            scans::check_results(store, since, until, |c| visit(check_row(c, need))).await
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
            scans::benchmark_points(store, projects, since, until, |b| {
                visit(benchmark_row(b, need))
            })
            .await
        }
        _ => Ok(()),
    }
}

fn error_row(e: scans::ErrorEventRow, need: &Need) -> Row {
    let mut r = Build::new(e.timestamp, need);
    r.set("projectId", V::Num(e.project_id as f64));
    r.set("issueId", V::Num(e.issue_id as f64));
    r.text(&["id", "guid"], Some(e.event_id));
    r.text(&["level"], Some(e.level));
    r.text(&["release", "service.version"], e.release);
    r.text(&["environment"], Some(e.environment));
    r.text(&["enduser.id", "userId"], e.user_key);
    let title = e.title;
    let (class, message) = title
        .split_once(": ")
        .map_or((title.clone(), String::new()), |(a, b)| {
            (a.to_string(), b.to_string())
        });
    r.text(&["error.class", "exception.type"], Some(class));
    r.text(&["error.message", "exception.message"], Some(message));
    r.text(&["message", "title"], Some(title));
    r.text(&["appName", "project"], Some(e.project_slug));
    r.done()
}

fn log_row(l: scans::LogRow, need: &Need) -> Row {
    let mut r = Build::new(l.time_ns / 1_000_000, need);
    r.text(&["appName", "service.name"], Some(l.service));
    r.text(&["level", "severity.text"], Some(l.severity));
    r.text(&["message"], Some(l.body));
    r.text(&["trace.id"], l.trace_id);
    r.text(&["span.id"], l.span_id);
    r.flatten_text(&l.attributes);
    r.done()
}

fn metric_row(m: scans::MetricPointRow, need: &Need) -> Row {
    let mut r = Build::new(m.minute, need);
    // The point's value under the metric's own name: a gauge's newest value, a sum's increase
    // in the minute, a distribution's mean.
    let value = match m.kind.as_str() {
        "gauge" => m.last,
        "sum" => Some(m.sum),
        _ => (m.count > 0.0).then(|| m.sum / m.count),
    };
    r.set(&m.name, value.map_or(V::Null, V::Num));
    r.text(&["metricName"], Some(m.name));
    r.text(&["appName", "service.name"], Some(m.service));
    r.text(&["metric.type"], Some(m.kind));
    r.text(&["unit"], Some(m.unit));
    r.set("count", V::Num(m.count));
    r.set("sum", V::Num(m.sum));
    r.set("min", m.min.map_or(V::Null, V::Num));
    r.set("max", m.max.map_or(V::Null, V::Num));
    r.flatten_text(&m.attributes);
    r.done()
}

/// Most Prometheus-store samples one `FROM Metric` query reads (about 24 MB). Beyond, the
/// Prometheus store's rows are left out whole and the answer says so in a warning; the APM
/// points are answered as before.
pub const MAX_PROMETHEUS_SAMPLES: usize = 1_000_000;

/// The label matchers `WHERE` implies for the Prometheus store's rows: every `attr = 'text'`
/// joined by `AND` at the top. `metricName` selects `__name__`, a label-like attribute its
/// label; `metric.source` other than `prometheus` means no row (`None`). A text that reads as a
/// number is not pushed down (it also equals a metric's numeric value), nor is any other
/// condition: the caller tests every row anyway, so a matcher here only spares reading series
/// whose rows could not match.
pub fn metric_matchers(
    filter: Option<&lookout_nrql::ast::Expr>,
) -> Option<Vec<lookout_store::prom::Matcher>> {
    use lookout_nrql::ast::{BinOp, Expr};
    use lookout_store::prom::{MatchOp, Matcher};
    fn walk(e: &Expr, out: &mut Vec<Matcher>) -> bool {
        match e {
            Expr::Binary {
                op: BinOp::And,
                left,
                right,
            } => walk(left, out) && walk(right, out),
            Expr::Binary {
                op: BinOp::Eq,
                left,
                right,
            } => {
                let (attr, text) = match (left.as_ref(), right.as_ref()) {
                    (Expr::Attr(a), Expr::Str(t)) | (Expr::Str(t), Expr::Attr(a)) => (a, t),
                    _ => return true,
                };
                if attr == "metric.source" {
                    return text == "prometheus";
                }
                if text.trim().parse::<f64>().is_ok() {
                    return true;
                }
                let label = if attr == "metricName" {
                    "__name__"
                } else if attr != "value"
                    && attr != "__name__"
                    && !attr.starts_with(|c: char| c.is_ascii_digit())
                    && attr.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    attr.as_str()
                } else {
                    return true;
                };
                if let Ok(m) = Matcher::new(label, MatchOp::Eq, text) {
                    out.push(m);
                }
                true
            }
            _ => true,
        }
    }
    let mut out = Vec::new();
    match filter {
        Some(f) => walk(f, &mut out).then_some(out),
        None => Some(out),
    }
}

/// The Prometheus store's samples (remote write, StatsD, OTLP translated) as `Metric` rows: one
/// per sample, `metricName` the series' name, the value under that name and under `value`, the
/// labels as attributes, and `metric.source` = `prometheus` so they can be told from the APM
/// points. Staleness markers are not rows.
async fn prometheus_rows(
    store: &Store,
    projects: &[i64],
    (since, until): (i64, i64),
    need: &Need,
    scope: Scope<'_>,
    visit: &mut (dyn FnMut(Row) -> Result<(), QueryError> + Send),
) -> Result<(), QueryError> {
    use lookout_store::prom::query::{select_active_within, Budget, ReadError};
    let Some(matchers) = metric_matchers(scope.filter) else {
        return Ok(());
    };
    // Read whole before any row is handed on, so an overflow leaves the Prometheus part out
    // entirely rather than half of it. The query's deadline bounds this read too: the whole
    // query runs under its timeout (limits.rs), which drops the read at its next await.
    let mut budget = Budget::new(MAX_PROMETHEUS_SAMPLES);
    let mut all = Vec::new();
    for &project in projects {
        match select_active_within(store, project, &matchers, since, until - 1, &mut budget).await {
            Ok(series) => all.extend(series),
            Err(ReadError::Store(e)) => return Err(QueryError::Store(e)),
            Err(other) => {
                scope.warnings.push(format!(
                    "FROM Metric: the Prometheus store's series were left out: {other} in this \
                     window (at most {MAX_PROMETHEUS_SAMPLES} samples); narrow it with \
                     SINCE/UNTIL or WHERE metricName = '…'"
                ));
                return Ok(());
            }
        }
    }
    {
        for s in all {
            let name = s
                .labels
                .iter()
                .find(|(k, _)| k == "__name__")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            for (t, v) in s.samples {
                if v.is_nan() {
                    continue;
                }
                let mut r = Build::new(t, need);
                for (k, lv) in &s.labels {
                    if k != "__name__" {
                        r.text(&[k.as_str()], Some(lv.clone()));
                    }
                }
                r.set(&name, V::Num(v));
                r.set("value", V::Num(v));
                r.text(&["metricName"], Some(name.clone()));
                r.text(&["metric.source"], Some("prometheus".into()));
                visit(r.done())?;
            }
        }
    }
    Ok(())
}

fn check_row(c: scans::CheckResultRow, need: &Need) -> Row {
    let mut r = Build::new(c.at, need);
    r.set("monitorId", V::Num(c.monitor_id as f64));
    r.text(&["monitorName"], Some(c.monitor_name));
    r.text(&["type", "monitorType"], Some(c.kind));
    r.text(
        &["result"],
        Some(if c.ok { "SUCCESS" } else { "FAILED" }.to_string()),
    );
    r.set("error", V::Bool(!c.ok));
    r.set("maintenance", V::Bool(c.maintenance));
    if let Some(us) = c.latency_us {
        r.set("duration", V::Num(us as f64 / 1e6));
    }
    r.text(&["error.message"], c.message);
    r.done()
}

fn benchmark_row(b: scans::BenchmarkPointRow, need: &Need) -> Row {
    let mut r = Build::new(b.at, need);
    r.text(&["name", "series"], Some(b.name));
    r.text(&["unit"], Some(b.unit));
    r.set("value", V::Num(b.value));
    r.text(&["commit"], b.commit);
    r.text(&["version"], b.version);
    r.text(&["build"], b.build);
    r.flatten_text(&b.tags);
    r.done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matchers(nrql: &str) -> Option<Vec<String>> {
        let q = lookout_nrql::parse(nrql).unwrap();
        metric_matchers(q.filter.as_ref()).map(|ms| {
            ms.iter()
                .map(|m| format!("{}={}", m.name, m.value))
                .collect()
        })
    }

    #[test]
    fn where_equalities_become_prometheus_matchers() {
        assert_eq!(
            matchers("SELECT average(x) FROM Metric WHERE metricName = 'dd_temp' AND room = 'a'"),
            Some(vec!["__name__=dd_temp".into(), "room=a".into()])
        );
        // OR, numbers, dotted attributes and other comparisons read every series.
        assert_eq!(
            matchers("SELECT count(*) FROM Metric WHERE metricName = 'a' OR metricName = 'b'"),
            Some(vec![])
        );
        assert_eq!(
            matchers("SELECT count(*) FROM Metric WHERE code = '200' AND service.name = 'x'"),
            Some(vec![])
        );
        assert_eq!(matchers("SELECT count(*) FROM Metric"), Some(vec![]));
        // APM points only: the Prometheus store is not read at all.
        assert_eq!(
            matchers("SELECT count(*) FROM Metric WHERE metric.source = 'apm'"),
            None
        );
    }
}
