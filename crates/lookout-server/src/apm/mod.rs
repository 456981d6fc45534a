//! The APM figures the API and the pages share: a service's golden metrics, its transactions,
//! database and external calls, slow queries and charts — all computed from the same rollups by
//! the same code, so the services list, the service page, the API and alerts agree to the digit.

pub mod api;
pub mod otlp;
pub mod prom;
pub mod trace_view;
pub mod ui;

use std::collections::BTreeMap;

use axum::routing::get;
use axum::Router;
use lookout_apm::rollup::Red;
use lookout_store::apm::query::{self, Filter, Service, SpanSearch};
use lookout_store::apm::rollup;
use lookout_store::Store;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Figures over a set of rollup rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Transaction, statement summary, host or service.
    pub name: String,
    /// Spans.
    pub count: u64,
    /// Per minute over the window.
    #[serde(rename = "throughput_rpm")]
    pub rpm: f64,
    /// Mean duration, ms.
    pub avg: Option<f64>,
    /// Median, ms.
    pub p50: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
    /// 99th percentile, ms.
    pub p99: Option<f64>,
    /// Longest, ms.
    pub max: Option<f64>,
    /// Failed share, 0..1.
    pub error_rate: f64,
    /// Apdex for the service's target (requests only).
    pub apdex: Option<f64>,
    /// Total time, ms (count × mean): what "most time-consuming" ranks by.
    pub total_ms: f64,
}

impl Figures {
    /// The figures of `red` over a window of `minutes`, with Apdex target `t_ms`.
    pub fn of(name: &str, red: &Red, minutes: f64, t_ms: Option<f64>) -> Figures {
        Figures {
            name: name.to_string(),
            count: red.count(),
            rpm: red.count() as f64 / minutes.max(1.0 / 60.0),
            avg: red.avg(),
            p50: red.quantile(0.5),
            p95: red.quantile(0.95),
            p99: red.quantile(0.99),
            max: (red.count() > 0).then_some(red.all.max),
            error_rate: red.error_rate(),
            apdex: t_ms.and_then(|t| red.apdex(t)),
            total_ms: red.all.sum,
        }
    }
}

/// Minutes in `[since, until)`.
fn minutes(since: i64, until: i64) -> f64 {
    (until - since) as f64 / 60_000.0
}

/// The services list: each service's request figures.
pub async fn services(
    store: &Store,
    projects: &[i64],
    since: i64,
    until: i64,
) -> lookout_store::Result<Vec<(Service, Figures)>> {
    let known = query::services(store, projects, since - 86_400_000).await?;
    // One fold per service over its service rows (its requests summed over operations and
    // status classes): naming the service lets SQLite read the rollups' primary key (project,
    // tier, service, bucket, …) as one short range per service. Folding every operation's rows
    // took 150 ms at 2 million spans (issue 31).
    // Until the service rows hold every span (an upgrade's sum of older rollups pending, or
    // spans folded by a replica of an earlier version), the request rows give the figures.
    let category = if rollup::service_rows_complete(store).await? {
        rollup::SERVICE_CATEGORY
    } else {
        "request"
    };
    let mut reds: BTreeMap<String, Red> = BTreeMap::new();
    for name in known.iter().map(|s| s.name.as_str()) {
        if reds.contains_key(name) {
            continue;
        }
        let f = Filter {
            projects,
            service: Some(name),
            category: Some(category),
            ..Filter::default()
        };
        reds.extend(query::fold(store, &f, since, until, |c| Some(c.service.to_string())).await?);
    }
    let mut out: Vec<(Service, Figures)> = Vec::new();
    for s in known {
        let red = reds.get(&s.name).cloned().unwrap_or_default();
        let fig = Figures::of(&s.name, &red, minutes(since, until), Some(s.apdex_t_ms));
        // The same service name in two projects: shown once, with both projects' traffic.
        if !out.iter().any(|(o, _)| o.name == s.name) {
            out.push((s, fig));
        }
    }
    out.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.name.cmp(&b.0.name)));
    Ok(out)
}

/// Figures per operation of one category of a service, busiest first.
pub async fn operations(
    store: &Store,
    projects: &[i64],
    service: &str,
    category: &str,
    since: i64,
    until: i64,
    t_ms: Option<f64>,
) -> lookout_store::Result<Vec<Figures>> {
    let f = Filter {
        projects,
        service: Some(service),
        category: Some(category),
        ..Filter::default()
    };
    let reds = query::fold(store, &f, since, until, |c| Some(c.operation.to_string())).await?;
    let mut out: Vec<Figures> = reds
        .iter()
        .map(|(name, red)| Figures::of(name, red, minutes(since, until), t_ms))
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// One point of a service's charts.
#[derive(Debug, Clone, Serialize)]
pub struct ChartPoint {
    /// Bucket start, ms.
    pub t: i64,
    /// Requests per minute.
    pub rpm: f64,
    /// Mean, ms.
    pub avg: Option<f64>,
    /// 95th percentile, ms.
    pub p95: Option<f64>,
    /// Failed share.
    pub error_rate: f64,
}

/// A slow database call from the slow query log.
#[derive(Debug, Clone, Serialize)]
pub struct SlowQuery {
    /// Start, ms.
    pub at: i64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Database system.
    pub db_system: Option<String>,
    /// The normalised statement.
    pub statement: String,
    /// Its trace.
    pub trace_id: String,
    /// The span.
    pub span_id: String,
}

/// Time spent per kind of work in a service's requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    /// In database calls, ms.
    pub db_ms: f64,
    /// In external calls, ms.
    pub external_ms: f64,
    /// In the service's own code (request time minus the calls), ms.
    pub own_ms: f64,
}

/// Everything a service page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// The service's request figures.
    pub summary: Figures,
    /// Apdex target, ms.
    pub apdex_t_ms: f64,
    /// Slow-query threshold, ms.
    pub slow_query_ms: f64,
    /// The owning team's id, if any.
    pub team_id: Option<i64>,
    /// Requests per HTTP status class.
    pub status_classes: BTreeMap<String, u64>,
    /// Transactions, busiest first.
    pub transactions: Vec<Figures>,
    /// Database operations, busiest first.
    pub databases: Vec<Figures>,
    /// External hosts, busiest first.
    pub externals: Vec<Figures>,
    /// Time per kind of work.
    pub breakdown: Breakdown,
    /// Chart points.
    pub chart: Vec<ChartPoint>,
    /// Chart step, ms.
    pub chart_step_ms: i64,
    /// Slow database calls, slowest first.
    pub slow_queries: Vec<SlowQuery>,
    /// Instances.
    pub instances: Vec<query::Instance>,
    /// Linked error-tracking issues.
    pub issues: Vec<query::ServiceIssue>,
}

/// The service page's figures for `service` in `[since, until)`; `None` if it was never seen.
pub async fn overview(
    store: &Store,
    projects: &[i64],
    service: &str,
    since: i64,
    until: i64,
) -> lookout_store::Result<Option<Overview>> {
    let Some(settings) = query::service(store, projects, service).await? else {
        return Ok(None);
    };
    let t = settings.apdex_t_ms;
    let f = Filter {
        projects,
        service: Some(service),
        ..Filter::default()
    };
    // One read of the service's rows; every table on the page is derived from it.
    let cells = query::fold(store, &f, since, until, |c| {
        Some((
            c.category.to_string(),
            c.operation.to_string(),
            c.status_class.to_string(),
        ))
    })
    .await?;
    let mins = minutes(since, until);
    let mut whole = Red::default();
    let mut classes = BTreeMap::new();
    let mut by_op: BTreeMap<(String, String), Red> = BTreeMap::new();
    for ((category, operation, class), red) in &cells {
        if category == "request" {
            whole.merge(red);
            if !class.is_empty() {
                *classes.entry(class.clone()).or_insert(0) += red.count();
            }
        }
        by_op
            .entry((category.clone(), operation.clone()))
            .or_default()
            .merge(red);
    }
    let list = |cat: &str, apdex: bool| {
        let mut v: Vec<Figures> = by_op
            .iter()
            .filter(|((c, _), _)| c == cat)
            .map(|((_, op), red)| Figures::of(op, red, mins, apdex.then_some(t)))
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
        v
    };
    let transactions = list("request", true);
    let databases = list("db", false);
    let externals = list("external", false);
    let db_ms = databases.iter().fold(0.0, |a, d| a + d.total_ms);
    let external_ms = externals.iter().fold(0.0, |a, d| a + d.total_ms);
    let breakdown = Breakdown {
        db_ms,
        external_ms,
        own_ms: (whole.all.sum - db_ms - external_ms).max(0.0),
    };
    let step = query::chart_step(since, until);
    let rf = Filter {
        projects,
        service: Some(service),
        category: Some("request"),
        ..Filter::default()
    };
    let chart = query::series(store, &rf, since, until, step)
        .await?
        .into_iter()
        .map(|(t, red)| ChartPoint {
            t,
            rpm: red.count() as f64 / (step as f64 / 60_000.0),
            avg: red.avg(),
            p95: red.quantile(0.95),
            error_rate: red.error_rate(),
        })
        .collect();
    let slow = query::search(
        store,
        &SpanSearch {
            projects,
            service: Some(service),
            category: Some("db"),
            min_duration_ms: Some(settings.slow_query_ms),
            since,
            until,
            limit: 50,
            slowest_first: true,
            ..SpanSearch::default()
        },
    )
    .await?
    .into_iter()
    .map(|s| SlowQuery {
        at: s.start_ns / 1_000_000,
        duration_ms: s.duration_ns as f64 / 1e6,
        db_system: s.db_system,
        statement: s.db_statement.unwrap_or(s.operation),
        trace_id: s.trace_id,
        span_id: s.span_id,
    })
    .collect();
    Ok(Some(Overview {
        summary: Figures::of(service, &whole, mins, Some(t)),
        apdex_t_ms: t,
        slow_query_ms: settings.slow_query_ms,
        team_id: settings.team_id,
        status_classes: classes,
        transactions,
        databases,
        externals,
        breakdown,
        chart,
        chart_step_ms: step,
        slow_queries: slow,
        instances: query::instances(store, projects, service, since, until).await?,
        issues: query::service_issues(store, projects, service, 10).await?,
    }))
}

/// Services, traces, logs and metrics in the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::services))
        .routes(routes!(api::service, api::update_service))
        .routes(routes!(api::transactions))
        .routes(routes!(api::search))
        .routes(routes!(api::trace))
        .routes(routes!(api::logs))
        .routes(routes!(api::service_map))
        .routes(routes!(api::metrics))
        .routes(routes!(api::metric_points))
}

/// The performance pages.
pub fn pages() -> Router<AppState> {
    use ui::{performance, traces};
    Router::new()
        .route("/performance", get(performance::list))
        .route("/performance/services/{name}", get(performance::service))
        .route(
            "/performance/services/{name}/team",
            axum::routing::post(performance::set_team),
        )
        .route(
            "/performance/services/{name}/transaction",
            get(performance::transaction),
        )
        .route("/performance/traces", get(traces::search))
        .route("/performance/traces/{id}", get(traces::trace))
        .route("/performance/map", get(traces::map))
}

/// How long raw spans and logs are kept (search and drill-down).
const RAW_RETENTION_MS: i64 = 7 * 86_400_000;
/// How long minute rollups and metric minutes are kept; hour and day rollups stay.
const MINUTE_RETENTION_MS: i64 = 8 * 86_400_000;

/// Retention of raw spans and minute rollups, and the daily p95 points fed to series.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    use crate::tasks::PeriodicJob;
    vec![
        PeriodicJob::on_store("apm.retention", 600_000, &bg.store, |store| async move {
            let now = lookout_core::time::now_ms();
            let n = lookout_store::apm::query::purge(
                &store,
                now - RAW_RETENTION_MS,
                now - MINUTE_RETENTION_MS,
            )
            .await
            .map_err(|e| e.to_string())?;
            tracing::debug!(deleted = n, "APM retention enforced.");
            Ok(())
        }),
        PeriodicJob::on_store("apm.daily_series", 300_000, &bg.store, |store| async move {
            let n = lookout_store::apm::daily::push(&store, lookout_core::time::now_ms())
                .await
                .map_err(|e| e.to_string())?;
            if n > 0 {
                tracing::info!(points = n, "Daily APM p95 points added to series.");
            }
            Ok(())
        }),
    ]
}

/// The rollup consumer, the trace index and the Sentry-transaction converter.
pub fn workers(bg: &crate::tasks::Background) -> crate::tasks::Workers {
    use std::time::Duration;
    vec![
        tokio::spawn(
            lookout_store::apm::rollup::RollupProcessor::new(bg.store.clone(), &bg.replica)
                // A span waits at most about this long before it shows in RED figures.
                .run(Duration::from_millis(1_000), bg.stopping()),
        ),
        tokio::spawn(lookout_store::apm::trace_index::run(
            bg.store.clone(),
            Duration::from_secs(2),
            bg.stopping(),
        )),
        tokio::spawn(
            lookout_store::apm::sentry::TransactionProcessor::new(bg.store.clone(), &bg.replica)
                .run(Duration::from_millis(200), bg.stopping()),
        ),
    ]
}
