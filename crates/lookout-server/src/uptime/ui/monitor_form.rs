//! The monitor form, in its three uses: **Add** (on the Uptime list), **Edit** (prefilled with
//! the monitor's settings; saves through the same service call as the API's PUT) and **Clone**
//! (the add form prefilled from another monitor, named "… (copy)"). A refused form comes back
//! with what was typed and the wrong field marked and named.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::service::ServiceError;
use crate::state::AppState;
use crate::teams::owned_ui::{self, team_field, TeamField};
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use crate::uptime::service;
use lookout_store::uptime as ustore;
use lookout_uptime::spec::LOCAL;
use lookout_uptime::MonitorSpec;

/// The monitor types the form offers, with their labels.
pub const KINDS: &[(&str, &str)] = &[
    ("http", "HTTP(S)"),
    ("tcp", "TCP port"),
    ("dns", "DNS"),
    ("icmp", "Ping (ICMP)"),
    ("tls", "TLS certificate"),
    ("heartbeat", "Heartbeat (push)"),
    ("cron", "Cron job"),
];

/// What the form holds: as typed (after a refusal) or as stored (edit, clone). Every field is
/// text so a wrong value comes back as it was typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MonitorForm {
    /// CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `http`, `tcp`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// URL, `host:port`, host or crontab, by type.
    #[serde(default)]
    pub target: String,
    /// Seconds between checks.
    #[serde(default)]
    pub interval_seconds: String,
    /// Seconds a check may take.
    #[serde(default)]
    pub timeout_seconds: String,
    /// Failures in a row before down.
    #[serde(default)]
    pub failure_threshold: String,
    /// Successes in a row before up again.
    #[serde(default)]
    pub success_threshold: String,
    /// Heartbeat and cron: the margin.
    #[serde(default)]
    pub grace_seconds: String,
    /// One per line.
    #[serde(default)]
    pub conditions: String,
    /// The owning team's id, or empty.
    #[serde(default)]
    pub team: String,
    /// How many locations must fail before down (empty: a majority).
    #[serde(default)]
    pub min_failing_locations: String,
    /// The location boxes ticked, as `loc_<name>` keys (a form sends one key per ticked box;
    /// any other unknown key lands here too and is ignored).
    #[serde(flatten)]
    pub picked: BTreeMap<String, String>,
    /// The locations offered (`local` first); empty when none exists besides `local`.
    #[serde(skip)]
    pub choices: Vec<String>,
}

/// The form key of location `name`'s box.
fn pick_key(name: &str) -> String {
    format!("loc_{name}")
}

/// A form refused: the message (naming the field) and the field's input name.
#[derive(Debug, Clone, Default)]
pub struct FormError {
    /// What is wrong, e.g. `interval_seconds: must be between 1 and 604800`.
    pub message: String,
    /// The form field to mark (`interval_seconds`, `target`, …); empty when none fits.
    pub field: String,
}

impl FormError {
    fn new(field: &str, message: impl Into<String>) -> FormError {
        FormError {
            message: message.into(),
            field: field.into(),
        }
    }

    /// The form field a service message is about: it starts with the JSON field's name, and the
    /// fields that make up the target (`url`, `host`, `port`, `schedule`) are the target box.
    pub fn from_message(message: String) -> FormError {
        let head: String = message
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let field = match head.as_str() {
            "url" | "host" | "port" | "schedule" | "resolver" => "target",
            "type" => "type",
            "locations" => "locations",
            "confirm" => "min_failing_locations",
            f @ ("name" | "interval_seconds" | "timeout_seconds" | "failure_threshold"
            | "success_threshold" | "grace_seconds" | "conditions") => f,
            "team_id" => "team",
            _ if message.contains("condition") => "conditions",
            _ => "",
        };
        FormError {
            field: field.into(),
            message,
        }
    }
}

impl MonitorForm {
    /// The form prefilled from a stored monitor (secrets stay masked; saving keeps them).
    pub fn from_spec(spec: &Value) -> MonitorForm {
        let text = |k: &str| match spec.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let kind = text("type");
        let target = match kind.as_str() {
            "cron" => text("schedule"),
            "tcp" => format!("{}:{}", text("host"), text("port")),
            "tls" if spec.get("url").is_none() => match text("port").as_str() {
                "" => text("host"),
                p => format!("{}:{p}", text("host")),
            },
            _ if spec.get("url").is_some() => text("url"),
            _ => text("host"),
        };
        let mut picked: BTreeMap<String, String> = spec
            .get("locations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().or_else(|| l.get("name")?.as_str()))
            .map(|n| (pick_key(n), "on".to_string()))
            .collect();
        if picked.is_empty() {
            picked.insert(pick_key(LOCAL), "on".into());
        }
        MonitorForm {
            csrf: String::new(),
            name: text("name"),
            min_failing_locations: spec
                .pointer("/confirm/min_failing_locations")
                .map(|n| n.to_string())
                .unwrap_or_default(),
            picked,
            choices: Vec::new(),
            target,
            interval_seconds: text("interval_seconds"),
            timeout_seconds: text("timeout_seconds"),
            failure_threshold: text("failure_threshold"),
            success_threshold: text("success_threshold"),
            grace_seconds: text("grace_seconds"),
            conditions: spec
                .get("conditions")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            kind,
            team: String::new(),
        }
    }

    /// The monitor JSON the API takes: `base` (the stored definition when editing, so fields
    /// the form does not show, such as headers or credentials, are kept) with the form's fields
    /// laid over it. Numbers that are not numbers are refused here, naming the field.
    pub fn to_spec(&self, base: Option<&Value>) -> Result<Value, FormError> {
        let mut v: Map<String, Value> =
            base.and_then(Value::as_object).cloned().unwrap_or_default();
        v.insert("name".into(), json!(self.name.trim()));
        v.insert("type".into(), json!(self.kind));
        let target = self.target.trim();
        for k in ["url", "host", "port", "schedule"] {
            // A DNS monitor's port is its resolver's, which the form does not show.
            if !(k == "port" && self.kind == "dns") {
                v.remove(k);
            }
        }
        match self.kind.as_str() {
            "http" | "tls" if target.contains("://") => {
                v.insert("url".into(), json!(target));
            }
            "tcp" | "tls" => match target.rsplit_once(':') {
                Some((h, p)) => {
                    let port: u16 = p.trim().parse().map_err(|_| {
                        FormError::new("target", format!("target: {p:?} is not a port (1-65535)"))
                    })?;
                    v.insert(
                        "host".into(),
                        json!(h.trim_start_matches('[').trim_end_matches(']')),
                    );
                    v.insert("port".into(), json!(port));
                }
                None => {
                    v.insert("host".into(), json!(target));
                }
            },
            "dns" | "icmp" => {
                v.insert("host".into(), json!(target));
            }
            "cron" if !target.is_empty() => {
                v.insert("schedule".into(), json!(target));
            }
            "http" => {
                v.insert("url".into(), json!(target));
            }
            _ => {}
        }
        for (field, text) in [
            ("interval_seconds", &self.interval_seconds),
            ("timeout_seconds", &self.timeout_seconds),
            ("failure_threshold", &self.failure_threshold),
            ("success_threshold", &self.success_threshold),
            ("grace_seconds", &self.grace_seconds),
        ] {
            let t = text.trim();
            if t.is_empty() {
                v.remove(field);
                continue;
            }
            let n: u32 = t.parse().map_err(|_| {
                FormError::new(field, format!("{field}: {t:?} is not a whole number"))
            })?;
            v.insert(field.into(), json!(n));
        }
        let conds: Vec<&str> = self
            .conditions
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if conds.is_empty() {
            v.remove("conditions");
        } else {
            v.insert("conditions".into(), json!(conds));
        }
        // Only `local` (or nothing ticked) is the default: no `locations` at all.
        let names = self.locations();
        if names.iter().all(|n| n == LOCAL) {
            v.remove("locations");
        } else {
            v.insert("locations".into(), json!(names));
        }
        let k = self.min_failing_locations.trim();
        if k.is_empty() {
            v.remove("confirm");
        } else {
            let k: u32 = k.parse().map_err(|_| {
                FormError::new(
                    "min_failing_locations",
                    format!("min_failing_locations: {k:?} is not a whole number"),
                )
            })?;
            v.insert("confirm".into(), json!({"min_failing_locations": k}));
        }
        Ok(Value::Object(v))
    }

    /// `body` with the form's owning team (the service checks it and stores it with the
    /// monitor; it is not part of the definition).
    pub fn owned(&self, mut body: Value) -> Value {
        body["team_id"] = crate::alerting::ui::forms::opt_id(&self.team);
        body
    }

    /// The locations ticked, `local` first.
    pub fn locations(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .picked
            .keys()
            .filter_map(|k| k.strip_prefix("loc_"))
            .map(str::to_string)
            .collect();
        names.sort_by_key(|n| (n != LOCAL, n.clone()));
        names
    }

    /// Whether location `name`'s box is ticked.
    pub fn picks(&self, name: &str) -> bool {
        self.picked.contains_key(&pick_key(name))
    }
}

/// The locations a monitor form offers: `local` and every location, or none when there is no
/// location besides `local` (the form then shows no choice).
pub async fn location_choices(state: &AppState) -> UiResult<Vec<String>> {
    let known = lookout_store::locations::list_locations(state.store()).await?;
    if known.is_empty() {
        return Ok(Vec::new());
    }
    Ok(std::iter::once(LOCAL.to_string())
        .chain(known.into_iter().map(|l| l.name))
        .collect())
}

/// The edit and clone page.
#[derive(Template)]
#[template(path = "monitor_form.html")]
struct FormPage {
    title: String,
    ctx: PageCtx,
    /// Where the form posts.
    action: String,
    /// Where Cancel goes.
    back: String,
    /// The type cannot change on edit.
    editing: bool,
    form: MonitorForm,
    error: FormError,
    kinds: &'static [(&'static str, &'static str)],
    team_field: TeamField,
}

async fn form_page(
    state: &AppState,
    ctx: PageCtx,
    title: String,
    id: i64,
    editing: bool,
    mut form: MonitorForm,
    error: FormError,
) -> UiResult {
    form.choices = location_choices(state).await?;
    // Edit and Clone post to their own address and go back to the monitor.
    let action = format!(
        "/uptime/monitors/{id}/{}",
        if editing { "edit" } else { "clone" }
    );
    let back = format!("/uptime/monitors/{id}");
    let status = if error.message.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let team_field = team_field(state, &form.team, error.field == "team").await?;
    let mut r = render(&FormPage {
        title,
        ctx,
        action,
        back,
        editing,
        form,
        error,
        kinds: KINDS,
        team_field,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// The stored definition as the API shows it (secrets masked), for prefilling and as the base
/// an edit is laid over.
async fn stored_spec(state: &AppState, id: i64) -> UiResult<(Value, Option<String>, Option<i64>)> {
    let (row, _) = ustore::get_monitor(state.store(), id).await?;
    let spec = serde_json::from_str::<MonitorSpec>(&row.spec)
        .map(|s| serde_json::to_value(s.redacted()).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    Ok((spec, row.managed_by, row.team_id))
}

/// `GET /uptime/monitors/{id}/edit`.
pub async fn edit(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<Member>,
    Path(id): Path<i64>,
) -> UiResult {
    let (spec, managed, team) = stored_spec(&state, id).await?;
    let mut form = MonitorForm::from_spec(&spec);
    form.team = owned_ui::selected(team);
    let error = match managed {
        Some(m) => FormError::new(
            "",
            format!("this monitor is declared in the {m} file; change it there"),
        ),
        None => FormError::default(),
    };
    form_page(
        &state,
        ctx,
        format!("Edit {}", form.name),
        id,
        true,
        form,
        error,
    )
    .await
}

/// `POST /uptime/monitors/{id}/edit`: the API's PUT, from a form.
pub async fn save_edit(
    State(state): State<AppState>,
    page: Signed<Member>,
    Path(id): Path<i64>,
    Form(mut f): Form<MonitorForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let (base, _, _) = stored_spec(&state, id).await?;
    // The type is not a form field when editing; it stays the stored one.
    f.kind = base
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let outcome = match f.to_spec(Some(&base)) {
        Ok(body) => match service::update_monitor(&state, id, f.owned(body)).await {
            Ok(()) => return Ok(Redirect::to(&format!("/uptime/monitors/{id}")).into_response()),
            Err(ServiceError::Invalid(m) | ServiceError::Conflict(m)) => FormError::from_message(m),
            Err(e) => return Err(e.into()),
        },
        Err(e) => e,
    };
    form_page(
        &state,
        page.layout(&state).await?,
        format!("Edit {}", f.name),
        id,
        true,
        f,
        outcome,
    )
    .await
}

/// `GET /uptime/monitors/{id}/clone`: the add form prefilled from monitor `id`.
pub async fn clone(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<Member>,
    Path(id): Path<i64>,
) -> UiResult {
    let (spec, _, team) = stored_spec(&state, id).await?;
    let mut form = MonitorForm::from_spec(&spec);
    form.name = format!("{} (copy)", form.name);
    form.team = owned_ui::selected(team);
    form_page(
        &state,
        ctx,
        "Clone monitor".into(),
        id,
        false,
        form,
        FormError::default(),
    )
    .await
}

/// `POST /uptime/monitors/{id}/clone`: creates the copy. Fields the form does not show
/// (headers, method, credentials…) are copied from the original; its secrets follow only while
/// the copy checks the same destination (scheme, host and port), as an edit's do, so a member
/// cannot send the stored credentials to a host of their own by cloning.
pub async fn save_clone(
    State(state): State<AppState>,
    page: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<MonitorForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let (row, _) = ustore::get_monitor(state.store(), id).await?;
    let original = crate::uptime::opened_spec(&row.spec, state.sealer());
    let mut base = original
        .as_ref()
        .and_then(|s| serde_json::to_value(s.redacted()).ok())
        .unwrap_or(Value::Null);
    if let Some(o) = base.as_object_mut() {
        // A copy is a new monitor of its own: its own cron slug, not paused.
        for k in ["slug", "paused"] {
            o.remove(k);
        }
    }
    let outcome = match f.to_spec(Some(&base)) {
        Ok(body) => {
            // The copy starts from the masked original: its secrets (the URL's password too)
            // come back only for the same destination.
            let body = match (
                &original,
                serde_json::from_value::<MonitorSpec>(body.clone()),
            ) {
                (Some(o), Ok(mut spec)) => match spec.keep_secrets_from(o) {
                    Ok(()) => serde_json::to_value(&spec).unwrap_or(body),
                    Err(e) => {
                        return form_page(
                            &state,
                            page.layout(&state).await?,
                            "Clone monitor".into(),
                            id,
                            false,
                            f,
                            FormError::from_message(e.to_string()),
                        )
                        .await
                    }
                },
                _ => body,
            };
            match service::create_monitor(&state, f.owned(body)).await {
                Ok(new) => {
                    return Ok(Redirect::to(&format!("/uptime/monitors/{new}")).into_response())
                }
                Err(ServiceError::Invalid(m) | ServiceError::Conflict(m)) => {
                    FormError::from_message(m)
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => e,
    };
    form_page(
        &state,
        page.layout(&state).await?,
        "Clone monitor".into(),
        id,
        false,
        f,
        outcome,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_monitor_fills_the_form_and_comes_back_the_same() {
        let spec = json!({"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 5432,
                          "interval_seconds": 30, "conditions": ["[CONNECTED] == true"]});
        let f = MonitorForm::from_spec(&spec);
        assert_eq!(f.target, "127.0.0.1:5432");
        assert_eq!(f.interval_seconds, "30");
        assert_eq!(f.to_spec(Some(&spec)).unwrap(), spec);
    }

    #[test]
    fn a_bad_number_is_refused_naming_its_field() {
        let f = MonitorForm {
            name: "x".into(),
            kind: "http".into(),
            target: "http://x.test/".into(),
            interval_seconds: "often".into(),
            ..MonitorForm::default()
        };
        let e = f.to_spec(None).unwrap_err();
        assert_eq!(e.field, "interval_seconds");
        assert!(e.message.contains("\"often\""), "{}", e.message);
        assert_eq!(
            FormError::from_message("interval_seconds: must be between 1 and 604800".into()).field,
            "interval_seconds"
        );
        assert_eq!(
            FormError::from_message("url: is required".into()).field,
            "target"
        );
    }
}
