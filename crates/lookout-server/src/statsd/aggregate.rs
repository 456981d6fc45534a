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
//! senders do: about 8 bytes per value, 16 per member, plus the label bytes.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

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
    series: HashMap<Key, Entry>,
    /// When the last flush was (ms), where a new counter's 0 goes.
    last_flush: Option<i64>,
    /// Output series (labels with `__name__`) the store refused for good (series limit,
    /// collision): left out of flushes until [`Settings::idle_flushes`] flushes have passed,
    /// then tried again.
    refused: HashSet<Vec<(String, String)>>,
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
            refused: HashSet::new(),
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
        for l in series {
            if self.refused.len() >= cap {
                break;
            }
            self.refused.insert(l);
        }
    }

    /// Samples left out of flushes since the last call because the store refused their series.
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
        }
        let entry = self.series.entry(key).or_insert_with(|| Entry {
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
        });
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

    /// The batch of one flush at `t` (ms): every series held, then interval state cleared and
    /// long-idle series forgotten. The running totals stay, so a flush whose write fails loses
    /// no count: the next one carries it.
    pub fn flush(&mut self, t: i64) -> Batch {
        let mut batch = Batch::default();
        let mut kinds: HashMap<String, MetricType> = HashMap::new();
        let before = self.last_flush.filter(|p| *p < t).unwrap_or(t - 1);
        self.last_flush = Some(t);
        self.refused_age += 1;
        if self.refused_age > self.settings.idle_flushes.max(1) {
            // Tried again now and then: the store's limit may have been raised or series freed.
            self.refused.clear();
            self.refused_age = 0;
        }
        let refused = &self.refused;
        let refused_samples = &mut self.refused_samples;
        let mut room = self.settings.max_flush_bytes;
        let over_flush = &mut self.over_flush_samples;
        for ((name, labels), entry) in &mut self.series {
            let fresh = std::mem::take(&mut entry.fresh);
            // `from_zero`: a running total's first write, preceded by a 0 (module docs).
            let mut push = |name: &str, extra: Option<(&str, String)>, v: f64, from_zero: bool| {
                let mut l = labels.clone();
                l.push(("__name__".into(), name.to_string()));
                if let Some((k, val)) = extra {
                    l.push((k.to_string(), val));
                }
                l.sort();
                if refused.contains(&l) {
                    *refused_samples += 1;
                    return;
                }
                let cost = series_bytes(&l, 2);
                if cost > room {
                    *over_flush += 1;
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
            match &mut entry.state {
                State::Counter(total) => {
                    push(name, None, *total, true);
                    // A counter's family is named without `_total`, as Prometheus names it.
                    let family = name.strip_suffix("_total").unwrap_or(name);
                    kinds.insert(family.to_string(), MetricType::Counter);
                }
                State::Gauge(g) => {
                    push(name, None, *g, false);
                    kinds.insert(name.clone(), MetricType::Gauge);
                }
                State::Set(members) => {
                    push(name, None, members.len() as f64, false);
                    members.clear();
                    kinds.insert(name.clone(), MetricType::Gauge);
                }
                State::Summary { sum, count, window } => {
                    if !window.is_empty() {
                        window.sort_by(f64::total_cmp);
                        for q in &self.settings.quantiles {
                            let v = quantile(window, *q);
                            push(name, Some(("quantile", format_q(*q))), v, false);
                        }
                    }
                    push(&format!("{name}_sum"), None, *sum, true);
                    push(&format!("{name}_count"), None, *count, true);
                    window.clear();
                    kinds.insert(name.clone(), MetricType::Summary);
                }
            }
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
        batch
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
mod tests {
    use super::*;

    fn value(b: &Batch, name: &str, extra: &[(&str, &str)]) -> Option<f64> {
        b.series
            .iter()
            .find(|s| {
                s.name() == name
                    && extra
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .and_then(|s| s.samples.last())
            .map(|p| p.1)
    }

    #[test]
    fn counters_divide_by_their_rate_and_keep_running() {
        let mut a = Aggregator::new(Settings::default());
        let o = a.add_packet(b"api.hits:1|c|@0.1|#env:prod\napi.hits:2|c|#env:prod\napi.hits:5|c");
        assert_eq!(o.taken, 3);
        let b = a.flush(1000);
        assert_eq!(value(&b, "api_hits_total", &[("env", "prod")]), Some(12.0));
        assert_eq!(
            b.series
                .iter()
                .filter(|s| s.name() == "api_hits_total")
                .count(),
            2
        );
        a.add_packet(b"api.hits:3|c|#env:prod");
        let b = a.flush(2000);
        // Monotonic: the running sum, so rate() sees the increase of 3.
        assert_eq!(value(&b, "api_hits_total", &[("env", "prod")]), Some(15.0));
        let prod = b
            .series
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| k == "env" && v == "prod"))
            .unwrap();
        assert_eq!(prod.samples, vec![(2000, 15.0)]);
    }

    #[test]
    fn a_new_counter_starts_from_a_zero_so_increase_counts_its_first_increments() {
        let mut a = Aggregator::new(Settings::default());
        a.flush(1000);
        a.add_packet(b"jobs:3|c\njob.time:250|ms\nload:7|g");
        let b = a.flush(11_000);
        let samples = |name: &str| {
            b.series
                .iter()
                .find(|s| s.name() == name)
                .map(|s| s.samples.clone())
                .unwrap()
        };
        assert_eq!(samples("jobs_total"), vec![(1000, 0.0), (11_000, 3.0)]);
        assert_eq!(
            samples("job_time_seconds_count"),
            vec![(1000, 0.0), (11_000, 1.0)]
        );
        assert_eq!(
            samples("job_time_seconds_sum"),
            vec![(1000, 0.0), (11_000, 0.25)]
        );
        // A gauge is not a total: no 0 in front.
        assert_eq!(samples("load"), vec![(11_000, 7.0)]);
        // Only the first write has it.
        a.add_packet(b"jobs:1|c");
        let b = a.flush(21_000);
        let s = b.series.iter().find(|s| s.name() == "jobs_total").unwrap();
        assert_eq!(s.samples, vec![(21_000, 4.0)]);
        // The first flush after start puts the 0 just before it.
        let mut a = Aggregator::new(Settings::default());
        a.add_packet(b"jobs:3|c");
        let b = a.flush(5000);
        assert_eq!(b.series[0].samples, vec![(4999, 0.0), (5000, 3.0)]);
    }

    #[test]
    fn gauges_are_set_and_moved_by_deltas() {
        let mut a = Aggregator::new(Settings::default());
        a.add_packet(b"q:10|g\nq:+5|g\nq:-3|g\nfresh:-2|g");
        let b = a.flush(1);
        assert_eq!(value(&b, "q", &[]), Some(12.0));
        assert_eq!(value(&b, "fresh", &[]), Some(-2.0));
        a.add_packet(b"q:+1|g");
        assert_eq!(value(&a.flush(2), "q", &[]), Some(13.0));
        // Unchanged gauges keep their value in the next flush.
        assert_eq!(value(&a.flush(3), "q", &[]), Some(13.0));
    }

    #[test]
    fn sets_count_distinct_members_per_interval() {
        let mut a = Aggregator::new(Settings::default());
        a.add_packet(b"users:alice|s\nusers:bob|s\nusers:alice|s\nusers:carol:bob|s");
        assert_eq!(value(&a.flush(1), "users", &[]), Some(3.0));
        assert_eq!(value(&a.flush(2), "users", &[]), Some(0.0));
    }

    #[test]
    fn timers_are_summaries_in_seconds() {
        let mut a = Aggregator::new(Settings::default());
        let mut p = String::new();
        for i in 1..=100 {
            p.push_str(&format!("db.query:{i}|ms|#db:main\n"));
        }
        p.push_str("resp:1000|h|@0.5\n");
        a.add_packet(p.as_bytes());
        let b = a.flush(1);
        let sum = value(&b, "db_query_seconds_sum", &[("db", "main")]).unwrap();
        assert!((sum - 5.05).abs() < 1e-9, "{sum}");
        assert_eq!(value(&b, "db_query_seconds_count", &[]), Some(100.0));
        assert_eq!(
            value(&b, "db_query_seconds", &[("quantile", "0.5")]),
            Some(0.05)
        );
        assert_eq!(
            value(&b, "db_query_seconds", &[("quantile", "0.99")]),
            Some(0.099)
        );
        // Sampled at 0.5: one value stands for two.
        assert_eq!(value(&b, "resp_count", &[]), Some(2.0));
        assert_eq!(value(&b, "resp_sum", &[]), Some(2000.0));
        let kinds: Vec<_> = b
            .metadata
            .iter()
            .map(|m| (m.metric.as_str(), m.kind))
            .collect();
        assert!(kinds.contains(&("db_query_seconds", MetricType::Summary)));
        // An interval without values writes no quantiles but keeps the totals.
        let b = a.flush(2);
        assert_eq!(value(&b, "db_query_seconds", &[("quantile", "0.5")]), None);
        assert_eq!(value(&b, "db_query_seconds_count", &[]), Some(100.0));
    }

    #[test]
    fn the_series_budget_refuses_new_series_only() {
        let mut a = Aggregator::new(Settings {
            max_series: 2,
            ..Settings::default()
        });
        let o = a.add_packet(b"a:1|c\nb:1|g\nc:1|c\na:1|c\nb:+1|g|#x:y");
        assert_eq!((o.taken, o.over_budget), (3, 2));
        assert_eq!(a.len(), 2);
        let b = a.flush(1);
        assert_eq!(value(&b, "a_total", &[]), Some(2.0));
        assert_eq!(value(&b, "c_total", &[]), None);
    }

    #[test]
    fn unknown_dogstatsd_fields_keep_the_line() {
        let mut a = Aggregator::new(Settings::default());
        let o = a.add_packet(b"hits:2|c|#env:prod|e:it-false,cn-web|card:orchestrator");
        assert_eq!((o.taken, o.malformed, o.unknown_fields), (1, 0, 2));
        assert_eq!(
            value(&a.flush(1), "hits_total", &[("env", "prod")]),
            Some(2.0)
        );
    }

    #[test]
    fn bad_lines_are_counted_and_good_ones_kept() {
        let mut a = Aggregator::new(Settings::default());
        let o = a.add_packet(b"ok:1|c\ngarbage\nx:1|zz\n_e{1,1}:a|b\n_sc|c|0\nok:+1|g\nok:1|c");
        assert_eq!((o.taken, o.malformed, o.ignored), (3, 2, 2));
        assert!(o.example.unwrap().contains("garbage"));
        // The gauge `ok` and the counter `ok_total` are different series.
        let b = a.flush(1);
        assert_eq!(value(&b, "ok_total", &[]), Some(2.0));
        assert_eq!(value(&b, "ok", &[]), Some(1.0));
        // A counter never goes down.
        let o = a.add_packet(b"ok:-1|c");
        assert_eq!((o.taken, o.malformed, o.negative), (0, 0, 1));
        // A gauge line for what is a set: refused, counted.
        a.add_packet(b"u:a|s");
        let o = a.add_packet(b"u:1|g");
        assert_eq!(o.malformed, 1);
        assert!(o.example.unwrap().contains("already a set"));
    }

    #[test]
    fn names_and_tags_are_mapped_to_prometheus() {
        assert_eq!(
            metric_name("api.request-time", Kind::Gauge),
            "api_request_time"
        );
        assert_eq!(metric_name("9lives", Kind::Counter), "_9lives_total");
        assert_eq!(metric_name("done_total", Kind::Counter), "done_total");
        assert_eq!(metric_name("rt", Kind::Timer), "rt_seconds");
        assert_eq!(
            labels(&[
                ("env", Some("prod")),
                ("canary", None),
                ("__name__", Some("x")),
                ("a.b", Some("1")),
                ("quantile", Some("p99")),
            ]),
            vec![
                ("a_b".to_string(), "1".to_string()),
                ("canary".into(), "true".into()),
                ("env".into(), "prod".into()),
                ("tag__name__".into(), "x".into()),
                ("tag_quantile".into(), "p99".into()),
            ]
        );
    }

    #[test]
    fn series_the_store_refused_are_left_out_and_the_others_kept() {
        let mut a = Aggregator::new(Settings {
            idle_flushes: 3,
            ..Settings::default()
        });
        a.add_packet(b"old:1|c\nnew:1|c");
        let b = a.flush(1);
        let new = b
            .series
            .iter()
            .find(|s| s.name() == "new_total")
            .unwrap()
            .labels
            .clone();
        a.refuse([new]);
        a.add_packet(b"old:1|c\nnew:1|c");
        let b = a.flush(2);
        assert_eq!(value(&b, "old_total", &[]), Some(2.0));
        assert_eq!(value(&b, "new_total", &[]), None);
        assert_eq!(a.take_refused_samples(), 1);
        assert_eq!(a.take_refused_samples(), 0);
        // Tried again once the refusal is older than the idle limit.
        a.flush(3);
        assert_eq!(value(&a.flush(4), "new_total", &[]), None);
        let b = a.flush(5);
        assert_eq!(value(&b, "new_total", &[]), Some(2.0));
    }

    #[test]
    fn one_budget_bounds_values_members_and_labels_across_series() {
        let mut a = Aggregator::new(Settings {
            max_values: 3,
            max_members: 2,
            max_label_bytes: 40,
            ..Settings::default()
        });
        // Values across two timers share one budget; sum and count stay exact.
        let o = a.add_packet(b"t1:1:2|h\nt2:3:4|h");
        assert_eq!((o.taken, o.values_dropped), (2, 1));
        // Members across two sets; a member already counted costs nothing.
        let o = a.add_packet(b"s1:a|s\ns1:a|s\ns2:b|s\ns2:c|s");
        assert_eq!((o.taken, o.values_dropped), (4, 1));
        let b = a.flush(1);
        assert_eq!(value(&b, "t2_count", &[]), Some(2.0));
        assert_eq!(value(&b, "t2_sum", &[]), Some(7.0));
        assert_eq!(value(&b, "t2", &[("quantile", "0.5")]), Some(3.0));
        assert_eq!(value(&b, "s2", &[]), Some(1.0));
        // The budgets are per interval: the next one has room again.
        let o = a.add_packet(b"t2:5|h\ns2:d|s");
        assert_eq!(o.values_dropped, 0);
        // Label bytes: 4 series of ~10 bytes held; a long new one is refused.
        let o = a.add_packet(b"long.name.here:1|c|#env:production");
        assert_eq!(o.over_budget, 1);
    }

    #[test]
    fn a_flush_stays_within_its_byte_budget_and_counts_what_it_left_out() {
        let mut a = Aggregator::new(Settings {
            max_flush_bytes: 300,
            ..Settings::default()
        });
        let mut p = String::new();
        for i in 0..10 {
            p.push_str(&format!("c{i}:1|c\n"));
        }
        a.add_packet(p.as_bytes());
        let b = a.flush(1);
        assert!(batch_bytes(&b) <= 300, "{}", batch_bytes(&b));
        assert!(!b.series.is_empty());
        assert_eq!(
            b.series.len() as u64 + a.take_over_flush_samples(),
            10,
            "every series either written or counted"
        );
    }

    #[test]
    fn every_series_names_its_replica() {
        let mut a = Aggregator::new(Settings {
            instance: "web-1".into(),
            ..Settings::default()
        });
        a.add_packet(b"hits:1|c|#env:prod,instance:theirs");
        let b = a.flush(1);
        let s = b.series.iter().find(|s| s.name() == "hits_total").unwrap();
        assert_eq!(
            s.labels,
            vec![
                ("__name__".to_string(), "hits_total".to_string()),
                ("env".into(), "prod".into()),
                ("exported_instance".into(), "theirs".into()),
                ("instance".into(), "web-1".into()),
            ]
        );
    }

    #[test]
    fn totals_never_become_infinite() {
        let mut a = Aggregator::new(Settings::default());
        a.add_packet(b"c:1|c\nt:1|h");
        // 1e308 at a rate of 0.001 stands for 1e311: not finite, refused.
        let o = a.add_packet(b"c:1e308|c|@0.001\nt:1e308|h|@0.001\ng:1e308|g\ng:+1e308|g");
        assert_eq!((o.taken, o.malformed), (1, 3), "{:?}", o.example);
        assert!(o.example.unwrap().contains("not finite"));
        let b = a.flush(1);
        assert!(b
            .series
            .iter()
            .all(|s| s.samples.iter().all(|p| p.1.is_finite())));
        assert_eq!(value(&b, "c_total", &[]), Some(1.0));
    }

    #[test]
    fn a_gauge_named_like_a_summary_output_is_a_type_clash() {
        let mut a = Aggregator::new(Settings::default());
        let o = a.add_packet(b"x:1|h\nx.count:5|g\nx_sum:1|g");
        assert_eq!((o.taken, o.malformed), (1, 2), "{:?}", o.example);
        let mut a = Aggregator::new(Settings::default());
        let o = a.add_packet(b"w_seconds.count:5|g\nw:1|ms\nv:1|ms\nv_seconds_sum:1|g");
        assert_eq!((o.taken, o.malformed), (2, 2), "{:?}", o.example);
        let b = a.flush(1);
        assert_eq!(value(&b, "w_seconds_count", &[]), Some(5.0));
        assert_eq!(value(&b, "v_seconds_count", &[]), Some(1.0));
        // A tag named quantile does not clash with the summary's own label.
        let mut a = Aggregator::new(Settings::default());
        a.add_packet(b"z:1|h|#quantile:mine");
        let b = a.flush(1);
        assert!(b
            .series
            .iter()
            .all(|s| s.labels.iter().filter(|(k, _)| k == "quantile").count() <= 1));
    }

    #[test]
    fn idle_series_are_forgotten() {
        let mut a = Aggregator::new(Settings {
            idle_flushes: 2,
            ..Settings::default()
        });
        a.add_packet(b"x:1|c");
        a.flush(1);
        a.flush(2);
        assert_eq!(a.len(), 1);
        a.flush(3);
        assert!(a.is_empty());
    }
}
