//! The evaluator's core: every node is evaluated for all steps at once, series by series
//! (as Prometheus's range evaluation does), so labels are handled once per series rather than
//! once per step. An instant query is a range query of one step.
//!
//! Inside, a series' values are a dense `Vec<f64>` with one slot per step; a step where the
//! series has no sample holds [`ABSENT`], a signalling-NaN bit pattern that no arithmetic
//! produces (any operation on it yields a quiet NaN) and that input values are mapped away from.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::Error;
use crate::ir::{At, Node, Sel, Sub};
use crate::value::{is_stale_nan, Labels, RangeSeries, Sample, Series, Value};
use crate::Query;

const ABSENT_BITS: u64 = 0x7ff4_0000_dead_beef;
/// The value of a step where a series has no sample.
pub(crate) const ABSENT: f64 = f64::from_bits(ABSENT_BITS);

/// Whether a step holds a value.
#[inline]
pub(crate) fn present(v: f64) -> bool {
    v.to_bits() != ABSENT_BITS
}

/// The quiet bit of a NaN: a NaN without it is a signalling NaN, as [`ABSENT`] is.
const QUIET_BIT: u64 = 0x0008_0000_0000_0000;

/// Whether an input value must change before evaluation sees it: a signalling NaN other than
/// the staleness marker (which selectors recognise and drop).
#[inline]
fn needs_input(v: f64) -> bool {
    v.is_nan() && v.to_bits() & QUIET_BIT == 0 && !is_stale_nan(v)
}

/// A sample value as evaluation uses it: a signalling NaN is made quiet, so no input is the
/// absence marker, and none becomes it when `-x` or `abs(x)` flips its sign bit (those are bit
/// operations that keep a NaN's other bits). The staleness marker stays as it is.
#[inline]
fn input(v: f64) -> f64 {
    if needs_input(v) {
        f64::from_bits(v.to_bits() | QUIET_BIT)
    } else {
        v
    }
}

/// A fetched series a selector matched: its labels and its samples as fetched.
pub(crate) type Fetched<'a> = (&'a Labels, &'a [(i64, f64)]);

/// A series' samples sorted by time with one sample per timestamp (the caller's order is
/// trusted when it already is), and without staleness markers when `drop_stale` (range
/// selectors never see them). One pass over the samples when nothing needs changing.
pub(crate) fn prepared(samples: &[(i64, f64)], drop_stale: bool) -> Cow<'_, [(i64, f64)]> {
    // Every sample of a query passes here, hence two simple passes (times, then values, NaN,
    // which is rare, the only case looked at closely) rather than one asking everything of
    // every sample: a quarter fewer instructions.
    let clean = samples.first().is_none_or(|p| p.0 > i64::MIN)
        && samples.windows(2).all(|w| w[0].0 < w[1].0)
        && samples
            .iter()
            .all(|p| !p.1.is_nan() || !(needs_input(p.1) || drop_stale && is_stale_nan(p.1)));
    if clean {
        return Cow::Borrowed(samples);
    }
    let mut v: Vec<(i64, f64)> = samples.to_vec();
    v.sort_by_key(|p| p.0);
    v.dedup_by_key(|p| p.0);
    if drop_stale {
        v.retain(|p| !is_stale_nan(p.1));
    }
    for p in &mut v {
        p.1 = input(p.1);
    }
    Cow::Owned(v)
}

/// Where series streamed out of a node go, one at a time: labels and a value per step.
pub(crate) type Sink<'s> = dyn FnMut(&Labels, &[f64]) -> Result<(), Error> + 's;

/// One series of an instant vector evaluated at every step.
#[derive(Debug, Clone)]
pub(crate) struct RS {
    pub labels: Labels,
    pub vals: Vec<f64>,
}

/// An evaluated node.
#[derive(Debug)]
pub(crate) enum V {
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<RS>),
    /// A range selector's raw samples (only as an instant query's result).
    Matrix(Vec<RangeSeries>),
}

pub(crate) fn at_ms(at: At, start_ms: i64, end_ms: i64) -> i64 {
    match at {
        At::Start => start_ms,
        At::End => end_ms,
        At::Ms(t) => t,
    }
}

pub(crate) struct Ctx<'a> {
    pub steps: Vec<i64>,
    pub start: i64,
    pub end: i64,
    pub lookback: i64,
    fetched: &'a [Vec<Series>],
    max_samples: usize,
    used: AtomicUsize,
    deadline: Instant,
    subquery_step: i64,
    /// Steps of all subquery grids so far, shared with the subqueries' own contexts.
    sub_steps: Arc<AtomicUsize>,
    max_sub_steps: usize,
}

pub(crate) fn run(
    query: &Query,
    start: i64,
    end: i64,
    step: i64,
    instant: bool,
    fetched: &[Vec<Series>],
) -> Result<Value, Error> {
    if fetched.len() != query.sels.len() {
        return Err(Error::execution(format!(
            "the query has {} selectors but {} series sets were fetched",
            query.sels.len(),
            fetched.len()
        )));
    }
    let limits = query.limits;
    let mut steps = Vec::new();
    let mut t = start;
    while t <= end {
        steps.push(t);
        match t.checked_add(step) {
            Some(n) => t = n,
            None => break,
        }
    }
    let ctx = Ctx {
        steps,
        start,
        end,
        lookback: limits.lookback_ms,
        fetched,
        max_samples: limits.max_samples,
        used: AtomicUsize::new(0),
        deadline: Instant::now() + limits.timeout,
        subquery_step: limits.subquery_step_ms.max(1),
        sub_steps: Arc::new(AtomicUsize::new(0)),
        max_sub_steps: limits.max_subquery_steps,
    };
    let v = ctx.eval(&query.root)?;
    if instant {
        Ok(match v {
            V::Scalar(vals) => Value::Scalar {
                t_ms: start,
                v: vals[0],
            },
            V::Str(s) => Value::String { t_ms: start, v: s },
            V::Matrix(m) => Value::Matrix(m),
            V::Vector(series) => {
                let mut out: Vec<Sample> = series
                    .into_iter()
                    .filter(|s| present(s.vals[0]))
                    .map(|s| Sample {
                        t_ms: start,
                        v: s.vals[0],
                        labels: s.labels,
                    })
                    .collect();
                crate::functions::sort_if_asked(&query.root, &mut out);
                Value::Vector(out)
            }
        })
    } else {
        let mut out: Vec<RangeSeries> = match v {
            V::Scalar(vals) => vec![RangeSeries {
                labels: Vec::new(),
                points: ctx.steps.iter().copied().zip(vals).collect(),
            }],
            V::Vector(series) => series
                .into_iter()
                .map(|s| RangeSeries {
                    points: ctx
                        .steps
                        .iter()
                        .zip(&s.vals)
                        .filter(|(_, v)| present(**v))
                        .map(|(t, v)| (*t, *v))
                        .collect(),
                    labels: s.labels,
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
            V::Str(_) => {
                return Err(Error::bad_data(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector",
                ))
            }
            V::Matrix(_) => {
                return Err(Error::bad_data(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                ))
            }
        };
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(out))
    }
}

impl<'a> Ctx<'a> {
    pub fn n(&self) -> usize {
        self.steps.len()
    }

    /// Counts samples or points against the query's budget.
    pub fn charge(&self, n: usize) -> Result<(), Error> {
        // Shared by the threads of a parallel aggregation, hence atomic.
        let used = self.used.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if used > self.max_samples {
            return Err(Error::too_many_samples(self.max_samples));
        }
        Ok(())
    }

    /// Gives back what [`charge`](Self::charge) counted for memory freed at once.
    pub fn refund(&self, n: usize) {
        self.used
            .fetch_sub(n.min(self.used.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    /// Fails once the query has run past its timeout; called once per series or group.
    pub fn check_time(&self) -> Result<(), Error> {
        if Instant::now() > self.deadline {
            return Err(Error::execution("query timed out in query execution"));
        }
        Ok(())
    }

    /// The sample time a selector reads at step time `t`: `@` replaces it, offset moves it back.
    pub fn eff(&self, sel: &Sel, t: i64) -> i64 {
        let base = sel.at.map(|a| at_ms(a, self.start, self.end)).unwrap_or(t);
        base.saturating_sub(sel.offset_ms)
    }

    /// The fetched series a selector matches, charged against the budget. Their samples are
    /// as the caller gave them: [`prepared`] sorts them where that is needed, per series, so
    /// that work is shared by a parallel aggregation's threads.
    pub fn series(&self, sel: &Sel) -> Result<Vec<Fetched<'a>>, Error> {
        let mut out = Vec::new();
        for s in &self.fetched[sel.idx] {
            if !sel.matchers.iter().all(|m| m.matches_labels(&s.labels)) {
                continue;
            }
            self.charge(s.samples.len())?;
            out.push((&s.labels, s.samples.as_slice()));
        }
        Ok(out)
    }

    pub fn eval(&self, node: &Node) -> Result<V, Error> {
        self.check_time()?;
        Ok(match node {
            Node::Num(v) => V::Scalar(vec![*v; self.n()]),
            Node::Str(s) => V::Str(s.clone()),
            Node::Sel(sel) => match sel.range_ms {
                None => V::Vector(self.vector_selector(sel)?),
                Some(range) => V::Matrix(self.matrix_selector(sel, range)?),
            },
            Node::Neg(inner) => match self.eval(inner)? {
                V::Scalar(vals) => V::Scalar(vals.into_iter().map(|v| -v).collect()),
                V::Vector(mut series) => {
                    for s in &mut series {
                        s.labels = drop_name(&s.labels);
                        for v in &mut s.vals {
                            if present(*v) {
                                *v = -*v;
                            }
                        }
                    }
                    V::Vector(series)
                }
                _ => {
                    return Err(Error::bad_data(
                        "unary minus needs a scalar or an instant vector",
                    ))
                }
            },
            Node::Call(func, args) => self.call(*func, args)?,
            Node::Agg(agg) => V::Vector(self.aggregate(agg)?),
            Node::Bin(bin) => self.binary(bin)?,
            Node::Sub(sub) => {
                // As a query's result (instant only): the points of the window, like `x[5m]`.
                let sel = sub.as_sel();
                let te = self.eff(&sel, self.steps[0]);
                let series = self.subquery_series(sub)?;
                V::Matrix(
                    series
                        .into_iter()
                        .filter_map(|s| {
                            let points = window(&s.points, te, sub.range_ms).to_vec();
                            (!points.is_empty()).then_some(RangeSeries {
                                labels: s.labels,
                                points,
                            })
                        })
                        .collect(),
                )
            }
        })
    }

    /// Evaluates a subquery's inner expression on its own grid: steps aligned to multiples of
    /// its step, from the first outer time less offset and range to the last less offset (as
    /// Prometheus's `evalSubquery`). Points as (time, value) per series.
    pub fn subquery_series(&self, sub: &Sub) -> Result<Vec<RangeSeries>, Error> {
        let step = sub.step_ms.unwrap_or(self.subquery_step);
        let (first, last) = match sub.at {
            Some(at) => {
                let t = at_ms(at, self.start, self.end);
                (t, t)
            }
            None => (self.steps[0], *self.steps.last().unwrap_or(&self.steps[0])),
        };
        let raw = first
            .saturating_sub(sub.offset_ms)
            .saturating_sub(sub.range_ms);
        let mut inner_start = step * (raw / step);
        if inner_start < raw {
            inner_start = inner_start.saturating_add(step);
        }
        let inner_end = last.saturating_sub(sub.offset_ms);
        // In i128: the span of two extreme times does not fit an i64.
        let count = if inner_end < inner_start {
            0
        } else {
            (i128::from(inner_end) - i128::from(inner_start)) / i128::from(step) + 1
        };
        // The grid is bounded before it is allocated: `x[6h:1ms]` would be 21.6 M steps, each
        // series of the inner expression a value per step.
        let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
        let total = self
            .sub_steps
            .fetch_add(count_usize, Ordering::Relaxed)
            .saturating_add(count_usize);
        if total > self.max_sub_steps {
            return Err(Error::bad_data(format!(
                "subqueries would evaluate {total} steps, the limit is {}: use a larger subquery step or a shorter range",
                self.max_sub_steps
            )));
        }
        self.charge(count_usize)?;
        let inner = Ctx {
            steps: (0..count_usize as i64)
                .map(|k| inner_start.saturating_add(k.saturating_mul(step)))
                .collect(),
            start: self.start,
            end: self.end,
            lookback: self.lookback,
            fetched: self.fetched,
            max_samples: self.max_samples,
            used: AtomicUsize::new(self.used.load(Ordering::Relaxed)),
            deadline: self.deadline,
            subquery_step: self.subquery_step,
            sub_steps: Arc::clone(&self.sub_steps),
            max_sub_steps: self.max_sub_steps,
        };
        if inner.steps.is_empty() {
            return Ok(Vec::new());
        }
        let series = inner.eval_vector(&sub.expr)?;
        self.used
            .fetch_max(inner.used.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(series
            .into_iter()
            .map(|s| {
                let points = inner
                    .steps
                    .iter()
                    .zip(&s.vals)
                    .filter(|(_, v)| present(**v))
                    .map(|(t, v)| (*t, *v))
                    .collect();
                RangeSeries {
                    labels: s.labels,
                    points,
                }
            })
            .collect())
    }

    /// Evaluates a node that must be an instant vector.
    pub fn eval_vector(&self, node: &Node) -> Result<Vec<RS>, Error> {
        match self.eval(node)? {
            V::Vector(v) => Ok(v),
            _ => Err(Error::bad_data("expected an instant vector")),
        }
    }

    /// Evaluates a node that must be a scalar: one value per step.
    pub fn eval_scalar(&self, node: &Node) -> Result<Vec<f64>, Error> {
        match self.eval(node)? {
            V::Scalar(v) => Ok(v),
            _ => Err(Error::bad_data("expected a scalar")),
        }
    }

    /// Calls `f` with each series of an instant-vector node. Selectors and range functions
    /// over selectors stream one series at a time so an aggregation over them never holds the
    /// whole vector; other nodes are evaluated, then walked.
    pub fn each_series(&self, node: &Node, f: &mut Sink<'_>) -> Result<(), Error> {
        match node {
            Node::Call(crate::ir::Func::Range(rf), args) => self.range_fn_each(*rf, args, f),
            _ => {
                for s in self.eval_vector(node)? {
                    f(&s.labels, &s.vals)?;
                }
                Ok(())
            }
        }
    }

    fn vector_selector(&self, sel: &Sel) -> Result<Vec<RS>, Error> {
        self.picked(sel, |_, v| input(v))
    }

    /// For each series of a vector selector, `value(time, value)` of the sample it picks at
    /// each step: the latest within the lookback, unless that is a staleness marker.
    pub(crate) fn picked(
        &self,
        sel: &Sel,
        value: impl Fn(i64, f64) -> f64,
    ) -> Result<Vec<RS>, Error> {
        let mut out = Vec::new();
        for (labels, samples) in self.series(sel)? {
            self.check_time()?;
            let samples = prepared(samples, false);
            // Charged before it is allocated; given back when the series has no value.
            self.charge(self.n())?;
            let mut vals = vec![ABSENT; self.n()];
            let mut any = false;
            for (k, &t) in self.steps.iter().enumerate() {
                let te = self.eff(sel, t);
                let i = samples.partition_point(|s| s.0 <= te);
                if i == 0 {
                    continue;
                }
                let (ts, v) = samples[i - 1];
                if ts < te.saturating_sub(self.lookback) || is_stale_nan(v) {
                    continue;
                }
                vals[k] = value(ts, v);
                any = true;
            }
            if any {
                out.push(RS {
                    labels: labels.clone(),
                    vals,
                });
            } else {
                self.refund(self.n());
            }
        }
        Ok(out)
    }

    /// A range selector as a query result: raw samples of `[t - range, t]`, stale markers left
    /// out (Prometheus never returns them). Only meaningful for an instant query.
    fn matrix_selector(&self, sel: &Sel, range: i64) -> Result<Vec<RangeSeries>, Error> {
        let te = self.eff(sel, self.steps[0]);
        let mut out = Vec::new();
        for (labels, samples) in self.series(sel)? {
            let samples = prepared(samples, true);
            let points: Vec<(i64, f64)> = window(&samples, te, range)
                .iter()
                .map(|p| (p.0, input(p.1)))
                .collect();
            if !points.is_empty() {
                out.push(RangeSeries {
                    labels: labels.clone(),
                    points,
                });
            }
        }
        Ok(out)
    }
}

/// The samples of `[te - range, te]`.
pub(crate) fn window(samples: &[(i64, f64)], te: i64, range: i64) -> &[(i64, f64)] {
    let from = te.saturating_sub(range);
    let lo = samples.partition_point(|s| s.0 < from);
    let hi = samples.partition_point(|s| s.0 <= te);
    &samples[lo..hi.max(lo)]
}

/// A label set without `__name__`.
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    labels
        .iter()
        .filter(|(n, _)| n != "__name__")
        .cloned()
        .collect()
}
