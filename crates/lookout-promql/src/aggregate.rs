//! Aggregation operators. sum/avg/min/max/count/group/stddev/stdvar fold each input series
//! into per-group accumulators as it streams past (so `sum(rate(x[5m]))` over 10,000 series
//! never holds 10,000 series); topk/bottomk/quantile/count_values need every series of a step.
//! Numeric rules follow Prometheus 2: incremental mean for avg, Welford for stddev/stdvar, NaN
//! replaced by any number in min/max.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;
use crate::eval::{present, Ctx, ABSENT, RS};
use crate::ir::{Agg, AggOp, Func, Grouping, Node, RangeFn};
use crate::value::Labels;
use crate::window::{count_value_label, quantile};

/// A group's running state at every step.
struct Acc {
    labels: Labels,
    value: Vec<f64>,
    mean: Vec<f64>,
    count: Vec<f64>,
}

fn group_labels(labels: &Labels, grouping: &Grouping) -> Labels {
    match grouping {
        Grouping::All => Vec::new(),
        Grouping::By(names) => labels
            .iter()
            .filter(|(n, v)| !v.is_empty() && names.iter().any(|x| x == n))
            .cloned()
            .collect(),
        Grouping::Without(names) => labels
            .iter()
            .filter(|(n, v)| !v.is_empty() && n != "__name__" && !names.iter().any(|x| x == n))
            .cloned()
            .collect(),
    }
}

/// Below this many series a parallel aggregation costs more in threads than it saves.
const PARALLEL_MIN_SERIES: usize = 2_000;

/// Extra evaluation threads running now, over all queries of the process.
static EXTRA_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Some extra threads taken from a shared count, given back when dropped.
struct Permit<'c> {
    pool: &'c AtomicUsize,
    n: usize,
}

impl<'c> Permit<'c> {
    fn none(pool: &'c AtomicUsize) -> Self {
        Permit { pool, n: 0 }
    }

    /// Up to `want` threads, as many as keep the pool at or under `cap` (maybe none).
    fn take(pool: &'c AtomicUsize, want: usize, cap: usize) -> Self {
        let mut cur = pool.load(Ordering::Relaxed);
        loop {
            let n = want.min(cap.saturating_sub(cur));
            if n == 0 {
                return Permit::none(pool);
            }
            match pool.compare_exchange(cur, cur + n, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Permit { pool, n },
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.pool.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// The groups of a streaming aggregation, in order of first appearance.
struct Groups {
    n: usize,
    groups: Vec<Acc>,
    index: HashMap<Labels, usize>,
}

impl Groups {
    fn new(n: usize) -> Self {
        Groups {
            n,
            groups: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn slot(&mut self, ctx: &Ctx<'_>, key: Labels) -> Result<usize, Error> {
        if let Some(&g) = self.index.get(&key) {
            return Ok(g);
        }
        // Three vectors of n: value, mean and count.
        ctx.charge(self.n.saturating_mul(3))?;
        self.index.insert(key.clone(), self.groups.len());
        self.groups.push(Acc {
            labels: key,
            value: vec![ABSENT; self.n],
            mean: vec![0.0; self.n],
            count: vec![0.0; self.n],
        });
        Ok(self.groups.len() - 1)
    }

    /// Folds one input series into its group, step by step.
    fn fold(
        &mut self,
        ctx: &Ctx<'_>,
        op: AggOp,
        grouping: &Grouping,
        labels: &Labels,
        vals: &[f64],
    ) -> Result<(), Error> {
        let g = self.slot(ctx, group_labels(labels, grouping))?;
        let acc = &mut self.groups[g];
        if op == AggOp::Sum {
            // The dashboards' common case, as a tight loop (same arithmetic as `add`).
            for ((v, c), &x) in acc.value.iter_mut().zip(acc.count.iter_mut()).zip(vals) {
                if present(x) {
                    *v = if *c == 0.0 { x } else { *v + x };
                    *c += 1.0;
                }
            }
            return Ok(());
        }
        for (k, &x) in vals.iter().enumerate() {
            if present(x) {
                add(
                    op,
                    &mut acc.value[k],
                    &mut acc.mean[k],
                    &mut acc.count[k],
                    x,
                );
            }
        }
        Ok(())
    }

    /// Adds another thread's groups (sum, count, min, max, group only).
    fn merge(&mut self, op: AggOp, other: Groups) {
        for acc in other.groups {
            let g = match self.index.get(&acc.labels) {
                Some(&g) => g,
                None => {
                    self.index.insert(acc.labels.clone(), self.groups.len());
                    self.groups.push(acc);
                    continue;
                }
            };
            let into = &mut self.groups[g];
            for k in 0..self.n {
                if acc.count[k] == 0.0 {
                    continue;
                }
                if into.count[k] == 0.0 {
                    into.value[k] = acc.value[k];
                    into.count[k] = acc.count[k];
                    continue;
                }
                into.count[k] += acc.count[k];
                let (v, x) = (&mut into.value[k], acc.value[k]);
                match op {
                    AggOp::Sum => *v += x,
                    AggOp::Count => *v = into.count[k],
                    AggOp::Max => {
                        if *v < x || v.is_nan() {
                            *v = x
                        }
                    }
                    AggOp::Min => {
                        if *v > x || v.is_nan() {
                            *v = x
                        }
                    }
                    _ => *v = 1.0,
                }
            }
        }
    }

    fn finish(self, op: AggOp) -> Vec<RS> {
        self.groups
            .into_iter()
            .map(|mut acc| {
                if matches!(op, AggOp::Stddev | AggOp::Stdvar) {
                    for (v, c) in acc.value.iter_mut().zip(&acc.count) {
                        if *c > 0.0 {
                            *v /= c;
                            if op == AggOp::Stddev {
                                *v = v.sqrt();
                            }
                        }
                    }
                }
                RS {
                    labels: acc.labels,
                    vals: acc.value,
                }
            })
            .collect()
    }
}

/// One sample into a group's state at one step, with Prometheus's rules per operator.
#[inline]
fn add(op: AggOp, v: &mut f64, mean: &mut f64, count: &mut f64, x: f64) {
    let first = *count == 0.0;
    *count += 1.0;
    let c = *count;
    match op {
        AggOp::Sum => *v = if first { x } else { *v + x },
        AggOp::Avg => {
            if first {
                *mean = x;
            } else if mean.is_infinite()
                && ((x.is_infinite() && (*mean > 0.0) == (x > 0.0))
                    || (!x.is_infinite() && !x.is_nan()))
            {
                // An infinite mean stays as it is (Inf - Inf would be NaN).
            } else {
                *mean += x / c - *mean / c;
            }
            *v = *mean;
        }
        AggOp::Max => {
            if first || *v < x || v.is_nan() {
                *v = x;
            }
        }
        AggOp::Min => {
            if first || *v > x || v.is_nan() {
                *v = x;
            }
        }
        AggOp::Count => *v = c,
        AggOp::Group => *v = 1.0,
        AggOp::Stddev | AggOp::Stdvar => {
            if first {
                *mean = x;
                *v = 0.0;
            } else {
                let delta = x - *mean;
                *mean += delta / c;
                *v += delta * (x - *mean);
            }
        }
        // Whole-vector aggregations never come here.
        AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::CountValues => {}
    }
}

impl Ctx<'_> {
    pub(crate) fn aggregate(&self, agg: &Agg) -> Result<Vec<RS>, Error> {
        match agg.op {
            AggOp::Topk | AggOp::Bottomk | AggOp::Quantile | AggOp::CountValues => {
                self.aggregate_whole(agg)
            }
            _ => self.aggregate_streaming(agg.op, &agg.grouping, &agg.expr),
        }
    }

    fn aggregate_streaming(
        &self,
        op: AggOp,
        grouping: &Grouping,
        expr: &Node,
    ) -> Result<Vec<RS>, Error> {
        let n = self.n();
        // The hot path of dashboards, `sum by (x) (rate(m[5m]))`: the range function over many
        // series is split across threads, each folding into its own groups, merged in order.
        // Only for operators whose merge is exact or a plain re-association of additions.
        // Over a selector only: a range function of a subquery streams through `each_series`.
        if let (Node::Call(Func::Range(rf), args), true) = (
            expr,
            matches!(
                op,
                AggOp::Sum | AggOp::Count | AggOp::Min | AggOp::Max | AggOp::Group
            ) && range_fn_of_selector(expr),
        ) {
            let (sel, param) = self.range_fn_args(*rf, args)?;
            let series = self.series(sel)?;
            // Extra threads come from one pool shared by every query in the process, so
            // concurrent queries cannot start cores x queries threads between them.
            let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
            let extra = if series.len() >= PARALLEL_MIN_SERIES {
                Permit::take(&EXTRA_THREADS, 3, cores.saturating_sub(1))
            } else {
                Permit::none(&EXTRA_THREADS)
            };
            let threads = 1 + extra.n;
            if threads > 1 {
                let chunk = series.len().div_ceil(threads);
                let parts: Vec<Result<Groups, Error>> = std::thread::scope(|scope| {
                    let handles: Vec<_> = series
                        .chunks(chunk)
                        .map(|part| {
                            let param = param.as_deref();
                            scope.spawn(move || {
                                let mut g = Groups::new(n);
                                self.range_fn_over(*rf, sel, param, part, &mut |labels, vals| {
                                    g.fold(self, op, grouping, labels, vals)
                                })?;
                                Ok(g)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(Error::execution("an evaluation thread failed"))
                            })
                        })
                        .collect()
                });
                let mut total = Groups::new(n);
                for part in parts {
                    total.merge(op, part?);
                }
                return Ok(total.finish(op));
            }
            let mut g = Groups::new(n);
            self.range_fn_over(*rf, sel, param.as_deref(), &series, &mut |labels, vals| {
                g.fold(self, op, grouping, labels, vals)
            })?;
            return Ok(g.finish(op));
        }
        let mut g = Groups::new(n);
        self.each_series(expr, &mut |labels, vals| {
            g.fold(self, op, grouping, labels, vals)
        })?;
        Ok(g.finish(op))
    }

    fn aggregate_whole(&self, agg: &Agg) -> Result<Vec<RS>, Error> {
        let n = self.n();
        let (param, label) = match (&agg.param, agg.op) {
            (Some(p), AggOp::CountValues) => match self.eval(p)? {
                crate::eval::V::Str(s) => (Vec::new(), s),
                _ => return Err(Error::bad_data("count_values needs a string parameter")),
            },
            (Some(p), _) => (self.eval_scalar(p)?, String::new()),
            (None, _) => return Err(Error::bad_data("aggregation parameter missing")),
        };
        if agg.op == AggOp::CountValues && !crate::relabel::valid_label_name(&label) {
            return Err(Error::bad_data(format!("invalid label name \"{label}\"")));
        }
        let input = self.eval_vector(&agg.expr)?;
        let mut group_of = Vec::with_capacity(input.len());
        let mut keys: Vec<Labels> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for s in &input {
            let key = group_labels(&s.labels, &agg.grouping);
            let g = *index.entry(key.clone()).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            });
            group_of.push(g);
        }
        let mut out: Vec<RS> = Vec::new();
        let mut out_index: HashMap<Labels, usize> = HashMap::new();
        let mut put = |labels: Labels, k: usize, v: f64| -> Result<(), Error> {
            let i = match out_index.get(&labels) {
                Some(&i) => i,
                None => {
                    self.charge(n)?;
                    out_index.insert(labels.clone(), out.len());
                    out.push(RS {
                        labels,
                        vals: vec![ABSENT; n],
                    });
                    out.len() - 1
                }
            };
            out[i].vals[k] = v;
            Ok(())
        };
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        // `k` indexes the parameter, every input series and the output at once.
        #[allow(clippy::needless_range_loop)]
        for k in 0..n {
            self.check_time()?;
            for m in members.iter_mut() {
                m.clear();
            }
            for (i, s) in input.iter().enumerate() {
                if present(s.vals[k]) {
                    members[group_of[i]].push(i);
                }
            }
            for (g, m) in members.iter().enumerate() {
                if m.is_empty() {
                    continue;
                }
                match agg.op {
                    AggOp::Topk | AggOp::Bottomk => {
                        let top = agg.op == AggOp::Topk;
                        let kk = param[k];
                        if kk.is_nan() || kk < 1.0 {
                            continue;
                        }
                        let kk = kk.min(m.len() as f64) as usize;
                        let mut chosen: Vec<usize> = m.clone();
                        // Prometheus's heap order: NaN loses to any number, in both directions.
                        chosen.sort_by(|&a, &b| {
                            let (x, y) = (input[a].vals[k], input[b].vals[k]);
                            match (x.is_nan(), y.is_nan()) {
                                (true, true) => std::cmp::Ordering::Equal,
                                (true, false) => std::cmp::Ordering::Greater,
                                (false, true) => std::cmp::Ordering::Less,
                                _ if top => y.total_cmp(&x),
                                _ => x.total_cmp(&y),
                            }
                        });
                        for &i in &chosen[..kk] {
                            put(input[i].labels.clone(), k, input[i].vals[k])?;
                        }
                    }
                    AggOp::Quantile => {
                        let mut vals: Vec<f64> = m.iter().map(|&i| input[i].vals[k]).collect();
                        put(keys[g].clone(), k, quantile(param[k], &mut vals))?;
                    }
                    AggOp::CountValues => {
                        // Keyed by the value's bits (every NaN as one, as they share the
                        // label "NaN"), in order of first appearance; labels built once each.
                        let mut counts: Vec<(f64, f64)> = Vec::new();
                        let mut at: HashMap<u64, usize> = HashMap::new();
                        for (j, &i) in m.iter().enumerate() {
                            if j % 1024 == 1023 {
                                self.check_time()?;
                            }
                            let v = input[i].vals[k];
                            let bits = if v.is_nan() {
                                f64::NAN.to_bits()
                            } else {
                                v.to_bits()
                            };
                            match at.get(&bits) {
                                Some(&c) => counts[c].1 += 1.0,
                                None => {
                                    at.insert(bits, counts.len());
                                    counts.push((v, 1.0));
                                }
                            }
                        }
                        for (v, c) in counts {
                            let value = count_value_label(v);
                            let mut labels: Labels = keys[g]
                                .iter()
                                .filter(|(n, _)| *n != label)
                                .cloned()
                                .collect();
                            labels.push((label.clone(), value));
                            labels.sort();
                            put(labels, k, c)?;
                        }
                    }
                    _ => unreachable!("streaming aggregations are handled elsewhere"),
                }
            }
        }
        Ok(out)
    }
}

/// Whether `expr` is a range function whose range argument is a selector (not a subquery).
fn range_fn_of_selector(expr: &Node) -> bool {
    let Node::Call(Func::Range(rf), args) = expr else {
        return false;
    };
    matches!(
        args.get(usize::from(*rf == RangeFn::QuantileOverTime)),
        Some(Node::Sel(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_threads_are_shared_by_all_queries_up_to_the_cap() {
        let pool = AtomicUsize::new(0);
        let a = Permit::take(&pool, 3, 4);
        let b = Permit::take(&pool, 3, 4);
        let c = Permit::take(&pool, 3, 4);
        assert_eq!((a.n, b.n, c.n), (3, 1, 0));
        drop(a);
        assert_eq!(Permit::take(&pool, 3, 4).n, 3);
        drop((b, c));
        assert_eq!(pool.load(Ordering::Relaxed), 0);
    }
}
