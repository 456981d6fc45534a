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

use sqlx::Row;

use super::{chunk, parse_labels, unpack_head, MatchOp, Matcher, Series};
use crate::{Result, Store, StoreError};

/// Most series one read may select.
pub const MAX_SERIES: usize = 100_000;

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// More series matched than one read may touch (422: narrow the selector).
    #[error("the selector matches more than {MAX_SERIES} series; add label matchers")]
    TooManySeries,
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

/// The series of `project` that every matcher accepts (all series when `matchers` is empty).
async fn matching(
    store: &Store,
    project: i64,
    matchers: &[Matcher],
) -> Result<Vec<Stored>, ReadError> {
    let name = matchers
        .iter()
        .find(|m| m.name == "__name__" && m.op == MatchOp::Eq)
        .map(|m| m.value.clone());
    let rows = match &name {
        Some(n) => {
            sqlx::query(
                "SELECT id, labels FROM prom_series WHERE project_id = $1 AND name = $2
                 ORDER BY id LIMIT $3",
            )
            .bind(project)
            .bind(n)
            .bind((MAX_SERIES * 10) as i64)
            .fetch_all(store.pool())
            .await
        }
        None => {
            sqlx::query(
                "SELECT id, labels FROM prom_series WHERE project_id = $1 ORDER BY id LIMIT $2",
            )
            .bind(project)
            .bind((MAX_SERIES * 10) as i64)
            .fetch_all(store.pool())
            .await
        }
    }
    .map_err(StoreError::from)?;
    let mut out = Vec::new();
    for r in rows {
        let labels = parse_labels(&r.try_get::<String, _>("labels").map_err(StoreError::from)?)?;
        if matchers.iter().all(|m| m.matches_labels(&labels)) {
            if out.len() >= MAX_SERIES {
                return Err(ReadError::TooManySeries);
            }
            out.push(Stored {
                id: r.try_get("id").map_err(StoreError::from)?,
                labels,
            });
        }
    }
    Ok(out)
}

/// The samples in `[from, to]` of the series `ids`, by series id: chunks first, then head rows
/// in arrival order, the first value of a timestamp kept.
async fn samples(
    store: &Store,
    project: i64,
    ids: &HashSet<i64>,
    from: i64,
    to: i64,
) -> Result<HashMap<i64, BTreeMap<i64, u64>>> {
    let mut out: HashMap<i64, BTreeMap<i64, u64>> = HashMap::new();
    let list: Vec<i64> = ids.iter().copied().collect();
    for part in list.chunks(500) {
        // Ids come from the database, never from the request: safe to inline.
        let inlist: Vec<String> = part.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT series_id, data FROM prom_chunks
             WHERE series_id IN ({}) AND max_t >= $1 AND min_t <= $2 ORDER BY block_start",
            inlist.join(",")
        );
        for r in sqlx::query(&sql)
            .bind(from)
            .bind(to)
            .fetch_all(store.pool())
            .await?
        {
            let id: i64 = r.try_get("series_id")?;
            let data: Vec<u8> = r.try_get("data")?;
            let decoded = chunk::decode(&data)
                .ok_or_else(|| StoreError::Corrupt(format!("chunk of series {id}")))?;
            let m = out.entry(id).or_default();
            for (t, v) in decoded {
                if (from..=to).contains(&t) {
                    m.entry(t).or_insert(v);
                }
            }
        }
    }
    let rows = sqlx::query(
        "SELECT data FROM prom_head WHERE project_id = $1 AND max_t >= $2 AND min_t <= $3
         ORDER BY id",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?;
    for r in rows {
        let data: Vec<u8> = r.try_get("data")?;
        for (id, t, v) in unpack_head(&data) {
            if (from..=to).contains(&t) && ids.contains(&id) {
                out.entry(id).or_default().entry(t).or_insert(v);
            }
        }
    }
    Ok(out)
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
    let chosen = matching(store, project, matchers).await?;
    let ids: HashSet<i64> = chosen.iter().map(|s| s.id).collect();
    let mut data = samples(store, project, &ids, from_ms, to_ms).await?;
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
    let mut out = HashSet::new();
    let rows = sqlx::query(
        "SELECT DISTINCT c.series_id AS id FROM prom_chunks c
         JOIN prom_series s ON s.id = c.series_id
         WHERE s.project_id = $1 AND c.max_t >= $2 AND c.min_t <= $3",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?;
    for r in rows {
        out.insert(r.try_get::<i64, _>("id")?);
    }
    let rows = sqlx::query(
        "SELECT data FROM prom_head WHERE project_id = $1 AND max_t >= $2 AND min_t <= $3",
    )
    .bind(project)
    .bind(from)
    .bind(to)
    .fetch_all(store.pool())
    .await?;
    for r in rows {
        let data: Vec<u8> = r.try_get("data")?;
        for (id, t, _) in unpack_head(&data) {
            if (from..=to).contains(&t) {
                out.insert(id);
            }
        }
    }
    Ok(out)
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
    for labels in series(store, project, selectors, range).await? {
        names.extend(labels.into_iter().map(|(k, _)| k));
    }
    Ok(names.into_iter().collect())
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
