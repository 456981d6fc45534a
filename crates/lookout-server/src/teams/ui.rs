//! `/settings/teams`: every team with its members and the escalation policy that pages it;
//! admins create, rename, link, fill and delete teams here (the same service as the API). Also
//! the on-call part of `/account`: my teams, my next shifts and the calendar feed address.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::service;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Admin, Page, Signed, Viewer};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{teams, tenancy, Cursor, StoreError};

struct TeamLine {
    team: teams::Team,
    members: Vec<teams::Member>,
    escalation: Option<String>,
    /// Who is on call for the team now.
    on_call: Vec<service::OnCallNow>,
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    title: String,
    ctx: PageCtx,
    teams: Vec<TeamLine>,
    /// `(id, email)` of every user, for the add-member pickers.
    users: Vec<(i64, String)>,
    /// `(id, name)` of every escalation policy.
    escalations: Vec<(i64, String)>,
    is_admin: bool,
    notice: Option<String>,
    error: Option<String>,
    /// The create form as typed, and which field was wrong (`name` or `slug`).
    typed_name: String,
    typed_slug: String,
    wrong: &'static str,
}

#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    error: Option<String>,
    typed_name: String,
    typed_slug: String,
    wrong: &'static str,
}

async fn teams_page(state: &AppState, ctx: PageCtx, is_admin: bool, o: Outcome) -> UiResult {
    let org = tenancy::default_org(state.store()).await?;
    let escalations: Vec<(i64, String)> =
        astore::spec_list(state.store(), SpecTable::EscalationPolicies, org.id)
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
    let mut lines = Vec::new();
    let now = now_ms();
    let specs = service::OnCallSpecs::load(state).await?;
    for t in teams::all(state.store(), org.id).await? {
        let on_call = service::on_call_now_in(state, &specs, &t, now).await?;
        let members = teams::members(state.store(), t.id).await?;
        let escalation = t.escalation_policy_id.map(|id| {
            escalations
                .iter()
                .find(|e| e.0 == id)
                .map_or_else(|| format!("policy {id}"), |e| e.1.clone())
        });
        lines.push(TeamLine {
            team: t,
            members,
            escalation,
            on_call,
        });
    }
    let users = if is_admin {
        tenancy::list_users(
            state.store(),
            &Cursor {
                after: None,
                limit: Some(1000),
            },
        )
        .await?
        .items
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect()
    } else {
        Vec::new()
    };
    let html = render(&TeamsPage {
        title: "Teams".into(),
        ctx,
        teams: lines,
        users,
        escalations,
        is_admin,
        notice: o.notice,
        error: o.error,
        typed_name: o.typed_name,
        typed_slug: o.typed_slug,
        wrong: o.wrong,
    });
    Ok((o.status.unwrap_or(StatusCode::OK), html).into_response())
}

/// `GET /settings/teams`
pub async fn page(State(state): State<AppState>, p: Page<Viewer>) -> UiResult {
    let admin = p.session.user.role >= Role::Admin;
    teams_page(&state, p.ctx, admin, Outcome::default()).await
}

/// The create form.
#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
}

/// `POST /settings/teams`
pub async fn create(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Form(f): Form<CreateForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    let slug = f.slug.trim();
    match service::create(&state, &f.name, (!slug.is_empty()).then_some(slug), None).await {
        Ok(t) => Ok(Redirect::to(&format!("/settings/teams#team-{}", t.id)).into_response()),
        Err(e @ (ServiceError::Invalid(_) | ServiceError::Conflict(_))) => {
            let msg = e.to_string();
            tracing::info!(error = %msg, "Team form refused.");
            let wrong = if msg.starts_with("name") {
                "name"
            } else {
                "slug"
            };
            let ctx = signed.layout(&state).await?;
            teams_page(
                &state,
                ctx,
                true,
                Outcome {
                    status: Some(StatusCode::UNPROCESSABLE_ENTITY),
                    error: Some(msg),
                    typed_name: f.name,
                    typed_slug: f.slug,
                    wrong,
                    ..Outcome::default()
                },
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// A form that carries only the CSRF token and, for some, one field.
#[derive(Deserialize)]
pub struct SmallForm {
    csrf: String,
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    escalation_policy_id: String,
}

fn refused(msg: &str) -> UiError {
    UiError::Refused(StatusCode::UNPROCESSABLE_ENTITY, msg.into())
}

fn gone(e: StoreError) -> UiError {
    match e {
        StoreError::NotFound => UiError::Refused(
            StatusCode::NOT_FOUND,
            "That team or user does not exist (any more).".into(),
        ),
        e => e.into(),
    }
}

/// `POST /settings/teams/{id}/members`
pub async fn add_member(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    let uid: i64 = f
        .user_id
        .parse()
        .map_err(|_| refused("user: choose a user to add"))?;
    teams::add_member(state.store(), id, uid)
        .await
        .map_err(gone)?;
    Ok(Redirect::to(&format!("/settings/teams#team-{id}")).into_response())
}

/// `POST /settings/teams/{id}/members/{user_id}/remove`
pub async fn remove_member(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path((id, uid)): Path<(i64, i64)>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    teams::remove_member(state.store(), id, uid)
        .await
        .map_err(gone)?;
    Ok(Redirect::to(&format!("/settings/teams#team-{id}")).into_response())
}

/// `POST /settings/teams/{id}/escalation`
pub async fn set_escalation(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    let ep = match f.escalation_policy_id.trim() {
        "" => None,
        s => Some(
            s.parse::<i64>()
                .map_err(|_| refused("escalation_policy_id: choose a policy"))?,
        ),
    };
    service::check_escalation(&state, ep)
        .await
        .map_err(|e| refused(&e.to_string()))?;
    teams::update(
        state.store(),
        id,
        &teams::TeamChanges {
            escalation_policy_id: Some(ep),
            ..Default::default()
        },
    )
    .await
    .map_err(gone)?;
    Ok(Redirect::to(&format!("/settings/teams#team-{id}")).into_response())
}

/// `POST /settings/teams/{id}/delete`
pub async fn delete(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    teams::delete(state.store(), id).await.map_err(gone)?;
    Ok(Redirect::to("/settings/teams").into_response())
}

/// The on-call part of `/account`.
pub struct AccountOnCall {
    /// `(slug, name)` of my teams.
    pub teams: Vec<(String, String)>,
    /// `(schedule, start, end)` of my shifts in the next 14 days.
    pub shifts: Vec<(String, When, When)>,
    /// When my calendar feed token was made, if I have one.
    pub feed_since: Option<When>,
    /// A feed address just made (shown once).
    pub feed_url: Option<String>,
}

/// Loads the on-call part of `/account` for a user.
pub async fn account_oncall(
    state: &AppState,
    user_id: i64,
    feed_url: Option<String>,
) -> Result<AccountOnCall, UiError> {
    let teams = teams::of_user(state.store(), user_id)
        .await?
        .into_iter()
        .map(|t| (t.slug, t.name))
        .collect();
    let now = now_ms();
    let shifts = service::shifts_of(state, user_id, now, now + 14 * 86_400_000)
        .await
        .map_err(|e| UiError::Internal(e.to_string()))?
        .into_iter()
        .take(50)
        .map(|s| (s.schedule, When::at(s.start), When::at(s.end)))
        .collect();
    Ok(AccountOnCall {
        teams,
        shifts,
        feed_since: When::opt(teams::feed_token_created(state.store(), user_id).await?),
        feed_url,
    })
}

/// `POST /account/calendar-feed`: makes (or replaces) my feed address and shows it once.
pub async fn account_feed(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    page: Page<Viewer>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let token = teams::rotate_feed_token(state.store(), page.session.user.id).await?;
    let url = super::api::feed_url(&state, &token);
    let mut page =
        crate::tenancy::ui::account::show_with_feed(&state, &page.session, &headers, page.ctx, url)
            .await?;
    // The page shows the feed's token once: no cache (browser or proxy) may keep it.
    page.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(page)
}

/// `POST /account/calendar-feed/revoke`
pub async fn account_feed_revoke(
    State(state): State<AppState>,
    signed: Signed<Viewer>,
    Form(f): Form<SmallForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    teams::revoke_feed_token(state.store(), signed.session.user.id).await?;
    Ok(Redirect::to("/account#oncall").into_response())
}
