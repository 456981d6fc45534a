//! Escalation timing with a controllable clock: each case drives an incident through time and
//! compares the pages sent with the ones PagerDuty's rules call for.

use lookout_oncall::escalation::{Clock, Status, Step, Why};
use lookout_oncall::EscalationPolicy;
use serde_json::json;

const MIN: i64 = 60_000;

fn policy(delays: &[u32], loops: u32) -> EscalationPolicy {
    let rules: Vec<_> = delays
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"escalation_delay_in_minutes": d,
                             "targets": [{"type": "user", "id": i as i64 + 1}]})
        })
        .collect();
    let p: EscalationPolicy =
        serde_json::from_value(json!({"escalation_rules": rules, "num_loops": loops})).unwrap();
    p.validate().unwrap();
    p
}

/// (minute, rule, why) for every page; "exhausted" as rule usize::MAX.
fn pages(steps: &[Step]) -> Vec<(i64, usize, &'static str)> {
    steps
        .iter()
        .map(|s| match *s {
            Step::Notify { rule, why, at, .. } => (at / MIN, rule, why.as_str()),
            Step::Exhausted { at } => (at / MIN, usize::MAX, "exhausted"),
        })
        .collect()
}

#[test]
fn unacknowledged_incident_walks_the_rules_then_loops_then_stays() {
    let p = policy(&[5, 10], 1);
    let (mut c, first) = Clock::trigger(&p, true, 0);
    let mut all = vec![first];
    // Tick every minute for an hour, as the server's timer does.
    for m in 1..=60 {
        all.extend(c.advance(&p, m * MIN));
    }
    assert_eq!(
        pages(&all),
        vec![
            (0, 0, "triggered"),
            (5, 1, "escalated"),
            (15, 0, "repeated"),
            (20, 1, "escalated"),
            (30, usize::MAX, "exhausted"),
        ]
    );
    assert_eq!(c.next_due(), None);
    assert_eq!(c.rule, 1, "stays with the last rule");
}

#[test]
fn a_replica_that_was_away_catches_up_every_missed_step_at_its_due_time() {
    let p = policy(&[5, 10], 0);
    let (mut c, _) = Clock::trigger(&p, true, 0);
    assert_eq!(
        pages(&c.advance(&p, 100 * MIN)),
        vec![(5, 1, "escalated"), (15, usize::MAX, "exhausted")]
    );
}

#[test]
fn acknowledging_stops_escalation_and_the_ack_timeout_retriggers_from_rule_zero() {
    let p = policy(&[5, 10], 0);
    let (mut c, _) = Clock::trigger(&p, true, 0);
    assert_eq!(pages(&c.advance(&p, 6 * MIN)), vec![(5, 1, "escalated")]);
    assert!(c.acknowledge(7 * MIN, Some(30 * MIN)));
    assert!(
        !c.acknowledge(8 * MIN, Some(30 * MIN)),
        "already acknowledged"
    );
    assert_eq!(c.status, Status::Acknowledged);
    assert!(
        c.advance(&p, 36 * MIN).is_empty(),
        "no escalation while acknowledged"
    );
    assert_eq!(c.next_due(), Some(37 * MIN));
    assert_eq!(
        pages(&c.advance(&p, 37 * MIN)),
        vec![(37, 0, "ack_timeout")]
    );
    assert_eq!(c.status, Status::Triggered);
    assert_eq!(pages(&c.advance(&p, 42 * MIN)), vec![(42, 1, "escalated")]);
}

#[test]
fn no_ack_timeout_means_acknowledged_until_resolved() {
    let p = policy(&[5], 0);
    let (mut c, _) = Clock::trigger(&p, true, 0);
    c.acknowledge(MIN, None);
    assert_eq!(c.next_due(), None);
    assert!(c.advance(&p, 1000 * MIN).is_empty());
}

#[test]
fn low_urgency_notifies_the_first_rule_and_never_escalates() {
    let p = policy(&[1, 1], 3);
    let (mut c, first) = Clock::trigger(&p, false, 0);
    assert_eq!(pages(&[first]), vec![(0, 0, "triggered")]);
    assert_eq!(c.next_due(), None);
    assert!(c.advance(&p, 1000 * MIN).is_empty());
}

#[test]
fn resolving_clears_every_timer() {
    let p = policy(&[5], 2);
    let (mut c, _) = Clock::trigger(&p, true, 0);
    assert!(c.resolve());
    assert!(!c.resolve());
    assert_eq!(c.next_due(), None);
    assert!(c.advance(&p, 1000 * MIN).is_empty());
}

#[test]
fn policy_limits_are_checked() {
    let bad = |v: serde_json::Value| {
        serde_json::from_value::<EscalationPolicy>(v)
            .unwrap()
            .validate()
            .unwrap_err()
    };
    assert!(bad(json!({"escalation_rules": []})).contains("at least one rule"));
    assert!(bad(
        json!({"escalation_rules": [{"escalation_delay_in_minutes": 5,
        "targets": [{"type": "user", "id": 1}]}], "num_loops": 10})
    )
    .contains("num_loops"));
    assert!(
        bad(json!({"escalation_rules": [{"escalation_delay_in_minutes": 5, "targets": []}]}))
            .contains("targets")
    );
    assert!(bad(json!({"escalation_rules": [
        {"escalation_delay_in_minutes": 0, "targets": [{"type": "user", "id": 1}]},
        {"escalation_delay_in_minutes": 5, "targets": [{"type": "user", "id": 2}]}]}))
    .contains("at least 1"));
    let _ = Why::Triggered;
}
