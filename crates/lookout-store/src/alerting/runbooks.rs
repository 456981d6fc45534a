//! Runbooks: a name, a link and a versioned Markdown body (every save is a new version, so an
//! incident can show the text it was opened with). Writes carry the request's audit entry in
//! their transaction.

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::Row;

use crate::row::RowExt;
use crate::{Result, Store, StoreError};
use lookout_core::time::now_ms;

/// A runbook with its newest version's body.
#[derive(Debug, Clone, Serialize)]
pub struct RunbookRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// A link, for runbooks kept elsewhere.
    pub url: Option<String>,
    /// Newest version number (1, 2, …).
    pub version: i64,
    /// That version's Markdown.
    pub body: String,
    /// Changed, ms.
    pub updated_at: i64,
}

/// Stores a runbook, or a new version of runbook `id`.
pub async fn runbook_save(
    store: &Store,
    org_id: i64,
    id: Option<i64>,
    name: &str,
    url: Option<&str>,
    body: &str,
    author: &str,
) -> Result<RunbookRow> {
    let now = now_ms();
    let mut tx = store.begin_write().await?;
    let (id, version): (i64, i64) = match id {
        None => {
            let r = sqlx::query(
                "INSERT INTO runbooks (org_id, name, url, version, created_at, updated_at)
                 VALUES ($1, $2, $3, 1, $4, $4) RETURNING id",
            )
            .bind(org_id)
            .bind(name)
            .bind(url)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            (r.try_get("id")?, 1)
        }
        Some(id) => {
            let r = sqlx::query(
                "UPDATE runbooks SET name = $1, url = $2, version = version + 1, updated_at = $3
                 WHERE id = $4 RETURNING version",
            )
            .bind(name)
            .bind(url)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            (id, r.try_get("version")?)
        }
    };
    sqlx::query(
        "INSERT INTO runbook_versions (runbook_id, version, body, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(version)
    .bind(body)
    .bind(author)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    crate::commit_audited(tx).await?;
    Ok(RunbookRow {
        id,
        name: name.into(),
        url: url.map(String::from),
        version,
        body: body.into(),
        updated_at: now,
    })
}

/// A runbook at its newest version, or at `version`.
pub async fn runbook_get_in(
    conn: &mut sqlx::AnyConnection,
    id: i64,
    version: Option<i64>,
) -> Result<RunbookRow> {
    let r = sqlx::query(
        "SELECT r.id, r.name, r.url, v.version, v.body, v.created_at FROM runbooks r
         JOIN runbook_versions v ON v.runbook_id = r.id
         WHERE r.id = $1 AND v.version = COALESCE($2, r.version)",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(RunbookRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        url: r.try_get("url")?,
        version: r.try_get("version")?,
        body: r.try_get("body")?,
        updated_at: r.try_get("created_at")?,
    })
}

/// [`runbook_get_in`] on a pooled connection.
pub async fn runbook_get(store: &Store, id: i64, version: Option<i64>) -> Result<RunbookRow> {
    runbook_get_in(&mut *store.pool().acquire().await?, id, version).await
}

/// An organization's runbooks at their newest versions.
pub async fn runbook_list(store: &Store, org_id: i64) -> Result<Vec<RunbookRow>> {
    let rows = sqlx::query(
        "SELECT r.id, r.name, r.url, v.version, v.body, v.created_at FROM runbooks r
         JOIN runbook_versions v ON v.runbook_id = r.id AND v.version = r.version
         WHERE r.org_id = $1 ORDER BY r.id",
    )
    .bind(org_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RunbookRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                url: r.try_get("url")?,
                version: r.try_get("version")?,
                body: r.try_get("body")?,
                updated_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// What refers to runbook `id`: the names of the alert policies and integrations of its
/// organization whose spec names it (the runbook they attach to new incidents).
pub async fn runbook_users(store: &Store, id: i64) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (table, what) in [
        ("alert_policies", "alert policy"),
        ("integrations", "integration"),
    ] {
        let rows = sqlx::query(&format!(
            "SELECT t.name, t.spec FROM {table} t JOIN runbooks r ON r.org_id = t.org_id
             WHERE r.id = $1 ORDER BY t.id"
        ))
        .bind(id)
        .fetch_all(store.pool())
        .await?;
        for r in &rows {
            let spec: Json = r.json("spec")?;
            if spec.get("runbook_id").and_then(Json::as_i64) == Some(id) {
                let name: String = r.try_get("name")?;
                out.push(format!("{what} \"{name}\""));
            }
        }
    }
    Ok(out)
}

/// Deletes a runbook and its versions (incidents that showed it keep their timeline; their
/// page no longer shows its text).
pub async fn runbook_delete(store: &Store, id: i64) -> Result<()> {
    crate::delete_by_id(store, "runbooks", id).await
}
