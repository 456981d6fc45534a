//! Settings: projects, API tokens and users, each a form on one page.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::api::ProjectView;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Admin, Member, Page};
use crate::ui::fmt::When;
use lookout_core::Role;
use lookout_store::tenancy::{self, Session};
use lookout_store::{Cursor, StoreError};

use super::session::CsrfForm;
use crate::ui::layout::{render, PageCtx};

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    title: String,
    ctx: PageCtx,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    projects: Vec<ProjectView>,
    snippets: Vec<(String, crate::errors::ui::Snippets)>,
    tokens: Vec<TokenLine>,
    users: Vec<UserLine>,
    roles: Vec<&'static str>,
    can_edit: bool,
    is_admin: bool,
    version: &'static str,
    storage: &'static str,
    data_location: String,
    schema_version: i64,
    public_url: String,
}

/// A token as the page lists it.
struct TokenLine {
    id: i64,
    name: String,
    role: Role,
    created: When,
    used: Option<When>,
}

/// A user as the page lists them.
struct UserLine {
    email: String,
    role: Role,
    created: When,
}

/// What a settings form did, shown above the page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
}

async fn settings_page(state: &AppState, s: &Session, ctx: PageCtx, outcome: Outcome) -> UiResult {
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
    let (projects, tokens, users, schema_version) = loaded?;
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
                        crate::errors::ui::snippets(&state.settings().dsn(k, p.id)),
                    )
                })
            })
            .collect(),
        projects: projects
            .into_iter()
            .map(|p| ProjectView::new(p, state.settings()))
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenLine {
                id: t.id,
                name: t.name,
                role: t.role,
                created: When::at(t.created_at),
                used: When::opt(t.last_used_at),
            })
            .collect(),
        users: users
            .into_iter()
            .map(|u| UserLine {
                email: u.email,
                role: u.role,
                created: When::at(u.created_at),
            })
            .collect(),
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
    Ok((outcome.status.unwrap_or(StatusCode::OK), render(&page)).into_response())
}

/// `GET /settings`
pub async fn settings(State(state): State<AppState>, page: Page) -> UiResult {
    settings_page(&state, &page.session, page.ctx, Outcome::default()).await
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
    page: Page<Member>,
    Form(f): Form<ProjectForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = {
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
            let org = tenancy::default_org(state.store()).await?;
            match tenancy::create_project(state.store(), org.id, name, Some(&slug), platform).await
            {
                Ok(p) => Outcome {
                    notice: Some(format!("Project {} created.", p.name)),
                    ..Outcome::default()
                },
                Err(StoreError::Conflict(_)) => failed(
                    StatusCode::CONFLICT,
                    format!("A project with the slug {slug} exists already."),
                ),
                Err(e) => return Err(e.into()),
            }
        }
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
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
    Page {
        session: s, ctx, ..
    }: Page,
    Form(f): Form<TokenForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
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
            Err(e) => return Err(e.into()),
        }
    };
    settings_page(&state, &s, ctx, outcome).await
}

/// `POST /settings/tokens/{id}/revoke`
pub async fn settings_revoke_token(
    State(state): State<AppState>,
    Page {
        session: s, ctx, ..
    }: Page,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
    let outcome = match tenancy::get_token(state.store(), id).await {
        Ok(t) if s.user.role == Role::Admin || t.user_id == Some(s.user.id) => {
            match tenancy::revoke_token(state.store(), id).await {
                Ok(()) => Outcome {
                    notice: Some(format!("Token {} revoked.", t.name)),
                    ..Outcome::default()
                },
                Err(e) => return Err(e.into()),
            }
        }
        Ok(_) | Err(StoreError::NotFound) => failed(StatusCode::NOT_FOUND, "No such token."),
        Err(e) => return Err(e.into()),
    };
    settings_page(&state, &s, ctx, outcome).await
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
    page: Page<Admin>,
    Form(f): Form<UserForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = if let Err(e) = crate::tenancy::service::validate_new_user(&f.email, &f.password)
    {
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
            Err(e) => return Err(e.into()),
        }
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}
