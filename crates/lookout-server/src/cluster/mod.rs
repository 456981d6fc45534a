//! The replicas of one installation: who is alive, the database's clock, and where work goes.
//!
//! Each replica heartbeats in the database every [`HEARTBEAT`]; a replica whose heartbeat is
//! older than [`LIVE_MS`] is gone. Work that one replica at a time must do is placed by
//! rendezvous hashing over the live replicas ([`Cluster::owner_of`]): every replica computes the
//! same owner from the same live set, a joining or leaving replica moves only its own share, and
//! shares stay even. [`placement`] runs such work under fenced leases.
//!
//! The heartbeat also measures this replica's clock against the database's: [`Cluster::now_ms`]
//! is the database's time, which leases, schedules and recorded times use, so a replica whose
//! clock is off neither steals work nor leaves gaps.

pub mod placement;
mod watch;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use lookout_core::time::now_ms;
use lookout_store::Store;

/// How often a replica heartbeats (and renews its leases).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica silent for longer than this is gone and its work is taken over (ms).
pub const LIVE_MS: i64 = 5_000;
/// How long heartbeats must have succeeded before this replica takes over work of replicas it
/// thinks gone: after an outage every heartbeat is stale, and each replica must first see the
/// others come back, or the first to reconnect would take everything.
pub const SETTLE: Duration = Duration::from_secs(3);
/// `/readyz` answers 503 when the last successful heartbeat (a write) is older than this.
pub const READY_WITHIN: Duration = Duration::from_millis(2_500);

/// This replica's view of the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    version: String,
    /// Database clock minus ours, ms.
    offset_ms: AtomicI64,
    state: Mutex<View>,
}

#[derive(Default)]
struct View {
    /// Live replicas, sorted by name.
    live: Vec<String>,
    /// When a heartbeat last succeeded.
    last_beat: Option<Instant>,
    /// Since when heartbeats have succeeded without a failure.
    healthy_since: Option<Instant>,
    /// Why the last heartbeat failed, for `/readyz` and the operations page.
    last_error: Option<String>,
    /// Whether any heartbeat failed since start: until one does, the first view is trusted.
    ever_failed: bool,
}

impl Cluster {
    /// This replica, named `name`, running `version`; alone until its first heartbeat.
    pub fn new(name: &str, version: &str) -> Cluster {
        Cluster {
            inner: Arc::new(Inner {
                name: name.to_string(),
                version: version.to_string(),
                offset_ms: AtomicI64::new(0),
                state: Mutex::new(View::default()),
            }),
        }
    }

    /// This replica's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The database's clock now (ms), estimated from ours and the offset the heartbeats measure.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.inner.offset_ms.load(Ordering::Relaxed)
    }

    /// How far the database's clock is ahead of ours (ms).
    pub fn offset_ms(&self) -> i64 {
        self.inner.offset_ms.load(Ordering::Relaxed)
    }

    fn view<T>(&self, f: impl FnOnce(&mut View) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the view is still usable.
        let mut v = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut v)
    }

    /// The live replicas as last read, sorted (always including this one).
    pub fn live(&self) -> Vec<String> {
        self.view(|v| {
            if v.live.is_empty() {
                vec![self.inner.name.clone()]
            } else {
                v.live.clone()
            }
        })
    }

    /// Whether heartbeats have succeeded for at least [`SETTLE`], so this replica's view of who is
    /// alive can be trusted to take over others' work.
    pub fn settled(&self) -> bool {
        self.view(|v| {
            v.healthy_since
                .is_some_and(|t| !v.ever_failed || t.elapsed() >= SETTLE)
        })
    }

    /// `Ok` when a heartbeat (a write) succeeded within [`READY_WITHIN`]; otherwise why not.
    pub fn ready(&self) -> Result<(), String> {
        self.view(|v| match v.last_beat {
            Some(t) if t.elapsed() <= READY_WITHIN => Ok(()),
            _ => Err(v
                .last_error
                .clone()
                .unwrap_or_else(|| "no heartbeat written yet".into())),
        })
    }

    /// The live replica that owns work `key`: the highest rendezvous score over the live set.
    pub fn owner_of(&self, key: &str) -> String {
        owner_among(&self.live(), key)
            .unwrap_or(&self.inner.name)
            .to_string()
    }

    /// The owner of each of `keys` (the same order), spread as evenly as the live set allows: no
    /// replica gets more than its share rounded up. Each key goes to the first replica in its
    /// rendezvous order that still has room, so every replica computes the same placement from
    /// the same live set, and a replica joining or leaving moves few keys besides its own.
    /// (Plain rendezvous hashing gave splits like 3/6/7 of 16 shards over three replicas.)
    pub fn assignment(&self, keys: &[String]) -> Vec<String> {
        assign(&self.live(), keys)
    }

    /// Whether this replica owns work `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.owner_of(key) == self.inner.name
    }

    /// Writes one heartbeat and reads the live set; on failure, records why.
    pub async fn beat(&self, store: &Store) -> Result<(), lookout_store::StoreError> {
        let sent = Instant::now();
        let local = now_ms();
        let outcome = tokio::time::timeout(HEARTBEAT * 2, async {
            let db = lookout_store::cluster::heartbeat(
                store,
                &self.inner.name,
                &self.inner.version,
                -self.offset_ms(),
            )
            .await?;
            let rtt = i64::try_from(sent.elapsed().as_millis()).unwrap_or(0);
            // The row was stamped about halfway through the round trip.
            self.inner
                .offset_ms
                .store(db - (local + rtt / 2), Ordering::Relaxed);
            let (now, all) = lookout_store::cluster::replicas(store).await?;
            let mut live: Vec<String> = all
                .into_iter()
                .filter(|r| r.heartbeat_at >= now - LIVE_MS)
                .map(|r| r.name)
                .collect();
            live.sort();
            Ok::<_, lookout_store::StoreError>(live)
        })
        .await
        .unwrap_or_else(|_| {
            Err(lookout_store::StoreError::Corrupt(
                "the heartbeat timed out".into(),
            ))
        });
        self.view(|v| match outcome {
            Ok(live) => {
                v.live = live;
                v.last_beat = Some(Instant::now());
                v.healthy_since.get_or_insert_with(Instant::now);
                v.last_error = None;
                Ok(())
            }
            Err(e) => {
                v.healthy_since = None;
                v.ever_failed = true;
                v.last_error = Some(e.to_string());
                Err(e)
            }
        })
    }

    /// Heartbeats until `stop` flips, announcing replicas that join and are lost.
    pub async fn run(self, store: Store, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            match self.beat(&store).await {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(replica = self.name(), "Heartbeats written again.");
                    }
                    if self.settled() {
                        watch::announce(&store, self.name()).await;
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(replica = self.name(), error = %e, "Could not write this replica's heartbeat; /readyz answers 503 until it can.");
                }
                Err(_) => {}
            }
        }
    }
}

/// Bounded-load rendezvous placement of `keys` over `live` (see [`Cluster::assignment`]).
fn assign(live: &[String], keys: &[String]) -> Vec<String> {
    if live.is_empty() {
        return Vec::new();
    }
    let cap = keys.len().div_ceil(live.len());
    let mut load = vec![0usize; live.len()];
    keys.iter()
        .map(|k| {
            let mut ranked: Vec<usize> = (0..live.len()).collect();
            ranked.sort_by_key(|&i| std::cmp::Reverse((score(&live[i], k), &live[i])));
            let pick = ranked.into_iter().find(|&i| load[i] < cap).unwrap_or(0);
            load[pick] += 1;
            live[pick].clone()
        })
        .collect()
}

/// The member of `live` with the highest rendezvous score for `key`.
fn owner_among<'a>(live: &'a [String], key: &str) -> Option<&'a str> {
    live.iter()
        .max_by_key(|m| (score(m, key), m.as_str()))
        .map(String::as_str)
}

/// Rendezvous score of `member` for `key`: SHA-256 rather than `std`'s hasher because every
/// replica, whatever its build or version (rolling upgrades run two), must compute the same value.
fn score(member: &str, key: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(member.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("host-{i}-abc")).collect()
    }

    #[test]
    fn shards_spread_evenly_and_a_leaving_replica_moves_few_others() {
        let keys: Vec<String> = (0..16).map(|k| format!("uptime.shard.{k}")).collect();
        for n in 1..=5 {
            let live = names(n);
            let owners = assign(&live, &keys);
            for m in &live {
                let held = owners.iter().filter(|o| *o == m).count();
                assert!(
                    held <= 16usize.div_ceil(n) && held + 1 >= 16 / n,
                    "{m} holds {held} of 16 among {n}: {owners:?}"
                );
            }
        }
        let three = names(3);
        let before = assign(&three, &keys);
        let two = vec![three[0].clone(), three[2].clone()];
        let after = assign(&two, &keys);
        let moved = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| before[*i] != three[1] && before[*i] != after[*i])
            .count();
        // The leaver's shards must move; of the others, only a few may, to even the load.
        assert!(
            moved <= 3,
            "{moved} shards of staying replicas moved: {before:?} → {after:?}"
        );
        // Every replica computes the same placement whatever order it read the live set in.
        let mut shuffled = three.clone();
        shuffled.reverse();
        shuffled.sort();
        assert_eq!(assign(&shuffled, &keys), before);
    }

    #[test]
    fn a_lone_replica_owns_everything() {
        let c = Cluster::new("solo", "1");
        assert!(c.owns("uptime.shard.3"));
        assert_eq!(c.live(), vec!["solo".to_string()]);
    }
}
