//! The Prometheus metric store: series (canonical label sets per project), their metadata, and
//! their float samples, kept bit-exactly (NaN payloads and staleness markers included).
//!
//! Samples go through two shapes:
//! - the **head** (`prom_head`): one row per acknowledged write request, its samples packed as
//!   (series id, time, value bits). One row per request is what lets a durable write take
//!   hundreds of thousands of samples a second on SQLite: the group commit inserts a few rows
//!   per fsync instead of one per sample;
//! - **chunks** (`prom_chunks`): the [`compact`] job, under a fenced lease, moves head rows older
//!   than a few minutes into one Gorilla-compressed chunk per series and two-hour block
//!   ([`chunk`]), merging into a block's existing chunk when late samples arrive.
//!
//! Reads ([`query`]) merge both. A timestamp sent twice for one series keeps its first value,
//! so a batch Prometheus retries after a lost answer changes nothing; samples older than a
//! series' newest (out of order) are kept in time order, as Prometheus does with an
//! out-of-order window.

pub mod chunk;
pub mod compact;
pub mod query;
pub mod rules;
pub mod scrape;
pub mod tiers;

use std::collections::HashMap;
use std::sync::Mutex;

use lookout_core::time::now_ms;
use lookout_protocol::remote_write::{Batch, Metadata};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::writer::{Value, Write, WriteQueue};
use crate::{Result, Store, StoreError};

/// Bytes per packed head sample: series id, time ms, value bits (little endian).
const HEAD_SAMPLE: usize = 24;

/// A label matcher as PromQL has them: `=`, `!=`, `=~`, `!~`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name (`__name__` for the metric name).
    pub name: String,
    /// The operator.
    pub op: MatchOp,
    /// The value or pattern, as written.
    pub value: String,
    /// The compiled pattern, anchored at both ends as Prometheus anchors it.
    re: Option<regex::Regex>,
}

/// A matcher's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    Nre,
}

/// Longest regular expression a matcher takes (its compiled size is capped too).
pub const MAX_PATTERN: usize = 4096;

impl Matcher {
    /// A matcher; an invalid regular expression is an error naming it.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        let re = match op {
            MatchOp::Re | MatchOp::Nre => {
                if value.len() > MAX_PATTERN {
                    return Err(format!(
                        "regular expression for {name} is longer than {MAX_PATTERN} bytes"
                    ));
                }
                Some(
                    regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| format!("invalid regular expression for {name}: {e}"))?,
                )
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Whether a label value (`""` when the series lacks the label) matches.
    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }

    /// Whether a whole label set matches.
    pub fn matches_labels(&self, labels: &[(String, String)]) -> bool {
        let v = labels
            .iter()
            .find(|(k, _)| *k == self.name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        self.matches(v)
    }
}

/// A series and its samples, what PromQL evaluation reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels sorted by name, `__name__` included.
    pub labels: Vec<(String, String)>,
    /// (time ms, value), ascending, one per timestamp.
    pub samples: Vec<(i64, f64)>,
}

/// Series ids by (project, 128 bits of the SHA-256 of the canonical labels): a write resolves
/// the series it already saw without a query. Bounded at [`CACHE_MAX`], least recently used
/// first out (hashlink's `LruCache`), so a working set under the bound stays cached whatever
/// passes through (emptying it all when full sent every active series back to the database at
/// once).
#[derive(Debug)]
pub struct SeriesCache {
    ids: Mutex<hashlink::LruCache<(i64, u128), i64>>,
    /// The metadata last committed per (project, metric): remote write 2.0 repeats it in every
    /// request, and an unchanged one is not written again.
    meta: Mutex<HashMap<(i64, String), KnownMeta>>,
}

/// Type, help and unit as last committed.
type KnownMeta = (String, String, String);

/// Most entries the series cache holds.
const CACHE_MAX: usize = 2_000_000;

impl Default for SeriesCache {
    fn default() -> Self {
        SeriesCache::with_capacity(CACHE_MAX)
    }
}

impl SeriesCache {
    fn with_capacity(series: usize) -> Self {
        SeriesCache {
            ids: Mutex::new(hashlink::LruCache::new(series)),
            meta: Mutex::default(),
        }
    }

    fn get(&self, key: (i64, u128)) -> Option<i64> {
        self.ids.lock().ok()?.get(&key).copied()
    }

    fn put(&self, key: (i64, u128), id: i64) {
        if let Ok(mut m) = self.ids.lock() {
            m.insert(key, id);
        }
    }

    /// Forgets everything (after series were deleted).
    pub fn clear(&self) {
        if let Ok(mut m) = self.ids.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.meta.lock() {
            m.clear();
        }
    }

    fn meta_known(&self, project: i64, m: &Metadata) -> bool {
        self.meta.lock().ok().is_some_and(|c| {
            c.get(&(project, m.metric.clone()))
                .is_some_and(|(k, h, u)| k == m.kind.as_str() && *h == m.help && *u == m.unit)
        })
    }

    fn meta_put(&self, project: i64, m: &Metadata) {
        if let Ok(mut c) = self.meta.lock() {
            if c.len() >= CACHE_MAX / 10 {
                c.clear();
            }
            c.insert(
                (project, m.metric.clone()),
                (m.kind.as_str().to_string(), m.help.clone(), m.unit.clone()),
            );
        }
    }
}

/// The canonical text of a sorted label set (stored, and hashed).
pub fn canonical(labels: &[(String, String)]) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

/// The stored 64-bit hash and the 128-bit cache key of a canonical label set.
fn hashes(canonical: &str) -> (i64, u128) {
    let d = Sha256::digest(canonical.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    let key = u128::from_be_bytes(b);
    ((key >> 64) as u64 as i64, key)
}

/// Parses stored labels.
pub(crate) fn parse_labels(text: &str) -> Result<Vec<(String, String)>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("series labels: {e}")))
}

/// What a write stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Float samples made durable.
    pub samples: usize,
    /// Series that did not exist before.
    pub new_series: usize,
}

/// Why a write was refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Two label sets share a 64-bit hash in this project (400: the batch names the series).
    #[error("series {0} collides with a stored series; it was not written")]
    Collision(String),
    /// The project would have more series than its limit (400: more of the same would be too).
    #[error("the project is at its limit of {0} series; new series are refused")]
    SeriesLimit(i64),
    /// Storage failed or is overloaded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IngestError {
    fn from(e: sqlx::Error) -> Self {
        IngestError::Store(e.into())
    }
}

/// Stores a decoded batch for `project`: new series first (idempotent), then the samples and
/// metadata in one group commit. Returns once durable.
pub async fn ingest(
    store: &Store,
    writes: &WriteQueue,
    project: i64,
    batch: &Batch,
) -> Result<Written, IngestError> {
    ingest_limited(store, writes, project, batch, i64::MAX).await
}

/// [`ingest`], refusing the batch ([`IngestError::SeriesLimit`]) when it would take `project`
/// past `max_series` series; no sample of a refused batch is stored.
pub async fn ingest_limited(
    store: &Store,
    writes: &WriteQueue,
    project: i64,
    batch: &Batch,
    max_series: i64,
) -> Result<Written, IngestError> {
    ingest_with(store, writes, project, batch, max_series, Vec::new()).await
}

/// [`ingest_limited`] with `first` written ahead of the samples in the same commit: a lease's
/// [`crate::cluster::guard`] (the whole batch then fails with [`StoreError::Fenced`] when the
/// lease moved on) and whatever must commit with the samples (a scrape target's state).
pub async fn ingest_with(
    store: &Store,
    writes: &WriteQueue,
    project: i64,
    batch: &Batch,
    max_series: i64,
    first: Vec<Write>,
) -> Result<Written, IngestError> {
    let cache = store.prom_cache();
    let mut ids = Vec::with_capacity(batch.series.len());
    let mut missing: Vec<(usize, String, i64, u128)> = Vec::new();
    for (i, s) in batch.series.iter().enumerate() {
        let text = canonical(&s.labels);
        let (hash, key) = hashes(&text);
        match cache.get((project, key)) {
            Some(id) => ids.push(id),
            None => {
                ids.push(0);
                missing.push((i, text, hash, key));
            }
        }
    }
    let mut written = Written::default();
    if !missing.is_empty() {
        written.new_series =
            create_series(store, project, batch, &mut ids, &missing, max_series).await?;
    }
    let mut data = Vec::with_capacity(batch.samples() * HEAD_SAMPLE);
    let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
    for (s, id) in batch.series.iter().zip(&ids) {
        for &(t, v) in &s.samples {
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&t.to_le_bytes());
            data.extend_from_slice(&v.to_bits().to_le_bytes());
            min_t = min_t.min(t);
            max_t = max_t.max(t);
        }
    }
    let samples = data.len() / HEAD_SAMPLE;
    let now = now_ms();
    let mut w = first;
    w.reserve(1 + batch.metadata.len());
    if samples > 0 {
        w.push(Write::Insert {
            table: "prom_head",
            columns: &[
                "project_id",
                "min_t",
                "max_t",
                "samples",
                "data",
                "received_at",
            ],
            values: vec![
                project.into(),
                min_t.into(),
                max_t.into(),
                (samples as i64).into(),
                Value::Bytes(Some(data)),
                now.into(),
            ],
        });
    }
    let changed: Vec<&Metadata> = batch
        .metadata
        .iter()
        .filter(|m| !cache.meta_known(project, m))
        .collect();
    for m in &changed {
        w.push(metadata_write(project, m, now));
    }
    if !w.is_empty() {
        writes.write(w).await?;
    }
    // Remembered only once committed.
    for m in changed {
        cache.meta_put(project, m);
    }
    written.samples = samples;
    Ok(written)
}

fn metadata_write(project: i64, m: &Metadata, now: i64) -> Write {
    Write::Exec {
        sql: "INSERT INTO prom_metadata (project_id, metric, kind, help, unit, updated_at)
              VALUES ($1, $2, $3, $4, $5, $6)
              ON CONFLICT (project_id, metric) DO UPDATE SET kind = excluded.kind,
                help = excluded.help, unit = excluded.unit, updated_at = excluded.updated_at",
        args: vec![
            project.into(),
            m.metric.clone().into(),
            m.kind.as_str().into(),
            m.help.clone().into(),
            m.unit.clone().into(),
            now.into(),
        ],
    }
}

/// Creates the series of `missing` (those not in the cache) and fills their ids; a hash taken
/// by a different label set refuses the batch. Returns how many were new.
/// Which of these label sets are stored series of `project` (the same labels, not only the same
/// hash): what a writer that was refused new series (series limit, collision) may still write.
pub async fn stored_series(
    store: &Store,
    project: i64,
    labels: &[&[(String, String)]],
) -> Result<Vec<bool>> {
    let cache = store.prom_cache();
    let mut known = vec![false; labels.len()];
    let mut ask: Vec<(usize, String, i64)> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let text = canonical(l);
        let (hash, key) = hashes(&text);
        if cache.get((project, key)).is_some() {
            known[i] = true;
        } else {
            ask.push((i, text, hash));
        }
    }
    for part in ask.chunks(500) {
        // Hashes are integers formatted here, never user text.
        let sql = format!(
            "SELECT hash, labels FROM prom_series WHERE project_id = $1 AND hash IN ({})",
            part.iter()
                .map(|m| m.2.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut found: HashMap<i64, String> = HashMap::new();
        for r in sqlx::query(&sql)
            .bind(project)
            .fetch_all(store.pool())
            .await?
        {
            found.insert(r.try_get("hash")?, r.try_get("labels")?);
        }
        for (i, text, hash) in part {
            if found.get(hash) == Some(text) {
                if let Some(k) = known.get_mut(*i) {
                    *k = true;
                }
            }
        }
    }
    Ok(known)
}

async fn create_series(
    store: &Store,
    project: i64,
    batch: &Batch,
    ids: &mut [i64],
    missing: &[(usize, String, i64, u128)],
    max_series: i64,
) -> Result<usize, IngestError> {
    let now = now_ms();
    let mut new = 0;
    // Bounded statements: 300 series × 5 values stays under SQLite's variable limit.
    for part in missing.chunks(300) {
        let _gate = store.write_gate().await;
        let mut tx = store.begin_write().await?;
        // Insert-if-absent first, then read every id back: on PostgreSQL two requests may
        // create the same series at once, and the second must find the first's row.
        for (i, text, hash, _) in part {
            let name = batch
                .series
                .get(*i)
                .map(|s| s.name().to_string())
                .unwrap_or_default();
            new += sqlx::query(
                "INSERT INTO prom_series (project_id, name, labels, hash, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, hash) DO NOTHING",
            )
            .bind(project)
            .bind(name)
            .bind(text.as_str())
            .bind(*hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        // Counted after inserting, inside the transaction: exact, and a batch over the cap
        // rolls back (series of earlier parts of the batch stay; they are valid and unused).
        if max_series < i64::MAX {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM prom_series WHERE project_id = $1")
                .bind(project)
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
            if n > max_series {
                return Err(IngestError::SeriesLimit(max_series));
            }
        }
        let hashes: Vec<String> = part.iter().map(|m| m.2.to_string()).collect();
        let sql = format!(
            "SELECT id, hash, labels FROM prom_series WHERE project_id = $1 AND hash IN ({})",
            hashes.join(",")
        );
        let mut found: HashMap<i64, (i64, String)> = HashMap::new();
        for r in sqlx::query(&sql).bind(project).fetch_all(&mut *tx).await? {
            let hash: i64 = r.try_get("hash")?;
            found.insert(hash, (r.try_get("id")?, r.try_get("labels")?));
        }
        for (i, text, hash, _) in part {
            match found.get(hash) {
                Some((id, labels)) if labels == text => {
                    if let Some(slot) = ids.get_mut(*i) {
                        *slot = *id;
                    }
                }
                _ => return Err(IngestError::Collision(text.chars().take(200).collect())),
            }
        }
        tx.commit().await?;
        // Cached only once committed: nothing in memory claims a series the database lacks.
        for (i, _, _, key) in part {
            if let Some(id) = ids.get(*i) {
                store.prom_cache().put((project, *key), *id);
            }
        }
    }
    Ok(new)
}

/// Unpacks a head row's samples: (series id, time, value bits).
pub(crate) fn unpack_head(data: &[u8]) -> impl Iterator<Item = (i64, i64, u64)> + '_ {
    data.chunks_exact(HEAD_SAMPLE).map(|c| {
        let mut a = [0u8; 8];
        let mut field = |k: usize| {
            a.copy_from_slice(&c[k * 8..k * 8 + 8]);
            a
        };
        let id = i64::from_le_bytes(field(0));
        let t = i64::from_le_bytes(field(1));
        let v = u64::from_le_bytes(field(2));
        (id, t, v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_cache_keeps_its_working_set_within_its_bound() {
        let bound = 2000u128;
        let c = SeriesCache::with_capacity(bound as usize);
        // A working set of three quarters of the bound, touched between batches of one-off
        // series, never misses once cached, and the cache never holds more than its bound.
        let working = bound * 3 / 4;
        for i in 0..working {
            c.put((1, i), i as i64);
        }
        for round in 0..6u128 {
            for i in 0..working {
                assert_eq!(c.get((1, i)), Some(i as i64), "round {round}, series {i}");
            }
            for j in 0..bound / 4 {
                c.put((1, bound * (round + 1) + j), 0);
            }
            let held = c.ids.lock().unwrap().len();
            assert!(held <= bound as usize, "{held}");
        }
        // One-off series from long ago are gone.
        assert_eq!(c.get((1, bound)), None);
    }

    #[test]
    fn matchers_are_anchored_like_prometheus() {
        let m = Matcher::new("job", MatchOp::Re, "no.e").unwrap();
        assert!(m.matches("node"));
        assert!(!m.matches("nodes"));
        assert!(!m.matches("a node"));
        let empty = Matcher::new("missing", MatchOp::Eq, "").unwrap();
        assert!(empty.matches_labels(&[("job".into(), "x".into())]));
        assert!(Matcher::new("a", MatchOp::Re, "(").is_err());
        let nre = Matcher::new("job", MatchOp::Nre, "a|b").unwrap();
        assert!(nre.matches("c") && !nre.matches("a"));
    }

    #[test]
    fn head_rows_unpack_what_was_packed() {
        let mut d = Vec::new();
        for (id, t, v) in [(1i64, -5i64, u64::MAX), (7, 9, 0x7ff0_0000_0000_0002)] {
            d.extend_from_slice(&id.to_le_bytes());
            d.extend_from_slice(&t.to_le_bytes());
            d.extend_from_slice(&v.to_le_bytes());
        }
        let got: Vec<_> = unpack_head(&d).collect();
        assert_eq!(got, vec![(1, -5, u64::MAX), (7, 9, 0x7ff0_0000_0000_0002)]);
    }
}
