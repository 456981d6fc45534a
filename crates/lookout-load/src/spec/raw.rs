//! The raw serde shape of a scenario file, as written: unknown fields are refused so a typo is
//! an error with its line and column, never a silently ignored option.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::threshold::RawThreshold;

/// A scenario file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFile {
    pub scenarios: BTreeMap<String, RawScenario>,
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<RawThreshold>>,
    /// Tags on every sample of the run.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Skip TLS certificate verification (k6's option of the same name).
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub insecure_skip_tls_verify: bool,
    /// Redirects followed per request (k6's default: 10).
    #[serde(default)]
    pub max_redirects: Option<u32>,
    /// Open a new connection for every request.
    #[serde(default)]
    pub no_connection_reuse: bool,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// One scenario, as written: an executor, its options, and the steps of an iteration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScenario {
    pub executor: String,
    pub start_time: Option<String>,
    pub graceful_stop: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub vus: Option<u64>,
    pub iterations: Option<u64>,
    pub duration: Option<String>,
    pub max_duration: Option<String>,
    pub stages: Option<Vec<RawStage>>,
    #[serde(rename = "startVUs")]
    pub start_vus: Option<u64>,
    pub graceful_ramp_down: Option<String>,
    pub rate: Option<f64>,
    pub start_rate: Option<f64>,
    pub time_unit: Option<String>,
    #[serde(rename = "preAllocatedVUs")]
    pub pre_allocated_vus: Option<u64>,
    #[serde(rename = "maxVUs")]
    pub max_vus: Option<u64>,
    pub data: Option<RawData>,
    pub steps: Vec<RawStep>,
}

/// `{duration, target}` of a ramping executor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub duration: String,
    pub target: f64,
}

/// A CSV file whose rows feed `{{data.COLUMN}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    pub file: String,
    /// `sequential` (iteration N reads row N mod rows, the default) or `random`.
    #[serde(default)]
    pub order: Option<String>,
}

/// One step of an iteration: a request (with checks, extractions and think time) or a pause.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub request: Option<RawRequest>,
    pub checks: Option<RawChecks>,
    #[serde(default)]
    pub extract: BTreeMap<String, RawExtract>,
    /// Pause after the request: `1s`, or a random pause in a range: `1s..3s`.
    pub think: Option<String>,
    /// A step that only pauses.
    pub sleep: Option<String>,
}

/// An HTTP request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    pub name: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is; an object or list is sent as JSON.
    pub body: Option<serde_json::Value>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Checks on a response; each counts in `checks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChecks {
    pub status: Option<OneOrMany<u16>>,
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    pub body_contains: Option<OneOrMany<String>>,
    #[serde(default)]
    pub jsonpath: BTreeMap<String, serde_json::Value>,
    /// `<500ms` (or `<=`).
    pub duration: Option<String>,
}

/// One value or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Where an extracted value comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExtract {
    pub jsonpath: Option<String>,
    pub header: Option<String>,
    /// The first capture group (or the whole match) of the body.
    pub regex: Option<String>,
}
