//! Alert policies over the domain-event stream.
//!
//! A policy lists conditions; each names a source and the events it reacts to:
//!
//! ```json
//! {"conditions": [
//!    {"source": "monitor", "events": ["down", "certificate_expiring", "cron_missed", "cron_failed"],
//!     "monitor_ids": [3, 4]},
//!    {"source": "errors", "event": "new_issue" | "regression" | "frequency",
//!     "threshold": 100, "window_minutes": 5, "project_ids": [1]},
//!    {"source": "regressions", "series": ["api.p95_ms"], "project_ids": [1]},
//!    {"source": "database", "kinds": ["invalid_index", "verification_failed"], "target_ids": [1]},
//!    {"source": "backups", "events": ["failed", "stale"], "targets": ["lookout", "pg-main"]},
//!    {"source": "cluster", "events": ["lost", "joined"]},
//!    {"source": "nrql", "nrql": "SELECT percentile(duration, 95) FROM Transaction FACET appName",
//!     "critical": {"operator": "above", "value": 0.5, "duration_seconds": 300}}],
//!  "grouping": "per_signal" | "per_condition" | "per_policy",
//!  "severity": "critical", "urgency": "high", "service": "checkout",
//!  "escalation_policy_id": 1, "runbook_id": 2, "enabled": true, "notify_owners": false}
//! ```
//!
//! The consumer reads the stream under a leased cursor and applies each batch in the transaction
//! that advances the cursor, so every event opens, joins or resolves incidents exactly once, on
//! whichever replica holds the lease. Query conditions are evaluated by [`super::query`], which
//! publishes `nrql.*` events naming the policy and condition they belong to.

mod cluster;
mod seen;

use seen::{read, Seen};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::engine::{self, Applied, Origin};
use super::Alerting;
use lookout_core::time::now_ms;
use lookout_oncall::dedup::{Grouping, Severity, Urgency};
use lookout_oncall::inbound::{Action, Signal};
use lookout_store::alerting::{self as astore, incidents, SpecTable};
use lookout_store::events::{self, DomainEvent};
use lookout_store::{cursor, Result, Store, Tx};

/// The consumer group's cursor.
pub const CURSOR: &str = "alerting.policies";

/// One condition of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Uptime monitors and cron jobs.
    Monitor {
        /// `down`, `certificate_expiring`, `cron_missed`, `cron_failed` (default: all).
        #[serde(default)]
        events: Vec<String>,
        /// Only these monitors (default: all).
        #[serde(default)]
        monitor_ids: Vec<i64>,
    },
    /// Error tracking.
    Errors {
        /// `new_issue`, `regression` or `frequency`.
        event: String,
        /// For `frequency`: more than this many events…
        #[serde(default)]
        threshold: Option<i64>,
        /// …within this many minutes.
        #[serde(default)]
        window_minutes: Option<i64>,
        /// Only these projects (default: all).
        #[serde(default)]
        project_ids: Vec<i64>,
    },
    /// Database health findings and failed verifications (`db.finding`).
    Database {
        /// Only these kinds (`invalid_index`, `verification_failed`, …; default: all).
        #[serde(default)]
        kinds: Vec<String>,
        /// Only these database targets (default: all).
        #[serde(default)]
        target_ids: Vec<i64>,
    },
    /// Backups and restore drills: `backup.failed` and `backup.stale`; `backup.ok` resolves.
    Backups {
        /// `failed`, `stale` (default: both).
        #[serde(default)]
        events: Vec<String>,
        /// Only these targets by name (`lookout` is Lookout's own backup; default: all).
        #[serde(default)]
        targets: Vec<String>,
    },
    /// A query (NRQL) evaluated every window, one signal per facet value (see
    /// [`super::query::spec`]).
    Nrql(Box<super::query::spec::NrqlCondition>),
    /// Lookout's own replicas (`replica.lost`, `replica.joined`; events of no project): a
    /// replica that stopped heartbeating without leaving pages; one that joins is an info
    /// incident, and the same replica heartbeating again resolves its loss.
    Cluster {
        /// `lost`, `joined` (default: `lost` only, so a policy without `events` does not open
        /// an incident each time a replica starts).
        #[serde(default)]
        events: Vec<String>,
    },
    /// Performance regressions found in baseline series (`regression.detected`).
    Regressions {
        /// Only series with these names (default: all).
        #[serde(default)]
        series: Vec<String>,
        /// Only these projects (default: all).
        #[serde(default)]
        project_ids: Vec<i64>,
    },
}

/// A policy's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// What opens incidents.
    pub conditions: Vec<Condition>,
    /// How signals group into incidents.
    #[serde(default)]
    pub grouping: Grouping,
    /// Severity of its incidents (default `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Urgency (default: from severity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// The service its incidents concern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Who gets paged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_policy_id: Option<i64>,
    /// The runbook attached to its incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_id: Option<i64>,
    /// Off: matches nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// For issues: page the escalation policy of the team the issue is assigned to (its
    /// owners), instead of `escalation_policy_id`, when that team has one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_owners: bool,
}

fn yes() -> bool {
    true
}

const MONITOR_EVENTS: &[&str] = &["down", "certificate_expiring", "cron_missed", "cron_failed"];
const ERROR_EVENTS: &[&str] = &["new_issue", "regression", "frequency"];
const BACKUP_EVENTS: &[&str] = &["failed", "stale"];

impl PolicySpec {
    /// Checks the fields; the message names the one that is wrong.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.conditions.is_empty() {
            return Err("conditions must hold at least one condition".into());
        }
        if let Some(s) = &self.severity {
            Severity::parse(s).ok_or_else(|| {
                format!("severity must be critical, error, warning or info, not {s:?}")
            })?;
        }
        for (i, c) in self.conditions.iter().enumerate() {
            match c {
                Condition::Monitor { events, .. } => {
                    if let Some(e) = events
                        .iter()
                        .find(|e| !MONITOR_EVENTS.contains(&e.as_str()))
                    {
                        return Err(format!(
                            "conditions[{i}].events: {e:?} is not one of {}",
                            MONITOR_EVENTS.join(", ")
                        ));
                    }
                }
                Condition::Errors {
                    event,
                    threshold,
                    window_minutes,
                    ..
                } => {
                    if !ERROR_EVENTS.contains(&event.as_str()) {
                        return Err(format!(
                            "conditions[{i}].event must be one of {}",
                            ERROR_EVENTS.join(", ")
                        ));
                    }
                    if event == "frequency"
                        && (threshold.unwrap_or(0) < 1
                            || !(1..=1440).contains(&window_minutes.unwrap_or(0)))
                    {
                        return Err(format!(
                            "conditions[{i}]: frequency needs threshold >= 1 and window_minutes 1-1440"
                        ));
                    }
                }
                Condition::Backups { events, .. } => {
                    if let Some(e) = events.iter().find(|e| !BACKUP_EVENTS.contains(&e.as_str())) {
                        return Err(format!(
                            "conditions[{i}].events: {e:?} is not one of {}",
                            BACKUP_EVENTS.join(", ")
                        ));
                    }
                }
                Condition::Cluster { events } => cluster::validate(i, events)?,
                Condition::Nrql(c) => c.validate().map_err(|e| format!("conditions[{i}].{e}"))?,
                Condition::Regressions { .. } | Condition::Database { .. } => {}
            }
        }
        Ok(())
    }
}

/// Follows the stream and applies policies until `stop` resolves.
/// New events wake it at once (see `lookout_store::wake`); it polls every 200 ms regardless.
pub async fn run(a: Alerting, owner: String, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut wake = a.store().wake().waiter(lookout_store::events::TABLE_NAME);
    loop {
        wake.borrow_and_update();
        let wait = match poll_once(&a, &owner).await {
            Ok(0) => Duration::from_millis(200),
            Ok(_) => Duration::ZERO,
            Err(e) => {
                tracing::warn!(error = %e, "Alert policies failed; retrying.");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = lookout_store::wake::idle(&mut wake, wait) => {}
        }
    }
}

/// Applies the next batch of events if this replica holds the cursor; how many it read.
pub async fn poll_once(a: &Alerting, owner: &str) -> Result<usize> {
    let store = a.store();
    let Some(position) = cursor::lease(store, CURSOR, owner, 10_000).await? else {
        return Ok(0);
    };
    let batch = events::read_after(store, position, 200, None).await?;
    let Some(last) = batch.last().map(|e| e.seq) else {
        return Ok(0);
    };
    let policies = load(store).await?;
    let mut tx = store.begin_write().await?;
    let mut touched = false;
    for e in &batch {
        // A replica heartbeating again after it was lost (a paused process) resolves its loss.
        if let Some((seen, action)) = cluster::replica_back(e) {
            touched |= apply_event(&mut tx, &policies, e, &seen, action).await?;
        }
        let Some((seen, action)) = read(e) else {
            continue;
        };
        touched |= apply_event(&mut tx, &policies, e, &seen, action).await?;
    }
    if cursor::advance(&mut tx, CURSOR, owner, position, last).await? {
        tx.commit().await?;
        if touched {
            a.wake();
        }
        Ok(batch.len())
    } else {
        tx.rollback().await?;
        Ok(0)
    }
}

/// Applies one event to the policies: recoveries resolve or lower what they belong to; a
/// trigger opens or joins one incident for the problem, however many policies match it.
/// Whether an incident changed.
async fn apply_event(
    tx: &mut Tx,
    policies: &Loaded,
    e: &DomainEvent,
    seen: &Seen,
    action: Action,
) -> Result<bool> {
    // The database's clock: the escalation timers this sets are judged by it on every replica.
    let now = lookout_store::cluster::db_now_in(tx).await?;
    if action == Action::Resolve {
        if let (Some(after), Some((pid, _))) = (seen.priority_after, seen.nrql) {
            // A query signal with a priority still open: its incident stays, one step lower.
            let org = policies.iter().find(|p| p.0 == pid).map(|p| p.2);
            let open = match org {
                Some(org) => incidents::open_with_signal(tx, org, &seen.signal).await?,
                None => None,
            };
            return Ok(match open {
                // A grouped incident with other signals failing keeps its priority.
                Some(inc) if incidents::other_open_signals(tx, inc.id, &seen.signal).await? > 0 => {
                    false
                }
                Some(inc) => {
                    let fixed = policies
                        .iter()
                        .find(|p| p.0 == pid)
                        .and_then(|p| p.3.urgency);
                    engine::reprioritise(tx, inc.id, (after, fixed), &inc.title, "system", now)
                        .await?
                }
                None => false,
            });
        }
        let mut touched = false;
        let mut closing = incidents::close_signal(tx, &seen.signal).await?;
        if seen.nrql.is_some() {
            // Incidents opened before a query signal's priorities became one incident hold the
            // signal with its priority appended.
            for p in ["critical", "warning", "lost"] {
                let legacy = format!("{}:{p}", seen.signal);
                closing.extend(incidents::close_signal(tx, &legacy).await?);
            }
        }
        for id in closing {
            let r = engine::transition(tx, id, Action::Resolve, "system", now).await?;
            touched |= r != Applied::Ignored;
            if r != Applied::Ignored {
                incidents::log(
                    tx,
                    id,
                    now,
                    "auto_resolved",
                    "system",
                    &format!("Recovered: {} ({})", e.kind, seen.signal),
                    None,
                )
                .await?;
            }
        }
        return Ok(touched);
    }
    // Every policy that matches, each by its first matching condition.
    let mut matched: Vec<(&LoadedPolicy, usize, &Condition)> = Vec::new();
    for p in policies {
        for (ci, c) in p.3.conditions.iter().enumerate() {
            let hit = match c {
                Condition::Nrql(_) => seen.nrql == Some((p.0, ci)),
                _ => matches(c, seen, tx).await?,
            };
            if hit {
                matched.push((p, ci, c));
                break;
            }
        }
    }
    // "Notify owners": the owning team's escalation policy pages, when the issue has one. It is
    // resolved before ranking, so a notify-owners policy whose issue has no paging owner does
    // not outrank a policy that pages a real escalation policy.
    let owner_ep = match (matched.iter().any(|m| m.0 .3.notify_owners), seen.issue_id) {
        (true, Some(issue)) => {
            lookout_store::errors::triage::owner_escalation_policy(tx, issue).await?
        }
        _ => None,
    };
    let pages = |spec: &PolicySpec| match (spec.notify_owners, owner_ep) {
        (true, Some(ep)) => Some(ep),
        _ => spec.escalation_policy_id,
    };
    // The policy that speaks for the incident: one that pages somebody, then the most severe,
    // then the oldest.
    let Some(&(primary, ci, c)) = matched.iter().max_by_key(|(p, _, _)| {
        (
            pages(&p.3).is_some(),
            policy_severity(&p.3),
            std::cmp::Reverse(p.0),
        )
    }) else {
        return Ok(false);
    };
    let (pid, name, org_id, spec) = primary;
    let escalation = pages(spec);
    let title = if seen.name == "frequency" {
        frequency_title(tx, seen, c).await?
    } else {
        seen.title.clone()
    };
    let severity = seen
        .priority_after
        .or(seen.severity)
        .unwrap_or_else(|| policy_severity(spec));
    // One incident per problem: a signal already failing in an open incident joins it,
    // whichever policy opened it.
    let joined = incidents::open_with_signal(tx, *org_id, &seen.signal).await?;
    let (scope, key) = match &joined {
        Some(i) => (i.scope.clone(), i.dedup_key.clone()),
        None => (format!("policy:{pid}"), spec.grouping.key(ci, &seen.signal)),
    };
    let names: Vec<Value> = matched
        .iter()
        .map(|(p, ci, _)| json!({"id": p.0, "name": p.1, "condition": ci}))
        .collect();
    let origin = Origin {
        org_id: *org_id,
        scope,
        policy_id: Some(*pid),
        integration_id: None,
        escalation_policy_id: escalation,
        runbook_id: spec.runbook_id,
        service: spec.service.clone(),
        urgency: spec.urgency,
        actor: format!("policy:{name}"),
        count_repeats: false,
        signal_ref: Some(seen.signal.clone()),
    };
    let signal = Signal {
        action: Action::Trigger,
        dedup_key: Some(key),
        title: title.clone(),
        severity,
        source: Some(seen.signal.clone()),
        details: json!({"event": e.kind, "event_seq": e.seq, "payload": e.payload,
                        "condition": ci, "policies": names}),
        links: Vec::new(),
    };
    match engine::apply(tx, &origin, &signal, now).await? {
        Applied::Opened(id) if matched.len() > 1 => {
            let others: Vec<&str> = matched
                .iter()
                .filter(|(p, _, _)| p.0 != *pid)
                .map(|(p, _, _)| p.1.as_str())
                .collect();
            incidents::log(
                tx,
                id,
                now,
                "policies",
                "system",
                &format!(
                    "Also matched {}: one incident for the problem, routed by {name}",
                    others.join(", ")
                ),
                None,
            )
            .await?;
        }
        Applied::Joined(id) => {
            // The policy that speaks now pages somebody and the incident pages nobody: route it.
            if let Some(ep) = escalation {
                engine::adopt_escalation(tx, id, ep, &format!("policy:{name}"), now).await?;
            }
            // A query signal's priority follows what is open (a warning became critical, a
            // lost signal joined) unless other signals of a grouped incident are failing too;
            // any other problem only rises when a more severe policy joins it, and never
            // loses the urgency it had.
            let inc = incidents::lock(tx, id).await?;
            let current = Severity::parse(&inc.severity);
            let alone = incidents::other_open_signals(tx, id, &seen.signal).await? == 0;
            let follows = seen.nrql.is_some() && alone;
            if follows || current.is_none_or(|c| severity > c) {
                let title = if follows && seen.severity == Some(severity) {
                    &title
                } else {
                    &inc.title
                };
                let urgency = if !follows && inc.urgency == "high" {
                    Some(lookout_oncall::dedup::Urgency::High)
                } else {
                    spec.urgency
                };
                engine::reprioritise(tx, id, (severity, urgency), title, "system", now).await?;
            }
        }
        _ => {}
    }
    Ok(true)
}

/// A policy's own severity (default `error`).
fn policy_severity(spec: &PolicySpec) -> Severity {
    spec.severity
        .as_deref()
        .and_then(Severity::parse)
        .unwrap_or(Severity::Error)
}

/// An enabled policy: id, name, organization, definition.
type LoadedPolicy = (i64, String, i64, PolicySpec);
type Loaded = Vec<LoadedPolicy>;

async fn load(store: &Store) -> Result<Loaded> {
    let org = lookout_store::tenancy::default_org(store).await?;
    let mut out = Vec::new();
    for row in astore::spec_list(store, SpecTable::Policies, org.id).await? {
        match serde_json::from_value::<PolicySpec>(row.spec.clone()) {
            Ok(spec) if spec.enabled => out.push((row.id, row.name, row.org_id, spec)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(policy = row.id, error = %e, "Skipping an unreadable alert policy.")
            }
        }
    }
    Ok(out)
}

async fn matches(c: &Condition, seen: &Seen, tx: &mut Tx) -> Result<bool> {
    Ok(match c {
        Condition::Monitor {
            events,
            monitor_ids,
        } => {
            MONITOR_EVENTS.contains(&seen.name)
                && (events.is_empty() || events.iter().any(|e| e == seen.name))
                && (monitor_ids.is_empty()
                    || seen.monitor_id.is_some_and(|m| monitor_ids.contains(&m)))
        }
        Condition::Errors {
            event,
            threshold,
            window_minutes,
            project_ids,
        } => {
            if event != seen.name
                || !(project_ids.is_empty()
                    || seen.project_id.is_some_and(|p| project_ids.contains(&p)))
            {
                return Ok(false);
            }
            if event != "frequency" {
                return Ok(true);
            }
            let (Some(n), Some(m), Some(issue)) = (threshold, window_minutes, seen.issue_id) else {
                return Ok(false);
            };
            astore::frequency::issue_events_since(tx, issue, now_ms() - m * 60_000).await? > *n
        }
        Condition::Database { kinds, target_ids } => {
            seen.name == "db_finding"
                && (kinds.is_empty() || seen.db_kind.as_ref().is_some_and(|k| kinds.contains(k)))
                && (target_ids.is_empty()
                    || seen.db_target.is_some_and(|t| target_ids.contains(&t)))
        }
        Condition::Backups { events, targets } => {
            let event = seen.name.strip_prefix("backup_");
            event.is_some_and(|e| {
                BACKUP_EVENTS.contains(&e) && (events.is_empty() || events.iter().any(|x| x == e))
            }) && (targets.is_empty()
                || seen
                    .backup_target
                    .as_ref()
                    .is_some_and(|t| targets.contains(t)))
        }
        Condition::Cluster { events } => cluster::matches(events, seen),
        // Matched by policy and condition in the consumer.
        Condition::Nrql(_) => false,
        Condition::Regressions {
            series,
            project_ids,
        } => {
            seen.name == "performance_regression"
                && (series.is_empty() || seen.series.as_ref().is_some_and(|s| series.contains(s)))
                && (project_ids.is_empty()
                    || seen.project_id.is_some_and(|p| project_ids.contains(&p)))
        }
    })
}

/// `Performance regression: api.p95_ms {scenario=checkout} +23.4% (p=1.2e-6) at abc1234`.
fn regression_title(p: &Value) -> String {
    let series = lookout_regress::series_label(
        p.get("series").and_then(Value::as_str).unwrap_or_default(),
        p.get("tags")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default())),
    );
    let change = p
        .get("change_percent")
        .and_then(Value::as_f64)
        .map(|c| format!(" {c:+.1}%"))
        .unwrap_or_default();
    let pv = p.get("p_value").and_then(Value::as_f64).unwrap_or(1.0);
    let commit = p
        .get("commit")
        .and_then(Value::as_str)
        .map(|c| format!(" at {}", c.chars().take(12).collect::<String>()))
        .unwrap_or_default();
    format!("Performance regression: {series}{change} (p={pv:.1e}){commit}")
}

async fn frequency_title(tx: &mut Tx, seen: &Seen, c: &Condition) -> Result<String> {
    let title: Option<String> = match seen.issue_id {
        Some(id) => astore::frequency::issue_title(tx, id).await?,
        None => None,
    };
    let (n, m) = match c {
        Condition::Errors {
            threshold,
            window_minutes,
            ..
        } => (threshold.unwrap_or(0), window_minutes.unwrap_or(0)),
        Condition::Monitor { .. }
        | Condition::Nrql(_)
        | Condition::Regressions { .. }
        | Condition::Database { .. }
        | Condition::Cluster { .. }
        | Condition::Backups { .. } => (0, 0),
    };
    Ok(format!(
        "More than {n} events in {m} min: {}",
        title.unwrap_or_else(|| seen.signal.clone())
    ))
}
