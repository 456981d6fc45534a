//! Shard runners: the [`SHARDS`] shards are placed on the live replicas
//! ([`crate::cluster::placement`]); the replica holding a shard's lease keeps its monitors in a
//! timer heap and runs their checks.
//!
//! Why not one job row per check: at 10,000 monitors every 60 s that is 170 claims a second, each
//! a database write. A shard lease costs one renewal a second for all shards and still gives the
//! guarantee that matters: one replica checks a monitor at a time, and when it dies another takes
//! the shard over within seconds and runs at once the checks that fell due.
//!
//! The runner is the only writer of its monitors' state, so thresholds are applied in memory and
//! stored with each result in one group commit, guarded by the shard's fencing token. Writes run
//! beside the checks ([`super::pending`]) and reads are bounded ([`READ_WAIT`]): a database that
//! hangs rather than refuses delays what is stored, never the checks. A write that
//! fails is kept, in order, and retried until it commits: a monitor that went down while storage
//! was read-only or unreachable is recorded and announced once storage takes writes again, never
//! lost. The buffer is bounded ([`super::pending::MAX_PENDING`]): past it the oldest raw results are dropped,
//! never state changes or events. A write refused by the fence means another replica holds the
//! shard: the runner stops and drops what it buffered, and the new holder starts from the store.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::passive::{cron, heartbeat};
use super::pending::Pending;
use super::Windows;
use crate::cluster::placement::Work;
use lookout_store::events;
use lookout_store::uptime::{self as ustore, results, MonitorRow, MonitorState, SHARDS};
use lookout_store::{Store, StoreError, Write, WriteQueue};
use lookout_uptime::spec::LOCAL;
use lookout_uptime::state::{Health, Streaks};
use lookout_uptime::{Checker, Kind, MonitorSpec};

/// How long the runner waits for a read (its monitors, maintenance windows, a parent's state)
/// before going on without it: a hung database must not stop the checks.
const READ_WAIT: Duration = Duration::from_secs(1);
/// Checks that fell due while nobody held their shard run within this window on takeover,
/// spread by monitor so 10,000 of them do not fire in the same millisecond.
const CATCH_UP_SPREAD_MS: i64 = 2_000;
/// How often a cron monitor's check-ins are judged.
const CRON_TICK_MS: i64 = 5_000;
/// How often a runner looks for edited monitors and maintenance windows.
const RELOAD_MS: i64 = 2_000;
/// How old the shared copy of the maintenance windows may be.
const WINDOWS_TTL_MS: i64 = 1_000;
/// Cron runs without a `max_runtime` time out after this long (Sentry's default).
pub(super) const DEFAULT_MAX_RUNTIME_S: i64 = 30 * 60;

/// What the runners share.
pub struct UptimeContext {
    /// Storage.
    pub store: Store,
    /// The group-commit queue results go through.
    pub writes: WriteQueue,
    /// Network probes.
    pub checker: Arc<Checker>,
    /// Checks in flight at once on this replica.
    pub permits: Arc<Semaphore>,
    /// This replica in the cluster: the database's clock.
    pub cluster: crate::cluster::Cluster,
    /// Opens the credentials stored in specs.
    pub sealer: lookout_core::seal::Sealer,
    /// Maintenance windows, loaded once for all shards every [`WINDOWS_TTL_MS`].
    pub windows: tokio::sync::Mutex<(i64, Windows)>,
}

impl UptimeContext {
    /// The maintenance windows, at most [`WINDOWS_TTL_MS`] old (one query a second for all
    /// 16 shards instead of one per shard per reload).
    /// `fresh` skips the cache: a shard whose monitors changed reads the windows anew, since a
    /// window is often created just before the monitors it covers are edited or unpaused.
    async fn windows(&self, now: i64, fresh: bool) -> Windows {
        let mut cached = self.windows.lock().await;
        if fresh || now - cached.0 >= WINDOWS_TTL_MS {
            // On a failed read the last good windows stay: with none, a monitor in maintenance
            // would page as soon as storage took writes again.
            let load = tokio::time::timeout(READ_WAIT, Windows::try_load(&self.store));
            match load.await.unwrap_or_else(|_| Err(no_answer())) {
                Ok(w) => *cached = (now, w),
                Err(e) => {
                    tracing::debug!(error = %e, "Could not reload maintenance windows; keeping the last ones.");
                    cached.0 = now;
                }
            }
        }
        cached.1.clone()
    }
}

/// The shard a job id names (`uptime.shard.7` → 7).
pub fn shard_of(job_id: &str) -> Option<i64> {
    job_id
        .strip_prefix("uptime.shard.")?
        .parse()
        .ok()
        .filter(|s| (0..SHARDS).contains(s))
}

/// Why a result failed, which decides the event a down state raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Check,
    Missed,
    Failed,
}

/// A finished evaluation: monitor, when it was due, its results, and (cron) how far the
/// schedule has been judged.
type Evaluated = (i64, i64, Vec<Verdict>, Option<i64>);

/// One judged result, ready to be applied to the state machine.
#[derive(Debug)]
pub(super) struct Verdict {
    at: i64,
    ok: bool,
    pub(super) latency_us: Option<i64>,
    failure: Option<String>,
    pub(super) kind: Failure,
    cert_expires_at: Option<i64>,
    chain_valid: Option<bool>,
    /// Writes that belong with this result (cron bookkeeping).
    pub(super) writes: Vec<Write>,
    /// No local check ran (the monitor does not list `local`): only its locations' quorum is
    /// judged, and nothing is recorded as a result of the replicas.
    quorum_only: bool,
}

impl Verdict {
    pub(super) fn new(at: i64, ok: bool, failure: Option<String>) -> Verdict {
        Verdict {
            at,
            ok,
            latency_us: None,
            failure,
            kind: Failure::Check,
            cert_expires_at: None,
            chain_valid: None,
            writes: Vec::new(),
            quorum_only: false,
        }
    }
}

struct Slot {
    row: MonitorRow,
    spec: Arc<MonitorSpec>,
    state: MonitorState,
    streaks: Streaks,
    /// The first failed check of the current failure streak: when the failure started, for
    /// reports' time to detect (kept in memory; after a restart the streak restarts too).
    failing_since: Option<i64>,
    /// The failing locations of the regional degradation last announced (in memory).
    degraded: Option<Vec<String>>,
    due: i64,
    running: bool,
    /// A check was asked for while one ran: the next one is due as soon as it settles.
    asked: bool,
    generation: u64,
}

fn cadence_ms(spec: &MonitorSpec) -> i64 {
    match spec.kind {
        Kind::Cron => CRON_TICK_MS,
        _ => i64::from(spec.interval_seconds.max(1)) * 1000,
    }
}

/// A monitor's fixed offset within its interval, so 10,000 monitors on one interval spread
/// evenly instead of firing together after a restart.
fn phase(id: i64, every: i64) -> i64 {
    (id.wrapping_mul(2_654_435_761)).rem_euclid(every.max(1))
}

/// The first time after `now` on the monitor's phase.
fn next_on_phase(id: i64, every: i64, now: i64) -> i64 {
    let p = phase(id, every);
    let base = now - now.rem_euclid(every) + p;
    if base > now {
        base
    } else {
        base + every
    }
}

/// When a monitor taken over (at start or from another replica) is next due: on its cadence
/// after its last check, or — overdue — at once, spread over [`CATCH_UP_SPREAD_MS`]. (Overdue
/// checks used to wait for the next slot on the monitor's phase: 59–60 s gaps at a 30 s interval
/// after a takeover, measured.)
fn first_due(id: i64, state: &MonitorState, every: i64, now: i64) -> i64 {
    match state.last_check_at {
        None => now,
        Some(t) if t + every > now => t + every,
        Some(_) => now + phase(id, every.min(CATCH_UP_SPREAD_MS)),
    }
}

fn streaks_of(s: &MonitorState) -> Streaks {
    Streaks {
        health: Health::parse(&s.health),
        failures: u32::try_from(s.failures).unwrap_or(u32::MAX),
        successes: u32::try_from(s.successes).unwrap_or(u32::MAX),
    }
}

/// Runs shard `shard` until its work is stopped (handed back, lease lost, shutdown) or a write is
/// refused by the fence.
pub async fn run_shard(ctx: Arc<UptimeContext>, shard: i64, mut work: Work) {
    let mut slots: HashMap<i64, Slot> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(i64, i64, u64)>> = BinaryHeap::new();
    let mut version = (-1, -1, -1);
    let mut windows = Windows::default();
    let mut next_reload = 0;
    let mut inflight: JoinSet<Evaluated> = JoinSet::new();
    let mut out = Pending::new(&work);
    let mut loading: Option<tokio::task::JoinHandle<Loaded>> = None;
    tracing::debug!(shard, fence = work.fence, "Uptime shard taken.");
    loop {
        if *work.stop.borrow() || out.fenced {
            break;
        }
        let now = ctx.cluster.now_ms();
        // The reload reads in a task of its own, so a slow or hung database delays what the
        // runner knows of edits, never its checks. While heartbeats fail, storage is not
        // answering: no reload is tried; the monitors as loaded go on being checked.
        if now >= next_reload && loading.is_none() {
            if ctx.cluster.ready().is_ok() {
                loading = Some(tokio::spawn(load(ctx.clone(), shard, version, now)));
            }
            next_reload = now + RELOAD_MS;
        }
        out.start(&ctx);
        while let Some(&Reverse((due, id, generation))) = heap.peek() {
            if due > now {
                break;
            }
            heap.pop();
            let Some(slot) = slots.get_mut(&id) else {
                continue;
            };
            if slot.generation != generation || slot.running || slot.row.paused {
                continue;
            }
            slot.running = true;
            spawn_evaluation(&ctx, &mut inflight, slot, due);
        }
        let wake = heap.peek().map_or(i64::MAX, |r| r.0 .0).min(next_reload);
        let sleep = Duration::from_millis(u64::try_from((wake - now).clamp(1, 1000)).unwrap_or(1));
        tokio::select! {
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                let mut finished = vec![done];
                while let Some(more) = inflight.try_join_next() {
                    finished.push(more);
                }
                let writes = settle(&ctx, &mut slots, &mut heap, &windows, finished).await;
                out.push(writes);
                out.start(&ctx);
            }
            // Safe to unwrap: the branch runs only while a reload is in flight.
            loaded = async { loading.as_mut().expect("a reload in flight").await }, if loading.is_some() => {
                loading = None;
                if let Ok((w, monitors)) = loaded {
                    windows = w;
                    if let Some((v, rows)) = monitors {
                        reload(&mut slots, &mut heap, rows, ctx.cluster.now_ms(), &ctx.sealer);
                        version = v;
                    }
                }
            }
            // The write in flight answered: start the next one with what waited behind it.
            () = out.finished(), if out.flushing() => out.start(&ctx),
            () = tokio::time::sleep(sleep) => {}
            _ = work.stop.changed() => {}
        }
    }
    if let Some(l) = loading {
        l.abort();
    }
    if out.fenced {
        inflight.abort_all();
    }
    let mut finished = Vec::new();
    while let Some(done) = inflight.join_next().await {
        finished.push(done);
    }
    let writes = settle(&ctx, &mut slots, &mut heap, &windows, finished).await;
    out.push(writes);
    out.drain(&ctx).await;
    if !out.is_empty() && !out.fenced {
        tracing::warn!(shard, writes = out.len(), "Handing the shard back with results storage did not take; the next holder checks again.");
    }
    tracing::debug!(shard, "Uptime shard handed back.");
}

/// What a reload read: the maintenance windows, and the shard's monitors with their version
/// when the version moved.
type Loaded = (
    Windows,
    Option<((i64, i64, i64), Vec<(MonitorRow, MonitorState)>)>,
);

/// Reads what a reload needs, each read bounded by [`READ_WAIT`]; what could not be read is
/// left out (the windows then are the last good ones).
async fn load(ctx: Arc<UptimeContext>, shard: i64, version: (i64, i64, i64), now: i64) -> Loaded {
    let windows = ctx.windows(now, false).await;
    match bounded(ustore::shard_version(&ctx.store, shard)).await {
        Ok(v) if v != version => match bounded(ustore::shard_monitors(&ctx.store, shard)).await {
            Ok(rows) => (ctx.windows(now, true).await, Some((v, rows))),
            Err(e) => {
                tracing::warn!(shard, error = %e, "Could not load the shard's monitors.");
                (windows, None)
            }
        },
        Ok(_) => (windows, None),
        Err(e) => {
            tracing::debug!(shard, error = %e, "Could not read the shard's version.");
            (windows, None)
        }
    }
}

/// Brings the slots in line with the stored monitors: new ones are scheduled, edited ones take
/// their new definition (keeping their streaks), deleted ones go, and those whose
/// `check_requested_at` moved ("Check now", a heartbeat's ping) are due at once. Asking through
/// the store rather than checking in the request keeps this runner the only writer of the
/// monitor's state and streaks, whichever replica took the request.
fn reload(
    slots: &mut HashMap<i64, Slot>,
    heap: &mut BinaryHeap<Reverse<(i64, i64, u64)>>,
    rows: Vec<(MonitorRow, MonitorState)>,
    now: i64,
    sealer: &lookout_core::seal::Sealer,
) {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    for (row, state) in rows {
        seen.insert(row.id);
        let asked = |slot: &Slot| row.check_requested_at > slot.row.check_requested_at;
        if let Some(slot) = slots
            .get_mut(&row.id)
            .filter(|s| s.row.updated_at == row.updated_at)
        {
            if asked(slot) {
                slot.row.check_requested_at = row.check_requested_at;
                ask_now(slot, heap, now);
            }
            continue;
        }
        let mut spec: MonitorSpec = match serde_json::from_str(&row.spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(monitor = row.id, error = %e, "Stored monitor spec does not parse; not checked.");
                continue;
            }
        };
        if let Err(e) = spec.map_secrets(|v| sealer.open(v)) {
            tracing::warn!(monitor = row.id, error = %e, "Monitor credentials do not open; not checked.");
            continue;
        }
        let every = cadence_ms(&spec);
        match slots.get_mut(&row.id) {
            Some(slot) => {
                let interval_changed = cadence_ms(&slot.spec) != every;
                let asked = asked(slot);
                slot.generation += 1;
                slot.spec = Arc::new(spec);
                slot.row = row;
                if interval_changed || asked || slot.due > now + every {
                    slot.due = now;
                }
                slot.asked |= asked && slot.running;
                // A running check schedules the next one when it settles.
                if !slot.running {
                    heap.push(Reverse((slot.due, slot.row.id, slot.generation)));
                }
            }
            None => {
                // A request made while no runner held the shard is honoured on takeover.
                let due = if row.check_requested_at > state.last_check_at {
                    now
                } else {
                    first_due(row.id, &state, every, now)
                };
                let slot = Slot {
                    streaks: streaks_of(&state),
                    failing_since: None,
                    degraded: None,
                    state,
                    spec: Arc::new(spec),
                    due,
                    running: false,
                    asked: false,
                    generation: 0,
                    row,
                };
                heap.push(Reverse((due, slot.row.id, 0)));
                slots.insert(slot.row.id, slot);
            }
        }
    }
    slots.retain(|id, _| seen.contains(id));
}

/// Makes a slot due now (or right after the check in flight).
fn ask_now(slot: &mut Slot, heap: &mut BinaryHeap<Reverse<(i64, i64, u64)>>, now: i64) {
    if slot.running {
        slot.asked = true;
        return;
    }
    slot.generation += 1;
    slot.due = now;
    heap.push(Reverse((now, slot.row.id, slot.generation)));
}

fn spawn_evaluation(
    ctx: &Arc<UptimeContext>,
    inflight: &mut JoinSet<Evaluated>,
    slot: &Slot,
    due: i64,
) {
    let ctx = ctx.clone();
    let spec = slot.spec.clone();
    let id = slot.row.id;
    let created_at = slot.row.created_at;
    let cron_slot = slot.state.cron_slot;
    inflight.spawn(async move {
        let Ok(_permit) = ctx.permits.clone().acquire_owned().await else {
            return (id, due, Vec::new(), None);
        };
        let start = ctx.cluster.now_ms();
        metrics::histogram!("lookout_uptime_schedule_lag_ms").record((start - due).max(0) as f64);
        let (verdicts, judged) = match spec.kind {
            Kind::Heartbeat => (heartbeat(&ctx.store, id, &spec, created_at, start).await, None),
            Kind::Cron => cron(&ctx.store, id, &spec, cron_slot.unwrap_or(created_at), start).await,
            // Checked from agents only: the replicas do not probe it (their results would feed
            // uptime and the last failure with a vantage point nobody asked for); the slot's
            // tick re-judges the locations' quorum.
            _ if !spec.location_names().contains(&LOCAL) => {
                let mut v = Verdict::new(start, true, None);
                v.quorum_only = true;
                (vec![v], None)
            }
            _ => {
                let o = ctx.checker.check(&spec).await;
                let mut v = Verdict::new(start, o.ok, o.failure);
                v.latency_us = Some((o.latency_ms * 1000.0) as i64);
                v.cert_expires_at = o.cert_expires_at;
                v.chain_valid = o.chain_valid;
                (vec![v], None)
            }
        };
        for v in verdicts.iter().filter(|v| !v.quorum_only) {
            let result = if v.ok { "up" } else { "down" };
            metrics::counter!("lookout_uptime_checks_total", "type" => spec.kind.as_str(), "result" => result)
                .increment(1);
        }
        (id, due, verdicts, judged)
    });
}

/// Applies finished evaluations: state machine, results, changes, events; returns the writes
/// that record them, which the caller commits (and keeps retrying) before anything else of the
/// shard's is written.
async fn settle(
    ctx: &UptimeContext,
    slots: &mut HashMap<i64, Slot>,
    heap: &mut BinaryHeap<Reverse<(i64, i64, u64)>>,
    windows: &Windows,
    finished: Vec<Result<Evaluated, tokio::task::JoinError>>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    let now = ctx.cluster.now_ms();
    for done in finished {
        let Ok((id, due, verdicts, judged)) = done else {
            continue;
        };
        let Some(slot) = slots.get_mut(&id) else {
            continue;
        };
        let changed = !verdicts.is_empty() || judged.is_some();
        for v in verdicts {
            apply(ctx, slot, v, windows, &mut writes).await;
        }
        if let Some(j) = judged {
            slot.state.cron_slot = Some(j);
        }
        if changed {
            writes.push(ustore::state_write(id, &slot.state));
        }
        slot.running = false;
        let every = cadence_ms(&slot.spec);
        slot.due = if std::mem::take(&mut slot.asked) {
            now
        } else if due + every > now {
            due + every
        } else {
            // Late by more than an interval (the runner was held up): back on the monitor's
            // phase, but not sooner than half an interval from now, so a late probe is not
            // followed by another a moment later.
            next_on_phase(id, every, now + every / 2)
        };
        heap.push(Reverse((slot.due, id, slot.generation)));
    }
    writes
}

async fn apply(
    ctx: &UptimeContext,
    slot: &mut Slot,
    v: Verdict,
    windows: &Windows,
    out: &mut Vec<Write>,
) {
    let id = slot.row.id;
    let maintenance = windows.covers(id, v.at);
    let spec = slot.spec.clone();
    let mut failing_since = slot.failing_since;
    let mut change = None;
    if !v.quorum_only {
        out.extend(v.writes.iter().cloned());
        out.push(results::result_write(
            id,
            &results::ResultRow {
                at: v.at,
                ok: v.ok,
                maintenance,
                latency_us: v.latency_us,
                message: v.failure.clone(),
            },
        ));
        let s = &mut slot.state;
        s.last_check_at = Some(v.at);
        s.last_ok = Some(v.ok);
        s.last_latency_us = v.latency_us;
        if !v.ok {
            s.last_failure = v.failure.clone();
            s.last_failure_at = Some(v.at);
        }
        failing_since = if v.ok {
            None
        } else {
            Some(slot.failing_since.unwrap_or(v.at))
        };
        slot.failing_since = failing_since;
        change = slot
            .streaks
            .record(v.ok, spec.failure_threshold(), spec.success_threshold());
        s.failures = i64::from(slot.streaks.failures);
        s.successes = i64::from(slot.streaks.successes);
    }
    let s = &mut slot.state;
    let from = s.health.clone();
    let mut reason = v.failure.clone().unwrap_or_else(|| "check passed".into());
    let quorum_only = v.quorum_only;
    // Checked from other locations too: their quorum decides (see super::quorum).
    let local = slot.streaks.health;
    match bounded(super::quorum::verdict(
        &ctx.store,
        id,
        &spec,
        local,
        v.failure.as_deref(),
        ctx.cluster.now_ms(),
    ))
    .await
    {
        Ok(None) => {}
        Ok(Some(q)) if q.active == 0 => {
            // No location counts (all offline, revoked or gone): nobody can tell, so the
            // monitor is `unknown`, never down, and nothing is paged.
            change = None;
            super::quorum::mark_unknown(&mut slot.state, id, v.at, out);
        }
        Ok(Some(q)) => {
            change = (q.health.as_str() != from).then_some(q.health);
            reason = q.reason(&reason);
            if quorum_only {
                failing_since =
                    (q.health == Health::Down).then(|| slot.failing_since.unwrap_or(v.at));
                slot.failing_since = failing_since;
            }
            degradation(slot, &q, v.at, out);
        }
        Err(e) => {
            tracing::debug!(monitor = id, error = %e, "Locations unread; the state waits for the next check.");
            change = None;
        }
    }
    let payload = |reason: &str| {
        json!({
            "monitor_id": id,
            "name": slot.row.name,
            "type": spec.kind.as_str(),
            // Redacted: this payload reaches incidents, notifications and webhooks.
            "target": spec.target(),
            "reason": reason,
            "at": v.at,
            "failing_since": failing_since,
        })
    };
    let project = slot.row.project_id;
    match change {
        // Down before its locations went silent, and still paged: the open page goes on.
        Some(Health::Down) if from == super::quorum::UNKNOWN && slot.state.alerted => {
            slot.state.health = "down".into();
            slot.state.changed_at = Some(v.at);
            out.push(ustore::change_write(id, v.at, &from, "down", &reason, true));
        }
        Some(Health::Down) => {
            let suppressed = suppression(ctx, &slot.row, maintenance).await;
            let s = &mut slot.state;
            s.health = "down".into();
            s.changed_at = Some(v.at);
            s.alerted = suppressed.is_none();
            let why = match &suppressed {
                Some(x) => format!("{reason} (not alerted: {x})"),
                None => reason.clone(),
            };
            out.push(ustore::change_write(
                id, v.at, &from, "down", &why, s.alerted,
            ));
            if s.alerted {
                out.push(events::publish(
                    down_event(&spec, v.kind),
                    project,
                    Some(id.to_string()),
                    &payload(&reason),
                ));
            }
        }
        Some(Health::Up) => {
            let s = &mut slot.state;
            s.health = "up".into();
            s.changed_at = Some(v.at);
            out.push(ustore::change_write(
                id, v.at, &from, "up", &reason, s.alerted,
            ));
            if s.alerted {
                out.push(events::publish(
                    "monitor.up",
                    project,
                    Some(id.to_string()),
                    &payload(&reason),
                ));
            }
            s.alerted = false;
        }
        Some(Health::Pending) | None => {
            // Down but not yet announced (maintenance ended, or the parent recovered): announce now.
            if slot.state.health == "down"
                && !slot.state.alerted
                && !v.ok
                && suppression(ctx, &slot.row, maintenance).await.is_none()
            {
                slot.state.alerted = true;
                out.push(events::publish(
                    down_event(&spec, v.kind),
                    project,
                    Some(id.to_string()),
                    &payload(&reason),
                ));
            }
        }
    }
    if v.chain_valid.is_some() {
        slot.state.cert_chain_valid = v.chain_valid;
    }
    if let Some(exp) = v.cert_expires_at {
        let s = &mut slot.state;
        s.cert_expires_at = Some(exp);
        let warn_ms = i64::from(spec.expiry_warning_days()) * 86_400_000;
        if exp - v.at < warn_ms {
            if !s.cert_warned && !maintenance {
                s.cert_warned = true;
                let days = (exp - v.at).div_euclid(86_400_000);
                let mut p = payload(&format!("certificate expires in {days} days"));
                p["expires_at"] = json!(exp);
                p["days_left"] = json!(days);
                out.push(events::publish(
                    "monitor.certificate_expiring",
                    project,
                    Some(id.to_string()),
                    &p,
                ));
            }
        } else {
            s.cert_warned = false;
        }
    }
}

/// Records a regional degradation (failing from fewer locations than the rule needs) once per
/// set of failing locations, as `monitor.degraded`: shown, not paged.
fn degradation(slot: &mut Slot, q: &super::quorum::Quorum, at: i64, out: &mut Vec<Write>) {
    let now = q.degraded().then(|| q.failing.clone());
    if now.is_some() && now != slot.degraded {
        let payload = json!({"monitor_id": slot.row.id, "name": slot.row.name, "at": at,
            "failing_locations": q.failing, "active_locations": q.active, "needed": q.needed});
        let subject = Some(slot.row.id.to_string());
        out.push(events::publish(
            "monitor.degraded",
            slot.row.project_id,
            subject,
            &payload,
        ));
    }
    slot.degraded = now;
}

fn down_event(spec: &MonitorSpec, kind: Failure) -> &'static str {
    match (spec.kind, kind) {
        (Kind::Cron, Failure::Missed) => "cron.missed",
        (Kind::Cron, _) => "cron.failed",
        _ => "monitor.down",
    }
}

/// Why a down monitor must not alert now: a maintenance window, or its parent being down.
async fn suppression(ctx: &UptimeContext, row: &MonitorRow, maintenance: bool) -> Option<String> {
    if maintenance {
        return Some("maintenance window".into());
    }
    let parent = row.parent_id?;
    match bounded(ustore::health_of(&ctx.store, parent)).await {
        Ok(Some(h)) if h == "down" => Some(format!("parent monitor {parent} is down")),
        Ok(_) => None,
        // Unknown for now: held back, and announced by a later check once the parent reads up.
        Err(_) => Some(format!("parent monitor {parent}'s state could not be read")),
    }
}

/// The error of a read that got no answer within [`READ_WAIT`].
fn no_answer() -> StoreError {
    StoreError::Db(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the database",
    )))
}

/// `read`, or a timed-out error when it takes longer than [`READ_WAIT`].
async fn bounded<T>(
    read: impl std::future::Future<Output = lookout_store::Result<T>>,
) -> lookout_store::Result<T> {
    tokio::time::timeout(READ_WAIT, read)
        .await
        .unwrap_or_else(|_| Err(no_answer()))
}

/// The uptime shards placed on the live replicas, each run under its fenced lease.
pub fn placement(
    ctx: Arc<UptimeContext>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let keys: Vec<String> = (0..SHARDS).map(|k| format!("uptime.shard.{k}")).collect();
    let cluster = ctx.cluster.clone();
    let store = ctx.store.clone();
    let start: crate::cluster::placement::Start = Arc::new(move |work: Work| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match shard_of(&work.name) {
                Some(shard) => run_shard(ctx, shard, work).await,
                None => tracing::warn!(lease = %work.name, "Not an uptime shard."),
            }
        })
    });
    tokio::spawn(crate::cluster::placement::run(
        cluster, store, keys, start, stop,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_monitors_over_the_interval() {
        let mut hits = [0u32; 60];
        for id in 1..=6000 {
            let p = phase(id, 60_000) / 1000;
            hits[usize::try_from(p).unwrap()] += 1;
        }
        // Every second of the minute gets some monitors, none gets a pile.
        assert!(hits.iter().all(|h| (50..=150).contains(h)), "{hits:?}");
        let n = next_on_phase(7, 60_000, 1_000_000);
        assert!(n > 1_000_000 && n <= 1_060_000);
        assert_eq!(phase(7, 60_000), n.rem_euclid(60_000));
    }

    #[test]
    fn shard_job_ids_parse() {
        assert_eq!(shard_of("uptime.shard.3"), Some(3));
        assert_eq!(shard_of("uptime.shard.99"), None);
        assert_eq!(shard_of("errors.retention"), None);
    }
}
