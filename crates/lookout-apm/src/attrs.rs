//! OTLP attribute lists: lookups by current and older semantic-convention names, and the JSON
//! form kept with each stored span, log and metric series.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde_json::{Map, Value};

/// Longest attribute string kept; a stack trace or a statement is still whole at this size.
const MAX_STRING: usize = 8 * 1024;
/// Deepest nesting of array and map values kept (untrusted input must not recurse without end).
const MAX_DEPTH: usize = 8;

/// The value of the first of `names` present in `attrs` that `f` can read.
fn first_of<T>(attrs: &[KeyValue], names: &[&str], f: impl Fn(&Any) -> Option<T>) -> Option<T> {
    names.iter().find_map(|n| {
        attrs
            .iter()
            .find(|kv| kv.key == *n)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(&f)
    })
}

/// The first of `names` present in `attrs` as a string (numbers and booleans are formatted).
pub fn string(attrs: &[KeyValue], names: &[&str]) -> Option<String> {
    first_of(attrs, names, |v| match v {
        Any::StringValue(s) if !s.is_empty() => Some(truncate(s)),
        Any::IntValue(i) => Some(i.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        _ => None,
    })
}

/// The first of `names` present in `attrs` as an integer (numeric strings are read too: some
/// older instrumentations send `http.status_code` as a string).
pub fn int(attrs: &[KeyValue], names: &[&str]) -> Option<i64> {
    first_of(attrs, names, |v| match v {
        Any::IntValue(i) => Some(*i),
        Any::DoubleValue(d) if d.is_finite() => Some(*d as i64),
        Any::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_STRING {
        return s.to_string();
    }
    let mut end = MAX_STRING;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// `attrs` as a JSON object (later duplicates of a key win, as the specification allows).
pub fn to_json(attrs: &[KeyValue]) -> Map<String, Value> {
    let mut out = Map::new();
    for kv in attrs {
        if let Some(v) = kv.value.as_ref() {
            out.insert(kv.key.clone(), any_to_json(v, 0));
        }
    }
    out
}

/// One OTLP `AnyValue` as JSON; bytes become hex, too-deep values `null`.
pub fn any_to_json(v: &AnyValue, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    match v.value.as_ref() {
        None => Value::Null,
        Some(Any::StringValue(s)) => Value::String(truncate(s)),
        Some(Any::BoolValue(b)) => Value::Bool(*b),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(Any::BytesValue(b)) => Value::String(hex::encode(b)),
        Some(Any::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|x| any_to_json(x, depth + 1)).collect())
        }
        Some(Any::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .filter_map(|x| Some((x.key.clone(), any_to_json(x.value.as_ref()?, depth + 1))))
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        Some(_) => Value::Null,
    }
}

/// An `AnyValue` as display text (log bodies): strings as they are, anything else as JSON.
pub fn any_to_text(v: &AnyValue) -> String {
    match any_to_json(v, 0) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Lowercase hex of `bytes`. The `hex` crate's `encode` builds its string a `char` at a time;
/// ids are encoded for every span, so this writes through its slice encoder instead.
pub fn hex_id(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    // The buffer has exactly twice the input's length, which is all `encode_to_slice` needs.
    let _ = hex::encode_to_slice(bytes, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}
