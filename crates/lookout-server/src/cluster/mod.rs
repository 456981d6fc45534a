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
/// How long heartbeats must have succeeded, after a failure, before this replica places work
/// again: after an outage every heartbeat is stale, and each replica must first see the others
/// come back (they may take up to the live window, plus a beat each way), or the first to
/// reconnect would take everything and the others' buffered results would be fenced off.
pub const SETTLE: Duration = Duration::from_millis(LIVE_MS as u64 + 2_000);
/// `/readyz` answers 503 when the last successful heartbeat (a write) is older than this.
pub const READY_WITHIN: Duration = Duration::from_millis(2_500);
/// How long a replica waits for another's `/readyz` ([`Cluster::a_peer_is_ready`]).
pub const PEER_TIMEOUT: Duration = Duration::from_millis(700);

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
    /// Where this replica's UI and API answer, written with each heartbeat for the others.
    address: std::sync::OnceLock<String>,
    /// Asks the other replicas' `/readyz` ([`Cluster::a_peer_is_ready`]).
    http: reqwest::Client,
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
    /// Recent clock samples (round trip ms, offset ms): the offset of the fastest is used.
    samples: std::collections::VecDeque<(i64, i64)>,
    /// The stream cursors this replica serves ([`lookout_store::Store::set_placement`]), and every
    /// cursor known when they were placed.
    cursors: (Vec<String>, Vec<String>),
    /// Beats so far (old replica rows are swept every so often).
    beats: u64,
    /// The addresses of the other live replicas, as last read.
    peers: Vec<String>,
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
                address: std::sync::OnceLock::new(),
                http: reqwest::Client::builder()
                    .timeout(PEER_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .build()
                    .unwrap_or_default(),
            }),
        }
    }

    /// Sets where this replica answers (before the first heartbeat).
    pub fn set_address(&self, address: String) {
        let _ = self.inner.address.set(address);
    }

    /// Whether another replica has reached the database without a break for at least
    /// `for_at_least` (its `/readyz` says ready, and for how long) — asked by a replica that
    /// cannot reach the database itself, to tell "only I am cut off" (stop work the others will
    /// take over) from "the database is down for everyone" (work on; nobody can take it). A peer
    /// ready again only since an outage ended is no evidence: it may simply have reconnected
    /// first. Each peer gets [`PEER_TIMEOUT`]; no answer is not a yes.
    pub async fn a_peer_is_ready(&self, for_at_least: Duration) -> bool {
        let peers = self.view(|v| v.peers.clone());
        let asks = peers.iter().map(|p| {
            let url = format!("{}/readyz", p.trim_end_matches('/'));
            let http = self.inner.http.clone();
            async move {
                let Ok(r) = http.get(url).send().await else {
                    return false;
                };
                if !r.status().is_success() {
                    return false;
                }
                let Ok(body) = r.json::<serde_json::Value>().await else {
                    return false;
                };
                body["healthy_ms"]
                    .as_u64()
                    .is_some_and(|ms| Duration::from_millis(ms) >= for_at_least)
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .any(|ready| ready)
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

    /// How long heartbeats have succeeded without a failure (none while they fail).
    pub fn healthy_for(&self) -> Option<Duration> {
        self.view(|v| v.healthy_since.map(|t| t.elapsed()))
    }

    /// How long since a heartbeat last succeeded (none before the first).
    pub fn beat_age(&self) -> Option<Duration> {
        self.view(|v| v.last_beat.map(|t| t.elapsed()))
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

    /// Writes one heartbeat and reads the live set; on failure, records why. Returns the
    /// database's time of the reading and every replica row, for the announcer to use without
    /// reading them again.
    pub async fn beat(
        &self,
        store: &Store,
    ) -> Result<(i64, Vec<lookout_store::cluster::Replica>), lookout_store::StoreError> {
        let outcome = tokio::time::timeout(HEARTBEAT * 2, async {
            lookout_store::cluster::heartbeat(
                store,
                &self.inner.name,
                &self.inner.version,
                -self.offset_ms(),
                self.inner.address.get().map(String::as_str),
            )
            .await?;
            let (now, all) = lookout_store::cluster::replicas(store).await?;
            let alive = all.iter().filter(|r| r.heartbeat_at >= now - LIVE_MS);
            let mut live: Vec<String> = alive.clone().map(|r| r.name.clone()).collect();
            live.sort();
            let peers: Vec<String> = alive
                .filter(|r| r.name != self.inner.name)
                .filter_map(|r| r.address.clone())
                .collect();
            let cursors = lookout_store::cursor::names(store).await?;
            Ok::<_, lookout_store::StoreError>((live, peers, cursors, (now, all)))
        })
        .await
        .unwrap_or_else(|_| Err(lookout_store::StoreError::TimedOut("the heartbeat")));
        let (beats, rows) = self.view(|v| match outcome {
            Ok((live, peers, cursors, rows)) => {
                v.peers = peers;
                let mine = assign(&live, &cursors)
                    .into_iter()
                    .zip(&cursors)
                    .filter(|(owner, _)| *owner == self.inner.name)
                    .map(|(_, c)| c.clone())
                    .collect();
                v.cursors = (mine, cursors);
                v.live = live;
                v.last_beat = Some(Instant::now());
                v.healthy_since.get_or_insert_with(Instant::now);
                v.last_error = None;
                v.beats += 1;
                Ok((v.beats, rows))
            }
            Err(e) => {
                v.healthy_since = None;
                v.ever_failed = true;
                v.last_error = Some(e.to_string());
                Err(e)
            }
        })?;
        // Bounded like the beat itself: the heartbeat loop must go on (and `/readyz` turn 503)
        // when the database stops answering right after a beat.
        if store.backend() == lookout_store::Backend::Postgres {
            let _ = tokio::time::timeout(HEARTBEAT, self.sample_clock(store)).await;
        }
        if beats % 600 == 1 {
            // Rows of replicas gone for an hour (their loss announced) are history.
            let forget = lookout_store::cluster::forget_gone(store, 3_600_000);
            let _ = tokio::time::timeout(HEARTBEAT * 2, forget).await;
        }
        Ok(rows)
    }

    /// Measures the database's clock against ours with a read (a write would include lock waits)
    /// and keeps the offset of the sample with the shortest round trip among the last 30. On
    /// SQLite the database's clock is this host's: the offset stays 0.
    async fn sample_clock(&self, store: &Store) {
        let sent = Instant::now();
        let local = now_ms();
        let Ok(db) = lookout_store::cluster::db_now(store).await else {
            return;
        };
        let rtt = i64::try_from(sent.elapsed().as_millis()).unwrap_or(i64::MAX);
        let offset = self.view(|v| {
            v.samples.push_back((rtt, db - (local + rtt / 2)));
            while v.samples.len() > 30 {
                v.samples.pop_front();
            }
            v.samples
                .iter()
                .min_by_key(|(rtt, _)| *rtt)
                .map_or(0, |s| s.1)
        });
        self.inner.offset_ms.store(offset, Ordering::Relaxed);
    }

    /// Whether this replica serves stream cursor `name`: the placement over the live replicas
    /// gives it here, or the cursor is new since the last beat (then any replica may start it).
    /// Through an outage, every cursor may be served here: nobody can take one anyway.
    pub fn serves_cursor(&self, name: &str) -> bool {
        self.view(|v| {
            v.last_beat.is_none_or(|t| t.elapsed() > READY_WITHIN)
                || v.cursors.0.iter().any(|c| c == name)
                || !v.cursors.1.iter().any(|c| c == name)
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
                Ok((now, rows)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(replica = self.name(), "Heartbeats written again.");
                    }
                    if self.settled() {
                        let announce = watch::announce(&store, self.name(), now, rows);
                        let _ = tokio::time::timeout(HEARTBEAT * 2, announce).await;
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
