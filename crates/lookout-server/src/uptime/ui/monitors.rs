//! The Uptime section: the monitor list (state, beat bars, uptime), the add form, the monitor
//! page's actions (check now, pause/resume, maintenance, delete), and the status-page editor with
//! incidents. The monitor page itself is [`super::monitor_page`], the forms [`super::monitor_form`].

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::Value;

use super::monitor_form::{location_choices, FormError, MonitorForm, KINDS};
use super::monitor_page::{beats, Beat};
use crate::extract::iso;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::teams::owned_ui::{team_field, TeamField, TeamLists, TeamQuery};
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt::{self, When};
use crate::ui::layout::{render, PageCtx};
use crate::uptime::service::{self, MaintenanceInput, StatusPageInput};
use crate::uptime::view::{monitor_views, MonitorView};
use crate::uptime::Windows;
use lookout_core::time::now_ms;
use lookout_store::uptime::{self as ustore, pages, results};
use lookout_store::{tenancy, Cursor, StoreError};

/// One row of the monitor list.
pub struct Row {
    v: MonitorView,
    kind: String,
    target: String,
    every: String,
    beats: Vec<Beat>,
    day: String,
    month: String,
    last_check: Option<When>,
    down_for: Option<String>,
    team: String,
}

#[derive(Template)]
#[template(path = "uptime.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    rows: Vec<Row>,
    next: Option<String>,
    counts: (usize, usize, usize),
    form: MonitorForm,
    error: FormError,
    editing: bool,
    kinds: &'static [(&'static str, &'static str)],
    team_field: TeamField,
    owners: TeamLists,
}

/// What a monitor checks, as the list and the page show it.
pub fn target_of(v: &MonitorView) -> String {
    let s = &v.spec;
    let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
    match (
        text("url"),
        text("host"),
        s.get("port").and_then(Value::as_u64),
    ) {
        (Some(u), _, _) => u,
        (None, Some(h), Some(p)) => format!("{h}:{p}"),
        (None, Some(h), None) => h,
        _ => text("schedule")
            .map(|c| format!("cron {c}"))
            .or_else(|| {
                s.get("interval_seconds")
                    .and_then(Value::as_i64)
                    .map(fmt::every)
            })
            .unwrap_or_default(),
    }
}

/// Beats in each row of the list.
const LIST_BEATS: i64 = 30;

async fn list_page(
    state: &AppState,
    ctx: PageCtx,
    after: Option<String>,
    mut form: MonitorForm,
    error: FormError,
    owners: TeamLists,
) -> UiResult {
    form.choices = location_choices(state).await?;
    let loaded: Result<_, StoreError> = async {
        let org = tenancy::default_org(state.store()).await?;
        let page = ustore::list_monitors(
            state.store(),
            org.id,
            &Cursor {
                after,
                limit: Some(100),
            },
        )
        .await?;
        let windows = Windows::load(state.store()).await;
        let kept: Vec<_> = page
            .items
            .into_iter()
            .filter(|(row, _)| owners.keeps(row.team_id))
            .collect();
        let now = now_ms();
        let shown: Vec<_> = kept
            .iter()
            .map(|(row, st)| {
                let down_for = (st.health == "down")
                    .then_some(st.changed_at)
                    .flatten()
                    .map(|at| fmt::span(now - at));
                (
                    row.id,
                    owners.name(row.team_id),
                    When::opt(st.last_check_at),
                    down_for,
                )
            })
            .collect();
        // Uptime figures for the whole page at once.
        let views = monitor_views(state.store(), state.settings(), &windows, kept).await?;
        // And their heartbeat bars.
        let ids: Vec<i64> = shown.iter().map(|s| s.0).collect();
        let mut recent = results::recent_many(state.store(), &ids, LIST_BEATS).await?;
        let mut rows = Vec::with_capacity(views.len());
        for (v, (id, team, last_check, down_for)) in views.into_iter().zip(shown) {
            let recent = recent.remove(&id).unwrap_or_default();
            let pct = |p: Option<f64>| p.map_or_else(|| "–".into(), fmt::percent);
            rows.push(Row {
                every: v
                    .spec
                    .get("interval_seconds")
                    .and_then(Value::as_i64)
                    .map(fmt::every)
                    .unwrap_or_default(),
                beats: beats(&recent),
                day: pct(v.uptime.day),
                month: pct(v.uptime.month),
                last_check,
                down_for,
                kind: v
                    .spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                target: target_of(&v),
                v,
                team,
            });
        }
        Ok((rows, page.next))
    }
    .await;
    let (rows, next) = loaded?;
    let count = |s: &str| rows.iter().filter(|r| r.v.status == s).count();
    let counts = (count("up"), count("down"), rows.len());
    let status = if error.message.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let team_field = team_field(state, &form.team, error.field == "team").await?;
    let mine = if owners.mine() { "&team=mine" } else { "" };
    let mut r = render(&ListPage {
        title: "Uptime".into(),
        ctx,
        rows,
        next: next.map(|n| format!("/uptime?cursor={n}{mine}")),
        counts,
        form,
        error,
        editing: false,
        kinds: KINDS,
        team_field,
        owners,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// Query of the list.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
    /// `mine`: the viewer's teams' monitors only.
    #[serde(default)]
    team: Option<String>,
}

/// `GET /uptime`.
pub async fn list(
    State(state): State<AppState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> UiResult {
    // A mangled cursor shows the first page (the API answers 400).
    let after = q.cursor.filter(|c| c.parse::<i64>().is_ok());
    let form = MonitorForm {
        kind: "http".into(),
        picked: [("loc_local".to_string(), "on".to_string())].into(),
        ..MonitorForm::default()
    };
    let owners = TeamLists::load(&state, page.session.user.id, &TeamQuery { team: q.team }).await?;
    list_page(&state, page.ctx, after, form, FormError::default(), owners).await
}

/// `POST /uptime/monitors`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<MonitorForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let error = match f.to_spec(None) {
        Ok(body) => match service::create_monitor(&state, f.owned(body)).await {
            Ok(id) => return Ok(Redirect::to(&format!("/uptime/monitors/{id}")).into_response()),
            Err(ServiceError::Invalid(msg) | ServiceError::Conflict(msg)) => {
                FormError::from_message(msg)
            }
            Err(e) => return Err(e.into()),
        },
        Err(e) => e,
    };
    let owners = TeamLists::load(&state, form.session.user.id, &TeamQuery::default()).await?;
    list_page(&state, form.layout(&state).await?, None, f, error, owners).await
}

/// A monitor page action: the CSRF token, the action, and for maintenance its length.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: String,
    /// `maintenance`: minutes from now.
    #[serde(default)]
    minutes: String,
    /// `maintenance`: what it is for.
    #[serde(default)]
    title: String,
    /// `end_maintenance`: the window to end.
    #[serde(default)]
    window: String,
}

/// Maintenance started from the monitor page lasts at most this long (a week); longer or
/// recurring windows are made with the API.
const MAX_MAINTENANCE_MIN: i64 = 7 * 24 * 60;

/// `POST /uptime/monitors/{id}/action`: check now, pause, resume, start or end maintenance, or
/// delete.
pub async fn action(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<ActionForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
    let to = match f.action.as_str() {
        "delete" => {
            service::delete_monitor(&state, id).await?;
            "/uptime".to_string()
        }
        "pause" | "resume" => {
            service::set_paused(&state, id, f.action == "pause").await?;
            format!("/uptime/monitors/{id}")
        }
        "check" => {
            service::check_now(&state, id).await?;
            format!("/uptime/monitors/{id}")
        }
        "maintenance" => {
            let minutes = f
                .minutes
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|m| (1..=MAX_MAINTENANCE_MIN).contains(m))
                .ok_or_else(|| {
                    UiError::Refused(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("minutes: must be a whole number from 1 to {MAX_MAINTENANCE_MIN}"),
                    )
                })?;
            let now = now_ms();
            let title = match f.title.trim() {
                "" => "Maintenance".to_string(),
                t => t.to_string(),
            };
            service::save_window(
                &state,
                None,
                &MaintenanceInput {
                    title,
                    description: String::new(),
                    starts_at: Some(iso(now)),
                    ends_at: Some(iso(now + minutes * 60_000)),
                    recurrence: None,
                    monitor_ids: vec![id],
                },
            )
            .await?;
            format!("/uptime/monitors/{id}")
        }
        "end_maintenance" => {
            // A window id that is not a number names no window this page lists.
            let window = f
                .window
                .trim()
                .parse::<i64>()
                .map_err(|_| UiError::NotFound)?;
            service::end_window(&state, window, Some(id)).await?;
            format!("/uptime/monitors/{id}")
        }
        _ => {
            return Err(UiError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown action".into(),
            ))
        }
    };
    Ok(Redirect::to(&to).into_response())
}

// ---------------------------------------------------------------- status pages

/// A monitor to pick on the editor.
pub struct Pick {
    id: i64,
    name: String,
    checked: bool,
}

#[derive(Template)]
#[template(path = "status_pages.html")]
struct PagesPage {
    title: String,
    ctx: PageCtx,
    pages: Vec<pages::StatusPageRow>,
    editing: Option<pages::StatusPageRow>,
    picks: Vec<Pick>,
    incidents: Vec<pages::Incident>,
    error: String,
}

impl PagesPage {
    /// A stored time as a relative time with the absolute on hover.
    fn when(&self, ms: &i64) -> When {
        When::at(*ms)
    }
}

async fn pages_page(
    state: &AppState,
    ctx: PageCtx,
    editing: Option<i64>,
    error: String,
) -> UiResult {
    let store = state.store();
    let loaded: Result<_, StoreError> = async {
        let org = tenancy::default_org(store).await?;
        let list = pages::list_pages(store, org.id).await?;
        let editing = match editing {
            Some(id) => Some(pages::get_page(store, id).await?),
            None => None,
        };
        let all = ustore::list_monitors(
            store,
            org.id,
            &Cursor {
                after: None,
                limit: Some(1000),
            },
        )
        .await?;
        let picks = all
            .items
            .into_iter()
            .map(|(m, _)| Pick {
                checked: editing
                    .as_ref()
                    .is_some_and(|p| p.monitor_ids.contains(&m.id)),
                id: m.id,
                name: m.name,
            })
            .collect();
        let incidents = match &editing {
            Some(p) => pages::incidents(store, p.id, 20).await?,
            None => Vec::new(),
        };
        Ok((list, editing, picks, incidents))
    }
    .await;
    let (list, editing, picks, incidents) = loaded?;
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut r = render(&PagesPage {
        title: "Status pages".into(),
        ctx,
        pages: list,
        editing,
        picks,
        incidents,
        error,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// `GET /uptime/status-pages`.
pub async fn status_pages(State(state): State<AppState>, page: Page) -> UiResult {
    pages_page(&state, page.ctx, None, String::new()).await
}

/// `GET /uptime/status-pages/{id}`: the editor for one page.
pub async fn status_page(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<i64>,
) -> UiResult {
    pages_page(&state, page.ctx, Some(id), String::new()).await
}

/// The page editor's form (`monitor` repeats, one per ticked box).
#[derive(Debug, Deserialize)]
pub struct PageForm {
    csrf: String,
    slug: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    logo_url: String,
    /// Ticked boxes arrive as `monitor_{id}=on`.
    #[serde(flatten)]
    ticked: std::collections::BTreeMap<String, String>,
}

fn page_body(f: &PageForm) -> StatusPageInput {
    StatusPageInput {
        slug: f.slug.trim().to_string(),
        title: f.title.clone(),
        description: f.description.clone(),
        logo_url: Some(f.logo_url.trim().to_string()).filter(|l| !l.is_empty()),
        monitor_ids: f
            .ticked
            .keys()
            .filter_map(|k| k.strip_prefix("monitor_")?.parse().ok())
            .collect(),
    }
}

/// `POST /uptime/status-pages` (create) and `POST /uptime/status-pages/{id}` (save).
pub async fn save_page(
    State(state): State<AppState>,
    form: Signed<Member>,
    id: Option<Path<i64>>,
    Form(f): Form<PageForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let body = page_body(&f);
    let id = id.map(|Path(i)| i);
    match service::save_status_page(&state, id, &body).await {
        Ok(p) => Ok(Redirect::to(&format!("/uptime/status-pages/{}", p.id)).into_response()),
        Err(ServiceError::Invalid(msg) | ServiceError::Conflict(msg)) => {
            pages_page(&state, form.layout(&state).await?, id, msg).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The incident form: a new incident, or an update to `incident_id`.
#[derive(Debug, Deserialize)]
pub struct IncidentForm {
    csrf: String,
    #[serde(default)]
    incident_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    impact: String,
    status: String,
    body: String,
}

/// `POST /uptime/status-pages/{id}/incidents`.
pub async fn post_incident(
    State(state): State<AppState>,
    form: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<IncidentForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    let result = match f.incident_id.trim().parse::<i64>() {
        Ok(incident) => service::update_incident(&state, id, incident, &f.status, &f.body).await,
        Err(_) => {
            service::open_incident(
                &state,
                id,
                &f.title,
                Some(f.impact.as_str()).filter(|i| !i.is_empty()),
                Some(f.status.as_str()),
                &f.body,
            )
            .await
        }
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/uptime/status-pages/{id}")).into_response()),
        Err(ServiceError::Invalid(msg)) => {
            pages_page(&state, form.layout(&state).await?, Some(id), msg).await
        }
        Err(e) => Err(e.into()),
    }
}
