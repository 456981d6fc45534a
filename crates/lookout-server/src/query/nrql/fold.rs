//! Aggregates folded one row at a time ([`Acc`]), for [`super::memory`]: a query keeps one
//! accumulator per `SELECT` column and group instead of the group's rows. Each gives the figure
//! the old collect-then-compute code gave, to the digit: sums add in the order rows are read
//! from the same starting value, extremes reduce in that order, and percentiles, medians and
//! standard deviations keep the group's values (8 bytes each, counted in the query's memory
//! budget) and compute exactly as before (nearest rank, two-pass deviation).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::eval::{arith, condition, f64_json, holds, named, num, positional, rank, value};
use super::events::{Row, V};
use lookout_nrql::ast::{BinOp, Expr};

/// `0.0` as `Iterator::sum` starts it (its neutral element may be `-0.0`), so that a fold
/// gives what `sum()` over the same values gave.
fn zero() -> f64 {
    std::iter::empty::<f64>().sum()
}

/// What a kept-values aggregate computes at the end.
#[derive(Debug)]
pub(super) enum Kept {
    Percentile(f64),
    Stddev,
}

/// One aggregate's state over the rows seen so far.
#[derive(Debug)]
pub(super) enum Acc<'q> {
    /// A number, or `null` for what is not an aggregate.
    Const(Value),
    Neg(Box<Acc<'q>>),
    Bin(BinOp, Box<Acc<'q>>, Box<Acc<'q>>),
    /// `count(*)` (`of` none) or `count(attr)`.
    Count {
        of: Option<&'q Expr>,
        n: u64,
    },
    Sum {
        of: Option<&'q Expr>,
        sum: f64,
        n: u64,
        average: bool,
    },
    Extreme {
        of: Option<&'q Expr>,
        max: bool,
        v: Option<f64>,
    },
    Kept {
        of: Option<&'q Expr>,
        what: Kept,
        values: Vec<f64>,
    },
    Unique {
        of: Vec<&'q Expr>,
        seen: BTreeSet<String>,
    },
    Uniques {
        of: Option<&'q Expr>,
        limit: usize,
        seen: BTreeSet<String>,
        out: Vec<Value>,
    },
    Pick {
        of: Option<&'q Expr>,
        latest: bool,
        best: Option<(i64, V)>,
    },
    Rate {
        inner: Box<Acc<'q>>,
        per_ms: i64,
    },
    Filter {
        cond: &'q Expr,
        inner: Box<Acc<'q>>,
    },
    Percentage {
        cond: &'q Expr,
        part: Box<Acc<'q>>,
        all: Box<Acc<'q>>,
    },
    Apdex {
        of: Option<&'q Expr>,
        t: f64,
        n: u64,
        satisfied: u64,
        tolerating: u64,
    },
    Histogram {
        of: Option<&'q Expr>,
        width: f64,
        counts: Vec<u64>,
    },
}

/// Bytes a kept string costs beyond its text (tree node, header).
const ENTRY: usize = 48;

impl<'q> Acc<'q> {
    /// A fresh accumulator for `e`; `p` is the percentile chosen for this column.
    pub(super) fn new(e: &'q Expr, p: Option<f64>) -> Acc<'q> {
        match e {
            Expr::Number(n) => Acc::Const(json!(n)),
            Expr::Neg(x) => Acc::Neg(Box::new(Acc::new(x, p))),
            Expr::Binary { op, left, right } => Acc::Bin(
                *op,
                Box::new(Acc::new(left, p)),
                Box::new(Acc::new(right, p)),
            ),
            Expr::Call { name, args } => {
                let pos = positional(args);
                let first = pos.first().copied();
                // Aggregates of numbers read nothing from `*`.
                let of = first.filter(|e| !matches!(e, Expr::Star));
                match name.to_ascii_lowercase().as_str() {
                    "count" => Acc::Count { of, n: 0 },
                    "sum" | "average" => Acc::Sum {
                        of,
                        sum: zero(),
                        n: 0,
                        average: name.eq_ignore_ascii_case("average"),
                    },
                    "min" | "max" => Acc::Extreme {
                        of,
                        max: name.eq_ignore_ascii_case("max"),
                        v: None,
                    },
                    "median" | "percentile" => {
                        let p = super::eval::percentile_wanted(name, p, pos.get(1).copied());
                        Acc::Kept {
                            of,
                            what: Kept::Percentile(p),
                            values: Vec::new(),
                        }
                    }
                    "stddev" => Acc::Kept {
                        of,
                        what: Kept::Stddev,
                        values: Vec::new(),
                    },
                    "uniquecount" => Acc::Unique {
                        of: pos,
                        seen: BTreeSet::new(),
                    },
                    "uniques" => Acc::Uniques {
                        of: first,
                        limit: match pos.get(1) {
                            Some(Expr::Number(n)) => (*n as usize).clamp(1, 10_000),
                            _ => 1_000,
                        },
                        seen: BTreeSet::new(),
                        out: Vec::new(),
                    },
                    "latest" | "earliest" => Acc::Pick {
                        of: first,
                        latest: name.eq_ignore_ascii_case("latest"),
                        best: None,
                    },
                    "rate" => match (first, pos.get(1)) {
                        (Some(inner), Some(Expr::Interval(i))) => Acc::Rate {
                            inner: Box::new(Acc::new(inner, p)),
                            per_ms: i.ms(),
                        },
                        _ => Acc::Const(Value::Null),
                    },
                    "filter" => match (first, condition(args)) {
                        (Some(inner), Some(cond)) => Acc::Filter {
                            cond,
                            inner: Box::new(Acc::new(inner, p)),
                        },
                        _ => Acc::Const(Value::Null),
                    },
                    "percentage" => match (first, condition(args)) {
                        (Some(inner), Some(cond)) => Acc::Percentage {
                            cond,
                            part: Box::new(Acc::new(inner, p)),
                            all: Box::new(Acc::new(inner, p)),
                        },
                        _ => Acc::Const(Value::Null),
                    },
                    "apdex" => Acc::Apdex {
                        of,
                        t: match named(args, "t").or(pos.get(1).copied()) {
                            Some(Expr::Number(t)) => *t,
                            _ => 0.5,
                        },
                        n: 0,
                        satisfied: 0,
                        tolerating: 0,
                    },
                    "histogram" => {
                        let ceiling = match pos.get(1) {
                            Some(Expr::Number(c)) if *c > 0.0 => *c,
                            _ => 10.0,
                        };
                        let n = match pos.get(2) {
                            Some(Expr::Number(b)) => (*b as usize).clamp(1, 500),
                            _ => 40,
                        };
                        Acc::Histogram {
                            of,
                            width: ceiling / n as f64,
                            counts: vec![0; n],
                        }
                    }
                    _ => Acc::Const(Value::Null),
                }
            }
            _ => Acc::Const(Value::Null),
        }
    }

    /// Bytes a fresh accumulator of this shape costs.
    pub(super) fn weight(&self) -> usize {
        std::mem::size_of::<Acc<'_>>()
            + match self {
                Acc::Neg(x) | Acc::Rate { inner: x, .. } | Acc::Filter { inner: x, .. } => {
                    x.weight()
                }
                Acc::Bin(_, a, b)
                | Acc::Percentage {
                    part: a, all: b, ..
                } => a.weight() + b.weight(),
                Acc::Histogram { counts, .. } => counts.len() * 8,
                _ => 0,
            }
    }

    /// Folds in one row; returns the bytes the accumulator grew by.
    pub(super) fn add(&mut self, r: &Row) -> usize {
        let number = |of: Option<&Expr>| of.and_then(|e| num(&value(e, r)));
        match self {
            Acc::Const(_) => 0,
            Acc::Neg(x) => x.add(r),
            Acc::Bin(_, a, b) => a.add(r) + b.add(r),
            Acc::Count { of, n } => {
                if of.is_none_or(|a| value(a, r) != V::Null) {
                    *n += 1;
                }
                0
            }
            Acc::Sum { of, sum, n, .. } => {
                if let Some(x) = number(*of) {
                    *sum += x;
                    *n += 1;
                }
                0
            }
            Acc::Extreme { of, max, v } => {
                if let Some(x) = number(*of) {
                    *v = Some(match *v {
                        None => x,
                        Some(m) if *max => f64::max(m, x),
                        Some(m) => f64::min(m, x),
                    });
                }
                0
            }
            Acc::Kept { of, values, .. } => match number(*of) {
                Some(x) => {
                    values.push(x);
                    8
                }
                None => 0,
            },
            Acc::Unique { of, seen } => {
                let t: Vec<V> = of.iter().map(|a| value(a, r)).collect();
                if t.iter().all(|v| *v == V::Null) {
                    return 0;
                }
                let key = format!("{:?}", t.iter().map(V::json).collect::<Vec<_>>());
                let bytes = key.len() + ENTRY;
                if seen.insert(key) {
                    bytes
                } else {
                    0
                }
            }
            Acc::Uniques {
                of,
                limit,
                seen,
                out,
            } => {
                // Once the list is full nothing can join it: stop remembering what was seen.
                let Some(a) = of.filter(|_| out.len() < *limit) else {
                    return 0;
                };
                let v = value(a, r).json();
                if v.is_null() {
                    return 0;
                }
                let key = v.to_string();
                let bytes = 2 * (key.len() + ENTRY);
                if seen.insert(key) {
                    out.push(v);
                    bytes
                } else {
                    0
                }
            }
            Acc::Pick { of, latest, best } => {
                let Some(a) = of else { return 0 };
                let v = value(a, r);
                if v == V::Null {
                    return 0;
                }
                // The first row of the earliest (latest) time wins a tie, as before.
                let replace = match best {
                    None => true,
                    Some((t, _)) => (r.timestamp > *t) == *latest && r.timestamp != *t,
                };
                if replace {
                    *best = Some((r.timestamp, v));
                }
                0
            }
            Acc::Rate { inner, .. } => inner.add(r),
            Acc::Filter { cond, inner } => {
                if holds(cond, r) {
                    inner.add(r)
                } else {
                    0
                }
            }
            Acc::Percentage { cond, part, all } => {
                let grown = if holds(cond, r) { part.add(r) } else { 0 };
                grown + all.add(r)
            }
            Acc::Apdex {
                of,
                t,
                n,
                satisfied,
                tolerating,
            } => {
                if let Some(x) = number(*of) {
                    *n += 1;
                    if x <= *t {
                        *satisfied += 1;
                    } else if x <= 4.0 * *t {
                        *tolerating += 1;
                    }
                }
                0
            }
            Acc::Histogram { of, width, counts } => {
                if let Some(x) = number(*of) {
                    let i = ((x / *width).floor().max(0.0) as usize).min(counts.len() - 1);
                    counts[i] += 1;
                }
                0
            }
        }
    }

    /// The aggregate's value; `width_ms` is the time the group covers (for `rate`).
    pub(super) fn finish(&mut self, width_ms: i64) -> Value {
        match self {
            Acc::Const(v) => v.clone(),
            Acc::Neg(x) => f64_json(x.finish(width_ms).as_f64().map(|v| -v)),
            Acc::Bin(op, a, b) => match (a.finish(width_ms).as_f64(), b.finish(width_ms).as_f64())
            {
                (Some(x), Some(y)) => f64_json(arith(*op, x, y)),
                _ => Value::Null,
            },
            // Numbers are f64 throughout, as on the rollup path (`70.0`, not `70`).
            Acc::Count { n, .. } => json!(*n as f64),
            Acc::Sum {
                sum, n, average, ..
            } => {
                if *average {
                    f64_json((*n > 0).then(|| *sum / *n as f64))
                } else {
                    json!(*sum)
                }
            }
            Acc::Extreme { v, .. } => f64_json(*v),
            Acc::Kept { what, values, .. } => match what {
                Kept::Percentile(p) => {
                    values.sort_by(f64::total_cmp);
                    f64_json(rank(values, *p))
                }
                Kept::Stddev => {
                    let n = values.len() as f64;
                    f64_json((n > 0.0).then(|| {
                        let mean = values.iter().sum::<f64>() / n;
                        (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
                    }))
                }
            },
            Acc::Unique { seen, .. } => json!(seen.len() as f64),
            Acc::Uniques { out, .. } => Value::Array(out.clone()),
            Acc::Pick { best, .. } => best.as_ref().map_or(Value::Null, |(_, v)| v.json()),
            Acc::Rate { inner, per_ms } => {
                if width_ms > 0 {
                    f64_json(
                        inner
                            .finish(width_ms)
                            .as_f64()
                            .map(|v| v * *per_ms as f64 / width_ms as f64),
                    )
                } else {
                    Value::Null
                }
            }
            Acc::Filter { inner, .. } => inner.finish(width_ms),
            Acc::Percentage { part, all, .. } => {
                match (part.finish(width_ms).as_f64(), all.finish(width_ms).as_f64()) {
                    (Some(x), Some(y)) if y != 0.0 => json!(100.0 * x / y),
                    _ => Value::Null,
                }
            }
            Acc::Apdex {
                n,
                satisfied,
                tolerating,
                ..
            } => {
                if *n == 0 {
                    return Value::Null;
                }
                json!((*satisfied as f64 + *tolerating as f64 / 2.0) / *n as f64)
            }
            Acc::Histogram { width, counts, .. } => Value::Array(
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({"from": i as f64 * *width, "to": (i + 1) as f64 * *width, "count": c})
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Acc;
    use crate::query::nrql::eval::aggregate;
    use crate::query::nrql::events::{Row, V};
    use lookout_nrql::ast::Expr;

    fn rows() -> Vec<Row> {
        // Durations with repeats, nulls, strings and ties in time, as a window holds them.
        (0..300)
            .map(|i: i64| {
                let mut r = Row {
                    timestamp: 1_000 + (i % 37) * 1_000,
                    ..Row::default()
                };
                if i % 11 != 0 {
                    r.attrs
                        .insert("duration".into(), V::Num(((i * 7919) % 503) as f64 / 97.0));
                }
                r.attrs.insert(
                    "name".into(),
                    V::Str(format!("GET /{}", ["a", "b", "c"][(i % 3) as usize])),
                );
                r.attrs.insert("error".into(), V::Bool(i % 5 == 0));
                if i % 4 == 0 {
                    r.attrs
                        .insert("code".into(), V::Str(format!("{}", 200 + i % 3)));
                }
                r
            })
            .collect()
    }

    fn select(nrql: &str) -> Vec<Expr> {
        let q = lookout_nrql::parse(nrql).unwrap();
        q.select.into_iter().map(|i| i.expr).collect()
    }

    /// Every aggregator folded row by row gives what collecting the rows gave, to the digit.
    #[test]
    fn folds_equal_the_collected_aggregates() {
        let all = rows();
        let exprs = select(
            "SELECT count(*), count(code), sum(duration), average(duration), min(duration), \
             max(duration), median(duration), percentile(duration, 99), stddev(duration), \
             uniqueCount(name), uniqueCount(name, code), uniques(code), uniques(name, 2), \
             latest(code), earliest(duration), rate(count(*), 1 minute), \
             filter(count(*), WHERE error IS TRUE), percentage(count(*), WHERE name = 'GET /a'), \
             apdex(duration, t: 0.5), histogram(duration, 6, 12), sum(duration) / count(*) * 100, \
             -max(duration), filter(average(duration), WHERE code IS NOT NULL), sum(*) \
             FROM Span",
        );
        for n in [0, 1, 2, 17, all.len()] {
            let group: Vec<&Row> = all.iter().take(n).collect();
            for e in &exprs {
                for width in [0, 60_000, 3_600_000] {
                    let mut acc = Acc::new(e, None);
                    for r in &group {
                        acc.add(r);
                    }
                    assert_eq!(
                        acc.finish(width),
                        aggregate(e, &group, width, None),
                        "{e} over {n} rows, width {width}"
                    );
                }
            }
        }
    }
}
