//! TCP checks: can a connection be opened.

use std::time::Instant;

use super::{reason, resolve, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::NetPolicy;

pub(crate) async fn probe(policy: &NetPolicy, spec: &MonitorSpec) -> Probe {
    let mut p = Probe::default();
    let host = spec.host.as_deref().unwrap_or_default();
    let port = spec.port.unwrap_or(0);
    let addr = match resolve(policy, host, port).await {
        Ok(a) => a,
        Err(e) => {
            p.error = Some(e);
            return p;
        }
    };
    p.obs.ip = Some(addr.ip().to_string());
    let started = Instant::now();
    match tokio::net::TcpStream::connect(addr).await {
        Ok(_) => {
            p.obs.connected = true;
            p.obs.response_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        // Named as the user wrote it (the host), with the address when a name was resolved.
        Err(e) => p.error = Some(reason::cannot_connect(&target(host, port, addr), &e)),
    }
    p
}

/// `host:port` as configured, plus the address it resolved to when that differs
/// (`db.internal:5432 (10.0.0.7)`).
pub(crate) fn target(host: &str, port: u16, addr: std::net::SocketAddr) -> String {
    let named = format!("{host}:{port}");
    if host.trim_start_matches('[').trim_end_matches(']') == addr.ip().to_string() {
        named
    } else {
        format!("{named} ({})", addr.ip())
    }
}
