//! OTLP metrics as Prometheus series, named as Prometheus's own OTLP receiver names them with
//! translation on (`UnderscoreEscapingWithSuffixes`, its default), so PromQL written against a
//! Prometheus that receives the same export works here:
//! - the name: a port of otlptranslator's `normalizeName` ([`metric_name`]): tokens split on
//!   every character outside `[a-zA-Z0-9:]`, the unit appended as a word (`s` → `seconds`,
//!   `By` → `bytes`, `a/s` → `a_per_second`; a unit holding `{…}` is none) unless it already is
//!   one of the tokens, `_total` moved to the end of monotonic sums, `_ratio` for gauges (only)
//!   with unit `1`;
//! - labels: the point's attributes (names escaped the same way), `job` from `service.name`
//!   (prefixed by `service.namespace/` when set), `instance` from `service.instance.id`;
//! - gauges and non-monotonic sums → gauges; cumulative monotonic sums → counters; cumulative
//!   histograms → classic histograms (`_bucket{le}` cumulative, `_sum`, `_count`); summaries →
//!   `{quantile}`, `_sum`, `_count`;
//! - cumulative exponential histograms (which Prometheus keeps as native histograms) → the
//!   classic histogram they equal at their bucket boundaries
//!   ([`lookout_protocol::native_histogram`]), so `histogram_quantile` over `…_bucket` and
//!   `rate(…_count)` answer what Prometheus's native-histogram functions do.
//!
//! Delta temporality, which Prometheus refuses without a feature flag, is skipped here too and
//! counted. Other resource attributes (Prometheus's `target_info`) are not written.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, NumberDataPoint,
};

use lookout_protocol::native_histogram::{le_label, NativeHistogram, OtlpBuckets};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;

use crate::attrs::{any_to_text, string};

/// One sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Sorted labels, `__name__` included.
    pub labels: Vec<(String, String)>,
    /// Time, ms.
    pub t: i64,
    /// Value.
    pub v: f64,
}

/// A metric family's type and unit, for the store's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// Family name (a counter's without `_total`).
    pub name: String,
    /// `counter`, `gauge`, `histogram` or `summary`.
    pub kind: &'static str,
    /// The unit as a word (`seconds`), or empty.
    pub unit: String,
    /// The description.
    pub help: String,
}

/// What an export translates to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Translated {
    /// Samples, in export order.
    pub samples: Vec<Sample>,
    /// One entry per metric.
    pub families: Vec<Family>,
    /// Points skipped (delta temporality, invalid exponential histograms, non-finite values).
    pub skipped: u64,
}

/// Most bytes (label names and values with their string headers, and samples) the samples of
/// one export may translate to: each point repeats its attributes and the resource's for every
/// bucket or quantile, so a 16 MiB export could otherwise grow to gigabytes. 413 beyond.
pub const MAX_TRANSLATED_BYTES: usize = 64 << 20;
/// Most samples one export may translate to (as a remote-write request, 413 beyond).
pub const MAX_TRANSLATED_SAMPLES: usize = 500_000;
/// Most labels one series may have, as remote write allows.
pub const MAX_LABELS: usize = 64;
/// Longest label value in bytes, as remote write allows; longer ones are cut.
pub const MAX_VALUE_LEN: usize = 4096;

/// An export over [`MAX_TRANSLATED_BYTES`] or [`MAX_TRANSLATED_SAMPLES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the metrics export translates to more than {MAX_TRANSLATED_SAMPLES} Prometheus samples or \
     {MAX_TRANSLATED_BYTES} bytes of labels; send it in smaller exports"
)]
pub struct TooMuch;

/// Translates an export (see the module docs). Labels follow remote write's limits: at most
/// `MAX_LABELS` per series (the point's attributes beyond are dropped, counted in `skipped`
/// once per point), values cut to `MAX_VALUE_LEN` bytes; NUL bytes are removed from label values
/// and descriptions (PostgreSQL refuses them in text).
pub fn translate(req: &ExportMetricsServiceRequest) -> Result<Translated, TooMuch> {
    let mut out = Translated::default();
    let mut spent = 0usize;
    let mut samples = 0usize;
    let mut charge = |labels: &[(String, String)]| -> Result<(), TooMuch> {
        if samples >= MAX_TRANSLATED_SAMPLES {
            return Err(TooMuch);
        }
        samples += 1;
        spent += 64
            + labels
                .iter()
                .map(|(k, v)| 48 + k.len() + v.len())
                .sum::<usize>();
        if spent > MAX_TRANSLATED_BYTES {
            return Err(TooMuch);
        }
        Ok(())
    };
    for rm in &req.resource_metrics {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let mut target = Vec::new();
        if let Some(service) = string(resource, &["service.name"]) {
            let job = match string(resource, &["service.namespace"]) {
                Some(ns) => format!("{ns}/{service}"),
                None => service,
            };
            target.push(("job".to_string(), clean_value(&job)));
        }
        if let Some(instance) = string(resource, &["service.instance.id"]) {
            target.push(("instance".to_string(), clean_value(&instance)));
        }
        target.retain(|(_, v)| !v.is_empty());
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
                let labels = |attrs: &[KeyValue], name: &str, extra: Option<(&str, String)>| {
                    // Attributes in key order; two that escape to one name (`a.b`, `a_b`) are
                    // joined with `;`, as Prometheus joins them.
                    let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
                    sorted.sort_by(|a, b| a.key.cmp(&b.key));
                    let mut merged: std::collections::BTreeMap<String, String> =
                        std::collections::BTreeMap::new();
                    for kv in sorted {
                        let Some(v) = kv.value.as_ref() else { continue };
                        let text = clean_value(&any_to_text(v));
                        let label = label_name(&kv.key);
                        if text.is_empty() || label.is_empty() || label.len() > 1024 {
                            continue;
                        }
                        if let Some(old) = merged.get_mut(&label) {
                            old.push(';');
                            old.push_str(&text);
                            *old = clean_value(old);
                        } else if merged.len() < MAX_LABELS - 4 {
                            merged.insert(label, text);
                        }
                    }
                    // Generated labels win over attributes of the same name, as in Prometheus:
                    // the target's, `__name__`, and `le` / `quantile`.
                    let generated = |k: &str| {
                        k == "__name__"
                            || target.iter().any(|(t, _)| t == k)
                            || extra.as_ref().is_some_and(|(e, _)| *e == k)
                    };
                    let mut l: Vec<(String, String)> =
                        merged.into_iter().filter(|(k, _)| !generated(k)).collect();
                    l.extend(target.iter().cloned());
                    l.push(("__name__".into(), name.to_string()));
                    if let Some((k, v)) = extra {
                        l.push((k.to_string(), v));
                    }
                    l.sort();
                    l
                };
                let mut family = |kind: &'static str, name: String| {
                    out.families.push(Family {
                        name,
                        kind,
                        unit: unit_word(&m.unit).unwrap_or_default(),
                        help: m
                            .description
                            .chars()
                            .filter(|c| *c != '\0')
                            .take(1024)
                            .collect(),
                    });
                };
                // A gauge's and a sum's points: one sample each, or skipped without a number.
                let mut numbers = |points: &[NumberDataPoint], name: &str| -> Result<(), TooMuch> {
                    for p in points {
                        match number(p.value.as_ref()) {
                            Some(v) => push_sample(
                                &mut out.samples,
                                &mut charge,
                                Sample {
                                    labels: labels(&p.attributes, name, None),
                                    t: ms(p.time_unix_nano),
                                    v,
                                },
                            )?,
                            None => out.skipped += 1,
                        }
                    }
                    Ok(())
                };
                match m.data.as_ref() {
                    Some(Data::Gauge(g)) => {
                        let name = metric_name(&m.name, &m.unit, Shape::Gauge);
                        family("gauge", name.clone());
                        numbers(&g.data_points, &name)?;
                    }
                    Some(Data::Sum(s)) => {
                        if s.is_monotonic && !cumulative(s.aggregation_temporality) {
                            out.skipped += s.data_points.len() as u64;
                            continue;
                        }
                        let (shape, kind) = if s.is_monotonic {
                            (Shape::Counter, "counter")
                        } else {
                            (Shape::UpDown, "gauge")
                        };
                        let name = metric_name(&m.name, &m.unit, shape);
                        family(
                            kind,
                            name.strip_suffix("_total").unwrap_or(&name).to_string(),
                        );
                        numbers(&s.data_points, &name)?;
                    }
                    Some(Data::Histogram(h)) => {
                        if !cumulative(h.aggregation_temporality) {
                            out.skipped += h.data_points.len() as u64;
                            continue;
                        }
                        let name = metric_name(&m.name, &m.unit, Shape::Other);
                        family("histogram", name.clone());
                        for p in &h.data_points {
                            let t = ms(p.time_unix_nano);
                            // Buckets that do not match the bounds skip the point; a point
                            // without buckets still has its sum and count.
                            if !p.bucket_counts.is_empty()
                                && p.bucket_counts.len() != p.explicit_bounds.len() + 1
                            {
                                out.skipped += 1;
                                continue;
                            }
                            let mut acc = 0u64;
                            let bounds = p.explicit_bounds.iter().map(|b| format!("{b}"));
                            let les = bounds.chain(std::iter::once("+Inf".to_string()));
                            let buckets = p.bucket_counts.iter().zip(les).map(|(n, le)| {
                                acc = acc.saturating_add(*n);
                                (le, acc as f64)
                            });
                            push_histogram(
                                &mut out.samples,
                                &mut charge,
                                &|n, e| labels(&p.attributes, n, e),
                                (&name, t),
                                buckets,
                                p.sum,
                                p.count,
                            )?;
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        if !cumulative(h.aggregation_temporality) {
                            out.skipped += h.data_points.len() as u64;
                            continue;
                        }
                        let name = metric_name(&m.name, &m.unit, Shape::Other);
                        family("histogram", name.clone());
                        for p in &h.data_points {
                            let t = ms(p.time_unix_nano);
                            fn side(b: &Option<Buckets>) -> OtlpBuckets<'_> {
                                b.as_ref().map_or(OtlpBuckets::default(), |b| OtlpBuckets {
                                    offset: b.offset,
                                    counts: &b.bucket_counts,
                                })
                            }
                            let classic = NativeHistogram::from_otlp(
                                p.scale,
                                side(&p.positive),
                                side(&p.negative),
                                p.zero_threshold,
                                p.zero_count,
                                p.count,
                                p.sum.unwrap_or(0.0),
                            )
                            .and_then(|n| n.to_classic());
                            let Ok(classic) = classic else {
                                out.skipped += 1;
                                continue;
                            };
                            let les = classic.buckets.iter().map(|(le, c)| (le_label(*le), *c));
                            let inf = std::iter::once(("+Inf".to_string(), classic.count));
                            push_histogram(
                                &mut out.samples,
                                &mut charge,
                                &|n, e| labels(&p.attributes, n, e),
                                (&name, t),
                                les.chain(inf),
                                p.sum,
                                p.count,
                            )?;
                        }
                    }
                    Some(Data::Summary(s)) => {
                        let name = metric_name(&m.name, &m.unit, Shape::Other);
                        family("summary", name.clone());
                        for p in &s.data_points {
                            let t = ms(p.time_unix_nano);
                            for q in &p.quantile_values {
                                push_sample(
                                    &mut out.samples,
                                    &mut charge,
                                    Sample {
                                        labels: labels(
                                            &p.attributes,
                                            &name,
                                            Some(("quantile", format!("{}", q.quantile))),
                                        ),
                                        t,
                                        v: q.value,
                                    },
                                )?;
                            }
                            push_sample(
                                &mut out.samples,
                                &mut charge,
                                Sample {
                                    labels: labels(&p.attributes, &format!("{name}_sum"), None),
                                    t,
                                    v: p.sum,
                                },
                            )?;
                            push_sample(
                                &mut out.samples,
                                &mut charge,
                                Sample {
                                    labels: labels(&p.attributes, &format!("{name}_count"), None),
                                    t,
                                    v: p.count as f64,
                                },
                            )?;
                        }
                    }
                    None => {}
                }
            }
        }
    }
    Ok(out)
}

/// The labels of one point's series: `(name, extra label)` → sorted labels.
type LabelsOf<'a> = dyn Fn(&str, Option<(&str, String)>) -> Vec<(String, String)> + 'a;

/// A classic histogram's series at `t`: its cumulative `(le, count)` buckets (`+Inf` last) as
/// `{name}_bucket`, then `{name}_sum` (when finite) and `{name}_count`.
fn push_histogram(
    samples: &mut Vec<Sample>,
    charge: &mut impl FnMut(&[(String, String)]) -> Result<(), TooMuch>,
    labels: &LabelsOf<'_>,
    (name, t): (&str, i64),
    buckets: impl Iterator<Item = (String, f64)>,
    sum: Option<f64>,
    count: u64,
) -> Result<(), TooMuch> {
    let bucket = format!("{name}_bucket");
    for (le, v) in buckets {
        let labels = labels(&bucket, Some(("le", le)));
        push_sample(samples, charge, Sample { labels, t, v })?;
    }
    if let Some(v) = sum.filter(|s| s.is_finite()) {
        let labels = labels(&format!("{name}_sum"), None);
        push_sample(samples, charge, Sample { labels, t, v })?;
    }
    let labels = labels(&format!("{name}_count"), None);
    let v = count as f64;
    push_sample(samples, charge, Sample { labels, t, v })
}

/// Adds a sample once its labels are charged against the export's budget.
fn push_sample(
    samples: &mut Vec<Sample>,
    charge: &mut impl FnMut(&[(String, String)]) -> Result<(), TooMuch>,
    s: Sample,
) -> Result<(), TooMuch> {
    charge(&s.labels)?;
    samples.push(s);
    Ok(())
}

/// A label value as stored: NUL bytes removed (PostgreSQL refuses them in text), cut to
/// [`MAX_VALUE_LEN`] bytes at a character boundary.
fn clean_value(v: &str) -> String {
    let mut out: String = v.chars().filter(|c| *c != '\0').collect();
    if out.len() > MAX_VALUE_LEN {
        let mut cut = MAX_VALUE_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// What a name is for: counters get `_total`, gauges with unit `1` get `_ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A monotonic cumulative sum.
    Counter,
    /// A gauge.
    Gauge,
    /// A non-monotonic sum (written as a gauge, but no `_ratio`, as in Prometheus).
    UpDown,
    /// A histogram or a summary.
    Other,
}

/// The Prometheus name of an OTLP metric: a port of Prometheus's otlptranslator `normalizeName`
/// (with suffixes, no namespace), token for token:
/// - the name is split into tokens on every character outside `[a-zA-Z0-9:]` (so runs of `_`
///   and leading or trailing `_` disappear);
/// - the unit's main part (before `/`) becomes a word (`s` → `seconds`), dropped when blank,
///   holding `{` or `}`, or already one of the tokens; its per part (`/s`) becomes `per_second`,
///   dropped likewise;
/// - a monotonic counter: every `total` token is removed and `total` appended;
/// - a gauge with unit `1`: every `ratio` token is removed and `ratio` appended;
/// - tokens joined by `_`, and `_` in front of a leading digit.
pub fn metric_name(name: &str, unit: &str, shape: Shape) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let mut main = clean_up_unit(&main);
    let mut per = clean_up_unit(&per);
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if per.ends_with('_') {
            per.pop();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() && main.ends_with('_') {
        main.pop();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if shape == Shape::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && shape == Shape::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// otlptranslator `buildUnitSuffixes`: the main and `per_` words of a unit, before clean-up.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if !main.is_empty() && !main.contains(['{', '}']) {
        main_word(main)
    } else {
        String::new()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => {
            let w = per_word(p);
            if w.is_empty() {
                w
            } else {
                format!("per_{w}")
            }
        }
        _ => String::new(),
    };
    (main, per)
}

/// otlptranslator `cleanUpUnit`: characters outside `[a-zA-Z0-9:]` become `_`, runs of `_` one,
/// a leading `_` dropped.
fn clean_up_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_string(),
        None => out,
    }
}

/// otlptranslator's unit map (`1` maps to nothing); other units as they are.
fn main_word(u: &str) -> String {
    match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
    .to_string()
}

/// otlptranslator's per-unit map; other units as they are.
fn per_word(u: &str) -> String {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
    .to_string()
}

/// A label name: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit gets `key_`.
fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "key_");
    }
    // `_x` → `key_x` as in Prometheus; `__x` (reserved, `__name__` included) → `key__x`, so no
    // attribute can stand in for the metric's name.
    if s.starts_with('_') {
        s.insert_str(0, "key");
    }
    s
}

/// A unit as the word of the metadata (`seconds`, `bytes_per_second`); `None` for none, `1`,
/// and annotations.
fn unit_word(unit: &str) -> Option<String> {
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean_up_unit(&main), clean_up_unit(&per));
    let w = match (main.is_empty(), per.is_empty()) {
        (false, false) => format!(
            "{}_{}",
            main.trim_end_matches('_'),
            per.trim_end_matches('_')
        ),
        (false, true) => main,
        (true, false) => per,
        (true, true) => return None,
    };
    Some(w.trim_matches('_').to_string()).filter(|w| !w.is_empty())
}

fn number(v: Option<&number_data_point::Value>) -> Option<f64> {
    match v? {
        number_data_point::Value::AsDouble(d) if d.is_finite() => Some(*d),
        number_data_point::Value::AsInt(i) => Some(*i as f64),
        _ => None,
    }
}

fn ms(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
