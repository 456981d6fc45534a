//! Signing in and out: the login and first-admin setup forms (with a double-submit CSRF cookie,
//! since there is no session yet), logout, and the project switcher's cookie.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::auth::{
    cookie, set_cookie, ClientAddr, LOGIN_CSRF_COOKIE, PROJECT_COOKIE, SESSION_COOKIE,
};
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::{check_csrf, safe_next, UiSession};
use lookout_core::secret::{random_hex, secrets_equal};
use lookout_store::tenancy::{self};
use lookout_store::StoreError;

use crate::ui::layout::render;

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
    /// "Sign in with SSO" is offered.
    sso: bool,
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
        sso: !setup && state.sso().is_some(),
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
pub async fn login_form(State(state): State<AppState>, Query(q): Query<NextParam>) -> UiResult {
    if !tenancy::is_set_up(state.store()).await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(auth_form(
        &state,
        StatusCode::OK,
        false,
        q.next.as_deref().unwrap_or("/"),
        "",
        None,
    ))
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
pub(crate) fn login_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|c| secrets_equal(c, sent))
}

/// Starts a session for `user` and redirects to `next`.
pub(crate) async fn start_session(state: &AppState, user: &tenancy::User, next: &str) -> UiResult {
    let ttl = state.settings().session_ttl_ms;
    let (sid, _) = tenancy::create_session(state.store(), user, ttl).await?;
    let secure = state.settings().secure_cookies();
    let mut res = Redirect::to(safe_next(next)).into_response();
    let h = res.headers_mut();
    if let Ok(v) = set_cookie(SESSION_COOKIE, &sid, ttl / 1000, secure).parse() {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure).parse() {
        h.append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> UiResult {
    let next = f.next.as_deref().unwrap_or("/");
    if !login_csrf_ok(&headers, &f.csrf) {
        tracing::info!("Login refused: CSRF cookie missing or different.");
        return Ok(auth_form(
            &state,
            StatusCode::FORBIDDEN,
            false,
            next,
            &f.email,
            Some("The form expired. Please try again."),
        ));
    }
    if let Some(sso) = state.sso() {
        if !sso.config().password_allowed(&f.email) {
            tracing::info!("Password login refused: this server signs in through SSO only.");
            return Ok(auth_form(
                &state,
                StatusCode::FORBIDDEN,
                false,
                next,
                &f.email,
                Some("This server signs in through single sign-on: use “Sign in with SSO”."),
            ));
        }
    }
    let now = lookout_core::time::now_ms();
    if let Err(wait_ms) = state
        .login_throttle()
        .begin_shared(&f.email, client, now)
        .await
    {
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
        return Ok(res);
    }
    match tenancy::verify_login(state.store(), &f.email, &f.password).await? {
        // Then the second factor, if the user has or needs one, before any session exists.
        Some(user) => {
            super::two_factor::after_password(
                &state, &user, &f.email, client, next, "password", None,
            )
            .await
        }
        None => {
            state
                .login_throttle()
                .failed_shared(&f.email, client, lookout_core::time::now_ms())
                .await;
            tracing::info!("Login failed: wrong email or password.");
            crate::tenancy::audit::sign_in(&state, None, &f.email, client, "password").await;
            Ok(auth_form(
                &state,
                StatusCode::UNAUTHORIZED,
                false,
                next,
                &f.email,
                Some("Wrong email or password."),
            ))
        }
    }
}

/// `GET /setup`: the first-admin form, only until the first user is created (deleting users
/// later never reopens it).
pub async fn setup_form(State(state): State<AppState>) -> UiResult {
    Ok(if tenancy::is_set_up(state.store()).await? {
        Redirect::to("/login").into_response()
    } else {
        auth_form(&state, StatusCode::OK, true, "/", "", None)
    })
}

/// `POST /setup`: creates the first admin and logs them in.
pub async fn setup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> UiResult {
    if tenancy::is_set_up(state.store()).await? {
        return Ok(Redirect::to("/login").into_response());
    }
    if !login_csrf_ok(&headers, &f.csrf) {
        return Ok(auth_form(
            &state,
            StatusCode::FORBIDDEN,
            true,
            "/",
            &f.email,
            Some("The form expired. Please try again."),
        ));
    }
    if let Err(e) = crate::tenancy::service::validate_new_user(&f.email, &f.password) {
        return Ok(auth_form(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            true,
            "/",
            &f.email,
            Some(&e.to_string()),
        ));
    }
    match tenancy::create_first_admin(state.store(), &f.email, &f.password).await {
        Ok(Some(user)) => {
            tracing::info!(user = user.id, "First administrator created.");
            crate::tenancy::audit::first_admin(&state, &user, client).await;
            start_session(&state, &user, "/").await
        }
        // Someone else finished setting up first.
        Ok(None) | Err(StoreError::Conflict(_)) => Ok(Redirect::to("/login").into_response()),
        Err(e) => Err(e.into()),
    }
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    pub(crate) csrf: String,
}

/// `POST /logout`
pub async fn logout(
    State(state): State<AppState>,
    UiSession(s): UiSession,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
    if let Some(sid) = cookie(&headers, SESSION_COOKIE) {
        tenancy::delete_session(state.store(), sid).await?;
    }
    let clear = set_cookie(SESSION_COOKIE, "", 0, state.settings().secure_cookies());
    // Users who came through single sign-on also end the provider's session, when it offers
    // that; ours is gone already, whatever the provider does. A page that moves on by itself
    // rather than a redirect: the form's CSP (`form-action 'self'`) would block a redirect to
    // another origin.
    if let Some(provider_url) = crate::tenancy::sso::flow::provider_logout(&state, s.user.id).await
    {
        let page = SignedOut { provider_url };
        return Ok(([(header::SET_COOKIE, clear)], render(&page)).into_response());
    }
    Ok(([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response())
}

/// After signing out: on to the identity provider's sign-out.
#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut {
    provider_url: String,
}
