//! Check results: raw rows for 24 h (per-minute figures are computed from them), hour rollups for
//! 90 days and day rollups for 2 years, each with up/down/maintenance counts and latency average,
//! p95 and max.
//!
//! Every rollup width is computed from raw rows (raw rows outlive a day bucket), so hourly and
//! daily p95 are exact, not averages of averages. A watermark per width in `uptime_marks` says
//! which buckets are final; readers combine final rollups with raw rows after the watermark.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::row::RowExt;
use crate::writer::{multi_row, Value, Write};
use crate::{Cursor, Page, Result, Store};

/// Raw results are kept this long (a day bucket plus slack for the rollup to run).
pub const RAW_RETENTION_MS: i64 = 25 * HOUR;
/// How long raw results wait for rollups that are behind before they go anyway (a week: the
/// catch-up rolls a day per upkeep run, so this bounds the table if rollups stop altogether).
pub const UNROLLED_MAX_MS: i64 = 7 * DAY;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// How long after a bucket ends its results are complete (longest timeout plus slack).
const SETTLE_MS: i64 = 6 * MINUTE;

/// Stored rollup widths: name, bucket length, retention. Minute figures are not stored: they are
/// computed from raw results, which are kept as long (24 h), so storing them would double the
/// largest table for nothing.
pub const WIDTHS: &[(&str, i64, i64)] = &[("h", HOUR, 90 * DAY), ("d", DAY, 730 * DAY)];

/// A width's bucket length (`m`, `h`, `d`).
fn bucket_len(width: &str) -> Option<i64> {
    match width {
        "m" => Some(MINUTE),
        _ => WIDTHS.iter().find(|w| w.0 == width).map(|w| w.1),
    }
}

/// One check result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResultRow {
    /// When the check started, ms.
    pub at: i64,
    /// Passed.
    pub ok: bool,
    /// Inside a maintenance window.
    pub maintenance: bool,
    /// Latency, µs.
    pub latency_us: Option<i64>,
    /// Failure reason.
    pub message: Option<String>,
}

/// The table raw check results go to.
pub const TABLE: &str = "monitor_results";

/// The write that stores one result.
pub fn result_write(monitor_id: i64, r: &ResultRow) -> Write {
    Write::Insert {
        table: TABLE,
        columns: &[
            "monitor_id",
            "at",
            "ok",
            "maintenance",
            "latency_us",
            "message",
        ],
        values: vec![
            monitor_id.into(),
            r.at.into(),
            i64::from(r.ok).into(),
            i64::from(r.maintenance).into(),
            r.latency_us.into(),
            r.message.clone().into(),
        ],
    }
}

/// A monitor's results, newest first; the cursor is the `at` of the last row seen.
pub async fn list_results(
    store: &Store,
    monitor_id: i64,
    cursor: &Cursor,
) -> Result<Page<ResultRow>> {
    let limit = cursor.limit();
    let rows = sqlx::query(
        "SELECT at, ok, maintenance, latency_us, message FROM monitor_results
         WHERE monitor_id = $1 AND at < $2 ORDER BY at DESC LIMIT $3",
    )
    .bind(monitor_id)
    .bind(cursor.after_i64()?.unwrap_or(i64::MAX))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    Page::try_from_rows(
        &rows,
        limit,
        |r| {
            Ok::<_, crate::StoreError>(ResultRow {
                at: r.try_get("at")?,
                ok: r.flag("ok")?,
                maintenance: r.flag("maintenance")?,
                latency_us: r.try_get("latency_us")?,
                message: r.try_get("message")?,
            })
        },
        |r| r.at.to_string(),
    )
}

/// A watermark (0 when never set).
pub async fn mark(store: &Store, name: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT done_until FROM uptime_marks WHERE name = $1")
            .bind(name)
            .fetch_optional(store.pool())
            .await?
            .map(|r| r.try_get("done_until"))
            .transpose()?
            .unwrap_or(0),
    )
}

/// Up and down counts in `[since, now)`: final hour rollups, then raw rows after the watermark.
pub async fn counts_since(store: &Store, monitor_id: i64, since: i64) -> Result<(i64, i64)> {
    counts_between(store, monitor_id, since, i64::MAX).await
}

/// Up and down counts in `[since, until)` (maintenance left out): final day and hour rollups up
/// to the watermarks, raw rows after them.
pub async fn counts_between(
    store: &Store,
    monitor_id: i64,
    since: i64,
    until: i64,
) -> Result<(i64, i64)> {
    let marks = Marks::read(store).await?;
    counts_in(store, monitor_id, since, until, marks).await
}

/// The rollup watermarks: rollups of buckets before them are final.
#[derive(Debug, Clone, Copy)]
pub struct Marks {
    /// Hour rollups are final before this, ms.
    pub hour: i64,
    /// Day rollups are final before this, ms.
    pub day: i64,
}

impl Marks {
    /// Reads both watermarks (once for all the windows of a page).
    pub async fn read(store: &Store) -> Result<Marks> {
        Ok(Marks {
            hour: mark(store, "h").await?,
            day: mark(store, "d").await?,
        })
    }
}

/// [`counts_between`] with the watermarks already read.
///
/// Whole days inside the window come from day rollups and only its ragged ends from hour
/// rollups: a 90-day uptime figure reads about 110 rollup rows instead of 2,160, and the uptime
/// list shows four such figures for each of its monitors (issue 31: 180 ms for 100 monitors).
/// Day and hour rollups are both computed from the raw results, so the sums are the same.
pub async fn counts_in(
    store: &Store,
    monitor_id: i64,
    since: i64,
    until: i64,
    marks: Marks,
) -> Result<(i64, i64)> {
    let until = until.max(since);
    let (d_lo, d_hi, hour_mark) = spans(since, until, marks);
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(up), 0) AS BIGINT) AS up, CAST(COALESCE(SUM(down), 0) AS BIGINT) AS down FROM (
             SELECT up, down FROM monitor_rollups WHERE monitor_id = $1 AND width = 'd' AND bucket >= $2 AND bucket < $3
             UNION ALL
             SELECT up, down FROM monitor_rollups WHERE monitor_id = $1 AND width = 'h' AND bucket >= $4 AND bucket < $2
             UNION ALL
             SELECT up, down FROM monitor_rollups WHERE monitor_id = $1 AND width = 'h' AND bucket >= $3 AND bucket < $5
         ) r",
    )
    .bind(monitor_id)
    .bind(d_lo)
    .bind(d_hi)
    .bind(since)
    .bind(hour_mark)
    .fetch_one(store.pool())
    .await?;
    let (mut up, mut down): (i64, i64) = (r.try_get("up")?, r.try_get("down")?);
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN ok = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS up,
                CAST(COALESCE(SUM(CASE WHEN ok = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS down
         FROM monitor_results WHERE monitor_id = $1 AND at >= $2 AND at < $3 AND maintenance = 0",
    )
    .bind(monitor_id)
    .bind(hour_mark)
    .bind(until)
    .fetch_one(store.pool())
    .await?;
    up += r.try_get::<i64, _>("up")?;
    down += r.try_get::<i64, _>("down")?;
    Ok((up, down))
}

/// How `[since, until)` splits over the stored figures: day rollups over `[d_lo, d_hi)`, hour
/// rollups over `[since, d_lo)` and `[d_hi, hour_mark)`, raw results from `hour_mark` on.
/// Without a whole final day inside, `d_lo = d_hi = hour_mark` and hours cover it all.
fn spans(since: i64, until: i64, marks: Marks) -> (i64, i64, i64) {
    let hour_mark = marks.hour.clamp(since, until.max(since));
    let first_day = since + (DAY - since.rem_euclid(DAY)) % DAY;
    let last_day =
        (hour_mark - hour_mark.rem_euclid(DAY)).min(marks.day - marks.day.rem_euclid(DAY));
    if first_day < last_day {
        (first_day, last_day, hour_mark)
    } else {
        (hour_mark, hour_mark, hour_mark)
    }
}

/// Uptime percentage in `[since, now)`, `None` without results.
pub async fn uptime_since(store: &Store, monitor_id: i64, since: i64) -> Result<Option<f64>> {
    let (up, down) = counts_since(store, monitor_id, since).await?;
    Ok((up + down > 0).then(|| 100.0 * up as f64 / (up + down) as f64))
}

/// Uptime percentages of many monitors over windows ending now, one per `sinces` entry, in the
/// same order (`None` without results): two statements whatever the number of monitors and
/// windows. Each window splits over day rollups, hour rollups and raw results as in
/// [`counts_in`]; the rows of all windows are read once (their ranges merged) and summed per
/// window by the database. The monitor lists show four windows for each of up to 100
/// monitors: one statement per monitor was over a thousand a page, and one per window and kind
/// still cost PostgreSQL a parallel plan each (issue 31).
pub async fn uptime_many(
    store: &Store,
    monitor_ids: &[i64],
    sinces: &[i64],
) -> Result<BTreeMap<i64, Vec<Option<f64>>>> {
    let mut out: BTreeMap<i64, Vec<Option<f64>>> = monitor_ids
        .iter()
        .map(|&id| (id, vec![None; sinces.len()]))
        .collect();
    if monitor_ids.is_empty() || sinces.is_empty() {
        return Ok(out);
    }
    let marks = Marks::read(store).await?;
    // Integers from our own query and arithmetic, so inlining them is safe and keeps the
    // statement free of dozens of parameters.
    let ids = monitor_ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let windows: Vec<(i64, i64, i64, i64)> = sinces
        .iter()
        .map(|&since| {
            let (d_lo, d_hi, hour_mark) = spans(since, i64::MAX, marks);
            (since, d_lo, d_hi, hour_mark)
        })
        .collect();
    let mut days = Vec::new();
    let mut hours = Vec::new();
    for &(since, d_lo, d_hi, hour_mark) in &windows {
        days.push((d_lo, d_hi));
        hours.push((since, d_lo));
        hours.push((d_hi, hour_mark));
    }
    let ids = ids.as_str();
    let branches: Vec<String> = [("d", merged(days)), ("h", merged(hours))]
        .iter()
        .flat_map(|(width, ranges)| {
            ranges.iter().map(move |(lo, hi)| {
                format!(
                    "SELECT monitor_id, width, bucket, up, down FROM monitor_rollups
                     WHERE monitor_id IN ({ids}) AND width = '{width}' AND bucket >= {lo} AND bucket < {hi}"
                )
            })
        })
        .collect();
    let mut counts: Vec<BTreeMap<i64, (i64, i64)>> = vec![BTreeMap::new(); windows.len()];
    if !branches.is_empty() {
        let sums: Vec<String> = windows
            .iter()
            .enumerate()
            .map(|(k, &(since, d_lo, d_hi, hour_mark))| {
                let within = format!(
                    "(width = 'd' AND bucket >= {d_lo} AND bucket < {d_hi}) OR (width = 'h' AND \
                     ((bucket >= {since} AND bucket < {d_lo}) OR (bucket >= {d_hi} AND bucket < {hour_mark})))"
                );
                format!(
                    "CAST(COALESCE(SUM(CASE WHEN {within} THEN up ELSE 0 END), 0) AS BIGINT) AS up{k}, \
                     CAST(COALESCE(SUM(CASE WHEN {within} THEN down ELSE 0 END), 0) AS BIGINT) AS down{k}"
                )
            })
            .collect();
        let sql = format!(
            "SELECT monitor_id, {} FROM ({}) r GROUP BY monitor_id",
            sums.join(", "),
            branches.join(" UNION ALL ")
        );
        for r in sqlx::query(&sql).fetch_all(store.pool()).await? {
            add_window_counts(&mut counts, &r)?;
        }
    }
    let raw_from = windows.iter().map(|w| w.3).min().unwrap_or(i64::MAX);
    let sums: Vec<String> = windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let hour_mark = w.3;
            format!(
                "CAST(COALESCE(SUM(CASE WHEN at >= {hour_mark} AND ok = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS up{k}, \
                 CAST(COALESCE(SUM(CASE WHEN at >= {hour_mark} AND ok = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS down{k}"
            )
        })
        .collect();
    let raw = format!(
        "SELECT monitor_id, {} FROM monitor_results
         WHERE monitor_id IN ({ids}) AND at >= $1 AND maintenance = 0 GROUP BY monitor_id",
        sums.join(", ")
    );
    for r in sqlx::query(&raw)
        .bind(raw_from)
        .fetch_all(store.pool())
        .await?
    {
        add_window_counts(&mut counts, &r)?;
    }
    for (k, window) in counts.into_iter().enumerate() {
        for (id, (up, down)) in window {
            if let Some(slot) = out.get_mut(&id).and_then(|v| v.get_mut(k)) {
                *slot = (up + down > 0).then(|| 100.0 * up as f64 / (up + down) as f64);
            }
        }
    }
    Ok(out)
}

/// Adds a row's `up{k}` and `down{k}` to window `k`'s counts, for every window.
fn add_window_counts(
    counts: &mut [BTreeMap<i64, (i64, i64)>],
    r: &sqlx::any::AnyRow,
) -> Result<()> {
    let id: i64 = r.try_get("monitor_id")?;
    for (k, window) in counts.iter_mut().enumerate() {
        let up: i64 = r.try_get(format!("up{k}").as_str())?;
        let down: i64 = r.try_get(format!("down{k}").as_str())?;
        let c = window.entry(id).or_default();
        c.0 += up;
        c.1 += down;
    }
    Ok(())
}

/// The union of half-open ranges as disjoint ranges, empty ones dropped, in order.
fn merged(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.retain(|(lo, hi)| lo < hi);
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The newest `limit` results of each of `monitor_ids`, newest first (the monitor list's
/// heartbeat bars). One statement on PostgreSQL (a lateral join: an index range per monitor),
/// where a statement per monitor cost a round trip each, 100 a page; SQLite has no lateral
/// joins, and its statements are calls into the same process, so it keeps one per monitor.
pub async fn recent_many(
    store: &Store,
    monitor_ids: &[i64],
    limit: i64,
) -> Result<BTreeMap<i64, Vec<ResultRow>>> {
    let mut out: BTreeMap<i64, Vec<ResultRow>> =
        monitor_ids.iter().map(|&id| (id, Vec::new())).collect();
    if monitor_ids.is_empty() {
        return Ok(out);
    }
    let of = |r: &sqlx::any::AnyRow| -> Result<ResultRow> {
        Ok(ResultRow {
            at: r.try_get("at")?,
            ok: r.flag("ok")?,
            maintenance: r.flag("maintenance")?,
            latency_us: r.try_get("latency_us")?,
            message: r.try_get("message")?,
        })
    };
    if store.backend() == crate::Backend::Postgres {
        // Integers from our own query, so inlining them is safe.
        let ids = monitor_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT m.id AS monitor_id, r.at, r.ok, r.maintenance, r.latency_us, r.message
             FROM unnest(ARRAY[{ids}]::BIGINT[]) AS m(id)
             CROSS JOIN LATERAL (
               SELECT at, ok, maintenance, latency_us, message FROM monitor_results
               WHERE monitor_id = m.id ORDER BY at DESC LIMIT $1
             ) r
             ORDER BY m.id, r.at DESC"
        ))
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            let id: i64 = r.try_get("monitor_id")?;
            out.entry(id).or_default().push(of(r)?);
        }
        return Ok(out);
    }
    for &id in monitor_ids {
        let rows = sqlx::query(
            "SELECT at, ok, maintenance, latency_us, message FROM monitor_results
             WHERE monitor_id = $1 ORDER BY at DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
        let v = out.entry(id).or_default();
        for r in &rows {
            v.push(of(r)?);
        }
    }
    Ok(out)
}

/// One rollup bucket.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bucket {
    /// Start, ms.
    pub bucket: i64,
    /// Passing checks.
    pub up: i64,
    /// Failing checks.
    pub down: i64,
    /// Checks inside maintenance.
    pub maintenance: i64,
    /// Average latency, µs.
    pub latency_avg_us: Option<i64>,
    /// p95 latency, µs.
    pub latency_p95_us: Option<i64>,
    /// Maximum latency, µs.
    pub latency_max_us: Option<i64>,
}

/// Final rollups of one width since `since`, oldest first, with the open buckets after the
/// watermark computed from raw rows so charts reach the present.
pub async fn buckets(
    store: &Store,
    monitor_id: i64,
    width: &str,
    since: i64,
) -> Result<Vec<Bucket>> {
    let Some(len) = bucket_len(width) else {
        return Ok(Vec::new());
    };
    // Minutes have no stored rollups (mark 0): everything comes from raw results.
    let done = mark(store, width).await?;
    let mut out: Vec<Bucket> = sqlx::query(
        "SELECT bucket, up, down, maintenance, latency_avg_us, latency_p95_us, latency_max_us FROM monitor_rollups
         WHERE monitor_id = $1 AND width = $2 AND bucket >= $3 AND bucket < $4 ORDER BY bucket",
    )
    .bind(monitor_id)
    .bind(width)
    .bind(since)
    .bind(done)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok::<_, crate::StoreError>(Bucket {
            bucket: r.try_get("bucket")?,
            up: r.try_get("up")?,
            down: r.try_get("down")?,
            maintenance: r.try_get("maintenance")?,
            latency_avg_us: r.try_get("latency_avg_us")?,
            latency_p95_us: r.try_get("latency_p95_us")?,
            latency_max_us: r.try_get("latency_max_us")?,
        })
    })
    .collect::<Result<_>>()?;
    let raw = sqlx::query(
        "SELECT at, ok, maintenance, latency_us FROM monitor_results WHERE monitor_id = $1 AND at >= $2 ORDER BY at",
    )
    .bind(monitor_id)
    .bind(done.max(since))
    .fetch_all(store.pool())
    .await?;
    let mut agg: BTreeMap<i64, Acc> = BTreeMap::new();
    for r in &raw {
        let at: i64 = r.try_get("at")?;
        agg.entry(at - at.rem_euclid(len)).or_default().add(
            r.flag("ok")?,
            r.flag("maintenance")?,
            r.try_get("latency_us")?,
        );
    }
    out.extend(agg.into_iter().map(|(b, a)| a.finish(b)));
    Ok(out)
}

/// Accumulates one bucket.
#[derive(Default)]
struct Acc {
    up: i64,
    down: i64,
    maintenance: i64,
    latencies: Vec<i64>,
}

impl Acc {
    fn add(&mut self, ok: bool, maintenance: bool, latency: Option<i64>) {
        if maintenance {
            self.maintenance += 1;
        } else if ok {
            self.up += 1;
        } else {
            self.down += 1;
        }
        // Only passing checks are latency: a refused connection answers in 0.2 ms and a timeout
        // takes the whole timeout, and either would bend the chart away from how fast the
        // service answers. Failures show in the up/down counts and the beat bar instead.
        if let Some(l) = latency.filter(|_| ok) {
            self.latencies.push(l);
        }
    }

    fn finish(mut self, bucket: i64) -> Bucket {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        let (avg, p95, max) = if n == 0 {
            (None, None, None)
        } else {
            let sum: i64 = self.latencies.iter().sum();
            // Nearest-rank p95: the smallest value with at least 95% of values at or below it.
            let rank = (n * 95).div_ceil(100).max(1);
            (
                Some(sum / n as i64),
                self.latencies.get(rank - 1).copied(),
                self.latencies.last().copied(),
            )
        };
        Bucket {
            bucket,
            up: self.up,
            down: self.down,
            maintenance: self.maintenance,
            latency_avg_us: avg,
            latency_p95_us: p95,
            latency_max_us: max,
        }
    }
}

/// Monitor ids in chunks, so rollups and retention touch a bounded number of rows at a time.
async fn id_chunks(store: &Store, size: usize) -> Result<Vec<(i64, i64)>> {
    let ids: Vec<i64> = sqlx::query("SELECT id FROM monitors ORDER BY id")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    Ok(ids
        .chunks(size.max(1))
        .filter_map(|c| Some((*c.first()?, *c.last()?)))
        .collect())
}

/// Computes every closed bucket of every width up to `now`; returns buckets written.
pub async fn roll_up(store: &Store, now: i64) -> Result<usize> {
    let mut written = 0;
    let chunks = id_chunks(store, 500).await?;
    // A bucket is final once the slowest check that started in it has been written: checks may
    // take up to 300 s, so buckets are closed 6 minutes after they end.
    let settled = now - SETTLE_MS;
    for &(width, len, _) in WIDTHS {
        let closed = settled - settled.rem_euclid(len);
        let mut from = mark(store, width).await?;
        if from < closed - RAW_RETENTION_MS {
            // Behind by more than raw results are normally kept: a new database, or an upkeep
            // that did not run for over a day. Start at the oldest result not yet rolled up
            // (retention keeps those, see [`enforce_retention`]) rather than at the retention
            // line, which would leave the missed days without rollups and their uptime without
            // their checks; with no such result, there is nothing to catch up.
            let oldest: Option<i64> =
                sqlx::query("SELECT MIN(at) AS oldest FROM monitor_results WHERE at >= $1")
                    .bind(from)
                    .fetch_one(store.pool())
                    .await?
                    .try_get("oldest")?;
            from = oldest.map_or(closed - RAW_RETENTION_MS + len, |at| at.max(from));
            if from >= closed {
                // Nothing to roll up before the last closed bucket: say so, or this scan (it
                // cannot use the primary key) would run at every upkeep until a bucket closes.
                set_mark(store, width, closed).await?;
                continue;
            }
        }
        from -= from.rem_euclid(len);
        // At most a day's worth of minute buckets per call, so a long outage catches up in steps.
        let until = closed.min(from + DAY);
        if until <= from {
            continue;
        }
        for &(lo, hi) in &chunks {
            let rows = sqlx::query(
                "SELECT monitor_id, at, ok, maintenance, latency_us FROM monitor_results
                 WHERE monitor_id >= $1 AND monitor_id <= $2 AND at >= $3 AND at < $4",
            )
            .bind(lo)
            .bind(hi)
            .bind(from)
            .bind(until)
            .fetch_all(store.pool())
            .await?;
            let mut agg: BTreeMap<(i64, i64), Acc> = BTreeMap::new();
            for r in &rows {
                let at: i64 = r.try_get("at")?;
                agg.entry((r.try_get("monitor_id")?, at - at.rem_euclid(len)))
                    .or_default()
                    .add(
                        r.flag("ok")?,
                        r.flag("maintenance")?,
                        r.try_get("latency_us")?,
                    );
            }
            drop(rows);
            if agg.is_empty() {
                continue;
            }
            let buckets: Vec<(i64, Bucket)> = agg
                .into_iter()
                .map(|((m, b), a)| (m, a.finish(b)))
                .collect();
            write_rollups(store, width, &buckets).await?;
            written += buckets.len();
        }
        set_mark(store, width, until).await?;
    }
    Ok(written)
}

/// Records that `width`'s rollups are final before `until`.
async fn set_mark(store: &Store, width: &str, until: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO uptime_marks (name, done_until) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET done_until = excluded.done_until",
    )
    .bind(width)
    .bind(until)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Stores rollup buckets of one width, `(monitor id, bucket)`, replacing any already there.
///
/// The rollup job writes through it, and so does `lookout-testkit`'s `scale_seed` example, which
/// backfills 90 days of history for `bench/scale.sh`: raw results older than a day are gone by
/// design, so history that old can only arrive as rollups.
pub async fn write_rollups(store: &Store, width: &str, buckets: &[(i64, Bucket)]) -> Result<()> {
    if buckets.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Value>> = buckets
        .iter()
        .map(|(m, b)| {
            vec![
                (*m).into(),
                width.into(),
                b.bucket.into(),
                b.up.into(),
                b.down.into(),
                b.maintenance.into(),
                b.latency_avg_us.into(),
                b.latency_p95_us.into(),
                b.latency_max_us.into(),
            ]
        })
        .collect();
    let mut tx = store.begin_write().await?;
    multi_row(
        store.backend(),
        &mut tx,
        "INSERT INTO monitor_rollups (monitor_id, width, bucket, up, down, maintenance, latency_avg_us, latency_p95_us, latency_max_us)",
        "ON CONFLICT (monitor_id, width, bucket) DO UPDATE SET up = excluded.up, down = excluded.down,
         maintenance = excluded.maintenance, latency_avg_us = excluded.latency_avg_us,
         latency_p95_us = excluded.latency_p95_us, latency_max_us = excluded.latency_max_us",
        rows,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes what is past retention; returns rows deleted.
///
/// Raw results not yet in every width's rollups are kept past [`RAW_RETENTION_MS`] (for at
/// most [`UNROLLED_MAX_MS`]), so an upkeep that fell behind rolls them up when it catches up
/// instead of finding them deleted. An upkeep stopped for longer than a week loses the checks
/// of its oldest days: the catch-up rolls a day per run, and the rest goes at the week's end.
pub async fn enforce_retention(store: &Store, now: i64) -> Result<u64> {
    let marks = Marks::read(store).await?;
    let raw_cutoff = (now - RAW_RETENTION_MS)
        .min(marks.hour)
        .min(marks.day)
        .max(now - UNROLLED_MAX_MS);
    let mut n = 0;
    for (lo, hi) in id_chunks(store, 500).await? {
        n += sqlx::query(
            "DELETE FROM monitor_results WHERE monitor_id >= $1 AND monitor_id <= $2 AND at < $3",
        )
        .bind(lo)
        .bind(hi)
        .bind(raw_cutoff)
        .execute(store.pool())
        .await?
        .rows_affected();
        for &(width, _, keep) in WIDTHS {
            n += sqlx::query(
                "DELETE FROM monitor_rollups WHERE monitor_id >= $1 AND monitor_id <= $2 AND width = $3 AND bucket < $4",
            )
            .bind(lo)
            .bind(hi)
            .bind(width)
            .bind(now - keep)
            .execute(store.pool())
            .await?
            .rows_affected();
        }
    }
    for sql in [
        "DELETE FROM monitor_changes WHERE at < $1",
        "DELETE FROM cron_checkins WHERE started_at < $1",
    ] {
        n += sqlx::query(sql)
            .bind(now - 730 * DAY)
            .execute(store.pool())
            .await?
            .rows_affected();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::Acc;

    #[test]
    fn buckets_count_maintenance_apart_and_take_an_exact_p95() {
        let mut a = Acc::default();
        for i in 1..=100 {
            a.add(i % 10 != 0, false, Some(i * 1000));
        }
        a.add(false, true, None);
        let b = a.finish(0);
        assert_eq!((b.up, b.down, b.maintenance), (90, 10, 1));
        // The ten failed checks (10, 20, … 100 ms) are not latency.
        assert_eq!(b.latency_p95_us, Some(95_000));
        assert_eq!(b.latency_max_us, Some(99_000));
        assert_eq!(b.latency_avg_us, Some(50_000));
    }
}
