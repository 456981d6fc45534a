//! The Sentry envelope format: a JSON header line, then items, each a JSON header line and a
//! payload. A payload is exactly `length` bytes when the item header has `length` (Python SDK),
//! otherwise it runs to the next newline (Node SDK). Unknown keys and item types are kept for the
//! caller to skip; only structural errors are refused.

use serde_json::{Map, Value};

use crate::ProtocolError;

/// Most items one envelope may carry (SDKs send a handful; this bounds parsing work).
pub const MAX_ITEMS: usize = 1000;

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The envelope header (`event_id`, `sent_at`, `dsn`, `sdk`, `trace`, …).
    pub headers: Map<String, Value>,
    /// The items, in order.
    pub items: Vec<Item>,
}

/// One item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item header (`type`, `length`, `filename`, `content_type`, …).
    pub headers: Map<String, Value>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl Item {
    /// The item's `type`.
    pub fn ty(&self) -> &str {
        self.headers
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

impl Envelope {
    /// A header string value.
    pub fn header_str(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(Value::as_str)
    }
}

/// Largest envelope or item header line. Real headers are a few hundred bytes; parsing a
/// megabyte-long one into a JSON `Value` costs up to 16 times its size, outside any budget the
/// caller keeps for payloads.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

fn header_line(line: &[u8], what: &str) -> Result<Map<String, Value>, ProtocolError> {
    if line.len() > MAX_HEADER_BYTES {
        return Err(ProtocolError::TooLarge(format!(
            "{what} longer than {MAX_HEADER_BYTES} bytes"
        )));
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ProtocolError::Malformed(format!(
            "{what} is not a JSON object"
        ))),
        Err(e) => Err(ProtocolError::Malformed(format!(
            "{what} is not valid JSON: {e}"
        ))),
    }
}

fn item_type(headers: &Map<String, Value>) -> &str {
    headers.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The line starting at `from`: its end (exclusive) and where the next line starts.
fn line_at(body: &[u8], from: usize) -> (usize, usize) {
    match body
        .get(from..)
        .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
    {
        Some(i) => (from + i, from + i + 1),
        None => (body.len(), body.len()),
    }
}

/// Parses an envelope, keeping every item.
pub fn parse(body: &[u8]) -> Result<Envelope, ProtocolError> {
    parse_with(body, &mut |_, _| Ok(true))
}

/// Parses an envelope, asking `keep(type, payload size)` about each item before its payload is
/// copied: `Ok(true)` keeps it, `Ok(false)` leaves it out (an item type the caller skips, an
/// attachment over its cap), an error refuses the envelope (an event over its cap). This is how
/// each item kind gets its own size cap without copying what would be thrown away.
pub fn parse_with(
    body: &[u8],
    keep: &mut dyn FnMut(&str, usize) -> Result<bool, ProtocolError>,
) -> Result<Envelope, ProtocolError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ProtocolError::Malformed("empty envelope".into()));
    }
    let (end, mut pos) = line_at(body, 0);
    let headers = header_line(body.get(..end).unwrap_or_default(), "envelope header")?;
    let mut items = Vec::new();
    // Every item counts against MAX_ITEMS, kept or skipped: a million skipped items cost a
    // million header parses.
    let mut seen = 0usize;
    while pos < body.len() {
        let (end, next) = line_at(body, pos);
        let line = body.get(pos..end).unwrap_or_default();
        if line.iter().all(u8::is_ascii_whitespace) {
            pos = next; // blank lines between items are tolerated
            continue;
        }
        seen += 1;
        if seen > MAX_ITEMS {
            return Err(ProtocolError::TooLarge(format!(
                "more than {MAX_ITEMS} items in one envelope"
            )));
        }
        let item_headers = header_line(line, "item header")?;
        if !item_headers.get("type").is_some_and(Value::is_string) {
            return Err(ProtocolError::Malformed(
                "item header without a type".into(),
            ));
        }
        pos = next;
        let payload = match item_headers.get("length") {
            Some(len) => {
                let len = len
                    .as_u64()
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| {
                        ProtocolError::Malformed("item length is not a whole number".into())
                    })?;
                let stop = pos
                    .checked_add(len)
                    .filter(|s| *s <= body.len())
                    .ok_or_else(|| {
                        ProtocolError::Malformed("envelope ends before the item's length".into())
                    })?;
                let keep = keep(item_type(&item_headers), len)?;
                let payload = keep.then(|| body.get(pos..stop).unwrap_or_default().to_vec());
                pos = stop;
                match body.get(pos) {
                    None => {}
                    Some(b'\n') => pos += 1,
                    Some(_) => {
                        return Err(ProtocolError::Malformed(
                            "item payload longer than its length".into(),
                        ))
                    }
                }
                payload
            }
            None => {
                let (end, next) = line_at(body, pos);
                let keep = keep(item_type(&item_headers), end - pos)?;
                let payload = keep.then(|| body.get(pos..end).unwrap_or_default().to_vec());
                pos = next;
                payload
            }
        };
        if let Some(payload) = payload {
            items.push(Item {
                headers: item_headers,
                payload,
            });
        }
    }
    Ok(Envelope { headers, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_header_lines_and_too_many_skipped_items_are_refused() {
        let mut long = b"{}\n{\"type\":\"event\",\"x\":[".to_vec();
        long.extend(std::iter::repeat_n(b"0,".as_slice(), 40_000).flatten());
        long.extend_from_slice(b"0]}\n{}\n");
        assert!(matches!(parse(&long), Err(ProtocolError::TooLarge(_))));
        let mut many = b"{}\n".to_vec();
        for _ in 0..=MAX_ITEMS {
            many.extend_from_slice(b"{\"type\":\"unknown_kind\"}\n{}\n");
        }
        let skip_all = &mut |_: &str, _: usize| Ok(false);
        assert!(matches!(
            parse_with(&many, skip_all),
            Err(ProtocolError::TooLarge(_))
        ));
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../fixtures/sentry/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn python_envelope_with_lengths_and_an_attachment() {
        let env = parse(&fixture(
            "07_exception_with_fingerprint_user_tags_breadcrumb_attachment.envelope.txt",
        ))
        .unwrap();
        let types: Vec<&str> = env.items.iter().map(Item::ty).collect();
        assert_eq!(types, ["event", "attachment"]);
        assert_eq!(env.items[1].payload, b"hello attachment\n");
        assert!(env.header_str("event_id").is_some());
    }

    #[test]
    fn node_envelopes_without_lengths() {
        for f in [
            "20_node_session.envelope.txt",
            "21_node_capture_exception.envelope.txt",
            "22_node_capture_message.envelope.txt",
        ] {
            let env = parse(&fixture(f)).unwrap();
            assert_eq!(env.items.len(), 1, "{f}");
            assert!(
                serde_json::from_slice::<Value>(&env.items[0].payload).is_ok(),
                "{f}"
            );
        }
    }

    #[test]
    fn every_captured_envelope_parses() {
        let dir = format!("{}/../../fixtures/sentry", env!("CARGO_MANIFEST_DIR"));
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".envelope.txt") {
                let env =
                    parse(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{p:?}: {e}"));
                assert!(!env.items.is_empty(), "{p:?}");
            }
        }
    }

    #[test]
    fn structural_errors_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(b"not json\n").is_err());
        assert!(
            parse(b"{}\n{\"length\":3}\nabc").is_err(),
            "item without type"
        );
        assert!(
            parse(b"{}\n{\"type\":\"event\",\"length\":10}\nabc").is_err(),
            "short payload"
        );
        assert!(
            parse(b"{}\n{\"type\":\"event\",\"length\":2}\nabc\n").is_err(),
            "long payload"
        );
        let ok = parse(b"{}\n{\"type\":\"x\",\"length\":3}\nabc\n{\"type\":\"y\"}\n{}\n").unwrap();
        assert_eq!(ok.items.len(), 2);
        assert_eq!(parse(b"{}").unwrap().items.len(), 0);
    }

    #[test]
    fn each_item_kind_gets_its_own_cap() {
        let body = b"{}\n{\"type\":\"event\",\"length\":2}\n{}\n{\"type\":\"attachment\",\"length\":5}\nhello\n{\"type\":\"replay\"}\nabc\n";
        let mut seen = Vec::new();
        let env = parse_with(body, &mut |ty, len| {
            seen.push((ty.to_string(), len));
            Ok(ty == "event")
        })
        .unwrap();
        assert_eq!(env.items.len(), 1);
        assert_eq!(
            seen,
            [
                ("event".into(), 2),
                ("attachment".into(), 5),
                ("replay".into(), 3)
            ]
        );
        let refused = parse_with(body, &mut |ty, len| {
            if ty == "event" && len > 1 {
                Err(ProtocolError::TooLarge("event".into()))
            } else {
                Ok(true)
            }
        });
        assert!(matches!(refused, Err(ProtocolError::TooLarge(_))));
    }
}
