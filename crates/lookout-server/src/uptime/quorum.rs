//! The confirmation rule of monitors checked from several locations: the monitor is down only
//! when at least k of its active locations fail, each by its own failure threshold (`local` by
//! the replica's streaks, the others by their agents' results). An offline location (no agent
//! within the timeout, or a revoked token) leaves the quorum and never counts as failing; a
//! location whose last result is older than two intervals and [`STALE_SLACK_MS`] counts as
//! pending (its verdict is no longer news); with no active location the monitor is `unknown`,
//! never down. An explicit k with fewer than k active locations is never down either (one
//! vantage point left must not page). Failing from fewer than k locations is a regional
//! degradation: shown and recorded as a domain event, not paged.
//!
//! The shard's runner asks for the verdict at each of the monitor's ticks (a local check, or no
//! probe at all when `local` is not listed) and applies it through its usual path (state, change
//! log, `monitor.down`/`monitor.up`, incidents), so it stays the only writer of the monitor's
//! state. A stored agent batch that changes a location's state asks the runner for a tick in
//! the same write, so the quorum moves within a reload (seconds), not at the next interval.

use lookout_store::locations as lstore;
use lookout_store::uptime::{self as ustore, MonitorState};
use lookout_store::Store;
use lookout_store::Write;
use lookout_uptime::spec::LOCAL;
use lookout_uptime::state::Health;
use lookout_uptime::MonitorSpec;

use crate::locations::service::is_online;

/// Beyond two intervals, how old a location's last result may be before its verdict is stale:
/// agents upload every second, but a batch may wait behind a slow network.
pub const STALE_SLACK_MS: i64 = 30_000;

/// The state of a monitor none of whose locations counts.
pub const UNKNOWN: &str = "unknown";

/// No location counts (all offline, revoked or gone): nobody can tell, so the monitor is
/// `unknown`, never down, and nothing is paged (a page already sent stays open until it is up).
pub(super) fn mark_unknown(state: &mut MonitorState, id: i64, at: i64, out: &mut Vec<Write>) {
    if state.health == UNKNOWN {
        return;
    }
    let from = std::mem::replace(&mut state.health, UNKNOWN.into());
    state.changed_at = Some(at);
    out.push(ustore::change_write(
        id,
        at,
        &from,
        UNKNOWN,
        "no active location",
        state.alerted,
    ));
}

/// What the locations say together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// The monitor's health by the rule.
    pub health: Health,
    /// Active locations that fail, in the spec's order.
    pub failing: Vec<String>,
    /// Locations that count now.
    pub active: usize,
    /// Failing locations needed for down.
    pub needed: usize,
    /// The first failing location's reason.
    pub first_reason: Option<String>,
}

impl Quorum {
    /// The reason recorded with a change, naming the failing locations.
    pub fn reason(&self, local_reason: &str) -> String {
        if self.failing.is_empty() {
            return format!("no location fails ({} active)", self.active);
        }
        format!(
            "failing from {} ({} of {} active locations, {} needed): {}",
            self.failing.join(", "),
            self.failing.len(),
            self.active,
            self.needed,
            self.first_reason.as_deref().unwrap_or(local_reason)
        )
    }

    /// Failing somewhere, but not from enough locations to be down.
    pub fn degraded(&self) -> bool {
        !self.failing.is_empty() && self.failing.len() < self.needed
    }
}

/// The verdict of `spec`'s locations at `now` (the cluster's clock, the one agents' last-seen
/// times are written with), `local` judged `local` (its reason `local_reason`); `None` for a
/// monitor checked from `local` only, which the runner's streaks decide alone.
pub async fn verdict(
    store: &Store,
    monitor_id: i64,
    spec: &MonitorSpec,
    local: Health,
    local_reason: Option<&str>,
    now: i64,
) -> lookout_store::Result<Option<Quorum>> {
    let names = spec.location_names();
    if names == [LOCAL] {
        return Ok(None);
    }
    let stale_before = now - 2 * i64::from(spec.interval_seconds.max(1)) * 1000 - STALE_SLACK_MS;
    let known = lstore::list_locations(store).await?;
    let checks = lstore::checks_of_monitor(store, monitor_id).await?;
    let mut states: Vec<(&str, Health, Option<String>)> = Vec::new();
    for name in names {
        if name == LOCAL {
            states.push((name, local, local_reason.map(str::to_string)));
            continue;
        }
        let Some(loc) = known.iter().find(|l| l.name == name) else {
            continue;
        };
        let newest = lstore::agents(store, loc.id)
            .await?
            .iter()
            .map(|a| a.last_seen_at)
            .max();
        if !is_online(loc, newest, now) {
            continue;
        }
        let check = checks
            .iter()
            .find(|c| c.location_id == loc.id)
            .filter(|c| c.last_check_at.is_some_and(|at| at >= stale_before));
        states.push((
            name,
            check.map_or(Health::Pending, |c| Health::parse(&c.health)),
            check.and_then(|c| c.last_failure.clone()),
        ));
    }
    Ok(Some(decide(spec, &states)))
}

/// The rule itself, over the active locations' own health.
fn decide(spec: &MonitorSpec, states: &[(&str, Health, Option<String>)]) -> Quorum {
    let active = states.len();
    let needed = spec.failing_needed(active);
    let failing: Vec<&(&str, Health, Option<String>)> =
        states.iter().filter(|s| s.1 == Health::Down).collect();
    let health = if active == 0 {
        Health::Pending
    } else if failing.len() >= needed {
        Health::Down
    } else if states.iter().any(|s| s.1 == Health::Up) || !failing.is_empty() {
        Health::Up
    } else {
        Health::Pending
    };
    Quorum {
        health,
        first_reason: failing.first().and_then(|f| f.2.clone()),
        failing: failing.iter().map(|f| f.0.to_string()).collect(),
        active,
        needed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(k: Option<u32>) -> MonitorSpec {
        let mut v = serde_json::json!({"name": "x", "type": "http", "url": "http://a/",
            "locations": ["local", "eu", "us"]});
        if let Some(k) = k {
            v["confirm"] = serde_json::json!({"min_failing_locations": k});
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn down_only_when_enough_active_locations_fail() {
        use Health::*;
        let s = spec(None); // majority of the active ones
        let one = decide(
            &s,
            &[("local", Down, None), ("eu", Up, None), ("us", Up, None)],
        );
        assert_eq!((one.health, one.degraded()), (Up, true));
        let two = decide(
            &s,
            &[
                ("local", Down, None),
                ("eu", Down, Some("503".into())),
                ("us", Up, None),
            ],
        );
        assert_eq!(two.health, Down);
        assert_eq!(two.failing, ["local", "eu"]);
        // us is offline (left out): 1 of 2 active is not a majority.
        let partitioned = decide(&s, &[("local", Down, None), ("eu", Up, None)]);
        assert_eq!(partitioned.health, Up);
        // k = 2 set with only one active location: never down from one vantage point.
        let alone = decide(&spec(Some(2)), &[("eu", Down, None)]);
        assert_eq!((alone.health, alone.degraded()), (Up, true));
        // Without a rule, the majority is of the active ones.
        let alone = decide(&s, &[("eu", Down, None)]);
        assert_eq!(alone.health, Down);
        assert_eq!(decide(&s, &[]).health, Pending);
    }
}
