//! The wire formats Lookout accepts from the outside world, parsed without IO and without panics.
//!
//! - [`decompress`]: request bodies in every `Content-Encoding` SDKs use, with hard output caps;
//! - [`auth`]: where Sentry SDKs put the DSN key (header, query string, `Authorization`, envelope);
//! - [`envelope`]: the Sentry envelope format, items with and without `length`;
//! - [`event`]: a lenient model of Sentry error events (what grouping and the UI need);
//! - [`grouping`]: versioned grouping of events into issues;
//! - [`mentions`]: `@user` and `#team` mentions in issue comments;
//! - [`parameterize`]: the placeholders that make messages with variable parts group together;
//! - [`native_histogram`]: native (exponential) histograms as the classic ones the store keeps;
//! - [`remote_write`]: Prometheus remote write 1.0 and 2.0, snappy block compressed;
//! - [`selector`]: PromQL series selectors, as Prometheus's `match[]` parameter takes them;
//! - [`statsd`]: StatsD and DogStatsD lines, as UDP packets carry them;
//! - [`sourcemaps`]: sentry-cli's artifact bundles and resolving JavaScript frames through source maps.
//!
//! Everything here reads untrusted input, so indexing and unwrapping are denied outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod auth;
pub mod decompress;
pub mod envelope;
pub mod event;
pub mod exposition;
pub mod grouping;
pub mod mentions;
pub mod native_histogram;
pub mod ownership;
pub mod parameterize;
pub mod relabel;
pub mod remote_write;
pub mod selector;
pub mod sourcemaps;
pub mod statsd;
pub mod store;

/// Why input was refused; each maps to one HTTP status at the ingest edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Malformed input (400).
    #[error("{0}")]
    Malformed(String),
    /// Over a size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// An encoding we do not know (415 would be pedantic; Sentry answers 400).
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The caller's memory budget refused more output (503 with `Retry-After`).
    #[error("the server's decompression budget is spent; retry later")]
    OverBudget,
}
