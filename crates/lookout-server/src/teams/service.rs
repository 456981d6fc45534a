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

/// Whether a rules text names the team `slug` as an owner (`#slug`, `@slug`, `@org/slug`), by
/// tokens alone: cheaper than parsing every project's rules, and it finds the name even in
/// rules an older version saved.
fn names_team(raw: &str, slug: &str) -> Option<usize> {
    raw.lines().enumerate().find_map(|(i, l)| {
        let l = l.trim();
        if l.starts_with('#') {
            return None;
        }
        l.split_whitespace()
            .skip(1)
            .any(|t| {
                let name = t.strip_prefix('#').or_else(|| {
                    t.strip_prefix('@')
                        .map(|n| n.rsplit('/').next().unwrap_or(n))
                });
                name.is_some_and(|n| n.eq_ignore_ascii_case(slug))
            })
            .then_some(i + 1)
    })
}

/// Refuses renaming a team whose slug ownership rules name: the rules would silently stop
/// assigning (they match teams by slug). The message names the project and the line to change.
pub async fn check_rename(state: &AppState, team_id: i64, new_slug: &str) -> ServiceResult<()> {
    let t = teams::get(state.store(), team_id)
        .await
        .map_err(ServiceError::not_found("team"))?;
    if t.slug == new_slug {
        return Ok(());
    }
    for (project, raw) in lookout_store::errors::triage::ownership_texts(state.store()).await? {
        if let Some(line) = names_team(&raw, &t.slug) {
            return Err(ServiceError::Invalid(format!(
                "slug: the ownership rules of project {project} name #{} (line {line}); change them first",
                t.slug
            )));
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
    let t = teams::create(state.store(), org.id, &slug, &name, escalation_policy_id).await?;
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

/// How far back the shift in progress is looked for, and the grid the look-back starts on.
const LOOKBACK_MS: i64 = 7 * 86_400_000;

/// Where rendering starts for a window from `since`: on a fixed 7-day grid, a week or two
/// before, so the shift in progress keeps its real start (or, when it began earlier than that,
/// one that only moves once a week) instead of starting "now" on every refresh: its iCalendar
/// UID and DTSTART stay the same.
fn render_from(since: i64) -> i64 {
    since.div_euclid(LOOKBACK_MS) * LOOKBACK_MS - LOOKBACK_MS
}

/// A user's shifts in progress at `since` or starting before `until` (ms) on every schedule,
/// overrides included, in time order; at most [`MAX_SHIFTS`].
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
    let from = render_from(since);
    let mut out = Vec::new();
    for row in schedules {
        let Some(s) =
            crate::alerting::engine::schedule_with_overrides(&mut conn, row.id, from, until)
                .await?
        else {
            continue;
        };
        out.extend(
            s.render(from, until)
                .into_iter()
                .filter(|span| span.user == user_id && span.end > since)
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

/// Appends one content line, folded as RFC 5545 §3.1 asks: at most 75 octets a line, the
/// rest continued on lines starting with a space, never inside a UTF-8 character.
fn push_line(out: &mut String, line: &str) {
    let mut room = 75;
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > room {
            out.push_str("\r\n ");
            used = 1;
            room = 75;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out.push_str("\r\n");
}

/// The iCalendar document of a user's shifts (one VEVENT per shift; UIDs stable across
/// refreshes so calendar apps update rather than duplicate them).
pub fn ical(who: &str, shifts: &[Shift], now: i64) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Lookout//On-call shifts//EN\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n",
    );
    push_line(
        &mut out,
        &format!("X-WR-CALNAME:On call: {}", ics_text(who)),
    );
    for s in shifts {
        push_line(&mut out, "BEGIN:VEVENT");
        push_line(
            &mut out,
            &format!("UID:lookout-shift-{}-{}@lookout", s.schedule_id, s.start),
        );
        push_line(&mut out, &format!("DTSTAMP:{}", ics_time(now)));
        push_line(&mut out, &format!("DTSTART:{}", ics_time(s.start)));
        push_line(&mut out, &format!("DTEND:{}", ics_time(s.end)));
        push_line(
            &mut out,
            &format!("SUMMARY:On call: {}", ics_text(&s.schedule)),
        );
        push_line(&mut out, "END:VEVENT");
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rules_naming_a_team() {
        let raw = "# #ops in a comment\npath:a/* ada@x.io\nsrc/ @acme/Ops\n";
        assert_eq!(names_team(raw, "ops"), Some(3));
        assert_eq!(names_team("tag:team:ops #opsx\n", "ops"), None);
        assert_eq!(names_team("url:* #ops\n", "ops"), Some(1));
    }

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

    #[test]
    fn ical_folds_long_lines_on_character_boundaries() {
        let s = [Shift {
            schedule_id: 1,
            schedule: "Zürich – primäre Bereitschaft für Zahlungen und Abrechnung 💳".into(),
            start: 0,
            end: 1,
        }];
        let doc = ical(&"ä".repeat(60), &s, 0);
        for l in doc.split("\r\n") {
            assert!(l.len() <= 75, "{l:?} is {} octets", l.len());
        }
        let unfolded = doc.replace("\r\n ", "");
        assert!(unfolded.contains("SUMMARY:On call: Zürich – primäre Bereitschaft für Zahlungen und Abrechnung 💳\r\n"), "{doc}");
        assert!(unfolded.contains(&format!("X-WR-CALNAME:On call: {}\r\n", "ä".repeat(60))));
    }

    #[test]
    fn the_shift_in_progress_keeps_its_start() {
        // Rendering starts on a fixed grid at least a week back, whatever the minute now is.
        let now = 1_780_000_000_000;
        assert_eq!(render_from(now), render_from(now + 60_000));
        assert!(render_from(now) <= now - LOOKBACK_MS);
        assert!(render_from(now) > now - 2 * LOOKBACK_MS);
    }
}

/// Someone on call for a team now: who, and through which of the team's schedules or
/// escalation policies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct OnCallNow {
    /// The user's id.
    pub user_id: i64,
    /// Their display name (or email).
    pub user: String,
    /// `schedule Primary` or `escalation policy Payments (first rule)`.
    pub via: String,
}

/// Who is on call for `team` at `now` (ms): the person on call on each schedule the team owns,
/// and whoever the first rule of each of its escalation policies (owned, or linked to the
/// team) pages first — users directly, schedules through who is on call on them.
pub async fn on_call_now(
    state: &AppState,
    team: &teams::Team,
    now: i64,
) -> ServiceResult<Vec<OnCallNow>> {
    let specs = OnCallSpecs::load(state).await?;
    on_call_now_in(state, &specs, team, now).await
}

/// The organisation's schedules and escalation policies, read once for [`on_call_now_in`] when
/// a page shows every team's on-call people.
pub struct OnCallSpecs {
    schedules: Vec<astore::SpecRow>,
    policies: Vec<astore::SpecRow>,
}

impl OnCallSpecs {
    /// Reads them.
    pub async fn load(state: &AppState) -> ServiceResult<Self> {
        let org = lookout_store::tenancy::default_org(state.store()).await?;
        Ok(Self {
            schedules: astore::spec_list(state.store(), SpecTable::Schedules, org.id).await?,
            policies: astore::spec_list(state.store(), SpecTable::EscalationPolicies, org.id)
                .await?,
        })
    }
}

/// [`on_call_now`] from specs read already.
pub async fn on_call_now_in(
    state: &AppState,
    specs: &OnCallSpecs,
    team: &teams::Team,
    now: i64,
) -> ServiceResult<Vec<OnCallNow>> {
    use crate::alerting::engine;
    use lookout_oncall::{EscalationPolicy, TargetKind};
    let (schedules, policies) = (&specs.schedules, &specs.policies);
    let mut conn = state
        .store()
        .pool()
        .acquire()
        .await
        .map_err(StoreError::from)?;
    let mut found: Vec<(i64, String)> = Vec::new();
    for s in schedules.iter().filter(|s| s.team_id == Some(team.id)) {
        if let Some(u) = engine::on_call(&mut conn, s.id, now).await? {
            found.push((u, format!("schedule {}", s.name)));
        }
    }
    let theirs = policies
        .iter()
        .filter(|p| p.team_id == Some(team.id) || team.escalation_policy_id == Some(p.id));
    for p in theirs {
        let Ok(parsed) = serde_json::from_value::<EscalationPolicy>(p.spec.clone()) else {
            continue;
        };
        let Some(first) = parsed.escalation_rules.first() else {
            continue;
        };
        let via = format!("escalation policy {} (first rule)", p.name);
        for t in &first.targets {
            let user = match t.kind {
                TargetKind::User => Some(t.id),
                TargetKind::Schedule => engine::on_call(&mut conn, t.id, now).await?,
                TargetKind::Channel => None,
            };
            if let Some(u) = user {
                found.push((u, via.clone()));
            }
        }
    }
    // Give the connection back before display_names takes one: holding two per request
    // exhausts the pool under a handful of concurrent page loads.
    drop(conn);
    found.dedup();
    let ids: Vec<i64> = found.iter().map(|f| f.0).collect();
    let names = astore::display_names(state.store(), &ids).await?;
    Ok(found
        .into_iter()
        .map(|(user_id, via)| OnCallNow {
            user: names
                .get(&user_id)
                .cloned()
                .unwrap_or_else(|| format!("user {user_id}")),
            user_id,
            via,
        })
        .collect())
}
