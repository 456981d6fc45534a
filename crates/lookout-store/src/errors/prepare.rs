//! The error processor's CPU work on a batch, done before its write turn and spread over the
//! machine's cores: each event parsed once, JavaScript frames resolved through source maps, and
//! the grouping hashes computed.
//!
//! It runs in two passes around the map lookups (which need the database): `scan` parses the
//! events that may be source-mapped and names the files they need maps for; `finish`
//! symbolicates them with the maps found and parses and hashes every event. Each pass splits the
//! batch into contiguous parts, one per core: the processor is one task, and parsing and
//! resolving 500 events one after the other left a core idle while ingest waited on it.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::process::Pending;
use lookout_protocol::event::{parse_event, parse_event_value, Clock, ErrorEvent};
use lookout_protocol::grouping;
use lookout_protocol::sourcemaps::{self as sm, FoundMap, FrameSource};

/// One inbox row as the processor read it.
pub(super) struct Item {
    pub(super) seq: i64,
    pub(super) project_id: i64,
    pub(super) kind: String,
    pub(super) received_at: i64,
    pub(super) payload: String,
}

/// A JavaScript event that wants source maps: parsed, with the files it needs maps for.
pub(super) struct JsEvent {
    body: Value,
    pub(super) sources: Vec<FrameSource>,
    pub(super) release: Option<String>,
    pub(super) dist: Option<String>,
}

/// What a map lookup is keyed by across a batch: the project, the frame's source, the event's
/// release and dist (each event may name another release).
pub(super) type MapKey = (i64, FrameSource, Option<String>, Option<String>);

/// The key of one source of a JavaScript event.
pub(super) fn map_key(project_id: i64, js: &JsEvent, src: &FrameSource) -> MapKey {
    (project_id, src.clone(), js.release.clone(), js.dist.clone())
}

/// Parts a batch is split into at most (one per core), and the fewest items worth a thread.
const MAX_PARTS: usize = 4;
const MIN_PART: usize = 32;

/// Runs `f` on contiguous parts of `items`, one per core (the first on this thread), and
/// returns the parts' results in order.
fn in_parts<T: Send, R: Send>(items: &mut [T], f: impl Fn(&mut [T]) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = cores.min(MAX_PARTS).min(items.len() / MIN_PART).max(1);
    if parts == 1 {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(parts);
    let f = &f;
    std::thread::scope(|s| {
        let mut chunks = items.chunks_mut(size);
        let first = chunks.next();
        let others: Vec<_> = chunks.map(|c| s.spawn(move || f(c))).collect();
        let mut out: Vec<R> = first.map(f).into_iter().collect();
        for h in others {
            // A part that panicked (a bug) is re-raised here, as if it ran on this thread.
            out.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        out
    })
}

/// The first pass: for each item, the parsed event and its map sources when it is a JavaScript
/// event with frames a map could resolve; `None` for everything else.
pub(super) fn scan(items: &mut [Item]) -> Vec<Option<JsEvent>> {
    in_parts(items, |part| part.iter().map(scan_one).collect::<Vec<_>>())
        .into_iter()
        .flatten()
        .collect()
}

fn scan_one(item: &Item) -> Option<JsEvent> {
    // Cheap test first: only events with column numbers can be source-mapped.
    if item.kind != "event" || !item.payload.contains("\"colno\"") {
        return None;
    }
    let body: Value = serde_json::from_str(&item.payload).ok()?;
    if !sm::wants_symbolication(&body) {
        return None;
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (release, dist) = (text("release"), text("dist"));
    Some(JsEvent {
        sources: sm::sources(&body),
        body,
        release,
        dist,
    })
}

/// What the second pass made of a batch.
#[derive(Default)]
pub(super) struct Prepared {
    /// Events parsed and hashed, in inbox order.
    pub(super) pending: Vec<Pending>,
    /// Items other than events `(project, kind, received_at, payload)`, in inbox order.
    pub(super) others: Vec<(i64, String, i64, String)>,
    /// Items of the batch this covers (a prefix): the rest wait for the next poll.
    pub(super) done: usize,
    /// Frames resolved through maps.
    pub(super) resolved_frames: usize,
}

/// The second pass over the first `limit` items: symbolicates the JavaScript events with the
/// maps found, parses and hashes every event with its project's grouping version. Stops
/// starting new items after `deadline` (having done at least the first), so a batch never
/// outlives the processor's lease however slow its maps are.
pub(super) fn finish(
    items: Vec<Item>,
    js: Vec<Option<JsEvent>>,
    limit: usize,
    maps: &HashMap<MapKey, FoundMap>,
    versions: &HashMap<i64, String>,
    deadline: Instant,
) -> Prepared {
    let mut work: Vec<(Item, Option<JsEvent>)> = items.into_iter().zip(js).take(limit).collect();
    let parts = in_parts(&mut work, |part| {
        let total = part.len();
        let mut out = Vec::with_capacity(total);
        // One per part: a part is one thread, and its events often share stacks.
        let mut memo = sm::FrameMemo::default();
        for (i, (item, js)) in part.iter_mut().enumerate() {
            if i > 0 && Instant::now() > deadline {
                break;
            }
            out.push(prepare_one(item, js.take(), maps, versions, &mut memo));
        }
        (out, total)
    });
    let mut prepared = Prepared::default();
    for (outcomes, total) in parts {
        let whole = outcomes.len() == total;
        prepared.done += outcomes.len();
        for outcome in outcomes {
            match outcome {
                Outcome::Other(other) => prepared.others.push(other),
                Outcome::Event(p, resolved) => {
                    prepared.resolved_frames += resolved;
                    prepared.pending.push(*p);
                }
                Outcome::Skipped => {}
            }
        }
        // A part cut short by the deadline ends the batch there: later parts' items wait for
        // the next poll with it, so what is applied is always a prefix of the inbox.
        if !whole {
            break;
        }
    }
    prepared
}

/// What became of one item.
enum Outcome {
    /// Not an event: written as it is `(project, kind, received_at, payload)`.
    Other((i64, String, i64, String)),
    /// An event, parsed and hashed (its payload rewritten when frames were resolved), and how
    /// many frames were.
    Event(Box<Pending>, usize),
    /// An event that no longer parses, or of a grouping version this build does not know.
    Skipped,
}

/// One item's work; its payload (and parsed event) are moved out of `item`.
fn prepare_one(
    item: &mut Item,
    js: Option<JsEvent>,
    maps: &HashMap<MapKey, FoundMap>,
    versions: &HashMap<i64, String>,
    memo: &mut sm::FrameMemo,
) -> Outcome {
    let payload = std::mem::take(&mut item.payload);
    if item.kind != "event" {
        return Outcome::Other((
            item.project_id,
            std::mem::take(&mut item.kind),
            item.received_at,
            payload,
        ));
    }
    let clock = Clock {
        received_ms: item.received_at,
        sent_at_ms: None,
    };
    let mut stored = payload;
    let mut resolved = 0;
    let parsed = match js {
        Some(js) => {
            let found: HashMap<FrameSource, FoundMap> = js
                .sources
                .iter()
                .filter_map(|src| {
                    let m = maps.get(&map_key(item.project_id, &js, src))?;
                    Some((src.clone(), m.clone()))
                })
                .collect();
            if found.is_empty() {
                // Parsed once already: the value stands for the stored text.
                parse_event_value(js.body, stored.as_bytes(), None, &clock)
            } else {
                let mut body = js.body;
                let outcome = sm::symbolicate_with(&mut body, &found, memo);
                let text = (outcome.resolved > 0).then(|| body.to_string());
                match text {
                    // Context lines make an event bigger; one pushed over the event cap stays
                    // minified rather than being dropped by the parser.
                    Some(t) if t.len() <= lookout_protocol::event::MAX_EVENT_BYTES => {
                        resolved = outcome.resolved;
                        stored = t;
                        parse_event_value(body, stored.as_bytes(), None, &clock)
                    }
                    _ => parse_event(stored.as_bytes(), None, &clock),
                }
            }
        }
        None => parse_event(stored.as_bytes(), None, &clock),
    };
    let ev: ErrorEvent = match parsed {
        Ok(ev) => ev,
        // Validated at ingest, so this means a stored row went bad; skip it.
        Err(e) => {
            tracing::warn!(project = item.project_id, seq = item.seq, error = %e, "Stored event no longer parses; skipped.");
            return Outcome::Skipped;
        }
    };
    // Each project groups with the version stored on it (fixed when the project is created),
    // so a newer algorithm in a newer build never reshuffles an existing project's issues.
    let version = versions
        .get(&item.project_id)
        .map_or(grouping::CURRENT_VERSION, String::as_str);
    let Some(hashes) = grouping::hashes_with(version, &ev) else {
        tracing::error!(project = item.project_id, version, "Project uses a grouping version this build does not know; event kept in the inbox only.");
        return Outcome::Skipped;
    };
    Outcome::Event(
        Box::new(Pending {
            project_id: item.project_id,
            received_at: item.received_at,
            ev,
            hashes,
            payload: stored,
            owners: None,
        }),
        resolved,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                seq: i as i64 + 1,
                project_id: 1,
                kind: if i % 10 == 9 { "session" } else { "event" }.into(),
                received_at: 1_700_000_000_000,
                payload: serde_json::json!({"event_id": format!("{i:032x}"), "platform": "python",
                    "exception": {"values": [{"type": format!("E{i}"), "value": "x"}]}})
                .to_string(),
            })
            .collect()
    }

    fn run(n: usize, deadline: Instant) -> Prepared {
        let mut it = items(n);
        let js = scan(&mut it);
        finish(it, js, n, &HashMap::new(), &HashMap::new(), deadline)
    }

    #[test]
    fn every_item_comes_back_in_inbox_order_whatever_the_parts() {
        let p = run(200, Instant::now() + Duration::from_secs(60));
        assert_eq!(p.done, 200);
        assert_eq!(p.others.len(), 20, "the sessions, kept apart");
        let types: Vec<String> = p
            .pending
            .iter()
            .map(|e| e.ev.exceptions[0].ty.clone().unwrap_or_default())
            .collect();
        let want: Vec<String> = (0..200)
            .filter(|i| i % 10 != 9)
            .map(|i| format!("E{i}"))
            .collect();
        assert_eq!(types, want);
    }

    #[test]
    fn past_the_deadline_the_batch_is_cut_to_a_prefix() {
        let p = run(200, Instant::now() - Duration::from_secs(1));
        assert_eq!(p.done, 1, "only the first item is done once time is up");
        assert_eq!(p.pending.len(), 1);
        assert_eq!(p.pending[0].ev.exceptions[0].ty.as_deref(), Some("E0"));
    }
}
