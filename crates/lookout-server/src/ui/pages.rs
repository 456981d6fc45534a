//! Page handlers: each loads what its template shows and renders it.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::chart::{self, Bar, Series};
use super::{csrf_refusal, safe_next, ui_error, UiSession, SECTIONS};
use crate::api::{MarkerView, ProjectView, TokenView, UserView};
use crate::auth::{
    cookie, set_cookie, ClientAddr, LOGIN_CSRF_COOKIE, PROJECT_COOKIE, SESSION_COOKIE,
};
use crate::extract::iso;
use crate::state::AppState;
use lookout_core::secret::{random_hex, secrets_equal};
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::tenancy::{self, Session};
use lookout_store::{events, markers, Cursor, StoreError};

/// A navigation entry as rendered.
pub struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// A project in the switcher.
pub struct ProjectOption {
    pub(crate) id: i64,
    pub(crate) name: String,
}

/// What the layout (`base.html`) needs on every page.
pub struct PageCtx {
    pub(crate) path: String,
    pub(crate) projects: Vec<ProjectOption>,
    pub(crate) project_id: i64,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavItem>,
}

/// Loads the layout context: the user, the projects, and the selected project.
pub(crate) async fn page_ctx(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
    path: &str,
) -> Result<PageCtx, Response> {
    let projects = tenancy::list_projects(
        state.store(),
        &Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await
    .map_err(ui_error)?
    .items;
    let wanted = cookie(headers, PROJECT_COOKIE).and_then(|v| v.parse::<i64>().ok());
    let project_id = wanted
        .filter(|id| projects.iter().any(|p| p.id == *id))
        .or_else(|| projects.first().map(|p| p.id))
        .unwrap_or(0);
    Ok(PageCtx {
        path: path.to_string(),
        project_id,
        projects: projects
            .into_iter()
            .map(|p| ProjectOption {
                id: p.id,
                name: p.name,
            })
            .collect(),
        email: session.user.email.clone(),
        role: session.user.role.to_string(),
        csrf: session.csrf_token.clone(),
        nav: SECTIONS
            .iter()
            .map(|s| NavItem {
                href: s.href,
                label: s.label,
                current: s.href == path,
            })
            .collect(),
    })
}

pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ui_error(e),
    }
}

// ------------------------------------------------------------------ overview

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    title: String,
    ctx: PageCtx,
    project: Option<ProjectView>,
    activity_chart: String,
    kinds_chart: String,
    markers: Vec<MarkerView>,
    events: Vec<EventRow>,
}

struct EventRow {
    at: String,
    kind: String,
    details: String,
}

/// `GET /`: the selected project's DSN, activity charts, recent changes and events.
pub async fn overview(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
) -> Response {
    let ctx = match page_ctx(&state, &s, &headers, "/").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result: Result<_, StoreError> = async {
        let project = match ctx.project_id {
            0 => None,
            id => Some(ProjectView::new(
                tenancy::get_project(state.store(), id).await?,
                state.settings(),
            )),
        };
        let markers = match ctx.project_id {
            0 => Vec::new(),
            id => {
                markers::list(
                    state.store(),
                    id,
                    &Cursor {
                        after: None,
                        limit: Some(10),
                    },
                )
                .await?
                .items
            }
        };
        let now = now_ms();
        let hour = 3_600_000;
        let from = (now / hour - 23) * hour;
        let counts = events::counts_by_bucket(state.store(), from, hour).await?;
        let recent = events::read_newest(state.store(), None, 20, None).await?;
        Ok((project, markers, counts, recent, from, now))
    }
    .await;
    let (project, markers, counts, recent, from, now) = match result {
        Ok(v) => v,
        Err(e) => return ui_error(e),
    };
    let mut by_kind: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (bucket, kind, n) in counts {
        by_kind.entry(kind).or_default().push((bucket, n as f64));
    }
    let bars: Vec<Bar> = by_kind
        .iter()
        .map(|(k, pts)| Bar {
            label: k.clone(),
            value: pts.iter().map(|p| p.1).sum(),
        })
        .collect();
    let series: Vec<Series> = by_kind
        .into_iter()
        .map(|(name, points)| Series {
            points: chart::zero_filled(&points, from, now, 3_600_000),
            name,
        })
        .collect();
    render(&OverviewPage {
        title: "Overview".into(),
        ctx,
        project,
        activity_chart: chart::time_series("Events per hour, last 24 hours", &series, from, now),
        kinds_chart: chart::bar_chart("Events by kind, last 24 hours", &bars),
        markers: markers.into_iter().map(MarkerView::from).collect(),
        events: recent
            .into_iter()
            .map(|e| EventRow {
                at: iso(e.created_at),
                kind: e.kind,
                details: e.payload.to_string(),
            })
            .collect(),
    })
}

// ------------------------------------------------------------------ capability pages

#[derive(Template)]
#[template(path = "capability.html")]
struct CapabilityPage {
    title: String,
    ctx: PageCtx,
    summary: &'static str,
}

/// The page of a capability section (its place in the navigation).
pub async fn capability(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let Some(section) = SECTIONS.iter().find(|x| x.href == uri.path()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match page_ctx(&state, &s, &headers, section.href).await {
        Ok(ctx) => render(&CapabilityPage {
            title: section.label.into(),
            ctx,
            summary: section.summary,
        }),
        Err(r) => r,
    }
}

/// `?project=ID&next=/path`
#[derive(Deserialize)]
pub struct SwitchProject {
    project: i64,
    next: Option<String>,
}

/// `GET /switch-project`: remembers the selected project in a cookie and goes back.
pub async fn switch_project(
    State(state): State<AppState>,
    UiSession(_): UiSession,
    Query(q): Query<SwitchProject>,
) -> Response {
    let next = safe_next(q.next.as_deref().unwrap_or("/")).to_string();
    let cookie = set_cookie(
        PROJECT_COOKIE,
        &q.project.to_string(),
        365 * 86_400,
        state.settings().secure_cookies(),
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

// ------------------------------------------------------------------ login, setup, logout

#[derive(Template)]
#[template(path = "auth.html")]
struct AuthPage {
    title: String,
    setup: bool,
    action: &'static str,
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

/// Renders the login or setup form with a fresh double-submit CSRF cookie.
fn auth_form(
    state: &AppState,
    status: StatusCode,
    setup: bool,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Response {
    let csrf = random_hex(16);
    let page = AuthPage {
        title: if setup {
            "Set up Lookout".into()
        } else {
            "Log in".into()
        },
        setup,
        action: if setup { "/setup" } else { "/login" },
        csrf: csrf.clone(),
        next: safe_next(next).to_string(),
        email: email.to_string(),
        error: error.map(str::to_string),
    };
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        3600,
        state.settings().secure_cookies(),
    );
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

/// `?next=/path`
#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// `GET /login`
pub async fn login_form(State(state): State<AppState>, Query(q): Query<NextParam>) -> Response {
    match tenancy::is_set_up(state.store()).await {
        Ok(false) => Redirect::to("/setup").into_response(),
        Ok(true) => auth_form(
            &state,
            StatusCode::OK,
            false,
            q.next.as_deref().unwrap_or("/"),
            "",
            None,
        ),
        Err(e) => ui_error(e),
    }
}

/// The login and setup forms' fields.
#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// Whether the form's CSRF field matches the pre-login cookie.
fn login_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| secrets_equal(c, sent))
}

/// Starts a session for `user` and redirects to `next`.
async fn start_session(state: &AppState, user: &tenancy::User, next: &str) -> Response {
    let ttl = state.settings().session_ttl_ms;
    match tenancy::create_session(state.store(), user, ttl).await {
        Ok((sid, _)) => {
            let secure = state.settings().secure_cookies();
            let mut res = Redirect::to(safe_next(next)).into_response();
            let h = res.headers_mut();
            if let Ok(v) = set_cookie(SESSION_COOKIE, &sid, ttl / 1000, secure).parse() {
                h.append(header::SET_COOKIE, v);
            }
            if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure).parse() {
                h.append(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => ui_error(e),
    }
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    let next = f.next.as_deref().unwrap_or("/");
    if !login_csrf_ok(&headers, &f.csrf) {
        tracing::info!("Login refused: CSRF cookie missing or different.");
        return auth_form(
            &state,
            StatusCode::FORBIDDEN,
            false,
            next,
            &f.email,
            Some("The form expired. Please try again."),
        );
    }
    let now = lookout_core::time::now_ms();
    if let Err(wait_ms) = state.login_throttle().begin(&f.email, client, now) {
        let wait_s = (wait_ms + 999) / 1000;
        tracing::warn!(wait_s, client = ?client, "Login refused: too many recent failed attempts.");
        let mut res = auth_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            false,
            next,
            &f.email,
            Some(&format!(
                "Too many failed logins. Try again in {wait_s} {}.",
                if wait_s == 1 { "second" } else { "seconds" }
            )),
        );
        if let Ok(v) = wait_s.to_string().parse() {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    match tenancy::verify_login(state.store(), &f.email, &f.password).await {
        Ok(Some(user)) => {
            state.login_throttle().succeeded(&f.email, client);
            tracing::info!(user = user.id, "User logged in.");
            start_session(&state, &user, next).await
        }
        Ok(None) => {
            state
                .login_throttle()
                .failed(&f.email, client, lookout_core::time::now_ms());
            tracing::info!("Login failed: wrong email or password.");
            auth_form(
                &state,
                StatusCode::UNAUTHORIZED,
                false,
                next,
                &f.email,
                Some("Wrong email or password."),
            )
        }
        Err(e) => ui_error(e),
    }
}

/// `GET /setup`: the first-admin form, only until the first user is created (deleting users
/// later never reopens it).
pub async fn setup_form(State(state): State<AppState>) -> Response {
    match tenancy::is_set_up(state.store()).await {
        Ok(false) => auth_form(&state, StatusCode::OK, true, "/", "", None),
        Ok(true) => Redirect::to("/login").into_response(),
        Err(e) => ui_error(e),
    }
}

/// `POST /setup`: creates the first admin and logs them in.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    match tenancy::is_set_up(state.store()).await {
        Ok(false) => {}
        Ok(true) => return Redirect::to("/login").into_response(),
        Err(e) => return ui_error(e),
    }
    if !login_csrf_ok(&headers, &f.csrf) {
        return auth_form(
            &state,
            StatusCode::FORBIDDEN,
            true,
            "/",
            &f.email,
            Some("The form expired. Please try again."),
        );
    }
    if let Err(e) = crate::api::validate_new_user(&f.email, &f.password) {
        return auth_form(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            true,
            "/",
            &f.email,
            Some(&e.to_string()),
        );
    }
    match tenancy::create_first_admin(state.store(), &f.email, &f.password).await {
        Ok(Some(user)) => {
            tracing::info!(user = user.id, "First administrator created.");
            start_session(&state, &user, "/").await
        }
        Ok(None) => Redirect::to("/login").into_response(),
        Err(StoreError::Conflict(_)) => Redirect::to("/login").into_response(),
        Err(e) => ui_error(e),
    }
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `POST /logout`
pub async fn logout(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&s, &f.csrf) {
        return r;
    }
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = tenancy::delete_session(state.store(), sid).await {
            return ui_error(e);
        }
    }
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.settings().secure_cookies());
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

// ------------------------------------------------------------------ settings

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    title: String,
    ctx: PageCtx,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    projects: Vec<ProjectView>,
    snippets: Vec<(String, super::errors::Snippets)>,
    tokens: Vec<TokenView>,
    users: Vec<UserView>,
    roles: Vec<&'static str>,
    can_edit: bool,
    is_admin: bool,
    version: &'static str,
    storage: &'static str,
    data_location: String,
    schema_version: i64,
    public_url: String,
}

/// What a settings form did, shown above the page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
}

async fn settings_page(
    state: &AppState,
    s: &Session,
    headers: &HeaderMap,
    outcome: Outcome,
) -> Response {
    let ctx = match page_ctx(state, s, headers, "/settings").await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let all = Cursor {
        after: None,
        limit: Some(1000),
    };
    let is_admin = s.user.role == Role::Admin;
    let loaded: Result<_, StoreError> = async {
        let projects = tenancy::list_projects(state.store(), &all).await?.items;
        let owner = if is_admin { None } else { Some(s.user.id) };
        let tokens = tenancy::list_tokens(state.store(), owner, &all)
            .await?
            .items;
        let users = if is_admin {
            tenancy::list_users(state.store(), &all).await?.items
        } else {
            Vec::new()
        };
        let schema_version = state.store().schema_version().await?;
        Ok((projects, tokens, users, schema_version))
    }
    .await;
    let (projects, tokens, users, schema_version) = match loaded {
        Ok(v) => v,
        Err(e) => return ui_error(e),
    };
    let page = SettingsPage {
        title: "Settings".into(),
        ctx,
        notice: outcome.notice,
        error: outcome.error,
        new_token: outcome.new_token,
        snippets: projects
            .iter()
            .filter_map(|p| {
                p.public_key.as_deref().map(|k| {
                    (
                        p.name.clone(),
                        super::errors::snippets(&state.settings().dsn(k, p.id)),
                    )
                })
            })
            .collect(),
        projects: projects
            .into_iter()
            .map(|p| ProjectView::new(p, state.settings()))
            .collect(),
        tokens: tokens.into_iter().map(TokenView::from).collect(),
        users: users.into_iter().map(UserView::from).collect(),
        roles: Role::ALL
            .iter()
            .filter(|r| **r <= s.user.role)
            .map(|r| r.as_str())
            .collect(),
        can_edit: s.user.role >= Role::Member,
        is_admin,
        version: env!("CARGO_PKG_VERSION"),
        storage: state.store().backend().name(),
        data_location: state.settings().data_location.clone(),
        schema_version,
        public_url: state.settings().public_url.clone(),
    };
    (outcome.status.unwrap_or(StatusCode::OK), render(&page)).into_response()
}

/// `GET /settings`
pub async fn settings(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
) -> Response {
    settings_page(&state, &s, &headers, Outcome::default()).await
}

/// Turns a failed form action into an error notice with the right status.
fn failed(status: StatusCode, message: impl Into<String>) -> Outcome {
    Outcome {
        status: Some(status),
        error: Some(message.into()),
        ..Outcome::default()
    }
}

/// The new-project form.
#[derive(Deserialize)]
pub struct ProjectForm {
    csrf: String,
    name: String,
    platform: Option<String>,
}

/// `POST /settings/projects`
pub async fn settings_create_project(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Form(f): Form<ProjectForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&s, &f.csrf) {
        return r;
    }
    let outcome = if s.user.role < Role::Member {
        failed(
            StatusCode::FORBIDDEN,
            "Creating projects needs the member role.",
        )
    } else {
        let name = f.name.trim();
        let platform = f
            .platform
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let slug = tenancy::slugify(name);
        if name.is_empty() || name.chars().count() > 100 || slug.is_empty() {
            failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "A project name needs 1 to 100 characters, some of them letters or digits.",
            )
        } else {
            match tenancy::default_org(state.store()).await {
                Ok(org) => match tenancy::create_project(
                    state.store(),
                    org.id,
                    name,
                    Some(&slug),
                    platform,
                )
                .await
                {
                    Ok(p) => Outcome {
                        notice: Some(format!("Project {} created.", p.name)),
                        ..Outcome::default()
                    },
                    Err(StoreError::Conflict(_)) => failed(
                        StatusCode::CONFLICT,
                        format!("A project with the slug {slug} exists already."),
                    ),
                    Err(e) => return ui_error(e),
                },
                Err(e) => return ui_error(e),
            }
        }
    };
    settings_page(&state, &s, &headers, outcome).await
}

/// The new-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
    name: String,
    role: Role,
}

/// `POST /settings/tokens`: shows the new secret once.
pub async fn settings_create_token(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&s, &f.csrf) {
        return r;
    }
    let name = f.name.trim();
    let outcome = if f.role > s.user.role {
        failed(
            StatusCode::FORBIDDEN,
            "A token cannot have more rights than you.",
        )
    } else if name.is_empty() || name.chars().count() > 100 {
        failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A token name needs 1 to 100 characters.",
        )
    } else {
        match tenancy::create_token(state.store(), name, f.role, Some(s.user.id)).await {
            Ok((secret, _)) => Outcome {
                new_token: Some(secret),
                ..Outcome::default()
            },
            Err(e) => return ui_error(e),
        }
    };
    settings_page(&state, &s, &headers, outcome).await
}

/// `POST /settings/tokens/{id}/revoke`
pub async fn settings_revoke_token(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&s, &f.csrf) {
        return r;
    }
    let outcome = match tenancy::get_token(state.store(), id).await {
        Ok(t) if s.user.role == Role::Admin || t.user_id == Some(s.user.id) => {
            match tenancy::revoke_token(state.store(), id).await {
                Ok(()) => Outcome {
                    notice: Some(format!("Token {} revoked.", t.name)),
                    ..Outcome::default()
                },
                Err(e) => return ui_error(e),
            }
        }
        Ok(_) | Err(StoreError::NotFound) => failed(StatusCode::NOT_FOUND, "No such token."),
        Err(e) => return ui_error(e),
    };
    settings_page(&state, &s, &headers, outcome).await
}

/// The new-user form.
#[derive(Deserialize)]
pub struct UserForm {
    csrf: String,
    email: String,
    password: String,
    role: Role,
}

/// `POST /settings/users` (admin)
pub async fn settings_create_user(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Form(f): Form<UserForm>,
) -> Response {
    if let Some(r) = csrf_refusal(&s, &f.csrf) {
        return r;
    }
    let outcome = if s.user.role != Role::Admin {
        failed(
            StatusCode::FORBIDDEN,
            "Creating users needs the admin role.",
        )
    } else if let Err(e) = crate::api::validate_new_user(&f.email, &f.password) {
        failed(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    } else {
        match tenancy::create_user(state.store(), &f.email, &f.password, f.role).await {
            Ok(u) => Outcome {
                notice: Some(format!("User {} created.", u.email)),
                ..Outcome::default()
            },
            Err(StoreError::Conflict(_)) => failed(
                StatusCode::CONFLICT,
                "A user with this email exists already.",
            ),
            Err(e) => return ui_error(e),
        }
    };
    settings_page(&state, &s, &headers, outcome).await
}
