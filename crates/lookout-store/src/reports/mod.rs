//! Reports' storage: each organization's report settings (one JSON spec), the reports generated
//! (kept as JSON so the UI shows what was sent), and the delivery outbox of scheduled reports,
//! one row per report and channel, retried with backoff like incident pages. The period reads
//! that reports are built from are in [`facts`].

pub mod facts;

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::Row;

use crate::row::RowExt;
use crate::{Result, Store, StoreError};

/// A stored report, without its body (lists).
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    pub id: i64,
    pub org_id: i64,
    /// `daily`, `weekly`, `monthly`.
    pub kind: String,
    pub period_start: i64,
    pub period_end: i64,
    /// Made by the schedule (and delivered), not on demand.
    pub scheduled: bool,
    pub created_at: i64,
}

const COLS: &str = "id, org_id, kind, period_start, period_end, scheduled, created_at";

fn row_of(r: &sqlx::any::AnyRow) -> Result<ReportRow> {
    Ok(ReportRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        kind: r.try_get("kind")?,
        period_start: r.try_get("period_start")?,
        period_end: r.try_get("period_end")?,
        scheduled: r.flag("scheduled")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The organization's report settings, `None` when never saved.
pub async fn settings(store: &Store, org_id: i64) -> Result<Option<Json>> {
    let row = sqlx::query("SELECT spec FROM report_settings WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| {
        let s: String = r.try_get("spec")?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("report settings: {e}")))
    })
    .transpose()
}

/// Replaces the organization's report settings.
pub async fn save_settings(store: &Store, org_id: i64, spec: &Json, now: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    // The audit entry shows the settings before and after (secrets masked).
    let before = sqlx::query("SELECT spec FROM report_settings WHERE org_id = $1")
        .bind(org_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.json("spec"))
        .transpose()?
        .unwrap_or(Json::Null);
    sqlx::query(
        "INSERT INTO report_settings (org_id, spec, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (org_id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(spec.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    crate::audit::record_pending_change_in(&mut tx, &before, spec).await?;
    tx.commit().await?;
    Ok(())
}

/// A report to keep.
#[derive(Debug, Clone)]
pub struct NewReport<'a> {
    pub org_id: i64,
    pub kind: &'a str,
    pub period_start: i64,
    pub period_end: i64,
    pub scheduled: bool,
    pub body: &'a Json,
    /// Channels to deliver it to (scheduled reports).
    pub channels: &'a [i64],
    pub now: i64,
}

/// Keeps a report and queues its deliveries in one transaction. A scheduled report for a period
/// that already has one is not stored twice: `None` then (another replica made it first).
pub async fn insert(store: &Store, r: &NewReport<'_>) -> Result<Option<ReportRow>> {
    let mut tx = store.begin_write().await?;
    if r.scheduled {
        let taken = sqlx::query(
            "SELECT 1 FROM reports WHERE org_id = $1 AND kind = $2 AND period_end = $3 AND scheduled = 1",
        )
        .bind(r.org_id)
        .bind(r.kind)
        .bind(r.period_end)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            tx.rollback().await?;
            return Ok(None);
        }
    }
    let row = sqlx::query(&format!(
        "INSERT INTO reports (org_id, kind, period_start, period_end, scheduled, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLS}"
    ))
    .bind(r.org_id)
    .bind(r.kind)
    .bind(r.period_start)
    .bind(r.period_end)
    .bind(i64::from(r.scheduled))
    .bind(r.body.to_string())
    .bind(r.now)
    .fetch_one(&mut *tx)
    .await;
    let row = match row {
        Ok(row) => row_of(&row)?,
        // The unique index: a replica inserted the same scheduled report meanwhile.
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            tx.rollback().await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    for &c in r.channels {
        sqlx::query(
            "INSERT INTO report_deliveries (report_id, channel_id, status, attempts, next_attempt_at)
             VALUES ($1, $2, 'pending', 0, $3)",
        )
        .bind(row.id)
        .bind(c)
        .bind(r.now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Some(row))
}

/// The organization's reports, newest period first.
pub async fn list(
    store: &Store,
    org_id: i64,
    kind: Option<&str>,
    limit: i64,
) -> Result<Vec<ReportRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM reports WHERE org_id = $1 AND ($2 IS NULL OR kind = $2)
         ORDER BY period_end DESC, id DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(kind.map(str::to_string))
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row_of).collect()
}

/// One report with its body.
pub async fn get(store: &Store, id: i64) -> Result<(ReportRow, Json)> {
    let r = sqlx::query(&format!("SELECT {COLS}, body FROM reports WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
    let body: String = r.try_get("body")?;
    let body = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("report {id}: {e}")))?;
    Ok((row_of(&r)?, body))
}

/// The newest scheduled report of a kind (when the schedule last ran).
pub async fn newest_scheduled(store: &Store, org_id: i64, kind: &str) -> Result<Option<ReportRow>> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM reports WHERE org_id = $1 AND kind = $2 AND scheduled = 1
         ORDER BY period_end DESC LIMIT 1"
    ))
    .bind(org_id)
    .bind(kind)
    .fetch_optional(store.pool())
    .await?;
    row.as_ref().map(row_of).transpose()
}

/// A delivery to attempt.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub report_id: i64,
    pub channel_id: i64,
    /// `pending`, `sent`, `failed` (gave up).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

fn delivery_of(r: &sqlx::any::AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        report_id: r.try_get("report_id")?,
        channel_id: r.try_get("channel_id")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        sent_at: r.try_get("sent_at")?,
    })
}

const DELIVERY_COLS: &str = "report_id, channel_id, status, attempts, last_error, sent_at";

/// Claims up to `limit` due deliveries: each is pushed `lease_ms` into the future first, so a
/// replica that dies mid-send leaves it to be retried, and two replicas never send it at once.
pub async fn claim_due(
    store: &Store,
    now: i64,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<Delivery>> {
    // A plain read first: the job asks every minute, and mostly nothing is due, which needs no
    // write transaction.
    let any = sqlx::query(
        "SELECT 1 FROM report_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 LIMIT 1",
    )
    .bind(now)
    .fetch_optional(store.pool())
    .await?;
    if any.is_none() {
        return Ok(Vec::new());
    }
    let mut tx = store.begin_write().await?;
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM report_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let d = delivery_of(r)?;
        let n = sqlx::query(
            "UPDATE report_deliveries SET next_attempt_at = $1 WHERE report_id = $2 AND channel_id = $3
             AND status = 'pending' AND next_attempt_at <= $4",
        )
        .bind(now + lease_ms)
        .bind(d.report_id)
        .bind(d.channel_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            out.push(d);
        }
    }
    tx.commit().await?;
    Ok(out)
}

/// Records a delivery's outcome: sent, or failed with when to retry (`None`: give up).
pub async fn finish_delivery(
    store: &Store,
    d: &Delivery,
    outcome: std::result::Result<(), (&str, Option<i64>)>,
    now: i64,
) -> Result<()> {
    let (status, error, next, sent) = match outcome {
        Ok(()) => ("sent", None, now, Some(now)),
        Err((e, Some(retry_at))) => ("pending", Some(e), retry_at, None),
        Err((e, None)) => ("failed", Some(e), now, None),
    };
    sqlx::query(
        "UPDATE report_deliveries SET status = $1, attempts = attempts + 1, last_error = $2,
         next_attempt_at = $3, sent_at = $4 WHERE report_id = $5 AND channel_id = $6",
    )
    .bind(status)
    .bind(error.map(str::to_string))
    .bind(next)
    .bind(sent)
    .bind(d.report_id)
    .bind(d.channel_id)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A report's deliveries.
pub async fn deliveries(store: &Store, report_id: i64) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM report_deliveries WHERE report_id = $1 ORDER BY channel_id"
    ))
    .bind(report_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(delivery_of).collect()
}

/// When the organization was created, ms.
pub async fn org_created_at(store: &Store, org_id: i64) -> Result<i64> {
    Ok(
        sqlx::query("SELECT created_at FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_one(store.pool())
            .await?
            .try_get("created_at")?,
    )
}
