//! The Rules page (`/explore/metrics/rules`, linked from the Metrics page): the selected
//! project's groups and rules with their state (inactive, pending, firing), health, last
//! evaluation and last error, the active alerts with their labels, and a form to upload or
//! edit a rule file. A refused file keeps the text as typed and lists each problem, naming the
//! group, rule and field.

use askama::Template;
use axum::extract::{Form, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::eval::AlertState;
use super::parse::Kind;
use super::read::{groups, rule_state_name};
use super::service::{self, RulesError};
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};

/// One rule as listed.
struct RuleRow {
    name: String,
    kind: &'static str,
    expr: String,
    state: &'static str,
    health: String,
    last: Option<When>,
    error: Option<String>,
}

/// One active alert as listed.
struct AlertRow {
    rule: String,
    state: &'static str,
    labels: String,
    since: When,
    value: String,
    summary: String,
}

/// One group as listed.
struct GroupRow {
    file: String,
    name: String,
    interval: String,
    last: Option<When>,
    rules: Vec<RuleRow>,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    title: String,
    ctx: PageCtx,
    groups: Vec<GroupRow>,
    alerts: Vec<AlertRow>,
    files: Vec<(String, bool)>,
    /// The form: file name and text as typed (or loaded with `?file=`).
    file: String,
    content: String,
    errors: Vec<String>,
    saved: bool,
    can_write: bool,
}

fn secs(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

async fn build(
    state: &AppState,
    ctx: PageCtx,
    file: String,
    content: Option<String>,
    errors: Vec<String>,
    saved: bool,
    can_write: bool,
) -> UiResult<RulesPage> {
    let project = ctx.project_id;
    let store = state.store();
    let stored = lookout_store::prom::rules::files(store, project).await?;
    let content = match content {
        Some(c) => c,
        None => stored
            .iter()
            .find(|f| f.name == file)
            .map(|f| f.content.clone())
            .unwrap_or_default(),
    };
    let mut rows = Vec::new();
    let mut alerts = Vec::new();
    for g in groups(store, project).await? {
        let mut rules = Vec::new();
        for r in &g.group.rules {
            let s = g.rule_state(r);
            let kind = match r.kind {
                Kind::Record(_) => "recording",
                Kind::Alert { .. } => "alerting",
            };
            if let Some(s) = s {
                for a in &s.alerts {
                    alerts.push(AlertRow {
                        rule: r.name().to_string(),
                        state: a.state.as_str(),
                        labels: a
                            .labels
                            .iter()
                            .map(|(k, v)| format!("{k}={v:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        since: When::at(if a.state == AlertState::Firing {
                            a.fired_at.unwrap_or(a.active_at)
                        } else {
                            a.active_at
                        }),
                        value: a.value.clone(),
                        summary: a
                            .annotations
                            .iter()
                            .find(|(k, _)| k == "summary" || k == "description")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default(),
                    });
                }
            }
            rules.push(RuleRow {
                name: r.name().to_string(),
                kind,
                expr: r.expr.clone(),
                state: if kind == "alerting" {
                    rule_state_name(s)
                } else {
                    ""
                },
                health: s.map_or("unknown".into(), |s| s.health.clone()),
                last: s.map(|s| When::at(s.evaluated_at)),
                error: s.and_then(|s| s.last_error.clone()),
            });
        }
        rows.push(GroupRow {
            file: g.file.clone(),
            name: g.group.name.clone(),
            interval: secs(
                g.group
                    .interval_ms
                    .unwrap_or_else(super::runner::default_interval_ms),
            ),
            last: g.evaluated_at.map(When::at),
            rules,
        });
    }
    Ok(RulesPage {
        title: "Rules".into(),
        ctx,
        groups: rows,
        alerts,
        files: stored
            .iter()
            .map(|f| (f.name.clone(), f.managed_by.as_deref() == Some("config")))
            .collect(),
        file,
        content,
        errors,
        saved,
        can_write,
    })
}

fn param(raw: &Option<String>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// `GET /explore/metrics/rules[?file=name]`.
pub async fn page(
    State(state): State<AppState>,
    Page { ctx, session, .. }: Page,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let file = param(&raw, "file").unwrap_or_else(|| "rules.yml".into());
    let saved = param(&raw, "saved").is_some();
    let can_write = session.user.role >= lookout_core::Role::Member;
    let p = build(&state, ctx, file, None, Vec::new(), saved, can_write).await?;
    Ok(render(&p))
}

/// The upload form.
#[derive(Debug, Deserialize)]
pub struct RulesForm {
    csrf: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    content: String,
}

/// `POST /explore/metrics/rules` (member): saves the file, or shows the form again with the
/// text as typed and every problem.
pub async fn save(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Form(f): Form<RulesForm>,
) -> UiResult<Response> {
    check_csrf(&signed.session, &f.csrf)?;
    let ctx = signed.layout(&state).await?;
    let file = f.file.trim().to_string();
    match service::save(state.store(), ctx.project_id, &file, &f.content).await {
        Ok(_) => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("file", &file)
                .append_pair("saved", "1")
                .finish();
            Ok(Redirect::to(&format!("/explore/metrics/rules?{q}")).into_response())
        }
        Err(RulesError::Invalid(errors)) => {
            let p = build(&state, ctx, file, Some(f.content), errors, false, true).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response())
        }
        Err(RulesError::Conflict(m)) => {
            let p = build(&state, ctx, file, Some(f.content), vec![m], false, true).await?;
            Ok((StatusCode::CONFLICT, render(&p)).into_response())
        }
        Err(RulesError::NotFound) => Err(UiError::Refused(
            StatusCode::NOT_FOUND,
            "No such rule file.".into(),
        )),
        Err(RulesError::Store(e)) => Err(e.into()),
    }
}

/// `POST /explore/metrics/rules/delete` (member).
pub async fn delete(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Form(f): Form<RulesForm>,
) -> UiResult<Response> {
    check_csrf(&signed.session, &f.csrf)?;
    let ctx = signed.layout(&state).await?;
    match service::delete(state.store(), ctx.project_id, f.file.trim()).await {
        Ok(()) => Ok(Redirect::to("/explore/metrics/rules").into_response()),
        Err(RulesError::Store(e)) => Err(e.into()),
        Err(e) => {
            let p = build(&state, ctx, f.file, None, vec![e.to_string()], false, true).await?;
            Ok((StatusCode::CONFLICT, render(&p)).into_response())
        }
    }
}
