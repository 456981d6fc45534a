//! Sentry `transaction` events as spans: the transaction is the request span, its `spans` the
//! children — so services instrumented with a Sentry SDK get the same RED figures, traces and
//! slow-query log as OpenTelemetry ones.

use serde_json::{json, Map, Value};

use crate::span::{host_of, is_error, kind, resource_hash, status_class, Category, Span};
use crate::statement;

/// Sentry span statuses that mean the work failed (the rest — `ok`, `cancelled`, `not_found`,
/// `unauthenticated`, … — are outcomes, not failures, as in Sentry's own failure rate).
const FAILED: &[&str] = &[
    "internal_error",
    "unknown_error",
    "unknown",
    "unavailable",
    "data_loss",
    "deadline_exceeded",
    "unimplemented",
    "aborted",
    "resource_exhausted",
];

/// A Sentry timestamp (RFC 3339 text or seconds since the epoch) in nanoseconds.
fn ts_ns(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| (f * 1e9) as i64),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt()),
        _ => None,
    }
}

fn hex_id(v: Option<&Value>, len: usize) -> Option<String> {
    let s = v?.as_str()?.replace('-', "").to_ascii_lowercase();
    (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.chars().take(8_192).collect()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The resource of a transaction's spans: (hash, attributes as JSON).
pub fn resource_of(service: &str) -> (String, String) {
    let json = json!({ "service.name": service }).to_string();
    (resource_hash(&json), json)
}

/// The spans of one transaction event; `service` names the service when the event carries no
/// `service` tag (their resource is [`resource_of`] the service). Events without a trace
/// context give no spans.
pub fn spans_from_transaction(ev: &Value, service: &str) -> Vec<Span> {
    let trace = &ev["contexts"]["trace"];
    let (Some(trace_id), Some(root_id)) = (
        hex_id(trace.get("trace_id"), 32),
        hex_id(trace.get("span_id"), 16),
    ) else {
        return Vec::new();
    };
    let service = text(ev["tags"].get("service"))
        .or_else(|| text(trace["data"].get("service.name")))
        .unwrap_or_else(|| service.to_string());
    let instance = text(ev.get("server_name"));
    let resource = resource_of(&service).0;
    let http_status = ev["contexts"]["response"]["status_code"]
        .as_i64()
        .or_else(|| text(ev["tags"].get("http.status_code")).and_then(|s| s.parse().ok()));
    let mut out = Vec::new();
    let name = text(ev.get("transaction")).unwrap_or_else(|| "<unlabeled transaction>".into());
    let status = trace["status"].as_str().unwrap_or("");
    let start = ts_ns(ev.get("start_timestamp"));
    let end = ts_ns(ev.get("timestamp"));
    let (Some(start), Some(end)) = (start, end) else {
        return out;
    };
    let mut root_attrs = Map::new();
    for k in ["release", "environment", "platform"] {
        if let Some(v) = ev.get(k).filter(|v| !v.is_null()) {
            root_attrs.insert(format!("sentry.{k}"), v.clone());
        }
    }
    if let Some(op) = trace["op"].as_str() {
        root_attrs.insert("sentry.op".into(), json!(op));
    }
    let code = if FAILED.contains(&status) {
        2
    } else if status == "ok" {
        1
    } else {
        0
    };
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id,
        parent_span_id: hex_id(trace.get("parent_span_id"), 16),
        service: service.clone(),
        instance: instance.clone(),
        name: name.clone(),
        kind: kind::SERVER,
        start_ns: start,
        duration_ns: (end - start).max(0),
        status: code,
        error: is_error(code, kind::SERVER, Category::Request, http_status),
        category: Category::Request,
        operation: name,
        status_class: status_class(http_status),
        http_status,
        db_system: None,
        db_statement: None,
        peer: None,
        resource: resource.clone(),
        detail: json!({ "attributes": root_attrs }).to_string(),
    });
    for s in ev["spans"].as_array().into_iter().flatten().take(10_000) {
        let (Some(span_id), Some(start), Some(end)) = (
            hex_id(s.get("span_id"), 16),
            ts_ns(s.get("start_timestamp")),
            ts_ns(s.get("timestamp")),
        ) else {
            continue;
        };
        let op = s["op"].as_str().unwrap_or("");
        let description = text(s.get("description"));
        let data = &s["data"];
        let db_system = text(data.get("db.system")).or_else(|| {
            (op == "db" || op.starts_with("db.")).then(|| {
                op.strip_prefix("db.")
                    .filter(|x| *x != "query" && *x != "sql")
                    .unwrap_or("sql")
                    .to_string()
            })
        });
        let (category, kind_, peer) = if db_system.is_some() {
            (Category::Db, kind::CLIENT, text(data.get("server.address")))
        } else if op.starts_with("http.client") {
            let url = text(data.get("url")).or_else(|| {
                description
                    .as_deref()
                    .and_then(|d| d.split_whitespace().nth(1))
                    .map(str::to_string)
            });
            (
                Category::External,
                kind::CLIENT,
                url.and_then(|u| host_of(&u)),
            )
        } else {
            (Category::Internal, kind::INTERNAL, None)
        };
        let db_statement = (category == Category::Db)
            .then(|| description.as_deref().map(statement::normalize))
            .flatten();
        let operation = match category {
            Category::Db => db_statement
                .as_deref()
                .map(statement::summary)
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| op.to_string()),
            Category::External => peer.clone().unwrap_or_else(|| op.to_string()),
            _ => description.clone().unwrap_or_else(|| op.to_string()),
        };
        let st = s["status"].as_str().unwrap_or("");
        let code = if FAILED.contains(&st) {
            2
        } else if st == "ok" {
            1
        } else {
            0
        };
        let span_http = data["http.response.status_code"]
            .as_i64()
            .or_else(|| data["status_code"].as_i64());
        out.push(Span {
            trace_id: hex_id(s.get("trace_id"), 32).unwrap_or_else(|| trace_id.clone()),
            span_id,
            parent_span_id: hex_id(s.get("parent_span_id"), 16),
            service: service.clone(),
            instance: instance.clone(),
            name: description.clone().unwrap_or_else(|| op.to_string()),
            kind: kind_,
            start_ns: start,
            duration_ns: (end - start).max(0),
            status: code,
            error: is_error(code, kind_, category, span_http),
            category,
            operation,
            status_class: status_class(span_http),
            http_status: span_http,
            db_system,
            db_statement,
            peer,
            resource: resource.clone(),
            detail: json!({ "attributes": data, "sentry.op": op }).to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_captured_python_sdk_transaction_becomes_a_request_and_a_db_call() {
        // Captured from sentry-python 2.75.0 (shared/reference/sentry-samples/03_transaction).
        let raw = include_str!("../tests/fixtures/sentry_python_transaction.envelope.txt");
        let ev: Value = serde_json::from_str(raw.lines().nth(2).unwrap()).unwrap();
        let spans = spans_from_transaction(&ev, "my-project");
        let [root, db] = &spans[..] else {
            panic!("{spans:?}")
        };
        assert_eq!(
            (
                root.category,
                root.operation.as_str(),
                root.service.as_str()
            ),
            (Category::Request, "demo-transaction", "my-project")
        );
        assert_eq!(root.trace_id, "9bfb8a4eeea34f2aa9966b61c66b3b38");
        assert_eq!(root.duration_ns, 13_794_000);
        assert_eq!(
            (db.category, db.operation.as_str()),
            (Category::Db, "SELECT")
        );
        assert_eq!(db.parent_span_id.as_deref(), Some("88276c301d8d5d27"));
        assert_eq!(db.instance.as_deref(), Some("vm"));
    }
}
