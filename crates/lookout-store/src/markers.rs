//! Change markers: deploys, config changes and other moments worth seeing on every chart and
//! incident timeline (New Relic's change tracking, Sentry's deploys).
//!
//! They are the first data written through the group commit: a marker is acknowledged only once
//! it is committed, and publishing it emits `marker.created` in the same transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::page::{Cursor, Page};
use crate::{events, Result, Store, Write};
use lookout_core::time::now_ms;

/// A marker as stored and served.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Marker {
    /// Time-ordered id, 32 hex characters.
    pub id: String,
    /// The project it belongs to.
    pub project_id: i64,
    /// `deploy`, `config`, `feature_flag`, `incident`, … (free text, short).
    pub kind: String,
    /// What happened, one line.
    pub title: String,
    /// The version deployed, if any.
    pub version: Option<String>,
    /// A link to the change (pull request, pipeline run), if any.
    pub url: Option<String>,
    /// When it happened, ms since the epoch.
    pub at: i64,
}

const COLUMNS: &[&str] = &[
    "id",
    "project_id",
    "kind",
    "title",
    "version",
    "url",
    "at",
    "created_at",
];

/// The writes that record `m` and announce it.
pub fn record(m: &Marker) -> Vec<Write> {
    vec![
        Write::Insert {
            table: "markers",
            columns: COLUMNS,
            values: vec![
                m.id.clone().into(),
                m.project_id.into(),
                m.kind.clone().into(),
                m.title.clone().into(),
                m.version.clone().into(),
                m.url.clone().into(),
                m.at.into(),
                now_ms().into(),
            ],
        },
        events::publish(
            "marker.created",
            Some(m.project_id),
            Some(m.id.clone()),
            &json!({ "kind": m.kind, "title": m.title, "version": m.version }),
        ),
    ]
}

/// A project's markers, newest first.
pub async fn list(store: &Store, project_id: i64, cursor: &Cursor) -> Result<Page<Marker>> {
    let limit = cursor.limit();
    let rows = sqlx::query(
        "SELECT id, project_id, kind, title, version, url, at FROM markers
         WHERE project_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(project_id)
    // Ids are lowercase hex, so "g" sorts after all of them: no cursor means "from the newest".
    .bind(cursor.after_hex()?.unwrap_or("g").to_string())
    .bind(limit + 1)
    .fetch_all(store.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(Marker {
                id: r.try_get("id")?,
                project_id: r.try_get("project_id")?,
                kind: r.try_get("kind")?,
                title: r.try_get("title")?,
                version: r.try_get("version")?,
                url: r.try_get("url")?,
                at: r.try_get("at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, limit, |m| m.id.clone()))
}
