//! On-call schedules with PagerDuty's semantics, rendered into final spans.
//!
//! A schedule has layers and overrides. A layer rotates through its users: turn `k` starts at
//! `rotation_virtual_start + k · rotation_turn_length_seconds` and belongs to `users[k mod n]`,
//! only between the layer's `start` and `end`, and only inside its restrictions (daily or weekly
//! windows). Where several layers have someone, the later layer in the list (the higher one) wins;
//! where a higher layer has nobody (outside its restrictions), the time falls through to lower
//! layers. Overrides sit above every layer. Only one user is on call at any instant.
//!
//! Rotation and restriction times are wall-clock times in the schedule's time zone: a weekly
//! rotation that hands off Mondays at 09:00 in Europe/Berlin hands off at 09:00 local time on both
//! sides of a DST change, so the turn that spans the change is an hour shorter or longer. A
//! wall-clock time that does not exist (skipped by a spring-forward) is read with the offset in
//! force before the gap (02:30 becomes 03:30 local); one that exists twice (fall-back) is the
//! earlier of the two. This is written by hand because it *is* the product: no crate implements
//! PagerDuty's layer algorithm.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A schedule as the API stores and accepts it (PagerDuty's field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone for rotations and restrictions.
    pub time_zone: String,
    /// Layers, lowest first: later entries win where they have someone.
    #[serde(default)]
    pub schedule_layers: Vec<Layer>,
    /// Overrides, above all layers.
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// Off: nobody is on call on it (its layers and overrides are kept for when it is on
    /// again). Absent means on, so schedules stored before the flag existed stay on.
    #[serde(default = "on")]
    pub enabled: bool,
}

fn on() -> bool {
    true
}

/// One rotation layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// An optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the layer takes effect.
    #[serde(with = "rfc3339")]
    pub start: i64,
    /// When it stops (none: forever).
    #[serde(default, with = "rfc3339_opt")]
    pub end: Option<i64>,
    /// The anchor of the rotation; its time of day is the handoff time. May lie before `start`.
    #[serde(with = "rfc3339")]
    pub rotation_virtual_start: i64,
    /// Length of one turn (86400 daily, 604800 weekly, …).
    pub rotation_turn_length_seconds: i64,
    /// User ids in turn order.
    #[serde(deserialize_with = "user_ids")]
    pub users: Vec<i64>,
    /// Windows the layer is limited to; none means all the time.
    #[serde(default)]
    pub restrictions: Vec<Restriction>,
}

/// Which kind of restriction window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionKind {
    /// Every day from `start_time_of_day` for `duration_seconds`.
    DailyRestriction,
    /// Every week from `start_day_of_week` at `start_time_of_day` for `duration_seconds`.
    WeeklyRestriction,
}

/// A daily or weekly window in the schedule's time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restriction {
    /// `daily_restriction` or `weekly_restriction`.
    #[serde(rename = "type")]
    pub kind: RestrictionKind,
    /// `HH:MM:SS` (or `HH:MM`).
    pub start_time_of_day: String,
    /// How long the window lasts.
    pub duration_seconds: i64,
    /// ISO day of week, 1 = Monday … 7 = Sunday (weekly restrictions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_day_of_week: Option<u32>,
}

/// Someone on call in place of the layers between `start` and `end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Override {
    /// The override's id once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// From.
    #[serde(with = "rfc3339")]
    pub start: i64,
    /// Until.
    #[serde(with = "rfc3339")]
    pub end: i64,
    /// The user on call.
    #[serde(deserialize_with = "user_id")]
    pub user: i64,
}

/// One final on-call span: `user` from `start` (inclusive) to `end` (exclusive), ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The user on call.
    pub user: i64,
    /// From, ms since the epoch.
    pub start: i64,
    /// Until, ms since the epoch.
    pub end: i64,
}

/// Longest range one render may cover (a year), so a request cannot make the server loop.
pub const MAX_RENDER_MS: i64 = 366 * 86_400_000;
/// Shortest turn accepted (an hour would already be unusual; a minute is kept for tests).
const MIN_TURN_SECONDS: i64 = 60;

impl Schedule {
    /// Checks everything [`Schedule::render`] relies on; the message says which field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.tz()?;
        for (i, l) in self.schedule_layers.iter().enumerate() {
            let at = |f: &str| format!("schedule_layers[{i}].{f}");
            if l.rotation_turn_length_seconds < MIN_TURN_SECONDS {
                return Err(format!(
                    "{} must be at least {MIN_TURN_SECONDS}",
                    at("rotation_turn_length_seconds")
                ));
            }
            if l.rotation_turn_length_seconds > 366 * 86_400 {
                return Err(format!(
                    "{} must be at most a year",
                    at("rotation_turn_length_seconds")
                ));
            }
            if l.users.is_empty() {
                return Err(format!("{} must name at least one user", at("users")));
            }
            if l.end.is_some_and(|e| e <= l.start) {
                return Err(format!("{} must be after start", at("end")));
            }
            for (j, r) in l.restrictions.iter().enumerate() {
                let at = |f: &str| format!("schedule_layers[{i}].restrictions[{j}].{f}");
                parse_time_of_day(&r.start_time_of_day)
                    .ok_or_else(|| format!("{} must be HH:MM:SS", at("start_time_of_day")))?;
                let max = match r.kind {
                    RestrictionKind::DailyRestriction => 86_400,
                    RestrictionKind::WeeklyRestriction => 7 * 86_400,
                };
                if r.duration_seconds <= 0 || r.duration_seconds > max {
                    return Err(format!(
                        "{} must be between 1 and {max}",
                        at("duration_seconds")
                    ));
                }
                if r.kind == RestrictionKind::WeeklyRestriction
                    && !matches!(r.start_day_of_week, Some(1..=7))
                {
                    return Err(format!(
                        "{} must be 1 (Monday) to 7 (Sunday)",
                        at("start_day_of_week")
                    ));
                }
            }
        }
        for (i, o) in self.overrides.iter().enumerate() {
            if o.end <= o.start {
                return Err(format!("overrides[{i}].end must be after start"));
            }
        }
        Ok(())
    }

    /// The schedule's time zone.
    pub fn tz(&self) -> Result<Tz, String> {
        self.time_zone
            .parse::<Tz>()
            .map_err(|_| format!("time_zone: unknown IANA time zone {:?}", self.time_zone))
    }

    /// Every user id the schedule names (layers and overrides), for reference checks.
    pub fn user_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .schedule_layers
            .iter()
            .flat_map(|l| l.users.iter().copied())
            .chain(self.overrides.iter().map(|o| o.user))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The final spans between `since` and `until` (ms), in order, adjacent spans of the same
    /// user merged, times when nobody is on call left out. The range is capped at
    /// [`MAX_RENDER_MS`]. A schedule that fails [`Schedule::validate`], or is disabled,
    /// renders nothing: nobody is on call on it.
    pub fn render(&self, since: i64, until: i64) -> Vec<Span> {
        let Ok(tz) = self.tz() else {
            return Vec::new();
        };
        if !self.enabled {
            return Vec::new();
        }
        let until = until.min(since.saturating_add(MAX_RENDER_MS));
        if until <= since {
            return Vec::new();
        }
        let layers: Vec<Vec<Span>> = self
            .schedule_layers
            .iter()
            .map(|l| layer_spans(tz, l, since, until))
            .collect();
        let overrides: Vec<&Override> = self
            .overrides
            .iter()
            .filter(|o| o.start < until && o.end > since)
            .collect();
        let mut edges = vec![since, until];
        for s in layers.iter().flatten() {
            edges.extend([s.start, s.end]);
        }
        for o in &overrides {
            edges.extend([o.start.max(since), o.end.min(until)]);
        }
        edges.sort_unstable();
        edges.dedup();
        // Each layer's spans are sorted and the edges ascend, so one cursor per layer walks
        // forward: rendering is linear in the number of spans, even for a year of 1-minute turns.
        let mut cursors = vec![0usize; layers.len()];
        let mut out: Vec<Span> = Vec::new();
        for w in edges.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a < since || b > until {
                continue;
            }
            // The last override wins among overlapping ones (the most recently added).
            let from_override = overrides
                .iter()
                .rev()
                .find(|o| o.start <= a && a < o.end)
                .map(|o| o.user);
            let mut from_layers = None;
            for (i, spans) in layers.iter().enumerate().rev() {
                let c = &mut cursors[i];
                while *c < spans.len() && spans[*c].end <= a {
                    *c += 1;
                }
                if from_layers.is_none() {
                    if let Some(s) = spans.get(*c).filter(|s| s.start <= a) {
                        from_layers = Some(s.user);
                    }
                }
            }
            let Some(user) = from_override.or(from_layers) else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.user == user && last.end == a => last.end = b,
                _ => out.push(Span {
                    user,
                    start: a,
                    end: b,
                }),
            }
        }
        out
    }

    /// The user on call at `at`, if anyone.
    pub fn on_call_at(&self, at: i64) -> Option<i64> {
        self.render(at, at + 1).first().map(|s| s.user)
    }
}

/// The spans one layer covers within `[since, until)`, in order, not merged.
fn layer_spans(tz: Tz, l: &Layer, since: i64, until: i64) -> Vec<Span> {
    let lo = since.max(l.start);
    let hi = until.min(l.end.unwrap_or(i64::MAX));
    let turn = l.rotation_turn_length_seconds;
    if lo >= hi || l.users.is_empty() || turn < MIN_TURN_SECONDS {
        return Vec::new();
    }
    let anchor = local(tz, l.rotation_virtual_start);
    let index_at = |t: i64| (local(tz, t) - anchor).num_seconds().div_euclid(turn);
    // One turn of slack on each side: the wall-clock index of an instant inside a repeated
    // fall-back hour can be one off, and clipping takes care of the rest.
    let (first, last) = (index_at(lo) - 1, index_at(hi - 1) + 1);
    let n = l.users.len() as i64;
    let mut turns = Vec::new();
    for k in first..=last {
        let start = utc(tz, anchor + Duration::seconds(k * turn)).max(lo);
        let end = utc(tz, anchor + Duration::seconds((k + 1) * turn)).min(hi);
        if start < end {
            turns.push(Span {
                user: l.users[k.rem_euclid(n) as usize],
                start,
                end,
            });
        }
    }
    if l.restrictions.is_empty() {
        return turns;
    }
    let windows = restriction_windows(tz, &l.restrictions, lo, hi);
    let mut out = Vec::new();
    for t in &turns {
        for &(ws, we) in &windows {
            let (s, e) = (t.start.max(ws), t.end.min(we));
            if s < e {
                out.push(Span {
                    user: t.user,
                    start: s,
                    end: e,
                });
            }
        }
    }
    out.sort_by_key(|s| s.start);
    out
}

/// The restriction windows that touch `[lo, hi)`, as sorted, merged UTC ranges.
fn restriction_windows(tz: Tz, rs: &[Restriction], lo: i64, hi: i64) -> Vec<(i64, i64)> {
    // A weekly window may start up to a week before `lo` and still cover it.
    let first = local(tz, lo).date() - Duration::days(8);
    let last = local(tz, hi).date() + Duration::days(1);
    let mut out = Vec::new();
    for r in rs {
        let Some(tod) = parse_time_of_day(&r.start_time_of_day) else {
            continue;
        };
        let mut day: NaiveDate = first;
        while day <= last {
            let wanted = match r.kind {
                RestrictionKind::DailyRestriction => true,
                RestrictionKind::WeeklyRestriction => {
                    Some(day.weekday().number_from_monday()) == r.start_day_of_week
                }
            };
            if wanted {
                let from = day.and_time(tod);
                let to = from + Duration::seconds(r.duration_seconds);
                let (s, e) = (utc(tz, from).max(lo), utc(tz, to).min(hi));
                if s < e {
                    out.push((s, e));
                }
            }
            day += Duration::days(1);
        }
    }
    out.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(out.len());
    for (s, e) in out {
        match merged.last_mut() {
            Some(m) if s <= m.1 => m.1 = m.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// `HH:MM:SS` or `HH:MM`.
fn parse_time_of_day(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

/// Wall-clock time in `tz` at the instant `ms`.
fn local(tz: Tz, ms: i64) -> NaiveDateTime {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    tz.from_utc_datetime(&t.naive_utc()).naive_local()
}

/// The instant (ms) of wall-clock time `t` in `tz`: the earlier one when it occurs twice, and with
/// the offset before the gap when it does not occur at all.
fn utc(tz: Tz, t: NaiveDateTime) -> i64 {
    let dt = match tz.from_local_datetime(&t).earliest() {
        Some(dt) => dt.naive_utc(),
        None => {
            let before = tz
                .from_local_datetime(&(t - Duration::hours(3)))
                .earliest()
                .map(|d| d.offset().fix().local_minus_utc())
                .unwrap_or(0);
            t - Duration::seconds(i64::from(before))
        }
    };
    dt.and_utc().timestamp_millis()
}

/// Reads an RFC 3339 timestamp (any offset) into ms.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

mod rfc3339 {
    use super::*;
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&lookout_core::time::iso(*ms))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

mod rfc3339_opt {
    use super::*;
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&lookout_core::time::iso(*ms)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_rfc3339(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A user as a bare id, `{"id": 7}`, or PagerDuty's `{"user": {"id": 7}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserRef {
    Id(i64),
    Object { id: i64 },
    Nested { user: Box<UserRef> },
}

impl UserRef {
    fn id(&self) -> i64 {
        match self {
            UserRef::Id(id) | UserRef::Object { id } => *id,
            UserRef::Nested { user } => user.id(),
        }
    }
}

fn user_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    Ok(Vec::<UserRef>::deserialize(d)?
        .iter()
        .map(UserRef::id)
        .collect())
}

fn user_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(UserRef::deserialize(d)?.id())
}
