//! ICMP echo checks through `surge-ping`: unprivileged datagram sockets where the kernel allows
//! them (`net.ipv4.ping_group_range`), raw sockets otherwise (root or `CAP_NET_RAW`).

use std::time::Duration;

use surge_ping::{Client, Config, PingIdentifier, PingSequence, ICMP};
use tokio::sync::OnceCell;

use super::{resolve, Probe};
use crate::spec::MonitorSpec;
use lookout_outbound::NetPolicy;

/// One socket per address family, opened on first use and shared by every ICMP monitor.
#[derive(Default)]
pub(crate) struct Pingers {
    v4: OnceCell<Result<Client, String>>,
    v6: OnceCell<Result<Client, String>>,
}

fn open(kind: ICMP) -> Result<Client, String> {
    let dgram = Config::builder().kind(kind).build();
    Client::new(&dgram).or_else(|_| {
        let raw = Config::builder()
            .kind(kind)
            .sock_type_hint(socket2::Type::RAW)
            .build();
        Client::new(&raw).map_err(|e| {
            format!("cannot open an ICMP socket ({e}); run as root, grant CAP_NET_RAW, or widen net.ipv4.ping_group_range")
        })
    })
}

impl Pingers {
    pub(crate) async fn probe(
        &self,
        policy: &NetPolicy,
        spec: &MonitorSpec,
        timeout: Duration,
    ) -> Probe {
        let mut p = Probe::default();
        let addr = match resolve(policy, spec.host.as_deref().unwrap_or_default(), 0).await {
            Ok(a) => a,
            Err(e) => {
                p.error = Some(e);
                return p;
            }
        };
        p.obs.ip = Some(addr.ip().to_string());
        let cell = if addr.is_ipv4() { &self.v4 } else { &self.v6 };
        let kind = if addr.is_ipv4() { ICMP::V4 } else { ICMP::V6 };
        let client = match cell.get_or_init(|| async move { open(kind) }).await {
            Ok(c) => c,
            Err(e) => {
                p.error = Some(e.clone());
                return p;
            }
        };
        let mut pinger = client
            .pinger(addr.ip(), PingIdentifier(rand::random()))
            .await;
        pinger.timeout(timeout);
        match pinger.ping(PingSequence(0), &[0u8; 56]).await {
            Ok((_, rtt)) => {
                p.obs.connected = true;
                p.obs.response_time_ms = Some(rtt.as_secs_f64() * 1000.0);
            }
            Err(e) => p.error = Some(format!("no echo reply from {}: {e}", addr.ip())),
        }
        p
    }
}
