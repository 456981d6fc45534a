//! Reads over the APM rollups and raw spans. Every figure (services list, service page,
//! transactions API, NRQL later) goes through [`fold`], which reads day rows for whole days,
//! hour rows for whole hours and minute rows for the rest: one source, so two pages never
//! disagree, and a 7-day query reads a few thousand rows instead of millions.

use std::collections::BTreeMap;

use lookout_apm::rollup::Red;
use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// The (tier, from, to) ranges that cover `[since, until)` with the fewest rows. `since` is
/// taken down and `until` up to whole minutes (the finest rollup).
pub fn plan(since: i64, until: i64) -> Vec<(i64, i64, i64)> {
    if until <= since {
        return Vec::new();
    }
    let since = since.div_euclid(MINUTE) * MINUTE;
    let until = (until + MINUTE - 1).div_euclid(MINUTE) * MINUTE;
    let mut out = Vec::new();
    let ceil = |t: i64, w: i64| (t + w - 1).div_euclid(w) * w;
    let floor = |t: i64, w: i64| t.div_euclid(w) * w;
    let hours = |a: i64, b: i64, out: &mut Vec<(i64, i64, i64)>| {
        let (h0, h1) = (ceil(a, HOUR), floor(b, HOUR));
        if h1 > h0 && b - a > 3 * HOUR {
            if h0 > a {
                out.push((0, a, h0));
            }
            out.push((1, h0, h1));
            if b > h1 {
                out.push((0, h1, b));
            }
        } else if b > a {
            out.push((0, a, b));
        }
    };
    let (d0, d1) = (ceil(since, DAY), floor(until, DAY));
    if d1 > d0 && until - since > 2 * DAY {
        hours(since, d0, &mut out);
        out.push((2, d0, d1));
        hours(d1, until, &mut out);
    } else {
        hours(since, until, &mut out);
    }
    out
}

/// Which rollup rows to read.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    /// Projects to read.
    pub projects: &'a [i64],
    /// One service, or all.
    pub service: Option<&'a str>,
    /// One category (`request`, `db`, `external`), or all.
    pub category: Option<&'a str>,
    /// One operation, or all.
    pub operation: Option<&'a str>,
}

/// One stored rollup row, as [`fold`] hands it to the grouping function.
pub struct Cell<'a> {
    /// Bucket start, ms.
    pub bucket: i64,
    /// Service.
    pub service: &'a str,
    /// Category.
    pub category: &'a str,
    /// Operation.
    pub operation: &'a str,
    /// HTTP status class.
    pub status_class: &'a str,
}

/// Merges the rollup rows matching `f` in `[since, until)` into one [`Red`] per group that
/// `group` names (return `None` to skip a row).
pub async fn fold<K: Ord>(
    store: &Store,
    f: &Filter<'_>,
    since: i64,
    until: i64,
    group: impl Fn(&Cell<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Red>> {
    fold_ranges(store, f, &plan(since, until), group).await
}

/// Like [`fold`] for a chart: rows of the one tier whose width is `step` (see [`chart_step`]),
/// grouped by bucket, so every point of the series covers the same width.
pub async fn series(
    store: &Store,
    f: &Filter<'_>,
    since: i64,
    until: i64,
    step: i64,
) -> Result<BTreeMap<i64, Red>> {
    let tier = match step {
        MINUTE => 0,
        HOUR => 1,
        _ => 2,
    };
    let from = since.div_euclid(step) * step;
    fold_ranges(store, f, &[(tier, from, until)], |c| Some(c.bucket)).await
}

/// Merges the rollup rows of `ranges` (tier, from, to) that match `f`, grouped by `group`.
pub async fn fold_ranges<K: Ord>(
    store: &Store,
    f: &Filter<'_>,
    ranges: &[(i64, i64, i64)],
    group: impl Fn(&Cell<'_>) -> Option<K>,
) -> Result<BTreeMap<K, Red>> {
    let mut out: BTreeMap<K, Red> = BTreeMap::new();
    for &project in f.projects {
        for &(tier, from, to) in ranges {
            let rows = sqlx::query(
                "SELECT bucket, service, category, operation, status_class, error, count, errors, sum_ms, min_ms, max_ms, sketch
                 FROM apm_rollups
                 WHERE project_id = $1 AND tier = $2 AND bucket >= $3 AND bucket < $4
                   AND ($5 = '' OR service = $5) AND ($6 = '' OR category = $6) AND ($7 = '' OR operation = $7)",
            )
            .bind(project)
            .bind(tier)
            .bind(from)
            .bind(to)
            .bind(f.service.unwrap_or(""))
            .bind(f.category.unwrap_or(""))
            .bind(f.operation.unwrap_or(""))
            .fetch_all(store.pool())
            .await?;
            for r in &rows {
                let service: &str = r.try_get(1)?;
                let category: &str = r.try_get(2)?;
                let operation: &str = r.try_get(3)?;
                let status_class: &str = r.try_get(4)?;
                let cell = Cell {
                    bucket: r.try_get(0)?,
                    service,
                    category,
                    operation,
                    status_class,
                };
                let Some(k) = group(&cell) else { continue };
                let sketch: &[u8] = r.try_get(11)?;
                let red = out.entry(k).or_default();
                if let Err(e) = red.add_row(
                    r.try_get::<i64, _>(5)? != 0,
                    r.try_get(6)?,
                    r.try_get(7)?,
                    r.try_get(8)?,
                    r.try_get(9)?,
                    r.try_get(10)?,
                    sketch,
                ) {
                    tracing::warn!(error = %e, service, operation, "Skipped a rollup row with a corrupt sketch.");
                }
            }
        }
    }
    Ok(out)
}

/// The width of the buckets a chart over `[since, until)` uses: a minute up to 6 hours, an hour
/// up to 8 days, a day beyond.
pub fn chart_step(since: i64, until: i64) -> i64 {
    match until - since {
        d if d <= 6 * HOUR => MINUTE,
        d if d <= 8 * DAY => HOUR,
        _ => DAY,
    }
}

/// Sets a service's Apdex target and slow-query threshold (ms) in every project of `projects`
/// that has it; false when none has.
pub async fn set_service_settings(
    store: &Store,
    projects: &[i64],
    service: &str,
    apdex_t_ms: Option<f64>,
    slow_query_ms: Option<f64>,
) -> Result<bool> {
    let mut n = 0;
    for &p in projects {
        n += sqlx::query(
            "UPDATE apm_services SET apdex_t_ms = COALESCE($1, apdex_t_ms), slow_query_ms = COALESCE($2, slow_query_ms)
             WHERE project_id = $3 AND name = $4",
        )
        .bind(apdex_t_ms)
        .bind(slow_query_ms)
        .bind(p)
        .bind(service)
        .execute(store.pool())
        .await?
        .rows_affected();
    }
    Ok(n > 0)
}

/// A service as the services list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Project.
    pub project_id: i64,
    /// `service.name`.
    pub name: String,
    /// Apdex target, ms.
    pub apdex_t_ms: f64,
    /// Database calls from this duration on are slow, ms.
    pub slow_query_ms: f64,
    /// Last span seen, ms.
    pub last_seen: i64,
}

/// Services of `projects` seen since `since` (ms).
pub async fn services(store: &Store, projects: &[i64], since: i64) -> Result<Vec<Service>> {
    let mut out = Vec::new();
    for &p in projects {
        for r in sqlx::query(
            "SELECT name, apdex_t_ms, slow_query_ms, last_seen FROM apm_services WHERE project_id = $1 AND last_seen >= $2 ORDER BY name",
        )
        .bind(p)
        .bind(since)
        .fetch_all(store.pool())
        .await?
        {
            out.push(Service {
                project_id: p,
                name: r.try_get(0)?,
                apdex_t_ms: r.try_get(1)?,
                slow_query_ms: r.try_get(2)?,
                last_seen: r.try_get(3)?,
            });
        }
    }
    Ok(out)
}

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
    duration_ns, status, error, category, operation, http_status, db_system, db_statement, peer, detail FROM apm_spans";

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
    for r in &rows {
        let s = span_row(r, true)?;
        if projects.contains(&s.project_id) && seen.insert(s.span_id.clone()) {
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
        out.sort_by(|a, b| b.duration_ns.cmp(&a.duration_ns));
    } else {
        out.sort_by(|a, b| b.start_ns.cmp(&a.start_ns));
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

/// One service-map edge.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    /// Calling service.
    pub source: String,
    /// Called service, database system or host.
    pub target: String,
    /// `service`, `db` or `external`.
    pub target_kind: String,
    /// Calls.
    pub count: i64,
    /// Failed calls.
    pub errors: i64,
    /// Mean call duration, ms.
    pub avg_ms: f64,
}

/// Service-map edges of `projects` in `[since, until)` ms (hour rows for whole hours).
pub async fn edges(store: &Store, projects: &[i64], since: i64, until: i64) -> Result<Vec<Edge>> {
    let mut acc: BTreeMap<(String, String, String), (i64, i64, f64)> = BTreeMap::new();
    for &p in projects {
        for (tier, from, to) in plan(since, until) {
            // Edges have no day tier; a day range reads its hours.
            let tier = tier.min(1);
            for r in sqlx::query(
                "SELECT source, target, target_kind, count, errors, sum_ms FROM apm_edges
                 WHERE project_id = $1 AND tier = $2 AND bucket >= $3 AND bucket < $4",
            )
            .bind(p)
            .bind(tier)
            .bind(from)
            .bind(to)
            .fetch_all(store.pool())
            .await?
            {
                let e = acc
                    .entry((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
                    .or_default();
                e.0 += r.try_get::<i64, _>(3)?;
                e.1 += r.try_get::<i64, _>(4)?;
                e.2 += r.try_get::<f64, _>(5)?;
            }
        }
    }
    Ok(acc
        .into_iter()
        .map(
            |((source, target, target_kind), (count, errors, sum))| Edge {
                source,
                target,
                target_kind,
                count,
                errors,
                avg_ms: if count > 0 { sum / count as f64 } else { 0.0 },
            },
        )
        .collect())
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
pub async fn logs(
    store: &Store,
    projects: &[i64],
    trace_id: Option<&str>,
    service: Option<&str>,
    text: Option<&str>,
    since: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<LogRow>> {
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
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// Deletes raw spans and logs older than `before_ms`, and minute rollups older than
/// `minutes_before_ms`; returns the rows removed. Hour and day rollups are kept.
pub async fn purge(store: &Store, before_ms: i64, minutes_before_ms: i64) -> Result<u64> {
    let mut n = 0;
    for (sql, at) in [
        (
            "DELETE FROM apm_spans WHERE start_ns < $1",
            before_ms.saturating_mul(1_000_000),
        ),
        (
            "DELETE FROM apm_logs WHERE time_ns < $1",
            before_ms.saturating_mul(1_000_000),
        ),
        (
            "DELETE FROM apm_rollups WHERE tier = 0 AND bucket < $1",
            minutes_before_ms,
        ),
        (
            "DELETE FROM apm_edges WHERE tier = 0 AND bucket < $1",
            minutes_before_ms,
        ),
        (
            "DELETE FROM apm_metric_points WHERE minute < $1",
            minutes_before_ms,
        ),
    ] {
        n += sqlx::query(sql)
            .bind(at)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_reads_days_hours_and_minutes() {
        let now = 10 * DAY + 5 * HOUR + 17 * MINUTE + 30_000;
        let p = plan(now - 7 * DAY, now);
        let tiers: Vec<i64> = p.iter().map(|r| r.0).collect();
        assert_eq!(tiers, vec![0, 1, 2, 1, 0]);
        // Contiguous and covering.
        for w in p.windows(2) {
            assert_eq!(w[0].2, w[1].1);
        }
        assert_eq!(p[0].1, (now - 7 * DAY) / MINUTE * MINUTE);
        assert_eq!(p.last().unwrap().2, (now + MINUTE - 1) / MINUTE * MINUTE);
        assert_eq!(
            plan(now - HOUR, now),
            vec![(0, now / MINUTE * MINUTE - HOUR, (now / MINUTE + 1) * MINUTE)]
        );
        assert!(plan(now, now - 1).is_empty());
    }
}
