//! What the Operations page and `/metrics` read of Lookout's own machinery: every event cursor
//! with its position and lease, the newest sequence number of each ordered stream (so a cursor's
//! lag is the head minus its position), and the depth of the notification outbox.
//!
//! Reads only, each one cheap (a primary-key maximum, a small table, an indexed count): the
//! metrics endpoint calls them on every scrape.

use sqlx::Row;

use crate::{Result, Store};

/// One event cursor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRow {
    /// The consumer's name (`alerting.policies`, `errors.processor`, …).
    pub consumer: String,
    /// The sequence number processed up to.
    pub position: i64,
    /// The replica holding its lease, if any.
    pub lease_owner: Option<String>,
    /// Until when, by the database's clock (ms).
    pub lease_until: Option<i64>,
    /// When it last moved (ms).
    pub updated_at: i64,
}

/// The newest sequence number of each stream cursors follow (0 when empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamHeads {
    /// `domain_events`.
    pub events: i64,
    /// `ingest_items` (envelopes, OTLP, check-ins).
    pub ingest: i64,
    /// `apm_parts` (span parts awaiting rollup).
    pub apm_parts: i64,
}

/// The notification outbox's backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Notifications due now and not yet delivered (what a stuck deliverer leaves behind).
    pub pending: i64,
    /// When the longest-waiting of them fell due (ms).
    pub oldest_pending_at: Option<i64>,
    /// Notifications waiting for a later time: a notification rule's delayed step, or a retry.
    pub scheduled: i64,
}

/// Every event cursor, by name.
pub async fn cursors(store: &Store) -> Result<Vec<CursorRow>> {
    let rows = sqlx::query(
        "SELECT consumer, position, lease_owner, lease_until, updated_at FROM event_cursors
         ORDER BY consumer",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CursorRow {
                consumer: r.try_get("consumer")?,
                position: r.try_get("position")?,
                lease_owner: r.try_get("lease_owner")?,
                lease_until: r.try_get("lease_until")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// The head of every stream, in one round trip.
pub async fn stream_heads(store: &Store) -> Result<StreamHeads> {
    let r = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM domain_events) AS events,
                (SELECT COALESCE(MAX(seq), 0) FROM ingest_items) AS ingest,
                (SELECT COALESCE(MAX(seq), 0) FROM apm_parts) AS apm_parts",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(StreamHeads {
        events: r.try_get("events")?,
        ingest: r.try_get("ingest")?,
        apm_parts: r.try_get("apm_parts")?,
    })
}

/// How many notifications wait in the outbox, and since when.
pub async fn outbox_depth(store: &Store) -> Result<OutboxDepth> {
    // Due by the database's clock, as the deliverer claims them: a delayed step queued an hour
    // ahead is not a backlog.
    let now = crate::dialect::now_ms_sql(store.backend());
    let r = sqlx::query(&format!(
        "SELECT COALESCE(SUM(CASE WHEN next_attempt_at <= {now} THEN 1 ELSE 0 END), 0) AS pending,
                MIN(CASE WHEN next_attempt_at <= {now} THEN next_attempt_at END) AS oldest,
                COALESCE(SUM(CASE WHEN next_attempt_at > {now} THEN 1 ELSE 0 END), 0) AS scheduled
         FROM notifications WHERE status = 'pending'"
    ))
    .fetch_one(store.pool())
    .await?;
    Ok(OutboxDepth {
        pending: r.try_get("pending")?,
        oldest_pending_at: r.try_get("oldest")?,
        scheduled: r.try_get("scheduled")?,
    })
}
