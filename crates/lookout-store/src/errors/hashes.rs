//! An issue's grouping hashes and unmerge: splitting chosen hashes (and their events) back out
//! into a new issue, both recounted from their stored events.

use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::{get_issue, refresh_counts, Issue};
use crate::{events, Result, Store, StoreError};

/// One grouping hash of an issue and how many of its events it stands for.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IssueHash {
    /// 32-hex hash.
    pub hash: String,
    /// Stored events whose primary hash this is.
    pub events: i64,
    /// The newest such event's title.
    pub latest_title: Option<String>,
}

/// An issue's hashes (what unmerge can split off).
pub async fn issue_hashes(store: &Store, issue_id: i64) -> Result<Vec<IssueHash>> {
    let hashes = sqlx::query("SELECT hash FROM issue_hashes WHERE issue_id = $1 ORDER BY hash")
        .bind(issue_id)
        .fetch_all(store.pool())
        .await?;
    let events =
        sqlx::query("SELECT hashes, title FROM error_events WHERE issue_id = $1 ORDER BY id DESC")
            .bind(issue_id)
            .fetch_all(store.pool())
            .await?;
    let mut out = Vec::new();
    for h in &hashes {
        let hash: String = h.try_get("hash")?;
        let mut n = 0;
        let mut latest = None;
        for e in &events {
            let list: String = e.try_get("hashes")?;
            if list.split(',').next() == Some(hash.as_str()) {
                n += 1;
                if latest.is_none() {
                    latest = Some(e.try_get::<String, _>("title")?);
                }
            }
        }
        out.push(IssueHash {
            hash,
            events: n,
            latest_title: latest,
        });
    }
    Ok(out)
}

/// Splits `hashes` off issue `id` into a new issue: the hashes and the events whose primary hash
/// is among them move; both issues' counts, users and tag breakdowns are recounted from their
/// stored events (events already removed by retention no longer count). Returns the new issue.
pub async fn unmerge(store: &Store, id: i64, hashes: &[String]) -> Result<Issue> {
    let source = get_issue(store, id).await?;
    let owned: Vec<String> = issue_hashes(store, id)
        .await?
        .into_iter()
        .map(|h| h.hash)
        .collect();
    if hashes.is_empty() || hashes.iter().any(|h| !owned.contains(h)) {
        return Err(StoreError::Conflict(
            "hashes that are not this issue's".into(),
        ));
    }
    if hashes.len() >= owned.len() {
        return Err(StoreError::Conflict(
            "an unmerge that would leave the issue without hashes".into(),
        ));
    }
    let mut tx = store.begin_write().await?;
    let rows =
        sqlx::query("SELECT id, hashes, body FROM error_events WHERE issue_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let mut moving = Vec::new();
    let mut first_body: Option<Value> = None;
    for r in &rows {
        let list: String = r.try_get("hashes")?;
        if list
            .split(',')
            .next()
            .is_some_and(|h| hashes.iter().any(|x| x == h))
        {
            moving.push(r.try_get::<i64, _>("id")?);
            if first_body.is_none() {
                let body: String = r.try_get("body")?;
                first_body = serde_json::from_str(&body).ok();
            }
        }
    }
    let first = first_body.and_then(|b| {
        lookout_protocol::event::parse_event(
            b.to_string().as_bytes(),
            None,
            &lookout_protocol::event::Clock {
                received_ms: source.last_seen,
                sent_at_ms: None,
            },
        )
        .ok()
    });
    let (title, culprit, level) = match &first {
        Some(ev) => (ev.title(), ev.culprit(), ev.level.clone()),
        None => (
            source.title.clone(),
            source.culprit.clone(),
            source.level.clone(),
        ),
    };
    let new_id: i64 = sqlx::query(
        "INSERT INTO issues (project_id, title, culprit, level, platform, status, substatus, grouping_version,
                             first_seen, last_seen, times_seen, user_count, first_release, last_release)
         SELECT project_id, $1, $2, $3, platform, 'unresolved', 'new', grouping_version, first_seen, last_seen, 0, 0,
                first_release, last_release FROM issues WHERE id = $4 RETURNING id",
    )
    .bind(&title)
    .bind(&culprit)
    .bind(&level)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("id")?;
    for h in hashes {
        sqlx::query("UPDATE issue_hashes SET issue_id = $1 WHERE issue_id = $2 AND hash = $3")
            .bind(new_id)
            .bind(id)
            .bind(h)
            .execute(&mut *tx)
            .await?;
    }
    for e in &moving {
        sqlx::query("UPDATE error_events SET issue_id = $1 WHERE id = $2")
            .bind(new_id)
            .bind(e)
            .execute(&mut *tx)
            .await?;
    }
    for issue in [id, new_id] {
        recount(&mut tx, issue, source.last_seen).await?;
    }
    let ann = events::publish(
        "issue.unmerged",
        Some(source.project_id),
        Some(id.to_string()),
        &json!({ "issue_id": id, "new_issue_id": new_id, "hashes": hashes }),
    );
    events::publish_in_tx(store, &mut tx, &[ann]).await?;
    tx.commit().await?;
    get_issue(store, new_id).await
}

/// Rebuilds an issue's counts, users and tags from its stored events.
async fn recount(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    issue: i64,
    now: i64,
) -> Result<()> {
    sqlx::query("DELETE FROM issue_users WHERE issue_id = $1")
        .bind(issue)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM issue_tags WHERE issue_id = $1")
        .bind(issue)
        .execute(&mut **tx)
        .await?;
    let rows = sqlx::query("SELECT body FROM error_events WHERE issue_id = $1")
        .bind(issue)
        .fetch_all(&mut **tx)
        .await?;
    let mut users = std::collections::BTreeSet::new();
    let mut tags: std::collections::BTreeMap<(String, String), (i64, i64, i64)> =
        std::collections::BTreeMap::new();
    for r in &rows {
        let body: String = r.try_get("body")?;
        let Ok(ev) = lookout_protocol::event::parse_event(
            body.as_bytes(),
            None,
            &lookout_protocol::event::Clock {
                received_ms: now,
                sent_at_ms: None,
            },
        ) else {
            continue;
        };
        if let Some(u) = &ev.user_key {
            users.insert(u.clone());
        }
        for kv in super::process::tag_pairs(&ev) {
            let e = tags
                .entry(kv)
                .or_insert((0, ev.timestamp_ms, ev.timestamp_ms));
            e.0 += 1;
            e.1 = e.1.min(ev.timestamp_ms);
            e.2 = e.2.max(ev.timestamp_ms);
        }
    }
    for u in &users {
        sqlx::query("INSERT INTO issue_users (issue_id, user_key) VALUES ($1, $2)")
            .bind(issue)
            .bind(u)
            .execute(&mut **tx)
            .await?;
    }
    for ((k, v), (n, first, last)) in &tags {
        sqlx::query("INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(issue)
            .bind(k)
            .bind(v)
            .bind(*n)
            .bind(*first)
            .bind(*last)
            .execute(&mut **tx)
            .await?;
    }
    refresh_counts(tx, issue).await?;
    Ok(())
}
