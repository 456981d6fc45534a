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

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::writer::{multi_row, placeholders, Value};
use crate::{cursor, events, Backend, Result, Store, Write};
use lookout_core::time::now_ms;
use lookout_protocol::event::{parse_event, Clock, ErrorEvent};
use lookout_protocol::grouping;
use lookout_protocol::ownership::{Owner, Subject};

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

/// Estimated memory of the decoded maps the processor keeps.
pub const MAP_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Time one batch may spend resolving source maps before it is cut short (well inside the
/// processor's lease).
pub const SYMBOLICATION_BATCH_BUDGET: Duration = Duration::from_millis(2_500);

/// An event read from the inbox, parsed and hashed.
struct Pending {
    project_id: i64,
    received_at: i64,
    ev: ErrorEvent,
    hashes: Vec<String>,
    /// The stored payload: the event's normalised JSON as ingest wrote it, stored again as is
    /// rather than serialised a second time.
    payload: String,
    /// The owners its project's ownership rules give it, matched before the write transaction;
    /// set on the first event of each group in the batch (the only one that can create its
    /// issue), `None` otherwise or when nothing matched.
    owners: Option<Vec<Owner>>,
}

/// Matches ownership rules for the events that may create an issue: the first of each group
/// (project and first hash) in the batch, in projects with auto-assign rules. A later event of
/// the same group finds the issue the first one found or created, so it never needs owners.
async fn match_owners(store: &Store, pending: &mut [Pending]) -> Result<()> {
    // Collected first: a borrowing iterator held across the loads' awaits would make the
    // processor's future not `Send`.
    let projects: BTreeSet<i64> = pending.iter().map(|p| p.project_id).collect();
    let matcher = super::triage::OwnerMatcher::load(store, projects).await?;
    let mut seen: HashSet<(i64, Option<&str>)> = HashSet::new();
    for p in pending.iter_mut() {
        if !matcher.has_rules(p.project_id)
            || !seen.insert((p.project_id, p.hashes.first().map(String::as_str)))
        {
            continue;
        }
        let subject = Subject::from_event(&p.ev.body, &tag_pairs(&p.ev));
        p.owners = matcher.owners(p.project_id, &subject);
    }
    Ok(())
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

    /// JavaScript events resolved through source maps before they are grouped, so grouping,
    /// titles and culprits use the original frames. Done before the write turn: map lookups and
    /// decoding must not hold up other writers. Returns the rewritten payloads by inbox `seq`.
    ///
    /// Stops after [`SYMBOLICATION_BATCH_BUDGET`] (having done at least one event) and returns
    /// how many rows it got through: the batch is cut there and the rest wait for the next poll,
    /// so a batch never outlives the processor's lease however slow its maps are.
    async fn symbolicate_batch(
        &self,
        rows: &[sqlx::any::AnyRow],
    ) -> Result<(HashMap<i64, String>, usize)> {
        let started = std::time::Instant::now();
        let mut out = HashMap::new();
        for (done, r) in rows.iter().enumerate() {
            if done > 0 && started.elapsed() > SYMBOLICATION_BATCH_BUDGET {
                return Ok((out, done));
            }
            let kind: String = r.try_get("kind")?;
            let payload: String = r.try_get("payload")?;
            // Cheap test first: only events with column numbers can be source-mapped.
            if kind != "event" || !payload.contains("\"colno\"") {
                continue;
            }
            let Ok(mut body) = serde_json::from_str::<serde_json::Value>(&payload) else {
                continue;
            };
            let project_id: i64 = r.try_get("project_id")?;
            // One event's failure (a lookup error, a stopped decoding task) leaves that event
            // minified; it never fails the batch, which holds every project's events.
            let outcome = match super::sourcemaps::symbolicate_event(
                &self.store,
                &self.maps,
                project_id,
                &mut body,
                false,
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(project = project_id, error = %e, "Symbolication failed; event kept minified.");
                    continue;
                }
            };
            let text = body.to_string();
            // Context lines make an event bigger; one pushed over the event cap stays minified
            // rather than being dropped by the parser.
            if outcome.resolved > 0 && text.len() <= lookout_protocol::event::MAX_EVENT_BYTES {
                metrics::counter!("lookout_errors_symbolicated_frames_total")
                    .increment(outcome.resolved as u64);
                out.insert(r.try_get("seq")?, text);
            }
        }
        Ok((out, rows.len()))
    }

    /// Processes the next batch if this replica holds the cursor; returns how many items it read.
    pub async fn poll_once(&self) -> Result<usize> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, self.lease_ms).await?
        else {
            return Ok(0);
        };
        let mut rows = sqlx::query(
            "SELECT seq, project_id, kind, received_at, payload FROM ingest_items WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(position)
        .bind(self.batch)
        .fetch_all(self.store.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let mut symbolicated = match self.symbolicate_batch(&rows).await {
            Ok((m, done)) => {
                rows.truncate(done);
                m
            }
            Err(e) => {
                tracing::warn!(error = %e, "Symbolication of a batch failed; its events kept minified.");
                HashMap::new()
            }
        };
        let Some(last) = rows
            .last()
            .map(|r| r.try_get::<i64, _>("seq"))
            .transpose()?
        else {
            return Ok(0);
        };
        // Events are parsed, hashed and matched against ownership rules before the write turn:
        // that is CPU work, and the turn is the one thing every writer waits for. Each project
        // groups with the version stored on it (fixed when the project is created), so a newer
        // algorithm in a newer build never reshuffles an existing project's issues.
        let mut versions: HashMap<i64, String> = HashMap::new();
        for r in sqlx::query("SELECT id, grouping_version FROM projects")
            .fetch_all(self.store.pool())
            .await?
        {
            versions.insert(r.try_get("id")?, r.try_get("grouping_version")?);
        }
        let mut pending = Vec::new();
        // Items other than events, written in the transaction in inbox order.
        let mut others: Vec<(i64, String, i64, String)> = Vec::new();
        for r in &rows {
            let project_id: i64 = r.try_get("project_id")?;
            let kind: String = r.try_get("kind")?;
            let received_at: i64 = r.try_get("received_at")?;
            let payload: String = match symbolicated.remove(&r.try_get::<i64, _>("seq")?) {
                Some(p) => p,
                None => r.try_get("payload")?,
            };
            if kind != "event" {
                others.push((project_id, kind, received_at, payload));
                continue;
            }
            match parse_event(
                payload.as_bytes(),
                None,
                &Clock {
                    received_ms: received_at,
                    sent_at_ms: None,
                },
            ) {
                Ok(ev) => {
                    let version = versions
                        .get(&project_id)
                        .map_or(grouping::CURRENT_VERSION, String::as_str);
                    let Some(hashes) = grouping::hashes_with(version, &ev) else {
                        tracing::error!(project = project_id, version, "Project uses a grouping version this build does not know; event kept in the inbox only.");
                        continue;
                    };
                    pending.push(Pending {
                        project_id,
                        received_at,
                        ev,
                        hashes,
                        payload,
                        owners: None,
                    });
                }
                // Validated at ingest, so this means a stored row went bad; skip it.
                Err(e) => {
                    tracing::warn!(project = project_id, error = %e, "Stored event no longer parses; skipped.")
                }
            }
        }
        match_owners(&self.store, &mut pending).await?;
        let _turn = self.store.write_gate().await;
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
            group_batch(self.store.backend(), &mut tx, pending).await?;
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
        metrics::histogram!("lookout_errors_process_batch_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("lookout_errors_processed_items_total").increment(rows.len() as u64);
        Ok(rows.len())
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

/// An issue as the batch sees it: its stored lifecycle state and what this batch adds.
struct IssueState {
    title: String,
    status: String,
    substatus: Option<String>,
    resolved_in: Option<String>,
    ignore_until: Option<i64>,
    ignore_count: Option<i64>,
    times_seen: i64,
    added: i64,
    first_ts: i64,
    last_ts: i64,
    last_release: Option<String>,
    created: bool,
    regressed: bool,
    new_users: i64,
}

/// Groups a batch of events into issues with a fixed number of statements per batch (plus one
/// insert per new issue): every sqlx-SQLite query is a thread round trip, so per-event queries,
/// not the database, were the limit. Returns the announcements and events per issue.
async fn group_batch(
    backend: Backend,
    tx: &mut Transaction<'static, Any>,
    pending: Vec<Pending>,
) -> Result<(Vec<Write>, BTreeMap<i64, (i64, i64)>)> {
    let mut announcements = Vec::new();
    let mut per_issue: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    if pending.is_empty() {
        return Ok((announcements, per_issue));
    }
    // 1. Drop events already stored (SDK retries) and repeats within the batch.
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let ids: Vec<&String> = pending.iter().map(|p| &p.ev.event_id).collect();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT project_id, event_id FROM error_events WHERE event_id IN ({})",
            placeholders(backend, 0, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        for r in q.fetch_all(&mut **tx).await? {
            seen.insert((r.try_get("project_id")?, r.try_get("event_id")?));
        }
    }
    let pending: Vec<Pending> = pending
        .into_iter()
        .filter(|p| seen.insert((p.project_id, p.ev.event_id.clone())))
        .collect();
    // 2. Which issues own the batch's hashes.
    let all_hashes: BTreeSet<&String> = pending.iter().flat_map(|p| p.hashes.iter()).collect();
    let mut owner: HashMap<(i64, String), i64> = HashMap::new();
    let hash_list: Vec<&&String> = all_hashes.iter().collect();
    for chunk in hash_list.chunks(500) {
        let sql = format!(
            "SELECT project_id, hash, issue_id FROM issue_hashes WHERE hash IN ({})",
            placeholders(backend, 0, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for h in chunk {
            q = q.bind(h.as_str());
        }
        for r in q.fetch_all(&mut **tx).await? {
            owner.insert(
                (r.try_get("project_id")?, r.try_get("hash")?),
                r.try_get("issue_id")?,
            );
        }
    }
    // 3. Load those issues, following merges to the surviving issue.
    let mut states: HashMap<i64, IssueState> = HashMap::new();
    let mut redirect: HashMap<i64, i64> = HashMap::new();
    let mut to_load: Vec<i64> = owner
        .values()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for _ in 0..16 {
        if to_load.is_empty() {
            break;
        }
        let sql = format!(
            "SELECT id, merged_into, title, status, substatus, resolved_in_release, ignore_until, ignore_until_count, times_seen
             FROM issues WHERE id IN ({})",
            placeholders(backend, 0, to_load.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &to_load {
            q = q.bind(*id);
        }
        let mut next = Vec::new();
        for r in q.fetch_all(&mut **tx).await? {
            let id: i64 = r.try_get("id")?;
            if let Some(target) = r.try_get::<Option<i64>, _>("merged_into")? {
                redirect.insert(id, target);
                if !states.contains_key(&target) {
                    next.push(target);
                }
                continue;
            }
            states.insert(
                id,
                IssueState {
                    title: r.try_get("title")?,
                    status: r.try_get("status")?,
                    substatus: r.try_get("substatus")?,
                    resolved_in: r.try_get("resolved_in_release")?,
                    ignore_until: r.try_get("ignore_until")?,
                    ignore_count: r.try_get("ignore_until_count")?,
                    times_seen: r.try_get("times_seen")?,
                    added: 0,
                    first_ts: i64::MAX,
                    last_ts: i64::MIN,
                    last_release: None,
                    created: false,
                    regressed: false,
                    new_users: 0,
                },
            );
        }
        to_load = next;
    }
    let resolve = |mut id: i64, redirect: &HashMap<i64, i64>| {
        for _ in 0..16 {
            match redirect.get(&id) {
                Some(t) => id = *t,
                None => break,
            }
        }
        id
    };
    // 4. Assign each event, in order, and apply the lifecycle in memory.
    let now = now_ms();
    let mut new_hashes: Vec<Vec<Value>> = Vec::new();
    let mut event_rows: Vec<Vec<Value>> = Vec::new();
    let mut user_rows: BTreeSet<(i64, String)> = BTreeSet::new();
    let mut tags: BTreeMap<(i64, String, String), (i64, i64, i64)> = BTreeMap::new();
    for p in &pending {
        let ev = &p.ev;
        let found = p
            .hashes
            .iter()
            .find_map(|h| owner.get(&(p.project_id, h.clone())).copied())
            .map(|id| resolve(id, &redirect));
        let issue_id = match found.filter(|id| states.contains_key(id)) {
            Some(id) => id,
            None => {
                let title = ev.title();
                let id: i64 = sqlx::query(
                    "INSERT INTO issues (project_id, title, culprit, level, platform, status, substatus, grouping_version,
                                         first_seen, last_seen, times_seen, user_count, first_release, last_release)
                     VALUES ($1, $2, $3, $4, $5, 'unresolved', 'new', $6, $7, $7, 0, 0, $8, $8) RETURNING id",
                )
                .bind(p.project_id)
                .bind(&title)
                .bind(ev.culprit())
                .bind(&ev.level)
                .bind(&ev.platform)
                // Equal to the project's version: events of unknown versions never get here.
                .bind(grouping::CURRENT_VERSION)
                .bind(ev.timestamp_ms)
                .bind(ev.release.clone())
                .fetch_one(&mut **tx)
                .await?
                .try_get("id")?;
                announcements.push(events::publish(
                    "issue.created",
                    Some(p.project_id),
                    Some(id.to_string()),
                    &json!({ "issue_id": id, "title": title, "level": ev.level,
                             "first_seen": ev.timestamp_ms }),
                ));
                // The owners matched before the transaction are assigned in it, so an alert
                // policy that notifies owners finds the owner when it reads `issue.created`.
                if let Some(owners) = &p.owners {
                    if let Some(a) =
                        super::triage::assign_to_owners(tx, p.project_id, id, owners).await?
                    {
                        announcements.push(a);
                    }
                }
                states.insert(
                    id,
                    IssueState {
                        title,
                        status: "unresolved".into(),
                        substatus: Some("new".into()),
                        resolved_in: None,
                        ignore_until: None,
                        ignore_count: None,
                        times_seen: 0,
                        added: 0,
                        first_ts: i64::MAX,
                        last_ts: i64::MIN,
                        last_release: None,
                        created: true,
                        regressed: false,
                        new_users: 0,
                    },
                );
                id
            }
        };
        for h in &p.hashes {
            if let std::collections::hash_map::Entry::Vacant(e) =
                owner.entry((p.project_id, h.clone()))
            {
                e.insert(issue_id);
                new_hashes.push(vec![p.project_id.into(), h.clone().into(), issue_id.into()]);
            }
        }
        let Some(st) = states.get_mut(&issue_id) else {
            continue;
        };
        let regress = match st.status.as_str() {
            "resolved" => true,
            // Resolved "in the next release": events from the release that was current when it
            // was resolved are expected; one from any other release means the fix did not hold.
            "resolved_next_release" => ev.release.is_some() && ev.release != st.resolved_in,
            _ => false,
        };
        if regress {
            st.status = "unresolved".into();
            st.substatus = Some("regressed".into());
            st.resolved_in = None;
            if !st.regressed {
                st.regressed = true;
                announcements.push(events::publish(
                    "issue.regressed",
                    Some(p.project_id),
                    Some(issue_id.to_string()),
                    &json!({ "issue_id": issue_id, "title": st.title, "release": ev.release,
                             "at": ev.timestamp_ms }),
                ));
            }
        } else if st.status == "ignored" {
            let time_over = st.ignore_until.is_some_and(|t| now >= t);
            let count_over = st.ignore_count.is_some_and(|c| st.times_seen + 1 > c);
            if time_over || count_over {
                st.status = "unresolved".into();
                st.substatus = Some("escalating".into());
                st.ignore_until = None;
                st.ignore_count = None;
            }
        } else if st.status == "unresolved"
            && st.substatus.as_deref() == Some("new")
            && st.times_seen > 0
        {
            st.substatus = Some("ongoing".into());
        }
        st.times_seen += 1;
        st.added += 1;
        st.first_ts = st.first_ts.min(ev.timestamp_ms);
        st.last_ts = st.last_ts.max(ev.timestamp_ms);
        if ev.release.is_some() {
            st.last_release = ev.release.clone();
        }
        if let Some(u) = &ev.user_key {
            user_rows.insert((issue_id, u.clone()));
        }
        for (k, v) in tag_pairs(ev) {
            let e = tags
                .entry((issue_id, k, v))
                .or_insert((0, ev.timestamp_ms, ev.timestamp_ms));
            e.0 += 1;
            e.1 = e.1.min(ev.timestamp_ms);
            e.2 = e.2.max(ev.timestamp_ms);
        }
        event_rows.push(vec![
            p.project_id.into(),
            issue_id.into(),
            ev.event_id.clone().into(),
            ev.timestamp_ms.into(),
            p.received_at.into(),
            ev.level.clone().into(),
            ev.release.clone().into(),
            ev.environment.clone().into(),
            ev.user_key.clone().into(),
            ev.title().into(),
            p.hashes.join(",").into(),
            p.payload.clone().into(),
        ]);
        per_issue.entry(issue_id).or_insert((p.project_id, 0)).1 += 1;
    }
    // 5. Write it all with multi-row statements.
    if !new_hashes.is_empty() {
        multi_row(
            backend,
            tx,
            "INSERT INTO issue_hashes (project_id, hash, issue_id)",
            "ON CONFLICT DO NOTHING",
            new_hashes,
        )
        .await?;
    }
    if !event_rows.is_empty() {
        multi_row(
            backend,
            tx,
            "INSERT INTO error_events (project_id, issue_id, event_id, timestamp, received_at, level, release, environment, user_key, title, hashes, body)",
            "",
            event_rows,
        )
        .await?;
    }
    if !user_rows.is_empty() {
        let rows = user_rows
            .into_iter()
            .map(|(i, u)| vec![i.into(), u.into()])
            .collect();
        for r in multi_row(
            backend,
            tx,
            "INSERT INTO issue_users (issue_id, user_key)",
            "ON CONFLICT DO NOTHING RETURNING issue_id",
            rows,
        )
        .await?
        {
            let id: i64 = r.try_get("issue_id")?;
            if let Some(st) = states.get_mut(&id) {
                st.new_users += 1;
            }
        }
    }
    if !tags.is_empty() {
        let rows = tags
            .into_iter()
            .map(|((i, k, v), (n, first, last))| {
                vec![
                    i.into(),
                    k.into(),
                    v.into(),
                    n.into(),
                    first.into(),
                    last.into(),
                ]
            })
            .collect();
        multi_row(
            backend,
            tx,
            "INSERT INTO issue_tags (issue_id, key, value, times_seen, first_seen, last_seen)",
            "ON CONFLICT (issue_id, key, value) DO UPDATE SET times_seen = issue_tags.times_seen + excluded.times_seen,
                 last_seen = CASE WHEN issue_tags.last_seen < excluded.last_seen THEN excluded.last_seen ELSE issue_tags.last_seen END",
            rows,
        )
        .await?;
    }
    for (id, st) in states.iter().filter(|(_, s)| s.added > 0 || s.created) {
        sqlx::query(
            "UPDATE issues SET times_seen = times_seen + $1, user_count = user_count + $2,
                    last_seen = CASE WHEN last_seen < $3 THEN $3 ELSE last_seen END,
                    first_seen = CASE WHEN first_seen > $4 THEN $4 ELSE first_seen END,
                    last_release = COALESCE($5, last_release), status = $6, substatus = $7,
                    resolved_in_release = $8, ignore_until = $9, ignore_until_count = $10
             WHERE id = $11",
        )
        .bind(st.added)
        .bind(st.new_users)
        .bind(st.last_ts)
        .bind(st.first_ts)
        .bind(st.last_release.clone())
        .bind(&st.status)
        .bind(st.substatus.clone())
        .bind(st.resolved_in.clone())
        .bind(st.ignore_until)
        .bind(st.ignore_count)
        .bind(*id)
        .execute(&mut **tx)
        .await?;
    }
    Ok((announcements, per_issue))
}
