//! Ingest endpoints for protocols SDKs speak (Sentry today; OTLP arrives with APM).

pub mod budget;
pub mod sentry;
