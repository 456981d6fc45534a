//! Change points in a series of measurements: where the level moved, by how much, and how sure.
//!
//! Written here because no maintained crate does offline multiple change-point detection with a
//! significance test. The structure is Otava's (formerly Hunter; E-divisive means with a t-test):
//! candidate splits are found at a relaxed significance, in the whole series and in sliding
//! windows, then a merge step drops the weakest candidate until every one left is significant
//! against its neighbouring regimes. The statistic is where we differ:
//!
//! - A split is placed where the standardised **Wilcoxon rank-sum** (Mann–Whitney) statistic
//!   between the two sides is largest. Like the energy distance it compares whole distributions,
//!   but a single outlier moves it by at most one rank, so noisy neighbours on a CI machine do not
//!   pull splits toward themselves.
//! - Significance is the rank-sum test between the regimes on either side (normal approximation
//!   with the tie correction, so quantised timings are fine). Otava's t-test assumes normal data; an
//!   outlier inflates its variance (lost detections) or its mean difference (false alarms).
//!
//! The price of ranks: with `m` points after a change and `n` before, the smallest two-sided
//! p-value is `2 / C(n + m, m)`, so at p = 0.001 a change needs 3 points of the new regime (or 2
//! after fewer than 62 points) before it can be reported. Small samples get exact p-values
//! ([`exact_p`]); the normal approximation would need 4 or more. `bench/regress.sh` measures both
//! detectors on the same series.

use std::f64::consts::SQRT_2;

/// How the detector decides.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A change point is reported when its rank-sum p-value is at most this (Otava's default).
    pub max_p_value: f64,
    /// …and its relative change of the median, `|after / before - 1|`, at least this.
    pub min_magnitude: f64,
    /// Window for local candidate search (points); halves overlap.
    pub window: usize,
    /// The fewest points a regime may have.
    pub min_segment: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_p_value: 0.001,
            min_magnitude: 0.0,
            window: 50,
            min_segment: 3,
        }
    }
}

/// A detected change: `index` is the first point of the new regime.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    pub index: usize,
    /// Median of the regime before.
    pub before: f64,
    /// Median of the regime from `index` on.
    pub after: f64,
    pub mean_before: f64,
    pub mean_after: f64,
    /// `(after - before) / |before| × 100`; `None` when `before` is 0.
    pub change_percent: Option<f64>,
    /// Two-sided rank-sum p-value between the two regimes.
    pub p_value: f64,
}

impl ChangePoint {
    /// Whether the series got worse here.
    pub fn is_regression(&self, lower_is_better: bool) -> bool {
        if lower_is_better {
            self.after > self.before
        } else {
            self.after < self.before
        }
    }
}

/// Finds the change points of `values` (finite numbers, oldest first).
pub fn detect(values: &[f64], opt: &Options) -> Vec<ChangePoint> {
    let n = values.len();
    let min_seg = opt.min_segment.max(1);
    if n < 2 * min_seg {
        return Vec::new();
    }
    // The first pass is looser, as in Otava: a weak candidate can still win once its neighbours'
    // regimes are known; the merge decides.
    let relaxed = if opt.max_p_value * 10.0 < 0.05 {
        opt.max_p_value * 10.0
    } else {
        opt.max_p_value * 2.0
    };
    let mut cands: Vec<(usize, f64)> = Vec::new();
    segment(values, 0, n, relaxed, min_seg, &mut cands);
    let w = opt.window.max(4 * min_seg);
    if n > w {
        let step = (w / 2).max(1);
        let mut start = 0;
        loop {
            let end = (start + w).min(n);
            segment(values, start, end, relaxed, min_seg, &mut cands);
            if end == n {
                break;
            }
            start += step;
        }
    }
    let cps = dedupe(cands, min_seg);
    let cps = merge(values, cps, opt, min_seg);
    let cps = refine(values, cps, min_seg);
    report(values, &cps)
}

/// Binary segmentation of `values[a..b]`: the best split if significant at `p`, then both halves.
fn segment(
    values: &[f64],
    a: usize,
    b: usize,
    p: f64,
    min_seg: usize,
    out: &mut Vec<(usize, f64)>,
) {
    let mut todo = vec![(a, b)];
    while let Some((a, b)) = todo.pop() {
        if let Some((at, pv)) = best_split(&values[a..b], min_seg) {
            if pv <= p {
                out.push((a + at, pv));
                todo.push((a, a + at));
                todo.push((a + at, b));
            }
        }
    }
}

/// Candidates closer than a regime's minimum length are one change: keep the most significant.
fn dedupe(mut cands: Vec<(usize, f64)>, min_seg: usize) -> Vec<usize> {
    cands.sort_by_key(|c| c.0);
    let mut out: Vec<(usize, f64)> = Vec::new();
    for c in cands {
        match out.last_mut() {
            Some(last) if c.0 < last.0 + min_seg => {
                if c.1 < last.1 {
                    *last = c;
                }
            }
            _ => out.push(c),
        }
    }
    out.into_iter().map(|c| c.0).collect()
}

/// Drops the weakest candidate (largest p, then smallest magnitude) until all pass.
fn merge(values: &[f64], mut cps: Vec<usize>, opt: &Options, min_seg: usize) -> Vec<usize> {
    let n = values.len();
    let test = |cps: &[usize], i: usize| -> (f64, f64) {
        let a = if i == 0 { 0 } else { cps[i - 1] };
        let c = cps.get(i + 1).copied().unwrap_or(n);
        let (left, right) = (&values[a..cps[i]], &values[cps[i]..c]);
        if left.len() < min_seg || right.len() < min_seg {
            return (1.0, 0.0);
        }
        (rank_sum_p(left, right), magnitude(left, right))
    };
    let mut stats: Vec<(f64, f64)> = (0..cps.len()).map(|i| test(&cps, i)).collect();
    loop {
        let weakest = stats
            .iter()
            .enumerate()
            .filter(|(_, s)| s.0 > opt.max_p_value || s.1 < opt.min_magnitude)
            .max_by(|(_, x), (_, y)| x.0.total_cmp(&y.0).then(y.1.total_cmp(&x.1)))
            .map(|(i, _)| i);
        let Some(i) = weakest else { break };
        cps.remove(i);
        stats.remove(i);
        // Only the neighbours' regimes changed.
        for j in [i.wrapping_sub(1), i] {
            if j < cps.len() {
                stats[j] = test(&cps, j);
            }
        }
    }
    cps
}

/// How far (points) [`refine`] looks either side of the rank-based split.
const NUDGE: usize = 5;

/// Moves each change point to the best split between its neighbours: a candidate found in a
/// window that ended near the change may sit a point or two off. Then nudges it to where the
/// points on either side sit closest to their own regime's median: when the regimes are fully
/// separated the rank statistic no longer sees magnitudes and may trade a boundary point for a
/// more balanced split; the L1 distance still sees which level that point belongs to.
fn refine(values: &[f64], mut cps: Vec<usize>, min_seg: usize) -> Vec<usize> {
    let n = values.len();
    for i in 0..cps.len() {
        let a = if i == 0 { 0 } else { cps[i - 1] };
        let c = cps.get(i + 1).copied().unwrap_or(n);
        let Some((at, _)) = best_split(&values[a..c], min_seg) else {
            continue;
        };
        let at = a + at;
        let (ml, mr) = (median(&values[a..at]), median(&values[at..c]));
        let lo = at.saturating_sub(NUDGE).max(a + min_seg);
        let hi = (at + NUDGE).min(c - min_seg);
        // cost(t): the L1 cost of the points in lo..hi with those before t on the left median
        // and the rest on the right, less a constant. Moves only for a strictly lower cost.
        let mut costs = Vec::with_capacity(hi + 1 - lo);
        let mut cost = 0.0;
        for t in lo..=hi {
            if t > lo {
                let x = values[t - 1];
                cost += (x - ml).abs() - (x - mr).abs();
            }
            costs.push(cost);
        }
        let mut best = at;
        for (k, &c) in costs.iter().enumerate() {
            if c < costs[best - lo] - 1e-9 {
                best = lo + k;
            }
        }
        cps[i] = best;
    }
    cps
}

fn report(values: &[f64], cps: &[usize]) -> Vec<ChangePoint> {
    let n = values.len();
    (0..cps.len())
        .map(|i| {
            let a = if i == 0 { 0 } else { cps[i - 1] };
            let c = cps.get(i + 1).copied().unwrap_or(n);
            let (left, right) = (&values[a..cps[i]], &values[cps[i]..c]);
            let (before, after) = (median(left), median(right));
            ChangePoint {
                index: cps[i],
                before,
                after,
                mean_before: mean(left),
                mean_after: mean(right),
                change_percent: (before != 0.0).then(|| (after - before) / before.abs() * 100.0),
                p_value: rank_sum_p(left, right),
            }
        })
        .collect()
}

/// Average ranks (1-based; ties share their mean rank) and the tie term `Σ(t³ − t)`.
fn ranks(xs: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_unstable_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && xs[idx[j]] == xs[idx[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            out[k] = r;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    (out, ties)
}

/// |z| of the rank sum `r1` of the first `n1` of `n1 + n2` values, continuity-corrected.
fn z_of(r1: f64, n1: f64, n2: f64, ties: f64) -> f64 {
    let n = n1 + n2;
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return 0.0;
    }
    ((u - n1 * n2 / 2.0).abs() - 0.5).max(0.0) / var.sqrt()
}

fn p_of(z: f64) -> f64 {
    libm::erfc(z / SQRT_2)
}

/// The split of `xs` (index of the first point after it) with the largest rank-sum statistic,
/// and its p-value; `None` when `xs` is too short for two regimes.
fn best_split(xs: &[f64], min_seg: usize) -> Option<(usize, f64)> {
    let len = xs.len();
    if len < 2 * min_seg {
        return None;
    }
    let (r, ties) = ranks(xs);
    let mut r1: f64 = r[..min_seg].iter().sum();
    let mut best = (min_seg, -1.0);
    // min_seg >= 1, so every split index is also a valid rank index.
    for (at, &next) in r.iter().enumerate().take(len - min_seg + 1).skip(min_seg) {
        let z = z_of(r1, at as f64, (len - at) as f64, ties);
        if z > best.1 {
            best = (at, z);
        }
        r1 += next;
    }
    Some((best.0, p_of(best.1.max(0.0))))
}

/// Two-sided rank-sum p-value between two samples.
pub fn rank_sum_p(left: &[f64], right: &[f64]) -> f64 {
    if left.is_empty() || right.is_empty() {
        return 1.0;
    }
    let all: Vec<f64> = left.iter().chain(right).copied().collect();
    let (r, ties) = ranks(&all);
    let r1: f64 = r[..left.len()].iter().sum();
    let (n1, n2) = (left.len() as f64, right.len() as f64);
    if ties == 0.0 {
        let u = r1 - n1 * (n1 + 1.0) / 2.0;
        if let Some(p) = exact_p(u, left.len(), right.len()) {
            return p;
        }
    }
    p_of(z_of(r1, n1, n2, ties))
}

/// The smaller sample size up to which [`exact_p`] counts arrangements.
const EXACT_MAX_SMALL: usize = 12;
/// …and the most pairs from the nearer extreme it counts up to.
const EXACT_MAX_PAIRS: usize = 400;

/// The exact two-sided rank-sum p-value when one sample is small and `u` is near an extreme
/// (no ties); `None` otherwise, for the normal approximation.
///
/// A new regime starts small, and there the normal approximation is far too cautious: four new
/// points above sixty old ones have an exact p of 3e-6, the approximation says 5e-4. The count is
/// classical: the arrangements of `m` points among `n + m` with `k` pairs out of order number the
/// partitions of `k` into at most `m` parts of size at most `n`.
fn exact_p(u: f64, n1: usize, n2: usize) -> Option<f64> {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let total = (n1 * n2) as f64;
    let k = u.min(total - u);
    if m > EXACT_MAX_SMALL || k > EXACT_MAX_PAIRS as f64 || k > n as f64 || k.fract() != 0.0 {
        return None;
    }
    let k = k as usize;
    // Partitions of 0..=k into parts of size at most m (the conjugate of "at most m parts");
    // parts of size at most n is implied by k <= n.
    let mut ways = vec![0.0f64; k + 1];
    ways[0] = 1.0;
    for part in 1..=m {
        for j in part..=k {
            ways[j] += ways[j - part];
        }
    }
    let favourable: f64 = ways.iter().sum();
    // C(n + m, m) in logs: n + m can be in the thousands.
    let ln_choose = libm::lgamma((n + m + 1) as f64)
        - libm::lgamma((m + 1) as f64)
        - libm::lgamma((n + 1) as f64);
    Some((2.0 * (favourable.ln() - ln_choose).exp()).min(1.0))
}

fn magnitude(left: &[f64], right: &[f64]) -> f64 {
    let (b, a) = (median(left), median(right));
    if b == 0.0 {
        if a == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (a / b - 1.0).abs()
    }
}

/// Median of a sample (mean of the middle two for even lengths); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties() {
        let (r, ties) = ranks(&[3.0, 1.0, 3.0, 2.0]);
        assert_eq!(r, vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ties, 6.0);
    }

    #[test]
    fn large_samples_use_the_normal_approximation() {
        // Fifteen and fifteen, separated (beyond the exact counter): U = 0,
        // z = (112.5 - 0.5) / sqrt(15 * 15 * 31 / 12) = 4.6448, two-sided p = 3.40e-6.
        let a: Vec<f64> = (0..15).map(f64::from).collect();
        let b: Vec<f64> = (15..30).map(f64::from).collect();
        let p = rank_sum_p(&a, &b);
        assert!((p - 3.40e-6).abs() < 0.02e-6, "{p}");
    }

    #[test]
    fn small_samples_get_exact_p_values() {
        // Four points above sixty: one arrangement of C(64, 4), both tails.
        let old: Vec<f64> = (0..60).map(f64::from).collect();
        let new = [100.0, 101.0, 102.0, 103.0];
        let want = 2.0 / 635_376.0;
        assert!((rank_sum_p(&old, &new) / want - 1.0).abs() < 1e-9);
        // One new point below one old one: 1 + 1 arrangements (k = 0, 1).
        let new = [58.5, 101.0, 102.0, 103.0];
        assert!((rank_sum_p(&old, &new) / (2.0 * want) - 1.0).abs() < 1e-9);
        // k = 2 adds the two partitions of 2 (2, 1+1).
        let new = [57.5, 101.0, 102.0, 103.0];
        assert!((rank_sum_p(&old, &new) / (4.0 * want) - 1.0).abs() < 1e-9);
        // Ten and ten, separated: 2 / C(20, 10).
        let a: Vec<f64> = (0..10).map(f64::from).collect();
        let b: Vec<f64> = (10..20).map(f64::from).collect();
        assert!((rank_sum_p(&a, &b) / (2.0 / 184_756.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_flat_series_has_no_change() {
        assert!(detect(&[5.0; 200], &Options::default()).is_empty());
    }

    #[test]
    fn a_clean_step_is_found_at_its_first_point() {
        let mut v: Vec<f64> = (0..60).map(|i| 100.0 + f64::from(i % 5)).collect();
        v.extend((0..40).map(|i| 130.0 + f64::from(i % 5)));
        let cps = detect(&v, &Options::default());
        assert_eq!(cps.len(), 1, "{cps:?}");
        assert_eq!(cps[0].index, 60);
        assert!(cps[0].is_regression(true));
        // Medians 102 and 132.
        assert!((cps[0].change_percent.unwrap() - 3000.0 / 102.0).abs() < 1e-9);
        assert!(cps[0].p_value < 1e-6);
    }
}
