//! Time windows: New Relic's defaults, relative and calendar times in a time zone, date-times,
//! COMPARE WITH and TIMESERIES widths, and the errors.

use lookout_nrql::parse;
use lookout_nrql::time::{utc_ms, window, Window};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Wednesday 2024-03-13 15:42 UTC.
fn now() -> i64 {
    utc_ms(2024, 3, 13, 15, 42)
}

fn w(clauses: &str) -> Window {
    window(
        &parse(&format!("SELECT count(*) FROM Transaction {clauses}")).unwrap(),
        now(),
    )
    .unwrap()
}

fn err(clauses: &str) -> String {
    window(
        &parse(&format!("SELECT count(*) FROM Transaction {clauses}")).unwrap(),
        now(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn the_default_window_is_the_last_hour_without_buckets() {
    assert_eq!(
        w(""),
        Window {
            since: now() - HOUR,
            until: now(),
            compare: None,
            bucket: None
        }
    );
}

#[test]
fn relative_epoch_and_quoted_times() {
    assert_eq!(w("SINCE 30 minutes ago").since, now() - 30 * MIN);
    assert_eq!(w("SINCE 2 weeks ago UNTIL 1 day ago").until, now() - DAY);
    assert_eq!(w("SINCE 1 month ago").since, now() - 30 * DAY);
    assert_eq!(w("SINCE 1710300000000").since, 1_710_300_000_000);
    assert_eq!(
        w("SINCE '2024-03-12 08:00'").since,
        utc_ms(2024, 3, 12, 8, 0)
    );
    assert_eq!(
        w("SINCE '2024-03-12T08:00:00Z'").since,
        utc_ms(2024, 3, 12, 8, 0)
    );
    assert_eq!(
        w("SINCE '2024-03-12 08:00 -06:00'").since,
        utc_ms(2024, 3, 12, 14, 0)
    );
    // Chicago is on daylight time (UTC-5) from 10 March 2024.
    assert_eq!(
        w("SINCE '2024-03-12 08:00 [America/Chicago]'").since,
        utc_ms(2024, 3, 12, 13, 0)
    );
    assert_eq!(w("SINCE '2024-03-12'").since, utc_ms(2024, 3, 12, 0, 0));
    assert_eq!(
        w("SINCE '2024-03-12 08:00' WITH TIMEZONE 'Europe/Paris'").since,
        utc_ms(2024, 3, 12, 7, 0)
    );
}

#[test]
fn calendar_words_follow_the_query_time_zone() {
    assert_eq!(w("SINCE today").since, utc_ms(2024, 3, 13, 0, 0));
    assert_eq!(
        w("SINCE yesterday UNTIL today").since,
        utc_ms(2024, 3, 12, 0, 0)
    );
    // Paris is UTC+1 in March: its midnight is 23:00 UTC the day before.
    assert_eq!(
        w("SINCE today WITH TIMEZONE 'Europe/Paris'").since,
        utc_ms(2024, 3, 12, 23, 0)
    );
    assert_eq!(w("SINCE monday").since, utc_ms(2024, 3, 11, 0, 0));
    assert_eq!(
        w("SINCE wednesday").since,
        utc_ms(2024, 3, 13, 0, 0),
        "today is Wednesday"
    );
    assert_eq!(w("SINCE thursday").since, utc_ms(2024, 3, 7, 0, 0));
    assert_eq!(w("SINCE this week").since, utc_ms(2024, 3, 11, 0, 0));
    assert_eq!(
        w("SINCE last week UNTIL this week").since,
        utc_ms(2024, 3, 4, 0, 0)
    );
    assert_eq!(w("SINCE this month").since, utc_ms(2024, 3, 1, 0, 0));
    assert_eq!(
        w("SINCE last month UNTIL this month").since,
        utc_ms(2024, 2, 1, 0, 0)
    );
    assert_eq!(w("SINCE this quarter").since, utc_ms(2024, 1, 1, 0, 0));
    assert_eq!(
        w("SINCE last year UNTIL this year").since,
        utc_ms(2023, 1, 1, 0, 0)
    );
    assert_eq!(w("SINCE this hour").since, utc_ms(2024, 3, 13, 15, 0));
    assert_eq!(
        w("SINCE yesterday AT '09:30'").since,
        utc_ms(2024, 3, 12, 9, 30)
    );
    // Today at 18:00 is still to come at 15:42: it means yesterday at 18:00.
    assert_eq!(
        w("SINCE today AT '18:00'").since,
        utc_ms(2024, 3, 12, 18, 0)
    );
}

#[test]
fn compare_with_shifts_the_window_and_timeseries_picks_widths() {
    let x = w("SINCE 1 day ago COMPARE WITH 1 week ago");
    assert_eq!(x.compare, Some((now() - 8 * DAY, now() - 7 * DAY)));
    assert_eq!(w("TIMESERIES").bucket, Some(MIN));
    // A day is hourly (New Relic: 30 minutes), so the hour rollups answer it.
    assert_eq!(w("SINCE 1 day ago TIMESERIES AUTO").bucket, Some(60 * MIN));
    assert_eq!(w("SINCE 1 week ago TIMESERIES AUTO").bucket, Some(6 * HOUR));
    assert_eq!(
        w("SINCE 1 day ago TIMESERIES 5 minutes").bucket,
        Some(5 * MIN)
    );
    // MAX: 366 buckets at most, whole minutes.
    assert_eq!(w("SINCE 1 week ago TIMESERIES MAX").bucket, Some(28 * MIN));
}

#[test]
fn impossible_windows_are_explained() {
    assert!(err("SINCE 1 hour ago UNTIL 2 hours ago").contains("SINCE must come before UNTIL"));
    assert!(err("SINCE 1 week ago TIMESERIES 1 minute").contains("more than 366 buckets"));
    assert!(err("WITH TIMEZONE 'Mars/Olympus'").contains("unknown time zone"));
    assert!(err("SINCE 'last tuesday-ish'").contains("is not a date-time"));
    assert!(err("SINCE yesterday AT '25:99'").contains("is not a time of day"));
}
