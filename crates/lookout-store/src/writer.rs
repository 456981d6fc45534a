//! The durable write path: a bounded queue in front of one group-committing writer task.
//!
//! Callers hand over a small list of [`Write`]s and wait for the acknowledgement. The writer takes
//! everything queued (up to a batch cap), applies it in one transaction — consecutive inserts into
//! the same table become one multi-row `INSERT` — commits once, then acknowledges every caller.
//! One fsync thus covers thousands of writes, and an acknowledgement always means "committed":
//! it survives `kill -9` (and, with `synchronous=FULL` on SQLite, power loss).
//!
//! The queue is bounded. When it is full, [`WriteQueue::write`] fails at once with
//! [`StoreError::Overloaded`] so ingest can answer 503 with `Retry-After` instead of growing memory.
//! A batch that fails is retried one submission at a time, so one bad write fails alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::{events, Backend, Result, Store, StoreError};

/// A value bound to a statement. Nulls carry their type because PostgreSQL needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A 64-bit integer (ids, milliseconds, counts); `None` is a typed NULL.
    I64(Option<i64>),
    /// A double.
    F64(Option<f64>),
    /// Text (also JSON documents).
    Text(Option<String>),
    /// Bytes (attachments).
    Bytes(Option<Vec<u8>>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::I64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(Some(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_string()))
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(Some(v))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}

/// One change applied through the group commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Append a row. Consecutive inserts into one table with the same columns share a statement.
    Insert {
        /// Table name (a constant from code, never user input).
        table: &'static str,
        /// Column names, in the order of `values`.
        columns: &'static [&'static str],
        /// One value per column.
        values: Vec<Value>,
    },
    /// A statement that must change exactly one row, or the whole transaction fails with
    /// [`StoreError::Fenced`]: how work done under a lease proves it still holds it
    /// ([`crate::cluster::guard`]).
    Guard {
        /// SQL with `$1…` placeholders (a constant from code).
        sql: &'static str,
        /// Its arguments.
        args: Vec<Value>,
    },
    /// Any other statement (updates, upserts), run as is.
    Exec {
        /// SQL with `$1…` placeholders (a constant from code).
        sql: &'static str,
        /// Its arguments.
        args: Vec<Value>,
    },
}

/// Tunables of the writer; the defaults suit both backends.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Submissions the queue holds before refusing more.
    pub queue_capacity: usize,
    /// Writes applied in one transaction at most.
    pub max_batch: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_capacity: 16_384,
            max_batch: 4_096,
        }
    }
}

/// A caller's writes and where to send the outcome.
struct Submission {
    writes: Vec<Write>,
    ack: oneshot::Sender<Result<()>>,
}

/// The sending side of the write queue; cheap to clone into every handler.
#[derive(Clone)]
pub struct WriteQueue {
    tx: mpsc::Sender<Submission>,
    capacity: usize,
}

impl WriteQueue {
    /// Queues `writes` and waits until they are committed.
    ///
    /// Fails at once with [`StoreError::Overloaded`] when the queue is full, and with
    /// [`StoreError::ShuttingDown`] after shutdown began.
    pub async fn write(&self, writes: Vec<Write>) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .try_send(Submission { writes, ack })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::ShuttingDown,
            })?;
        done.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Submissions waiting for the writer now.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }
}

/// The writer task's handle: stop it with [`Writer::shutdown`], which flushes what is queued.
pub struct Writer {
    queue: WriteQueue,
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn start(store: Store, config: WriterConfig) -> Writer {
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let stop = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(run(store, config.clone(), rx, stop.clone()));
        Writer {
            queue: WriteQueue {
                tx,
                capacity: config.queue_capacity,
            },
            stop,
            task,
        }
    }

    /// A sender for handlers.
    pub fn queue(&self) -> WriteQueue {
        self.queue.clone()
    }

    /// Refuses new writes, commits everything already queued, and waits for the task to end.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        drop(self.queue);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "Writer task ended abnormally.");
        }
    }
}

/// The writer loop: wait for work, drain up to a batch, commit, acknowledge.
async fn run(
    store: Store,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Submission>,
    stop: Arc<tokio::sync::Notify>,
) {
    let mut batch: Vec<Submission> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            s = rx.recv() => s,
            () = stop.notified() => {
                // Close the queue so new submissions fail fast, then flush what is in it.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let mut weight = first.writes.len();
        batch.push(first);
        while weight < config.max_batch {
            match rx.try_recv() {
                Ok(s) => {
                    weight += s.writes.len();
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        metrics::gauge!("lookout_write_queue_depth").set(rx.len() as f64);
        commit_batch(&store, &mut batch).await;
    }
    tracing::info!("Write queue drained and closed.");
}

/// Commits a batch and acknowledges it; on failure retries each submission alone.
async fn commit_batch(store: &Store, batch: &mut Vec<Submission>) {
    let started = Instant::now();
    let writes: Vec<&Write> = batch.iter().flat_map(|s| s.writes.iter()).collect();
    let outcome = apply_in_tx(store, &writes).await;
    let elapsed = started.elapsed();
    metrics::histogram!("lookout_storage_commit_seconds").record(elapsed.as_secs_f64());
    metrics::histogram!("lookout_storage_commit_batch_writes").record(writes.len() as f64);
    drop(writes);
    match outcome {
        Ok(()) => {
            for s in batch.drain(..) {
                let _ = s.ack.send(Ok(()));
            }
        }
        Err(e) if batch.len() == 1 => {
            tracing::warn!(error = %e, "Write failed.");
            if let Some(s) = batch.pop() {
                let _ = s.ack.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, submissions = batch.len(), "Batch failed; retrying its submissions one by one.");
            for s in batch.drain(..) {
                let refs: Vec<&Write> = s.writes.iter().collect();
                let result = apply_in_tx(store, &refs).await;
                let _ = s.ack.send(result);
            }
        }
    }
    if elapsed > Duration::from_secs(1) {
        tracing::warn!(
            elapsed_ms = elapsed.as_millis() as u64,
            "Slow group commit."
        );
    }
}

/// Applies `writes` in order in one transaction and commits it.
async fn apply_in_tx(store: &Store, writes: &[&Write]) -> Result<()> {
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    apply(store, &mut tx, writes).await?;
    tx.commit().await?;
    // Before the submitters are acknowledged: a backup restored to any later moment has it.
    store.note_commit();
    for table in events::STREAM_TABLES {
        if writes
            .iter()
            .any(|w| matches!(w, Write::Insert { table: t, .. } if t == table))
        {
            store.wake().committed(table);
        }
    }
    Ok(())
}

/// Applies writes inside `tx`: in order, except that stream rows (domain events, ingested
/// items) go last.
///
/// Consecutive inserts into one table become multi-row `INSERT`s. A submission usually pairs a
/// change with its event (`[row, event]`), so a batch alternates tables; setting the events aside
/// lets both the rows and the events coalesce. Moving events is safe: no row references an event,
/// they stay in the same transaction as their changes, and their relative order is kept. It also
/// means PostgreSQL's publish lock is held only from the events' insert to the commit.
pub(crate) async fn apply(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    writes: &[&Write],
) -> Result<()> {
    let is_event = |w: &&Write| matches!(w, Write::Insert { table, .. } if events::STREAM_TABLES.contains(table));
    let (evs, rest): (Vec<&Write>, Vec<&Write>) = writes.iter().copied().partition(is_event);
    apply_runs(store.backend(), tx, &rest).await?;
    if !evs.is_empty() {
        events::lock_for_publish(store, tx).await?;
        apply_runs(store.backend(), tx, &evs).await?;
    }
    Ok(())
}

/// Applies writes in order, coalescing each run of inserts into the same table and columns.
async fn apply_runs(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    writes: &[&Write],
) -> Result<()> {
    let mut i = 0;
    while let Some(w) = writes.get(i) {
        match w {
            Write::Exec { sql, args } => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = bind(q, a);
                }
                q.execute(&mut **tx).await?;
                i += 1;
            }
            Write::Guard { sql, args } => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = bind(q, a);
                }
                if q.execute(&mut **tx).await?.rows_affected() != 1 {
                    return Err(StoreError::Fenced);
                }
                i += 1;
            }
            Write::Insert { table, columns, .. } => {
                let run = &writes[i..];
                let run_len = run
                    .iter()
                    .take_while(|o| matches!(o, Write::Insert { table: t, columns: c, .. } if t == table && c == columns))
                    .count();
                let rows: Vec<&[Value]> = run[..run_len]
                    .iter()
                    .filter_map(|w| match w {
                        Write::Insert { values, .. } => Some(values.as_slice()),
                        Write::Exec { .. } | Write::Guard { .. } => None,
                    })
                    .collect();
                multi_row_ref(
                    backend,
                    tx,
                    &format!("INSERT INTO {table} ({})", columns.join(", ")),
                    "",
                    &rows,
                )
                .await?;
                i += run_len;
            }
        }
    }
    Ok(())
}

pub(crate) use crate::dialect::placeholders;

/// Most parameters one statement binds; SQLite allows 32,766, and fixed-size chunks keep the
/// prepared-statement cache small.
const MAX_PARAMS: usize = 2_000;

/// Runs `{head} VALUES (…), (…) {tail}` for `rows` in chunks of at most [`MAX_PARAMS`]
/// parameters; returns the rows any `RETURNING` produced.
pub(crate) async fn multi_row(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<sqlx::any::AnyRow>> {
    let refs: Vec<&[Value]> = rows.iter().map(Vec::as_slice).collect();
    multi_row_ref(backend, tx, head, tail, &refs).await
}

/// [`multi_row`] over borrowed rows: values are bound by reference, so the group commit does not
/// copy every string it writes (measured: copies were a large share of span ingest's allocations).
pub(crate) async fn multi_row_ref(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    head: &str,
    tail: &str,
    rows: &[&[Value]],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let mut out = Vec::new();
    let width = rows.first().map_or(1, |r| r.len()).max(1);
    for chunk in rows.chunks((MAX_PARAMS / width).max(1)) {
        let tuples: Vec<String> = (0..chunk.len())
            .map(|r| format!("({})", placeholders(backend, r * width, width)))
            .collect();
        let sql = format!("{head} VALUES {} {tail}", tuples.join(", "));
        let mut q = sqlx::query(&sql);
        for v in chunk.iter().flat_map(|r| r.iter()) {
            q = bind(q, v);
        }
        out.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(out)
}

/// Binds one [`Value`] by reference (no copy of its text or bytes).
pub(crate) fn bind<'q>(
    q: Query<'q, Any, AnyArguments<'q>>,
    v: &'q Value,
) -> Query<'q, Any, AnyArguments<'q>> {
    match v {
        Value::I64(x) => q.bind(*x),
        Value::F64(x) => q.bind(*x),
        Value::Text(x) => q.bind(x.as_deref()),
        Value::Bytes(x) => q.bind(x.as_deref()),
    }
}
