//! Re-processing: an issue's stored events symbolicated again from their minified frames with
//! the maps stored now (for events that arrived before their maps).

use serde::Serialize;
use sqlx::Row;

use super::lookup::symbolicate_event;
use super::MapCache;
use crate::{Result, Store};
use lookout_core::time::now_ms;
use lookout_protocol::sourcemaps as sm;

/// What re-processing an issue's events did.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Reprocessed {
    /// Events looked at (the newest, up to the limit).
    pub events: u64,
    /// Events whose frames changed.
    pub updated: u64,
    /// Frames resolved in all.
    pub frames: u64,
}

/// Events re-processed per request, newest first: an issue with more keeps older events as
/// they are (new events are symbolicated on arrival anyway).
pub const REPROCESS_LIMIT: i64 = 1_000;
/// Events read per query while re-processing.
pub const REPROCESS_PAGE: i64 = 50;

/// Re-symbolicates an issue's newest events from their minified frames with the maps stored
/// now (for events that arrived before their maps), refreshes the issue's culprit, and adds the
/// resolved events' grouping hashes to the issue (later events arrive resolved).
pub async fn reprocess_issue(
    store: &Store,
    cache: &MapCache,
    issue_id: i64,
) -> Result<Reprocessed> {
    let mut out = Reprocessed::default();
    let mut updates: Vec<(i64, String)> = Vec::new();
    let mut newest_culprit: Option<String> = None;
    let mut new_hashes: Vec<(i64, String)> = Vec::new();
    let mut before = i64::MAX;
    let mut i = 0usize;
    // Paged, so at most a page of bodies is read at once (events can be 1 MB each).
    while out.events < REPROCESS_LIMIT as u64 {
        let rows = sqlx::query(
            "SELECT id, project_id, body FROM error_events WHERE issue_id = $1 AND id < $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(issue_id)
        .bind(before)
        .bind(REPROCESS_PAGE.min(REPROCESS_LIMIT - out.events as i64))
        .fetch_all(store.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            before = r.try_get("id")?;
            let first = i == 0;
            i += 1;
            out.events += 1;
            reprocess_one(
                store,
                cache,
                r,
                first,
                &mut out,
                &mut updates,
                &mut newest_culprit,
                &mut new_hashes,
            )
            .await?;
        }
        // Written per page, so the rewritten bodies held at once are a page's too.
        out = apply_reprocessed(
            store,
            issue_id,
            out,
            std::mem::take(&mut updates),
            newest_culprit.take(),
            std::mem::take(&mut new_hashes),
        )
        .await?;
    }
    Ok(out)
}

/// Re-symbolicates one stored event, collecting its new body, culprit (for the newest) and
/// hashes; an event that fails to resolve is left as it is.
#[allow(clippy::too_many_arguments)]
async fn reprocess_one(
    store: &Store,
    cache: &MapCache,
    r: &sqlx::any::AnyRow,
    newest: bool,
    out: &mut Reprocessed,
    updates: &mut Vec<(i64, String)>,
    newest_culprit: &mut Option<String>,
    new_hashes: &mut Vec<(i64, String)>,
) -> Result<()> {
    let id: i64 = r.try_get("id")?;
    let project_id: i64 = r.try_get("project_id")?;
    let body: String = r.try_get("body")?;
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&body) else {
        return Ok(());
    };
    sm::restore_raw(&mut v);
    let outcome = match symbolicate_event(store, cache, project_id, &mut v, true).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(event = id, error = %e, "Re-processing an event failed; left as it was.");
            return Ok(());
        }
    };
    if outcome.resolved == 0 {
        return Ok(());
    }
    out.frames += outcome.resolved as u64;
    let text = v.to_string();
    let clock = lookout_protocol::event::Clock {
        received_ms: now_ms(),
        sent_at_ms: None,
    };
    if let Ok(ev) = lookout_protocol::event::parse_event(text.as_bytes(), None, &clock) {
        if newest {
            *newest_culprit = Some(ev.culprit());
        }
        // New events with these frames resolve on arrival and hash differently from the
        // minified ones: their hashes join this issue, so they do not open another.
        let version: String = sqlx::query("SELECT grouping_version FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(store.pool())
            .await?
            .try_get("grouping_version")?;
        for h in lookout_protocol::grouping::hashes_with(&version, &ev).unwrap_or_default() {
            new_hashes.push((project_id, h));
        }
    }
    if text != body {
        updates.push((id, text));
    }
    Ok(())
}

/// Writes what re-processing found in one transaction.
async fn apply_reprocessed(
    store: &Store,
    issue_id: i64,
    mut out: Reprocessed,
    updates: Vec<(i64, String)>,
    newest_culprit: Option<String>,
    mut new_hashes: Vec<(i64, String)>,
) -> Result<Reprocessed> {
    if updates.is_empty() && newest_culprit.is_none() {
        return Ok(out);
    }
    let _turn = store.write_gate().await;
    let mut tx = store.begin_write().await?;
    for (id, body) in &updates {
        sqlx::query("UPDATE error_events SET body = $1 WHERE id = $2")
            .bind(body)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    new_hashes.sort();
    new_hashes.dedup();
    for (project_id, h) in &new_hashes {
        sqlx::query(
            "INSERT INTO issue_hashes (project_id, hash, issue_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(h)
        .bind(issue_id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(c) = newest_culprit {
        sqlx::query("UPDATE issues SET culprit = $1 WHERE id = $2")
            .bind(c)
            .bind(issue_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    out.updated += updates.len() as u64;
    Ok(out)
}
