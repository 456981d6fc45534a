//! HTTP(S) checks through `reqwest`, with the outbound policy applied to every resolved address
//! and every redirect hop (by `lookout-outbound`'s client builder), and the peer certificate read for `[CERTIFICATE_EXPIRATION]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{cert_not_after, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::{describe, NetPolicy};

/// The most body a check reads; conditions see at most this much.
const MAX_BODY: usize = 1 << 20;

/// Response bodies held in memory at once across every check, in KiB. A check whose
/// conditions read the body reserves what it keeps, chunk by chunk, from this budget (waiting
/// within its timeout when other checks hold it); without it, 1,024 concurrent checks reading
/// 1 MiB each could hold 1 GiB.
pub(crate) const BODY_BUDGET_KIB: u32 = 64 * 1024;

/// The four client variants (verify TLS × follow redirects), each with its own pool.
pub(crate) struct Clients {
    policy: Arc<NetPolicy>,
    /// The budget of [`BODY_BUDGET_KIB`], one permit per KiB.
    bodies: Arc<tokio::sync::Semaphore>,
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
        Clients::with_body_budget(policy, BODY_BUDGET_KIB)
    }

    /// Clients whose kept bodies share `budget_kib` KiB.
    pub(crate) fn with_body_budget(policy: Arc<NetPolicy>, budget_kib: u32) -> Clients {
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
            bodies: Arc::new(tokio::sync::Semaphore::new(budget_kib as usize)),
        }
    }

    pub(crate) async fn probe(&self, spec: &MonitorSpec, timeout: Duration) -> Probe {
        let probe_started = Instant::now();
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
        // The body is read to its end (up to MAX_BODY) either way, so the response time covers
        // it; it is kept, under the shared budget, only when a condition reads it.
        let keep = reads_body(spec);
        let mut body = Vec::new();
        let mut drained = 0usize;
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if !keep => {
                    drained += chunk.len();
                    if drained >= MAX_BODY {
                        break;
                    }
                }
                Ok(Some(chunk)) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    let part = chunk.get(..room.min(chunk.len())).unwrap_or_default();
                    let held_kib = held.as_ref().map_or(0, |h| h.num_permits());
                    let need = (body.len() + part.len())
                        .div_ceil(1024)
                        .saturating_sub(held_kib);
                    if need > 0 {
                        // A little before the check's own timeout, so the check fails with this reason.
                        let wait = timeout.saturating_sub(probe_started.elapsed()).mul_f32(0.9);
                        let more = self.bodies.clone().acquire_many_owned(need as u32);
                        match tokio::time::timeout(wait, more).await {
                            Ok(Ok(permit)) => match held.as_mut() {
                                Some(h) => h.merge(permit),
                                None => held = Some(permit),
                            },
                            _ => {
                                tracing::warn!(url = %url, "Check body not read: the memory budget for check bodies is in use.");
                                p.error = Some(format!(
                                    "the response body could not be kept: other checks' bodies fill the {} MiB budget for check bodies",
                                    BODY_BUDGET_KIB / 1024
                                ));
                                return p;
                            }
                        }
                    }
                    body.extend_from_slice(part);
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
        p.obs.body = keep.then(|| String::from_utf8_lossy(&body).into_owned());
        p
    }
}

/// Whether any of `spec`'s conditions reads the body (a condition that does not parse counts as
/// reading it: it fails when judged, and keeping its body costs nothing then).
fn reads_body(spec: &MonitorSpec) -> bool {
    spec.conditions()
        .iter()
        .any(|c| crate::conditions::parse(c).map_or(true, |c| c.reads_body()))
}

fn is_cert_error(e: &reqwest::Error) -> bool {
    let text = describe(e).to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer") || text.contains("invalid peer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering every request with 200 and a body of `size` bytes of `x`.
    async fn server(size: usize) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                    );
                    let _ = c.write_all(head.as_bytes()).await;
                    let _ = c.write_all(&vec![b'x'; size]).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn spec(url: &str, conditions: &[&str]) -> MonitorSpec {
        let mut s: MonitorSpec = serde_json::from_value(serde_json::json!({
            "name": "t", "type": "http", "url": url, "timeout_seconds": 2,
            "conditions": conditions,
        }))
        .unwrap();
        s.validate().unwrap();
        s
    }

    #[tokio::test]
    async fn bodies_are_kept_only_for_conditions_that_read_them_and_within_the_shared_budget() {
        let url = server(100 * 1024).await;
        let policy = Arc::new(NetPolicy::new(&[], &["127.0.0.0/8".into()]).unwrap());
        // A budget smaller than one body: a check that keeps its body cannot get it.
        let clients = Clients::with_body_budget(policy, 64);
        let timeout = Duration::from_secs(2);

        let status_only = clients
            .probe(&spec(&url, &["[STATUS] == 200"]), timeout)
            .await;
        assert_eq!(
            status_only.error, None,
            "a status check does not keep the body"
        );
        assert_eq!(status_only.obs.status, Some(200));
        assert_eq!(status_only.obs.body, None);

        let keyword = clients
            .probe(&spec(&url, &["[BODY] == pat(*xxx*)"]), timeout)
            .await;
        let err = keyword.error.expect("the body did not fit the budget");
        assert!(err.contains("budget for check bodies"), "{err}");

        // With room for it, the same check keeps the whole body.
        let roomy = Clients::with_body_budget(
            Arc::new(NetPolicy::new(&[], &["127.0.0.0/8".into()]).unwrap()),
            BODY_BUDGET_KIB,
        );
        let kept = roomy
            .probe(&spec(&url, &["[BODY] == pat(*xxx*)"]), timeout)
            .await;
        assert_eq!(kept.error, None);
        assert_eq!(kept.obs.body.map(|b| b.len()), Some(100 * 1024));
        assert_eq!(
            roomy.bodies.available_permits(),
            BODY_BUDGET_KIB as usize,
            "released after the check"
        );
    }
}
