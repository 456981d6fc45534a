//! Teams' domain checks and the on-call views built on them, written once for the API and the UI:
//! team slugs and names, the escalation policy a team is linked to, a user's next shifts from the
//! on-call schedules, and the iCalendar feed of those shifts.

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{teams, StoreError};

/// Longest team name, in characters.
pub const MAX_NAME: usize = 100;
/// How far ahead "my shifts" and the calendar feed look, in days.
pub const FEED_DAYS: i64 = 60;
/// Most shifts one answer carries (a 1-minute rotation would otherwise fill a feed).
pub const MAX_SHIFTS: usize = 500;

/// Checks a team slug: 1 to 50 lower-case letters, digits, `-` or `_` (written `#slug`).
pub fn validate_slug(slug: &str) -> ServiceResult<String> {
    let s = slug.trim().trim_start_matches('#').to_string();
    if s.is_empty()
        || s.len() > 50
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(ServiceError::Invalid(
            "slug: 1 to 50 lower-case letters, digits, dashes or underscores (like backend-oncall)"
                .into(),
        ));
    }
    Ok(s)
}

/// Checks a team name (1 to 100 characters).
pub fn validate_name(name: &str) -> ServiceResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "name: 1 to {MAX_NAME} characters"
        )));
    }
    Ok(n.to_string())
}

/// A slug made from a name (`Backend On-call` → `backend-on-call`).
pub fn slug_of(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(50).collect()
}

/// The escalation policy must exist.
pub async fn check_escalation(state: &AppState, id: Option<i64>) -> ServiceResult<()> {
    if let Some(id) = id {
        match astore::spec_get(state.store(), SpecTable::EscalationPolicies, id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Invalid(format!(
                    "escalation_policy_id: there is no escalation policy {id}"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Creates a team (slug from the name when not given).
pub async fn create(
    state: &AppState,
    name: &str,
    slug: Option<&str>,
    escalation_policy_id: Option<i64>,
) -> ServiceResult<teams::Team> {
    let name = validate_name(name)?;
    let slug = validate_slug(&slug.map_or_else(|| slug_of(&name), str::to_string))?;
    check_escalation(state, escalation_policy_id).await?;
    let org = lookout_store::tenancy::default_org(state.store()).await?;
    let t = teams::create(state.store(), org.id, &slug, &name).await?;
    let t = if escalation_policy_id.is_some() {
        teams::update(
            state.store(),
            t.id,
            &teams::TeamChanges {
                escalation_policy_id: Some(escalation_policy_id),
                ..Default::default()
            },
        )
        .await?
    } else {
        t
    };
    tracing::info!(team = t.id, slug = %t.slug, "Team created.");
    Ok(t)
}

/// One shift of a user on a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Shift {
    /// The schedule.
    pub schedule_id: i64,
    /// Its name.
    pub schedule: String,
    /// From, ms.
    pub start: i64,
    /// Until, ms.
    pub end: i64,
}

/// A user's shifts between `since` and `until` (ms) on every schedule, overrides included,
/// in time order; at most [`MAX_SHIFTS`].
pub async fn shifts_of(
    state: &AppState,
    user_id: i64,
    since: i64,
    until: i64,
) -> ServiceResult<Vec<Shift>> {
    let org = lookout_store::tenancy::default_org(state.store()).await?;
    let schedules = astore::spec_list(state.store(), SpecTable::Schedules, org.id).await?;
    let mut conn = state
        .store()
        .pool()
        .acquire()
        .await
        .map_err(StoreError::from)?;
    let mut out = Vec::new();
    for row in schedules {
        let Some(s) =
            crate::alerting::engine::schedule_with_overrides(&mut conn, row.id, since, until)
                .await?
        else {
            continue;
        };
        out.extend(
            s.render(since, until)
                .into_iter()
                .filter(|span| span.user == user_id)
                .map(|span| Shift {
                    schedule_id: row.id,
                    schedule: row.name.clone(),
                    start: span.start,
                    end: span.end,
                }),
        );
    }
    out.sort_by_key(|s| (s.start, s.schedule_id));
    out.truncate(MAX_SHIFTS);
    Ok(out)
}

/// iCalendar text escaping (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control() || *c == '\n').take(60) {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn ics_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// The iCalendar document of a user's shifts (one VEVENT per shift; UIDs stable across
/// refreshes so calendar apps update rather than duplicate them).
pub fn ical(who: &str, shifts: &[Shift], now: i64) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Lookout//On-call shifts//EN\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n",
    );
    out.push_str(&format!("X-WR-CALNAME:On call: {}\r\n", ics_text(who)));
    for s in shifts {
        out.push_str("BEGIN:VEVENT\r\n");
        out.push_str(&format!(
            "UID:lookout-shift-{}-{}@lookout\r\n",
            s.schedule_id, s.start
        ));
        out.push_str(&format!("DTSTAMP:{}\r\n", ics_time(now)));
        out.push_str(&format!("DTSTART:{}\r\n", ics_time(s.start)));
        out.push_str(&format!("DTEND:{}\r\n", ics_time(s.end)));
        out.push_str(&format!("SUMMARY:On call: {}\r\n", ics_text(&s.schedule)));
        out.push_str("END:VEVENT\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug_of("Backend On-call!"), "backend-on-call");
        assert!(validate_slug("#payments").is_ok());
        assert!(validate_slug("Pay ments").is_err());
        assert!(validate_slug("").is_err());
    }

    #[test]
    fn ical_escapes_and_is_crlf() {
        let s = [Shift {
            schedule_id: 3,
            schedule: "Ops; primary, EU".into(),
            start: 0,
            end: 3_600_000,
        }];
        let doc = ical("ada@example.com", &s, 0);
        assert!(
            doc.contains("SUMMARY:On call: Ops\\; primary\\, EU\r\n"),
            "{doc}"
        );
        assert!(doc.contains("DTSTART:19700101T000000Z\r\nDTEND:19700101T010000Z\r\n"));
        assert!(doc.ends_with("END:VCALENDAR\r\n"));
    }
}
