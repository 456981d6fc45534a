//! The pages behind emailed links, used before signing in: accepting an invitation (choose a
//! name and password, then signed in), asking for a password reset, and choosing a new password
//! from a reset link. Like the login form they carry a double-submit CSRF cookie.
//!
//! A link that is forged, expired, used or withdrawn answers 410 with a page that says so and
//! what to do, never which of these it was for a forged one.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::session::login_csrf_ok;
use super::two_factor::after_password;
use crate::auth::{set_cookie, ClientAddr, LOGIN_CSRF_COOKIE};
use crate::state::AppState;
use crate::tenancy::api::account::RESET_MESSAGE;
use crate::tenancy::links::{self, open_token, validate_name, validate_password};
use crate::ui::error::UiResult;
use crate::ui::layout::render;
use lookout_core::secret::random_hex;
use lookout_store::identity::{self, LinkPurpose};

#[derive(Template, Default)]
#[template(path = "account_link.html")]
struct LinkPage {
    title: String,
    intro: Option<String>,
    error: Option<String>,
    notice: Option<String>,
    show_form: bool,
    action: String,
    csrf: String,
    account_email: Option<String>,
    ask_email: bool,
    email: String,
    ask_name: bool,
    name: String,
    ask_password: bool,
    button: &'static str,
}

/// Renders `page` with a fresh double-submit CSRF cookie when it has a form.
fn respond(state: &AppState, status: StatusCode, mut page: LinkPage) -> Response {
    if !page.show_form {
        return (status, render(&page)).into_response();
    }
    page.csrf = random_hex(16);
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        &page.csrf,
        3600,
        state.settings().secure_cookies(),
    );
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

fn dead_link(state: &AppState, purpose: LinkPurpose) -> Response {
    let (title, intro) = match purpose {
        LinkPurpose::Invite => (
            "Invitation no longer valid",
            "This invitation link has expired, was already used, or was replaced by a newer one. Ask an administrator to send it again.",
        ),
        LinkPurpose::Reset => (
            "Reset link no longer valid",
            "This password reset link has expired, was already used, or was replaced by a newer one. Ask for a new one below.",
        ),
    };
    let reset = purpose == LinkPurpose::Reset;
    respond(
        state,
        StatusCode::GONE,
        LinkPage {
            title: title.into(),
            error: Some(intro.into()),
            show_form: reset,
            action: "/reset".into(),
            ask_email: reset,
            button: "Email me a link",
            ..LinkPage::default()
        },
    )
}

fn invite_page(token: &str, email: &str, name: &str, error: Option<String>) -> LinkPage {
    LinkPage {
        title: "Join Lookout".into(),
        intro: Some("Choose the name your colleagues will see and a password.".into()),
        error,
        show_form: true,
        action: format!("/invite/{token}"),
        account_email: Some(email.to_string()),
        ask_name: true,
        name: name.to_string(),
        ask_password: true,
        button: "Join",
        ..LinkPage::default()
    }
}

/// `GET /invite/{token}`
pub async fn invite_form(State(state): State<AppState>, Path(token): Path<String>) -> UiResult {
    let Some(secret) = open_token(&state, LinkPurpose::Invite, &token) else {
        return Ok(dead_link(&state, LinkPurpose::Invite));
    };
    let Some(user) = identity::link_user(state.store(), LinkPurpose::Invite, &secret).await? else {
        return Ok(dead_link(&state, LinkPurpose::Invite));
    };
    let name = user.name.clone().unwrap_or_default();
    Ok(respond(
        &state,
        StatusCode::OK,
        invite_page(&token, &user.email, &name, None),
    ))
}

/// The invitation form.
#[derive(Deserialize)]
pub struct JoinForm {
    csrf: String,
    name: String,
    password: String,
}

/// `POST /invite/{token}`: sets the name and password, spends the link and signs in.
pub async fn accept(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<JoinForm>,
) -> UiResult {
    let Some(secret) = open_token(&state, LinkPurpose::Invite, &token) else {
        return Ok(dead_link(&state, LinkPurpose::Invite));
    };
    let Some(user) = identity::link_user(state.store(), LinkPurpose::Invite, &secret).await? else {
        return Ok(dead_link(&state, LinkPurpose::Invite));
    };
    let again = |status, error: String| {
        Ok(respond(
            &state,
            status,
            invite_page(&token, &user.email, &f.name, Some(error)),
        ))
    };
    if !login_csrf_ok(&headers, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "The form expired. Please try again.".into(),
        );
    }
    let name = match validate_name(&f.name) {
        Ok(n) => n,
        Err(e) => return again(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    if let Err(e) = validate_password(&f.password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
    }
    // Made by nobody signed in, so the audit middleware passes it by: its entry is named here
    // and written in the acceptance's transaction.
    let entry = lookout_store::audit::Pending {
        actor: format!("user:{}", user.id),
        actor_label: user.email.clone(),
        action: "invitation.accept".into(),
        target: Some(user.id.to_string()),
        details: serde_json::json!({ "recorded": "with the change" }),
        address: client.map(|c| c.to_string()),
    };
    let accepted = lookout_store::audit::with_pending(
        entry,
        identity::accept_invitation(state.store(), &secret, &name, &f.password),
    )
    .await
    .0;
    match accepted? {
        Some(user) => {
            tracing::info!(user = user.id, "Invitation accepted.");
            // The second factor (or its required enrolment) still comes before any session.
            after_password(&state, &user, &user.email, client, "/", "invitation", None).await
        }
        // Spent by another tab between the check and now.
        None => Ok(dead_link(&state, LinkPurpose::Invite)),
    }
}

fn reset_request_page(email: &str, notice: Option<String>, error: Option<String>) -> LinkPage {
    LinkPage {
        title: "Reset your password".into(),
        intro: Some("We will email a link to choose a new password.".into()),
        notice,
        error,
        show_form: true,
        action: "/reset".into(),
        ask_email: true,
        email: email.to_string(),
        button: "Email me a link",
        ..LinkPage::default()
    }
}

/// `GET /reset`
pub async fn reset_request_form(State(state): State<AppState>) -> Response {
    respond(&state, StatusCode::OK, reset_request_page("", None, None))
}

/// The reset request form.
#[derive(Deserialize)]
pub struct ResetRequestForm {
    csrf: String,
    email: String,
}

/// `POST /reset`: the same answer whether or not the address has an account.
pub async fn reset_request(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<ResetRequestForm>,
) -> UiResult {
    if let Some(wait_s) = state
        .reset_requests()
        .admit_shared(client, lookout_core::time::now_ms())
        .await
    {
        tracing::warn!(client = ?client, "Password reset refused: too many requests from this address.");
        return Ok(respond(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            reset_request_page(
                &f.email,
                None,
                Some(format!("Too many requests. Try again in {wait_s} seconds.")),
            ),
        ));
    }
    if !login_csrf_ok(&headers, &f.csrf) {
        return Ok(respond(
            &state,
            StatusCode::FORBIDDEN,
            reset_request_page(
                &f.email,
                None,
                Some("The form expired. Please try again.".into()),
            ),
        ));
    }
    if f.email.len() <= 254 {
        links::request_reset(&state, &f.email);
    }
    Ok(respond(
        &state,
        StatusCode::OK,
        reset_request_page(&f.email, Some(RESET_MESSAGE.into()), None),
    ))
}

fn reset_page(token: &str, email: &str, error: Option<String>) -> LinkPage {
    LinkPage {
        title: "Choose a new password".into(),
        intro: Some("Your other sessions end when you save it.".into()),
        error,
        show_form: true,
        action: format!("/reset/{token}"),
        account_email: Some(email.to_string()),
        ask_password: true,
        button: "Save password and log in",
        ..LinkPage::default()
    }
}

/// `GET /reset/{token}`
pub async fn reset_form(State(state): State<AppState>, Path(token): Path<String>) -> UiResult {
    let Some(secret) = open_token(&state, LinkPurpose::Reset, &token) else {
        return Ok(dead_link(&state, LinkPurpose::Reset));
    };
    let Some(user) = identity::link_user(state.store(), LinkPurpose::Reset, &secret).await? else {
        return Ok(dead_link(&state, LinkPurpose::Reset));
    };
    Ok(respond(
        &state,
        StatusCode::OK,
        reset_page(&token, &user.email, None),
    ))
}

/// The new-password form.
#[derive(Deserialize)]
pub struct NewPasswordForm {
    csrf: String,
    password: String,
}

/// `POST /reset/{token}`: sets the password, ends every session, spends the link, signs in.
pub async fn reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(f): Form<NewPasswordForm>,
) -> UiResult {
    let Some(secret) = open_token(&state, LinkPurpose::Reset, &token) else {
        return Ok(dead_link(&state, LinkPurpose::Reset));
    };
    let Some(user) = identity::link_user(state.store(), LinkPurpose::Reset, &secret).await? else {
        return Ok(dead_link(&state, LinkPurpose::Reset));
    };
    if !login_csrf_ok(&headers, &f.csrf) {
        return Ok(respond(
            &state,
            StatusCode::FORBIDDEN,
            reset_page(
                &token,
                &user.email,
                Some("The form expired. Please try again.".into()),
            ),
        ));
    }
    if let Err(e) = validate_password(&f.password) {
        return Ok(respond(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            reset_page(&token, &user.email, Some(e.to_string())),
        ));
    }
    match identity::reset_password(state.store(), &secret, &f.password).await? {
        Some(user) => {
            tracing::info!(user = user.id, "Password reset through an emailed link.");
            // A reset link proves the mailbox, not the second factor: the code is still asked.
            after_password(
                &state,
                &user,
                &user.email,
                client,
                "/",
                "password reset",
                None,
            )
            .await
        }
        None => Ok(dead_link(&state, LinkPurpose::Reset)),
    }
}
