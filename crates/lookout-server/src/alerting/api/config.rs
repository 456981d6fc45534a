//! `/api/v1/policies`, `/api/v1/integrations` and `/api/v1/runbooks`: what opens incidents,
//! where other tools send alerts, and what responders read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::alerting::api::incidents::actor_of;
use crate::alerting::api::oncall::{items, spec_view};
use crate::alerting::config;
use crate::alerting::service::{checklist_items, integration_url, MASKED_KEY};
use crate::auth::{Member, Principal};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::teams::ownership::{filter_owned, TeamParam};
use lookout_core::time::iso;
use lookout_core::Role;
use lookout_store::alerting::{self as astore, IntegrationRow, SpecTable};
use lookout_store::tenancy;

// ---------------------------------------------------------------------------------- policies

/// Refuses (422) an escalation policy or runbook id that does not exist.
pub(crate) async fn refs_exist(
    state: &AppState,
    ep: Option<i64>,
    runbook: Option<i64>,
) -> ApiResult<()> {
    Ok(config::refs_exist(state, ep, runbook).await?)
}

/// Lists alert policies.
#[utoipa::path(get, path = "/api/v1/policies", tag = "incidents", params(TeamParam),
    responses((status = 200, body = crate::api::schemas::PolicyList)))]
pub async fn list_policies(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::spec_list(state.store(), SpecTable::Policies, org.id).await?;
    let rows = filter_owned(&state, who.user_id(), &team, rows, |r| r.team_id).await?;
    Ok(items(rows.iter().map(spec_view).collect()))
}

/// Creates an alert policy: `conditions`, `grouping`, `severity`, `urgency`, `service`,
/// `escalation_policy_id`, `runbook_id`, `enabled`.
#[utoipa::path(post, path = "/api/v1/policies", tag = "incidents", request_body = crate::api::schemas::PolicyInput,
    responses((status = 201, body = crate::api::schemas::PolicyView), (status = 422, body = ErrorBody)))]
pub async fn create_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let row = config::create_policy(&state, &body).await?;
    Ok((StatusCode::CREATED, Json(spec_view(&row))))
}

/// One alert policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Alert policy id")),
    responses((status = 200, body = crate::api::schemas::PolicyView), (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let row = astore::spec_get(state.store(), SpecTable::Policies, id).await?;
    Ok(Json(spec_view(&row)))
}

/// Replaces an alert policy.
#[utoipa::path(put, path = "/api/v1/policies/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Alert policy id")), request_body = crate::api::schemas::PolicyInput,
    responses((status = 200, body = crate::api::schemas::PolicyView), (status = 404, body = ErrorBody)))]
pub async fn update_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let row = config::update_policy(&state, id, &body).await?;
    Ok(Json(spec_view(&row)))
}

/// Deletes an alert policy (its incidents stay).
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Alert policy id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_policy(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    astore::spec_delete(state.store(), SpecTable::Policies, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------------ integrations

fn integration_view(state: &AppState, who: &Principal, i: &IntegrationRow) -> Value {
    let key = if who.role() >= Role::Member {
        state.sealer().open(&i.key_sealed).unwrap_or_default()
    } else {
        MASKED_KEY.to_string()
    };
    let mut v = i.spec.clone();
    v["id"] = json!(i.id);
    v["name"] = json!(i.name);
    v["type"] = json!(i.kind);
    v["key"] = json!(key);
    v["url"] = json!(integration_url(&state.settings().public_url, &i.kind, &key));
    v["created_at"] = json!(iso(i.created_at));
    v
}

/// Lists inbound integrations with their URLs (keys for members; masked for viewers).
#[utoipa::path(get, path = "/api/v1/integrations", tag = "incidents",
    responses((status = 200, body = crate::api::schemas::IntegrationList)))]
pub async fn list_integrations(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::integration_list(state.store(), org.id).await?;
    Ok(items(
        rows.iter()
            .map(|i| integration_view(&state, &who, i))
            .collect(),
    ))
}

/// Creates an inbound integration `{"name", "type": "pagerduty|alertmanager|grafana|webhook",
/// "escalation_policy_id", "service", "urgency", "runbook_id", "mapping"}`; answers its `key`
/// (the PagerDuty `routing_key`) and the `url` to send to.
#[utoipa::path(post, path = "/api/v1/integrations", tag = "incidents", request_body = crate::api::schemas::IntegrationInput,
    responses((status = 201, body = crate::api::schemas::IntegrationView), (status = 422, body = ErrorBody)))]
pub async fn create_integration(
    State(state): State<AppState>,
    who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let row = config::create_integration(&state, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(integration_view(&state, &who, &row)),
    ))
}

/// One integration.
#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Integration id")),
    responses((status = 200, body = crate::api::schemas::IntegrationView), (status = 404, body = ErrorBody)))]
pub async fn get_integration(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let row = astore::integration_get(state.store(), id).await?;
    Ok(Json(integration_view(&state, &who, &row)))
}

/// Changes an integration's name and routing (the key stays).
#[utoipa::path(put, path = "/api/v1/integrations/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Integration id")), request_body = crate::api::schemas::IntegrationInput,
    responses((status = 200, body = crate::api::schemas::IntegrationView), (status = 404, body = ErrorBody)))]
pub async fn update_integration(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let row = config::update_integration(&state, id, &body).await?;
    Ok(Json(integration_view(&state, &who, &row)))
}

/// Deletes an integration; its key stops working at once.
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Integration id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_integration(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    astore::integration_delete(state.store(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------- runbooks

fn runbook_view(r: &astore::RunbookRow) -> Value {
    json!({"id": r.id, "name": r.name, "url": r.url, "version": r.version, "body": r.body,
           "checklist": checklist_items(&r.body), "updated_at": iso(r.updated_at)})
}

/// Lists runbooks at their newest versions.
#[utoipa::path(get, path = "/api/v1/runbooks", tag = "incidents",
    responses((status = 200, body = crate::api::schemas::RunbookList)))]
pub async fn list_runbooks(
    State(state): State<AppState>,
    _who: Principal,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::runbook_list(state.store(), org.id).await?;
    Ok(items(rows.iter().map(runbook_view).collect()))
}

/// Creates a runbook `{"name", "body" (Markdown), "url"}`.
#[utoipa::path(post, path = "/api/v1/runbooks", tag = "incidents", request_body = crate::api::schemas::RunbookInput,
    responses((status = 201, body = crate::api::schemas::RunbookView), (status = 422, body = ErrorBody)))]
pub async fn create_runbook(
    State(state): State<AppState>,
    who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = config::save_runbook(&state, None, &body, &actor_of(&who)).await?;
    Ok((StatusCode::CREATED, Json(runbook_view(&r))))
}

/// `?version=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A past version (default: the newest).
    pub version: Option<i64>,
}

/// One runbook, at its newest version or `?version=`.
#[utoipa::path(get, path = "/api/v1/runbooks/{id}", tag = "incidents", params(("id" = i64, Path, description = "Runbook id"), VersionQuery),
    responses((status = 200, body = crate::api::schemas::RunbookView), (status = 404, body = ErrorBody)))]
pub async fn get_runbook(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<VersionQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(runbook_view(
        &astore::runbook_get(state.store(), id, q.version).await?,
    )))
}

/// Saves a new version of a runbook (earlier versions stay readable; open incidents keep the
/// version they opened with).
#[utoipa::path(put, path = "/api/v1/runbooks/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Runbook id")), request_body = crate::api::schemas::RunbookInput,
    responses((status = 200, body = crate::api::schemas::RunbookView), (status = 404, body = ErrorBody)))]
pub async fn update_runbook(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let r = config::save_runbook(&state, Some(id), &body, &actor_of(&who)).await?;
    Ok(Json(runbook_view(&r)))
}

/// Deletes a runbook and its versions. Refused (409) while an alert policy or integration
/// attaches it, naming them: choose another runbook there first.
#[utoipa::path(delete, path = "/api/v1/runbooks/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Runbook id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_runbook(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    config::delete_runbook(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
