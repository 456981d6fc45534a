//! The `cluster` source: Lookout's own replicas as policies see them. `replica.lost` (published
//! once by a surviving replica, see `cluster/watch.rs`) opens one incident per replica;
//! `replica.joined` opens an info incident when a policy asks for joins, and resolves the loss
//! of the same replica (a paused process that resumed; a restarted one has a new name).

use serde_json::Value;

use super::Seen;
use lookout_oncall::dedup::Severity;
use lookout_oncall::inbound::Action;
use lookout_store::events::DomainEvent;

/// The events a `cluster` condition may list.
const EVENTS: &[&str] = &["lost", "joined"];

/// Checks condition `i`'s `events`.
pub(super) fn validate(i: usize, events: &[String]) -> Result<(), String> {
    match events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        Some(e) => Err(format!(
            "conditions[{i}].events: {e:?} is not one of {}",
            EVENTS.join(", ")
        )),
        None => Ok(()),
    }
}

/// Whether a condition listing `events` matches: `lost` only when it lists none, so a policy
/// without `events` does not open an incident each time a replica starts.
pub(super) fn matches(events: &[String], seen: &Seen) -> bool {
    seen.name.strip_prefix("replica_").is_some_and(|e| {
        if events.is_empty() {
            e == "lost"
        } else {
            events.iter().any(|x| x == e)
        }
    })
}

fn seen(name: &'static str, signal: String, title: String) -> Seen {
    Seen {
        name,
        signal,
        title,
        monitor_id: None,
        project_id: None,
        issue_id: None,
        series: None,
        db_kind: None,
        db_target: None,
        backup_target: None,
        nrql: None,
        severity: None,
        priority_after: None,
    }
}

/// What a replica event means to policies; `None` for any other event.
pub(super) fn read(e: &DomainEvent) -> Option<(Seen, Action)> {
    let p = &e.payload;
    let str_of = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
    let replica = str_of("replica");
    match e.kind.as_str() {
        "replica.lost" => Some((
            seen(
                "replica_lost",
                format!("replica:{replica}"),
                format!(
                    "Lookout replica {replica} lost: no heartbeat for {} (seen by {})",
                    lookout_core::units::span(
                        p.get("silent_ms").and_then(Value::as_i64).unwrap_or(0)
                    ),
                    str_of("seen_by")
                ),
            ),
            Action::Trigger,
        )),
        "replica.joined" => {
            let mut s = seen(
                "replica_joined",
                format!("replica_joined:{replica}"),
                format!(
                    "Lookout replica {replica} joined (version {})",
                    str_of("version")
                ),
            );
            // A join is news, not a problem: info, whatever the policy's severity.
            s.severity = Some(Severity::Info);
            Some((s, Action::Trigger))
        }
        _ => None,
    }
}

/// The recovery a `replica.joined` also is: the loss of the same replica, if one is open.
pub(super) fn replica_back(e: &DomainEvent) -> Option<(Seen, Action)> {
    if e.kind != "replica.joined" {
        return None;
    }
    let replica = e.payload.get("replica").and_then(Value::as_str)?;
    Some((
        seen("replica_lost", format!("replica:{replica}"), String::new()),
        Action::Resolve,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str) -> DomainEvent {
        DomainEvent {
            seq: 1,
            kind: kind.into(),
            project_id: None,
            subject: Some("host-1-abc".into()),
            payload: json!({"replica": "host-1-abc", "version": "1.2.3", "silent_ms": 5_400,
                            "seen_by": "host-2-def"}),
            created_at: 0,
        }
    }

    #[test]
    fn a_lost_replica_pages_by_default_a_join_only_when_asked_and_resolves_its_loss() {
        let (lost, action) = read(&event("replica.lost")).unwrap();
        assert_eq!(action, Action::Trigger);
        assert_eq!(lost.signal, "replica:host-1-abc");
        assert_eq!(
            lost.title,
            "Lookout replica host-1-abc lost: no heartbeat for 5 s (seen by host-2-def)"
        );
        assert!(matches(&[], &lost));
        let (joined, _) = read(&event("replica.joined")).unwrap();
        assert_eq!(joined.severity, Some(Severity::Info));
        assert!(!matches(&[], &joined));
        assert!(matches(&["joined".into()], &joined));
        assert!(!matches(&["joined".into()], &lost));
        let (back, action) = replica_back(&event("replica.joined")).unwrap();
        assert_eq!(
            (back.signal.as_str(), action),
            ("replica:host-1-abc", Action::Resolve)
        );
        assert!(replica_back(&event("replica.lost")).is_none());
        assert!(read(&event("monitor.down")).is_none());
        assert!(validate(0, &["lost".into(), "joined".into()]).is_ok());
        assert_eq!(
            validate(2, &["gone".into()]).unwrap_err(),
            "conditions[2].events: \"gone\" is not one of lost, joined"
        );
    }
}
