//! Compaction and retention of the metric store, run by one replica at a time under a fenced
//! job lease.
//!
//! Compaction takes head rows received more than [`SETTLE_MS`] ago (so that most samples of a
//! block arrive before it is first encoded), groups their samples by series and two-hour block,
//! merges each group into the block's existing chunk (the stored value of a timestamp wins, as
//! on read), writes the chunk and deletes the head rows — all in one transaction that first
//! proves the lease is still held, so two replicas can never interleave a merge and lose samples.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use super::{chunk, unpack_head};
use crate::{Result, Store, StoreError};

/// Width of a chunk's block, ms (Prometheus's TSDB head block too).
pub const BLOCK_MS: i64 = 2 * 3_600_000;
/// How long a head row waits before compaction, ms.
pub const SETTLE_MS: i64 = 5 * 60_000;
/// Head rows compacted per transaction at most.
const ROWS_PER_TX: i64 = 200;
/// Samples compacted per transaction at most (rows are read one by one until this many, at
/// least one row): a head row may hold up to 500,000 samples, so a row count alone would let a
/// transaction hold 100 million.
pub const SAMPLES_PER_TX: i64 = 1_000_000;

/// What one compaction run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Head rows folded into chunks.
    pub head_rows: usize,
    /// Samples moved.
    pub samples: usize,
    /// Chunks written (new or merged).
    pub chunks: usize,
    /// Damaged chunks found, logged and replaced by the samples merged into them.
    pub quarantined: usize,
    /// Samples whose block start overflows i64 (never stored by remote write, which refuses
    /// such timestamps; dropped here with a log line should an old head row hold one).
    pub dropped: usize,
    /// Whether a limit stopped this pass before the head was drained.
    pub more: bool,
}

/// The lease a compaction runs under: the job's id and the fencing token of its claim.
#[derive(Debug, Clone)]
pub struct Fence {
    /// Job id.
    pub job: String,
    /// Fencing token.
    pub token: i64,
}

/// Compacts every head row received before `now - settle_ms`.
pub async fn compact(
    store: &Store,
    fence: Option<&Fence>,
    now: i64,
    settle_ms: i64,
) -> Result<Compacted> {
    compact_as(store, fence, now, settle_ms, chunk::Layout::V1).await
}

/// [`compact`] writing chunks in `layout` (see [`chunk::Layout`]: the old one while a replica
/// that reads nothing else is live).
pub async fn compact_as(
    store: &Store,
    fence: Option<&Fence>,
    now: i64,
    settle_ms: i64,
    layout: chunk::Layout,
) -> Result<Compacted> {
    let mut total = Compacted::default();
    loop {
        let done = compact_some(store, fence, now - settle_ms, layout).await?;
        total.head_rows += done.head_rows;
        total.samples += done.samples;
        total.chunks += done.chunks;
        total.quarantined += done.quarantined;
        total.dropped += done.dropped;
        if !done.more {
            return Ok(total);
        }
    }
}

async fn compact_some(
    store: &Store,
    fence: Option<&Fence>,
    before: i64,
    layout: chunk::Layout,
) -> Result<Compacted> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    hold_fence(&mut tx, fence).await?;
    // Streamed, and stopped at the sample cap: only the rows taken are ever in memory.
    let mut rows = Vec::new();
    let mut taken = 0i64;
    let mut more = false;
    {
        let mut stream = sqlx::query(
            "SELECT id, samples, data FROM prom_head WHERE received_at < $1 ORDER BY id LIMIT $2",
        )
        .bind(before)
        .bind(ROWS_PER_TX + 1)
        .fetch(&mut *tx);
        while let Some(r) = stream.try_next().await? {
            let n: i64 = r.try_get("samples")?;
            if !rows.is_empty()
                && (taken.saturating_add(n) > SAMPLES_PER_TX || rows.len() as i64 >= ROWS_PER_TX)
            {
                more = true;
                break;
            }
            taken = taken.saturating_add(n);
            rows.push(r);
        }
    }
    let mut done = Compacted {
        head_rows: rows.len(),
        more,
        ..Compacted::default()
    };
    if rows.is_empty() {
        return Ok(done);
    }
    // (series, block) → samples in arrival order.
    let mut groups: BTreeMap<(i64, i64), Vec<(i64, u64)>> = BTreeMap::new();
    let mut head_ids = Vec::with_capacity(rows.len());
    for r in &rows {
        head_ids.push(r.try_get::<i64, _>("id")?.to_string());
        let data: Vec<u8> = r.try_get("data")?;
        for (id, t, v) in unpack_head(&data) {
            let Some(block) = block_start(t) else {
                tracing::warn!(
                    series = id,
                    t,
                    "Compaction: a sample's block overflows; dropped."
                );
                done.dropped += 1;
                continue;
            };
            groups.entry((id, block)).or_default().push((t, v));
            done.samples += 1;
        }
    }
    drop(rows);
    // Series deleted since (their project went away) take their samples with them.
    let series: Vec<i64> = groups
        .keys()
        .map(|k| k.0)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut alive = HashSet::new();
    for part in series.chunks(500) {
        let list: Vec<String> = part.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT id FROM prom_series WHERE id IN ({})",
            list.join(",")
        );
        for r in sqlx::query(&sql).fetch_all(&mut *tx).await? {
            alive.insert(r.try_get::<i64, _>("id")?);
        }
    }
    let mut existing: HashMap<(i64, i64), Vec<u8>> = HashMap::new();
    let keys: Vec<(i64, i64)> = groups
        .keys()
        .copied()
        .filter(|k| alive.contains(&k.0))
        .collect();
    for part in keys.chunks(300) {
        let cond: Vec<String> = part
            .iter()
            .map(|(s, b)| format!("(series_id = {s} AND block_start = {b})"))
            .collect();
        let sql = format!(
            "SELECT series_id, block_start, data FROM prom_chunks WHERE {}",
            cond.join(" OR ")
        );
        for r in sqlx::query(&sql).fetch_all(&mut *tx).await? {
            existing.insert(
                (r.try_get("series_id")?, r.try_get("block_start")?),
                r.try_get("data")?,
            );
        }
    }
    for key in keys {
        let Some(new) = groups.remove(&key) else {
            continue;
        };
        let mut merged: BTreeMap<i64, u64> = BTreeMap::new();
        if let Some(old) = existing.get(&key) {
            match chunk::decode(old) {
                Some(old) => merged.extend(old),
                None => {
                    // A damaged chunk must not stop compaction for ever: its samples are
                    // lost either way, so it is logged, counted and overwritten by the new
                    // samples of its block (the upsert below), and compaction goes on.
                    tracing::error!(
                        series = key.0,
                        block = key.1,
                        bytes = old.len(),
                        "Compaction: a damaged chunk was quarantined (replaced)."
                    );
                    metrics::counter!("lookout_prometheus_chunks_quarantined_total").increment(1);
                    done.quarantined += 1;
                }
            }
        }
        for (t, v) in new {
            merged.entry(t).or_insert(v);
        }
        let samples: Vec<(i64, u64)> = merged.into_iter().collect();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO prom_chunks (series_id, block_start, min_t, max_t, samples, data)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (series_id, block_start) DO UPDATE SET min_t = excluded.min_t,
               max_t = excluded.max_t, samples = excluded.samples, data = excluded.data",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(first.0)
        .bind(last.0)
        .bind(samples.len() as i64)
        .bind(chunk::encode_as(&samples, layout))
        .execute(&mut *tx)
        .await?;
        done.chunks += 1;
    }
    let sql = format!("DELETE FROM prom_head WHERE id IN ({})", head_ids.join(","));
    sqlx::query(&sql).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(done)
}

/// Proves, inside `tx`, that the lease `fence` names is still held ([`StoreError::Fenced`]
/// otherwise), and keeps it so until commit.
pub(super) async fn hold_fence(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    fence: Option<&Fence>,
) -> Result<()> {
    if let Some(f) = fence {
        // An UPDATE, not a SELECT: on PostgreSQL it locks the job row until commit, so a new
        // claim cannot slip in between this check and the commit.
        let n = sqlx::query("UPDATE jobs SET fence = fence WHERE id = $1 AND fence = $2")
            .bind(&f.job)
            .bind(f.token)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if n != 1 {
            return Err(StoreError::Fenced);
        }
    }
    Ok(())
}

/// The start of the block holding `t`, `None` where it overflows (near `i64::MIN`).
pub fn block_start(t: i64) -> Option<i64> {
    t.div_euclid(BLOCK_MS).checked_mul(BLOCK_MS)
}

/// Head rows beyond which retention leaves series alone this pass: whether a series still has
/// samples in the head is read from every head row's packed ids, worth it only while compaction
/// keeps the head small.
const HEAD_ROWS_SCANNED: i64 = 10_000;

/// Deletes chunks and head rows wholly older than `before` (whether downsampled or not: see
/// [`super::tiers::enforce_retention`] for retention with tiers), then forgets series left with
/// nothing ([`forget_unused_series`]); returns the rows deleted.
pub async fn enforce_retention(store: &Store, before: i64) -> Result<u64> {
    let (a, b) = {
        let _gate = store.write_gate().await;
        let mut tx = store.begin_write().await?;
        // `block_start < $1` is implied by `max_t < $1`; said, it lets the block index find them.
        let a = sqlx::query("DELETE FROM prom_chunks WHERE block_start < $1 AND max_t < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM prom_head WHERE max_t < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        (a, b)
    };
    Ok(a + b + forget_unused_series(store, before).await?)
}

/// Deletes the series created before `before` that are left with no chunk, no tier row and no
/// sample in the head, and the metadata of metrics left with no series (clearing the series-id
/// cache so no request writes to a deleted id); returns the rows deleted.
pub async fn forget_unused_series(store: &Store, before: i64) -> Result<u64> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let head_rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM prom_head")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let mut c = 0;
    if head_rows <= HEAD_ROWS_SCANNED {
        let mut in_head: HashSet<i64> = HashSet::new();
        {
            let mut stream = sqlx::query("SELECT data FROM prom_head").fetch(&mut *tx);
            while let Some(r) = stream.try_next().await? {
                let data: Vec<u8> = r.try_get("data")?;
                in_head.extend(unpack_head(&data).map(|(id, _, _)| id));
            }
        }
        let candidates: Vec<i64> = sqlx::query(
            "SELECT s.id FROM prom_series s WHERE s.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM prom_chunks c WHERE c.series_id = s.id)
               AND NOT EXISTS (SELECT 1 FROM prom_tiers t WHERE t.series_id = s.id)",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("id"))
        .collect::<std::result::Result<_, _>>()?;
        let gone: Vec<String> = candidates
            .into_iter()
            .filter(|id| !in_head.contains(id))
            .map(|id| id.to_string())
            .collect();
        for part in gone.chunks(500) {
            let sql = format!("DELETE FROM prom_series WHERE id IN ({})", part.join(","));
            c += sqlx::query(&sql).execute(&mut *tx).await?.rows_affected();
        }
        c += sqlx::query(
            "DELETE FROM prom_metadata WHERE updated_at < $1 AND NOT EXISTS
               (SELECT 1 FROM prom_series s WHERE s.project_id = prom_metadata.project_id
                  AND s.name = prom_metadata.metric)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    if c > 0 {
        // After the commit: a request that finds no cached id creates the series anew.
        store.prom_cache().clear();
    }
    Ok(c)
}

/// Storage figures: samples and bytes in chunks, samples and bytes in the head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Samples in chunks.
    pub chunk_samples: i64,
    /// Bytes of chunk data.
    pub chunk_bytes: i64,
    /// Chunks.
    pub chunks: i64,
    /// Samples in the head.
    pub head_samples: i64,
    /// Bytes of head data.
    pub head_bytes: i64,
}

/// The store's [`Footprint`] (for the bench and the operations page).
pub async fn footprint(store: &Store) -> Result<Footprint> {
    let c = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(samples), 0) AS BIGINT) AS s,
                CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) AS b FROM prom_chunks",
    )
    .fetch_one(store.pool())
    .await?;
    let h = sqlx::query(
        "SELECT CAST(COALESCE(SUM(samples), 0) AS BIGINT) AS s,
                CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) AS b FROM prom_head",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(Footprint {
        chunks: c.try_get("n")?,
        chunk_samples: c.try_get("s")?,
        chunk_bytes: c.try_get("b")?,
        head_samples: h.try_get("s")?,
        head_bytes: h.try_get("b")?,
    })
}
