//! Time rules: when a cron job is expected to run, and when a maintenance window is open.
//!
//! Crontabs are evaluated in the schedule's own timezone (through `croner` and `chrono-tz`), so
//! "03:00 Europe/Paris" stays at 03:00 local time across DST changes, as cron itself behaves.

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

/// When a cron monitor expects its job: on a crontab in a timezone, or every N seconds.
#[derive(Debug, Clone)]
pub enum CronSchedule {
    /// Five-field crontab, evaluated in `tz`.
    Crontab {
        /// The parsed pattern.
        cron: Box<Cron>,
        /// Its timezone.
        tz: Tz,
    },
    /// Every `every_ms`, counted from the epoch (so slots are stable across restarts).
    Interval {
        /// The period.
        every_ms: i64,
    },
}

/// Parses an IANA timezone name (default UTC).
pub fn timezone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None | Some("") => Ok(Tz::UTC),
        Some(n) => n
            .parse::<Tz>()
            .map_err(|_| format!("unknown timezone {n:?} (use an IANA name like Europe/Paris)")),
    }
}

/// Parses a five-field crontab (also `@hourly`, `@daily`, …).
pub fn crontab(pattern: &str) -> Result<Cron, String> {
    Cron::new(pattern)
        .parse()
        .map_err(|e| format!("invalid crontab {pattern:?}: {e}"))
}

impl CronSchedule {
    /// A crontab in `tz`, or an interval when there is no crontab.
    pub fn new(
        crontab_pattern: Option<&str>,
        interval_seconds: u32,
        tz: Option<&str>,
    ) -> Result<Self, String> {
        let tz = timezone(tz)?;
        match crontab_pattern {
            Some(p) => Ok(CronSchedule::Crontab {
                cron: Box::new(crontab(p)?),
                tz,
            }),
            None => Ok(CronSchedule::Interval {
                every_ms: i64::from(interval_seconds.max(1)) * 1000,
            }),
        }
    }

    /// The first expected run strictly after `after_ms` (ms since the epoch).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match self {
            CronSchedule::Interval { every_ms } => {
                Some((after_ms.div_euclid(*every_ms) + 1) * every_ms)
            }
            CronSchedule::Crontab { cron, tz } => {
                let at = tz.timestamp_millis_opt(after_ms).single()?;
                cron.find_next_occurrence(&at, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc).timestamp_millis())
            }
        }
    }
}

/// How a maintenance window repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recurrence {
    /// A crontab for each start (`0 2 * * SUN`: Sundays at 02:00).
    pub crontab: String,
    /// How long each window lasts, minutes.
    pub duration_minutes: u32,
    /// The crontab's IANA timezone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A maintenance window: one-off (`starts_at`..`ends_at`) or recurring; alerts are suppressed
/// while it is open, results are still recorded.
#[derive(Debug, Clone)]
pub struct Window {
    /// One-off start, ms (for recurring windows: when the rule takes effect).
    pub starts_at: Option<i64>,
    /// One-off end, ms (for recurring windows: when the rule stops).
    pub ends_at: Option<i64>,
    /// The repeat rule, parsed.
    pub recurrence: Option<(Cron, Tz, i64)>,
}

impl Window {
    /// Builds a window; errors name what is wrong.
    pub fn new(
        starts_at: Option<i64>,
        ends_at: Option<i64>,
        recurrence: Option<&Recurrence>,
    ) -> Result<Window, String> {
        let recurrence = match recurrence {
            Some(r) => {
                if r.duration_minutes == 0 || r.duration_minutes > 7 * 24 * 60 {
                    return Err("recurrence.duration_minutes must be between 1 and 10080".into());
                }
                Some((
                    crontab(&r.crontab)?,
                    timezone(r.timezone.as_deref())?,
                    i64::from(r.duration_minutes) * 60_000,
                ))
            }
            None => {
                match (starts_at, ends_at) {
                    (Some(s), Some(e)) if e > s => {}
                    _ => return Err("a one-off window needs starts_at before ends_at".into()),
                }
                None
            }
        };
        Ok(Window {
            starts_at,
            ends_at,
            recurrence,
        })
    }

    /// Whether the window is open at `at_ms`.
    pub fn is_open(&self, at_ms: i64) -> bool {
        if self.starts_at.is_some_and(|s| at_ms < s) || self.ends_at.is_some_and(|e| at_ms >= e) {
            return false;
        }
        let Some((cron, tz, duration)) = &self.recurrence else {
            return true;
        };
        // The latest start at or before `at` is found by stepping from `at - duration`: any
        // start in (at - duration, at] means the window is open now.
        let Some(from) = tz.timestamp_millis_opt(at_ms - duration).single() else {
            return false;
        };
        match cron.find_next_occurrence(&from, false) {
            Ok(start) => start.with_timezone(&Utc).timestamp_millis() <= at_ms,
            Err(_) => false,
        }
    }

    /// When the opening in force at `at_ms` closes (`None` when the window is closed then): a
    /// one-off window's end, or a recurring window's current opening plus its duration, cut at
    /// the rule's end. "End maintenance now" ends a recurring window's opening by moving the
    /// rule's start here, so the openings after it are kept.
    pub fn open_until(&self, at_ms: i64) -> Option<i64> {
        if !self.is_open(at_ms) {
            return None;
        }
        let Some((cron, tz, duration)) = &self.recurrence else {
            return self.ends_at;
        };
        let from = tz.timestamp_millis_opt(at_ms - duration).single()?;
        let start = cron
            .find_next_occurrence(&from, false)
            .ok()?
            .with_timezone(&Utc)
            .timestamp_millis();
        let end = start + duration;
        Some(self.ends_at.map_or(end, |e| e.min(end)))
    }

    /// The next time the window opens after `at_ms` (for status-page notices).
    pub fn next_start(&self, at_ms: i64) -> Option<i64> {
        match &self.recurrence {
            None => self.starts_at.filter(|s| *s > at_ms),
            Some((cron, tz, _)) => {
                let from = tz
                    .timestamp_millis_opt(at_ms.max(self.starts_at.unwrap_or(0)))
                    .single()?;
                let next = cron
                    .find_next_occurrence(&from, false)
                    .ok()?
                    .with_timezone(&Utc)
                    .timestamp_millis();
                (self.ends_at.is_none_or(|e| next < e)).then_some(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn crontabs_keep_local_time_across_dst() {
        let s = CronSchedule::new(Some("0 3 * * *"), 60, Some("Europe/Paris")).unwrap();
        // Before the spring change (UTC+1), 03:00 local is 02:00Z; after it (UTC+2), 01:00Z.
        assert_eq!(
            s.next_after(ms("2026-03-28T12:00:00Z")),
            Some(ms("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.next_after(ms("2026-03-27T12:00:00Z")),
            Some(ms("2026-03-28T02:00:00Z"))
        );
    }

    #[test]
    fn intervals_are_aligned_slots() {
        let s = CronSchedule::new(None, 60, None).unwrap();
        assert_eq!(s.next_after(60_000), Some(120_000));
        assert_eq!(s.next_after(61_000), Some(120_000));
    }

    #[test]
    fn recurring_windows_open_and_close() {
        let w = Window::new(
            None,
            None,
            Some(&Recurrence {
                crontab: "0 2 * * SUN".into(),
                duration_minutes: 60,
                timezone: Some("UTC".into()),
            }),
        )
        .unwrap();
        // 2026-11-29 is a Sunday.
        assert!(w.is_open(ms("2026-11-29T02:00:00Z")));
        assert!(w.is_open(ms("2026-11-29T02:59:59Z")));
        assert!(!w.is_open(ms("2026-11-29T03:00:00Z")));
        assert!(!w.is_open(ms("2026-11-28T02:30:00Z")));
        assert_eq!(
            w.next_start(ms("2026-11-28T00:00:00Z")),
            Some(ms("2026-11-29T02:00:00Z"))
        );
        assert_eq!(
            w.open_until(ms("2026-11-29T02:20:00Z")),
            Some(ms("2026-11-29T03:00:00Z"))
        );
        assert_eq!(w.open_until(ms("2026-11-29T03:00:00Z")), None);
    }

    #[test]
    fn one_off_windows_need_an_order() {
        let w = Window::new(Some(10), Some(20), None).unwrap();
        assert!(!w.is_open(9) && w.is_open(10) && w.is_open(19) && !w.is_open(20));
        assert_eq!((w.open_until(15), w.open_until(20)), (Some(20), None));
        assert!(Window::new(Some(20), Some(10), None).is_err());
        assert!(Window::new(None, None, None).is_err());
    }
}
