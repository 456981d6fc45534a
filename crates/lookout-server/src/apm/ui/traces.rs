//! Trace search, the trace waterfall (with the trace's logs) and the service map.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::fmt::Write as _;

use crate::apm::trace_view::{ServiceMap, Tree};
use crate::apm::ui::performance::{ms, tabs, window};
use crate::charts::esc;
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_store::apm::query;

/// The search form's fields.
#[derive(Debug, Deserialize, Default)]
pub struct SearchForm {
    service: Option<String>,
    transaction: Option<String>,
    min_ms: Option<String>,
    status: Option<String>,
    attribute: Option<String>,
    range: Option<String>,
}

#[derive(Template)]
#[template(path = "traces.html")]
struct SearchPage {
    title: String,
    ctx: PageCtx,
    service: String,
    transaction: String,
    min_ms: String,
    status: String,
    attribute: String,
    ranges: Vec<(&'static str, bool)>,
    error: String,
    results: Vec<(When, String, String, String, String, bool, String)>,
}

/// `GET /performance/traces`.
pub async fn search(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(f): Query<SearchForm>,
) -> UiResult {
    let (range, since, until) = window(f.range.as_deref());
    let text = |v: &Option<String>| v.clone().unwrap_or_default().trim().to_string();
    let (service, transaction, min_ms, status, attribute) = (
        text(&f.service),
        text(&f.transaction),
        text(&f.min_ms),
        text(&f.status),
        text(&f.attribute),
    );
    let mut error = String::new();
    let min = if min_ms.is_empty() {
        None
    } else {
        match min_ms.parse::<f64>() {
            Ok(v) if v >= 0.0 => Some(v),
            _ => {
                error = "Minimum duration: a number of milliseconds.".into();
                None
            }
        }
    };
    let attr = match attribute.split_once('=') {
        Some((k, v)) => Some((k.trim(), v.trim())),
        None if attribute.is_empty() => None,
        None => {
            error = "Attribute: key=value.".into();
            None
        }
    };
    let projects = [ctx.project_id];
    let results = if error.is_empty() {
        query::search(
            state.store(),
            &query::SpanSearch {
                projects: &projects,
                service: Some(service.as_str()).filter(|s| !s.is_empty()),
                operation: Some(transaction.as_str()).filter(|s| !s.is_empty()),
                category: Some("request"),
                min_duration_ms: min,
                error: match status.as_str() {
                    "error" => Some(true),
                    "ok" => Some(false),
                    _ => None,
                },
                attribute: attr,
                since,
                until,
                limit: 100,
                ..query::SpanSearch::default()
            },
        )
        .await?
    } else {
        Vec::new()
    };
    Ok(render(&SearchPage {
        title: "Traces".into(),
        results: results
            .iter()
            .map(|s| {
                (
                    When::at(s.start_ns / 1_000_000),
                    s.service.clone(),
                    s.operation.clone(),
                    ms(Some(s.duration_ns as f64 / 1e6)),
                    s.http_status.map(|c| c.to_string()).unwrap_or_default(),
                    s.error,
                    s.trace_id.clone(),
                )
            })
            .collect(),
        service,
        transaction,
        min_ms,
        status,
        attribute,
        ranges: tabs(&range),
        error,
        ctx,
    }))
}

#[derive(Template)]
#[template(path = "trace.html")]
struct TracePage {
    title: String,
    ctx: PageCtx,
    trace_id: String,
    start: When,
    duration: String,
    span_count: String,
    /// Some spans were left out (the view's bounds).
    truncated: bool,
    /// The trace index lags: spans received a while ago may be missing.
    incomplete_index: bool,
    services: Vec<String>,
    waterfall: String,
    /// (when, offset into the trace, severity, service, body, span).
    logs: Vec<(When, String, String, String, String, String)>,
}

/// `GET /performance/traces/{id}`: the waterfall is one pre-built HTML string (bars placed with
/// percentages, details in a `<details>` per span) so a 10,000-span trace renders in one pass
/// without script.
pub async fn trace(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<String>,
) -> UiResult {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok((
            StatusCode::BAD_REQUEST,
            "a trace id is 32 hexadecimal digits",
        )
            .into_response());
    }
    let projects = [ctx.project_id];
    let query::TraceSpans {
        spans,
        truncated,
        incomplete_index,
    } = query::trace_capped(state.store(), &projects, &id).await?;
    if spans.is_empty() && incomplete_index {
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "5")],
            "the trace index is catching up: this trace may be stored but not found yet; try again shortly",
        )
            .into_response());
    }
    if spans.is_empty() {
        return Ok((
            StatusCode::NOT_FOUND,
            "no such trace (raw spans are kept 7 days)",
        )
            .into_response());
    }
    let logs = query::logs(
        state.store(),
        &query::LogQuery {
            projects: &projects,
            trace_id: Some(&id),
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    let tree = Tree::of(&spans);
    let total = tree.duration_ns.max(1) as f64;
    let mut w = String::with_capacity(spans.len() * 400);
    w.push_str(r#"<ol class="waterfall" id="waterfall">"#);
    for &(i, depth) in &tree.order {
        let sp = &spans[i];
        let left = (sp.start_ns - tree.start_ns) as f64 / total * 100.0;
        let width = (sp.duration_ns as f64 / total * 100.0).max(0.2);
        let attrs = sp
            .detail
            .get("attributes")
            .map(|a| a.to_string())
            .unwrap_or_default();
        let _ = write!(
            w,
            r#"<li class="span{}" data-span="{}"><details><summary><span class="label" style="padding-left:{}em"><span class="svc">{}</span> {}</span><span class="track"><span class="bar {}" style="left:{left:.3}%;width:{width:.3}%"></span></span><span class="dur">{}</span></summary><div class="mono detail">{}{}</div></details></li>"#,
            if sp.error { " failed" } else { "" },
            esc(&sp.span_id),
            depth.min(40),
            esc(&sp.service),
            esc(&sp.name),
            esc(&sp.category),
            esc(&ms(Some(sp.duration_ns as f64 / 1e6))),
            sp.db_statement
                .as_deref()
                .map(|s| format!("{}<br>", esc(s)))
                .unwrap_or_default(),
            esc(&attrs),
        );
    }
    w.push_str("</ol>");
    Ok(render(&TracePage {
        title: format!("Trace {id}"),
        trace_id: id.to_ascii_lowercase(),
        start: When::at(tree.start_ns / 1_000_000),
        duration: ms(Some(tree.duration_ns as f64 / 1e6)),
        span_count: crate::ui::fmt::grouped(i64::try_from(spans.len()).unwrap_or(i64::MAX)),
        truncated,
        incomplete_index,
        services: tree.services.clone(),
        waterfall: w,
        logs: logs
            .iter()
            .map(|l| {
                (
                    When::at(l.time_ns / 1_000_000),
                    // Where in the trace it was logged, which is what a reader lines up
                    // with the waterfall above.
                    match (l.time_ns - tree.start_ns) as f64 / 1e6 {
                        off if off < 0.0 => ms(Some(off)),
                        off => format!("+{}", ms(Some(off))),
                    },
                    l.severity.clone(),
                    l.service.clone(),
                    l.body.clone(),
                    l.span_id.clone().unwrap_or_default(),
                )
            })
            .collect(),
        ctx,
    }))
}

#[derive(Template)]
#[template(path = "service_map.html")]
struct MapPage {
    title: String,
    ctx: PageCtx,
    ranges: Vec<(&'static str, bool)>,
    svg: String,
    edges: Vec<(String, String, String, String, String, String)>,
}

/// `GET /performance/map`: services on the left, what they call on the right, callers placed
/// before callees (a layered layout by call depth).
pub async fn map(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(f): Query<SearchForm>,
) -> UiResult {
    let (range, since, until) = window(f.range.as_deref());
    let m = ServiceMap::build(state.store(), &[ctx.project_id], since, until).await?;
    Ok(render(&MapPage {
        title: "Service map".into(),
        svg: map_svg(&m),
        edges: m
            .edges
            .iter()
            .map(|e| {
                (
                    e.source.clone(),
                    e.target.clone(),
                    e.target_kind.clone(),
                    crate::ui::fmt::grouped(e.count),
                    ms(Some(e.avg_ms)),
                    crate::apm::ui::performance::pct(if e.count > 0 {
                        e.errors as f64 / e.count as f64
                    } else {
                        0.0
                    }),
                )
            })
            .collect(),
        ranges: tabs(&range),
        ctx,
    }))
}

/// The map as SVG: each node in the column of its call depth (longest path from a service
/// nobody calls), edges as lines labelled with calls.
fn map_svg(m: &ServiceMap) -> String {
    use std::collections::HashMap;
    let mut depth: HashMap<&str, usize> = m.nodes.iter().map(|n| (n.id.as_str(), 0)).collect();
    // Longest-path layering; bounded passes so cycles (A calls B calls A) still end.
    for _ in 0..m.nodes.len().min(12) {
        for e in &m.edges {
            let d = depth.get(e.source.as_str()).copied().unwrap_or(0) + 1;
            let t = depth.entry(e.target.as_str()).or_insert(0);
            if *t < d && d < 12 {
                *t = d;
            }
        }
    }
    let columns = depth.values().copied().max().unwrap_or(0) + 1;
    let mut rows: Vec<usize> = vec![0; columns];
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    for n in &m.nodes {
        let c = depth[n.id.as_str()];
        pos.insert(
            n.id.as_str(),
            (90.0 + c as f64 * 220.0, 40.0 + rows[c] as f64 * 70.0),
        );
        rows[c] += 1;
    }
    let w = 180.0 + columns as f64 * 220.0;
    let h = 60.0 + rows.iter().copied().max().unwrap_or(1) as f64 * 70.0;
    let mut svg = format!(
        r#"<figure class="chart"><svg id="service-map" viewBox="0 0 {w} {h}" role="img" aria-label="Service map">"#
    );
    for e in &m.edges {
        let (Some(a), Some(b)) = (pos.get(e.source.as_str()), pos.get(e.target.as_str())) else {
            continue;
        };
        let _ = write!(
            svg,
            r#"<line class="edge{}" x1="{:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}"><title>{} → {}: {} calls, {} avg</title></line>"#,
            if e.errors > 0 { " failed" } else { "" },
            a.0 + 70.0,
            a.1,
            b.0 - 70.0,
            b.1,
            esc(&e.source),
            esc(&e.target),
            crate::ui::fmt::grouped(e.count),
            esc(&ms(Some(e.avg_ms)))
        );
    }
    for n in &m.nodes {
        let (x, y) = pos[n.id.as_str()];
        let _ = write!(
            svg,
            r#"<g class="node {}" data-node="{}"><rect x="{:.0}" y="{:.0}" width="140" height="36" rx="6"/><text x="{x:.0}" y="{:.0}" text-anchor="middle">{}</text></g>"#,
            esc(&n.kind),
            esc(&n.id),
            x - 70.0,
            y - 18.0,
            y + 5.0,
            esc(&n.id.chars().take(22).collect::<String>())
        );
    }
    svg.push_str("</svg></figure>");
    svg
}
