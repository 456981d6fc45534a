//! The Targets page (`/explore/metrics/targets`, linked from the Metrics explorer), like
//! Prometheus's `/targets`: per job, each target's URL, state, last scrape (relative, absolute on
//! hover), duration, last error and samples; and the form that adds or edits a job (admins),
//! which calls the same service as the API, keeps what was typed and names the wrong field.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::config::{Authorization, BasicAuth, JobConfig, Secret, Size, StaticConfig, MASK};
use super::service::{self, PutError};
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Admin, Page, Signed, Viewer};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::Role;
use lookout_store::prom::scrape as sstore;

/// One target line.
pub struct TargetLine {
    url: String,
    up: bool,
    labels: String,
    last: When,
    duration: String,
    error: String,
    samples: i64,
}

/// One job with its targets.
pub struct JobLine {
    name: String,
    managed_by: String,
    targets: Vec<TargetLine>,
    up: usize,
}

#[derive(Template)]
#[template(path = "scrape_targets.html")]
struct TargetsPage {
    title: String,
    ctx: PageCtx,
    jobs: Vec<JobLine>,
    admin: bool,
}

/// `GET /explore/metrics/targets`.
pub async fn targets(
    State(state): State<AppState>,
    Page { ctx, session, .. }: Page<Viewer>,
) -> UiResult {
    let rows = sstore::jobs(state.store()).await?;
    let mut by_job: BTreeMap<String, Vec<TargetLine>> = BTreeMap::new();
    for t in sstore::targets(state.store()).await? {
        let labels = serde_json::from_str::<Vec<(String, String)>>(&t.labels)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        by_job.entry(t.job.clone()).or_default().push(TargetLine {
            up: t.health == "up",
            url: t.url,
            labels,
            last: When::at(t.last_scrape_ms),
            duration: format!("{:.3} s", t.duration_ms as f64 / 1000.0),
            error: t.last_error,
            samples: t.samples,
        });
    }
    let jobs = rows
        .into_iter()
        .map(|r| {
            let targets = by_job.remove(&r.name).unwrap_or_default();
            JobLine {
                up: targets.iter().filter(|t| t.up).count(),
                name: r.name,
                managed_by: r.managed_by,
                targets,
            }
        })
        .collect();
    Ok(render(&TargetsPage {
        title: "Targets".into(),
        ctx,
        jobs,
        admin: session.user.role >= Role::Admin,
    }))
}

/// The job form as typed. Its `Debug` is written by hand: the password and token as typed
/// never reach a log line.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobForm {
    csrf: String,
    /// The job edited (empty for a new one).
    original: String,
    job_name: String,
    project: String,
    scrape_interval: String,
    scrape_timeout: String,
    metrics_path: String,
    scheme: String,
    /// One `host:port` per line.
    targets: String,
    /// One `name=value` per line.
    labels: String,
    honor_labels: Option<String>,
    sample_limit: String,
    body_size_limit: String,
    basic_username: String,
    basic_password: String,
    bearer_token: String,
    /// Where the token field's value is stored (hidden): `bearer_token`, or the `authorization`
    /// type (`Bearer`, …). Round-tripped so an edit keeps the stored field and its type, and a
    /// masked token still finds the stored one.
    auth_kind: String,
    /// YAML list of rules.
    relabel: String,
    /// YAML list of rules.
    metric_relabel: String,
}

impl std::fmt::Debug for JobForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |v: &str| if v.is_empty() { "" } else { MASK };
        f.debug_struct("JobForm")
            .field("original", &self.original)
            .field("job_name", &self.job_name)
            .field("project", &self.project)
            .field("scrape_interval", &self.scrape_interval)
            .field("scrape_timeout", &self.scrape_timeout)
            .field("metrics_path", &self.metrics_path)
            .field("scheme", &self.scheme)
            .field("targets", &self.targets)
            .field("labels", &self.labels)
            .field("honor_labels", &self.honor_labels)
            .field("sample_limit", &self.sample_limit)
            .field("body_size_limit", &self.body_size_limit)
            .field("basic_username", &self.basic_username)
            .field("basic_password", &masked(&self.basic_password))
            .field("bearer_token", &masked(&self.bearer_token))
            .field("auth_kind", &self.auth_kind)
            .field("relabel", &self.relabel)
            .field("metric_relabel", &self.metric_relabel)
            .finish_non_exhaustive()
    }
}

#[derive(Template)]
#[template(path = "scrape_job_form.html")]
struct FormPage {
    title: String,
    ctx: PageCtx,
    form: JobForm,
    error: String,
    field: String,
}

fn form_of(c: &JobConfig) -> JobForm {
    let c = c.masked();
    let mut labels = String::new();
    let mut targets = String::new();
    for s in &c.static_configs {
        for t in &s.targets {
            targets.push_str(t);
            targets.push('\n');
        }
        for (k, v) in &s.labels {
            labels.push_str(&format!("{k}={v}\n"));
        }
    }
    let yaml = |r: &Vec<lookout_protocol::relabel::RelabelConfig>| {
        if r.is_empty() {
            String::new()
        } else {
            serde_yaml_ng::to_string(r).unwrap_or_default()
        }
    };
    JobForm {
        original: c.job_name.clone(),
        job_name: c.job_name.clone(),
        project: c.project.clone().unwrap_or_default(),
        scrape_interval: c.scrape_interval.clone().unwrap_or_default(),
        scrape_timeout: c.scrape_timeout.clone().unwrap_or_default(),
        metrics_path: c.metrics_path.clone().unwrap_or_default(),
        scheme: c.scheme.clone().unwrap_or_default(),
        targets,
        labels,
        honor_labels: c.honor_labels.then(|| "on".into()),
        sample_limit: if c.sample_limit > 0 {
            c.sample_limit.to_string()
        } else {
            String::new()
        },
        body_size_limit: match &c.body_size_limit {
            Some(Size::Bytes(n)) => n.to_string(),
            Some(Size::Text(t)) => t.clone(),
            None => String::new(),
        },
        basic_username: c
            .basic_auth
            .as_ref()
            .map(|b| b.username.clone())
            .unwrap_or_default(),
        basic_password: c
            .basic_auth
            .as_ref()
            .map(|b| b.password.0.clone())
            .unwrap_or_default(),
        bearer_token: c
            .bearer_token
            .as_ref()
            .map(|t| t.0.clone())
            .or_else(|| c.authorization.as_ref().map(|a| a.credentials.0.clone()))
            .unwrap_or_default(),
        auth_kind: match (&c.bearer_token, &c.authorization) {
            (Some(_), _) => "bearer_token".into(),
            (None, Some(a)) => a.kind.clone(),
            (None, None) => String::new(),
        },
        relabel: yaml(&c.relabel_configs),
        metric_relabel: yaml(&c.metric_relabel_configs),
        ..JobForm::default()
    }
}

/// The configuration a form describes, or the field that is wrong.
fn config_of(f: &JobForm) -> Result<JobConfig, (String, String)> {
    let opt = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let mut labels = BTreeMap::new();
    for line in f.labels.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| ("labels".to_string(), format!("{line:?}: write name=value")))?;
        labels.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
    }
    let targets: Vec<String> = f
        .targets
        .split(['\n', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    type Rules = Vec<lookout_protocol::relabel::RelabelConfig>;
    let rules = |field: &str, text: &str| -> Result<Rules, (String, String)> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        serde_yaml_ng::from_str(text)
            .map_err(|e| (field.to_string(), format!("not a list of rules: {e}")))
    };
    let sample_limit = match opt(&f.sample_limit) {
        None => 0,
        Some(s) => s
            .parse()
            .map_err(|_| ("sample_limit".to_string(), "a whole number".to_string()))?,
    };
    Ok(JobConfig {
        job_name: f.job_name.trim().to_string(),
        project: opt(&f.project),
        scrape_interval: opt(&f.scrape_interval),
        scrape_timeout: opt(&f.scrape_timeout),
        metrics_path: opt(&f.metrics_path),
        scheme: opt(&f.scheme),
        honor_labels: f.honor_labels.is_some(),
        sample_limit,
        body_size_limit: opt(&f.body_size_limit).map(Size::Text),
        static_configs: if targets.is_empty() {
            Vec::new()
        } else {
            vec![StaticConfig { targets, labels }]
        },
        basic_auth: opt(&f.basic_username).map(|u| BasicAuth {
            username: u,
            password: Secret(f.basic_password.clone()),
        }),
        bearer_token: opt(&f.bearer_token)
            .filter(|_| f.auth_kind == "bearer_token")
            .map(Secret),
        authorization: opt(&f.bearer_token)
            .filter(|_| f.auth_kind != "bearer_token")
            .map(|t| Authorization {
                kind: opt(&f.auth_kind).unwrap_or_else(|| "Bearer".into()),
                credentials: Secret(t),
            }),
        relabel_configs: rules("relabel", &f.relabel)?,
        metric_relabel_configs: rules("metric_relabel", &f.metric_relabel)?,
        ..JobConfig::default()
    })
}

/// The form field a validation error names.
fn field_of(config_field: &str) -> String {
    let f = config_field;
    if f.starts_with("static_configs") {
        return if f.ends_with("labels") {
            "labels"
        } else {
            "targets"
        }
        .into();
    }
    match f {
        "basic_auth.password" => "basic_password".into(),
        "authorization.credentials" | "authorization" => "bearer_token".into(),
        "relabel_configs" => "relabel".into(),
        "metric_relabel_configs" => "metric_relabel".into(),
        other => other.into(),
    }
}

/// `GET /explore/metrics/targets/jobs/new`.
pub async fn new_job(Page { ctx, .. }: Page<Admin>) -> UiResult {
    Ok(render(&FormPage {
        title: "New scrape job".into(),
        ctx,
        form: JobForm {
            scrape_interval: "15s".into(),
            ..JobForm::default()
        },
        error: String::new(),
        field: String::new(),
    }))
}

/// `GET /explore/metrics/targets/jobs/{name}`.
pub async fn edit_job(
    State(state): State<AppState>,
    Page { ctx, .. }: Page<Admin>,
    Path(name): Path<String>,
) -> UiResult {
    let row = sstore::job(state.store(), &name).await?.ok_or_else(|| {
        UiError::Refused(StatusCode::NOT_FOUND, format!("No scrape job {name:?}."))
    })?;
    let cfg: JobConfig = serde_json::from_str(&row.spec)
        .map_err(|e| UiError::Refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(render(&FormPage {
        title: format!("Scrape job {name}"),
        ctx,
        form: form_of(&cfg),
        error: if row.managed_by == service::FROM_API {
            String::new()
        } else {
            "This job comes from the config file; change it there.".into()
        },
        field: String::new(),
    }))
}

/// `POST /explore/metrics/targets/jobs`: saves a job, or shows the form again with what was
/// typed and the wrong field named (422; 409 for a job the config file owns).
pub async fn save_job(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Form(f): Form<JobForm>,
) -> UiResult<Response> {
    check_csrf(&signed.session, &f.csrf)?;
    let (signed_ref, state_ref) = (&signed, &state);
    let refused = |f: JobForm, field: String, error: String, status: StatusCode| async move {
        tracing::info!(status = status.as_u16(), reason = %error, "Scrape job form refused.");
        let ctx = signed_ref.layout(state_ref).await?;
        let form = scrubbed(f);
        let mut r = render(&FormPage {
            title: "Scrape job".into(),
            ctx,
            form,
            error,
            field,
        });
        *r.status_mut() = status;
        Ok::<Response, UiError>(r)
    };
    let mut cfg = match config_of(&f) {
        Ok(c) => c,
        Err((field, msg)) => {
            return refused(
                f,
                field.clone(),
                format!("{field}: {msg}"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    if !f.original.is_empty() && f.original != cfg.job_name {
        let field = "job_name".to_string();
        return refused(
            f,
            field,
            "job_name: a job cannot be renamed; make a new one".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    // What the form does not show (parameters, target files, honor_timestamps) is kept from
    // the stored job, so an edit here never drops what the API or a file set.
    if !f.original.is_empty() {
        if let Some(row) = sstore::job(state.store(), &f.original).await? {
            if let Ok(old) = serde_json::from_str::<JobConfig>(&row.spec) {
                if let Err(why) = form_can_edit(&old) {
                    let field = "targets".to_string();
                    return refused(f, field, why, StatusCode::CONFLICT).await;
                }
                cfg.params = old.params;
                cfg.file_sd_configs = old.file_sd_configs;
                cfg.honor_timestamps = old.honor_timestamps;
            }
        }
    }
    match service::put(state.store(), state.sealer(), cfg).await {
        Ok(_) => Ok(Redirect::to("/explore/metrics/targets").into_response()),
        Err(PutError::Invalid(e)) => {
            let field = field_of(&e.field);
            refused(f, field, e.to_string(), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(PutError::Conflict(m)) => refused(f, String::new(), m, StatusCode::CONFLICT).await,
        Err(PutError::Store(e)) => Err(e.into()),
    }
}

/// `POST /explore/metrics/targets/jobs/{name}/delete`.
pub async fn delete_job(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path(name): Path<String>,
    Form(f): Form<JobForm>,
) -> UiResult<Response> {
    check_csrf(&signed.session, &f.csrf)?;
    if !sstore::delete_job(state.store(), &name, service::FROM_API).await? {
        return Err(UiError::Refused(
            StatusCode::CONFLICT,
            format!(
                "No scrape job {name:?} made here (a job from the config file is removed there)."
            ),
        ));
    }
    Ok(Redirect::to("/explore/metrics/targets").into_response())
}

/// Whether the form can edit a stored job without changing it unseen: the form shows one
/// target group, so a job with several (each with its own labels) would have them merged, its
/// target labels changed, and a kept password refused. Such a job is edited through the API
/// or the config file.
fn form_can_edit(old: &JobConfig) -> Result<(), String> {
    match old.static_configs.len() {
        0 | 1 => Ok(()),
        n => Err(format!(
            "targets: this job has {n} target groups with their own labels, which this form \
             cannot show; edit it through the API or the config file"
        )),
    }
}

/// A refused form as sent back: a typed password or token is not echoed into the page (the
/// mask is kept: it stands for the stored one).
fn scrubbed(mut form: JobForm) -> JobForm {
    for secret in [&mut form.basic_password, &mut form.bearer_token] {
        if !secret.is_empty() && secret != MASK {
            secret.clear();
        }
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_back_what_it_shows() {
        let c: JobConfig = serde_yaml_ng::from_str(
            "job_name: n\nscrape_interval: 5s\nstatic_configs: [{targets: ['a:1', 'b:2'], labels: {env: prod}}]\nbasic_auth: {username: u, password: p}\nmetric_relabel_configs: [{action: drop, source_labels: [__name__], regex: 'go_.*'}]",
        )
        .unwrap();
        let f = form_of(&c);
        assert_eq!(
            f.basic_password, MASK,
            "the form never shows a stored password"
        );
        let back = config_of(&f).unwrap();
        assert_eq!(back.static_configs, c.static_configs);
        assert_eq!(back.metric_relabel_configs, c.metric_relabel_configs);
        let bad = JobForm {
            labels: "nonsense".into(),
            ..f
        };
        assert_eq!(config_of(&bad).unwrap_err().0, "labels");
        assert_eq!(field_of("static_configs[0].targets"), "targets");
    }

    #[test]
    fn typed_secrets_are_neither_logged_nor_sent_back() {
        let f = JobForm {
            job_name: "j".into(),
            basic_password: "hunter2".into(),
            bearer_token: "tok3n".into(),
            ..JobForm::default()
        };
        let debug = format!("{f:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok3n"),
            "{debug}"
        );
        assert!(debug.contains("\"j\""), "the rest is still there: {debug}");
        let back = scrubbed(f);
        assert_eq!(
            (back.basic_password.as_str(), back.bearer_token.as_str()),
            ("", "")
        );
        let masked = scrubbed(JobForm {
            bearer_token: MASK.into(),
            ..JobForm::default()
        });
        assert_eq!(
            masked.bearer_token, MASK,
            "the mask stands for the stored token"
        );
    }

    #[test]
    fn the_credential_kind_round_trips_so_a_masked_token_can_be_kept() {
        for (yaml, kind) in [
            ("job_name: n\nbearer_token: t", "bearer_token"),
            (
                "job_name: n\nauthorization: {type: Token, credentials: t}",
                "Token",
            ),
        ] {
            let stored: JobConfig = serde_yaml_ng::from_str(yaml).unwrap();
            let f = form_of(&stored.masked());
            assert_eq!(f.auth_kind, kind);
            let mut back = config_of(&f).unwrap();
            assert_eq!(
                back.bearer_token.is_some(),
                kind == "bearer_token",
                "{yaml}"
            );
            if let Some(a) = &back.authorization {
                assert_eq!(a.kind, "Token", "the type is not rewritten to Bearer");
                assert_eq!(a.credentials.0, MASK);
            }
            // The masked value maps back onto the stored field, so the edit is accepted and
            // keeps the stored token.
            back.keep_secrets_from(&stored).unwrap();
            let token = back
                .bearer_token
                .or(back.authorization.map(|a| a.credentials))
                .unwrap();
            assert_eq!(token.0, "t");
        }
    }

    #[test]
    fn a_job_with_several_target_groups_is_not_merged_by_the_form() {
        let one: JobConfig =
            serde_yaml_ng::from_str("job_name: n\nstatic_configs: [{targets: ['a:1']}]").unwrap();
        assert!(form_can_edit(&one).is_ok());
        let two: JobConfig = serde_yaml_ng::from_str(
            "job_name: n\nstatic_configs: [{targets: ['a:1'], labels: {env: a}}, {targets: ['b:1'], labels: {env: b}}]",
        )
        .unwrap();
        let e = form_can_edit(&two).unwrap_err();
        assert!(
            e.starts_with("targets:") && e.contains("2 target groups"),
            "{e}"
        );
    }
}
