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

/// The address of the client that sent a request, when the listener recorded it: the TCP peer,
/// or, when the peer is one of the configured `trusted_proxies`, the last address in
/// `X-Forwarded-For` that is not a trusted proxy (addresses left of it could be made up by the
/// client).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = &state.settings().trusted_proxies;
        Ok(ClientAddr(
            peer.map(|p| forwarded_client(p, &parts.headers, trusted)),
        ))
    }
}

/// The client behind `peer` (see [`ClientAddr`]).
pub fn forwarded_client(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, std::net::IpAddr::V4),
            v4 => *v4,
        };
        trusted.iter().any(|n| n.contains(&ip))
    };
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|h| h.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// A caller with at least the member role. A handler that takes it cannot forget the check, and
/// the check runs with the other request-part extractors, before the body is read: a viewer
/// gets 403 for a write, never a 400 or 422 that describes the body it may not send.
#[derive(Debug, Clone)]
pub struct Member(pub Principal);

/// A caller with the admin role (see [`Member`]).
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

macro_rules! role_extractor {
    ($name:ident, $role:expr) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &AppState,
            ) -> Result<Self, ApiError> {
                let who = Principal::from_request_parts(parts, state).await?;
                who.require($role)?;
                Ok($name(who))
            }
        }

        impl std::ops::Deref for $name {
            type Target = Principal;
            fn deref(&self) -> &Principal {
                &self.0
            }
        }
    };
}

role_extractor!(Member, Role::Member);
role_extractor!(Admin, Role::Admin);

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
    fn the_client_behind_a_trusted_proxy_is_the_last_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = |xff: &str| {
            let mut m = HeaderMap::new();
            m.insert("x-forwarded-for", xff.parse().unwrap());
            m
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // Behind the proxy: the address it saw, not what the client claimed before it.
        assert_eq!(
            forwarded_client(
                ip("10.0.0.5"),
                &h("1.2.3.4, 203.0.113.9, 10.0.0.7"),
                &trusted
            ),
            ip("203.0.113.9")
        );
        // Not through a trusted proxy: the header is ignored.
        assert_eq!(
            forwarded_client(ip("198.51.100.1"), &h("1.2.3.4"), &trusted),
            ip("198.51.100.1")
        );
        // No trusted proxies configured: always the peer.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), &h("1.2.3.4"), &[]),
            ip("10.0.0.5")
        );
        // A trusted peer without the header stays the peer.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), &HeaderMap::new(), &trusted),
            ip("10.0.0.5")
        );
    }

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

/// The brute-force guard of the login form: failed logins counted per account **and** per client
/// address, each answered with a growing delay rather than a lockout.
///
/// A hard lock of the account after five failures (what this was) let anyone lock a colleague
/// out for 15 minutes by typing wrong passwords, and one client could still try every account.
/// Now, past a few free failures, each further failure makes that account (or client) wait
/// 1 s, 2 s, 4 s … up to [`LoginThrottle::MAX_DELAY_MS`] before the next attempt is even
/// checked: a guesser gets about two tries a minute, and the owner who remembers the password
/// gets in at most 30 s after the last failure. A success clears the account's count, never the
/// client's (a guesser with one valid account must not reset their own budget). Counts fade after
/// [`LoginThrottle::FORGET_MS`] without failures.
///
/// Kept in memory per process; each map is bounded, evicting the entries idle longest, so a flood
/// of made-up emails or addresses cannot grow memory or wipe the other entries.
pub struct LoginThrottle {
    accounts: std::sync::Mutex<Failures>,
    clients: std::sync::Mutex<Failures>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            accounts: std::sync::Mutex::new(Failures::new(LoginThrottle::MAX_ENTRIES)),
            clients: std::sync::Mutex::new(Failures::new(LoginThrottle::MAX_ENTRIES)),
        }
    }
}

impl LoginThrottle {
    /// Failures of one account before its attempts are delayed.
    pub const FREE_ACCOUNT_FAILURES: u32 = 3;
    /// Failures from one client address (any account) before its attempts are delayed.
    pub const FREE_CLIENT_FAILURES: u32 = 10;
    /// The longest delay: the right password always works this long after the last failure.
    pub const MAX_DELAY_MS: i64 = 30_000;
    /// Counts are forgotten after this long without a failure.
    pub const FORGET_MS: i64 = 15 * 60_000;
    /// Entries kept per map.
    pub const MAX_ENTRIES: usize = 100_000;

    /// An account's key in the maps (and in Redis): a digest of the normalised address, so an
    /// entry is 32 bytes whatever was typed into the form, which takes up to its body limit, and
    /// Redis (often run with less care than the database) holds no addresses.
    pub(crate) fn account_key(email: &str) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(email.trim().to_lowercase())[..16])
    }

    /// Clients are counted by address; IPv6 by its /64, which one host usually owns whole.
    pub(crate) fn client_key(ip: std::net::IpAddr) -> String {
        match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }

    /// Milliseconds until a login for `email` from `client` may be checked, if it must wait.
    pub fn wait_ms(&self, email: &str, client: Option<std::net::IpAddr>, now: i64) -> Option<i64> {
        let account = lock(&self.accounts).wait_ms(
            &Self::account_key(email),
            Self::FREE_ACCOUNT_FAILURES,
            now,
        );
        let client = client.and_then(|ip| {
            lock(&self.clients).wait_ms(&Self::client_key(ip), Self::FREE_CLIENT_FAILURES, now)
        });
        account.max(client)
    }

    /// Starts a login attempt: `Err(ms to wait)` if the account or the client must wait, else
    /// the attempt is counted as a failure right away, in the same step as the check, so that
    /// attempts sent all at once cannot each pass the check before any of them is counted.
    /// [`LoginThrottle::succeeded`] takes the count back when the password was right.
    pub fn begin(
        &self,
        email: &str,
        client: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<(), i64> {
        let account = Self::account_key(email);
        let client = client.map(Self::client_key);
        // Always accounts, then clients: one lock order.
        let mut accounts = lock(&self.accounts);
        let mut clients = lock(&self.clients);
        let wait = accounts
            .wait_ms(&account, Self::FREE_ACCOUNT_FAILURES, now)
            .max(
                client
                    .as_deref()
                    .and_then(|c| clients.wait_ms(c, Self::FREE_CLIENT_FAILURES, now)),
            );
        if let Some(ms) = wait {
            return Err(ms);
        }
        accounts.record(account, now);
        if let Some(c) = client {
            clients.record(c, now);
        }
        Ok(())
    }

    /// [`LoginThrottle::begin`] counted across replicas in Redis when it answers, else in this
    /// process. The attempt is counted here as well either way, so a replica that loses Redis
    /// keeps what it saw.
    pub async fn begin_shared(
        &self,
        email: &str,
        client: Option<std::net::IpAddr>,
        now: i64,
    ) -> Result<(), i64> {
        let shared = crate::shared::get().login_begin(email, client).await;
        let local = self.begin(email, client, now);
        shared.unwrap_or(local)
    }

    /// [`LoginThrottle::failed`], in Redis too when it answers.
    pub async fn failed_shared(&self, email: &str, client: Option<std::net::IpAddr>, now: i64) {
        crate::shared::get().login_failed(email, client).await;
        self.failed(email, client, now);
    }

    /// [`LoginThrottle::succeeded`], in Redis too when it answers.
    pub async fn succeeded_shared(&self, email: &str, client: Option<std::net::IpAddr>) {
        crate::shared::get().login_succeeded(email, client).await;
        self.succeeded(email, client);
    }

    /// After a wrong password: the wait starts again from now, when the failure is known (the
    /// attempt was counted by [`LoginThrottle::begin`]; hashing it took time that must not come
    /// off the wait).
    pub fn failed(&self, email: &str, client: Option<std::net::IpAddr>, now: i64) {
        if let Some(e) = lock(&self.accounts)
            .entries
            .get_mut(&Self::account_key(email))
        {
            e.1 = e.1.max(now);
        }
        if let Some(ip) = client {
            if let Some(e) = lock(&self.clients).entries.get_mut(&Self::client_key(ip)) {
                e.1 = e.1.max(now);
            }
        }
    }

    /// After a right password: clears the account's failures, and takes back the client's count
    /// of this attempt (its earlier failures stay: a guesser with one valid account must not
    /// reset their own budget).
    pub fn succeeded(&self, email: &str, client: Option<std::net::IpAddr>) {
        lock(&self.accounts)
            .entries
            .remove(&Self::account_key(email));
        if let Some(ip) = client {
            if let Some(e) = lock(&self.clients).entries.get_mut(&Self::client_key(ip)) {
                e.0 = e.0.saturating_sub(1);
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Failure counts by key: (failures, time of the last one).
struct Failures {
    entries: std::collections::HashMap<String, (u32, i64)>,
    cap: usize,
}

impl Failures {
    fn new(cap: usize) -> Self {
        Failures {
            entries: std::collections::HashMap::new(),
            cap,
        }
    }

    /// The delay after `n` failures when `free` are free: 1 s doubling, capped.
    fn delay_ms(n: u32, free: u32) -> i64 {
        match n.checked_sub(free) {
            None | Some(0) => 0,
            Some(over) => (1_000_i64 << (over - 1).min(15)).min(LoginThrottle::MAX_DELAY_MS),
        }
    }

    fn wait_ms(&self, key: &str, free: u32, now: i64) -> Option<i64> {
        let (n, last) = *self.entries.get(key)?;
        if now - last >= LoginThrottle::FORGET_MS {
            return None;
        }
        let until = last + Self::delay_ms(n, free);
        (until > now).then_some(until - now)
    }

    fn record(&mut self, key: String, now: i64) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.evict(now);
        }
        let e = self.entries.entry(key).or_insert((0, now));
        if now - e.1 >= LoginThrottle::FORGET_MS {
            *e = (0, now);
        }
        e.0 = e.0.saturating_add(1);
        e.1 = now;
    }

    fn evict(&mut self, now: i64) {
        evict_idle(
            &mut self.entries,
            self.cap,
            now - LoginThrottle::FORGET_MS,
            |(_, last)| *last,
        );
    }
}

/// Makes room in a map of per-key counts that is full (`cap` entries): drops the entries last
/// used at or before `forgotten`, then, if still full, the eighth idle longest (amortised: one
/// pass makes room for many inserts). Never empties the map, so a flood of new keys cannot wipe
/// the counts of the clients being limited.
pub(crate) fn evict_idle<K, V>(
    entries: &mut std::collections::HashMap<K, V>,
    cap: usize,
    forgotten: i64,
    last: impl Fn(&V) -> i64,
) {
    entries.retain(|_, v| last(v) > forgotten);
    if entries.len() < cap || entries.is_empty() {
        return;
    }
    let mut lasts: Vec<i64> = entries.values().map(&last).collect();
    let cut = (cap / 8).max(1).min(lasts.len() - 1);
    let (_, threshold, _) = lasts.select_nth_unstable(cut);
    let threshold = *threshold;
    entries.retain(|_, v| last(v) > threshold);
}

#[cfg(test)]
mod throttle_tests {
    use super::{Failures, LoginThrottle};
    use std::net::IpAddr;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_account_waits_longer_after_each_failure_but_never_more_than_30_s() {
        let t = LoginThrottle::default();
        let mut now = 1_000_000;
        let mut waits = Vec::new();
        for _ in 0..12 {
            // Each attempt comes as soon as it is allowed, and fails.
            now += t.wait_ms("Ada@x.io", ip("10.0.0.1"), now).unwrap_or(0);
            t.begin("ada@x.io ", ip("10.0.0.1"), now).unwrap();
            waits.push(t.wait_ms("ADA@x.io", None, now).unwrap_or(0));
        }
        assert_eq!(
            waits,
            [0, 0, 0, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]
        );
        // Another account from another client is not affected.
        assert_eq!(t.wait_ms("bob@x.io", ip("10.0.0.2"), now), None);
        // Inside the wait, attempts are refused (and not counted).
        assert_eq!(t.begin("ada@x.io", ip("10.0.0.3"), now + 10), Err(29_990));
        // 30 s after the last failure the account may try again; a success clears it.
        assert_eq!(t.begin("ada@x.io", ip("10.0.0.3"), now + 30_000), Ok(()));
        t.succeeded("ada@x.io", ip("10.0.0.3"));
        assert_eq!(t.wait_ms("ada@x.io", ip("10.0.0.3"), now + 30_001), None);
        // Counts fade after a quiet quarter of an hour.
        for _ in 0..6 {
            let _ = t.begin("eve@x.io", None, now);
        }
        assert!(t.wait_ms("eve@x.io", None, now + 1).is_some());
        assert_eq!(
            t.wait_ms("eve@x.io", None, now + LoginThrottle::FORGET_MS),
            None
        );
    }

    #[test]
    fn attempts_sent_at_once_are_counted_before_any_is_checked() {
        let t = LoginThrottle::default();
        let passed = (0..20)
            .filter(|_| t.begin("ada@x.io", None, 1_000).is_ok())
            .count();
        assert_eq!(passed, LoginThrottle::FREE_ACCOUNT_FAILURES as usize + 1);
    }

    #[test]
    fn the_wait_starts_when_the_failure_is_known() {
        let t = LoginThrottle::default();
        for _ in 0..4 {
            t.begin("ada@x.io", None, 1_000).unwrap_or(());
        }
        // Checking the password took 5 s: the 1 s wait runs from its answer, not its start.
        t.failed("ada@x.io", None, 6_000);
        assert_eq!(t.wait_ms("ada@x.io", None, 6_500), Some(500));
    }

    #[test]
    fn one_client_trying_many_accounts_is_slowed_and_a_success_does_not_reset_it() {
        let t = LoginThrottle::default();
        let now = 5_000_000;
        for i in 0..LoginThrottle::FREE_CLIENT_FAILURES + 1 {
            t.begin(&format!("user{i}@x.io"), ip("2001:db8::1"), now)
                .unwrap();
        }
        // A fresh account from the same /64 waits; from another network it does not.
        assert_eq!(
            t.wait_ms("new@x.io", ip("2001:db8::ffff"), now),
            Some(1_000)
        );
        assert_eq!(t.wait_ms("new@x.io", ip("2001:db8::1"), now), Some(1_000));
        assert_eq!(t.wait_ms("new@x.io", ip("2001:db9::1"), now), None);
        // A right password takes back only its own attempt.
        t.begin("mine@x.io", ip("2001:db8::1"), now + 1_000)
            .unwrap();
        t.succeeded("mine@x.io", ip("2001:db8::1"));
        assert_eq!(
            t.wait_ms("new@x.io", ip("2001:db8::1"), now + 1_000),
            Some(1_000)
        );
    }

    #[test]
    fn a_full_map_evicts_the_longest_idle_instead_of_forgetting_everyone() {
        let mut f = Failures::new(16);
        for i in 0..16 {
            f.record(format!("k{i}"), 1_000 + i);
        }
        f.record("k1".into(), 2_000);
        f.record("new".into(), 2_001);
        assert!(f.entries.len() <= 16 && f.entries.contains_key("new"));
        // The newest and the refreshed entry survive; only the oldest went.
        assert!(f.entries.contains_key("k1") && f.entries.contains_key("k15"));
        assert!(!f.entries.contains_key("k0"));
    }
}
