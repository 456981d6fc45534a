//! The legacy `/api/{project}/store/` body: one event as JSON, or base64 of zlib-compressed
//! JSON (old raven clients), possibly with bare `NaN`/`Infinity` tokens that raven-python wrote.

use std::io::Read;

use crate::ProtocolError;

/// Turns a decoded store body into event JSON bytes.
pub fn event_json(body: &[u8], cap: usize) -> Result<Vec<u8>, ProtocolError> {
    let trimmed = body.trim_ascii_start();
    let json = if trimmed.starts_with(b"{") {
        trimmed.to_vec()
    } else {
        let text = std::str::from_utf8(trimmed).map_err(|_| {
            ProtocolError::Malformed("store body is neither JSON nor base64".into())
        })?;
        let raw = crate::auth::base64_decode(text.trim()).ok_or_else(|| {
            ProtocolError::Malformed("store body is neither JSON nor base64".into())
        })?;
        if raw.trim_ascii_start().starts_with(b"{") {
            raw
        } else {
            let mut out = Vec::new();
            let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
            flate2::read::ZlibDecoder::new(raw.as_slice())
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| ProtocolError::Malformed(format!("cannot inflate store body: {e}")))?;
            if out.len() > cap {
                return Err(ProtocolError::TooLarge(format!(
                    "event exceeds {cap} bytes"
                )));
            }
            out
        }
    };
    Ok(sanitize_non_finite(&json))
}

/// Replaces bare `NaN`, `Infinity` and `-Infinity` outside strings with `null` (Relay does the
/// same for raven-python, whose JSON encoder writes them).
fn sanitize_non_finite(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let rest = json.get(i..).unwrap_or_default();
        if let Some(tok) = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|t| rest.starts_with(t))
        {
            out.extend_from_slice(b"null");
            i += tok.len();
            continue;
        }
        if b == b'"' {
            in_string = true;
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn plain_base64_and_zlib_bodies_and_nan() {
        let ev = br#"{"message":"hi","extra":{"x":NaN,"s":"NaN stays"}}"#;
        let plain = event_json(ev, 1 << 20).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert!(v["extra"]["x"].is_null() && v["extra"]["s"] == "NaN stays");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(br#"{"message":"zipped"}"#).unwrap();
        let b64 = base64(&z.finish().unwrap());
        let v: serde_json::Value =
            serde_json::from_slice(&event_json(b64.as_bytes(), 1 << 20).unwrap()).unwrap();
        assert_eq!(v["message"], "zipped");
        assert!(event_json(b"%%%", 1 << 20).is_err());
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
