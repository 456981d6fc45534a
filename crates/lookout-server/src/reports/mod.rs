//! Reports: the daily check, the weekly review and the monthly deep dive, generated from what
//! Lookout recorded, with reliability outcomes (MTTD/MTTA/MTTR) and SLOs with error budgets.
//!
//! [`build`] makes a report for any period ending at a given moment; [`schedule`] makes them
//! every morning, week and month in the organization's time zone and queues their delivery
//! through notification channels ([`deliver`]); [`render`] turns one into printable HTML with
//! SVG charts, plain text and a Slack summary. The reads are in `lookout_store::reports::facts`.

pub mod api;
pub mod deliver;
pub mod model;
pub mod outcomes;
pub mod render;
pub mod schedule;
mod sections;
pub mod service;
mod services;
pub mod slo;
mod suggest;
pub mod ui;

use serde::{Deserialize, Serialize};

use axum::routing::get;
use axum::Router;
use lookout_store::{tenancy, Result, Store};
pub use model::{Kind, Period, Report};
pub use services::{evaluate as services_evaluate, objective};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// An organization's report settings (`PUT /api/v1/report-settings`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// IANA time zone of the schedule and of the dates shown.
    pub timezone: String,
    /// Local time of day reports are made, `HH:MM`.
    pub time_of_day: String,
    /// Weekday of the weekly review (`monday` … `sunday`).
    pub weekly_day: String,
    /// Day of the month of the monthly deep dive, 1–28.
    pub monthly_day: u32,
    /// Which kinds the schedule makes.
    pub daily: bool,
    pub weekly: bool,
    pub monthly: bool,
    /// Notification channels scheduled reports go to.
    pub channel_ids: Vec<i64>,
    /// Outcome targets.
    pub targets: outcomes::Targets,
    /// The uptime SLO of monitors without one of their own, percent.
    pub uptime_target: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timezone: "UTC".into(),
            time_of_day: "08:00".into(),
            weekly_day: "monday".into(),
            monthly_day: 1,
            daily: true,
            weekly: true,
            monthly: true,
            channel_ids: Vec::new(),
            targets: outcomes::Targets::default(),
            uptime_target: 99.9,
        }
    }
}

impl Settings {
    /// Checks every field; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.tz()?;
        schedule::time_of_day(&self.time_of_day)?;
        schedule::weekday(&self.weekly_day)?;
        if !(1..=28).contains(&self.monthly_day) {
            return Err("monthly_day: 1 to 28 (every month has it)".into());
        }
        if !(self.uptime_target > 0.0 && self.uptime_target < 100.0) {
            return Err("uptime_target: a percentage above 0 and below 100".into());
        }
        let t = &self.targets;
        for (name, v) in [
            ("targets.detect_minutes", t.detect_minutes),
            ("targets.acknowledge_minutes", t.acknowledge_minutes),
            ("targets.resolve_minutes", t.resolve_minutes),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("{name}: a positive number of minutes"));
            }
        }
        Ok(())
    }

    /// The time zone.
    pub fn tz(&self) -> std::result::Result<chrono_tz::Tz, String> {
        self.timezone
            .parse()
            .map_err(|_| format!("timezone: unknown time zone {:?}", self.timezone))
    }

    /// The organization's settings, the defaults when never saved (or unreadable).
    pub async fn load(store: &Store, org_id: i64) -> Result<Settings> {
        Ok(lookout_store::reports::settings(store, org_id)
            .await?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default())
    }
}

/// What a report is made for.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    /// The period's end, ms; it starts one period length earlier.
    pub end: i64,
    /// The UI's base URL for links.
    pub base_url: String,
    /// When it is made (the acknowledgement and resolution of incidents after `end` are not
    /// counted whatever this is).
    pub now: i64,
}

/// Builds a report of the default organization.
pub async fn build(store: &Store, req: &Request) -> Result<Report> {
    let org = tenancy::default_org(store).await?;
    let settings = Settings::load(store, org.id).await?;
    build_for(store, req, &org, &settings).await
}

/// Builds a report of `org` with its `settings` (already read by the caller).
pub async fn build_for(
    store: &Store,
    req: &Request,
    org: &tenancy::Organization,
    settings: &Settings,
) -> Result<Report> {
    let projects = tenancy::project_ids(store).await?;
    let len = req.kind.length_ms();
    let period = Period::new(req.end - len, req.end);
    let previous = Period::new(req.end - 2 * len, req.end - len);
    let ctx = sections::Ctx {
        store,
        org_id: org.id,
        projects: &projects,
        kind: req.kind,
        period: &period,
        previous: &previous,
        settings,
    };
    // The period's incidents, read once for the incidents, noise and recurring sections.
    let opened =
        lookout_store::reports::facts::incidents_opened(store, org.id, period.start, period.end)
            .await?;
    let review = req.kind != Kind::Daily;
    let monthly = req.kind == Kind::Monthly;
    let slo_rows = services::slo_lines(&ctx).await?;
    let mut report = Report {
        kind: req.kind,
        title: req.kind.title().into(),
        organization: org.name.clone(),
        timezone: settings.timezone.clone(),
        generated_at: req.now,
        base_url: req.base_url.trim_end_matches('/').to_string(),
        errors: Some(sections::errors(&ctx).await?),
        uptime: Some(sections::uptime(&ctx, &slo_rows).await?),
        incidents: Some(sections::incidents(&ctx, &opened).await?),
        services: Some(services::services(&ctx).await?),
        regressions: Some(sections::regressions(&ctx).await?),
        databases: Some(sections::databases(&ctx).await?),
        backups: Some(sections::backups(&ctx).await?),
        load_tests: if review {
            Some(sections::load_tests(&ctx).await?)
        } else {
            None
        },
        noise: if review {
            Some(sections::noise(&ctx, &opened).await?)
        } else {
            None
        },
        slos: review.then(|| slo_rows.into_iter().map(|(l, _)| l).collect()),
        capacity: if monthly {
            Some(services::capacity(&ctx).await?)
        } else {
            None
        },
        recurring: monthly.then(|| sections::recurring(&opened)),
        suggestions: None,
        period,
        previous,
    };
    if monthly {
        report.suggestions = Some(suggest::suggestions(&report));
    }
    Ok(report)
}

/// Reports, their history and SLOs in the API.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::get_report, api::make))
        .routes(routes!(api::history))
        .routes(routes!(api::get_one))
        .routes(routes!(api::get_settings, api::put_settings))
        .routes(routes!(api::list_slos, api::create_slo))
        .routes(routes!(api::get_slo, api::update_slo, api::delete_slo))
}

/// The report pages.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/reports", get(ui::list))
        .route("/reports/view", get(ui::view))
        .route("/reports/{id}", get(ui::kept))
}

/// Scheduled reports and their deliveries.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    let alerting = bg.alerting.clone();
    vec![crate::tasks::PeriodicJob {
        id: schedule::JOB,
        every_ms: schedule::EVERY_MS,
        handler: std::sync::Arc::new(move |_| {
            let a = alerting.clone();
            Box::pin(async move {
                schedule::run(&a, lookout_core::time::now_ms())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
        }),
    }]
}
