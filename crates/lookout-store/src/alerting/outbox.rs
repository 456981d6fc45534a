//! The notification outbox: pages queued in the same transaction as the incident change that
//! caused them, then claimed under a lease, delivered and marked by whichever replica is free.
//!
//! Each row has a unique idempotency key (`incident:event:step:channel`), so the same page is
//! never queued twice however often the step that queues it is retried. Claims are fenced by
//! token unique to each claim, and due times and leases come from the database's clock: a replica
//! that dies or stalls mid-send leaves the row to be claimed again once its lease lapses (the
//! receiver sees the same idempotency key, so it can drop the repeat), and its late marks are
//! refused. Failed sends retry with exponential backoff until [`MAX_ATTEMPTS`].

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::dialect::now_ms_sql;
use crate::row::RowExt;
use crate::{Backend, Result, Store};

/// The backend a transaction runs on (for its clock expression).
fn backend_of(tx: &Transaction<'static, Any>) -> Backend {
    if tx.backend_name() == "PostgreSQL" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Sends tried before a notification is given up as failed.
pub const MAX_ATTEMPTS: i64 = 8;

/// A queued or finished notification.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationRow {
    /// Id.
    pub id: i64,
    /// Unique per page.
    pub idempotency_key: String,
    /// The incident.
    pub incident_id: i64,
    /// Where it goes.
    pub channel_id: i64,
    /// The user paged, when it is a contact method.
    pub user_id: Option<i64>,
    /// `triggered`, `escalated`, `repeated`, `ack_timeout`, `acknowledged`, `resolved`.
    pub event: String,
    /// Step details (rule, lap).
    pub data: Json,
    /// `pending`, `sent`, `failed`, `skipped` (its channel was disabled).
    pub status: String,
    /// Tries so far.
    pub attempts: i64,
    /// Next try, ms.
    pub next_attempt_at: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// Queued, ms.
    pub created_at: i64,
    /// Delivered, ms.
    pub sent_at: Option<i64>,
}

const COLS: &str = "id, idempotency_key, incident_id, channel_id, user_id, event, data, status, \
    attempts, next_attempt_at, last_error, created_at, sent_at";

fn row(r: &AnyRow) -> Result<NotificationRow> {
    Ok(NotificationRow {
        id: r.try_get("id")?,
        idempotency_key: r.try_get("idempotency_key")?,
        incident_id: r.try_get("incident_id")?,
        channel_id: r.try_get("channel_id")?,
        user_id: r.try_get("user_id")?,
        event: r.try_get("event")?,
        data: r.json("data")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// One page to queue.
#[derive(Debug, Clone)]
pub struct Page {
    /// Unique per page.
    pub idempotency_key: String,
    /// The incident.
    pub incident_id: i64,
    /// Where.
    pub channel_id: i64,
    /// Whom.
    pub user_id: Option<i64>,
    /// Why.
    pub event: String,
    /// Step details.
    pub data: Json,
    /// How long after it is queued it is due, ms by the database's clock (a notification
    /// rule's delay; 0: at once).
    pub delay_ms: i64,
}

/// Queues pages inside `tx`; a page whose key is queued already is skipped. Returns how many
/// were new. `at` is when they were queued; they are due at once by the database's clock (not
/// at `at`: a replica whose clock runs fast would otherwise hold its pages back).
pub async fn enqueue(tx: &mut Transaction<'static, Any>, pages: &[Page], at: i64) -> Result<u64> {
    let sql = format!(
        "INSERT INTO notifications (idempotency_key, incident_id, channel_id, user_id, event,
         data, status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, {} + $8, $7)
         ON CONFLICT (idempotency_key) DO NOTHING",
        now_ms_sql(backend_of(tx))
    );
    let mut n = 0;
    for p in pages {
        n += sqlx::query(&sql)
            .bind(&p.idempotency_key)
            .bind(p.incident_id)
            .bind(p.channel_id)
            .bind(p.user_id)
            .bind(&p.event)
            .bind(p.data.to_string())
            .bind(at)
            .bind(p.delay_ms)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(n)
}

/// Claims up to `limit` notifications that are due by the database's clock, for `lease_ms` by
/// that clock, under `token`: a fencing token unique to this claim (the replica's name and a
/// claim counter), which every mark checks. A replica that claims again after its lease lapsed
/// gets a new token, so marks of the older claim are refused; and since neither the due time
/// nor the lease is read from the replica's clock, a replica whose clock runs fast can neither
/// take pages another replica holds nor send retries early.
pub async fn claim(
    store: &Store,
    token: &str,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<NotificationRow>> {
    // The outer conditions repeat the inner ones: on PostgreSQL a concurrent claimer re-checks
    // them against the row it waited for, so a row is never handed to two replicas.
    let now = now_ms_sql(store.backend());
    let mut tx = store.begin_write().await?;
    let rows = sqlx::query(&format!(
        "UPDATE notifications SET lease_owner = $1, lease_until = {now} + $2
         WHERE id IN (SELECT id FROM notifications WHERE status = 'pending'
                      AND next_attempt_at <= {now} AND (lease_until IS NULL OR lease_until < {now})
                      ORDER BY next_attempt_at LIMIT $3)
         AND status = 'pending' AND (lease_until IS NULL OR lease_until < {now})
         RETURNING {COLS}"
    ))
    .bind(token)
    .bind(lease_ms)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.iter().map(row).collect()
}

/// How long until the soonest pending notification can next be claimed, ms by the database's
/// clock (0 or less: now): its due time, or, while another worker holds it, the end of that
/// lease (so idle workers do not spin on it). `None` when nothing is pending.
pub async fn next_due_in(store: &Store) -> Result<Option<i64>> {
    let now = now_ms_sql(store.backend());
    let r = sqlx::query(&format!(
        "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > {now} THEN lease_until
                         ELSE next_attempt_at END) - {now} AS due
         FROM notifications WHERE status = 'pending'"
    ))
    .fetch_one(store.pool())
    .await?;
    Ok(r.try_get("due")?)
}

/// Marks a claimed notification delivered, inside `tx` (with its timeline entry). False when
/// `owner` lost the lease meanwhile.
pub async fn mark_sent(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    owner: &str,
    at: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE notifications SET status = 'sent', sent_at = $1, attempts = attempts + 1,
         lease_owner = NULL, lease_until = NULL, last_error = NULL
         WHERE id = $2 AND lease_owner = $3 AND status = 'pending'",
    )
    .bind(at)
    .bind(id)
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    Ok(n.rows_affected() == 1)
}

/// Records a claimed notification as not sent on purpose (its channel is disabled), inside
/// `tx`: `skipped`, with `reason` as its last error, and never retried. False when `owner` lost
/// the lease.
pub async fn mark_skipped(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    owner: &str,
    reason: &str,
    at: i64,
) -> Result<bool> {
    skip(tx, id, Some(owner), reason, at).await
}

/// Skips pending notification `id` inside `tx` without a lease: `skipped`, with `reason` as its
/// last error, never sent. Used when the incident change that makes a queued later step moot
/// commits (an acknowledgement, a reassignment). A replica sending it right now loses its mark
/// (the status is no longer `pending`); the send-time check backs this up. False when it was
/// no longer pending.
pub async fn skip_pending(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    reason: &str,
    at: i64,
) -> Result<bool> {
    skip(tx, id, None, reason, at).await
}

/// The one `skipped` update of [`mark_skipped`] (under `owner`'s lease) and [`skip_pending`]
/// (whoever holds it).
async fn skip(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    owner: Option<&str>,
    reason: &str,
    at: i64,
) -> Result<bool> {
    let sql = if owner.is_some() {
        "UPDATE notifications SET status = 'skipped', last_error = $1, sent_at = NULL,
         next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
         WHERE id = $3 AND status = 'pending' AND lease_owner = $4"
    } else {
        "UPDATE notifications SET status = 'skipped', last_error = $1, sent_at = NULL,
         next_attempt_at = $2, lease_owner = NULL, lease_until = NULL
         WHERE id = $3 AND status = 'pending'"
    };
    let mut q = sqlx::query(sql).bind(reason).bind(at).bind(id);
    if let Some(owner) = owner {
        q = q.bind(owner);
    }
    Ok(q.execute(&mut **tx).await?.rows_affected() == 1)
}

/// Records a failed try: retried `retry_in_ms` from now by the database's clock, or given up
/// (`None`). False when `owner` lost the lease.
pub async fn mark_failed(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    owner: &str,
    error: &str,
    retry_in_ms: Option<i64>,
) -> Result<bool> {
    let sql = format!(
        "UPDATE notifications SET status = $1, attempts = attempts + 1, last_error = $2,
         next_attempt_at = COALESCE({} + $3, next_attempt_at), lease_owner = NULL, lease_until = NULL
         WHERE id = $4 AND lease_owner = $5 AND status = 'pending'",
        now_ms_sql(backend_of(tx))
    );
    let n = sqlx::query(&sql)
        .bind(if retry_in_ms.is_some() {
            "pending"
        } else {
            "failed"
        })
        .bind(error)
        .bind(retry_in_ms)
        .bind(id)
        .bind(owner)
        .execute(&mut **tx)
        .await?;
    Ok(n.rows_affected() == 1)
}

/// An incident's notifications, oldest first.
pub async fn for_incident_in(
    conn: &mut sqlx::AnyConnection,
    incident_id: i64,
) -> Result<Vec<NotificationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM notifications WHERE incident_id = $1 ORDER BY id"
    ))
    .bind(incident_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row).collect()
}

/// [`for_incident_in`] on a pooled connection.
pub async fn for_incident(store: &Store, incident_id: i64) -> Result<Vec<NotificationRow>> {
    for_incident_in(&mut *store.pool().acquire().await?, incident_id).await
}
