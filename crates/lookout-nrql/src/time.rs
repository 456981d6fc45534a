//! A query's time window, resolved against the clock: `SINCE` / `UNTIL` (relative, calendar
//! words in the query's `WITH TIMEZONE`, epoch milliseconds, date-times), New Relic's default of
//! the last hour, the `COMPARE WITH` window, and the `TIMESERIES` bucket width.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::ast::{Query, Time, Timeseries, Unit};

/// Why a query's times do not make a window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeError(pub String);

/// Most `TIMESERIES` buckets (New Relic's `MAX`).
pub const MAX_BUCKETS: i64 = 366;

/// A resolved window, `[since, until)` in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, inclusive.
    pub since: i64,
    /// End, exclusive.
    pub until: i64,
    /// The same window shifted back by `COMPARE WITH`.
    pub compare: Option<(i64, i64)>,
    /// `TIMESERIES` bucket width, ms.
    pub bucket: Option<i64>,
}

/// The window `q` asks for at `now_ms`.
pub fn window(q: &Query, now_ms: i64) -> Result<Window, TimeError> {
    let tz: Tz = match &q.timezone {
        Some(z) => z.parse().map_err(|_| {
            TimeError(format!(
                "unknown time zone '{z}' (use an IANA name such as 'Europe/Paris')"
            ))
        })?,
        None => Tz::UTC,
    };
    let since = match &q.since {
        Some(t) => resolve(t, now_ms, tz)?,
        None => now_ms - Unit::Hour.ms(),
    };
    let until = match &q.until {
        Some(t) => resolve(t, now_ms, tz)?,
        None => now_ms,
    };
    if since >= until {
        return Err(TimeError("SINCE must come before UNTIL".into()));
    }
    let bucket = match q.timeseries {
        None => None,
        Some(Timeseries::Auto) => Some(auto_bucket(until - since)),
        Some(Timeseries::Max) => {
            let w = (until - since + MAX_BUCKETS - 1) / MAX_BUCKETS;
            Some(((w + 59_999) / 60_000 * 60_000).max(60_000))
        }
        Some(Timeseries::Every(i)) => {
            let w = i.ms();
            if w < 1_000 {
                return Err(TimeError("TIMESERIES buckets are at least 1 second".into()));
            }
            if (until - since) / w > MAX_BUCKETS {
                return Err(TimeError(format!(
                    "TIMESERIES {i} over this window makes more than {MAX_BUCKETS} buckets (use a wider bucket or TIMESERIES MAX)"
                )));
            }
            Some(w)
        }
    };
    Ok(Window {
        since,
        until,
        compare: q.compare_with.map(|i| (since - i.ms(), until - i.ms())),
        bucket,
    })
}

/// `TIMESERIES AUTO`: New Relic's widths for common windows (1 hour → 1 minute, 1 week → 6
/// hours), a table rather than a formula because no one formula gives all — except that a day
/// gets hourly buckets where New Relic draws 30 minutes: whole hours are answered from the hour
/// rollups, 30-minute buckets would read every minute row of the day (1.5 s instead of
/// milliseconds for 200 transactions, measured with bench/nrql.sh).
pub fn auto_bucket(width_ms: i64) -> i64 {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    let table = [
        (3 * HOUR, MIN),
        (6 * HOUR, 5 * MIN),
        (12 * HOUR, 10 * MIN),
        (DAY, HOUR),
        (3 * DAY, HOUR),
        (7 * DAY, 6 * HOUR),
        (31 * DAY, DAY),
    ];
    table
        .iter()
        .find(|(upto, _)| width_ms <= *upto)
        .map_or(7 * DAY, |(_, w)| *w)
}

fn local_midnight(tz: Tz, date: NaiveDate) -> Result<DateTime<Tz>, TimeError> {
    at_local(tz, date.and_time(NaiveTime::MIN))
}

fn at_local(tz: Tz, t: NaiveDateTime) -> Result<DateTime<Tz>, TimeError> {
    // A time skipped by a daylight-saving change reads as the first valid one after it.
    tz.from_local_datetime(&t)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(t + Duration::hours(1))).earliest())
        .ok_or_else(|| TimeError(format!("{t} does not exist in {tz}")))
}

/// One `SINCE` / `UNTIL` time, in ms.
pub fn resolve(t: &Time, now_ms: i64, tz: Tz) -> Result<i64, TimeError> {
    let now = tz
        .timestamp_millis_opt(now_ms)
        .single()
        .ok_or_else(|| TimeError("the clock is out of range".into()))?;
    match t {
        Time::Now => Ok(now_ms),
        Time::Ago(i) => Ok(now_ms - i.ms()),
        Time::Epoch(ms) => Ok(*ms),
        Time::DateTime(s) => datetime(s, tz),
        Time::Calendar { name, at } => {
            let today = now.date_naive();
            let start = match name.as_str() {
                "today" => local_midnight(tz, today)?,
                "yesterday" => local_midnight(tz, today - Duration::days(1))?,
                "this hour" | "last hour" => {
                    let h = now.timestamp_millis() / 3_600_000 * 3_600_000;
                    let h = if name == "last hour" {
                        h - 3_600_000
                    } else {
                        h
                    };
                    return with_at(h, at, tz);
                }
                day if weekday(day).is_some() => {
                    let want = weekday(day).unwrap_or(0);
                    let back = (today.weekday().num_days_from_monday() + 7 - want) % 7;
                    local_midnight(tz, today - Duration::days(i64::from(back)))?
                }
                other => {
                    let (last, unit) = match other.split_once(' ') {
                        Some(("this", u)) => (false, u),
                        Some(("last", u)) => (true, u),
                        _ => return Err(TimeError(format!("unknown time '{other}'"))),
                    };
                    let first = period_start(today, unit, last)?;
                    local_midnight(tz, first)?
                }
            };
            let ms = start.timestamp_millis();
            // `TODAY AT` a time still to come means that time yesterday.
            let resolved = with_at(ms, at, tz)?;
            if name == "today" && resolved > now_ms && at.is_some() {
                return with_at(ms - 86_400_000, at, tz);
            }
            Ok(resolved)
        }
    }
}

fn weekday(name: &str) -> Option<u32> {
    crate::parser::WEEKDAYS
        .iter()
        .position(|d| *d == name)
        .map(|i| i as u32)
}

/// The first day of the `unit` (day, week, month, quarter, year) holding `today`, or of the
/// one before when `last`. Weeks start on Monday.
fn period_start(today: NaiveDate, unit: &str, last: bool) -> Result<NaiveDate, TimeError> {
    let bad = || TimeError(format!("no such period: {unit}"));
    let d = match unit {
        "day" => today - Duration::days(i64::from(last)),
        "week" => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            monday - Duration::days(7 * i64::from(last))
        }
        "month" | "quarter" | "year" => {
            let step = match unit {
                "month" => 1,
                "quarter" => 3,
                _ => 12,
            };
            let month0 = (today.month0() / step) * step;
            let mut index = today.year() * 12 + month0 as i32;
            if last {
                index -= step as i32;
            }
            NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
                .ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    Ok(d)
}

/// `ms` (a midnight or an hour) moved to the time of day `at`, when given.
fn with_at(ms: i64, at: &Option<String>, tz: Tz) -> Result<i64, TimeError> {
    let Some(at) = at else { return Ok(ms) };
    let time = NaiveTime::parse_from_str(at, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(at, "%H:%M"))
        .map_err(|_| TimeError(format!("'{at}' is not a time of day (HH:MM or HH:MM:SS)")))?;
    let day = tz
        .timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| TimeError("time out of range".into()))?
        .date_naive();
    Ok(at_local(tz, day.and_time(time))?.timestamp_millis())
}

/// A quoted date-time: RFC 3339, or `YYYY-MM-DD[ T]HH:MM[:SS]` in the query's zone with an
/// optional offset (`-06:00`) or zone (`[America/Chicago]`) after it, or a bare date.
fn datetime(s: &str, tz: Tz) -> Result<i64, TimeError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let (body, zone) = match s.split_once('[') {
        Some((b, z)) => (b.trim(), Some(z.trim_end_matches(']').trim())),
        None => (s, None),
    };
    let tz = match zone {
        Some(z) => z
            .parse::<Tz>()
            .map_err(|_| TimeError(format!("unknown time zone '{z}'")))?,
        None => tz,
    };
    let normalised = body.replacen('T', " ", 1);
    // A trailing UTC offset.
    for fmt in [
        "%Y-%m-%d %H:%M:%S %:z",
        "%Y-%m-%d %H:%M %:z",
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%d %H:%M%:z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(&normalised, fmt) {
            return Ok(t.timestamp_millis());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&normalised, fmt) {
            return Ok(at_local(tz, t)?.timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(body, "%Y-%m-%d") {
        return Ok(local_midnight(tz, d)?.timestamp_millis());
    }
    Err(TimeError(format!(
        "'{s}' is not a date-time (use '2024-03-01 14:30', '2024-03-01T14:30:00Z' or epoch milliseconds)"
    )))
}

/// Milliseconds since the epoch of a UTC date-time, for tests and callers that build windows.
pub fn utc_ms(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .map_or(0, |t| t.timestamp_millis())
}
