//! `/api/v1/db-targets`: PostgreSQL databases checked on a schedule (connection strings sealed
//! and never returned), their checks and latest report, and their statements with trends between
//! snapshots.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::not_found;
use crate::api::scope::{project_of, projects_for, ProjectFilter};
use crate::auth::{Admin, Member, Principal};
use crate::dbhealth::view::trends;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::iso;
use lookout_store::dbhealth::{self as dstore, NewTarget, TargetRow};

/// The body of create and update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    pub name: String,
    /// `postgres://…`; on update, absent keeps the stored one.
    #[serde(default)]
    pub url: Option<String>,
    /// YAML verification rules (`verify: [...]`).
    #[serde(default)]
    pub verify: Option<String>,
    #[serde(default)]
    pub interval_seconds: Option<i64>,
    #[serde(default)]
    pub slow_ms: Option<f64>,
    #[serde(default)]
    pub slow_calls: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub project: Option<String>,
}

/// A target as the API shows it: the database it names, never the connection string.
async fn view(state: &AppState, t: &TargetRow) -> ApiResult<Value> {
    let last = dstore::checks(state.store(), t.id, 1, true).await?;
    let database = crate::dbhealth::database_of(state.sealer(), t)
        .unwrap_or_else(|| "(sealed with another key)".into());
    let last = last.first().map(|c| {
        let n = crate::dbhealth::Counts::of(c.report.as_ref());
        json!({"id": c.id, "at": iso(c.started_at), "duration_ms": c.duration_ms, "ok": c.ok,
               "error": c.error, "critical": n.critical, "warning": n.warning,
               "info": n.info, "verifications_failed": n.verifications_failed})
    });
    Ok(json!({
        "id": t.id, "project_id": t.project_id, "name": t.name, "database": database,
        "verify": t.verify, "interval_seconds": t.interval_seconds, "slow_ms": t.slow_ms,
        "slow_calls": t.slow_calls, "enabled": t.enabled, "next_check_at": iso(t.next_check_at),
        "created_at": iso(t.created_at), "last_check": last,
    }))
}

async fn validate(
    state: &AppState,
    b: &TargetBody,
    existing: Option<&TargetRow>,
) -> ApiResult<NewTarget> {
    let name = b.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Validation("name: 1-100 characters".into()));
    }
    let url_sealed = match (&b.url, existing) {
        (Some(u), _) => {
            // A URL of the user's database, parsed as the PostgreSQL driver will (not Lookout's store).
            if u.parse::<sqlx::postgres::PgConnectOptions>().is_err()
                || !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
            {
                return Err(ApiError::Validation(
                    "url: a postgres:// connection string is required".into(),
                ));
            }
            // Refused now rather than at every check; each check judges the host again.
            if let Some(why) = lookout_dbhealth::refusal_now(u, state.alerting().outbound()).await {
                return Err(ApiError::Validation(format!("url: {why}")));
            }
            state.sealer().seal(u)
        }
        (None, Some(t)) => t.url_sealed.clone(),
        (None, None) => return Err(ApiError::Validation("url is required".into())),
    };
    if let Some(y) = b.verify.as_deref().filter(|y| !y.trim().is_empty()) {
        lookout_dbhealth::verify::parse(y)
            .map_err(|e| ApiError::Validation(format!("verify: {e}")))?;
    }
    let interval_seconds = b
        .interval_seconds
        .or(existing.map(|t| t.interval_seconds))
        .unwrap_or(300);
    if !(60..=86_400).contains(&interval_seconds) {
        return Err(ApiError::Validation("interval_seconds: 60-86400".into()));
    }
    let slow_ms = b.slow_ms.or(existing.map(|t| t.slow_ms)).unwrap_or(20.0);
    let slow_calls = b
        .slow_calls
        .or(existing.map(|t| t.slow_calls))
        .unwrap_or(100);
    if !(slow_ms.is_finite() && slow_ms > 0.0) || slow_calls < 1 {
        return Err(ApiError::Validation(
            "slow_ms must be positive and slow_calls at least 1".into(),
        ));
    }
    let project_id = match existing {
        Some(t) => t.project_id,
        None => project_of(state, b.project.as_deref()).await?,
    };
    Ok(NewTarget {
        project_id,
        name: name.to_string(),
        url_sealed,
        verify: b.verify.clone().filter(|y| !y.trim().is_empty()),
        interval_seconds,
        slow_ms,
        slow_calls,
        enabled: b.enabled.or(existing.map(|t| t.enabled)).unwrap_or(true),
    })
}

/// Checks a target now, in the background on this replica; the scheduled checks (one replica
/// at a time, under the job's lease) go on as planned.
fn spawn_check(state: &AppState, t: TargetRow) {
    let (store, sealer) = (state.store().clone(), state.sealer().clone());
    let policy = state.alerting().outbound().clone();
    tokio::spawn(async move {
        if let Err(e) = crate::dbhealth::check_target(&store, &sealer, &policy, &t).await {
            tracing::warn!(target = t.id, error = %e, "Could not store a database check.");
        }
    });
}

/// Adds a database to check (admin: a connection string is a credential). Checked at once, then
/// every `interval_seconds` (default 300, 60-86400).
#[utoipa::path(post, operation_id = "databases_create", path = "/api/v1/db-targets", tag = "databases", request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::DbTargetView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Admin,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b: TargetBody = serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(format!("database target: {e}")))?;
    let t = validate(&state, &b, None).await?;
    let row = dstore::create(state.store(), &t).await?;
    spawn_check(&state, row.clone());
    tracing::info!(target = row.id, name = %row.name, "Database target created.");
    Ok((StatusCode::CREATED, Json(view(&state, &row).await?)))
}

/// Database targets with their latest check.
#[utoipa::path(get, operation_id = "databases_list", path = "/api/v1/db-targets", tag = "databases", params(ProjectFilter),
    responses((status = 200, body = crate::api::schemas_ops::DbTargetList)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(f): ApiQuery<ProjectFilter>,
) -> ApiResult<Json<Value>> {
    let ids = projects_for(&state, f.project.as_deref()).await?;
    let mut items = Vec::new();
    for t in dstore::list(state.store(), &ids).await? {
        items.push(view(&state, &t).await?);
    }
    Ok(Json(json!({"items": items})))
}

/// One target.
#[utoipa::path(get, operation_id = "databases_get_one", path = "/api/v1/db-targets/{id}", tag = "databases",
    params(("id" = i64, Path, description = "Database target id")),
    responses((status = 200, body = crate::api::schemas_ops::DbTargetView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let t = dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    Ok(Json(view(&state, &t).await?))
}

/// Replaces a target (`url` may be left out to keep the stored one); checked again at once.
#[utoipa::path(put, operation_id = "databases_update", path = "/api/v1/db-targets/{id}", tag = "databases",
    params(("id" = i64, Path, description = "Database target id")), request_body = Object,
    responses((status = 200, body = crate::api::schemas_ops::DbTargetView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let existing = dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    let b: TargetBody = serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(format!("database target: {e}")))?;
    let t = validate(&state, &b, Some(&existing)).await?;
    let row = dstore::update(state.store(), id, &t)
        .await
        .map_err(not_found("database target"))?;
    spawn_check(&state, row.clone());
    Ok(Json(view(&state, &row).await?))
}

/// Deletes a target and its history.
#[utoipa::path(delete, operation_id = "databases_delete", path = "/api/v1/db-targets/{id}", tag = "databases",
    params(("id" = i64, Path, description = "Database target id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    dstore::delete(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a target now (202: the check runs in the background; its report follows in seconds).
#[utoipa::path(post, path = "/api/v1/db-targets/{id}/check", tag = "databases",
    params(("id" = i64, Path, description = "Database target id")),
    responses((status = 202, body = crate::api::schemas_ops::CheckStarted), (status = 404, body = ErrorBody)))]
pub async fn check_now(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let t = dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    spawn_check(&state, t);
    Ok((StatusCode::ACCEPTED, Json(json!({"started": true}))))
}

/// `?limit=` (default 50).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChecksQuery {
    pub limit: Option<i64>,
}

/// A target's checks, newest first, with the latest report in full.
#[utoipa::path(get, path = "/api/v1/db-targets/{id}/checks", tag = "databases", params(("id" = i64, Path, description = "Database target id"), ChecksQuery),
    responses((status = 200, body = crate::api::schemas_ops::DbCheckList), (status = 404, body = ErrorBody)))]
pub async fn checks(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ChecksQuery>,
) -> ApiResult<Json<Value>> {
    dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    let rows = dstore::checks(
        state.store(),
        id,
        q.limit.unwrap_or(50).clamp(1, 1000),
        false,
    )
    .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|c| json!({"id": c.id, "at": iso(c.started_at), "duration_ms": c.duration_ms, "ok": c.ok, "error": c.error}))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// The newest check's report: `{findings, verifications, slow_queries, ...}`.
#[utoipa::path(get, path = "/api/v1/db-targets/{id}/report", tag = "databases",
    params(("id" = i64, Path, description = "Database target id")),
    responses((status = 200, body = crate::api::schemas_ops::DbReport), (status = 404, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    let c = dstore::checks(state.store(), id, 1, true)
        .await?
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound("check of this database (none ran yet)"))?;
    Ok(Json(
        json!({"check_id": c.id, "at": iso(c.started_at), "ok": c.ok, "error": c.error,
                   "report": c.report}),
    ))
}

/// `?days=` of history (default 7).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    pub days: Option<i64>,
}

/// Statements by total time with their trend: calls and mean time per interval between checks,
/// and the newest interval's mean against the mean before it.
#[utoipa::path(get, path = "/api/v1/db-targets/{id}/slow-queries", tag = "databases", params(("id" = i64, Path, description = "Database target id"), TrendQuery),
    responses((status = 200, body = crate::api::schemas_ops::SlowQueryList), (status = 404, body = ErrorBody)))]
pub async fn slow_queries(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TrendQuery>,
) -> ApiResult<Json<Value>> {
    dstore::get(state.store(), id)
        .await
        .map_err(not_found("database target"))?;
    Ok(Json(
        json!({"items": trends(&state, id, q.days.unwrap_or(7)).await?}),
    ))
}
