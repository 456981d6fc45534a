//! NRQL over event rows: every event type of [`super::events`], every aggregator of the
//! language, `WHERE` on any attribute, `FACET` (attributes and `CASES`), `TIMESERIES`, raw rows
//! (`SELECT *`, attributes, `ORDER BY`, `LIMIT`, `OFFSET`) and `COMPARE WITH`. Used for the
//! shapes the rollups cannot answer; figures are exact over the rows read (percentiles by
//! nearest rank), where the rollup path's percentiles are within its sketch's 1 %.
//!
//! Rows stream through: each is folded into its group's accumulators ([`super::fold`]) or
//! offered to a bounded page of raw rows, then dropped. What a query keeps is counted against
//! its memory budget and its deadline is checked as it reads ([`super::limits`]).

use std::cmp::Ordering;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::eval::{attrs, check, holds, is_aggregate, num, selects, value};
use super::events::{self, Need, Row, V};
use super::fold::Acc;
use super::limits::Budget;
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

/// Runs `q` over the rows of its event type in `w`, within `budget`.
pub async fn execute(
    store: &Store,
    projects: &[i64],
    q: &Query,
    w: Window,
    budget: &mut Budget,
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
    let need = needed(q, &used);
    let mut unseen = used.clone();
    let mut warnings = Vec::new();
    let (mut columns, mut out, read) = pass(
        store,
        projects,
        ty,
        q,
        w,
        &need,
        budget,
        &mut unseen,
        aggregated,
        &mut warnings,
    )
    .await?;
    if read {
        for a in &unseen {
            warnings.push(format!(
                "Unknown attribute `{a}` on {ty}: it is null on every row"
            ));
        }
    }
    if let Some((since, until)) = w.compare {
        let shifted = Window {
            since,
            until,
            compare: None,
            bucket: w.bucket,
        };
        let (_, previous, _) = pass(
            store,
            projects,
            ty,
            q,
            shifted,
            &need,
            budget,
            &mut BTreeSet::new(),
            aggregated,
            &mut warnings,
        )
        .await?;
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

/// The attributes rows must carry: what `used` names plus the `FACET CASES` conditions and the
/// `ORDER BY` expression; every attribute for `SELECT *`.
fn needed(q: &Query, used: &BTreeSet<String>) -> Need {
    if q.select.iter().any(|i| matches!(i.expr, Expr::Star)) {
        return None;
    }
    let mut need = used.clone();
    if let Some(Facet::Cases { cases, otherwise }) = &q.facet {
        for (c, _) in cases {
            attrs(c, &mut need);
        }
        if let Some(o) = otherwise {
            attrs(o, &mut need);
        }
    }
    if let Some((e, _)) = &q.order_by {
        attrs(e, &mut need);
    }
    Some(need)
}

/// Reads the window once, folding each row that meets `WHERE` into the answer; also whether
/// any row was read, and removes from `unseen` every attribute some row has.
#[allow(clippy::too_many_arguments)]
async fn pass(
    store: &Store,
    projects: &[i64],
    ty: &str,
    q: &Query,
    w: Window,
    need: &Need,
    budget: &mut Budget,
    unseen: &mut BTreeSet<String>,
    aggregated: bool,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Column>, Vec<Vec<Value>>, bool), QueryError> {
    let mut read = false;
    let mut groups = aggregated.then(|| Groups::new(q, w));
    let mut page = (!aggregated).then(|| Page::new(q));
    let scope = events::Scope {
        filter: q.filter.as_ref(),
        warnings,
    };
    events::scan(
        store,
        projects,
        ty,
        (w.since, w.until),
        need,
        scope,
        &mut |r| {
            read = true;
            if !unseen.is_empty() {
                unseen.retain(|a| !r.attrs.contains_key(a));
            }
            let matched = q.filter.as_ref().is_none_or(|c| holds(c, &r));
            let kept = match (&mut groups, &mut page) {
                (Some(g), _) if matched => g.add(&r),
                (_, Some(p)) if matched => p.add(r),
                (Some(g), _) => g.kept,
                (_, Some(p)) => p.bytes,
                (None, None) => 0,
            };
            budget.row(kept)
        },
    )
    .await?;
    let (columns, rows) = match (groups, page) {
        (Some(g), _) => g.finish(budget)?,
        (_, Some(p)) => p.finish(),
        (None, None) => (Vec::new(), Vec::new()),
    };
    Ok((columns, rows, read))
}

type Table = (Vec<Column>, Vec<Vec<Value>>);

/// The rows of a raw-row query that can still be on its page: the best `OFFSET + LIMIT` of the
/// rows seen (newest first unless `ORDER BY`). New rows are appended and, once twice as many
/// are held, sorted stably and cut back, so the page equals a stable sort of every row.
struct Page<'q> {
    q: &'q Query,
    keep: usize,
    rows: Vec<Row>,
    bytes: usize,
}

impl<'q> Page<'q> {
    fn new(q: &'q Query) -> Page<'q> {
        let keep = usize::try_from(q.offset.unwrap_or(0))
            .unwrap_or(usize::MAX)
            .saturating_add(page_limit(q));
        Page {
            q,
            keep,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    fn compare(&self, a: &Row, b: &Row) -> Ordering {
        row_order(self.q.order_by.as_ref(), a, b)
    }

    fn cut(&mut self) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by(|a, b| self.compare(a, b));
        rows.truncate(self.keep);
        self.bytes = rows.iter().map(Row::weight).sum();
        self.rows = rows;
    }

    /// Offers a row; returns the bytes held.
    fn add(&mut self, r: Row) -> usize {
        if self.keep == 0 {
            return 0;
        }
        self.bytes += r.weight();
        self.rows.push(r);
        if self.rows.len() >= self.keep.saturating_mul(2).max(1_024) {
            self.cut();
        }
        self.bytes
    }

    fn finish(mut self) -> Table {
        self.cut();
        let skip = usize::try_from(self.q.offset.unwrap_or(0)).unwrap_or(usize::MAX);
        let page: Vec<&Row> = self.rows.iter().skip(skip).collect();
        raw_rows(self.q, &page)
    }
}

/// The order of raw rows: newest first, or by `ORDER BY`. A total order, which a page kept
/// row by row needs (the first page of a stable sort must not depend on when it was cut): rows
/// without the value come last in either direction, numbers (and booleans) before text, text
/// by its characters.
fn row_order(order_by: Option<&(Expr, bool)>, a: &Row, b: &Row) -> Ordering {
    let Some((e, desc)) = order_by else {
        return b.timestamp.cmp(&a.timestamp);
    };
    let key = |r: &Row| match value(e, r) {
        V::Null => (2, None, None),
        V::Str(s) => (1, None, Some(s)),
        v => (0, num(&v), None),
    };
    let ((ca, na, sa), (cb, nb, sb)) = (key(a), key(b));
    ca.cmp(&cb).then_with(|| {
        let inner = match (na, nb) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => sa.cmp(&sb),
        };
        if *desc {
            inner.reverse()
        } else {
            inner
        }
    })
}

fn page_limit(q: &Query) -> usize {
    match q.limit {
        Some(Limit::Count(n)) => (n as usize).min(MAX_ROWS),
        Some(Limit::Max) => MAX_ROWS,
        None => DEFAULT_ROWS,
    }
}

/// `SELECT *` or attributes: the page's rows (already ordered and limited) as columns.
fn raw_rows(q: &Query, page: &[&Row]) -> Table {
    let star = q.select.iter().any(|i| matches!(i.expr, Expr::Star));
    let names: Vec<(String, Expr)> = if star {
        let mut keys: BTreeSet<&String> = BTreeSet::new();
        for r in page {
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

/// A fresh accumulator per column.
fn new_accs<'q>(selects: &[(&'q Expr, String, Option<f64>)]) -> Vec<Acc<'q>> {
    selects.iter().map(|(e, _, p)| Acc::new(e, *p)).collect()
}

/// One facet value's accumulators.
struct Group<'q> {
    /// The facet columns' values.
    facet: Vec<Value>,
    /// The first column over the whole window, to rank facets by (with `TIMESERIES` only;
    /// without, the single bucket's first column is that).
    rank: Option<Acc<'q>>,
    /// Per bucket start (`0` without `TIMESERIES`), one accumulator per column.
    buckets: BTreeMap<i64, Vec<Acc<'q>>>,
}

/// Aggregates per facet value (and bucket), folded row by row.
struct Groups<'q> {
    q: &'q Query,
    w: Window,
    selects: Vec<(&'q Expr, String, Option<f64>)>,
    facet_names: Vec<String>,
    /// By the facet values' JSON text (which orders ties among equal ranks, as before).
    groups: BTreeMap<String, Group<'q>>,
    matched: bool,
    /// Bytes held, for the memory budget.
    kept: usize,
}

impl<'q> Groups<'q> {
    fn new(q: &'q Query, w: Window) -> Groups<'q> {
        let facet_names = match &q.facet {
            None => Vec::new(),
            Some(Facet::Items(items)) => items
                .iter()
                .map(|i| i.alias.clone().unwrap_or_else(|| i.expr.to_string()))
                .collect(),
            Some(Facet::Cases { .. }) => vec!["facet".into()],
        };
        Groups {
            q,
            w,
            selects: selects(q),
            facet_names,
            groups: BTreeMap::new(),
            matched: false,
            kept: 0,
        }
    }

    /// Folds in a row that meets `WHERE`; returns the bytes held.
    fn add(&mut self, r: &Row) -> usize {
        self.matched = true;
        // The row's facet (rows no case matches are left out).
        let (key, facet) = match &self.q.facet {
            None => (String::new(), Vec::new()),
            Some(Facet::Items(items)) => {
                let facet: Vec<Value> = items.iter().map(|i| value(&i.expr, r).json()).collect();
                (Value::Array(facet.clone()).to_string(), facet)
            }
            Some(Facet::Cases { cases, otherwise }) => {
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
                match label {
                    Some(label) => (label.to_string(), vec![label]),
                    None => return self.kept,
                }
            }
        };
        let bucket = self.w.bucket.map_or(0, |b| r.timestamp.div_euclid(b) * b);
        if !self.groups.contains_key(&key) {
            let rank = self
                .w
                .bucket
                .and_then(|_| self.selects.first())
                .map(|(e, _, p)| Acc::new(e, *p));
            self.kept += 2 * key.len() + 128 + rank.as_ref().map_or(0, Acc::weight);
            self.groups.insert(
                key.clone(),
                Group {
                    facet,
                    rank,
                    buckets: BTreeMap::new(),
                },
            );
        }
        let Some(g) = self.groups.get_mut(&key) else {
            return self.kept;
        };
        let accs = match g.buckets.entry(bucket) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let fresh = new_accs(&self.selects);
                self.kept += 64 + fresh.iter().map(Acc::weight).sum::<usize>();
                e.insert(fresh)
            }
        };
        for a in accs.iter_mut() {
            self.kept += a.add(r);
        }
        if let Some(rank) = &mut g.rank {
            self.kept += rank.add(r);
        }
        self.kept
    }

    fn finish(mut self, budget: &Budget) -> Result<Table, QueryError> {
        let q = self.q;
        let w = self.w;
        let whole = w.until - w.since;
        if q.facet.is_none() && self.groups.is_empty() {
            self.groups.insert(
                String::new(),
                Group {
                    facet: Vec::new(),
                    rank: None,
                    buckets: BTreeMap::new(),
                },
            );
        }
        // Facets ranked by the first column over the whole window.
        let (first, _, first_p) = &self.selects[0];
        let mut ranked: Vec<(String, f64)> = self
            .groups
            .iter_mut()
            .map(|(k, g)| {
                let v = match (&mut g.rank, g.buckets.get_mut(&0)) {
                    (Some(rank), _) => rank.finish(whole),
                    (None, Some(accs)) => accs[0].finish(whole),
                    (None, None) => Acc::new(first, *first_p).finish(whole),
                };
                (k.clone(), v.as_f64().unwrap_or(f64::MIN))
            })
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if q.facet.is_some() {
            let limit = match q.limit {
                Some(Limit::Count(n)) => (n as usize).min(MAX_ROWS),
                Some(Limit::Max) => MAX_ROWS,
                None => DEFAULT_FACETS,
            };
            ranked.truncate(limit);
        }
        let starts = super::rollup::bucket_starts(&w);
        budget.answer_rows(ranked.len(), starts.len())?;
        let mut columns: Vec<Column> = self
            .facet_names
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
        // With nothing matched at all, New Relic's aggregates are null (SELECT never ran).
        let nothing = q.facet.is_none() && w.bucket.is_none() && !self.matched;
        let width = w.bucket.unwrap_or(whole);
        let mut out = Vec::new();
        let selects = &self.selects;
        for (key, _) in &ranked {
            let Some(g) = self.groups.get_mut(key) else {
                continue;
            };
            for &t in &starts {
                let mut row: Vec<Value> = g.facet.clone();
                if w.bucket.is_some() {
                    row.push(json!(t));
                }
                let mut empty;
                let accs = match g.buckets.get_mut(&t) {
                    Some(accs) => accs,
                    None => {
                        empty = new_accs(selects);
                        &mut empty
                    }
                };
                for a in accs.iter_mut() {
                    row.push(if nothing {
                        Value::Null
                    } else {
                        a.finish(width)
                    });
                }
                out.push(row);
            }
        }
        let first_data = out.first().cloned().unwrap_or_default();
        let offset = columns.len();
        for (i, (_, name, _)) in self.selects.iter().enumerate() {
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
        for (i, c) in columns.iter_mut().enumerate().take(self.facet_names.len()) {
            if out
                .iter()
                .map(|r| &r[i])
                .find(|v| !v.is_null())
                .is_some_and(Value::is_boolean)
            {
                c.kind = "boolean";
            }
        }
        Ok((columns, out))
    }
}

#[cfg(test)]
mod tests {
    use super::Page;
    use crate::query::nrql::eval::value;
    use crate::query::nrql::events::{Row, V};

    /// The bounded page holds what a stable sort of every row, then OFFSET and LIMIT, held
    /// (rows without the ORDER BY value and ties included).
    #[test]
    fn the_bounded_page_equals_sorting_every_row() {
        let rows: Vec<Row> = (0..5_000)
            .map(|i: i64| {
                let mut r = Row {
                    timestamp: (i * 7_919) % 1_201,
                    ..Row::default()
                };
                r.attrs.insert("i".into(), V::Num(i as f64));
                if i % 3 != 0 {
                    r.attrs.insert("d".into(), V::Num(((i * 31) % 97) as f64));
                }
                r
            })
            .collect();
        for nrql in [
            "SELECT i FROM Span LIMIT 7",
            "SELECT i FROM Span ORDER BY d DESC LIMIT 10 OFFSET 5",
            "SELECT i FROM Span ORDER BY d LIMIT 600",
            "SELECT i FROM Span",
        ] {
            let q = lookout_nrql::parse(nrql).unwrap();
            let mut page = Page::new(&q);
            for r in rows.clone() {
                page.add(r);
            }
            let (_, got) = page.finish();
            let mut all: Vec<&Row> = rows.iter().collect();
            all.sort_by(|a, b| super::row_order(q.order_by.as_ref(), a, b));
            let want: Vec<serde_json::Value> = all
                .iter()
                .skip(q.offset.unwrap_or(0) as usize)
                .take(super::page_limit(&q))
                .map(|r| value(&q.select[0].expr, r).json())
                .collect();
            let got: Vec<serde_json::Value> = got.into_iter().map(|mut r| r.remove(0)).collect();
            assert_eq!(got, want, "{nrql}");
        }
    }
}
