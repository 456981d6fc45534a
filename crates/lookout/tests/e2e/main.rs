//! End-to-end tests of the real `lookout` binary, on SQLite and on PostgreSQL.
//!
//! One test binary (one link on a 2-core machine), a module per capability. Each test starts
//! `lookout serve` on free ports with a temp data dir (and, for PostgreSQL, a fresh database)
//! through `lookout-testkit`, and talks to it over HTTP like any client would. What runs on both
//! backends says so with `lookout_testkit::both!`; waits go through `lookout_testkit::eventually`.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

pub(crate) mod alerting;
mod apm;
mod backups;
mod dashboards;
mod db;
pub(crate) mod errors;
pub(crate) mod foundation;
mod ha;
mod load;
mod metrics;
mod operations;
mod outbound;
mod probes;
mod regress;
mod reports;
mod uptime;

/// The binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_lookout"))
}

/// Status and JSON body (`null` when the body is not JSON).
pub async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}
