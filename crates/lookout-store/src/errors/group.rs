//! Writing a batch of parsed events into issues inside the processor's transaction: which
//! issues own their hashes (following merges), which issues to open, the events, users and tags
//! stored with a fixed number of statements per batch, and each issue's lifecycle (a resolved
//! issue that sees a new event regresses; ignores that expire).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::json;
use sqlx::{Any, Row, Transaction};

use super::process::{tag_pairs, Pending};
use crate::writer::{multi_row, placeholders, Value};
use crate::{events, Backend, Result, Write};
use lookout_core::time::now_ms;
use lookout_protocol::grouping;

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
pub(super) async fn group_batch(
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
    let mut pending: Vec<Pending> = pending
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
    for p in &mut pending {
        // Moved, not cloned: a symbolicated event's text is several times the minified one.
        let payload = std::mem::take(&mut p.payload);
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
            payload.into(),
        ]);
        per_issue.entry(issue_id).or_insert((p.project_id, 0)).1 += 1;
    }
    // The parsed events are no longer needed: free them off this task, which holds the
    // write turn every other writer waits for (500 JSON trees take milliseconds to free).
    super::process::free_off_thread(pending);
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
