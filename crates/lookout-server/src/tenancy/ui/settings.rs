//! Settings: projects, API tokens and users, each a form on one page.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::api::ProjectView;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::teams::owned_ui::{team_field, TeamField, TeamLists, TeamQuery};
use crate::teams::ownership::team_of_form;
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
    /// Team names for the projects' Team column, and the "My teams" filter.
    owners: TeamLists,
    /// The new-project form's team select.
    team_field: TeamField,
    snippets: Vec<(String, crate::errors::ui::Snippets)>,
    tokens: Vec<TokenLine>,
    users: Vec<UserLine>,
    invitations: Vec<InvitationLine>,
    new_invite: Option<NewInvite>,
    require_totp: bool,
    mail: MailForm,
    mail_error: bool,
    typed_user: Option<UserFormValues>,
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
    id: i64,
    totp_required: bool,
    totp_on: bool,
    email: String,
    name: String,
    role: Role,
    invited: bool,
    created: When,
}

/// A pending invitation as the page lists it.
struct InvitationLine {
    user_id: i64,
    email: String,
    role: Role,
    sent: When,
    expires: When,
    expired: bool,
}

/// An invitation link just made, shown once to the admin.
struct NewInvite {
    email: String,
    url: String,
    emailed: bool,
    mail_error: Option<String>,
}

/// The new-user form as typed, kept when it was refused.
#[derive(Default)]
struct UserFormValues {
    email: String,
    name: String,
    role: String,
}

/// The account-mail form's values (the password never shown).
#[derive(Default)]
struct MailForm {
    smtp_host: String,
    smtp_port: String,
    security: String,
    username: String,
    has_password: bool,
    from: String,
}

/// What a settings form did, shown above the page.
#[derive(Default)]
struct Outcome {
    status: Option<StatusCode>,
    notice: Option<String>,
    error: Option<String>,
    new_token: Option<String>,
    new_invite: Option<NewInvite>,
    typed_user: Option<UserFormValues>,
    typed_mail: Option<MailForm>,
}

async fn settings_page(state: &AppState, s: &Session, ctx: PageCtx, outcome: Outcome) -> UiResult {
    settings_page_for(state, s, ctx, outcome, &TeamQuery::default()).await
}

async fn settings_page_for(
    state: &AppState,
    s: &Session,
    ctx: PageCtx,
    outcome: Outcome,
    q: &TeamQuery,
) -> UiResult {
    let owners = TeamLists::load(state, s.user.id, q).await?;
    let team_field = team_field(state, "", false).await?;
    let all = Cursor {
        after: None,
        limit: Some(1000),
    };
    let is_admin = s.user.role == Role::Admin;
    let loaded: Result<_, StoreError> = async {
        let projects: Vec<_> = tenancy::list_projects(state.store(), &all)
            .await?
            .items
            .into_iter()
            .filter(|p| owners.keeps(p.team_id))
            .collect();
        let owner = if is_admin { None } else { Some(s.user.id) };
        let tokens = tenancy::list_tokens(state.store(), owner, &all)
            .await?
            .items;
        let users = if is_admin {
            tenancy::list_users(state.store(), &all).await?.items
        } else {
            Vec::new()
        };
        let flags = if is_admin {
            lookout_store::mfa::user_flags(state.store()).await?
        } else {
            Default::default()
        };
        let invitations = if is_admin {
            lookout_store::identity::pending_invitations(state.store()).await?
        } else {
            Vec::new()
        };
        let schema_version = state.store().schema_version().await?;
        Ok((projects, tokens, users, flags, invitations, schema_version))
    }
    .await;
    let (projects, tokens, users, (totp_required, totp_on), invitations, schema_version) = loaded?;
    let require_totp = is_admin && crate::tenancy::totp::security(state).await?.require_totp;
    let mail_error = outcome.typed_mail.is_some();
    let mail = match outcome.typed_mail {
        Some(m) => m,
        None if is_admin => match crate::tenancy::links::mail_settings(state).await? {
            Some(m) => MailForm {
                smtp_host: m.smtp_host,
                smtp_port: m.smtp_port.map(|p| p.to_string()).unwrap_or_default(),
                security: m.security.unwrap_or_else(|| "starttls".into()),
                username: m.username.unwrap_or_default(),
                has_password: m.password.is_some(),
                from: m.from,
            },
            None => MailForm::default(),
        },
        None => MailForm::default(),
    };
    let now = lookout_core::time::now_ms();
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
        owners,
        team_field,
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
                id: u.id,
                totp_required: totp_required.contains(&u.id),
                totp_on: totp_on.contains(&u.id),
                invited: u.invited,
                email: u.email,
                name: u.name.unwrap_or_default(),
                role: u.role,
                created: When::at(u.created_at),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| InvitationLine {
                user_id: i.user.id,
                email: i.user.email,
                role: i.user.role,
                sent: When::at(i.sent_at),
                expires: When::at(i.expires_at),
                expired: i.expires_at <= now,
            })
            .collect(),
        new_invite: outcome.new_invite,
        require_totp,
        mail,
        mail_error,
        typed_user: outcome.typed_user,
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
pub async fn settings(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<TeamQuery>,
) -> UiResult {
    settings_page_for(&state, &page.session, page.ctx, Outcome::default(), &q).await
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
    /// The owning team's id, or empty.
    #[serde(default)]
    team: String,
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
            let team = match team_of_form(&state, Some(&f.team)).await {
                Ok(t) => t,
                Err(ServiceError::Invalid(m)) => {
                    let o = failed(StatusCode::UNPROCESSABLE_ENTITY, m);
                    return settings_page(&state, &page.session, page.ctx, o).await;
                }
                Err(e) => return Err(e.into()),
            };
            match tenancy::create_project_owned(
                state.store(),
                org.id,
                name,
                Some(&slug),
                platform,
                team,
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

/// The new-user form: without a password the user is invited.
#[derive(Deserialize)]
pub struct UserForm {
    csrf: String,
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    role: Role,
}

/// `POST /settings/users` (admin): with a password, an active user; without, an invitation
/// (emailed when account mail is set up, and shown once here).
pub async fn settings_create_user(
    State(state): State<AppState>,
    page: Page<Admin>,
    Form(f): Form<UserForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let typed = || UserFormValues {
        email: f.email.clone(),
        name: f.name.clone(),
        role: f.role.as_str().to_string(),
    };
    let refused = |status, e: String| Outcome {
        typed_user: Some(typed()),
        ..failed(status, e)
    };
    let name = match f.name.trim() {
        "" => None,
        n => match crate::tenancy::links::validate_name(n) {
            Ok(n) => Some(n),
            Err(e) => {
                let o = refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
                return settings_page(&state, &page.session, page.ctx, o).await;
            }
        },
    };
    let outcome = if f.password.is_empty() {
        if let Err(e) = crate::tenancy::service::validate_email(&f.email) {
            refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        } else {
            match crate::tenancy::links::invite(
                &state,
                &f.email,
                name.as_deref(),
                f.role,
                Some(page.session.user.id),
            )
            .await
            {
                Ok((u, sent)) => Outcome {
                    notice: Some(format!("{} invited.", u.email)),
                    new_invite: Some(NewInvite {
                        email: u.email,
                        url: sent.url,
                        emailed: sent.emailed,
                        mail_error: sent.mail_error,
                    }),
                    ..Outcome::default()
                },
                Err(crate::service::ServiceError::Conflict(_)) => refused(
                    StatusCode::CONFLICT,
                    "A user with this email exists already.".into(),
                ),
                Err(e) => return Err(e.into()),
            }
        }
    } else if let Err(e) = crate::tenancy::service::validate_new_user(&f.email, &f.password) {
        refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    } else {
        match tenancy::create_user(state.store(), &f.email, &f.password, f.role).await {
            Ok(u) => {
                if let Some(n) = &name {
                    lookout_store::alerting::set_user_name(state.store(), u.id, Some(n)).await?;
                }
                Outcome {
                    notice: Some(format!("User {} created.", u.email)),
                    ..Outcome::default()
                }
            }
            Err(StoreError::Conflict(_)) => refused(
                StatusCode::CONFLICT,
                "A user with this email exists already.".into(),
            ),
            Err(e) => return Err(e.into()),
        }
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// `POST /settings/invitations/{id}/resend` (admin): a new link; the old one stops working.
pub async fn settings_resend_invitation(
    State(state): State<AppState>,
    page: Page<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match crate::tenancy::links::resend(&state, id, Some(page.session.user.id)).await
    {
        Ok(sent) => {
            let email = lookout_store::tenancy::get_user(state.store(), id)
                .await?
                .email;
            Outcome {
                notice: Some(format!("Invitation to {email} sent again.")),
                new_invite: Some(NewInvite {
                    email,
                    url: sent.url,
                    emailed: sent.emailed,
                    mail_error: sent.mail_error,
                }),
                ..Outcome::default()
            }
        }
        Err(crate::service::ServiceError::NotFound(_)) => {
            failed(StatusCode::NOT_FOUND, "No such pending invitation.")
        }
        Err(e) => return Err(e.into()),
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// `POST /settings/invitations/{id}/revoke` (admin): withdraws it; the link stops working.
pub async fn settings_revoke_invitation(
    State(state): State<AppState>,
    page: Page<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match crate::tenancy::links::revoke(&state, id).await {
        Ok(()) => Outcome {
            notice: Some("Invitation withdrawn.".into()),
            ..Outcome::default()
        },
        Err(crate::service::ServiceError::NotFound(_)) => {
            failed(StatusCode::NOT_FOUND, "No such pending invitation.")
        }
        Err(e) => return Err(e.into()),
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// The account-mail form.
#[derive(Deserialize)]
pub struct MailSettingsForm {
    csrf: String,
    smtp_host: String,
    #[serde(default)]
    smtp_port: String,
    #[serde(default)]
    security: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    from: String,
}

/// `POST /settings/mail` (admin): the SMTP server invitations and resets are sent through. An
/// empty password field keeps the stored one.
pub async fn settings_mail(
    State(state): State<AppState>,
    page: Page<Admin>,
    Form(f): Form<MailSettingsForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let typed = || MailForm {
        smtp_host: f.smtp_host.clone(),
        smtp_port: f.smtp_port.clone(),
        security: f.security.clone(),
        username: f.username.clone(),
        has_password: false,
        from: f.from.clone(),
    };
    let port = match f.smtp_port.trim() {
        "" => Ok(None),
        p => p.parse::<u16>().map(Some).map_err(|_| ()),
    };
    let outcome = match port {
        Err(()) => Outcome {
            typed_mail: Some(typed()),
            ..failed(
                StatusCode::UNPROCESSABLE_ENTITY,
                "smtp_port must be a port number (1-65535)",
            )
        },
        Ok(smtp_port) => {
            let settings = crate::tenancy::links::MailSettings {
                smtp_host: f.smtp_host.clone(),
                smtp_port,
                security: Some(f.security.clone()).filter(|s| !s.is_empty()),
                username: Some(f.username.clone()),
                password: Some(if f.password.is_empty() {
                    crate::tenancy::links::REDACTED.to_string()
                } else {
                    f.password.clone()
                }),
                from: f.from.clone(),
            };
            match crate::tenancy::links::save_mail_settings(&state, settings).await {
                Ok(()) => {
                    tracing::info!("Account mail settings changed.");
                    Outcome {
                        notice: Some("Account email settings saved.".into()),
                        ..Outcome::default()
                    }
                }
                Err(crate::service::ServiceError::Invalid(m)) => Outcome {
                    typed_mail: Some(typed()),
                    ..failed(StatusCode::UNPROCESSABLE_ENTITY, m)
                },
                Err(e) => return Err(e.into()),
            }
        }
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// The sign-in rules form (a checkbox: present when ticked).
#[derive(Deserialize)]
pub struct SecurityForm {
    csrf: String,
    require_totp: Option<String>,
}

/// `POST /settings/security` (admin): require two-factor sign-in of everyone, or not.
pub async fn settings_security(
    State(state): State<AppState>,
    page: Page<Admin>,
    Form(f): Form<SecurityForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let rules = crate::tenancy::totp::SecuritySettings {
        require_totp: f.require_totp.is_some(),
    };
    crate::tenancy::totp::save_security(&state, &rules).await?;
    tracing::info!(require_totp = rules.require_totp, "Sign-in rules changed.");
    let outcome = Outcome {
        notice: Some(if rules.require_totp {
            "Two-factor sign-in is now required of everyone; users without it set it up at their next sign-in.".into()
        } else {
            "Two-factor sign-in is no longer required of everyone.".into()
        }),
        ..Outcome::default()
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// The per-user requirement form.
#[derive(Deserialize)]
pub struct UserTotpForm {
    csrf: String,
    required: bool,
}

/// `POST /settings/users/{id}/totp-required` (admin)
pub async fn settings_user_totp(
    State(state): State<AppState>,
    page: Page<Admin>,
    Path(id): Path<i64>,
    Form(f): Form<UserTotpForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match lookout_store::mfa::set_required(state.store(), id, f.required).await {
        Ok(()) => {
            tracing::info!(
                user = id,
                required = f.required,
                "Two-factor requirement changed."
            );
            Outcome {
                notice: Some(if f.required {
                    "Two-factor sign-in is now required of that user.".into()
                } else {
                    "Two-factor sign-in is no longer required of that user.".into()
                }),
                ..Outcome::default()
            }
        }
        Err(StoreError::NotFound) => failed(StatusCode::NOT_FOUND, "No such user."),
        Err(e) => return Err(e.into()),
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}

/// `POST /settings/projects/{id}/team`: sets or clears the team that owns a project.
pub async fn settings_project_team(
    State(state): State<AppState>,
    page: Page<Member>,
    Path(id): Path<i64>,
    Form(f): Form<crate::teams::owned_ui::TeamForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let outcome = match team_of_form(&state, Some(&f.team)).await {
        Ok(team) => {
            let changes = tenancy::ProjectChanges {
                team_id: Some(team),
                ..Default::default()
            };
            let p = tenancy::update_project(state.store(), id, &changes).await?;
            tracing::info!(project = id, team = ?team, "Project owner changed from the UI.");
            Outcome {
                notice: Some(format!("Owning team of {} saved.", p.name)),
                ..Outcome::default()
            }
        }
        Err(ServiceError::Invalid(m)) => failed(StatusCode::UNPROCESSABLE_ENTITY, m),
        Err(e) => return Err(e.into()),
    };
    settings_page(&state, &page.session, page.ctx, outcome).await
}
