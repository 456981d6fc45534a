//! Scheduled database health checks: a leased periodic job picks the targets that are due, opens
//! each sealed connection string, runs `lookout_dbhealth::check` with the target's rules and
//! thresholds, and stores the report (which publishes `db.finding` for new problems).

pub mod api;
pub mod ui;
pub mod view;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use lookout_core::seal::Sealer;
use lookout_core::time::now_ms;
use lookout_outbound::NetPolicy;
use lookout_store::dbhealth::{self as dstore, QueryStat, TargetRow};
use lookout_store::Store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The periodic job's id and kind.
pub const JOB: &str = "db.checks";
/// How often the job looks for due targets.
pub const EVERY_MS: i64 = 15_000;
/// The longest one target's check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// The database a target names (`user@host:port/db`); `None` when its connection string was
/// sealed with another key.
pub fn database_of(sealer: &Sealer, t: &TargetRow) -> Option<String> {
    sealer
        .open(&t.url_sealed)
        .ok()
        .map(|u| lookout_dbhealth::redact(&u))
}

/// What a stored report holds, counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
    pub verifications_failed: usize,
}

impl Counts {
    pub fn of(report: Option<&serde_json::Value>) -> Counts {
        let count = |key: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
            report
                .and_then(|r| r[key].as_array())
                .map_or(0, |a| a.iter().filter(|x| pred(x)).count())
        };
        let severity = |s: &'static str| move |f: &serde_json::Value| f["severity"] == s;
        Counts {
            critical: count("findings", &severity("critical")),
            warning: count("findings", &severity("warning")),
            info: count("findings", &severity("info")),
            verifications_failed: count("verifications", &|v| v["passed"] == false),
        }
    }
}

/// The options a target's thresholds give.
pub fn options(t: &TargetRow) -> lookout_dbhealth::Options {
    lookout_dbhealth::Options {
        slow_ms: t.slow_ms,
        slow_calls: t.slow_calls,
        ..lookout_dbhealth::Options::default()
    }
}

/// Checks one target, connecting only where the outbound policy allows, and stores the
/// outcome.
pub async fn check_target(
    store: &Store,
    sealer: &Sealer,
    policy: &NetPolicy,
    t: &TargetRow,
) -> Result<i64, String> {
    let started = now_ms();
    let outcome = async {
        let url = sealer.open(&t.url_sealed).map_err(|e| {
            format!("the connection string cannot be opened with this server's key: {e}")
        })?;
        let rules = match &t.verify {
            Some(y) if !y.trim().is_empty() => lookout_dbhealth::verify::parse(y)?,
            _ => Vec::new(),
        };
        let report = tokio::time::timeout(
            CHECK_TIMEOUT,
            lookout_dbhealth::check_within(&url, policy, &options(t), &rules),
        )
        .await
        .map_err(|_| format!("the check took longer than {} s", CHECK_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
        let stats = report
            .slow_queries
            .iter()
            .map(|q| QueryStat {
                queryid: q.queryid.clone(),
                query: q.query.clone(),
                calls: q.calls,
                total_ms: q.total_ms,
                rows: q.rows,
            })
            .collect();
        let json = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        Ok::<_, String>((json, stats))
    }
    .await;
    if let Err(e) = &outcome {
        tracing::warn!(target = t.id, name = %t.name, error = %e, "Database check failed.");
    }
    dstore::record(store, t, started, outcome)
        .await
        .map_err(|e| e.to_string())
}

/// One run of the job: every due target, one after the other.
pub async fn run(store: &Store, sealer: &Sealer, policy: &NetPolicy) -> Result<(), String> {
    let due = dstore::due(store, now_ms(), 20)
        .await
        .map_err(|e| e.to_string())?;
    for t in &due {
        let id = check_target(store, sealer, policy, t).await?;
        tracing::info!(target = t.id, name = %t.name, check = id, "Database checked.");
    }
    Ok(())
}

/// Database targets and their health in the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get_one, api::update, api::delete))
        .routes(routes!(api::check_now))
        .routes(routes!(api::checks))
        .routes(routes!(api::report))
        .routes(routes!(api::slow_queries))
}

/// The database pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/databases", get(ui::list))
        .route("/databases/{id}", get(ui::target))
}

/// Checks of every database target that is due.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    let (sealer, policy) = (bg.sealer.clone(), bg.outbound().clone());
    vec![crate::tasks::PeriodicJob::on_store(
        JOB,
        EVERY_MS,
        &bg.store,
        move |store| {
            let (sealer, policy) = (sealer.clone(), policy.clone());
            async move { run(&store, &sealer, &policy).await }
        },
    )]
}
