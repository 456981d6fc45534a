//! Downsampled tiers of the metric store: once raw samples age past the raw retention, 5-minute
//! and 1-hour aggregates of them are kept for longer (by default 90 days and a year), so a year
//! of a series costs kilobytes instead of megabytes.
//!
//! The design is Thanos's downsampling: per bucket the count, sum, min and max of the raw
//! samples, and a counter aggregate that survives resets. Thanos keeps the counter as a running
//! reset-adjusted total per chunk with the chunk's first and last raw values; here a tier row
//! grows as the raw blocks of its span age out one by one, so the counter aggregate is kept per
//! bucket instead: the first and last raw value and the reset-adjusted increase between them.
//! A read stitches buckets (and rows) with Thanos's rule — a bucket whose first value is below
//! the previous bucket's last one follows a reset — so `rate` and `increase` over buckets see
//! every increase, resets included. NaN samples (staleness markers too) are left out of every
//! aggregate, as Thanos does.
//!
//! The compaction job, under its lease, downsamples raw blocks once they are older than the raw
//! retention (no write accepts samples that old, so a block is final then), in block order, and
//! records how far it got; retention deletes only raw blocks already downsampled, and records
//! from when raw data is whole, so a read knows which part of its range to take from a tier.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use super::chunk;
use super::compact::{self, Fence};
use crate::{Result, Store};

/// The 5-minute resolution, ms.
pub const RES_5M: i64 = 300_000;
/// The 1-hour resolution, ms.
pub const RES_1H: i64 = 3_600_000;
/// Buckets per tier row: a day at 5 minutes, 12 days at 1 hour (both whole numbers of blocks,
/// so a raw block always falls in one row).
const SPAN_BUCKETS: i64 = 288;
/// How long after a block passes the raw retention it is downsampled: head rows holding its
/// last samples (written just before the cut) are compacted into it first.
pub const FINAL_AFTER_MS: i64 = 3_600_000;
/// Raw chunks downsampled per transaction at most.
const CHUNKS_PER_TX: i64 = 1_000;
/// Version byte of a tier row's layout.
const ROW_VERSION: u8 = 1;

/// The aggregates of one bucket's raw samples (NaN left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, ms (a multiple of the resolution).
    pub start: i64,
    /// Samples in it.
    pub count: f64,
    /// Their sum.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// The first, in time.
    pub first: f64,
    /// The last, in time.
    pub last: f64,
    /// Increase from the first to the last as a counter: a drop counts as a reset to zero.
    pub increase: f64,
}

/// The buckets of `samples` (time-sorted (time, value bits)) at resolution `res`.
pub fn buckets(samples: &[(i64, u64)], res: i64) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for &(t, bits) in samples {
        let v = f64::from_bits(bits);
        if v.is_nan() {
            continue;
        }
        let start = t.div_euclid(res).saturating_mul(res);
        match out.last_mut() {
            Some(b) if b.start == start => {
                b.count += 1.0;
                b.sum += v;
                b.min = b.min.min(v);
                b.max = b.max.max(v);
                b.increase += if v >= b.last { v - b.last } else { v };
                b.last = v;
            }
            _ => out.push(Bucket {
                start,
                count: 1.0,
                sum: v,
                min: v,
                max: v,
                first: v,
                last: v,
                increase: 0.0,
            }),
        }
    }
    out
}

/// The fields of a bucket in the order a row stores them.
fn fields(b: &Bucket) -> [f64; 7] {
    [b.count, b.sum, b.min, b.max, b.first, b.last, b.increase]
}

/// A row's payload: the version byte, then per field (count, sum, min, max, first, last,
/// increase) its length (LEB128) and a chunk of (bucket start, value). Seven chunks of one
/// series each: a field changes slowly from bucket to bucket, which is what chunks compress.
fn encode_row(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = vec![ROW_VERSION];
    for f in 0..7 {
        let samples: Vec<(i64, u64)> = buckets
            .iter()
            .map(|b| (b.start, fields(b)[f].to_bits()))
            .collect();
        let c = chunk::encode(&samples);
        chunk::put_varint(&mut out, c.len());
        out.extend_from_slice(&c);
    }
    out
}

/// A row's buckets; `None` if it is damaged.
fn decode_row(data: &[u8]) -> Option<Vec<Bucket>> {
    let (&version, mut rest) = data.split_first()?;
    if version != ROW_VERSION {
        return None;
    }
    let mut cols: Vec<Vec<(i64, u64)>> = Vec::with_capacity(7);
    for _ in 0..7 {
        let n = chunk::take_varint(&mut rest)?;
        let c = rest.get(..n)?;
        rest = rest.get(n..)?;
        cols.push(chunk::decode(c)?);
    }
    let first = cols.first()?;
    if cols
        .iter()
        .any(|c| c.len() != first.len() || c.iter().zip(first).any(|(a, b)| a.0 != b.0))
    {
        return None;
    }
    let at = |f: usize, i: usize| -> Option<f64> { Some(f64::from_bits(cols.get(f)?.get(i)?.1)) };
    (0..first.len())
        .map(|i| {
            Some(Bucket {
                start: first.get(i)?.0,
                count: at(0, i)?,
                sum: at(1, i)?,
                min: at(2, i)?,
                max: at(3, i)?,
                first: at(4, i)?,
                last: at(5, i)?,
                increase: at(6, i)?,
            })
        })
        .collect()
}

/// What one downsampling run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Downsampled {
    /// Raw chunks read.
    pub chunks: usize,
    /// Tier rows written (new or merged).
    pub rows: usize,
    /// Damaged raw chunks or tier rows found, logged and left out (a damaged tier row is
    /// replaced by the new buckets of its span).
    pub quarantined: usize,
}

/// Downsamples, in block order, every raw block that ended `raw_ms` + [`FINAL_AFTER_MS`] or
/// more before `now` (samples that old are refused on write, so such a block is final), into
/// both tiers.
pub async fn downsample(
    store: &Store,
    fence: Option<&Fence>,
    now: i64,
    raw_ms: i64,
) -> Result<Downsampled> {
    // Blocks starting before `target` end at least FINAL_AFTER_MS past the raw retention.
    let cut = now.saturating_sub(raw_ms).saturating_sub(FINAL_AFTER_MS);
    let target = compact::block_start(cut).unwrap_or(i64::MIN);
    let mut total = Downsampled::default();
    loop {
        let (done, more) = downsample_some(store, fence, target).await?;
        total.chunks += done.chunks;
        total.rows += done.rows;
        total.quarantined += done.quarantined;
        if !more {
            return Ok(total);
        }
    }
}

/// One transaction: up to [`CHUNKS_PER_TX`] chunks of the next block; whether more is left.
async fn downsample_some(
    store: &Store,
    fence: Option<&Fence>,
    target: i64,
) -> Result<(Downsampled, bool)> {
    let _gate = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    compact::hold_fence(&mut tx, fence).await?;
    let state =
        sqlx::query("SELECT downsampled_to, series_cursor FROM prom_tier_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    let mut cursor: i64 = state.try_get("series_cursor")?;
    let mut done = Downsampled::default();
    let block = match state.try_get::<Option<i64>, _>("downsampled_to")? {
        Some(b) => Some(b),
        // First run: from the oldest raw block there is.
        None => sqlx::query("SELECT MIN(block_start) AS b FROM prom_chunks")
            .fetch_one(&mut *tx)
            .await?
            .try_get::<Option<i64>, _>("b")?,
    };
    let Some(block) = block.filter(|b| *b < target) else {
        // Nothing to downsample (yet): an empty store starts at the target.
        sqlx::query(
            "UPDATE prom_tier_state SET downsampled_to = COALESCE(downsampled_to, $1) WHERE id = 1",
        )
        .bind(target)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok((done, false));
    };
    let rows = sqlx::query(
        "SELECT series_id, data FROM prom_chunks WHERE block_start = $1 AND series_id > $2
         ORDER BY series_id LIMIT $3",
    )
    .bind(block)
    .bind(cursor)
    .bind(CHUNKS_PER_TX + 1)
    .fetch_all(&mut *tx)
    .await?;
    let whole_block = rows.len() as i64 <= CHUNKS_PER_TX;
    // (series, resolution, span start) → new buckets.
    let mut groups: BTreeMap<(i64, i64, i64), Vec<Bucket>> = BTreeMap::new();
    for r in rows.iter().take(CHUNKS_PER_TX as usize) {
        let series: i64 = r.try_get("series_id")?;
        let data: Vec<u8> = r.try_get("data")?;
        cursor = series;
        done.chunks += 1;
        let Some(samples) = chunk::decode(&data) else {
            tracing::error!(
                series,
                block,
                "Downsampling: a damaged chunk was left out of the tiers."
            );
            metrics::counter!("lookout_prometheus_chunks_quarantined_total").increment(1);
            done.quarantined += 1;
            continue;
        };
        for res in [RES_5M, RES_1H] {
            let span = res * SPAN_BUCKETS;
            for b in buckets(&samples, res) {
                let key = (series, res, b.start.div_euclid(span).saturating_mul(span));
                groups.entry(key).or_default().push(b);
            }
        }
    }
    drop(rows);
    let mut existing: HashMap<(i64, i64, i64), Vec<u8>> = HashMap::new();
    let keys: Vec<(i64, i64, i64)> = groups.keys().copied().collect();
    for part in keys.chunks(300) {
        // Integers from the database, never request text: safe to inline.
        let cond: Vec<String> = part
            .iter()
            .map(|(s, r, p)| format!("(series_id = {s} AND resolution = {r} AND span_start = {p})"))
            .collect();
        let sql = format!(
            "SELECT series_id, resolution, span_start, data FROM prom_tiers WHERE {}",
            cond.join(" OR ")
        );
        for r in sqlx::query(&sql).fetch_all(&mut *tx).await? {
            existing.insert(
                (
                    r.try_get("series_id")?,
                    r.try_get("resolution")?,
                    r.try_get("span_start")?,
                ),
                r.try_get("data")?,
            );
        }
    }
    for (key, new) in groups {
        let mut merged: BTreeMap<i64, Bucket> = BTreeMap::new();
        if let Some(old) = existing.get(&key) {
            match decode_row(old) {
                Some(old) => merged.extend(old.into_iter().map(|b| (b.start, b))),
                None => {
                    tracing::error!(
                        series = key.0,
                        resolution = key.1,
                        span = key.2,
                        "Downsampling: a damaged tier row was quarantined (replaced)."
                    );
                    metrics::counter!("lookout_prometheus_chunks_quarantined_total").increment(1);
                    done.quarantined += 1;
                }
            }
        }
        // A block is downsampled once; should a run repeat (it cannot commit twice), the new
        // buckets are the same ones.
        merged.extend(new.into_iter().map(|b| (b.start, b)));
        let all: Vec<Bucket> = merged.into_values().collect();
        let Some(last) = all.last() else {
            continue;
        };
        sqlx::query(
            "INSERT INTO prom_tiers (series_id, resolution, span_start, max_t, data)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (series_id, resolution, span_start) DO UPDATE SET
               max_t = excluded.max_t, data = excluded.data",
        )
        .bind(key.0)
        .bind(key.1)
        .bind(key.2)
        .bind(last.start + key.1 - 1)
        .bind(encode_row(&all))
        .execute(&mut *tx)
        .await?;
        done.rows += 1;
    }
    let (next, cursor) = if whole_block {
        let next: Option<i64> =
            sqlx::query("SELECT MIN(block_start) AS b FROM prom_chunks WHERE block_start > $1")
                .bind(block)
                .fetch_one(&mut *tx)
                .await?
                .try_get("b")?;
        (next.unwrap_or(target).min(target), 0)
    } else {
        (block, cursor)
    };
    sqlx::query("UPDATE prom_tier_state SET downsampled_to = $1, series_cursor = $2 WHERE id = 1")
        .bind(next)
        .bind(cursor)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((done, next < target || !whole_block))
}

/// How long each resolution is kept, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw samples.
    pub raw_ms: i64,
    /// 5-minute buckets.
    pub m5_ms: i64,
    /// 1-hour buckets.
    pub h1_ms: i64,
}

/// Deletes what each resolution no longer keeps at `now`: raw blocks wholly older than the raw
/// retention *and already downsampled*, tier rows wholly older than theirs; records from when
/// raw data and 5-minute buckets are whole; then forgets series left with nothing (see
/// [`compact::forget_unused_series`]). Returns the rows deleted.
pub async fn enforce_retention(store: &Store, now: i64, keep: &Retention) -> Result<u64> {
    let block_floor = |ms: i64| compact::block_start(now.saturating_sub(ms)).unwrap_or(i64::MIN);
    let span_floor = |ms: i64, res: i64| {
        let span = res * SPAN_BUCKETS;
        now.saturating_sub(ms).div_euclid(span).saturating_mul(span)
    };
    let mut deleted = 0;
    {
        let _gate = store.write_gate().await;
        let mut tx = store.begin_write().await?;
        let state = sqlx::query("SELECT downsampled_to FROM prom_tier_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let downsampled: Option<i64> = state.try_get("downsampled_to")?;
        // Raw blocks go whole, and only once in the tiers: raw data is whole from `raw_from`.
        let raw_from = block_floor(keep.raw_ms).min(downsampled.unwrap_or(i64::MIN));
        deleted += sqlx::query("DELETE FROM prom_chunks WHERE block_start < $1")
            .bind(raw_from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        deleted += sqlx::query("DELETE FROM prom_head WHERE max_t < $1")
            .bind(raw_from)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let m5_from = span_floor(keep.m5_ms, RES_5M);
        for (res, from) in [(RES_5M, m5_from), (RES_1H, span_floor(keep.h1_ms, RES_1H))] {
            deleted +=
                sqlx::query("DELETE FROM prom_tiers WHERE resolution = $1 AND span_start < $2")
                    .bind(res)
                    .bind(from)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        // Only ever forward: with a retention raised since, what was deleted stays deleted.
        sqlx::query(
            "UPDATE prom_tier_state SET
               raw_from = CASE WHEN raw_from IS NULL OR raw_from < $1 THEN $1 ELSE raw_from END,
               m5_from = CASE WHEN m5_from IS NULL OR m5_from < $2 THEN $2 ELSE m5_from END
             WHERE id = 1",
        )
        .bind(raw_from)
        .bind(m5_from)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    // Series are forgotten once nothing of theirs is left in any resolution.
    deleted += compact::forget_unused_series(store, now.saturating_sub(keep.raw_ms)).await?;
    Ok(deleted)
}

/// From when raw data and 5-minute buckets are whole (`None`: nothing was ever deleted).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Bounds {
    pub(super) raw_from: Option<i64>,
    pub(super) m5_from: Option<i64>,
}

impl Bounds {
    /// The resolution a read starting at `from` takes its old part from: 5 minutes while they
    /// reach that far back, else 1 hour.
    pub(super) fn resolution(&self, from: i64) -> i64 {
        if self.m5_from.is_none_or(|m| from >= m) {
            RES_5M
        } else {
            RES_1H
        }
    }
}

pub(super) async fn bounds(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<Bounds> {
    let r = sqlx::query("SELECT raw_from, m5_from FROM prom_tier_state WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match r {
        Some(r) => Bounds {
            raw_from: r.try_get("raw_from")?,
            m5_from: r.try_get("m5_from")?,
        },
        None => Bounds::default(),
    })
}

/// The resolution a read from `from` takes the part of its range before raw data from, `None`
/// when raw data reaches back to `from` (what a PromQL caller needs to widen its lookback).
pub async fn resolution_before_raw(store: &Store, from: i64) -> Result<Option<i64>> {
    let mut tx = store.pool().begin().await?;
    let b = bounds(&mut tx).await?;
    tx.commit().await?;
    Ok(b.raw_from.filter(|r| from < *r).map(|_| b.resolution(from)))
}

/// Which aggregate a read over a tier returns per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// [`Aggregate::Counter`] for counters (metadata type `counter`, or a name ending in
    /// `_total`, `_count`, `_sum` or `_bucket`), [`Aggregate::Avg`] for the rest.
    Auto,
    /// The counter with resets taken out, ending at the last raw value: `rate`, `increase`.
    Counter,
    /// Samples per bucket: `count_over_time`.
    Count,
    /// Their sum: `sum_over_time`.
    Sum,
    /// Their minimum: `min_over_time`.
    Min,
    /// Their maximum: `max_over_time`.
    Max,
    /// Their mean (sum / count): `avg_over_time`, and plain selectors of gauges.
    Avg,
}

/// Whether a metric is read as a counter: its metadata says so, or, without metadata, its name
/// follows Prometheus's naming of counters.
fn counter_name(name: &str, kinds: &HashMap<String, String>) -> bool {
    match kinds.get(name) {
        Some(kind) => kind == "counter",
        None => ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|s| name.ends_with(s)),
    }
}

/// Points of `ids` from resolution `res` stamped in `[from, to]` (a bucket is stamped at its
/// last millisecond), by series: the value `aggr` picks per bucket; counters stitched across
/// buckets and rows.
pub(super) async fn read(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    project: i64,
    names: &HashMap<i64, String>,
    res: i64,
    (from, to): (i64, i64),
    aggr: Aggregate,
) -> Result<HashMap<i64, Vec<(i64, f64)>>> {
    let mut kinds: HashMap<String, String> = HashMap::new();
    if aggr == Aggregate::Auto {
        let wanted: HashSet<&String> = names.values().collect();
        let mut rows = sqlx::query("SELECT metric, kind FROM prom_metadata WHERE project_id = $1")
            .bind(project)
            .fetch(&mut **tx);
        while let Some(r) = rows.try_next().await? {
            let metric: String = r.try_get("metric")?;
            if wanted.contains(&metric) {
                kinds.insert(metric, r.try_get("kind")?);
            }
        }
    }
    let mut buckets: HashMap<i64, Vec<Bucket>> = HashMap::new();
    let ids: Vec<i64> = names.keys().copied().collect();
    for part in ids.chunks(500) {
        // Ids come from the database, never from the request: safe to inline.
        let list: Vec<String> = part.iter().map(i64::to_string).collect();
        let sql = format!(
            "SELECT series_id, span_start, data FROM prom_tiers WHERE series_id IN ({})
               AND resolution = $1 AND max_t >= $2 AND span_start <= $3 ORDER BY span_start",
            list.join(",")
        );
        let mut rows = sqlx::query(&sql)
            .bind(res)
            .bind(from)
            .bind(to)
            .fetch(&mut **tx);
        while let Some(r) = rows.try_next().await? {
            let id: i64 = r.try_get("series_id")?;
            let data: Vec<u8> = r.try_get("data")?;
            let decoded = decode_row(&data)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("tier row of series {id}")))?;
            buckets.entry(id).or_default().extend(
                decoded
                    .into_iter()
                    .filter(|b| (from..=to).contains(&(b.start + res - 1))),
            );
        }
    }
    let mut out = HashMap::new();
    for (id, bs) in buckets {
        let pick = match aggr {
            Aggregate::Auto => match names.get(&id) {
                Some(n) if counter_name(n, &kinds) => Aggregate::Counter,
                _ => Aggregate::Avg,
            },
            a => a,
        };
        out.insert(id, points(&bs, res, pick));
    }
    Ok(out)
}

/// One point per bucket (stamped at its last millisecond) of aggregate `aggr`.
fn points(bs: &[Bucket], res: i64, aggr: Aggregate) -> Vec<(i64, f64)> {
    let stamp = |b: &Bucket| b.start + res - 1;
    if matches!(aggr, Aggregate::Counter | Aggregate::Auto) {
        // Thanos's stitching: across a gap, a first value below the last one is a reset.
        let mut total = 0.0;
        let mut prev_last: Option<f64> = None;
        let mut out: Vec<(i64, f64)> = Vec::with_capacity(bs.len());
        for b in bs {
            total += match prev_last {
                Some(last) if b.first >= last => b.first - last,
                Some(_) => b.first,
                None => 0.0,
            };
            total += b.increase;
            prev_last = Some(b.last);
            out.push((stamp(b), total));
        }
        // Anchored on the last raw value, so raw samples after the tier continue it.
        let shift = prev_last.unwrap_or(0.0) - total;
        for p in &mut out {
            p.1 += shift;
        }
        return out;
    }
    bs.iter()
        .map(|b| {
            let v = match aggr {
                Aggregate::Count => b.count,
                Aggregate::Sum => b.sum,
                Aggregate::Min => b.min,
                Aggregate::Max => b.max,
                _ => b.sum / b.count,
            };
            (stamp(b), v)
        })
        .collect()
}

/// The ids of `project`'s series with a bucket of resolution `res` in `[from, to]`.
pub(super) async fn active(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    project: i64,
    res: i64,
    from: i64,
    to: i64,
) -> Result<HashSet<i64>> {
    let mut out = HashSet::new();
    let mut rows = sqlx::query(
        "SELECT DISTINCT t.series_id AS id FROM prom_tiers t
         JOIN prom_series s ON s.id = t.series_id
         WHERE s.project_id = $1 AND t.resolution = $2 AND t.max_t >= $3 AND t.span_start <= $4",
    )
    .bind(project)
    .bind(res)
    .bind(from)
    .bind(to)
    .fetch(&mut **tx);
    while let Some(r) = rows.try_next().await? {
        out.insert(r.try_get::<i64, _>("id")?);
    }
    Ok(out)
}

/// Tier rows and their bytes per resolution: `(resolution, rows, bytes)`.
pub async fn footprint(store: &Store) -> Result<Vec<(i64, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT resolution, COUNT(*) AS n, CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) AS b
         FROM prom_tiers GROUP BY resolution ORDER BY resolution",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("resolution")?, r.try_get("n")?, r.try_get("b")?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_every_aggregate_and_resets() {
        // 1-minute samples of a counter that resets in the second 5-minute bucket, a NaN
        // (left out) and a staleness marker.
        let vals = [10.0, 12.0, 15.0, 15.0, 20.0, 25.0, 3.0, f64::NAN, 7.0, 9.0];
        let s: Vec<(i64, u64)> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 60_000, v.to_bits()))
            .chain([(600_000, 0x7ff0_0000_0000_0002)])
            .collect();
        let b = buckets(&s, RES_5M);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].count, b[0].sum, b[0].min, b[0].max, b[0].increase),
            (5.0, 72.0, 10.0, 20.0, 10.0)
        );
        // 25 → 3 is a reset: 3 counts, then +4, +2.
        assert_eq!(
            (b[1].count, b[1].first, b[1].last, b[1].increase),
            (4.0, 25.0, 9.0, 9.0)
        );
        assert_eq!(decode_row(&encode_row(&b)).unwrap(), b);
        // Stitched: the first bucket's gap to the second (20 → 25) counts too; the counter
        // ends on the last raw value.
        let p = points(&b, RES_5M, Aggregate::Counter);
        assert_eq!(p, vec![(299_999, 9.0 - 5.0 - 9.0), (599_999, 9.0)]);
        assert_eq!(p[1].1 - p[0].1, 5.0 + 9.0);
        assert!(decode_row(&[2]).is_none() && decode_row(&[1, 0]).is_none());
    }

    /// Payload bytes of a year of one series at 1 hour and of 90 days at 5 minutes, from a
    /// counter and a two-decimal gauge scraped every 15 s (`-- --nocapture` prints them; the
    /// figure in docs/metrics.md comes from here).
    #[test]
    fn a_year_of_one_hour_buckets_stays_small() {
        let step = 15_000;
        // Bytes of `days` of the series: raw chunks per block (`res` 0), else tier rows.
        let bytes = |res: i64, days: i64, value: &dyn Fn(i64) -> f64| {
            let span = if res == 0 {
                compact::BLOCK_MS
            } else {
                res * SPAN_BUCKETS
            };
            let end = days * 86_400_000;
            (0..(end + span - 1) / span)
                .map(|k| {
                    let samples: Vec<(i64, u64)> = (k * span / step
                        ..((k + 1) * span).min(end) / step)
                        .map(|i| (i * step, value(i).to_bits()))
                        .collect();
                    if res == 0 {
                        chunk::encode(&samples).len()
                    } else {
                        encode_row(&buckets(&samples, res)).len()
                    }
                })
                .sum::<usize>()
        };
        let counter = |i: i64| (i * 50 + (i * 7919) % 100) as f64;
        let gauge = |i: i64| ((i * 31 % 200) + 1000) as f64 / 100.0;
        let year_raw = [bytes(0, 365, &counter), bytes(0, 365, &gauge)];
        let year_1h = [bytes(RES_1H, 365, &counter), bytes(RES_1H, 365, &gauge)];
        let days90_5m = [bytes(RES_5M, 90, &counter), bytes(RES_5M, 90, &gauge)];
        println!(
            "a year raw: counter {} bytes, gauge {} bytes; at 1 hour: counter {} bytes, gauge {} \
             bytes; 90 days at 5 minutes: counter {} bytes, gauge {} bytes",
            year_raw[0], year_raw[1], year_1h[0], year_1h[1], days90_5m[0], days90_5m[1]
        );
        for (tier, raw) in year_1h.iter().zip(year_raw) {
            assert!(tier * 10 < raw, "{year_1h:?} against raw {year_raw:?}");
        }
    }
}
