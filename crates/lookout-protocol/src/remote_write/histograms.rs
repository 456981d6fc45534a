//! Native histogram samples of remote write 1.0 and 2.0 (the same `Histogram` message in both),
//! stored as the classic series they equal ([`crate::native_histogram`]): one native series
//! `x{…}` becomes `x_count{…}`, `x_sum{…}` and `x_bucket{…, le}`.
//!
//! The expansion multiplies what a body holds (a histogram of 100 buckets is up to 200 bucket
//! series), so its series, samples and label bytes are counted against the request's caps and
//! asked of the caller's memory budget before they are made.

use std::collections::BTreeMap;

use prost::Message;

use super::{
    bad, check_labels, clip, RemoteWriteError, Series, MAX_SAMPLES, MAX_SERIES, MAX_VALUE_LEN,
    STALE_NAN_BITS,
};
use crate::native_histogram::{from_spans, le_label, NativeHistogram};

/// `prometheus.Histogram` (types.proto), as both versions send it.
#[derive(Clone, PartialEq, Message)]
pub(super) struct HistogramProto {
    #[prost(oneof = "CountProto", tags = "1, 2")]
    pub count: Option<CountProto>,
    #[prost(double, tag = "3")]
    pub sum: f64,
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    #[prost(oneof = "ZeroCountProto", tags = "6, 7")]
    pub zero_count: Option<ZeroCountProto>,
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<SpanProto>,
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "10")]
    pub negative_counts: Vec<f64>,
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<SpanProto>,
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    #[prost(double, repeated, tag = "13")]
    pub positive_counts: Vec<f64>,
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
    #[prost(double, repeated, tag = "16")]
    pub custom_values: Vec<f64>,
}

/// The `count` oneof: integer histograms send `count_int`, float histograms `count_float`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(super) enum CountProto {
    #[prost(uint64, tag = "1")]
    Int(u64),
    #[prost(double, tag = "2")]
    Float(f64),
}

/// The `zero_count` oneof.
#[derive(Clone, PartialEq, prost::Oneof)]
pub(super) enum ZeroCountProto {
    #[prost(uint64, tag = "6")]
    Int(u64),
    #[prost(double, tag = "7")]
    Float(f64),
}

/// `prometheus.BucketSpan`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SpanProto {
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl HistogramProto {
    fn native(&self) -> Result<NativeHistogram, String> {
        let spans = |s: &[SpanProto]| s.iter().map(|s| (s.offset, s.length)).collect::<Vec<_>>();
        Ok(NativeHistogram {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: match self.zero_count {
                Some(ZeroCountProto::Int(n)) => n as f64,
                Some(ZeroCountProto::Float(f)) => f,
                None => 0.0,
            },
            count: match self.count {
                Some(CountProto::Int(n)) => n as f64,
                Some(CountProto::Float(f)) => f,
                None => 0.0,
            },
            sum: self.sum,
            positive: from_spans(
                &spans(&self.positive_spans),
                &self.positive_deltas,
                &self.positive_counts,
            )?,
            negative: from_spans(
                &spans(&self.negative_spans),
                &self.negative_deltas,
                &self.negative_counts,
            )?,
            custom_bounds: self.custom_values.clone(),
        })
    }
}

/// Series made from native histograms, kept apart from the float series until the batch is
/// whole, with the running totals the caps are checked against.
#[derive(Default)]
pub(super) struct Derived {
    /// The classic series, in the order made.
    pub series: Vec<Series>,
    /// Index in `series` of each converted native series' `_count` series.
    pub counts: Vec<usize>,
    /// Native histogram samples converted.
    pub histograms: usize,
    /// Samples in `series`.
    pub samples: usize,
    /// Series made so far (counted as they are made, before `series` holds them).
    made_series: usize,
}

impl Derived {
    /// Converts one series' native histogram samples (`labels` as sent) into classic series.
    /// `floats` and `float_series` are the batch's, which share the caps on samples and series.
    pub fn add(
        &mut self,
        labels: Vec<(String, String)>,
        histograms: &[HistogramProto],
        (floats, float_series): (usize, usize),
        reserve: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), RemoteWriteError> {
        if histograms.is_empty() {
            return Ok(());
        }
        let mut labels = check_labels(labels)?;
        let name = labels
            .iter()
            .find(|(k, _)| k == "__name__")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if name.len() + "_bucket".len() > MAX_VALUE_LEN {
            return Err(bad(format!(
                "histogram name {:?}… is too long for its _bucket series",
                clip(&name)
            )));
        }
        // The classic series are named by suffix and carry their own `le`.
        labels.retain(|(k, _)| k != "__name__" && k != "le");
        let label_bytes: usize = labels.iter().map(|(k, v)| 48 + k.len() + v.len()).sum();
        let per_series = std::mem::size_of::<Series>() + label_bytes + 64;
        let (mut count, mut sum) = (Vec::new(), Vec::new());
        let mut buckets: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
        // The series' `_count` and `_sum`, then each histogram's samples and new `le` series,
        // checked against the caps and reserved as they are made.
        self.charge(2, 0, per_series, (floats, float_series), reserve)?;
        for h in histograms {
            let t = h.timestamp;
            let les = buckets.len();
            if h.sum.to_bits() == STALE_NAN_BITS {
                // A stale histogram ends the series: marked on the series every sample has.
                let stale = f64::from_bits(STALE_NAN_BITS);
                count.push((t, stale));
                sum.push((t, stale));
                buckets.entry("+Inf".into()).or_default().push((t, stale));
                let new_series = buckets.len() - les;
                self.charge(new_series, 3, per_series, (floats, float_series), reserve)?;
                continue;
            }
            let classic = h
                .native()
                .and_then(|n| n.to_classic())
                .map_err(|e| bad(format!("series {:?}: {e}", clip(&name))))?;
            for (le, c) in &classic.buckets {
                buckets.entry(le_label(*le)).or_default().push((t, *c));
            }
            buckets
                .entry("+Inf".into())
                .or_default()
                .push((t, classic.count));
            count.push((t, classic.count));
            sum.push((t, classic.sum));
            let samples = classic.buckets.len() + 3;
            let new_series = buckets.len() - les;
            self.charge(
                new_series,
                samples,
                per_series,
                (floats, float_series),
                reserve,
            )?;
        }
        let with = |suffix: &str, le: Option<&str>| {
            let mut l = labels.clone();
            l.push(("__name__".into(), format!("{name}{suffix}")));
            if let Some(le) = le {
                l.push(("le".into(), le.to_string()));
            }
            l.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            l
        };
        self.counts.push(self.series.len());
        self.series.push(Series {
            labels: with("_count", None),
            samples: count,
        });
        self.series.push(Series {
            labels: with("_sum", None),
            samples: sum,
        });
        for (le, samples) in buckets {
            self.series.push(Series {
                labels: with("_bucket", Some(&le)),
                samples,
            });
        }
        self.histograms += histograms.len();
        Ok(())
    }

    /// Counts `series` new series and `samples` samples against the request's caps (with the
    /// batch's float ones) and asks the budget for their bytes.
    fn charge(
        &mut self,
        series: usize,
        samples: usize,
        per_series: usize,
        (floats, float_series): (usize, usize),
        reserve: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), RemoteWriteError> {
        self.samples += samples;
        self.made_series += series;
        if floats + self.samples > MAX_SAMPLES {
            return Err(RemoteWriteError::TooMany(format!(
                "more than {MAX_SAMPLES} samples in one request once native histograms are \
                 expanded into bucket series; lower max_samples_per_send"
            )));
        }
        if float_series + self.made_series > MAX_SERIES {
            return Err(RemoteWriteError::TooMany(format!(
                "more than {MAX_SERIES} series in one request once native histograms are \
                 expanded into bucket series; lower max_samples_per_send"
            )));
        }
        if !reserve(series * per_series + samples * 16) {
            return Err(RemoteWriteError::OverBudget);
        }
        Ok(())
    }
}
