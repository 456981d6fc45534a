//! Maintenance windows and public status pages, with their incidents and timestamped updates.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;

fn ids_from(text: &str) -> Result<Vec<i64>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The row `sql` (with `$1` = `id`) selects, converted; `NotFound` when there is none.
async fn one_by_id<T>(
    store: &Store,
    sql: &str,
    id: i64,
    convert: fn(&AnyRow) -> Result<T>,
) -> Result<T> {
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(convert)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

fn ids_to(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

// ---------------------------------------------------------------- maintenance windows

/// A stored maintenance window.
#[derive(Debug, Clone)]
pub struct MaintenanceRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Title shown on status pages.
    pub title: String,
    /// Details.
    pub description: String,
    /// One-off start (or rule start), ms.
    pub starts_at: Option<i64>,
    /// One-off end (or rule end), ms.
    pub ends_at: Option<i64>,
    /// Recurrence rule JSON.
    pub recurrence: Option<String>,
    /// Monitors it covers.
    pub monitor_ids: Vec<i64>,
}

/// What to store for a window.
#[derive(Debug, Clone)]
pub struct NewMaintenance {
    /// Organization.
    pub org_id: i64,
    /// Title.
    pub title: String,
    /// Details.
    pub description: String,
    /// Start, ms.
    pub starts_at: Option<i64>,
    /// End, ms.
    pub ends_at: Option<i64>,
    /// Recurrence JSON.
    pub recurrence: Option<String>,
    /// Monitors.
    pub monitor_ids: Vec<i64>,
}

fn maintenance_from(r: &AnyRow) -> Result<MaintenanceRow> {
    Ok(MaintenanceRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        recurrence: r.try_get("recurrence")?,
        monitor_ids: ids_from(&r.try_get::<String, _>("monitor_ids")?)?,
    })
}

const MAINT_COLS: &str =
    "id, org_id, title, description, starts_at, ends_at, recurrence, monitor_ids FROM maintenance_windows";

/// Creates a window.
pub async fn create_maintenance(store: &Store, m: &NewMaintenance) -> Result<MaintenanceRow> {
    let mut tx = store.begin_write().await?;
    let now = now_ms();
    let r = sqlx::query(
        "INSERT INTO maintenance_windows (org_id, title, description, starts_at, ends_at, recurrence, monitor_ids, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(m.org_id)
    .bind(&m.title)
    .bind(&m.description)
    .bind(m.starts_at)
    .bind(m.ends_at)
    .bind(&m.recurrence)
    .bind(ids_to(&m.monitor_ids))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = r.try_get("id")?;
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    get_maintenance(store, id).await
}

/// Replaces a window.
pub async fn update_maintenance(
    store: &Store,
    id: i64,
    m: &NewMaintenance,
) -> Result<MaintenanceRow> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE maintenance_windows SET title = $1, description = $2, starts_at = $3, ends_at = $4, recurrence = $5,
                monitor_ids = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&m.title)
    .bind(&m.description)
    .bind(m.starts_at)
    .bind(m.ends_at)
    .bind(&m.recurrence)
    .bind(ids_to(&m.monitor_ids))
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    crate::found(n)?;
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    get_maintenance(store, id).await
}

/// One window.
pub async fn get_maintenance(store: &Store, id: i64) -> Result<MaintenanceRow> {
    one_by_id(
        store,
        &format!("SELECT {MAINT_COLS} WHERE id = $1"),
        id,
        maintenance_from,
    )
    .await
}

/// Every window (few per organization; the runners cache them).
pub async fn list_maintenance(store: &Store) -> Result<Vec<MaintenanceRow>> {
    sqlx::query(&format!("SELECT {MAINT_COLS} ORDER BY id"))
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(maintenance_from)
        .collect()
}

/// Deletes a window.
pub async fn delete_maintenance(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "maintenance_windows", id).await
}

// ---------------------------------------------------------------- status pages

/// A stored status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusPageRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// URL slug: `/status/{slug}`.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Text under the title.
    pub description: String,
    /// Logo image URL.
    pub logo_url: Option<String>,
    /// Monitors shown, in order.
    pub monitor_ids: Vec<i64>,
    /// `config` when declared in the config file.
    pub managed_by: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
}

/// What to store for a page.
#[derive(Debug, Clone)]
pub struct NewStatusPage {
    /// Organization.
    pub org_id: i64,
    /// Slug.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Monitors.
    pub monitor_ids: Vec<i64>,
    /// `config` for config-file pages.
    pub managed_by: Option<String>,
}

const PAGE_COLS: &str =
    "id, org_id, slug, title, description, logo_url, monitor_ids, managed_by, created_at, updated_at FROM status_pages";

fn page_from(r: &AnyRow) -> Result<StatusPageRow> {
    Ok(StatusPageRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        slug: r.try_get("slug")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        logo_url: r.try_get("logo_url")?,
        monitor_ids: ids_from(&r.try_get::<String, _>("monitor_ids")?)?,
        managed_by: r.try_get("managed_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Creates a page; the slug must be free.
pub async fn create_page(store: &Store, p: &NewStatusPage) -> Result<StatusPageRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(
        "INSERT INTO status_pages (org_id, slug, title, description, logo_url, monitor_ids, managed_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(p.org_id)
    .bind(&p.slug)
    .bind(&p.title)
    .bind(&p.description)
    .bind(&p.logo_url)
    .bind(ids_to(&p.monitor_ids))
    .bind(&p.managed_by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a status page with this slug"))?;
    crate::commit_audited(tx).await?;
    get_page(store, r.try_get("id")?).await
}

/// Replaces a page.
pub async fn update_page(store: &Store, id: i64, p: &NewStatusPage) -> Result<StatusPageRow> {
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE status_pages SET slug = $1, title = $2, description = $3, logo_url = $4, monitor_ids = $5,
                managed_by = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&p.slug)
    .bind(&p.title)
    .bind(&p.description)
    .bind(&p.logo_url)
    .bind(ids_to(&p.monitor_ids))
    .bind(&p.managed_by)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("a status page with this slug"))?
    .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    get_page(store, id).await
}

/// One page by id.
pub async fn get_page(store: &Store, id: i64) -> Result<StatusPageRow> {
    one_by_id(
        store,
        &format!("SELECT {PAGE_COLS} WHERE id = $1"),
        id,
        page_from,
    )
    .await
}

/// One page by slug.
pub async fn page_by_slug(store: &Store, slug: &str) -> Result<StatusPageRow> {
    sqlx::query(&format!("SELECT {PAGE_COLS} WHERE slug = $1"))
        .bind(slug)
        .fetch_optional(store.pool())
        .await?
        .as_ref()
        .map(page_from)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

/// An organization's pages.
pub async fn list_pages(store: &Store, org_id: i64) -> Result<Vec<StatusPageRow>> {
    sqlx::query(&format!("SELECT {PAGE_COLS} WHERE org_id = $1 ORDER BY id"))
        .bind(org_id)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(page_from)
        .collect()
}

/// One page of an organization's pages, by id (the API's list).
pub async fn page_pages(
    store: &Store,
    org_id: i64,
    cursor: &crate::Cursor,
) -> Result<crate::Page<StatusPageRow>> {
    let limit = cursor.limit();
    let rows = sqlx::query(&format!(
        "SELECT {PAGE_COLS} WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(org_id)
    .bind(cursor.after_i64()?.unwrap_or(0))
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    crate::Page::try_from_rows(&rows, limit, page_from, |p| p.id.to_string())
}

/// Deletes a page with its incidents.
pub async fn delete_page(store: &Store, id: i64) -> Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "DELETE FROM status_incident_updates WHERE incident_id IN (SELECT id FROM status_incidents WHERE page_id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM status_incidents WHERE page_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM status_pages WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    crate::found(n)?;
    crate::commit_audited(tx).await?;
    Ok(())
}

// ---------------------------------------------------------------- incidents

/// A status-page incident with its updates, newest update first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Incident {
    /// Id.
    pub id: i64,
    /// Page.
    pub page_id: i64,
    /// Title.
    pub title: String,
    /// `none`, `minor`, `major` or `critical`.
    pub impact: String,
    /// `investigating`, `identified`, `monitoring` or `resolved`.
    pub status: String,
    /// Opened, ms.
    pub created_at: i64,
    /// Resolved, ms.
    pub resolved_at: Option<i64>,
    /// Timestamped updates.
    pub updates: Vec<IncidentUpdate>,
}

/// One update of an incident.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentUpdate {
    /// Id.
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// Status it moved to.
    pub status: String,
    /// Text.
    pub body: String,
}

/// Opens an incident with its first update.
pub async fn create_incident(
    store: &Store,
    page_id: i64,
    title: &str,
    impact: &str,
    status: &str,
    body: &str,
) -> Result<Incident> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(
        "INSERT INTO status_incidents (page_id, title, impact, status, created_at, resolved_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(page_id)
    .bind(title)
    .bind(impact)
    .bind(status)
    .bind(now)
    .bind((status == "resolved").then_some(now))
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = r.try_get("id")?;
    sqlx::query("INSERT INTO status_incident_updates (incident_id, at, status, body) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(now)
        .bind(status)
        .bind(body)
        .execute(&mut *tx)
        .await?;
    crate::commit_audited(tx).await?;
    get_incident(store, id).await
}

/// Adds an update; `resolved` closes the incident.
pub async fn add_update(
    store: &Store,
    incident_id: i64,
    status: &str,
    body: &str,
) -> Result<Incident> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(
        "UPDATE status_incidents SET status = $1,
                resolved_at = CASE WHEN $1 = 'resolved' THEN COALESCE(resolved_at, $2) ELSE NULL END
         WHERE id = $3",
    )
    .bind(status)
    .bind(now)
    .bind(incident_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    crate::found(n)?;
    sqlx::query("INSERT INTO status_incident_updates (incident_id, at, status, body) VALUES ($1, $2, $3, $4)")
        .bind(incident_id)
        .bind(now)
        .bind(status)
        .bind(body)
        .execute(&mut *tx)
        .await?;
    crate::commit_audited(tx).await?;
    get_incident(store, incident_id).await
}

async fn updates_of(store: &Store, incident_id: i64) -> Result<Vec<IncidentUpdate>> {
    sqlx::query(
        "SELECT id, at, status, body FROM status_incident_updates WHERE incident_id = $1 ORDER BY at DESC, id DESC",
    )
    .bind(incident_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| {
        Ok(IncidentUpdate {
            id: r.try_get("id")?,
            at: r.try_get("at")?,
            status: r.try_get("status")?,
            body: r.try_get("body")?,
        })
    })
    .collect()
}

fn incident_from(r: &AnyRow) -> Result<Incident> {
    Ok(Incident {
        id: r.try_get("id")?,
        page_id: r.try_get("page_id")?,
        title: r.try_get("title")?,
        impact: r.try_get("impact")?,
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        resolved_at: r.try_get("resolved_at")?,
        updates: Vec::new(),
    })
}

/// One incident with its updates.
pub async fn get_incident(store: &Store, id: i64) -> Result<Incident> {
    let mut i = sqlx::query(
        "SELECT id, page_id, title, impact, status, created_at, resolved_at FROM status_incidents WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .as_ref()
    .map(incident_from)
    .transpose()?
    .ok_or(StoreError::NotFound)?;
    i.updates = updates_of(store, id).await?;
    Ok(i)
}

/// A page's newest incidents with their updates.
pub async fn incidents(store: &Store, page_id: i64, limit: i64) -> Result<Vec<Incident>> {
    let mut out: Vec<Incident> = sqlx::query(
        "SELECT id, page_id, title, impact, status, created_at, resolved_at FROM status_incidents
         WHERE page_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(page_id)
    .bind(limit)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(incident_from)
    .collect::<Result<_>>()?;
    for i in &mut out {
        i.updates = updates_of(store, i.id).await?;
    }
    Ok(out)
}
