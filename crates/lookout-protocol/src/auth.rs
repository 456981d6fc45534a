//! Where Sentry SDKs put the DSN public key, and how to find it.
//!
//! In order of commonness: `X-Sentry-Auth: Sentry sentry_key=…, sentry_version=7, …` (Python and
//! most server SDKs), the query string `?sentry_key=…` (every JS SDK, Node included),
//! `Authorization: Sentry …` or `Authorization: Basic base64(key:secret)`, and the envelope
//! header `"dsn"`. Only the public key matters; a secret, if sent, is ignored (it is deprecated).
//! When several places carry a key they must agree.

use crate::ProtocolError;

/// The key named in a `Sentry sentry_key=…, …` auth value (the `Sentry ` prefix is optional).
pub fn key_from_sentry_auth(value: &str) -> Option<String> {
    let v = value.trim();
    let v = if v.len() >= 7
        && v.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("sentry "))
    {
        v.get(7..).unwrap_or("")
    } else {
        v
    };
    v.split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == "sentry_key")
        .map(|(_, val)| val.trim().to_string())
        .filter(|k| !k.is_empty())
}

/// The key in an `Authorization` header: `Sentry …` or `Basic base64(key:…)`.
pub fn key_from_authorization(value: &str) -> Option<String> {
    let v = value.trim();
    if let Some(rest) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    {
        let decoded = base64_decode(rest.trim())?;
        let text = String::from_utf8(decoded).ok()?;
        let key = text.split(':').next()?.trim().to_string();
        return (!key.is_empty()).then_some(key);
    }
    key_from_sentry_auth(v)
}

/// The `sentry_key` query parameter.
pub fn key_from_query(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "sentry_key")
        .map(|(_, v)| v.to_string())
        .filter(|k| !k.is_empty())
}

/// The public key of a DSN (`scheme://key[:secret]@host/…/project`).
pub fn key_from_dsn(dsn: &str) -> Option<String> {
    let rest = dsn.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    let key = userinfo.split(':').next()?;
    (!key.is_empty()).then(|| key.to_string())
}

/// Picks the one key among those found; different keys are an error (Relay does the same).
pub fn agree(found: &[Option<String>]) -> Result<Option<String>, ProtocolError> {
    let mut key: Option<&String> = None;
    for k in found.iter().flatten() {
        match key {
            None => key = Some(k),
            Some(prev) if prev == k => {}
            Some(_) => {
                return Err(ProtocolError::Malformed(
                    "multiple different sentry keys in one request".into(),
                ))
            }
        }
    }
    Ok(key.cloned())
}

/// Standard base64 (with or without padding). Hand-written because `Basic` auth from old SDKs is
/// its only use and a crate for eleven lines is not worth the dependency.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len().saturating_sub(1);
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_wherever_sdks_put_them() {
        let py = "Sentry sentry_key=abc123publickey, sentry_version=7, sentry_client=sentry.python/2.75.0";
        assert_eq!(key_from_sentry_auth(py).as_deref(), Some("abc123publickey"));
        assert_eq!(
            key_from_sentry_auth("sentry sentry_version=7,sentry_key=k1").as_deref(),
            Some("k1")
        );
        assert_eq!(
            key_from_authorization("Sentry sentry_key=k2").as_deref(),
            Some("k2")
        );
        // base64("k3:secret") = azM6c2VjcmV0
        assert_eq!(
            key_from_authorization("Basic azM6c2VjcmV0").as_deref(),
            Some("k3")
        );
        assert_eq!(
            key_from_query("sentry_version=7&sentry_key=k4&sentry_client=x").as_deref(),
            Some("k4")
        );
        assert_eq!(
            key_from_dsn("http://k5:sec@127.0.0.1:9/some/prefix/42").as_deref(),
            Some("k5")
        );
        assert_eq!(key_from_sentry_auth("Sentry sentry_version=7"), None);
        assert_eq!(
            agree(&[None, Some("a".into()), Some("a".into())])
                .unwrap()
                .as_deref(),
            Some("a")
        );
        assert!(agree(&[Some("a".into()), Some("b".into())]).is_err());
    }
}
