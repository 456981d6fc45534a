//! The rollup path of NRQL: `FROM Transaction` answered from the per-minute APM rollups when
//! everything the query reads is held there exactly — service (`appName`), transaction name and
//! error; counts, sums, extremes, percentiles from the sketches, Apdex, rates, `filter` and
//! `percentage`. [`plan`] decides, without a database, whether the rollups can answer; what
//! they cannot goes to the raw events ([`super::memory`]).

use std::collections::{BTreeMap, BTreeSet};

use lookout_apm::rollup::Red;
use lookout_nrql::ast::{Arg, BinOp, Expr, Facet, Limit, Query};
use lookout_nrql::time::Window;
use lookout_store::apm::query::{self, Cell, Filter};
use lookout_store::Store;
use serde_json::{json, Value};

use super::{eval, invalid, like, limits, Column, QueryError, QueryResult};

/// Default and largest number of facet values.
const DEFAULT_FACETS: usize = 10;
const MAX_FACETS_ROWS: usize = 5_000;

/// A rollup dimension an attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Service,
    Name,
    Error,
}

/// The dimension of attribute `a` on `Transaction` (OpenTelemetry names and New Relic's).
///
/// Only what a rollup row really holds: the service, the transaction name (`"GET /orders"`,
/// built at ingest from the method and `http.route`, or the span name) and the error flag.
/// `http.route` is not here although the name is made from it: `/orders` is not
/// `GET /orders`, and a span without a route is named by its span name. Every other attribute
/// is answered from the raw spans, never from one of these.
fn dim(a: &str) -> Option<Dim> {
    match a {
        "appName" | "service.name" | "service" | "entity.name" => Some(Dim::Service),
        "name" | "transactionName" => Some(Dim::Name),
        "error" => Some(Dim::Error),
        _ => None,
    }
}

/// A facet or literal value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Val {
    Str(String),
    Bool(bool),
}

impl Val {
    fn json(&self) -> Value {
        match self {
            Val::Str(s) => json!(s),
            Val::Bool(b) => json!(b),
        }
    }
}

fn cell_value(c: &Cell<'_>, d: Dim) -> Val {
    match d {
        Dim::Service => Val::Str(c.service.to_string()),
        Dim::Name => Val::Str(c.operation.to_string()),
        Dim::Error => Val::Bool(c.error),
    }
}

/// Checks a `WHERE` condition against what rollup rows hold; notes unknown attributes.
fn check_condition(e: &Expr, unknown: &mut BTreeSet<String>) -> Result<(), QueryError> {
    let attr = |e: &Expr, unknown: &mut BTreeSet<String>| -> Result<(), QueryError> {
        match e {
            Expr::Attr(a) if a == "duration" => Err(invalid(
                "conditions on duration need raw spans, which queries do not read yet; use filter() with thresholds in apdex() or percentile() instead",
            )),
            Expr::Attr(a) => {
                if dim(a).is_none() {
                    unknown.insert(a.clone());
                }
                Ok(())
            }
            other => Err(invalid(format!(
                "this condition compares `{other}`; conditions compare an attribute (appName, name, error) with values"
            ))),
        }
    };
    let literal = |e: &Expr| match e {
        Expr::Str(_) | Expr::Bool(_) => Ok(()),
        other => Err(invalid(format!(
            "`{other}`: conditions on Transaction compare with a string or true/false"
        ))),
    };
    match e {
        Expr::Binary {
            op: BinOp::And | BinOp::Or,
            left,
            right,
        } => {
            check_condition(left, unknown)?;
            check_condition(right, unknown)
        }
        Expr::Not(x) => check_condition(x, unknown),
        Expr::Binary {
            op: BinOp::Eq | BinOp::Ne,
            left,
            right,
        } => {
            attr(left, unknown)?;
            literal(right)
        }
        Expr::In { expr, list, .. } => {
            attr(expr, unknown)?;
            list.iter().try_for_each(literal)
        }
        Expr::Like { expr, regex, .. } => {
            if *regex {
                return Err(invalid("RLIKE is not supported yet; use LIKE"));
            }
            attr(expr, unknown)
        }
        Expr::IsNull { expr, .. } | Expr::IsBool { expr, .. } => attr(expr, unknown),
        other => Err(invalid(format!("`{other}` is not a condition"))),
    }
}

fn literal_val(e: &Expr) -> Option<Val> {
    match e {
        Expr::Str(s) => Some(Val::Str(s.clone())),
        Expr::Bool(b) => Some(Val::Bool(*b)),
        _ => None,
    }
}

/// Whether a rollup row satisfies a checked condition. Unknown attributes are null: every
/// comparison with them is false, as in New Relic.
fn holds(e: &Expr, c: &Cell<'_>) -> bool {
    let value = |e: &Expr| match e {
        Expr::Attr(a) => dim(a).map(|d| cell_value(c, d)),
        _ => None,
    };
    match e {
        Expr::Binary {
            op: BinOp::And,
            left,
            right,
        } => holds(left, c) && holds(right, c),
        Expr::Binary {
            op: BinOp::Or,
            left,
            right,
        } => holds(left, c) || holds(right, c),
        Expr::Not(x) => !holds(x, c),
        Expr::Binary { op, left, right } => match (value(left), literal_val(right)) {
            (Some(v), Some(l)) => (v == l) == (*op == BinOp::Eq),
            _ => false,
        },
        Expr::In {
            expr,
            list,
            negated,
        } => value(expr)
            .is_some_and(|v| list.iter().any(|l| literal_val(l) == Some(v.clone())) != *negated),
        Expr::Like {
            expr,
            pattern,
            negated,
            ..
        } => matches!(value(expr), Some(Val::Str(s)) if like(&s, pattern) != *negated),
        Expr::IsNull { expr, negated } => value(expr).is_none() != *negated,
        Expr::IsBool {
            expr,
            value: want,
            negated,
        } => matches!(value(expr), Some(Val::Bool(b)) if (b == *want) != *negated),
        _ => false,
    }
}

/// Checks that `e` is arithmetic over aggregates the rollups answer, collecting the conditions
/// of its `filter()` and `percentage()` calls (each needs its own fold).
fn collect_aggs(
    e: &Expr,
    out: &mut Vec<Expr>,
    unknown: &mut BTreeSet<String>,
) -> Result<(), QueryError> {
    match e {
        Expr::Number(_) => Ok(()),
        Expr::Neg(x) => collect_aggs(x, out, unknown),
        Expr::Binary {
            op: BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div,
            left,
            right,
        } => {
            collect_aggs(left, out, unknown)?;
            collect_aggs(right, out, unknown)
        }
        Expr::Call { name, args } => {
            let lname = name.to_ascii_lowercase();
            match lname.as_str() {
                "filter" | "percentage" => {
                    let (Some(Arg::Expr(inner)), Some(Arg::Where(cond)), None) =
                        (args.first(), args.get(1), args.get(2))
                    else {
                        return Err(invalid(format!("{name}(aggregate, WHERE condition)")));
                    };
                    check_condition(cond, unknown)?;
                    check_aggregate(inner)?;
                    if !out.contains(cond) {
                        out.push(cond.clone());
                    }
                    Ok(())
                }
                "rate" => {
                    let (Some(Arg::Expr(inner)), Some(Arg::Expr(Expr::Interval(_))), None) =
                        (args.first(), args.get(1), args.get(2))
                    else {
                        return Err(invalid("rate(aggregate, 1 minute)"));
                    };
                    check_aggregate(inner)
                }
                _ => check_aggregate(e),
            }
        }
        Expr::Attr(a) => Err(invalid(format!(
            "`{a}` alone asks for raw rows, which queries do not read yet; aggregate it (count, average, percentile, …)"
        ))),
        Expr::Star => Err(invalid(
            "SELECT * asks for raw rows, which queries do not read yet",
        )),
        other => Err(invalid(format!("`{other}` cannot be selected"))),
    }
}

fn duration_arg(args: &[Arg]) -> bool {
    matches!(args.first(), Some(Arg::Expr(Expr::Attr(a))) if a == "duration")
}

fn check_aggregate(e: &Expr) -> Result<(), QueryError> {
    let Expr::Call { name, args } = e else {
        return Err(invalid(format!("`{e}` is not an aggregate")));
    };
    let ok = match name.to_ascii_lowercase().as_str() {
        "count" => matches!(args.as_slice(), [] | [Arg::Expr(Expr::Star)]) || duration_arg(args),
        "average" | "sum" | "min" | "max" | "median" => duration_arg(args) && args.len() == 1,
        "percentile" => {
            duration_arg(args)
                && args[1..]
                    .iter()
                    .all(|a| matches!(a, Arg::Expr(Expr::Number(p)) if (0.0..=100.0).contains(p)))
        }
        "apdex" => {
            duration_arg(args)
                && matches!(args.get(1), Some(Arg::Named(t, Expr::Number(x))) if t == "t" && *x > 0.0)
        }
        _ => {
            return Err(invalid(format!(
                "{name}() is not supported on Transaction yet (count, sum, average, min, max, percentile, median, apdex, rate, filter and percentage are)"
            )))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "`{e}`: on Transaction, aggregates read duration (in seconds), e.g. percentile(duration, 95) or apdex(duration, t: 0.5)"
        )))
    }
}

/// The value of aggregate `call` over `red`; `width_ms` is the span of time it covers (for
/// `rate`). Durations are in seconds, as in New Relic.
fn aggregate(call: &Expr, red: &Red, p: Option<f64>) -> Option<f64> {
    let Expr::Call { name, args } = call else {
        return None;
    };
    let n = red.all.count;
    let s = |ms: f64| ms / 1000.0;
    match name.to_ascii_lowercase().as_str() {
        "count" => Some(n as f64),
        "sum" => Some(s(red.all.sum)),
        "average" => (n > 0).then(|| s(red.all.sum / n as f64)),
        "min" => (n > 0).then(|| s(red.all.min)),
        "max" => (n > 0).then(|| s(red.all.max)),
        "median" => red.quantile(0.5).map(s),
        "percentile" => {
            let p = p.unwrap_or(95.0);
            red.quantile(p / 100.0).map(s)
        }
        "apdex" => {
            let Some(Arg::Named(_, Expr::Number(t))) = args.get(1) else {
                return None;
            };
            // NRQL's apdex counts by duration alone (failed requests are not frustrated by
            // rule, unlike the service pages' Apdex).
            (n > 0).then(|| {
                let sat = red.all.sketch.count_at_most(t * 1000.0) as f64;
                let tol = red.all.sketch.count_at_most(4.0 * t * 1000.0) as f64 - sat;
                (sat + tol / 2.0) / n as f64
            })
        }
        _ => None,
    }
}

/// Evaluates a `SELECT` expression for one group. `reds` holds the group's figures without a
/// filter (`None`) and for each `filter()` condition.
fn evaluate(
    e: &Expr,
    reds: &BTreeMap<Option<String>, Red>,
    width_ms: i64,
    p: Option<f64>,
) -> Option<f64> {
    let empty = Red::default();
    let red = |f: Option<&Expr>| reds.get(&f.map(|c| c.to_string())).unwrap_or(&empty);
    match e {
        Expr::Number(n) => Some(*n),
        Expr::Neg(x) => evaluate(x, reds, width_ms, p).map(|v| -v),
        Expr::Binary { op, left, right } => {
            let (a, b) = (
                evaluate(left, reds, width_ms, p)?,
                evaluate(right, reds, width_ms, p)?,
            );
            match op {
                BinOp::Add => Some(a + b),
                BinOp::Sub => Some(a - b),
                BinOp::Mul => Some(a * b),
                BinOp::Div => (b != 0.0).then(|| a / b),
                _ => None,
            }
        }
        Expr::Call { name, args } => match name.to_ascii_lowercase().as_str() {
            "filter" => match (args.first(), args.get(1)) {
                (Some(Arg::Expr(inner)), Some(Arg::Where(cond))) => {
                    aggregate(inner, red(Some(cond)), p).or(Some(0.0))
                }
                _ => None,
            },
            "percentage" => match (args.first(), args.get(1)) {
                (Some(Arg::Expr(inner)), Some(Arg::Where(cond))) => {
                    let part = aggregate(inner, red(Some(cond)), p).unwrap_or(0.0);
                    let whole = aggregate(inner, red(None), p)?;
                    (whole != 0.0).then(|| 100.0 * part / whole)
                }
                _ => None,
            },
            "rate" => match (args.first(), args.get(1)) {
                (Some(Arg::Expr(inner)), Some(Arg::Expr(Expr::Interval(i)))) => {
                    let v = aggregate(inner, red(None), p)?;
                    Some(v * i.ms() as f64 / width_ms as f64)
                }
                _ => None,
            },
            _ => aggregate(e, red(None), p),
        },
        _ => None,
    }
}

/// The start of every `TIMESERIES` bucket of `w` (`[0]`, one whole-window "bucket", without).
pub(super) fn bucket_starts(w: &Window) -> Vec<i64> {
    match w.bucket {
        None => vec![0],
        Some(b) => {
            let first = w.since.div_euclid(b) * b;
            (0..)
                .map(|i| first + i * b)
                .take_while(|t| *t < w.until)
                .collect()
        }
    }
}

/// How the rollups answer a query: its facets (column name and dimension) and the distinct
/// conditions of its `filter()` and `percentage()` calls (each folded alongside the rest).
#[derive(Debug)]
struct RollupPlan {
    facets: Vec<(String, Dim)>,
    conditions: Vec<Expr>,
}

/// Whether the rollups hold everything `q` reads, and how to read them. `Invalid` says why the
/// query needs the raw events instead: another event type, raw rows, an aggregate of anything
/// but duration, or a `WHERE`, `FACET` or `filter()` on an attribute the rollups do not keep
/// (see [`dim`]). Pure, so the choice is tested without a database.
fn plan(q: &Query) -> Result<RollupPlan, QueryError> {
    if q.from != ["Transaction"] {
        return Err(invalid(format!(
            "FROM {}: queries read Transaction (request spans, from the APM rollups) so far",
            q.from.join(", ")
        )));
    }
    if q.compare_with.is_some() {
        return Err(invalid("COMPARE WITH is not supported yet"));
    }
    if q.order_by.is_some() || q.offset.is_some() {
        return Err(invalid(
            "ORDER BY and OFFSET apply to raw rows, which queries do not read yet",
        ));
    }
    let mut unknown = BTreeSet::new();
    if let Some(c) = &q.filter {
        check_condition(c, &mut unknown)?;
    }
    let mut conditions = Vec::new();
    for item in &q.select {
        collect_aggs(&item.expr, &mut conditions, &mut unknown)?;
    }
    let facets: Vec<(String, Dim)> = match &q.facet {
        None => Vec::new(),
        Some(Facet::Cases { .. }) => return Err(invalid("FACET CASES is not supported yet")),
        Some(Facet::Items(items)) => items
            .iter()
            .map(|i| match &i.expr {
                Expr::Attr(a) => match dim(a) {
                    Some(d) => Ok((i.alias.clone().unwrap_or_else(|| a.clone()), d)),
                    None => Err(invalid(format!(
                        "FACET {a}: the rollups keep appName, name and error only"
                    ))),
                },
                other => Err(invalid(format!(
                    "FACET `{other}`: facets are attributes (appName, name, error) so far"
                ))),
            })
            .collect::<Result<_, _>>()?,
    };
    if !unknown.is_empty() {
        // Attributes the rollups do not keep: the raw events have them, or say they are unknown.
        return Err(invalid(format!(
            "{}: the rollups keep appName, name and error only",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    if conditions.len() > 64 {
        return Err(invalid(
            "at most 64 distinct filter() and percentage() conditions",
        ));
    }
    Ok(RollupPlan { facets, conditions })
}

/// The rollup path: `Invalid` when the shape needs raw events (see [`plan`]).
pub(super) async fn rollups(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
    budget: &limits::Budget,
) -> Result<QueryResult, QueryError> {
    let RollupPlan { facets, conditions } = plan(q)?;
    let warnings: Vec<String> = Vec::new();

    // One pass over the rows: each goes to its group (facet values, bucket) with the set of
    // `filter()`/`percentage()` conditions it meets, so those cost no second read.
    let f = Filter {
        projects,
        category: Some("request"),
        ..Filter::default()
    };
    type Group = (Vec<Val>, i64);
    let mut groups: BTreeMap<Group, BTreeMap<Option<String>, Red>> = BTreeMap::new();
    let ranges = match w.bucket {
        None => query::plan(w.since, w.until),
        Some(b) => {
            let tier = if b % 86_400_000 == 0 {
                2
            } else if b % 3_600_000 == 0 {
                1
            } else if b % 60_000 == 0 {
                0
            } else {
                return Err(invalid(
                    "TIMESERIES buckets are whole minutes on the rollups",
                ));
            };
            let from = w.since.div_euclid(b) * b;
            vec![(tier, from, w.until)]
        }
    };
    let folded = query::fold_ranges(store, &f, &ranges, |c| {
        if let Some(cond) = &q.filter {
            if !holds(cond, c) {
                return None;
            }
        }
        let met = conditions
            .iter()
            .enumerate()
            .filter(|(_, cond)| holds(cond, c))
            .fold(0u64, |m, (i, _)| m | (1 << i));
        let key: Vec<Val> = facets.iter().map(|(_, d)| cell_value(c, *d)).collect();
        let bucket = w.bucket.map_or(0, |b| c.bucket.div_euclid(b) * b);
        Some((key, bucket, met))
    })
    .await?;
    let names: Vec<String> = conditions.iter().map(ToString::to_string).collect();
    for ((key, bucket, met), red) in folded {
        let g = groups.entry((key, bucket)).or_default();
        g.entry(None).or_default().merge(&red);
        for (i, name) in names.iter().enumerate() {
            if met & (1 << i) != 0 {
                g.entry(Some(name.clone())).or_default().merge(&red);
            }
        }
    }

    // Columns.
    let mut columns: Vec<Column> = facets
        .iter()
        .map(|(name, d)| Column {
            name: name.clone(),
            kind: if *d == Dim::Error {
                "boolean"
            } else {
                "string"
            },
        })
        .collect();
    if w.bucket.is_some() {
        columns.push(Column {
            name: "begin_time".into(),
            kind: "timestamp",
        });
    }
    let selects = eval::selects(q);
    for (_, name, _) in &selects {
        columns.push(Column {
            name: name.clone(),
            kind: "number",
        });
    }

    // Facet values: ranked by the first item for count/min/max, by request count otherwise.
    // Each facet's figures over the whole window, merged across buckets in one pass.
    let whole = w.until - w.since;
    let mut per_key: BTreeMap<&Vec<Val>, BTreeMap<Option<String>, Red>> = BTreeMap::new();
    for ((k, _), reds) in &groups {
        let merged = per_key.entry(k).or_default();
        for (f, r) in reds {
            let m = merged.entry(f.clone()).or_default();
            m.all.merge(&r.all);
            m.ok.merge(&r.ok);
        }
    }
    let ranks_by_value = matches!(selects.first(), Some((Expr::Call { name, .. }, _, _))
        if ["count", "min", "max"].contains(&name.to_ascii_lowercase().as_str()));
    let keys: BTreeMap<Vec<Val>, (f64, u64)> = per_key
        .iter()
        .map(|(k, reds)| {
            let count = reds.get(&None).map_or(0, |r| r.all.count);
            let rank = match selects.first() {
                Some((first, _, p)) if ranks_by_value => {
                    evaluate(first, reds, whole, *p).unwrap_or(f64::MIN)
                }
                _ => count as f64,
            };
            ((*k).clone(), (rank, count))
        })
        .collect();
    let mut ranked: Vec<(Vec<Val>, f64)> = keys.into_iter().map(|(k, (v, _))| (k, v)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let limit = match q.limit {
        Some(Limit::Count(n)) => (n as usize).min(MAX_FACETS_ROWS),
        Some(Limit::Max) => MAX_FACETS_ROWS,
        None => DEFAULT_FACETS,
    };
    if !facets.is_empty() {
        ranked.truncate(limit);
    } else if ranked.is_empty() {
        ranked.push((Vec::new(), 0.0));
    }

    // Rows.
    let buckets = bucket_starts(&w);
    budget.answer_rows(ranked.len(), buckets.len())?;
    let empty = BTreeMap::new();
    // With nothing matched at all, New Relic's count is null, not 0 (SELECT never ran).
    let nothing = facets.is_empty() && w.bucket.is_none() && groups.is_empty();
    let mut rows = Vec::new();
    for (key, _) in &ranked {
        for &bucket in &buckets {
            let reds = groups.get(&(key.clone(), bucket)).unwrap_or(&empty);
            let width = w.bucket.unwrap_or(whole);
            let mut row: Vec<Value> = key.iter().map(Val::json).collect();
            if w.bucket.is_some() {
                row.push(json!(bucket));
            }
            for (e, _, p) in &selects {
                let v = if nothing {
                    None
                } else {
                    evaluate(e, reds, width, *p)
                };
                row.push(v.map_or(Value::Null, |v| json!(v)));
            }
            rows.push(row);
        }
    }
    Ok(QueryResult {
        columns,
        rows,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::{plan, Dim};

    /// The rollup plan's facets, or why the query goes to the raw spans.
    fn planned(nrql: &str) -> Result<Vec<(String, Dim)>, String> {
        let q = lookout_nrql::parse(nrql).unwrap();
        plan(&q).map(|p| p.facets).map_err(|e| e.to_string())
    }

    /// What the rollups hold (service, transaction name, error) is answered from them;
    /// `http.route` and every other attribute, in FACET, WHERE or filter(), is not.
    #[test]
    fn the_rollups_answer_only_the_attributes_they_hold() {
        let name = |n: &str| (n.to_string(), Dim::Name);
        assert_eq!(
            planned("SELECT average(duration) FROM Transaction FACET name"),
            Ok(vec![name("name")])
        );
        assert_eq!(
            planned("SELECT count(*) FROM Transaction FACET transactionName AS t, appName"),
            Ok(vec![name("t"), ("appName".into(), Dim::Service)])
        );
        assert!(planned(
            "SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction \
             WHERE appName = 'shop' AND name LIKE 'GET %' FACET error"
        )
        .is_ok());
        for raw in [
            "SELECT average(duration) FROM Transaction FACET http.route",
            "SELECT count(*) FROM Transaction FACET appName, http.route",
            "SELECT count(*) FROM Transaction WHERE http.route = '/api/orders'",
            "SELECT count(*) FROM Transaction WHERE name = 'x' OR http.route IS NULL",
            "SELECT filter(count(*), WHERE http.route = '/a') FROM Transaction",
            "SELECT count(*) FROM Transaction FACET http.request.method",
            "SELECT count(*) FROM Transaction WHERE duration > 1",
            "SELECT count(*) FROM Span FACET name",
        ] {
            let why = planned(raw).expect_err(raw);
            assert!(!why.is_empty(), "{raw}");
        }
        assert!(planned("SELECT count(*) FROM Transaction FACET http.route")
            .unwrap_err()
            .contains("http.route"));
    }
}
