//! Native (exponential) histograms, as remote write 1.0/2.0 and OTLP's exponential histograms
//! carry them, turned into the classic histogram the metric store holds: cumulative
//! `_bucket{le}` series, `_count` and `_sum`.
//!
//! The store keeps one float per series and time; a native histogram is a whole bucket layout
//! per sample. Rather than a second sample type that every PromQL function would have to learn,
//! each native sample becomes the classic series it is equivalent to at its bucket boundaries:
//! for every populated bucket, its lower and its upper boundary with the cumulative count at
//! each, so `histogram_quantile` interpolates inside the real bucket (not across a run of empty
//! ones), and `rate(…_count)` / `rate(…_sum)` equal Prometheus's `histogram_count(rate(…))` /
//! `histogram_sum(rate(…))` exactly.
//!
//! Resolution is capped so one histogram becomes at most a few hundred series: schemas finer than
//! [`MAX_SCHEMA`] (8 buckets per power of two, about 9 % wide, so a quantile is within about
//! 4.5 % of the observed value) are merged down to it, which is exact — a coarser schema's
//! boundaries are a subset of a finer one's — and a histogram still spanning more than
//! [`MAX_BUCKETS`] populated buckets is merged further, down to [`MIN_SCHEMA`]. Custom-bucket
//! histograms (schema -53, Prometheus's NHCB) keep their own boundaries.
//!
//! Bucket numbering is Prometheus's: at schema `s` the base is `2^(2^-s)` and positive bucket
//! `i` holds `(base^(i-1), base^i]`, negative bucket `i` holds `[-base^i, -base^(i-1))`. OTLP
//! numbers from the lower boundary (`(base^k, base^(k+1)]`), so its index `k` is `k + 1` here.

use std::collections::BTreeMap;

/// Finest schema kept (2^3 = 8 buckets per power of two).
pub const MAX_SCHEMA: i32 = 3;
/// Coarsest schema Prometheus defines (each bucket 2^16 times the previous one).
pub const MIN_SCHEMA: i32 = -4;
/// Finest schema Prometheus accepts.
pub const FINEST_SCHEMA: i32 = 8;
/// The schema of custom-bucket histograms (`custom_values` are the upper boundaries).
pub const CUSTOM_SCHEMA: i32 = -53;
/// Most populated buckets one histogram keeps after merging (OpenTelemetry's default
/// `max_size`); each becomes at most two `le` series.
pub const MAX_BUCKETS: usize = 160;
/// Most boundaries a custom-bucket histogram may have (as many `le` series as an exponential
/// one at most makes).
pub const MAX_CUSTOM_BOUNDS: usize = 2 * MAX_BUCKETS;
/// Most buckets one side (positive or negative) of a histogram may send, checked before any of
/// them is decoded into memory: Prometheus's own default limit is 160 after its reductions, and
/// OpenTelemetry's `max_size` default is 160, so this is far above what senders make.
pub const MAX_SENT_BUCKETS: usize = 4096;
/// Finest OTLP scale (the OpenTelemetry specification's range is -10..=20).
pub const MAX_OTLP_SCALE: i32 = 20;

/// One native histogram sample, bucket counts absolute (not delta-encoded).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NativeHistogram {
    /// Prometheus schema: -4..=8, or [`CUSTOM_SCHEMA`].
    pub schema: i32,
    /// Half-width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// All observations (NaN ones included, so it may exceed the buckets' total).
    pub count: f64,
    /// Sum of the observations.
    pub sum: f64,
    /// (Prometheus bucket index, count) of positive buckets, any order.
    pub positive: Vec<(i64, f64)>,
    /// (Prometheus bucket index, count) of negative buckets, any order.
    pub negative: Vec<(i64, f64)>,
    /// Upper boundaries of a custom-bucket histogram, ascending (the last bucket is +Inf).
    pub custom_bounds: Vec<f64>,
}

/// The classic histogram a native one is equal to at its boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Classic {
    /// (`le` boundary, cumulative count), ascending and finite; the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, f64)>,
    /// All observations (the `+Inf` bucket and `_count`).
    pub count: f64,
    /// `_sum`.
    pub sum: f64,
}

impl NativeHistogram {
    /// The classic histogram, or why this one is not a valid native histogram.
    pub fn to_classic(&self) -> Result<Classic, String> {
        for (what, v) in [
            ("count", self.count),
            ("zero_count", self.zero_count),
            ("zero_threshold", self.zero_threshold),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("histogram {what} is {v}"));
            }
        }
        let counts = self.positive.iter().chain(&self.negative).map(|b| b.1);
        if let Some(c) = counts.clone().find(|c| !c.is_finite() || *c < 0.0) {
            return Err(format!("histogram bucket count is {c}"));
        }
        let buckets = if self.schema == CUSTOM_SCHEMA {
            self.custom_buckets()?
        } else if (MIN_SCHEMA..=FINEST_SCHEMA).contains(&self.schema) {
            self.exponential_buckets()
        } else {
            return Err(format!(
                "histogram schema {} (valid: {MIN_SCHEMA} to {FINEST_SCHEMA}, or {CUSTOM_SCHEMA})",
                self.schema
            ));
        };
        let total = buckets.last().map_or(0.0, |b| b.1);
        // NaN observations count in `count` but in no bucket, so count may exceed the total;
        // never the other way (a little slack for float histograms' rounding).
        if self.count < total * (1.0 - 1e-9) {
            return Err(format!(
                "histogram count {} is less than its buckets' total {total}",
                self.count
            ));
        }
        Ok(Classic {
            buckets,
            count: self.count,
            sum: self.sum,
        })
    }

    fn custom_buckets(&self) -> Result<Vec<(f64, f64)>, String> {
        let bounds = &self.custom_bounds;
        if bounds.len() > MAX_CUSTOM_BOUNDS {
            return Err(format!(
                "{} custom bucket boundaries; at most {MAX_CUSTOM_BOUNDS} are accepted",
                bounds.len()
            ));
        }
        if bounds.iter().any(|b| !b.is_finite())
            || bounds.windows(2).any(|w| matches!(w, [a, b] if a >= b))
        {
            return Err("custom bucket boundaries must be finite and ascending".into());
        }
        if !self.negative.is_empty() {
            return Err("a custom-bucket histogram has no negative buckets".into());
        }
        let mut per = vec![0.0; bounds.len() + 1];
        for &(i, c) in &self.positive {
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| per.get_mut(i))
                .ok_or_else(|| format!("custom bucket index {i} is out of range"))?;
            *slot += c;
        }
        // Every boundary, as the classic histogram it came from had them (the last, +Inf,
        // bucket is the count).
        let mut acc = 0.0;
        Ok(bounds
            .iter()
            .zip(&per)
            .map(|(b, c)| {
                acc += c;
                (*b, acc)
            })
            .collect())
    }

    fn exponential_buckets(&self) -> Vec<(f64, f64)> {
        let mut schema = self.schema.min(MAX_SCHEMA);
        let (mut pos, mut neg) = (
            merge(self.positive.iter().copied(), (self.schema - schema) as u32),
            merge(self.negative.iter().copied(), (self.schema - schema) as u32),
        );
        while pos.len() + neg.len() > MAX_BUCKETS && schema > MIN_SCHEMA {
            pos = merge(pos, 1);
            neg = merge(neg, 1);
            schema -= 1;
        }
        let bound = |i: i64| bound(schema, i);
        let mut out = Points::default();
        // From -Inf upwards: negative buckets most negative first, the zero bucket, positives.
        for (&i, &c) in neg.iter().rev() {
            out.add(-bound(i), -bound(i - 1), c);
        }
        if self.zero_count > 0.0 || self.zero_threshold > 0.0 {
            // As Prometheus's histogram_quantile takes the zero bucket: from 0 when the
            // histogram has only positive buckets, up to 0 when only negative ones.
            let only =
                |a: &BTreeMap<i64, f64>, b: &BTreeMap<i64, f64>| a.is_empty() && !b.is_empty();
            let lo = if only(&neg, &pos) {
                0.0
            } else {
                -self.zero_threshold
            };
            let hi = if only(&pos, &neg) {
                0.0
            } else {
                self.zero_threshold
            };
            out.add(lo, hi, self.zero_count);
        }
        for (&i, &c) in &pos {
            out.add(bound(i - 1), bound(i), c);
        }
        out.0.retain(|b| b.0.is_finite());
        out.0
    }
}

/// One OTLP exponential histogram point's buckets: `offset` and counts, OTLP-numbered.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpBuckets<'a> {
    /// Index of the first count (bucket `(base^offset, base^(offset+1)]`).
    pub offset: i32,
    /// Counts from `offset` up.
    pub counts: &'a [u64],
}

impl NativeHistogram {
    /// An OTLP exponential histogram point (`scale` -10..=20) in Prometheus's numbering, merged
    /// down to [`FINEST_SCHEMA`] when finer, as Prometheus's OTLP receiver does; scales coarser
    /// than [`MIN_SCHEMA`] are refused, as there.
    pub fn from_otlp(
        scale: i32,
        positive: OtlpBuckets<'_>,
        negative: OtlpBuckets<'_>,
        zero_threshold: f64,
        zero_count: u64,
        count: u64,
        sum: f64,
    ) -> Result<NativeHistogram, String> {
        if !(MIN_SCHEMA..=MAX_OTLP_SCALE).contains(&scale) {
            return Err(format!(
                "exponential histogram scale {scale} (accepted: {MIN_SCHEMA} to {MAX_OTLP_SCALE})"
            ));
        }
        if positive.counts.len().max(negative.counts.len()) > MAX_SENT_BUCKETS {
            return Err(format!(
                "an exponential histogram with more than {MAX_SENT_BUCKETS} buckets on one side"
            ));
        }
        let schema = scale.min(FINEST_SCHEMA);
        let shift = (scale - schema) as u32;
        let side = |b: OtlpBuckets<'_>| -> Vec<(i64, f64)> {
            // OTLP's k is Prometheus's k + 1 at the same scale.
            let first = i64::from(b.offset) + 1;
            let indexed = (first..).zip(b.counts.iter().map(|c| *c as f64));
            merge(indexed, shift).into_iter().collect()
        };
        Ok(NativeHistogram {
            schema,
            zero_threshold,
            zero_count: zero_count as f64,
            count: count as f64,
            sum,
            positive: side(positive),
            negative: side(negative),
            custom_bounds: Vec::new(),
        })
    }
}

/// Cumulative (boundary, count) points, ascending; a bucket `(lo, hi]` adds its lower boundary
/// (unless one at or above it is there) and its upper one.
#[derive(Default)]
struct Points(Vec<(f64, f64)>);

impl Points {
    fn add(&mut self, lo: f64, hi: f64, c: f64) {
        if c == 0.0 {
            return;
        }
        let below = self.0.last().map_or(0.0, |p| p.1);
        if self.0.last().is_none_or(|p| p.0 < lo) && lo > f64::NEG_INFINITY && lo < hi {
            self.0.push((lo, below));
        }
        match self.0.last_mut() {
            // Overlapping buckets (a zero bucket wider than the first positive one): the higher
            // boundary takes the count.
            Some(p) if p.0 >= hi => p.1 = below + c,
            _ => self.0.push((hi, below + c)),
        }
    }
}

/// The upper boundary of bucket `i` at `schema`: `2^(i * 2^-schema)`.
pub fn bound(schema: i32, i: i64) -> f64 {
    // Valid schemas only (callers pass checked ones); clamped so no shift below can overflow.
    let schema = schema.clamp(MIN_SCHEMA, FINEST_SCHEMA);
    if schema <= 0 {
        // Exact: whole powers of two.
        let exp = i.saturating_mul(1i64 << (-schema).min(62));
        return 2f64.powi(exp.clamp(-2000, 2000) as i32);
    }
    let per_octave = 1i64 << schema;
    let (octave, frac) = (i.div_euclid(per_octave), i.rem_euclid(per_octave));
    (frac as f64 / per_octave as f64).exp2() * 2f64.powi(octave.clamp(-2000, 2000) as i32)
}

/// Populated buckets merged `shift` schemas coarser: bucket `i` goes to
/// `((i - 1) >> shift) + 1`, whose range holds it.
fn merge(buckets: impl IntoIterator<Item = (i64, f64)>, shift: u32) -> BTreeMap<i64, f64> {
    let mut out = BTreeMap::new();
    for (i, c) in buckets {
        if c > 0.0 {
            *out.entry(((i - 1) >> shift) + 1).or_insert(0.0) += c;
        }
    }
    out
}

/// A boundary as an `le` label value: the shortest text that reads back as the same float
/// (`0.25`, `1`, `1.0905077326652577`), in exponent form outside 1e-6..1e21 — the form the
/// OTLP translation writes explicit bounds in, so one store holds one spelling of each boundary.
pub fn le_label(v: f64) -> String {
    if v == f64::INFINITY {
        return "+Inf".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Absolute counts from spans and either delta-encoded integer counts or absolute float counts,
/// as remote write sends them: `(index, count)` pairs, or why they do not line up.
pub fn from_spans(
    spans: &[(i32, u32)],
    deltas: &[i64],
    counts: &[f64],
) -> Result<Vec<(i64, f64)>, String> {
    let n: u64 = spans.iter().map(|s| u64::from(s.1)).sum();
    if n > MAX_SENT_BUCKETS as u64 {
        return Err(format!(
            "a histogram with {n} buckets on one side; at most {MAX_SENT_BUCKETS} are accepted"
        ));
    }
    let given = if deltas.is_empty() {
        counts.len()
    } else {
        deltas.len()
    };
    if !deltas.is_empty() && !counts.is_empty() {
        return Err("a histogram has both bucket deltas and counts".into());
    }
    if n != given as u64 {
        return Err(format!(
            "histogram spans hold {n} buckets but {given} counts are given"
        ));
    }
    let mut out = Vec::with_capacity(given);
    let (mut index, mut k, mut running) = (0i64, 0usize, 0i64);
    for (si, &(offset, len)) in spans.iter().enumerate() {
        // The first span's offset is its start index; later ones are gaps after the last.
        index = if si == 0 {
            i64::from(offset)
        } else {
            index + i64::from(offset)
        };
        for _ in 0..len {
            if index.abs() > i64::from(i32::MAX) {
                return Err("histogram bucket index out of range".into());
            }
            let c = if deltas.is_empty() {
                counts.get(k).copied().unwrap_or(0.0)
            } else {
                running = running.saturating_add(deltas.get(k).copied().unwrap_or(0));
                if running < 0 {
                    return Err("histogram bucket deltas make a negative count".into());
                }
                running as f64
            };
            out.push((index, c));
            index += 1;
            k += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, positive: &[(i64, f64)]) -> NativeHistogram {
        let count = positive.iter().map(|b| b.1).sum();
        NativeHistogram {
            schema,
            count,
            sum: 1.0,
            positive: positive.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn each_populated_bucket_keeps_both_its_boundaries() {
        // Schema 0: bucket 1 is (1, 2], bucket 3 is (4, 8].
        let c = h(0, &[(1, 2.0), (3, 5.0)]).to_classic().unwrap();
        assert_eq!(
            c.buckets,
            vec![(1.0, 0.0), (2.0, 2.0), (4.0, 2.0), (8.0, 7.0)]
        );
        assert_eq!(c.count, 7.0);
    }

    #[test]
    fn negative_and_zero_buckets_come_first_in_order() {
        let mut n = h(0, &[(1, 1.0)]);
        n.negative = vec![(1, 2.0), (2, 3.0)]; // [-2, -1) and [-4, -2)
        n.zero_threshold = 0.5;
        n.zero_count = 4.0;
        n.count = 10.0;
        // With buckets on both sides the zero bucket is [-zt, zt].
        let c = n.to_classic().unwrap();
        assert_eq!(
            c.buckets,
            vec![
                (-4.0, 0.0),
                (-2.0, 3.0),
                (-1.0, 5.0),
                (-0.5, 5.0),
                (0.5, 9.0),
                (1.0, 9.0),
                (2.0, 10.0)
            ]
        );
    }

    #[test]
    fn a_one_sided_zero_bucket_starts_or_ends_at_zero_as_prometheus_takes_it() {
        let mut n = h(0, &[(1, 10.0)]);
        n.zero_threshold = 0.1;
        n.zero_count = 10.0;
        n.count = 20.0;
        let c = n.to_classic().unwrap();
        assert_eq!(
            c.buckets,
            vec![(0.0, 0.0), (0.1, 10.0), (1.0, 10.0), (2.0, 20.0)]
        );
        n.negative = std::mem::take(&mut n.positive);
        let c = n.to_classic().unwrap();
        assert_eq!(
            c.buckets,
            vec![(-2.0, 0.0), (-1.0, 10.0), (-0.1, 10.0), (0.0, 20.0)]
        );
    }

    #[test]
    fn fine_schemas_merge_exactly_into_schema_3() {
        // Schema 5 buckets 1..=4 are all inside schema-3 bucket 1, (1, 2^(1/8)].
        let c = h(5, &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0)])
            .to_classic()
            .unwrap();
        let b1 = bound(3, 1);
        assert_eq!(c.buckets, vec![(1.0, 0.0), (b1, 4.0), (bound(3, 2), 5.0)]);
        assert!((b1 - 2f64.powf(0.125)).abs() < 1e-15);
        // Indices at or below zero too: schema-5 bucket 0 is (2^(-1/32), 1], in schema-3's 0;
        // -7 and -8 are in schema-3's -1 and -2.
        let c = h(5, &[(0, 1.0), (-7, 1.0), (-8, 1.0)])
            .to_classic()
            .unwrap();
        assert_eq!(
            c.buckets,
            vec![
                (bound(3, -3), 0.0),
                (bound(3, -2), 1.0),
                (bound(3, -1), 2.0),
                (1.0, 3.0)
            ]
        );
    }

    #[test]
    fn wide_histograms_merge_until_they_fit() {
        let wide: Vec<(i64, f64)> = (0..1000).map(|i| (i, 1.0)).collect();
        let c = h(3, &wide).to_classic().unwrap();
        assert!(c.buckets.len() <= 2 * MAX_BUCKETS, "{}", c.buckets.len());
        assert_eq!(c.buckets.last().unwrap().1, 1000.0);
    }

    #[test]
    fn custom_buckets_keep_their_boundaries() {
        let mut n = h(CUSTOM_SCHEMA, &[(0, 1.0), (2, 3.0), (3, 1.0)]);
        n.custom_bounds = vec![0.1, 0.5, 1.0];
        let c = n.to_classic().unwrap();
        assert_eq!(c.buckets, vec![(0.1, 1.0), (0.5, 1.0), (1.0, 4.0)]);
        assert_eq!(c.count, 5.0);
        n.positive.push((4, 1.0));
        assert!(n.to_classic().unwrap_err().contains("out of range"));
    }

    #[test]
    fn invalid_histograms_are_refused_with_the_reason() {
        let mut n = h(9, &[(1, 1.0)]);
        assert!(n.to_classic().unwrap_err().contains("schema 9"));
        n.schema = 0;
        n.count = 0.5;
        assert!(n.to_classic().unwrap_err().contains("less than"));
        n.count = f64::NAN;
        assert!(n.to_classic().unwrap_err().contains("count is NaN"));
    }

    #[test]
    fn spans_and_deltas_decode_to_absolute_counts() {
        // Buckets -2, -1 then a gap of 3: 3, 4.
        let b = from_spans(&[(-2, 2), (3, 2)], &[1, 2, -1, 0], &[]).unwrap();
        assert_eq!(b, vec![(-2, 1.0), (-1, 3.0), (3, 2.0), (4, 2.0)]);
        assert!(from_spans(&[(0, 3)], &[1], &[]).is_err());
        assert!(from_spans(&[(0, 2)], &[1, -2], &[]).is_err());
        assert!(from_spans(&[(0, u32::MAX)], &[1], &[]).is_err());
        // Too many buckets is refused from the span lengths, before any is decoded.
        let e = from_spans(&[(0, 5000)], &vec![1; 5000], &[]).unwrap_err();
        assert!(e.contains("at most 4096"), "{e}");
        let f = from_spans(&[(5, 1)], &[], &[2.5]).unwrap();
        assert_eq!(f, vec![(5, 2.5)]);
    }

    #[test]
    fn otlp_points_are_renumbered_and_merged_to_schema_8() {
        // OTLP scale 0, offset 0: bucket (1, 2] is Prometheus's bucket 1.
        let n = NativeHistogram::from_otlp(
            0,
            OtlpBuckets {
                offset: 0,
                counts: &[3, 0, 1],
            },
            OtlpBuckets::default(),
            0.0,
            2,
            6,
            9.5,
        )
        .unwrap();
        assert_eq!(
            (n.schema, n.positive.clone()),
            (0, vec![(1, 3.0), (3, 1.0)])
        );
        let c = n.to_classic().unwrap();
        assert_eq!(
            c.buckets,
            vec![(0.0, 2.0), (1.0, 2.0), (2.0, 5.0), (4.0, 5.0), (8.0, 6.0)]
        );
        // Scale 10, index 0 (1, 2^(1/1024)] lies in schema 8's bucket 1.
        let n = NativeHistogram::from_otlp(
            10,
            OtlpBuckets {
                offset: 0,
                counts: &[1, 1, 1, 1, 1],
            },
            OtlpBuckets::default(),
            0.0,
            0,
            5,
            5.0,
        )
        .unwrap();
        assert_eq!((n.schema, n.positive), (8, vec![(1, 4.0), (2, 1.0)]));
        let wide = vec![1u64; MAX_SENT_BUCKETS + 1];
        let e = NativeHistogram::from_otlp(
            0,
            OtlpBuckets {
                offset: 0,
                counts: &wide,
            },
            OtlpBuckets::default(),
            0.0,
            0,
            wide.len() as u64,
            1.0,
        )
        .unwrap_err();
        assert!(e.contains("more than 4096"), "{e}");
        for scale in [21, 72] {
            let e = NativeHistogram::from_otlp(
                scale,
                OtlpBuckets {
                    offset: 0,
                    counts: &[1],
                },
                OtlpBuckets::default(),
                0.0,
                0,
                1,
                1.0,
            )
            .unwrap_err();
            assert!(e.contains(&format!("scale {scale}")), "{e}");
        }
        assert!(NativeHistogram::from_otlp(
            -5,
            OtlpBuckets::default(),
            OtlpBuckets::default(),
            0.0,
            0,
            0,
            0.0
        )
        .is_err());
    }

    #[test]
    fn le_labels_read_back_as_the_same_boundary() {
        for v in [
            0.25,
            1.0,
            bound(3, 1),
            bound(3, -300),
            bound(-4, 60),
            -bound(2, 7),
        ] {
            assert_eq!(le_label(v).parse::<f64>().unwrap(), v, "{}", le_label(v));
        }
        assert_eq!(le_label(0.25), "0.25");
        assert_eq!(le_label(f64::INFINITY), "+Inf");
    }
}
