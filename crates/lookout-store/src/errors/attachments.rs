//! Attachments that arrived with events (stored at ingest, size-capped there): listed per event
//! and read back for download.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store, StoreError};

/// An attachment without its bytes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttachmentInfo {
    /// Its id.
    pub id: String,
    /// The event it came with.
    pub event_id: String,
    /// File name as sent.
    pub filename: String,
    /// MIME type as sent.
    pub content_type: Option<String>,
    /// Bytes.
    pub size: i64,
    /// Received, ms.
    pub created_at: i64,
}

fn info(r: &sqlx::any::AnyRow) -> Result<AttachmentInfo> {
    Ok(AttachmentInfo {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        filename: r.try_get("filename")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        created_at: r.try_get("created_at")?,
    })
}

/// An event's attachments, in arrival order.
pub async fn list(store: &Store, project_id: i64, event_id: &str) -> Result<Vec<AttachmentInfo>> {
    sqlx::query(
        "SELECT id, event_id, filename, content_type, size, created_at FROM attachments
         WHERE project_id = $1 AND event_id = $2 ORDER BY id",
    )
    .bind(project_id)
    .bind(event_id)
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(info)
    .collect()
}

/// One attachment with its bytes.
pub async fn get(
    store: &Store,
    project_id: i64,
    event_id: &str,
    id: &str,
) -> Result<(AttachmentInfo, Vec<u8>)> {
    let r = sqlx::query(
        "SELECT id, event_id, filename, content_type, size, created_at, data FROM attachments
         WHERE project_id = $1 AND event_id = $2 AND id = $3",
    )
    .bind(project_id)
    .bind(event_id)
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok((info(&r)?, r.try_get("data")?))
}
