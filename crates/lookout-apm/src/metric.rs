//! OTLP metric points normalised into one shape per kind, and the conversion of cumulative
//! points into per-interval deltas with reset detection — so a counter's rate is right after a
//! process restart, and a cumulative point exported twice is counted once.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    AggregationTemporality,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::attrs::{string, to_json};
use crate::sketch::Sketch;

/// Kinds of metric, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A sampled value.
    Gauge,
    /// A monotonic sum (counter).
    Counter,
    /// A non-monotonic sum (up-down counter).
    UpDownCounter,
    /// Explicit-bucket histogram.
    Histogram,
    /// Exponential histogram (kept as a sketch).
    ExpHistogram,
    /// Summary (quantiles as sent; not mergeable).
    Summary,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::UpDownCounter => "updowncounter",
            Kind::Histogram => "histogram",
            Kind::ExpHistogram => "exponential_histogram",
            Kind::Summary => "summary",
        }
    }
}

/// The value part of a point.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Gauge and sum points.
    Number(f64),
    /// Histogram points (counts per bucket; `bounds.len() + 1` buckets).
    Histogram {
        /// Observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Smallest and largest observation, when sent.
        min: Option<f64>,
        /// Largest observation, when sent.
        max: Option<f64>,
        /// Upper bounds.
        bounds: Vec<f64>,
        /// Counts per bucket.
        counts: Vec<u64>,
    },
    /// Exponential histogram points, converted to a sketch of bucket midpoints.
    Sketch {
        /// Observations.
        count: u64,
        /// Sum.
        sum: f64,
        /// The distribution.
        sketch: Sketch,
    },
    /// Summary points.
    Summary {
        /// Observations.
        count: u64,
        /// Sum.
        sum: f64,
        /// (quantile, value) pairs.
        quantiles: Vec<(f64, f64)>,
    },
}

/// One data point with its series identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name.
    pub name: String,
    /// Unit (UCUM).
    pub unit: String,
    /// `service.name` of the resource.
    pub service: String,
    /// The point's attributes as canonical (key-sorted) JSON: with name and service, the series.
    pub attributes: String,
    /// Kind.
    pub kind: Kind,
    /// True when the point is cumulative (sums and histograms with cumulative temporality).
    pub cumulative: bool,
    /// Start of the interval (cumulative points: the stream's start), ns.
    pub start_ns: i64,
    /// Time of the point, ns.
    pub time_ns: i64,
    /// The value.
    pub reading: Reading,
}

/// Normalises every point of an OTLP metrics export; points without a value or with a
/// non-finite one are skipped and counted as rejected.
pub fn from_request(req: &ExportMetricsServiceRequest) -> (Vec<Point>, i64) {
    let mut out = Vec::new();
    let mut rejected = 0;
    for rm in &req.resource_metrics {
        let resource = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes);
        let service =
            string(resource, &["service.name"]).unwrap_or_else(|| "unknown_service".into());
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let base = |attrs, kind, cumulative, start: u64, time: u64, reading| Point {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    service: service.clone(),
                    attributes: Value::Object(to_json(attrs)).to_string(),
                    kind,
                    cumulative,
                    start_ns: ns(start),
                    time_ns: ns(time),
                    reading,
                };
                let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
                match m.data.as_ref() {
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            match number(p.value.as_ref()) {
                                Some(v) => out.push(base(
                                    &p.attributes,
                                    Kind::Gauge,
                                    false,
                                    p.start_time_unix_nano,
                                    p.time_unix_nano,
                                    Reading::Number(v),
                                )),
                                None => rejected += 1,
                            }
                        }
                    }
                    Some(Data::Sum(s)) => {
                        let kind = if s.is_monotonic {
                            Kind::Counter
                        } else {
                            Kind::UpDownCounter
                        };
                        for p in &s.data_points {
                            match number(p.value.as_ref()) {
                                Some(v) => out.push(base(
                                    &p.attributes,
                                    kind,
                                    cumulative(s.aggregation_temporality),
                                    p.start_time_unix_nano,
                                    p.time_unix_nano,
                                    Reading::Number(v),
                                )),
                                None => rejected += 1,
                            }
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            if p.bucket_counts.len() != p.explicit_bounds.len() + 1
                                && !p.bucket_counts.is_empty()
                            {
                                rejected += 1;
                                continue;
                            }
                            out.push(base(
                                &p.attributes,
                                Kind::Histogram,
                                cumulative(h.aggregation_temporality),
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                Reading::Histogram {
                                    count: p.count,
                                    sum: p.sum.unwrap_or(0.0),
                                    min: p.min,
                                    max: p.max,
                                    bounds: p.explicit_bounds.clone(),
                                    counts: p.bucket_counts.clone(),
                                },
                            ));
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let mut sketch = Sketch::new();
                            sketch.add_n(0.0, p.zero_count);
                            // Scales beyond ±20 are outside the specification; refusing them also
                            // keeps 2^(2^-scale) finite.
                            if !(-10..=20).contains(&p.scale) {
                                rejected += 1;
                                continue;
                            }
                            let base_ = 2f64.powf(2f64.powi(-p.scale));
                            if let Some(Buckets {
                                offset,
                                bucket_counts,
                            }) = p.positive.as_ref()
                            {
                                for (k, &n) in bucket_counts.iter().enumerate().take(4096) {
                                    // Bucket i holds (base^i, base^(i+1)]; its midpoint stands for it.
                                    let i = f64::from(*offset) + k as f64;
                                    let lo = base_.powf(i);
                                    sketch.add_n(lo * (1.0 + base_) / 2.0, n);
                                }
                            }
                            out.push(base(
                                &p.attributes,
                                Kind::ExpHistogram,
                                cumulative(h.aggregation_temporality),
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                Reading::Sketch {
                                    count: p.count,
                                    sum: p.sum.unwrap_or(0.0),
                                    sketch,
                                },
                            ));
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in &s.data_points {
                            out.push(base(
                                &p.attributes,
                                Kind::Summary,
                                false,
                                p.start_time_unix_nano,
                                p.time_unix_nano,
                                Reading::Summary {
                                    count: p.count,
                                    sum: p.sum,
                                    quantiles: p
                                        .quantile_values
                                        .iter()
                                        .map(|q| (q.quantile, q.value))
                                        .collect(),
                                },
                            ));
                        }
                    }
                    None => {}
                }
            }
        }
    }
    (out, rejected)
}

fn number(v: Option<&number_data_point::Value>) -> Option<f64> {
    match v? {
        number_data_point::Value::AsDouble(d) if d.is_finite() => Some(*d),
        number_data_point::Value::AsInt(i) => Some(*i as f64),
        _ => None,
    }
}

fn ns(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What a cumulative series remembers between points.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CumulativeState {
    /// Start time of the stream the last point belonged to.
    pub start_ns: i64,
    /// Time of the last point.
    pub time_ns: i64,
    /// Last value (sums) or count (histograms).
    pub value: f64,
    /// Last sum (histograms).
    pub sum: f64,
    /// Last bucket counts (histograms).
    pub counts: Vec<u64>,
}

/// The delta a cumulative point adds, given the series' state; `None` when the point is a
/// re-export or older than the last one seen (counted already). A new start time or a smaller
/// value is a reset: the point's whole value is the delta, as the stream restarted from zero.
pub fn delta(prev: Option<&CumulativeState>, point: &Point) -> (Option<Reading>, CumulativeState) {
    let (value, sum, counts) = match &point.reading {
        Reading::Number(v) => (*v, 0.0, Vec::new()),
        Reading::Histogram {
            count, sum, counts, ..
        } => (*count as f64, *sum, counts.clone()),
        // Exponential histograms and summaries are stored per point as sent.
        other => {
            return (Some(other.clone()), prev.cloned().unwrap_or_default());
        }
    };
    let state = CumulativeState {
        start_ns: point.start_ns,
        time_ns: point.time_ns,
        value,
        sum,
        counts: counts.clone(),
    };
    let Some(prev) = prev else {
        return (Some(point.reading.clone()), state);
    };
    let same_stream = prev.start_ns == point.start_ns;
    if same_stream && point.time_ns <= prev.time_ns {
        return (None, prev.clone());
    }
    let reset = !same_stream || value < prev.value || counts.len() != prev.counts.len();
    if reset {
        return (Some(point.reading.clone()), state);
    }
    let reading = match &point.reading {
        Reading::Number(v) => Reading::Number(v - prev.value),
        Reading::Histogram {
            count,
            sum,
            min,
            max,
            bounds,
            counts,
        } => Reading::Histogram {
            count: count.saturating_sub(prev.value as u64),
            sum: sum - prev.sum,
            min: *min,
            max: *max,
            bounds: bounds.clone(),
            counts: counts
                .iter()
                .zip(&prev.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        },
        other => other.clone(),
    };
    (Some(reading), state)
}

/// The `q`-quantile of an explicit-bucket histogram by linear interpolation inside the bucket
/// (Prometheus' `histogram_quantile`); bounded by the bucket edges, so "bucket-bounded".
pub fn histogram_quantile(bounds: &[f64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != bounds.len() + 1 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if (seen + n) as f64 >= rank && n > 0 {
            let lo = if i == 0 {
                0.0f64.min(bounds[0])
            } else {
                bounds[i - 1]
            };
            let Some(&hi) = bounds.get(i) else {
                return bounds.last().copied();
            };
            return Some(lo + (hi - lo) * ((rank - seen as f64) / n as f64));
        }
        seen += n;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(start: i64, time: i64, v: f64) -> Point {
        Point {
            name: "requests".into(),
            unit: "1".into(),
            service: "shop".into(),
            attributes: "{}".into(),
            kind: Kind::Counter,
            cumulative: true,
            start_ns: start,
            time_ns: time,
            reading: Reading::Number(v),
        }
    }

    #[test]
    fn cumulative_points_become_deltas_once_each_with_resets() {
        let (d, s) = delta(None, &counter(1, 10, 5.0));
        assert_eq!(d, Some(Reading::Number(5.0)));
        let (d, s) = delta(Some(&s), &counter(1, 20, 12.0));
        assert_eq!(d, Some(Reading::Number(7.0)));
        // The same point exported again adds nothing.
        let (d, s) = delta(Some(&s), &counter(1, 20, 12.0));
        assert_eq!(d, None);
        // A restart: new start time, smaller value.
        let (d, s) = delta(Some(&s), &counter(30, 40, 3.0));
        assert_eq!(d, Some(Reading::Number(3.0)));
        let (d, _) = delta(Some(&s), &counter(30, 50, 4.0));
        assert_eq!(d, Some(Reading::Number(1.0)));
    }

    #[test]
    fn histogram_quantiles_interpolate_in_the_bucket() {
        let q = histogram_quantile(&[10.0, 20.0], &[0, 10, 0], 0.5).unwrap();
        assert!((q - 15.0).abs() < 1e-9);
        assert_eq!(histogram_quantile(&[10.0], &[0, 0], 0.5), None);
    }
}
