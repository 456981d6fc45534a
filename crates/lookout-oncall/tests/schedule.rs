//! Table-driven checks of schedule rendering: rotations, restrictions, layer precedence,
//! overrides and DST, each against the spans a person would work out by hand.

use lookout_oncall::schedule::{parse_rfc3339, Schedule};
use serde_json::json;

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn schedule(v: serde_json::Value) -> Schedule {
    let s: Schedule = serde_json::from_value(v).unwrap();
    s.validate().unwrap();
    s
}

/// Renders and prints as (user, start, end) in RFC 3339 UTC, for readable expectations.
fn spans(s: &Schedule, since: &str, until: &str) -> Vec<(i64, String, String)> {
    s.render(t(since), t(until))
        .into_iter()
        .map(|x| {
            (
                x.user,
                lookout_core::time::iso(x.start),
                lookout_core::time::iso(x.end),
            )
        })
        .collect()
}

fn row(u: i64, a: &str, b: &str) -> (i64, String, String) {
    (u, t_iso(a), t_iso(b))
}

fn t_iso(s: &str) -> String {
    lookout_core::time::iso(t(s))
}

#[test]
fn daily_rotation_hands_off_at_the_virtual_start_time_of_day() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{
            "start": "2026-01-01T00:00:00Z",
            "rotation_virtual_start": "2026-01-01T09:00:00Z",
            "rotation_turn_length_seconds": 86400,
            "users": [1, 2, 3]
        }]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z"),
        vec![
            // Before the virtual start's first handoff, turn -1 belongs to the last user.
            row(3, "2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z"),
            row(1, "2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z"),
            row(2, "2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z"),
            row(3, "2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z"),
            row(1, "2026-01-04T09:00:00Z", "2026-01-04T12:00:00Z"),
        ]
    );
    assert_eq!(s.on_call_at(t("2026-01-02T08:59:59Z")), Some(1));
    assert_eq!(s.on_call_at(t("2026-01-02T09:00:00Z")), Some(2));
    // 100 days later the rotation is still in step: 2026-04-11 10:00 is in turn 100, and
    // 100 mod 3 = 1 is the second user.
    assert_eq!(s.on_call_at(t("2026-04-11T10:00:00Z")), Some(2));
}

#[test]
fn a_layer_is_empty_before_its_start_and_after_its_end() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{
            "start": "2026-01-02T00:00:00Z",
            "end": "2026-01-03T00:00:00Z",
            "rotation_virtual_start": "2025-12-01T00:00:00Z",
            "rotation_turn_length_seconds": 604800,
            "users": [7]
        }]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T00:00:00Z", "2026-01-05T00:00:00Z"),
        vec![row(7, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")]
    );
    assert_eq!(s.on_call_at(t("2026-01-04T00:00:00Z")), None);
}

#[test]
fn weekday_business_hours_restriction_leaves_nights_and_weekends_empty() {
    // Weekly rotation, restricted to 09:00–17:00 Monday to Friday (five daily windows expressed
    // as one weekly window each).
    let restrictions: Vec<_> = (1..=5)
        .map(|d| {
            json!({"type": "weekly_restriction", "start_day_of_week": d,
                         "start_time_of_day": "09:00:00", "duration_seconds": 8 * 3600})
        })
        .collect();
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{
            "start": "2026-01-01T00:00:00Z",
            "rotation_virtual_start": "2026-01-05T00:00:00Z",
            "rotation_turn_length_seconds": 604800,
            "users": [1, 2],
            "restrictions": restrictions
        }]
    }));
    // 2026-01-09 is a Friday, 01-12 a Monday (user 2's week).
    assert_eq!(
        spans(&s, "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"),
        vec![
            row(1, "2026-01-09T09:00:00Z", "2026-01-09T17:00:00Z"),
            row(2, "2026-01-12T09:00:00Z", "2026-01-12T17:00:00Z"),
        ]
    );
    assert_eq!(s.on_call_at(t("2026-01-10T12:00:00Z")), None, "Saturday");
}

#[test]
fn daily_restriction_across_midnight() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{
            "start": "2026-01-01T00:00:00Z",
            "rotation_virtual_start": "2026-01-01T00:00:00Z",
            "rotation_turn_length_seconds": 86400,
            "users": [1, 2],
            "restrictions": [{"type": "daily_restriction", "start_time_of_day": "22:00:00",
                              "duration_seconds": 28800}]
        }]
    }));
    // The night shift 22:00–06:00 crosses the midnight handoff, so it splits between users.
    assert_eq!(
        spans(&s, "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"),
        vec![
            row(1, "2026-01-01T22:00:00Z", "2026-01-02T00:00:00Z"),
            row(2, "2026-01-02T00:00:00Z", "2026-01-02T06:00:00Z"),
        ]
    );
}

#[test]
fn higher_layer_wins_where_it_has_someone_and_falls_through_elsewhere() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [
            { "start": "2026-01-01T00:00:00Z",
              "rotation_virtual_start": "2026-01-01T00:00:00Z",
              "rotation_turn_length_seconds": 604800, "users": [1] },
            { "start": "2026-01-01T00:00:00Z",
              "rotation_virtual_start": "2026-01-01T00:00:00Z",
              "rotation_turn_length_seconds": 86400, "users": [2, 3],
              "restrictions": [{"type": "daily_restriction", "start_time_of_day": "09:00:00",
                                "duration_seconds": 28800}] }
        ]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z"),
        vec![
            row(1, "2026-01-01T00:00:00Z", "2026-01-01T09:00:00Z"),
            row(2, "2026-01-01T09:00:00Z", "2026-01-01T17:00:00Z"),
            row(1, "2026-01-01T17:00:00Z", "2026-01-02T09:00:00Z"),
            row(3, "2026-01-02T09:00:00Z", "2026-01-02T12:00:00Z"),
        ]
    );
}

#[test]
fn overrides_sit_above_every_layer_and_the_newest_wins() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{ "start": "2026-01-01T00:00:00Z",
              "rotation_virtual_start": "2026-01-01T00:00:00Z",
              "rotation_turn_length_seconds": 86400, "users": [1] }],
        "overrides": [
            {"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T14:00:00Z", "user": 5},
            {"start": "2026-01-01T12:00:00Z", "end": "2026-01-01T13:00:00Z", "user": {"id": 6}}
        ]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T08:00:00Z", "2026-01-01T16:00:00Z"),
        vec![
            row(1, "2026-01-01T08:00:00Z", "2026-01-01T10:00:00Z"),
            row(5, "2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z"),
            row(6, "2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z"),
            row(5, "2026-01-01T13:00:00Z", "2026-01-01T14:00:00Z"),
            row(1, "2026-01-01T14:00:00Z", "2026-01-01T16:00:00Z"),
        ]
    );
}

#[test]
fn an_override_covers_time_with_nobody_on_call() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "overrides": [{"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T11:00:00Z", "user": 9}]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        vec![row(9, "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z")]
    );
}

#[test]
fn weekly_handoff_stays_at_local_time_across_spring_forward() {
    // Berlin: 2026-03-29 02:00 CET → 03:00 CEST. Handoff every Monday 09:00 local.
    let s = schedule(json!({
        "time_zone": "Europe/Berlin",
        "schedule_layers": [{
            "start": "2026-03-01T00:00:00Z",
            "rotation_virtual_start": "2026-03-23T09:00:00+01:00",
            "rotation_turn_length_seconds": 604800,
            "users": [1, 2]
        }]
    }));
    assert_eq!(
        spans(&s, "2026-03-23T08:00:00Z", "2026-04-06T08:00:00Z"),
        vec![
            // 09:00 CET = 08:00Z; the next handoff is 09:00 CEST = 07:00Z: a 167-hour turn.
            row(1, "2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"),
            row(2, "2026-03-30T07:00:00Z", "2026-04-06T07:00:00Z"),
            row(1, "2026-04-06T07:00:00Z", "2026-04-06T08:00:00Z"),
        ]
    );
}

#[test]
fn daily_handoff_and_restriction_stay_at_local_time_across_fall_back() {
    // New York: 2026-11-01 02:00 EDT → 01:00 EST. Daily handoff at 08:00 local; shifts limited
    // to 08:00–20:00 local.
    let s = schedule(json!({
        "time_zone": "America/New_York",
        "schedule_layers": [{
            "start": "2026-10-01T00:00:00Z",
            "rotation_virtual_start": "2026-10-31T08:00:00-04:00",
            "rotation_turn_length_seconds": 86400,
            "users": [1, 2],
            "restrictions": [{"type": "daily_restriction", "start_time_of_day": "08:00",
                              "duration_seconds": 43200}]
        }]
    }));
    assert_eq!(
        spans(&s, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
        vec![
            row(1, "2026-10-31T12:00:00Z", "2026-11-01T00:00:00Z"), // EDT: 08:00 = 12:00Z
            row(2, "2026-11-01T13:00:00Z", "2026-11-02T01:00:00Z"), // EST: 08:00 = 13:00Z
            row(1, "2026-11-02T13:00:00Z", "2026-11-03T00:00:00Z"),
        ]
    );
}

#[test]
fn a_handoff_inside_the_skipped_hour_happens_when_the_clock_resumes() {
    // Handoff at 02:30 local; on 2026-03-08 New York skips 02:00–03:00, so that day's handoff
    // is read with the offset before the gap: 02:30 EST = 07:30Z (03:30 EDT).
    let s = schedule(json!({
        "time_zone": "America/New_York",
        "schedule_layers": [{
            "start": "2026-03-01T00:00:00Z",
            "rotation_virtual_start": "2026-03-06T02:30:00-05:00",
            "rotation_turn_length_seconds": 86400,
            "users": [1, 2]
        }]
    }));
    let got = spans(&s, "2026-03-07T12:00:00Z", "2026-03-09T12:00:00Z");
    assert_eq!(
        got,
        vec![
            row(2, "2026-03-07T12:00:00Z", "2026-03-08T07:30:00Z"),
            row(1, "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"), // 02:30 EDT = 06:30Z
            row(2, "2026-03-09T06:30:00Z", "2026-03-09T12:00:00Z"),
        ]
    );
}

#[test]
fn validation_names_the_field() {
    let bad = |v: serde_json::Value| {
        let s: Schedule = serde_json::from_value(v).unwrap();
        s.validate().unwrap_err()
    };
    let layer = |extra: serde_json::Value| {
        let mut l = json!({"start": "2026-01-01T00:00:00Z",
            "rotation_virtual_start": "2026-01-01T00:00:00Z",
            "rotation_turn_length_seconds": 86400, "users": [1]});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        json!({"time_zone": "UTC", "schedule_layers": [l]})
    };
    assert!(bad(json!({"time_zone": "Mars/Olympus"})).contains("time_zone"));
    assert!(bad(layer(json!({"users": []}))).contains("schedule_layers[0].users"));
    assert!(bad(layer(json!({"rotation_turn_length_seconds": 0})))
        .contains("rotation_turn_length_seconds"));
    assert!(bad(layer(
        json!({"restrictions": [{"type": "weekly_restriction",
        "start_time_of_day": "09:00:00", "duration_seconds": 60}]})
    ))
    .contains("start_day_of_week"));
    assert!(
        bad(layer(json!({"restrictions": [{"type": "daily_restriction",
        "start_time_of_day": "25:00", "duration_seconds": 60}]})))
        .contains("start_time_of_day")
    );
    assert!(serde_json::from_value::<Schedule>(json!({"time_zone": "UTC", "bogus": 1})).is_err());
}

#[test]
fn render_range_is_capped() {
    let s = schedule(json!({
        "time_zone": "UTC",
        "schedule_layers": [{ "start": "2000-01-01T00:00:00Z",
              "rotation_virtual_start": "2000-01-01T00:00:00Z",
              "rotation_turn_length_seconds": 60, "users": [1, 2] }]
    }));
    let r = s.render(t("2000-01-01T00:00:00Z"), t("2100-01-01T00:00:00Z"));
    assert_eq!(
        r.last().unwrap().end - r[0].start,
        lookout_oncall::schedule::MAX_RENDER_MS
    );
}

#[test]
fn a_disabled_schedule_has_nobody_on_call_not_even_an_override() {
    let mut s = schedule(json!({
        "time_zone": "UTC",
        "enabled": false,
        "schedule_layers": [{
            "start": "2026-01-01T00:00:00Z",
            "rotation_virtual_start": "2026-01-01T09:00:00Z",
            "rotation_turn_length_seconds": 86400,
            "users": [1, 2]
        }],
        "overrides": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-03T00:00:00Z", "user": 3}]
    }));
    assert_eq!(
        spans(&s, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),
        vec![]
    );
    assert_eq!(s.on_call_at(t("2026-01-02T12:00:00Z")), None);
    // Switched back on, the same layers and override answer again.
    s.enabled = true;
    assert_eq!(s.on_call_at(t("2026-01-02T12:00:00Z")), Some(3));
    assert_eq!(s.on_call_at(t("2026-01-03T12:00:00Z")), Some(1));
}
