//! The command line: every verb, flag and environment variable, with its help text.
//!
//! Flags beat `LOOKOUT_*` environment variables (clap reads both), which beat `lookout.toml`,
//! which beats the built-in defaults; see `config.rs` for the merge.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Lookout: errors, uptime, on-call, APM, load tests, regressions, database health and backups
/// in one self-hosted binary.
#[derive(Debug, Parser)]
#[command(name = "lookout", version, about, propagate_version = true)]
pub struct Cli {
    /// Where data lives and how to log; shared by every verb.
    #[command(flatten)]
    pub common: CommonArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every verb takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Configuration file (TOML). Default: ./lookout.toml when it exists.
    #[arg(long, global = true, env = "LOOKOUT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory for the embedded SQLite database. Default: ./lookout-data.
    #[arg(long, global = true, env = "LOOKOUT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the data dir.
    #[arg(
        long,
        global = true,
        env = "LOOKOUT_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "LOOKOUT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: UI, API, ingest, checks, alerting and background jobs.
    Serve(Box<ServeArgs>),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load tests: k6-style scenarios, or a one-line test of one URL.
    #[command(subcommand)]
    Load(Box<LoadCommand>),
    /// Performance baselines: push benchmark figures, check for regressions, find change points.
    #[command(subcommand)]
    Regress(Box<RegressCommand>),
    /// PostgreSQL health: slow queries, index advice, operational checks, index verification.
    #[command(subcommand)]
    Db(Box<DbCommand>),
    /// Run an NRQL query through a server (--server) or on the data directory or database (see
    /// docs/query.md). Exits 2 when the query does not parse or cannot run.
    Query {
        /// The query, e.g. "SELECT count(*) FROM Transaction FACET appName SINCE 1 day ago".
        nrql: String,
        /// Print `{"columns", "rows", "warnings"}` as the API returns it.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV with a header row.
        #[arg(long)]
        csv: bool,
        /// Only this project (id); default every project.
        #[arg(long)]
        project: Option<i64>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Apply dashboards as code: a YAML or JSON file with one dashboard, a list, or a
    /// `dashboards:` list; each is created or replaced by its slug (see docs/dashboards.md).
    /// Through a running server with --server, or on its existing data directory.
    Apply {
        /// The file.
        #[arg(short = 'f', long = "filename", value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Packs of alert policies, runbooks and dashboards.
    #[command(subcommand)]
    Pack(PackCommand),
    /// A report for any past period: the daily check, weekly review or monthly deep dive (see
    /// docs/reports.md). Prints plain text; --json or --html for the other forms.
    Report {
        /// daily, weekly or monthly.
        #[arg(value_parser = ["daily", "weekly", "monthly"])]
        kind: String,
        /// The period's end (RFC 3339); default now. It starts 1, 7 or 30 days earlier.
        #[arg(long, value_name = "TIME")]
        end: Option<String>,
        /// Print the report as JSON, as `GET /api/v1/reports` returns it.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Print the report as a standalone HTML document with its charts.
        #[arg(long)]
        html: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Backups of the embedded SQLite database: take one now, list, verify (docs/backups.md).
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Rebuild the embedded database from a backup directory, as of a moment, into a new data
    /// directory (given with --data-dir; never one that holds a database already).
    Restore {
        /// The backup directory a server wrote with --backup-dir.
        #[arg(long, env = "LOOKOUT_BACKUP_DIR", value_name = "DIR")]
        backup_dir: PathBuf,
        /// RFC 3339 time, e.g. 2026-11-29T10:15:00Z: every transaction committed by then,
        /// nothing after. Default: everything the backup holds.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
    },
    /// Run a location's agent: check the monitors the server assigns to this location from here
    /// and report results (outbound connections only; see docs/uptime.md, "Locations"). Exits
    /// with an error when the server refuses the token (revoked or rotated).
    Probe(Box<ProbeArgs>),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `lookout serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the UI and API. Default: 127.0.0.1:8800.
    #[arg(long, env = "LOOKOUT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Address of the OTLP/HTTP receiver. Default: 127.0.0.1:4318.
    #[arg(long, env = "LOOKOUT_OTLP_LISTEN", value_name = "ADDR")]
    pub otlp_listen: Option<SocketAddr>,
    /// URL users and SDKs reach this server at (used in DSNs and links). Default: from --listen.
    #[arg(long, env = "LOOKOUT_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Back the embedded database up continuously into this directory (another disk or a
    /// mounted share): snapshots plus every commit, for restores to any second.
    #[arg(long, env = "LOOKOUT_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How far back restores can go.
    #[arg(long, env = "LOOKOUT_BACKUP_RETENTION", default_value = "7d", value_parser = duration)]
    pub backup_retention: std::time::Duration,
    /// How often a new snapshot is written (restores replay the commits since the last one).
    #[arg(long, env = "LOOKOUT_BACKUP_SNAPSHOT_INTERVAL", default_value = "6h", value_parser = duration)]
    pub backup_snapshot_interval: std::time::Duration,
    /// How often the backup is restored into a scratch file and checked against the live
    /// data (0 turns drills off).
    #[arg(long, env = "LOOKOUT_BACKUP_DRILL_INTERVAL", default_value = "24h", value_parser = duration)]
    pub backup_drill_interval: std::time::Duration,
    /// A dead man's switch: one replica GETs this URL every minute while Lookout is up and
    /// ready (a healthchecks.io or Uptime Kuma push URL), so an outside service pages when the
    /// whole installation is down. Goes through the outbound policy.
    #[arg(
        long,
        env = "LOOKOUT_HEARTBEAT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub heartbeat_url: Option<String>,
    /// An optional Redis (`redis://[:password@]host:6379[/db]`) the replicas share: Sentry rate
    /// limits and the login throttle counted across replicas, a short cache of NRQL and
    /// dashboard answers, and wake-ups between replicas. Never holds data: with Redis down,
    /// limits are per replica and nothing is cached.
    #[arg(
        long,
        env = "LOOKOUT_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Listen for StatsD and DogStatsD on this UDP address (e.g. 127.0.0.1:8125); off unless
    /// given. See docs/metrics.md, "StatsD".
    #[arg(long, env = "LOOKOUT_STATSD_LISTEN", value_name = "ADDR")]
    pub statsd_listen: Option<SocketAddr>,
    /// The project StatsD metrics are written to (id or slug). Default: the first project.
    #[arg(long, env = "LOOKOUT_STATSD_PROJECT", value_name = "ID|SLUG")]
    pub statsd_project: Option<String>,
    /// How often StatsD aggregates are written. Default: 10s.
    #[arg(long, env = "LOOKOUT_STATSD_FLUSH_INTERVAL", value_parser = duration)]
    pub statsd_flush_interval: Option<std::time::Duration>,
    /// Largest StatsD packet taken, in bytes (larger ones are dropped and counted). Default: 8192.
    #[arg(long, env = "LOOKOUT_STATSD_MAX_PACKET", value_name = "BYTES")]
    pub statsd_max_packet: Option<usize>,
    /// Most StatsD series held at once (new ones beyond are dropped and counted). Default: 10000.
    #[arg(long, env = "LOOKOUT_STATSD_MAX_SERIES", value_name = "N")]
    pub statsd_max_series: Option<usize>,
    /// How long a StatsD series may go without a value before it is forgotten (its counter then
    /// starts again from 0). Default: 1h.
    #[arg(long, env = "LOOKOUT_STATSD_FORGET_AFTER", value_parser = duration)]
    pub statsd_forget_after: Option<std::time::Duration>,
    /// The `instance` label of every StatsD series: this replica's name, so replicas that all
    /// listen write separate series. Default: the host name.
    #[arg(long, env = "LOOKOUT_STATSD_INSTANCE", value_name = "NAME")]
    pub statsd_instance: Option<String>,
    /// Quantiles written for timers, histograms and distributions. Default: 0.5,0.9,0.99.
    #[arg(
        long,
        env = "LOOKOUT_STATSD_QUANTILES",
        value_name = "Q,Q,…",
        value_delimiter = ','
    )]
    pub statsd_quantiles: Option<Vec<f64>>,
}

/// A duration such as `7d`, `6h`, `90s` or `0`.
fn duration(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 7d, 6h, 90s)"))
}

/// `lookout pack …`
#[derive(Debug, Subcommand)]
pub enum PackCommand {
    /// The packs there are.
    List,
    /// Install a pack (golden-signals): what already exists by name is kept.
    Install {
        #[command(flatten)]
        pack: PackInstallArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// What `lookout pack install` installs: the same request through the API and on the data
/// directory.
#[derive(Debug, Args)]
pub struct PackInstallArgs {
    /// The pack.
    pub name: String,
    /// The escalation policy the pack's alert policies page, by id or name; `none` for nobody
    /// yet. Default: the organization's escalation policy when it has exactly one.
    #[arg(long, value_name = "ID|NAME")]
    pub escalation_policy: Option<String>,
}

/// Where a verb that reads or changes a server's data acts: through the running server's API
/// (`--server` with `--token`, as `lookout regress push`), or on its data directory or database
/// (`--data-dir`, `--database-url`), which must already exist unless `--create`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Act through this running Lookout server's API (e.g. http://127.0.0.1:8800), with
    /// --token. Without it the verb opens the data directory (--data-dir, default
    /// ./lookout-data) or --database-url itself.
    #[arg(long, env = "LOOKOUT_URL", value_name = "URL")]
    pub server: Option<String>,
    /// API token for --server (admin for pack install and user create).
    #[arg(long, env = "LOOKOUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Create the data directory and database when they do not exist (a fresh install, before
    /// the first `lookout serve`); without it a missing one is refused.
    #[arg(long)]
    pub create: bool,
}

/// `lookout backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a snapshot now: through the running server when one ships into the directory,
    /// else directly from the data directory, which must exist unless --create.
    Now {
        #[arg(long, env = "LOOKOUT_BACKUP_DIR", value_name = "DIR")]
        backup_dir: PathBuf,
        /// Create the data directory and database when they do not exist (a snapshot of a new,
        /// empty database); without it a missing one is refused.
        #[arg(long)]
        create: bool,
    },
    /// List runs and snapshots, the restorable window and the space used.
    List {
        #[arg(long, env = "LOOKOUT_BACKUP_DIR", value_name = "DIR")]
        backup_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every file's checksum and the continuity of every run, then restore the newest
    /// state into a scratch file and run SQLite's integrity check. Exits 1 on a problem.
    Verify {
        #[arg(long, env = "LOOKOUT_BACKUP_DIR", value_name = "DIR")]
        backup_dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `lookout load …`
#[derive(Debug, Subcommand)]
pub enum LoadCommand {
    /// Run a scenario file (YAML, or TOML by extension). Exits 99 when a threshold fails, 104
    /// when the file is invalid.
    Run {
        /// The scenario file.
        file: PathBuf,
        #[command(flatten)]
        output: LoadOutputArgs,
    },
    /// Load one URL with N connections for a duration (the wrk/oha use case).
    Quick {
        /// The URL.
        url: String,
        /// Concurrent connections (VUs).
        #[arg(short = 'c', long, default_value_t = 50)]
        connections: u64,
        /// How long to run.
        #[arg(short = 'd', long, default_value = "10s")]
        duration: String,
        /// Stop after this many requests instead (shared between connections).
        #[arg(short = 'n', long, conflicts_with = "rate")]
        requests: Option<u64>,
        /// Open model: start this many requests per second (timed from their intended start).
        #[arg(short = 'r', long)]
        rate: Option<f64>,
        /// HTTP method.
        #[arg(short = 'm', long, default_value = "GET")]
        method: String,
        /// A header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Request body.
        #[arg(short = 'b', long)]
        body: Option<String>,
        /// Per-request timeout.
        #[arg(long, default_value = "60s")]
        timeout: String,
        /// Skip TLS certificate verification.
        #[arg(short = 'k', long)]
        insecure: bool,
        /// A threshold on a metric, `METRIC=EXPR`, e.g. `http_req_duration=p(95)<500` (repeatable).
        #[arg(long = "threshold")]
        thresholds: Vec<String>,
        #[command(flatten)]
        output: LoadOutputArgs,
    },
}

/// What `lookout load` writes and where it reports.
#[derive(Debug, Args)]
pub struct LoadOutputArgs {
    /// Write k6's end-of-test summary JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_export: Option<PathBuf>,
    /// `json=FILE`: one JSON line per metric, scenario and second.
    #[arg(long, value_name = "json=FILE")]
    pub out: Option<String>,
    /// No live display (the summary is still printed).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Send the run to a Lookout server (e.g. http://127.0.0.1:8800).
    #[arg(long, value_name = "URL", requires = "token")]
    pub report_to: Option<String>,
    /// API token for --report-to.
    #[arg(long, env = "LOOKOUT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Project (id or slug) the run belongs to on the server.
    #[arg(long)]
    pub project: Option<String>,
    /// Name of the run on the server. Default: the file's name, or the URL.
    #[arg(long)]
    pub name: Option<String>,
    /// Commit the run measured (kept with its baseline points).
    #[arg(long)]
    pub commit: Option<String>,
    /// Worker threads. Default: one per core.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// How change points are found (`lookout regress analyze`).
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Report a change point when its rank-sum p-value is at most this.
    #[arg(long, default_value_t = 0.001)]
    pub p_value: f64,
    /// …and its relative change of the median at least this (0.05 = 5 %).
    #[arg(long, default_value_t = 0.0)]
    pub min_magnitude: f64,
    /// Window for local candidate search, in points.
    #[arg(long, default_value_t = 50)]
    pub window: usize,
}

/// Where `lookout regress push|check` sends points.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Lookout server.
    #[arg(long, env = "LOOKOUT_URL", default_value = "http://127.0.0.1:8800")]
    pub server: String,
    /// API token (member role or above).
    #[arg(long, env = "LOOKOUT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Project (id or slug). Default: the first project.
    #[arg(long)]
    pub project: Option<String>,
}

/// What `lookout regress push|check` records.
#[derive(Debug, Args)]
pub struct PointArgs {
    /// Results to import: a Criterion directory (target/criterion) or a hyperfine,
    /// pytest-benchmark, Google Benchmark, k6 --summary-export or Lookout load summary JSON file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The file's format, when detection guesses wrong.
    #[arg(long, value_parser = ["criterion", "hyperfine", "pytest-benchmark", "google-benchmark", "k6", "lookout"])]
    pub format: Option<String>,
    /// Commit the figures measured.
    #[arg(long)]
    pub commit: Option<String>,
    /// A tag of the series, `key=value` (branch, machine…; repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
}

/// `lookout regress …`
#[derive(Debug, Subcommand)]
pub enum RegressCommand {
    /// Add a point (--value) or imported results (--file) to a series on the server.
    Push {
        /// Series name; with --file holding several results, the prefix of their names.
        #[arg(long)]
        series: Option<String>,
        /// The measured value.
        #[arg(long, conflicts_with = "file", allow_negative_numbers = true)]
        value: Option<f64>,
        /// Unit of --value (ms, s, req/s…).
        #[arg(long)]
        unit: Option<String>,
        /// Higher values are better (throughput); default: lower is better.
        #[arg(long)]
        higher_is_better: bool,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// For CI: exit 1 when the newest points of a series form a significant regression, 0
    /// otherwise (2 when the check could not run). With --file, the results are pushed first.
    Check {
        /// Series name; with --file holding several results, the prefix of their names.
        #[arg(long)]
        series: String,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// Print JSON instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Print the change points of a series file (CSV, or JSON values or points); no server.
    Analyze {
        /// The file (`-` for standard input).
        file: PathBuf,
        /// The CSV column to read when there are several.
        #[arg(long)]
        column: Option<String>,
        /// Higher values are better (regressions are drops).
        #[arg(long)]
        higher_is_better: bool,
        #[command(flatten)]
        detect: DetectArgs,
        /// Print JSON: `[{"index", "before", "after", "change_percent", "p_value", "direction"}]`.
        #[arg(long)]
        json: bool,
    },
}

/// `lookout db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Check a PostgreSQL database and print a report; exit 1 when a verification rule fails
    /// (for CI after a migration), 2 when the check could not run.
    Check {
        /// `postgres://user:password@host:port/database` (or $LOOKOUT_DB_URL, which keeps the
        /// password out of `ps`).
        #[arg(env = "LOOKOUT_DB_URL", hide_env_values = true)]
        url: String,
        /// YAML rules checked with EXPLAIN: uses_index, no_seq_scan, cost_below,
        /// rows_examined_below.
        #[arg(long, value_name = "FILE")]
        verify: Option<PathBuf>,
        /// Print JSON: `{"findings": [...], "verifications": [...], "slow_queries": [...]}`.
        #[arg(long)]
        json: bool,
        /// A statement is slow from this mean time (ms)…
        #[arg(long, default_value_t = 20.0)]
        slow_ms: f64,
        /// …once it ran this often.
        #[arg(long, default_value_t = 100)]
        slow_calls: i64,
        /// Report queries and idle transactions older than this (seconds).
        #[arg(long, default_value_t = 60.0)]
        long_running: f64,
    },
}

/// `lookout user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user who can log into the UI.
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// Password (at least 8 characters). Prefer --password-stdin: flags show in `ps`.
        #[arg(
            long,
            env = "LOOKOUT_USER_PASSWORD",
            hide_env_values = true,
            conflicts_with = "password_stdin"
        )]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Role: viewer, member or admin.
        #[arg(long, default_value = "admin")]
        role: lookout_core::Role,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `lookout token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (only the token, on standard output).
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// Role: viewer, member or admin.
        #[arg(long, default_value = "admin")]
        role: lookout_core::Role,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

/// `lookout probe` flags.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The Lookout server's URL, e.g. https://lookout.example.com.
    #[arg(long, env = "LOOKOUT_PROBE_SERVER")]
    pub server: String,
    /// The location's agent token (shown once when the location was created or its token
    /// rotated).
    #[arg(long, env = "LOOKOUT_PROBE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The location's name (the agent stops if the token belongs to another).
    #[arg(long, env = "LOOKOUT_PROBE_LOCATION")]
    pub location: String,
    /// This agent's id within the location's pool (default: the one kept in --state-dir, or
    /// host name and process id on the first start).
    #[arg(long, env = "LOOKOUT_PROBE_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Results kept while the server is unreachable; past it the oldest are dropped (counted).
    #[arg(long, default_value_t = 100_000)]
    pub buffer: usize,
    /// Where the agent keeps the results it has not uploaded yet (a journal, fsync'd each
    /// second), its last assignment list and its id, so a restart while the server is down
    /// loses nothing; one agent per directory. Default: $XDG_STATE_HOME/lookout-probe/LOCATION,
    /// else ~/.local/state/lookout-probe/LOCATION.
    #[arg(long, env = "LOOKOUT_PROBE_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
    /// Checks running at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// A webhook or ntfy URL the agent POSTs to itself when it cannot reach the server for
    /// --fallback-after (and again when it can).
    #[arg(long, env = "LOOKOUT_PROBE_FALLBACK_WEBHOOK")]
    pub fallback_webhook: Option<String>,
    /// How long the server must be unreachable before the fallback webhook is called.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub fallback_after: std::time::Duration,
    /// Networks checks and the fallback webhook may not reach (CIDR, repeatable), besides the
    /// always-denied metadata and link-local ranges.
    #[arg(long = "deny-network")]
    pub deny_networks: Vec<String>,
    /// When given, the only networks checks may reach (CIDR, repeatable).
    #[arg(long = "allow-network")]
    pub allow_networks: Vec<String>,
}
