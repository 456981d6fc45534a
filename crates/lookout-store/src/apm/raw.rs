//! Reads of logs, of the error issues linked to a service, and of the transactions behind a
//! database statement. Span reads are in [`super::spans`], rollup reads in [`super::query`].

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};
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
                       AND ($4 = '' OR service = $4) AND ($5 = '' OR body LIKE $5 ESCAPE '\\')
                     ORDER BY time_ns DESC LIMIT $6",
                )
                .bind(p)
                .bind(since.saturating_mul(1_000_000))
                .bind(until.saturating_mul(1_000_000))
                .bind(service.unwrap_or(""))
                .bind(text.map_or(String::new(), crate::like_contains))
                .bind(limit)
                .fetch_all(store.pool())
                .await?
            }
        };
        for r in &rows {
            let attrs: String = r.try_get("attributes")?;
            out.push(LogRow {
                time_ns: r.try_get("time_ns")?,
                service: r.try_get("service")?,
                severity_number: r.try_get("severity_number")?,
                severity: r.try_get("severity")?,
                body: r.try_get("body")?,
                trace_id: r.try_get("trace_id")?,
                span_id: r.try_get("span_id")?,
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
                id: r.try_get("id")?,
                title: r.try_get("title")?,
                culprit: r.try_get("culprit")?,
                count: r.try_get("times_seen")?,
                last_seen: r.try_get("last_seen")?,
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
/// `lookout_apm::statement::normalize`) since `since_ms` (to the hour), busiest first.
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
            "SELECT statement, service, txn, CAST(SUM(calls) AS BIGINT) AS total_calls, SUM(sum_ms) AS total_ms
             FROM apm_statement_calls
             WHERE project_id = $1 AND bucket >= $2 AND statement IN ({})
             GROUP BY statement, service, txn",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql)
            .bind(project)
            .bind(since_ms.div_euclid(3_600_000) * 3_600_000);
        for s in chunk {
            q = q.bind(s);
        }
        for r in q.fetch_all(store.pool()).await? {
            let calls: i64 = r.try_get("total_calls")?;
            let sum: f64 = r.try_get("total_ms")?;
            out.entry(r.try_get("statement")?)
                .or_default()
                .push(Caller {
                    service: r.try_get("service")?,
                    transaction: r.try_get("txn")?,
                    calls,
                    avg_ms: if calls > 0 { sum / calls as f64 } else { 0.0 },
                });
        }
    }
    for callers in out.values_mut() {
        callers.sort_by_key(|c| std::cmp::Reverse(c.calls));
    }
    Ok(out)
}
