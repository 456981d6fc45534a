//! The rule evaluator: [`SHARDS`] leases (`rules.shard.N`) placed on the live replicas
//! ([`crate::cluster::placement`]); the replica holding a shard evaluates the groups hashed to
//! it, so each group is evaluated by one replica at a time.
//!
//! **When.** A group is evaluated at aligned times, as Prometheus aligns them: every `interval`,
//! at a fixed offset within the interval derived from the group's identity, with the evaluation
//! timestamp being that slot (not the wall-clock moment it ran). A slot missed while nobody held
//! the shard is not caught up one by one: the newest is evaluated once, as Prometheus skips
//! missed iterations.
//!
//! **Writes.** Every write of an evaluation is a transaction that starts with the shard lease's
//! fencing check ([`rstore::guard_in`]): a recording rule's samples are committed before the
//! next rule runs (so a later rule of the group sees them, as in Prometheus); the group's state,
//! its `ALERTS`/`ALERTS_FOR_STATE` samples and the incidents its alerts open or resolve commit
//! together at the end. A replica whose lease moved on can therefore write nothing, a restart or
//! failover resumes `for` and `keep_firing_for` from the stored state, and an incident is opened
//! once per alert.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_oncall::inbound::{Action, Signal};
use lookout_promql::Value;
use lookout_store::prom::rules as rstore;
use lookout_store::{Store, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::eval::{self, Alert, AlertRule, AlertState, GroupState, Labels, RuleState};
use super::parse::{Group, Kind, Rule};
use super::template;
use crate::cluster::placement::Work;
use crate::prometheus::promql::{evaluate_on, Pool, When};

/// Leases the groups are spread over.
pub const SHARDS: u64 = 8;
/// How often a runner looks for groups that are due (and for edited rule files).
const TICK: Duration = Duration::from_millis(500);
/// How often the rule files are read again.
const RELOAD_MS: i64 = 2_000;

/// The default evaluation interval: `LOOKOUT_RULES_EVALUATION_INTERVAL` (a duration such as
/// `30s`; Prometheus's `global.evaluation_interval`), else 1m.
pub fn default_interval_ms() -> i64 {
    std::env::var("LOOKOUT_RULES_EVALUATION_INTERVAL")
        .ok()
        .and_then(|v| lookout_promql::parse_duration_ms(&v))
        .filter(|ms| (super::parse::MIN_INTERVAL_MS..=super::parse::MAX_INTERVAL_MS).contains(ms))
        .unwrap_or(60_000)
}

/// What the runners share.
pub struct RulesContext {
    /// Storage.
    pub store: Store,
    /// Alerting's wake-up (incidents opened notify at once).
    pub alerting: crate::alerting::Alerting,
    /// The database's clock.
    pub cluster: crate::cluster::Cluster,
    /// The server's public URL: alert templates' `$externalURL`.
    pub external_url: String,
}

/// A group as scheduled: where it comes from and what it holds.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Project.
    pub project: i64,
    /// Rule file name.
    pub file: String,
    /// The version of the file read (its `updated_at`): writes are skipped once it changed.
    pub version: i64,
    /// The group.
    pub group: Group,
}

impl Scheduled {
    /// The identity hashed for the shard and the offset.
    fn key(&self) -> String {
        format!("{}\u{0}{}\u{0}{}", self.project, self.file, self.group.name)
    }

    fn hash(&self) -> u64 {
        let d = Sha256::digest(self.key().as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_be_bytes(b)
    }

    /// Its shard.
    pub fn shard(&self) -> u64 {
        self.hash() % SHARDS
    }

    /// Its interval, ms.
    pub fn interval_ms(&self) -> i64 {
        self.group.interval_ms.unwrap_or_else(default_interval_ms)
    }

    /// The newest evaluation slot at or before `now`.
    pub fn slot(&self, now: i64) -> i64 {
        let interval = self.interval_ms();
        let offset = (self.hash() % interval.unsigned_abs()) as i64;
        now - (now - offset).rem_euclid(interval)
    }
}

/// Every group of every stored rule file (a file that no longer parses is skipped with a log
/// line; the API and the config reconciler refuse such files before storing them).
pub async fn scheduled(store: &Store) -> Result<Vec<Scheduled>, StoreError> {
    let mut out = Vec::new();
    for f in rstore::all_files(store).await? {
        match super::parse::parse(&f.content) {
            Ok(parsed) => out.extend(parsed.groups.into_iter().map(|group| Scheduled {
                project: f.project_id,
                file: f.name.clone(),
                version: f.updated_at,
                group,
            })),
            Err(e) => {
                tracing::warn!(project = f.project_id, file = %f.name, errors = ?e, "Stored rule file does not parse; not evaluated.")
            }
        }
    }
    Ok(out)
}

/// A rule's identity across reloads.
pub fn rule_key(r: &Rule) -> String {
    let kind = match &r.kind {
        Kind::Record(_) => "record",
        Kind::Alert { .. } => "alert",
    };
    let text = format!("{kind}\u{0}{}\u{0}{}\u{0}{:?}", r.name(), r.expr, r.labels);
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

/// The keys of a group's rules, in order: [`rule_key`], and for a rule identical to an earlier
/// one of the group (differing only in `for`, `keep_firing_for` or annotations) the same with
/// `-N` for its N-th repeat, so duplicates keep separate state, matched in order across
/// reloads as Prometheus matches them.
pub fn rule_keys(group: &Group) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    group
        .rules
        .iter()
        .map(|r| {
            let key = rule_key(r);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                key
            } else {
                format!("{key}-{}", *n - 1)
            }
        })
        .collect()
}

/// Longest a group's evaluation may take, ms, whatever its interval: a shard evaluates its
/// groups one after another, so a slow group must not hold the others back for long.
pub const MAX_GROUP_BUDGET_MS: u64 = 30_000;

/// A group's evaluation budget: its interval (it must not overrun its next slot), and at most
/// [`MAX_GROUP_BUDGET_MS`].
pub fn group_budget_ms(interval_ms: i64) -> u64 {
    interval_ms.unsigned_abs().min(MAX_GROUP_BUDGET_MS)
}

/// The fencing of one shard's writes.
struct Fence {
    lease: String,
    token: i64,
    seq: i64,
}

/// Why an evaluation stopped.
enum Stop {
    /// Another replica holds the shard now.
    Fenced,
    /// Storage failed; try again at the next tick.
    Store(StoreError),
    /// The store refused the samples (the project is at its series limit, or a hash collides):
    /// the rule fails with this message, and the group goes on without those samples.
    Refused(String),
    /// The rule file was edited or deleted while the group was evaluated: nothing was stored,
    /// and the files are read again.
    Stale,
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Fenced => Stop::Fenced,
            e => Stop::Store(e),
        }
    }
}

/// What one fenced transaction writes.
#[derive(Default)]
struct Commit {
    samples: Vec<(Labels, i64, f64)>,
    state: Option<rstore::GroupStateRow>,
    signals: Vec<Signal>,
}

/// Commits `c` for `project` under the fence: the lease check first, then samples, state and
/// incidents. A failure whose outcome is unknown is resolved with `batch_written`.
async fn commit(
    ctx: &RulesContext,
    fence: &mut Fence,
    g: &Scheduled,
    c: Commit,
) -> Result<(), Stop> {
    let project = g.project;
    if c.samples.is_empty() && c.state.is_none() && c.signals.is_empty() {
        return Ok(());
    }
    let labels: Vec<Labels> = c.samples.iter().map(|(l, _, _)| l.clone()).collect();
    let ids = rstore::series_ids(
        &ctx.store,
        crate::prometheus::write::max_series(),
        project,
        &labels,
    )
    .await
    .map_err(|e| match e {
        lookout_store::prom::IngestError::Store(s) => Stop::from(s),
        other => Stop::Refused(other.to_string()),
    })?;
    let samples: Vec<(i64, i64, f64)> = ids
        .iter()
        .zip(&c.samples)
        .map(|(id, (_, t, v))| (*id, *t, *v))
        .collect();
    let seq = fence.seq + 1;
    let origin = if c.signals.is_empty() {
        None
    } else {
        Some(origin(&ctx.store, project).await?)
    };
    let now = crate::alerting::db_now(&ctx.store).await;
    let result = async {
        let _gate = ctx.store.write_gate().await;
        let mut tx = ctx.store.begin_write().await?;
        rstore::guard_in(&mut tx, &fence.lease, fence.token, seq).await?;
        // The file row is locked from here: an edit or delete waits for this write, or this
        // write finds the file changed and stores nothing (no state written back for a
        // deleted group, no incident opened by a rule that no longer exists).
        if !rstore::file_unchanged_in(&mut tx, project, &g.file, g.version).await? {
            return Ok(false);
        }
        rstore::insert_samples_in(&mut tx, project, &samples, now).await?;
        if let Some(s) = &c.state {
            rstore::save_state_in(&mut tx, s).await?;
        }
        if let Some(origin) = &origin {
            for s in &c.signals {
                crate::alerting::engine::apply(&mut tx, origin, s, now).await?;
            }
        }
        tx.commit().await?;
        Ok::<bool, StoreError>(true)
    }
    .await;
    match result {
        Ok(false) => Err(Stop::Stale),
        Ok(true) => {
            fence.seq = seq;
            if !c.signals.is_empty() {
                ctx.alerting.wake();
            }
            Ok(())
        }
        Err(StoreError::Fenced) => Err(Stop::Fenced),
        Err(e) => {
            match lookout_store::cluster::batch_written(&ctx.store, &fence.lease, fence.token, seq)
                .await
            {
                Ok(Some(true)) => {
                    fence.seq = seq;
                    Ok(())
                }
                Ok(None) => Err(Stop::Fenced),
                _ => Err(Stop::Store(e)),
            }
        }
    }
}

/// Most evaluations of an alerting rule's templates in one group evaluation: the first finds the
/// `query` calls, the next have their results (at most [`template::MAX_QUERIES`] in all).
const TEMPLATE_QUERY_PASSES: usize = 3;

/// The query results as (labels, value) pairs: a vector's samples, or a scalar as one
/// element without labels (as Prometheus records a scalar).
fn as_vector(v: Value) -> Result<Vec<(Labels, f64)>, String> {
    match v {
        Value::Vector(s) => Ok(s.into_iter().map(|s| (s.labels, s.v)).collect()),
        Value::Scalar { v, .. } => Ok(vec![(Vec::new(), v)]),
        other => Err(format!(
            "rule result is not a vector or scalar: {}",
            other.result_type()
        )),
    }
}

/// Evaluates `g` at slot `t` and stores what it produced.
async fn evaluate_group(
    ctx: &RulesContext,
    fence: &mut Fence,
    g: &Scheduled,
    t: i64,
) -> Result<(), Stop> {
    let started = Instant::now();
    // As Prometheus: queries, recorded samples, stale markers and `ALERTS` are at the slot less
    // the group's query offset; alert state (active since, `for`) keeps the slot's own time.
    let qt = t - g.group.query_offset_ms;
    let prev_row = rstore::state(&ctx.store, g.project, &g.file, &g.group.name).await?;
    let mut prev: GroupState = prev_row
        .as_ref()
        .and_then(|r| serde_json::from_str(&r.state).ok())
        .unwrap_or_default();
    if let Some(r) = &prev_row {
        eval::forget_stale_pending(&mut prev, r.evaluated_at, t);
    }
    let prev_rules: HashMap<&str, &RuleState> =
        prev.rules.iter().map(|r| (r.key.as_str(), r)).collect();
    let deadline = started + Duration::from_millis(group_budget_ms(g.interval_ms()));
    let max_samples = crate::prometheus::promql::max_samples_setting();
    let mut rules = Vec::with_capacity(g.group.rules.len());
    let mut last = Commit::default();
    // What the group's alerts may still hold (labels and annotations, bytes).
    let mut alert_budget = eval::MAX_GROUP_ALERT_BYTES;
    for (rule, key) in g.group.rules.iter().zip(rule_keys(&g.group)) {
        let before = prev_rules.get(key.as_str()).copied();
        let rule_started = Instant::now();
        let left = deadline.saturating_duration_since(Instant::now());
        let result = if left.is_zero() {
            Err("group evaluation deadline passed before this rule ran".to_string())
        } else {
            evaluate_on(
                &ctx.store,
                max_samples,
                g.project,
                &rule.expr,
                When::Instant(qt),
                left,
                Pool::Rules,
            )
            .await
            .map_err(|e| e.message())
            .and_then(as_vector)
        };
        let mut state = RuleState {
            key,
            health: "ok".into(),
            evaluated_at: t,
            ..RuleState::default()
        };
        match &rule.kind {
            Kind::Record(name) => {
                let recorded =
                    result.and_then(|r| eval::record(name, &rule.labels, r, g.group.limit));
                let mut now = Commit::default();
                match recorded {
                    Ok(series) => {
                        // Series recorded last time and not now are marked stale.
                        if let Some(b) = before {
                            for l in &b.series {
                                if !series.iter().any(|(s, _)| s == l) {
                                    now.samples.push((
                                        l.clone(),
                                        qt,
                                        f64::from_bits(lookout_promql::STALE_NAN_BITS),
                                    ));
                                }
                            }
                        }
                        state.series = series.iter().map(|(l, _)| l.clone()).collect();
                        now.samples
                            .extend(series.into_iter().map(|(l, v)| (l, qt, v)));
                    }
                    Err(e) => {
                        state.health = "err".into();
                        state.last_error = Some(e);
                        state.series = before.map(|b| b.series.clone()).unwrap_or_default();
                    }
                }
                // Committed now, so the group's later rules read it at this same timestamp.
                match commit(ctx, fence, g, now).await {
                    Err(Stop::Refused(e)) => {
                        state.health = "err".into();
                        state.last_error = Some(e);
                    }
                    other => other?,
                }
            }
            Kind::Alert {
                name,
                for_ms,
                keep_firing_for_ms,
                annotations,
            } => {
                let prev_alerts: &[Alert] = before.map(|b| b.alerts.as_slice()).unwrap_or(&[]);
                match result {
                    Ok(results) => {
                        // The queries the templates call (`query`) are run between passes: a
                        // pass lists those it lacks, the next has their results. A query built
                        // from another's result needs one more pass; past the last, the
                        // templates that still lack one show the expansion error.
                        let mut queries = template::Queries::new();
                        let mut passes = 1;
                        let (stepped, error) = loop {
                            let spec = AlertRule {
                                name,
                                for_ms: *for_ms,
                                keep_firing_for_ms: *keep_firing_for_ms,
                                labels: &rule.labels,
                                annotations,
                                external_url: &ctx.external_url,
                                queries: Some(&queries),
                            };
                            let (stepped, error) = eval::step(
                                &spec,
                                prev_alerts,
                                results.clone(),
                                t,
                                g.group.limit,
                                alert_budget,
                            );
                            if stepped.queries.is_empty() || passes >= TEMPLATE_QUERY_PASSES {
                                if !stepped.queries.is_empty() {
                                    tracing::warn!(project = g.project, group = %g.group.name, rule = %rule.name(), queries = ?stepped.queries, "Alert templates still lack query results after the last pass.");
                                }
                                break (stepped, error);
                            }
                            passes += 1;
                            for q in stepped.queries {
                                let left = deadline.saturating_duration_since(Instant::now());
                                let r = if left.is_zero() {
                                    Err("group evaluation deadline passed".to_string())
                                } else {
                                    // At the evaluation time, as Prometheus's templates query.
                                    evaluate_on(
                                        &ctx.store,
                                        max_samples,
                                        g.project,
                                        &q,
                                        When::Instant(t),
                                        left,
                                        Pool::Rules,
                                    )
                                    .await
                                    .map_err(|e| e.message())
                                    .and_then(as_vector)
                                };
                                queries.insert(q, r);
                            }
                        };
                        alert_budget = alert_budget.saturating_sub(
                            stepped.active.iter().map(eval::alert_bytes).sum::<usize>(),
                        );
                        if let Some(e) = error {
                            state.health = "err".into();
                            state.last_error = Some(e);
                        }
                        alerts_series(&mut last.samples, prev_alerts, &stepped.active, qt);
                        for a in &stepped.fired {
                            last.signals.push(signal(a, Action::Trigger)?);
                        }
                        for a in &stepped.resolved {
                            last.signals.push(signal(a, Action::Resolve)?);
                        }
                        state.alerts = stepped.active;
                    }
                    Err(e) => {
                        // As Prometheus: a failed query changes no alert.
                        state.health = "err".into();
                        state.last_error = Some(e);
                        state.alerts = prev_alerts.to_vec();
                    }
                }
            }
        }
        if let Some(e) = &state.last_error {
            tracing::info!(project = g.project, group = %g.group.name, rule = %rule.name(), error = %e, "Rule evaluation failed.");
        }
        state.duration_ms = rule_started.elapsed().as_millis() as i64;
        rules.push(state);
    }
    // A rule that was edited or removed starts afresh (as in Prometheus): the alerts its old
    // version was firing are resolved, as Alertmanager resolves alerts Prometheus stops sending,
    // rather than leaving their incidents open for good.
    for old in &prev.rules {
        if rules.iter().any(|r| r.key == old.key) {
            continue;
        }
        alerts_series(&mut last.samples, &old.alerts, &[], qt);
        for a in old.alerts.iter().filter(|a| a.state == AlertState::Firing) {
            last.signals.push(signal(a, Action::Resolve)?);
        }
    }
    let group_state = GroupState {
        duration_ms: started.elapsed().as_millis() as i64,
        rules,
    };
    last.state = Some(rstore::GroupStateRow {
        project_id: g.project,
        file: g.file.clone(),
        group_name: g.group.name.clone(),
        evaluated_at: t,
        state: serde_json::to_string(&group_state)
            .map_err(|e| Stop::Store(StoreError::Corrupt(e.to_string())))?,
    });
    let signals = last.signals.clone();
    let state = last.state.clone();
    match commit(ctx, fence, g, last).await {
        // `ALERTS` refused: the alert state and incidents are stored without it.
        Err(Stop::Refused(e)) => {
            tracing::warn!(project = g.project, group = %g.group.name, error = %e, "ALERTS series not written.");
            let retry = Commit {
                samples: Vec::new(),
                state,
                signals,
            };
            commit(ctx, fence, g, retry).await
        }
        other => other,
    }
}

/// `ALERTS{alertstate=…}` = 1 and `ALERTS_FOR_STATE` = active since (s) for each active
/// alert; a stale marker for each `ALERTS` series that went away (a pending alert that fired
/// or cleared), as Prometheus writes them.
fn alerts_series(out: &mut Vec<(Labels, i64, f64)>, prev: &[Alert], now: &[Alert], t: i64) {
    let with = |a: &Alert, name: &str, state: Option<AlertState>| -> Labels {
        let mut m: BTreeMap<String, String> = a.labels.iter().cloned().collect();
        m.insert("__name__".into(), name.into());
        if let Some(s) = state {
            m.insert("alertstate".into(), s.as_str().into());
        }
        m.into_iter().collect()
    };
    let stale = f64::from_bits(lookout_promql::STALE_NAN_BITS);
    for a in now {
        out.push((with(a, "ALERTS", Some(a.state)), t, 1.0));
        out.push((
            with(a, "ALERTS_FOR_STATE", None),
            t,
            a.active_at as f64 / 1000.0,
        ));
    }
    for p in prev {
        if !now
            .iter()
            .any(|a| a.labels == p.labels && a.state == p.state)
        {
            out.push((with(p, "ALERTS", Some(p.state)), t, stale));
        }
        if !now.iter().any(|a| a.labels == p.labels) {
            out.push((with(p, "ALERTS_FOR_STATE", None), t, stale));
        }
    }
}

/// Where the incidents of `project`'s rules come from (their dedup keys are unique in it).
pub async fn origin(
    store: &Store,
    project: i64,
) -> Result<crate::alerting::engine::Origin, StoreError> {
    let p = lookout_store::tenancy::get_project(store, project).await?;
    Ok(crate::alerting::engine::Origin {
        org_id: p.org_id,
        scope: format!("rules:{project}"),
        policy_id: None,
        integration_id: None,
        escalation_policy_id: None,
        runbook_id: None,
        service: None,
        urgency: None,
        actor: "prometheus rules".into(),
        // A rule sends a trigger only when its alert starts firing (never again while it
        // fires), so a repeat would be a second alert: counted, and visible as alert_count.
        count_repeats: true,
        signal_ref: None,
    })
}

/// [`signal`] for callers outside an evaluation; `None` only if the alert cannot be expressed
/// (never for a stored alert).
pub fn signal_of(a: &Alert, action: Action) -> Option<Signal> {
    signal(a, action).ok()
}

/// The signal an alert sends: built through the Alertmanager webhook parser, so an incident
/// from a rule reads exactly as one from Alertmanager (title `alertname: summary`, severity
/// from the `severity` label, labels and annotations shown), deduplicated by the alert's
/// Alertmanager fingerprint.
fn signal(a: &Alert, action: Action) -> Result<Signal, Stop> {
    let status = match action {
        Action::Resolve => "resolved",
        _ => "firing",
    };
    let obj = |l: &Labels| {
        serde_json::Value::Object(
            l.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        )
    };
    let body = json!({
        "version": "4",
        "status": status,
        "alerts": [{
            "status": status,
            "labels": obj(&a.labels),
            "annotations": obj(&a.annotations),
            "startsAt": lookout_core::time::iso(a.active_at),
            "fingerprint": a.fingerprint(),
            "valueString": a.value,
        }],
    });
    let bytes =
        serde_json::to_vec(&body).map_err(|e| Stop::Store(StoreError::Corrupt(e.to_string())))?;
    lookout_oncall::inbound::alertmanager(&bytes)
        .map_err(|e| Stop::Store(StoreError::Corrupt(e.message)))?
        .into_iter()
        .next()
        .ok_or_else(|| Stop::Store(StoreError::Corrupt("no signal".into())))
}

/// Runs one shard until its work is stopped or its lease is lost.
pub async fn run_shard(ctx: Arc<RulesContext>, shard: u64, work: Work) {
    let mut fence = Fence {
        lease: work.name.clone(),
        token: work.fence,
        seq: work.seq,
    };
    let mut stop = work.stop;
    let mut groups: Vec<Scheduled> = Vec::new();
    let mut loaded_at: Option<i64> = None;
    // The last slot evaluated per group (filled from the store on first sight).
    let mut done: HashMap<String, i64> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = ctx.cluster.now_ms();
        if loaded_at.is_none_or(|at| now - at >= RELOAD_MS) {
            match scheduled(&ctx.store).await {
                Ok(all) => {
                    groups = all.into_iter().filter(|g| g.shard() == shard).collect();
                    loaded_at = Some(now);
                }
                Err(e) => tracing::debug!(error = %e, "Rule files not read; retrying."),
            }
        }
        for g in &groups {
            if *stop.borrow() {
                return;
            }
            let key = g.key();
            let slot = g.slot(now);
            let last = match done.get(&key) {
                Some(t) => *t,
                None => match rstore::state(&ctx.store, g.project, &g.file, &g.group.name).await {
                    Ok(s) => s.map_or(i64::MIN, |s| s.evaluated_at),
                    Err(_) => continue,
                },
            };
            if slot <= last {
                done.insert(key, last);
                continue;
            }
            match evaluate_group(&ctx, &mut fence, g, slot).await {
                Ok(()) => {
                    done.insert(key, slot);
                }
                Err(Stop::Stale) => {
                    // Read the files again at the next tick; this group's list is outdated.
                    loaded_at = None;
                    break;
                }
                Err(Stop::Fenced) => {
                    tracing::warn!(lease = %fence.lease, "Rule shard taken over by another replica; stopping.");
                    return;
                }
                Err(Stop::Store(e)) => {
                    tracing::warn!(project = g.project, group = %g.group.name, error = %e, "Rule group evaluation not stored; retrying.");
                }
                Err(Stop::Refused(e)) => {
                    tracing::warn!(project = g.project, group = %g.group.name, error = %e, "Rule group evaluation refused by the store; retrying.");
                }
            }
        }
    }
}

/// The shards placed on the live replicas, each run under its fenced lease.
pub fn placement(
    ctx: Arc<RulesContext>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let keys: Vec<String> = (0..SHARDS).map(|k| format!("rules.shard.{k}")).collect();
    let cluster = ctx.cluster.clone();
    let store = ctx.store.clone();
    let start: crate::cluster::placement::Start = Arc::new(move |work: Work| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            match work
                .name
                .strip_prefix("rules.shard.")
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n < SHARDS)
            {
                Some(shard) => run_shard(ctx, shard, work).await,
                None => tracing::warn!(lease = %work.name, "Not a rule shard."),
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
    fn slots_are_aligned_to_the_interval() {
        let g = Scheduled {
            project: 1,
            file: "f".into(),
            version: 0,
            group: Group {
                name: "g".into(),
                interval_ms: Some(10_000),
                limit: 0,
                query_offset_ms: 0,
                rules: vec![],
            },
        };
        let s = g.slot(1_000_000);
        assert!(s <= 1_000_000 && s > 990_000);
        // Every moment until the next slot maps to the same slot; then the next.
        assert_eq!(g.slot(s + 9_999), s);
        assert_eq!(g.slot(s + 10_000), s + 10_000);
        assert!(g.shard() < SHARDS);
    }

    #[test]
    fn a_group_budget_is_its_interval_up_to_30s() {
        assert_eq!(group_budget_ms(1_000), 1_000);
        assert_eq!(group_budget_ms(60_000), 30_000);
        assert_eq!(group_budget_ms(86_400_000), 30_000);
    }

    #[test]
    fn identical_rules_keep_separate_state() {
        let f = super::super::parse::parse(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: A\n        expr: up == 0\n        for: 5m\n      - alert: B\n        expr: up == 0\n",
        )
        .unwrap();
        let g = &f.groups[0];
        let keys = rule_keys(g);
        assert_eq!(keys.len(), 3);
        // The first keeps the plain key (state stored before stays matched); the repeat differs.
        assert_eq!(keys[0], rule_key(&g.rules[0]));
        assert_eq!(rule_key(&g.rules[0]), rule_key(&g.rules[1]));
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
    }
}
