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

/// Failed logins per email in a sliding window: the brute-force guard of the login form.
///
/// After [`LoginThrottle::MAX_FAILURES`] failures within [`LoginThrottle::WINDOW_MS`] an email's
/// logins are refused (429) without checking the password until the window ends; a success
/// clears the count. Kept in memory per process: a restart forgets it, which costs an attacker
/// a restart they cannot cause. The map is bounded: it is cleared past 100,000 emails.
#[derive(Default)]
pub struct LoginThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
}

impl LoginThrottle {
    /// Failures allowed per window.
    pub const MAX_FAILURES: u32 = 5;
    /// The window, ms.
    pub const WINDOW_MS: i64 = 15 * 60_000;

    fn key(email: &str) -> String {
        email.trim().to_lowercase()
    }

    /// Seconds until `email` may try again, if it is locked out now.
    pub fn locked(&self, email: &str, now: i64) -> Option<i64> {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, n) = map.get(&Self::key(email))?;
        (*n >= Self::MAX_FAILURES && now - start < Self::WINDOW_MS)
            .then(|| (start + Self::WINDOW_MS - now + 999) / 1000)
    }

    /// Records a failed login.
    pub fn failed(&self, email: &str, now: i64) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= 100_000 {
            map.clear();
        }
        let e = map.entry(Self::key(email)).or_insert((now, 0));
        if now - e.0 >= Self::WINDOW_MS {
            *e = (now, 0);
        }
        e.1 += 1;
    }

    /// Clears an email's failures after a successful login.
    pub fn succeeded(&self, email: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&Self::key(email));
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::LoginThrottle;

    #[test]
    fn five_failures_lock_an_email_for_the_window() {
        let t = LoginThrottle::default();
        for _ in 0..LoginThrottle::MAX_FAILURES {
            assert!(t.locked("Ada@x.io", 1_000).is_none());
            t.failed("ada@x.io ", 1_000);
        }
        assert_eq!(t.locked("ADA@x.io", 1_000), Some(900));
        assert!(t.locked("bob@x.io", 1_000).is_none());
        assert!(t
            .locked("ada@x.io", 1_000 + LoginThrottle::WINDOW_MS)
            .is_none());
        t.succeeded("ada@x.io");
        assert!(t.locked("ada@x.io", 1_001).is_none());
    }
}
