//! The trace index: which span blocks hold a trace.
//!
//! Trace keys are random, so inserting each export's keys into a B-tree as it is stored dirtied
//! one page per key per commit — under ingest most of the bytes written to the WAL (measured:
//! ~70 MB/s for ~50,000 spans/s). Instead each block's keys go into `apm_trace_pending` with
//! the block (one appended row), and [`index_pending`] moves them into `apm_trace_index` every
//! couple of seconds in one sorted batch, which touches each index page once. A lookup reads
//! the index and the few pending rows, so a trace is found the moment its export is
//! acknowledged.

use std::time::Duration;

use sqlx::Row;

use crate::{writer, Result, Store, Value, Write};

/// The pending-keys row for block `id`, stored on `day`, holding `keys`.
pub(crate) fn pending_write(id: i64, day: i64, keys: &[i64]) -> Write {
    let mut packed = Vec::with_capacity(keys.len() * 8);
    for k in keys {
        packed.extend_from_slice(&k.to_le_bytes());
    }
    Write::Insert {
        table: "apm_trace_pending",
        columns: &["block", "day", "traces"],
        values: vec![id.into(), day.into(), packed.into()],
    }
}

fn unpack(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// Pending blocks moved per transaction.
const BATCH: i64 = 5_000;

/// Moves pending trace keys into the index; returns how many blocks were indexed. Replicas may
/// run this at once: an entry inserted twice is ignored, and each deletes only what it read.
pub async fn index_pending(store: &Store) -> Result<usize> {
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    let rows =
        sqlx::query("SELECT block, day, traces FROM apm_trace_pending ORDER BY block LIMIT $1")
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut entries: Vec<(i64, i64, i64)> = Vec::new();
    let mut blocks: Vec<i64> = Vec::with_capacity(rows.len());
    for r in &rows {
        let (block, day): (i64, i64) = (r.try_get("block")?, r.try_get("day")?);
        let traces: Vec<u8> = r.try_get("traces")?;
        entries.extend(unpack(&traces).map(|k| (day, k, block)));
        blocks.push(block);
    }
    // In key order, so the index's pages are each written once.
    entries.sort_unstable();
    entries.dedup();
    let values: Vec<Vec<Value>> = entries
        .into_iter()
        .map(|(d, k, b)| vec![d.into(), k.into(), b.into()])
        .collect();
    writer::multi_row(
        store.backend(),
        &mut tx,
        "INSERT INTO apm_trace_index (day, trace_key, block)",
        "ON CONFLICT (day, trace_key, block) DO NOTHING",
        values,
    )
    .await?;
    for chunk in blocks.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "DELETE FROM apm_trace_pending WHERE block IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for b in chunk {
            q = q.bind(*b);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(blocks.len())
}

/// Most blocks one trace lookup reads. A trace is normally in a few exports; a sender that
/// reuses one trace id in every export would otherwise make each view of it read them all.
pub(crate) const MAX_TRACE_BLOCKS: usize = 2_000;

/// Most pending rows a lookup scans (the indexer moves them in batches of the same size, so
/// more are pending only while it lags far behind).
const PENDING_SCAN: i64 = BATCH;

/// Blocks of `projects` holding trace key `key`, at most [`MAX_TRACE_BLOCKS`], from the index on
/// `days` and from the newest [`PENDING_SCAN`] pending keys; then whether there are more blocks
/// than that (the trace is too large to read whole), and whether older pending rows were not
/// scanned (the indexer lags: the trace may be there but not found yet). Pending rows are
/// scanned newest first because the indexer moves the oldest first, so a trace just received is
/// found even while it lags. Only `projects`' blocks count against the cap: another project
/// reusing the trace id must not push this one's out.
pub(crate) async fn blocks_of(
    store: &Store,
    projects: &[i64],
    key: i64,
    days: &[i64],
) -> Result<(Vec<i64>, bool, bool)> {
    if projects.is_empty() {
        return Ok((Vec::new(), false, false));
    }
    let day_marks: Vec<String> = (0..days.len()).map(|i| format!("${}", i + 3)).collect();
    let project_marks: Vec<String> = (0..projects.len())
        .map(|i| format!("${}", i + 3 + days.len()))
        .collect();
    let sql = format!(
        "SELECT i.block AS block FROM apm_trace_index i JOIN apm_span_blocks b ON b.id = i.block
         WHERE i.trace_key = $1 AND i.day IN ({}) AND b.project_id IN ({})
         ORDER BY i.block LIMIT $2",
        day_marks.join(", "),
        project_marks.join(", ")
    );
    let mut q = sqlx::query_scalar(&sql)
        .bind(key)
        .bind(MAX_TRACE_BLOCKS as i64 + 1);
    for d in days {
        q = q.bind(*d);
    }
    for p in projects {
        q = q.bind(*p);
    }
    let mut blocks: Vec<i64> = q.fetch_all(store.pool()).await?;
    let pending = sqlx::query(
        "SELECT p.block AS block, p.traces AS traces, b.project_id AS project_id
         FROM apm_trace_pending p JOIN apm_span_blocks b ON b.id = p.block
         ORDER BY p.block DESC LIMIT $1",
    )
    .bind(PENDING_SCAN + 1)
    .fetch_all(store.pool())
    .await?;
    let lagging = pending.len() as i64 > PENDING_SCAN;
    for r in pending.iter().take(PENDING_SCAN as usize) {
        let project: i64 = r.try_get("project_id")?;
        if !projects.contains(&project) {
            continue;
        }
        let traces: Vec<u8> = r.try_get("traces")?;
        if unpack(&traces).any(|k| k == key) {
            blocks.push(r.try_get("block")?);
        }
    }
    blocks.sort_unstable();
    blocks.dedup();
    let more = blocks.len() > MAX_TRACE_BLOCKS;
    blocks.truncate(MAX_TRACE_BLOCKS);
    Ok((blocks, more, lagging))
}

/// Indexes pending keys every `every` until `stop` resolves (at once again while a batch was
/// full).
pub async fn run(store: Store, every: Duration, stop: impl std::future::Future<Output = ()>) {
    crate::cursor::poll_until(
        || async { Ok(index_pending(&store).await? as i64 >= BATCH) },
        every,
        None,
        "apm.trace_index",
        stop,
    )
    .await;
}
