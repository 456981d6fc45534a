//! Real targets on 127.0.0.1 for the checks to probe: a programmable HTTP(S) server, a DNS
//! server, and a free port nobody listens on.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// How the HTTP target answers right now.
#[derive(Clone)]
pub struct Behaviour {
    /// Status code.
    pub status: u16,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Body.
    pub body: String,
    /// Accept the connection and never answer.
    pub silent: bool,
    /// Answer 401 unless the request has this header line (lowercase `name: value`).
    pub require: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: 200,
            delay: Duration::ZERO,
            body: "ok".into(),
            silent: false,
            require: None,
        }
    }
}

/// Reads a request's head (through the blank line); `None` when the client went away.
pub async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(buf)
}

/// A local HTTP (or HTTPS) server whose answers a test changes while monitors probe it.
pub struct HttpTarget {
    /// Where it listens.
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    hits: Hits,
}

/// When each path was requested, for tests that count probes at the target itself.
type Hits = Arc<Mutex<Vec<(std::time::Instant, String)>>>;

async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    b: Arc<Mutex<Behaviour>>,
    hits: Hits,
) {
    loop {
        let Some(buf) = read_head(&mut s).await else {
            return;
        };
        let path = String::from_utf8_lossy(&buf)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        hits.lock().unwrap().push((std::time::Instant::now(), path));
        let now = b.lock().unwrap().clone();
        if now.silent {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        tokio::time::sleep(now.delay).await;
        let head = String::from_utf8_lossy(&buf).to_lowercase();
        let status = match &now.require {
            Some(line) if !head.lines().any(|l| l.trim() == line) => 401,
            _ => now.status,
        };
        let resp = format!(
            "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
            status,
            now.body.len(),
            now.body
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

impl HttpTarget {
    /// Starts a plain HTTP target.
    pub async fn start() -> HttpTarget {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let hits = Hits::default();
        let (b, h) = (behaviour.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(answer(s, b.clone(), h.clone()));
            }
        });
        HttpTarget {
            addr,
            behaviour,
            hits,
        }
    }

    /// Starts an HTTPS target with a self-signed certificate for `localhost` and 127.0.0.1 that
    /// expires in `days` days.
    pub async fn start_tls(days: i64) -> HttpTarget {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let day = |offset: i64| {
            let d = chrono::Utc::now().date_naive() + chrono::Duration::days(offset);
            use chrono::Datelike;
            rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
        };
        params.not_before = day(-10);
        params.not_after = day(days);
        let cert = params.self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let hits = Hits::default();
        let (b, h) = (behaviour.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (acceptor, b, h) = (acceptor.clone(), b.clone(), h.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(s).await {
                        answer(tls, b, h).await;
                    }
                });
            }
        });
        HttpTarget {
            addr,
            behaviour,
            hits,
        }
    }

    /// When `path` was requested, oldest first.
    pub fn hits(&self, path: &str) -> Vec<std::time::Instant> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(t, _)| *t)
            .collect()
    }

    /// Changes how it answers.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap());
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A DNS server answering `A` for the names given and NXDOMAIN for the rest.
pub async fn dns_server(records: &[(&str, Ipv4Addr)]) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let records: Vec<(Name, Ipv4Addr)> = records
        .iter()
        .map(|(n, ip)| (Name::from_str(n).unwrap(), *ip))
        .collect();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true);
            let mut found = false;
            for query in q.queries() {
                r.add_query(query.clone());
                for (name, ip) in &records {
                    if query.name().to_lowercase() == name.to_lowercase() {
                        r.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::A(A(*ip)),
                        ));
                        found = true;
                    }
                }
            }
            r.set_response_code(if found {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            });
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    addr
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
