//! APM storage: raw spans and logs written through the group commit with each export's rollup
//! part, the consumer that folds parts into RED rows ([`rollup`]), metric series with their cumulative state
//! ([`metrics`]), and the reads every APM page and API shares ([`query`]).

pub mod daily;
mod links;
pub mod metrics;
pub mod query;
mod raw;
pub mod rollup;
pub mod sentry;
mod spans;
pub mod trace_index;

use lookout_apm::log::LogRecord;
use lookout_apm::rollup::Part;
use lookout_apm::span::Span;

use crate::Write;

/// Columns of `apm_span_blocks`, in the order [`span_writes`] binds them.
const BLOCK_COLUMNS: &[&str] = &[
    "id",
    "project_id",
    "service",
    "instance",
    "resource",
    "first_ns",
    "last_ns",
    "spans",
    "errors",
    "max_request_ns",
    "max_db_ns",
    "max_external_ns",
    "max_internal_ns",
    "requests",
    "request_errors",
    "request_ns",
    "payload",
];

/// Milliseconds from the Unix epoch to 2024-01-01, where block ids start counting.
const BLOCK_EPOCH_MS: i64 = 1_704_067_200_000;

/// A new block id: milliseconds since 2024 in the high bits (so ids grow with time and rows
/// append), then a per-process tag and a counter. Unique within a process up to 4,096 blocks a
/// millisecond; replicas differ by their random tag (1,024 values) as well. Assigned here rather
/// than by the database so a block's trace-index rows can go into the same group commit.
fn block_id(now_ms: i64) -> i64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TAG: OnceLock<i64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tag = *TAG.get_or_init(|| i64::from(rand::random::<u16>() & 0x3ff));
    let n = (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff) as i64;
    ((now_ms - BLOCK_EPOCH_MS).max(0) << 22) | (tag << 12) | n
}

/// The writes that store `spans` and the `resources` they refer to for `project_id`: the spans
/// in blocks ([`lookout_apm::block`]) with their pending trace keys ([`trace_index`]), and one [`Part`] row with
/// their rollup contribution for the rollup consumer.
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
    let now = lookout_core::time::now_ms();
    // The trace index's day: the day the blocks are stored.
    let day = now.div_euclid(86_400_000);
    for b in lookout_apm::block::blocks(&spans) {
        let id = block_id(now);
        let s = &b.summary;
        out.push(Write::Insert {
            table: "apm_span_blocks",
            columns: BLOCK_COLUMNS,
            values: vec![
                id.into(),
                project_id.into(),
                b.service.into(),
                b.instance.into(),
                b.resource.into(),
                s.first_ns.into(),
                s.last_ns.into(),
                s.spans.into(),
                s.errors.into(),
                s.max_ns[0].into(),
                s.max_ns[1].into(),
                s.max_ns[2].into(),
                s.max_ns[3].into(),
                s.requests.into(),
                s.request_errors.into(),
                s.request_ns.into(),
                b.payload.into(),
            ],
        });
        out.push(trace_index::pending_write(id, day, &b.trace_keys));
    }
    if !part.cells.is_empty() || !part.links.is_empty() {
        out.push(Write::Insert {
            table: "apm_parts",
            columns: &["project_id", "payload", "packed"],
            values: vec![project_id.into(), "".into(), part.pack().into()],
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

/// The project that OTLP exports without an ingest token go to, on servers that accept them:
/// the first one created (none before any exists).
pub async fn tokenless_project(store: &crate::Store) -> crate::Result<Option<i64>> {
    use sqlx::Row;
    let r = sqlx::query("SELECT MIN(id) AS id FROM projects")
        .fetch_one(store.pool())
        .await?;
    Ok(r.try_get("id")?)
}
