//! A VU's cookie jar, as k6 keeps one per VU: `Set-Cookie` from a response is sent back as
//! `Cookie` on later requests to the same host, so session-cookie logins work without scripting.
//!
//! Deliberately small and hand-written: cookies are keyed by host (the `Domain` and `Path`
//! attributes are not applied), `Max-Age<=0` or an empty value deletes one, and `Expires` is not
//! read. A load test's cookies come from the system under test within one run; a general jar's
//! public-suffix and expiry machinery would cost per request without changing the result.

/// Cookies by host.
#[derive(Debug, Default)]
pub struct Jar {
    cookies: Vec<(String, String, String)>,
}

impl Jar {
    /// Stores the cookies of one `Set-Cookie` header received from `host`.
    pub fn store(&mut self, host: &str, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() {
            return;
        }
        let expired = parts.any(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            k.trim().eq_ignore_ascii_case("max-age")
                && v.trim().parse::<i64>().is_ok_and(|s| s <= 0)
        });
        self.cookies.retain(|(h, n, _)| !(h == host && n == name));
        if !expired && !value.is_empty() {
            self.cookies
                .push((host.to_string(), name.to_string(), value.to_string()));
        }
    }

    /// The `Cookie` header value for `host`, if the jar holds any for it.
    pub fn header_for(&self, host: &str) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(h, _, _)| h == host)
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Whether the jar is empty (the common case: requests go out as prepared).
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

/// `bytes` (a complete request) with a `Cookie` header added to its head.
pub fn with_cookie(bytes: &[u8], cookie: &str) -> Vec<u8> {
    let end = memchr::memmem::find(bytes, b"\r\n\r\n").map_or(bytes.len(), |e| e + 2);
    let mut out = Vec::with_capacity(bytes.len() + cookie.len() + 10);
    out.extend_from_slice(&bytes[..end]);
    out.extend_from_slice(b"Cookie: ");
    out.extend(cookie.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&bytes[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_go_back_to_their_host_until_deleted() {
        let mut j = Jar::default();
        j.store("a.test", "sid=abc; Path=/; HttpOnly");
        j.store("a.test", "theme=\"dark\"");
        j.store("b.test", "other=1");
        assert_eq!(
            j.header_for("a.test").as_deref(),
            Some("sid=abc; theme=dark")
        );
        j.store("a.test", "sid=def");
        assert_eq!(
            j.header_for("a.test").as_deref(),
            Some("theme=dark; sid=def")
        );
        j.store("a.test", "sid=gone; Max-Age=0");
        j.store("a.test", "theme=");
        assert_eq!(j.header_for("a.test"), None);
        assert_eq!(j.header_for("b.test").as_deref(), Some("other=1"));
    }

    #[test]
    fn the_cookie_header_goes_into_the_head() {
        let req = b"POST / HTTP/1.1\r\nHost: h\r\n\r\nbody";
        assert_eq!(
            with_cookie(req, "a=1"),
            b"POST / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\n\r\nbody".to_vec()
        );
    }
}
