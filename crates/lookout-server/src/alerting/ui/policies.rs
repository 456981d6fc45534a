//! Alert policies and runbooks from the UI. A policy's conditions are rows, one per condition
//! (its source and that source's fields, see [`super::conditions`]); severity, urgency,
//! grouping, service, escalation policy, runbook and enabled are fields. Policies are created, edited, switched on and off and deleted;
//! runbooks (Markdown) are created, edited (each save a new version) and deleted.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Value};

use super::channels::CsrfForm;
use super::conditions::{self, ConditionForm};
use super::forms::{self, Refusal};
use crate::alerting::config;
use crate::state::AppState;
use crate::teams::owned_ui::{self, team_field, TeamField};
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use lookout_store::alerting::{self as astore, SpecTable};

/// The alert policy form, as typed: its conditions as rows, the rest as fields.
#[derive(Debug, Clone, Default)]
pub struct PolicyForm {
    csrf: String,
    name: String,
    conditions: Vec<ConditionForm>,
    severity: String,
    urgency: String,
    grouping: String,
    service: String,
    escalation_policy_id: String,
    runbook_id: String,
    enabled: bool,
    /// Page the escalation policy of the team that owns the issue (error conditions).
    notify_owners: bool,
    /// The owning team's id, or empty.
    team: String,
}

impl PolicyForm {
    /// From the posted pairs (`name`, `c0_source`, …).
    fn parse(pairs: Vec<(String, String)>) -> PolicyForm {
        let (conditions, rest) = conditions::parse(pairs);
        let mut f = PolicyForm {
            conditions,
            ..PolicyForm::default()
        };
        for (k, v) in rest {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "name" => f.name = v,
                "severity" => f.severity = v,
                "urgency" => f.urgency = v,
                "grouping" => f.grouping = v,
                "service" => f.service = v,
                "escalation_policy_id" => f.escalation_policy_id = v,
                "runbook_id" => f.runbook_id = v,
                "enabled" => f.enabled = true,
                "notify_owners" => f.notify_owners = true,
                "team" => f.team = v,
                _ => {}
            }
        }
        f
    }

    fn of(name: &str, spec: &Value, team_id: Option<i64>) -> PolicyForm {
        let text = |k: &str| match &spec[k] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        PolicyForm {
            csrf: String::new(),
            name: name.to_string(),
            conditions: spec["conditions"]
                .as_array()
                .map(|cs| cs.iter().map(ConditionForm::of).collect())
                .unwrap_or_default(),
            severity: text("severity"),
            urgency: text("urgency"),
            grouping: text("grouping"),
            service: text("service"),
            escalation_policy_id: text("escalation_policy_id"),
            runbook_id: text("runbook_id"),
            enabled: spec["enabled"] != Value::Bool(false),
            notify_owners: spec["notify_owners"] == Value::Bool(true),
            team: owned_ui::selected(team_id),
        }
    }

    /// The API's policy document.
    fn body(&mut self) -> Result<Value, Refusal> {
        let conditions = conditions::body(&mut self.conditions)?;
        let mut v = json!({"name": self.name.trim(), "conditions": conditions,
            "enabled": self.enabled, "team_id": forms::opt_id(&self.team)});
        if self.notify_owners {
            v["notify_owners"] = json!(true);
        }
        for (k, val) in [
            ("severity", &self.severity),
            ("urgency", &self.urgency),
            ("grouping", &self.grouping),
            ("service", &self.service),
        ] {
            if !val.trim().is_empty() {
                v[k] = json!(val.trim());
            }
        }
        for (k, val) in [
            ("escalation_policy_id", &self.escalation_policy_id),
            ("runbook_id", &self.runbook_id),
        ] {
            let id = forms::opt_id(val);
            if !id.is_null() {
                v[k] = id;
            }
        }
        Ok(v)
    }
}

/// Fields outside the conditions that refusals name.
const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("conditions", "conditions"),
    ("severity", "severity"),
    ("urgency", "urgency"),
    ("grouping", "grouping"),
    ("escalation policy", "escalation_policy_id"),
    ("runbook", "runbook_id"),
    ("team_id", "team"),
    ("policy", "conditions"),
];

#[derive(Template)]
#[template(path = "alert_policy.html")]
struct PolicyPage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    f: PolicyForm,
    refusal: Refusal,
    escalations: Vec<(i64, String)>,
    runbooks: Vec<(i64, String)>,
    sources: &'static [(&'static str, &'static str)],
    operators: &'static [(&'static str, &'static str)],
    team_field: TeamField,
}

async fn page(
    state: &AppState,
    ctx: PageCtx,
    id: Option<i64>,
    mut f: PolicyForm,
    refusal: Refusal,
) -> UiResult {
    let refused = !refusal.message.is_empty();
    // The empty row that adds a condition.
    if f.conditions.len() < conditions::MAX_CONDITIONS {
        f.conditions.push(ConditionForm::default());
    }
    let team_field = team_field(state, &f.team, refusal.is("team")).await?;
    Ok(forms::with_status(
        render(&PolicyPage {
            title: if id.is_some() {
                format!("Alert policy {}", f.name)
            } else {
                "New alert policy".into()
            },
            ctx,
            id,
            f,
            refusal,
            escalations: forms::spec_names(state, SpecTable::EscalationPolicies).await?,
            runbooks: forms::runbook_names(state).await?,
            sources: conditions::SOURCES,
            operators: conditions::OPERATORS,
            team_field,
        }),
        refused,
    ))
}

/// `GET /alerts/policies/new`.
pub async fn new(State(state): State<AppState>, p: Page<Member>) -> UiResult {
    let f = PolicyForm {
        conditions: vec![ConditionForm::of(
            &json!({"source": "monitor", "events": ["down"]}),
        )],
        severity: "critical".into(),
        enabled: true,
        ..PolicyForm::default()
    };
    page(&state, p.ctx, None, f, Refusal::default()).await
}

/// `GET /alerts/policies/{id}`.
pub async fn edit(State(state): State<AppState>, p: Page<Member>, Path(id): Path<i64>) -> UiResult {
    let row = astore::spec_get(state.store(), SpecTable::Policies, id).await?;
    let f = PolicyForm::of(&row.name, &row.spec, row.team_id);
    page(&state, p.ctx, Some(id), f, Refusal::default()).await
}

/// `POST /alerts/policies` and `POST /alerts/policies/{id}`.
async fn save(
    state: AppState,
    form: Signed<Member>,
    id: Option<i64>,
    pairs: Vec<(String, String)>,
) -> UiResult {
    let mut f = PolicyForm::parse(pairs);
    check_csrf(&form.session, &f.csrf)?;
    let saved = match f.body() {
        Ok(body) => match id {
            Some(id) => config::update_policy(&state, id, &body).await,
            None => config::create_policy(&state, &body).await,
        }
        .map_err(|e| forms::refusal(e, FIELDS)),
        Err(r) => Err(Ok(r)),
    };
    match saved {
        Ok(row) => Ok(Redirect::to(&format!("/alerts/policies/{}", row.id)).into_response()),
        Err(r) => {
            let mut r = r?;
            // A refusal about one condition marks its row and field.
            if let Some(field) = conditions::mark(&mut f.conditions, &r.message) {
                r.field = field;
            } else if r.field == "conditions" {
                if let Some(first) = f.conditions.first_mut() {
                    first.bad = "row".into();
                }
            }
            page(&state, form.layout(&state).await?, id, f, r).await
        }
    }
}

/// `POST /alerts/policies`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    save(state, form, None, pairs).await
}

/// `POST /alerts/policies/{id}`.
pub async fn update(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    save(state, form, Some(id), pairs).await
}

/// `POST /alerts/policies/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::spec_delete(state.store(), SpecTable::Policies, id).await?;
    tracing::info!(policy = id, "Alert policy deleted from the UI.");
    Ok(Redirect::to("/alerts").into_response())
}

/// The on/off switch.
#[derive(Debug, Deserialize)]
pub struct EnableForm {
    csrf: String,
    enabled: String,
}

/// `POST /alerts/policies/{id}/enabled`.
pub async fn set_enabled(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<EnableForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    config::set_policy_enabled(&state, id, f.enabled == "true").await?;
    Ok(Redirect::to("/alerts").into_response())
}

// ---------------------------------------------------------------------------------- runbooks

/// The runbook form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RunbookForm {
    csrf: String,
    name: String,
    url: String,
    body: String,
}

impl RunbookForm {
    fn body(&self) -> Value {
        let mut v = json!({"name": self.name.trim(), "body": self.body});
        if !self.url.trim().is_empty() {
            v["url"] = json!(self.url.trim());
        }
        v
    }
}

const RUNBOOK_FIELDS: &[(&str, &str)] = &[("name", "name"), ("url", "url"), ("body", "body")];

#[derive(Template)]
#[template(path = "alert_runbook.html")]
struct RunbookPage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    version: i64,
    f: RunbookForm,
    refusal: Refusal,
    preview: String,
}

fn runbook_page(
    ctx: PageCtx,
    id: Option<i64>,
    version: i64,
    f: RunbookForm,
    refusal: Refusal,
) -> UiResult {
    let refused = !refusal.message.is_empty();
    let preview = crate::ui::markdown(&f.body);
    Ok(forms::with_status(
        render(&RunbookPage {
            title: if id.is_some() {
                format!("Runbook {}", f.name)
            } else {
                "New runbook".into()
            },
            ctx,
            id,
            version,
            f,
            refusal,
            preview,
        }),
        refused,
    ))
}

/// `GET /alerts/runbooks/new`.
pub async fn new_runbook(p: Page<Member>) -> UiResult {
    runbook_page(p.ctx, None, 0, RunbookForm::default(), Refusal::default())
}

/// `GET /alerts/runbooks/{id}`.
pub async fn edit_runbook(
    State(state): State<AppState>,
    p: Page<Member>,
    Path(id): Path<i64>,
) -> UiResult {
    let r = astore::runbook_get(state.store(), id, None).await?;
    let f = RunbookForm {
        csrf: String::new(),
        name: r.name,
        url: r.url.unwrap_or_default(),
        body: r.body,
    };
    runbook_page(p.ctx, Some(id), r.version, f, Refusal::default())
}

async fn save_runbook(
    state: AppState,
    form: Signed<Member>,
    id: Option<i64>,
    f: RunbookForm,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    match config::save_runbook(&state, id, &f.body(), &forms::actor(&form.session)).await {
        Ok(r) => Ok(Redirect::to(&format!("/alerts/runbooks/{}", r.id)).into_response()),
        Err(e) => {
            let r = forms::refusal(e, RUNBOOK_FIELDS)?;
            runbook_page(form.layout(&state).await?, id, 0, f, r)
        }
    }
}

/// `POST /alerts/runbooks`.
pub async fn create_runbook(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<RunbookForm>,
) -> UiResult {
    save_runbook(state, form, None, f).await
}

/// `POST /alerts/runbooks/{id}`.
pub async fn update_runbook(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<RunbookForm>,
) -> UiResult {
    save_runbook(state, form, Some(id), f).await
}

/// `POST /alerts/runbooks/{id}/delete`: deletes a runbook; one an alert policy or integration
/// attaches is refused on its page, naming them.
pub async fn delete_runbook(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    match config::delete_runbook(&state, id).await {
        Ok(()) => Ok(Redirect::to("/alerts#runbooks").into_response()),
        Err(e) => {
            let r = forms::refusal(e, &[])?;
            let rb = astore::runbook_get(state.store(), id, None).await?;
            let f = RunbookForm {
                csrf: String::new(),
                name: rb.name,
                url: rb.url.unwrap_or_default(),
                body: rb.body,
            };
            let mut page = runbook_page(form.layout(&state).await?, Some(id), rb.version, f, r)?;
            *page.status_mut() = axum::http::StatusCode::CONFLICT;
            Ok(page)
        }
    }
}
