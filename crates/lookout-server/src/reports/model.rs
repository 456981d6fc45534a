//! The report as data: what `GET /api/v1/reports` returns, what is stored and delivered as
//! JSON, and what the HTML, plain-text and Slack renderings read. Times are ms since the epoch
//! (with RFC 3339 copies on the period), durations ms, error rates fractions (0.02 = 2 %),
//! uptime, attainment and targets percentages. A section is `null` when the report's kind does
//! not include it; an empty list means the capability is there and had nothing to say.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::outcomes::{Outcome, Targets};
use super::slo::Budget;

/// The report's kind: how long its period is and which sections it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The last 24 hours: what changed.
    Daily,
    /// 7 days against the 7 before.
    Weekly,
    /// 30 days against the 30 before, with SLOs, capacity, recurring incidents and suggestions.
    Monthly,
}

impl Kind {
    /// Every kind, in order.
    pub const ALL: [Kind; 3] = [Kind::Daily, Kind::Weekly, Kind::Monthly];

    /// `daily`, `weekly`, `monthly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Daily => "daily",
            Kind::Weekly => "weekly",
            Kind::Monthly => "monthly",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The period's length, ms.
    pub fn length_ms(self) -> i64 {
        86_400_000
            * match self {
                Kind::Daily => 1,
                Kind::Weekly => 7,
                Kind::Monthly => 30,
            }
    }

    /// `Daily check`, `Weekly review`, `Monthly deep dive`.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Daily => "Daily check",
            Kind::Weekly => "Weekly review",
            Kind::Monthly => "Monthly deep dive",
        }
    }
}

/// A time range `[start, end)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
    /// RFC 3339 copies.
    pub start_iso: String,
    pub end_iso: String,
}

impl Period {
    /// `[start, end)`.
    pub fn new(start: i64, end: i64) -> Period {
        Period {
            start,
            end,
            start_iso: lookout_core::time::iso(start),
            end_iso: lookout_core::time::iso(end),
        }
    }
}

/// A generated report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub kind: Kind,
    /// `Daily check`, …
    pub title: String,
    pub organization: String,
    /// The IANA time zone dates are shown in.
    pub timezone: String,
    pub period: Period,
    /// The period compared against (the same length just before).
    pub previous: Period,
    pub generated_at: i64,
    /// The UI's base URL, which every `url` below is relative to.
    pub base_url: String,
    pub errors: Option<Errors>,
    pub uptime: Option<Uptime>,
    pub incidents: Option<Incidents>,
    pub services: Option<Services>,
    pub regressions: Option<Vec<RegressionLine>>,
    pub databases: Option<Databases>,
    pub backups: Option<Backups>,
    pub load_tests: Option<Vec<LoadLine>>,
    pub noise: Option<Noise>,
    pub slos: Option<Vec<SloLine>>,
    pub capacity: Option<Capacity>,
    pub recurring: Option<Vec<Recurring>>,
    pub suggestions: Option<Vec<Suggestion>>,
}

/// An error issue with its activity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueLine {
    pub id: i64,
    pub title: String,
    pub level: String,
    pub project_id: i64,
    /// Events in the period.
    pub events: i64,
    /// Distinct users in the period.
    pub users: i64,
    /// Events in the previous period.
    pub events_previous: i64,
    pub first_seen: i64,
    pub url: String,
}

/// Errors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Errors {
    /// Error events in the period and the one before.
    pub events: i64,
    pub events_previous: i64,
    /// Issues first seen in the period, most events first.
    pub new_issues: Vec<IssueLine>,
    /// Issues that came back after being resolved, in the period.
    pub regressed: Vec<IssueLine>,
    /// Weekly and monthly: the 10 issues with most events, and with most users.
    pub top_by_events: Vec<IssueLine>,
    pub top_by_users: Vec<IssueLine>,
}

/// A monitor's outage (down to up).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    pub monitor_id: i64,
    pub monitor: String,
    pub start: i64,
    /// `None`: still down at the report's end.
    pub end: Option<i64>,
    /// Down time inside the period, ms.
    pub duration_ms: i64,
    pub url: String,
}

/// A monitor over the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorLine {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// Percent of checks that passed (maintenance left out); `None` without checks.
    pub uptime: Option<f64>,
    pub uptime_previous: Option<f64>,
    pub checks: i64,
    pub failed_checks: i64,
    /// The monitor's uptime SLO target (its own SLO, or the organization's default), percent.
    pub target: f64,
    pub met: Option<bool>,
    pub downtime_ms: i64,
    pub outages: u64,
    pub url: String,
}

/// Uptime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uptime {
    pub monitors: Vec<MonitorLine>,
    /// Outages that overlap the period, oldest first.
    pub outages: Vec<Outage>,
}

/// An incident opened in the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncidentLine {
    pub id: i64,
    pub title: String,
    pub service: Option<String>,
    pub severity: String,
    /// As of the report's end: `triggered`, `acknowledged`, `resolved`.
    pub status: String,
    pub created_at: i64,
    pub failure_start: Option<i64>,
    pub acknowledged_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub url: String,
}

/// Incidents and outcomes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Incidents {
    pub opened: Vec<IncidentLine>,
    pub opened_previous: u64,
    /// Over the incidents opened in the period.
    pub outcomes: Outcome,
    pub targets: Targets,
    /// Per service (`(none)` for incidents without one).
    pub by_service: BTreeMap<String, Outcome>,
    /// Per calendar month (`2026-11`, in the report's time zone): monthly reports.
    pub by_month: BTreeMap<String, Outcome>,
}

/// A service's golden figures over one window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Figures {
    pub requests: u64,
    /// Requests per minute.
    pub throughput_rpm: f64,
    pub p95_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub apdex: Option<f64>,
}

/// A service over the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceLine {
    pub name: String,
    pub project_id: i64,
    pub current: Figures,
    pub previous: Figures,
    /// The 7 days before the period: what "moved" is measured against.
    pub baseline: Figures,
    /// What moved beyond the baseline, in words (`p95 412 ms vs 180 ms baseline (+129 %)`).
    pub moved: Vec<String>,
    pub url: String,
}

/// A transaction's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionLine {
    pub service: String,
    pub name: String,
    pub requests: u64,
    pub p95_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    /// Time spent in it, ms, and its share of the service's request time.
    pub total_ms: f64,
    pub share: f64,
    pub url: String,
}

/// Services.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Services {
    /// Daily: only services that moved. Weekly and monthly: every service with requests.
    pub services: Vec<ServiceLine>,
    /// Weekly and monthly: the 10 slowest by p95 and the 10 with most time spent.
    pub slowest: Vec<TransactionLine>,
    pub most_time: Vec<TransactionLine>,
}

/// A change point found in the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegressionLine {
    pub series: String,
    pub tags: BTreeMap<String, String>,
    pub kind: String,
    pub before: f64,
    pub after: f64,
    pub change_percent: Option<f64>,
    pub unit: String,
    pub commit: Option<String>,
    pub detected_at: i64,
    pub url: String,
}

/// A database finding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FindingLine {
    pub target: String,
    pub kind: String,
    pub severity: String,
    pub object: String,
    pub detail: String,
    pub url: String,
}

/// A slow statement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlowQueryLine {
    pub target: String,
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
    pub total_ms: f64,
}

/// Databases.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Databases {
    /// Findings the previous check did not have, raised in the period.
    pub new_findings: Vec<FindingLine>,
    /// Weekly and monthly: the newest check's slow statements and index advice.
    pub slow_queries: Vec<SlowQueryLine>,
    pub index_advice: Vec<FindingLine>,
}

/// A backup's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupLine {
    /// `lookout` for the built-in backup, else the target's name.
    pub target: String,
    pub last_backup_at: Option<i64>,
    pub last_backup_ok: Option<bool>,
    /// Data-loss risk: how old the newest restorable point is at the report's end, ms.
    pub exposure_ms: Option<i64>,
    pub last_drill_at: Option<i64>,
    pub last_drill_ok: Option<bool>,
    /// Backups and drills in the period, and how many failed.
    pub runs: u64,
    pub failed_runs: u64,
    pub url: String,
}

/// Backups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backups {
    pub targets: Vec<BackupLine>,
}

/// A load-test run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadLine {
    pub id: i64,
    pub name: String,
    pub started_at: i64,
    pub passed: bool,
    pub requests: i64,
    pub rps: f64,
    pub p95_ms: f64,
    pub error_rate: f64,
    pub url: String,
}

/// A policy or integration by how often it opened incidents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoiseLine {
    /// `policy:<id>` or `integration:<id>`.
    pub scope: String,
    pub name: String,
    pub incidents: u64,
    /// Acknowledged, then resolved by the system with no note or checklist step in between.
    pub acknowledged_without_action: u64,
}

/// Alert noise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noise {
    /// Most incidents first.
    pub sources: Vec<NoiseLine>,
    pub acknowledged_without_action: u64,
}

/// An SLO's state at the report's end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloLine {
    pub id: i64,
    pub name: String,
    pub service: String,
    /// `availability (requests)`, `availability (uptime)`, `latency p95 ≤ 300 ms`.
    pub objective: String,
    pub window_days: u32,
    pub budget: Budget,
    pub url: String,
}

/// Capacity trends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capacity {
    /// Requests per day over the period, all services: `(day start, requests)`.
    pub requests_per_day: Vec<(i64, u64)>,
    /// Requests in the period's first and last 7 days, and the growth between them.
    pub first_week_requests: u64,
    pub last_week_requests: u64,
    pub throughput_growth: Option<f64>,
    /// Databases checked in the period: size at the first and newest check.
    pub databases: Vec<DatabaseSize>,
}

/// A database's size over the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseSize {
    pub target: String,
    pub first_at: i64,
    pub first_bytes: i64,
    pub last_at: i64,
    pub last_bytes: i64,
}

/// Incidents opened more than once in the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recurring {
    pub title: String,
    pub count: u64,
    pub last_id: i64,
    pub url: String,
}

/// A suggested action and the data it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Suggestion {
    pub text: String,
    /// The finding behind it: `slo:3`, `outcomes.mttr`, `issue:12`, `db:missing_index:…`.
    pub source: String,
    pub url: Option<String>,
}
