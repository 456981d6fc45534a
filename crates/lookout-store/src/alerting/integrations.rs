//! Inbound integrations (PagerDuty, Alertmanager, Grafana, plain webhooks): the routing key
//! (hashed to find the integration, sealed to show it again) and the spec that turns an alert
//! into an incident. Writes carry the request's audit entry in their transaction.

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::row::RowExt;
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;

/// An inbound integration.
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationRow {
    /// Id.
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// Name.
    pub name: String,
    /// `pagerduty`, `alertmanager`, `grafana`, `webhook`.
    pub kind: String,
    /// The routing key, sealed.
    pub key_sealed: String,
    /// Escalation policy, runbook, service, urgency, mapping.
    pub spec: Json,
    /// Created, ms.
    pub created_at: i64,
}

const INTEGRATION_COLS: &str = "id, org_id, name, kind, key_sealed, spec, created_at";

fn integration_row(r: &AnyRow) -> Result<IntegrationRow> {
    Ok(IntegrationRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        kind: r.try_get("kind")?,
        key_sealed: r.try_get("key_sealed")?,
        spec: r.json("spec")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Stores an integration whose key hashes to `key_hash`.
pub async fn integration_create(
    store: &Store,
    org_id: i64,
    name: &str,
    kind: &str,
    key_hash: &str,
    key_sealed: &str,
    spec: &Json,
) -> Result<IntegrationRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(&format!(
        "INSERT INTO integrations (org_id, name, kind, key_hash, key_sealed, spec, created_at,
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {INTEGRATION_COLS}"
    ))
    .bind(org_id)
    .bind(name)
    .bind(kind)
    .bind(key_hash)
    .bind(key_sealed)
    .bind(spec.to_string())
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StoreError::conflict_as("integration key"))?;
    crate::commit_audited(tx).await?;
    integration_row(&r)
}

/// Changes an integration's name and spec (the key stays).
pub async fn integration_update(
    store: &Store,
    id: i64,
    name: &str,
    spec: &Json,
) -> Result<IntegrationRow> {
    let mut tx = store.begin_write().await?;
    let r = sqlx::query(&format!(
        "UPDATE integrations SET name = $1, spec = $2, updated_at = $3 WHERE id = $4
         RETURNING {INTEGRATION_COLS}"
    ))
    .bind(name)
    .bind(spec.to_string())
    .bind(now_ms())
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    crate::commit_audited(tx).await?;
    integration_row(&r)
}

/// One integration.
pub async fn integration_get(store: &Store, id: i64) -> Result<IntegrationRow> {
    let r = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    integration_row(&r)
}

/// The integration whose key hashes to `key_hash`.
pub async fn integration_by_key(store: &Store, key_hash: &str) -> Result<Option<IntegrationRow>> {
    let r = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE key_hash = $1"
    ))
    .bind(key_hash)
    .fetch_optional(store.pool())
    .await?;
    r.as_ref().map(integration_row).transpose()
}

/// An organization's integrations.
pub async fn integration_list(store: &Store, org_id: i64) -> Result<Vec<IntegrationRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {INTEGRATION_COLS} FROM integrations WHERE org_id = $1 ORDER BY id"
    ))
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(integration_row).collect()
}

/// Deletes an integration.
pub async fn integration_delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "integrations", id).await
}
