//! Suggested actions for the monthly deep dive, each derived from one finding of the report and
//! naming it (`source`), so a reader can check the figure before acting on it. The rules are
//! deliberately few and plain: a spent error budget, outcomes over target, a monitor below its
//! SLO, a recurring incident, noisy alerting, the busiest error, index advice, a service that
//! moved, a failing or missing restore drill.

use super::model::*;

fn minutes(ms: i64) -> String {
    let m = ms as f64 / 60_000.0;
    if m < 10.0 {
        format!("{m:.1} min")
    } else {
        format!("{m:.0} min")
    }
}

/// The suggestions for `r`, most urgent kinds first.
pub fn suggestions(r: &Report) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let mut add = |text: String, source: String, url: Option<String>| {
        out.push(Suggestion { text, source, url })
    };
    for s in r.slos.iter().flatten() {
        if let Some(left) = s.budget.budget_remaining.filter(|l| *l < 0.25) {
            add(
                format!(
                    "{} ({}) has {:.0} % of its error budget left: hold back risky changes to {} and fix what spends it.",
                    s.name,
                    s.objective,
                    100.0 * left.max(0.0),
                    s.service
                ),
                format!("slo:{}", s.id),
                Some(s.url.clone()),
            );
        }
    }
    if let Some(inc) = &r.incidents {
        let (o, t) = (&inc.outcomes, &inc.targets);
        if let (Some(false), Some(ms)) = (o.detect_met, o.mttd_ms) {
            add(
                format!(
                    "Failures took {} on average to become incidents (target {} min): shorten check intervals and failure thresholds, or alert on the signals that fired late.",
                    minutes(ms),
                    t.detect_minutes
                ),
                "outcomes.mttd".into(),
                None,
            );
        }
        if let (Some(false), Some(ms)) = (o.acknowledge_met, o.mtta_ms) {
            add(
                format!(
                    "Incidents waited {} on average for an acknowledgement (target {} min): check the escalation policies and everyone's contact methods.",
                    minutes(ms),
                    t.acknowledge_minutes
                ),
                "outcomes.mtta".into(),
                None,
            );
        }
        if let (Some(false), Some(ms)) = (o.resolve_met, o.mttr_ms) {
            add(
                format!(
                    "Incidents took {} on average to resolve (target {} min): give the slowest ones a runbook, and fix the causes of the recurring ones.",
                    minutes(ms),
                    t.resolve_minutes
                ),
                "outcomes.mttr".into(),
                None,
            );
        }
    }
    for m in r.uptime.iter().flat_map(|u| &u.monitors) {
        if let (Some(false), Some(up)) = (m.met, m.uptime) {
            add(
                format!(
                    "{} was up {:.3} % against a target of {} % ({} outages): find what takes it down.",
                    m.name, up, m.target, m.outages
                ),
                format!("monitor:{}", m.id),
                Some(m.url.clone()),
            );
        }
    }
    for rec in r.recurring.iter().flatten().filter(|x| x.count >= 3) {
        add(
            format!(
                "\"{}\" opened {} times: fix its cause rather than answering it again.",
                rec.title, rec.count
            ),
            format!("incident:{}", rec.last_id),
            Some(rec.url.clone()),
        );
    }
    for n in r.noise.iter().flat_map(|n| &n.sources) {
        if n.acknowledged_without_action >= 3 {
            add(
                format!(
                    "{} opened {} incidents, {} of them acknowledged and left to resolve themselves: raise its threshold, lower its urgency or remove it.",
                    n.name, n.incidents, n.acknowledged_without_action
                ),
                n.scope.clone(),
                None,
            );
        }
    }
    if let Some(top) = r.errors.as_ref().and_then(|e| e.top_by_events.first()) {
        add(
            format!(
                "Fix \"{}\": {} event(s) from {} user(s), the most of any issue.",
                top.title, top.events, top.users
            ),
            format!("issue:{}", top.id),
            Some(top.url.clone()),
        );
    }
    for f in r.databases.iter().flat_map(|d| &d.index_advice) {
        add(
            format!("{} ({}): {}", f.target, f.kind.replace('_', " "), f.detail),
            format!("db:{}:{}", f.kind, f.object),
            Some(f.url.clone()),
        );
    }
    for s in r.services.iter().flat_map(|s| &s.services) {
        for m in &s.moved {
            add(
                format!(
                    "{}: {m}; look at its slowest transactions and newest deploys.",
                    s.name
                ),
                format!("service:{}", s.name),
                Some(s.url.clone()),
            );
        }
    }
    for b in r.backups.iter().flat_map(|b| &b.targets) {
        match b.last_drill_ok {
            Some(true) => {}
            Some(false) => add(
                format!("The newest restore drill of {} failed: a backup that does not restore is not a backup.", b.target),
                format!("backup:{}", b.target),
                Some(b.url.clone()),
            ),
            None => add(
                format!("{} has never been restored in a drill: schedule drills.", b.target),
                format!("backup:{}", b.target),
                Some(b.url.clone()),
            ),
        }
    }
    out
}
