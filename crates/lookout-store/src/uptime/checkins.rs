//! What the check-in consumer reads and writes: the `check_in` items waiting in the ingest inbox,
//! and the cron monitor a check-in names (found, or re-scheduled from the SDK's
//! `monitor_config`). The applying happens in the consumer's transaction, which also advances its
//! cursor, so each item is applied exactly once.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, Tx};

/// One `check_in` item of the inbox, as ingest stored it.
#[derive(Debug, Clone)]
pub struct CheckInItem {
    /// Position in `ingest_items`.
    pub seq: i64,
    /// The project it was sent to.
    pub project_id: i64,
    /// When it arrived, ms.
    pub received_at: i64,
    /// The check-in as the SDK sent it (JSON).
    pub payload: String,
}

/// The newest position in the inbox, of any kind (0 when it is empty): the consumer reads up to
/// it, so a quiet inbox of other items is not rescanned at every poll.
pub async fn newest_inbox_seq(store: &Store) -> Result<i64> {
    let r = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM ingest_items")
        .fetch_one(store.pool())
        .await?;
    Ok(r.try_get("seq")?)
}

/// Up to `limit` `check_in` items after `after` and up to `until`, oldest first.
pub async fn items(store: &Store, after: i64, until: i64, limit: i64) -> Result<Vec<CheckInItem>> {
    let rows = sqlx::query(
        "SELECT seq, project_id, received_at, payload FROM ingest_items
         WHERE seq > $1 AND seq <= $2 AND kind = 'check_in' ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(until)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(item).collect()
}

fn item(r: &AnyRow) -> Result<CheckInItem> {
    Ok(CheckInItem {
        seq: r.try_get("seq")?,
        project_id: r.try_get("project_id")?,
        received_at: r.try_get("received_at")?,
        payload: r.try_get("payload")?,
    })
}

/// The monitor a check-in names, as far as applying it needs.
#[derive(Debug, Clone)]
pub struct Target {
    /// Monitor id.
    pub id: i64,
    /// Its stored spec (JSON).
    pub spec: String,
    /// The config file that declares it, if one does (then the SDK's schedule does not win).
    pub managed_by: Option<String>,
}

/// Monitor `slug` of project `project_id`, read in `tx`.
pub async fn target_in(tx: &mut Tx, project_id: i64, slug: &str) -> Result<Option<Target>> {
    let r = sqlx::query(
        "SELECT id, spec, managed_by FROM monitors WHERE project_id = $1 AND slug = $2",
    )
    .bind(project_id)
    .bind(slug)
    .fetch_optional(&mut **tx)
    .await?;
    r.map(|r| {
        Ok(Target {
            id: r.try_get("id")?,
            spec: r.try_get("spec")?,
            managed_by: r.try_get("managed_by")?,
        })
    })
    .transpose()
}

/// Replaces monitor `id`'s spec in `tx` (the SDK sent a new schedule). `updated_at` moves on by
/// one so the shard's runner notices the change as it notices any other.
pub async fn set_spec_in(tx: &mut Tx, id: i64, spec: &str) -> Result<()> {
    sqlx::query("UPDATE monitors SET spec = $1, updated_at = updated_at + 1 WHERE id = $2")
        .bind(spec)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The organization of project `project_id`, read in `tx` (a monitor created from a check-in
/// belongs to it).
pub async fn project_org_in(tx: &mut Tx, project_id: i64) -> Result<i64> {
    let r = sqlx::query("SELECT org_id FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(r.try_get("org_id")?)
}
