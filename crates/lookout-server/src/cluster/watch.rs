//! Lookout watching itself: `replica.joined` when a replica starts heartbeating, `replica.lost`
//! when one falls silent without leaving (a clean stop removes its row and announces nothing).
//!
//! Any settled replica may announce; each change is a compare-and-set on the replica's
//! `announced` flag in the same transaction as its event, so it is announced exactly once.

use serde_json::json;

use lookout_store::cluster as cstore;
use lookout_store::Store;

/// Announces joins and losses among `all`, the replica rows this beat read at `now` (the
/// database's time); failures are retried on the next beat.
pub(super) async fn announce(store: &Store, me: &str, now: i64, all: Vec<cstore::Replica>) {
    for r in all {
        let live = r.heartbeat_at >= now - super::LIVE_MS;
        let kind = match (live, r.announced) {
            (true, false) => "replica.joined",
            (false, true) => "replica.lost",
            _ => continue,
        };
        let payload = json!({
            "replica": r.name,
            "version": r.version,
            "started_at": r.started_at,
            "last_heartbeat_at": r.heartbeat_at,
            "silent_ms": now - r.heartbeat_at,
            "seen_by": me,
        });
        let event = lookout_store::events::publish(kind, None, Some(r.name.clone()), &payload);
        match cstore::announce(store, &r.name, live, event).await {
            Ok(true) if kind == "replica.lost" => {
                tracing::warn!(replica = %r.name, silent_ms = now - r.heartbeat_at, seen_by = me, "Replica lost: no heartbeat; its work was taken over.");
            }
            Ok(true) => tracing::info!(replica = %r.name, seen_by = me, "Replica joined."),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "Could not announce a replica change."),
        }
    }
}
