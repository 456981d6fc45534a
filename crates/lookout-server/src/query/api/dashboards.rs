//! `/api/v1/dashboards` (dashboards as code: create or import in JSON or YAML, export as YAML,
//! replace, delete) and `/api/v1/packs/{name}/install` (the default pack).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::api::not_found;
use crate::api::schemas_ops::DashboardView;
use crate::auth::{Admin, Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::query::dashboards::{self, pack, spec::Dashboard};
use crate::state::AppState;
use lookout_core::time::iso;
use lookout_store::dashboards::{self as dstore, DashboardRow};

/// A dashboard as the API shows it: [`DashboardView`], so the answer is its documented schema.
fn view(r: &DashboardRow) -> Value {
    json!(DashboardView {
        id: r.id,
        slug: r.slug.clone(),
        name: r.name.clone(),
        spec: r.spec.clone(),
        managed_by: r.managed_by.clone(),
        url: format!("/dashboards/{}", r.slug),
        created_at: iso(r.created_at),
        updated_at: iso(r.updated_at),
    })
}

/// A body in JSON or YAML (by `Content-Type`; YAML when it says yaml).
fn body_of(headers: &HeaderMap, body: &Bytes) -> ApiResult<Dashboard> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?;
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("yaml"));
    let d: Dashboard = if yaml {
        Dashboard::from_yaml(text).map_err(|e| ApiError::Validation(format!("dashboard: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| ApiError::Validation(format!("dashboard: {e}")))?
    };
    d.validate().map_err(ApiError::Validation)?;
    Ok(d)
}

/// Every dashboard.
#[utoipa::path(get, operation_id = "dashboards_list", path = "/api/v1/dashboards", tag = "dashboards",
    responses((status = 200, body = crate::api::schemas_ops::DashboardList)))]
pub async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<Json<Value>> {
    let rows = dashboards::list(state.store()).await?;
    Ok(Json(
        json!({"items": rows.iter().map(view).collect::<Vec<_>>()}),
    ))
}

/// Creates a dashboard, or replaces the one with the same slug (member). JSON, or YAML with
/// `Content-Type: application/yaml` (an exported dashboard imports as it is).
#[utoipa::path(post, operation_id = "dashboards_create", path = "/api/v1/dashboards", tag = "dashboards", request_body = Object,
    responses((status = 201, body = crate::api::schemas_ops::DashboardView), (status = 200, body = crate::api::schemas_ops::DashboardView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Member,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = body_of(&headers, &body)?;
    let (row, created) = dashboards::save(state.store(), &d, None)
        .await
        .map_err(ApiError::Internal)?;
    tracing::info!(dashboard = row.id, created, "Dashboard saved.");
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(view(&row)),
    ))
}

/// `?format=json|yaml`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    pub format: Option<String>,
}

/// One dashboard; `format=yaml` exports its spec as YAML.
#[utoipa::path(get, operation_id = "dashboards_get_one", path = "/api/v1/dashboards/{id}", tag = "dashboards", params(("id" = i64, Path, description = "Dashboard id"), ExportQuery),
    responses((status = 200, body = crate::api::schemas_ops::DashboardView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let row = dstore::get(state.store(), id)
        .await
        .map_err(not_found("dashboard"))?;
    if q.format.as_deref() == Some("yaml") {
        let d: Dashboard =
            serde_json::from_value(row.spec).map_err(|e| ApiError::Internal(e.to_string()))?;
        return Ok((
            [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
            d.to_yaml(),
        )
            .into_response());
    }
    Ok(Json(view(&row)).into_response())
}

/// Replaces a dashboard (member); its slug may change.
#[utoipa::path(put, operation_id = "dashboards_update", path = "/api/v1/dashboards/{id}", tag = "dashboards",
    params(("id" = i64, Path, description = "Dashboard id")), request_body = Object,
    responses((status = 200, body = crate::api::schemas_ops::DashboardView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let old = dstore::get(state.store(), id)
        .await
        .map_err(not_found("dashboard"))?;
    let d = body_of(&headers, &body)?;
    if d.slug() != old.slug {
        if let Some(other) = dstore::by_slug(state.store(), old.org_id, &d.slug()).await? {
            return Err(ApiError::Conflict(format!(
                "dashboard {} already has slug {:?}",
                other.id, other.slug
            )));
        }
        dstore::delete(state.store(), id).await?;
    }
    let (row, _) = dashboards::save(state.store(), &d, old.managed_by.as_deref())
        .await
        .map_err(ApiError::Internal)?;
    Ok(Json(view(&row)))
}

/// Deletes a dashboard (member).
#[utoipa::path(delete, operation_id = "dashboards_delete", path = "/api/v1/dashboards/{id}", tag = "dashboards",
    params(("id" = i64, Path, description = "Dashboard id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    dstore::delete(state.store(), id)
        .await
        .map_err(not_found("dashboard"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?escalation_policy=` of a pack install.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackQuery {
    /// The escalation policy the pack's alert policies page, by id or name; `none` for nobody.
    /// Default: the organization's only escalation policy, when it has exactly one.
    pub escalation_policy: Option<String>,
}

/// Installs a pack (`golden-signals`; admin): its alert policies with runbooks and its
/// dashboards; what already exists is kept. The answer names the escalation policy the new
/// alert policies page, the team's policies they overlap, and warnings.
#[utoipa::path(post, path = "/api/v1/packs/{name}/install", tag = "dashboards",
    params(("name" = String, Path, description = "Dashboard pack name"), PackQuery),
    responses((status = 200, body = crate::api::schemas_ops::PackInstalled), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn install_pack(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<PackQuery>,
) -> ApiResult<Json<pack::Installed>> {
    if !pack::PACKS.contains(&name.as_str()) {
        return Err(ApiError::NotFound("pack"));
    }
    let escalation = pack::Escalation::parse(q.escalation_policy.as_deref());
    let out = pack::install_with(state.store(), &name, &escalation).await?;
    tracing::info!(pack = %name, policies = out.policies_created.len(), dashboards = out.dashboards_created.len(), "Pack installed.");
    Ok(Json(out))
}
