//! `/api/v1/monitors`: uptime monitors, their results and state changes; and
//! `/api/v1/maintenance-windows`, which silence monitors' alerts while keeping their results.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::{page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::teams::ownership::{filter_owned, TeamParam};
use crate::uptime::service;
use crate::uptime::view::{monitor_view, monitor_views, MonitorView};
use crate::uptime::Windows;
use lookout_store::tenancy;
use lookout_store::uptime::{self as ustore, pages, results};
use lookout_uptime::schedule::{Recurrence, Window};

page_of!(MonitorPage, MonitorView);

/// A monitor definition: `name`, `type` (`http`, `tcp`, `dns`, `icmp`, `tls`, `heartbeat`,
/// `cron`), `url`, `host`, `port`, `interval_seconds`, `timeout_seconds`, `failure_threshold`,
/// `success_threshold`, `conditions`, `paused`, `grace_seconds`, and the type's own fields.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = crate::uptime::view::MonitorDefinition)]
pub struct MonitorInput(pub Value);

/// One check result as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultView {
    /// When the check ran, RFC 3339.
    pub at: String,
    /// Whether it passed.
    pub ok: bool,
    /// Whether a maintenance window was open.
    pub maintenance: bool,
    /// Latency, ms.
    pub latency_ms: Option<f64>,
    /// Why it failed.
    pub message: Option<String>,
}

page_of!(ResultPage, ResultView);

/// A health change and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// When, RFC 3339.
    pub at: String,
    /// Before.
    pub from: String,
    /// After.
    pub to: String,
    /// The failing condition with its value, or what recovered; and why no alert went out.
    pub reason: String,
    /// Whether alerting was told (`monitor.down`/`monitor.up` domain events).
    pub alerted: bool,
}

async fn view(state: &AppState, id: i64) -> ApiResult<MonitorView> {
    let (row, st) = ustore::get_monitor(state.store(), id).await?;
    let windows = Windows::load(state.store()).await;
    Ok(monitor_view(state.store(), state.settings(), &windows, row, st).await?)
}

/// Lists monitors with their status and uptime.
/// With `team`, a page holds only that team's monitors and can be shorter than `limit`:
/// follow `next` to the end.
#[utoipa::path(get, operation_id = "monitors_list", path = "/api/v1/monitors", tag = "monitors", params(ListParams, TeamParam),
    responses((status = 200, body = MonitorPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListParams>,
    ApiQuery(team): ApiQuery<TeamParam>,
) -> ApiResult<Json<MonitorPage>> {
    let org = tenancy::default_org(state.store()).await?;
    let page = ustore::list_monitors(state.store(), org.id, &q.cursor()).await?;
    let rows = filter_owned(&state, who.user_id(), &team, page.items, |(m, _)| m.team_id).await?;
    let windows = Windows::load(state.store()).await;
    let items = monitor_views(state.store(), state.settings(), &windows, rows).await?;
    Ok(Json(MonitorPage {
        items,
        next: page.next,
    }))
}

/// Creates a monitor (role member). Heartbeat and cron monitors answer with their `push_url`.
#[utoipa::path(post, operation_id = "monitors_create", path = "/api/v1/monitors", tag = "monitors", request_body = MonitorInput,
    responses((status = 201, body = MonitorView), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<MonitorInput>,
) -> ApiResult<(StatusCode, Json<MonitorView>)> {
    let id = service::create_monitor(&state, body.0).await?;
    Ok((StatusCode::CREATED, Json(view(&state, id).await?)))
}

/// One monitor.
#[utoipa::path(get, operation_id = "monitors_get_one", path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Monitor id")),
    responses((status = 200, body = MonitorView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<MonitorView>> {
    Ok(Json(view(&state, id).await?))
}

/// Replaces a monitor's definition (role member). Secrets sent back as `********` are kept.
/// Monitors declared in the config file are changed there, not here (409).
#[utoipa::path(put, operation_id = "monitors_update", path = "/api/v1/monitors/{id}", tag = "monitors", request_body = MonitorInput,
    params(("id" = i64, Path, description = "Monitor id")),
    responses((status = 200, body = MonitorView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MonitorInput>,
) -> ApiResult<Json<MonitorView>> {
    service::update_monitor(&state, id, body.0).await?;
    Ok(Json(view(&state, id).await?))
}

/// Checks a monitor now (role member) and records the result like a scheduled check: the
/// shard's runner runs it through its usual path, so thresholds, state changes and events apply.
/// Answers 200 with the monitor once the result is stored, or 202 with the monitor as it is when
/// no result came within the check's timeout plus 5 s (a heartbeat with no ping yet records
/// none). A paused monitor answers 409.
#[utoipa::path(post, operation_id = "monitors_check_now", path = "/api/v1/monitors/{id}/check", tag = "monitors",
    params(("id" = i64, Path, description = "Monitor id")),
    responses((status = 200, body = MonitorView, description = "Checked; the view holds the result"),
              (status = 202, body = MonitorView, description = "Asked; no result yet"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
pub async fn check_now(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<MonitorView>)> {
    let checked = service::check_now(&state, id).await?;
    let status = if checked {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view(&state, id).await?)))
}

/// Deletes a monitor and its history (role member).
#[utoipa::path(delete, operation_id = "monitors_delete", path = "/api/v1/monitors/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Monitor id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    service::delete_monitor(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A monitor's check results, newest first (raw results are kept 24 h; older history is in
/// rollups).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/results", tag = "monitors",
    params(("id" = i64, Path, description = "Monitor id"), ListParams),
    responses((status = 200, body = ResultPage), (status = 404, body = ErrorBody)))]
pub async fn results(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ResultPage>> {
    ustore::get_monitor(state.store(), id).await?;
    let page = results::list_results(state.store(), id, &q.cursor()).await?;
    Ok(Json(
        page.map(|r| ResultView {
            at: iso(r.at),
            ok: r.ok,
            maintenance: r.maintenance,
            latency_ms: r.latency_us.map(|u| u as f64 / 1000.0),
            message: r.message,
        })
        .into(),
    ))
}

/// A monitor's health changes, newest first (kept 2 years).
#[utoipa::path(get, path = "/api/v1/monitors/{id}/changes", tag = "monitors",
    params(("id" = i64, Path, description = "Monitor id")),
    responses((status = 200, body = Vec<ChangeView>), (status = 404, body = ErrorBody)))]
pub async fn changes(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ChangeView>>> {
    ustore::get_monitor(state.store(), id).await?;
    let rows = ustore::changes(state.store(), id, 200).await?;
    Ok(Json(
        rows.into_iter()
            .map(|c| ChangeView {
                at: iso(c.at),
                from: c.from,
                to: c.to,
                reason: c.reason,
                alerted: c.alerted,
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------- maintenance windows

pub use crate::uptime::service::MaintenanceInput;

/// When a recurring window opens: a crontab in a time zone, for a duration.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecurrenceDoc {
    /// Five-field crontab of the openings, e.g. `0 2 * * SUN`.
    pub crontab: String,
    /// How long each opening lasts.
    pub duration_minutes: i64,
    /// IANA time zone the crontab is read in (default UTC).
    pub timezone: Option<String>,
}

/// A stored maintenance window. Its fields are listed one by one, not as the definition
/// flattened in: the definition's schema refuses unknown fields (`deny_unknown_fields`), so
/// `allOf` with it rejected every answer (`id`, `active` and `next_start` were "unknown").
#[derive(Debug, Serialize, ToSchema)]
pub struct MaintenanceView {
    /// Id.
    pub id: i64,
    /// Shown on status pages.
    pub title: String,
    /// Details.
    pub description: String,
    /// One-off start (or when a recurrence takes effect), RFC 3339.
    pub starts_at: Option<String>,
    /// One-off end (or when a recurrence stops), RFC 3339.
    pub ends_at: Option<String>,
    /// The recurrence, if any.
    #[schema(value_type = Option<RecurrenceDoc>)]
    pub recurrence: Option<Recurrence>,
    /// The monitors it covers.
    pub monitor_ids: Vec<i64>,
    /// Whether it is open now.
    pub active: bool,
    /// Next opening, RFC 3339.
    pub next_start: Option<String>,
}

fn maintenance_view(r: pages::MaintenanceRow) -> MaintenanceView {
    let recurrence: Option<Recurrence> = r
        .recurrence
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let window = Window::new(r.starts_at, r.ends_at, recurrence.as_ref()).ok();
    let now = lookout_core::time::now_ms();
    MaintenanceView {
        id: r.id,
        title: r.title,
        description: r.description,
        starts_at: r.starts_at.map(iso),
        ends_at: r.ends_at.map(iso),
        recurrence,
        monitor_ids: r.monitor_ids,
        active: window.as_ref().is_some_and(|w| w.is_open(now)),
        next_start: window.as_ref().and_then(|w| w.next_start(now)).map(iso),
    }
}

/// Lists maintenance windows.
#[utoipa::path(get, path = "/api/v1/maintenance-windows", tag = "monitors",
    responses((status = 200, body = Vec<MaintenanceView>)))]
pub async fn list_windows(
    State(state): State<AppState>,
    _who: Principal,
) -> ApiResult<Json<Vec<MaintenanceView>>> {
    let rows = pages::list_maintenance(state.store()).await?;
    Ok(Json(rows.into_iter().map(maintenance_view).collect()))
}

/// Creates a maintenance window (role member).
#[utoipa::path(post, path = "/api/v1/maintenance-windows", tag = "monitors", request_body = MaintenanceInput,
    responses((status = 201, body = MaintenanceView), (status = 422, body = ErrorBody)))]
pub async fn create_window(
    State(state): State<AppState>,
    _who: Member,
    ApiJson(body): ApiJson<MaintenanceInput>,
) -> ApiResult<(StatusCode, Json<MaintenanceView>)> {
    let row = service::save_window(&state, None, &body).await?;
    Ok((StatusCode::CREATED, Json(maintenance_view(row))))
}

/// One maintenance window.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Window id")),
    responses((status = 200, body = MaintenanceView), (status = 404, body = ErrorBody)))]
pub async fn get_window(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<MaintenanceView>> {
    Ok(Json(maintenance_view(
        pages::get_maintenance(state.store(), id).await?,
    )))
}

/// Replaces a maintenance window (role member).
#[utoipa::path(put, path = "/api/v1/maintenance-windows/{id}", tag = "monitors", request_body = MaintenanceInput,
    params(("id" = i64, Path, description = "Window id")),
    responses((status = 200, body = MaintenanceView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_window(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MaintenanceInput>,
) -> ApiResult<Json<MaintenanceView>> {
    Ok(Json(maintenance_view(
        service::save_window(&state, Some(id), &body).await?,
    )))
}

/// Ends a maintenance window in progress now (role member): a one-off window ends, a recurring
/// one's current opening ends and its later openings stay. Alerting resumes at once: the
/// monitors it covers are checked now. 409 when the window is not in progress.
#[utoipa::path(post, path = "/api/v1/maintenance-windows/{id}/end", tag = "monitors",
    params(("id" = i64, Path, description = "Window id")),
    responses((status = 200, body = MaintenanceView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end_window(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<MaintenanceView>> {
    Ok(Json(maintenance_view(
        service::end_window(&state, id, None).await?,
    )))
}

/// Deletes a maintenance window (role member).
#[utoipa::path(delete, path = "/api/v1/maintenance-windows/{id}", tag = "monitors",
    params(("id" = i64, Path, description = "Window id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_window(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    pages::delete_maintenance(state.store(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
