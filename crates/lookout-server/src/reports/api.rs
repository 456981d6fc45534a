//! `/api/v1/reports` (generate a daily, weekly or monthly report for any period; keep and
//! deliver one; read the kept ones), `/api/v1/report-settings` (schedule, time zone, channels,
//! outcome targets) and `/api/v1/slos` (service-level objectives with their error budgets).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::not_found;
use crate::auth::{Admin, Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::reports::service::{end_of, generate, request};
use crate::reports::slo::SloSpec;
use crate::reports::{self, render, Kind, Settings};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_store::alerting::{self as astore, SpecRow, SpecTable};
use lookout_store::reports::{self as rstore, NewReport};
use lookout_store::tenancy;

/// `?kind=daily|weekly|monthly&end=<RFC 3339>&format=json|html|text`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `daily`, `weekly` or `monthly`.
    pub kind: String,
    /// The period's end (RFC 3339); default now. The period is the day, 7 or 30 days before.
    pub end: Option<String>,
    /// `json` (default), `html` (printable, with charts) or `text`.
    pub format: Option<String>,
}

fn kind_of(s: &str) -> ApiResult<Kind> {
    Kind::parse(s).ok_or_else(|| ApiError::BadRequest("kind: daily, weekly or monthly".into()))
}

fn formatted(report: &reports::Report, format: Option<&str>) -> ApiResult<Response> {
    Ok(match format.unwrap_or("json") {
        "json" => Json(report).into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            render::html(report, &report.base_url, None),
        )
            .into_response(),
        "text" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            render::text(report),
        )
            .into_response(),
        _ => return Err(ApiError::BadRequest("format: json, html or text".into())),
    })
}

/// Generates a report for the period ending at `end` (default now), without keeping it.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(ReportQuery),
    responses((status = 200, body = crate::api::schemas_ops::ReportDocument), (status = 400, body = ErrorBody)))]
pub async fn get_report(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    let kind = kind_of(&q.kind)?;
    let end = end_of(q.end.as_deref(), now_ms())?;
    let report = generate(&state, kind, end).await?;
    formatted(&report, q.format.as_deref())
}

/// The body of `POST /api/v1/reports`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakeBody {
    pub kind: String,
    #[serde(default)]
    pub end: Option<String>,
    /// Send it through the channels of the report settings now.
    #[serde(default)]
    pub deliver: bool,
}

/// Generates a report and keeps it (member); with `deliver`, sends it through the report
/// settings' channels. 201 with its id and body.
#[utoipa::path(post, path = "/api/v1/reports", tag = "reports", request_body = crate::api::schemas_ops::ReportSettings,
    responses((status = 201, body = crate::api::schemas_ops::MadeReport), (status = 400, body = ErrorBody)))]
pub async fn make(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(b): ApiJson<MakeBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let now = now_ms();
    let kind = kind_of(&b.kind)?;
    let end = end_of(b.end.as_deref(), now)?;
    let org = tenancy::default_org(state.store()).await?;
    let settings = Settings::load(state.store(), org.id).await?;
    let report =
        reports::build_for(state.store(), &request(&state, kind, end)?, &org, &settings).await?;
    let body = serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
    let channels = if b.deliver {
        settings.channel_ids.clone()
    } else {
        Vec::new()
    };
    let row = rstore::insert(
        state.store(),
        &NewReport {
            org_id: org.id,
            kind: kind.as_str(),
            period_start: report.period.start,
            period_end: end,
            scheduled: false,
            body: &body,
            channels: &channels,
            now,
        },
    )
    .await?
    .ok_or_else(|| ApiError::Internal("the report was not kept".into()))?;
    if !channels.is_empty() {
        let a = state.alerting().clone();
        tokio::spawn(async move {
            if let Err(e) = reports::deliver::send_due(&a, now_ms()).await {
                tracing::warn!(error = %e, "Sending reports failed; the schedule retries.");
            }
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": row.id, "kind": row.kind, "url": format!("/reports/{}", row.id),
                    "deliveries": channels.len(), "report": body}),
        ),
    ))
}

/// `?kind=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub kind: Option<String>,
    /// Default 50, at most 500.
    pub limit: Option<i64>,
}

/// Kept reports, newest period first.
#[utoipa::path(get, path = "/api/v1/reports/history", tag = "reports", params(HistoryQuery),
    responses((status = 200, body = crate::api::schemas_ops::ReportHistory)))]
pub async fn history(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(k) = &q.kind {
        kind_of(k)?;
    }
    let org = tenancy::default_org(state.store()).await?;
    let rows = rstore::list(
        state.store(),
        org.id,
        q.kind.as_deref(),
        q.limit.unwrap_or(50).clamp(1, 500),
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "kind": r.kind, "period_start": iso(r.period_start),
                   "period_end": iso(r.period_end), "scheduled": r.scheduled,
                   "created_at": iso(r.created_at), "url": format!("/reports/{}", r.id)})
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `?format=json|html|text`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    pub format: Option<String>,
}

/// A kept report with its deliveries (`format=html|text`: the report alone, rendered).
#[utoipa::path(get, operation_id = "reports_get_one", path = "/api/v1/reports/{id}", tag = "reports", params(("id" = i64, Path, description = "Report id"), FormatQuery),
    responses((status = 200, body = crate::api::schemas_ops::KeptReport), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let (row, body) = rstore::get(state.store(), id)
        .await
        .map_err(not_found("report"))?;
    if matches!(q.format.as_deref(), Some("html" | "text")) {
        let report: reports::Report =
            serde_json::from_value(body).map_err(|e| ApiError::Internal(e.to_string()))?;
        return formatted(&report, q.format.as_deref());
    }
    let deliveries = rstore::deliveries(state.store(), id).await?;
    Ok(Json(
        json!({"id": row.id, "kind": row.kind, "scheduled": row.scheduled,
                   "period_start": iso(row.period_start), "period_end": iso(row.period_end),
                   "created_at": iso(row.created_at), "deliveries": deliveries, "report": body}),
    )
    .into_response())
}

/// The report settings (defaults until saved).
#[utoipa::path(get, path = "/api/v1/report-settings", tag = "reports",
    responses((status = 200, body = crate::api::schemas_ops::ReportSettings)))]
pub async fn get_settings(
    State(state): State<AppState>,
    _who: Principal,
) -> ApiResult<Json<Settings>> {
    let org = tenancy::default_org(state.store()).await?;
    Ok(Json(Settings::load(state.store(), org.id).await?))
}

/// Replaces the report settings (admin). Fields left out take their defaults.
#[utoipa::path(put, path = "/api/v1/report-settings", tag = "reports", request_body = crate::api::schemas_ops::ReportSettings,
    responses((status = 200, body = crate::api::schemas_ops::ReportSettings), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(s): ApiJson<Settings>,
) -> ApiResult<Json<Settings>> {
    s.validate().map_err(ApiError::Validation)?;
    let org = tenancy::default_org(state.store()).await?;
    for &id in &s.channel_ids {
        let ch = astore::channel_get(state.store(), id)
            .await
            .map_err(|_| ApiError::Validation(format!("channel_ids: no channel {id}")))?;
        if ch.kind == "pagerduty" {
            return Err(ApiError::Validation(format!(
                "channel_ids: channel {id} is a PagerDuty channel, which takes incidents, not reports"
            )));
        }
    }
    let v = serde_json::to_value(&s).map_err(|e| ApiError::Internal(e.to_string()))?;
    rstore::save_settings(state.store(), org.id, &v, now_ms()).await?;
    Ok(Json(s))
}

/// The body of SLO create and update: a name and the spec's fields.
#[derive(Debug, Deserialize)]
pub struct SloBody {
    pub name: String,
    #[serde(flatten)]
    pub spec: Value,
}

fn slo_spec(b: &SloBody) -> ApiResult<SloSpec> {
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::Validation("name: 1-200 characters".into()));
    }
    let spec: SloSpec =
        serde_json::from_value(b.spec.clone()).map_err(|e| ApiError::Validation(e.to_string()))?;
    spec.validate().map_err(ApiError::Validation)?;
    Ok(spec)
}

/// An SLO with its budget now.
pub async fn slo_view(state: &AppState, row: &SpecRow) -> ApiResult<Value> {
    let spec: SloSpec =
        serde_json::from_value(row.spec.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let projects = tenancy::project_ids(state.store()).await?;
    let budget = reports::services_evaluate(state.store(), &projects, &spec, now_ms()).await?;
    let mut v = serde_json::to_value(&spec).unwrap_or_default();
    v["id"] = json!(row.id);
    v["name"] = json!(row.name);
    v["budget"] = serde_json::to_value(&budget).unwrap_or_default();
    v["created_at"] = json!(iso(row.created_at));
    v["updated_at"] = json!(iso(row.updated_at));
    Ok(v)
}

/// Every SLO with its attainment and error budget now.
#[utoipa::path(get, path = "/api/v1/slos", tag = "reports",
    responses((status = 200, body = crate::api::schemas_ops::SloList)))]
pub async fn list_slos(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let mut items = Vec::new();
    for row in astore::spec_list(state.store(), SpecTable::Slos, org.id).await? {
        items.push(slo_view(&state, &row).await?);
    }
    Ok(Json(json!({ "items": items })))
}

/// Adds an SLO (member).
#[utoipa::path(post, path = "/api/v1/slos", tag = "reports", request_body = crate::api::schemas_ops::SloInput,
    responses((status = 201, body = crate::api::schemas_ops::SloView), (status = 422, body = ErrorBody)))]
pub async fn create_slo(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(b): ApiJson<SloBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = slo_spec(&b)?;
    let org = tenancy::default_org(state.store()).await?;
    let v = serde_json::to_value(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row =
        astore::spec_create(state.store(), SpecTable::Slos, org.id, b.name.trim(), &v).await?;
    Ok((StatusCode::CREATED, Json(slo_view(&state, &row).await?)))
}

/// One SLO with its budget now.
#[utoipa::path(get, path = "/api/v1/slos/{id}", tag = "reports",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 200, body = crate::api::schemas_ops::SloView), (status = 404, body = ErrorBody)))]
pub async fn get_slo(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let row = astore::spec_get(state.store(), SpecTable::Slos, id)
        .await
        .map_err(not_found("SLO"))?;
    Ok(Json(slo_view(&state, &row).await?))
}

/// Replaces an SLO (member).
#[utoipa::path(put, path = "/api/v1/slos/{id}", tag = "reports",
    params(("id" = i64, Path, description = "SLO id")), request_body = crate::api::schemas_ops::SloInput,
    responses((status = 200, body = crate::api::schemas_ops::SloView), (status = 404, body = ErrorBody)))]
pub async fn update_slo(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<SloBody>,
) -> ApiResult<Json<Value>> {
    let spec = slo_spec(&b)?;
    let v = serde_json::to_value(&spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    let row = astore::spec_update(state.store(), SpecTable::Slos, id, b.name.trim(), &v)
        .await
        .map_err(not_found("SLO"))?;
    Ok(Json(slo_view(&state, &row).await?))
}

/// Deletes an SLO (member).
#[utoipa::path(delete, path = "/api/v1/slos/{id}", tag = "reports",
    params(("id" = i64, Path, description = "SLO id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_slo(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    astore::spec_get(state.store(), SpecTable::Slos, id)
        .await
        .map_err(not_found("SLO"))?;
    astore::spec_delete(state.store(), SpecTable::Slos, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
