//! The Uptime section: the monitor list (state, sparklines, uptime), a form to add a monitor,
//! the monitor page (response-time chart, uptime figures, certificate, push URL, state-change
//! history, pause/resume/delete), and the status-page editor with incidents.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::charts;
use crate::extract::iso;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::layout::{render, PageCtx};
use crate::uptime::service::{self, StatusPageInput};
use crate::uptime::view::{monitor_view, MonitorView};
use crate::uptime::Windows;
use lookout_core::time::now_ms;
use lookout_store::uptime::{self as ustore, pages, results, Change};
use lookout_store::{tenancy, Cursor, StoreError};
use lookout_uptime::MonitorSpec;

const HOUR: i64 = 3_600_000;

/// One row of the monitor list.
pub struct Row {
    v: MonitorView,
    kind: String,
    target: String,
    spark: String,
}

#[derive(Template)]
#[template(path = "uptime.html")]
struct ListPage {
    title: String,
    ctx: PageCtx,
    rows: Vec<Row>,
    next: Option<String>,
    error: String,
    counts: (usize, usize, usize),
}

fn target_of(v: &MonitorView) -> String {
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
                    .and_then(Value::as_u64)
                    .map(|i| format!("every {i} s"))
            })
            .unwrap_or_default(),
    }
}

async fn list_page(
    state: &AppState,
    ctx: PageCtx,
    after: Option<String>,
    error: String,
) -> UiResult {
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
        let mut rows = Vec::with_capacity(page.items.len());
        for (row, st) in page.items {
            let recent = results::list_results(
                state.store(),
                row.id,
                &Cursor {
                    after: None,
                    limit: Some(30),
                },
            )
            .await?;
            let lat: Vec<f64> = recent
                .items
                .iter()
                .rev()
                .map(|r| r.latency_us.unwrap_or(0) as f64 / 1000.0)
                .collect();
            let v = monitor_view(state.store(), state.settings(), &windows, row, st).await?;
            rows.push(Row {
                kind: v
                    .spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                target: target_of(&v),
                spark: charts::sparkline(&lat, "response time, last 30 checks (ms)"),
                v,
            });
        }
        Ok((rows, page.next))
    }
    .await;
    let (rows, next) = loaded?;
    let count = |s: &str| rows.iter().filter(|r| r.v.status == s).count();
    let counts = (count("up"), count("down"), rows.len());
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut r = render(&ListPage {
        title: "Uptime".into(),
        ctx,
        rows,
        next: next.map(|n| format!("/uptime?cursor={n}")),
        error,
        counts,
    });
    *r.status_mut() = status;
    Ok(r)
}

/// Query of the list.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    cursor: Option<String>,
}

/// `GET /uptime`.
pub async fn list(
    State(state): State<AppState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> UiResult {
    // A mangled cursor shows the first page (the API answers 400).
    let after = q.cursor.filter(|c| c.parse::<i64>().is_ok());
    list_page(&state, page.ctx, after, String::new()).await
}

/// The add-monitor form.
#[derive(Debug, Deserialize)]
pub struct NewMonitorForm {
    csrf: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    interval_seconds: String,
    #[serde(default)]
    conditions: String,
}

/// Turns the form into the API's monitor JSON: the target is a URL, `host:port` or a host,
/// depending on the type; conditions come one per line.
fn form_to_spec(f: &NewMonitorForm) -> Value {
    let mut v = json!({"name": f.name.trim(), "type": f.kind});
    let target = f.target.trim();
    match f.kind.as_str() {
        "http" | "tls" if target.contains("://") => v["url"] = json!(target),
        "tcp" | "tls" => match target.rsplit_once(':') {
            Some((h, p)) => {
                v["host"] = json!(h.trim_start_matches('[').trim_end_matches(']'));
                v["port"] = p.parse::<u16>().map(|p| json!(p)).unwrap_or(json!(p));
            }
            None => v["host"] = json!(target),
        },
        "dns" | "icmp" => v["host"] = json!(target),
        "cron" if !target.is_empty() => v["schedule"] = json!(target),
        "http" => v["url"] = json!(target),
        _ => {}
    }
    if let Ok(i) = f.interval_seconds.trim().parse::<u32>() {
        v["interval_seconds"] = json!(i);
    }
    let conds: Vec<&str> = f
        .conditions
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !conds.is_empty() {
        v["conditions"] = json!(conds);
    }
    v
}

/// `POST /uptime/monitors`.
pub async fn create(
    State(state): State<AppState>,
    form: Signed<Member>,
    Form(f): Form<NewMonitorForm>,
) -> UiResult {
    check_csrf(&form.session, &f.csrf)?;
    match service::create_monitor(&state, form_to_spec(&f)).await {
        Ok(id) => Ok(Redirect::to(&format!("/uptime/monitors/{id}")).into_response()),
        Err(ServiceError::Invalid(msg) | ServiceError::Conflict(msg)) => {
            list_page(&state, form.layout(&state).await?, None, msg).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "monitor.html")]
struct MonitorPage {
    title: String,
    ctx: PageCtx,
    v: MonitorView,
    kind: String,
    target: String,
    conditions: Vec<String>,
    chart: String,
    changes: Vec<(String, Change)>,
    failures: Vec<(String, String)>,
    checkins: Vec<(String, String, String)>,
    paused: bool,
}

/// `GET /uptime/monitors/{id}`.
pub async fn monitor(
    State(state): State<AppState>,
    Page { ctx, .. }: Page,
    Path(id): Path<i64>,
) -> UiResult {
    let store = state.store();
    let loaded: Result<_, StoreError> = async {
        let (row, st) = ustore::get_monitor(store, id).await?;
        let spec: Option<MonitorSpec> = serde_json::from_str(&row.spec).ok();
        let windows = Windows::load(store).await;
        let paused = row.paused;
        let kind = row.kind.clone();
        let v = monitor_view(store, state.settings(), &windows, row, st).await?;
        let now = now_ms();
        let since = now - 24 * HOUR;
        // Hourly averages and p95 over a day, or minutes over the last six hours when the
        // monitor is younger than that (its chart would otherwise be one point).
        let (width, from) = if now
            - chrono::DateTime::parse_from_rfc3339(&v.created_at)
                .map_or(0, |t| t.timestamp_millis())
            < 6 * HOUR
        {
            ("m", now - HOUR)
        } else {
            ("h", since)
        };
        let buckets = results::buckets(store, id, width, from).await?;
        let series = |name: &str, f: &dyn Fn(&results::Bucket) -> Option<i64>| charts::Series {
            name: name.into(),
            points: buckets
                .iter()
                .filter_map(|b| Some((b.bucket, f(b)? as f64 / 1000.0)))
                .collect(),
        };
        let chart = charts::time_series(
            "Response time (ms)",
            &[
                series("average", &|b| b.latency_avg_us),
                series("p95", &|b| b.latency_p95_us),
            ],
            from,
            now,
        );
        let changes = ustore::changes(store, id, 50)
            .await?
            .into_iter()
            .map(|c| (iso(c.at), c))
            .collect();
        let failures = results::list_results(
            store,
            id,
            &Cursor {
                after: None,
                limit: Some(200),
            },
        )
        .await?
        .items
        .into_iter()
        .filter(|r| !r.ok)
        .take(20)
        .map(|r| (iso(r.at), r.message.unwrap_or_default()))
        .collect();
        let checkins = if kind == "cron" {
            ustore::cron::recent(store, id, 20)
                .await?
                .into_iter()
                .map(|c| {
                    (
                        iso(c.started_at),
                        c.status,
                        c.duration_ms
                            .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                            .unwrap_or_default(),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok((v, kind, spec, chart, changes, failures, checkins, paused))
    }
    .await;
    let (v, kind, spec, chart, changes, failures, checkins, paused) = loaded?;
    Ok(render(&MonitorPage {
        title: v
            .spec
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("Monitor")
            .to_string(),
        ctx,
        target: target_of(&v),
        conditions: spec.map(|s| s.conditions()).unwrap_or_default(),
        kind,
        v,
        chart,
        changes,
        failures,
        checkins,
        paused,
    }))
}

/// A form with only the CSRF token and an action.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: String,
    action: String,
}

/// `POST /uptime/monitors/{id}/action`: pause, resume or delete.
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
