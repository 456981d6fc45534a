//! Schemas for the OpenAPI document of the operations handlers that answer `serde_json::Value`
//! (dashboards, load runs, baseline series, backups, database health, reports and SLOs, APM,
//! NRQL). As in [`super::schemas`], most of these types only describe ([`DashboardView`] is
//! what the dashboards handlers build); tests/sdk/test_openapi.py
//! checks the server's answers against them. Sub-documents whose shape is another module's
//! (a report body, an APM overview, an NRQL result, a load summary) are objects with
//! `additionalProperties`: their fields are documented in docs/*.md, not repeated here.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

// -------------------------------------------------------------------------------- dashboards

/// A dashboard.
#[derive(Serialize, ToSchema)]
pub struct DashboardView {
    /// Id.
    pub id: i64,
    /// URL slug.
    pub slug: String,
    /// Name.
    pub name: String,
    /// The dashboard as code (`name`, `slug`, `pages` of widgets), as docs/dashboards.md shows.
    #[schema(value_type = BTreeMap<String, Value>)]
    pub spec: Value,
    /// `config` when declared in the config file.
    pub managed_by: Option<String>,
    /// Where the UI shows it.
    pub url: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}

/// Every dashboard.
#[derive(Serialize, ToSchema)]
pub struct DashboardList {
    /// The dashboards.
    pub items: Vec<DashboardView>,
}

/// What installing a pack did.
#[derive(Serialize, ToSchema)]
pub struct PackInstalled {
    /// Alert policies created.
    pub policies_created: Vec<String>,
    /// Dashboards created.
    pub dashboards_created: Vec<String>,
    /// Runbooks created.
    pub runbooks_created: Vec<String>,
    /// Already there, left as they are.
    pub kept: Vec<String>,
    /// The escalation policy the created alert policies page (`null`: they page nobody).
    pub escalation_policy: Option<PackEscalationView>,
    /// Created policies that overlap one the team already has, in words.
    pub overlaps: Vec<String>,
    /// What the installer should know (no escalation policy chosen, several to choose from).
    pub warnings: Vec<String>,
}

/// The escalation policy a pack's alert policies page.
#[derive(Serialize, ToSchema)]
pub struct PackEscalationView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
}

// --------------------------------------------------------------------------------- load runs

/// A load-test run's key figures.
#[derive(Serialize, ToSchema)]
pub struct LoadRunView {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: i64,
    /// Name.
    pub name: String,
    /// Commit tested.
    pub commit: Option<String>,
    /// Started, RFC 3339.
    pub started_at: String,
    /// Duration, seconds.
    pub duration_s: f64,
    /// Whether every threshold passed.
    pub passed: bool,
    /// Requests made.
    pub requests: i64,
    /// Requests per second.
    pub rps: f64,
    /// p95 request duration, ms.
    pub p95_ms: f64,
    /// Failed requests' share, 0-1.
    pub error_rate: f64,
    /// Stored, RFC 3339.
    pub created_at: String,
}

/// A page of load runs.
#[derive(Serialize, ToSchema)]
pub struct LoadRunPage {
    /// The runs.
    pub items: Vec<LoadRunView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// A load run with its k6 summary and scenario file.
#[derive(Serialize, ToSchema)]
pub struct LoadRunDetail {
    /// The key figures.
    #[serde(flatten)]
    pub run: LoadRunView,
    /// The k6 end-of-test summary as uploaded (metrics, checks, thresholds).
    pub summary: BTreeMap<String, Value>,
    /// The scenario script, when it was uploaded.
    pub scenario_file: Option<String>,
}

/// Two runs side by side.
#[derive(Serialize, ToSchema)]
pub struct LoadComparison {
    /// The first run.
    pub a: LoadRunView,
    /// The second run.
    pub b: LoadRunView,
    /// Key figures per scenario with their changes.
    pub scenarios: Vec<BTreeMap<String, Value>>,
}

// ---------------------------------------------------------------------------- baseline series

/// A baseline series with its newest point.
#[derive(Serialize, ToSchema)]
pub struct SeriesView {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: i64,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Unit.
    pub unit: String,
    /// `lower_is_better` or `higher_is_better`.
    pub direction: String,
    /// Points stored.
    pub points: i64,
    /// Newest value.
    pub last_value: Option<f64>,
    /// Newest point's time, Unix ms.
    pub last_at: Option<i64>,
}

/// Baseline series.
#[derive(Serialize, ToSchema)]
pub struct SeriesList {
    /// The series.
    pub items: Vec<SeriesView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// One point of a series.
#[derive(Serialize, ToSchema)]
pub struct PointView {
    /// When, Unix ms.
    pub at: i64,
    /// Value.
    pub value: f64,
    /// Commit.
    pub commit: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Build.
    pub build: Option<String>,
    /// Where it came from.
    pub source: String,
}

/// A series' points, oldest first.
#[derive(Serialize, ToSchema)]
pub struct PointList {
    /// The points.
    pub items: Vec<PointView>,
}

/// A change point: where a series' level shifted.
#[derive(Serialize, ToSchema)]
pub struct ChangePointView {
    /// Id.
    pub id: i64,
    /// Series.
    pub series_id: i64,
    /// The first point of the new level.
    pub point_id: i64,
    /// Its position in the series.
    pub index: i64,
    /// When, RFC 3339.
    pub at: String,
    /// Commit.
    pub commit: Option<String>,
    /// Level before.
    pub before: f64,
    /// Level after.
    pub after: f64,
    /// `after - before`.
    pub change: f64,
    /// Change, percent of `before`.
    pub change_percent: Option<f64>,
    /// Significance.
    pub p_value: f64,
    /// `regression` or `improvement`.
    pub direction: String,
    /// Found, RFC 3339.
    pub detected_at: String,
}

/// A series' change points.
#[derive(Serialize, ToSchema)]
pub struct ChangePointList {
    /// The change points.
    pub items: Vec<ChangePointView>,
}

/// A series, its change points and the regression its newest points form.
#[derive(Serialize, ToSchema)]
pub struct SeriesState {
    /// The series.
    pub series: SeriesView,
    /// Its change points.
    pub change_points: Vec<ChangePointView>,
    /// The regression `lookout regress check` fails on, if any.
    pub regression: Option<ChangePointView>,
}

/// A change point with its series named.
#[derive(Serialize, ToSchema)]
pub struct RecentChange {
    /// The change point.
    #[serde(flatten)]
    pub change: ChangePointView,
    /// Project.
    pub project_id: i64,
    /// Series name.
    pub series: String,
    /// Series tags.
    pub tags: BTreeMap<String, String>,
    /// Unit.
    pub unit: String,
}

/// Recent change points, newest first.
#[derive(Serialize, ToSchema)]
pub struct RecentChangeList {
    /// The change points.
    pub items: Vec<RecentChange>,
}

// ----------------------------------------------------------------------------------- backups

/// A backup, drill or check run.
#[derive(Serialize, ToSchema)]
pub struct BackupRunView {
    /// Id.
    pub id: i64,
    /// Target name.
    pub target: String,
    /// `full`, `diff`, `incr`, `drill`, ….
    pub kind: String,
    /// Started, RFC 3339.
    pub at: String,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// What it did (restore checks, sizes, …).
    pub details: Option<Value>,
}

/// Runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct BackupRunList {
    /// The runs.
    pub items: Vec<BackupRunView>,
}

/// A pgBackRest target with its newest backup and drill.
#[derive(Serialize, ToSchema)]
pub struct BackupTargetView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Stanza.
    pub stanza: String,
    /// pgbackrest.conf path.
    pub config: Option<String>,
    /// OS user pgBackRest runs as.
    pub run_as: Option<String>,
    /// PostgreSQL binaries for drills.
    pub pg_bin: Option<String>,
    /// Whether a connection string is stored (never shown).
    pub has_pg_url: bool,
    /// Full backup schedule, hours.
    pub full_every_hours: Option<Value>,
    /// Differential backup schedule, hours.
    pub diff_every_hours: Option<Value>,
    /// Drill schedule, hours.
    pub drill_every_hours: Option<Value>,
    /// Newest backup, RFC 3339.
    pub last_backup_at: Option<String>,
    /// Its age, seconds.
    pub age_seconds: Option<i64>,
    /// Its size.
    pub size_bytes: Option<i64>,
    /// The repository's size.
    pub repo_size_bytes: Option<i64>,
    /// Backups kept.
    pub backups: Option<i64>,
    /// Oldest restorable point, RFC 3339.
    pub restorable_from: Option<String>,
    /// WAL segments waiting to be archived.
    pub wal_lag_segments: Option<i64>,
    /// Seconds since the last WAL archive.
    pub wal_archived_seconds_ago: Option<f64>,
    /// pgBackRest's `info` answer as read.
    pub status: Option<Value>,
    /// When it was read, RFC 3339.
    pub status_at: Option<String>,
    /// Newest backup run.
    pub last_backup: Option<BackupRunView>,
    /// Newest drill.
    pub last_drill: Option<BackupRunView>,
    /// Created, RFC 3339.
    pub created_at: String,
}

/// Backup targets.
#[derive(Serialize, ToSchema)]
pub struct BackupTargetList {
    /// The targets.
    pub items: Vec<BackupTargetView>,
}

/// Lookout's own backup (`enabled: false` and `last_drill` alone when it is off).
#[derive(Serialize, ToSchema)]
pub struct BuiltinBackupView {
    /// Whether Lookout backs itself up.
    pub enabled: bool,
    /// Backup directory.
    pub dir: Option<String>,
    /// Schedule settings.
    pub run: Option<Value>,
    /// Oldest restorable point, RFC 3339.
    pub restorable_from: Option<String>,
    /// Newest restorable point, RFC 3339.
    pub restorable_to: Option<String>,
    /// Age of the newest point, seconds.
    pub age_seconds: Option<i64>,
    /// Snapshots kept.
    pub snapshots: Option<i64>,
    /// Backup runs recorded.
    pub runs: Option<i64>,
    /// WAL kept, bytes.
    pub wal_bytes: Option<i64>,
    /// Everything kept, bytes.
    pub total_bytes: Option<i64>,
    /// Newest snapshot: `as_of`, `db_bytes`, `file_bytes`.
    pub newest_snapshot: Option<BTreeMap<String, Value>>,
    /// Newest drill.
    pub last_drill: Option<BackupRunView>,
}

/// Lookout's own backup and every target.
#[derive(Serialize, ToSchema)]
pub struct BackupsOverview {
    /// Lookout's own backup.
    pub builtin: BuiltinBackupView,
    /// pgBackRest targets.
    pub targets: Vec<BackupTargetView>,
}

/// Whether pgBackRest can reach a target, with setup guidance.
#[derive(Serialize, ToSchema)]
pub struct BackupCheck {
    /// Whether the check passed.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Setup steps for this target.
    pub guidance: Value,
}

// ---------------------------------------------------------------------------- database health

/// A database check's counts.
#[derive(Serialize, ToSchema)]
pub struct DbCheckSummary {
    /// Id.
    pub id: i64,
    /// Started, RFC 3339.
    pub at: String,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Whether it ran.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Critical findings.
    pub critical: Option<i64>,
    /// Warnings.
    pub warning: Option<i64>,
    /// Notes.
    pub info: Option<i64>,
    /// Verifications that failed.
    pub verifications_failed: Option<i64>,
}

/// A monitored PostgreSQL database (never its connection string).
#[derive(Serialize, ToSchema)]
pub struct DbTargetView {
    /// Id.
    pub id: i64,
    /// Project.
    pub project_id: Option<i64>,
    /// Name.
    pub name: String,
    /// The database named by the connection string.
    pub database: String,
    /// Whether checks verify what they find.
    pub verify: bool,
    /// Seconds between checks.
    pub interval_seconds: i64,
    /// Statements slower than this are reported, ms.
    pub slow_ms: f64,
    /// … when called at least this often.
    pub slow_calls: i64,
    /// Whether it is checked.
    pub enabled: bool,
    /// Next check, RFC 3339.
    pub next_check_at: String,
    /// Created, RFC 3339.
    pub created_at: String,
    /// The newest check.
    pub last_check: Option<DbCheckSummary>,
}

/// Monitored databases.
#[derive(Serialize, ToSchema)]
pub struct DbTargetList {
    /// The targets.
    pub items: Vec<DbTargetView>,
}

/// A check was started.
#[derive(Serialize, ToSchema)]
pub struct CheckStarted {
    /// Always true.
    pub started: bool,
}

/// One check.
#[derive(Serialize, ToSchema)]
pub struct DbCheckView {
    /// Id.
    pub id: i64,
    /// Started, RFC 3339.
    pub at: String,
    /// Duration, ms.
    pub duration_ms: Option<i64>,
    /// Whether it ran.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Checks, newest first.
#[derive(Serialize, ToSchema)]
pub struct DbCheckList {
    /// The checks.
    pub items: Vec<DbCheckView>,
}

/// The newest check's full report.
#[derive(Serialize, ToSchema)]
pub struct DbReport {
    /// The check.
    pub check_id: i64,
    /// Started, RFC 3339.
    pub at: String,
    /// Whether it ran.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Findings by section, as docs/databases.md describes.
    pub report: Option<Value>,
}

/// Slow statements with their trend.
#[derive(Serialize, ToSchema)]
pub struct SlowQueryList {
    /// `queryid`, `query`, `calls`, `total_ms`, `mean_ms`, `intervals`, `trend_percent`,
    /// `callers`.
    pub items: Vec<BTreeMap<String, Value>>,
}

// ------------------------------------------------------------------------ reports and SLOs

/// A generated report kept (`POST /api/v1/reports`).
#[derive(Serialize, ToSchema)]
pub struct MadeReport {
    /// Id.
    pub id: i64,
    /// `daily`, `weekly` or `monthly`.
    pub kind: String,
    /// Where the UI shows it.
    pub url: String,
    /// Channels it is being sent to.
    pub deliveries: i64,
    /// The report document (docs/reports.md).
    pub report: BTreeMap<String, Value>,
}

/// A kept report in the history.
#[derive(Serialize, ToSchema)]
pub struct ReportSummary {
    /// Id.
    pub id: i64,
    /// `daily`, `weekly` or `monthly`.
    pub kind: String,
    /// Period start, RFC 3339.
    pub period_start: String,
    /// Period end, RFC 3339.
    pub period_end: String,
    /// Made by the schedule.
    pub scheduled: bool,
    /// Made, RFC 3339.
    pub created_at: String,
    /// Where the UI shows it.
    pub url: String,
}

/// Kept reports, newest period first.
#[derive(Serialize, ToSchema)]
pub struct ReportHistory {
    /// The reports.
    pub items: Vec<ReportSummary>,
}

/// A kept report with its deliveries.
#[derive(Serialize, ToSchema)]
pub struct KeptReport {
    /// Id.
    pub id: i64,
    /// `daily`, `weekly` or `monthly`.
    pub kind: String,
    /// Made by the schedule.
    pub scheduled: bool,
    /// Period start, RFC 3339.
    pub period_start: String,
    /// Period end, RFC 3339.
    pub period_end: String,
    /// Made, RFC 3339.
    pub created_at: String,
    /// Deliveries to channels.
    pub deliveries: Vec<BTreeMap<String, Value>>,
    /// The report document (docs/reports.md).
    pub report: BTreeMap<String, Value>,
}

/// A report document (`GET /api/v1/reports`; docs/reports.md lists its sections).
#[derive(Serialize, ToSchema)]
pub struct ReportDocument {
    /// Sections.
    #[serde(flatten)]
    pub sections: BTreeMap<String, Value>,
}

/// Report settings (docs/reports.md).
#[derive(Serialize, ToSchema)]
pub struct ReportSettings {
    /// IANA time zone of the schedule and of the dates shown.
    pub timezone: String,
    /// Local time of day reports are made, `HH:MM`.
    pub time_of_day: String,
    /// Weekday of the weekly review.
    pub weekly_day: String,
    /// Day of the month of the monthly deep dive, 1-28.
    pub monthly_day: i64,
    /// Daily reports on.
    pub daily: bool,
    /// Weekly reports on.
    pub weekly: bool,
    /// Monthly reports on.
    pub monthly: bool,
    /// Channels scheduled reports go to.
    pub channel_ids: Vec<i64>,
    /// Outcome targets.
    pub targets: BTreeMap<String, Value>,
    /// Uptime SLO of monitors without their own, percent.
    pub uptime_target: f64,
}

/// An SLO with its attainment and error budget now.
#[derive(Serialize, ToSchema)]
pub struct SloView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Attainment and error budget now.
    pub budget: Value,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
    /// The SLO's definition (`target`, `window_days`, the indicator, …; docs/reports.md).
    #[serde(flatten)]
    pub spec: BTreeMap<String, Value>,
}

/// Every SLO.
#[derive(Serialize, ToSchema)]
pub struct SloList {
    /// The SLOs.
    pub items: Vec<SloView>,
}

/// An SLO to create or replace: `name` and the definition's fields.
#[derive(Serialize, ToSchema)]
pub struct SloInput {
    /// Name (1-200 characters).
    pub name: String,
    /// The definition.
    #[serde(flatten)]
    pub spec: BTreeMap<String, Value>,
}

// ------------------------------------------------------------------------------- APM and NRQL

/// A list over a time range.
#[derive(Serialize, ToSchema)]
pub struct ApmRangeList {
    /// From, RFC 3339.
    pub since: String,
    /// Until, RFC 3339.
    pub until: String,
    /// Rows (services or transactions with their figures; docs/apm.md).
    pub items: Vec<BTreeMap<String, Value>>,
}

/// Rows (traces, log records or metrics; docs/apm.md).
#[derive(Serialize, ToSchema)]
pub struct ApmList {
    /// The rows.
    pub items: Vec<BTreeMap<String, Value>>,
}

/// One service's overview (docs/apm.md).
#[derive(Serialize, ToSchema)]
pub struct ApmServiceView {
    /// From, RFC 3339.
    pub since: String,
    /// Until, RFC 3339.
    pub until: String,
    /// The figures.
    #[serde(flatten)]
    pub overview: BTreeMap<String, Value>,
}

/// A service's settings.
#[derive(Serialize, ToSchema)]
pub struct ApmServiceSettings {
    /// Service.
    pub name: String,
    /// Apdex threshold, ms.
    pub apdex_t_ms: Option<f64>,
    /// Database spans slower than this are slow queries, ms.
    pub slow_query_ms: Option<f64>,
}

/// A trace: its spans in tree order.
#[derive(Serialize, ToSchema)]
pub struct TraceView {
    /// Trace id, lower-case hex.
    pub trace_id: String,
    /// Start, RFC 3339.
    pub start: String,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Services involved.
    pub services: Vec<String>,
    /// Spans with their depth.
    pub spans: Vec<BTreeMap<String, Value>>,
    /// Some spans were left out: a view shows at most 50,000 spans read from at most 2,000
    /// stored blocks (docs/operations.md, "Buffers and queues").
    pub truncated: bool,
    /// The trace index lags behind ingestion: spans received a while ago may be missing.
    pub incomplete_index: bool,
    /// Other figures of the trace.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Services and the calls between them.
#[derive(Serialize, ToSchema)]
pub struct ServiceMapView {
    /// Nodes and edges (docs/apm.md).
    #[serde(flatten)]
    pub graph: BTreeMap<String, Value>,
}

/// A metric's points.
#[derive(Serialize, ToSchema)]
pub struct MetricPoints {
    /// The metric series.
    pub series: Value,
    /// Points.
    pub items: Vec<BTreeMap<String, Value>>,
}

/// An NRQL result: its columns and rows, or its facets and time series, as docs/nrql.md shows.
#[derive(Serialize, ToSchema)]
pub struct QueryResult {
    /// The result.
    #[serde(flatten)]
    pub result: BTreeMap<String, Value>,
}
