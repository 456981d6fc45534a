//! Integrations from the UI: create, edit, enable/disable and delete the endpoints other tools
//! page through (PagerDuty Events v2 clients, Alertmanager, Grafana, mapped webhooks), with the
//! full URL and key to paste into the sender, copy buttons and a sample request to try it.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Value};

use super::channels::CsrfForm;
use super::forms::{self, Refusal};
use crate::alerting::config::{self, INTEGRATION_TYPES};
use crate::alerting::service::integration_url;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use lookout_store::alerting::{self as astore, IntegrationRow, SpecTable};

/// The integration form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IntegrationForm {
    csrf: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    escalation_policy_id: String,
    service: String,
    urgency: String,
    runbook_id: String,
    mapping: String,
    enabled: Option<String>,
}

impl IntegrationForm {
    fn of(i: &IntegrationRow) -> IntegrationForm {
        let text = |k: &str| match &i.spec[k] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        IntegrationForm {
            csrf: String::new(),
            name: i.name.clone(),
            kind: i.kind.clone(),
            escalation_policy_id: text("escalation_policy_id"),
            service: text("service"),
            urgency: text("urgency"),
            runbook_id: text("runbook_id"),
            mapping: if i.spec["mapping"].is_null() {
                String::new()
            } else {
                serde_json::to_string_pretty(&i.spec["mapping"]).unwrap_or_default()
            },
            enabled: (i.spec["enabled"] != Value::Bool(false)).then(|| "on".into()),
        }
    }

    /// The API's integration document.
    fn body(&self) -> Result<Value, Refusal> {
        let mut v = json!({"name": self.name.trim(), "type": self.kind,
            "escalation_policy_id": forms::opt_id(&self.escalation_policy_id),
            "runbook_id": forms::opt_id(&self.runbook_id),
            "enabled": self.enabled.is_some()});
        if !self.service.trim().is_empty() {
            v["service"] = json!(self.service.trim());
        }
        if !self.urgency.is_empty() {
            v["urgency"] = json!(self.urgency);
        }
        if self.kind == "webhook" && !self.mapping.trim().is_empty() {
            // The one thing only a form has to check: that the text is JSON at all.
            v["mapping"] = serde_json::from_str(&self.mapping).map_err(|e| Refusal {
                message: format!("mapping: not JSON: {e}"),
                field: "mapping".into(),
            })?;
        }
        Ok(v)
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("type", "type"),
    ("escalation policy", "escalation_policy_id"),
    ("escalation_policy_id", "escalation_policy_id"),
    ("runbook", "runbook_id"),
    ("runbook_id", "runbook_id"),
    ("urgency", "urgency"),
    ("service", "service"),
    ("mapping", "mapping"),
];

/// Where to send, for a stored integration.
pub struct Endpoint {
    url: String,
    key: String,
    sample: String,
    setup: String,
}

fn endpoint(state: &AppState, i: &IntegrationRow) -> Endpoint {
    let public = state
        .settings()
        .public_url
        .trim_end_matches('/')
        .to_string();
    let key = state.sealer().open(&i.key_sealed).unwrap_or_default();
    let url = integration_url(&public, &i.kind, &key);
    let (payload, setup) = match i.kind.as_str() {
        "pagerduty" => (
            json!({"routing_key": key, "event_action": "trigger", "dedup_key": "disk-web-1",
                   "payload": {"summary": "Disk 95% full on web-1", "source": "web-1",
                               "severity": "critical"}}),
            format!("In the PagerDuty client (Events API v2), set the events URL to {url} and the integration (routing) key to {key}."),
        ),
        "alertmanager" => (
            json!({"version": "4", "status": "firing", "receiver": "lookout",
                   "groupKey": "{}:{alertname=\"DiskFull\"}", "groupLabels": {"alertname": "DiskFull"},
                   "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
                   "commonAnnotations": {"summary": "Disk 95% full on web-1"},
                   "externalURL": "http://alertmanager:9093",
                   "alerts": [{"status": "firing",
                               "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "web-1"},
                               "annotations": {"summary": "Disk 95% full on web-1"},
                               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                               "fingerprint": "d1sk"}]}),
            format!("# alertmanager.yml\nreceivers:\n  - name: lookout\n    webhook_configs:\n      - url: {url}\n        send_resolved: true"),
        ),
        "grafana" => (
            json!({"receiver": "lookout", "status": "firing", "orgId": 1,
                   "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "web-1"},
                               "annotations": {"summary": "Disk 95% full on web-1"},
                               "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                               "fingerprint": "d1sk"}],
                   "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull"},
                   "commonAnnotations": {}, "externalURL": "http://grafana:3000", "version": "1",
                   "groupKey": "{}:{alertname=\"DiskFull\"}", "title": "[FIRING:1] DiskFull", "state": "alerting"}),
            format!("In Grafana: Alerting → Contact points → New → Webhook, URL {url}, method POST."),
        ),
        _ => (
            json!({"title": "Disk 95% full on web-1", "severity": "critical", "status": "firing"}),
            format!("POST JSON to {url}; the mapping says which fields hold the title, severity, dedup key and state."),
        ),
    };
    let body = serde_json::to_string(&payload).unwrap_or_default();
    let sample = format!(
        "curl -sS -X POST '{url}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
        body.replace('\'', "'\\''")
    );
    Endpoint {
        url,
        key,
        sample,
        setup,
    }
}

#[derive(Template)]
#[template(path = "alert_integration.html")]
struct IntegrationPage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    f: IntegrationForm,
    refusal: Refusal,
    types: &'static [&'static str],
    escalations: Vec<(i64, String)>,
    runbooks: Vec<(i64, String)>,
    endpoint: Option<Endpoint>,
}

async fn page(
    state: &AppState,
    ctx: PageCtx,
    id: Option<i64>,
    f: IntegrationForm,
    refusal: Refusal,
) -> UiResult {
    let endpoint = match id {
        Some(id) => Some(endpoint(
            state,
            &astore::integration_get(state.store(), id).await?,
        )),
        None => None,
    };
    let refused = !refusal.message.is_empty();
    Ok(forms::with_status(
        render(&IntegrationPage {
            title: if id.is_some() {
                format!("Integration {}", f.name)
            } else {
                "New integration".into()
            },
            ctx,
            id,
            f,
            refusal,
            types: INTEGRATION_TYPES,
            escalations: forms::spec_names(state, SpecTable::EscalationPolicies).await?,
            runbooks: forms::runbook_names(state).await?,
            endpoint,
        }),
        refused,
    ))
}

/// `GET /alerts/integrations/new`.
pub async fn new(State(state): State<AppState>, p: Page<Member>) -> UiResult {
    let f = IntegrationForm {
        kind: "alertmanager".into(),
        enabled: Some("on".into()),
        ..IntegrationForm::default()
    };
    page(&state, p.ctx, None, f, Refusal::default()).await
}

/// `GET /alerts/integrations/{id}`.
pub async fn edit(State(state): State<AppState>, p: Page<Member>, Path(id): Path<i64>) -> UiResult {
    let i = astore::integration_get(state.store(), id).await?;
    page(
        &state,
        p.ctx,
        Some(id),
        IntegrationForm::of(&i),
        Refusal::default(),
    )
    .await
}

/// `POST /alerts/integrations`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<IntegrationForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let saved = match f.body() {
        Ok(body) => config::create_integration(&state, &body)
            .await
            .map_err(|e| forms::refusal(e, FIELDS)),
        Err(r) => Err(Ok(r)),
    };
    match saved {
        Ok(row) => Ok(Redirect::to(&format!("/alerts/integrations/{}", row.id)).into_response()),
        Err(r) => page(&state, form.layout(&state).await?, None, f, r?).await,
    }
}

/// `POST /alerts/integrations/{id}`.
pub async fn update(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(mut f): Form<IntegrationForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let old = astore::integration_get(state.store(), id).await?;
    // The type is fixed once made (its URL depends on it).
    f.kind = old.kind.clone();
    let saved = match f.body() {
        Ok(body) => config::update_integration(&state, id, &body)
            .await
            .map_err(|e| forms::refusal(e, FIELDS)),
        Err(r) => Err(Ok(r)),
    };
    match saved {
        Ok(_) => Ok(Redirect::to(&format!("/alerts/integrations/{id}")).into_response()),
        Err(r) => page(&state, form.layout(&state).await?, Some(id), f, r?).await,
    }
}

/// `POST /alerts/integrations/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::integration_delete(state.store(), id).await?;
    tracing::info!(integration = id, "Integration deleted from the UI.");
    Ok(Redirect::to("/alerts").into_response())
}
