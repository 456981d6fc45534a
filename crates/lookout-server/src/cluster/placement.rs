//! Work placed on replicas under fenced leases: each key (an uptime shard) runs on the replica the
//! placement names, and only while that replica holds the key's lease.
//!
//! Every [`HEARTBEAT`] the manager renews this replica's leases, stops work whose lease another
//! claim took (its fencing token moved), hands back keys the placement now gives to another live
//! replica, and claims its own keys that are free, expired, or held by a replica that stopped
//! heartbeating. A replica that joins gets its share within a few seconds; one that dies has its
//! keys taken over once its heartbeat is [`LIVE_MS`] old.
//!
//! Through a database outage nothing can be renewed or claimed, and work goes on: nobody else
//! can take a lease while the database is down, and the fencing token decides afterwards. When the
//! database answers again the first renewal either confirms the token (buffered results are then
//! written) or shows another claim (the work stops and its buffer is dropped; the new holder
//! starts from what was stored). A replica cut off alone (another replica's `/readyz` says it
//! reaches the database) is different: the others will take its leases once its heartbeat is
//! [`LIVE_MS`] old, so it stops its work [`CUT_OFF_AFTER`] after its last heartbeat, before they
//! can.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Cluster, HEARTBEAT, LIVE_MS};
use lookout_store::cluster as cstore;
use lookout_store::Store;

/// How long a claim lasts without renewal (renewed every [`HEARTBEAT`]).
pub const LEASE_MS: i64 = 10_000;
/// After this long without a successful heartbeat, a replica asks the others' `/readyz` whether
/// they reach the database; if one does, this replica alone is cut off and stops its work before
/// the others take it over (they may once its heartbeat is [`LIVE_MS`] old). Not sooner: in an
/// outage for everyone, the others' own last heartbeats may be up to a beat younger than ours,
/// and their `/readyz` says 200 until theirs is [`super::READY_WITHIN`] old; asking before then
/// could mistake an outage for a partition and stop checks that should go on.
pub const CUT_OFF_AFTER: Duration = Duration::from_millis(
    super::READY_WITHIN.as_millis() as u64 + HEARTBEAT.as_millis() as u64 + 100,
);

/// One piece of placed work as its runner sees it.
pub struct Work {
    /// The lease's name (`uptime.shard.3`).
    pub name: String,
    /// The fencing token every write done for this work must carry.
    pub fence: i64,
    /// The last batch number written under the lease before this claim (see
    /// [`lookout_store::cluster::guard`]).
    pub seq: i64,
    /// Turns true when the work must stop: handed back, lease lost, or shutdown.
    pub stop: watch::Receiver<bool>,
}

/// Starts the runner of one piece of work.
pub type Start = Arc<dyn Fn(Work) -> JoinHandle<()> + Send + Sync>;

struct Held {
    fence: i64,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Asked to stop (handed back or lost); released once its task ends.
    leaving: bool,
}

/// Places `keys` on the live replicas and runs this replica's share with `start` until `stop`.
pub async fn run(
    cluster: Cluster,
    store: Store,
    keys: Vec<String>,
    start: Start,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match cstore::ensure_leases(&store, &keys).await {
            Ok(()) => break,
            Err(e) => tracing::warn!(error = %e, "Could not register leases; retrying."),
        }
        tokio::select! {
            () = tokio::time::sleep(HEARTBEAT) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let me = cluster.name().to_string();
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        // Cut off alone (another replica reaches the database): the others will take this
        // replica's leases once its heartbeat is old enough, so it stops its work first.
        // The evidence: a peer that reached the database all the while this one could not (less
        // a beat); one that is ready only since an outage ended may just have reconnected first.
        let cut_off = match cluster.beat_age() {
            Some(age) if age >= CUT_OFF_AFTER && held.values().any(|h| !h.leaving) => {
                cluster.a_peer_is_ready(age.saturating_sub(HEARTBEAT)).await
            }
            _ => false,
        };
        if cut_off {
            tracing::warn!(
                "Cut off from the database while another replica reaches it: stopping this replica's work before the others take it over."
            );
            metrics::counter!("lookout_cut_off_stops_total").increment(1);
            for h in held.values_mut().filter(|h| !h.leaving) {
                h.leaving = true;
                let _ = h.stop.send(true);
            }
        }
        release_finished(&store, &mut held).await;
        let running: Vec<(String, i64)> = held
            .iter()
            .filter(|(_, h)| !h.task.is_finished())
            .map(|(n, h)| (n.clone(), h.fence))
            .collect();
        if !running.is_empty() {
            match bounded(cstore::renew(&store, &me, &running, LEASE_MS)).await {
                Ok(ours) => {
                    for (name, h) in held.iter_mut() {
                        if !h.leaving && !ours.iter().any(|(n, f)| n == name && *f == h.fence) {
                            tracing::warn!(lease = %name, fence = h.fence, "Lost the lease to another claim; stopping its work.");
                            metrics::counter!("lookout_leases_lost_total").increment(1);
                            h.leaving = true;
                            let _ = h.stop.send(true);
                        }
                    }
                }
                // An outage: keep working, the token decides once the database answers.
                Err(e) => tracing::debug!(error = %e, "Could not renew leases."),
            }
        }
        // Placement needs a view of the live replicas that can be trusted: after an outage every
        // heartbeat is stale until each replica has written one again.
        if cluster.ready().is_err() || !cluster.settled() {
            continue;
        }
        let owners = cluster.assignment(&keys);
        let mut took = Vec::new();
        for (key, owner) in keys.iter().zip(&owners) {
            match held.get_mut(key) {
                Some(h) if owner != &me && !h.leaving => {
                    tracing::info!(lease = %key, to = %owner, "Handing work back to its owner.");
                    h.leaving = true;
                    let _ = h.stop.send(true);
                }
                Some(_) => {}
                None if owner == &me => {
                    match bounded(cstore::claim(&store, key, &me, LEASE_MS, LIVE_MS)).await {
                        Ok(Some((fence, seq))) => {
                            took.push(key.clone());
                            let (tx, rx) = watch::channel(false);
                            let task = start(Work {
                                name: key.clone(),
                                fence,
                                seq,
                                stop: rx,
                            });
                            held.insert(
                                key.clone(),
                                Held {
                                    fence,
                                    stop: tx,
                                    task,
                                    leaving: false,
                                },
                            );
                        }
                        Ok(None) => {}
                        Err(e) => tracing::debug!(lease = %key, error = %e, "Could not claim."),
                    }
                }
                None => {}
            }
        }
        if !took.is_empty() {
            tracing::info!(took = ?took, holding = held.len(), "Took work over.");
        }
        metrics::gauge!("lookout_leases_held", "replica" => me.clone())
            .set(held.values().filter(|h| !h.leaving).count() as f64);
    }
    for h in held.values() {
        let _ = h.stop.send(true);
    }
    // Runners finish their in-flight checks and write them, all at once; bounded as a whole so a
    // stuck probe cannot hold shutdown. The heartbeat goes on meanwhile (the caller stops it after
    // this returns), so nobody takes the shards over before their last results are written.
    let tasks = held.values_mut().map(|h| &mut h.task);
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(tasks),
    )
    .await;
    for (name, h) in held {
        if let Err(e) = cstore::release(&store, &name, h.fence).await {
            tracing::debug!(lease = %name, error = %e, "Could not release at shutdown.");
        }
    }
}

/// `call`, or a timed-out error after two beats: a database that hangs must not hold the manager,
/// which decides when work stops.
async fn bounded<T>(
    call: impl std::future::Future<Output = lookout_store::Result<T>>,
) -> lookout_store::Result<T> {
    tokio::time::timeout(HEARTBEAT * 2, call)
        .await
        .unwrap_or_else(|_| {
            Err(lookout_store::StoreError::Db(sqlx::Error::Io(
                std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer from the database"),
            )))
        })
}

/// Releases the leases of runners that ended (handed back, lost, or failed). An entry stays until
/// its release succeeds (or another claim took the lease): a failed release is retried on the next
/// beat rather than forgotten, and the lease, no longer renewed, expires meanwhile.
async fn release_finished(store: &Store, held: &mut HashMap<String, Held>) {
    let done: Vec<String> = held
        .iter()
        .filter(|(_, h)| h.task.is_finished())
        .map(|(n, _)| n.clone())
        .collect();
    for name in done {
        let Some(h) = held.get_mut(&name) else {
            continue;
        };
        if !h.leaving {
            tracing::warn!(lease = %name, "Work ended by itself; releasing its lease.");
            h.leaving = true;
        }
        // Fenced: a lease another claim took is left alone.
        match bounded(cstore::release(store, &name, h.fence)).await {
            Ok(()) => {
                held.remove(&name);
            }
            Err(e) => tracing::debug!(lease = %name, error = %e, "Could not release; retrying."),
        }
    }
}
