//! TCP checks: can a connection be opened.

use std::time::Instant;

use super::{resolve, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::NetPolicy;

pub(crate) async fn probe(policy: &NetPolicy, spec: &MonitorSpec) -> Probe {
    let mut p = Probe::default();
    let host = spec.host.as_deref().unwrap_or_default();
    let addr = match resolve(policy, host, spec.port.unwrap_or(0)).await {
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
        Err(e) => p.error = Some(format!("cannot connect to {addr}: {e}")),
    }
    p
}
