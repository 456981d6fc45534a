//! Domain events: a durable, ordered stream that capabilities publish to and consumers follow.
//!
//! Events live in the `domain_events` table with a sequence number. Readers keep a cursor per
//! consumer group in `event_cursors`; a group is served by one replica at a time under a lease,
//! and the handler's writes commit in the same transaction as the cursor advance, so each event is
//! applied exactly once per group even when replicas crash or race.
//!
//! Ordering on PostgreSQL needs care: a sequence number is taken at insert but becomes visible at
//! commit, so a reader could see 8 before 7 commits and skip 7 forever. Publishers therefore take a
//! transaction-scoped advisory lock before inserting; commits then happen in sequence order. The
//! group commit takes it once per batch, so the cost is one lock per fsync, not per event.

use serde::Serialize;
use serde_json::Value as Json;

use crate::row::RowExt;
use crate::writer::{self, Write};
use crate::{cursor, Backend, BoxFuture, Result, Store, StoreError};
use lookout_core::time::now_ms;
use sqlx::{Any, Row, Transaction};

/// The table events are stored in.
pub(crate) const TABLE: &str = "domain_events";
/// The table events are stored in, for wake-ups (see [`crate::wake`]).
pub const TABLE_NAME: &str = TABLE;
/// Tables read as ordered streams by cursor: inserts into them are written last in a batch,
/// under the publish lock, so their sequence numbers become visible in order.
pub(crate) const STREAM_TABLES: &[&str] = &[TABLE, "ingest_items", "apm_parts"];
const COLUMNS: &[&str] = &["kind", "project_id", "subject", "payload", "created_at"];
/// The advisory-lock key that orders publishers on PostgreSQL ("lkevnt").
const PUBLISH_LOCK: i64 = 0x6c6b_6576_6e74;

/// One event as stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DomainEvent {
    /// Position in the stream; strictly increasing in commit order.
    pub seq: i64,
    /// What happened, `noun.verb` (`project.created`, `monitor.down`, …).
    pub kind: String,
    /// The project it concerns, if any.
    pub project_id: Option<i64>,
    /// The id of the thing it concerns (issue id, monitor id, …), if any.
    pub subject: Option<String>,
    /// Details, as published.
    pub payload: Json,
    /// When it was published, ms since the epoch.
    pub created_at: i64,
}

/// Builds the [`Write`] that publishes an event through the group commit.
pub fn publish(
    kind: &str,
    project_id: Option<i64>,
    subject: Option<String>,
    payload: &Json,
) -> Write {
    Write::Insert {
        table: TABLE,
        columns: COLUMNS,
        values: vec![
            kind.into(),
            project_id.into(),
            subject.into(),
            payload.to_string().into(),
            now_ms().into(),
        ],
    }
}

/// Publishes events inside an open transaction (for changes made outside the group commit).
pub async fn publish_in_tx(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
    events: &[Write],
) -> Result<()> {
    let refs: Vec<&Write> = events.iter().collect();
    writer::apply(store, tx, &refs).await
}

/// Takes the publish lock for the rest of `tx` (PostgreSQL only; SQLite has one writer anyway).
pub(crate) async fn lock_for_publish(
    store: &Store,
    tx: &mut Transaction<'static, Any>,
) -> Result<()> {
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PUBLISH_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<DomainEvent> {
    Ok(DomainEvent {
        seq: r.try_get("seq")?,
        kind: r.try_get("kind")?,
        project_id: r.try_get("project_id")?,
        subject: r.try_get("subject")?,
        payload: r.json("payload")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Reads events after `after`, oldest first, optionally for one project and kind prefix.
pub async fn read_after(
    store: &Store,
    after: i64,
    limit: i64,
    project_id: Option<i64>,
) -> Result<Vec<DomainEvent>> {
    let rows = sqlx::query(
        "SELECT seq, kind, project_id, subject, payload, created_at FROM domain_events
         WHERE seq > $1 AND ($2 IS NULL OR project_id = $2) ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(project_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Reads events before `before` (or the newest), newest first: the activity feed.
pub async fn read_newest(
    store: &Store,
    before: Option<i64>,
    limit: i64,
    project_id: Option<i64>,
) -> Result<Vec<DomainEvent>> {
    let rows = sqlx::query(
        "SELECT seq, kind, project_id, subject, payload, created_at FROM domain_events
         WHERE seq < $1 AND ($2 IS NULL OR project_id = $2) ORDER BY seq DESC LIMIT $3",
    )
    .bind(before.unwrap_or(i64::MAX))
    .bind(project_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Counts of events per kind in fixed buckets since `since` (for the overview chart).
pub async fn counts_by_bucket(
    store: &Store,
    since: i64,
    bucket_ms: i64,
) -> Result<Vec<(i64, String, i64)>> {
    let rows = sqlx::query(
        "SELECT (created_at / $2) * $2 AS bucket, kind, COUNT(*) AS n FROM domain_events
         WHERE created_at >= $1 GROUP BY bucket, kind ORDER BY bucket",
    )
    .bind(since)
    .bind(bucket_ms)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("bucket")?, r.try_get("kind")?, r.try_get("n")?)))
        .collect()
}

/// A handler: given a batch of events in order, returns the writes that apply them. Those writes
/// commit atomically with the cursor advance; that is what makes delivery exactly once.
pub type Handler =
    std::sync::Arc<dyn Fn(Vec<DomainEvent>) -> BoxFuture<Result<Vec<Write>, String>> + Send + Sync>;

/// One replica's membership in a consumer group.
pub struct Consumer {
    store: Store,
    group: String,
    owner: String,
    lease_ms: i64,
    batch: i64,
}

impl Consumer {
    /// A consumer of `group` identified as `owner` (unique per replica).
    pub fn new(store: Store, group: &str, owner: &str) -> Consumer {
        Consumer {
            store,
            group: group.to_string(),
            owner: owner.to_string(),
            lease_ms: 30_000,
            batch: 500,
        }
    }

    /// Sets how long the group lease lasts without renewal (a crashed holder is replaced after it).
    pub fn lease_ms(mut self, ms: i64) -> Self {
        self.lease_ms = ms;
        self
    }

    /// Sets the most events handed to the handler at once.
    pub fn batch(mut self, n: i64) -> Self {
        self.batch = n;
        self
    }

    /// Handles the next batch if this replica holds the lease. Returns how many events it applied
    /// (0 when there was nothing new or another replica holds the group).
    pub async fn poll_once(&self, handler: &Handler) -> Result<usize> {
        let Some(position) =
            cursor::lease(&self.store, &self.group, &self.owner, self.lease_ms).await?
        else {
            return Ok(0);
        };
        let events = read_after(&self.store, position, self.batch, None).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(0);
        };
        let n = events.len();
        let writes = handler(events).await.map_err(|e| {
            StoreError::Corrupt(format!("consumer {} handler failed: {e}", self.group))
        })?;
        let mut tx = self.store.begin_write().await?;
        let refs: Vec<&Write> = writes.iter().collect();
        writer::apply(&self.store, &mut tx, &refs).await?;
        // Fencing: only the lease holder, from the position it read, may advance the cursor.
        let moved = cursor::finish(tx, &self.group, &self.owner, position, last).await?;
        Ok(if moved { n } else { 0 })
    }

    /// Polls until `stop` resolves, sleeping `idle` when there is nothing to do.
    pub async fn run(
        self,
        handler: Handler,
        idle: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let store = self.store.clone();
        let group = self.group.clone();
        cursor::poll_until(
            || async { Ok(self.poll_once(&handler).await? > 0) },
            idle,
            Some(store.wake().waiter(TABLE)),
            "events",
            stop,
        )
        .await;
        tracing::debug!(group = %group, "Event consumer stopped.");
    }
}
