//! The error processor: follows the ingest inbox and turns events into issues.
//!
//! Each batch runs in one transaction that also advances the processor's leased cursor, so an
//! event is grouped exactly once even across replicas and crashes. Per event: compute its hashes
//! (versioned grouping), find the issue owning any of them (following merges) or open one, attach
//! the other hashes, store the event, count it, its affected user and its tags, and apply the
//! issue lifecycle: a resolved issue that sees a new event regresses. Domain events announce new
//! and regressed issues, and per batch how many events each issue received.

use std::time::Duration;

use serde_json::json;
use sqlx::{Any, Row, Transaction};

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::writer::placeholders;
use crate::{cursor, events, Result, Store, Write};
use lookout_protocol::event::ErrorEvent;
use lookout_protocol::ownership::{Owner, Subject};
use lookout_protocol::sourcemaps::FoundMap;

/// The processor's cursor name.
pub const CURSOR: &str = "errors.processor";

/// Follows `ingest_items` and groups error events into issues.
pub struct ErrorProcessor {
    store: Store,
    owner: String,
    batch: i64,
    lease_ms: i64,
    maps: std::sync::Arc<super::sourcemaps::MapCache>,
}

/// Payload characters one batch reads at most (beyond its first item): with events of up to
/// 1 MiB, a batch of 500 could otherwise hold 500 MiB of text, then its parsed and rewritten
/// copies. Counted in characters (what `LENGTH` gives on both backends), so at most four times
/// as many bytes for text that is not ASCII.
pub const BATCH_BYTES: i64 = 16 * 1024 * 1024;

/// Estimated memory of the decoded maps the processor keeps.
pub const MAP_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Time one batch may spend resolving source maps before it is cut short (well inside the
/// processor's lease).
pub const SYMBOLICATION_BATCH_BUDGET: Duration = Duration::from_millis(2_500);

/// An event read from the inbox, parsed and hashed.
pub(super) struct Pending {
    pub(super) project_id: i64,
    pub(super) received_at: i64,
    pub(super) ev: ErrorEvent,
    pub(super) hashes: Vec<String>,
    /// The stored payload: the event's normalised JSON as ingest wrote it, stored again as is
    /// rather than serialised a second time.
    pub(super) payload: String,
    /// The owners its project's ownership rules give it, matched before the write transaction;
    /// set on the first event of each group in the batch (the only one that can create its
    /// issue), `None` otherwise or when nothing matched.
    pub(super) owners: Option<Vec<Owner>>,
}

/// Matches ownership rules for the events that may create an issue: the first of each group
/// (project and first hash) in the batch, in projects with auto-assign rules, whose hashes no
/// stored issue owns yet. A later event of the same group finds the issue the first one found or
/// created, and an event of a known group joins its issue, so neither needs owners: matching
/// (rules against paths, tags and URLs) is then paid once per new issue, not per event.
///
/// Read outside the write transaction, so an issue deleted between this read and the write
/// reopens unassigned; one created meanwhile (by another replica) is found in the transaction
/// and its owners here go unused.
async fn match_owners(store: &Store, pending: &mut [Pending]) -> Result<()> {
    // Collected first: a borrowing iterator held across the loads' awaits would make the
    // processor's future not `Send`.
    let projects: BTreeSet<i64> = pending.iter().map(|p| p.project_id).collect();
    let matcher = super::triage::OwnerMatcher::load(store, projects).await?;
    let mut seen: HashSet<(i64, Option<String>)> = HashSet::new();
    let mut candidates: Vec<usize> = Vec::new();
    for (i, p) in pending.iter().enumerate() {
        if matcher.has_rules(p.project_id) && seen.insert((p.project_id, p.hashes.first().cloned()))
        {
            candidates.push(i);
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    let hashes: Vec<String> = candidates
        .iter()
        .flat_map(|&i| pending[i].hashes.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = known_hashes(store, &hashes).await?;
    for i in candidates {
        let p = &mut pending[i];
        if p.hashes
            .iter()
            .any(|h| known.contains(&(p.project_id, h.clone())))
        {
            continue;
        }
        let subject = Subject::from_event(&p.ev.body, &tag_pairs(&p.ev));
        p.owners = matcher.owners(p.project_id, &subject);
    }
    Ok(())
}

/// Which of `hashes` an issue owns already, by project.
async fn known_hashes(store: &Store, hashes: &[String]) -> Result<HashSet<(i64, String)>> {
    let mut out = HashSet::new();
    for chunk in hashes.chunks(500) {
        let sql = format!(
            "SELECT project_id, hash FROM issue_hashes WHERE hash IN ({})",
            placeholders(store.backend(), 0, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for h in chunk {
            q = q.bind(h.as_str());
        }
        for r in q.fetch_all(store.pool()).await? {
            out.insert((r.try_get("project_id")?, r.try_get("hash")?));
        }
    }
    Ok(out)
}

/// Drops `v` on the blocking pool: freeing a batch's parsed events is CPU work that the
/// processor's write turn should not wait for.
pub(super) fn free_off_thread<T: Send + 'static>(v: T) {
    drop(tokio::task::spawn_blocking(move || drop(v)));
}

/// Runs CPU work off the async threads.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::StoreError::Corrupt(format!("batch preparation stopped: {e}")))
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
            maps: std::sync::Arc::new(super::sourcemaps::MapCache::new(MAP_CACHE_BYTES)),
        }
    }

    /// The maps a batch's JavaScript events need, found (a remembered lookup and a cached map
    /// when possible) before the write turn: lookups and decoding must not hold up other
    /// writers. Returns them and how many items their lookups covered: past `deadline` the
    /// batch is cut before the first event whose maps were not looked up, and the rest wait for
    /// the next poll, so a batch never outlives the processor's lease however slow its maps are.
    async fn find_maps(
        &self,
        items: &[super::prepare::Item],
        js: &[Option<super::prepare::JsEvent>],
        deadline: std::time::Instant,
    ) -> (HashMap<super::prepare::MapKey, FoundMap>, usize) {
        let mut maps = HashMap::new();
        let mut tried: HashSet<super::prepare::MapKey> = HashSet::new();
        for (i, (item, js)) in items.iter().zip(js).enumerate() {
            let Some(js) = js else { continue };
            if i > 0 && std::time::Instant::now() > deadline {
                return (maps, i);
            }
            for src in &js.sources {
                let key = super::prepare::map_key(item.project_id, js, src);
                if !tried.insert(key.clone()) {
                    continue;
                }
                // One lookup's failure leaves the frames it serves minified; it never fails
                // the batch, which holds every project's events.
                match super::sourcemaps::found_map(
                    &self.store,
                    &self.maps,
                    item.project_id,
                    src,
                    js.release.as_deref(),
                    js.dist.as_deref(),
                    false,
                )
                .await
                {
                    Ok(Some(found)) => {
                        maps.insert(key, found);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(project = item.project_id, error = %e, "Source map lookup failed; frames kept minified.");
                    }
                }
            }
        }
        (maps, items.len())
    }

    /// Processes the next batch if this replica holds the cursor; returns how many items it read.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, self.lease_ms).await?
        else {
            return Ok(0);
        };
        // At most `batch` items and about BATCH_BYTES of payload (the first item always, however
        // large): events may be 1 MiB each, and a batch is held, parsed and rewritten at once.
        // The running sum is counted by the database, so rows past the budget are never read.
        let reading = std::time::Instant::now();
        let rows = sqlx::query(
            "SELECT seq, project_id, kind, received_at, payload FROM (
                 SELECT seq, project_id, kind, received_at, payload, LENGTH(payload) AS size,
                        SUM(LENGTH(payload)) OVER (ORDER BY seq) AS running
                 FROM ingest_items WHERE seq > $1 ORDER BY seq LIMIT $2
             ) AS batch WHERE running - size < $3 ORDER BY seq",
        )
        .bind(position)
        .bind(self.batch)
        .bind(BATCH_BYTES)
        .fetch_all(self.store.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let deadline = started + SYMBOLICATION_BATCH_BUDGET;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(super::prepare::Item {
                seq: r.try_get("seq")?,
                project_id: r.try_get("project_id")?,
                kind: r.try_get("kind")?,
                received_at: r.try_get("received_at")?,
                payload: r.try_get("payload")?,
            });
        }
        let versions: HashMap<i64, String> = {
            let mut v = HashMap::new();
            for r in sqlx::query("SELECT id, grouping_version FROM projects")
                .fetch_all(self.store.pool())
                .await?
            {
                v.insert(r.try_get("id")?, r.try_get("grouping_version")?);
            }
            v
        };
        // Events are parsed, symbolicated, hashed and matched against ownership rules before
        // the write turn: that is CPU work, and the turn is the one thing every writer waits
        // for. The CPU passes run off the async threads, spread over the cores.
        let (items, js) = blocking(move || {
            let js = super::prepare::scan(&mut items);
            (items, js)
        })
        .await?;
        let scanned = started.elapsed();
        let (maps, limit) = self.find_maps(&items, &js, deadline).await;
        let looked_up = started.elapsed();
        let seqs: Vec<i64> = items.iter().map(|i| i.seq).collect();
        let prepared =
            blocking(move || super::prepare::finish(items, js, limit, &maps, &versions, deadline))
                .await?;
        let Some(&last) = prepared.done.checked_sub(1).and_then(|i| seqs.get(i)) else {
            return Ok(0);
        };
        if prepared.resolved_frames > 0 {
            metrics::counter!("lookout_errors_symbolicated_frames_total")
                .increment(prepared.resolved_frames as u64);
        }
        let finished = started.elapsed();
        let read = prepared.done;
        let others = prepared.others;
        let mut pending = prepared.pending;
        match_owners(&self.store, &mut pending).await?;
        let _turn = self.store.write_gate().await;
        let turn_at = started.elapsed();
        let mut tx = self.store.begin_write().await?;
        for (project_id, kind, received_at, payload) in others {
            match kind.as_str() {
                "client_report" => count_client_report(&mut tx, project_id, &payload).await?,
                "user_report" => {
                    super::feedback::store(&mut tx, project_id, received_at, &payload).await?
                }
                "session" | "sessions" => {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&payload) {
                        super::health::apply(
                            &mut tx,
                            project_id,
                            &super::health::deltas(&kind, &v, received_at),
                        )
                        .await?;
                    }
                }
                // Transactions and check-ins wait in the inbox for their own consumers.
                _ => {}
            }
        }
        let (mut announcements, per_issue) =
            super::group::group_batch(self.store.backend(), &mut tx, pending).await?;
        for (issue_id, (project_id, n)) in per_issue {
            announcements.push(events::publish(
                "issue.events",
                Some(project_id),
                Some(issue_id.to_string()),
                &json!({ "issue_id": issue_id, "count": n }),
            ));
        }
        events::publish_in_tx(&self.store, &mut tx, &announcements).await?;
        if !cursor::finish(tx, CURSOR, &self.owner, position, last).await? {
            return Ok(0);
        }
        let took = started.elapsed();
        metrics::histogram!("lookout_errors_process_batch_seconds").record(took.as_secs_f64());
        // Where a batch's time goes, for profiling the processor (RUST_LOG=lookout_store=debug).
        tracing::debug!(
            items = read,
            read_ms = (started - reading).as_secs_f64() * 1e3,
            scan_ms = scanned.as_secs_f64() * 1e3,
            maps_ms = (looked_up - scanned).as_secs_f64() * 1e3,
            finish_ms = (finished - looked_up).as_secs_f64() * 1e3,
            owners_and_gate_ms = (turn_at - finished).as_secs_f64() * 1e3,
            write_ms = (took - turn_at).as_secs_f64() * 1e3,
            "Error batch processed."
        );
        metrics::counter!("lookout_errors_processed_items_total").increment(read as u64);
        Ok(read)
    }

    /// Processes until `stop` resolves, polling every `idle` when there is nothing new.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        cursor::poll_until(
            || async { Ok(self.poll_once().await? > 0) },
            idle,
            Some(self.store.wake().waiter("ingest_items")),
            CURSOR,
            stop,
        )
        .await;
    }
}

/// The tags an issue's breakdown counts: release, environment, level, server, browser, OS,
/// runtime, then the event's own tags.
pub(crate) fn tag_pairs(ev: &ErrorEvent) -> Vec<(String, String)> {
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
