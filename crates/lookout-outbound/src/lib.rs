//! Lookout's one outbound policy for every user-supplied destination: uptime checks, webhook,
//! chat, ntfy and PagerDuty channels, SMTP servers, report deliveries, database targets and
//! backup targets.
//!
//! [`NetPolicy`] says which addresses may be reached (the `outbound` section of the config
//! file); [`HttpClient`] and [`client_builder`] make HTTP clients that apply it at connect time
//! and on every redirect; [`resolve`] gives other protocols (SMTP, PostgreSQL) the allowed
//! addresses of a host, to connect to one of them rather than resolving the name again.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod http;
mod policy;

use std::net::{IpAddr, SocketAddr};

pub use http::{
    check_url, client_builder, describe, ip_literal, redirect_policy, HttpClient, PolicyResolver,
    MAX_REDIRECTS,
};
pub use policy::{NetPolicy, DEFAULT_DENY};

/// The addresses of `host` (a name or an IP literal, IPv6 with or without brackets) on `port`
/// that the policy allows, in resolver order; an error naming the policy when it refuses them
/// all. Connect to one of these rather than to `host`, so that a second lookup cannot answer
/// differently (DNS rebinding).
pub async fn resolve(policy: &NetPolicy, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    let mut refusal = None;
    let mut allowed = Vec::with_capacity(addrs.len());
    for a in addrs {
        match policy.refuses(a.ip()) {
            None => allowed.push(a),
            Some(r) => refusal = Some(r),
        }
    }
    if allowed.is_empty() {
        return Err(refusal.unwrap_or_else(|| format!("{host} has no address")));
    }
    Ok(allowed)
}

/// Why `host` may not be reached when it is saved (a URL, a channel, a target): `Some` only when
/// it resolves now and the policy refuses every address. A name that does not resolve yet is
/// left to the connection, which judges it again (DNS answers change).
pub async fn refusal_now(policy: &NetPolicy, host: &str, port: u16) -> Option<String> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return policy.refuses(ip);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((trimmed, port))
        .await
        .ok()?
        .collect();
    let mut why = None;
    for a in addrs {
        match policy.refuses(a.ip()) {
            None => return None,
            Some(r) => why = Some(r),
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolve_keeps_allowed_addresses_and_names_the_policy_otherwise() {
        let open = NetPolicy::default();
        let a = resolve(&open, "127.0.0.1", 25).await.unwrap();
        assert_eq!(a, vec![SocketAddr::from(([127, 0, 0, 1], 25))]);
        assert_eq!(resolve(&open, "[::1]", 5).await.unwrap().len(), 1);
        let closed = NetPolicy::new(&["127.0.0.0/8".into(), "::1/128".into()], &[]).unwrap();
        let why = resolve(&closed, "127.0.0.1", 25).await.unwrap_err();
        assert!(why.contains("outbound policy"), "{why}");
        // Names are judged by what they resolve to.
        let why = resolve(&closed, "localhost", 25).await.unwrap_err();
        assert!(why.contains("outbound policy"), "{why}");
        assert!(resolve(&open, "0.0.0.0", 80).await.is_err());
        assert!(refusal_now(&closed, "localhost", 5432).await.is_some());
        assert!(refusal_now(&closed, "[::1]", 5432).await.is_some());
        assert!(refusal_now(&open, "localhost", 5432).await.is_none());
        assert!(refusal_now(&closed, "no-such-host.invalid", 5432)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn http_client_refuses_denied_literals_before_sending() {
        let closed = NetPolicy::new(&["127.0.0.0/8".into()], &[]).unwrap();
        let c = HttpClient::new(
            std::sync::Arc::new(closed),
            std::time::Duration::from_secs(1),
            "test",
        );
        let why = c.post("http://127.0.0.1:9/hook").unwrap_err();
        assert!(why.contains("outbound policy"), "{why}");
        let why = c.post("http://[::ffff:169.254.169.254]/").unwrap_err();
        assert!(why.contains("denied network"), "{why}");
        assert!(c.post("file:///etc/passwd").is_err());
        assert!(c.post("http://192.0.2.1/").is_ok());
    }
}
