//! Reads of raw spans and logs: a trace, span search, instances, log search, the error issues
//! linked to a service, and the transactions behind a database statement. Rollup reads are in
//! [`super::query`].

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};
/// One stored span.
#[derive(Debug, Clone, Serialize)]
pub struct SpanRow {
    /// Project.
    pub project_id: i64,
    /// Trace id (hex).
    pub trace_id: String,
    /// Span id (hex).
    pub span_id: String,
    /// Parent span id.
    pub parent_span_id: Option<String>,
    /// Service.
    pub service: String,
    /// Instance.
    pub instance: Option<String>,
    /// Name.
    pub name: String,
    /// OTLP kind.
    pub kind: i64,
    /// Start, ns since the epoch.
    pub start_ns: i64,
    /// Duration, ns.
    pub duration_ns: i64,
    /// OTLP status code.
    pub status: i64,
    /// Lookout's error rule.
    pub error: bool,
    /// Category.
    pub category: String,
    /// Operation.
    pub operation: String,
    /// HTTP status.
    pub http_status: Option<i64>,
    /// Database system.
    pub db_system: Option<String>,
    /// Normalised statement.
    pub db_statement: Option<String>,
    /// Peer host.
    pub peer: Option<String>,
    /// Attributes, resource, events (JSON).
    pub detail: serde_json::Value,
}

const SPAN_SELECT: &str = "SELECT project_id, trace_id, span_id, parent_span_id, service, instance, name, kind, start_ns,
    duration_ns, status, error, category, operation, http_status, db_system, db_statement, peer, detail, resource FROM apm_spans";

fn span_row(r: &sqlx::any::AnyRow, with_detail: bool) -> Result<SpanRow> {
    let detail: String = if with_detail {
        r.try_get(18)?
    } else {
        String::new()
    };
    Ok(SpanRow {
        project_id: r.try_get(0)?,
        trace_id: r.try_get(1)?,
        span_id: r.try_get(2)?,
        parent_span_id: r.try_get(3)?,
        service: r.try_get(4)?,
        instance: r.try_get(5)?,
        name: r.try_get(6)?,
        kind: r.try_get(7)?,
        start_ns: r.try_get(8)?,
        duration_ns: r.try_get(9)?,
        status: r.try_get(10)?,
        error: r.try_get::<i64, _>(11)? != 0,
        category: r.try_get(12)?,
        operation: r.try_get(13)?,
        http_status: r.try_get(14)?,
        db_system: r.try_get(15)?,
        db_statement: r.try_get(16)?,
        peer: r.try_get(17)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    })
}

/// The spans of trace `trace_id` in `projects`, by start time; a span stored twice (an exporter
/// retry) appears once.
pub async fn trace(store: &Store, projects: &[i64], trace_id: &str) -> Result<Vec<SpanRow>> {
    let rows = sqlx::query(&format!(
        "{SPAN_SELECT} WHERE trace_id = $1 ORDER BY start_ns, seq LIMIT 50000"
    ))
    .bind(trace_id.to_ascii_lowercase())
    .fetch_all(store.pool())
    .await?;
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    let mut resources: BTreeMap<(i64, String), serde_json::Value> = BTreeMap::new();
    for r in &rows {
        let mut s = span_row(r, true)?;
        if projects.contains(&s.project_id) && seen.insert(s.span_id.clone()) {
            let key = (s.project_id, r.try_get::<String, _>(19)?);
            if !resources.contains_key(&key) {
                let attrs: Option<String> = sqlx::query_scalar(
                    "SELECT attributes FROM apm_resources WHERE project_id = $1 AND hash = $2",
                )
                .bind(key.0)
                .bind(&key.1)
                .fetch_optional(store.pool())
                .await?;
                let v = attrs
                    .and_then(|a| serde_json::from_str(&a).ok())
                    .unwrap_or_default();
                resources.insert(key.clone(), v);
            }
            if let serde_json::Value::Object(m) = &mut s.detail {
                m.insert("resource".into(), resources[&key].clone());
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// What a trace search asks for.
#[derive(Debug, Clone, Default)]
pub struct SpanSearch<'a> {
    /// Projects.
    pub projects: &'a [i64],
    /// Service.
    pub service: Option<&'a str>,
    /// Operation (transaction name, statement summary, host).
    pub operation: Option<&'a str>,
    /// Category (`request` for transactions).
    pub category: Option<&'a str>,
    /// Shortest duration, ms.
    pub min_duration_ms: Option<f64>,
    /// Longest duration, ms.
    pub max_duration_ms: Option<f64>,
    /// Only failed (true) or only successful (false) spans.
    pub error: Option<bool>,
    /// An attribute that must have a value: (key, value).
    pub attribute: Option<(&'a str, &'a str)>,
    /// Window, ms.
    pub since: i64,
    /// Window end, ms.
    pub until: i64,
    /// Most rows.
    pub limit: i64,
    /// Slowest first instead of newest first.
    pub slowest_first: bool,
}

/// Spans matching `q` (without their detail unless an attribute filter needs it).
pub async fn search(store: &Store, q: &SpanSearch<'_>) -> Result<Vec<SpanRow>> {
    let mut out = Vec::new();
    let order = if q.slowest_first {
        "duration_ns DESC"
    } else {
        "start_ns DESC"
    };
    for &p in q.projects {
        let rows = sqlx::query(&format!(
            "{SPAN_SELECT} WHERE project_id = $1 AND start_ns >= $2 AND start_ns < $3
               AND ($4 = '' OR service = $4) AND ($5 = '' OR operation = $5) AND ($6 = '' OR category = $6)
               AND duration_ns >= $7 AND duration_ns <= $8 AND ($9 < 0 OR error = $9)
               AND ($10 = '' OR detail LIKE $10)
             ORDER BY {order} LIMIT $11"
        ))
        .bind(p)
        .bind(q.since.saturating_mul(1_000_000))
        .bind(q.until.saturating_mul(1_000_000))
        .bind(q.service.unwrap_or(""))
        .bind(q.operation.unwrap_or(""))
        .bind(q.category.unwrap_or(""))
        .bind(q.min_duration_ms.map_or(0, |d| (d * 1e6) as i64))
        .bind(q.max_duration_ms.map_or(i64::MAX, |d| (d * 1e6) as i64))
        .bind(q.error.map_or(-1, i64::from))
        .bind(q.attribute.map_or(String::new(), |(k, v)| {
            // The attribute as it appears in the stored JSON; `%` and `_` in it match loosely,
            // which only ever widens a search.
            format!("%{}:{}%", serde_json::json!(k), serde_json::json!(v))
        }))
        .bind(q.limit)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            out.push(span_row(r, true)?);
        }
    }
    if q.slowest_first {
        out.sort_by_key(|s| std::cmp::Reverse(s.duration_ns));
    } else {
        out.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
    }
    out.truncate(q.limit.max(0) as usize);
    Ok(out)
}

/// Per-instance figures of a service's requests, from raw spans.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    /// `service.instance.id` or host.
    pub instance: String,
    /// Requests.
    pub count: i64,
    /// Failed requests.
    pub errors: i64,
    /// Mean duration, ms.
    pub avg_ms: f64,
}

/// Instances of `service` in `[since, until)` ms.
pub async fn instances(
    store: &Store,
    projects: &[i64],
    service: &str,
    since: i64,
    until: i64,
) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    for &p in projects {
        for r in sqlx::query(
            "SELECT COALESCE(instance, ''), COUNT(*), CAST(SUM(error) AS BIGINT), CAST(AVG(duration_ns) AS DOUBLE PRECISION) FROM apm_spans
             WHERE project_id = $1 AND service = $2 AND start_ns >= $3 AND start_ns < $4 AND category = 'request'
             GROUP BY COALESCE(instance, '') ORDER BY COUNT(*) DESC LIMIT 50",
        )
        .bind(p)
        .bind(service)
        .bind(since.saturating_mul(1_000_000))
        .bind(until.saturating_mul(1_000_000))
        .fetch_all(store.pool())
        .await?
        {
            let avg: Option<f64> = r.try_get(3)?;
            out.push(Instance {
                instance: r.try_get(0)?,
                count: r.try_get(1)?,
                errors: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0),
                avg_ms: avg.unwrap_or(0.0) / 1e6,
            });
        }
    }
    Ok(out)
}

/// What a log search asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery<'a> {
    /// Projects.
    pub projects: &'a [i64],
    /// The records of one trace (the other filters then do not apply).
    pub trace_id: Option<&'a str>,
    /// One service.
    pub service: Option<&'a str>,
    /// Text the body contains.
    pub text: Option<&'a str>,
    /// Window, ms.
    pub since: i64,
    /// Window end, ms.
    pub until: i64,
    /// Most records.
    pub limit: i64,
}

/// One stored log record.
#[derive(Debug, Clone, Serialize)]
pub struct LogRow {
    /// Time, ns.
    pub time_ns: i64,
    /// Service.
    pub service: String,
    /// Severity number.
    pub severity_number: i64,
    /// Severity text.
    pub severity: String,
    /// Body.
    pub body: String,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Span id.
    pub span_id: Option<String>,
    /// Attributes and resource (JSON).
    pub attributes: serde_json::Value,
}

/// Log records of `projects`: those of one trace, or the newest in a window matching a service
/// and a text.
pub async fn logs(store: &Store, q: &LogQuery<'_>) -> Result<Vec<LogRow>> {
    let LogQuery {
        projects,
        trace_id,
        service,
        text,
        since,
        until,
        limit,
    } = *q;
    let mut out = Vec::new();
    for &p in projects {
        let rows = match trace_id {
            Some(t) => {
                sqlx::query(
                    "SELECT time_ns, service, severity_number, severity, body, trace_id, span_id, attributes
                     FROM apm_logs WHERE trace_id = $1 AND project_id = $2 ORDER BY time_ns LIMIT $3",
                )
                .bind(t.to_ascii_lowercase())
                .bind(p)
                .bind(limit)
                .fetch_all(store.pool())
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT time_ns, service, severity_number, severity, body, trace_id, span_id, attributes
                     FROM apm_logs WHERE project_id = $1 AND time_ns >= $2 AND time_ns < $3
                       AND ($4 = '' OR service = $4) AND ($5 = '' OR body LIKE $5)
                     ORDER BY time_ns DESC LIMIT $6",
                )
                .bind(p)
                .bind(since.saturating_mul(1_000_000))
                .bind(until.saturating_mul(1_000_000))
                .bind(service.unwrap_or(""))
                .bind(text.map_or(String::new(), |t| format!("%{t}%")))
                .bind(limit)
                .fetch_all(store.pool())
                .await?
            }
        };
        for r in &rows {
            let attrs: String = r.try_get(7)?;
            out.push(LogRow {
                time_ns: r.try_get(0)?,
                service: r.try_get(1)?,
                severity_number: r.try_get(2)?,
                severity: r.try_get(3)?,
                body: r.try_get(4)?,
                trace_id: r.try_get(5)?,
                span_id: r.try_get(6)?,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// An error-tracking issue linked to a service (its events carry a `service` or `service.name`
/// tag with the service's name).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceIssue {
    /// Issue id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Culprit.
    pub culprit: String,
    /// Events.
    pub count: i64,
    /// Last event, ms.
    pub last_seen: i64,
}

/// Unresolved issues of `service`, most recent first.
pub async fn service_issues(
    store: &Store,
    projects: &[i64],
    service: &str,
    limit: i64,
) -> Result<Vec<ServiceIssue>> {
    let mut out = Vec::new();
    for &p in projects {
        for r in sqlx::query(
            "SELECT DISTINCT i.id, i.title, i.culprit, i.times_seen, i.last_seen FROM issues i
             JOIN issue_tags t ON t.issue_id = i.id
             WHERE i.project_id = $1 AND i.status = 'unresolved' AND i.merged_into IS NULL AND t.key IN ('service', 'service.name') AND t.value = $2
             ORDER BY i.last_seen DESC LIMIT $3",
        )
        .bind(p)
        .bind(service)
        .bind(limit)
        .fetch_all(store.pool())
        .await?
        {
            out.push(ServiceIssue {
                id: r.try_get(0)?,
                title: r.try_get(1)?,
                culprit: r.try_get(2)?,
                count: r.try_get(3)?,
                last_seen: r.try_get(4)?,
            });
        }
    }
    out.sort_by_key(|i| std::cmp::Reverse(i.last_seen));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// A transaction that issued a database statement, from APM's database spans.
#[derive(Debug, Clone, Serialize)]
pub struct Caller {
    /// Service.
    pub service: String,
    /// Transaction (the request span of the same trace and service).
    pub transaction: String,
    /// Calls of the statement from it.
    pub calls: i64,
    /// Mean duration of those calls, ms.
    pub avg_ms: f64,
}

/// The transactions that issued each of `statements` (normalised with
/// `lookout_apm::statement::normalize`) since `since_ms`, busiest first.
pub async fn statement_callers(
    store: &Store,
    project: i64,
    statements: &[String],
    since_ms: i64,
) -> Result<BTreeMap<String, Vec<Caller>>> {
    let mut out: BTreeMap<String, Vec<Caller>> = BTreeMap::new();
    for chunk in statements.chunks(100) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT d.db_statement, r.service, r.operation, COUNT(*), CAST(AVG(d.duration_ns) AS DOUBLE PRECISION)
             FROM apm_spans d JOIN apm_spans r
               ON r.trace_id = d.trace_id AND r.service = d.service AND r.category = 'request'
             WHERE d.db_statement IS NOT NULL AND d.db_statement IN ({}) AND d.start_ns >= $1
               AND d.project_id = $2 AND d.category = 'db'
             GROUP BY d.db_statement, r.service, r.operation",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(since_ms.saturating_mul(1_000_000))
            .bind(project);
        for s in chunk {
            q = q.bind(s);
        }
        for r in q.fetch_all(store.pool()).await? {
            let avg: Option<f64> = r.try_get(4)?;
            out.entry(r.try_get(0)?).or_default().push(Caller {
                service: r.try_get(1)?,
                transaction: r.try_get(2)?,
                calls: r.try_get(3)?,
                avg_ms: avg.unwrap_or(0.0) / 1e6,
            });
        }
    }
    for callers in out.values_mut() {
        callers.sort_by_key(|c| std::cmp::Reverse(c.calls));
    }
    Ok(out)
}
