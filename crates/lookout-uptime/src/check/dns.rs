//! DNS checks: one query over UDP to the chosen resolver, judged on the response code and the
//! answers. The query is built and read with `hickory-proto` rather than a stub resolver, because
//! a resolver library turns `NXDOMAIN` into an error and hides which server answered.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::Probe;
use crate::conditions::Observation;
use crate::spec::MonitorSpec;
use lookout_outbound::NetPolicy;

/// Parses `ip`, `ip:port` or `[v6]:port` (port 53 by default).
pub fn resolver_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not an IP address with an optional port"))
}

/// The first `nameserver` of `/etc/resolv.conf`, else 127.0.0.1:53.
fn system_resolver() -> SocketAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("nameserver"))
                    .then(|| w.next().and_then(|a| resolver_addr(a).ok()))
                    .flatten()
            })
        })
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 53)))
}

/// `NOERROR`, `NXDOMAIN`, … as DNS people write them.
pub fn rcode_name(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

pub(crate) async fn probe(policy: &NetPolicy, spec: &MonitorSpec) -> Probe {
    let mut p = Probe::default();
    let mut server = match spec.resolver.as_deref() {
        Some(r) => match resolver_addr(r) {
            Ok(a) => a,
            Err(e) => {
                p.error = Some(e);
                return p;
            }
        },
        None => system_resolver(),
    };
    if let Some(port) = spec.port {
        server.set_port(port);
    }
    if let Some(why) = policy.refuses(server.ip()) {
        p.error = Some(why);
        return p;
    }
    p.obs.ip = Some(server.ip().to_string());
    let host = spec.host.as_deref().unwrap_or_default();
    let rtype = spec
        .record_type
        .as_deref()
        .and_then(|t| RecordType::from_str(t).ok())
        .unwrap_or(RecordType::A);
    let name = match Name::from_str(host) {
        Ok(n) => n,
        Err(e) => {
            p.error = Some(format!("{host:?} is not a DNS name: {e}"));
            return p;
        }
    };
    let id: u16 = rand::random();
    let mut msg = Message::new();
    msg.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, rtype));
    let Ok(bytes) = msg.to_vec() else {
        p.error = Some("could not encode the query".into());
        return p;
    };
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let started = Instant::now();
    let answer = async {
        let sock = tokio::net::UdpSocket::bind(bind).await?;
        sock.connect(server).await?;
        sock.send(&bytes).await?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await?;
            // Answers with another id are strays (or spoofing attempts); keep waiting.
            if let Ok(m) = Message::from_vec(buf.get(..n).unwrap_or_default()) {
                if m.id() == id {
                    return Ok::<Message, std::io::Error>(m);
                }
            }
        }
    };
    match answer.await {
        Ok(m) => {
            p.obs.connected = true;
            p.obs.response_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            p.obs.dns_rcode = Some(rcode_name(m.response_code()));
            let answers: Vec<String> = m
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| r.data().to_string().trim_end_matches('.').to_string())
                .collect();
            p.obs.body = Some(serde_json::Value::from(answers).to_string());
        }
        Err(e) => p.error = Some(format!("no answer from {server}: {e}")),
    }
    p
}

/// The first expected answer that is missing, as a failure reason.
pub(crate) fn missing_answer(spec: &MonitorSpec, obs: &Observation) -> Option<String> {
    let got: Vec<String> = obs
        .body
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    spec.expected_answers
        .iter()
        .find(|want| {
            !got.iter()
                .any(|g| g.eq_ignore_ascii_case(want.trim_end_matches('.')))
        })
        .map(|want| format!("expected answer {want} not in [{}]", got.join(", ")))
}
