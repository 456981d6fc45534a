//! The Locations page (`/uptime/locations`, admin only, as the API is): every location with its
//! status, agents (version, last seen, results buffered and dropped), the monitors checked from
//! it and its lag; and the forms that create a location (its token shown once, with the
//! `lookout probe` command line to copy), change its description, rotate or revoke its token and
//! delete it. Each form calls the same service as `/api/v1/locations`.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::service::{self, LocationInput, LocationPatch};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Admin, Page, Signed};
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use lookout_store::locations as lstore;

/// One agent line.
pub struct AgentLine {
    agent_id: String,
    version: String,
    live: bool,
    last_seen: When,
    buffered: i64,
    dropped: i64,
}

/// One location as the page lists it.
pub struct LocationLine {
    id: i64,
    name: String,
    description: String,
    /// `online`, `offline`, `waiting` or `revoked`, as the API says.
    status: String,
    agents: Vec<AgentLine>,
    live_agents: usize,
    monitors: Vec<(i64, String)>,
    /// Since the newest result the location reported ("12 s"); none before the first.
    lag: Option<String>,
    /// Results its agents hold, not yet uploaded.
    buffered: i64,
    token_created: Option<When>,
    revoked: Option<When>,
    /// The refused form was this location's (its message and typed value show here).
    refused: bool,
}

/// A token just made: shown this once, with the command that starts an agent with it.
pub struct NewToken {
    name: String,
    token: String,
    command: String,
}

/// The create form and the description forms, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LocationForm {
    csrf: String,
    name: String,
    description: String,
    /// `describe`, `rotate`, `revoke` or `delete` (the per-location forms).
    action: String,
}

/// A refused form: the message, the field it names and, for a location's own form, which
/// location it was (so its typed description comes back in its own box).
#[derive(Debug, Clone, Default)]
struct Refusal {
    message: String,
    field: String,
    location: Option<i64>,
}

#[derive(Template)]
#[template(path = "locations.html")]
struct LocationsPage {
    title: String,
    ctx: PageCtx,
    locations: Vec<LocationLine>,
    form: LocationForm,
    refusal: Refusal,
    new_token: Option<NewToken>,
    notice: String,
}

async fn lines(state: &AppState) -> UiResult<Vec<LocationLine>> {
    let now = service::clock(state);
    let mut out = Vec::new();
    for row in lstore::list_locations(state.store()).await? {
        let agents = lstore::agents(state.store(), row.id).await?;
        let newest = agents.iter().map(|a| a.last_seen_at).max();
        let status = service::status(&row, newest, now);
        let lag = lstore::newest_result_at(state.store(), row.id)
            .await?
            .map(|at| fmt::span((now - at).max(0)));
        let agents: Vec<AgentLine> = agents
            .into_iter()
            .map(|a| AgentLine {
                live: now - a.last_seen_at <= service::AGENT_LIVE_MS,
                last_seen: When::at(a.last_seen_at),
                agent_id: a.agent_id,
                version: a.version,
                buffered: a.buffered,
                dropped: a.dropped,
            })
            .collect();
        out.push(LocationLine {
            id: row.id,
            status: status.into(),
            live_agents: agents.iter().filter(|a| a.live).count(),
            buffered: agents.iter().filter(|a| a.live).map(|a| a.buffered).sum(),
            agents,
            monitors: service::monitors_naming(state, &row.name).await?,
            lag,
            token_created: When::opt(row.token_created_at),
            revoked: When::opt(row.revoked_at),
            refused: false,
            name: row.name,
            description: row.description,
        });
    }
    Ok(out)
}

/// The page, with what a form left to show (a refusal with the typed values, a new token, a
/// notice). A refusal answers 422 (409 for a conflict), as the API does.
async fn page(
    state: &AppState,
    ctx: PageCtx,
    form: LocationForm,
    refusal: Refusal,
    new_token: Option<NewToken>,
    notice: String,
    status: StatusCode,
) -> UiResult {
    let mut locations = lines(state).await?;
    for l in &mut locations {
        l.refused = refusal.location == Some(l.id);
    }
    let mut r = render(&LocationsPage {
        title: "Locations".into(),
        ctx,
        locations,
        form,
        refusal,
        new_token,
        notice,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// The page showing a token just made (once), with empty forms.
async fn with_token(
    state: &AppState,
    ctx: PageCtx,
    new: NewToken,
    notice: String,
    status: StatusCode,
) -> UiResult {
    let mut r = page(
        state,
        ctx,
        LocationForm::default(),
        Refusal::default(),
        Some(new),
        notice,
        status,
    )
    .await?;
    // The page shows the token once: no cache (browser or proxy) may keep it.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// The field a service message names (`name: …`, `description: …`).
fn refusal_of(e: ServiceError, location: Option<i64>) -> UiResult<(Refusal, StatusCode)> {
    let (status, message) = match e {
        ServiceError::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
        ServiceError::Conflict(m) => (StatusCode::CONFLICT, m),
        e => return Err(e.into()),
    };
    let field = ["name", "description"]
        .into_iter()
        .find(|f| message.starts_with(&format!("{f}:")))
        .unwrap_or_default()
        .to_string();
    Ok((
        Refusal {
            message,
            field,
            location,
        },
        status,
    ))
}

impl NewToken {
    /// Location `name`'s new `token`, with the command that starts an agent with it. The token
    /// goes in the environment, not in argv, where any local user could read it (`ps`).
    fn new(state: &AppState, name: String, token: String) -> NewToken {
        let server = state.settings().public_url.trim_end_matches('/');
        NewToken {
            command: format!(
                "LOOKOUT_PROBE_TOKEN={token} lookout probe --server {server} --location {name}"
            ),
            name,
            token,
        }
    }
}

/// `GET /uptime/locations`.
pub async fn list(State(state): State<AppState>, Page { ctx, .. }: Page<Admin>) -> UiResult {
    page(
        &state,
        ctx,
        LocationForm::default(),
        Refusal::default(),
        None,
        String::new(),
        StatusCode::OK,
    )
    .await
}

/// `POST /uptime/locations`: creates a location and shows its token once.
pub async fn create(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Form(f): Form<LocationForm>,
) -> UiResult {
    check_csrf(&signed.session, &f.csrf)?;
    let input = LocationInput {
        name: f.name.clone(),
        description: f.description.clone(),
    };
    let ctx = signed.layout(&state).await?;
    match service::create(&state, &input).await {
        Ok((token, row)) => {
            let new = NewToken::new(&state, row.name, token);
            with_token(&state, ctx, new, String::new(), StatusCode::CREATED).await
        }
        Err(e) => {
            let (refusal, status) = refusal_of(e, None)?;
            page(&state, ctx, f, refusal, None, String::new(), status).await
        }
    }
}

/// `POST /uptime/locations/{id}`: one location's actions (`describe`, `rotate`, `revoke`,
/// `delete`).
pub async fn action(
    State(state): State<AppState>,
    signed: Signed<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<LocationForm>,
) -> UiResult<Response> {
    check_csrf(&signed.session, &f.csrf)?;
    let done = match f.action.as_str() {
        "describe" => service::update(
            &state,
            id,
            &LocationPatch {
                name: None,
                description: Some(f.description.clone()),
            },
        )
        .await
        .map(|_| None),
        "rotate" => match service::rotate(&state, id).await {
            Ok(token) => {
                let row = lstore::get_location(state.store(), id).await?;
                Ok(Some(NewToken::new(&state, row.name, token)))
            }
            Err(e) => Err(e),
        },
        "revoke" => service::revoke(&state, id).await.map(|_| None),
        "delete" => service::delete(&state, id).await.map(|_| None),
        other => {
            return Err(UiError::Refused(
                StatusCode::BAD_REQUEST,
                format!("No such action on a location: {other:?}."),
            ))
        }
    };
    match done {
        Ok(None) => Ok(Redirect::to("/uptime/locations").into_response()),
        Ok(Some(new)) => {
            let ctx = signed.layout(&state).await?;
            let notice = format!(
                "New token for {}: the old one no longer works; restart its agents with this one.",
                new.name
            );
            with_token(&state, ctx, new, notice, StatusCode::OK).await
        }
        Err(ServiceError::NotFound(_)) => Err(UiError::NotFound),
        Err(e) => {
            let (refusal, status) = refusal_of(e, Some(id))?;
            let ctx = signed.layout(&state).await?;
            page(&state, ctx, f, refusal, None, String::new(), status).await
        }
    }
}
