//! PromQL functions: the range-vector functions (rate and friends, `*_over_time`) applied over
//! series and steps, the per-value ones (abs, round, clamp, ...), and the ones that reshape
//! vectors (absent, label_replace, label_join, histogram_quantile, sort). What a range function
//! computes over one window is in [`crate::window`]. Numeric details follow Prometheus 2's
//! `promql/functions.go`, including Go's `math.Min`/`Max` NaN rules.

use std::collections::HashMap;

use crate::error::Error;
use crate::eval::{drop_name, prepared, present, Ctx, Fetched, Sink, ABSENT, RS, V};
use crate::ir::{Func, Node, RangeFn, Sel};
use crate::matcher::{anchored, label_value, MatchOp};
use crate::relabel::{
    replacement_pieces, set_label, too_long, valid_label_name, MAX_LABEL_VALUE_BYTES,
};
use crate::sliding::{Cursor, SlidingRate};
use crate::value::{is_stale_nan, Labels, Sample};
use crate::window::{bucket_quantile, range_value};

impl Ctx<'_> {
    pub(crate) fn call(&self, func: Func, args: &[Node]) -> Result<V, Error> {
        let n = self.n();
        Ok(match func {
            Func::Range(rf) => {
                let mut out = Vec::new();
                self.range_fn_each(rf, args, &mut |labels, vals| {
                    self.charge(vals.len())?;
                    out.push(RS {
                        labels: labels.clone(),
                        vals: vals.to_vec(),
                    });
                    Ok(())
                })?;
                // Dropping the name can make two series one: fine when they never overlap,
                // an error (as in Prometheus 3) when both have a value at the same step.
                V::Vector(merge_same_labels(out)?)
            }
            Func::AbsentOverTime => {
                let Some(Node::Sel(sel)) = args.first() else {
                    return Err(Error::bad_data(
                        "absent_over_time() needs a range vector selector",
                    ));
                };
                let range = sel.range_ms.unwrap_or(0);
                let series: Vec<_> = self
                    .series(sel)?
                    .into_iter()
                    .map(|(_, s)| prepared(s, false))
                    .collect();
                let mut vals = vec![1.0; n];
                for (k, &t) in self.steps.iter().enumerate() {
                    // Steps times series: checked per step.
                    self.check_time()?;
                    let te = self.eff(sel, t);
                    let seen = series.iter().any(|s| {
                        crate::eval::window(s, te, range)
                            .iter()
                            .any(|p| !is_stale_nan(p.1))
                    });
                    if seen {
                        vals[k] = ABSENT;
                    }
                }
                absent_result(Some(sel), vals)
            }
            Func::Absent => {
                let v = self.eval_vector(&args[0])?;
                let mut vals = Vec::with_capacity(n);
                for k in 0..n {
                    self.check_time()?;
                    vals.push(if v.iter().any(|s| present(s.vals[k])) {
                        ABSENT
                    } else {
                        1.0
                    });
                }
                let sel = match &args[0] {
                    Node::Sel(s) => Some(s),
                    _ => None,
                };
                absent_result(sel, vals)
            }
            Func::Math(f) => V::Vector(self.map_vector(&args[0], |v, _| Some(f(v)))?),
            Func::Round => {
                let to = match args.get(1) {
                    Some(a) => self.eval_scalar(a)?,
                    None => vec![1.0; n],
                };
                V::Vector(self.map_vector(&args[0], |v, k| {
                    let inv = 1.0 / to[k];
                    Some((v * inv + 0.5).floor() / inv)
                })?)
            }
            Func::Clamp => {
                let lo = self.eval_scalar(&args[1])?;
                let hi = self.eval_scalar(&args[2])?;
                V::Vector(self.map_vector(&args[0], |v, k| {
                    (hi[k] >= lo[k] || lo[k].is_nan() || hi[k].is_nan())
                        .then(|| go_max(lo[k], go_min(hi[k], v)))
                })?)
            }
            Func::ClampMin => {
                let lo = self.eval_scalar(&args[1])?;
                V::Vector(self.map_vector(&args[0], |v, k| Some(go_max(lo[k], v)))?)
            }
            Func::ClampMax => {
                let hi = self.eval_scalar(&args[1])?;
                V::Vector(self.map_vector(&args[0], |v, k| Some(go_min(hi[k], v)))?)
            }
            Func::Time => V::Scalar(self.steps.iter().map(|t| *t as f64 / 1000.0).collect()),
            Func::Pi => V::Scalar(vec![std::f64::consts::PI; n]),
            Func::Vector => V::Vector(vec![RS {
                labels: Vec::new(),
                vals: self.eval_scalar(&args[0])?,
            }]),
            Func::Scalar => {
                let v = self.eval_vector(&args[0])?;
                V::Scalar(
                    (0..n)
                        .map(|k| {
                            let mut it = v.iter().filter(|s| present(s.vals[k]));
                            match (it.next(), it.next()) {
                                (Some(s), None) => s.vals[k],
                                _ => f64::NAN,
                            }
                        })
                        .collect(),
                )
            }
            Func::LabelReplace => {
                let dst = self.string_arg(args, 1)?;
                let repl = self.string_arg(args, 2)?;
                let src = self.string_arg(args, 3)?;
                let re_text = self.string_arg(args, 4)?;
                let re = anchored(&re_text).map_err(|e| {
                    Error::bad_data(format!(
                        "invalid regular expression in label_replace(): {}",
                        e.message
                    ))
                })?;
                if !valid_label_name(&dst) {
                    return Err(Error::bad_data(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let v = self.eval_vector(&args[0])?;
                let pieces = replacement_pieces(&repl);
                V::Vector(self.merge_relabelled(v, |labels| {
                    let Some(caps) = re.captures(label_value(labels, &src)) else {
                        return Ok(labels.clone());
                    };
                    // Piece by piece so `$1$1$1...` is refused before it is built whole.
                    let mut value = String::new();
                    for piece in &pieces {
                        caps.expand(piece, &mut value);
                        if value.len() > MAX_LABEL_VALUE_BYTES {
                            return Err(too_long("label_replace"));
                        }
                    }
                    Ok(set_label(labels, &dst, &value))
                })?)
            }
            Func::LabelJoin => {
                let dst = self.string_arg(args, 1)?;
                let sep = self.string_arg(args, 2)?;
                let mut srcs = Vec::new();
                for i in 3..args.len() {
                    srcs.push(self.string_arg(args, i)?);
                }
                if !valid_label_name(&dst) {
                    return Err(Error::bad_data(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                let v = self.eval_vector(&args[0])?;
                V::Vector(self.merge_relabelled(v, |labels| {
                    let joined: Vec<&str> = srcs.iter().map(|s| label_value(labels, s)).collect();
                    // Measured before joining: 5,000 sources and a 30 KiB separator would
                    // otherwise build 150 MB per series.
                    let len = joined
                        .iter()
                        .map(|v| v.len())
                        .sum::<usize>()
                        .saturating_add(sep.len().saturating_mul(joined.len().saturating_sub(1)));
                    if len > MAX_LABEL_VALUE_BYTES {
                        return Err(too_long("label_join"));
                    }
                    Ok(set_label(labels, &dst, &joined.join(&sep)))
                })?)
            }
            // Order only matters for an instant query's result, where `sort_if_asked` applies it.
            Func::Sort | Func::SortDesc => V::Vector(self.eval_vector(&args[0])?),
            Func::HistogramQuantile => V::Vector(self.histogram_quantile(args)?),
            Func::Date(part) => self.date_fn(part, args)?,
            Func::Timestamp => self.timestamp_fn(args)?,
        })
    }

    fn string_arg(&self, args: &[Node], i: usize) -> Result<String, Error> {
        match args.get(i).map(|a| self.eval(a)).transpose()? {
            Some(V::Str(s)) => Ok(s),
            _ => Err(Error::bad_data("expected a string argument")),
        }
    }

    /// Applies `f(value, step)` to every present value, dropping the metric name; `None` removes
    /// the element at that step.
    fn map_vector(
        &self,
        arg: &Node,
        f: impl Fn(f64, usize) -> Option<f64>,
    ) -> Result<Vec<RS>, Error> {
        let mut v = self.eval_vector(arg)?;
        for s in &mut v {
            s.labels = drop_name(&s.labels);
            for (k, x) in s.vals.iter_mut().enumerate() {
                if present(*x) {
                    *x = f(*x, k).unwrap_or(ABSENT);
                }
            }
        }
        merge_same_labels(v)
    }

    /// Evaluates a range-vector function series by series, calling `f` with each series that
    /// has a value at one step at least (the buffer is reused between series).
    pub(crate) fn range_fn_each(
        &self,
        rf: RangeFn,
        args: &[Node],
        f: &mut Sink<'_>,
    ) -> Result<(), Error> {
        let pos = usize::from(rf == RangeFn::QuantileOverTime);
        if let Some(Node::Sub(sub)) = args.get(pos) {
            let param = self.range_param(rf, args)?;
            let owned = self.subquery_series(sub)?;
            let series: Vec<Fetched<'_>> = owned
                .iter()
                .map(|s| (&s.labels, s.points.as_slice()))
                .collect();
            return self.range_fn_over(rf, &sub.as_sel(), param.as_deref(), &series, f);
        }
        let (sel, param) = self.range_fn_args(rf, args)?;
        let series = self.series(sel)?;
        self.range_fn_over(rf, sel, param.as_deref(), &series, f)
    }

    fn range_param(&self, rf: RangeFn, args: &[Node]) -> Result<Option<Vec<f64>>, Error> {
        Ok(match rf {
            RangeFn::QuantileOverTime => Some(self.eval_scalar(&args[0])?),
            RangeFn::PredictLinear => Some(self.eval_scalar(&args[1])?),
            _ => None,
        })
    }

    /// The range selector of a range function and its scalar parameter, if it has one.
    pub(crate) fn range_fn_args<'n>(
        &self,
        rf: RangeFn,
        args: &'n [Node],
    ) -> Result<(&'n Sel, Option<Vec<f64>>), Error> {
        let pos = usize::from(rf == RangeFn::QuantileOverTime);
        let Some(Node::Sel(sel)) = args.get(pos) else {
            return Err(Error::bad_data("expected a range vector selector"));
        };
        Ok((sel, self.range_param(rf, args)?))
    }

    /// A range function over some of a selector's series (all of them, or one thread's share).
    pub(crate) fn range_fn_over(
        &self,
        rf: RangeFn,
        sel: &Sel,
        param: Option<&[f64]>,
        series: &[Fetched<'_>],
        f: &mut Sink<'_>,
    ) -> Result<(), Error> {
        let range = sel.range_ms.unwrap_or(0);
        // One buffer per call (per thread of a parallel aggregation), reused by its series.
        self.charge(self.n())?;
        let mut buf = vec![ABSENT; self.n()];
        // Every step's window, the same for every series: computed once, not per series.
        let bounds: Vec<(i64, i64)> = self
            .steps
            .iter()
            .map(|&t| {
                let te = self.eff(sel, t);
                (te.saturating_sub(range), te)
            })
            .collect();
        let forward = bounds
            .windows(2)
            .all(|p| p[0].0 <= p[1].0 && p[0].1 <= p[1].1);
        // rate, increase and delta carry work from step to step (see `sliding`).
        let mut sliding = SlidingRate::new(rf, range);
        for (labels, samples) in series {
            self.check_time()?;
            let any = if let Some(rate) = sliding.as_mut() {
                rate.series(samples, &bounds, forward, &mut buf)
            } else {
                let samples = prepared(samples, true);
                let mut cursor = Cursor::new(forward);
                let mut any = false;
                for (k, (&(from, te), &t)) in bounds.iter().zip(&self.steps).enumerate() {
                    let w = cursor.advance(&samples, from, te);
                    let p = param.map_or(0.0, |p| p[k]);
                    // predict_linear extrapolates from the evaluation time, not from the
                    // window's end that `@` and offset move.
                    let base = t;
                    buf[k] = match range_value(rf, &samples[w], te, range, base, p) {
                        Some(v) => {
                            any = true;
                            v
                        }
                        None => ABSENT,
                    };
                }
                any
            };
            if any {
                let out = if rf == RangeFn::LastOverTime {
                    (*labels).clone()
                } else {
                    drop_name(labels)
                };
                f(&out, &buf)?;
            }
        }
        Ok(())
    }

    fn histogram_quantile(&self, args: &[Node]) -> Result<Vec<RS>, Error> {
        let q = self.eval_scalar(&args[0])?;
        let v = self.eval_vector(&args[1])?;
        let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for (i, s) in v.iter().enumerate() {
            let Ok(le) = label_value(&s.labels, "le").parse::<f64>() else {
                continue; // no or a malformed `le`: not a bucket, ignored as Prometheus does
            };
            // Buckets group by all labels but `le`, the name included (as Prometheus's
            // signature): `{__name__=~"a_bucket|b_bucket"}` are two histograms, not one.
            let key: Labels = s
                .labels
                .iter()
                .filter(|(n, _)| n != "le")
                .cloned()
                .collect();
            let g = *index.entry(key.clone()).or_insert_with(|| {
                groups.push((key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push((le, i));
        }
        let mut out = Vec::new();
        for (labels, buckets) in groups {
            let mut vals = vec![ABSENT; self.n()];
            let mut any = false;
            for (k, val) in vals.iter_mut().enumerate() {
                let mut b: Vec<(f64, f64)> = buckets
                    .iter()
                    .filter(|(_, i)| present(v[*i].vals[k]))
                    .map(|(le, i)| (*le, v[*i].vals[k]))
                    .collect();
                if b.is_empty() {
                    continue;
                }
                *val = bucket_quantile(q[k], &mut b);
                any = true;
            }
            if any {
                self.charge(self.n())?;
                out.push(RS {
                    labels: drop_name(&labels),
                    vals,
                });
            }
        }
        // Histograms that differ only by name meet once it is dropped.
        merge_same_labels(out)
    }
}

/// absent()'s one series: labels from the selector's matchers as Prometheus's
/// `createLabelsForAbsentFunction` makes them, in the matchers' order: an `=` matcher sets its
/// label if it is not set yet; any other matcher, or a second `=`, removes it
/// (`{job="a", job!="b"}` reports no job). Empty values are no label.
fn absent_result(sel: Option<&Sel>, vals: Vec<f64>) -> V {
    let mut labels: Labels = Vec::new();
    if let Some(sel) = sel {
        for m in &sel.matchers {
            if m.name == "__name__" {
                continue;
            }
            let set = labels.iter().any(|(n, _)| *n == m.name);
            if m.op == MatchOp::Eq && !set {
                labels.push((m.name.clone(), m.value.clone()));
            } else {
                labels.retain(|(n, _)| *n != m.name);
            }
        }
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    V::Vector(vec![RS { labels, vals }])
}

/// Joins series that came to have the same labels (after dropping the name, relabelling); two
/// of them with a value at the same step is Prometheus's "same labelset" error.
pub(crate) fn merge_same_labels(v: Vec<RS>) -> Result<Vec<RS>, Error> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(v.len());
    let mut out: Vec<RS> = Vec::with_capacity(v.len());
    for s in v {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                for (k, x) in s.vals.iter().enumerate() {
                    if present(*x) {
                        if present(out[i].vals[k]) {
                            return Err(Error::execution(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        out[i].vals[k] = *x;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Orders an instant query's result when its outermost function is sort() or sort_desc():
/// NaN last in both, as Prometheus does.
pub(crate) fn sort_if_asked(root: &Node, out: &mut [Sample]) {
    let desc = match root {
        Node::Call(Func::Sort, _) => false,
        Node::Call(Func::SortDesc, _) => true,
        _ => return,
    };
    out.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ if desc => b.v.total_cmp(&a.v),
        _ => a.v.total_cmp(&b.v),
    });
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over numbers, +0 over -0.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        f64::INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            y
        } else {
            x
        }
    } else if x > y {
        x
    } else {
        y
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over numbers, -0 over +0.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == 0.0 && y == 0.0 {
        if x.is_sign_negative() {
            x
        } else {
            y
        }
    } else if x < y {
        x
    } else {
        y
    }
}
