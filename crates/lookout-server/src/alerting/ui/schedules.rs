//! Schedules from the UI: create, edit, switch on and off and delete a schedule (its time zone
//! and rotation layers: users in turn order, chosen by id, turn length, handoff time, from and
//! until when), see the final schedule as a 7-day calendar in the schedule's own time zone, and
//! add overrides with date-time pickers read in that zone, or delete them.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};

use super::channels::CsrfForm;
use super::forms::{self, Refusal};
use crate::alerting::{engine, oncall};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::teams::owned_ui::{self, team_field, TeamField};
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt;
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::{iso, now_ms};
use lookout_oncall::Schedule;
use lookout_store::alerting::{self as astore, SpecTable};

/// Most layers a form shows.
const MAX_LAYERS: usize = 10;

/// `datetime-local` text (`2026-12-01T09:00`, seconds optional) read in `tz`: ms since the
/// epoch. A time skipped by a DST change is refused; a repeated one is the earlier.
pub fn local_ms(tz: Tz, field: &str, text: &str) -> Result<i64, String> {
    let t = text.trim();
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| format!("{field}: pick a date and time (YYYY-MM-DDTHH:MM)"))?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.timestamp_millis())
        .ok_or_else(|| format!("{field}: {t} does not exist in {tz} (the clocks skip it)"))
}

/// `ms` as `datetime-local` text in `tz`.
pub fn local_text(tz: Tz, ms: i64) -> String {
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// Empty user choices a layer offers beyond those it has, to add people (twice as many on a
/// new layer). Each save offers more.
const SPARE_SLOTS: usize = 2;

/// One layer as typed. Users are chosen by id, in turn order, one select each: names can be
/// shared by two people, ids cannot.
#[derive(Debug, Clone, Default)]
pub struct LayerForm {
    name: String,
    users: Vec<String>,
    turn: String,
    handoff: String,
    start: String,
    end: String,
    restrictions: String,
    invalid: bool,
}

impl LayerForm {
    /// The user choices to show: those made, then empty ones to add more.
    pub fn slots(&self) -> Vec<String> {
        let mut out = self.users.clone();
        let spare = if out.is_empty() {
            2 * SPARE_SLOTS
        } else {
            SPARE_SLOTS
        };
        out.extend(std::iter::repeat_n(String::new(), spare));
        out
    }
}

/// The schedule form, as typed.
#[derive(Debug, Clone, Default)]
pub struct ScheduleForm {
    csrf: String,
    name: String,
    time_zone: String,
    layers: Vec<LayerForm>,
    enabled: bool,
    team: String,
}

impl ScheduleForm {
    fn parse(pairs: Vec<(String, String)>) -> ScheduleForm {
        let mut f = ScheduleForm::default();
        let mut layers: Vec<LayerForm> = Vec::new();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "name" => f.name = v,
                "time_zone" => f.time_zone = v,
                "enabled" => f.enabled = true,
                "team" => f.team = v,
                other => {
                    let Some((i, what)) = forms::indexed(other, "layer", MAX_LAYERS) else {
                        continue;
                    };
                    if layers.len() <= i {
                        layers.resize(i + 1, LayerForm::default());
                    }
                    let l = &mut layers[i];
                    match what {
                        "name" => l.name = v,
                        "user" if !v.trim().is_empty() => l.users.push(v),
                        "turn" => l.turn = v,
                        "handoff" => l.handoff = v,
                        "start" => l.start = v,
                        "end" => l.end = v,
                        "restrictions" => l.restrictions = v,
                        _ => {}
                    }
                }
            }
        }
        // The empty layer the form offers for adding one is not a layer.
        f.layers = layers.into_iter().filter(|l| !l.users.is_empty()).collect();
        f
    }

    fn of(name: &str, s: &Schedule, team_id: Option<i64>) -> ScheduleForm {
        let tz: Tz = s.tz().unwrap_or(chrono_tz::UTC);
        ScheduleForm {
            csrf: String::new(),
            name: name.to_string(),
            time_zone: s.time_zone.clone(),
            layers: s
                .schedule_layers
                .iter()
                .map(|l| LayerForm {
                    name: l.name.clone().unwrap_or_default(),
                    users: l.users.iter().map(i64::to_string).collect(),
                    turn: l.rotation_turn_length_seconds.to_string(),
                    handoff: local_text(tz, l.rotation_virtual_start),
                    start: local_text(tz, l.start),
                    end: l.end.map(|e| local_text(tz, e)).unwrap_or_default(),
                    restrictions: if l.restrictions.is_empty() {
                        String::new()
                    } else {
                        serde_json::to_string(&l.restrictions).unwrap_or_default()
                    },
                    invalid: false,
                })
                .collect(),
            enabled: s.enabled,
            team: owned_ui::selected(team_id),
        }
    }

    /// The API's schedule document, times read in the schedule's zone. Users come as ids
    /// from the form's selects; one that is not a user is refused naming its layer.
    fn body(&mut self, users: &[(i64, String)]) -> Result<Value, Refusal> {
        let tz: Tz = self.time_zone.trim().parse().map_err(|_| Refusal {
            message: format!(
                "time_zone: unknown IANA time zone {:?}",
                self.time_zone.trim()
            ),
            field: "time_zone".into(),
        })?;
        let mut layers = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let refuse = |l: &mut LayerForm, m: String| {
                l.invalid = true;
                Refusal {
                    message: format!("schedule_layers[{i}].{m}"),
                    field: format!("layer{i}"),
                }
            };
            let mut ids = Vec::new();
            for who in l.users.iter().map(|w| w.trim()) {
                match who
                    .parse::<i64>()
                    .ok()
                    .filter(|id| users.iter().any(|u| u.0 == *id))
                {
                    Some(id) => ids.push(id),
                    None => return Err(refuse(l, format!("users: no user {who:?}"))),
                }
            }
            let handoff = match local_ms(tz, "rotation_virtual_start", &l.handoff) {
                Ok(t) => t,
                Err(e) => return Err(refuse(l, e)),
            };
            let start = if l.start.trim().is_empty() {
                handoff
            } else {
                match local_ms(tz, "start", &l.start) {
                    Ok(t) => t,
                    Err(e) => return Err(refuse(l, e)),
                }
            };
            let end = if l.end.trim().is_empty() {
                None
            } else {
                match local_ms(tz, "end", &l.end) {
                    Ok(t) => Some(t),
                    Err(e) => return Err(refuse(l, e)),
                }
            };
            let restrictions: Value = if l.restrictions.trim().is_empty() {
                json!([])
            } else {
                match serde_json::from_str(&l.restrictions) {
                    Ok(v) => v,
                    Err(e) => return Err(refuse(l, format!("restrictions: {e}"))),
                }
            };
            let mut layer = json!({"start": iso(start), "rotation_virtual_start": iso(handoff),
                "rotation_turn_length_seconds": forms::number(&l.turn).unwrap_or(json!(0)),
                "users": ids, "restrictions": restrictions});
            if !l.name.trim().is_empty() {
                layer["name"] = json!(l.name.trim());
            }
            if let Some(e) = end {
                layer["end"] = json!(iso(e));
            }
            layers.push(layer);
        }
        Ok(
            json!({"name": self.name.trim(), "time_zone": self.time_zone.trim(),
                   "schedule_layers": layers, "enabled": self.enabled,
                   "team_id": forms::opt_id(&self.team)}),
        )
    }
}

/// Marks the layer a service refusal names (`schedule_layers[1]…`).
fn mark(f: &mut ScheduleForm, message: &str) -> Refusal {
    let i = message
        .split_once("schedule_layers[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(i, _)| i.parse::<usize>().ok());
    if let Some(l) = i.and_then(|i| f.layers.get_mut(i)) {
        l.invalid = true;
    }
    let field = if message.starts_with("time_zone") {
        "time_zone".to_string()
    } else if message.starts_with("name") {
        "name".to_string()
    } else if message.starts_with("team_id") {
        "team".to_string()
    } else if message.starts_with("user ") {
        "layer0".to_string()
    } else {
        i.map(|i| format!("layer{i}")).unwrap_or_default()
    };
    Refusal {
        message: message.to_string(),
        field,
    }
}

/// One shift in a calendar row: who, where it sits in the day (percent) and its hours.
pub struct Shift {
    who: String,
    left: f64,
    width: f64,
    hours: String,
    colour: usize,
    overridden: bool,
}

/// One day of the calendar, in the schedule's zone.
pub struct Day {
    label: String,
    shifts: Vec<Shift>,
}

/// An upcoming override.
pub struct OverrideView {
    id: i64,
    who: String,
    from: String,
    until: String,
    starts: fmt::When,
}

/// What the schedule page shows beside the form.
pub struct Calendar {
    now: String,
    days: Vec<Day>,
    overrides: Vec<OverrideView>,
}

/// The next 7 days from today's midnight in the schedule's zone.
async fn calendar(state: &AppState, id: i64, users: &[(i64, String)]) -> UiResult<Calendar> {
    let now = now_ms();
    let mut conn = state
        .store()
        .pool()
        .acquire()
        .await
        .map_err(UiError::internal)?;
    let probe = engine::schedule_with_overrides(&mut conn, id, now, now + 1)
        .await?
        .ok_or(UiError::NotFound)?;
    let tz: Tz = probe.tz().unwrap_or(chrono_tz::UTC);
    let today = tz
        .timestamp_millis_opt(now)
        .single()
        .map(|d| d.date_naive())
        .unwrap_or_default();
    let midnight = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map_or(now, |t| t.timestamp_millis())
    };
    let since = midnight(today);
    let until = midnight(today + chrono::Days::new(7));
    let sched = engine::schedule_with_overrides(&mut conn, id, since, until)
        .await?
        .ok_or(UiError::NotFound)?;
    drop(conn);
    let spans = sched.render(since, until);
    let mut order: Vec<i64> = Vec::new();
    for s in &spans {
        if !order.contains(&s.user) {
            order.push(s.user);
        }
    }
    let clock = |ms: i64| {
        tz.timestamp_millis_opt(ms)
            .single()
            .map(|d| d.format("%a %d %b %H:%M").to_string())
            .unwrap_or_default()
    };
    let hm = |ms: i64| {
        tz.timestamp_millis_opt(ms)
            .single()
            .map(|d| d.format("%H:%M").to_string())
            .unwrap_or_default()
    };
    // Spans are cut where an override of their user starts or ends: the schedule joins an
    // override to the same user's own turn next to it (one span), which would otherwise hide
    // the override on the calendar.
    let spans: Vec<lookout_oncall::schedule::Span> = spans
        .iter()
        .flat_map(|s| {
            let mut cuts: Vec<i64> = sched
                .overrides
                .iter()
                .filter(|o| o.user == s.user)
                .flat_map(|o| [o.start, o.end])
                .filter(|t| s.start < *t && *t < s.end)
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let bounds: Vec<i64> = std::iter::once(s.start)
                .chain(cuts)
                .chain(std::iter::once(s.end))
                .collect();
            bounds
                .windows(2)
                .map(|w| lookout_oncall::schedule::Span {
                    user: s.user,
                    start: w[0],
                    end: w[1],
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut days = Vec::new();
    for d in 0..7u64 {
        let date = today + chrono::Days::new(d);
        let (a, b) = (midnight(date), midnight(date + chrono::Days::new(1)));
        let len = (b - a).max(1) as f64;
        let shifts = spans
            .iter()
            .filter(|s| s.start < b && s.end > a)
            .map(|s| {
                let (from, to) = (s.start.max(a), s.end.min(b));
                Shift {
                    who: forms::user_name(users, s.user),
                    left: ((from - a) as f64 * 1000.0 / len).round() / 10.0,
                    width: ((to - from) as f64 * 1000.0 / len).round() / 10.0,
                    hours: format!("{}–{}", hm(s.start), hm(s.end)),
                    colour: order.iter().position(|u| *u == s.user).unwrap_or(0) % 8,
                    overridden: sched
                        .overrides
                        .iter()
                        .any(|o| o.user == s.user && o.start <= from && o.end >= to),
                }
            })
            .collect();
        days.push(Day {
            label: date.format("%a %d %b").to_string(),
            shifts,
        });
    }
    let on_now = spans
        .iter()
        .find(|s| s.start <= now && now < s.end)
        .map_or_else(|| "nobody".to_string(), |s| forms::user_name(users, s.user));
    let overrides = astore::overrides_between(state.store(), id, now, i64::MAX)
        .await?
        .into_iter()
        .map(|o| OverrideView {
            id: o.id,
            who: forms::user_name(users, o.user_id),
            from: clock(o.starts_at),
            until: clock(o.ends_at),
            starts: fmt::When::at(o.starts_at),
        })
        .collect();
    Ok(Calendar {
        now: on_now,
        days,
        overrides,
    })
}

/// The override form, as typed (times in the schedule's zone).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OverrideForm {
    csrf: String,
    user: String,
    start: String,
    end: String,
}

#[derive(Template)]
#[template(path = "alert_schedule.html")]
struct SchedulePage {
    title: String,
    ctx: PageCtx,
    id: Option<i64>,
    f: ScheduleForm,
    refusal: Refusal,
    users: Vec<(i64, String)>,
    zones: Vec<&'static str>,
    calendar: Option<Calendar>,
    o: OverrideForm,
    override_refusal: Refusal,
    team_field: TeamField,
}

#[allow(clippy::too_many_arguments)]
async fn page(
    state: &AppState,
    ctx: PageCtx,
    id: Option<i64>,
    mut f: ScheduleForm,
    refusal: Refusal,
    o: OverrideForm,
    override_refusal: Refusal,
) -> UiResult {
    let users = forms::user_choices(state).await?;
    let calendar = match id {
        Some(id) => Some(calendar(state, id, &users).await?),
        None => None,
    };
    if f.layers.len() < MAX_LAYERS {
        f.layers.push(LayerForm {
            turn: "604800".into(),
            ..LayerForm::default()
        });
    }
    let refused = !refusal.message.is_empty() || !override_refusal.message.is_empty();
    let team_field = team_field(state, &f.team, refusal.is("team")).await?;
    Ok(forms::with_status(
        render(&SchedulePage {
            title: if id.is_some() {
                format!("Schedule {}", f.name)
            } else {
                "New schedule".into()
            },
            ctx,
            id,
            f,
            refusal,
            users,
            zones: chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect(),
            calendar,
            o,
            override_refusal,
            team_field,
        }),
        refused,
    ))
}

/// `GET /on-call/schedules/new`.
pub async fn new(State(state): State<AppState>, p: Page<Member>) -> UiResult {
    let f = ScheduleForm {
        time_zone: "UTC".into(),
        enabled: true,
        ..ScheduleForm::default()
    };
    let mut f = f;
    // A first layer, handing off weekly from today at 09:00.
    let today = chrono::Utc::now().format("%Y-%m-%dT09:00").to_string();
    f.layers.push(LayerForm {
        turn: "604800".into(),
        handoff: today,
        ..LayerForm::default()
    });
    page(
        &state,
        p.ctx,
        None,
        f,
        Refusal::default(),
        OverrideForm::default(),
        Refusal::default(),
    )
    .await
}

/// `GET /on-call/schedules/{id}`.
pub async fn show(State(state): State<AppState>, p: Page<Member>, Path(id): Path<i64>) -> UiResult {
    let row = astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
    let s: Schedule = serde_json::from_value(row.spec.clone()).map_err(UiError::internal)?;
    let f = ScheduleForm::of(&row.name, &s, row.team_id);
    page(
        &state,
        p.ctx,
        Some(id),
        f,
        Refusal::default(),
        OverrideForm::default(),
        Refusal::default(),
    )
    .await
}

async fn save(
    state: AppState,
    form: Signed<Member>,
    id: Option<i64>,
    pairs: Vec<(String, String)>,
) -> UiResult {
    let mut f = ScheduleForm::parse(pairs);
    check_csrf(&form.session, &f.csrf)?;
    let people = forms::users(&state).await?;
    let refusal = match f.body(&people) {
        Ok(body) => {
            let saved = match id {
                Some(id) => oncall::update_schedule(&state, id, &body).await,
                None => oncall::create_schedule(&state, &body).await,
            };
            match saved {
                Ok(row) => {
                    return Ok(
                        Redirect::to(&format!("/on-call/schedules/{}", row.id)).into_response()
                    )
                }
                Err(ServiceError::Invalid(m) | ServiceError::Conflict(m)) => mark(&mut f, &m),
                Err(e) => return Err(e.into()),
            }
        }
        Err(r) => r,
    };
    page(
        &state,
        form.layout(&state).await?,
        id,
        f,
        refusal,
        OverrideForm::default(),
        Refusal::default(),
    )
    .await
}

/// `POST /on-call/schedules`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    save(state, form, None, pairs).await
}

/// `POST /on-call/schedules/{id}`.
pub async fn update(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    save(state, form, Some(id), pairs).await
}

/// `POST /on-call/schedules/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::spec_delete(state.store(), SpecTable::Schedules, id).await?;
    tracing::info!(schedule = id, "Schedule deleted from the UI.");
    Ok(Redirect::to("/on-call").into_response())
}

/// `POST /on-call/schedules/{id}/overrides`: `start` and `end` are read in the schedule's zone.
pub async fn add_override(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(o): Form<OverrideForm>,
) -> UiResult {
    check_csrf(&form.session, &o.csrf)?;
    let row = astore::spec_get(state.store(), SpecTable::Schedules, id).await?;
    let s: Schedule = serde_json::from_value(row.spec.clone()).map_err(UiError::internal)?;
    let tz = s.tz().unwrap_or(chrono_tz::UTC);
    let parsed = local_ms(tz, "start", &o.start)
        .and_then(|a| local_ms(tz, "end", &o.end).map(|b| (a, b)))
        .map_err(ServiceError::Invalid);
    let user = o.user.trim().parse::<i64>().unwrap_or(0);
    let added = match parsed {
        Ok((start, end)) => oncall::add_override(&state, id, user, start, end)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match added {
        Ok(()) => Ok(Redirect::to(&format!("/on-call/schedules/{id}")).into_response()),
        Err(e) => {
            let r = forms::refusal(e, &[("start", "start"), ("end", "end"), ("user", "user")])?;
            let f = ScheduleForm::of(&row.name, &s, row.team_id);
            page(
                &state,
                form.layout(&state).await?,
                Some(id),
                f,
                Refusal::default(),
                o,
                r,
            )
            .await
        }
    }
}

/// `POST /on-call/schedules/{id}/overrides/{override_id}/delete`.
pub async fn delete_override(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path((id, override_id)): Path<(i64, i64)>,
    Form(f): Form<CsrfForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    astore::override_delete(state.store(), id, override_id).await?;
    state.alerting().wake();
    tracing::info!(schedule = id, override_id, "Override deleted from the UI.");
    Ok(Redirect::to(&format!("/on-call/schedules/{id}")).into_response())
}

/// `POST /on-call/schedules/{id}/enabled`: switches a schedule on or off from the Alerts list.
pub async fn set_enabled(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<super::channels::EnableForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    oncall::set_schedule_enabled(&state, id, f.enabled == "true").await?;
    Ok(Redirect::to("/alerts#schedules").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picked_time_is_read_in_the_schedules_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Winter: UTC+1.
        let t = local_ms(berlin, "start", "2026-01-05T09:00").unwrap();
        assert_eq!(iso(t), "2026-01-05T08:00:00.000Z");
        assert_eq!(local_text(berlin, t), "2026-01-05T09:00");
        // 02:30 on the spring-forward night does not exist.
        let e = local_ms(berlin, "start", "2026-03-29T02:30").unwrap_err();
        assert!(e.starts_with("start:"), "{e}");
        assert!(local_ms(berlin, "end", "tomorrow")
            .unwrap_err()
            .starts_with("end:"));
    }
}
