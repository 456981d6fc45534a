//! Uptime monitoring in the server: the shard runners that check monitors ([`runner`]), the
//! cron check-in consumer and the push/cron HTTP endpoints ([`checkins`]), rollups and retention
//! ([`upkeep`]), config-file reconciliation ([`config`]) and the monitor view shared by the API
//! and the UI ([`view`]).

pub mod api;
pub mod checkins;
pub mod config;
mod passive;
mod pending;
pub mod quorum;
pub mod runner;
pub mod service;
pub mod ui;
pub mod upkeep;
pub mod view;

use std::sync::Arc;

use axum::http::HeaderValue;
use axum::routing::{get, post};
use axum::Router;
use lookout_core::seal::Sealer;
use lookout_store::uptime::pages::MaintenanceRow;
use lookout_store::{Store, StoreError};
use lookout_uptime::schedule::{Recurrence, Window};
use lookout_uptime::MonitorSpec;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The maintenance windows in force, parsed; shared by the runners and the views.
#[derive(Clone, Default)]
pub struct Windows(Arc<Vec<(Window, Vec<i64>)>>);

impl Windows {
    /// Parses stored windows (a window that no longer parses is skipped with a log line).
    pub fn from_rows(rows: &[MaintenanceRow]) -> Windows {
        let mut out = Vec::new();
        for r in rows {
            let rec: Option<Recurrence> = match r.recurrence.as_deref().map(serde_json::from_str) {
                None => None,
                Some(Ok(x)) => Some(x),
                Some(Err(e)) => {
                    tracing::warn!(window = r.id, error = %e, "Stored maintenance recurrence does not parse; skipped.");
                    continue;
                }
            };
            match Window::new(r.starts_at, r.ends_at, rec.as_ref()) {
                Ok(w) => out.push((w, r.monitor_ids.clone())),
                Err(e) => {
                    tracing::warn!(window = r.id, error = %e, "Stored maintenance window is invalid; skipped.")
                }
            }
        }
        Windows(Arc::new(out))
    }

    /// Loads the current windows (none, with a log line, when storage does not answer: for
    /// pages, which show what they can).
    pub async fn load(store: &lookout_store::Store) -> Windows {
        match Self::try_load(store).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "Could not load maintenance windows.");
                Windows::default()
            }
        }
    }

    /// Loads the current windows, or says why not (the runner keeps its last ones then).
    pub async fn try_load(
        store: &lookout_store::Store,
    ) -> Result<Windows, lookout_store::StoreError> {
        Ok(Windows::from_rows(
            &lookout_store::uptime::pages::list_maintenance(store).await?,
        ))
    }

    /// Whether `monitor` is inside an open window at `at`.
    pub fn covers(&self, monitor: i64, at: i64) -> bool {
        self.0
            .iter()
            .any(|(w, ids)| ids.contains(&monitor) && w.is_open(at))
    }
}

/// The stored form of a spec: JSON with its credentials sealed.
pub fn sealed_json(spec: &MonitorSpec, sealer: &Sealer) -> String {
    let mut s = spec.clone();
    let _ = s.map_secrets(|v| Ok::<_, ()>(sealer.seal(v)));
    serde_json::to_string(&s).unwrap_or_default()
}

/// Seals credentials that older versions stored in clear (passwords inside monitor URLs were
/// not sealed before): rewrites only the specs it changes, and returns how many. Everything
/// written since is sealed on the way in, so the pass runs once per installation (a flag marks
/// it done) instead of reading every monitor at every start.
pub async fn seal_stored_secrets(store: &Store, sealer: &Sealer) -> Result<usize, StoreError> {
    const DONE: &str = "monitor_secrets_sealed";
    if lookout_store::tenancy::instance_flag(store, DONE).await? {
        return Ok(0);
    }
    let mut sealed = 0;
    for (id, json) in lookout_store::uptime::all_specs(store).await? {
        let Ok(spec) = serde_json::from_str::<MonitorSpec>(&json) else {
            continue;
        };
        let mut clear = false;
        let mut probe = spec.clone();
        let _ = probe.map_secrets(|v| {
            clear |= !lookout_core::seal::is_sealed(v);
            Ok::<_, ()>(v.to_string())
        });
        if clear
            && lookout_store::uptime::reseal_spec(store, id, &json, &sealed_json(&spec, sealer))
                .await?
        {
            sealed += 1;
        }
    }
    if sealed > 0 {
        tracing::info!(
            monitors = sealed,
            "Sealed credentials that were stored in clear."
        );
    }
    lookout_store::tenancy::set_instance_flag(store, DONE).await?;
    Ok(sealed)
}

/// A stored spec with its credentials opened (`None` if it does not parse or open).
pub fn opened_spec(json: &str, sealer: &Sealer) -> Option<MonitorSpec> {
    let mut s: MonitorSpec = serde_json::from_str(json).ok()?;
    s.map_secrets(|v| sealer.open(v)).ok()?;
    Some(s)
}

/// Monitors and status pages in the API.
pub fn api() -> OpenApiRouter<AppState> {
    use api::{monitors, status_pages};
    OpenApiRouter::new()
        .routes(routes!(monitors::list, monitors::create))
        .routes(routes!(
            monitors::get_one,
            monitors::update,
            monitors::delete
        ))
        .routes(routes!(monitors::results))
        .routes(routes!(monitors::check_now))
        .routes(routes!(monitors::changes))
        .routes(routes!(monitors::list_windows, monitors::create_window))
        .routes(routes!(
            monitors::get_window,
            monitors::update_window,
            monitors::delete_window
        ))
        .routes(routes!(monitors::end_window))
        .routes(routes!(status_pages::list, status_pages::create))
        .routes(routes!(
            status_pages::get_one,
            status_pages::update,
            status_pages::delete
        ))
        .routes(routes!(
            status_pages::list_incidents,
            status_pages::create_incident
        ))
        .routes(routes!(status_pages::add_update))
}

/// The monitor and status-page editing pages.
pub fn pages() -> Router<AppState> {
    use ui::{monitor_form, monitor_page, monitors};
    Router::new()
        .route("/uptime", get(monitors::list))
        .route("/uptime/monitors", post(monitors::create))
        .route("/uptime/monitors/{id}", get(monitor_page::monitor))
        .route(
            "/uptime/monitors/{id}/edit",
            get(monitor_form::edit).post(monitor_form::save_edit),
        )
        .route(
            "/uptime/monitors/{id}/clone",
            get(monitor_form::clone).post(monitor_form::save_clone),
        )
        .route("/uptime/monitors/{id}/action", post(monitors::action))
        .route(
            "/uptime/status-pages",
            get(monitors::status_pages).post(monitors::save_page),
        )
        .route(
            "/uptime/status-pages/{id}",
            get(monitors::status_page).post(monitors::save_page),
        )
        .route(
            "/uptime/status-pages/{id}/incidents",
            post(monitors::post_incident),
        )
}

/// What anyone may call: cron and heartbeat check-ins (authenticated by their key or token) and
/// the public status pages, which get the UI's CSP and framing rules.
pub fn public() -> Router<AppState> {
    let mut status = Router::new()
        .route("/status/{slug}", get(ui::status_page::page))
        .route("/status/{slug}/feed.atom", get(ui::status_page::feed));
    for (name, value) in crate::ui::status_page_headers() {
        status = status.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    Router::new()
        .route(
            "/api/{project_id}/cron/{slug}/{key}/",
            get(checkins::http_checkin).post(checkins::http_checkin),
        )
        .route(
            "/api/{project_id}/cron/{slug}/{key}",
            get(checkins::http_checkin).post(checkins::http_checkin),
        )
        .route(
            "/api/v1/push/{token}",
            get(checkins::push).post(checkins::push),
        )
        .merge(status)
}

/// Rollups and raw-result retention.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    let cluster = bg.cluster.clone();
    vec![crate::tasks::PeriodicJob::on_store(
        upkeep::JOB,
        60_000,
        &bg.store,
        move |store| {
            let now = cluster.now_ms();
            async move { upkeep::run(&store, now).await }
        },
    )]
}

/// The shard runners (shards placed on the live replicas under fenced leases) and the check-in
/// consumer.
pub async fn workers(
    bg: &crate::tasks::Background,
) -> Result<crate::tasks::Workers, lookout_store::StoreError> {
    use std::sync::Arc;
    use std::time::Duration;
    let ctx = Arc::new(runner::UptimeContext {
        store: bg.store.clone(),
        writes: bg.writes.clone(),
        checker: Arc::new(lookout_uptime::Checker::new((**bg.outbound()).clone())),
        permits: Arc::new(tokio::sync::Semaphore::new(
            bg.uptime_max_concurrent_checks.max(1),
        )),
        cluster: bg.cluster.clone(),
        sealer: bg.sealer.clone(),
        windows: Default::default(),
    });
    Ok(vec![
        runner::placement(ctx, bg.stop.clone()),
        tokio::spawn(
            checkins::CheckInConsumer::new(bg.store.clone(), &bg.replica)
                .run(Duration::from_millis(200), bg.stopping()),
        ),
    ])
}
