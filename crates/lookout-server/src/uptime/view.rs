//! How a monitor is shown (API and UI): its spec with secrets redacted, its current status,
//! uptime over 24 h / 7 d / 30 d / 90 d, the last result and failure, and the push URL.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::Windows;
use crate::extract::iso;
use crate::state::HttpSettings;
use lookout_core::time::now_ms;
use lookout_store::uptime::{pages, results, MonitorRow, MonitorState};
use lookout_store::{locations, tenancy};
use lookout_store::{Result, Store};
use lookout_uptime::spec::LOCAL;
use lookout_uptime::MonitorSpec;

/// Uptime percentages over the standard windows (null: no results in the window).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UptimeFigures {
    /// Last 24 hours.
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    /// Last 7 days.
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    /// Last 30 days.
    #[serde(rename = "30d")]
    pub month: Option<f64>,
    /// Last 90 days.
    #[serde(rename = "90d")]
    pub quarter: Option<f64>,
}

/// A monitor's definition ([`MonitorSpec`] as JSON), for the OpenAPI document: the fields every
/// type has, and the type's own (`method`, `headers`, `host`, `record_type`, …) as
/// `additionalProperties`, since they depend on `type`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MonitorDefinition {
    /// Name.
    pub name: String,
    /// `http`, `tcp`, `dns`, `icmp`, `tls`, `heartbeat` or `cron`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds between checks.
    pub interval_seconds: Option<u32>,
    /// Seconds a check may take.
    pub timeout_seconds: Option<u32>,
    /// Whether checks are paused.
    pub paused: Option<bool>,
    /// URL (`http`).
    pub url: Option<String>,
    /// Host (`tcp`, `dns`, `icmp`, `tls`).
    pub host: Option<String>,
    /// Port (`tcp`, `tls`).
    pub port: Option<u16>,
    /// Failed checks in a row before it is down.
    pub failure_threshold: Option<u32>,
    /// Passing checks in a row before it is up again.
    pub success_threshold: Option<u32>,
    /// Conditions such as `status_code == 200`.
    pub conditions: Option<Vec<String>>,
    /// The monitor it depends on.
    pub parent_id: Option<i64>,
    /// The type's own fields.
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, Value>,
}

/// A monitor as the API shows it: the spec fields plus its live state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonitorView {
    /// Id.
    pub id: i64,
    /// The monitor's definition (`name`, `type`, `url`, `interval_seconds`, …), secrets redacted.
    #[serde(flatten)]
    #[schema(value_type = MonitorDefinition)]
    pub spec: Value,
    /// `up`, `down`, `pending`, `paused` or `maintenance`.
    pub status: String,
    /// The thresholds' verdict, whatever maintenance or pausing shows.
    pub health: String,
    /// Heartbeat and cron monitors: the URL the job calls (GET or POST).
    pub push_url: Option<String>,
    /// Last check, RFC 3339.
    pub last_check_at: Option<String>,
    /// Whether the last check passed.
    pub last_ok: Option<bool>,
    /// Its latency, ms.
    pub last_latency_ms: Option<f64>,
    /// The last failure: which condition failed with what value, or the probe error.
    pub last_failure: Option<String>,
    /// When it happened, RFC 3339.
    pub last_failure_at: Option<String>,
    /// Certificate expiry (HTTPS and TLS monitors), RFC 3339.
    pub certificate_expires_at: Option<String>,
    /// Whole days until then.
    pub certificate_days_left: Option<i64>,
    /// Whether the certificate chain verified (null when TLS verification is off or unknown).
    pub certificate_chain_valid: Option<bool>,
    /// Heartbeat monitors: the last ping, RFC 3339 (null before the first).
    pub last_ping_at: Option<String>,
    /// Since when the monitor has been down, RFC 3339 (null unless down).
    pub down_since: Option<String>,
    /// Uptime percentages.
    pub uptime: UptimeFigures,
    /// Where it is checked from (`local`: the replicas), with each location's own verdict.
    pub locations: Vec<LocationStatus>,
    /// `config` when declared in the config file (edits there win).
    pub managed_by: Option<String>,
    /// The owning team's id, if any.
    pub team_id: Option<i64>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Last change of the definition, RFC 3339.
    pub updated_at: String,
}

/// A monitor's state as one location sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocationStatus {
    /// The location (`local`: the replicas' own checker).
    pub name: String,
    /// `up`, `down` or `pending` by the monitor's thresholds over this location's results;
    /// `offline` when the location's agents stopped reporting (it leaves the quorum), `unknown`
    /// when the location no longer exists.
    pub state: String,
    /// Its newest check, RFC 3339.
    pub last_check_at: Option<String>,
    /// That check's latency, ms.
    pub latency_ms: Option<f64>,
}

/// Each location's view of a monitor, in the order the spec names them.
async fn location_statuses(
    store: &Store,
    spec: Option<&MonitorSpec>,
    row: &MonitorRow,
    state: &MonitorState,
    now: i64,
) -> Result<Vec<LocationStatus>> {
    let names: Vec<&str> = spec.map_or_else(|| vec![LOCAL], |s| s.location_names());
    let local = |name: &str| LocationStatus {
        name: name.into(),
        state: state.health.clone(),
        last_check_at: state.last_check_at.map(iso),
        latency_ms: state.last_latency_us.map(|u| u as f64 / 1000.0),
    };
    if names == [LOCAL] {
        return Ok(vec![local(LOCAL)]);
    }
    let known = locations::list_locations(store).await?;
    let checks = locations::checks_of_monitor(store, row.id).await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if name == LOCAL {
            out.push(local(LOCAL));
            continue;
        }
        let Some(loc) = known.iter().find(|l| l.name == name) else {
            out.push(LocationStatus {
                name: name.into(),
                state: "unknown".into(),
                last_check_at: None,
                latency_ms: None,
            });
            continue;
        };
        let newest = locations::agents(store, loc.id)
            .await?
            .iter()
            .map(|a| a.last_seen_at)
            .max();
        let check = checks.iter().find(|c| c.location_id == loc.id);
        let online = crate::locations::service::is_online(loc, newest, now);
        out.push(LocationStatus {
            name: name.into(),
            state: match (online, check) {
                (false, _) => "offline".into(),
                (true, Some(c)) => c.health.clone(),
                (true, None) => "pending".into(),
            },
            last_check_at: check.and_then(|c| c.last_check_at).map(iso),
            latency_ms: check
                .and_then(|c| c.last_latency_us)
                .map(|u| u as f64 / 1000.0),
        });
    }
    Ok(out)
}

/// The status shown: paused and maintenance cover the thresholds' health.
pub fn status_of(row: &MonitorRow, state: &MonitorState, windows: &Windows, now: i64) -> String {
    if row.paused {
        "paused".into()
    } else if windows.covers(row.id, now) {
        "maintenance".into()
    } else {
        state.health.clone()
    }
}

/// The push URL of a heartbeat (`/api/v1/push/{token}`) or cron monitor (Sentry's HTTP form).
pub async fn push_url(store: &Store, settings: &HttpSettings, row: &MonitorRow) -> Option<String> {
    let base = &settings.public_url;
    if let Some(t) = &row.push_token {
        return Some(format!("{base}/api/v1/push/{t}"));
    }
    if row.kind == "cron" {
        let (pid, slug) = (row.project_id?, row.slug.as_deref()?);
        let key = tenancy::get_project(store, pid).await.ok()?.public_key?;
        return Some(format!("{base}/api/{pid}/cron/{slug}/{key}/"));
    }
    None
}

/// The four standard windows, in the order of [`UptimeFigures`]: a day, a week, 30 and 90 days.
const WINDOW_DAYS: [i64; 4] = [1, 7, 30, 90];

fn figures(v: &[Option<f64>]) -> UptimeFigures {
    let at = |i: usize| v.get(i).copied().flatten();
    UptimeFigures {
        day: at(0),
        week: at(1),
        month: at(2),
        quarter: at(3),
    }
}

/// Uptime over the four standard windows.
pub async fn uptime_figures(store: &Store, id: i64, now: i64) -> Result<UptimeFigures> {
    let mut all = uptime_of_many(store, &[id], now).await?;
    Ok(all.remove(&id).unwrap_or_else(|| figures(&[])))
}

/// [`uptime_figures`] of many monitors in a few statements (the monitor lists).
async fn uptime_of_many(
    store: &Store,
    ids: &[i64],
    now: i64,
) -> Result<std::collections::BTreeMap<i64, UptimeFigures>> {
    let sinces = WINDOW_DAYS.map(|d| now - d * 86_400_000);
    Ok(results::uptime_many(store, ids, &sinces)
        .await?
        .into_iter()
        .map(|(id, v)| (id, figures(&v)))
        .collect())
}

/// Builds the full view.
pub async fn monitor_view(
    store: &Store,
    settings: &HttpSettings,
    windows: &Windows,
    row: MonitorRow,
    state: MonitorState,
) -> Result<MonitorView> {
    let uptime = uptime_figures(store, row.id, now_ms()).await?;
    view_with(store, settings, windows, row, state, uptime).await
}

/// The views of a page of monitors, their uptime figures read for all of them at once.
pub async fn monitor_views(
    store: &Store,
    settings: &HttpSettings,
    windows: &Windows,
    rows: Vec<(MonitorRow, MonitorState)>,
) -> Result<Vec<MonitorView>> {
    let ids: Vec<i64> = rows.iter().map(|(r, _)| r.id).collect();
    let mut uptime = uptime_of_many(store, &ids, now_ms()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, state) in rows {
        let u = uptime.remove(&row.id).unwrap_or_else(|| figures(&[]));
        out.push(view_with(store, settings, windows, row, state, u).await?);
    }
    Ok(out)
}

/// The full view with its uptime figures already computed.
async fn view_with(
    store: &Store,
    settings: &HttpSettings,
    windows: &Windows,
    row: MonitorRow,
    state: MonitorState,
    uptime: UptimeFigures,
) -> Result<MonitorView> {
    let now = now_ms();
    let parsed = serde_json::from_str::<MonitorSpec>(&row.spec).ok();
    let mut spec = parsed
        .as_ref()
        .map(|s| serde_json::to_value(s.redacted()).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    // The view's `locations` (each with its state) replaces the spec's list of names.
    if let Some(o) = spec.as_object_mut() {
        o.remove("locations");
    }
    let locations = location_statuses(store, parsed.as_ref(), &row, &state, now).await?;
    Ok(MonitorView {
        id: row.id,
        status: status_of(&row, &state, windows, now),
        health: state.health.clone(),
        push_url: push_url(store, settings, &row).await,
        last_check_at: state.last_check_at.map(iso),
        last_ok: state.last_ok,
        last_latency_ms: state.last_latency_us.map(|u| u as f64 / 1000.0),
        last_failure: state.last_failure.clone(),
        last_failure_at: state.last_failure_at.map(iso),
        certificate_expires_at: state.cert_expires_at.map(iso),
        certificate_days_left: state
            .cert_expires_at
            .map(|e| (e - now).div_euclid(86_400_000)),
        certificate_chain_valid: state.cert_chain_valid,
        last_ping_at: state.last_ping_at.map(iso),
        down_since: (state.health == "down")
            .then_some(state.changed_at)
            .flatten()
            .map(iso),
        uptime,
        locations,
        managed_by: row.managed_by.clone(),
        team_id: row.team_id,
        created_at: iso(row.created_at),
        updated_at: iso(row.updated_at),
        spec,
    })
}

/// An incident with its updates, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// Id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Impact.
    pub impact: String,
    /// Current status.
    pub status: String,
    /// Opened, RFC 3339.
    pub created_at: String,
    /// Resolved, RFC 3339.
    pub resolved_at: Option<String>,
    /// Updates.
    pub updates: Vec<UpdateView>,
}

/// One update.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateView {
    /// When, RFC 3339.
    pub at: String,
    /// Status.
    pub status: String,
    /// Text.
    pub body: String,
}

/// The API shape of an incident.
pub fn incident_view(i: pages::Incident) -> IncidentView {
    IncidentView {
        id: i.id,
        title: i.title,
        impact: i.impact,
        status: i.status,
        created_at: iso(i.created_at),
        resolved_at: i.resolved_at.map(iso),
        updates: i
            .updates
            .into_iter()
            .map(|u| UpdateView {
                at: iso(u.at),
                status: u.status,
                body: u.body,
            })
            .collect(),
    }
}
