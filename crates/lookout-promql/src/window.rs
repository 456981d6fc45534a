//! What a range function computes over the samples of one window (rate's extrapolation,
//! least squares, the `*_over_time` folds), and the quantile rules shared with aggregations and
//! `histogram_quantile`, following Prometheus 2's `promql/functions.go` and `quantile.go`. Split
//! from [`crate::functions`], which applies them over series and steps.

use crate::ir::RangeFn;
use crate::value::format_value;

/// One range function over the samples of one window. `te` is the window's end (after `@` and
/// offset), `base` the evaluation time predict_linear extrapolates from.
#[inline(always)]
pub(crate) fn range_value(
    rf: RangeFn,
    w: &[(i64, f64)],
    te: i64,
    range: i64,
    base: i64,
    p: f64,
) -> Option<f64> {
    use RangeFn::*;
    if w.is_empty() {
        return None;
    }
    let n = w.len() as f64;
    Some(match rf {
        Rate => extrapolated_rate(w, te.saturating_sub(range), te, range, true, true)?,
        Increase => extrapolated_rate(w, te.saturating_sub(range), te, range, true, false)?,
        Delta => extrapolated_rate(w, te.saturating_sub(range), te, range, false, false)?,
        Irate | Idelta => {
            if w.len() < 2 {
                return None;
            }
            let (t1, v1) = w[w.len() - 2];
            let (t2, v2) = w[w.len() - 1];
            let value = if rf == Irate && v2 < v1 { v2 } else { v2 - v1 };
            let dt = t2 - t1;
            if dt == 0 {
                return None;
            }
            if rf == Irate {
                value / (dt as f64 / 1000.0)
            } else {
                value
            }
        }
        Deriv => {
            if w.len() < 2 {
                return None;
            }
            linear_regression(w, w[0].0).0
        }
        PredictLinear => {
            if w.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(w, base);
            slope * p + intercept
        }
        AvgOverTime => {
            let mut mean = 0.0f64;
            let mut count = 0.0f64;
            for &(_, v) in w {
                count += 1.0;
                if mean.is_infinite() {
                    if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                        continue;
                    }
                    if !v.is_infinite() && !v.is_nan() {
                        continue;
                    }
                }
                mean += v / count - mean / count;
            }
            mean
        }
        MinOverTime => w
            .iter()
            .fold(w[0].1, |m, &(_, v)| if v < m || m.is_nan() { v } else { m }),
        MaxOverTime => w
            .iter()
            .fold(w[0].1, |m, &(_, v)| if v > m || m.is_nan() { v } else { m }),
        SumOverTime => w.iter().map(|p| p.1).sum(),
        CountOverTime => n,
        LastOverTime => w[w.len() - 1].1,
        StddevOverTime | StdvarOverTime => {
            let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
            for &(_, v) in w {
                count += 1.0;
                let delta = v - mean;
                mean += delta / count;
                aux += delta * (v - mean);
            }
            if rf == StddevOverTime {
                (aux / count).sqrt()
            } else {
                aux / count
            }
        }
        QuantileOverTime => {
            let mut vals: Vec<f64> = w.iter().map(|p| p.1).collect();
            quantile(p, &mut vals)
        }
        PresentOverTime => 1.0,
        Changes => {
            let mut c = 0.0;
            for pair in w.windows(2) {
                let (prev, cur) = (pair[0].1, pair[1].1);
                if cur != prev && !(cur.is_nan() && prev.is_nan()) {
                    c += 1.0;
                }
            }
            c
        }
        Resets => w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64,
    })
}

/// Prometheus's `extrapolatedRate`: the change over the window, corrected for counter resets,
/// extrapolated to the window's edges when the first/last samples are close to them (within
/// 1.1 average intervals), else by half an interval, and never below a counter's zero.
///
/// Split into [`raw_change`] and [`RateShape`] so that [`crate::sliding::SlidingRate`], which
/// evaluates the same formula at every step of a series, runs the very same arithmetic.
#[inline(always)]
fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first_t, first_v) = w[0];
    let last_t = w[w.len() - 1].0;
    let result = raw_change(w, is_counter);
    let shape = RateShape::of(first_t, last_t, w.len(), range_start, range_end);
    let to_start = shape.start(is_counter, first_v, result);
    Some(result * shape.factor(to_start, range, is_rate))
}

/// The last value less the first of a window of two samples at least; for a counter, plus the
/// value before each reset (a sample lower than the one before it), added in sample order as
/// Prometheus adds them.
#[inline(always)]
pub(crate) fn raw_change(w: &[(i64, f64)], is_counter: bool) -> f64 {
    let mut result = w[w.len() - 1].1 - w[0].1;
    if is_counter {
        let mut last = 0.0;
        for &(_, v) in w {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    result
}

/// Everything of `extrapolatedRate` that depends on sample times only (seconds): where the
/// window's first and last samples sit in it and how far apart they are on average.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateShape {
    /// From the window's start to its first sample.
    pub to_start: f64,
    to_end: f64,
    sampled: f64,
    avg_between: f64,
}

impl RateShape {
    /// The shape of a window of `n >= 2` samples from `first_t` to `last_t` (ms) in
    /// `[range_start, range_end]`.
    #[inline(always)]
    pub(crate) fn of(
        first_t: i64,
        last_t: i64,
        n: usize,
        range_start: i64,
        range_end: i64,
    ) -> Self {
        let sampled = (last_t - first_t) as f64 / 1000.0;
        RateShape {
            to_start: (first_t - range_start) as f64 / 1000.0,
            to_end: (range_end - last_t) as f64 / 1000.0,
            sampled,
            avg_between: sampled / (n - 1) as f64,
        }
    }

    /// From the window's first sample to its last.
    pub(crate) fn sampled(&self) -> f64 {
        self.sampled
    }

    /// How far to extrapolate towards the window's start: [`to_start`](Self::to_start), or,
    /// for a counter, less when the counter would have reached zero sooner at its average
    /// rate (Prometheus's `durationToZero`).
    #[inline(always)]
    pub(crate) fn start(&self, is_counter: bool, first_v: f64, result: f64) -> f64 {
        let mut to_start = self.to_start;
        if is_counter && result > 0.0 && first_v >= 0.0 {
            let to_zero = self.sampled * (first_v / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        to_start
    }

    /// What the raw change is multiplied by: the extrapolated interval over the sampled one,
    /// per second of the range for a rate.
    #[inline(always)]
    pub(crate) fn factor(&self, to_start: f64, range: i64, is_rate: bool) -> f64 {
        let threshold = self.avg_between * 1.1;
        let mut interval = self.sampled;
        interval += if to_start < threshold {
            to_start
        } else {
            self.avg_between / 2.0
        };
        interval += if self.to_end < threshold {
            self.to_end
        } else {
            self.avg_between / 2.0
        };
        let mut factor = interval / self.sampled;
        if is_rate {
            factor /= range as f64 / 1000.0;
        }
        factor
    }
}

/// Neumaier-compensated addition, as Prometheus's `kahanSumInc`.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Least-squares slope and intercept (at `intercept_ms`) of the samples, in units per second.
fn linear_regression(w: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init = w[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in w.iter().enumerate() {
        if const_y && i > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Prometheus's `quantile`: linear interpolation between the closest ranks; q outside [0, 1]
/// gives -Inf/+Inf.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort puts NaN first with its `Less` (NaN is less than everything).
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

/// Prometheus's `bucketQuantile` over classic buckets (upper bound, cumulative count).
pub(crate) fn bucket_quantile(q: f64, b: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b[b.len() - 1].0 != f64::INFINITY {
        return f64::NAN;
    }
    // Buckets with the same bound (differing only in other labels' spelling) are added up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(le, c) in b.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for x in merged.iter_mut() {
        if x.1 > max {
            max = x.1;
        } else if x.1 < max {
            x.1 = max;
        }
    }
    let b = merged;
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if i == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if i == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// The label value `count_values` writes for a value (as Prometheus formats numbers).
pub(crate) fn count_value_label(v: f64) -> String {
    format_value(v)
}
