//! The load generator's HTTP/1.1 client: keep-alive connections owned by one VU, requests written
//! as prepared bytes, responses parsed in place with `httparse`, and every phase timed (blocked,
//! connecting, TLS handshaking, sending, waiting, receiving).
//!
//! Hand-written on purpose: the target is generator CPU per request at or below wrk's,
//! and a general client (pool, header maps, body streams) costs more per request than the
//! request. Parsing is `httparse`'s; TLS is rustls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of a parsed URL.
    pub fn of(url: &url::Url) -> Result<Origin, Failure> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            s => return Err(Failure::new(1000, format!("unsupported scheme {s}"))),
        };
        let host = url
            .host_str()
            .ok_or_else(|| Failure::new(1000, "URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Origin {
            tls,
            port: url
                .port_or_known_default()
                .unwrap_or(if tls { 443 } else { 80 }),
            host,
        })
    }

    /// The `Host` header value.
    pub fn host_header(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Why a request produced no response, with a k6-style error code.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: u32,
    pub message: String,
}

impl Failure {
    pub fn new(code: u32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Time spent in each phase of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub blocked: Duration,
    pub connecting: Duration,
    pub tls_handshaking: Duration,
    pub sending: Duration,
    pub waiting: Duration,
    pub receiving: Duration,
    /// When the response was complete (saves the caller a clock read).
    pub done: Option<Instant>,
}

impl Timings {
    /// k6's `http_req_duration`: sending + waiting + receiving.
    pub fn duration(&self) -> Duration {
        self.sending + self.waiting + self.receiving
    }
}

/// A response, kept in the VU's reused buffers.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    /// Bytes read from the socket: head, body and framing.
    pub received: usize,
    raw: Vec<u8>,
    head: usize,
    body_at: Range<usize>,
    chunked_body: Vec<u8>,
    chunked: bool,
    /// Whether the head carries `Set-Cookie` (so the cookie jar looks only when it must).
    pub sets_cookies: bool,
}

impl Response {
    /// Every value of a header (name in any case), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if parsed.parse(&self.raw[..self.head]).is_err() {
            return Vec::new();
        }
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect()
    }

    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    /// The body, de-chunked.
    pub fn body(&self) -> &[u8] {
        if self.chunked {
            &self.chunked_body
        } else {
            &self.raw[self.body_at.clone()]
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(b).await,
            Stream::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, b: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(b).await,
            Stream::Tls(s) => s.read_buf(b).await,
        }
    }
}

/// One keep-alive connection.
struct Conn {
    origin: Origin,
    stream: Stream,
}

/// The connections one VU holds (usually one; more when its steps reach several origins).
#[derive(Default)]
pub struct Conns {
    open: Vec<Conn>,
}

impl Conns {
    fn take(&mut self, origin: &Origin) -> Option<Conn> {
        let at = self.open.iter().position(|c| c.origin == *origin)?;
        Some(self.open.swap_remove(at))
    }

    /// Drops every connection (end of an iteration under `noConnectionReuse`, or of the VU).
    pub fn clear(&mut self) {
        self.open.clear();
    }
}

/// Settings and caches shared by every VU.
pub struct Client {
    tls: Arc<rustls::ClientConfig>,
    dns: Mutex<HashMap<(String, u16), SocketAddr>>,
    reuse: bool,
}

/// A request ready to send: the origin and the exact bytes.
pub struct Prepared<'a> {
    pub origin: &'a Origin,
    pub bytes: &'a [u8],
    pub head_only: bool,
}

impl Client {
    /// A client; `insecure` skips certificate verification.
    pub fn new(insecure: bool, reuse: bool) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Client {
            tls: Arc::new(config),
            dns: Mutex::new(HashMap::new()),
            reuse,
        }
    }

    async fn resolve(&self, origin: &Origin) -> Result<SocketAddr, Failure> {
        let key = (origin.host.clone(), origin.port);
        if let Some(a) = self.dns.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(a);
        }
        let addr = tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|e| Failure::new(1100, format!("lookup {}: {e}", origin.host)))?
            .next()
            .ok_or_else(|| Failure::new(1101, format!("lookup {}: no address", origin.host)))?;
        if let Ok(mut m) = self.dns.lock() {
            m.insert(key, addr);
        }
        Ok(addr)
    }

    async fn connect(
        &self,
        origin: &Origin,
        t: &mut Timings,
        mut mark: Instant,
    ) -> Result<Conn, Failure> {
        let addr = self.resolve(origin).await?;
        let now = Instant::now();
        t.blocked += now.saturating_duration_since(mark);
        mark = now;
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            let code = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => 1212,
                std::io::ErrorKind::TimedOut => 1211,
                _ => 1210,
            };
            Failure::new(code, format!("dial {addr}: {e}"))
        })?;
        let _ = tcp.set_nodelay(true);
        let now = Instant::now();
        t.connecting = now - mark;
        mark = now;
        let stream = if origin.tls {
            let name = ServerName::try_from(origin.host.clone()).map_err(|_| {
                Failure::new(1300, format!("{} is not a TLS server name", origin.host))
            })?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::new(1300, format!("TLS handshake: {e}")))?;
            t.tls_handshaking = mark.elapsed();
            Stream::Tls(Box::new(tls))
        } else {
            Stream::Plain(tcp)
        };
        Ok(Conn {
            origin: origin.clone(),
            stream,
        })
    }

    /// Sends one request and reads its response into `resp`. `start` is when the request was
    /// due: time before the connection is ready counts as blocked. The caller bounds it in time.
    pub async fn send(
        &self,
        conns: &mut Conns,
        req: &Prepared<'_>,
        resp: &mut Response,
        start: Instant,
    ) -> Result<Timings, (Timings, Failure)> {
        self.exchange(conns, req, resp, start).await
    }

    async fn exchange(
        &self,
        conns: &mut Conns,
        req: &Prepared<'_>,
        resp: &mut Response,
        start: Instant,
    ) -> Result<Timings, (Timings, Failure)> {
        let mut t = Timings::default();
        // A kept-alive connection the server closed meanwhile fails before any byte of a
        // response; then the request is sent once more on a new connection, as browsers do.
        for attempt in 0..2 {
            let (mut conn, reused) = match conns.take(req.origin) {
                Some(c) if attempt == 0 => (c, true),
                _ => (
                    self.connect(req.origin, &mut t, start)
                        .await
                        .map_err(|f| (t, f))?,
                    false,
                ),
            };
            match self
                .roundtrip(&mut conn, req, resp, &mut t, reused.then_some(start))
                .await
            {
                Ok(keep) => {
                    if keep && self.reuse {
                        conns.open.push(conn);
                    }
                    return Ok(t);
                }
                Err(Roundtrip::Stale) if reused => continue,
                Err(Roundtrip::Stale) => {
                    return Err((t, Failure::new(1220, "connection closed before a response")))
                }
                Err(Roundtrip::Failed(f)) => return Err((t, f)),
            }
        }
        Err((t, Failure::new(1220, "connection closed before a response")))
    }

    async fn roundtrip(
        &self,
        conn: &mut Conn,
        req: &Prepared<'_>,
        resp: &mut Response,
        t: &mut Timings,
        reused_since: Option<Instant>,
    ) -> Result<bool, Roundtrip> {
        let sending = Instant::now();
        if let Some(start) = reused_since {
            t.blocked = sending.saturating_duration_since(start);
        }
        if let Err(e) = conn.stream.write_all(req.bytes).await {
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    Roundtrip::Stale
                }
                _ => Roundtrip::Failed(Failure::new(1000, format!("write: {e}"))),
            });
        }
        let sent = Instant::now();
        t.sending = sent - sending;
        resp.raw.clear();
        resp.chunked_body.clear();
        resp.chunked = false;
        resp.sets_cookies = false;
        resp.received = 0;
        let mut first_byte: Option<Instant> = None;
        let mut reader = Reader::default();
        loop {
            if resp.raw.capacity() - resp.raw.len() < 4096 {
                resp.raw.reserve(16 * 1024);
            }
            let n = match conn.stream.read_buf(&mut resp.raw).await {
                Ok(n) => n,
                Err(e)
                    if first_byte.is_none()
                        && matches!(e.kind(), std::io::ErrorKind::ConnectionReset) =>
                {
                    return Err(Roundtrip::Stale)
                }
                Err(e) => return Err(Roundtrip::Failed(Failure::new(1000, format!("read: {e}")))),
            };
            if first_byte.is_none() {
                if n == 0 {
                    return Err(Roundtrip::Stale);
                }
                let now = Instant::now();
                t.waiting = now - sent;
                first_byte = Some(now);
            }
            resp.received += n;
            if let Some(keep_alive) = reader
                .feed(resp, req.head_only, n == 0)
                .map_err(Roundtrip::Failed)?
            {
                let end = Instant::now();
                t.receiving = first_byte.map(|f| end - f).unwrap_or_default();
                t.done = Some(end);
                return Ok(keep_alive);
            }
        }
    }
}

/// Parses a complete response held in `raw` (as if the connection closed after it): its status,
/// body and whether the connection could be reused. The same code reads live responses; this
/// entry point exists for the fuzzer and tests.
pub fn parse_response(raw: &[u8], head_only: bool) -> Result<Option<(u16, Vec<u8>, bool)>, String> {
    let mut resp = Response {
        raw: raw.to_vec(),
        ..Response::default()
    };
    let mut reader = Reader::default();
    match reader.feed(&mut resp, head_only, true) {
        Ok(Some(keep)) => Ok(Some((resp.status, resp.body().to_vec(), keep))),
        Ok(None) => Ok(None),
        Err(f) => Err(f.message),
    }
}

/// The largest response body a virtual user reads (k6 reads bodies whole too, with no bound).
pub const MAX_RESPONSE_BODY: usize = 64 << 20;

/// Where reading one response stands: its head once parsed, and how far chunks are decoded.
#[derive(Default)]
struct Reader {
    head: Option<Head>,
    chunk_at: usize,
}

impl Reader {
    /// Looks at what `resp.raw` holds now; `Some(keep_alive)` once the response is complete.
    /// `eof`: the peer closed the connection.
    fn feed(
        &mut self,
        resp: &mut Response,
        head_only: bool,
        eof: bool,
    ) -> Result<Option<bool>, Failure> {
        while self.head.is_none() {
            // Uninitialised header slots: zeroing 64 of them cost more than parsing.
            let mut headers =
                [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 64];
            let mut parsed = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                &resp.raw,
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = parsed.code.unwrap_or(0);
                    if (100..200).contains(&status) && status != 101 {
                        // An interim response: drop it; the final one may already be here.
                        resp.raw.drain(..len);
                        continue;
                    }
                    let h = Head::of(&parsed, len, head_only, status)?;
                    resp.status = status;
                    resp.head = len;
                    resp.sets_cookies = h.sets_cookies;
                    self.head = Some(h);
                }
                Ok(httparse::Status::Partial) => {
                    if eof {
                        return Err(Failure::new(
                            1000,
                            "connection closed inside the response head",
                        ));
                    }
                    if resp.raw.len() > 1 << 20 {
                        return Err(Failure::new(1000, "response head over 1 MiB"));
                    }
                    return Ok(None);
                }
                Err(e) => return Err(Failure::new(1000, format!("malformed response: {e}"))),
            }
        }
        let h = self.head.as_ref().expect("set above");
        // A response is held whole until it is checked, so its size is bounded: a target that
        // streams without end (or claims a huge Content-Length) fails that request instead of
        // filling the generator's memory.
        let claimed = match h.body {
            BodyLen::Exact(len) => len,
            _ => 0,
        };
        if claimed > MAX_RESPONSE_BODY || resp.raw.len().saturating_sub(h.len) > MAX_RESPONSE_BODY {
            return Err(Failure::new(
                1000,
                format!("response body over {} MiB", MAX_RESPONSE_BODY >> 20),
            ));
        }
        let done = match h.body {
            BodyLen::None => {
                resp.body_at = h.len..h.len;
                true
            }
            BodyLen::Exact(len) => {
                let end = h
                    .len
                    .checked_add(len)
                    .ok_or_else(|| Failure::new(1000, "bad Content-Length"))?;
                if resp.raw.len() >= end {
                    resp.body_at = h.len..end;
                    true
                } else if eof {
                    return Err(Failure::new(1000, "connection closed inside the body"));
                } else {
                    false
                }
            }
            BodyLen::UntilClose => {
                resp.body_at = h.len..resp.raw.len();
                eof
            }
            BodyLen::Chunked => {
                resp.chunked = true;
                if self.chunk_at == 0 {
                    self.chunk_at = h.len;
                }
                match dechunk(&resp.raw, &mut self.chunk_at, &mut resp.chunked_body) {
                    Ok(true) => true,
                    Ok(false) if eof => {
                        return Err(Failure::new(
                            1000,
                            "connection closed inside a chunked body",
                        ))
                    }
                    Ok(false) => false,
                    Err(e) => return Err(Failure::new(1000, e)),
                }
            }
        };
        Ok(done.then_some(h.keep_alive && !matches!(h.body, BodyLen::UntilClose)))
    }
}

enum Roundtrip {
    /// The connection was dead before any response byte.
    Stale,
    Failed(Failure),
}

enum BodyLen {
    None,
    Exact(usize),
    Chunked,
    UntilClose,
}

struct Head {
    len: usize,
    body: BodyLen,
    keep_alive: bool,
    sets_cookies: bool,
}

impl Head {
    fn of(
        r: &httparse::Response<'_, '_>,
        len: usize,
        head_only: bool,
        status: u16,
    ) -> Result<Head, Failure> {
        let mut body = BodyLen::UntilClose;
        let mut keep_alive = r.version == Some(1);
        let mut sets_cookies = false;
        for h in r.headers.iter() {
            sets_cookies |= h.name.eq_ignore_ascii_case("set-cookie");
            if h.name.eq_ignore_ascii_case("content-length") {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| Failure::new(1000, "bad Content-Length"))?;
                if !matches!(body, BodyLen::Chunked) {
                    body = BodyLen::Exact(v);
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if h.value.eq_ignore_ascii_case(b"chunked") || h.value.ends_with(b"chunked") {
                    body = BodyLen::Chunked;
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                if h.value.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        if head_only || status == 204 || status == 304 {
            body = BodyLen::None;
        }
        Ok(Head {
            len,
            body,
            keep_alive,
            sets_cookies,
        })
    }
}

/// Appends complete chunks from `raw[*at..]` to `out`; true once the last chunk and trailers are in.
fn dechunk(raw: &[u8], at: &mut usize, out: &mut Vec<u8>) -> Result<bool, String> {
    loop {
        let rest = &raw[*at..];
        match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete((used, 0))) => {
                // Trailers end with an empty line; the common case is none at all.
                let tail = &rest[used..];
                if tail.starts_with(b"\r\n") {
                    return Ok(true);
                }
                return Ok(memchr::memmem::find(tail, b"\r\n\r\n").is_some());
            }
            Ok(httparse::Status::Complete((used, size))) => {
                let size = usize::try_from(size).map_err(|_| "chunk too large".to_string())?;
                let need = used
                    .checked_add(size)
                    .and_then(|n| n.checked_add(2))
                    .ok_or("chunk too large")?;
                if rest.len() < need {
                    return Ok(false);
                }
                out.extend_from_slice(&rest[used..used + size]);
                *at += used + size + 2;
            }
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(_) => return Err("malformed chunked body".into()),
        }
    }
}

/// Writes an HTTP/1.1 request into `out`.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    user_agent: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: ");
    out.extend_from_slice(user_agent.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        // A header value cannot hold a line break; one from a template would split the request.
        out.extend(v.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Accepts any certificate (`insecureSkipTLSVerify`), still checking handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_reads() {
        let raw = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        let mut at = 0;
        let mut out = Vec::new();
        assert!(!dechunk(&raw[..9], &mut at, &mut out).unwrap());
        assert_eq!(out, b"Wiki");
        assert!(dechunk(raw, &mut at, &mut out).unwrap());
        assert_eq!(out, b"Wikipedia");
    }

    #[test]
    fn responses_parse_with_every_framing() {
        let r = parse_response(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            false,
        );
        assert_eq!(r.unwrap(), Some((200, b"hi".to_vec(), true)));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
            false,
        );
        assert_eq!(r.unwrap(), Some((200, b"ab".to_vec(), true)));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
            false,
        );
        assert_eq!(r.unwrap(), Some((200, b"until the end".to_vec(), false)));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(r.unwrap(), Some((200, vec![], true)), "HEAD has no body");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false).is_err());
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            false
        )
        .is_err());
        assert!(parse_response(b"NOT HTTP", false).is_err());
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n",
                false
            ),
            Err("response body over 64 MiB".into()),
            "a body too large to hold fails the request"
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_err());
    }

    #[test]
    fn requests_are_written_as_http11() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "POST",
            "/a?b=1",
            "h:8080",
            "ua",
            &[("X-T", "v\r\nEvil: 1")],
            b"{}",
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /a?b=1 HTTP/1.1\r\nHost: h:8080\r\nUser-Agent: ua\r\nX-T: vEvil: 1\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
