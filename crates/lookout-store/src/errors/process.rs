//! The error processor: follows the ingest inbox and turns events into issues.
//!
//! Each batch runs in one transaction that also advances the processor's leased cursor, so an
//! event is grouped exactly once even across replicas and crashes. Per event: compute its hashes
//! (versioned grouping), find the issue owning any of them (following merges) or open one, attach
//! the other hashes, store the event, count it, its affected user and its tags, and apply the
//! issue lifecycle: a resolved issue that sees a new event regresses. Domain events announce new
//! and regressed issues, and per batch how many events each issue received.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sqlx::{Any, Row, Transaction};

use crate::{cursor, events, Result, Store, StoreError, Write};
use lookout_core::time::now_ms;
use lookout_protocol::event::{parse_event, Clock, ErrorEvent};
use lookout_protocol::grouping;

/// The processor's cursor name.
pub const CURSOR: &str = "errors.processor";

/// Follows `ingest_items` and groups error events into issues.
pub struct ErrorProcessor {
    store: Store,
    owner: String,
    batch: i64,
    lease_ms: i64,
}

/// What processing one event did, for domain events.
enum Outcome {
    Created(i64, String, String),
    Regressed(i64, String),
    Counted(i64),
    Duplicate,
}

impl ErrorProcessor {
    /// A processor identified as `owner` (unique per replica).
    pub fn new(store: Store, owner: &str) -> Self {
        ErrorProcessor {
            store,
            owner: owner.to_string(),
            batch: 500,
            // Renewed on every poll (at least every 100 ms), so a short lease costs nothing and
            // lets a restarted or surviving replica resume within seconds of a crash. A batch that
            // outlives it is fenced at the cursor advance and rolled back, never applied twice.
            lease_ms: 5_000,
        }
    }

    /// Processes the next batch if this replica holds the cursor; returns how many items it read.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, self.lease_ms).await?
        else {
            return Ok(0);
        };
        let rows = sqlx::query(
            "SELECT seq, project_id, kind, received_at, payload FROM ingest_items WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(position)
        .bind(self.batch)
        .fetch_all(self.store.pool())
        .await?;
        let Some(last) = rows.last().map(|r| r.try_get::<i64, _>(0)).transpose()? else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let mut tx = self.store.begin_write().await?;
        let mut announcements = Vec::new();
        let mut per_issue: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        for r in &rows {
            let project_id: i64 = r.try_get(1)?;
            let kind: String = r.try_get(2)?;
            let received_at: i64 = r.try_get(3)?;
            let payload: String = r.try_get(4)?;
            match kind.as_str() {
                "event" => {
                    let ev = match parse_event(
                        payload.as_bytes(),
                        None,
                        &Clock {
                            received_ms: received_at,
                            sent_at_ms: None,
                        },
                    ) {
                        Ok(ev) => ev,
                        Err(e) => {
                            // Validated at ingest, so this means a stored row went bad; skip it.
                            tracing::warn!(project = project_id, error = %e, "Stored event no longer parses; skipped.");
                            continue;
                        }
                    };
                    match process_event(&mut tx, project_id, received_at, &ev).await? {
                        Outcome::Created(id, title, level) => {
                            per_issue.entry(id).or_insert((project_id, 0)).1 += 1;
                            announcements.push(events::publish(
                                "issue.created",
                                Some(project_id),
                                Some(id.to_string()),
                                &json!({ "issue_id": id, "title": title, "level": level }),
                            ));
                        }
                        Outcome::Regressed(id, title) => {
                            per_issue.entry(id).or_insert((project_id, 0)).1 += 1;
                            announcements.push(events::publish(
                                "issue.regressed",
                                Some(project_id),
                                Some(id.to_string()),
                                &json!({ "issue_id": id, "title": title, "release": ev.release }),
                            ));
                        }
                        Outcome::Counted(id) => {
                            per_issue.entry(id).or_insert((project_id, 0)).1 += 1
                        }
                        Outcome::Duplicate => {}
                    }
                }
                "client_report" => count_client_report(&mut tx, project_id, &payload).await?,
                // Transactions, check-ins and sessions wait in the inbox for their own consumers.
                _ => {}
            }
        }
        for (issue_id, (project_id, n)) in per_issue {
            announcements.push(events::publish(
                "issue.events",
                Some(project_id),
                Some(issue_id.to_string()),
                &json!({ "issue_id": issue_id, "count": n }),
            ));
        }
        events::publish_in_tx(&self.store, &mut tx, &announcements).await?;
        if cursor::advance(&mut tx, CURSOR, &self.owner, position, last).await? {
            tx.commit().await?;
            metrics::histogram!("lookout_errors_process_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("lookout_errors_processed_items_total").increment(rows.len() as u64);
            Ok(rows.len())
        } else {
            tx.rollback().await?;
            Ok(0)
        }
    }

    /// Processes until `stop` resolves, polling every `idle` when there is nothing new.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let wait = match self.poll_once().await {
                Ok(0) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "Error processing failed; retrying.");
                    idle
                }
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn is_duplicate_key(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Groups one event into its issue and records it.
async fn process_event(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    received_at: i64,
    ev: &ErrorEvent,
) -> Result<Outcome> {
    let seen: Option<i64> =
        sqlx::query("SELECT id FROM error_events WHERE project_id = $1 AND event_id = $2")
            .bind(project_id)
            .bind(&ev.event_id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    if seen.is_some() {
        return Ok(Outcome::Duplicate); // an SDK retry; Sentry drops it too
    }
    let hashes = grouping::hashes(ev);
    let mut owner: Option<i64> = None;
    for h in &hashes {
        let row =
            sqlx::query("SELECT issue_id FROM issue_hashes WHERE project_id = $1 AND hash = $2")
                .bind(project_id)
                .bind(h)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(r) = row {
            owner = Some(r.try_get(0)?);
            break;
        }
    }
    let title = ev.title();
    let ts = ev.timestamp_ms;
    let outcome = match owner {
        Some(mut id) => {
            // Follow merges to the surviving issue.
            for _ in 0..16 {
                let merged: Option<i64> =
                    sqlx::query("SELECT merged_into FROM issues WHERE id = $1")
                        .bind(id)
                        .fetch_one(&mut **tx)
                        .await?
                        .try_get(0)?;
                match merged {
                    Some(next) => id = next,
                    None => break,
                }
            }
            lifecycle_on_event(tx, id, ev).await?
        }
        None => {
            let id: i64 = sqlx::query(
                "INSERT INTO issues (project_id, title, culprit, level, platform, status, substatus, grouping_version,
                                     first_seen, last_seen, times_seen, user_count, first_release, last_release)
                 VALUES ($1, $2, $3, $4, $5, 'unresolved', 'new', $6, $7, $7, 0, 0, $8, $8) RETURNING id",
            )
            .bind(project_id)
            .bind(&title)
            .bind(ev.culprit())
            .bind(&ev.level)
            .bind(&ev.platform)
            .bind(grouping::CURRENT_VERSION)
            .bind(ts)
            .bind(ev.release.clone())
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
            Outcome::Created(id, title.clone(), ev.level.clone())
        }
    };
    let issue_id = match &outcome {
        Outcome::Created(id, ..) | Outcome::Regressed(id, _) | Outcome::Counted(id) => *id,
        Outcome::Duplicate => return Ok(Outcome::Duplicate),
    };
    for h in &hashes {
        sqlx::query("INSERT INTO issue_hashes (project_id, hash, issue_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(project_id)
            .bind(h)
            .bind(issue_id)
            .execute(&mut **tx)
            .await?;
    }
    let inserted = sqlx::query(
        "INSERT INTO error_events (project_id, issue_id, event_id, timestamp, received_at, level, release, environment,
                                   user_key, title, hashes, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(project_id)
    .bind(issue_id)
    .bind(&ev.event_id)
    .bind(ts)
    .bind(received_at)
    .bind(&ev.level)
    .bind(ev.release.clone())
    .bind(&ev.environment)
    .bind(ev.user_key.clone())
    .bind(&title)
    .bind(hashes.join(","))
    .bind(ev.body.to_string())
    .execute(&mut **tx)
    .await;
    if let Err(e) = &inserted {
        if is_duplicate_key(e) {
            return Ok(Outcome::Duplicate);
        }
    }
    inserted.map_err(StoreError::Db)?;
    let new_user = match &ev.user_key {
        Some(u) => sqlx::query(
            "INSERT INTO issue_users (issue_id, user_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(issue_id)
        .bind(u)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        None => 0,
    };
    sqlx::query(
        "UPDATE issues SET times_seen = times_seen + 1, user_count = user_count + $1,
                last_seen = CASE WHEN last_seen < $2 THEN $2 ELSE last_seen END,
                first_seen = CASE WHEN first_seen > $2 THEN $2 ELSE first_seen END,
                last_release = COALESCE($3, last_release)
         WHERE id = $4",
    )
    .bind(i64::try_from(new_user).unwrap_or(0))
    .bind(ts)
    .bind(ev.release.clone())
    .bind(issue_id)
    .execute(&mut **tx)
    .await?;
    for (key, value) in tag_pairs(ev) {
        sqlx::query(
            "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen) VALUES ($1, $2, $3, 1, $4, $4)
             ON CONFLICT (issue_id, key, value) DO UPDATE SET times_seen = issue_tags.times_seen + 1,
                 last_seen = CASE WHEN issue_tags.last_seen < excluded.last_seen THEN excluded.last_seen ELSE issue_tags.last_seen END",
        )
        .bind(issue_id)
        .bind(key)
        .bind(value)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(outcome)
}

/// Applies the lifecycle to an existing issue that received an event.
async fn lifecycle_on_event(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    ev: &ErrorEvent,
) -> Result<Outcome> {
    let r = sqlx::query("SELECT status, resolved_in_release, ignore_until, ignore_until_count, times_seen, title FROM issues WHERE id = $1")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    let status: String = r.try_get(0)?;
    let resolved_in: Option<String> = r.try_get(1)?;
    let ignore_until: Option<i64> = r.try_get(2)?;
    let ignore_count: Option<i64> = r.try_get(3)?;
    let times_seen: i64 = r.try_get(4)?;
    let title: String = r.try_get(5)?;
    let regress = match status.as_str() {
        "resolved" => true,
        // Resolved "in the next release": events from the release that was current when it was
        // resolved are expected; one from any other release means the fix did not hold.
        "resolved_next_release" => ev.release.is_some() && ev.release != resolved_in,
        _ => false,
    };
    if regress {
        sqlx::query("UPDATE issues SET status = 'unresolved', substatus = 'regressed', resolved_in_release = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
        return Ok(Outcome::Regressed(id, title));
    }
    if status == "ignored" {
        let time_over = ignore_until.is_some_and(|t| now_ms() >= t);
        let count_over = ignore_count.is_some_and(|c| times_seen + 1 > c);
        if time_over || count_over {
            sqlx::query("UPDATE issues SET status = 'unresolved', substatus = 'escalating', ignore_until = NULL, ignore_until_count = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    } else if status == "unresolved" {
        sqlx::query("UPDATE issues SET substatus = 'ongoing' WHERE id = $1 AND substatus = 'new' AND times_seen > 0")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Outcome::Counted(id))
}

/// The tags an issue's breakdown counts: release, environment, level, server, browser, OS,
/// runtime, then the event's own tags.
fn tag_pairs(ev: &ErrorEvent) -> Vec<(String, String)> {
    let mut out = vec![
        ("environment".to_string(), ev.environment.clone()),
        ("level".to_string(), ev.level.clone()),
    ];
    if let Some(r) = &ev.release {
        out.push(("release".into(), r.clone()));
    }
    if let Some(s) = &ev.server_name {
        out.push(("server_name".into(), s.clone()));
    }
    for ctx in ["browser", "os", "runtime"] {
        let c = ev.body.pointer(&format!("/contexts/{ctx}"));
        let name = c
            .and_then(|c| c.get("name"))
            .and_then(serde_json::Value::as_str);
        if let Some(name) = name {
            let version = c
                .and_then(|c| c.get("version"))
                .and_then(serde_json::Value::as_str);
            let v = match version {
                Some(v) => format!("{name} {v}"),
                None => name.to_string(),
            };
            out.push((ctx.to_string(), v));
        }
    }
    for (k, v) in &ev.tags {
        if !out.iter().any(|(ok, _)| ok == k) {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// Adds a client report's discarded-event counts to the project's totals.
async fn count_client_report(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    payload: &str,
) -> Result<()> {
    let Ok(report) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Ok(());
    };
    for d in report
        .get("discarded_events")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        let reason = d
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown");
        let category = d
            .get("category")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown");
        let quantity = d
            .get("quantity")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        sqlx::query(
            "INSERT INTO client_report_counts (project_id, reason, category, quantity) VALUES ($1, $2, $3, $4)
             ON CONFLICT (project_id, reason, category) DO UPDATE SET quantity = client_report_counts.quantity + excluded.quantity",
        )
        .bind(project_id)
        .bind(reason)
        .bind(category)
        .bind(quantity)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The writes that acknowledge ingested items: each goes into the inbox; attachments into their
/// table. Called by the ingest endpoint, applied through the group commit.
pub fn ingest_writes(
    project_id: i64,
    received_at: i64,
    items: Vec<(String, Option<String>, String)>,
    attachments: Vec<super::NewAttachment>,
) -> Vec<Write> {
    let mut w: Vec<Write> = attachments
        .into_iter()
        .map(|a| Write::Insert {
            table: "attachments",
            columns: &[
                "id",
                "project_id",
                "event_id",
                "filename",
                "content_type",
                "size",
                "data",
                "created_at",
            ],
            values: vec![
                lookout_core::id::new_sortable_id().into(),
                project_id.into(),
                a.event_id.into(),
                a.filename.into(),
                a.content_type.into(),
                i64::try_from(a.data.len()).unwrap_or(i64::MAX).into(),
                a.data.into(),
                received_at.into(),
            ],
        })
        .collect();
    w.extend(
        items
            .into_iter()
            .map(|(kind, event_id, payload)| Write::Insert {
                table: "ingest_items",
                columns: &["project_id", "kind", "event_id", "received_at", "payload"],
                values: vec![
                    project_id.into(),
                    kind.into(),
                    event_id.into(),
                    received_at.into(),
                    payload.into(),
                ],
            }),
    );
    w
}
