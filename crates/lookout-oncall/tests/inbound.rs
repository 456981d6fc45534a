//! Inbound parsers against the bodies real senders produce.

use lookout_oncall::dedup::{Grouping, Severity, Urgency};
use lookout_oncall::inbound::{self, Action, Mapping};
use serde_json::json;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn bytes(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn pagerduty_trigger_as_the_docs_show_it() {
    let (key, s) = inbound::pagerduty(&bytes(json!({
        "payload": {"summary": "DISK at 99% on machine prod-datapipe03.example.com",
                    "timestamp": "2015-07-17T08:42:58.315+0000", "severity": "critical",
                    "source": "prod-datapipe03.example.com", "component": "mysql",
                    "group": "prod-datapipe", "class": "disk",
                    "custom_details": {"free space": "1%"}},
        "routing_key": KEY, "dedup_key": "samplekeyhere", "event_action": "trigger",
        "client": "Sample Monitoring Service", "client_url": "https://monitoring.example.com",
        "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}]
    })))
    .unwrap();
    assert_eq!(key, KEY);
    assert_eq!(s.action, Action::Trigger);
    assert_eq!(s.dedup_key.as_deref(), Some("samplekeyhere"));
    assert_eq!(s.severity, Severity::Critical);
    assert_eq!(s.severity.urgency(), Urgency::High);
    assert_eq!(s.source.as_deref(), Some("prod-datapipe03.example.com"));
    assert_eq!(s.details["custom_details"]["free space"], "1%");
    assert_eq!(s.links.len(), 2);
}

#[test]
fn pagerduty_errors_list_every_bad_field() {
    let e = inbound::pagerduty(&bytes(json!({
        "routing_key": "short", "event_action": "trigger",
        "payload": {"summary": "", "severity": "bad"}
    })))
    .unwrap_err();
    assert_eq!(e.message, "Event object is invalid");
    let all = e.errors.join("\n");
    for needle in [
        "routing_key",
        "payload.summary",
        "payload.source",
        "payload.severity",
    ] {
        assert!(all.contains(needle), "{needle} missing from {all}");
    }
    let e = inbound::pagerduty(&bytes(
        json!({"routing_key": KEY, "event_action": "resolve"}),
    ))
    .unwrap_err();
    assert!(e.errors[0].contains("dedup_key"));
    assert!(inbound::pagerduty(b"{not json").is_err());
    let long = "x".repeat(256);
    let e = inbound::pagerduty(&bytes(
        json!({"routing_key": KEY, "event_action": "resolve",
        "dedup_key": long}),
    ))
    .unwrap_err();
    assert!(e.errors.join(" ").contains("255"));
}

#[test]
fn alertmanager_group_becomes_one_signal_per_fingerprint() {
    let body = bytes(json!({
        "receiver": "lookout", "status": "firing", "version": "4",
        "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
        "externalURL": "http://am:9093",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency", "severity": "warning"},
        "commonAnnotations": {},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLatency", "instance": "a:9100",
              "severity": "critical"}, "annotations": {"summary": "p99 over 2s"},
             "startsAt": "2026-11-28T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prom/graph", "fingerprint": "aaaa"},
            {"status": "resolved", "labels": {"alertname": "HighLatency", "instance": "b:9100"},
             "annotations": {}, "startsAt": "2026-11-28T10:00:00Z",
             "endsAt": "2026-11-28T10:05:00Z", "fingerprint": "bbbb"}
        ]
    }));
    let s = inbound::alertmanager(&body).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].action, Action::Trigger);
    assert_eq!(s[0].title, "HighLatency: p99 over 2s");
    assert_eq!(s[0].dedup_key.as_deref(), Some("aaaa"));
    assert_eq!(s[0].severity, Severity::Critical);
    assert_eq!(s[0].source.as_deref(), Some("a:9100"));
    // Alertmanager spells the links `generatorURL` and `externalURL`: both reach the incident.
    let links: Vec<&str> = s[0].links.iter().map(|l| l.href.as_str()).collect();
    assert_eq!(links, ["http://prom/graph", "http://am:9093"]);
    assert_eq!(s[1].action, Action::Resolve);
    assert_eq!(s[1].title, "HighLatency");
    assert_eq!(
        s[1].severity,
        Severity::Warning,
        "falls back to the common label"
    );
    assert!(inbound::alertmanager(&bytes(json!({"version": "9", "alerts": []}))).is_err());
}

#[test]
fn generic_webhook_mapping() {
    let m: Mapping = serde_json::from_value(json!({
        "title": "$.check.name", "severity": "$.level", "dedup_key": "$.check.id",
        "status": "$.state", "resolve_values": ["UP"]
    }))
    .unwrap();
    m.validate().unwrap();
    let s = inbound::mapped(
        &bytes(json!({"check": {"name": "api down", "id": 42}, "level": "warn", "state": "DOWN"})),
        &m,
    )
    .unwrap();
    assert_eq!((s.action, s.title.as_str()), (Action::Trigger, "api down"));
    assert_eq!(s.dedup_key.as_deref(), Some("42"));
    assert_eq!(s.severity, Severity::Warning);
    let s = inbound::mapped(
        &bytes(json!({"check": {"name": "x", "id": 42}, "state": "UP"})),
        &m,
    )
    .unwrap();
    assert_eq!(s.action, Action::Resolve);
    let e = inbound::mapped(&bytes(json!({"nothing": 1})), &m).unwrap_err();
    assert!(e.errors[0].contains("$.check.name"));
    let bad: Mapping = serde_json::from_value(json!({"title": "$[bad"})).unwrap();
    assert!(bad.validate().is_err());
}

#[test]
fn grouping_keys() {
    assert_eq!(Grouping::PerPolicy.key(2, "m:1"), "policy");
    assert_eq!(Grouping::PerCondition.key(2, "m:1"), "condition:2");
    assert_eq!(Grouping::PerSignal.key(2, "m:1"), "condition:2:m:1");
    assert!(Grouping::PerSignal.key(0, &"é".repeat(300)).len() <= 255);
}
