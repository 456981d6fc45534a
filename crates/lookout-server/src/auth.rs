//! Who is calling: API tokens (`Authorization: Bearer …`) or a UI session cookie.
//!
//! A cookie-authenticated request that changes something must also carry the session's CSRF
//! token (header `X-CSRF-Token` for the API, form field `csrf` for UI forms), so another site
//! cannot make a logged-in browser act. Bearer tokens need no CSRF token: browsers never attach
//! them on their own.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use crate::error::ApiError;
use crate::state::AppState;
use lookout_core::secret::secrets_equal;
use lookout_core::Role;
use lookout_store::tenancy::{self, Session};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lookout_session";
/// The pre-login CSRF cookie (double-submit) for the login and setup forms.
pub const LOGIN_CSRF_COOKIE: &str = "lookout_csrf";
/// The selected project, for the UI's project switcher.
pub const PROJECT_COOKIE: &str = "lookout_project";

/// Reads one cookie from the request. Written by hand because it is ten lines and the only
/// cookie handling we need; a cookie crate would add signing and jars we do not use.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, `Secure` behind HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}")
}

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// An API token.
    Token(tenancy::ApiToken),
    /// A logged-in UI user.
    Session(Session),
}

/// An authenticated request: the caller and its role.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is.
    pub caller: Caller,
}

impl Principal {
    /// The caller's role.
    pub fn role(&self) -> Role {
        match &self.caller {
            Caller::Token(t) => t.role,
            Caller::Session(s) => s.user.role,
        }
    }

    /// The user behind the call, if any.
    pub fn user_id(&self) -> Option<i64> {
        match &self.caller {
            Caller::Token(t) => t.user_id,
            Caller::Session(s) => Some(s.user.id),
        }
    }

    /// Fails with 403 unless the caller has at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role() >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(needed))
        }
    }
}

/// Looks up the caller from a bearer token or the session cookie; `None` if neither is present.
pub async fn caller(state: &AppState, parts: &Parts) -> Result<Option<Caller>, ApiError> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let value = auth.to_str().map_err(|_| ApiError::Unauthorized)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized)?
            .trim();
        return match tenancy::token_for_secret(state.store(), token).await? {
            Some(t) => Ok(Some(Caller::Token(t))),
            None => Err(ApiError::Unauthorized),
        };
    }
    if let Some(sid) = cookie(&parts.headers, SESSION_COOKIE) {
        if let Some(s) = tenancy::session(state.store(), sid).await? {
            return Ok(Some(Caller::Session(s)));
        }
    }
    Ok(None)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = caller(state, parts).await?.ok_or(ApiError::Unauthorized)?;
        if let Caller::Session(s) = &caller {
            let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            if !safe && !sent.is_some_and(|t| secrets_equal(t, &s.csrf_token)) {
                return Err(ApiError::Csrf);
            }
        }
        Ok(Principal { caller })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let req = axum::http::Request::builder()
            .header(header::COOKIE, "a=1; lookout_session=abc; b=2")
            .body(())
            .unwrap();
        assert_eq!(cookie(req.headers(), SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(req.headers(), "missing"), None);
        assert!(
            set_cookie("x", "y", 60, true).contains("HttpOnly; SameSite=Lax; Max-Age=60; Secure")
        );
    }
}
