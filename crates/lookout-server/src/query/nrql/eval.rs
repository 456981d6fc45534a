//! Evaluating NRQL expressions on event rows: values and conditions on one row, and aggregates
//! over a group of rows, for [`super::memory`].

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::events::{Row, V};
use super::{invalid, like, QueryError};
use lookout_nrql::ast::{Arg, BinOp, Expr};

/// The aggregator functions, lower case.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "average",
    "min",
    "max",
    "median",
    "percentile",
    "stddev",
    "uniquecount",
    "uniques",
    "latest",
    "earliest",
    "rate",
    "filter",
    "percentage",
    "apdex",
    "histogram",
];

pub(super) fn is_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Call { name, .. } => AGGREGATES.contains(&name.to_ascii_lowercase().as_str()),
        Expr::Binary { left, right, .. } => is_aggregate(left) || is_aggregate(right),
        Expr::Neg(x) => is_aggregate(x),
        _ => false,
    }
}

/// Refuses functions the language has but Lookout does not run, before reading anything.
pub(super) fn check(e: &Expr) -> Result<(), QueryError> {
    match e {
        Expr::Call { name, args } => {
            if !AGGREGATES.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(invalid(format!("{name}(): not a function Lookout runs")));
            }
            for a in args {
                match a {
                    Arg::Expr(x) | Arg::Named(_, x) | Arg::Where(x) => check(x)?,
                }
            }
            Ok(())
        }
        Expr::Binary { left, right, .. } => {
            check(left)?;
            check(right)
        }
        Expr::Neg(x) | Expr::Not(x) => check(x),
        _ => Ok(()),
    }
}

/// Every attribute an expression reads.
pub(super) fn attrs(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Attr(a) => {
            out.insert(a.clone());
        }
        Expr::Call { args, .. } => {
            for a in args {
                match a {
                    Arg::Expr(x) | Arg::Named(_, x) | Arg::Where(x) => attrs(x, out),
                }
            }
        }
        Expr::Binary { left, right, .. } => {
            attrs(left, out);
            attrs(right, out);
        }
        Expr::Neg(x) | Expr::Not(x) => attrs(x, out),
        Expr::In { expr, list, .. } => {
            attrs(expr, out);
            for x in list {
                attrs(x, out);
            }
        }
        Expr::Like { expr, .. } | Expr::IsNull { expr, .. } | Expr::IsBool { expr, .. } => {
            attrs(expr, out)
        }
        _ => {}
    }
}

pub(super) fn num(v: &V) -> Option<f64> {
    match v {
        V::Num(n) => Some(*n),
        V::Str(s) => s.parse().ok(),
        V::Bool(b) => Some(f64::from(u8::from(*b))),
        V::Null => None,
    }
}

pub(super) fn equal(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => false,
        (V::Num(x), y) | (y, V::Num(x)) => num(y) == Some(*x),
        (V::Str(x), V::Str(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Bool(x), V::Str(y)) | (V::Str(y), V::Bool(x)) => y.eq_ignore_ascii_case(&x.to_string()),
    }
}

pub(super) fn order(a: &V, b: &V) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

/// An expression's value on one row.
pub(super) fn value(e: &Expr, r: &Row) -> V {
    let b = V::Bool;
    match e {
        Expr::Attr(a) => r.attrs.get(a).cloned().unwrap_or(V::Null),
        Expr::Number(n) => V::Num(*n),
        Expr::Str(s) => V::Str(s.clone()),
        Expr::Bool(x) => b(*x),
        Expr::Null | Expr::Star | Expr::Interval(_) | Expr::Call { .. } => V::Null,
        Expr::Neg(x) => num(&value(x, r)).map_or(V::Null, |n| V::Num(-n)),
        Expr::Not(x) => match value(x, r) {
            V::Bool(v) => b(!v),
            _ => V::Null,
        },
        Expr::Binary { op, left, right } => {
            let (l, rr) = (value(left, r), value(right, r));
            let truth = |v: &V| matches!(v, V::Bool(true));
            match op {
                BinOp::And => b(truth(&l) && truth(&rr)),
                BinOp::Or => b(truth(&l) || truth(&rr)),
                BinOp::Eq => b(equal(&l, &rr)),
                BinOp::Ne => b(l != V::Null && rr != V::Null && !equal(&l, &rr)),
                BinOp::Lt => b(order(&l, &rr) == Some(std::cmp::Ordering::Less)),
                BinOp::Le => b(matches!(order(&l, &rr), Some(o) if o.is_le())),
                BinOp::Gt => b(order(&l, &rr) == Some(std::cmp::Ordering::Greater)),
                BinOp::Ge => b(matches!(order(&l, &rr), Some(o) if o.is_ge())),
                BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => match (num(&l), num(&rr)) {
                    (Some(x), Some(y)) => arith(*op, x, y).map_or(V::Null, V::Num),
                    _ => V::Null,
                },
            }
        }
        Expr::In {
            expr,
            list,
            negated,
        } => {
            let v = value(expr, r);
            if v == V::Null {
                return b(false);
            }
            let found = list.iter().any(|x| equal(&v, &value(x, r)));
            b(found != *negated)
        }
        Expr::Like {
            expr,
            pattern,
            negated,
            regex,
        } => {
            let text = match value(expr, r) {
                V::Str(s) => s,
                V::Null => return b(false),
                other => other.json().to_string(),
            };
            let hit = if *regex {
                rlike(&text, pattern)
            } else {
                like(&text, pattern)
            };
            b(hit != *negated)
        }
        Expr::IsNull { expr, negated } => b((value(expr, r) == V::Null) != *negated),
        Expr::IsBool {
            expr,
            value: want,
            negated,
        } => b((value(expr, r) == V::Bool(*want)) != *negated),
    }
}

/// `RLIKE`: the whole text matches `pattern`. Patterns are compiled once per thread and kept
/// (a few at most), since a condition is tested against every row of a window, up to 500,000.
fn rlike(text: &str, pattern: &str) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static COMPILED: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::default();
    }
    COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if !c.contains_key(pattern) {
            if c.len() >= 64 {
                c.clear();
            }
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok();
            c.insert(pattern.to_string(), re);
        }
        c[pattern].as_ref().is_some_and(|re| re.is_match(text))
    })
}

pub(super) fn arith(op: BinOp, x: f64, y: f64) -> Option<f64> {
    let v = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div if y == 0.0 => return None,
        BinOp::Div => x / y,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

pub(super) fn holds(e: &Expr, r: &Row) -> bool {
    value(e, r) == V::Bool(true)
}

#[cfg(test)]
pub(super) fn numbers(e: Option<&Expr>, rows: &[&Row]) -> Vec<f64> {
    match e {
        Some(e) => rows.iter().filter_map(|r| num(&value(e, r))).collect(),
        None => Vec::new(),
    }
}

/// Nearest-rank percentile of sorted values.
pub(super) fn rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[k - 1])
}

pub(super) fn positional(args: &[Arg]) -> Vec<&Expr> {
    args.iter()
        .filter_map(|a| match a {
            Arg::Expr(e) => Some(e),
            _ => None,
        })
        .collect()
}

pub(super) fn named<'a>(args: &'a [Arg], key: &str) -> Option<&'a Expr> {
    args.iter().find_map(|a| match a {
        Arg::Named(k, e) if k.eq_ignore_ascii_case(key) => Some(e),
        _ => None,
    })
}

pub(super) fn condition(args: &[Arg]) -> Option<&Expr> {
    args.iter().find_map(|a| match a {
        Arg::Where(e) => Some(e),
        _ => None,
    })
}

pub(super) fn f64_json(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| json!(x))
}

/// An aggregate expression over `rows` (the group), `width_ms` the group's time span; `p` a
/// percentile chosen for this column. The executor folds rows instead ([`super::fold`]); this
/// collect-then-compute form is kept as the reference the folds are tested against.
/// The percentile `median(x)` or `percentile(x, p)` asks for (`p` given by the caller wins;
/// 95 when neither says), shared by the streaming folds and the reference aggregate.
pub(super) fn percentile_wanted(name: &str, p: Option<f64>, second: Option<&Expr>) -> f64 {
    if name.eq_ignore_ascii_case("median") {
        return 50.0;
    }
    let given = match second {
        Some(Expr::Number(x)) => Some(*x),
        _ => None,
    };
    p.or(given).unwrap_or(95.0)
}

#[cfg(test)]
pub(super) fn aggregate(e: &Expr, rows: &[&Row], width_ms: i64, p: Option<f64>) -> Value {
    match e {
        Expr::Number(n) => json!(n),
        Expr::Neg(x) => f64_json(aggregate(x, rows, width_ms, p).as_f64().map(|v| -v)),
        Expr::Binary { op, left, right } => {
            let (l, r) = (
                aggregate(left, rows, width_ms, p).as_f64(),
                aggregate(right, rows, width_ms, p).as_f64(),
            );
            match (l, r) {
                (Some(x), Some(y)) => f64_json(arith(*op, x, y)),
                _ => Value::Null,
            }
        }
        Expr::Call { name, args } => {
            let pos = positional(args);
            let first = pos.first().copied();
            let vals = || numbers(first.filter(|e| !matches!(e, Expr::Star)), rows);
            match name.to_ascii_lowercase().as_str() {
                // Numbers are f64 throughout, as on the rollup path (`70.0`, not `70`).
                "count" => match first {
                    None | Some(Expr::Star) => json!(rows.len() as f64),
                    Some(a) => json!(rows.iter().filter(|r| value(a, r) != V::Null).count() as f64),
                },
                "sum" => json!(vals().iter().sum::<f64>()),
                "average" => {
                    let v = vals();
                    f64_json((!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64))
                }
                "min" => f64_json(vals().into_iter().reduce(f64::min)),
                "max" => f64_json(vals().into_iter().reduce(f64::max)),
                "median" | "percentile" => {
                    let mut v = vals();
                    v.sort_by(f64::total_cmp);
                    f64_json(rank(&v, percentile_wanted(name, p, pos.get(1).copied())))
                }
                "stddev" => {
                    let v = vals();
                    let n = v.len() as f64;
                    f64_json((n > 0.0).then(|| {
                        let mean = v.iter().sum::<f64>() / n;
                        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
                    }))
                }
                "uniquecount" => {
                    let set: BTreeSet<String> = rows
                        .iter()
                        .filter_map(|r| {
                            let t: Vec<V> = pos.iter().map(|a| value(a, r)).collect();
                            (!t.iter().all(|v| *v == V::Null))
                                .then(|| format!("{:?}", t.iter().map(V::json).collect::<Vec<_>>()))
                        })
                        .collect();
                    json!(set.len() as f64)
                }
                "uniques" => {
                    let limit = match pos.get(1) {
                        Some(Expr::Number(n)) => (*n as usize).clamp(1, 10_000),
                        _ => 1_000,
                    };
                    let mut seen = BTreeSet::new();
                    let mut out = Vec::new();
                    for r in rows {
                        if let Some(a) = first {
                            let v = value(a, r).json();
                            if !v.is_null() && seen.insert(v.to_string()) && out.len() < limit {
                                out.push(v);
                            }
                        }
                    }
                    Value::Array(out)
                }
                "latest" | "earliest" => {
                    let latest = name.eq_ignore_ascii_case("latest");
                    let pick = rows
                        .iter()
                        .filter_map(|r| {
                            let v = value(first?, r);
                            (v != V::Null).then_some((r.timestamp, v))
                        })
                        .reduce(|a, b| {
                            if (b.0 > a.0) == latest && b.0 != a.0 {
                                b
                            } else {
                                a
                            }
                        });
                    pick.map_or(Value::Null, |(_, v)| v.json())
                }
                "rate" => match (first, pos.get(1)) {
                    (Some(inner), Some(Expr::Interval(i))) if width_ms > 0 => f64_json(
                        aggregate(inner, rows, width_ms, p)
                            .as_f64()
                            .map(|v| v * i.ms() as f64 / width_ms as f64),
                    ),
                    _ => Value::Null,
                },
                "filter" => match (first, condition(args)) {
                    (Some(inner), Some(c)) => {
                        let sub: Vec<&Row> = rows.iter().copied().filter(|r| holds(c, r)).collect();
                        aggregate(inner, &sub, width_ms, p)
                    }
                    _ => Value::Null,
                },
                "percentage" => match (first, condition(args)) {
                    (Some(inner), Some(c)) => {
                        let sub: Vec<&Row> = rows.iter().copied().filter(|r| holds(c, r)).collect();
                        let (part, all) = (
                            aggregate(inner, &sub, width_ms, p).as_f64(),
                            aggregate(inner, rows, width_ms, p).as_f64(),
                        );
                        match (part, all) {
                            (Some(x), Some(y)) if y != 0.0 => json!(100.0 * x / y),
                            _ => Value::Null,
                        }
                    }
                    _ => Value::Null,
                },
                "apdex" => {
                    let t = match named(args, "t").or(pos.get(1).copied()) {
                        Some(Expr::Number(t)) => *t,
                        _ => 0.5,
                    };
                    let v = vals();
                    if v.is_empty() {
                        return Value::Null;
                    }
                    let sat = v.iter().filter(|x| **x <= t).count() as f64;
                    let tol = v.iter().filter(|x| **x > t && **x <= 4.0 * t).count() as f64;
                    json!((sat + tol / 2.0) / v.len() as f64)
                }
                "histogram" => {
                    let ceiling = match pos.get(1) {
                        Some(Expr::Number(c)) if *c > 0.0 => *c,
                        _ => 10.0,
                    };
                    let n = match pos.get(2) {
                        Some(Expr::Number(b)) => (*b as usize).clamp(1, 500),
                        _ => 40,
                    };
                    let width = ceiling / n as f64;
                    let mut counts = vec![0u64; n];
                    for x in vals() {
                        let i = ((x / width).floor().max(0.0) as usize).min(n - 1);
                        counts[i] += 1;
                    }
                    Value::Array(
                        counts
                            .iter()
                            .enumerate()
                            .map(|(i, c)| json!({"from": i as f64 * width, "to": (i + 1) as f64 * width, "count": c}))
                            .collect(),
                    )
                }
                _ => Value::Null,
            }
        }
        _ => Value::Null,
    }
}

/// The columns an item becomes: one per percentile of `percentile(attr, p1, p2…)`, with the
/// percentile each reads.
fn item_columns(item: &lookout_nrql::ast::SelectItem) -> Vec<(String, Option<f64>)> {
    let label = item.alias.clone().unwrap_or_else(|| item.expr.to_string());
    if let Expr::Call { name, args } = &item.expr {
        let pos = positional(args);
        if name.eq_ignore_ascii_case("percentile") && pos.len() > 2 {
            let attr = pos[0].to_string();
            return pos[1..]
                .iter()
                .filter_map(|a| match a {
                    Expr::Number(p) => Some((
                        item.alias.clone().map_or_else(
                            || format!("percentile({attr}, {p})"),
                            |a| format!("{a} {p}"),
                        ),
                        Some(*p),
                    )),
                    _ => None,
                })
                .collect();
        }
        if name.eq_ignore_ascii_case("percentile") {
            let p = match pos.get(1) {
                Some(Expr::Number(p)) => Some(*p),
                _ => None,
            };
            return vec![(label, p)];
        }
    }
    vec![(label, None)]
}

/// Every column of the `SELECT` items: the expression, the column's name, its percentile.
pub(super) fn selects(q: &lookout_nrql::ast::Query) -> Vec<(&Expr, String, Option<f64>)> {
    q.select
        .iter()
        .flat_map(|i| {
            item_columns(i)
                .into_iter()
                .map(move |(n, p)| (&i.expr, n, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rlike;

    #[test]
    fn rlike_matches_the_whole_text_and_a_bad_pattern_matches_nothing() {
        for _ in 0..3 {
            assert!(rlike("GET /checkout", "GET /(checkout|cart)"));
            assert!(!rlike("GET /checkout/2", "GET /(checkout|cart)"));
            assert!(!rlike("anything", "(unclosed"));
        }
    }
}
