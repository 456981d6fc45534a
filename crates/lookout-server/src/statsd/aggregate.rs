//! The StatsD aggregator: lines in, one Prometheus batch out per flush. Pure (no IO, no clock
//! of its own), so the naming map, sample rates, gauge deltas, set cardinality and the series
//! budget are unit-tested here.
//!
//! **Naming.** Every character Prometheus does not allow in a metric or label name becomes `_`
//! (`api.request-time` → `api_request_time`); a leading digit gets a `_` in front; a tag name
//! starting with `__` (reserved) gets `tag` in front. A bare DogStatsD tag `canary` becomes the
//! label `canary="true"`. Every series gets `instance="<Settings::instance>"` (this replica's
//! name, see docs/metrics.md) when one is set, so two replicas listening for StatsD write two
//! series, never one with two interleaved running totals; a tag named `instance` becomes
//! `exported_instance`, as Prometheus renames a scraped label that clashes with a target label.
//!
//! **Types.**
//! - counter `c` → `<name>_total`, a monotonic counter: the running sum since this server
//!   started (each value divided by its sample rate), written at every flush, so `rate()` and
//!   `increase()` work as on any Prometheus counter (a restart is a counter reset); a negative
//!   increment (`decr`) is refused and counted on its own (`Outcome::negative`), as
//!   statsd_exporter refuses it;
//! - gauge `g` → `<name>`, the last value; `+n` / `-n` change it (from 0 when unknown);
//! - timer `ms` → a summary `<name>_seconds` in seconds (values divided by 1000); histogram
//!   `h` and distribution `d` → a summary `<name>` in the unit sent. `_sum` and `_count` are
//!   running totals like counters (weighted by 1/rate); `{quantile="…"}` are the quantiles of
//!   the values of the last interval, written only for an interval that had values;
//! - set `s` → a gauge `<name>` of the distinct members seen in the interval (0 when none).
//!
//! A new counter (and a new summary's `_sum` and `_count`) is first written with a 0 at the
//! previous flush (1 ms before the first flush after start), then its total: so `increase()` and
//! `rate()` count its first increments, as they would had the series existed at 0 before.
//!
//! A series idle for [`Settings::idle_flushes`] flushes (default 360: an hour at 10 s) is
//! forgotten; if it comes back, its counters start again from 0 (with the 0 sample above), which
//! `rate()` reads as a reset.
//!
//! **Budgets.** At most [`Settings::max_series`] series (new ones are refused and counted),
//! holding at most [`Settings::max_label_bytes`] of names and labels together (new series beyond
//! are refused the same way); per interval at most [`MAX_WINDOW`] values per summary and
//! [`MAX_MEMBERS`] members per set, and across all series at most [`Settings::max_values`]
//! summary values and [`Settings::max_members`] set members (values beyond are counted in
//! [`Outcome::values_dropped`]; the sum and count stay exact, quantiles are those of the values
//! kept, a set's count stops rising). So the aggregator's memory has one bound, whatever the
//! senders do: about 8 bytes per value, 16 per member, plus the label bytes; twice that at
//! most while a flush is built, since a taken flush holds the last interval's values (and
//! keys just forgotten) while the next interval fills.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use lookout_protocol::remote_write::{Batch, Metadata, MetricType, Series};
use lookout_protocol::statsd::{self, Kind, Line, Value};

/// Values kept per summary per interval, for its quantiles.
pub const MAX_WINDOW: usize = 10_000;
/// Distinct members counted per set per interval.
pub const MAX_MEMBERS: usize = 100_000;

/// What the aggregator may hold, and what it writes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Most series held at once.
    pub max_series: usize,
    /// Quantiles written for timers, histograms and distributions.
    pub quantiles: Vec<f64>,
    /// Flushes without a value after which a series is forgotten.
    pub idle_flushes: u32,
    /// Summary values kept for quantiles per interval, across all series.
    pub max_values: usize,
    /// Distinct set members counted per interval, across all series.
    pub max_members: usize,
    /// Bytes of metric names, label names and values held, across all series.
    pub max_label_bytes: usize,
    /// The `instance` label of every series (this replica's name); none when empty.
    pub instance: String,
    /// Bytes one flush's batch may take (as [`batch_bytes`] counts them); output series beyond
    /// are left out of that flush and counted.
    pub max_flush_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_series: 10_000,
            quantiles: vec![0.5, 0.9, 0.99],
            idle_flushes: 360,
            max_values: 1_000_000,
            max_members: 1_000_000,
            max_label_bytes: 16 << 20,
            max_flush_bytes: 64 << 20,
            instance: String::new(),
        }
    }
}

/// What one packet did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Metric lines taken.
    pub taken: u64,
    /// Lines that did not parse, or whose name clashed with another type's.
    pub malformed: u64,
    /// Lines refused because the series budget was spent.
    pub over_budget: u64,
    /// Counter lines with a negative value (`decr`): well-formed, but a counter cannot go down.
    pub negative: u64,
    /// Events and service checks (not stored).
    pub ignored: u64,
    /// Unknown `|x:…` fields ignored in lines otherwise taken (`|e:`, `|card:`).
    pub unknown_fields: u64,
    /// Summary values not kept for quantiles and set members not counted: over the budget.
    pub values_dropped: u64,
    /// The first malformed line's reason and start, for a rate-limited log line.
    pub example: Option<String>,
}

#[derive(Debug)]
enum State {
    Counter(f64),
    Gauge(f64),
    Summary {
        sum: f64,
        count: f64,
        window: Vec<f64>,
    },
    Set(HashSet<u64>),
}

impl State {
    fn kind(&self) -> &'static str {
        match self {
            State::Counter(_) => "counter",
            State::Gauge(_) => "gauge",
            State::Summary { .. } => "summary",
            State::Set(_) => "set",
        }
    }
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// Flushes since the last value.
    idle: u32,
    /// Not yet flushed: its first flush writes a 0 before its running total.
    fresh: bool,
}

/// (Prometheus name, sorted labels).
type Key = (String, Vec<(String, String)>);

/// The in-memory aggregation between flushes.
#[derive(Debug)]
pub struct Aggregator {
    settings: Settings,
    /// Keys are shared so that a flush takes them under the lock by reference count, and
    /// copies their labels into the batch after letting go of it.
    series: HashMap<Arc<Key>, Entry>,
    /// When the last flush was (ms), where a new counter's 0 goes.
    last_flush: Option<i64>,
    /// Output series (labels with `__name__`) the store refused for good (series limit,
    /// collision): left out of flushes until [`Settings::idle_flushes`] flushes have passed,
    /// then tried again. Shared with the flush being built (copied only when changed).
    refused: Arc<HashSet<Vec<(String, String)>>>,
    /// Flushes since `refused` was last emptied.
    refused_age: u32,
    /// Samples left out of flushes because their series was refused, not yet reported.
    refused_samples: u64,
    /// Summary values held this interval, across series.
    values_held: usize,
    /// Set members held this interval, across series.
    members_held: usize,
    /// Bytes of the keys held.
    label_bytes: usize,
    /// Values and members refused over the budgets, ever.
    values_dropped: u64,
    /// Samples left out of flushes over [`Settings::max_flush_bytes`], not yet reported.
    over_flush_samples: u64,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(settings: Settings) -> Self {
        Aggregator {
            settings,
            series: HashMap::new(),
            last_flush: None,
            refused: Arc::default(),
            refused_age: 0,
            refused_samples: 0,
            values_held: 0,
            members_held: 0,
            label_bytes: 0,
            values_dropped: 0,
            over_flush_samples: 0,
        }
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether no series is held.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Marks output series the store refused for good, so later flushes leave them out (and
    /// count them) instead of sending them again with the others.
    pub fn refuse(&mut self, series: impl IntoIterator<Item = Vec<(String, String)>>) {
        // Bounded like the series themselves (a summary has a few outputs per series).
        let cap = self.settings.max_series.saturating_mul(4);
        if self.refused.is_empty() {
            self.refused_age = 0;
        }
        let refused = Arc::make_mut(&mut self.refused);
        for l in series {
            if refused.len() >= cap {
                break;
            }
            refused.insert(l);
        }
    }

    /// Samples left out of flushes since the last call because the store refused their series
    /// (what [`Aggregator::flush`] left out; the server reads [`Built`] instead).
    pub fn take_refused_samples(&mut self) -> u64 {
        std::mem::take(&mut self.refused_samples)
    }

    /// Samples left out of flushes since the last call over the flush's byte budget.
    pub fn take_over_flush_samples(&mut self) -> u64 {
        std::mem::take(&mut self.over_flush_samples)
    }

    /// A summary `x` writes `x_sum` and `x_count`: a new series whose output would share a
    /// name and labels with another's is a type clash (which one wins would otherwise depend on
    /// the order of a map).
    fn suffix_clash(&self, (name, labels): &Key, kind: Kind) -> Option<&'static str> {
        let summary = matches!(kind, Kind::Timer | Kind::Histogram | Kind::Distribution);
        for suffix in ["_sum", "_count"] {
            if summary {
                let other = (format!("{name}{suffix}"), labels.clone());
                if let Some(e) = self.series.get(&other) {
                    return Some(e.state.kind());
                }
            } else if let Some(base) = name.strip_suffix(suffix) {
                let other = (base.to_string(), labels.clone());
                if let Some(e) = self.series.get(&other) {
                    if matches!(e.state, State::Summary { .. }) {
                        return Some("summary");
                    }
                }
            }
        }
        None
    }

    /// Takes every line of a packet.
    pub fn add_packet(&mut self, packet: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let dropped_before = self.values_dropped;
        for line in statsd::lines(packet) {
            let parsed = statsd::parse_line(line);
            if let Ok(Line::Metric(m)) = &parsed {
                out.unknown_fields += u64::from(m.unknown_fields);
            }
            let fault = match parsed {
                Ok(Line::Metric(m)) => match self.add(&m) {
                    Ok(()) => {
                        out.taken += 1;
                        None
                    }
                    Err(Refused::OverBudget) => {
                        out.over_budget += 1;
                        None
                    }
                    Err(Refused::Negative) => {
                        out.negative += 1;
                        None
                    }
                    Err(Refused::NotFinite) => Some(
                        "the value times 1/rate, or the total it makes, is not finite".to_string(),
                    ),
                    Err(Refused::TypeClash(k)) => Some(format!(
                        "{} is already a {k} with these tags",
                        metric_name(m.name, m.kind)
                    )),
                },
                Ok(Line::Event | Line::ServiceCheck) => {
                    out.ignored += 1;
                    None
                }
                Err(e) => Some(e.0.to_string()),
            };
            if let Some(why) = fault {
                out.malformed += 1;
                if out.example.is_none() {
                    let start: String = String::from_utf8_lossy(line)
                        .chars()
                        .take(80)
                        .filter(|c| !c.is_control())
                        .collect();
                    out.example = Some(format!("{why}: {start:?}"));
                }
            }
        }
        out.values_dropped = self.values_dropped - dropped_before;
        out
    }

    /// Takes one metric line.
    pub fn add(&mut self, m: &statsd::Metric<'_>) -> Result<(), Refused> {
        // A `_total` series must only rise, or rate() reads a reset (statsd_exporter refuses
        // these too); checked before anything of the line is taken.
        if m.kind == Kind::Counter
            && m.values
                .iter()
                .any(|v| matches!(v, Value::Number(n) if *n < 0.0))
        {
            return Err(Refused::Negative);
        }
        let mut tags = labels(&m.tags);
        if !self.settings.instance.is_empty() {
            for (k, _) in tags.iter_mut() {
                if k == "instance" {
                    *k = "exported_instance".into();
                }
            }
            tags.push(("instance".into(), self.settings.instance.clone()));
            tags.sort();
            tags.dedup_by(|a, b| a.0 == b.0);
        }
        let key = (metric_name(m.name, m.kind), tags);
        if !self.series.contains_key(&key) {
            if let Some(kind) = self.suffix_clash(&key, m.kind) {
                return Err(Refused::TypeClash(kind));
            }
            let bytes = key_bytes(&key);
            if self.series.len() >= self.settings.max_series
                || self.label_bytes + bytes > self.settings.max_label_bytes
            {
                return Err(Refused::OverBudget);
            }
            self.label_bytes += bytes;
            let fresh = Entry {
                state: match m.kind {
                    Kind::Counter => State::Counter(0.0),
                    Kind::Gauge => State::Gauge(0.0),
                    Kind::Timer | Kind::Histogram | Kind::Distribution => State::Summary {
                        sum: 0.0,
                        count: 0.0,
                        window: Vec::new(),
                    },
                    Kind::Set => State::Set(HashSet::new()),
                },
                idle: 0,
                fresh: true,
            };
            self.series.insert(Arc::new(key.clone()), fresh);
        }
        // Looked up by reference: a line of a known series allocates nothing.
        let Some(entry) = self.series.get_mut(&key) else {
            unreachable!("inserted above when missing");
        };
        let weight = 1.0 / m.rate;
        // Divided, not multiplied by 0.001: 250 ms is then exactly 0.25 s.
        let divisor = if m.kind == Kind::Timer { 1000.0 } else { 1.0 };
        // What the line adds to a running total, checked before anything is changed: a total
        // that became infinite (or NaN) would stay so for every later flush.
        let added: f64 = m
            .values
            .iter()
            .map(|v| match v {
                Value::Number(n) | Value::Delta(n) => n / divisor * weight,
                Value::Member(_) => 0.0,
            })
            .sum();
        if !added.is_finite() || !weight.is_finite() {
            return Err(Refused::NotFinite);
        }
        match (&entry.state, m.kind) {
            (State::Counter(t), Kind::Counter) if !(t + added).is_finite() => {
                return Err(Refused::NotFinite)
            }
            (State::Summary { sum, .. }, _) if !(sum + added).is_finite() => {
                return Err(Refused::NotFinite)
            }
            (State::Gauge(g), Kind::Gauge) if !(g.abs() + added.abs()).is_finite() => {
                return Err(Refused::NotFinite)
            }
            _ => {}
        }
        match (&mut entry.state, m.kind) {
            (State::Counter(total), Kind::Counter) => {
                for v in &m.values {
                    if let Value::Number(n) = v {
                        *total += n * weight;
                    }
                }
            }
            (State::Gauge(g), Kind::Gauge) => {
                for v in &m.values {
                    match v {
                        Value::Number(n) => *g = *n,
                        Value::Delta(d) => *g += d,
                        Value::Member(_) => {}
                    }
                }
            }
            (
                State::Summary { sum, count, window },
                Kind::Timer | Kind::Histogram | Kind::Distribution,
            ) => {
                for v in &m.values {
                    if let Value::Number(n) = v {
                        let n = n / divisor;
                        *sum += n * weight;
                        *count += weight;
                        if window.len() < MAX_WINDOW && self.values_held < self.settings.max_values
                        {
                            window.push(n);
                            self.values_held += 1;
                        } else {
                            self.values_dropped += 1;
                        }
                    }
                }
            }
            (State::Set(members), Kind::Set) => {
                for v in &m.values {
                    if let Value::Member(s) = v {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        s.hash(&mut h);
                        let h = h.finish();
                        if members.contains(&h) {
                            continue;
                        }
                        if members.len() < MAX_MEMBERS
                            && self.members_held < self.settings.max_members
                        {
                            members.insert(h);
                            self.members_held += 1;
                        } else {
                            self.values_dropped += 1;
                        }
                    }
                }
            }
            (other, _) => return Err(Refused::TypeClash(other.kind())),
        }
        entry.idle = 0;
        Ok(())
    }

    /// The batch of one flush at `t` (ms): [`Aggregator::take`] then [`Taken::build`], with
    /// what the build left out counted for [`Aggregator::take_refused_samples`] and
    /// [`Aggregator::take_over_flush_samples`].
    pub fn flush(&mut self, t: i64) -> Batch {
        let built = self.take(t).build();
        self.refused_samples += built.refused_samples;
        self.over_flush_samples += built.over_flush_samples;
        built.batch
    }

    /// Takes one flush at `t` (ms): every series' values of the interval are moved out, then
    /// interval state cleared and long-idle series forgotten. The running totals stay, so a
    /// flush whose write fails loses no count: the next one carries it. Cheap (values move,
    /// keys are shared), so the receive loop waits only for this under the lock; sorting
    /// windows and copying labels happen in [`Taken::build`], after the lock is let go.
    pub fn take(&mut self, t: i64) -> Taken {
        let before = self.last_flush.filter(|p| *p < t).unwrap_or(t - 1);
        self.last_flush = Some(t);
        self.refused_age += 1;
        if self.refused_age > self.settings.idle_flushes.max(1) {
            // Tried again now and then: the store's limit may have been raised or series freed.
            self.refused = Arc::default();
            self.refused_age = 0;
        }
        let mut series = Vec::with_capacity(self.series.len());
        for (key, entry) in &mut self.series {
            let value = match &mut entry.state {
                State::Counter(total) => TakenValue::Counter(*total),
                State::Gauge(g) => TakenValue::Gauge(*g),
                State::Set(members) => {
                    let n = members.len();
                    members.clear();
                    TakenValue::Set(n)
                }
                State::Summary { sum, count, window } => TakenValue::Summary {
                    sum: *sum,
                    count: *count,
                    window: std::mem::take(window),
                },
            };
            series.push((Arc::clone(key), value, std::mem::take(&mut entry.fresh)));
            entry.idle += 1;
        }
        // `idle` counts flushes since the last value; 1 means "had values this interval".
        let keep = self.settings.idle_flushes.max(1);
        let freed = &mut self.label_bytes;
        self.series.retain(|k, e| {
            let kept = e.idle <= keep;
            if !kept {
                *freed = freed.saturating_sub(key_bytes(k));
            }
            kept
        });
        // Every window and set was emptied above.
        self.values_held = 0;
        self.members_held = 0;
        Taken {
            t,
            before,
            series,
            refused: Arc::clone(&self.refused),
            quantiles: self.settings.quantiles.clone(),
            max_flush_bytes: self.settings.max_flush_bytes,
        }
    }
}

/// One series' values as a flush took them.
enum TakenValue {
    Counter(f64),
    Gauge(f64),
    Set(usize),
    Summary {
        sum: f64,
        count: f64,
        window: Vec<f64>,
    },
}

/// One flush taken from the aggregator ([`Aggregator::take`]), not yet built into a batch.
pub struct Taken {
    t: i64,
    /// Where a new running total's 0 goes: the previous flush.
    before: i64,
    /// (key, values, not yet flushed before).
    series: Vec<(Arc<Key>, TakenValue, bool)>,
    refused: Arc<HashSet<Vec<(String, String)>>>,
    quantiles: Vec<f64>,
    max_flush_bytes: usize,
}

/// A flush's batch, with the samples it left out.
pub struct Built {
    /// The series to write, and their metadata.
    pub batch: Batch,
    /// Samples of series the store refused for good.
    pub refused_samples: u64,
    /// Samples over the flush's byte budget.
    pub over_flush_samples: u64,
}

impl Taken {
    /// The batch: each series' output series with its labels, within the byte budget.
    pub fn build(self) -> Built {
        let Taken {
            t,
            before,
            series,
            refused,
            quantiles,
            max_flush_bytes,
        } = self;
        let mut batch = Batch::default();
        let mut kinds: HashMap<String, MetricType> = HashMap::new();
        let (mut refused_samples, mut over_flush_samples) = (0u64, 0u64);
        let mut room = max_flush_bytes;
        for (key, value, fresh) in series {
            let (name, labels) = &*key;
            // `from_zero`: a running total's first write, preceded by a 0 (module docs).
            let mut push = |name: &str, extra: Option<(&str, String)>, v: f64, from_zero: bool| {
                let mut l = labels.clone();
                l.push(("__name__".into(), name.to_string()));
                if let Some((k, val)) = extra {
                    l.push((k.to_string(), val));
                }
                l.sort();
                if refused.contains(&l) {
                    refused_samples += 1;
                    return;
                }
                let cost = series_bytes(&l, 2);
                if cost > room {
                    over_flush_samples += 1;
                    return;
                }
                room -= cost;
                let samples = if from_zero && fresh {
                    vec![(before, 0.0), (t, v)]
                } else {
                    vec![(t, v)]
                };
                batch.series.push(Series { labels: l, samples });
            };
            match value {
                TakenValue::Counter(total) => {
                    push(name, None, total, true);
                    // A counter's family is named without `_total`, as Prometheus names it.
                    let family = name.strip_suffix("_total").unwrap_or(name);
                    kinds.insert(family.to_string(), MetricType::Counter);
                }
                TakenValue::Gauge(g) => {
                    push(name, None, g, false);
                    kinds.insert(name.clone(), MetricType::Gauge);
                }
                TakenValue::Set(n) => {
                    push(name, None, n as f64, false);
                    kinds.insert(name.clone(), MetricType::Gauge);
                }
                TakenValue::Summary {
                    sum,
                    count,
                    mut window,
                } => {
                    if !window.is_empty() {
                        window.sort_by(f64::total_cmp);
                        for q in &quantiles {
                            let v = quantile(&window, *q);
                            push(name, Some(("quantile", format_q(*q))), v, false);
                        }
                    }
                    push(&format!("{name}_sum"), None, sum, true);
                    push(&format!("{name}_count"), None, count, true);
                    kinds.insert(name.clone(), MetricType::Summary);
                }
            }
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by(|a, b| a.0.cmp(&b.0));
        batch.metadata = kinds
            .into_iter()
            .map(|(metric, kind)| Metadata {
                metric,
                kind,
                help: "From StatsD.".into(),
                unit: String::new(),
            })
            .collect();
        Built {
            batch,
            refused_samples,
            over_flush_samples,
        }
    }
}

/// Why a line was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The series budget is spent.
    OverBudget,
    /// The name and tags are already a series of another type.
    TypeClash(&'static str),
    /// A negative counter increment.
    Negative,
    /// The value weighted by 1/rate, or the running total with it, would not be finite.
    NotFinite,
}

/// What a series of a batch costs in memory, about: its label strings with their headers, and
/// its samples.
fn series_bytes(labels: &[(String, String)], samples: usize) -> usize {
    64 + samples * 16
        + labels
            .iter()
            .map(|(k, v)| 48 + k.len() + v.len())
            .sum::<usize>()
}

/// What a batch costs in memory, about (for the budgets of a flush and of failed flushes kept).
pub fn batch_bytes(b: &Batch) -> usize {
    b.series
        .iter()
        .map(|s| series_bytes(&s.labels, s.samples.len()))
        .sum()
}

/// What a key costs against [`Settings::max_label_bytes`].
fn key_bytes((name, labels): &Key) -> usize {
    name.len() + labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// The Prometheus metric name for a StatsD name and type (see the module docs).
pub fn metric_name(name: &str, kind: Kind) -> String {
    let base = sanitize(name);
    let suffix = match kind {
        Kind::Counter => "_total",
        Kind::Timer => "_seconds",
        _ => "",
    };
    if base.ends_with(suffix) {
        base
    } else {
        base + suffix
    }
}

/// Replaces what a metric or label name may not hold with `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// DogStatsD tags as sorted labels; of a tag given twice, the last wins.
fn labels(tags: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in tags {
        let mut name = sanitize(k).replace(':', "_");
        // `__…` is reserved; `quantile` is the summaries' own label (two would clash).
        if name.starts_with("__") {
            name.insert_str(0, "tag");
        } else if name == "quantile" {
            name.insert_str(0, "tag_");
        }
        let value = v.unwrap_or("true");
        if name.is_empty() || value.is_empty() {
            continue;
        }
        map.insert(name, value.to_string());
    }
    map.into_iter().collect()
}

/// A quantile of sorted values, by the nearest rank (as Etsy's StatsD computes percentiles).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

/// A quantile label as Prometheus clients write it (`0.5`, `0.99`).
fn format_q(q: f64) -> String {
    let s = format!("{q}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
