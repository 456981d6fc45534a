//! When reports are made: every day at the organization's time of day, on its weekday for the
//! weekly review and on its day of the month for the monthly deep dive, in its time zone. The
//! `reports.run` job (every minute, on whichever replica claims it) makes the newest due report
//! of each kind unless one exists for that moment, stores it and queues its delivery; missed
//! moments while no replica ran are not made up afterwards, only the newest.

use chrono::{Datelike, NaiveDate, NaiveTime, TimeZone, Weekday};

use super::model::Kind;
use super::{build_for, deliver, Request, Settings};
use crate::alerting::Alerting;
use lookout_store::reports::{self as rstore, NewReport};
use lookout_store::{tenancy, Result};

/// The job's name and period.
pub const JOB: &str = "reports.run";
pub const EVERY_MS: i64 = 60_000;

/// `HH:MM` as (hour, minute).
pub fn time_of_day(s: &str) -> std::result::Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("time_of_day: {s:?} is not HH:MM"))
}

/// `monday` … `sunday`.
pub fn weekday(s: &str) -> std::result::Result<Weekday, String> {
    s.parse::<Weekday>()
        .map_err(|_| format!("weekly_day: {s:?} is not a weekday"))
}

/// The local moment `time` on `date` in `tz` (the earlier one when clocks go back; an hour
/// later when that time does not exist because clocks go forward).
fn local(tz: chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> Option<i64> {
    let naive = date.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
}

/// The newest scheduled moment of `kind` at or before `now`, ms. Written here rather than with
/// the cron crate the uptime monitors use: this needs the newest moment *before* now, which
/// croner 2 (the version here) does not search, and a report schedule is three fields, not a
/// crontab.
pub fn due(kind: Kind, s: &Settings, now: i64) -> Option<i64> {
    let tz = s.tz().ok()?;
    let time = time_of_day(&s.time_of_day).ok()?;
    let wd = weekday(&s.weekly_day).ok()?;
    let today = tz.timestamp_millis_opt(now).single()?.date_naive();
    // 62 days back always holds a due day of every kind.
    (0..62).find_map(|back| {
        let d = today - chrono::Duration::days(back);
        let matches = match kind {
            Kind::Daily => true,
            Kind::Weekly => d.weekday() == wd,
            Kind::Monthly => d.day() == s.monthly_day,
        };
        local(tz, d, time).filter(|&t| matches && t <= now)
    })
}

fn enabled(kind: Kind, s: &Settings) -> bool {
    match kind {
        Kind::Daily => s.daily,
        Kind::Weekly => s.weekly,
        Kind::Monthly => s.monthly,
    }
}

/// One pass: makes the newest due report of each enabled kind that is not made yet, then
/// sends what is due. Returns the reports made.
pub async fn run(a: &Alerting, now: i64) -> Result<Vec<i64>> {
    let store = a.store();
    let org = tenancy::default_org(store).await?;
    let settings = Settings::load(store, org.id).await?;
    let since = rstore::org_created_at(store, org.id).await?;
    let mut made = Vec::new();
    for kind in Kind::ALL {
        if !enabled(kind, &settings) {
            continue;
        }
        // Nothing is reported for moments before the organization existed.
        let Some(end) = due(kind, &settings, now).filter(|&t| t >= since) else {
            continue;
        };
        if let Some(last) = rstore::newest_scheduled(store, org.id, kind.as_str()).await? {
            if last.period_end >= end {
                continue;
            }
        }
        let report = build_for(
            store,
            &Request {
                kind,
                end,
                base_url: a.public_url().to_string(),
                now,
            },
            &org,
            &settings,
        )
        .await?;
        let body = serde_json::to_value(&report).unwrap_or_default();
        let row = rstore::insert(
            store,
            &NewReport {
                org_id: org.id,
                kind: kind.as_str(),
                period_start: report.period.start,
                period_end: end,
                scheduled: true,
                body: &body,
                channels: &settings.channel_ids,
                now,
            },
        )
        .await?;
        if let Some(row) = row {
            tracing::info!(
                report = row.id,
                kind = kind.as_str(),
                "Made the scheduled report."
            );
            made.push(row.id);
        }
    }
    deliver::send_due(a, now).await?;
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    fn settings(tz: &str) -> Settings {
        Settings {
            timezone: tz.into(),
            time_of_day: "08:30".into(),
            weekly_day: "monday".into(),
            monthly_day: 1,
            ..Settings::default()
        }
    }

    #[test]
    fn due_moments_follow_the_local_calendar() {
        let s = settings("Europe/Berlin");
        // Sunday 29 Nov 2026, 09:00 in Berlin (08:00 UTC): today's 08:30 Berlin has passed.
        let now = ms("2026-11-29T08:00:00Z");
        assert_eq!(due(Kind::Daily, &s, now), Some(ms("2026-11-29T07:30:00Z")));
        // The newest Monday is the 23rd.
        assert_eq!(due(Kind::Weekly, &s, now), Some(ms("2026-11-23T07:30:00Z")));
        assert_eq!(
            due(Kind::Monthly, &s, now),
            Some(ms("2026-11-01T07:30:00Z"))
        );
        // Just before 08:30 local: yesterday's.
        let early = ms("2026-11-29T07:29:00Z");
        assert_eq!(
            due(Kind::Daily, &s, early),
            Some(ms("2026-11-28T07:30:00Z"))
        );
    }

    #[test]
    fn summer_time_moves_the_utc_moment() {
        let s = settings("America/New_York");
        // 1 July: UTC−4, so 08:30 local is 12:30 UTC.
        assert_eq!(
            due(Kind::Daily, &s, ms("2026-07-01T13:00:00Z")),
            Some(ms("2026-07-01T12:30:00Z"))
        );
        // 1 December: UTC−5.
        assert_eq!(
            due(Kind::Daily, &s, ms("2026-12-01T14:00:00Z")),
            Some(ms("2026-12-01T13:30:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_the_clock_change_runs_an_hour_later() {
        let mut s = settings("Europe/Berlin");
        s.time_of_day = "02:30".into();
        // 29 March 2026: 02:00 → 03:00 in Berlin; 02:30 does not exist, 03:30 CEST = 01:30 UTC.
        assert_eq!(
            due(Kind::Daily, &s, ms("2026-03-29T05:00:00Z")),
            Some(ms("2026-03-29T01:30:00Z"))
        );
    }
}
