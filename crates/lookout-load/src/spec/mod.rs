//! Scenario files (YAML or TOML, shaped like k6's `options` with the requests inline): the raw
//! serde shape, and its validation into a [`Plan`] where every error names where it is
//! (`scenarios.browse.steps[1].request.url: …`) before any request is sent. The raw shape is in
//! [`raw`], steps (requests, checks, extractions) in [`step`].

mod raw;
mod step;

pub use raw::*;
pub use step::*;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::duration;
use crate::threshold::{MetricRef, Threshold};

/// A validated run: what to send, how fast, and what must hold.
#[derive(Debug)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub thresholds: Vec<Threshold>,
    pub tags: BTreeMap<String, String>,
    pub http: HttpOptions,
    /// Every request step of every scenario, indexed by [`RequestStep::id`].
    pub requests: Vec<RequestInfo>,
    /// Every check, indexed by [`Check::id`].
    pub checks: Vec<CheckInfo>,
}

/// Connection behaviour shared by all scenarios.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub insecure: bool,
    pub max_redirects: u32,
    pub no_connection_reuse: bool,
    pub user_agent: String,
}

/// What metrics need to know about a request step (its tags).
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub scenario: usize,
    pub name: String,
    pub method: String,
    pub tags: BTreeMap<String, String>,
}

/// A check's name and where it is.
#[derive(Debug, Clone)]
pub struct CheckInfo {
    pub scenario: usize,
    pub request: usize,
    pub name: String,
}

/// One validated scenario.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub executor: Executor,
    pub start_time: Duration,
    pub graceful_stop: Duration,
    pub tags: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    pub data: Option<Arc<Data>>,
    /// Number of extracted-value slots a VU keeps.
    pub vars: usize,
}

/// k6's executors with their options.
#[derive(Debug, Clone)]
pub enum Executor {
    SharedIterations {
        vus: u64,
        iterations: u64,
        max_duration: Duration,
    },
    PerVuIterations {
        vus: u64,
        iterations: u64,
        max_duration: Duration,
    },
    ConstantVus {
        vus: u64,
        duration: Duration,
    },
    RampingVus {
        start_vus: u64,
        stages: Vec<Stage>,
        graceful_ramp_down: Duration,
    },
    ConstantArrivalRate {
        rate: f64,
        time_unit: Duration,
        duration: Duration,
        pre_allocated: u64,
        max_vus: u64,
    },
    RampingArrivalRate {
        start_rate: f64,
        time_unit: Duration,
        stages: Vec<Stage>,
        pre_allocated: u64,
        max_vus: u64,
    },
}

impl Executor {
    /// The executor's k6 name.
    pub fn name(&self) -> &'static str {
        match self {
            Executor::SharedIterations { .. } => "shared-iterations",
            Executor::PerVuIterations { .. } => "per-vu-iterations",
            Executor::ConstantVus { .. } => "constant-vus",
            Executor::RampingVus { .. } => "ramping-vus",
            Executor::ConstantArrivalRate { .. } => "constant-arrival-rate",
            Executor::RampingArrivalRate { .. } => "ramping-arrival-rate",
        }
    }

    /// How long the executor runs at most, before its graceful stop.
    pub fn planned(&self) -> Duration {
        match self {
            Executor::SharedIterations { max_duration, .. }
            | Executor::PerVuIterations { max_duration, .. } => *max_duration,
            Executor::ConstantVus { duration, .. }
            | Executor::ConstantArrivalRate { duration, .. } => *duration,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                stages.iter().map(|s| s.duration).sum()
            }
        }
    }

    /// The most VUs the executor may hold.
    pub fn max_vus(&self) -> u64 {
        match self {
            Executor::SharedIterations { vus, .. }
            | Executor::PerVuIterations { vus, .. }
            | Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus {
                start_vus, stages, ..
            } => stages
                .iter()
                .map(|s| s.target as u64)
                .chain([*start_vus])
                .max()
                .unwrap_or(0),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
        }
    }
}

/// A linear ramp to `target` over `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// Rows of a CSV data file.
#[derive(Debug)]
pub struct Data {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub random: bool,
}

/// File formats a scenario may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

/// Reads and validates a scenario file (`.toml` is TOML, anything else YAML).
pub fn load(path: &Path) -> Result<Plan, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Format::Toml,
        _ => Format::Yaml,
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let env: HashMap<String, String> = std::env::vars().collect();
    parse(&text, format, base, &env).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses and validates scenario text. `base` resolves relative data-file paths.
pub fn parse(
    text: &str,
    format: Format,
    base: &Path,
    env: &HashMap<String, String>,
) -> Result<Plan, String> {
    let raw: RawFile = match format {
        Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?,
        Format::Toml => toml::from_str(text).map_err(|e| e.to_string())?,
    };
    validate(raw, base, env)
}

/// Turns the raw file into a plan, or says where it is wrong.
pub fn validate(raw: RawFile, base: &Path, env: &HashMap<String, String>) -> Result<Plan, String> {
    if raw.scenarios.is_empty() {
        return Err("scenarios: at least one scenario is needed".into());
    }
    let mut requests = Vec::new();
    let mut checks = Vec::new();
    let mut scenarios = Vec::new();
    for (name, rs) in raw.scenarios {
        let at = format!("scenarios.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "{at}: a scenario name may hold only letters, digits, `_` and `-`"
            ));
        }
        let idx = scenarios.len();
        scenarios.push(scenario(
            idx,
            name,
            rs,
            &at,
            base,
            env,
            &mut requests,
            &mut checks,
        )?);
    }
    let mut thresholds = Vec::new();
    for (key, list) in raw.thresholds {
        let at = format!("thresholds.{key}");
        let metric = MetricRef::parse(&key).map_err(|e| format!("{at}: {e}"))?;
        for (k, v) in &metric.tags {
            let known: Vec<&str> = match k.as_str() {
                "scenario" => scenarios.iter().map(|s| s.name.as_str()).collect(),
                "name" => requests.iter().map(|r| r.name.as_str()).collect(),
                "check" => checks.iter().map(|c| c.name.as_str()).collect(),
                _ => continue,
            };
            if !known.contains(&v.as_str()) {
                return Err(format!(
                    "{at}: no {k} is called `{v}` (there are: {})",
                    known.join(", ")
                ));
            }
        }
        if list.is_empty() {
            return Err(format!("{at}: give at least one expression"));
        }
        for (i, t) in list.iter().enumerate() {
            thresholds.push(Threshold::parse(&metric, t).map_err(|e| format!("{at}[{i}]: {e}"))?);
        }
    }
    Ok(Plan {
        scenarios,
        thresholds,
        tags: raw.tags,
        http: HttpOptions {
            insecure: raw.insecure_skip_tls_verify,
            max_redirects: raw.max_redirects.unwrap_or(10),
            no_connection_reuse: raw.no_connection_reuse,
            user_agent: raw
                .user_agent
                .unwrap_or_else(|| format!("lookout-load/{}", env!("CARGO_PKG_VERSION"))),
        },
        requests,
        checks,
    })
}

fn dur(
    at: &str,
    field: &str,
    v: Option<&String>,
    default: Option<Duration>,
) -> Result<Duration, String> {
    match v {
        Some(s) => duration::parse(s).map_err(|e| format!("{at}.{field}: {e}")),
        None => default.ok_or_else(|| format!("{at}: `{field}` is required for this executor")),
    }
}

fn need<T: Copy>(at: &str, field: &str, v: Option<T>) -> Result<T, String> {
    v.ok_or_else(|| format!("{at}: `{field}` is required for this executor"))
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    idx: usize,
    name: String,
    rs: RawScenario,
    at: &str,
    base: &Path,
    process_env: &HashMap<String, String>,
    requests: &mut Vec<RequestInfo>,
    checks: &mut Vec<CheckInfo>,
) -> Result<Scenario, String> {
    // Which options each executor takes, so a misplaced one is an error rather than ignored.
    let allowed: &[&str] = match rs.executor.as_str() {
        "shared-iterations" | "per-vu-iterations" => &["vus", "iterations", "maxDuration"],
        "constant-vus" => &["vus", "duration"],
        "ramping-vus" => &["stages", "startVUs", "gracefulRampDown"],
        "constant-arrival-rate" => &["rate", "timeUnit", "duration", "preAllocatedVUs", "maxVUs"],
        "ramping-arrival-rate" => &["stages", "startRate", "timeUnit", "preAllocatedVUs", "maxVUs"],
        "externally-controlled" => {
            return Err(format!("{at}.executor: externally-controlled was removed in k6 v2 and is not supported"))
        }
        other => {
            return Err(format!(
                "{at}.executor: unknown executor `{other}` (shared-iterations, per-vu-iterations, constant-vus, ramping-vus, constant-arrival-rate, ramping-arrival-rate)"
            ))
        }
    };
    let set = [
        ("vus", rs.vus.is_some()),
        ("iterations", rs.iterations.is_some()),
        ("duration", rs.duration.is_some()),
        ("maxDuration", rs.max_duration.is_some()),
        ("stages", rs.stages.is_some()),
        ("startVUs", rs.start_vus.is_some()),
        ("gracefulRampDown", rs.graceful_ramp_down.is_some()),
        ("rate", rs.rate.is_some()),
        ("startRate", rs.start_rate.is_some()),
        ("timeUnit", rs.time_unit.is_some()),
        ("preAllocatedVUs", rs.pre_allocated_vus.is_some()),
        ("maxVUs", rs.max_vus.is_some()),
    ];
    for (opt, present) in set {
        if present && !allowed.contains(&opt) {
            return Err(format!(
                "{at}.{opt}: not an option of {} (it takes: {})",
                rs.executor,
                allowed.join(", ")
            ));
        }
    }
    let stages = |stages: &Option<Vec<RawStage>>| -> Result<Vec<Stage>, String> {
        let list = stages
            .as_ref()
            .ok_or_else(|| format!("{at}: `stages` is required for this executor"))?;
        if list.is_empty() {
            return Err(format!("{at}.stages: give at least one stage"));
        }
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                if !(s.target >= 0.0 && s.target.is_finite()) {
                    return Err(format!("{at}.stages[{i}].target: must be zero or more"));
                }
                Ok(Stage {
                    duration: duration::parse(&s.duration)
                        .map_err(|e| format!("{at}.stages[{i}].duration: {e}"))?,
                    target: s.target,
                })
            })
            .collect()
    };
    let positive = |field: &str, v: u64| -> Result<u64, String> {
        if v == 0 {
            Err(format!("{at}.{field}: must be at least 1"))
        } else {
            Ok(v)
        }
    };
    let executor = match rs.executor.as_str() {
        "shared-iterations" | "per-vu-iterations" => {
            let vus = positive("vus", rs.vus.unwrap_or(1))?;
            let iterations = positive("iterations", rs.iterations.unwrap_or(1))?;
            if rs.executor == "shared-iterations" && iterations < vus {
                return Err(format!(
                    "{at}.iterations: must be at least `vus` ({vus}) for shared-iterations"
                ));
            }
            let max_duration = dur(
                at,
                "maxDuration",
                rs.max_duration.as_ref(),
                Some(Duration::from_secs(600)),
            )?;
            if rs.executor == "shared-iterations" {
                Executor::SharedIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            } else {
                Executor::PerVuIterations {
                    vus,
                    iterations,
                    max_duration,
                }
            }
        }
        "constant-vus" => Executor::ConstantVus {
            vus: positive("vus", rs.vus.unwrap_or(1))?,
            duration: nonzero(
                at,
                "duration",
                dur(at, "duration", rs.duration.as_ref(), None)?,
            )?,
        },
        "ramping-vus" => Executor::RampingVus {
            start_vus: rs.start_vus.unwrap_or(1),
            stages: stages(&rs.stages)?,
            graceful_ramp_down: dur(
                at,
                "gracefulRampDown",
                rs.graceful_ramp_down.as_ref(),
                Some(Duration::from_secs(30)),
            )?,
        },
        "constant-arrival-rate" => {
            let rate = need(at, "rate", rs.rate)?;
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(format!("{at}.rate: must be above 0"));
            }
            let (pre, max_vus) = vu_pool(at, &rs)?;
            Executor::ConstantArrivalRate {
                rate,
                time_unit: time_unit(at, &rs)?,
                duration: nonzero(
                    at,
                    "duration",
                    dur(at, "duration", rs.duration.as_ref(), None)?,
                )?,
                pre_allocated: pre,
                max_vus,
            }
        }
        _ => {
            let (pre, max_vus) = vu_pool(at, &rs)?;
            Executor::RampingArrivalRate {
                start_rate: rs.start_rate.unwrap_or(0.0),
                time_unit: time_unit(at, &rs)?,
                stages: stages(&rs.stages)?,
                pre_allocated: pre,
                max_vus,
            }
        }
    };
    let start_time = dur(
        at,
        "startTime",
        rs.start_time.as_ref(),
        Some(Duration::ZERO),
    )?;
    let graceful_stop = dur(
        at,
        "gracefulStop",
        rs.graceful_stop.as_ref(),
        Some(Duration::from_secs(30)),
    )?;
    let mut env = process_env.clone();
    env.extend(rs.env.clone());
    let data = match &rs.data {
        None => None,
        Some(d) => Some(Arc::new(read_data(&format!("{at}.data"), d, base)?)),
    };
    if rs.steps.is_empty() {
        return Err(format!("{at}.steps: give at least one step"));
    }
    let mut vars: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    for (i, st) in rs.steps.into_iter().enumerate() {
        let sat = format!("{at}.steps[{i}]");
        steps.push(step(
            idx,
            &name,
            &sat,
            st,
            &env,
            data.as_deref(),
            &mut vars,
            requests,
            checks,
            &rs.tags,
        )?);
    }
    if !steps.iter().any(|s| matches!(s, Step::Request(_))) {
        return Err(format!(
            "{at}.steps: an iteration needs at least one request"
        ));
    }
    Ok(Scenario {
        name,
        executor,
        start_time,
        graceful_stop,
        tags: rs.tags,
        steps,
        data,
        vars: vars.len(),
    })
}

/// `preAllocatedVUs` and `maxVUs` (default: as many as preallocated) of an arrival-rate executor.
fn vu_pool(at: &str, rs: &RawScenario) -> Result<(u64, u64), String> {
    let pre = need(at, "preAllocatedVUs", rs.pre_allocated_vus)?;
    let max_vus = rs.max_vus.unwrap_or(pre);
    if max_vus < pre || max_vus == 0 {
        return Err(format!(
            "{at}.maxVUs: must be at least preAllocatedVUs ({pre}) and 1"
        ));
    }
    Ok((pre, max_vus))
}

/// `timeUnit` (default 1s) of an arrival-rate executor.
fn time_unit(at: &str, rs: &RawScenario) -> Result<Duration, String> {
    let d = dur(
        at,
        "timeUnit",
        rs.time_unit.as_ref(),
        Some(Duration::from_secs(1)),
    )?;
    nonzero(at, "timeUnit", d)
}

pub(super) fn nonzero(at: &str, field: &str, d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err(format!("{at}.{field}: must be longer than 0"))
    } else {
        Ok(d)
    }
}

fn read_data(at: &str, d: &RawData, base: &Path) -> Result<Data, String> {
    let path = base.join(&d.file);
    let mut reader =
        csv::Reader::from_path(&path).map_err(|e| format!("{at}.file: {}: {e}", path.display()))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{at}.file: {}: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("{at}.file: {} row {}: {e}", path.display(), n + 2))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    if rows.is_empty() {
        return Err(format!(
            "{at}.file: {} has a header but no rows",
            path.display()
        ));
    }
    let random = match d.order.as_deref() {
        None | Some("sequential") => false,
        Some("random") => true,
        Some(o) => {
            return Err(format!(
                "{at}.order: `{o}` is neither sequential nor random"
            ))
        }
    };
    Ok(Data {
        columns,
        rows,
        random,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Plan, String> {
        parse(
            text,
            Format::Yaml,
            Path::new("."),
            &HashMap::from([("BASE".into(), "http://127.0.0.1:9".into())]),
        )
    }

    #[test]
    fn the_issue_example_parses() {
        let plan = yaml(
            r#"
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 200
    timeUnit: 1s
    duration: 30s
    preAllocatedVUs: 20
    steps:
      - request: { method: GET, url: "http://127.0.0.1:8080/items/{{iteration}}" }
        checks: { status: 200 }
thresholds:
  http_req_duration: ["p(95)<500"]
"#,
        )
        .unwrap();
        assert_eq!(plan.scenarios.len(), 1);
        match &plan.scenarios[0].executor {
            Executor::ConstantArrivalRate {
                rate,
                max_vus,
                duration,
                ..
            } => {
                assert_eq!(
                    (*rate, *max_vus, *duration),
                    (200.0, 20, Duration::from_secs(30))
                );
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(
            plan.checks[0].name,
            "http://127.0.0.1:8080/items/{{iteration}}: status is 200"
        );
        assert_eq!(plan.thresholds[0].expr.source, "p(95)<500");
    }

    #[test]
    fn errors_say_where() {
        let e = yaml("scenarios:\n  a:\n    executor: constant-vus\n    vus: 2\n    rate: 5\n    duration: 1s\n    steps: [{request: {url: 'http://x/'}}]\n").unwrap_err();
        assert!(
            e.starts_with("scenarios.a.rate: not an option of constant-vus"),
            "{e}"
        );
        let e = yaml("scenarios:\n  a:\n    executor: constant-vus\n    steps: [{request: {url: 'http://x/'}}]\n").unwrap_err();
        assert!(e.contains("scenarios.a: `duration` is required"), "{e}");
        let e = yaml("scenarios:\n  a:\n    executor: constant-vus\n    duration: 1s\n    steps:\n      - request: {url: 'http://x/{{tok}}'}\n").unwrap_err();
        assert!(
            e.starts_with("scenarios.a.steps[0].request.url: `{{tok}}`: unknown name"),
            "{e}"
        );
        let e = yaml("scenarios:\n  a:\n    executor: constant-vus\n    duration: 1s\n    steps: [{request: {url: 'http://x/'}}]\nthresholds:\n  http_req_duration: ['p(95)<']\n").unwrap_err();
        assert!(e.starts_with("thresholds.http_req_duration[0]:"), "{e}");
        let e = yaml("scenarios:\n  a:\n    executor: constant-vus\n    duration: 1s\n    steps: [{request: {url: 'http://x/'}}]\nthresholds:\n  'http_req_duration{scenario:b}': ['p(95)<1']\n").unwrap_err();
        assert!(e.contains("no scenario is called `b`"), "{e}");
        // serde's own errors carry line and column.
        let e = yaml(
            "scenarios:\n  a:\n    executor: constant-vus\n    durration: 1s\n    steps: []\n",
        )
        .unwrap_err();
        assert!(
            e.contains("unknown field `durration`") && e.contains("line 4"),
            "{e}"
        );
    }

    #[test]
    fn extracted_values_are_known_to_later_steps_only() {
        let ok = yaml(
            "scenarios:\n  a:\n    executor: per-vu-iterations\n    steps:\n      - request: {url: '{{env.BASE}}/login'}\n        extract: {token: {jsonpath: '$.token'}}\n      - request: {url: '{{env.BASE}}/me', headers: {Authorization: 'Bearer {{token}}'}}\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        let e = yaml(
            "scenarios:\n  a:\n    executor: per-vu-iterations\n    steps:\n      - request: {url: 'http://x/me', headers: {Authorization: 'Bearer {{token}}'}}\n      - request: {url: 'http://x/login'}\n        extract: {token: {jsonpath: '$.token'}}\n",
        )
        .unwrap_err();
        assert!(e.contains("steps[0].request.headers.Authorization"), "{e}");
    }

    #[test]
    fn toml_files_take_the_same_shape() {
        let plan = parse(
            "[scenarios.api]\nexecutor = \"ramping-vus\"\nstages = [{duration = \"1s\", target = 3}]\n[[scenarios.api.steps]]\nrequest = {url = \"http://127.0.0.1:1/\"}\nthink = \"10ms..20ms\"\n[thresholds]\nhttp_req_failed = [\"rate<0.01\"]\n",
            Format::Toml,
            Path::new("."),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(plan.scenarios[0].executor.max_vus(), 3);
    }
}
