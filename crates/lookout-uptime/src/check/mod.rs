//! Running one check: probe the target, then judge what was observed by the monitor's conditions.
//!
//! A [`Checker`] holds what checks share (HTTP clients with their connection pools, the ICMP
//! sockets, the TLS roots, the outbound policy), so 10,000 monitors cost 10,000 small futures,
//! not 10,000 clients.

pub mod dns;
mod http;
mod icmp;
mod reason;
mod tcp;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conditions::{self, Observation};
use crate::spec::{Kind, MonitorSpec};
use lookout_outbound::NetPolicy;

/// What one check found.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// Every condition held.
    pub ok: bool,
    /// Time the probe took, ms.
    pub latency_ms: f64,
    /// Why it failed: the failing condition with the value seen, or the probe error.
    pub failure: Option<String>,
    /// When the certificate expires, ms since the epoch (HTTPS and TLS checks).
    pub cert_expires_at: Option<i64>,
    /// Whether the certificate chain verified (HTTPS and TLS checks).
    pub chain_valid: Option<bool>,
    /// Raw observation (for the UI's "last result").
    pub observation: Observation,
}

/// A probe's raw findings before conditions are applied.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub obs: Observation,
    /// A transport error: the check failed before anything could be judged.
    pub error: Option<String>,
    pub cert_expires_at: Option<i64>,
    pub chain_valid: Option<bool>,
}

/// Shared resources for checks.
pub struct Checker {
    policy: Arc<NetPolicy>,
    http: http::Clients,
    icmp: icmp::Pingers,
    tls: tls::Roots,
}

impl Checker {
    /// A checker applying `policy` to every address it reaches.
    pub fn new(policy: NetPolicy) -> Checker {
        let policy = Arc::new(policy);
        Checker {
            http: http::Clients::new(policy.clone()),
            icmp: icmp::Pingers::default(),
            tls: tls::Roots::new(),
            policy,
        }
    }

    /// Probes `spec`'s target within its timeout and judges the result.
    /// Passive types (heartbeat, cron) are judged elsewhere and answer an error here.
    pub async fn check(&self, spec: &MonitorSpec) -> CheckOutcome {
        let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
        let started = Instant::now();
        let probe = tokio::time::timeout(timeout, self.probe(spec, timeout)).await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut probe = probe.unwrap_or_else(|_| Probe {
            error: Some(reason::timed_out(
                spec.timeout_seconds,
                false,
                &target_label(spec),
            )),
            ..Probe::default()
        });
        if probe.obs.response_time_ms.is_none() && probe.error.is_none() {
            probe.obs.response_time_ms = Some(latency_ms);
        }
        judge(spec, probe, latency_ms)
    }

    async fn probe(&self, spec: &MonitorSpec, timeout: Duration) -> Probe {
        match spec.kind {
            Kind::Http => self.http.probe(spec, timeout).await,
            Kind::Tcp => tcp::probe(&self.policy, spec).await,
            Kind::Dns => dns::probe(&self.policy, spec).await,
            Kind::Icmp => self.icmp.probe(&self.policy, spec, timeout).await,
            Kind::Tls => self.tls.probe(&self.policy, spec).await,
            Kind::Heartbeat | Kind::Cron => Probe {
                error: Some("passive monitors are not probed".into()),
                ..Probe::default()
            },
        }
    }
}

/// Applies the conditions: the first failing one (with its value) is the reason.
fn judge(spec: &MonitorSpec, probe: Probe, latency_ms: f64) -> CheckOutcome {
    let mut failure = probe.error.clone();
    if failure.is_none() {
        for source in spec.conditions() {
            let Ok(c) = conditions::parse(&source) else {
                failure = Some(format!("condition {source:?} no longer parses"));
                break;
            };
            let e = c.evaluate(&probe.obs);
            if !e.passed {
                failure = Some(match (spec.kind, probe.obs.status) {
                    // A status condition reads as what the server answered, naming it.
                    (Kind::Http, Some(status)) if source.trim_start().starts_with("[STATUS]") => {
                        format!(
                            "HTTP {status} from {} (expected {source})",
                            spec.target().unwrap_or_default()
                        )
                    }
                    _ => format!("condition failed: {}", e.detail),
                });
                break;
            }
        }
    }
    if failure.is_none()
        && spec.kind == Kind::Tls
        && spec.verify_tls
        && probe.chain_valid == Some(false)
    {
        failure = Some("certificate chain is not valid".into());
    }
    if failure.is_none() && spec.kind == Kind::Dns {
        if let Some(missing) = dns::missing_answer(spec, &probe.obs) {
            failure = Some(missing);
        }
    }
    CheckOutcome {
        ok: failure.is_none(),
        latency_ms: probe.obs.response_time_ms.unwrap_or(latency_ms),
        failure,
        cert_expires_at: probe.cert_expires_at,
        chain_valid: probe.chain_valid,
        observation: probe.obs,
    }
}

/// What a failure names as the target: `host:port`, a URL (password hidden) or a host.
fn target_label(spec: &MonitorSpec) -> String {
    match (spec.kind, &spec.host, spec.port) {
        (Kind::Tcp | Kind::Tls, Some(h), Some(p)) => format!("{h}:{p}"),
        (Kind::Tls, Some(h), None) => format!("{h}:443"),
        _ => spec.target().unwrap_or_default(),
    }
}

/// Resolves `host:port` and keeps the first address the policy allows. Failures read
/// `DNS lookup failed for <host>`, or `cannot connect to <host:port>: <the policy's reason>`.
pub(crate) async fn resolve(
    policy: &NetPolicy,
    host: &str,
    port: u16,
) -> Result<SocketAddr, String> {
    let target = if port == 0 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    let addrs = lookout_outbound::resolve(policy, host, port)
        .await
        .map_err(|why| reason::resolve_failure(host, &target, &why))?;
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("DNS lookup failed for {host}: no address"))
}

/// Reads a DER certificate's expiry, ms since the epoch.
pub(crate) fn cert_not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp() * 1000)
}
