//! Two-factor sign-in in the UI: the second step of logging in (a code, or the enrolment when it
//! is required and not set up), both before any session exists; and turning it on or off from
//! the account page.
//!
//! The second step carries the pre-login double-submit CSRF cookie, like the login form, and a
//! signed pending-sign-in token (see `tenancy::totp`). Each code tried counts in the login
//! throttle; the password's own attempt is not taken back until the second factor is right, so
//! signing in again with the password does not reset the count of wrong codes.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::session::{login_csrf_ok, start_session};
use crate::auth::{set_cookie, ClientAddr, LOGIN_CSRF_COOKIE};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::tenancy::totp::{self, Enrolment, SecondStep};
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::layout::{render, PageCtx};
use crate::ui::safe_next;
use lookout_core::secret::random_hex;
use lookout_store::sso::Grants;
use lookout_store::tenancy::{self, User};
use lookout_store::{identity, StoreError};

#[derive(Template)]
#[template(path = "two_factor.html")]
struct StepPage {
    title: String,
    error: Option<String>,
    enrolment: Option<Enrolment>,
    recovery_codes: Vec<String>,
    action: &'static str,
    csrf: String,
    pending: String,
    next: String,
}

/// The second-step page with a fresh pre-login CSRF cookie.
fn step_page(
    state: &AppState,
    status: StatusCode,
    pending: String,
    enrolment: Option<Enrolment>,
    next: &str,
    error: Option<String>,
) -> Response {
    let csrf = random_hex(16);
    let enrol = enrolment.is_some();
    let page = StepPage {
        title: if enrol {
            "Set up two-factor sign-in".into()
        } else {
            "Two-factor sign-in".into()
        },
        error,
        enrolment,
        recovery_codes: Vec::new(),
        action: if enrol { "/login/enrol" } else { "/login/code" },
        csrf: csrf.clone(),
        pending,
        next: safe_next(next).to_string(),
    };
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        3600,
        state.settings().secure_cookies(),
    );
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

/// After a right password: a session, or the second step. The password's throttle count is
/// taken back only when no second step follows. Every way in that proves a password (the login
/// form, an accepted invitation, a reset link, single sign-on) comes through here, so none of
/// them skips the second factor or its required enrolment; `method` names the way in for the
/// audit log. An SSO sign-in's `grants` (role and teams from its groups) are applied only when
/// the sign-in completes: here without a second step, else after the right code, carried
/// meanwhile in the signed pending token.
pub(crate) async fn after_password(
    state: &AppState,
    user: &User,
    email: &str,
    client: Option<std::net::IpAddr>,
    next: &str,
    method: &str,
    grants: Option<&Grants>,
) -> UiResult {
    match totp::second_step(state, user).await? {
        SecondStep::None => {
            state.login_throttle().succeeded_shared(email, client).await;
            if !apply_grants(state, user, grants, lookout_core::time::now_ms()).await? {
                return Ok(sign_in_expired());
            }
            tracing::info!(user = user.id, "User logged in.");
            crate::tenancy::audit::sign_in(state, Some(user), email, client, method).await;
            start_session(state, user, next).await
        }
        SecondStep::Code => {
            let Some(pending) = totp::pending_token(state, user.id, grants) else {
                return Ok(grants_too_large());
            };
            Ok(step_page(state, StatusCode::OK, pending, None, next, None))
        }
        SecondStep::Enrol => {
            let Some(pending) = totp::pending_token(state, user.id, grants) else {
                return Ok(grants_too_large());
            };
            let en = totp::begin(state, user).await?;
            Ok(step_page(
                state,
                StatusCode::OK,
                pending,
                Some(en),
                next,
                None,
            ))
        }
    }
}

/// An SSO sign-in whose groups give more teams than a pending sign-in can carry (logged where
/// the token is made): refused with a page saying so, not a form that can only expire.
fn grants_too_large() -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Html(crate::ui::simple_page(
            "Sign-in not possible",
            "Your groups give more teams than a two-factor sign-in can carry. Ask an administrator to shorten [oidc.teams].",
        )),
    )
        .into_response()
}

/// Applies an SSO sign-in's grants (nothing for other sign-ins), issued at `issued_at`; false
/// when a later sign-in has applied its own already (the sign-in must then be refused).
async fn apply_grants(
    state: &AppState,
    user: &User,
    grants: Option<&Grants>,
    issued_at: i64,
) -> UiResult<bool> {
    if let Some(g) = grants {
        return Ok(crate::tenancy::sso::apply_grants(state, user.id, g, issued_at).await?);
    }
    Ok(true)
}

/// Ends the pending sign-in for good now that its second step succeeded (across replicas when
/// Redis answers), then applies its grants; false when its token was used already or a later
/// sign-in has applied its grants: a replayed token signs nobody in and restores nothing.
async fn finish_pending(state: &AppState, user: &User, pending: &totp::Pending) -> UiResult<bool> {
    if !state
        .code_guard()
        .claim_shared(&pending.nonce, pending.expires)
        .await
    {
        tracing::warn!(user = user.id, "Pending sign-in token used again: refused.");
        return Ok(false);
    }
    apply_grants(state, user, pending.grants.as_ref(), pending.issued_at()).await
}

/// The page for a pending sign-in that is over (used, expired or from elsewhere).
fn sign_in_expired() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(crate::ui::simple_page(
            "Sign-in expired",
            "This sign-in took too long or the form came from elsewhere. Log in again.",
        )),
    )
        .into_response()
}

/// The second step's form.
#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    pending: String,
    code: String,
    next: Option<String>,
}

/// The page that ends a pending sign-in after its wrong codes: the password again.
fn too_many_codes() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Html(crate::ui::simple_page(
            "Sign-in ended",
            "Too many wrong codes for this sign-in. Log in again with your password.",
        )),
    )
        .into_response()
}

/// The user and pending sign-in a second-step form is for, or the page to answer instead.
async fn pending_user(
    state: &AppState,
    headers: &HeaderMap,
    f: &StepForm,
) -> Result<(User, totp::Pending), Response> {
    let expired = sign_in_expired;
    if !login_csrf_ok(headers, &f.csrf) {
        return Err(expired());
    }
    let Some(pending) = totp::open_pending(state, &f.pending) else {
        return Err(expired());
    };
    // Its token replayed after it completed: over (the claim in `finish_pending` decides
    // races; this spares a used token its code check).
    if state.code_guard().used_shared(&pending.nonce).await {
        return Err(expired());
    }
    // Its token replayed after its wrong codes: still ended.
    if state
        .code_guard()
        .pending_ended_shared(&pending.nonce)
        .await
    {
        return Err(too_many_codes());
    }
    match tenancy::get_user(state.store(), pending.user_id).await {
        Ok(u) if !u.invited => Ok((u, pending)),
        Ok(_) | Err(StoreError::NotFound) => Err(expired()),
        Err(e) => Err(crate::ui::ui_error(e)),
    }
}

/// Counts a wrong code in the login throttle and the code guard (across replicas when Redis
/// answers); whether the pending sign-in may still be used.
async fn wrong_code(
    state: &AppState,
    user: &User,
    pending: &totp::Pending,
    client: Option<std::net::IpAddr>,
) -> bool {
    let now = lookout_core::time::now_ms();
    state
        .login_throttle()
        .failed_shared(&user.email, client, now)
        .await;
    state
        .code_guard()
        .wrong_code_shared(&pending.nonce, pending.expires, user.id, now)
        .await
}

/// Counts a code attempt in the login throttle; the 429 page when the account must wait.
async fn throttle(
    state: &AppState,
    user: &User,
    pending: &totp::Pending,
    client: Option<std::net::IpAddr>,
    enrolment: bool,
    next: &str,
) -> Option<Response> {
    let now = lookout_core::time::now_ms();
    if let Some(wait_ms) = state.code_guard().account_wait_shared(user.id, now).await {
        // Past the account's hourly cap of wrong codes, whoever and wherever is guessing.
        let wait_s = (wait_ms + 999) / 1000;
        tracing::warn!(
            user = user.id,
            wait_s,
            client = ?client,
            "Two-factor codes refused: too many wrong codes for this account in the last hour."
        );
        let message = format!(
            "Too many wrong codes for this account in the last hour. Try again in {} minutes.",
            (wait_s + 59) / 60
        );
        return Some(too_many(state, pending, next, wait_s, message));
    }
    let wait_ms = state
        .login_throttle()
        .begin_shared(&user.email, client, now)
        .await
        .err()?;
    let wait_s = (wait_ms + 999) / 1000;
    tracing::warn!(wait_s, client = ?client, "Two-factor code refused: too many recent failed attempts.");
    let again = if enrolment {
        "Log in again"
    } else {
        "Try again"
    };
    let message = format!("Too many wrong codes. {again} in {wait_s} seconds.");
    Some(too_many(state, pending, next, wait_s, message))
}

/// The code step again, answered 429 with `Retry-After`.
fn too_many(
    state: &AppState,
    pending: &totp::Pending,
    next: &str,
    wait_s: i64,
    message: String,
) -> Response {
    let mut res = step_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        totp::pending_again(state, pending),
        None,
        next,
        Some(message),
    );
    if let Ok(v) = wait_s.to_string().parse() {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// `POST /login/code`: a code or recovery code, then the session.
pub async fn login_code(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<StepForm>,
) -> UiResult {
    let next = f.next.clone().unwrap_or_else(|| "/".into());
    let (user, pending) = match pending_user(&state, &headers, &f).await {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    if let Some(r) = throttle(&state, &user, &pending, client, false, &next).await {
        return Ok(r);
    }
    if totp::verify(&state, &user, &f.code).await? {
        state
            .login_throttle()
            .succeeded_shared(&user.email, client)
            .await;
        if !finish_pending(&state, &user, &pending).await? {
            return Ok(sign_in_expired());
        }
        tracing::info!(user = user.id, "User logged in with a second factor.");
        crate::tenancy::audit::sign_in(
            &state,
            Some(&user),
            &user.email,
            client,
            "password and code",
        )
        .await;
        return start_session(&state, &user, &next).await;
    }
    tracing::info!(user = user.id, "Two-factor code refused.");
    crate::tenancy::audit::sign_in(&state, None, &user.email, client, "code").await;
    if !wrong_code(&state, &user, &pending, client).await {
        tracing::warn!(user = user.id, client = ?client, "Pending sign-in ended after too many wrong codes.");
        return Ok(too_many_codes());
    }
    Ok(step_page(
        &state,
        StatusCode::UNAUTHORIZED,
        totp::pending_again(&state, &pending),
        None,
        &next,
        Some("Wrong or already used code.".into()),
    ))
}

/// `POST /login/enrol`: confirms the enrolment shown after the password, then shows the
/// recovery codes with the new session's cookie.
pub async fn login_enrol(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<StepForm>,
) -> UiResult {
    let next = f.next.clone().unwrap_or_else(|| "/".into());
    let (user, pending) = match pending_user(&state, &headers, &f).await {
        Ok(u) => u,
        Err(r) => return Ok(r),
    };
    if let Some(r) = throttle(&state, &user, &pending, client, true, &next).await {
        return Ok(r);
    }
    match totp::confirm(&state, &user, &f.code).await {
        Ok(codes) => {
            state
                .login_throttle()
                .succeeded_shared(&user.email, client)
                .await;
            if !finish_pending(&state, &user, &pending).await? {
                return Ok(sign_in_expired());
            }
            tracing::info!(
                user = user.id,
                "User logged in after setting up a second factor."
            );
            crate::tenancy::audit::sign_in(
                &state,
                Some(&user),
                &user.email,
                client,
                "password and new second factor",
            )
            .await;
            let mut res = start_session(&state, &user, &next).await?;
            let page = StepPage {
                title: "Two-factor sign-in is on".into(),
                error: None,
                enrolment: None,
                recovery_codes: codes,
                action: "/login/code",
                csrf: String::new(),
                pending: String::new(),
                next: safe_next(&next).to_string(),
            };
            // The session's cookies from `start_session`, on the recovery-codes page instead of
            // its redirect.
            let cookies: Vec<_> = res
                .headers_mut()
                .get_all(header::SET_COOKIE)
                .iter()
                .cloned()
                .collect();
            let mut page = (StatusCode::OK, render(&page)).into_response();
            for c in cookies {
                page.headers_mut().append(header::SET_COOKIE, c);
            }
            Ok(page)
        }
        Err(ServiceError::Invalid(m)) => {
            if !wrong_code(&state, &user, &pending, client).await {
                return Ok(too_many_codes());
            }
            // The same seed again: the app already holds it.
            let en = totp::current_enrolment(&state, &user).await?;
            Ok(step_page(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                totp::pending_again(&state, &pending),
                en,
                &next,
                Some(m),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "account_2fa.html")]
struct AccountStep {
    title: String,
    ctx: PageCtx,
    error: Option<String>,
    enrolment: Option<Enrolment>,
    recovery_codes: Vec<String>,
}

/// The form that starts enrolment: the password, and a current code when a device is
/// enrolled already (setting up a new one).
#[derive(Deserialize)]
pub struct BeginForm {
    csrf: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
}

/// `POST /account/2fa`: with the password (and a current code to replace a device), starts
/// enrolment and shows the QR code.
pub async fn account_begin(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    page: Page,
    Form(f): Form<BeginForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let code = f.code.as_deref().filter(|c| !c.trim().is_empty());
    let (status, enrolment, error) =
        match totp::begin_proven(&state, &page.session.user, &f.password, code, client).await {
            Ok(en) => (StatusCode::OK, Some(en), None),
            Err(totp::BeginRefused::Throttled(s)) => (
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Some(format!(
                    "Too many wrong passwords or codes. Try again in {s} seconds."
                )),
            ),
            Err(totp::BeginRefused::Service(
                ServiceError::Conflict(m) | ServiceError::Invalid(m),
            )) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(m)),
            Err(totp::BeginRefused::Service(e)) => return Err(e.into()),
        };
    let p = AccountStep {
        title: "Two-factor sign-in".into(),
        ctx: page.ctx,
        error,
        enrolment,
        recovery_codes: Vec::new(),
    };
    Ok((status, render(&p)).into_response())
}

/// The confirm form.
#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    code: String,
}

/// `POST /account/2fa/confirm`: turns it on with a right code; shows the recovery codes once.
pub async fn account_confirm(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<ConfirmForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let user = &page.session.user;
    let (status, codes, error) = match totp::confirm(&state, user, &f.code).await {
        Ok(codes) => (StatusCode::OK, codes, None),
        Err(ServiceError::Invalid(m)) | Err(ServiceError::Conflict(m)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), Some(m))
        }
        Err(e) => return Err(e.into()),
    };
    // Refused: the same QR code again (the app may hold it already).
    let enrolment = if codes.is_empty() {
        totp::current_enrolment(&state, user).await?
    } else {
        None
    };
    let p = AccountStep {
        title: "Two-factor sign-in".into(),
        ctx: page.ctx,
        error,
        enrolment,
        recovery_codes: codes,
    };
    Ok((status, render(&p)).into_response())
}

/// The turn-off form.
#[derive(Deserialize)]
pub struct DisableForm {
    csrf: String,
    password: String,
}

/// `POST /account/2fa/disable`: needs the password; refused while required.
pub async fn account_disable(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    page: Page,
    Form(f): Form<DisableForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let user = &page.session.user;
    let now = lookout_core::time::now_ms();
    let error = if state
        .login_throttle()
        .begin_shared(&user.email, client, now)
        .await
        .is_err()
    {
        Some("Too many wrong passwords. Try again in a minute.".to_string())
    } else if !identity::password_matches(state.store(), user.id, &f.password).await? {
        state
            .login_throttle()
            .failed_shared(&user.email, client, lookout_core::time::now_ms())
            .await;
        Some("The password is wrong.".to_string())
    } else {
        state
            .login_throttle()
            .succeeded_shared(&user.email, client)
            .await;
        match totp::disable(&state, user.id).await {
            Ok(()) => None,
            Err(ServiceError::Conflict(m)) => Some(m),
            Err(e) => return Err(e.into()),
        }
    };
    Ok(match error {
        None => axum::response::Redirect::to("/account").into_response(),
        Some(m) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(crate::ui::simple_page("Two-factor sign-in stays on", &m)),
        )
            .into_response(),
    })
}
