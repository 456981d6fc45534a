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
use crate::alerting::policies::PolicySpec;
use crate::alerting::service::{checklist_items, integration_url, MASKED_KEY};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::iso;
use lookout_core::Role;
use lookout_oncall::inbound::Mapping;
use lookout_store::alerting::{self as astore, IntegrationRow, SpecTable};
use lookout_store::tenancy;

// ---------------------------------------------------------------------------------- policies

async fn policy_input(state: &AppState, body: &Value) -> ApiResult<(String, Value)> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Validation("name is required".into()))?
        .to_string();
    let mut spec = body.clone();
    if let Some(m) = spec.as_object_mut() {
        for k in ["id", "name", "created_at", "updated_at"] {
            m.remove(k);
        }
    }
    let p: PolicySpec =
        serde_json::from_value(spec).map_err(|e| ApiError::Validation(format!("policy: {e}")))?;
    p.validate().map_err(ApiError::Validation)?;
    for (i, c) in p.conditions.iter().enumerate() {
        if let crate::alerting::policies::Condition::Nrql(c) = c {
            crate::alerting::query::check(state.store(), c)
                .await
                .map_err(|e| ApiError::Validation(format!("conditions[{i}].{e}")))?;
        }
    }
    refs_exist(state, p.escalation_policy_id, p.runbook_id).await?;
    let stored = serde_json::to_value(&p).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((name, stored))
}

pub(crate) async fn refs_exist(
    state: &AppState,
    ep: Option<i64>,
    runbook: Option<i64>,
) -> ApiResult<()> {
    if let Some(id) = ep {
        astore::spec_get(state.store(), SpecTable::EscalationPolicies, id)
            .await
            .map_err(|_| ApiError::Validation(format!("escalation policy {id} does not exist")))?;
    }
    if let Some(id) = runbook {
        astore::runbook_get(state.store(), id, None)
            .await
            .map_err(|_| ApiError::Validation(format!("runbook {id} does not exist")))?;
    }
    Ok(())
}

/// Lists alert policies.
#[utoipa::path(get, path = "/api/v1/policies", tag = "incidents",
    responses((status = 200, body = crate::api::schemas::PolicyList)))]
pub async fn list_policies(
    State(state): State<AppState>,
    _who: Principal,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let rows = astore::spec_list(state.store(), SpecTable::Policies, org.id).await?;
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
    let (name, spec) = policy_input(&state, &body).await?;
    let org = tenancy::default_org(state.store()).await?;
    let row = astore::spec_create(state.store(), SpecTable::Policies, org.id, &name, &spec).await?;
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
    let (name, spec) = policy_input(&state, &body).await?;
    let row = astore::spec_update(state.store(), SpecTable::Policies, id, &name, &spec).await?;
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

const INTEGRATION_TYPES: &[&str] = &["pagerduty", "alertmanager", "grafana", "webhook"];

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

async fn integration_spec(state: &AppState, body: &Value, kind: &str) -> ApiResult<Value> {
    let mut spec = serde_json::Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        match k.as_str() {
            "id" | "name" | "type" | "key" | "url" | "created_at" => {}
            "escalation_policy_id" | "runbook_id" => {
                if !v.is_null() && !v.is_i64() {
                    return Err(ApiError::Validation(format!("{k} must be an id")));
                }
                spec.insert(k.clone(), v.clone());
            }
            "service" => {
                if !v.is_null() && !v.is_string() {
                    return Err(ApiError::Validation("service must be a string".into()));
                }
                spec.insert(k.clone(), v.clone());
            }
            "urgency" => {
                if !matches!(v.as_str(), Some("high" | "low") | None) {
                    return Err(ApiError::Validation("urgency must be high or low".into()));
                }
                spec.insert(k.clone(), v.clone());
            }
            "mapping" if kind == "webhook" => {
                let m: Mapping = serde_json::from_value(v.clone())
                    .map_err(|e| ApiError::Validation(format!("mapping: {e}")))?;
                m.validate().map_err(ApiError::Validation)?;
                spec.insert(k.clone(), v.clone());
            }
            other => {
                return Err(ApiError::Validation(format!(
                    "unknown field {other:?} for a {kind} integration"
                )))
            }
        }
    }
    refs_exist(
        state,
        spec.get("escalation_policy_id").and_then(Value::as_i64),
        spec.get("runbook_id").and_then(Value::as_i64),
    )
    .await?;
    Ok(Value::Object(spec))
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
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Validation("name is required".into()))?
        .to_string();
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .filter(|k| INTEGRATION_TYPES.contains(k))
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "type must be one of {}",
                INTEGRATION_TYPES.join(", ")
            ))
        })?;
    let spec = integration_spec(&state, &body, kind).await?;
    // 32 hex characters: the length PagerDuty's routing keys have, which clients check.
    let key = lookout_core::secret::random_hex(16);
    let org = tenancy::default_org(state.store()).await?;
    let row = astore::integration_create(
        state.store(),
        org.id,
        &name,
        kind,
        &lookout_core::secret::hash_token(&key),
        &state.sealer().seal(&key),
        &spec,
    )
    .await?;
    tracing::info!(integration = row.id, kind, "Integration created.");
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
    let old = astore::integration_get(state.store(), id).await?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&old.name)
        .to_string();
    let spec = integration_spec(&state, &body, &old.kind).await?;
    let row = astore::integration_update(state.store(), id, &name, &spec).await?;
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

fn runbook_fields(body: &Value) -> ApiResult<(String, Option<String>, String)> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Validation("name is required".into()))?;
    let url = body.get("url").and_then(Value::as_str).map(String::from);
    if let Some(u) = &url {
        let parsed = url::Url::parse(u).map_err(|e| ApiError::Validation(format!("url: {e}")))?;
        // Shown as a link on incident pages: a `javascript:` or `data:` URL would run there.
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::Validation(
                "url must be an http or https address".into(),
            ));
        }
    }
    let text = body.get("body").and_then(Value::as_str).unwrap_or_default();
    if text.is_empty() && url.is_none() {
        return Err(ApiError::Validation(
            "a runbook needs a body (Markdown) or a url".into(),
        ));
    }
    if text.len() > 256 * 1024 {
        return Err(ApiError::Validation("body is limited to 256 KiB".into()));
    }
    Ok((name.into(), url, text.into()))
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
    let (name, url, text) = runbook_fields(&body)?;
    let org = tenancy::default_org(state.store()).await?;
    let r = astore::runbook_save(
        state.store(),
        org.id,
        None,
        &name,
        url.as_deref(),
        &text,
        &actor_of(&who),
    )
    .await?;
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
    let (name, url, text) = runbook_fields(&body)?;
    let org = tenancy::default_org(state.store()).await?;
    let r = astore::runbook_save(
        state.store(),
        org.id,
        Some(id),
        &name,
        url.as_deref(),
        &text,
        &actor_of(&who),
    )
    .await?;
    Ok(Json(runbook_view(&r)))
}
