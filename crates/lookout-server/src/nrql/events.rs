//! The event types NRQL reads when the rollups cannot answer, as rows of attributes:
//! `Transaction` (request spans) and `Span` (every span) from the raw span blocks,
//! `TransactionError` / `ErrorEvent` (error events), `Log`, `Metric` (per-minute points),
//! `SyntheticCheck` (uptime check results), `LoadTestRun` and `BenchmarkPoint`.
//!
//! Attribute names are OpenTelemetry's plus New Relic's common aliases (`appName`, `name`,
//! `duration` in seconds, `http.statusCode`, `error`, `timestamp` in ms); each type's list is in
//! docs/query.md.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::Row as _;

use lookout_store::apm::query::SpanRow;
use lookout_store::Store;

/// The most rows one query reads; beyond, the answer says it was cut.
pub const MAX_ROWS: usize = 500_000;

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
    fn new(timestamp: i64) -> Row {
        let mut attrs = BTreeMap::new();
        attrs.insert("timestamp".into(), V::Num(timestamp as f64));
        Row { timestamp, attrs }
    }

    fn set(&mut self, k: &str, v: V) {
        if v != V::Null {
            self.attrs.insert(k.to_string(), v);
        }
    }

    fn text(&mut self, keys: &[&str], v: Option<String>) {
        if let Some(v) = v {
            for k in keys {
                self.attrs.insert((*k).to_string(), V::Str(v.clone()));
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
                    _ => {
                        self.attrs.entry(key).or_insert_with(|| V::of(x));
                    }
                }
            }
        }
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

fn span_row(s: &SpanRow, transaction: bool) -> Row {
    let mut r = Row::new(s.start_ns / 1_000_000);
    r.text(&["appName", "service.name"], Some(s.service.clone()));
    if transaction {
        r.text(
            &["name", "transactionName", "http.route"],
            Some(s.operation.clone()),
        );
    } else {
        r.text(&["name"], Some(s.name.clone()));
        r.text(&["category"], Some(s.category.clone()));
        r.text(&["operation"], Some(s.operation.clone()));
    }
    r.set("duration", V::Num(s.duration_ns as f64 / 1e9));
    r.set("duration.ms", V::Num(s.duration_ns as f64 / 1e6));
    r.set("error", V::Bool(s.error));
    if let Some(code) = s.http_status {
        r.set("http.statusCode", V::Num(code as f64));
        r.set("http.response.status_code", V::Num(code as f64));
    }
    r.text(&["host", "service.instance.id"], s.instance.clone());
    r.text(&["trace.id", "traceId"], Some(s.trace_id.clone()));
    r.text(&["id", "guid"], Some(s.span_id.clone()));
    r.text(&["parent.id"], s.parent_span_id.clone());
    r.text(&["db.system"], s.db_system.clone());
    r.text(&["db.statement", "db.query.text"], s.db_statement.clone());
    r.text(&["peer.address", "server.address"], s.peer.clone());
    r.set("span.kind", V::Num(s.kind as f64));
    r.flatten("", &s.detail["attributes"]);
    r
}

fn ids(projects: &[i64]) -> String {
    // Project ids are integers from the database, never user text.
    projects
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `sql` with `$1` = since, `$2` = until and `$3` = one more than the row cap.
async fn fetch(
    store: &Store,
    sql: &str,
    since: i64,
    until: i64,
) -> lookout_store::Result<Vec<sqlx::any::AnyRow>> {
    Ok(sqlx::query(sql)
        .bind(since)
        .bind(until)
        .bind(MAX_ROWS as i64 + 1)
        .fetch_all(store.pool())
        .await?)
}

/// The rows of `event_type` in `[since, until)`, and whether more were left out.
pub async fn load(
    store: &Store,
    projects: &[i64],
    event_type: &str,
    since: i64,
    until: i64,
) -> lookout_store::Result<(Vec<Row>, bool)> {
    let mut rows = Vec::new();
    if projects.is_empty() {
        return Ok((rows, false));
    }
    let cut = match event_type {
        "Transaction" | "Span" => {
            let transaction = event_type == "Transaction";
            let category = transaction.then_some("request");
            let (spans, cut) =
                lookout_store::apm::query::scan(store, projects, category, since, until, MAX_ROWS)
                    .await?;
            rows.extend(spans.iter().map(|s| span_row(s, transaction)));
            cut
        }
        "TransactionError" | "ErrorEvent" => {
            let found = fetch(store, &format!(
                "SELECT e.timestamp, e.project_id, e.issue_id, e.event_id, e.level, e.release, e.environment,
                        e.user_key, e.title, p.slug FROM error_events e JOIN projects p ON p.id = e.project_id
                 WHERE e.project_id IN ({}) AND e.timestamp >= $1 AND e.timestamp < $2 ORDER BY e.timestamp LIMIT $3",
                ids(projects)
            ), since, until).await?;
            for f in &found {
                let mut r = Row::new(f.try_get(0)?);
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
                rows.push(r);
            }
            found.len() > MAX_ROWS
        }
        "Log" => {
            let found = fetch(store, &format!(
                "SELECT time_ns, service, severity, body, trace_id, span_id, attributes FROM apm_logs
                 WHERE project_id IN ({}) AND time_ns >= $1 AND time_ns < $2 ORDER BY time_ns LIMIT $3",
                ids(projects)
            ), since.saturating_mul(1_000_000), until.saturating_mul(1_000_000)).await?;
            for f in &found {
                let mut r = Row::new(f.try_get::<i64, _>(0)? / 1_000_000);
                r.text(&["appName", "service.name"], f.try_get(1)?);
                r.text(&["level", "severity.text"], f.try_get(2)?);
                r.text(&["message"], f.try_get(3)?);
                r.text(&["trace.id"], f.try_get(4)?);
                r.text(&["span.id"], f.try_get(5)?);
                let attrs: String = f.try_get(6)?;
                r.flatten("", &serde_json::from_str(&attrs).unwrap_or(Value::Null));
                rows.push(r);
            }
            found.len() > MAX_ROWS
        }
        "Metric" => {
            let found = fetch(store, &format!(
                "SELECT p.minute, s.name, s.service, s.attributes, s.kind, s.unit, p.count, p.sum, p.min, p.max, p.last
                 FROM apm_metric_points p JOIN apm_metric_series s ON s.id = p.series_id
                 WHERE s.project_id IN ({}) AND p.minute >= $1 AND p.minute < $2 ORDER BY p.minute LIMIT $3",
                ids(projects)
            ), since, until).await?;
            for f in &found {
                let mut r = Row::new(f.try_get(0)?);
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
                r.flatten("", &serde_json::from_str(&attrs).unwrap_or(Value::Null));
                rows.push(r);
            }
            found.len() > MAX_ROWS
        }
        "SyntheticCheck" => {
            let found = fetch(store, "SELECT r.at, m.id, m.name, m.kind, r.ok, r.maintenance, r.latency_us, r.message FROM monitor_results r
                 JOIN monitors m ON m.id = r.monitor_id WHERE r.at >= $1 AND r.at < $2 ORDER BY r.at LIMIT $3", since, until).await?;
            for f in &found {
                let mut r = Row::new(f.try_get(0)?);
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
                rows.push(r);
            }
            found.len() > MAX_ROWS
        }
        "LoadTestRun" => {
            for run in
                lookout_store::reports::facts::load_runs(store, projects, since, until).await?
            {
                let mut r = Row::new(run.started_at);
                r.set("id", V::Num(run.id as f64));
                r.text(&["name"], Some(run.name));
                r.text(&["commit"], run.commit);
                r.set("passed", V::Bool(run.passed));
                r.set("requests", V::Num(run.requests as f64));
                r.set("throughput", V::Num(run.rps));
                r.set("duration", V::Num(run.duration_ms as f64 / 1000.0));
                r.set("p95", V::Num(run.p95_ms / 1000.0));
                r.set("errorRate", V::Num(run.error_rate));
                rows.push(r);
            }
            false
        }
        "BenchmarkPoint" => {
            let found = fetch(store, &format!(
                "SELECT p.at, s.name, s.tags, s.unit, p.value, p.commit_sha, p.version, p.build FROM series_points p
                 JOIN series s ON s.id = p.series_id WHERE s.project_id IN ({}) AND p.at >= $1 AND p.at < $2
                 ORDER BY p.at LIMIT $3",
                ids(projects)
            ), since, until).await?;
            for f in &found {
                let mut r = Row::new(f.try_get(0)?);
                r.text(&["name", "series"], f.try_get(1)?);
                r.text(&["unit"], f.try_get(3)?);
                r.set("value", V::Num(f.try_get(4)?));
                r.text(&["commit"], f.try_get(5)?);
                r.text(&["version"], f.try_get(6)?);
                r.text(&["build"], f.try_get(7)?);
                let tags: String = f.try_get(2)?;
                r.flatten("", &serde_json::from_str(&tags).unwrap_or(Value::Null));
                rows.push(r);
            }
            found.len() > MAX_ROWS
        }
        _ => false,
    };
    rows.truncate(MAX_ROWS);
    Ok((rows, cut))
}
