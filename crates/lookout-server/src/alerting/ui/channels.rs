//! Channels from the UI: create, edit and delete notification channels and contact methods,
//! each type with its own fields; secrets are shown masked and kept when left masked; **Send
//! test** sends a test notification through the real delivery path and shows the receiver's
//! answer (status and the start of the body) or the error.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Value};

use super::forms::{self, Refusal};
use crate::alerting::deliver::CHANNEL_TYPES;
use crate::alerting::{oncall, REDACTED};
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use lookout_store::alerting::{self as astore, ChannelRow};

/// The channel form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ChannelForm {
    csrf: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    url: String,
    secret: String,
    token: String,
    routing_key: String,
    to: String,
    from: String,
    smtp_host: String,
    smtp_port: String,
    security: String,
    username: String,
    password: String,
    owner: String,
    urgency_high: Option<String>,
    urgency_low: Option<String>,
    enabled: Option<String>,
}

impl ChannelForm {
    fn get(&self, field: &str) -> &str {
        match field {
            "url" => &self.url,
            "secret" => &self.secret,
            "token" => &self.token,
            "routing_key" => &self.routing_key,
            "to" => &self.to,
            "from" => &self.from,
            "smtp_host" => &self.smtp_host,
            "security" => &self.security,
            "username" => &self.username,
            "password" => &self.password,
            _ => "",
        }
    }

    fn set(&mut self, field: &str, v: String) {
        match field {
            "url" => self.url = v,
            "secret" => self.secret = v,
            "token" => self.token = v,
            "routing_key" => self.routing_key = v,
            "to" => self.to = v,
            "from" => self.from = v,
            "smtp_host" => self.smtp_host = v,
            "smtp_port" => self.smtp_port = v,
            "security" => self.security = v,
            "username" => self.username = v,
            "password" => self.password = v,
            _ => {}
        }
    }

    /// An empty form: a webhook for both urgencies.
    fn new_channel() -> ChannelForm {
        ChannelForm {
            kind: "webhook".into(),
            urgency_high: Some("on".into()),
            urgency_low: Some("on".into()),
            enabled: Some("on".into()),
            ..ChannelForm::default()
        }
    }

    /// A stored channel as the form shows it: secrets masked.
    fn of(c: &ChannelRow) -> ChannelForm {
        let mut f = ChannelForm {
            name: c.name.clone(),
            kind: c.kind.clone(),
            owner: c.user_id.map(|u| u.to_string()).unwrap_or_default(),
            urgency_high: c.urgencies.iter().any(|u| u == "high").then(|| "on".into()),
            urgency_low: c.urgencies.iter().any(|u| u == "low").then(|| "on".into()),
            enabled: c.enabled.then(|| "on".into()),
            ..ChannelForm::default()
        };
        let secrets = oncall::channel_secrets(&c.kind);
        for (k, v) in c.config.as_object().into_iter().flatten() {
            let text = if secrets.contains(&k.as_str()) {
                REDACTED.to_string()
            } else {
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            };
            f.set(k, text);
        }
        f
    }

    /// The API's channel document: the fields of the chosen type that were filled in.
    fn body(&self) -> Value {
        let mut v = json!({"name": self.name.trim(), "type": self.kind,
            "enabled": self.enabled.is_some()});
        for k in fields_of(&self.kind) {
            let val = self.get(k).trim();
            if !val.is_empty() {
                v[*k] = json!(val);
            }
        }
        if self.kind == "email" {
            if let Some(p) = forms::number(&self.smtp_port) {
                v["smtp_port"] = p;
            }
        }
        let owner = forms::opt_id(&self.owner);
        if !owner.is_null() {
            v["user_id"] = owner;
        }
        let mut urgencies = Vec::new();
        if self.urgency_high.is_some() {
            urgencies.push("high");
        }
        if self.urgency_low.is_some() {
            urgencies.push("low");
        }
        v["urgencies"] = json!(urgencies);
        v
    }
}

/// The text fields each channel type uses (besides the SMTP port).
fn fields_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" => &["url", "secret"],
        "slack" | "mattermost" | "discord" => &["url"],
        "ntfy" => &["url", "token"],
        "pagerduty" => &["routing_key", "url"],
        "email" => &[
            "to",
            "from",
            "smtp_host",
            "security",
            "username",
            "password",
        ],
        _ => &["url"],
    }
}

/// Names in the service's messages, and the form field each is.
const FIELDS: &[(&str, &str)] = &[
    ("name", "name"),
    ("type", "type"),
    ("url", "url"),
    ("routing_key", "routing_key"),
    ("smtp_host", "smtp_host"),
    ("smtp_port", "smtp_port"),
    ("security", "security"),
    ("to", "to"),
    ("from", "from"),
    ("urgencies", "urgency_high"),
    ("user", "owner"),
];

/// What the receiver said to a test notification.
pub struct TestAnswer {
    ok: bool,
    status: String,
    body: String,
}

#[derive(Template)]
#[template(path = "alert_channel.html")]
struct ChannelPage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    f: ChannelForm,
    refusal: Refusal,
    users: Vec<(i64, String)>,
    types: Vec<&'static str>,
    test: Option<TestAnswer>,
    masked: &'static str,
}

async fn page(
    state: &AppState,
    ctx: PageCtx,
    id: Option<i64>,
    f: ChannelForm,
    refusal: Refusal,
    test: Option<TestAnswer>,
) -> UiResult {
    let refused = !refusal.message.is_empty();
    Ok(forms::with_status(
        render(&ChannelPage {
            title: if id.is_some() {
                format!("Channel {}", f.name)
            } else {
                "New channel".into()
            },
            ctx,
            id,
            f,
            refusal,
            users: forms::users(state).await?,
            types: CHANNEL_TYPES.iter().map(|t| t.0).collect(),
            test,
            masked: REDACTED,
        }),
        refused,
    ))
}

/// `GET /alerts/channels/new`.
pub async fn new(State(state): State<AppState>, p: Page<Member>) -> UiResult {
    page(
        &state,
        p.ctx,
        None,
        ChannelForm::new_channel(),
        Refusal::default(),
        None,
    )
    .await
}

/// `GET /alerts/channels/{id}`.
pub async fn edit(State(state): State<AppState>, p: Page<Member>, Path(id): Path<i64>) -> UiResult {
    let c = astore::channel_get(state.store(), id).await?;
    page(
        &state,
        p.ctx,
        Some(id),
        ChannelForm::of(&c),
        Refusal::default(),
        None,
    )
    .await
}

/// `POST /alerts/channels`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<ChannelForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    match oncall::create_channel(&state, &f.body()).await {
        Ok(row) => Ok(Redirect::to(&format!("/alerts/channels/{}", row.id)).into_response()),
        Err(e) => {
            let r = forms::refusal(e, FIELDS)?;
            page(&state, form.layout(&state).await?, None, f, r, None).await
        }
    }
}

/// `POST /alerts/channels/{id}`.
pub async fn update(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<ChannelForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let old = astore::channel_get(state.store(), id).await?;
    match oncall::update_channel(&state, &old, &f.body()).await {
        Ok(_) => Ok(Redirect::to(&format!("/alerts/channels/{id}")).into_response()),
        Err(e) => {
            let r = forms::refusal(e, FIELDS)?;
            page(&state, form.layout(&state).await?, Some(id), f, r, None).await
        }
    }
}

/// The CSRF field alone (delete, test).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub(super) csrf: String,
}

/// `POST /alerts/channels/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::channel_delete(state.store(), id).await?;
    tracing::info!(channel = id, "Notification channel deleted from the UI.");
    Ok(Redirect::to("/alerts").into_response())
}

/// `POST /alerts/channels/{id}/test`: sends a test notification and shows the answer.
pub async fn test(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let answer = oncall::test_channel(&state, id, &forms::actor(&form.session)).await?;
    let test = Some(match answer {
        Ok(r) => TestAnswer {
            ok: true,
            status: r
                .status
                .map_or_else(|| "delivered".to_string(), |s| format!("HTTP {s}")),
            body: r.body,
        },
        Err(e) => TestAnswer {
            ok: false,
            status: "failed".into(),
            body: e,
        },
    });
    let c = astore::channel_get(state.store(), id).await?;
    page(
        &state,
        form.layout(&state).await?,
        Some(id),
        ChannelForm::of(&c),
        Refusal::default(),
        test,
    )
    .await
}

/// The on/off switch of a list row.
#[derive(Debug, Deserialize)]
pub struct EnableForm {
    pub(super) csrf: String,
    /// `true` or `false`.
    pub(super) enabled: String,
}

/// `POST /alerts/channels/{id}/enabled`: switches a channel on or off from the Alerts list.
pub async fn set_enabled(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<EnableForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    oncall::set_channel_enabled(&state, id, f.enabled == "true").await?;
    Ok(Redirect::to("/alerts#channels").into_response())
}
