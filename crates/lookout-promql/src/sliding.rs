//! Range functions at every step of one series, with state carried from one step to the next:
//! the window's bounds move forward instead of being searched for ([`Cursor`]), and rate,
//! increase and delta ([`SlidingRate`]) skip the counter-reset walk where a window holds no
//! reset and reuse the previous window's extrapolation factor when the new window has the same
//! shape (its first and last samples at the same distances from its edges, as many samples).
//!
//! Why: `sum by (x) (rate(m[5m]))` over 10,000 series for a day at 60 s steps is 14 million
//! windows, and the extrapolation's six dependent divisions were most of its time (issue 29's
//! 200 ms target). Scrapes and steps are both regular, so consecutive windows almost always
//! have the same shape. The answers are bit-for-bit those of
//! [`range_value`](crate::window::range_value) on the same window, as the tests below check:
//! the same arithmetic runs in the same order, only its repetitions are skipped.

use std::ops::Range;

use crate::eval::{prepared, ABSENT};
use crate::ir::RangeFn;
use crate::window::{raw_change, RateShape};

/// The samples of the window `[from, te]` of one series as indices `lo..hi`, moved forward as
/// the steps advance.
#[derive(Debug)]
pub(crate) struct Cursor {
    lo: usize,
    hi: usize,
    /// Whether every window starts and ends no earlier than the one before (true of a range
    /// query's steps, with or without offset and `@`), so nothing is searched twice.
    forward: bool,
}

impl Cursor {
    /// A cursor before the first sample; `forward` as [`Cursor::forward`] says.
    pub(crate) fn new(forward: bool) -> Self {
        Cursor {
            lo: 0,
            hi: 0,
            forward,
        }
    }

    /// The window `[from, te]` of `samples` (sorted by time). Each call is amortised O(1)
    /// when windows only move forward; a window that moves back starts the search again from
    /// the first sample.
    #[inline(always)]
    pub(crate) fn advance(&mut self, samples: &[(i64, f64)], from: i64, te: i64) -> Range<usize> {
        let (mut lo, mut hi) = (self.lo, self.hi);
        if !self.forward
            && (lo > 0 && samples[lo - 1].0 >= from || hi > 0 && samples[hi - 1].0 > te)
        {
            lo = 0;
            hi = 0;
        }
        // Iterators rather than indexing: no bounds check per sample.
        hi += samples[hi..].iter().take_while(|s| s.0 <= te).count();
        lo += samples[lo..hi].iter().take_while(|s| s.0 < from).count();
        (self.lo, self.hi) = (lo, hi);
        lo..hi
    }
}

/// `rate`, `increase` or `delta` over successive windows of one series at a time.
#[derive(Debug)]
pub(crate) struct SlidingRate {
    range: i64,
    is_counter: bool,
    is_rate: bool,
    /// The last window shape met and its factor (with the window's own `to_start`): a shape
    /// depends on times only, so it stays valid from one series to the next.
    memo: Memo,
    /// No counter reset at any index in `scan_from..next_reset` of the current series; a reset
    /// at `j` is `v[j] < v[j - 1]`, and `next_reset` is one or the series' length.
    scan_from: usize,
    next_reset: usize,
}

/// What a [`RateShape`] is computed from, as integers: the first sample's distance from the
/// window's start, the last sample's from its end, the distance between them (ms) and the
/// number of samples. Equal keys give equal shapes, bit for bit.
type ShapeKey = (i64, i64, i64, usize);

/// A window shape met, with what is derived from it once.
#[derive(Debug, Clone, Copy)]
struct Memo {
    key: ShapeKey,
    shape: RateShape,
    /// The factor when nothing lowers `to_start`.
    factor: f64,
    /// `to_start / sampled` widened by a relative 1e-9: a counter whose first value is at
    /// least `result` times this cannot reach zero before the window's start (see
    /// [`cannot_lower`](Self::cannot_lower)).
    zero_ratio: f64,
}

impl Memo {
    fn new(key: ShapeKey, shape: RateShape, range: i64, is_rate: bool) -> Self {
        Memo {
            key,
            shape,
            factor: shape.factor(shape.to_start, range, is_rate),
            zero_ratio: shape.to_start / shape.sampled() * (1.0 + 1e-9),
        }
    }

    /// Whether [`RateShape::start`] certainly leaves `to_start` as it is for a counter with
    /// `result > 0` and `first_v >= 0`, decided with a multiplication instead of its
    /// division (the one left in every window otherwise).
    ///
    /// `start` lowers `to_start` when `sampled * (first_v / result) < to_start`. When
    /// `first_v >= result * zero_ratio`, the exact quotient exceeds `to_start / sampled` by a
    /// relative 1e-9 less a few roundings of 1.1e-16 each, so even the rounded product is not
    /// below `to_start`. A product that is not a normal number (where rounding is no longer
    /// relative) decides nothing. With `to_start` 0, nothing is below it.
    #[inline(always)]
    fn cannot_lower(&self, first_v: f64, result: f64) -> bool {
        if self.shape.to_start == 0.0 {
            return true;
        }
        let bound = result * self.zero_ratio;
        bound >= f64::MIN_POSITIVE && first_v >= bound
    }
}

impl SlidingRate {
    /// The state for `rf` over windows of `range` ms, or `None` when `rf` is not one of the
    /// extrapolated rates.
    pub(crate) fn new(rf: RangeFn, range: i64) -> Option<Self> {
        let (is_counter, is_rate) = match rf {
            RangeFn::Rate => (true, true),
            RangeFn::Increase => (true, false),
            RangeFn::Delta => (false, false),
            _ => return None,
        };
        Some(SlidingRate {
            range,
            is_counter,
            is_rate,
            // A key no window has (windows of fewer than two samples never get here).
            memo: Memo::new(
                (0, 0, 0, 0),
                RateShape::of(0, 1000, 2, 0, 1000),
                range,
                is_rate,
            ),
            scan_from: usize::MAX,
            next_reset: 0,
        })
    }

    /// The function at every step of one series: `out[k]` over the window `bounds[k]`
    /// (`(from, te)`), [`ABSENT`] where it has none; whether any step has a value. `forward`
    /// says whether the windows only move forward, as for [`Cursor::new`].
    pub(crate) fn series(
        &mut self,
        samples: &[(i64, f64)],
        bounds: &[(i64, i64)],
        forward: bool,
        out: &mut [f64],
    ) -> bool {
        let samples = prepared(samples, true);
        self.next_series();
        // One loop per kind, so whether it is a counter is not asked at every step.
        if self.is_counter {
            self.fill::<true>(&samples, bounds, forward, out)
        } else {
            self.fill::<false>(&samples, bounds, forward, out)
        }
    }

    /// [`series`](Self::series) over prepared samples, for a counter (`rate`, `increase`) or
    /// not (`delta`).
    #[inline(always)]
    fn fill<const COUNTER: bool>(
        &mut self,
        samples: &[(i64, f64)],
        bounds: &[(i64, i64)],
        forward: bool,
        out: &mut [f64],
    ) -> bool {
        let mut cursor = Cursor::new(forward);
        let mut any = false;
        if forward {
            // The common case written out with its state in locals.
            let (mut lo, mut hi) = (0usize, 0usize);
            for (o, &(from, te)) in out.iter_mut().zip(bounds) {
                while let Some(s) = samples.get(hi) {
                    if s.0 > te {
                        break;
                    }
                    hi += 1;
                }
                // No `lo < hi` test needed: the sample at `hi`, if any, is past `te`, which is
                // not before `from`.
                while samples.get(lo).is_some_and(|s| s.0 < from) {
                    lo += 1;
                }
                *o = match self.at::<COUNTER>(samples, lo..hi, from, te) {
                    Some(v) => {
                        any = true;
                        v
                    }
                    None => ABSENT,
                };
            }
            return any;
        }
        for (o, &(from, te)) in out.iter_mut().zip(bounds) {
            let w = cursor.advance(samples, from, te);
            *o = match self.at::<COUNTER>(samples, w, from, te) {
                Some(v) => {
                    any = true;
                    v
                }
                None => ABSENT,
            };
        }
        any
    }

    /// Forgets what was learnt about the previous series' resets (the shape memo stays).
    fn next_series(&mut self) {
        self.scan_from = usize::MAX;
        self.next_reset = 0;
    }

    /// The function over the window `w` of `samples` (the current series, with the same
    /// samples since [`next_series`](Self::next_series)), which is `[from, te]` with `from`
    /// the end less the range (saturating); `None` with fewer than two samples, as
    /// Prometheus drops those.
    #[inline(always)]
    fn at<const COUNTER: bool>(
        &mut self,
        samples: &[(i64, f64)],
        w: Range<usize>,
        from: i64,
        te: i64,
    ) -> Option<f64> {
        let (lo, hi) = (w.start, w.end);
        let window = &samples[lo..hi];
        let [(first_t, first_v), .., (last_t, last_v)] = *window else {
            return None;
        };
        // `raw_change` of a counter adds the value before each reset; with none in the window
        // it is the plain difference (its check of the first sample against 0 adds +0.0 at
        // most, which changes no difference of two numbers).
        let result = if COUNTER && self.reset_in(samples, lo, hi) {
            raw_change(window, true)
        } else {
            last_v - first_v
        };
        let key: ShapeKey = (
            first_t.wrapping_sub(from),
            te.wrapping_sub(last_t),
            last_t.wrapping_sub(first_t),
            hi - lo,
        );
        if key != self.memo.key {
            let shape = RateShape::of(first_t, last_t, hi - lo, from, te);
            self.memo = Memo::new(key, shape, self.range, self.is_rate);
        }
        let memo = &self.memo;
        // Only a counter with a positive change and a first value at or above zero can have
        // its `to_start` lowered (the conditions of `RateShape::start`).
        if !(COUNTER && result > 0.0 && first_v >= 0.0) || memo.cannot_lower(first_v, result) {
            return Some(result * memo.factor);
        }
        let to_start = memo.shape.start(COUNTER, first_v, result);
        // `start` only ever lowers `to_start`; when it did, the memoised factor is not this
        // window's.
        let factor = if to_start < memo.shape.to_start {
            memo.shape.factor(to_start, self.range, self.is_rate)
        } else {
            memo.factor
        };
        Some(result * factor)
    }

    /// Whether some index in `lo + 1..hi` is a counter reset. Windows move forward, so the
    /// search resumes where the last one stopped: each sample is looked at about once per
    /// series.
    #[inline(always)]
    fn reset_in(&mut self, samples: &[(i64, f64)], lo: usize, hi: usize) -> bool {
        let from = lo + 1;
        if from < self.scan_from || from > self.next_reset {
            // `>=` is false for a NaN, which stops the scan: the window then takes the exact
            // walk, which skips NaN as Prometheus's `<` does.
            let rising = samples[from - 1..]
                .windows(2)
                .take_while(|p| p[1].1 >= p[0].1)
                .count();
            self.scan_from = from;
            self.next_reset = from + rising;
        }
        self.next_reset < hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::window;
    use crate::value::STALE_NAN_BITS;
    use crate::window::range_value;

    /// A small deterministic generator (xorshift), so the cases are the same on every run
    /// without a dependency for it.
    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Every step of `steps` through the sliding state must equal the plain path (a
    /// binary-searched window of the `prepared` samples, `range_value`) bit for bit, for the
    /// three functions. The series go through one state one after the other, as one thread
    /// of the evaluator does.
    fn assert_same_all(
        series: &[&[(i64, f64)]],
        steps: &[i64],
        range: i64,
        offset: i64,
        what: &str,
    ) {
        let bounds: Vec<(i64, i64)> = steps
            .iter()
            .map(|t| ((t - offset).saturating_sub(range), t - offset))
            .collect();
        let forward = steps.windows(2).all(|p| p[0] <= p[1]);
        for rf in [RangeFn::Rate, RangeFn::Increase, RangeFn::Delta] {
            let mut fast = SlidingRate::new(rf, range).unwrap();
            for (i, samples) in series.iter().enumerate() {
                let mut got = vec![0.0; steps.len()];
                let any = fast.series(samples, &bounds, forward, &mut got);
                let clean = prepared(samples, true);
                let mut some = false;
                for (k, &t) in steps.iter().enumerate() {
                    let te = t - offset;
                    let want = range_value(rf, window(&clean, te, range), te, range, t, 0.0)
                        .unwrap_or(ABSENT);
                    some |= want.to_bits() != ABSENT.to_bits();
                    assert_eq!(
                        got[k].to_bits(),
                        want.to_bits(),
                        "{what}, series {i}: {rf:?} at {t}: fast {}, plain {want}",
                        got[k]
                    );
                }
                assert_eq!(
                    any, some,
                    "{what}, series {i}: {rf:?} has a value somewhere"
                );
            }
        }
    }

    fn assert_same(samples: &[(i64, f64)], steps: &[i64], range: i64, offset: i64, what: &str) {
        assert_same_all(&[samples], steps, range, offset, what);
    }

    fn grid(start: i64, end: i64, step: i64) -> Vec<i64> {
        (0..)
            .map(|k| start + k * step)
            .take_while(|t| *t <= end)
            .collect()
    }

    #[test]
    fn regular_scrapes_with_counter_resets_agree_with_the_plain_path() {
        // Scraped every 15 s, reset to 0 every 7 minutes and to a small value once.
        let mut v = 0.0;
        let samples: Vec<(i64, f64)> = (0..400)
            .map(|i| {
                v = if i % 28 == 0 {
                    0.0
                } else {
                    v + (i % 5) as f64 * 1.5
                };
                if i == 101 {
                    v = 0.25;
                }
                (i * 15_000, v)
            })
            .collect();
        assert_same(&samples, &grid(0, 6_000_000, 60_000), 300_000, 0, "regular");
        // Steps shorter than the scrape interval: several windows share their samples.
        assert_same(
            &samples,
            &grid(0, 6_000_000, 7_000),
            60_000,
            0,
            "fine steps",
        );
    }

    #[test]
    fn a_counter_starting_near_zero_extrapolates_to_its_zero_as_the_plain_path_does() {
        // Born in the window at 0.5 and growing by 2 a scrape: durationToZero (a quarter of
        // an interval) is shorter than both the distance to the window's start and half an
        // interval, so it changes the factor that a window of the same shape had.
        let old: Vec<(i64, f64)> = (0..100).map(|i| (i * 10_000, 1e6 + i as f64)).collect();
        let born: Vec<(i64, f64)> = (0..40)
            .map(|i| (200_000 + i * 10_000, 0.5 + 2.0 * i as f64))
            .collect();
        let steps = grid(0, 1_000_000, 10_000);
        assert_same_all(&[&old, &born, &old], &steps, 120_000, 0, "born");
        let negative: Vec<(i64, f64)> = (0..40).map(|i| (i * 10_000, i as f64 - 5.0)).collect();
        assert_same(&negative, &steps, 120_000, 0, "negative");
    }

    #[test]
    fn counters_whose_zero_falls_at_the_window_start_agree_with_the_plain_path() {
        // Five samples 10 s apart, the first 5 s after the window's start: durationToZero is
        // 40 s x first / change, below the 5 s to the start exactly when first / change is
        // below 1/8. Changes one ulp either side of 8 x first, and further off, must all
        // take the same path as the plain division does.
        let steps = [100_000];
        for first in [1.0, 3.0, 1e-300, 7e300 / 8.0, 0.1] {
            let change: f64 = 8.0 * first;
            for result in [
                change,
                f64::from_bits(change.to_bits() + 1),
                f64::from_bits(change.to_bits() - 1),
                f64::from_bits(change.to_bits() + 1000),
                f64::from_bits(change.to_bits() - 1000),
                change * (1.0 + 1e-9),
                change * (1.0 - 1e-9),
            ] {
                let samples: Vec<(i64, f64)> = (0..5)
                    .map(|i| (45_000 + i * 10_000, first + result * i as f64 / 4.0))
                    .collect();
                assert_same(&samples, &steps, 60_000, 0, &format!("{first} + {result}"));
            }
        }
    }

    #[test]
    fn the_multiplication_never_claims_what_the_division_denies() {
        // `cannot_lower` must imply that `start` keeps `to_start`, for any values: tried one
        // ulp at a time around the boundary for several window shapes.
        let mut rng = Xorshift(0x2545_f491_4f6c_dd1d);
        let mut near = 0;
        for (first_t, last_t, n) in [(3_000, 33_000, 4), (7_000, 55_000, 5), (1, 59_999, 3)] {
            let shape = RateShape::of(first_t, last_t, n, 0, 60_000);
            let memo = Memo::new((0, 0, 0, n), shape, 60_000, true);
            let ratio = shape.to_start / shape.sampled();
            for _ in 0..20_000 {
                let first =
                    (rng.below(1 << 40) as f64 + 1.0) * 10f64.powi(rng.below(40) as i32 - 20);
                let exact = first / ratio;
                let result = f64::from_bits(exact.to_bits() + rng.below(64) - 32);
                let lowered = shape.start(true, first, result) < shape.to_start;
                if memo.cannot_lower(first, result) {
                    assert!(!lowered, "{first} / {result} for {shape:?}");
                } else {
                    near += 1;
                }
            }
        }
        // The cases straddle the boundary: some are left to the division.
        assert!(near > 0);
    }

    #[test]
    fn stale_markers_and_gaps_longer_than_the_range_agree_with_the_plain_path() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut samples = Vec::new();
        for i in 0..60i64 {
            samples.push((i * 30_000, i as f64 * 2.0));
        }
        samples.push((1_800_000, stale));
        // Gone for 20 minutes (longer than the 5-minute lookback and the range), then back
        // after a reset.
        for i in 0..60i64 {
            samples.push((3_000_000 + i * 30_000, i as f64));
        }
        samples.push((3_000_000 + 61 * 30_000, stale));
        assert_same(&samples, &grid(0, 5_400_000, 60_000), 300_000, 0, "gaps");
        assert_same(
            &samples,
            &grid(0, 5_400_000, 60_000),
            60_000,
            0,
            "short range",
        );
    }

    #[test]
    fn irregular_intervals_nan_and_offsets_agree_with_the_plain_path() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        for case in 0..200 {
            let mut t = rng.below(100_000) as i64;
            let mut v = rng.below(1000) as f64;
            let mut samples = Vec::new();
            for _ in 0..rng.below(300) {
                // Jittered scrapes, some long gaps, some duplicate times (dropped by
                // `prepared`), resets, NaN and infinite values, negative gauges.
                t += match rng.below(40) {
                    0 | 1 => 600_000 + rng.below(600_000) as i64,
                    2 | 3 => 0,
                    // Out of order: `prepared` sorts it into an earlier window.
                    4 => -(rng.below(60_000) as i64),
                    _ => 10_000 + rng.below(10_000) as i64,
                };
                v = match rng.below(30) {
                    0 => 0.0,
                    1 => f64::NAN,
                    2 => f64::INFINITY,
                    3 => -(rng.below(50) as f64),
                    4 => f64::from_bits(STALE_NAN_BITS),
                    // A signalling NaN that `prepared` makes quiet.
                    5 => f64::from_bits(0x7ff0_0000_0000_0001),
                    _ if v.is_finite() => v + rng.below(100) as f64 / 7.0,
                    _ => rng.below(100) as f64,
                };
                samples.push((t, v));
            }
            let step = [1_000, 15_000, 60_000, 300_000][rng.below(4) as usize];
            let range = [1_000, 60_000, 300_000, 3_600_000][rng.below(4) as usize];
            let offset = [0, 60_000, -30_000][rng.below(3) as usize];
            let steps = grid(0, t + 600_000, step);
            assert_same(&samples, &steps, range, offset, &format!("case {case}"));
        }
    }

    #[test]
    fn samples_out_of_order_are_sorted_into_their_windows() {
        // Out of order past the last window's end.
        let late = [(10_000, 1.0), (300_000, 5.0), (20_000, 2.0), (30_000, 4.0)];
        assert_same(&late, &grid(0, 250_000, 10_000), 60_000, 0, "late");
        // Out of order inside the windows' reach, and a duplicate time.
        let early = [(10_000, 1.0), (30_000, 4.0), (20_000, 2.0), (20_000, 3.0)];
        assert_same(&early, &grid(0, 250_000, 10_000), 60_000, 0, "early");
    }

    #[test]
    fn windows_that_move_back_are_searched_again() {
        // Resets every 13 samples: a window that moves back must not trust what was found
        // about resets further on.
        let samples: Vec<(i64, f64)> = (0..100).map(|i| (i * 10_000, (i % 13) as f64)).collect();
        let steps = [
            500_000, 200_000, 900_000, 100_000, 100_000, 990_000, 130_000,
        ];
        assert_same(&samples, &steps, 60_000, 0, "back and forth");
    }
}
