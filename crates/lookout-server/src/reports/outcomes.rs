//! Reliability outcomes from recorded timestamps: mean time to detect (failure start →
//! incident opened), to acknowledge (opened → first acknowledgement) and to resolve (opened →
//! resolved), against the team's targets.
//!
//! The failure start is what the signal recorded about its own beginning: a monitor's first
//! failed check of the streak that took it down, an error issue's first event, the event that
//! regressed an issue, a change point's first point, the first breaching window of a query
//! condition, Alertmanager's and Grafana's `startsAt`,
//! a PagerDuty event's `timestamp`. Incidents without one (a manual trigger, an event that
//! carries no time) count for acknowledge and resolve but not for detect; the report says how
//! many had a known start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use lookout_store::alerting::incidents::IncidentRow;

/// The targets a team sets; the defaults are the operations plan's (detect under 5 minutes,
/// acknowledge within 15, resolve within 30).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Targets {
    /// Mean time to detect at or under this, minutes.
    pub detect_minutes: f64,
    /// Mean time to acknowledge at or under this, minutes.
    pub acknowledge_minutes: f64,
    /// Mean time to resolve at or under this, minutes.
    pub resolve_minutes: f64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            detect_minutes: 5.0,
            acknowledge_minutes: 15.0,
            resolve_minutes: 30.0,
        }
    }
}

/// One incident's timestamps as of the report's end: later acknowledgements and resolutions
/// are not known yet, so a past period's report never changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub failure_start: Option<i64>,
    pub created_at: i64,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

impl Timing {
    /// The incident's timing as known at `as_of`.
    pub fn of(inc: &IncidentRow, as_of: i64) -> Timing {
        Timing {
            failure_start: failure_start(inc),
            created_at: inc.created_at,
            acknowledged_at: inc.acknowledged_at.filter(|&t| t <= as_of),
            resolved_at: inc.resolved_at.filter(|&t| t <= as_of),
        }
    }
}

/// Means over a group of incidents, ms, with how many each mean is over.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// Incidents in the group.
    pub incidents: u64,
    /// Incidents whose failure start is known (the MTTD sample).
    pub detected: u64,
    pub mttd_ms: Option<i64>,
    /// Acknowledged incidents (the MTTA sample).
    pub acknowledged: u64,
    pub mtta_ms: Option<i64>,
    /// Resolved incidents (the MTTR sample).
    pub resolved: u64,
    pub mttr_ms: Option<i64>,
    /// Whether each mean is within its target (`None` without a sample).
    pub detect_met: Option<bool>,
    pub acknowledge_met: Option<bool>,
    pub resolve_met: Option<bool>,
}

/// The mean of whole milliseconds, rounded to the nearest.
fn mean(xs: &[i64]) -> Option<i64> {
    if xs.is_empty() {
        return None;
    }
    let sum: i128 = xs.iter().map(|&x| i128::from(x)).sum();
    let n = xs.len() as i128;
    Some(((2 * sum + n) / (2 * n)) as i64)
}

/// The outcome of a group of incidents against `targets`.
pub fn outcome(items: &[Timing], targets: &Targets) -> Outcome {
    // A failure start after the incident opened (a clock skew, a resend) counts as detected at once.
    let detect: Vec<i64> = items
        .iter()
        .filter_map(|t| Some((t.created_at - t.failure_start?).max(0)))
        .collect();
    let ack: Vec<i64> = items
        .iter()
        .filter_map(|t| Some((t.acknowledged_at? - t.created_at).max(0)))
        .collect();
    let resolve: Vec<i64> = items
        .iter()
        .filter_map(|t| Some((t.resolved_at? - t.created_at).max(0)))
        .collect();
    let within = |m: Option<i64>, minutes: f64| m.map(|ms| ms as f64 <= minutes * 60_000.0);
    let (mttd, mtta, mttr) = (mean(&detect), mean(&ack), mean(&resolve));
    Outcome {
        incidents: items.len() as u64,
        detected: detect.len() as u64,
        mttd_ms: mttd,
        acknowledged: ack.len() as u64,
        mtta_ms: mtta,
        resolved: resolve.len() as u64,
        mttr_ms: mttr,
        detect_met: within(mttd, targets.detect_minutes),
        acknowledge_met: within(mtta, targets.acknowledge_minutes),
        resolve_met: within(mttr, targets.resolve_minutes),
    }
}

/// Outcomes per key (service, month), keys in order.
pub fn grouped<K: Ord>(
    items: impl IntoIterator<Item = (K, Timing)>,
    targets: &Targets,
) -> BTreeMap<K, Outcome> {
    let mut groups: BTreeMap<K, Vec<Timing>> = BTreeMap::new();
    for (k, t) in items {
        groups.entry(k).or_default().push(t);
    }
    groups
        .into_iter()
        .map(|(k, v)| (k, outcome(&v, targets)))
        .collect()
}

fn rfc3339_ms(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// When the failure behind an incident started, from what its signal recorded (see the module
/// documentation); `None` when it recorded nothing.
pub fn failure_start(inc: &IncidentRow) -> Option<i64> {
    let d = &inc.details;
    let p = &d["payload"];
    let from_event = match d["event"].as_str() {
        Some("monitor.down" | "cron.missed" | "cron.failed") => {
            p["failing_since"].as_i64().or(p["at"].as_i64())
        }
        Some("issue.created") => p["first_seen"].as_i64(),
        Some("issue.regressed") => p["at"].as_i64(),
        Some("regression.detected") => p["at"].as_i64(),
        Some("nrql.breach") => p["since"].as_i64(),
        _ => None,
    };
    from_event
        .or_else(|| rfc3339_ms(&d["starts_at"]))
        .or_else(|| rfc3339_ms(&d["timestamp"]))
        .filter(|&t| t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: Option<i64>, created: i64, ack: Option<i64>, res: Option<i64>) -> Timing {
        Timing {
            failure_start: start,
            created_at: created,
            acknowledged_at: ack,
            resolved_at: res,
        }
    }

    #[test]
    fn means_count_only_incidents_that_reached_each_step() {
        let items = [
            t(Some(0), 120_000, Some(300_000), Some(1_320_000)),
            t(None, 1_000_000, None, Some(4_600_000)),
            t(Some(2_000_000), 2_240_000, Some(2_600_000), None),
        ];
        let o = outcome(&items, &Targets::default());
        assert_eq!(o.incidents, 3);
        assert_eq!((o.detected, o.mttd_ms), (2, Some(180_000)));
        assert_eq!((o.acknowledged, o.mtta_ms), (2, Some(270_000)));
        assert_eq!((o.resolved, o.mttr_ms), (2, Some(2_400_000)));
        assert_eq!(o.detect_met, Some(true));
        assert_eq!(o.acknowledge_met, Some(true));
        // 40 minutes against a 30-minute target.
        assert_eq!(o.resolve_met, Some(false));
    }

    #[test]
    fn no_sample_means_no_verdict_and_skew_counts_as_zero() {
        let o = outcome(&[t(Some(500), 100, None, None)], &Targets::default());
        assert_eq!(o.mttd_ms, Some(0));
        assert_eq!(o.mtta_ms, None);
        assert_eq!(o.resolve_met, None);
    }

    #[test]
    fn means_round_to_the_nearest_millisecond() {
        assert_eq!(mean(&[1, 2]), Some(2));
        assert_eq!(mean(&[1, 1, 2]), Some(1));
        assert_eq!(mean(&[]), None);
    }
}
