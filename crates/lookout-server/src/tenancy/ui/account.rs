//! `/account`: the signed-in user's own profile (name, contact methods), password, two-factor
//! sign-in, sessions and API tokens. Every role has one; nobody sees or changes another user's here.

use askama::Template;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::alerting::ui::notification_rules::{self, RulesPanel};
use crate::auth::{cookie, ClientAddr, SESSION_COOKIE};
use crate::state::AppState;
use crate::tenancy::links::{validate_name, validate_password};
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::secret::hash_token;
use lookout_core::Role;
use lookout_store::tenancy::{self, Session};
use lookout_store::{identity, Cursor};

struct SessionLine {
    id: String,
    created: When,
    expires: When,
    current: bool,
}

struct TokenLine {
    id: i64,
    name: String,
    role: Role,
    created: When,
    used: Option<When>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    title: String,
    ctx: PageCtx,
    notice: Option<String>,
    error: Option<String>,
    email: String,
    name: String,
    role: Role,
    can_edit: bool,
    /// `(id, name, type, urgencies)` of the user's contact methods.
    contacts: Vec<(i64, String, String, String)>,
    sessions: Vec<SessionLine>,
    tokens: Vec<TokenLine>,
    totp: crate::tenancy::totp::Status,
    name_error: bool,
    current_error: bool,
    new_error: bool,
    /// My teams, shifts and calendar feed (`crate::teams::ui`).
    oncall: crate::teams::ui::AccountOnCall,
    /// How the user is paged: their notification rules.
    rules: RulesPanel,
}

/// What a form on the page did.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    error: Option<String>,
    /// The name as typed, kept when it was refused.
    typed_name: Option<String>,
    name_error: bool,
    current_error: bool,
    new_error: bool,
    /// A calendar feed address just made, shown once.
    feed_url: Option<String>,
    /// Notification rules as typed, kept when they were refused.
    typed_rules: Option<RulesPanel>,
}

async fn account_page(
    state: &AppState,
    s: &Session,
    headers: &HeaderMap,
    ctx: PageCtx,
    o: Outcome,
) -> UiResult {
    let user = tenancy::get_user(state.store(), s.user.id).await?;
    let org = tenancy::default_org(state.store()).await?;
    let contacts = lookout_store::alerting::channel_list(state.store(), org.id, Some(user.id))
        .await?
        .into_iter()
        .map(|c| (c.id, c.name, c.kind, c.urgencies.join(", ")))
        .collect();
    let current = cookie(headers, SESSION_COOKIE).map(hash_token);
    let sessions = identity::list_sessions(state.store(), user.id)
        .await?
        .into_iter()
        .map(|x| SessionLine {
            current: current.as_deref() == Some(x.id.as_str()),
            id: x.id,
            created: When::at(x.created_at),
            expires: When::at(x.expires_at),
        })
        .collect();
    let all = Cursor {
        after: None,
        limit: Some(1000),
    };
    let tokens = tenancy::list_tokens(state.store(), Some(user.id), &all)
        .await?
        .items
        .into_iter()
        .map(|t| TokenLine {
            id: t.id,
            name: t.name,
            role: t.role,
            created: When::at(t.created_at),
            used: When::opt(t.last_used_at),
        })
        .collect();
    let totp = crate::tenancy::totp::status(state, user.id).await?;
    let oncall = crate::teams::ui::account_oncall(state, user.id, o.feed_url).await?;
    let rules = notification_rules::panel(state, user.id, o.typed_rules).await?;
    let page = AccountPage {
        title: "Your account".into(),
        ctx,
        notice: o.notice,
        error: o.error,
        name: o
            .typed_name
            .unwrap_or_else(|| user.name.clone().unwrap_or_default()),
        email: user.email,
        role: user.role,
        can_edit: user.role >= Role::Member,
        contacts,
        sessions,
        tokens,
        totp,
        name_error: o.name_error,
        current_error: o.current_error,
        new_error: o.new_error,
        oncall,
        rules,
    };
    Ok((o.status.unwrap_or(StatusCode::OK), render(&page)).into_response())
}

/// `GET /account`
pub async fn account(State(state): State<AppState>, headers: HeaderMap, page: Page) -> UiResult {
    account_page(
        &state,
        &page.session,
        &headers,
        page.ctx,
        Outcome::default(),
    )
    .await
}

/// `/account` with a calendar feed address just made (`crate::teams::ui::account_feed`).
pub async fn show_with_feed(
    state: &AppState,
    s: &Session,
    headers: &HeaderMap,
    ctx: PageCtx,
    url: String,
) -> UiResult {
    let o = Outcome {
        notice: Some("Calendar feed address made: copy it now, it is shown once.".into()),
        feed_url: Some(url),
        ..Outcome::default()
    };
    account_page(state, s, headers, ctx, o).await
}

/// The profile form.
#[derive(Deserialize)]
pub struct ProfileForm {
    csrf: String,
    name: String,
}

/// `POST /account/profile`
pub async fn save_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    page: Page,
    Form(f): Form<ProfileForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match validate_name(&f.name) {
        Ok(name) => {
            lookout_store::alerting::set_user_name(
                state.store(),
                page.session.user.id,
                Some(&name),
            )
            .await?;
            Outcome {
                notice: Some("Name saved.".into()),
                ..Outcome::default()
            }
        }
        Err(e) => Outcome {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            error: Some(e.to_string()),
            typed_name: Some(f.name),
            name_error: true,
            ..Outcome::default()
        },
    };
    account_page(&state, &page.session, &headers, page.ctx, outcome).await
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
}

/// `POST /account/password`: a wrong current password counts as a failed login.
pub async fn save_password(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    page: Page,
    Form(f): Form<PasswordForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let user = &page.session.user;
    let refuse = |status, error: String, current_error, new_error| Outcome {
        status: Some(status),
        error: Some(error),
        current_error,
        new_error,
        ..Outcome::default()
    };
    let outcome = if let Err(e) = validate_password(&f.new_password) {
        refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("New {e}"),
            false,
            true,
        )
    } else if let Err(wait_ms) = state
        .login_throttle()
        .begin_shared(&user.email, client, lookout_core::time::now_ms())
        .await
    {
        refuse(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many wrong passwords. Try again in {} seconds.",
                (wait_ms + 999) / 1000
            ),
            true,
            false,
        )
    } else if !identity::password_matches(state.store(), user.id, &f.current_password).await? {
        state
            .login_throttle()
            .failed_shared(&user.email, client, lookout_core::time::now_ms())
            .await;
        tracing::info!(
            user = user.id,
            "Password change refused: wrong current password."
        );
        refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The current password is wrong.".into(),
            true,
            false,
        )
    } else {
        state
            .login_throttle()
            .succeeded_shared(&user.email, client)
            .await;
        identity::change_password(
            state.store(),
            user.id,
            &f.new_password,
            cookie(&headers, SESSION_COOKIE),
        )
        .await?;
        tracing::info!(user = user.id, "Password changed; other sessions ended.");
        Outcome {
            notice: Some("Password changed. Your other sessions were signed out.".into()),
            ..Outcome::default()
        }
    };
    account_page(&state, &page.session, &headers, page.ctx, outcome).await
}

/// The sign-out-a-session form.
#[derive(Deserialize)]
pub struct SessionForm {
    csrf: String,
    id: String,
}

/// `POST /account/sessions/revoke`
pub async fn revoke_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    page: Page,
    Form(f): Form<SessionForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match identity::revoke_session(state.store(), page.session.user.id, &f.id).await {
        Ok(()) => Outcome {
            notice: Some("That session was signed out.".into()),
            ..Outcome::default()
        },
        Err(lookout_store::StoreError::NotFound) => Outcome {
            status: Some(StatusCode::NOT_FOUND),
            error: Some("No such session (it may have ended already).".into()),
            ..Outcome::default()
        },
        Err(e) => return Err(e.into()),
    };
    account_page(&state, &page.session, &headers, page.ctx, outcome).await
}

/// `POST /account/notification-rules`: the user's own rules per urgency.
pub async fn save_rules(
    State(state): State<AppState>,
    headers: HeaderMap,
    page: Page,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    check_csrf(&page.session, csrf)?;
    let panel = RulesPanel::parse(&pairs);
    let outcome = match panel.save(&state, page.session.user.id).await? {
        Ok(()) => Outcome {
            notice: Some("Notification rules saved.".into()),
            ..Outcome::default()
        },
        Err((typed, message)) => Outcome {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            error: Some(message),
            typed_rules: Some(typed),
            ..Outcome::default()
        },
    };
    account_page(&state, &page.session, &headers, page.ctx, outcome).await
}
