//! The Incidents and On-call sections: the incident list with MTTA/MTTR, the incident page
//! (acknowledge, resolve, notes, the runbook rendered from Markdown with its checklist, the
//! timeline, a postmortem template once resolved), the signed one-click links from
//! notifications, and the on-call page (now and next per schedule, a 7-day timeline, overrides,
//! "my shifts").

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::alerting::service::{
    act, checklist_items, note, postmortem_markdown, response_groups, tick_item,
};
use crate::alerting::ui::incident_actions::{self, ActionForms};
use crate::alerting::ui::responder::{self, Responder};
use crate::alerting::{engine, links};
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use crate::ui::{check_csrf, form_refusal, simple_page, ui_error};
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_oncall::inbound::Action;
use lookout_store::alerting::incidents::{self, IncidentRow, ListFilter};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::tenancy;

/// A row of the list.
struct Row {
    id: i64,
    title: String,
    status: String,
    urgency: String,
    severity: String,
    service: String,
    opened: When,
    alerts: i64,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    rows: Vec<Row>,
    open: usize,
    metrics: Vec<(String, i64, String, String)>,
}

/// `?status=`.
#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

fn minutes(ms: Option<f64>) -> String {
    ms.map_or("–".into(), |s| format!("{:.1} min", s / 60.0))
}

/// `GET /incidents`.
pub async fn list(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Query(q): Query<ListQuery>,
) -> UiResult {
    let loaded = async {
        let org = tenancy::default_org(state.store()).await?;
        let statuses = q
            .status
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| matches!(*s, "triggered" | "acknowledged" | "resolved"))
            .map(String::from)
            .collect();
        let rows = incidents::list(
            state.store(),
            org.id,
            &ListFilter {
                statuses,
                limit: 200,
                ..Default::default()
            },
        )
        .await?;
        let since = now_ms() - 90 * 86_400_000;
        let times = incidents::response_times(state.store(), org.id, since, now_ms()).await?;
        Ok::<_, lookout_store::StoreError>((rows, times))
    }
    .await;
    let (rows, times) = loaded?;
    let metrics = response_groups(times, |(service, ..)| {
        service.clone().unwrap_or_else(|| "(none)".into())
    })
    .into_iter()
    .map(|g| {
        (
            g.key,
            g.incidents,
            minutes(g.mtta_seconds),
            minutes(g.mttr_seconds),
        )
    })
    .collect();
    let open = rows.iter().filter(|r| r.status != "resolved").count();
    Ok(render(&ListPage {
        title: "Incidents".into(),
        ctx,
        open,
        metrics,
        rows: rows
            .into_iter()
            .map(|r| Row {
                id: r.id,
                title: r.title,
                status: r.status,
                urgency: r.urgency,
                severity: r.severity,
                service: r.service.unwrap_or_default(),
                opened: When::at(r.created_at),
                alerts: r.alert_count,
            })
            .collect(),
    }))
}

/// At most this many incidents in one bulk action.
const MAX_BULK: usize = 200;

/// `POST /incidents/bulk`: acknowledge or resolve the incidents ticked on the list (`id`
/// repeated, `action`). An incident already in that state is skipped, as its own button would.
pub async fn bulk(
    State(state): State<AppState>,
    form: Signed<Member>,
    body: axum::body::Bytes,
) -> UiResult {
    let (mut csrf, mut action, mut ids) = (String::new(), String::new(), Vec::new());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "action" => action = v.into_owned(),
            "id" if ids.len() < MAX_BULK => ids.extend(v.parse::<i64>().ok()),
            _ => {}
        }
    }
    check_csrf(&form.session, &csrf)?;
    let what = match action.as_str() {
        "acknowledge" => Action::Acknowledge,
        "resolve" => Action::Resolve,
        _ => {
            return Err(UiError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "action must be acknowledge or resolve".into(),
            ))
        }
    };
    let actor = format!("user:{}", form.session.user.email);
    for id in ids {
        match act(&state, id, what, &actor).await {
            // Already in that state, or gone since the list was shown: skipped, as one by one.
            Ok(_)
            | Err(
                crate::service::ServiceError::Conflict(_)
                | crate::service::ServiceError::Store(lookout_store::StoreError::NotFound),
            ) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Redirect::to("/incidents?status=triggered,acknowledged").into_response())
}

struct Entry {
    at: When,
    kind: String,
    actor: String,
    parts: Vec<responder::Part>,
}

/// A timeline actor as people read it: `user:alice@example.com` is Alice (her name, else her
/// address), `policy:High error rate` the policy, `link:acknowledge` a one-click link from a
/// page.
fn actor_label(actor: &str, by_email: &BTreeMap<String, String>) -> String {
    match actor.split_once(':') {
        Some(("user", who)) => by_email.get(who).cloned().unwrap_or(who.to_string()),
        Some(("token", name)) => format!("token {name}"),
        Some(("policy", name)) => format!("policy {name}"),
        Some(("integration", name)) => format!("integration {name}"),
        Some(("link", what)) => format!("one-click {what} link"),
        _ => actor.to_string(),
    }
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    title: String,
    ctx: PageCtx,
    inc: IncidentRow,
    opened: When,
    r: Responder,
    can_act: bool,
    runbook: Option<(String, i64, Option<String>, String)>,
    checklist: Vec<(usize, String, bool)>,
    timeline: Vec<Entry>,
    postmortem: String,
    a: ActionForms,
}

use crate::ui::markdown;

/// `GET /incidents/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    Page {
        ctx, session: s, ..
    }: Page,
    Path(id): Path<i64>,
) -> UiResult {
    detail_page(&state, ctx, &s, id, None).await
}

/// Every user's name by id and by email (timeline actors are recorded by email).
async fn people(
    state: &AppState,
) -> Result<(BTreeMap<i64, String>, BTreeMap<String, String>), lookout_store::StoreError> {
    let users = tenancy::list_users(
        state.store(),
        &lookout_store::Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await?
    .items;
    let ids: Vec<i64> = users.iter().map(|u| u.id).collect();
    let by_id = astore::display_names(state.store(), &ids).await?;
    let by_email = users
        .iter()
        .filter_map(|u| by_id.get(&u.id).map(|n| (u.email.clone(), n.clone())))
        .collect();
    Ok((by_id, by_email))
}

/// The incident page, with `refused` (a refused action form, answered 422 by its caller) open.
pub async fn detail_page(
    state: &AppState,
    ctx: PageCtx,
    s: &tenancy::Session,
    id: i64,
    refused: Option<incident_actions::Refused>,
) -> UiResult {
    let loaded = async {
        let inc = incidents::get(state.store(), id).await?;
        let org = tenancy::default_org(state.store()).await?;
        if inc.org_id != org.id {
            return Err(lookout_store::StoreError::NotFound);
        }
        let timeline = incidents::timeline(state.store(), id).await?;
        let runbook = match inc.runbook_id {
            Some(r) => astore::runbook_get(state.store(), r, inc.runbook_version)
                .await
                .ok(),
            None => None,
        };
        let r = responder::load(state.store(), &inc).await?;
        let mut names = people(state).await?;
        // Users deleted since they were named in the timeline are left as "user N".
        let named: Vec<i64> = timeline
            .iter()
            .flat_map(|e| responder::named_users(&e.message))
            .filter(|u| !names.0.contains_key(u))
            .collect();
        names
            .0
            .extend(astore::display_names(state.store(), &named).await?);
        Ok::<_, lookout_store::StoreError>((inc, timeline, runbook, r, names))
    }
    .await;
    let (inc, timeline, runbook, mut r, (by_id, by_email)) = loaded.map_err(|e| match e {
        lookout_store::StoreError::NotFound => UiError::Page(Box::new(
            (
                StatusCode::NOT_FOUND,
                Html(simple_page("Not found", "There is no such incident.")),
            )
                .into_response(),
        )),
        e => e.into(),
    })?;
    for x in &mut r.responders {
        x.asked_by = actor_label(&x.asked_by, &by_email);
    }
    let can_act = s.user.role >= Role::Member;
    let mut a = if can_act && inc.status != "resolved" {
        incident_actions::load(state, id).await?
    } else {
        ActionForms::default()
    };
    a.refused = refused;
    let checklist = runbook
        .as_ref()
        .map(|r| {
            checklist_items(&r.body)
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    let done = inc.checklist.get(i.to_string()) == Some(&serde_json::json!(true));
                    (i, t, done)
                })
                .collect()
        })
        .unwrap_or_default();
    let postmortem = postmortem_markdown(&inc, &timeline);
    Ok(render(&IncidentPage {
        title: format!("Incident #{}", inc.id),
        ctx,
        opened: When::at(inc.created_at),
        r,
        can_act,
        // Runbooks saved before URLs were checked may hold other schemes: link only web ones.
        runbook: runbook.map(|r| {
            let url = r
                .url
                .filter(|u| u.starts_with("http") && crate::ui::safe_link(u));
            (r.name, r.version, url, markdown(&r.body))
        }),
        checklist,
        timeline: timeline
            .into_iter()
            .map(|e| Entry {
                at: When::at(e.at),
                kind: e.kind,
                actor: actor_label(&e.actor, &by_email),
                parts: responder::message_parts(&e.message, &by_id),
            })
            .collect(),
        postmortem,
        inc,
        a,
    }))
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage {
    title: String,
    heading: String,
    incident_title: String,
    id: i64,
    status: String,
    severity: String,
    action: String,
    exp: i64,
    sig: String,
    button: String,
    done: bool,
}

/// `?exp=&sig=` of a signed link.
#[derive(Deserialize)]
pub struct LinkQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

fn refused(why: links::Refused) -> Response {
    tracing::info!(why = ?why, "Signed incident link refused.");
    let text = match why {
        links::Refused::Expired => "This link has expired. Open the incident in Lookout instead.",
        _ => "This link is not valid.",
    };
    (
        StatusCode::FORBIDDEN,
        Html(simple_page("Link refused", text)),
    )
        .into_response()
}

/// `GET /incidents/{id}/{action}?exp=&sig=`: the page a notification's link opens. It asks for
/// one click rather than acting, so chat and mail link previews cannot acknowledge by fetching.
pub async fn link_page(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
        return Redirect::to(&format!("/incidents/{id}")).into_response();
    };
    if let Err(why) = links::verify(state.alerting(), id, &action, exp, &sig) {
        return refused(why);
    }
    let inc = match incidents::get(state.store(), id).await {
        Ok(i) => i,
        Err(e) => return ui_error(e),
    };
    let button = if action == "acknowledge" {
        "Acknowledge"
    } else {
        "Resolve"
    };
    let done = (action == "acknowledge" && inc.status != "triggered") || inc.status == "resolved";
    let heading = if done {
        format!("Already {}", inc.status)
    } else {
        format!("{button} incident #{id}?")
    };
    render(&LinkPage {
        title: heading.clone(),
        heading,
        incident_title: inc.title,
        id,
        status: inc.status,
        severity: inc.severity,
        action,
        exp,
        sig,
        button: button.into(),
        done,
    })
}

/// The fields of every incident form: a signed link's, or a logged-in user's.
#[derive(Deserialize)]
pub struct ActionForm {
    exp: Option<i64>,
    sig: Option<String>,
    csrf: Option<String>,
    message: Option<String>,
    item: Option<u64>,
    done: Option<String>,
}

/// `POST /incidents/{id}/{action}`: acknowledge or resolve through a signed link (no login), or
/// acknowledge, resolve, add a note or tick a checklist item from the incident page.
pub async fn post_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(i64, String)>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let (Some(exp), Some(sig)) = (f.exp, &f.sig) {
        if let Err(why) = links::verify(state.alerting(), id, &action, exp, sig) {
            return refused(why);
        }
        let what = if action == "acknowledge" {
            Action::Acknowledge
        } else {
            Action::Resolve
        };
        return match act(&state, id, what, &format!("link:{action}")).await {
            Ok(v) => render(&LinkPage {
                title: format!("Incident #{id}"),
                heading: format!(
                    "{} incident #{id}",
                    if what == Action::Acknowledge {
                        "Acknowledged"
                    } else {
                        "Resolved"
                    }
                ),
                incident_title: v["title"].as_str().unwrap_or_default().into(),
                id,
                status: v["status"].as_str().unwrap_or_default().into(),
                severity: v["severity"].as_str().unwrap_or_default().into(),
                action,
                exp,
                sig: sig.clone(),
                button: String::new(),
                done: true,
            }),
            Err(crate::service::ServiceError::Conflict(m)) => {
                (StatusCode::CONFLICT, Html(simple_page("Nothing to do", &m))).into_response()
            }
            Err(e) => crate::ui::error::UiError::from(e).into_response(),
        };
    }
    // A logged-in user's form. This one route serves signed links (no session) and the incident
    // page's forms, so the member check cannot live in an extractor type: it is made here, and
    // the generated role test covers the route.
    let session = match session_of(&state, &headers).await {
        Some(s) => s,
        None => return Redirect::to(&format!("/login?next=/incidents/{id}")).into_response(),
    };
    if let Some(r) = form_refusal(
        &session,
        f.csrf.as_deref().unwrap_or_default(),
        Role::Member,
        "changing incidents",
    ) {
        return r;
    }
    let actor = format!("user:{}", session.user.email);
    let result = match action.as_str() {
        "acknowledge" => act(&state, id, Action::Acknowledge, &actor)
            .await
            .map(|_| ()),
        "resolve" => act(&state, id, Action::Resolve, &actor).await.map(|_| ()),
        "note" => note(&state, id, &actor, f.message.as_deref().unwrap_or_default())
            .await
            .map(|_| ()),
        "checklist" => tick_item(
            &state,
            id,
            &actor,
            f.item.unwrap_or(u64::MAX),
            f.done.as_deref() != Some("false"),
        )
        .await
        .map(|_| ()),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/incidents/{id}")).into_response(),
        Err(crate::service::ServiceError::Conflict(m)) => {
            (StatusCode::CONFLICT, Html(simple_page("Nothing to do", &m))).into_response()
        }
        Err(e) => crate::ui::error::UiError::from(e).into_response(),
    }
}

async fn session_of(state: &AppState, headers: &HeaderMap) -> Option<tenancy::Session> {
    let sid = crate::auth::cookie(headers, crate::auth::SESSION_COOKIE)?;
    tenancy::session(state.store(), sid).await.ok().flatten()
}

// ------------------------------------------------------------------------------- on-call page

struct ScheduleView {
    id: i64,
    name: String,
    tz: String,
    now: String,
    next: String,
    spans: Vec<(String, String, String)>,
    bar: Vec<(String, String, f64)>,
}

#[derive(Template)]
#[template(path = "oncall.html")]
struct OnCallPage {
    title: String,
    ctx: PageCtx,
    schedules: Vec<ScheduleView>,
    mine: Vec<(String, String, String)>,
    users: Vec<(i64, String)>,
    can_edit: bool,
    error: String,
}

/// `?error=`.
#[derive(Deserialize)]
pub struct ErrorQuery {
    error: Option<String>,
}

/// `GET /on-call`.
pub async fn oncall(
    State(state): State<AppState>,
    Page {
        ctx, session: s, ..
    }: Page,
    Query(q): Query<ErrorQuery>,
) -> UiResult {
    let now = now_ms();
    let week = now + 7 * 86_400_000;
    let fortnight = now + 14 * 86_400_000;
    let loaded = async {
        let org = tenancy::default_org(state.store()).await?;
        let rows = astore::spec_list(state.store(), SpecTable::Schedules, org.id).await?;
        let users = tenancy::list_users(
            state.store(),
            &lookout_store::Cursor {
                after: None,
                limit: Some(1000),
            },
        )
        .await?
        .items;
        let names = astore::display_names(
            state.store(),
            &users.iter().map(|u| u.id).collect::<Vec<_>>(),
        )
        .await?;
        let name = |id: i64| names.get(&id).cloned().unwrap_or(format!("user {id}"));
        let mut views = Vec::new();
        let mut mine = Vec::new();
        let mut conn = state.store().pool().acquire().await?;
        for row in rows {
            let Some(sched) =
                engine::schedule_with_overrides(&mut conn, row.id, now, fortnight).await?
            else {
                continue;
            };
            let spans = sched.render(now, fortnight);
            // Shifts read in the schedule's own zone, as its layers are written.
            let tz = sched.tz().unwrap_or(chrono_tz::UTC);
            let at = |ms: i64| crate::ui::fmt::in_zone(ms, tz);
            for sp in spans.iter().filter(|sp| sp.user == s.user.id) {
                mine.push((row.name.clone(), at(sp.start), at(sp.end)));
            }
            let current = spans.first().filter(|sp| sp.start <= now);
            let next = spans
                .iter()
                .find(|sp| sp.start > now || Some(*sp) != current);
            let bar = spans
                .iter()
                .filter(|sp| sp.start < week)
                .map(|sp| {
                    let w =
                        (sp.end.min(week) - sp.start.max(now)) as f64 * 100.0 / (week - now) as f64;
                    (name(sp.user), at(sp.start), (w * 100.0).round() / 100.0)
                })
                .collect();
            views.push(ScheduleView {
                id: row.id,
                name: row.name.clone(),
                tz: sched.time_zone.clone(),
                now: if sched.enabled {
                    current.map_or("nobody".into(), |sp| name(sp.user))
                } else {
                    "nobody: the schedule is disabled".into()
                },
                next: next.map_or("nobody scheduled".into(), |sp| {
                    format!("{} from {}", name(sp.user), at(sp.start))
                }),
                spans: spans
                    .iter()
                    .filter(|sp| sp.start < week)
                    .map(|sp| (name(sp.user), at(sp.start), at(sp.end)))
                    .collect(),
                bar,
            });
        }
        let users = users.iter().map(|u| (u.id, name(u.id))).collect();
        Ok::<_, lookout_store::StoreError>((views, mine, users))
    }
    .await;
    let (schedules, mine, users) = loaded?;
    Ok(render(&OnCallPage {
        title: "On-call".into(),
        ctx,
        schedules,
        mine,
        users,
        can_edit: s.user.role >= Role::Member,
        error: q.error.unwrap_or_default(),
    }))
}
