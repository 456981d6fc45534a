//! Reads of raw spans, which are stored in blocks ([`lookout_apm::block`]): a trace through the
//! trace index, span search over the blocks whose summaries can hold a match (newest or slowest
//! first, stopping as soon as no further block can change the answer), and per-instance request
//! figures from the summaries alone.

use std::collections::{BTreeMap, HashSet};

use lookout_apm::block::{decode, trace_key};
use lookout_apm::span::Span;
use lookout_core::time::now_ms;
use serde::Serialize;
use sqlx::Row;

use super::trace_index;
use crate::{Backend, Result, Store};

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

impl SpanRow {
    fn of(project_id: i64, s: Span) -> SpanRow {
        SpanRow {
            project_id,
            detail: serde_json::from_str(&s.detail).unwrap_or(serde_json::Value::Null),
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            service: s.service,
            instance: s.instance,
            name: s.name,
            kind: s.kind,
            start_ns: s.start_ns,
            duration_ns: s.duration_ns,
            status: s.status,
            error: s.error,
            category: s.category.as_str().to_string(),
            operation: s.operation,
            http_status: s.http_status,
            db_system: s.db_system,
            db_statement: s.db_statement,
            peer: s.peer,
        }
    }
}

/// Days of trace index a trace lookup probes: the raw retention (7 days), the day in progress,
/// and slack for a retention job that has not run yet.
const INDEX_DAYS: i64 = 10;

/// Most spans a trace returns.
pub const TRACE_SPANS: usize = 50_000;

/// A block's columns for [`block_spans`]; `None` when retention removed it meanwhile.
async fn block(store: &Store, id: i64) -> Result<Option<sqlx::any::AnyRow>> {
    Ok(sqlx::query(
        "SELECT service, instance, resource, payload FROM apm_span_blocks WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?)
}

/// The spans of a block row (its `service`, `instance`, `resource` and `payload` columns); an
/// unreadable block is logged and skipped, so one corrupt row cannot break a page.
fn block_spans(r: &sqlx::any::AnyRow) -> Result<Vec<Span>> {
    let service: String = r.try_get("service")?;
    let instance: Option<String> = r.try_get("instance")?;
    let resource: String = r.try_get("resource")?;
    let payload: Vec<u8> = r.try_get("payload")?;
    Ok(
        decode(&payload, &service, instance.as_deref(), &resource).unwrap_or_else(|e| {
            tracing::warn!(error = %e, service, "Skipped a span block that does not decode.");
            Vec::new()
        }),
    )
}

/// The spans of trace `trace_id` in `projects`, by start time; a span stored twice (an exporter
/// retry) appears once. See [`trace_capped`] for the bounds.
pub async fn trace(store: &Store, projects: &[i64], trace_id: &str) -> Result<Vec<SpanRow>> {
    Ok(trace_capped(store, projects, trace_id).await?.spans)
}

/// The spans of one trace as [`trace_capped`] reads them.
#[derive(Debug, Default)]
pub struct TraceSpans {
    /// By start time.
    pub spans: Vec<SpanRow>,
    /// Some of the trace was left out: past [`TRACE_SPANS`] spans or the most blocks a lookup
    /// reads.
    pub truncated: bool,
    /// The trace index lags (more keys wait to be indexed than a lookup scans): spans received
    /// a while ago may be missing, and an empty answer does not mean there is no such trace.
    pub incomplete_index: bool,
}

/// [`trace`], bounded: at most [`trace_index::MAX_TRACE_BLOCKS`] blocks are read, 100 at a
/// time, each chunk decoded as it is fetched, and reading stops once [`TRACE_SPANS`] spans are
/// kept — so a trace id reused in thousands of exports costs a view no more than that.
pub async fn trace_capped(store: &Store, projects: &[i64], trace_id: &str) -> Result<TraceSpans> {
    let trace_id = trace_id.to_ascii_lowercase();
    let today = now_ms().div_euclid(86_400_000);
    let days: Vec<i64> = (0..INDEX_DAYS).map(|i| today + 1 - i).collect();
    let (blocks, mut truncated, incomplete_index) =
        trace_index::blocks_of(store, projects, trace_key(&trace_id), &days).await?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut resources: BTreeMap<(i64, String), serde_json::Value> = BTreeMap::new();
    'chunks: for chunk in blocks.chunks(100) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT project_id, service, instance, resource, payload FROM apm_span_blocks
             WHERE id IN ({}) ORDER BY id",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for b in chunk {
            q = q.bind(*b);
        }
        for r in q.fetch_all(store.pool()).await? {
            let project: i64 = r.try_get("project_id")?;
            if !projects.contains(&project) {
                continue;
            }
            for s in block_spans(&r)? {
                if s.trace_id != trace_id || seen.contains(&s.span_id) {
                    continue;
                }
                if out.len() >= TRACE_SPANS {
                    truncated = true;
                    break 'chunks;
                }
                seen.insert(s.span_id.clone());
                let key = (project, s.resource.clone());
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
                let mut row = SpanRow::of(project, s);
                if let serde_json::Value::Object(m) = &mut row.detail {
                    m.insert("resource".into(), resources[&key].clone());
                }
                out.push(row);
            }
        }
    }
    // Stable: spans that start together keep the order they were stored in.
    out.sort_by_key(|s| s.start_ns);
    Ok(TraceSpans {
        spans: out,
        truncated,
        incomplete_index,
    })
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

/// Most blocks one search decodes per project (about a million spans): a search for something
/// rare over a long window answers with what it found there rather than reading every block.
const SEARCH_BLOCKS: usize = 2_000;

/// Block summaries fetched per round trip.
const SEARCH_PAGE: i64 = 200;

/// The summary column holding the longest span a search can match in a block.
fn max_column(backend: Backend, category: Option<&str>) -> String {
    match category {
        Some("request") => "max_request_ns".into(),
        Some("db") => "max_db_ns".into(),
        Some("external") => "max_external_ns".into(),
        Some("internal") => "max_internal_ns".into(),
        _ => format!(
            "{}(max_request_ns, max_db_ns, max_external_ns, max_internal_ns)",
            crate::dialect::greatest(backend)
        ),
    }
}

/// Spans matching `q`, newest first (or slowest first).
pub async fn search(store: &Store, q: &SpanSearch<'_>) -> Result<Vec<SpanRow>> {
    let limit = q.limit.clamp(0, 10_000) as usize;
    let mut out: Vec<SpanRow> = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for &p in q.projects {
        out.extend(search_project(store, q, p, limit).await?);
    }
    sort(&mut out, q.slowest_first);
    out.truncate(limit);
    Ok(out)
}

fn sort(rows: &mut [SpanRow], slowest_first: bool) {
    if slowest_first {
        rows.sort_by_key(|s| std::cmp::Reverse(s.duration_ns));
    } else {
        rows.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
    }
}

async fn search_project(
    store: &Store,
    q: &SpanSearch<'_>,
    project: i64,
    limit: usize,
) -> Result<Vec<SpanRow>> {
    let since_ns = q.since.saturating_mul(1_000_000);
    let until_ns = q.until.saturating_mul(1_000_000);
    let min_ns = q.min_duration_ms.map_or(0, |d| (d * 1e6) as i64);
    let max_ns = q.max_duration_ms.map_or(i64::MAX, |d| (d * 1e6) as i64);
    let longest = max_column(store.backend(), q.category);
    let order = if q.slowest_first {
        longest.as_str()
    } else {
        "last_ns"
    };
    // The attribute as it appears in the stored JSON.
    let attribute = q
        .attribute
        .map(|(k, v)| format!("{}:{}", serde_json::json!(k), serde_json::json!(v)));
    let sql = format!(
        "SELECT id, {order} AS bound FROM apm_span_blocks
         WHERE project_id = $1 AND last_ns >= $2 AND first_ns < $3 AND ($4 = '' OR service = $4)
           AND {longest} >= $5 AND ($6 = 0 OR errors > 0) AND ($7 = 0 OR requests > 0)
         ORDER BY {order} DESC LIMIT $8 OFFSET $9"
    );
    let mut found: Vec<SpanRow> = Vec::new();
    let mut read = 0usize;
    // Pages are offsets into a table that grows meanwhile: a block may come round twice.
    let mut decoded = HashSet::new();
    'pages: loop {
        let page = sqlx::query(&sql)
            .bind(project)
            .bind(since_ns)
            .bind(until_ns)
            .bind(q.service.unwrap_or(""))
            .bind(min_ns)
            .bind(i64::from(q.error == Some(true)))
            .bind(i64::from(q.category == Some("request")))
            .bind(SEARCH_PAGE)
            .bind(read as i64)
            .fetch_all(store.pool())
            .await?;
        let full = page.len() as i64 == SEARCH_PAGE;
        for r in page {
            if read >= SEARCH_BLOCKS {
                break 'pages;
            }
            read += 1;
            let (id, bound): (i64, i64) = (r.try_get("id")?, r.try_get("bound")?);
            if !decoded.insert(id) {
                continue;
            }
            // Blocks come in the order of the answer: once the k-th best found beats the best
            // this block can hold, no later block can change the answer.
            if found.len() >= limit {
                let kth = &found[limit - 1];
                let kth = if q.slowest_first {
                    kth.duration_ns
                } else {
                    kth.start_ns
                };
                if bound < kth {
                    break 'pages;
                }
            }
            let Some(row) = block(store, id).await? else {
                continue; // removed by retention meanwhile
            };
            for s in block_spans(&row)? {
                let matches = s.start_ns >= since_ns
                    && s.start_ns < until_ns
                    && q.operation.is_none_or(|o| s.operation == o)
                    && q.category.is_none_or(|c| s.category.as_str() == c)
                    && s.duration_ns >= min_ns
                    && s.duration_ns <= max_ns
                    && q.error.is_none_or(|e| s.error == e)
                    && attribute.as_deref().is_none_or(|a| s.detail.contains(a));
                if matches {
                    found.push(SpanRow::of(project, s));
                }
            }
            sort(&mut found, q.slowest_first);
            found.truncate(limit);
        }
        if !full {
            break;
        }
    }
    Ok(found)
}

/// Per-instance figures of a service's requests, from the block summaries.
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

/// Instances of `service` in `[since, until)` ms, counted per stored block: a block (one export)
/// that straddles an end of the window counts whole.
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
            "SELECT COALESCE(instance, '') AS instance_name, CAST(SUM(requests) AS BIGINT) AS total_requests,
                    CAST(SUM(request_errors) AS BIGINT) AS total_errors,
                    CAST(SUM(request_ns) AS DOUBLE PRECISION) AS total_ns
             FROM apm_span_blocks
             WHERE project_id = $1 AND service = $2 AND last_ns >= $3 AND first_ns < $4 AND requests > 0
             GROUP BY COALESCE(instance, '') ORDER BY 2 DESC LIMIT 50",
        )
        .bind(p)
        .bind(service)
        .bind(since.saturating_mul(1_000_000))
        .bind(until.saturating_mul(1_000_000))
        .fetch_all(store.pool())
        .await?
        {
            let count: i64 = r.try_get::<Option<i64>, _>("total_requests")?.unwrap_or(0);
            let total: f64 = r.try_get::<Option<f64>, _>("total_ns")?.unwrap_or(0.0);
            out.push(Instance {
                instance: r.try_get("instance_name")?,
                count,
                errors: r.try_get::<Option<i64>, _>("total_errors")?.unwrap_or(0),
                avg_ms: if count > 0 {
                    total / count as f64 / 1e6
                } else {
                    0.0
                },
            });
        }
    }
    Ok(out)
}

/// Hands every span of `projects` that started in `[since, until)` (of `category` when given)
/// to `visit` with its project, oldest block first, decoding one block at a time: a query over
/// raw spans holds one block in memory, not the window (560,000 collected spans took 2.3 GB).
/// The first error of `visit` stops the scan and is returned; that is also how a caller stops
/// early (a deadline, a memory budget).
pub async fn scan_each<E: From<crate::StoreError>>(
    store: &Store,
    projects: &[i64],
    category: Option<&str>,
    since: i64,
    until: i64,
    mut visit: impl FnMut(i64, Span) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let since_ns = since.saturating_mul(1_000_000);
    let until_ns = until.saturating_mul(1_000_000);
    for &p in projects {
        let ids: Vec<i64> = sqlx::query(
            "SELECT id FROM apm_span_blocks WHERE project_id = $1 AND last_ns >= $2 AND first_ns < $3
               AND ($4 = 0 OR requests > 0) ORDER BY id",
        )
        .bind(p)
        .bind(since_ns)
        .bind(until_ns)
        .bind(i64::from(category == Some("request")))
        .fetch_all(store.pool())
        .await
        .map_err(crate::StoreError::from)?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()
        .map_err(crate::StoreError::from)?;
        for id in ids {
            let Some(row) = block(store, id).await? else {
                continue;
            };
            for s in block_spans(&row)? {
                if s.start_ns >= since_ns
                    && s.start_ns < until_ns
                    && category.is_none_or(|c| s.category.as_str() == c)
                {
                    visit(p, s)?;
                }
            }
        }
    }
    Ok(())
}
