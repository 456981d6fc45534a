//! NRQL over event rows in memory: every event type of [`super::events`], every aggregator of
//! the language, `WHERE` on any attribute, `FACET` (attributes and `CASES`), `TIMESERIES`,
//! raw rows (`SELECT *`, attributes, `ORDER BY`, `LIMIT`, `OFFSET`) and `COMPARE WITH`. Used
//! for the shapes the rollups cannot answer; figures are exact over the rows read (percentiles by
//! nearest rank), where the rollup path's percentiles are within its sketch's 1 %.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::eval::{aggregate, attrs, check, holds, is_aggregate, order, selects, value};
use super::events::{self, Row};
use super::{invalid, Column, QueryError, QueryResult};
use lookout_nrql::ast::{Expr, Facet, Limit, Query};
use lookout_nrql::time::Window;
use lookout_store::Store;

const DEFAULT_FACETS: usize = 10;
const DEFAULT_ROWS: usize = 100;
const MAX_ROWS: usize = 5_000;
/// Most columns `SELECT *` shows.
const STAR_COLUMNS: usize = 100;

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::Array(_) | Value::Object(_) => "array",
        _ => "string",
    }
}

/// Runs `q` over the rows of its event type in `w`.
pub async fn execute(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
) -> Result<QueryResult, QueryError> {
    let [ty] = q.from.as_slice() else {
        return Err(invalid("FROM one event type at a time"));
    };
    if !events::TYPES.contains(&ty.as_str()) {
        return Err(invalid(format!(
            "FROM {ty}: Lookout's event types are {}",
            events::TYPES.join(", ")
        )));
    }
    for item in &q.select {
        check(&item.expr)?;
    }
    let aggregated = q.select.iter().any(|i| is_aggregate(&i.expr));
    if aggregated
        && q.select
            .iter()
            .any(|i| !is_aggregate(&i.expr) && !matches!(i.expr, Expr::Number(_)))
    {
        return Err(invalid(
            "SELECT mixes aggregates and plain attributes: FACET by the attributes instead",
        ));
    }
    if !aggregated && (q.facet.is_some() || q.timeseries.is_some()) {
        return Err(invalid("FACET and TIMESERIES need aggregates in SELECT"));
    }
    let (rows, cut) = events::load(store, projects, ty, w.since, w.until).await?;
    let mut warnings = Vec::new();
    if cut {
        warnings.push(format!(
            "Read the first {} {ty} events of the window only: narrow it with SINCE/UNTIL or WHERE",
            events::MAX_ROWS
        ));
    }
    // An attribute no row has is null everywhere, as in New Relic: say so.
    let mut used = BTreeSet::new();
    for item in &q.select {
        attrs(&item.expr, &mut used);
    }
    if let Some(f) = &q.filter {
        attrs(f, &mut used);
    }
    if let Some(Facet::Items(items)) = &q.facet {
        for i in items {
            attrs(&i.expr, &mut used);
        }
    }
    if !rows.is_empty() {
        for a in &used {
            if !rows.iter().any(|r| r.attrs.contains_key(a)) {
                warnings.push(format!(
                    "Unknown attribute `{a}` on {ty}: it is null on every row"
                ));
            }
        }
    }
    let matched: Vec<&Row> = rows
        .iter()
        .filter(|r| q.filter.as_ref().is_none_or(|c| holds(c, r)))
        .collect();
    let (mut columns, mut out) = if aggregated {
        aggregated_rows(q, &matched, w)
    } else {
        raw_rows(q, &matched)
    };
    if let Some((since, until)) = w.compare {
        let (old, _) = events::load(store, projects, ty, since, until).await?;
        let old: Vec<&Row> = old
            .iter()
            .filter(|r| q.filter.as_ref().is_none_or(|c| holds(c, r)))
            .collect();
        let shifted = Window {
            since,
            until,
            compare: None,
            bucket: w.bucket,
        };
        let (_, previous) = if aggregated {
            aggregated_rows(q, &old, shifted)
        } else {
            raw_rows(q, &old)
        };
        columns.insert(
            0,
            Column {
                name: "comparison".into(),
                kind: "string",
            },
        );
        for r in &mut out {
            r.insert(0, json!("current"));
        }
        out.extend(previous.into_iter().map(|mut r| {
            r.insert(0, json!("previous"));
            r
        }));
    }
    Ok(QueryResult {
        columns,
        rows: out,
        warnings,
    })
}

type Table = (Vec<Column>, Vec<Vec<Value>>);

/// `SELECT *` or attributes: rows ordered (newest first unless `ORDER BY`), limited.
fn raw_rows(q: &Query, rows: &[&Row]) -> Table {
    let star = q.select.iter().any(|i| matches!(i.expr, Expr::Star));
    let mut sorted: Vec<&Row> = rows.to_vec();
    match &q.order_by {
        Some((e, desc)) => sorted.sort_by(|a, b| {
            let o = order(&value(e, a), &value(e, b)).unwrap_or(std::cmp::Ordering::Equal);
            if *desc {
                o.reverse()
            } else {
                o
            }
        }),
        None => sorted.sort_by_key(|r| std::cmp::Reverse(r.timestamp)),
    }
    let limit = match q.limit {
        Some(Limit::Count(n)) => (n as usize).min(MAX_ROWS),
        Some(Limit::Max) => MAX_ROWS,
        None => DEFAULT_ROWS,
    };
    let page: Vec<&Row> = sorted
        .into_iter()
        .skip(q.offset.unwrap_or(0) as usize)
        .take(limit)
        .collect();
    let names: Vec<(String, Expr)> = if star {
        let mut keys: BTreeSet<&String> = BTreeSet::new();
        for r in &page {
            keys.extend(r.attrs.keys().filter(|k| *k != "timestamp"));
        }
        std::iter::once(("timestamp".to_string(), Expr::Attr("timestamp".into())))
            .chain(
                keys.into_iter()
                    .take(STAR_COLUMNS)
                    .map(|k| (k.clone(), Expr::Attr(k.clone()))),
            )
            .collect()
    } else {
        q.select
            .iter()
            .map(|i| {
                (
                    i.alias.clone().unwrap_or_else(|| i.expr.to_string()),
                    i.expr.clone(),
                )
            })
            .collect()
    };
    let data: Vec<Vec<Value>> = page
        .iter()
        .map(|r| names.iter().map(|(_, e)| value(e, r).json()).collect())
        .collect();
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, (n, _))| Column {
            name: n.clone(),
            kind: if n == "timestamp" {
                "timestamp"
            } else {
                data.iter()
                    .map(|r| &r[i])
                    .find(|v| !v.is_null())
                    .map_or("string", kind_of)
            },
        })
        .collect();
    (columns, data)
}

/// Aggregates per facet value (and bucket).
fn aggregated_rows(q: &Query, rows: &[&Row], w: Window) -> Table {
    let whole = w.until - w.since;
    // Facet key of each row (rows no case matches are left out).
    let facet_names: Vec<String>;
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<&Row>)> = BTreeMap::new();
    match &q.facet {
        None => {
            facet_names = Vec::new();
            groups.insert(String::new(), (Vec::new(), rows.to_vec()));
        }
        Some(Facet::Items(items)) => {
            facet_names = items
                .iter()
                .map(|i| i.alias.clone().unwrap_or_else(|| i.expr.to_string()))
                .collect();
            for r in rows {
                let key: Vec<Value> = items.iter().map(|i| value(&i.expr, r).json()).collect();
                groups
                    .entry(Value::Array(key.clone()).to_string())
                    .or_insert_with(|| (key, Vec::new()))
                    .1
                    .push(r);
            }
        }
        Some(Facet::Cases { cases, otherwise }) => {
            facet_names = vec!["facet".into()];
            for r in rows {
                let label = cases
                    .iter()
                    .find(|(c, _)| holds(c, r))
                    .map(|(c, l)| json!(l.clone().unwrap_or_else(|| c.to_string())))
                    .or_else(|| {
                        otherwise
                            .as_ref()
                            .map(|o| value(o, r).json())
                            .filter(|v| !v.is_null())
                    });
                if let Some(label) = label {
                    groups
                        .entry(label.to_string())
                        .or_insert_with(|| (vec![label.clone()], Vec::new()))
                        .1
                        .push(r);
                }
            }
        }
    }
    let selects = selects(q);
    // Facets ranked by the first column over the whole window.
    let mut ranked: Vec<(&String, f64)> = groups
        .iter()
        .map(|(k, (_, rs))| {
            let (e, _, p) = &selects[0];
            (k, aggregate(e, rs, whole, *p).as_f64().unwrap_or(f64::MIN))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    if q.facet.is_some() {
        let limit = match q.limit {
            Some(Limit::Count(n)) => (n as usize).min(MAX_ROWS),
            Some(Limit::Max) => MAX_ROWS,
            None => DEFAULT_FACETS,
        };
        ranked.truncate(limit);
    }
    let mut columns: Vec<Column> = facet_names
        .iter()
        .map(|n| Column {
            name: n.clone(),
            kind: "string",
        })
        .collect();
    if w.bucket.is_some() {
        columns.push(Column {
            name: "begin_time".into(),
            kind: "timestamp",
        });
    }
    let starts = super::bucket_starts(&w);
    let mut out = Vec::new();
    for (key, _) in &ranked {
        let (facet, rs) = &groups[*key];
        // Each row into its bucket in one pass (not every row tested against every bucket).
        let buckets: Vec<(i64, Vec<&Row>, i64)> = match w.bucket {
            None => vec![(0, rs.clone(), whole)],
            Some(b) => {
                let mut inside: BTreeMap<i64, Vec<&Row>> = BTreeMap::new();
                for r in rs {
                    inside
                        .entry(r.timestamp.div_euclid(b) * b)
                        .or_default()
                        .push(r);
                }
                starts
                    .iter()
                    .map(|t| (*t, inside.remove(t).unwrap_or_default(), b))
                    .collect()
            }
        };
        // With nothing matched at all, New Relic's aggregates are null (SELECT never ran).
        let nothing = q.facet.is_none() && w.bucket.is_none() && rows.is_empty();
        for (t, inside, width) in buckets {
            let mut row: Vec<Value> = facet.clone();
            if w.bucket.is_some() {
                row.push(json!(t));
            }
            for (e, _, p) in &selects {
                row.push(if nothing {
                    Value::Null
                } else {
                    aggregate(e, &inside, width, *p)
                });
            }
            out.push(row);
        }
    }
    let first_data = out.first().cloned().unwrap_or_default();
    let offset = columns.len();
    for (i, (_, name, _)) in selects.iter().enumerate() {
        let sample = out
            .iter()
            .map(|r| &r[offset + i])
            .find(|v| !v.is_null())
            .or(first_data.get(offset + i));
        columns.push(Column {
            name: name.clone(),
            kind: sample.map_or(
                "number",
                |v| if v.is_null() { "number" } else { kind_of(v) },
            ),
        });
    }
    // Facet columns are labels (New Relic's facets are strings), booleans kept as such.
    for (i, c) in columns.iter_mut().enumerate().take(facet_names.len()) {
        if out
            .iter()
            .map(|r| &r[i])
            .find(|v| !v.is_null())
            .is_some_and(Value::is_boolean)
        {
            c.kind = "boolean";
        }
    }
    (columns, out)
}
