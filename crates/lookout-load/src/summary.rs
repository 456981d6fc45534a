//! The end of a run: the [`Summary`] (what `--report-to` sends and the server keeps), k6's
//! end-of-test text, and k6's `--summary-export` JSON, so tools that read k6 summaries read ours.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::human;
use crate::metrics::{Aggregate, Point, Value};
use crate::spec::Plan;
use crate::threshold::{Agg, MetricKind, MetricRef};

/// A metric or sub-metric's final values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricSummary {
    /// `http_req_duration` or `http_req_duration{scenario:api}`.
    pub name: String,
    pub metric: String,
    pub tags: BTreeMap<String, String>,
    /// counter, gauge, rate or trend.
    pub kind: String,
    /// Trend: avg, min, med, max, p(90), p(95), p(99) in ms; counter: count, rate; rate: rate,
    /// passes, fails; gauge: value, min, max.
    pub values: BTreeMap<String, f64>,
}

/// A threshold's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub metric: String,
    pub expression: String,
    pub passed: bool,
    /// The aggregation's value at the end (`p(95)=123.4`).
    pub observed: f64,
    pub aggregation: String,
}

/// A check's counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckSummary {
    pub name: String,
    pub scenario: String,
    pub passes: u64,
    pub fails: u64,
}

/// A scenario's key figures (what becomes baseline series points).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    pub executor: String,
    pub tags: BTreeMap<String, String>,
    pub requests: u64,
    /// Requests per second while the scenario ran (from its start to its last iteration).
    pub rps: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub iterations: u64,
    pub dropped_iterations: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// RFC 3339.
    pub started_at: String,
    pub duration_s: f64,
    pub tags: BTreeMap<String, String>,
    pub metrics: Vec<MetricSummary>,
    pub thresholds: Vec<ThresholdResult>,
    pub checks: Vec<CheckSummary>,
    pub scenarios: Vec<ScenarioSummary>,
    /// One point per second.
    pub series: Vec<Point>,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
}

impl Summary {
    /// Whether every threshold held.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }

    /// k6's exit status: 99 when a threshold failed, 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.passed() {
            0
        } else {
            99
        }
    }

    /// A metric by name (`http_reqs`, `http_req_duration{scenario:api}`).
    pub fn metric(&self, name: &str) -> Option<&MetricSummary> {
        self.metrics.iter().find(|m| m.name == name)
    }

    fn value(&self, name: &str, key: &str) -> f64 {
        self.metric(name)
            .and_then(|m| m.values.get(key).copied())
            .unwrap_or(0.0)
    }
}

fn kind_name(k: MetricKind) -> &'static str {
    match k {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Rate => "rate",
        MetricKind::Trend => "trend",
    }
}

const TREND_STATS: [(&str, Agg); 7] = [
    ("avg", Agg::Avg),
    ("min", Agg::Min),
    ("med", Agg::Med),
    ("max", Agg::Max),
    ("p(90)", Agg::P(90.0)),
    ("p(95)", Agg::P(95.0)),
    ("p(99)", Agg::P(99.0)),
];

/// Builds the summary from the final aggregate.
pub fn build(
    plan: &Plan,
    a: &Aggregate,
    elapsed: Duration,
    started: chrono::DateTime<chrono::Utc>,
    aborted: Option<String>,
) -> Summary {
    let metrics = a
        .series
        .iter()
        .map(|s| {
            let mut values = BTreeMap::new();
            match &s.value {
                Value::Counter(c) => {
                    values.insert("count".into(), *c as f64);
                    values.insert("rate".into(), *c as f64 / elapsed.as_secs_f64().max(1e-9));
                }
                Value::Rate { hits, total } => {
                    values.insert(
                        "rate".into(),
                        if *total == 0 {
                            0.0
                        } else {
                            *hits as f64 / *total as f64
                        },
                    );
                    values.insert("passes".into(), *hits as f64);
                    values.insert("fails".into(), (*total - *hits) as f64);
                }
                Value::Trend(t) => {
                    for (name, agg) in TREND_STATS {
                        values.insert(name.into(), t.get(agg));
                    }
                    // Threshold percentiles beyond the default columns.
                    for th in plan.thresholds.iter().filter(|th| th.metric == s.key) {
                        if let Agg::P(p) = th.expr.agg {
                            values.insert(format!("p({p})"), t.get(Agg::P(p)));
                        }
                    }
                    values.insert("count".into(), t.count() as f64);
                }
                Value::Gauge {
                    value, min, max, ..
                } => {
                    values.insert("value".into(), *value);
                    values.insert("min".into(), *min);
                    values.insert("max".into(), *max);
                }
            }
            MetricSummary {
                name: s.key.to_string(),
                metric: s.key.metric.clone(),
                tags: s.key.tags.iter().cloned().collect(),
                kind: kind_name(s.key.kind()).into(),
                values,
            }
        })
        .collect();
    let thresholds = plan
        .thresholds
        .iter()
        .map(|t| {
            let observed = a
                .get(&t.metric)
                .map(|v| v.get(t.expr.agg, elapsed))
                .unwrap_or(0.0);
            ThresholdResult {
                metric: t.metric.to_string(),
                expression: t.expr.source.clone(),
                passed: t.expr.holds(observed),
                observed,
                aggregation: t.expr.agg.to_string(),
            }
        })
        .collect();
    let checks = plan
        .checks
        .iter()
        .zip(&a.check_counts)
        .map(|(c, (p, f))| CheckSummary {
            name: c.name.clone(),
            scenario: plan.scenarios[c.scenario].name.clone(),
            passes: *p,
            fails: *f,
        })
        .collect();
    let scenarios = plan
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, sc)| {
            // Requests per second over the time the scenario ran, not the whole test's.
            let active = match a.spans.get(i) {
                Some((Some(from), Some(to))) => to.saturating_duration_since(*from),
                Some((Some(from), None)) => from.elapsed(),
                _ => elapsed,
            };
            let get = |metric: &str, agg: Agg| {
                let key = MetricRef {
                    metric: metric.into(),
                    tags: vec![("scenario".into(), sc.name.clone())],
                };
                a.get(&key).map(|v| v.get(agg, elapsed)).unwrap_or(0.0)
            };
            let requests = get("http_reqs", Agg::Count) as u64;
            ScenarioSummary {
                name: sc.name.clone(),
                executor: sc.executor.name().into(),
                tags: sc.tags.clone(),
                requests,
                rps: get("http_reqs", Agg::Count) / active.as_secs_f64().max(1e-9),
                avg_ms: get("http_req_duration", Agg::Avg),
                p50_ms: get("http_req_duration", Agg::Med),
                p95_ms: get("http_req_duration", Agg::P(95.0)),
                p99_ms: get("http_req_duration", Agg::P(99.0)),
                error_rate: get("http_req_failed", Agg::Rate),
                iterations: get("iterations", Agg::Count) as u64,
                dropped_iterations: get("dropped_iterations", Agg::Count) as u64,
            }
        })
        .collect();
    Summary {
        started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        duration_s: elapsed.as_secs_f64(),
        tags: plan.tags.clone(),
        metrics,
        thresholds,
        checks,
        scenarios,
        series: a.points.clone(),
        aborted,
    }
}

/// Changes from run A to run B in one scenario; percentages are `None` when A's figure is 0.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub rps_percent: Option<f64>,
    pub p50_percent: Option<f64>,
    pub p95_percent: Option<f64>,
    pub p99_percent: Option<f64>,
    /// B's error rate minus A's (a ratio, not a percentage).
    pub error_rate_change: f64,
}

/// One scenario of two runs side by side (either side absent when only one run has it).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioComparison {
    pub name: String,
    pub a: Option<ScenarioSummary>,
    pub b: Option<ScenarioSummary>,
    /// Present when both runs have the scenario.
    pub delta: Option<Delta>,
}

/// Compares two runs scenario by scenario, in A's order, then B's scenarios A lacks.
pub fn compare(a: &Summary, b: &Summary) -> Vec<ScenarioComparison> {
    let mut names: Vec<&str> = a.scenarios.iter().map(|s| s.name.as_str()).collect();
    for s in &b.scenarios {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    let change = |x: f64, y: f64| (x != 0.0).then(|| (y - x) / x * 100.0);
    names
        .into_iter()
        .map(|n| {
            let x = a.scenarios.iter().find(|s| s.name == n);
            let y = b.scenarios.iter().find(|s| s.name == n);
            let delta = x.zip(y).map(|(x, y)| Delta {
                rps_percent: change(x.rps, y.rps),
                p50_percent: change(x.p50_ms, y.p50_ms),
                p95_percent: change(x.p95_ms, y.p95_ms),
                p99_percent: change(x.p99_ms, y.p99_ms),
                error_rate_change: y.error_rate - x.error_rate,
            });
            ScenarioComparison {
                name: n.to_string(),
                a: x.cloned(),
                b: y.cloned(),
                delta,
            }
        })
        .collect()
}

fn ms(v: f64) -> String {
    human(Duration::from_secs_f64((v / 1000.0).max(0.0)))
}

fn bytes(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1} GB", v / 1e9),
        v if v >= 1e6 => format!("{:.1} MB", v / 1e6),
        v if v >= 1e3 => format!("{:.1} kB", v / 1e3),
        v => format!("{v:.0} B"),
    }
}

fn dotted(out: &mut String, indent: &str, name: &str, value: &str) {
    let width = 36usize.saturating_sub(indent.len());
    let dots = width.saturating_sub(name.chars().count()).max(3);
    let _ = writeln!(out, "{indent}{name}{}: {value}", ".".repeat(dots));
}

fn trend_line(m: &MetricSummary) -> String {
    ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"]
        .iter()
        .map(|k| format!("{k}={:<9}", ms(m.values.get(*k).copied().unwrap_or(0.0))))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_string()
}

/// k6's end-of-test text: thresholds, totals by section, then per scenario and request.
pub fn text(s: &Summary) -> String {
    let mut out = String::new();
    if !s.thresholds.is_empty() {
        out.push_str("  █ THRESHOLDS\n\n");
        let mut last = "";
        for t in &s.thresholds {
            if t.metric != last {
                let _ = writeln!(out, "    {}", t.metric);
                last = &t.metric;
            }
            let trend = s.metric(&t.metric).is_some_and(|m| m.kind == "trend");
            let shown = if trend {
                ms(t.observed)
            } else if t.aggregation == "rate"
                && s.metric(&t.metric).is_some_and(|m| m.kind == "rate")
            {
                format!("{:.2}%", t.observed * 100.0)
            } else {
                format!("{}", (t.observed * 100.0).round() / 100.0)
            };
            let _ = writeln!(
                out,
                "    {} '{}' {}={}",
                if t.passed { "✓" } else { "✗" },
                t.expression,
                t.aggregation,
                shown
            );
        }
        out.push('\n');
    }
    out.push_str("  █ TOTAL RESULTS\n\n");
    let (passes, fails): (u64, u64) = s
        .checks
        .iter()
        .fold((0, 0), |(p, f), c| (p + c.passes, f + c.fails));
    if passes + fails > 0 {
        let total = passes + fails;
        dotted(
            &mut out,
            "    ",
            "checks_total",
            &format!("{total:<7} {:.2}/s", total as f64 / s.duration_s.max(1e-9)),
        );
        dotted(
            &mut out,
            "    ",
            "checks_succeeded",
            &format!(
                "{:.2}% {passes} out of {total}",
                passes as f64 * 100.0 / total as f64
            ),
        );
        dotted(
            &mut out,
            "    ",
            "checks_failed",
            &format!(
                "{:.2}% {fails} out of {total}",
                fails as f64 * 100.0 / total as f64
            ),
        );
        out.push('\n');
        for c in &s.checks {
            if c.fails == 0 {
                let _ = writeln!(out, "    ✓ {}", c.name);
            } else {
                let _ = writeln!(
                    out,
                    "    ✗ {}\n      ↳ {}% — ✓ {} / ✗ {}",
                    c.name,
                    (c.passes * 100) / (c.passes + c.fails).max(1),
                    c.passes,
                    c.fails
                );
            }
        }
        out.push('\n');
    }
    let plain = |name: &str| s.metric(name);
    let counter = |name: &str| {
        format!(
            "{:<7} {:.1}/s",
            s.value(name, "count"),
            s.value(name, "rate")
        )
    };
    let gauge = |name: &str| {
        let v = |k| s.value(name, k);
        format!("{:<7} min={} max={}", v("value"), v("min"), v("max"))
    };
    out.push_str("    HTTP\n");
    for name in [
        "http_req_duration",
        "http_req_blocked",
        "http_req_connecting",
        "http_req_tls_handshaking",
        "http_req_sending",
        "http_req_waiting",
        "http_req_receiving",
    ] {
        if let Some(m) = plain(name) {
            dotted(&mut out, "    ", name, &trend_line(m));
            if name == "http_req_duration" {
                if let Some(m) = plain("http_req_duration{expected_response:true}") {
                    dotted(
                        &mut out,
                        "      ",
                        "{ expected_response:true }",
                        &trend_line(m),
                    );
                }
            }
        }
    }
    let failed = s.value("http_req_failed", "passes");
    let total = failed + s.value("http_req_failed", "fails");
    dotted(
        &mut out,
        "    ",
        "http_req_failed",
        &format!(
            "{:.2}%  {failed} out of {total}",
            if total > 0.0 {
                failed * 100.0 / total
            } else {
                0.0
            }
        ),
    );
    dotted(&mut out, "    ", "http_reqs", &counter("http_reqs"));
    out.push_str("\n    EXECUTION\n");
    if s.value("dropped_iterations", "count") > 0.0 {
        dotted(
            &mut out,
            "    ",
            "dropped_iterations",
            &counter("dropped_iterations"),
        );
    }
    if let Some(m) = plain("iteration_duration") {
        dotted(&mut out, "    ", "iteration_duration", &trend_line(m));
    }
    dotted(&mut out, "    ", "iterations", &counter("iterations"));
    dotted(&mut out, "    ", "vus", &gauge("vus"));
    dotted(&mut out, "    ", "vus_max", &gauge("vus_max"));
    out.push_str("\n    NETWORK\n");
    for name in ["data_received", "data_sent"] {
        dotted(
            &mut out,
            "    ",
            name,
            &format!(
                "{} {}/s",
                bytes(s.value(name, "count")),
                bytes(s.value(name, "rate"))
            ),
        );
    }
    out.push_str("\n  █ SCENARIOS\n\n");
    for sc in &s.scenarios {
        let _ = writeln!(
            out,
            "    {} ({}): {} requests, {:.1}/s, p95={}, p99={}, failed {:.2}%, {} iterations{}",
            sc.name,
            sc.executor,
            sc.requests,
            sc.rps,
            ms(sc.p95_ms),
            ms(sc.p99_ms),
            sc.error_rate * 100.0,
            sc.iterations,
            if sc.dropped_iterations > 0 {
                format!(", {} dropped", sc.dropped_iterations)
            } else {
                String::new()
            }
        );
    }
    let by_name: Vec<&MetricSummary> = s
        .metrics
        .iter()
        .filter(|m| {
            m.metric == "http_req_duration" && m.tags.contains_key("name") && m.tags.len() == 1
        })
        .collect();
    if by_name.len() > 1 {
        out.push_str("\n    by request\n");
        for m in by_name {
            let name = &m.tags["name"];
            let reqs = s.value(&format!("http_reqs{{name:{name}}}"), "count");
            let failed = s.value(&format!("http_req_failed{{name:{name}}}"), "rate");
            let _ = writeln!(
                out,
                "    {name}: {reqs} requests, avg={} p95={} p99={}, failed {:.2}%",
                ms(m.values["avg"]),
                ms(m.values["p(95)"]),
                ms(m.values["p(99)"]),
                failed * 100.0
            );
        }
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  run time {}",
        human(Duration::from_secs_f64(s.duration_s))
    );
    if let Some(why) = &s.aborted {
        let _ = writeln!(out, "  stopped early: {why}");
    }
    if !s.passed() {
        out.push_str("  some thresholds have failed\n");
    }
    out
}

/// k6's `--summary-export` JSON: `{"root_group": {checks}, "metrics": {name: values}}`, with
/// trends in milliseconds and each threshold mapped to whether it failed.
pub fn k6_export(s: &Summary) -> serde_json::Value {
    let mut metrics = serde_json::Map::new();
    for m in &s.metrics {
        let mut v = serde_json::Map::new();
        match m.kind.as_str() {
            "trend" => {
                for (k, x) in &m.values {
                    if k != "count" {
                        v.insert(k.clone(), (*x).into());
                    }
                }
            }
            "rate" => {
                v.insert("passes".into(), (m.values["passes"] as u64).into());
                v.insert("fails".into(), (m.values["fails"] as u64).into());
                v.insert("value".into(), m.values["rate"].into());
            }
            "counter" => {
                v.insert("count".into(), (m.values["count"] as u64).into());
                v.insert("rate".into(), m.values["rate"].into());
            }
            _ => {
                v.insert("value".into(), m.values["value"].into());
                v.insert("min".into(), m.values["min"].into());
                v.insert("max".into(), m.values["max"].into());
            }
        }
        let ths: serde_json::Map<String, serde_json::Value> = s
            .thresholds
            .iter()
            .filter(|t| t.metric == m.name)
            .map(|t| (t.expression.clone(), (!t.passed).into()))
            .collect();
        if !ths.is_empty() {
            v.insert("thresholds".into(), ths.into());
        }
        metrics.insert(m.name.clone(), v.into());
    }
    let checks: serde_json::Map<String, serde_json::Value> = s
        .checks
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                serde_json::json!({"name": c.name, "path": format!("::{}", c.name), "id": c.name, "passes": c.passes, "fails": c.fails}),
            )
        })
        .collect();
    serde_json::json!({
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e", "groups": {}, "checks": checks},
        "metrics": metrics,
    })
}
