//! `/settings/sso` and `GET /api/v1/settings/sso`: the effective `[oidc]` settings for admins,
//! read-only (the config file stays the source of truth, and the secret can come from the
//! environment), with the client secret masked, the redirect URI to register at the provider,
//! and a "Test discovery" action that fetches the issuer's discovery document and keys afresh
//! through the sign-in's own bounded client (10 s, 1 MiB, no redirects).

use askama::Template;
use axum::extract::{Form, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Sso;
use crate::auth::Admin as ApiAdmin;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Admin, Page, Signed};
use crate::ui::layout::{render, PageCtx};

/// What a secret is shown as.
const MASK: &str = "********";

/// The effective single sign-on settings, as admins see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoSettings {
    /// Whether an `[oidc]` section (or `LOOKOUT_OIDC_*`) configures single sign-on.
    pub enabled: bool,
    /// The provider's issuer URL.
    pub issuer: Option<String>,
    /// The client id registered at the provider.
    pub client_id: Option<String>,
    /// `********` when a secret is set (it is never shown).
    pub client_secret: Option<String>,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    /// The post-logout redirect URI to register (RP-initiated logout).
    pub post_logout_redirect_uri: String,
    /// The claim that lists the user's groups.
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// Email domains allowed to sign in (empty: any).
    pub allowed_domains: Vec<String>,
    /// Password sign-in refused except for the break-glass account.
    pub sso_only: bool,
    /// The break-glass account.
    pub break_glass_email: Option<String>,
    /// Groups whose members are admins.
    pub admin_groups: Vec<String>,
    /// Groups whose members are members.
    pub member_groups: Vec<String>,
    /// `[oidc.teams]`: team slug and the groups that put users in it.
    pub teams: Vec<TeamRule>,
}

/// One `[oidc.teams]` rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamRule {
    /// The team's slug.
    pub team: String,
    /// The groups whose members belong to it.
    pub groups: Vec<String>,
}

/// What "Test discovery" found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiscoveryResult {
    /// Whether the discovery document and the keys were fetched and parsed.
    pub ok: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// The issuer the document names.
    pub issuer: Option<String>,
    /// Where browsers are sent to sign in.
    pub authorization_endpoint: Option<String>,
    /// Where codes are exchanged.
    pub token_endpoint: Option<String>,
    /// The provider's keys.
    pub jwks_uri: Option<String>,
    /// How many keys the key set holds.
    pub keys: Option<usize>,
    /// RP-initiated logout, when offered.
    pub end_session_endpoint: Option<String>,
}

/// The settings of `sso` (or of no single sign-on) for a server at `public_url`.
pub fn settings_of(sso: Option<&Sso>, public_url: &str) -> SsoSettings {
    let base = public_url.trim_end_matches('/');
    let c = sso.map(Sso::config);
    SsoSettings {
        enabled: c.is_some(),
        issuer: c.map(|c| c.issuer.clone()),
        client_id: c.map(|c| c.client_id.clone()),
        client_secret: c.map(|c| {
            if c.client_secret.is_empty() {
                String::new()
            } else {
                MASK.to_string()
            }
        }),
        redirect_uri: format!("{base}/auth/oidc/callback"),
        post_logout_redirect_uri: format!("{base}/login"),
        groups_claim: c.map(|c| c.groups_claim.clone()),
        scopes: c.map(|c| c.scopes.clone()).unwrap_or_default(),
        allowed_domains: c.map(|c| c.allowed_domains.clone()).unwrap_or_default(),
        sso_only: c.is_some_and(|c| c.sso_only),
        break_glass_email: c.and_then(|c| c.break_glass.clone()),
        admin_groups: c.map(|c| c.admin_groups.clone()).unwrap_or_default(),
        member_groups: c.map(|c| c.member_groups.clone()).unwrap_or_default(),
        teams: c
            .map(|c| {
                c.team_groups
                    .iter()
                    .map(|(team, groups)| TeamRule {
                        team: team.clone(),
                        groups: groups.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Fetches the issuer's discovery document and keys now (not from the cache).
pub async fn test_discovery(sso: Option<&Sso>) -> DiscoveryResult {
    let empty = DiscoveryResult {
        ok: false,
        error: None,
        issuer: None,
        authorization_endpoint: None,
        token_endpoint: None,
        jwks_uri: None,
        keys: None,
        end_session_endpoint: None,
    };
    let Some(sso) = sso else {
        return DiscoveryResult {
            error: Some("single sign-on is not configured ([oidc] in the config file)".into()),
            ..empty
        };
    };
    match sso.metadata(true).await {
        Ok(meta) => {
            tracing::info!(issuer = %sso.config().issuer, "SSO discovery tested: it answers.");
            DiscoveryResult {
                ok: true,
                issuer: Some(meta.issuer().to_string()),
                authorization_endpoint: Some(meta.authorization_endpoint().to_string()),
                token_endpoint: meta.token_endpoint().map(ToString::to_string),
                jwks_uri: Some(meta.jwks_uri().to_string()),
                keys: Some(meta.jwks().keys().len()),
                end_session_endpoint: meta
                    .additional_metadata()
                    .end_session_endpoint
                    .as_ref()
                    .map(ToString::to_string),
                ..empty
            }
        }
        Err(e) => {
            tracing::warn!(issuer = %sso.config().issuer, error = %e, "SSO discovery tested: it failed.");
            DiscoveryResult {
                error: Some(e),
                ..empty
            }
        }
    }
}

/// The effective single sign-on settings (secret masked).
#[utoipa::path(get, path = "/api/v1/settings/sso", tag = "users",
    responses((status = 200, body = SsoSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn api_get(
    State(state): State<AppState>,
    _who: ApiAdmin,
) -> ApiResult<Json<SsoSettings>> {
    Ok(Json(settings_of(state.sso(), &state.settings().public_url)))
}

/// Fetches the issuer's discovery document and keys now; `ok` false with the reason when it
/// fails (the answer is 200 either way: the test ran).
#[utoipa::path(post, path = "/api/v1/settings/sso/test", tag = "users",
    responses((status = 200, body = DiscoveryResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn api_test(
    State(state): State<AppState>,
    _who: ApiAdmin,
) -> ApiResult<Json<DiscoveryResult>> {
    Ok(Json(test_discovery(state.sso()).await))
}

#[derive(Template)]
#[template(path = "sso_settings.html")]
struct SsoPage {
    title: String,
    ctx: PageCtx,
    s: SsoSettings,
    test: Option<DiscoveryResult>,
}

fn page(state: &AppState, ctx: PageCtx, test: Option<DiscoveryResult>) -> Response {
    render(&SsoPage {
        title: "Single sign-on".into(),
        ctx,
        s: settings_of(state.sso(), &state.settings().public_url),
        test,
    })
}

/// `GET /settings/sso` (admin).
pub async fn show(State(state): State<AppState>, p: Page<Admin>) -> UiResult {
    Ok(page(&state, p.ctx, None))
}

/// The "Test discovery" form.
#[derive(Debug, Deserialize)]
pub struct TestForm {
    csrf: String,
}

/// `POST /settings/sso/test` (admin).
pub async fn test(
    State(state): State<AppState>,
    form: Signed<Admin>,
    Form(f): Form<TestForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let result = test_discovery(state.sso()).await;
    Ok(page(&state, form.layout(&state).await?, Some(result)))
}
