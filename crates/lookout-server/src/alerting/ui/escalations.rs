//! Escalation policies from the UI: rules (each with its targets — users, schedules, team
//! channels — and the delay before the next rule), repeats and the acknowledgement timeout;
//! create, edit, switch on and off, and delete. A form has one empty rule more than the
//! policy, to add one.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use serde_json::{json, Value};

use super::channels::{CsrfForm, EnableForm};
use super::forms::{self, Refusal};
use crate::alerting::oncall;
use crate::state::AppState;
use crate::teams::owned_ui::{self, team_field, TeamField};
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use lookout_store::alerting::{self as astore, SpecTable};

/// Most rules a form shows.
const MAX_RULES: usize = 20;

/// One rule as typed: the delay and the chosen targets (`user:3`, `schedule:1`, `channel:2`).
#[derive(Debug, Clone, Default)]
pub struct RuleForm {
    delay: String,
    targets: Vec<String>,
    invalid: bool,
}

impl RuleForm {
    /// Whether `target` is chosen.
    pub fn has(&self, target: &str) -> bool {
        self.targets.iter().any(|t| t == target)
    }
}

/// The escalation policy form, as typed.
#[derive(Debug, Clone, Default)]
pub struct EscalationForm {
    csrf: String,
    name: String,
    num_loops: String,
    ack_timeout_minutes: String,
    rules: Vec<RuleForm>,
    enabled: bool,
    team: String,
}

impl EscalationForm {
    /// From the posted pairs (`rule0_delay`, `rule0_target` repeated, …).
    fn parse(pairs: Vec<(String, String)>) -> EscalationForm {
        let mut f = EscalationForm::default();
        let mut rules: Vec<RuleForm> = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "name" => f.name = v,
                "num_loops" => f.num_loops = v,
                "ack_timeout_minutes" => f.ack_timeout_minutes = v,
                "enabled" => f.enabled = true,
                "team" => f.team = v,
                other => {
                    let Some((i, what)) = forms::indexed(other, "rule", MAX_RULES) else {
                        continue;
                    };
                    if rules.len() <= i {
                        rules.resize(i + 1, RuleForm::default());
                    }
                    match what {
                        "delay" => rules[i].delay = v,
                        "target" if !v.is_empty() => rules[i].targets.push(v),
                        _ => {}
                    }
                }
            }
        }
        // The empty rule the form offers for adding one is not a rule.
        f.rules = rules
            .into_iter()
            .filter(|r| !r.targets.is_empty() || !r.delay.trim().is_empty())
            .collect();
        f
    }

    fn of(name: &str, spec: &Value, team_id: Option<i64>) -> EscalationForm {
        let rules = spec["escalation_rules"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| RuleForm {
                        delay: r["escalation_delay_in_minutes"].to_string(),
                        targets: r["targets"]
                            .as_array()
                            .map(|ts| {
                                ts.iter()
                                    .map(|t| {
                                        format!(
                                            "{}:{}",
                                            t["type"].as_str().unwrap_or_default(),
                                            t["id"]
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        invalid: false,
                    })
                    .collect()
            })
            .unwrap_or_default();
        EscalationForm {
            csrf: String::new(),
            name: name.to_string(),
            num_loops: spec["num_loops"].as_i64().unwrap_or(0).to_string(),
            ack_timeout_minutes: spec["ack_timeout_minutes"]
                .as_i64()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            rules,
            enabled: spec["enabled"] != Value::Bool(false),
            team: owned_ui::selected(team_id),
        }
    }

    /// The API's escalation policy document.
    fn body(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let targets: Vec<Value> = r
                    .targets
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((kind, id)) => json!({"type": kind, "id": forms::opt_id(id)}),
                        None => json!({"type": t}),
                    })
                    .collect();
                json!({"escalation_delay_in_minutes": forms::number(&r.delay).unwrap_or(json!(0)),
                       "targets": targets})
            })
            .collect();
        let mut v = json!({"name": self.name.trim(), "escalation_rules": rules,
            "num_loops": forms::number(&self.num_loops).unwrap_or(json!(0)),
            "enabled": self.enabled, "team_id": forms::opt_id(&self.team)});
        if let Some(a) = forms::number(&self.ack_timeout_minutes) {
            v["ack_timeout_minutes"] = a;
        }
        v
    }
}

const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("num_loops", "num_loops"),
    ("ack_timeout_minutes", "ack_timeout_minutes"),
    ("escalation_rules", "rules"),
    ("team_id", "team"),
];

/// Marks the rule a refusal names (`escalation_rules[2]…`).
fn mark(f: &mut EscalationForm, r: &Refusal) {
    if let Some(i) = r
        .message
        .split_once("escalation_rules[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok())
    {
        if let Some(rule) = f.rules.get_mut(i) {
            rule.invalid = true;
        }
    }
}

#[derive(Template)]
#[template(path = "alert_escalation.html")]
struct EscalationPage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    f: EscalationForm,
    refusal: Refusal,
    targets: Vec<(String, String)>,
    team_field: TeamField,
}

/// Everything a rule may page, as `(value, label)`.
async fn targets(state: &AppState) -> UiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (id, name) in forms::users(state).await? {
        out.push((format!("user:{id}"), format!("User: {name}")));
    }
    for (id, name) in forms::spec_names(state, SpecTable::Schedules).await? {
        out.push((format!("schedule:{id}"), format!("On call in: {name}")));
    }
    for (id, name) in forms::channel_names(state).await? {
        out.push((format!("channel:{id}"), format!("Channel: {name}")));
    }
    Ok(out)
}

async fn page(
    state: &AppState,
    ctx: PageCtx,
    id: Option<i64>,
    mut f: EscalationForm,
    refusal: Refusal,
) -> UiResult {
    mark(&mut f, &refusal);
    if f.rules.len() < MAX_RULES {
        f.rules.push(RuleForm::default());
    }
    let refused = !refusal.message.is_empty();
    let team_field = team_field(state, &f.team, refusal.is("team")).await?;
    Ok(forms::with_status(
        render(&EscalationPage {
            title: if id.is_some() {
                format!("Escalation policy {}", f.name)
            } else {
                "New escalation policy".into()
            },
            ctx,
            id,
            f,
            refusal,
            targets: targets(state).await?,
            team_field,
        }),
        refused,
    ))
}

/// `GET /alerts/escalation-policies/new`.
pub async fn new(State(state): State<AppState>, p: Page<Member>) -> UiResult {
    let f = EscalationForm {
        num_loops: "0".into(),
        ack_timeout_minutes: "30".into(),
        enabled: true,
        ..EscalationForm::default()
    };
    page(&state, p.ctx, None, f, Refusal::default()).await
}

/// `GET /alerts/escalation-policies/{id}`.
pub async fn edit(State(state): State<AppState>, p: Page<Member>, Path(id): Path<i64>) -> UiResult {
    let row = astore::spec_get(state.store(), SpecTable::EscalationPolicies, id).await?;
    let f = EscalationForm::of(&row.name, &row.spec, row.team_id);
    page(&state, p.ctx, Some(id), f, Refusal::default()).await
}

/// `POST /alerts/escalation-policies`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let f = EscalationForm::parse(pairs);
    check_csrf(&form.session, &f.csrf)?;
    match oncall::create_escalation_policy(&state, &f.body()).await {
        Ok(row) => {
            Ok(Redirect::to(&format!("/alerts/escalation-policies/{}", row.id)).into_response())
        }
        Err(e) => {
            let r = forms::refusal(e, FIELDS)?;
            page(&state, form.layout(&state).await?, None, f, r).await
        }
    }
}

/// `POST /alerts/escalation-policies/{id}`.
pub async fn update(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let f = EscalationForm::parse(pairs);
    check_csrf(&form.session, &f.csrf)?;
    match oncall::update_escalation_policy(&state, id, &f.body()).await {
        Ok(_) => Ok(Redirect::to(&format!("/alerts/escalation-policies/{id}")).into_response()),
        Err(e) => {
            let r = forms::refusal(e, FIELDS)?;
            page(&state, form.layout(&state).await?, Some(id), f, r).await
        }
    }
}

/// `POST /alerts/escalation-policies/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::spec_delete(state.store(), SpecTable::EscalationPolicies, id).await?;
    tracing::info!(
        escalation_policy = id,
        "Escalation policy deleted from the UI."
    );
    Ok(Redirect::to("/alerts").into_response())
}

/// `POST /alerts/escalation-policies/{id}/enabled`: switches a policy on or off from the
/// Alerts list.
pub async fn set_enabled(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<EnableForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    oncall::set_escalation_enabled(&state, id, f.enabled == "true").await?;
    Ok(Redirect::to("/alerts#escalation-policies").into_response())
}
