//! Uptime's domain operations, written once for the API, the UI and the config-file reconciler:
//! validating and storing monitors (create, change, pause, delete), and status pages with their
//! incidents. They return [`ServiceError`]; callers turn it into a JSON error or a form message.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::teams::ownership::team_change;
use lookout_store::ownership::TeamChange;
use lookout_store::tenancy;
use lookout_store::uptime::{self as ustore, pages, NewMonitor};
use lookout_store::{Cursor, StoreError};
use lookout_uptime::{Kind, MonitorSpec};

use super::config::MANAGED;

/// Refuses (409) a change to a monitor or status page the config file owns: the file would put
/// it back at the next reload.
pub fn refuse_if_declared(managed_by: Option<&str>, what: &str) -> ServiceResult<()> {
    if managed_by == Some(MANAGED) {
        return Err(ServiceError::Conflict(format!(
            "this {what} is declared in the config file; change it there"
        )));
    }
    Ok(())
}

/// Validates a definition against the stored monitors (parent, project).
/// Fields of [`MonitorView`] that are not part of the definition: a document fetched with GET
/// can be edited and sent back with PUT as is.
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "health",
    "push_url",
    "last_check_at",
    "last_ok",
    "last_latency_ms",
    "last_failure",
    "last_failure_at",
    "last_ping_at",
    "down_since",
    "certificate_expires_at",
    "certificate_days_left",
    "certificate_chain_valid",
    "uptime",
    "managed_by",
    "created_at",
    "updated_at",
];

async fn checked_spec(
    state: &AppState,
    mut body: Value,
    id: Option<i64>,
) -> ServiceResult<MonitorSpec> {
    if let Some(o) = body.as_object_mut() {
        for k in READ_ONLY {
            o.remove(*k);
        }
    }
    crate::locations::service::names_from_view(&mut body);
    let mut spec: MonitorSpec =
        serde_json::from_value(body).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    spec.validate()
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    crate::locations::service::check_monitor_locations(state, &spec).await?;
    if let Some(parent) = spec.parent_id {
        if Some(parent) == id {
            return Err(ServiceError::Invalid(
                "parent_id: a monitor cannot depend on itself".into(),
            ));
        }
        match ustore::get_monitor(state.store(), parent).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Invalid(format!(
                    "parent_id: no monitor {parent}"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if spec.kind == Kind::Cron {
        let project = match spec.project_id {
            Some(p) => p,
            None => tenancy::list_projects(state.store(), &Cursor::default())
                .await?
                .items
                .first()
                .map(|p| p.id)
                .ok_or_else(|| ServiceError::Invalid("project_id: no project exists".into()))?,
        };
        match tenancy::get_project(state.store(), project).await {
            Ok(_) => spec.project_id = Some(project),
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Invalid(format!(
                    "project_id: no project {project}"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(spec)
}

fn to_new(
    state: &AppState,
    org_id: i64,
    spec: &MonitorSpec,
    push_token: Option<String>,
) -> ServiceResult<NewMonitor> {
    Ok(NewMonitor {
        org_id,
        project_id: if spec.kind == Kind::Cron {
            spec.project_id
        } else {
            None
        },
        name: spec.name.clone(),
        kind: spec.kind.as_str().into(),
        slug: spec.slug.clone(),
        spec: crate::uptime::sealed_json(spec, state.sealer()),
        paused: spec.paused,
        parent_id: spec.parent_id,
        push_token,
        managed_by: None,
    })
}

/// Validates and stores a new monitor (the API and the UI form); returns its id.
pub async fn create_monitor(state: &AppState, body: Value) -> ServiceResult<i64> {
    let (body, team) = split_team(state, body).await?;
    let spec = checked_spec(state, body, None).await?;
    let org = tenancy::default_org(state.store()).await?;
    let token = (spec.kind == Kind::Heartbeat).then(lookout_core::secret::new_dsn_key);
    let new = to_new(state, org.id, &spec, token)?;
    let row = ustore::create_monitor_owned(state.store(), &new, team.initial()).await?;
    tracing::info!(monitor = row.id, kind = %row.kind, "Monitor created.");
    Ok(row.id)
}

/// Refuses `monitor_ids` naming a monitor that does not exist (windows, status pages).
pub async fn ensure_monitors(state: &AppState, ids: &[i64]) -> ServiceResult<()> {
    for id in ids {
        match ustore::get_monitor(state.store(), *id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ServiceError::Invalid(format!(
                    "monitor_ids: no monitor {id}"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Checks a page slug: 1 to 50 of a-z, 0-9 and '-'.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    if slug.is_empty()
        || slug.len() > 50
        || !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "slug {slug:?} must be 1 to 50 characters of a-z, 0-9 and '-'"
        ));
    }
    Ok(())
}

/// A status page definition.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusPageInput {
    /// URL slug: the page is public at `/status/{slug}`.
    pub slug: String,
    /// Title.
    pub title: String,
    /// Text under the title.
    #[serde(default)]
    pub description: String,
    /// Logo image URL (https).
    pub logo_url: Option<String>,
    /// Monitors shown, in order.
    #[serde(default)]
    pub monitor_ids: Vec<i64>,
}

async fn checked_page(
    state: &AppState,
    b: &StatusPageInput,
) -> ServiceResult<pages::NewStatusPage> {
    validate_slug(&b.slug).map_err(ServiceError::Invalid)?;
    let title = b.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ServiceError::Invalid(
            "title must be 1 to 200 characters".into(),
        ));
    }
    if let Some(l) = &b.logo_url {
        if !(l.starts_with("https://") || l.starts_with("http://") || l.starts_with('/'))
            || l.len() > 2000
        {
            return Err(ServiceError::Invalid(
                "logo_url must be an http(s) URL or a path".into(),
            ));
        }
    }
    ensure_monitors(state, &b.monitor_ids).await?;
    let org = tenancy::default_org(state.store()).await?;
    Ok(pages::NewStatusPage {
        org_id: org.id,
        slug: b.slug.clone(),
        title: title.to_string(),
        description: b.description.clone(),
        logo_url: b.logo_url.clone(),
        monitor_ids: b.monitor_ids.clone(),
        managed_by: None,
    })
}

/// Creates (`id` none) or replaces a page after validation (the API and the UI editor).
pub async fn save_status_page(
    state: &AppState,
    id: Option<i64>,
    body: &StatusPageInput,
) -> ServiceResult<pages::StatusPageRow> {
    if let Some(id) = id {
        let old = pages::get_page(state.store(), id).await?;
        refuse_if_declared(old.managed_by.as_deref(), "status page")?;
    }
    let new = checked_page(state, body).await?;
    Ok(match id {
        Some(id) => pages::update_page(state.store(), id, &new).await?,
        None => pages::create_page(state.store(), &new).await?,
    })
}

const STATUSES: &[&str] = &["investigating", "identified", "monitoring", "resolved"];

const IMPACTS: &[&str] = &["none", "minor", "major", "critical"];

fn check_text(field: &str, s: &str, max: usize) -> ServiceResult<()> {
    if s.trim().is_empty() || s.chars().count() > max {
        return Err(ServiceError::Invalid(format!(
            "{field} must be 1 to {max} characters"
        )));
    }
    Ok(())
}

/// Validates and opens an incident (the API and the UI).
pub async fn open_incident(
    state: &AppState,
    page_id: i64,
    title: &str,
    impact: Option<&str>,
    status: Option<&str>,
    body: &str,
) -> ServiceResult<pages::Incident> {
    pages::get_page(state.store(), page_id).await?;
    check_text("title", title, 200)?;
    check_text("body", body, 10_000)?;
    let status = status.unwrap_or("investigating");
    let impact = impact.unwrap_or("minor");
    one_of("status", status, STATUSES)?;
    one_of("impact", impact, IMPACTS)?;
    Ok(pages::create_incident(state.store(), page_id, title.trim(), impact, status, body).await?)
}

fn one_of(field: &str, v: &str, allowed: &[&str]) -> ServiceResult<()> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        )))
    }
}

/// Validates and adds an update to an incident of a page (the API and the UI).
pub async fn update_incident(
    state: &AppState,
    page_id: i64,
    incident_id: i64,
    status: &str,
    body: &str,
) -> ServiceResult<pages::Incident> {
    let incident = pages::get_incident(state.store(), incident_id).await?;
    if incident.page_id != page_id {
        return Err(ServiceError::NotFound("incident"));
    }
    check_text("body", body, 10_000)?;
    one_of("status", status, STATUSES)?;
    Ok(pages::add_update(state.store(), incident_id, status, body).await?)
}

/// Replaces a monitor's definition after validation. Secrets sent back masked are kept; the
/// type cannot change.
pub async fn update_monitor(state: &AppState, id: i64, body: Value) -> ServiceResult<()> {
    let (old, _) = ustore::get_monitor(state.store(), id).await?;
    refuse_if_declared(old.managed_by.as_deref(), "monitor")?;
    let (body, team) = split_team(state, body).await?;
    let mut spec = checked_spec(state, body, Some(id)).await?;
    if spec.kind.as_str() != old.kind {
        return Err(ServiceError::Invalid(
            "type: cannot change; create a new monitor".into(),
        ));
    }
    if let Ok(stored) = serde_json::from_str::<MonitorSpec>(&old.spec) {
        spec.keep_secrets_from(&stored)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    }
    ustore::update_monitor_owned(
        state.store(),
        id,
        &to_new(state, old.org_id, &spec, old.push_token.clone())?,
        team,
    )
    .await?;
    Ok(())
}

/// Takes `team_id` out of a monitor body (the definition refuses unknown fields; the owner is
/// not part of it) and checks it.
async fn split_team(state: &AppState, mut body: Value) -> ServiceResult<(Value, TeamChange)> {
    let team = team_change(state, &body).await?;
    if let Some(m) = body.as_object_mut() {
        m.remove("team_id");
    }
    Ok((body, team))
}

/// Deletes a monitor and its history.
pub async fn delete_monitor(state: &AppState, id: i64) -> ServiceResult<()> {
    let (old, _) = ustore::get_monitor(state.store(), id).await?;
    refuse_if_declared(old.managed_by.as_deref(), "monitor")?;
    ustore::delete_monitor(state.store(), id).await?;
    Ok(())
}

/// Pauses or resumes a monitor, keeping the rest of its definition (sealed secrets included).
pub async fn set_paused(state: &AppState, id: i64, paused: bool) -> ServiceResult<()> {
    let (row, _) = ustore::get_monitor(state.store(), id)
        .await
        .map_err(ServiceError::not_found("monitor"))?;
    refuse_if_declared(row.managed_by.as_deref(), "monitor")?;
    let mut spec = serde_json::from_str::<MonitorSpec>(&row.spec).map_err(|e| {
        ServiceError::Store(StoreError::Corrupt(format!(
            "monitor {id}: stored spec does not parse: {e}"
        )))
    })?;
    spec.paused = paused;
    let new = NewMonitor {
        org_id: row.org_id,
        project_id: row.project_id,
        name: row.name.clone(),
        kind: row.kind.clone(),
        slug: row.slug.clone(),
        spec: serde_json::to_string(&spec).unwrap_or_default(),
        paused,
        parent_id: row.parent_id,
        push_token: row.push_token.clone(),
        managed_by: None,
    };
    ustore::update_monitor(state.store(), id, &new).await?;
    Ok(())
}

/// How long [`check_now`] waits for the runner's result beyond the check's own timeout: one
/// reload of the shard (2 s) and a group commit, with room to spare.
const CHECK_NOW_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one check of monitor `id` now and records it like a scheduled one (the API's
/// `POST /api/v1/monitors/{id}/check` and the page's **Check now**). The check is asked of the
/// shard's runner through the store, so it takes the runner's path (thresholds, state changes,
/// events) and the runner stays the only writer of the monitor's state. Waits for the result up
/// to the check's timeout plus [`CHECK_NOW_SLACK`]; answers whether a new result was recorded
/// (a heartbeat with no ping yet, or a shard no replica holds, records none).
pub async fn check_now(state: &AppState, id: i64) -> ServiceResult<bool> {
    let (row, before) = ustore::get_monitor(state.store(), id)
        .await
        .map_err(ServiceError::not_found("monitor"))?;
    if row.paused {
        return Err(ServiceError::Conflict(
            "the monitor is paused; resume it to check it".into(),
        ));
    }
    let timeout = serde_json::from_str::<MonitorSpec>(&row.spec)
        .ok()
        .filter(|s| !matches!(s.kind, Kind::Heartbeat | Kind::Cron))
        .map_or(0, |s| u64::from(s.timeout_seconds));
    ustore::request_check(state.store(), id, lookout_core::time::now_ms())
        .await
        .map_err(ServiceError::not_found("monitor"))?;
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(timeout) + CHECK_NOW_SLACK;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, now) = ustore::get_monitor(state.store(), id)
            .await
            .map_err(ServiceError::not_found("monitor"))?;
        if now.last_check_at != before.last_check_at {
            tracing::info!(monitor = id, ok = ?now.last_ok, "Monitor checked on request.");
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// A maintenance window as the API and the monitor page give it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceInput {
    /// Shown on status pages.
    pub title: String,
    /// Details.
    #[serde(default)]
    pub description: String,
    /// One-off start (or when a recurrence takes effect), RFC 3339.
    pub starts_at: Option<String>,
    /// One-off end (or when a recurrence stops), RFC 3339.
    pub ends_at: Option<String>,
    /// `{"crontab": "0 2 * * SUN", "duration_minutes": 60, "timezone": "Europe/Paris"}`.
    #[schema(value_type = Option<crate::uptime::api::monitors::RecurrenceDoc>)]
    pub recurrence: Option<lookout_uptime::schedule::Recurrence>,
    /// The monitors it covers.
    pub monitor_ids: Vec<i64>,
}

fn parse_time(field: &str, v: Option<&str>) -> ServiceResult<Option<i64>> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| ServiceError::Invalid(format!("{field}: not an RFC 3339 time")))
    })
    .transpose()
}

async fn checked_window(
    state: &AppState,
    b: &MaintenanceInput,
) -> ServiceResult<pages::NewMaintenance> {
    let title = b.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(ServiceError::Invalid(
            "title must be 1 to 200 characters".into(),
        ));
    }
    let starts = parse_time("starts_at", b.starts_at.as_deref())?;
    let ends = parse_time("ends_at", b.ends_at.as_deref())?;
    lookout_uptime::schedule::Window::new(starts, ends, b.recurrence.as_ref())
        .map_err(ServiceError::Invalid)?;
    ensure_monitors(state, &b.monitor_ids).await?;
    let org = tenancy::default_org(state.store()).await?;
    Ok(pages::NewMaintenance {
        org_id: org.id,
        title: title.to_string(),
        description: b.description.clone(),
        starts_at: starts,
        ends_at: ends,
        recurrence: b
            .recurrence
            .as_ref()
            .map(|r| serde_json::to_string(r).unwrap_or_default()),
        monitor_ids: b.monitor_ids.clone(),
    })
}

/// Validates and creates (`id` none) or replaces a maintenance window (the API and the
/// monitor page's "Start maintenance").
pub async fn save_window(
    state: &AppState,
    id: Option<i64>,
    b: &MaintenanceInput,
) -> ServiceResult<pages::MaintenanceRow> {
    let new = checked_window(state, b).await?;
    Ok(match id {
        Some(id) => pages::update_maintenance(state.store(), id, &new)
            .await
            .map_err(ServiceError::not_found("maintenance window"))?,
        None => pages::create_maintenance(state.store(), &new).await?,
    })
}

/// Ends maintenance window `id` now (the API's `POST /api/v1/maintenance-windows/{id}/end` and
/// the monitor page's **End now**): a one-off window's end becomes now; a recurring window's
/// opening in force ends and its later openings are kept (the rule now takes effect when this
/// opening would have closed). `monitor`, when given, must be one the window covers (the
/// monitor page ends only windows it lists). A window that is not in progress is a conflict.
///
/// The covered monitors that are not paused are then checked at once, as Check now asks: a
/// monitor that went down during the window raises its alert now rather than at its next
/// scheduled check, which for a daily heartbeat could be a day away.
pub async fn end_window(
    state: &AppState,
    id: i64,
    monitor: Option<i64>,
) -> ServiceResult<pages::MaintenanceRow> {
    let store = state.store();
    let row = pages::get_maintenance(store, id)
        .await
        .map_err(ServiceError::not_found("maintenance window"))?;
    if monitor.is_some_and(|m| !row.monitor_ids.contains(&m)) {
        return Err(ServiceError::NotFound("maintenance window"));
    }
    let corrupt = |e: String| {
        ServiceError::Store(StoreError::Corrupt(format!(
            "maintenance window {id}: stored window does not parse: {e}"
        )))
    };
    let recurrence: Option<lookout_uptime::schedule::Recurrence> = row
        .recurrence
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    let window =
        lookout_uptime::schedule::Window::new(row.starts_at, row.ends_at, recurrence.as_ref())
            .map_err(corrupt)?;
    // The database's clock, which the runner judges maintenance by: on this replica's own, a
    // clock ahead of it would end the window after the check it asks for below, and that check
    // would still count as maintenance.
    let now = state
        .cluster()
        .map_or_else(lookout_core::time::now_ms, crate::cluster::Cluster::now_ms);
    let Some(until) = window.open_until(now) else {
        return Err(ServiceError::Conflict(format!(
            "maintenance window {id} is not in progress"
        )));
    };
    let (starts_at, ends_at) = match &recurrence {
        // A window opened this very millisecond still needs its end after its start.
        None => (
            row.starts_at,
            Some(now.max(row.starts_at.unwrap_or(now) + 1)),
        ),
        Some(_) => (Some(until), row.ends_at),
    };
    let ended = pages::update_maintenance(
        store,
        id,
        &pages::NewMaintenance {
            org_id: row.org_id,
            title: row.title.clone(),
            description: row.description.clone(),
            starts_at,
            ends_at,
            recurrence: row.recurrence.clone(),
            monitor_ids: row.monitor_ids.clone(),
        },
    )
    .await
    .map_err(ServiceError::not_found("maintenance window"))?;
    tracing::info!(window = id, monitors = ?row.monitor_ids, "Maintenance ended early.");
    for m in &row.monitor_ids {
        match ustore::get_monitor(store, *m).await {
            Ok((r, _)) if !r.paused => match ustore::request_check(store, *m, now).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            },
            // Paused, or deleted since the window was made: nothing to check.
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ended)
}
