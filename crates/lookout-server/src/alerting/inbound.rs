//! HTTP endpoints other tools page through: PagerDuty Events API v2 at `POST /v2/enqueue`, and
//! `POST /integrations/{key}/{alertmanager|grafana|webhook}`. The body is parsed by
//! `lookout_oncall::inbound`; all signals of one request apply in one transaction, and the
//! answer is sent after it commits, so an acknowledged event is never lost.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::engine::{self, Origin};
use crate::state::AppState;
use lookout_oncall::dedup::Urgency;
use lookout_oncall::inbound::{self, Action, Invalid, Mapping, Signal};
use lookout_store::alerting::{self as astore, IntegrationRow};

/// Largest body accepted (PagerDuty's limit).
pub const MAX_BODY: usize = 512 * 1024;

fn invalid(e: &Invalid) -> Response {
    tracing::info!(errors = ?e.errors, "Inbound alert refused.");
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "invalid event", "message": e.message, "errors": e.errors})),
    )
        .into_response()
}

fn unknown_key() -> Response {
    tracing::info!("Inbound alert with an unknown integration key.");
    (
        StatusCode::BAD_REQUEST,
        Json(
            json!({"status": "invalid event", "message": "Event object is invalid",
                    "errors": ["'routing_key' is not a known integration key"]}),
        ),
    )
        .into_response()
}

fn unavailable(e: &lookout_store::StoreError) -> Response {
    tracing::warn!(error = %e, "Inbound alert could not be stored.");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("retry-after", "5")],
        Json(json!({"status": "unavailable", "message": "retry later"})),
    )
        .into_response()
}

async fn integration(state: &AppState, key: &str) -> Result<Option<IntegrationRow>, Response> {
    let found = astore::integration_by_key(state.store(), &lookout_core::secret::hash_token(key))
        .await
        .map_err(|e| unavailable(&e))?;
    // A disabled integration keeps its key (turning it back on needs no change at the sender)
    // but opens nothing; the sender is told why, so its own log says what happened.
    if let Some(i) = found
        .as_ref()
        .filter(|i| i.spec["enabled"] == Value::Bool(false))
    {
        tracing::info!(
            integration = i.id,
            "Inbound alert for a disabled integration."
        );
        return Err((
            StatusCode::BAD_REQUEST,
            Json(
                json!({"status": "invalid event", "message": "Event object is invalid",
                        "errors": ["this integration is disabled in Lookout"]}),
            ),
        )
            .into_response());
    }
    Ok(found)
}

/// Applies signals for an integration in one transaction; their dedup keys.
async fn receive(
    state: &AppState,
    i: &IntegrationRow,
    mut signals: Vec<Signal>,
) -> Result<Vec<String>, lookout_store::StoreError> {
    let spec = &i.spec;
    let origin = Origin {
        org_id: i.org_id,
        scope: format!("integration:{}", i.id),
        policy_id: None,
        integration_id: Some(i.id),
        escalation_policy_id: spec.get("escalation_policy_id").and_then(Value::as_i64),
        runbook_id: spec.get("runbook_id").and_then(Value::as_i64),
        service: spec
            .get("service")
            .and_then(Value::as_str)
            .map(String::from),
        urgency: spec
            .get("urgency")
            .and_then(Value::as_str)
            .and_then(Urgency::parse),
        actor: format!("integration:{}", i.name),
        // Alertmanager and Grafana resend whole groups; only new alerts count.
        count_repeats: matches!(i.kind.as_str(), "pagerduty" | "webhook"),
        signal_ref: None,
    };
    let a = state.alerting();
    let now = super::db_now(state.store()).await;
    let mut keys = Vec::with_capacity(signals.len());
    let mut tx = state.store().begin_write().await?;
    for s in &mut signals {
        if s.dedup_key.is_none() {
            // A trigger without a key gets one (PagerDuty does the same) and says so.
            s.dedup_key = Some(lookout_core::secret::random_hex(16));
        }
        keys.push(s.dedup_key.clone().unwrap_or_default());
        engine::apply(&mut tx, &origin, s, now).await?;
    }
    tx.commit().await?;
    a.wake();
    metrics::counter!("lookout_alerting_inbound_total", "type" => i.kind.clone())
        .increment(signals.len() as u64);
    Ok(keys)
}

/// `POST /v2/enqueue`: PagerDuty Events API v2.
pub async fn pagerduty(State(state): State<AppState>, body: Bytes) -> Response {
    if body.len() > MAX_BODY {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"status": "invalid event", "message": "Payload is over 512 KB"})),
        )
            .into_response();
    }
    let (key, signal) = match inbound::pagerduty(&body) {
        Ok(x) => x,
        Err(e) => return invalid(&e),
    };
    let i = match integration(&state, &key).await {
        Ok(Some(i)) => i,
        Ok(None) => return unknown_key(),
        Err(r) => return r,
    };
    match receive(&state, &i, vec![signal]).await {
        Ok(keys) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "message": "Event processed",
                        "dedup_key": keys.first()})),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}

/// `POST /integrations/{key}/{kind}`: Alertmanager, Grafana or a mapped generic webhook.
pub async fn webhook(
    State(state): State<AppState>,
    Path((key, kind)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body over 512 KB").into_response();
    }
    let i = match integration(&state, &key).await {
        Ok(Some(i)) if i.kind == kind => i,
        Ok(Some(_)) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"status": "error",
                            "message": "this key belongs to an integration of another type"})),
            )
                .into_response()
        }
        Ok(None) => {
            tracing::info!("Inbound webhook with an unknown integration key.");
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"status": "error", "message": "unknown integration key"})),
            )
                .into_response();
        }
        Err(r) => return r,
    };
    let signals = match kind.as_str() {
        "alertmanager" | "grafana" => inbound::alertmanager(&body),
        "webhook" => {
            let mapping: Mapping = i
                .spec
                .get("mapping")
                .cloned()
                .and_then(|m| serde_json::from_value(m).ok())
                .unwrap_or_default();
            inbound::mapped(&body, &mapping).map(|s| vec![s])
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let signals = match signals {
        Ok(s) => s,
        Err(e) => return invalid(&e),
    };
    let n = signals.len();
    let resolves = signals
        .iter()
        .filter(|s| s.action == Action::Resolve)
        .count();
    match receive(&state, &i, signals).await {
        Ok(keys) => (
            StatusCode::OK,
            Json(
                json!({"status": "success", "processed": n, "resolving": resolves,
                        "dedup_keys": keys}),
            ),
        )
            .into_response(),
        Err(e) => unavailable(&e),
    }
}
