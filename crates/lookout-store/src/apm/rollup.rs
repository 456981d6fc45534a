//! The rollup consumer: follows `apm_parts` by `seq` (each export's rollup contribution, written
//! with its spans) and folds every part into minute, hour and day RED rows, service-map edges and
//! the services list, in the transaction that advances its cursor — so each span counts exactly
//! once, whatever crashes, and before any sampling or retention touches the raw spans.

use std::collections::HashMap;
use std::time::Duration;

use lookout_apm::rollup::{bucket, Agg, Link, Part, TIERS};
use lookout_apm::sketch::Sketch;
use lookout_core::time::now_ms;
use sqlx::{Any, Row, Transaction};

use super::links::RecentLinks;
use crate::{cursor, writer, Backend, Result, Store, Value};

/// The consumer's cursor name.
pub const CURSOR: &str = "apm.rollups";

/// The category of the rows that sum each service's requests over every operation and status
/// class (their operation and status class are empty). The services list reads these: a few
/// rows per service and bucket instead of one per operation, status class and outcome.
pub const SERVICE_CATEGORY: &str = "service";

/// The `server_settings` row by which migration 0032 asks for the service rows of what was
/// rolled up before it to be summed (see [`RollupProcessor::backfill_service_rows`]).
const SERVICE_ROWS_MARK: &str = "apm.service_rows";

/// The `server_settings` row holding the cursor position through which the service rows are
/// complete: every fold that writes them moves it with the cursor. A fold by a replica of a
/// version before service rows (a rolling upgrade) moves the cursor alone, and the difference
/// sends the next fold here to rebuild them.
const SERVICE_ROWS_THROUGH: &str = "apm.service_rows.through";

/// Whether the per-service rows hold every span folded so far (see [`SERVICE_CATEGORY`]):
/// false while migration 0032's sum of older rollups is pending, or after a replica of an
/// earlier version folded spans without them. Readers then fold the request rows instead.
pub async fn service_rows_complete(store: &Store) -> Result<bool> {
    let (pending, through) = service_rows_state(store.pool()).await?;
    Ok(!pending && through == cursor::position(store, CURSOR).await?)
}

/// (the sum of older rollups is pending, the position the service rows are complete through).
async fn service_rows_state<'e, E>(db: E) -> Result<(bool, i64)>
where
    E: sqlx::Executor<'e, Database = Any> + Copy,
{
    let value = |name: &'static str| async move {
        let row = sqlx::query("SELECT value FROM server_settings WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
        Ok::<_, crate::StoreError>(row.map(|r| r.try_get::<String, _>("value")).transpose()?)
    };
    let pending = value(SERVICE_ROWS_MARK).await?.is_some();
    let through = value(SERVICE_ROWS_THROUGH)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((pending, through))
}

/// Records, in a fold's transaction, that the service rows are complete through `position`.
async fn set_service_rows_through(tx: &mut Transaction<'static, Any>, position: i64) -> Result<()> {
    crate::identity::upsert_setting_in(tx, SERVICE_ROWS_THROUGH, &position.to_string()).await
}

/// Default Apdex target of a newly seen service, ms (New Relic's and SigNoz's default).
pub const DEFAULT_APDEX_T_MS: f64 = 500.0;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    project: i64,
    tier: i64,
    service: String,
    bucket: i64,
    category: String,
    operation: String,
    status_class: String,
    error: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EdgeKey {
    project: i64,
    tier: i64,
    bucket: i64,
    source: String,
    target: String,
    kind: String,
}

/// (project, hour, statement, service, transaction) of statement calls, folded into
/// (calls, total ms).
type StatementKey = (i64, i64, String, String, String);

#[derive(Debug, Default)]
struct EdgeAgg {
    count: i64,
    errors: i64,
    sum_ms: f64,
}

/// Rollup rows kept between folds: the stored value of each recently written row, valid while
/// this processor alone has moved the cursor since (`position`), so a fold reads a row from the
/// database only the first time it touches it.
#[derive(Default)]
struct RowCache {
    position: i64,
    rows: HashMap<Key, Agg>,
    /// The sum of [`row_bytes`] over `rows`.
    bytes: usize,
}

/// Rows the cache holds at most (most are a few hundred bytes with their sketch).
const CACHE_ROWS: usize = 20_000;

/// Bytes the cache holds at most (by [`row_bytes`]). The row count alone does not bound it: the
/// sender chooses the operation names (up to 8 KiB) and the spread of durations (a sketch of
/// up to ~19 KB), so 20,000 rows could hold most of a gigabyte.
const CACHE_BYTES: usize = 32 << 20;

/// The estimated memory of one cached row: its key's strings, its sketch's bins, and the fixed
/// part of the key, the value and the map's overhead.
fn row_bytes(k: &Key, a: &Agg) -> usize {
    std::mem::size_of::<(Key, Agg)>()
        + 16
        + k.service.len()
        + k.category.len()
        + k.operation.len()
        + k.status_class.len()
        + a.sketch.heap_bytes()
}

impl RowCache {
    /// Keeps the rows just written. Checked after adding them, since one fold can add a whole
    /// batch's rows: past either bound the cache is emptied (the rows are read from the
    /// database again when next touched).
    fn keep(&mut self, written: Vec<(Key, Agg)>) {
        for (k, a) in written {
            self.bytes += row_bytes(&k, &a);
            if let Some(old) = self.rows.get(&k) {
                self.bytes -= row_bytes(&k, old);
            }
            self.rows.insert(k, a);
        }
        if self.rows.len() > CACHE_ROWS || self.bytes > CACHE_BYTES {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.bytes = 0;
    }
}

/// Folds rollup parts; one replica at a time holds the cursor.
pub struct RollupProcessor {
    store: Store,
    owner: String,
    batch: i64,
    cache: tokio::sync::Mutex<RowCache>,
    links: tokio::sync::Mutex<RecentLinks>,
    /// Whether the service rows are known to cover everything rolled up (checked once).
    service_rows_ready: std::sync::atomic::AtomicBool,
}

impl RollupProcessor {
    /// A processor identified as `owner` (unique per replica).
    pub fn new(store: Store, owner: &str) -> Self {
        RollupProcessor {
            store,
            owner: owner.to_string(),
            batch: 500,
            cache: tokio::sync::Mutex::default(),
            links: tokio::sync::Mutex::default(),
            service_rows_ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Folds the next batch of parts if this replica holds the cursor; returns how many parts it
    /// folded.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, 10_000).await? else {
            return Ok(0);
        };
        if !self.backfill_service_rows(position).await? {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT seq, project_id, payload, packed FROM apm_parts WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(position)
        .bind(self.batch)
        .fetch_all(self.store.pool())
        .await?;
        let Some(last) = rows
            .last()
            .map(|r| r.try_get::<i64, _>("seq"))
            .transpose()?
        else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut cells: HashMap<Key, Agg> = HashMap::new();
        let mut edges: HashMap<EdgeKey, EdgeAgg> = HashMap::new();
        let mut services: HashMap<(i64, String), i64> = HashMap::new();
        let mut links: Vec<(i64, Link)> = Vec::new();
        let mut statements: HashMap<StatementKey, (i64, f64)> = HashMap::new();
        let mut spans = 0usize;
        for r in &rows {
            let project: i64 = r.try_get("project_id")?;
            // Parts written before 0011 are JSON text; newer ones are packed.
            let packed: Option<Vec<u8>> = r.try_get("packed")?;
            let part = match packed {
                Some(bytes) => Part::unpack(&bytes),
                None => serde_json::from_str(r.try_get::<&str, _>("payload")?).ok(),
            };
            let Some(part) = part else {
                tracing::warn!("Skipped a rollup part that does not parse.");
                continue;
            };
            for c in &part.cells {
                let Some(agg) = c.agg() else { continue };
                spans += agg.count as usize;
                let seen = services
                    .entry((project, c.service.clone()))
                    .or_insert(c.minute);
                *seen = (*seen).max(c.minute);
                for (tier, width) in TIERS {
                    let b = bucket(c.minute, width);
                    if c.category == "request" {
                        cells
                            .entry(service_key(project, tier, &c.service, b, c.error))
                            .or_default()
                            .merge(&agg);
                    }
                    cells
                        .entry(Key {
                            project,
                            tier,
                            service: c.service.clone(),
                            bucket: b,
                            category: c.category.clone(),
                            operation: c.operation.clone(),
                            status_class: c.status_class.clone(),
                            error: c.error,
                        })
                        .or_default()
                        .merge(&agg);
                }
            }
            for c in &part.calls {
                add_edge(
                    &mut edges, project, c.minute, &c.source, &c.target, &c.kind, c.count,
                    c.errors, c.sum_ms,
                );
            }
            links.extend(part.links.into_iter().map(|l| (project, l)));
            for c in part.statements {
                let hour = bucket(c.minute, 3_600_000);
                let e = statements
                    .entry((project, hour, c.statement, c.service, c.transaction))
                    .or_default();
                e.0 += c.calls;
                e.1 += c.sum_ms;
            }
        }
        for c in self.links.lock().await.pair(&links, now_ms()) {
            add_edge(
                &mut edges,
                c.project,
                c.start_ms,
                &c.caller,
                &c.callee,
                "service",
                1,
                i64::from(c.error),
                c.duration_ms,
            );
        }
        let _turn = self.store.write_gate().await;
        let mut tx = self.store.begin_write().await?;
        let n_cells = cells.len();
        let mut cache = self.cache.lock().await;
        if cache.position != position {
            // Another replica folded in between: start afresh.
            cache.clear();
        }
        let mut written = Vec::with_capacity(n_cells);
        for (k, agg) in cells {
            let merged = merge_cell(&mut tx, &k, agg, cache.rows.get(&k)).await?;
            written.push((k, merged));
        }
        write_cells(self.store.backend(), &mut tx, &written).await?;
        for (k, e) in edges {
            sqlx::query(
                "INSERT INTO apm_edges (project_id, tier, bucket, source, target, target_kind, count, errors, sum_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (project_id, tier, bucket, source, target, target_kind) DO UPDATE SET
                   count = apm_edges.count + excluded.count, errors = apm_edges.errors + excluded.errors,
                   sum_ms = apm_edges.sum_ms + excluded.sum_ms",
            )
            .bind(k.project)
            .bind(k.tier)
            .bind(k.bucket)
            .bind(k.source)
            .bind(k.target)
            .bind(k.kind)
            .bind(e.count)
            .bind(e.errors)
            .bind(e.sum_ms)
            .execute(&mut *tx)
            .await?;
        }
        for ((project, hour, statement, service, txn), (calls, sum_ms)) in statements {
            sqlx::query(
                "INSERT INTO apm_statement_calls (project_id, bucket, statement, service, txn, calls, sum_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (project_id, statement, bucket, service, txn) DO UPDATE SET
                   calls = apm_statement_calls.calls + excluded.calls,
                   sum_ms = apm_statement_calls.sum_ms + excluded.sum_ms",
            )
            .bind(project)
            .bind(hour)
            .bind(statement)
            .bind(service)
            .bind(txn)
            .bind(calls)
            .bind(sum_ms)
            .execute(&mut *tx)
            .await?;
        }
        let now = now_ms();
        for ((project, name), seen) in services {
            sqlx::query(
                "INSERT INTO apm_services (project_id, name, apdex_t_ms, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (project_id, name) DO UPDATE SET last_seen = excluded.last_seen
                 WHERE apm_services.last_seen < excluded.last_seen",
            )
            .bind(project)
            .bind(name)
            .bind(DEFAULT_APDEX_T_MS)
            .bind(seen.min(now))
            .execute(&mut *tx)
            .await?;
        }
        set_service_rows_through(&mut tx, last).await?;
        if !cursor::finish(tx, CURSOR, &self.owner, position, last).await? {
            return Ok(0);
        }
        cache.position = last;
        cache.keep(written);
        metrics::counter!("lookout_apm_rolled_spans_total").increment(spans as u64);
        metrics::histogram!("lookout_apm_rollup_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::debug!(
            parts = rows.len(),
            spans,
            cells = n_cells,
            "Spans rolled up."
        );
        Ok(rows.len())
    }

    /// Rebuilds the service rows from the request rows when they may lack spans: after
    /// migration 0032 (rollups from before it), or when the cursor moved without them (a
    /// replica of an earlier version folded during a rolling upgrade). Checked at this
    /// processor's first poll and whenever another replica folded since its last; done before
    /// any new part is folded, so nothing is counted twice. Sketches are merged here because SQL
    /// cannot. One service and tier per transaction, each fenced by the cursor's lease (renewed
    /// before each, so a long rebuild keeps it) and rewriting that service's totals whole, so
    /// an interrupted rebuild is simply done again. False when the lease was lost.
    async fn backfill_service_rows(&self, position: i64) -> Result<bool> {
        use std::sync::atomic::Ordering;
        if self.service_rows_ready.load(Ordering::Relaxed)
            && self.cache.lock().await.position == position
        {
            return Ok(true);
        }
        let (pending, through) = service_rows_state(self.store.pool()).await?;
        if !pending && through == position {
            self.service_rows_ready.store(true, Ordering::Relaxed);
            return Ok(true);
        }
        let groups = sqlx::query(
            "SELECT DISTINCT project_id, tier, service FROM apm_rollups WHERE category = 'request'",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut n = 0;
        for g in &groups {
            if cursor::lease(&self.store, CURSOR, &self.owner, 10_000).await? != Some(position) {
                return Ok(false);
            }
            let (project, tier): (i64, i64) = (g.try_get("project_id")?, g.try_get("tier")?);
            let service: String = g.try_get("service")?;
            let _turn = self.store.write_gate().await;
            let mut tx = self.store.begin_write().await?;
            // Streamed: memory holds this service's sums (two per bucket), not its rows.
            let mut sums: HashMap<Key, Agg> = HashMap::new();
            {
                use futures_util::TryStreamExt;
                let mut rows = sqlx::query(
                    "SELECT bucket, error, count, errors, sum_ms, min_ms, max_ms, sketch FROM apm_rollups
                     WHERE project_id = $1 AND tier = $2 AND service = $3 AND category = 'request'",
                )
                .bind(project)
                .bind(tier)
                .bind(service.as_str())
                .fetch(&mut *tx);
                while let Some(r) = rows.try_next().await? {
                    let error = crate::row::RowExt::flag(&r, "error")?;
                    let key = service_key(project, tier, &service, r.try_get("bucket")?, error);
                    let sketch = Sketch::decode(r.try_get("sketch")?).unwrap_or_else(|_| {
                        tracing::warn!(service = %service, "Summed a rollup row with a corrupt sketch as empty.");
                        Sketch::default()
                    });
                    sums.entry(key).or_default().merge(&Agg {
                        count: r.try_get::<i64, _>("count")?.max(0) as u64,
                        errors: r.try_get::<i64, _>("errors")?.max(0) as u64,
                        sum: r.try_get("sum_ms")?,
                        min: r.try_get("min_ms")?,
                        max: r.try_get("max_ms")?,
                        sketch,
                    });
                }
            }
            n += sums.len();
            let written: Vec<(Key, Agg)> = sums.into_iter().collect();
            for chunk in written.chunks(500) {
                write_cells(self.store.backend(), &mut tx, chunk).await?;
            }
            if !cursor::finish(tx, CURSOR, &self.owner, position, position).await? {
                return Ok(false);
            }
        }
        let _turn = self.store.write_gate().await;
        let mut tx = self.store.begin_write().await?;
        sqlx::query("DELETE FROM server_settings WHERE name = $1")
            .bind(SERVICE_ROWS_MARK)
            .execute(&mut *tx)
            .await?;
        set_service_rows_through(&mut tx, position).await?;
        if !cursor::finish(tx, CURSOR, &self.owner, position, position).await? {
            return Ok(false);
        }
        // Rows this processor kept may be older than what was just written.
        self.cache.lock().await.clear();
        tracing::info!(rows = n, "Summed the services' rollup rows.");
        self.service_rows_ready.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// Folds until `stop` resolves, polling every `idle` when there is nothing new.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        // A full batch means more is waiting. Otherwise wait: a fold costs about the same for 10
        // parts as for 500 (it is one read and write per touched rollup row), so folding what a
        // second brings in one go keeps up with far more spans.
        let full = self.batch as usize;
        cursor::poll_until(
            || async { Ok(self.poll_once().await? >= full) },
            idle,
            // Never woken early: the wait is what gathers a second's parts into one fold.
            None,
            "apm.rollups",
            stop,
        )
        .await;
    }
}

/// The key of the row summing `service`'s requests with outcome `error` in one bucket.
fn service_key(project: i64, tier: i64, service: &str, bucket: i64, error: bool) -> Key {
    Key {
        project,
        tier,
        service: service.to_string(),
        bucket,
        category: SERVICE_CATEGORY.to_string(),
        operation: String::new(),
        status_class: String::new(),
        error,
    }
}

#[allow(clippy::too_many_arguments)]
fn add_edge(
    edges: &mut HashMap<EdgeKey, EdgeAgg>,
    project: i64,
    at_ms: i64,
    source: &str,
    target: &str,
    kind: &str,
    count: i64,
    errors: i64,
    sum_ms: f64,
) {
    // Edges keep minute and hour tiers: the map is read over hours, rarely over months.
    for (tier, width) in &TIERS[..2] {
        let e = edges
            .entry(EdgeKey {
                project,
                tier: *tier,
                bucket: bucket(at_ms, *width),
                source: source.to_string(),
                target: target.to_string(),
                kind: kind.to_string(),
            })
            .or_default();
        e.count += count;
        e.errors += errors;
        e.sum_ms += sum_ms;
    }
}

/// `agg` merged with its stored row (read — from `cached` when given — and merged, sketch
/// included); [`write_cells`] writes it back. Only the cursor's holder writes rollups, so the
/// read-modify-write cannot race.
async fn merge_cell(
    tx: &mut Transaction<'static, Any>,
    k: &Key,
    mut agg: Agg,
    cached: Option<&Agg>,
) -> Result<Agg> {
    if let Some(c) = cached {
        agg.merge(c);
        return Ok(agg);
    }
    let old = bind_key(
        sqlx::query(
            "SELECT count, errors, sum_ms, min_ms, max_ms, sketch FROM apm_rollups
             WHERE project_id = $1 AND tier = $2 AND service = $3 AND bucket = $4 AND category = $5
               AND operation = $6 AND status_class = $7 AND error = $8",
        ),
        k,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = old {
        let sketch: Vec<u8> = r.try_get("sketch")?;
        agg.merge(&Agg {
            count: r.try_get::<i64, _>("count")?.max(0) as u64,
            errors: r.try_get::<i64, _>("errors")?.max(0) as u64,
            sum: r.try_get("sum_ms")?,
            min: r.try_get("min_ms")?,
            max: r.try_get("max_ms")?,
            sketch: Sketch::decode(&sketch).unwrap_or_default(),
        });
    }
    Ok(agg)
}

/// Binds a rollup row's key, in primary-key order, as `$1`…`$8`.
fn bind_key<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    k: &'q Key,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    q.bind(k.project)
        .bind(k.tier)
        .bind(k.service.as_str())
        .bind(k.bucket)
        .bind(k.category.as_str())
        .bind(k.operation.as_str())
        .bind(k.status_class.as_str())
        .bind(i64::from(k.error))
}

/// Stores rollup rows' values, in multi-row statements (one statement per row was most of a
/// fold's time: each is a round trip to the database thread).
async fn write_cells(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    cells: &[(Key, Agg)],
) -> Result<()> {
    let rows: Vec<Vec<Value>> = cells
        .iter()
        .map(|(k, agg)| {
            vec![
                k.project.into(),
                k.tier.into(),
                k.service.as_str().into(),
                k.bucket.into(),
                k.category.as_str().into(),
                k.operation.as_str().into(),
                k.status_class.as_str().into(),
                i64::from(k.error).into(),
                (agg.count as i64).into(),
                (agg.errors as i64).into(),
                agg.sum.into(),
                agg.min.into(),
                agg.max.into(),
                agg.sketch.encode().into(),
            ]
        })
        .collect();
    writer::multi_row(
        backend,
        tx,
        "INSERT INTO apm_rollups (project_id, tier, service, bucket, category, operation, status_class, error,
                                  count, errors, sum_ms, min_ms, max_ms, sketch)",
        "ON CONFLICT (project_id, tier, service, bucket, category, operation, status_class, error) DO UPDATE SET
           count = excluded.count, errors = excluded.errors, sum_ms = excluded.sum_ms,
           min_ms = excluded.min_ms, max_ms = excluded.max_ms, sketch = excluded.sketch",
        rows,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize, operation: &str) -> Key {
        Key {
            project: 1,
            tier: 0,
            service: "shop".into(),
            bucket: i as i64,
            category: "request".into(),
            operation: operation.into(),
            status_class: "2xx".into(),
            error: false,
        }
    }

    #[test]
    fn the_row_cache_stays_within_its_byte_budget_after_a_fold_of_long_names() {
        let mut cache = RowCache::default();
        let long = "o".repeat(8 * 1024);
        // One fold's rows: far fewer than CACHE_ROWS, but over CACHE_BYTES.
        let written: Vec<_> = (0..CACHE_BYTES / long.len() + 1)
            .map(|i| (key(i, &long), Agg::default()))
            .collect();
        assert!(written.len() < CACHE_ROWS);
        cache.keep(written);
        assert!(cache.bytes <= CACHE_BYTES, "{} bytes held", cache.bytes);
    }

    #[test]
    fn the_row_count_is_checked_after_the_fold_adds_its_rows() {
        let mut cache = RowCache::default();
        let written: Vec<_> = (0..CACHE_ROWS + 500)
            .map(|i| (key(i, "GET /"), Agg::default()))
            .collect();
        cache.keep(written);
        assert!(cache.rows.len() <= CACHE_ROWS, "{} rows", cache.rows.len());
    }

    #[test]
    fn rewritten_rows_are_counted_once() {
        let mut cache = RowCache::default();
        for _ in 0..3 {
            cache.keep(vec![(key(1, "GET /"), Agg::default())]);
        }
        assert_eq!(cache.rows.len(), 1);
        assert_eq!(cache.bytes, row_bytes(&key(1, "GET /"), &Agg::default()));
    }
}
