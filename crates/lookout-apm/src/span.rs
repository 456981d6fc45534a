//! OTLP spans normalised into what Lookout stores and rolls up: one [`Span`] per OTLP span, with
//! the semantic-convention attributes read under their current and older names, Lookout's one
//! definition of "error", and the category and operation every RED figure is grouped by.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{json, Map, Value};

use crate::attrs::{int, string, to_json};
use crate::statement;

/// OTLP span kinds, as stored.
pub mod kind {
    /// Unspecified.
    pub const UNSPECIFIED: i64 = 0;
    /// Internal.
    pub const INTERNAL: i64 = 1;
    /// Server.
    pub const SERVER: i64 = 2;
    /// Client.
    pub const CLIENT: i64 = 3;
    /// Producer.
    pub const PRODUCER: i64 = 4;
    /// Consumer.
    pub const CONSUMER: i64 = 5;
}

/// What a span measures, which decides the rollup it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// An entry into a service (server or consumer span, or a root): a transaction.
    Request,
    /// A call to a database.
    Db,
    /// A call to another host (HTTP, RPC, messaging).
    External,
    /// Work inside a service; stored, not rolled up.
    Internal,
}

impl Category {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Request => "request",
            Category::Db => "db",
            Category::External => "external",
            Category::Internal => "internal",
        }
    }
}

/// One span as Lookout keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id; `None` for a root.
    pub parent_span_id: Option<String>,
    /// `service.name` of the resource.
    pub service: String,
    /// `service.instance.id` or `host.name`, when sent.
    pub instance: Option<String>,
    /// The span's name.
    pub name: String,
    /// OTLP span kind (see [`kind`]).
    pub kind: i64,
    /// Start, nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Duration in nanoseconds (0 when the end precedes the start).
    pub duration_ns: i64,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i64,
    /// Lookout's error rule (see [`is_error`]).
    pub error: bool,
    /// What the span measures.
    pub category: Category,
    /// The name RED figures group by: the transaction name of a request, the statement summary
    /// of a database call, the host of an external call; the span name otherwise.
    pub operation: String,
    /// HTTP status class (`2xx` … `5xx`) or empty.
    pub status_class: String,
    /// HTTP response status code.
    pub http_status: Option<i64>,
    /// Database system (`postgresql`, `redis`, …).
    pub db_system: Option<String>,
    /// The normalised statement of a database call.
    pub db_statement: Option<String>,
    /// The host an external or database call went to.
    pub peer: Option<String>,
    /// Hash of the resource's attributes (see [`Spans::resources`]).
    pub resource: String,
    /// Everything else: span attributes, events, status message, scope, as JSON text.
    pub detail: String,
}

/// A decoded request's spans and how many were refused (with why, for `partial_success`).
#[derive(Debug, Default)]
pub struct Spans {
    /// The spans kept.
    pub spans: Vec<Span>,
    /// Spans refused (missing or malformed ids).
    pub rejected: i64,
    /// Why the first one was refused.
    pub rejection: Option<String>,
    /// The resources the spans refer to: (hash, attributes as JSON). Stored once each rather than
    /// with every span — they are often half of a span's bytes.
    pub resources: Vec<(String, String)>,
}

/// A stable 64-bit FNV-1a hash as 16 hex digits: the key of a stored resource. Hand-written
/// because it must never change between builds (std's hasher makes no such promise).
pub fn resource_hash(json: &str) -> String {
    format!("{:016x}", fnv64(json.as_bytes()))
}

/// 64-bit FNV-1a of `bytes` (see [`resource_hash`] for why by hand).
pub(crate) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Lookout's single definition of a failed span, used by every page, query and alert: OTLP
/// status ERROR; or a request answered 5xx; or a client call answered 4xx or 5xx (the HTTP
/// semantic conventions' rules, applied even when an instrumentation left the status unset).
pub fn is_error(status: i64, kind_: i64, category: Category, http_status: Option<i64>) -> bool {
    status == 2
        || match (category, http_status) {
            (Category::Request, Some(c)) => c >= 500,
            (_, Some(c)) if kind_ == kind::CLIENT => c >= 400,
            _ => false,
        }
}

/// `2xx`-style class of an HTTP status code.
pub fn status_class(code: Option<i64>) -> String {
    match code {
        Some(c @ 100..=599) => format!("{}xx", c / 100),
        _ => String::new(),
    }
}

/// Normalises every span of an OTLP trace export.
pub fn from_request(req: &ExportTraceServiceRequest) -> Spans {
    let mut out = Spans::default();
    for rs in &req.resource_spans {
        let resource: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let service =
            string(resource, &["service.name"]).unwrap_or_else(|| "unknown_service".to_string());
        let instance = string(
            resource,
            &["service.instance.id", "host.name", "k8s.pod.name"],
        );
        let resource_json = Value::Object(to_json(resource)).to_string();
        let resource_key = resource_hash(&resource_json);
        if !out.resources.iter().any(|(k, _)| *k == resource_key) {
            out.resources.push((resource_key.clone(), resource_json));
        }
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                if s.trace_id.len() != 16 || s.span_id.len() != 8 {
                    out.rejected += 1;
                    out.rejection.get_or_insert_with(|| {
                        "spans need a 16-byte trace id and an 8-byte span id".to_string()
                    });
                    continue;
                }
                let a = &s.attributes;
                let parent =
                    (s.parent_span_id.len() == 8).then(|| crate::attrs::hex_id(&s.parent_span_id));
                let kind_ = i64::from(s.kind);
                let http_status = int(a, &["http.response.status_code", "http.status_code"]);
                let method = string(a, &["http.request.method", "http.method"]);
                let db_system = string(a, &["db.system.name", "db.system"]);
                let raw_statement = string(a, &["db.query.text", "db.statement"]);
                let peer = string(a, &["server.address", "net.peer.name", "http.host"])
                    .map(|host| match int(a, &["server.port", "net.peer.port"]) {
                        Some(port) if !matches!(port, 80 | 443) => format!("{host}:{port}"),
                        _ => host,
                    })
                    .or_else(|| string(a, &["url.full", "http.url"]).and_then(|u| host_of(&u)));
                let category =
                    if kind_ == kind::SERVER || kind_ == kind::CONSUMER || parent.is_none() {
                        Category::Request
                    } else if db_system.is_some() {
                        Category::Db
                    } else if kind_ == kind::CLIENT || kind_ == kind::PRODUCER {
                        Category::External
                    } else {
                        Category::Internal
                    };
                let db_statement = raw_statement.as_deref().map(statement::normalize);
                let operation = match category {
                    Category::Request => match (method.as_deref(), string(a, &["http.route"])) {
                        (Some(m), Some(route)) => format!("{m} {route}"),
                        _ => s.name.clone(),
                    },
                    Category::Db => string(a, &["db.query.summary"])
                        .or_else(|| {
                            db_statement
                                .as_deref()
                                .map(statement::summary)
                                .filter(|x| !x.is_empty())
                        })
                        .or_else(|| {
                            string(a, &["db.operation.name", "db.operation"]).map(
                                |op| match string(a, &["db.collection.name", "db.sql.table"]) {
                                    Some(t) => format!("{op} {t}"),
                                    None => op,
                                },
                            )
                        })
                        .unwrap_or_else(|| s.name.clone()),
                    Category::External => peer.clone().unwrap_or_else(|| s.name.clone()),
                    Category::Internal => s.name.clone(),
                };
                let status = s.status.as_ref().map_or(0, |st| i64::from(st.code));
                let start_ns = clamp_ns(s.start_time_unix_nano);
                let duration_ns =
                    clamp_ns(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano));
                let mut detail = Map::new();
                detail.insert("attributes".into(), Value::Object(to_json(a)));
                if let Some(st) = s.status.as_ref().filter(|st| !st.message.is_empty()) {
                    detail.insert("status_message".into(), json!(st.message));
                }
                if !s.events.is_empty() {
                    detail.insert(
                        "events".into(),
                        Value::Array(
                            s.events
                                .iter()
                                .take(128)
                                .map(|e| {
                                    json!({
                                        "name": e.name,
                                        "time_ns": clamp_ns(e.time_unix_nano),
                                        "attributes": to_json(&e.attributes),
                                    })
                                })
                                .collect(),
                        ),
                    );
                }
                if let Some(scope) = ss.scope.as_ref().filter(|sc| !sc.name.is_empty()) {
                    detail.insert("scope".into(), json!(scope.name));
                }
                out.spans.push(Span {
                    trace_id: crate::attrs::hex_id(&s.trace_id),
                    span_id: crate::attrs::hex_id(&s.span_id),
                    parent_span_id: parent,
                    service: service.clone(),
                    instance: instance.clone(),
                    name: s.name.clone(),
                    kind: kind_,
                    start_ns,
                    duration_ns,
                    status,
                    error: is_error(status, kind_, category, http_status),
                    category,
                    operation,
                    status_class: status_class(http_status),
                    http_status,
                    db_system,
                    db_statement,
                    peer,
                    resource: resource_key.clone(),
                    detail: Value::Object(detail).to_string(),
                });
            }
        }
    }
    out
}

fn clamp_ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `host[:port]` of a URL, without credentials.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{traces, Encoding};

    const REQ: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"shop"}}]},
      "scopeSpans":[{"spans":[
        {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"GET /users/:id","kind":2,
         "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000250000000",
         "attributes":[{"key":"http.method","value":{"stringValue":"GET"}},{"key":"http.route","value":{"stringValue":"/users/:id"}},
                       {"key":"http.status_code","value":{"intValue":"503"}}]},
        {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B175","parentSpanId":"EEE19B7EC3C1B174","name":"SELECT","kind":3,
         "startTimeUnixNano":1700000000010000000,"endTimeUnixNano":1700000000030000000,
         "attributes":[{"key":"db.system","value":{"stringValue":"postgresql"}},{"key":"db.statement","value":{"stringValue":"SELECT * FROM users WHERE id = 42"}}]},
        {"traceId":"5B8E","spanId":"EE","name":"bad"}
      ]}]}]}"#;

    #[test]
    fn old_semantic_convention_names_give_the_same_span() {
        let spans = from_request(&traces(REQ.as_bytes(), Encoding::Json).unwrap());
        assert_eq!(spans.rejected, 1);
        let [req, db] = &spans.spans[..] else {
            panic!("{spans:?}")
        };
        assert_eq!(req.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(
            (req.category, req.operation.as_str()),
            (Category::Request, "GET /users/:id")
        );
        assert_eq!(
            (req.duration_ns, req.error, req.status_class.as_str()),
            (250_000_000, true, "5xx")
        );
        assert_eq!(
            (db.category, db.operation.as_str()),
            (Category::Db, "SELECT users")
        );
        assert_eq!(
            db.db_statement.as_deref(),
            Some("SELECT * FROM users WHERE id = ?")
        );
        assert_eq!(db.parent_span_id.as_deref(), Some("eee19b7ec3c1b174"));
        assert!(!db.error);
    }
}
