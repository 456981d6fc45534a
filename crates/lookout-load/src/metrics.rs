//! Metrics of a run: what a VU records per request, iteration and check (buffered locally, so the
//! hot path takes no lock), and the shared aggregate those buffers fold into: k6's built-in
//! metrics and their tagged sub-metrics, with bounded-memory HDR histograms for every trend,
//! plus a per-second series per scenario for charts and the live display.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::spec::Plan;
use crate::threshold::{Agg, MetricKind, MetricRef};

/// Largest time a histogram holds, in microseconds (one hour); longer samples saturate.
const MAX_US: u64 = 3_600_000_000;

/// One HTTP request's outcome.
#[derive(Debug, Clone, Copy)]
pub struct HttpSample {
    /// Milliseconds since the run started.
    pub at_ms: u32,
    /// Index into [`Plan::requests`].
    pub request: u32,
    /// 0 when no response arrived.
    pub status: u16,
    pub failed: bool,
    /// k6-style error code, 0 for none.
    pub error_code: u32,
    /// Microseconds: duration, blocked, connecting, tls_handshaking, sending, waiting, receiving.
    pub us: [u32; 7],
    pub sent: u32,
    pub received: u32,
}

/// Something a VU recorded.
#[derive(Debug, Clone, Copy)]
pub enum Record {
    Http(HttpSample),
    Iteration { at_ms: u32, scenario: u16, us: u32 },
    Check { check: u32, pass: bool },
}

/// The trend metrics fed by HTTP samples, in [`HttpSample::us`] order.
const HTTP_TRENDS: [&str; 7] = [
    "http_req_duration",
    "http_req_blocked",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
];

/// A metric's running value.
#[derive(Debug, Clone)]
pub enum Value {
    Counter(u64),
    Rate {
        hits: u64,
        total: u64,
    },
    Trend(Box<Trend>),
    Gauge {
        value: f64,
        min: f64,
        max: f64,
        seen: bool,
    },
}

/// A distribution: exact count, sum, min and max, and an HDR histogram (0.1%) for percentiles.
#[derive(Debug, Clone)]
pub struct Trend {
    hist: Histogram<u64>,
    count: u64,
    sum_us: f64,
    min_us: u64,
    max_us: u64,
}

impl Trend {
    fn new() -> Trend {
        Trend {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
            count: 0,
            sum_us: 0.0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    fn record(&mut self, us: u64) {
        self.hist.saturating_record(us.min(MAX_US));
        self.count += 1;
        self.sum_us += us as f64;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// An aggregation, in milliseconds (0 without samples, as k6).
    pub fn get(&self, agg: Agg) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let us = match agg {
            Agg::Avg => self.sum_us / self.count as f64,
            Agg::Min => self.min_us as f64,
            Agg::Max => self.max_us as f64,
            Agg::Med => self.quantile(50.0),
            Agg::P(p) => self.quantile(p),
            _ => 0.0,
        };
        us / 1000.0
    }

    fn quantile(&self, p: f64) -> f64 {
        match p {
            p if p <= 0.0 => self.min_us as f64,
            p if p >= 100.0 => self.max_us as f64,
            p => (self.hist.value_at_quantile(p / 100.0) as f64).min(self.max_us as f64),
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl Value {
    fn new(kind: MetricKind) -> Value {
        match kind {
            MetricKind::Counter => Value::Counter(0),
            MetricKind::Rate => Value::Rate { hits: 0, total: 0 },
            MetricKind::Trend => Value::Trend(Box::new(Trend::new())),
            MetricKind::Gauge => Value::Gauge {
                value: 0.0,
                min: 0.0,
                max: 0.0,
                seen: false,
            },
        }
    }

    /// An aggregation's value; `elapsed` turns counts into rates.
    pub fn get(&self, agg: Agg, elapsed: Duration) -> f64 {
        match (self, agg) {
            (Value::Counter(c), Agg::Count) => *c as f64,
            (Value::Counter(c), Agg::Rate) => *c as f64 / elapsed.as_secs_f64().max(1e-9),
            (Value::Rate { hits, total }, _) => {
                if *total == 0 {
                    0.0
                } else {
                    *hits as f64 / *total as f64
                }
            }
            (Value::Trend(t), agg) => t.get(agg),
            (Value::Gauge { value, .. }, _) => *value,
            _ => 0.0,
        }
    }
}

/// A metric or sub-metric with its value.
#[derive(Debug, Clone)]
pub struct Series {
    pub key: MetricRef,
    pub value: Value,
}

/// A condition only the response decides (status, expected_response, error_code).
#[derive(Debug, Clone, Copy, Default)]
struct Dynamic {
    status: Option<u16>,
    expected: Option<bool>,
    error_code: Option<u32>,
}

impl Dynamic {
    fn matches(&self, s: &HttpSample) -> bool {
        self.status.is_none_or(|v| v == s.status)
            && self.expected.is_none_or(|v| v != s.failed)
            && self.error_code.is_none_or(|v| v == s.error_code)
    }
}

/// Per-second figures of one scenario (index 0 is the whole run).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SecondStats {
    pub reqs: u64,
    pub failed: u64,
    pub iterations: u64,
    pub dropped: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub vus: u64,
}

/// One second of the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Seconds since the start.
    pub t: u32,
    /// Index 0: every scenario; then one entry per scenario in plan order.
    pub scenarios: Vec<SecondStats>,
}

/// Open second: counters plus an interval histogram per scenario.
struct OpenSecond {
    stats: Vec<SecondStats>,
    hist: Vec<Histogram<u64>>,
}

/// The shared aggregate of a run.
pub struct Aggregate {
    pub started: Instant,
    pub series: Vec<Series>,
    /// Per request id: (series index, trend slot or usize::MAX, dynamic condition).
    http_routes: Vec<Vec<(usize, usize, Dynamic)>>,
    /// Per scenario: series fed by iterations.
    iter_routes: Vec<Vec<usize>>,
    /// Per check id: series fed by check results.
    check_routes: Vec<Vec<usize>>,
    /// Per scenario: series for dropped iterations.
    dropped_routes: Vec<Vec<usize>>,
    vus_routes: Vec<usize>,
    /// Passes and fails per check id.
    pub check_counts: Vec<(u64, u64)>,
    request_scenario: Vec<usize>,
    scenarios: usize,
    open: BTreeMap<u32, OpenSecond>,
    pub points: Vec<Point>,
    /// Current VUs per scenario.
    pub vus: Vec<u64>,
    /// When each scenario started and ended, for its own request rate.
    pub spans: Vec<(Option<Instant>, Option<Instant>)>,
    allocated: Vec<u64>,
    vus_max_series: Option<usize>,
    scenario_vus_series: Vec<Option<usize>>,
}

/// Whether a static tag filter holds for tags known before the run.
fn static_match(filter: &MetricRef, known: &BTreeMap<&str, &str>) -> bool {
    filter.tags.iter().all(|(k, v)| match k.as_str() {
        "status" | "expected_response" | "error_code" => true,
        k => known.get(k).is_some_and(|have| have == v),
    })
}

fn dynamic_of(filter: &MetricRef) -> Dynamic {
    Dynamic {
        status: filter.tag("status").and_then(|v| v.parse().ok()),
        expected: filter.tag("expected_response").map(|v| v == "true"),
        error_code: filter.tag("error_code").and_then(|v| v.parse().ok()),
    }
}

impl Aggregate {
    /// Sets up every metric the summary shows, every sub-metric a threshold names, and a
    /// per-scenario and per-request breakdown of the HTTP metrics.
    pub fn new(plan: &Plan, started: Instant) -> Aggregate {
        let mut keys: Vec<MetricRef> = crate::threshold::METRICS
            .iter()
            .map(|(m, _)| MetricRef {
                metric: m.to_string(),
                tags: vec![],
            })
            .collect();
        let sub = |metric: &str, k: &str, v: &str| MetricRef {
            metric: metric.to_string(),
            tags: vec![(k.to_string(), v.to_string())],
        };
        keys.push(sub("http_req_duration", "expected_response", "true"));
        for s in &plan.scenarios {
            for m in [
                "http_reqs",
                "http_req_duration",
                "http_req_failed",
                "iterations",
                "iteration_duration",
                "checks",
                "dropped_iterations",
                "vus",
            ] {
                keys.push(sub(m, "scenario", &s.name));
            }
        }
        // A per-request breakdown only says something new when a scenario sends several.
        let several = plan.requests.len() > plan.scenarios.len();
        for r in plan.requests.iter().filter(|_| several) {
            for m in ["http_reqs", "http_req_duration", "http_req_failed"] {
                let k = sub(m, "name", &r.name);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        for t in &plan.thresholds {
            if !keys.contains(&t.metric) {
                keys.push(t.metric.clone());
            }
        }
        let series: Vec<Series> = keys
            .into_iter()
            .map(|key| Series {
                value: Value::new(key.kind()),
                key,
            })
            .collect();

        let mut http_routes = Vec::new();
        for r in &plan.requests {
            let scenario = &plan.scenarios[r.scenario].name;
            let mut known: BTreeMap<&str, &str> = plan
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            known.extend(r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            known.insert("scenario", scenario);
            known.insert("name", &r.name);
            known.insert("method", &r.method);
            let mut routes = Vec::new();
            for (i, s) in series.iter().enumerate() {
                let slot = match s.key.metric.as_str() {
                    "http_reqs" | "http_req_failed" | "data_sent" | "data_received" => usize::MAX,
                    m => match HTTP_TRENDS.iter().position(|t| *t == m) {
                        Some(p) => p,
                        None => continue,
                    },
                };
                if static_match(&s.key, &known) {
                    routes.push((i, slot, dynamic_of(&s.key)));
                }
            }
            http_routes.push(routes);
        }
        let scenario_known = |si: usize| -> BTreeMap<&str, &str> {
            let mut known: BTreeMap<&str, &str> = plan
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            known.extend(
                plan.scenarios[si]
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            known.insert("scenario", &plan.scenarios[si].name);
            known
        };
        let pick = |known: &BTreeMap<&str, &str>, metrics: &[&str]| -> Vec<usize> {
            series
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    metrics.contains(&s.key.metric.as_str()) && static_match(&s.key, known)
                })
                .map(|(i, _)| i)
                .collect()
        };
        let iter_routes = (0..plan.scenarios.len())
            .map(|si| pick(&scenario_known(si), &["iterations", "iteration_duration"]))
            .collect();
        let dropped_routes: Vec<Vec<usize>> = (0..plan.scenarios.len())
            .map(|si| pick(&scenario_known(si), &["dropped_iterations"]))
            .collect();
        let check_routes = plan
            .checks
            .iter()
            .map(|c| {
                let r = &plan.requests[c.request];
                let mut known = scenario_known(c.scenario);
                known.extend(r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                known.insert("name", &r.name);
                known.insert("method", &r.method);
                known.insert("check", &c.name);
                pick(&known, &["checks"])
            })
            .collect();
        let vus_routes = series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.key.metric == "vus" && s.key.tags.is_empty())
            .map(|(i, _)| i)
            .collect();
        let vus_max_series = series
            .iter()
            .position(|s| s.key.metric == "vus_max" && s.key.tags.is_empty());
        let scenario_vus_series = plan
            .scenarios
            .iter()
            .map(|sc| {
                series.iter().position(|s| {
                    s.key.metric == "vus"
                        && s.key.tags.len() == 1
                        && s.key.tag("scenario") == Some(sc.name.as_str())
                })
            })
            .collect();
        Aggregate {
            started,
            series,
            http_routes,
            iter_routes,
            check_routes,
            dropped_routes,
            vus_routes,
            check_counts: vec![(0, 0); plan.checks.len()],
            request_scenario: plan.requests.iter().map(|r| r.scenario).collect(),
            scenarios: plan.scenarios.len(),
            open: BTreeMap::new(),
            points: Vec::new(),
            vus: vec![0; plan.scenarios.len()],
            spans: vec![(None, None); plan.scenarios.len()],
            allocated: vec![0; plan.scenarios.len()],
            vus_max_series,
            scenario_vus_series,
        }
    }

    fn second(&mut self, at_ms: u32) -> &mut OpenSecond {
        let n = self.scenarios + 1;
        self.open.entry(at_ms / 1000).or_insert_with(|| OpenSecond {
            stats: vec![SecondStats::default(); n],
            hist: (0..n)
                .map(|_| Histogram::new_with_bounds(1, MAX_US, 2).expect("valid histogram bounds"))
                .collect(),
        })
    }

    /// Folds a VU's buffer in.
    pub fn absorb(&mut self, records: &[Record]) {
        for r in records {
            match *r {
                Record::Http(s) => {
                    let Some(routes) = self.http_routes.get(s.request as usize) else {
                        continue;
                    };
                    for &(i, slot, dynamic) in routes {
                        if !dynamic.matches(&s) {
                            continue;
                        }
                        let series = &mut self.series[i];
                        match &mut series.value {
                            Value::Trend(t) => t.record(u64::from(s.us[slot])),
                            Value::Rate { hits, total } => {
                                *total += 1;
                                *hits += u64::from(s.failed);
                            }
                            Value::Counter(c) => {
                                *c += match series.key.metric.as_str() {
                                    "data_sent" => u64::from(s.sent),
                                    "data_received" => u64::from(s.received),
                                    _ => 1,
                                }
                            }
                            Value::Gauge { .. } => {}
                        }
                    }
                    let scenario = self.request_scenario[s.request as usize] + 1;
                    // With one scenario its figures are the run's: recorded once, copied at close.
                    let single = self.scenarios == 1;
                    let sec = self.second(s.at_ms);
                    for at in [0, scenario].into_iter().take(if single { 1 } else { 2 }) {
                        sec.stats[at].reqs += 1;
                        sec.stats[at].failed += u64::from(s.failed);
                        sec.hist[at].saturating_record(u64::from(s.us[0]).min(MAX_US));
                    }
                }
                Record::Iteration {
                    at_ms,
                    scenario,
                    us,
                } => {
                    for &i in &self.iter_routes[scenario as usize] {
                        match &mut self.series[i].value {
                            Value::Counter(c) => *c += 1,
                            Value::Trend(t) => t.record(u64::from(us)),
                            _ => {}
                        }
                    }
                    let sec = self.second(at_ms);
                    sec.stats[0].iterations += 1;
                    sec.stats[scenario as usize + 1].iterations += 1;
                }
                Record::Check { check, pass } => {
                    let c = check as usize;
                    if pass {
                        self.check_counts[c].0 += 1;
                    } else {
                        self.check_counts[c].1 += 1;
                    }
                    for &i in &self.check_routes[c] {
                        if let Value::Rate { hits, total } = &mut self.series[i].value {
                            *total += 1;
                            *hits += u64::from(pass);
                        }
                    }
                }
            }
        }
    }

    /// Counts iterations a scenario could not start.
    pub fn dropped(&mut self, scenario: usize, n: u64) {
        for &i in &self.dropped_routes[scenario] {
            if let Value::Counter(c) = &mut self.series[i].value {
                *c += n;
            }
        }
        let at = self.started.elapsed().as_millis() as u32;
        let sec = self.second(at);
        sec.stats[0].dropped += n;
        sec.stats[scenario + 1].dropped += n;
    }

    /// Sets a scenario's current and allocated VU counts, and with them the gauges `vus`,
    /// `vus_max` and `vus{scenario:NAME}`.
    pub fn set_vus(&mut self, scenario: usize, active: u64, allocated: u64) {
        self.vus[scenario] = active;
        self.allocated[scenario] = allocated;
        let total: u64 = self.vus.iter().sum();
        let total_max: u64 = self.allocated.iter().sum();
        for &s in &self.vus_routes {
            set_gauge(&mut self.series[s].value, total as f64);
        }
        if let Some(s) = self.vus_max_series {
            set_gauge(&mut self.series[s].value, total_max as f64);
        }
        if let Some(Some(s)) = self.scenario_vus_series.get(scenario) {
            set_gauge(&mut self.series[*s].value, active as f64);
        }
        // The second's point keeps the last value seen in it.
        let at = self.started.elapsed().as_millis() as u32;
        let sec = self.second(at);
        sec.stats[0].vus = total;
        sec.stats[scenario + 1].vus = active;
    }

    /// Closes seconds older than `upto` into points.
    pub fn close_seconds(&mut self, upto: u32) {
        let ready: Vec<u32> = self.open.range(..upto).map(|(k, _)| *k).collect();
        for k in ready {
            let Some(mut sec) = self.open.remove(&k) else {
                continue;
            };
            if self.scenarios == 1 {
                let (iterations, dropped, vus) = (
                    sec.stats[1].iterations,
                    sec.stats[1].dropped,
                    sec.stats[1].vus,
                );
                sec.stats[1] = sec.stats[0].clone();
                sec.stats[1].iterations = iterations;
                sec.stats[1].dropped = dropped;
                sec.stats[1].vus = vus;
                sec.hist[1] = sec.hist[0].clone();
            }
            for (i, st) in sec.stats.iter_mut().enumerate() {
                let h = &sec.hist[i];
                if !h.is_empty() {
                    st.p50_ms = h.value_at_quantile(0.50) as f64 / 1000.0;
                    st.p95_ms = h.value_at_quantile(0.95) as f64 / 1000.0;
                    st.p99_ms = h.value_at_quantile(0.99) as f64 / 1000.0;
                    st.max_ms = h.max() as f64 / 1000.0;
                }
            }
            // Seconds with no sample still get a point, so charts show the gap.
            let next = self.points.last().map(|p| p.t + 1).unwrap_or(0);
            for t in next..k {
                self.points.push(Point {
                    t,
                    scenarios: vec![SecondStats::default(); self.scenarios + 1],
                });
            }
            match self.points.iter_mut().find(|p| p.t == k) {
                // Samples that arrived after their second was closed add to its counts.
                Some(p) => {
                    for (have, late) in p.scenarios.iter_mut().zip(&sec.stats) {
                        have.reqs += late.reqs;
                        have.failed += late.failed;
                        have.iterations += late.iterations;
                        have.dropped += late.dropped;
                        if have.vus == 0 {
                            have.vus = late.vus;
                        }
                        if have.p50_ms == 0.0 {
                            (have.p50_ms, have.p95_ms, have.p99_ms, have.max_ms) =
                                (late.p50_ms, late.p95_ms, late.p99_ms, late.max_ms);
                        }
                    }
                }
                None => self.points.push(Point {
                    t: k,
                    scenarios: sec.stats,
                }),
            }
        }
    }

    /// A series by key.
    pub fn get(&self, key: &MetricRef) -> Option<&Value> {
        self.series.iter().find(|s| s.key == *key).map(|s| &s.value)
    }
}

fn set_gauge(v: &mut Value, x: f64) {
    if let Value::Gauge {
        value,
        min,
        max,
        seen,
    } = v
    {
        *value = x;
        if !*seen {
            *min = x;
            *max = x;
            *seen = true;
        } else {
            *min = min.min(x);
            *max = max.max(x);
        }
    }
}

/// A VU's local buffer, flushed into the aggregate in batches.
pub struct Buffer {
    pub records: Vec<Record>,
    oldest: Option<Instant>,
}

impl Default for Buffer {
    fn default() -> Self {
        Buffer {
            records: Vec::with_capacity(FLUSH_AT),
            oldest: None,
        }
    }
}

/// Records per batch; large enough that the lock is rare, small enough to stay in cache.
const FLUSH_AT: usize = 512;
/// The oldest record waits at most this long, so live figures and per-second points are fresh.
const FLUSH_AFTER: Duration = Duration::from_millis(100);

impl Buffer {
    /// Adds a record; true when the buffer should be flushed.
    pub fn push(&mut self, r: Record, now: Instant) -> bool {
        if self.oldest.is_none() {
            self.oldest = Some(now);
        }
        self.records.push(r);
        self.due(now)
    }

    /// Whether the buffer is full or old.
    pub fn due(&self, now: Instant) -> bool {
        self.records.len() >= FLUSH_AT
            || self
                .oldest
                .is_some_and(|o| now.duration_since(o) >= FLUSH_AFTER)
    }

    /// Empties the buffer into `agg`.
    pub fn flush(&mut self, agg: &std::sync::Mutex<Aggregate>) {
        if self.records.is_empty() {
            return;
        }
        if let Ok(mut a) = agg.lock() {
            a.absorb(&self.records);
        }
        self.records.clear();
        self.oldest = None;
    }
}
