//! `/api/v1/load-runs`: runs reported by `lookout load --report-to` and their comparison. Each
//! run's key figures (p95, req/s and error rate per scenario) feed the baseline series that
//! regression detection watches (`api/series.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::not_found;
use crate::api::scope::{project_of, projects_for, ProjectFilter};
use crate::api::ListParams;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::iso;
use lookout_load::Summary;
use lookout_store::load::{self as lstore, NewRun, RunRow};
use lookout_store::series::NewPoint;

/// Largest report accepted (a summary with per-second series of a long run).
pub const MAX_REPORT: usize = 16 * 1024 * 1024;

/// The body `lookout load --report-to` sends.
#[derive(Debug, Deserialize)]
pub struct RunReport {
    pub name: String,
    pub project: Option<String>,
    pub commit: Option<String>,
    pub scenario_file: Option<String>,
    pub summary: Summary,
}

fn run_view(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "project_id": r.project_id,
        "name": r.name,
        "commit": r.commit,
        "started_at": iso(r.started_at),
        "duration_s": r.duration_ms as f64 / 1000.0,
        "passed": r.passed,
        "requests": r.requests,
        "rps": r.rps,
        "p95_ms": r.p95_ms,
        "error_rate": r.error_rate,
        "created_at": iso(r.created_at),
    })
}

/// The baseline points a run yields: p95, req/s and error rate per scenario.
pub fn baseline_points(name: &str, s: &Summary, at: i64, commit: Option<&str>) -> Vec<NewPoint> {
    lookout_regress::import::lookout_summary(Some(name), s)
        .into_iter()
        .map(|m| crate::regress::api::point_of(m, at, commit))
        .collect()
}

fn validate(r: &RunReport) -> ApiResult<()> {
    let name = r.name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::Validation(
            "name is required (1-200 characters)".into(),
        ));
    }
    if r.summary.scenarios.is_empty() {
        return Err(ApiError::Validation(
            "summary.scenarios: a run has at least one scenario".into(),
        ));
    }
    if !(r.summary.duration_s.is_finite() && r.summary.duration_s >= 0.0) {
        return Err(ApiError::Validation(
            "summary.duration_s must be a non-negative number".into(),
        ));
    }
    for sc in &r.summary.scenarios {
        for (field, v) in [
            ("rps", sc.rps),
            ("p95_ms", sc.p95_ms),
            ("error_rate", sc.error_rate),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ApiError::Validation(format!(
                    "summary.scenarios[{}].{field} must be a non-negative number",
                    sc.name
                )));
            }
        }
    }
    if r.commit.as_deref().is_some_and(|c| c.len() > 100) {
        return Err(ApiError::Validation(
            "commit: at most 100 characters".into(),
        ));
    }
    chrono::DateTime::parse_from_rfc3339(&r.summary.started_at)
        .map_err(|e| ApiError::Validation(format!("summary.started_at: {e}")))?;
    Ok(())
}

/// Stores a run sent by `lookout load --report-to` (body: `{name, project, commit, scenario_file,
/// summary}`), with its baseline points.
#[utoipa::path(post, operation_id = "load_create", path = "/api/v1/load-runs", tag = "load", request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::LoadRunView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let report: RunReport =
        serde_json::from_value(body).map_err(|e| ApiError::Validation(format!("load run: {e}")))?;
    validate(&report)?;
    let project_id = project_of(&state, report.project.as_deref()).await?;
    let s = &report.summary;
    let started_at = chrono::DateTime::parse_from_rfc3339(&s.started_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let metric = |name: &str, key: &str| {
        s.metric(name)
            .and_then(|m| m.values.get(key).copied())
            .unwrap_or(0.0)
    };
    let run = NewRun {
        project_id,
        name: report.name.trim().to_string(),
        commit: report.commit.clone(),
        started_at,
        duration_ms: (s.duration_s * 1000.0) as i64,
        passed: s.passed(),
        requests: metric("http_reqs", "count") as i64,
        rps: metric("http_reqs", "rate"),
        p95_ms: metric("http_req_duration", "p(95)"),
        error_rate: metric("http_req_failed", "rate"),
        summary: serde_json::to_value(s).map_err(|e| ApiError::Internal(e.to_string()))?,
        scenario_file: report.scenario_file.clone(),
    };
    let points = baseline_points(&run.name, s, started_at, report.commit.as_deref());
    let row = lstore::record(state.store(), &run, &points).await?;
    tracing::info!(run = row.id, name = %run.name, passed = run.passed, "load run stored");
    Ok((StatusCode::CREATED, Json(run_view(&row))))
}

/// Load-test runs, newest first.
#[utoipa::path(get, operation_id = "load_list", path = "/api/v1/load-runs", tag = "load", params(ProjectFilter, ListParams),
    responses((status = 200, body = crate::api::schemas_ops::LoadRunPage)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(f): ApiQuery<ProjectFilter>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<Value>> {
    let ids = projects_for(&state, f.project.as_deref()).await?;
    let page = lstore::list(state.store(), &ids, &q.cursor()).await?;
    Ok(Json(
        json!({"items": page.items.iter().map(run_view).collect::<Vec<_>>(), "next": page.next}),
    ))
}

/// One run with its summary (metrics, thresholds, checks, scenarios, per-second series).
#[utoipa::path(get, operation_id = "load_get_one", path = "/api/v1/load-runs/{id}", tag = "load",
    params(("id" = i64, Path, description = "Load run id")),
    responses((status = 200, body = crate::api::schemas_ops::LoadRunDetail), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let (row, summary, file) = lstore::get(state.store(), id)
        .await
        .map_err(not_found("load run"))?;
    let mut v = run_view(&row);
    v["summary"] = summary;
    v["scenario_file"] = file.into();
    Ok(Json(v))
}

/// Deletes a run (its baseline points stay).
#[utoipa::path(delete, operation_id = "load_delete", path = "/api/v1/load-runs/{id}", tag = "load",
    params(("id" = i64, Path, description = "Load run id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    lstore::delete(state.store(), id)
        .await
        .map_err(not_found("load run"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?a=&b=`: the runs to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The baseline run.
    pub a: i64,
    /// The run compared with it.
    pub b: i64,
}

/// Two runs side by side: key figures per scenario with their changes.
pub async fn comparison(state: &AppState, a: i64, b: i64) -> ApiResult<Value> {
    let (ra, sa, _) = lstore::get(state.store(), a)
        .await
        .map_err(not_found("load run a"))?;
    let (rb, sb, _) = lstore::get(state.store(), b)
        .await
        .map_err(not_found("load run b"))?;
    let sa: Summary = serde_json::from_value(sa).map_err(|e| ApiError::Internal(e.to_string()))?;
    let sb: Summary = serde_json::from_value(sb).map_err(|e| ApiError::Internal(e.to_string()))?;
    let scenarios = lookout_load::summary::compare(&sa, &sb);
    Ok(json!({"a": run_view(&ra), "b": run_view(&rb), "scenarios": scenarios}))
}

/// Compares two runs.
#[utoipa::path(get, path = "/api/v1/load-runs/compare", tag = "load", params(CompareQuery),
    responses((status = 200, body = crate::api::schemas_ops::LoadComparison), (status = 404, body = ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(comparison(&state, q.a, q.b).await?))
}
