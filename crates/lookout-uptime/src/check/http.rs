//! HTTP(S) checks through `reqwest`, with the outbound policy applied to every resolved address
//! and every redirect hop (by `lookout-outbound`'s client builder), and the peer certificate read for `[CERTIFICATE_EXPIRATION]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{cert_not_after, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::{describe, NetPolicy};

/// The most body a check reads; conditions see at most this much.
const MAX_BODY: usize = 1 << 20;

/// The four client variants (verify TLS × follow redirects), each with its own pool.
pub(crate) struct Clients {
    policy: Arc<NetPolicy>,
    /// (verify, follow), (verify, no redirects), (no verify, follow), (no verify, no redirects).
    clients: (
        reqwest::Client,
        reqwest::Client,
        reqwest::Client,
        reqwest::Client,
    ),
}

impl Clients {
    pub(crate) fn new(policy: Arc<NetPolicy>) -> Clients {
        let build = |verify: bool, follow: bool| {
            // The policy's resolver and per-hop redirect check, shared with every other
            // user-supplied destination.
            lookout_outbound::client_builder(policy.clone(), follow)
                .danger_accept_invalid_certs(!verify)
                .tls_info(true)
                .pool_max_idle_per_host(32)
                .pool_idle_timeout(Duration::from_secs(90))
                .user_agent(concat!("Lookout-Uptime/", env!("CARGO_PKG_VERSION")))
                .build()
                // Building fails only if the TLS backend cannot start; then no check can run.
                .unwrap_or_default()
        };
        Clients {
            clients: (
                build(true, true),
                build(true, false),
                build(false, true),
                build(false, false),
            ),
            policy,
        }
    }

    pub(crate) async fn probe(&self, spec: &MonitorSpec, timeout: Duration) -> Probe {
        let mut p = Probe::default();
        let Some(url) = spec
            .url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
        else {
            p.error = Some("invalid URL".into());
            return p;
        };
        if let Err(why) = lookout_outbound::check_url(&self.policy, &url) {
            p.error = Some(why);
            return p;
        }
        if let Some(ip) = lookout_outbound::ip_literal(&url) {
            p.obs.ip = Some(ip.to_string());
        }
        let client = match (spec.verify_tls, spec.follow_redirects) {
            (true, true) => &self.clients.0,
            (true, false) => &self.clients.1,
            (false, true) => &self.clients.2,
            (false, false) => &self.clients.3,
        };
        let method = spec
            .method
            .as_deref()
            .and_then(|m| reqwest::Method::from_bytes(m.as_bytes()).ok())
            .unwrap_or(reqwest::Method::GET);
        let mut req = client.request(method, url.clone()).timeout(timeout);
        for (k, v) in &spec.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &spec.body {
            req = req.body(b.clone());
        }
        if let Some(a) = &spec.basic_auth {
            req = req.basic_auth(&a.username, Some(&a.password));
        }
        if let Some(t) = &spec.bearer_token {
            req = req.bearer_auth(t);
        }
        let started = Instant::now();
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                p.error = Some(super::reason::http_failure(&url, &e, spec.timeout_seconds));
                if url.scheme() == "https" && spec.verify_tls && is_cert_error(&e) {
                    p.chain_valid = Some(false);
                }
                return p;
            }
        };
        p.obs.connected = true;
        p.obs.status = Some(i64::from(resp.status().as_u16()));
        if let Some(addr) = resp.remote_addr() {
            p.obs.ip = Some(addr.ip().to_string());
        }
        if let Some(der) = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
        {
            p.cert_expires_at = cert_not_after(der);
            p.chain_valid = spec.verify_tls.then_some(true);
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    if body.len() >= MAX_BODY {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    p.error = Some(format!("reading the body: {}", describe(&e)));
                    break;
                }
            }
        }
        p.obs.response_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        if let (Some(exp), Some(_)) = (p.cert_expires_at, p.obs.response_time_ms) {
            p.obs.certificate_expiration_ms = Some(exp - lookout_core::time::now_ms());
        }
        p.obs.body = Some(String::from_utf8_lossy(&body).into_owned());
        p
    }
}

fn is_cert_error(e: &reqwest::Error) -> bool {
    let text = describe(e).to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer") || text.contains("invalid peer")
}
