//! The confirmation rule of monitors checked from several locations: the monitor is down only
//! when at least k of its active locations fail, each by its own failure threshold (`local` by
//! the replica's streaks, the others by their agents' results). An offline location (no agent
//! within the timeout, or a revoked token) leaves the quorum and never counts as failing; with
//! no active location the verdict is pending (unknown), never down. Failing from fewer than k
//! locations is a regional degradation: shown and recorded as a domain event, not paged.
//!
//! The shard's runner asks for the verdict at each of the monitor's ticks (a local check, or no
//! probe at all when `local` is not listed) and applies it through its usual path (state, change
//! log, `monitor.down`/`monitor.up`, incidents), so it stays the only writer of the monitor's
//! state. A stored agent batch that changes a location's state asks the runner for a tick in
//! the same write, so the quorum moves within a reload (seconds), not at the next interval.

use lookout_core::time::now_ms;
use lookout_store::locations as lstore;
use lookout_store::Store;
use lookout_uptime::spec::LOCAL;
use lookout_uptime::state::Health;
use lookout_uptime::MonitorSpec;

use crate::locations::service::is_online;

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

/// The verdict of `spec`'s locations, `local` judged `local` (its reason `local_reason`);
/// `None` for a monitor checked from `local` only, which the runner's streaks decide alone.
pub async fn verdict(
    store: &Store,
    monitor_id: i64,
    spec: &MonitorSpec,
    local: Health,
    local_reason: Option<&str>,
) -> lookout_store::Result<Option<Quorum>> {
    let names = spec.location_names();
    if names == [LOCAL] {
        return Ok(None);
    }
    let now = now_ms();
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
        let check = checks.iter().find(|c| c.location_id == loc.id);
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
        // k = 2 with only one active location: k is capped by the active ones.
        let alone = decide(&spec(Some(2)), &[("eu", Down, None)]);
        assert_eq!(alone.health, Down);
        assert_eq!(decide(&s, &[]).health, Pending);
    }
}
