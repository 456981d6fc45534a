//! Dashboards: a slug, a name and the spec as JSON (validated by the server), per organization.
//! Saving by slug replaces, so `lookout apply -f` and the config file are idempotent.

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::Row;

use crate::{Result, Store, StoreError};

/// A stored dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardRow {
    pub id: i64,
    pub org_id: i64,
    pub slug: String,
    pub name: String,
    pub spec: Json,
    /// `config`, `pack:<name>`, or none (made in the UI or the API).
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLS: &str = "id, org_id, slug, name, spec, managed_by, created_at, updated_at";

fn row_of(r: &sqlx::any::AnyRow) -> Result<DashboardRow> {
    let spec: String = r.try_get("spec")?;
    Ok(DashboardRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| StoreError::Corrupt(format!("dashboard: {e}")))?,
        managed_by: r.try_get("managed_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Creates or replaces the dashboard with this slug; returns it and whether it is new.
pub async fn save(
    store: &Store,
    org_id: i64,
    slug: &str,
    name: &str,
    spec: &Json,
    managed_by: Option<&str>,
    now: i64,
) -> Result<(DashboardRow, bool)> {
    let mut tx = store.begin_write().await?;
    let existing = sqlx::query("SELECT id FROM dashboards WHERE org_id = $1 AND slug = $2")
        .bind(org_id)
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
    let (row, created) = match existing {
        Some(r) => {
            let id: i64 = r.try_get("id")?;
            let row = sqlx::query(&format!(
                "UPDATE dashboards SET name = $1, spec = $2, managed_by = $3, updated_at = $4 WHERE id = $5 RETURNING {COLS}"
            ))
            .bind(name)
            .bind(spec.to_string())
            .bind(managed_by.map(str::to_string))
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            (row_of(&row)?, false)
        }
        None => {
            let row = sqlx::query(&format!(
                "INSERT INTO dashboards (org_id, slug, name, spec, managed_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLS}"
            ))
            .bind(org_id)
            .bind(slug)
            .bind(name)
            .bind(spec.to_string())
            .bind(managed_by.map(str::to_string))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            (row_of(&row)?, true)
        }
    };
    crate::commit_audited(tx).await?;
    Ok((row, created))
}

/// Every dashboard of the organization, by name.
pub async fn list(store: &Store, org_id: i64) -> Result<Vec<DashboardRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM dashboards WHERE org_id = $1 ORDER BY name, id"
    ))
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row_of).collect()
}

/// One dashboard by id.
pub async fn get(store: &Store, id: i64) -> Result<DashboardRow> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM dashboards WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
    row_of(&r)
}

/// One dashboard by slug.
pub async fn by_slug(store: &Store, org_id: i64, slug: &str) -> Result<Option<DashboardRow>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM dashboards WHERE org_id = $1 AND slug = $2"
    ))
    .bind(org_id)
    .bind(slug)
    .fetch_optional(store.pool())
    .await?;
    r.as_ref().map(row_of).transpose()
}

/// Deletes a dashboard.
pub async fn delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "dashboards", id).await
}
