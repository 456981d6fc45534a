//! APM storage: raw spans and logs written through the group commit with each export's rollup
//! part, the consumer that folds parts into RED rows ([`rollup`]), metric series with their cumulative state
//! ([`metrics`]), and the reads every APM page and API shares ([`query`]).

pub mod daily;
pub mod metrics;
pub mod query;
mod raw;
pub mod rollup;
pub mod sentry;

use lookout_apm::log::LogRecord;
use lookout_apm::rollup::Part;
use lookout_apm::span::Span;

use crate::{Value, Write};

/// Columns of `apm_spans`, in the order [`span_writes`] binds them.
const SPAN_COLUMNS: &[&str] = &[
    "project_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "instance",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "status",
    "error",
    "category",
    "operation",
    "status_class",
    "http_status",
    "db_system",
    "db_statement",
    "peer",
    "resource",
    "detail",
];

/// The writes that store `spans` and the `resources` they refer to for `project_id`: a row per
/// span, and one [`Part`] row with their rollup contribution for the rollup consumer.
pub fn span_writes(
    project_id: i64,
    spans: Vec<Span>,
    resources: &[(String, String)],
) -> Vec<Write> {
    let part = Part::of(&spans);
    let mut out: Vec<Write> = resources
        .iter()
        .map(|(hash, attrs)| Write::Exec {
            sql: "INSERT INTO apm_resources (project_id, hash, attributes) VALUES ($1, $2, $3)
                  ON CONFLICT (project_id, hash) DO NOTHING",
            args: vec![project_id.into(), hash.clone().into(), attrs.clone().into()],
        })
        .collect();
    out.extend(spans.into_iter().map(|s| Write::Insert {
        table: "apm_spans",
        columns: SPAN_COLUMNS,
        values: vec![
            project_id.into(),
            s.trace_id.into(),
            s.span_id.into(),
            s.parent_span_id.into(),
            s.service.into(),
            s.instance.into(),
            s.name.into(),
            s.kind.into(),
            s.start_ns.into(),
            s.duration_ns.into(),
            s.status.into(),
            i64::from(s.error).into(),
            s.category.as_str().into(),
            s.operation.into(),
            s.status_class.into(),
            Value::I64(s.http_status),
            s.db_system.into(),
            s.db_statement.into(),
            s.peer.into(),
            s.resource.into(),
            s.detail.into(),
        ],
    }));
    if !part.cells.is_empty() || !part.links.is_empty() {
        out.push(Write::Insert {
            table: "apm_parts",
            columns: &["project_id", "payload"],
            values: vec![
                project_id.into(),
                serde_json::to_string(&part).unwrap_or_default().into(),
            ],
        });
    }
    out
}

const LOG_COLUMNS: &[&str] = &[
    "project_id",
    "time_ns",
    "service",
    "severity_number",
    "severity",
    "body",
    "trace_id",
    "span_id",
    "attributes",
];

/// The writes that store log `records` for `project_id`.
pub fn log_writes(project_id: i64, records: Vec<LogRecord>) -> Vec<Write> {
    records
        .into_iter()
        .map(|r| Write::Insert {
            table: "apm_logs",
            columns: LOG_COLUMNS,
            values: vec![
                project_id.into(),
                r.time_ns.into(),
                r.service.into(),
                r.severity_number.into(),
                r.severity.into(),
                r.body.into(),
                r.trace_id.into(),
                r.span_id.into(),
                r.attributes.into(),
            ],
        })
        .collect()
}
