//! Reads of the metric store: the series a set of matchers selects and their samples from head
//! and chunks ([`select`], what the PromQL evaluator calls), and the label, series and metadata
//! listings of Prometheus's HTTP API.
//!
//! Series are chosen in memory after one indexed read by metric name (or every series of the
//! project when no matcher fixes the name): label sets are small, and this keeps every matcher
//! (regexes included) exactly Prometheus's semantics without a label index. The number of series
//! one read may touch is capped ([`MAX_SERIES`]), so a careless `{job=~".+"}` is refused rather
//! than allowed to exhaust memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use super::tiers::{self, Aggregate};
use super::{chunk, parse_labels, unpack_head, MatchOp, Matcher, Series};
use crate::{Result, Store, StoreError};

/// Most series one read may select.
pub const MAX_SERIES: usize = 100_000;

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// More series matched than one read may touch (422: narrow the selector).
    #[error("the selectors match more than {MAX_SERIES} series; add label matchers")]
    TooManySeries,
    /// The samples read went past the caller's budget ([`select_within`]); nothing partial is
    /// returned.
    #[error("more than {0} samples selected")]
    TooManySamples(usize),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored series: id and labels.
#[derive(Debug, Clone)]
struct Stored {
    id: i64,
    labels: Vec<(String, String)>,
}

/// Calls `f(id, labels)` for each series of `project` (of metric `name` only when given),
/// streamed: only the row at hand is in memory, however many series the project has. `f`
/// answers whether to go on.
async fn for_each_series(
    store: &Store,
    project: i64,
    name: Option<&str>,
    mut f: impl FnMut(i64, Vec<(String, String)>) -> Result<bool, ReadError>,
) -> Result<(), ReadError> {
    let q = match name {
        Some(n) => sqlx::query(
            "SELECT id, labels FROM prom_series WHERE project_id = $1 AND name = $2 ORDER BY id",
        )
        .bind(project)
        .bind(n.to_string()),
        None => sqlx::query("SELECT id, labels FROM prom_series WHERE project_id = $1 ORDER BY id")
            .bind(project),
    };
    let mut rows = q.fetch(store.pool());
    while let Some(r) = rows.try_next().await.map_err(StoreError::from)? {
        let labels = parse_labels(&r.try_get::<String, _>("labels").map_err(StoreError::from)?)?;
        let id: i64 = r.try_get("id").map_err(StoreError::from)?;
        if !f(id, labels)? {
            break;
        }
    }
    Ok(())
}

/// The series of `project` that every matcher accepts (all series when `matchers` is empty);
/// [`ReadError::TooManySeries`] beyond [`MAX_SERIES`], never a silent truncation.
async fn matching(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
) -> Result<Vec<Stored>, ReadError> {
    matching_within(store, project, matchers, None, &mut Budget::new(usize::MAX)).await
}

/// [`matching`] charging each kept series to `budget` (see [`Budget::charge_series`]) before
/// it is kept, so the scan stops at the first series past the budget rather than holding every
/// label set first.
async fn matching_within(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
    live: Option<&HashSet<i64>>,
    budget: &mut Budget,
) -> Result<Vec<Stored>, ReadError> {
    let name = matchers
        .iter()
        .find(|m| m.name == "__name__" && m.op == MatchOp::Eq)
        .map(|m| m.value.clone());
    let mut out = Vec::new();
    for_each_series(store, project, name.as_deref(), |id, labels| {
        if live.is_none_or(|l| l.contains(&id))
            && matchers.iter().all(|m| m.matches_labels(&labels))
        {
            if out.len() >= MAX_SERIES {
                return Err(ReadError::TooManySeries);
            }
            budget.charge_series(&labels)?;
            out.push(Stored { id, labels });
        }
        Ok(true)
    })
    .await?;
    Ok(out)
}

/// A read transaction: chunks and head rows read in it come from one snapshot, so a compaction
/// committing in between (moving samples from head to chunks) cannot hide them. SQLite's WAL
/// gives a deferred transaction a snapshot at its first read; PostgreSQL needs REPEATABLE READ.
async fn read_tx(store: &Store) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == crate::Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

/// Counts samples kept against a budget, so a read stops as soon as it goes past it instead of
/// decoding everything first. One budget may span several reads (every selector of a PromQL
/// query): series and samples of all of them count together.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    max: usize,
    series_left: usize,
}

impl Budget {
    /// A budget of `max` samples and at most [`MAX_SERIES`] series over all reads charged to it.
    pub fn new(max: usize) -> Self {
        Budget {
            left: max,
            max,
            series_left: MAX_SERIES,
        }
    }

    /// Samples (and sample-equivalents) still allowed.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Charges one kept series: its label set is held in memory as long as its samples are,
    /// so it costs `1 + label_bytes / 16` samples (a sample is ~16 bytes in the read), and
    /// counts toward the [`MAX_SERIES`] series of the whole budget.
    fn charge_series(&mut self, labels: &[(String, String)]) -> Result<(), ReadError> {
        if self.series_left == 0 {
            return Err(ReadError::TooManySeries);
        }
        self.series_left -= 1;
        let bytes: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        let cost = 1 + bytes / 16;
        if cost > self.left {
            return Err(ReadError::TooManySamples(self.max));
        }
        self.left -= cost;
        Ok(())
    }

    /// Keeps `(t, v)` in `m` unless `t` is already there (the first value of a timestamp wins).
    fn keep(&mut self, m: &mut BTreeMap<i64, u64>, t: i64, v: u64) -> Result<(), ReadError> {
        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(t) {
            if self.left == 0 {
                return Err(ReadError::TooManySamples(self.max));
            }
            self.left -= 1;
            e.insert(v);
        }
        Ok(())
    }
}

/// The samples in `[from, to]` of the series `names` (id → metric name), by series id: chunks
/// first, then head rows in arrival order, the first value of a timestamp kept; the part of the
/// range older than raw data from a downsampled tier (`aggr` per bucket, see [`tiers`]);
/// refused past `budget` samples.
async fn samples(
    store: &Store,
    project: i64,
    names: &HashMap<i64, String>,
    (from, to): (i64, i64),
    aggr: Aggregate,
    budget: &mut Budget,
) -> Result<HashMap<i64, BTreeMap<i64, u64>>, ReadError> {
    let mut out: HashMap<i64, BTreeMap<i64, u64>> = HashMap::new();
    let ids: HashSet<i64> = names.keys().copied().collect();
    let list: Vec<i64> = ids.iter().copied().collect();
    let mut tx = read_tx(store).await?;
    let bounds = tiers::bounds(&mut tx).await?;
    // Before `raw_from` raw blocks may be gone: that part of the range comes from a tier.
    let from = match bounds.raw_from {
        Some(raw_from) if from < raw_from => {
            let old = (from, to.min(raw_from - 1));
            let res = bounds.resolution(from);
            for (id, points) in tiers::read(&mut tx, project, names, res, old, aggr).await? {
                let m = out.entry(id).or_default();
                for (t, v) in points {
                    budget.keep(m, t, v.to_bits())?;
                }
            }
            raw_from
        }
        _ => from,
    };
    if from > to {
        tx.commit().await.map_err(StoreError::from)?;
        return Ok(out);
    }
    for part in list.chunks(500) {
        // Ids come from the database, never from the request: safe to inline.
        let inlist: Vec<String> = part.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT series_id, data FROM prom_chunks
             WHERE series_id IN ({}) AND max_t >= $1 AND min_t <= $2 ORDER BY block_start",
            inlist.join(",")
        );
        let mut rows = sqlx::query(&sql).bind(from).bind(to).fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.map_err(StoreError::from)? {
            let id: i64 = r.try_get("series_id").map_err(StoreError::from)?;
            let data: Vec<u8> = r.try_get("data").map_err(StoreError::from)?;
            let decoded = chunk::decode(&data)
                .ok_or_else(|| StoreError::Corrupt(format!("chunk of series {id}")))?;
            let m = out.entry(id).or_default();
            for (t, v) in decoded {
                if (from..=to).contains(&t) {
                    budget.keep(m, t, weigh(aggr, v))?;
                }
            }
        }
    }
    {
        let mut rows = sqlx::query(
            "SELECT data FROM prom_head WHERE project_id = $1 AND max_t >= $2 AND min_t <= $3
             ORDER BY id",
        )
        .bind(project)
        .bind(from)
        .bind(to)
        .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await.map_err(StoreError::from)? {
            let data: Vec<u8> = r.try_get("data").map_err(StoreError::from)?;
            for (id, t, v) in unpack_head(&data) {
                if (from..=to).contains(&t) && ids.contains(&id) {
                    budget.keep(out.entry(id).or_default(), t, weigh(aggr, v))?;
                }
            }
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(out)
}

/// A raw sample's value as `aggr` reads it: under [`Aggregate::Count`] a tier's point is its
/// bucket's sample count, so each raw sample (a staleness marker aside) weighs 1 and the
/// reader sums the two parts alike.
fn weigh(aggr: Aggregate, bits: u64) -> u64 {
    /// Prometheus's staleness marker, a NaN no arithmetic produces.
    const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
    if aggr == Aggregate::Count && bits != STALE_NAN_BITS {
        1f64.to_bits()
    } else {
        bits
    }
}

/// The series every matcher selects with their samples in `[from_ms, to_ms]` (inclusive), for
/// the PromQL evaluator. Series without a sample in the range are left out; labels are sorted
/// and include `__name__`; values are bit-exact as written (staleness markers included).
pub async fn select(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Series>, ReadError> {
    select_within(
        store,
        project,
        matchers,
        from_ms,
        to_ms,
        &mut Budget::new(usize::MAX),
    )
    .await
}

/// [`select`] charged to `budget`: each matching series (its labels) and each sample read;
/// one past it is [`ReadError::TooManySamples`] (or [`ReadError::TooManySeries`]), never a
/// partial answer (a PromQL query's fetch budget, shared by all its selectors).
pub async fn select_within(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
    from_ms: i64,
    to_ms: i64,
    budget: &mut Budget,
) -> Result<Vec<Series>, ReadError> {
    select_downsampled_within(
        store,
        project,
        matchers,
        (from_ms, to_ms),
        Aggregate::Auto,
        budget,
    )
    .await
}

/// [`select_within`] taking `aggr` from each bucket where the range reaches into a downsampled
/// tier (what a caller that knows the function around the selector asks for, e.g.
/// [`Aggregate::Max`] under `max_over_time`).
pub async fn select_downsampled_within(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
    (from_ms, to_ms): (i64, i64),
    aggr: Aggregate,
    budget: &mut Budget,
) -> Result<Vec<Series>, ReadError> {
    let chosen = matching_within(store, project, matchers, None, budget).await?;
    collect_samples(store, project, chosen, (from_ms, to_ms), aggr, budget).await
}

/// [`select_within`] for series with a sample in `[from_ms, to_ms]` only: a series without
/// one costs nothing of `budget` (NRQL's `FROM Metric` over a project with many idle series).
pub async fn select_active_within(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
    from_ms: i64,
    to_ms: i64,
    budget: &mut Budget,
) -> Result<Vec<Series>, ReadError> {
    let live = active(store, project, from_ms, to_ms).await?;
    let chosen = matching_within(store, project, matchers, Some(&live), budget).await?;
    collect_samples(
        store,
        project,
        chosen,
        (from_ms, to_ms),
        Aggregate::Auto,
        budget,
    )
    .await
}

async fn collect_samples(
    store: &Store,
    project: i64,
    chosen: Vec<Stored>,
    range: (i64, i64),
    aggr: Aggregate,
    budget: &mut Budget,
) -> Result<Vec<Series>, ReadError> {
    let names: HashMap<i64, String> = chosen
        .iter()
        .map(|s| {
            let name = s.labels.iter().find(|(k, _)| k == "__name__");
            (s.id, name.map(|(_, v)| v.clone()).unwrap_or_default())
        })
        .collect();
    let mut data = samples(store, project, &names, range, aggr, budget).await?;
    let mut out = Vec::new();
    for s in chosen {
        if let Some(points) = data.remove(&s.id) {
            if points.is_empty() {
                continue;
            }
            out.push(Series {
                labels: s.labels,
                samples: points
                    .into_iter()
                    .map(|(t, v)| (t, f64::from_bits(v)))
                    .collect(),
            });
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// The ids of `project`'s series with a sample in `[from, to]`.
async fn active(store: &Store, project: i64, from: i64, to: i64) -> Result<HashSet<i64>> {
    let mut tx = read_tx(store).await?;
    let bounds = tiers::bounds(&mut tx).await?;
    let mut out = match bounds.raw_from {
        Some(raw_from) if from < raw_from => {
            let res = bounds.resolution(from);
            tiers::active(&mut tx, project, res, from, to.min(raw_from - 1)).await?
        }
        _ => HashSet::new(),
    };
    {
        let mut rows = sqlx::query(
            "SELECT DISTINCT c.series_id AS id FROM prom_chunks c
             JOIN prom_series s ON s.id = c.series_id
             WHERE s.project_id = $1 AND c.max_t >= $2 AND c.min_t <= $3",
        )
        .bind(project)
        .bind(from)
        .bind(to)
        .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            out.insert(r.try_get::<i64, _>("id")?);
        }
    }
    {
        let mut rows = sqlx::query(
            "SELECT data FROM prom_head WHERE project_id = $1 AND max_t >= $2 AND min_t <= $3",
        )
        .bind(project)
        .bind(from)
        .bind(to)
        .fetch(&mut *tx);
        while let Some(r) = rows.try_next().await? {
            let data: Vec<u8> = r.try_get("data")?;
            for (id, t, _) in unpack_head(&data) {
                if (from..=to).contains(&t) {
                    out.insert(id);
                }
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// The series with data in the range, or `None` (every series) without one.
async fn live_ids(
    store: &Store,
    project: i64,
    range: Option<(i64, i64)>,
) -> Result<Option<HashSet<i64>>> {
    Ok(match range {
        Some((from, to)) => Some(active(store, project, from, to).await?),
        None => None,
    })
}

/// The label sets of the series any of `selectors` matches (each selector a list of matchers
/// that must all hold), with data in `[from, to]` when a range is given. Sorted, distinct.
pub async fn series(
    store: &Store,
    project: i64,
    selectors: &[Vec<Matcher>],
    range: Option<(i64, i64)>,
) -> Result<Vec<Vec<(String, String)>>, ReadError> {
    let live = match range {
        Some((from, to)) => Some(active(store, project, from, to).await?),
        None => None,
    };
    let mut seen = BTreeSet::new();
    let all = [Vec::new()];
    let selectors = if selectors.is_empty() {
        &all[..]
    } else {
        selectors
    };
    for sel in selectors {
        for s in matching(store, project, sel).await? {
            if live.as_ref().is_none_or(|l| l.contains(&s.id)) {
                seen.insert(s.labels);
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// Label names of the selected series (every series when `selectors` is empty), sorted.
pub async fn label_names(
    store: &Store,
    project: i64,
    selectors: &[Vec<Matcher>],
    range: Option<(i64, i64)>,
) -> Result<Vec<String>, ReadError> {
    let mut names = BTreeSet::new();
    if selectors.is_empty() {
        // Without match[] every series counts: streamed, whatever their number.
        let live = live_ids(store, project, range).await?;
        for_each_series(store, project, None, |id, labels| {
            if live.as_ref().is_none_or(|l| l.contains(&id)) {
                names.extend(labels.into_iter().map(|(k, _)| k));
            }
            Ok(true)
        })
        .await?;
        return Ok(names.into_iter().collect());
    }
    for labels in series(store, project, selectors, range).await? {
        names.extend(labels.into_iter().map(|(k, _)| k));
    }
    Ok(names.into_iter().collect())
}

/// The first `limit` metric names of a project, sorted (the `(project_id, name)` index answers it
/// without reading label sets): what a picker lists.
pub async fn metric_names(store: &Store, project: i64, limit: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT name FROM prom_series WHERE project_id = $1 ORDER BY name LIMIT $2",
    )
    .bind(project)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| r.try_get("name").map_err(Into::into))
        .collect()
}

/// Values of label `name` across the selected series, sorted.
pub async fn label_values(
    store: &Store,
    project: i64,
    name: &str,
    selectors: &[Vec<Matcher>],
    range: Option<(i64, i64)>,
) -> Result<Vec<String>, ReadError> {
    let mut values = BTreeSet::new();
    if selectors.is_empty() {
        // Without match[] every series counts: streamed (by metric name for `__name__`),
        // whatever their number.
        let live = live_ids(store, project, range).await?;
        for_each_series(store, project, None, |id, labels| {
            if live.as_ref().is_none_or(|l| l.contains(&id)) {
                values.extend(
                    labels
                        .into_iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v),
                );
            }
            Ok(true)
        })
        .await?;
        return Ok(values.into_iter().collect());
    }
    for labels in series(store, project, selectors, range).await? {
        values.extend(
            labels
                .into_iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v),
        );
    }
    Ok(values.into_iter().collect())
}

/// Metadata of one metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMeta {
    /// Metric family name.
    pub metric: String,
    /// `counter`, `gauge`, …
    pub kind: String,
    /// Help text.
    pub help: String,
    /// Unit.
    pub unit: String,
}

/// Metadata of `project`'s metric families (or of `metric` only), at most `limit`, by name.
pub async fn metadata(
    store: &Store,
    project: i64,
    metric: Option<&str>,
    limit: i64,
) -> Result<Vec<MetricMeta>> {
    let rows = sqlx::query(
        "SELECT metric, kind, help, unit FROM prom_metadata
         WHERE project_id = $1 AND ($2 = '' OR metric = $2) ORDER BY metric LIMIT $3",
    )
    .bind(project)
    .bind(metric.unwrap_or(""))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MetricMeta {
                metric: r.try_get("metric")?,
                kind: r.try_get("kind")?,
                help: r.try_get("help")?,
                unit: r.try_get("unit")?,
            })
        })
        .collect()
}
