//! Alert configuration as domain operations, written once for the API and the pages: alert
//! policies (what opens incidents), inbound integrations (where other tools send alerts, with a
//! key) and runbooks (what responders read). Bodies are the API's JSON documents — a page turns
//! its form into the same document — so both are refused for the same reasons, naming the field.

use serde_json::Value;

use crate::alerting::oncall::save_spec;
use crate::alerting::policies::{Condition, PolicySpec};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_oncall::inbound::Mapping;
use lookout_store::alerting::{self as astore, IntegrationRow, RunbookRow, SpecRow, SpecTable};
use lookout_store::tenancy;

fn invalid(m: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(m.into())
}

fn required_name(body: &Value) -> ServiceResult<String> {
    body.get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 200)
        .map(String::from)
        .ok_or_else(|| invalid("name is required (1-200 characters)"))
}

// ---------------------------------------------------------------------------------- policies

/// An alert policy body: its name and the spec to store. NRQL conditions are planned against
/// the store, and the escalation policy and runbook it names must exist.
pub async fn policy_input(state: &AppState, body: &Value) -> ServiceResult<(String, Value)> {
    let name = required_name(body)?;
    let mut spec = body.clone();
    if let Some(m) = spec.as_object_mut() {
        for k in ["id", "name", "created_at", "updated_at", "team_id"] {
            m.remove(k);
        }
    }
    // Each condition alone first, so a refusal names the one that is wrong.
    for (i, c) in spec["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        serde_json::from_value::<Condition>(c.clone())
            .map_err(|e| invalid(format!("conditions[{i}]: {e}")))?;
    }
    let p: PolicySpec =
        serde_json::from_value(spec).map_err(|e| invalid(format!("policy: {e}")))?;
    p.validate().map_err(ServiceError::Invalid)?;
    for (i, c) in p.conditions.iter().enumerate() {
        if let Condition::Nrql(c) = c {
            crate::alerting::query::check(state.store(), c)
                .await
                .map_err(|e| invalid(format!("conditions[{i}].{e}")))?;
        }
    }
    refs_exist(state, p.escalation_policy_id, p.runbook_id).await?;
    let stored = serde_json::to_value(&p).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok((name, stored))
}

/// Refuses an escalation policy or runbook id that does not exist.
pub async fn refs_exist(
    state: &AppState,
    ep: Option<i64>,
    runbook: Option<i64>,
) -> ServiceResult<()> {
    if let Some(id) = ep {
        astore::spec_get(state.store(), SpecTable::EscalationPolicies, id)
            .await
            .map_err(|_| invalid(format!("escalation policy {id} does not exist")))?;
    }
    if let Some(id) = runbook {
        astore::runbook_get(state.store(), id, None)
            .await
            .map_err(|_| invalid(format!("runbook {id} does not exist")))?;
    }
    Ok(())
}

/// Creates an alert policy.
pub async fn create_policy(state: &AppState, body: &Value) -> ServiceResult<SpecRow> {
    let input = policy_input(state, body).await?;
    save_spec(
        state,
        SpecTable::Policies,
        "alert policy",
        None,
        body,
        input,
    )
    .await
}

/// Replaces an alert policy.
pub async fn update_policy(state: &AppState, id: i64, body: &Value) -> ServiceResult<SpecRow> {
    let input = policy_input(state, body).await?;
    save_spec(
        state,
        SpecTable::Policies,
        "alert policy",
        Some(id),
        body,
        input,
    )
    .await
}

/// Turns an alert policy on or off, keeping the rest of it.
pub async fn set_policy_enabled(state: &AppState, id: i64, enabled: bool) -> ServiceResult<()> {
    let row = astore::spec_get(state.store(), SpecTable::Policies, id)
        .await
        .map_err(ServiceError::not_found("alert policy"))?;
    let mut spec = row.spec.clone();
    spec["enabled"] = Value::Bool(enabled);
    astore::spec_update(state.store(), SpecTable::Policies, id, &row.name, &spec).await?;
    tracing::info!(policy = id, enabled, "Alert policy switched.");
    Ok(())
}

// ------------------------------------------------------------------------------ integrations

/// The integration types and what each is for.
pub const INTEGRATION_TYPES: &[&str] = &["pagerduty", "alertmanager", "grafana", "webhook"];

/// The routing part of an integration body (`escalation_policy_id`, `service`, `urgency`,
/// `runbook_id`, `mapping` for webhooks, `enabled`); unknown fields are refused.
pub async fn integration_spec(state: &AppState, body: &Value, kind: &str) -> ServiceResult<Value> {
    let mut spec = serde_json::Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        match k.as_str() {
            "id" | "name" | "type" | "key" | "url" | "created_at" => {}
            "escalation_policy_id" | "runbook_id" => {
                if !v.is_null() && !v.is_i64() {
                    return Err(invalid(format!("{k} must be an id")));
                }
                spec.insert(k.clone(), v.clone());
            }
            "service" => {
                if !v.is_null() && !v.is_string() {
                    return Err(invalid("service must be a string"));
                }
                spec.insert(k.clone(), v.clone());
            }
            "urgency" => {
                if !matches!(v.as_str(), Some("high" | "low") | None) {
                    return Err(invalid("urgency must be high or low"));
                }
                spec.insert(k.clone(), v.clone());
            }
            "enabled" => {
                if !v.is_boolean() {
                    return Err(invalid("enabled must be true or false"));
                }
                spec.insert(k.clone(), v.clone());
            }
            "mapping" if kind == "webhook" => {
                let m: Mapping = serde_json::from_value(v.clone())
                    .map_err(|e| invalid(format!("mapping: {e}")))?;
                m.validate().map_err(ServiceError::Invalid)?;
                spec.insert(k.clone(), v.clone());
            }
            other => {
                return Err(invalid(format!(
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

/// Creates an integration with a new key.
pub async fn create_integration(state: &AppState, body: &Value) -> ServiceResult<IntegrationRow> {
    let name = required_name(body)?;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .filter(|k| INTEGRATION_TYPES.contains(k))
        .ok_or_else(|| {
            invalid(format!(
                "type must be one of {}",
                INTEGRATION_TYPES.join(", ")
            ))
        })?;
    let spec = integration_spec(state, body, kind).await?;
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
    Ok(row)
}

/// Changes an integration's name and routing (the key and type stay).
pub async fn update_integration(
    state: &AppState,
    id: i64,
    body: &Value,
) -> ServiceResult<IntegrationRow> {
    let old = astore::integration_get(state.store(), id).await?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&old.name)
        .to_string();
    let spec = integration_spec(state, body, &old.kind).await?;
    Ok(astore::integration_update(state.store(), id, &name, &spec).await?)
}

// ---------------------------------------------------------------------------------- runbooks

/// Largest runbook body.
pub const MAX_RUNBOOK: usize = 256 * 1024;

/// A runbook body's `name`, `url` (http or https only) and Markdown `body`.
pub fn runbook_fields(body: &Value) -> ServiceResult<(String, Option<String>, String)> {
    let name = required_name(body)?;
    let url = body.get("url").and_then(Value::as_str).map(String::from);
    if let Some(u) = &url {
        let parsed = url::Url::parse(u).map_err(|e| invalid(format!("url: {e}")))?;
        // Shown as a link on incident pages: a `javascript:` or `data:` URL would run there.
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("url must be an http or https address"));
        }
    }
    let text = body.get("body").and_then(Value::as_str).unwrap_or_default();
    if text.is_empty() && url.is_none() {
        return Err(invalid("a runbook needs a body (Markdown) or a url"));
    }
    if text.len() > MAX_RUNBOOK {
        return Err(invalid("body is limited to 256 KiB"));
    }
    Ok((name, url, text.into()))
}

/// Saves a runbook: a new one (`id` none) or a new version of `id`.
pub async fn save_runbook(
    state: &AppState,
    id: Option<i64>,
    body: &Value,
    actor: &str,
) -> ServiceResult<RunbookRow> {
    let (name, url, text) = runbook_fields(body)?;
    let org = tenancy::default_org(state.store()).await?;
    Ok(astore::runbook_save(
        state.store(),
        org.id,
        id,
        &name,
        url.as_deref(),
        &text,
        actor,
    )
    .await?)
}

/// Deletes runbook `id` and its versions. A runbook an alert policy or integration attaches
/// to its incidents is refused (409, naming them), as Grafana refuses to delete a contact
/// point a notification policy uses and PagerDuty an escalation policy a service uses: the
/// reference is changed where it is made, deliberately, instead of vanishing from under it.
pub async fn delete_runbook(state: &AppState, id: i64) -> ServiceResult<()> {
    astore::runbook_get(state.store(), id, None)
        .await
        .map_err(ServiceError::not_found("runbook"))?;
    let users = astore::runbook_users(state.store(), id).await?;
    if !users.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "the runbook is attached by {}: choose another runbook there (or none) first",
            users.join(", ")
        )));
    }
    astore::runbook_delete(state.store(), id)
        .await
        .map_err(ServiceError::not_found("runbook"))?;
    tracing::info!(runbook = id, "Runbook deleted.");
    Ok(())
}
