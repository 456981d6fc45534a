//! The one reading of Lookout's own machinery that the API, the Operations page and `/metrics`
//! share: replicas from their heartbeat rows, leases, every cursor against its stream's head,
//! and the outbox. All ages are measured on the database's clock, the clock heartbeats and
//! leases are stamped with, so a replica with a skewed clock reads them right.

use std::collections::{BTreeMap, BTreeSet};

use lookout_core::time::iso;
use lookout_store::operations::{self as sops, StreamHeads};
use lookout_store::{cluster as cstore, Store};

use crate::api::schemas_cluster::{
    ConsumerView, LeaseView, OperationsView, OutboxView, RedisView, ReplicaView,
};
use crate::cluster::{Cluster, LIVE_MS};
use crate::service::ServiceResult;

/// The stream consumer `name` follows. Cursors are named by the code that owns them; one not
/// listed here is an event-stream [`lookout_store::events::Consumer`] group.
pub fn stream_of(consumer: &str) -> &'static str {
    if consumer == lookout_store::errors::process::CURSOR
        || consumer == lookout_store::apm::sentry::CURSOR
        || consumer == crate::uptime::checkins::CURSOR
    {
        "ingest_items"
    } else if consumer == lookout_store::apm::rollup::CURSOR {
        "apm_parts"
    } else {
        "domain_events"
    }
}

fn head_of(heads: &StreamHeads, stream: &str) -> i64 {
    match stream {
        "ingest_items" => heads.ingest,
        "apm_parts" => heads.apm_parts,
        _ => heads.events,
    }
}

/// A lease name's sort key: its prefix, then its numeric suffix by value.
fn lease_order(name: &str) -> (&str, Option<u64>, &str) {
    match name.rsplit_once('.') {
        Some((prefix, n)) => (prefix, n.parse().ok(), n),
        None => (name, None, ""),
    }
}

/// Reads everything the Operations page shows; `cluster` is this replica (none in handler tests).
pub async fn read(store: &Store, cluster: Option<&Cluster>) -> ServiceResult<OperationsView> {
    let (now, rows) = cstore::replicas(store).await?;
    let mut leases = cstore::leases(store, "").await?;
    // Shards by number (`uptime.shard.2` before `uptime.shard.10`), as people count them.
    leases.sort_by(|a, b| lease_order(&a.name).cmp(&lease_order(&b.name)));
    let cursors = sops::cursors(store).await?;
    let heads = sops::stream_heads(store).await?;
    let outbox = sops::outbox_depth(store).await?;

    let live: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.heartbeat_at >= now - LIVE_MS)
        .map(|r| r.name.as_str())
        .collect();
    let mut held: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &leases {
        // An expired claim is no longer held, even if nobody took it over yet.
        if let (Some(o), Some(until)) = (&l.owner, l.lease_until) {
            if until >= now {
                *held.entry(o.as_str()).or_default() += 1;
            }
        }
    }
    let me = cluster.map(Cluster::name);
    let replicas = rows
        .iter()
        .map(|r| ReplicaView {
            name: r.name.clone(),
            version: r.version.clone(),
            state: if live.contains(r.name.as_str()) {
                "live"
            } else {
                "lost"
            }
            .into(),
            this: me == Some(r.name.as_str()),
            started_at: iso(r.started_at),
            last_heartbeat_at: iso(r.heartbeat_at),
            heartbeat_age_ms: (now - r.heartbeat_at).max(0),
            clock_offset_ms: r.clock_offset_ms,
            leases_held: held.get(r.name.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let leases = leases
        .iter()
        .map(|l| {
            let current = l.lease_until.is_some_and(|u| u >= now);
            LeaseView {
                name: l.name.clone(),
                owner: l.owner.clone(),
                fence: l.fence,
                taken_at: l.owner.as_ref().and(l.taken_at).map(iso),
                held_ms: l.owner.as_ref().and(l.taken_at).map(|t| (now - t).max(0)),
                lease_until: l.lease_until.map(iso),
                owner_live: current && l.owner.as_deref().is_some_and(|o| live.contains(o)),
            }
        })
        .collect();
    let consumers = cursors
        .iter()
        .map(|c| {
            let stream = stream_of(&c.consumer);
            let head = head_of(&heads, stream);
            ConsumerView {
                consumer: c.consumer.clone(),
                stream: stream.into(),
                position: c.position,
                head,
                lag: (head - c.position).max(0),
                served_by: c
                    .lease_owner
                    .clone()
                    .filter(|_| c.lease_until.is_some_and(|u| u >= now)),
                updated_at: iso(c.updated_at),
            }
        })
        .collect();
    let (ready, not_ready_reason) = match cluster.map(Cluster::ready) {
        Some(Err(why)) => (false, Some(why)),
        _ => (true, None),
    };
    let shared = crate::shared::get();
    let redis = RedisView {
        configured: shared.configured(),
        reachable: shared.configured() && shared.ping().await,
        location: shared.location().map(str::to_string),
    };
    Ok(OperationsView {
        redis,
        replica: me.map(str::to_string),
        ready,
        not_ready_reason,
        database_time: iso(now),
        clock_offset_ms: cluster.map_or(0, |c| -c.offset_ms()),
        live_window_ms: LIVE_MS,
        replicas_live: live.len() as i64,
        replicas,
        leases,
        consumers,
        outbox: OutboxView {
            pending: outbox.pending,
            oldest_pending_at: outbox.oldest_pending_at.map(iso),
            scheduled: outbox.scheduled,
        },
    })
}
