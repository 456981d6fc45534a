//! OTLP log records normalised for storage and correlation with traces.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use serde_json::{Map, Value};

use crate::attrs::{any_to_text, string, to_json};

/// One log record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Time of the event (observed time when the event time is missing), ns.
    pub time_ns: i64,
    /// `service.name` of the resource.
    pub service: String,
    /// OTLP severity number (1–24; 0 unset).
    pub severity_number: i64,
    /// Severity text, or the name for the number when none was sent.
    pub severity: String,
    /// The body as text.
    pub body: String,
    /// Trace id (hex), when the record was emitted inside a span.
    pub trace_id: Option<String>,
    /// Span id (hex).
    pub span_id: Option<String>,
    /// Record and resource attributes as JSON text.
    pub attributes: String,
}

/// The severity name of an OTLP severity number.
pub fn severity_name(n: i64) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

/// Normalises every record of an OTLP logs export.
pub fn from_request(req: &ExportLogsServiceRequest) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let service =
            string(resource, &["service.name"]).unwrap_or_else(|| "unknown_service".into());
        let resource_json = to_json(resource);
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let time = if r.time_unix_nano > 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                let n = i64::from(r.severity_number);
                let mut attrs = Map::new();
                attrs.insert("attributes".into(), Value::Object(to_json(&r.attributes)));
                attrs.insert("resource".into(), Value::Object(resource_json.clone()));
                out.push(LogRecord {
                    time_ns: i64::try_from(time).unwrap_or(i64::MAX),
                    service: service.clone(),
                    severity_number: n,
                    severity: if r.severity_text.is_empty() {
                        severity_name(n).to_string()
                    } else {
                        r.severity_text.chars().take(32).collect()
                    },
                    body: r.body.as_ref().map(any_to_text).unwrap_or_default(),
                    trace_id: (r.trace_id.len() == 16).then(|| crate::attrs::hex_id(&r.trace_id)),
                    span_id: (r.span_id.len() == 8).then(|| crate::attrs::hex_id(&r.span_id)),
                    attributes: Value::Object(attrs).to_string(),
                });
            }
        }
    }
    out
}
