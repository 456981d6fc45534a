//! Lookout's APM core, free of storage and HTTP: OTLP/HTTP bodies decoded ([`decode`]) and
//! normalised into spans ([`span`]), metric points ([`metric`]) and log records ([`log`]);
//! database statements normalised ([`statement`]); and the DDSketch ([`sketch`]) and RED
//! aggregate ([`rollup`]) that every latency figure, page and query reads; raw spans are stored
//! in compressed blocks ([`block`]).

pub mod attrs;
pub mod block;
pub mod decode;
pub mod log;
pub mod metric;
pub mod prom;
pub mod rollup;
pub mod sentry;
pub mod sketch;
pub mod span;
pub mod statement;

pub use opentelemetry_proto::tonic as proto;
