//! The two legs of an OpenID Connect sign-in, and the provider's sign-out.
//!
//! `GET /auth/oidc/login` sends the browser to the provider with a fresh state, nonce and PKCE
//! challenge; the state's hash, the nonce and the verifier are kept in the database and the state
//! in a cookie of this browser. `GET /auth/oidc/callback` takes that row (once: a replayed state
//! finds nothing), checks the state against the cookie (a sign-in started in another browser is
//! refused), exchanges the code, verifies the ID token (signature against the provider's keys,
//! `iss`, `aud`, `exp` with a minute of clock skew, `nonce`) and signs the user in. Every
//! refusal is a page that says what went wrong, a log line, and nothing created.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use openidconnect::core::CoreResponseType;
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, CsrfToken, LogoutRequest, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, PostLogoutRedirectUrl, Scope, TokenResponse as _,
};
use serde::Deserialize;

use super::{accepted_algorithms, describe, groups_claimed, Sso};
use crate::auth::{cookie, set_cookie, ClientAddr};
use crate::state::AppState;
use crate::ui::{safe_next, simple_page};
use lookout_core::secret::{hash_token, secrets_equal};
use lookout_store::sso::{self, Grants, PendingLogin, ProviderAccount};
use lookout_store::StoreError;

/// The cookie that ties a sign-in to the browser that started it.
const SSO_COOKIE: &str = "lookout_sso";
/// How long a sign-in may take at the provider.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Clock difference allowed between Lookout and the provider on `exp`.
const CLOCK_SKEW_S: i64 = 60;

/// A refusal page, logged with its reason (never with tokens or codes).
fn refuse(status: StatusCode, title: &str, text: &str) -> Response {
    tracing::info!(
        status = status.as_u16(),
        reason = text,
        "Single sign-on refused."
    );
    (status, Html(simple_page(title, text))).into_response()
}

fn not_configured() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "Single sign-on is off",
        "This server has no OpenID Connect provider configured.",
    )
}

fn unreachable(why: &str) -> Response {
    tracing::warn!(error = why, "The OpenID provider could not be used.");
    refuse(
        StatusCode::BAD_GATEWAY,
        "The identity provider could not be reached",
        "Lookout could not talk to the single sign-on provider. Try again in a minute, or ask \
         an administrator to check the server's log.",
    )
}

/// `?next=/path`
#[derive(Deserialize)]
pub struct LoginParams {
    next: Option<String>,
}

/// `GET /auth/oidc/login`: to the provider.
pub async fn login(State(state): State<AppState>, Query(q): Query<LoginParams>) -> Response {
    let Some(sso) = state.sso() else {
        return not_configured();
    };
    let client = match sso.metadata(false).await.and_then(|m| sso.client(m)) {
        Ok(c) => c,
        Err(e) => return unreachable(&e),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in &sso.config().scopes {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = request.url();
    let pending = PendingLogin {
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
        next: safe_next(q.next.as_deref().unwrap_or("/")).to_string(),
    };
    match sso::begin_login(
        state.store(),
        &hash_token(csrf.secret()),
        &pending,
        LOGIN_TTL_MS,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("Single sign-on refused: too many sign-ins under way.");
            let mut res = (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(simple_page(
                    "Too many sign-ins at once",
                    "Too many single sign-ons are under way. Try again in a minute.",
                )),
            )
                .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return res;
        }
        Err(e) => return crate::ui::error::UiError::internal(e).into_response(),
    }
    let cookie = set_cookie(
        SSO_COOKIE,
        csrf.secret(),
        LOGIN_TTL_MS / 1000,
        state.settings().secure_cookies(),
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

/// The provider's answer: a code and our state, or an error.
#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /auth/oidc/callback`: back from the provider.
pub async fn callback(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    let Some(sso) = state.sso() else {
        return not_configured();
    };
    let mut res = match finish(&state, sso, client, &headers, q).await {
        Ok(res) | Err(res) => res,
    };
    // The sign-in is over either way: the cookie goes.
    let clear = set_cookie(SSO_COOKIE, "", 0, state.settings().secure_cookies());
    if let Ok(v) = clear.parse() {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn finish(
    state: &AppState,
    sso: &Sso,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    q: CallbackParams,
) -> Result<Response, Response> {
    if let Some(error) = q.error {
        let text = match q.error_description {
            Some(d) => format!("The identity provider did not sign you in ({error}: {d})."),
            None => format!("The identity provider did not sign you in ({error})."),
        };
        return Err(refuse(StatusCode::BAD_REQUEST, "Sign-in refused", &text));
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "The provider's answer has no code or state.",
        ));
    };
    // The state must be the one this browser was given, or anyone could log a victim into
    // the attacker's account by sending them the attacker's callback link.
    if !cookie(headers, SSO_COOKIE).is_some_and(|c| secrets_equal(c, &st)) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "This sign-in was not started in this browser. Start again from the login page.",
        ));
    }
    let pending =
        match sso::take_login(state.store(), &hash_token(&st)).await {
            Ok(Some(p)) => p,
            Ok(None) => return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Sign-in refused",
                "This sign-in was already used or has expired. Start again from the login page.",
            )),
            Err(e) => return Err(crate::ui::error::UiError::internal(e).into_response()),
        };
    let meta = sso.metadata(false).await.map_err(|e| unreachable(&e))?;
    let oidc = sso.client(meta).map_err(|e| unreachable(&e))?;
    let token = oidc
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| unreachable(&describe(&e)))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
        .request_async(&sso.http)
        .await
        .map_err(|e| {
            tracing::warn!(error = describe(&e), "The OpenID provider refused the code.");
            refuse(
                StatusCode::BAD_GATEWAY,
                "Sign-in refused",
                "The identity provider did not accept the sign-in. Start again from the login page.",
            )
        })?;
    let Some(id_token) = token.id_token() else {
        return Err(refuse(
            StatusCode::BAD_GATEWAY,
            "Sign-in refused",
            "The identity provider sent no ID token.",
        ));
    };
    let nonce = Nonce::new(pending.nonce.clone());
    let skewed = || chrono::Utc::now() - chrono::Duration::seconds(CLOCK_SKEW_S);
    let verify = |oidc: &super::Client| {
        let verifier = oidc
            .id_token_verifier()
            .set_allowed_algs(accepted_algorithms())
            .set_time_fn(skewed);
        id_token.claims(&verifier, &nonce).cloned().map_err(|e| {
            (
                matches!(
                    e,
                    openidconnect::ClaimsVerificationError::SignatureVerification(
                        openidconnect::SignatureVerificationError::NoMatchingKey
                    )
                ),
                describe(&e),
            )
        })
    };
    let claims = match verify(&oidc) {
        Ok(c) => c,
        // The provider rotated its keys since discovery: fetch them again, once.
        Err((true, _)) => {
            let fresh = sso.metadata(true).await.map_err(|e| unreachable(&e))?;
            let oidc = sso.client(fresh).map_err(|e| unreachable(&e))?;
            verify(&oidc).map_err(|(_, why)| bad_token(&why))?
        }
        Err((false, why)) => return Err(bad_token(&why)),
    };
    let Some(email) = claims.email().map(|e| e.as_str().trim().to_lowercase()) else {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "The identity provider did not share an email address (ask for the `email` scope).",
        ));
    };
    if claims.email_verified() == Some(false) && !sso.config().allowed_domains.is_empty() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "The identity provider has not verified this email address.",
        ));
    }
    if !sso.config().domain_allowed(&email) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "Accounts with this email domain may not sign in here.",
        ));
    }
    let claimed = groups_claimed(&id_token.to_string(), &sso.config().groups_claim);
    let groups = claimed.clone().unwrap_or_default();
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().chars().take(200).collect::<String>());
    let account = ProviderAccount {
        issuer: &sso.config().issuer,
        subject: claims.subject().as_str(),
        email: &email,
        email_verified: claims.email_verified() == Some(true),
        name: name.as_deref(),
    };
    let (user, found) =
        match sso::sign_in(state.store(), &account).await {
            Ok(u) => u,
            Err(StoreError::Conflict(_)) => return Err(refuse(
                StatusCode::CONFLICT,
                "Sign-in refused",
                "An account with this email exists, but the identity provider has not verified \
                 the email, so it was not linked. Ask an administrator.",
            )),
            Err(e) => return Err(crate::ui::error::UiError::internal(e).into_response()),
        };
    tracing::info!(user = user.id, found = ?found, "Single sign-on.");
    // No groups claim at all says nothing about teams: membership is left as it is (an empty
    // list does mean "in none of them"). The role and teams are applied when the sign-in
    // completes, after the second factor when one is asked.
    let (join, leave) = match &claimed {
        Some(groups) => sso.config().teams_for(groups),
        None => (Vec::new(), Vec::new()),
    };
    let grants = Grants {
        role: sso.config().role_for(&groups),
        join,
        leave,
    };
    crate::tenancy::ui::two_factor::after_password(
        state,
        &user,
        &email,
        client,
        &pending.next,
        "oidc",
        Some(&grants),
    )
    .await
    .map_err(IntoResponse::into_response)
}

fn bad_token(why: &str) -> Response {
    tracing::warn!(error = why, "An ID token was refused.");
    refuse(
        StatusCode::BAD_REQUEST,
        "Sign-in refused",
        "The identity provider's ID token did not pass verification (signature, issuer, audience, \
         expiry or nonce). Nothing was changed. Start again from the login page.",
    )
}

/// Where to send a signing-out SSO user: the provider's end-session endpoint when it offers one
/// (RP-initiated logout), back to our login page after.
pub async fn provider_logout(state: &AppState, user_id: i64) -> Option<String> {
    let sso = state.sso()?;
    if !sso::has_identity(state.store(), user_id).await.ok()? {
        return None;
    }
    let meta = sso.metadata(false).await.ok()?;
    let endpoint = meta.additional_metadata().end_session_endpoint.clone()?;
    let back = PostLogoutRedirectUrl::new(format!("{}/login", state.settings().public_url)).ok()?;
    Some(
        LogoutRequest::from(endpoint)
            .set_client_id(openidconnect::ClientId::new(sso.config().client_id.clone()))
            .set_post_logout_redirect_uri(back)
            .http_get_url()
            .to_string(),
    )
}
