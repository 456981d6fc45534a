//! How passive monitors hear from their jobs: heartbeat pings on a secret push URL, Sentry cron
//! check-ins over HTTP (`/api/{project_id}/cron/{slug}/{key}/`), and `check_in` envelope items,
//! which ingest keeps in the inbox and [`CheckInConsumer`] applies.
//!
//! HTTP check-ins go through the same inbox as envelope ones, so both are applied by one consumer
//! under one leased cursor: exactly once, in arrival order, whichever replica received them.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::AppState;
use lookout_core::time::now_ms;
use lookout_store::errors::process::ingest_writes;
use lookout_store::uptime::{self as ustore, checkins as cstore, cron as ucron, NewMonitor};
use lookout_store::{cursor, Store, StoreError, Tx};
use lookout_uptime::spec::{Kind, MonitorSpec};

/// The consumer's cursor over `ingest_items`.
pub const CURSOR: &str = "uptime.checkins";

/// Items applied per transaction at most.
const BATCH: i64 = 500;

fn problem(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

/// `GET|POST /api/v1/push/{token}`: a heartbeat ping. It joins the monitor's ping log with the
/// sender's address; a monitor that is not up is checked at once (see [`ustore::record_ping`]).
pub async fn push(
    State(state): State<AppState>,
    method: axum::http::Method,
    crate::auth::ClientAddr(from): crate::auth::ClientAddr,
    Path(token): Path<String>,
) -> Response {
    if token.len() > 100 {
        return problem(StatusCode::NOT_FOUND, "unknown push token");
    }
    let source = from.map(|ip| ip.to_string());
    match ustore::monitor_by_push_token(state.store(), &token).await {
        // The database's clock, which the runner judging the heartbeat uses too: a ping taken by
        // a replica whose clock is behind must not look stale.
        Ok(Some(m)) => match ustore::record_ping(
            state.store(),
            m.id,
            state
                .cluster()
                .map_or_else(now_ms, crate::cluster::Cluster::now_ms),
            source.as_deref(),
            method.as_str(),
        )
        .await
        {
            Ok(()) => (StatusCode::OK, Json(json!({ "ok": true }))).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "Could not record a heartbeat ping.");
                problem(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
            }
        },
        Ok(None) => {
            tracing::info!("Heartbeat ping with an unknown token refused.");
            problem(StatusCode::NOT_FOUND, "unknown push token")
        }
        Err(e) => {
            tracing::error!(error = %e, "Push token lookup failed.");
            problem(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// Query parameters of Sentry's HTTP check-in.
#[derive(Debug, Deserialize)]
pub struct CronParams {
    status: Option<String>,
    check_in_id: Option<String>,
    duration: Option<f64>,
    environment: Option<String>,
}

/// `GET|POST /api/{project_id}/cron/{slug}/{key}/`: Sentry's HTTP form of a check-in.
pub async fn http_checkin(
    State(state): State<AppState>,
    Path((project, slug, key)): Path<(String, String, String)>,
    Query(p): Query<CronParams>,
) -> Response {
    let Ok(project_id) = project.parse::<i64>() else {
        return problem(
            StatusCode::BAD_REQUEST,
            "project id in the path must be a number",
        );
    };
    let status = p.status.as_deref().unwrap_or("ok");
    if !matches!(status, "in_progress" | "ok" | "error") {
        tracing::info!(status, "Check-in with an unknown status refused.");
        return problem(
            StatusCode::BAD_REQUEST,
            "status must be in_progress, ok or error",
        );
    }
    // The same short-lived key cache as envelope ingest: a job pinging every second costs no
    // database round trip for its key.
    match state.ingest_keys().lookup(&state, &key, now_ms()).await {
        Ok(Some((pid, _))) if pid == project_id => {}
        Ok(_) => return problem(StatusCode::FORBIDDEN, "unknown DSN key for this project"),
        Err(e) => {
            tracing::error!(error = %e, "Key lookup failed.");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    }
    match ustore::cron_monitor(state.store(), project_id, &slug).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                "no cron monitor with this slug in this project",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "Cron monitor lookup failed.");
            return problem(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    }
    let check_in_id = p
        .check_in_id
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .unwrap_or_else(lookout_core::id::new_sortable_id);
    let mut payload = json!({ "check_in_id": check_in_id, "monitor_slug": slug, "status": status });
    if let Some(d) = p.duration.filter(|d| d.is_finite() && *d >= 0.0) {
        payload["duration"] = json!(d);
    }
    if let Some(env) = p.environment {
        payload["environment"] = json!(env);
    }
    let items = vec![("check_in".to_string(), None, payload.to_string())];
    match state
        .writes()
        .write(ingest_writes(project_id, now_ms(), items, Vec::new()))
        .await
    {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "id": check_in_id }))).into_response(),
        Err(StoreError::Overloaded | StoreError::ShuttingDown) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "server is busy; retry later",
        ),
        Err(e) => {
            tracing::error!(error = %e, "Check-in write failed.");
            problem(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// Follows the inbox's `check_in` items and applies them to cron monitors.
pub struct CheckInConsumer {
    store: Store,
    owner: String,
}

impl CheckInConsumer {
    /// A consumer identified as `owner` (unique per replica).
    pub fn new(store: Store, owner: &str) -> Self {
        CheckInConsumer {
            store,
            owner: owner.to_string(),
        }
    }

    /// Applies the next batch if this replica holds the cursor; returns items applied.
    pub async fn poll_once(&self) -> Result<usize, StoreError> {
        let Some(position) = cursor::lease(&self.store, CURSOR, &self.owner, 5_000).await? else {
            return Ok(0);
        };
        // Bounded by the newest item now, so a quiet inbox of events is not rescanned each poll.
        let newest = cstore::newest_inbox_seq(&self.store).await?;
        if newest <= position {
            return Ok(0);
        }
        let items = cstore::items(&self.store, position, newest, BATCH).await?;
        let until = match items.last() {
            Some(last) if items.len() as i64 == BATCH => last.seq,
            _ => newest,
        };
        let mut tx = self.store.begin_write().await?;
        for item in &items {
            let Ok(v) = serde_json::from_str::<Value>(&item.payload) else {
                continue;
            };
            apply_checkin(&mut tx, item.project_id, item.received_at, &v).await?;
        }
        if !cursor::advance(&mut tx, CURSOR, &self.owner, position, until).await? {
            tx.rollback().await?;
            return Ok(0);
        }
        tx.commit().await?;
        Ok(items.len())
    }

    /// Polls until `stop` resolves.
    pub async fn run(self, idle: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let wait = match self.poll_once().await {
                Ok(0) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "Check-in consumer failed; retrying.");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Applies one check-in: finds (or, from `monitor_config`, creates or updates) the cron monitor,
/// then records the run.
async fn apply_checkin(
    tx: &mut Tx,
    project_id: i64,
    received_at: i64,
    v: &Value,
) -> Result<(), StoreError> {
    let Some(slug) = v.get("monitor_slug").and_then(Value::as_str) else {
        return Ok(());
    };
    let status = v.get("status").and_then(Value::as_str).unwrap_or("ok");
    if !matches!(status, "in_progress" | "ok" | "error") {
        return Ok(());
    }
    let existing = cstore::target_in(tx, project_id, slug).await?;
    let config = v
        .get("monitor_config")
        .and_then(|c| spec_from_config(slug, c));
    let monitor_id = match (existing, config) {
        (Some(r), Some(spec)) => {
            let id = r.id;
            let stored: Option<MonitorSpec> = serde_json::from_str(&r.spec).ok();
            // The SDK's schedule wins, as in Sentry, unless the monitor is declared in the config file.
            if r.managed_by.is_none()
                && stored
                    .as_ref()
                    .is_some_and(|s| cron_fields_differ(s, &spec))
            {
                let mut merged = stored.unwrap_or(spec.clone());
                merged.schedule = spec.schedule.clone();
                merged.interval_seconds = spec.interval_seconds;
                merged.timezone = spec.timezone.clone();
                merged.grace_seconds = spec.grace_seconds;
                merged.max_runtime_seconds = spec.max_runtime_seconds;
                if merged.validate().is_ok() {
                    let spec = serde_json::to_string(&merged).unwrap_or_default();
                    cstore::set_spec_in(tx, id, &spec).await?;
                }
            }
            id
        }
        (Some(r), None) => r.id,
        (None, Some(spec)) => {
            let org = cstore::project_org_in(tx, project_id).await?;
            let id = ustore::create_monitor_in_tx(
                tx,
                &NewMonitor {
                    org_id: org,
                    project_id: Some(project_id),
                    name: spec.name.clone(),
                    kind: "cron".into(),
                    slug: spec.slug.clone(),
                    spec: serde_json::to_string(&spec).unwrap_or_default(),
                    paused: false,
                    parent_id: None,
                    push_token: None,
                    managed_by: None,
                },
            )
            .await?;
            tracing::info!(
                monitor = id,
                slug,
                "Cron monitor created from an SDK check-in."
            );
            id
        }
        (None, None) => {
            tracing::info!(
                project = project_id,
                slug,
                "Check-in for an unknown cron monitor without monitor_config; dropped."
            );
            return Ok(());
        }
    };
    let check_in_id = v
        .get("check_in_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(lookout_core::id::new_sortable_id);
    let duration_ms = v
        .get("duration")
        .and_then(Value::as_f64)
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(|d| (d * 1000.0) as i64);
    ucron::apply_report(
        tx,
        monitor_id,
        &check_in_id,
        status,
        received_at,
        duration_ms,
        v.get("environment").and_then(Value::as_str),
    )
    .await
}

fn cron_fields_differ(a: &MonitorSpec, b: &MonitorSpec) -> bool {
    a.schedule != b.schedule
        || (a.schedule.is_none() && a.interval_seconds != b.interval_seconds)
        || a.timezone != b.timezone
        || a.grace_seconds != b.grace_seconds
        || a.max_runtime_seconds != b.max_runtime_seconds
}

/// Turns Sentry's `monitor_config` into a cron spec: `schedule` (`crontab` or `interval` with a
/// unit), `checkin_margin` and `max_runtime` in minutes, `timezone`, and the thresholds.
pub fn spec_from_config(slug: &str, c: &Value) -> Option<MonitorSpec> {
    let schedule = c.get("schedule")?;
    let (crontab, interval_seconds) = match schedule.get("type").and_then(Value::as_str) {
        Some("crontab") => (Some(schedule.get("value")?.as_str()?.to_string()), 60),
        Some("interval") => {
            let n = schedule.get("value")?.as_u64()?;
            let unit = match schedule
                .get("unit")
                .and_then(Value::as_str)
                .unwrap_or("minute")
            {
                "second" => 1,
                "minute" => 60,
                "hour" => 3600,
                "day" => 86_400,
                "week" => 604_800,
                "month" => 2_592_000,
                "year" => 31_536_000,
                _ => return None,
            };
            (None, u32::try_from(n.saturating_mul(unit)).ok()?)
        }
        _ => return None,
    };
    let minutes = |k: &str| {
        c.get(k)
            .and_then(Value::as_u64)
            .and_then(|m| u32::try_from(m.saturating_mul(60)).ok())
    };
    let count = |k: &str| {
        c.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    let mut spec = MonitorSpec {
        name: slug.to_string(),
        kind: Kind::Cron,
        url: None,
        host: None,
        port: None,
        interval_seconds,
        timeout_seconds: 10,
        failure_threshold: count("failure_issue_threshold"),
        success_threshold: count("recovery_threshold"),
        conditions: Vec::new(),
        paused: false,
        grace_seconds: minutes("checkin_margin"),
        parent_id: None,
        method: None,
        headers: Default::default(),
        body: None,
        follow_redirects: true,
        verify_tls: true,
        basic_auth: None,
        bearer_token: None,
        record_type: None,
        resolver: None,
        expected_answers: Vec::new(),
        expected_rcode: None,
        expiry_warning_days: None,
        slug: Some(slug.to_string()),
        project_id: None,
        schedule: crontab,
        timezone: c
            .get("timezone")
            .and_then(Value::as_str)
            .map(str::to_string),
        max_runtime_seconds: minutes("max_runtime"),
        locations: Vec::new(),
        confirm: None,
    };
    spec.validate().ok()?;
    Some(spec)
}

#[cfg(test)]
mod tests {
    use super::spec_from_config;
    use serde_json::json;

    #[test]
    fn sentry_monitor_config_becomes_a_cron_spec() {
        let s = spec_from_config(
            "nightly",
            &json!({"schedule": {"type": "crontab", "value": "0 3 * * *"}, "checkin_margin": 5,
                    "max_runtime": 30, "timezone": "Europe/Paris", "failure_issue_threshold": 2}),
        )
        .unwrap();
        assert_eq!(s.schedule.as_deref(), Some("0 3 * * *"));
        assert_eq!(s.grace_seconds, Some(300));
        assert_eq!(s.max_runtime_seconds, Some(1800));
        assert_eq!(s.failure_threshold(), 2);
        let s = spec_from_config(
            "every",
            &json!({"schedule": {"type": "interval", "value": 10, "unit": "minute"}}),
        )
        .unwrap();
        assert_eq!((s.schedule, s.interval_seconds), (None, 600));
        assert!(spec_from_config(
            "bad",
            &json!({"schedule": {"type": "crontab", "value": "nope"}})
        )
        .is_none());
    }
}
