//! `/api/v1/apm/…` and `/api/v1/traces…`: services and their golden metrics, transactions,
//! traces, trace search, logs, the service map and metric series. Times are RFC 3339
//! (`since`, `until`; default the last hour); durations are milliseconds; rates are 0..1.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::scope::projects_for;
use crate::apm;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::teams::ownership::{check_team, filter_owned, TeamParam};
use lookout_core::time::{iso, now_ms};
use lookout_store::apm::{metrics as mstore, query};
use lookout_store::ownership::TeamChange;

/// A time window and the projects to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// RFC 3339 start (default: an hour before `until`).
    pub since: Option<String>,
    /// RFC 3339 end (default: now).
    pub until: Option<String>,
    /// Project id or slug (default: every project).
    pub project: Option<String>,
}

impl Window {
    /// `[since, until)` in ms.
    pub fn range(&self) -> ApiResult<(i64, i64)> {
        range(&self.since, &self.until)
    }
}

/// `[since, until)` in ms from RFC 3339 `since` and `until` (default: the hour before now).
fn range(since: &Option<String>, until: &Option<String>) -> ApiResult<(i64, i64)> {
    let parse = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        v.as_deref()
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s.trim())
                    .map(|t| t.timestamp_millis())
                    .map_err(|_| ApiError::Validation(format!("{field}: not an RFC 3339 time")))
            })
            .transpose()
    };
    let until = parse("until", until)?.unwrap_or_else(now_ms);
    let since = parse("since", since)?.unwrap_or(until - 3_600_000);
    if since >= until {
        return Err(ApiError::Validation("since: must be before until".into()));
    }
    if until - since > 400 * 86_400_000 {
        return Err(ApiError::Validation(
            "since: windows are limited to 400 days".into(),
        ));
    }
    Ok((since, until))
}

/// Services with their throughput, latency, error rate and Apdex over the window.
#[utoipa::path(get, path = "/api/v1/apm/services", tag = "apm", params(Window, TeamParam),
    responses((status = 200, body = crate::api::schemas_ops::ApmRangeList), (status = 422, body = ErrorBody)))]
pub async fn services(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(w): ApiQuery<Window>,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<Value>> {
    let (since, until) = w.range()?;
    let ids = projects_for(&state, w.project.as_deref()).await?;
    let all = apm::services(state.store(), &ids, since, until).await?;
    let items: Vec<Value> = filter_owned(&state, who.user_id(), &team, all, |(s, _)| s.team_id)
        .await?
        .iter()
        .map(|(s, f)| {
            let mut v = json!(f);
            v["project_id"] = json!(s.project_id);
            v["team_id"] = json!(s.team_id);
            v["apdex_t_ms"] = json!(s.apdex_t_ms);
            v["slow_query_ms"] = json!(s.slow_query_ms);
            v["last_seen"] = json!(iso(s.last_seen));
            v
        })
        .collect();
    Ok(Json(
        json!({ "since": iso(since), "until": iso(until), "items": items }),
    ))
}

/// One service's golden metrics: figures, status classes, transactions, databases, external
/// hosts, time breakdown, chart, slow query log, instances and linked issues.
#[utoipa::path(get, path = "/api/v1/apm/services/{name}", tag = "apm", params(("name" = String, Path, description = "Service name"), Window),
    responses((status = 200, body = crate::api::schemas_ops::ApmServiceView), (status = 404, body = ErrorBody)))]
pub async fn service(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> ApiResult<Json<Value>> {
    let (since, until) = w.range()?;
    let ids = projects_for(&state, w.project.as_deref()).await?;
    let o = apm::overview(state.store(), &ids, &name, since, until)
        .await?
        .ok_or(ApiError::NotFound("service"))?;
    let mut v = json!(o);
    v["since"] = json!(iso(since));
    v["until"] = json!(iso(until));
    Ok(Json(v))
}

/// The body of a service settings change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Apdex target T, ms (satisfied ≤ T, tolerating ≤ 4T).
    pub apdex_t_ms: Option<f64>,
    /// Database calls from this duration on enter the slow query log, ms.
    pub slow_query_ms: Option<f64>,
    /// Project id or slug (default: every project that has the service).
    pub project: Option<String>,
    /// The owning team's id; null: no owner; absent: kept.
    #[serde(default, deserialize_with = "crate::teams::ownership::present")]
    #[schema(value_type = Option<i64>)]
    pub team_id: Option<Option<i64>>,
}

/// Changes a service's Apdex target and slow-query threshold.
#[utoipa::path(put, path = "/api/v1/apm/services/{name}", tag = "apm",
    params(("name" = String, Path, description = "Service name")), request_body = ServiceSettings,
    responses((status = 200, body = crate::api::schemas_ops::ApmServiceSettings), (status = 404, body = ErrorBody)))]
pub async fn update_service(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ServiceSettings>,
) -> ApiResult<Json<Value>> {
    for (field, v) in [
        ("apdex_t_ms", body.apdex_t_ms),
        ("slow_query_ms", body.slow_query_ms),
    ] {
        if v.is_some_and(|v| !(v.is_finite() && v > 0.0 && v <= 3_600_000.0)) {
            return Err(ApiError::Validation(format!(
                "{field}: must be between 0 and 3600000 ms"
            )));
        }
    }
    if let Some(Some(team)) = body.team_id {
        check_team(&state, team).await?;
    }
    let team = body.team_id.map_or(TeamChange::Keep, TeamChange::Set);
    let ids = projects_for(&state, body.project.as_deref()).await?;
    if !query::set_service_settings(
        state.store(),
        &ids,
        &name,
        body.apdex_t_ms,
        body.slow_query_ms,
        team,
    )
    .await?
    {
        return Err(ApiError::NotFound("service"));
    }
    tracing::info!(service = %name, "APM service settings changed.");
    let s = query::service(state.store(), &ids, &name)
        .await?
        .ok_or(ApiError::NotFound("service"))?;
    Ok(Json(
        json!({"name": s.name, "apdex_t_ms": s.apdex_t_ms, "slow_query_ms": s.slow_query_ms,
               "team_id": s.team_id}),
    ))
}

/// A service's transactions with count, error rate, percentiles and Apdex.
#[utoipa::path(get, path = "/api/v1/apm/services/{name}/transactions", tag = "apm", params(("name" = String, Path, description = "Service name"), Window),
    responses((status = 200, body = crate::api::schemas_ops::ApmRangeList)))]
pub async fn transactions(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(name): ApiPath<String>,
    ApiQuery(w): ApiQuery<Window>,
) -> ApiResult<Json<Value>> {
    let (since, until) = w.range()?;
    let ids = projects_for(&state, w.project.as_deref()).await?;
    let t = query::service(state.store(), &ids, &name)
        .await?
        .map(|s| s.apdex_t_ms);
    let items = apm::operations(state.store(), &ids, &name, "request", since, until, t).await?;
    Ok(Json(json!({
        "since": iso(since), "until": iso(until),
        "items": items,
    })))
}

/// Trace search filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TraceSearch {
    /// Service.
    pub service: Option<String>,
    /// Transaction (or operation) name.
    pub transaction: Option<String>,
    /// Category: `request` (default), `db`, `external`, `internal` or `any`.
    pub category: Option<String>,
    /// Shortest duration, ms.
    pub min_duration_ms: Option<f64>,
    /// Longest duration, ms.
    pub max_duration_ms: Option<f64>,
    /// `error` or `ok`.
    pub status: Option<String>,
    /// `key=value` an attribute must match.
    pub attribute: Option<String>,
    /// RFC 3339 start.
    pub since: Option<String>,
    /// RFC 3339 end.
    pub until: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// `recent` (default) or `slowest`.
    pub sort: Option<String>,
    /// Most results (default 50, at most 500).
    pub limit: Option<i64>,
}

fn span_json(s: &query::SpanRow) -> Value {
    json!({
        "trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id,
        "service": s.service, "instance": s.instance, "name": s.name, "kind": s.kind,
        "start": iso(s.start_ns / 1_000_000), "start_ns": s.start_ns.to_string(),
        "duration_ms": s.duration_ns as f64 / 1e6, "status": s.status, "error": s.error,
        "category": s.category, "operation": s.operation, "http_status": s.http_status,
        "db_system": s.db_system, "db_statement": s.db_statement, "peer": s.peer,
        "attributes": s.detail.get("attributes"), "resource": s.detail.get("resource"),
        "events": s.detail.get("events"), "status_message": s.detail.get("status_message"),
    })
}

/// Searches spans (by default transactions: entry spans) by service, transaction, duration,
/// status, attribute and time.
#[utoipa::path(get, path = "/api/v1/traces", tag = "apm", params(TraceSearch),
    responses((status = 200, body = crate::api::schemas_ops::ApmList)))]
pub async fn search(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<TraceSearch>,
) -> ApiResult<Json<Value>> {
    let (since, until) = range(&q.since, &q.until)?;
    let ids = projects_for(&state, q.project.as_deref()).await?;
    let category = match q.category.as_deref().unwrap_or("request") {
        "any" => None,
        c @ ("request" | "db" | "external" | "internal") => Some(c),
        other => return Err(ApiError::Validation(format!("category: unknown {other:?}"))),
    };
    let error = match q.status.as_deref() {
        None | Some("") => None,
        Some("error") => Some(true),
        Some("ok") => Some(false),
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "status: {other:?} is not error or ok"
            )))
        }
    };
    let attribute = match q.attribute.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(
            a.split_once('=')
                .ok_or_else(|| ApiError::Validation("attribute: use key=value".into()))?,
        ),
    };
    let spans = query::search(
        state.store(),
        &query::SpanSearch {
            projects: &ids,
            service: q.service.as_deref().filter(|s| !s.is_empty()),
            operation: q.transaction.as_deref().filter(|s| !s.is_empty()),
            category,
            min_duration_ms: q.min_duration_ms,
            max_duration_ms: q.max_duration_ms,
            error,
            attribute,
            since,
            until,
            limit: q.limit.unwrap_or(50).clamp(1, 500),
            slowest_first: q.sort.as_deref() == Some("slowest"),
        },
    )
    .await?;
    Ok(Json(
        json!({ "items": spans.iter().map(span_json).collect::<Vec<_>>() }),
    ))
}

/// Every span of one trace, by start time, with its depth in the tree.
#[utoipa::path(get, path = "/api/v1/traces/{trace_id}", tag = "apm",
    params(("trace_id" = String, Path, description = "Trace id (32 hex digits)")),
    responses((status = 200, body = crate::api::schemas_ops::TraceView), (status = 404, body = ErrorBody)))]
pub async fn trace(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(trace_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    if trace_id.len() != 32 || !trace_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::Validation(
            "trace_id: 32 hexadecimal digits".into(),
        ));
    }
    let ids = projects_for(&state, None).await?;
    let query::TraceSpans {
        spans,
        truncated,
        incomplete_index,
    } = query::trace_capped(state.store(), &ids, &trace_id).await?;
    if spans.is_empty() && incomplete_index {
        // The indexer lags: the trace may be stored but not found yet, so it is not "missing".
        return Err(ApiError::Unavailable(
            "the trace index is catching up; try again shortly".into(),
        ));
    }
    if spans.is_empty() {
        return Err(ApiError::NotFound("trace"));
    }
    let t = crate::apm::trace_view::Tree::of(&spans);
    let logs = query::logs(
        state.store(),
        &query::LogQuery {
            projects: &ids,
            trace_id: Some(&trace_id),
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(json!({
        "trace_id": trace_id.to_ascii_lowercase(),
        "start": iso(t.start_ns / 1_000_000),
        "duration_ms": t.duration_ns as f64 / 1e6,
        "services": t.services,
        "truncated": truncated,
        "incomplete_index": incomplete_index,
        "spans": t.order.iter().map(|&(i, depth)| {
            let mut v = span_json(&spans[i]);
            v["depth"] = json!(depth);
            v["offset_ms"] = json!((spans[i].start_ns - t.start_ns) as f64 / 1e6);
            v
        }).collect::<Vec<_>>(),
        "logs": logs,
    })))
}

/// Log search filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogSearch {
    /// The logs of one trace.
    pub trace_id: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// Text the body contains.
    pub q: Option<String>,
    /// RFC 3339 start.
    pub since: Option<String>,
    /// RFC 3339 end.
    pub until: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Most results (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Log records, newest first (a trace's in time order).
#[utoipa::path(get, path = "/api/v1/apm/logs", tag = "apm", params(LogSearch),
    responses((status = 200, body = crate::api::schemas_ops::ApmList)))]
pub async fn logs(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<LogSearch>,
) -> ApiResult<Json<Value>> {
    let (since, until) = range(&q.since, &q.until)?;
    let ids = projects_for(&state, q.project.as_deref()).await?;
    let items = query::logs(
        state.store(),
        &query::LogQuery {
            projects: &ids,
            trace_id: q.trace_id.as_deref().filter(|t| !t.is_empty()),
            service: q.service.as_deref().filter(|s| !s.is_empty()),
            text: q.q.as_deref().filter(|s| !s.is_empty()),
            since,
            until,
            limit: q.limit.unwrap_or(100).clamp(1, 1000),
        },
    )
    .await?;
    Ok(Json(json!({ "items": items })))
}

/// The service map: services, databases and external hosts, and the calls between them.
#[utoipa::path(get, path = "/api/v1/apm/service-map", tag = "apm", params(Window),
    responses((status = 200, body = crate::api::schemas_ops::ServiceMapView)))]
pub async fn service_map(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(w): ApiQuery<Window>,
) -> ApiResult<Json<Value>> {
    let (since, until) = w.range()?;
    let ids = projects_for(&state, w.project.as_deref()).await?;
    let map = crate::apm::trace_view::ServiceMap::build(state.store(), &ids, since, until).await?;
    Ok(Json(serde_json::to_value(map).unwrap_or_default()))
}

/// Metric series filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricFilter {
    /// Metric name (default: all).
    pub name: Option<String>,
    /// Project.
    pub project: Option<String>,
}

/// Metric series, by name.
#[utoipa::path(get, operation_id = "apm_metrics", path = "/api/v1/apm/metrics", tag = "apm", params(MetricFilter),
    responses((status = 200, body = crate::api::schemas_ops::ApmList)))]
pub async fn metrics(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(f): ApiQuery<MetricFilter>,
) -> ApiResult<Json<Value>> {
    let ids = projects_for(&state, f.project.as_deref()).await?;
    let mut items = Vec::new();
    for p in ids {
        items.extend(mstore::list_series(state.store(), p, f.name.as_deref()).await?);
    }
    Ok(Json(json!({ "items": items })))
}

/// A metric series' values per minute: counters as deltas, gauges as min/max/last, histograms
/// as bucket counts with interpolated p50/p95/p99.
#[utoipa::path(get, path = "/api/v1/apm/metrics/{id}/points", tag = "apm", params(("id" = i64, Path, description = "Metric id"), Window),
    responses((status = 200, body = crate::api::schemas_ops::MetricPoints), (status = 404, body = ErrorBody)))]
pub async fn metric_points(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(w): ApiQuery<Window>,
) -> ApiResult<Json<Value>> {
    let (since, until) = w.range()?;
    let ids = projects_for(&state, w.project.as_deref()).await?;
    let series = mstore::series_in(state.store(), &ids, id)
        .await?
        .ok_or(ApiError::NotFound("metric series"))?;
    let points = mstore::points(state.store(), id, since, until).await?;
    let items: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            v["minute"] = json!(iso(p.minute));
            let q = |x: f64| match (&p.buckets, &series.bounds, &p.sketch) {
                (Some(b), Some(bounds), _) => lookout_apm::metric::histogram_quantile(bounds, b, x),
                (_, _, Some(s)) => s.quantile(x),
                _ => None,
            };
            v["p50"] = json!(q(0.5));
            v["p95"] = json!(q(0.95));
            v["p99"] = json!(q(0.99));
            v
        })
        .collect();
    Ok(Json(json!({ "series": series, "items": items })))
}
