//! Why a probe failed, in the words a person reads on a monitor page, always naming the target:
//! `cannot connect to 127.0.0.1:5432: connection refused`, `timed out after 10 s connecting to
//! example.test:443`, `DNS lookup failed for nosuch.test`, `TLS handshake failed with
//! example.test:443: invalid peer certificate: UnknownIssuer`.
//!
//! Errors are classified by what they are (the `io::ErrorKind` or the `rustls::Error` found by
//! walking `source()`), not by their text: hyper's chain (`client error (Connect): tcp connect
//! error: …`) says the same thing three times and names no target. The only text read is the
//! outbound resolver's, which reaches us as a string because reqwest boxes it.

use std::error::Error as StdError;
use std::io;

/// The plain words for an I/O error: its kind in lower case (`connection refused`), or the
/// operating system's message without the `(os error N)` suffix.
pub(crate) fn io_words(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let known = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by the server",
        K::ConnectionAborted => "connection aborted",
        K::NotConnected => "not connected",
        K::AddrNotAvailable => "address not available",
        K::TimedOut => "timed out",
        K::UnexpectedEof => "the server closed the connection",
        K::PermissionDenied => "permission denied",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    };
    lower_first(&text)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `cannot connect to {target}: connection refused`.
pub(crate) fn cannot_connect(target: &str, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::TimedOut {
        return format!("timed out connecting to {target}");
    }
    format!("cannot connect to {target}: {}", io_words(e))
}

/// `timed out after 10 s connecting to example.test:443` (or `… waiting for <what>`).
pub(crate) fn timed_out(secs: u32, connecting: bool, target: &str) -> String {
    if connecting {
        format!("timed out after {secs} s connecting to {target}")
    } else {
        format!("timed out after {secs} s waiting for {target}")
    }
}

/// A resolver failure as reqwest or [`lookout_outbound::resolve`] gives it: a refusal by the
/// outbound policy keeps the policy's words; anything else is a failed lookup.
pub(crate) fn resolve_failure(host: &str, target: &str, why: &str) -> String {
    if why.contains("outbound policy") {
        format!("cannot connect to {target}: {why}")
    } else {
        format!("DNS lookup failed for {host}")
    }
}

/// The causes of `e`, outermost first (`e` itself excluded).
fn chain<'a>(
    e: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut next = e.source();
    std::iter::from_fn(move || {
        let cur = next?;
        next = cur.source();
        Some(cur)
    })
}

/// The causes of `e` with what I/O errors wrap: `io::Error::source()` skips the error an
/// `io::Error` carries (hyper reports a TLS failure as an I/O error holding an I/O error holding
/// the `rustls::Error`), so those are unwrapped with `get_ref`.
fn causes<'a>(e: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    for s in chain(e) {
        out.push(s);
        let mut cur = s;
        while let Some(inner) = cur.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            let inner: &(dyn StdError + 'static) = inner;
            out.push(inner);
            cur = inner;
        }
    }
    out
}

/// The operating system's error among the causes (an I/O error that wraps nothing).
fn io_cause<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    causes(e)
        .into_iter()
        .filter_map(|s| s.downcast_ref::<io::Error>())
        .find(|io| io.get_ref().is_none())
}

/// The TLS error among the causes, if the failure was the handshake's.
fn tls_cause<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    causes(e)
        .into_iter()
        .find_map(|s| s.downcast_ref::<rustls::Error>())
}

/// An HTTP check's request error, naming `url`'s `host:port`.
pub(crate) fn http_failure(url: &reqwest::Url, e: &reqwest::Error, timeout_s: u32) -> String {
    let host = url.host_str().unwrap_or_default().to_string();
    let target = match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    // The password of `https://user:pass@host/` never reaches a failure text.
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let url = &shown;
    let err: &(dyn StdError + 'static) = e;
    if let Some(tls) = tls_cause(err) {
        return format!("TLS handshake failed with {target}: {tls}");
    }
    if e.is_timeout() {
        return timed_out(timeout_s, e.is_connect(), &target);
    }
    if e.is_redirect() {
        return format!(
            "redirect from {url} failed: {}",
            chain(err)
                .last()
                .map_or_else(|| e.to_string(), |s| s.to_string())
        );
    }
    if e.is_connect() {
        if let Some(io) = io_cause(err) {
            return cannot_connect(&target, io);
        }
        // No operating-system error underneath: the resolver failed (its error reaches us as a
        // boxed string: the outbound policy's refusal, or a failed lookup).
        let innermost = causes(err)
            .last()
            .map_or_else(|| e.to_string(), |s| s.to_string());
        if innermost.contains("outbound policy")
            || innermost.starts_with("cannot resolve")
            || innermost.ends_with("has no address")
        {
            return resolve_failure(&host, &target, &innermost);
        }
        return format!("cannot connect to {target}: {innermost}");
    }
    if let Some(io) = io_cause(err) {
        return format!("request to {url} failed: {}", io_words(io));
    }
    format!("request to {url} failed: {}", lookout_outbound::describe(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_plain_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            cannot_connect("127.0.0.1:5432", &refused),
            "cannot connect to 127.0.0.1:5432: connection refused"
        );
        let os = io::Error::from_raw_os_error(111);
        assert_eq!(io_words(&os), "connection refused");
        let other = io::Error::other("Broken pipe (os error 32)");
        assert_eq!(io_words(&other), "broken pipe");
    }

    #[test]
    fn resolver_failures_name_the_host_or_keep_the_policy_reason() {
        assert_eq!(
            resolve_failure(
                "nosuch.test",
                "nosuch.test:80",
                "cannot resolve nosuch.test: failed to lookup address information"
            ),
            "DNS lookup failed for nosuch.test"
        );
        assert!(resolve_failure(
            "x.test",
            "x.test:80",
            "127.0.0.1 is in a denied network (outbound policy)"
        )
        .starts_with("cannot connect to x.test:80: 127.0.0.1 is in a denied network"));
    }

    #[tokio::test]
    async fn a_refused_http_connection_names_its_target() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/health")).unwrap();
        let e = reqwest::Client::new()
            .get(url.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            http_failure(&url, &e, 10),
            format!("cannot connect to 127.0.0.1:{port}: connection refused")
        );
    }
}
