//! Resolves the configuration: flag > `LOOKOUT_*` environment variable > `lookout.toml` > default.
//!
//! clap already merges flags over environment variables; this file adds the TOML layer and the
//! defaults, and turns the result into what the server needs. Unknown keys in the file are
//! errors, so a typo is reported instead of silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{CommonArgs, LogFormat, ServeArgs};
use lookout_server::budget::IngestLimits;
use lookout_server::listener::ListenerLimits;

/// The optional configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// See `--database-url`.
    pub database_url: Option<String>,
    /// See `--listen`.
    pub listen: Option<SocketAddr>,
    /// See `--otlp-listen`.
    pub otlp_listen: Option<SocketAddr>,
    /// See `--public-url`.
    pub public_url: Option<String>,
    /// See `--heartbeat-url`.
    pub heartbeat_url: Option<String>,
    /// See `--redis-url`.
    pub redis_url: Option<String>,
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// Reverse proxies (CIDR) whose `X-Forwarded-For` header names the client, e.g.
    /// `[127.0.0.1/32]` behind a local nginx: without it every client looks like the proxy to
    /// the login throttle.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Which networks requests made on a user's behalf may reach (checks, channels, email,
    /// reports, database and backup targets).
    #[serde(default)]
    pub outbound: OutboundFileConfig,
    /// Uptime checks: concurrency (and the older spelling of the outbound policy).
    #[serde(default)]
    pub uptime: UptimeFileConfig,
    /// What clients can make the server hold: body sizes, memory, connections, timeouts.
    #[serde(default)]
    pub limits: LimitsFileConfig,
    /// NRQL query limits (docs/query.md).
    #[serde(default)]
    pub query: QueryFileConfig,
    /// Single sign-on with OpenID Connect (docs/identity.md).
    #[serde(default)]
    pub oidc: Option<OidcFileConfig>,
    /// The StatsD/DogStatsD listener (docs/metrics.md, "StatsD"); flags and variables win.
    #[serde(default)]
    pub statsd: StatsdFileConfig,
    /// Monitors declared as code: accepted here, read and reconciled by the server (also on
    /// SIGHUP), which owns their format.
    #[serde(default, rename = "monitors")]
    _monitors: Option<serde::de::IgnoredAny>,
    /// Status pages declared as code (as `monitors`).
    #[serde(default, rename = "status_pages")]
    _status_pages: Option<serde::de::IgnoredAny>,
    /// Dashboards declared as code (as `monitors`; see docs/dashboards.md).
    #[serde(default, rename = "dashboards")]
    _dashboards: Option<serde::de::IgnoredAny>,
    /// Prometheus scrape jobs (as `monitors`; see docs/metrics.md, Scraping).
    #[serde(default, rename = "scrape_configs")]
    _scrape_configs: Option<serde::de::IgnoredAny>,
    /// Prometheus rule files, as `prometheus.yml` lists them (read by the server; see
    /// docs/rules.md).
    #[serde(default, rename = "rule_files")]
    _rule_files: Option<serde::de::IgnoredAny>,
}

/// The `statsd` section; each key as its `--statsd-*` flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsdFileConfig {
    /// See `--statsd-listen`.
    pub listen: Option<SocketAddr>,
    /// See `--statsd-project`.
    pub project: Option<String>,
    /// See `--statsd-flush-interval` (`10s`, `1m`).
    pub flush_interval: Option<String>,
    /// See `--statsd-max-packet`.
    pub max_packet: Option<usize>,
    /// See `--statsd-max-series`.
    pub max_series: Option<usize>,
    /// See `--statsd-quantiles`.
    pub quantiles: Option<Vec<f64>>,
    /// See `--statsd-forget-after` (`1h`).
    pub forget_after: Option<String>,
    /// See `--statsd-instance`.
    pub instance: Option<String>,
}

/// The StatsD listener's settings, or `None` when no listen address is given.
pub fn statsd(
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<Option<lookout_server::statsd::Settings>> {
    let f = &file.statsd;
    let Some(listen) = args.statsd_listen.or(f.listen) else {
        return Ok(None);
    };
    let mut s = lookout_server::statsd::Settings::new(listen);
    s.project = args.statsd_project.clone().or_else(|| f.project.clone());
    if let Some(d) = args.statsd_flush_interval {
        s.flush_every = d;
    } else if let Some(text) = &f.flush_interval {
        s.flush_every = humantime::parse_duration(text).with_context(|| {
            format!("statsd.flush_interval: {text:?} is not a duration (write e.g. 10s)")
        })?;
    }
    if s.flush_every < std::time::Duration::from_millis(100) {
        bail!("statsd flush interval: at least 100ms");
    }
    if let Some(n) = args.statsd_max_packet.or(f.max_packet) {
        if !(512..=65_507).contains(&n) {
            bail!("statsd max packet: {n} is not between 512 and 65507 bytes");
        }
        s.max_packet = n;
    }
    if let Some(n) = args.statsd_max_series.or(f.max_series) {
        if n == 0 {
            bail!("statsd max series: at least 1");
        }
        s.aggregate.max_series = n;
    }
    // A name stable across restarts (unlike the replica id, which has the pid in it), so a
    // restart continues its series rather than starting new ones.
    s.aggregate.instance = args
        .statsd_instance
        .clone()
        .or_else(|| f.instance.clone())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "lookout".to_string());
    if s.aggregate.instance.len() > 250 {
        bail!("statsd instance: at most 250 bytes");
    }
    let forget = match (&args.statsd_forget_after, &f.forget_after) {
        (Some(d), _) => *d,
        (None, Some(text)) => humantime::parse_duration(text).with_context(|| {
            format!("statsd.forget_after: {text:?} is not a duration (write e.g. 1h)")
        })?,
        (None, None) => std::time::Duration::from_secs(3600),
    };
    if forget < s.flush_every {
        bail!("statsd forget after: at least one flush interval");
    }
    // In flushes, rounded up: a series is kept at least that long.
    let flushes = forget.as_nanos().div_ceil(s.flush_every.as_nanos().max(1));
    s.aggregate.idle_flushes = u32::try_from(flushes).unwrap_or(u32::MAX);
    if let Some(q) = args
        .statsd_quantiles
        .clone()
        .or_else(|| f.quantiles.clone())
    {
        if q.iter().any(|q| !(0.0..=1.0).contains(q)) || q.len() > 20 {
            bail!("statsd quantiles: at most 20, each between 0 and 1");
        }
        s.aggregate.quantiles = q;
    }
    Ok(Some(s))
}

/// The `outbound` section: one policy for every user-supplied destination.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundFileConfig {
    /// Networks Lookout may not reach on a user's behalf, besides those denied by default
    /// (`0.0.0.0/8`, `::`, link-local and cloud metadata addresses).
    #[serde(default)]
    pub deny_networks: Vec<String>,
    /// When set, the only networks Lookout may reach on a user's behalf.
    #[serde(default)]
    pub allow_networks: Vec<String>,
}

/// The `uptime` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeFileConfig {
    /// Older spelling of `outbound.deny_networks`, merged into it (it applies to every
    /// destination, not only checks).
    #[serde(default)]
    pub deny_networks: Vec<String>,
    /// Older spelling of `outbound.allow_networks`, merged into it.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Checks in flight at once (default 1024).
    pub max_concurrent_checks: Option<usize>,
}

/// The `limits` section (Relay's names where Relay has the setting; docs/operations.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFileConfig {
    /// Largest Sentry envelope, on the wire and decompressed (default 20 MiB).
    pub max_envelope_bytes: Option<usize>,
    /// Largest event or transaction, and `/store/` body (default and most 1 MiB).
    pub max_event_bytes: Option<usize>,
    /// Largest attachment kept; larger ones are dropped (default 20 MiB).
    pub max_attachment_bytes: Option<usize>,
    /// Memory all Sentry ingest requests may hold at once (default 64 MiB).
    pub max_inflight_bytes: Option<usize>,
    /// Open connections across both listeners (default 4096, lowered to fit the open-file limit).
    pub max_connections: Option<usize>,
    /// Time for a request's headers to arrive, e.g. "10s" (default 10 s).
    pub header_read_timeout: Option<String>,
    /// Time without a byte moving while waiting on the client, e.g. "60s" (default 60 s).
    pub idle_timeout: Option<String>,
}

/// File descriptors kept for storage, uptime checks and outbound calls when the connection cap
/// is derived from the open-file limit.
const FDS_KEPT_BACK: u64 = 256;

/// Resolves the `limits` section, reporting every bad value at once. `open_files` is the
/// process's open-file limit (after raising it); the default connection cap stays below it.
pub fn limits(
    file: &LimitsFileConfig,
    open_files: Option<u64>,
) -> Result<(IngestLimits, ListenerLimits)> {
    let d = IngestLimits::default();
    let ingest = IngestLimits {
        max_envelope_bytes: file.max_envelope_bytes.unwrap_or(d.max_envelope_bytes),
        max_event_bytes: file.max_event_bytes.unwrap_or(d.max_event_bytes),
        max_attachment_bytes: file.max_attachment_bytes.unwrap_or(d.max_attachment_bytes),
        inflight_bytes: file.max_inflight_bytes.unwrap_or(d.inflight_bytes),
    };
    let mut problems = ingest.problems();
    let ld = ListenerLimits::default();
    let fitting = open_files
        .map(|n| usize::try_from(n.saturating_sub(FDS_KEPT_BACK).max(16)).unwrap_or(usize::MAX));
    let max_connections = match (file.max_connections, fitting) {
        (Some(0), _) => {
            problems.push("limits.max_connections must be at least 1".into());
            1
        }
        (Some(n), Some(fit)) if n > fit => {
            tracing::warn!(
                max_connections = n,
                open_files = open_files.unwrap_or(0),
                "limits.max_connections is above what the open-file limit leaves; past the limit, connections fail instead of getting 503."
            );
            n
        }
        (Some(n), _) => n,
        (None, Some(fit)) => ld.max_connections.min(fit),
        (None, None) => ld.max_connections,
    };
    let mut timeout = |name: &str, value: &Option<String>, default| match value {
        None => default,
        Some(v) => match humantime::parse_duration(v.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                problems.push(format!(
                    "limits.{name}: {v:?} is not a duration above zero (write e.g. 10s)"
                ));
                default
            }
        },
    };
    let header_read_timeout = timeout(
        "header_read_timeout",
        &file.header_read_timeout,
        ld.header_read_timeout,
    );
    let idle_timeout = timeout("idle_timeout", &file.idle_timeout, ld.idle_timeout);
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok((
        ingest,
        ListenerLimits {
            max_connections,
            header_read_timeout,
            idle_timeout,
        },
    ))
}

impl FileConfig {
    /// The outbound policy's `(deny, allow)` networks: `outbound` with the `uptime` aliases.
    pub fn outbound_networks(&self) -> (Vec<String>, Vec<String>) {
        if !self.uptime.allow_networks.is_empty() || !self.uptime.deny_networks.is_empty() {
            // Before the outbound section these lists held checks only; an allow list there
            // now also limits where pages, reports and SMTP go.
            tracing::warn!(
                "uptime.deny_networks and uptime.allow_networks now apply to every outbound destination (channels, SMTP, reports, database and backup targets), as outbound.deny_networks and outbound.allow_networks; move them to the outbound section."
            );
        }
        let merge = |a: &[String], b: &[String]| {
            let mut v = a.to_vec();
            v.extend(b.iter().filter(|n| !a.contains(n)).cloned());
            v
        };
        (
            merge(&self.outbound.deny_networks, &self.uptime.deny_networks),
            merge(&self.outbound.allow_networks, &self.uptime.allow_networks),
        )
    }
}

/// The `query` section: what one NRQL query may cost (docs/query.md, "Limits").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFileConfig {
    /// Longest a query may run, in seconds, fractions allowed (default 60); past it: 503.
    pub timeout_seconds: Option<f64>,
    /// Queries in flight at once, for viewers and, separately, for alert conditions (default
    /// 4); past it, after `queue_seconds`: 503.
    pub max_concurrent: Option<usize>,
    /// How long a viewer's query waits for a slot (default 2).
    pub queue_seconds: Option<f64>,
    /// Memory one query may keep while reading (default 67108864, 64 MiB); past it: 422.
    pub max_memory_bytes: Option<usize>,
    /// Most rows (facet values × buckets) in one answer (default 20000); past it: 422.
    pub max_answer_rows: Option<usize>,
}

/// The query limits, with defaults for what the file leaves out; refuses impossible values.
pub fn query_limits(file: &FileConfig) -> Result<lookout_server::query::nrql::limits::Limits> {
    let q = &file.query;
    let d = lookout_server::query::nrql::limits::Limits::default();
    let seconds = |name: &str, v: Option<f64>, default: std::time::Duration| match v {
        None => Ok(default),
        Some(s) if (0.0..=86_400.0).contains(&s) => Ok(std::time::Duration::from_secs_f64(s)),
        Some(s) => bail!("query.{name} = {s}: seconds from 0 to 86400"),
    };
    let positive = |name: &str, v: Option<usize>, default: usize| match v {
        None => Ok(default),
        Some(0) => bail!("query.{name} must be at least 1"),
        Some(n) => Ok(n),
    };
    let timeout = seconds("timeout_seconds", q.timeout_seconds, d.timeout)?;
    if timeout.is_zero() {
        bail!("query.timeout_seconds must be more than 0");
    }
    Ok(lookout_server::query::nrql::limits::Limits {
        timeout,
        max_concurrent: positive("max_concurrent", q.max_concurrent, d.max_concurrent)?,
        queue: seconds("queue_seconds", q.queue_seconds, d.queue)?,
        max_memory_bytes: positive("max_memory_bytes", q.max_memory_bytes, d.max_memory_bytes)?,
        max_answer_rows: positive("max_answer_rows", q.max_answer_rows, d.max_answer_rows)?,
    })
}

/// The `oidc` section: single sign-on with an OpenID Connect provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFileConfig {
    /// The provider's issuer URL (`LOOKOUT_OIDC_ISSUER`).
    pub issuer: Option<String>,
    /// The client id registered at the provider (`LOOKOUT_OIDC_CLIENT_ID`).
    pub client_id: Option<String>,
    /// The client secret (`LOOKOUT_OIDC_CLIENT_SECRET`, which keeps it out of the file).
    pub client_secret: Option<String>,
    /// The claim listing the user's groups (default `groups`).
    pub groups_claim: Option<String>,
    /// Scopes asked for besides `openid` (default `["email", "profile"]`).
    pub scopes: Option<Vec<String>>,
    /// Only emails in these domains may sign in (default: any).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Password sign-in refused except for `break_glass_email`.
    #[serde(default)]
    pub sso_only: bool,
    /// The local admin who keeps password sign-in in SSO-only mode.
    pub break_glass_email: Option<String>,
    /// Groups per role: `admin = [...]`, `member = [...]`; no match: viewer.
    #[serde(default)]
    pub roles: OidcRoles,
    /// `[oidc.teams]`: team slug → the groups whose members belong to it. At each sign-in the
    /// user joins the listed teams their groups name and leaves the listed ones they do not;
    /// teams not listed here are left to the Teams page.
    #[serde(default)]
    pub teams: std::collections::BTreeMap<String, Vec<String>>,
}

/// `[oidc.roles]`: admin is checked first, then member; everyone else is a viewer.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRoles {
    /// Groups whose members are admins.
    #[serde(default)]
    pub admin: Vec<String>,
    /// Groups whose members are members.
    #[serde(default)]
    pub member: Vec<String>,
}

/// Single sign-on, from `LOOKOUT_OIDC_*` over the `oidc` section; `None` when neither names an
/// issuer. `env` reads one variable (the process environment, or a test's map).
pub fn oidc(
    file: &FileConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<lookout_server::tenancy::sso::SsoConfig>> {
    let f = file.oidc.as_ref();
    let pick = |var: &str, v: Option<&String>| env(var).or_else(|| v.cloned());
    let Some(issuer) = pick("LOOKOUT_OIDC_ISSUER", f.and_then(|f| f.issuer.as_ref())) else {
        if f.is_some() {
            bail!("oidc.issuer is missing (or set LOOKOUT_OIDC_ISSUER)");
        }
        return Ok(None);
    };
    let client_id = pick(
        "LOOKOUT_OIDC_CLIENT_ID",
        f.and_then(|f| f.client_id.as_ref()),
    )
    .context("oidc.client_id is missing (or set LOOKOUT_OIDC_CLIENT_ID)")?;
    let client_secret = pick(
        "LOOKOUT_OIDC_CLIENT_SECRET",
        f.and_then(|f| f.client_secret.as_ref()),
    )
    .context("oidc.client_secret is missing (or set LOOKOUT_OIDC_CLIENT_SECRET)")?;
    let config = lookout_server::tenancy::sso::SsoConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret,
        groups_claim: f
            .and_then(|f| f.groups_claim.clone())
            .unwrap_or_else(|| "groups".into()),
        scopes: f
            .and_then(|f| f.scopes.clone())
            .unwrap_or_else(|| vec!["email".into(), "profile".into()]),
        allowed_domains: f.map(|f| f.allowed_domains.clone()).unwrap_or_default(),
        admin_groups: f.map(|f| f.roles.admin.clone()).unwrap_or_default(),
        member_groups: f.map(|f| f.roles.member.clone()).unwrap_or_default(),
        team_groups: f
            .map(|f| {
                f.teams
                    .iter()
                    .map(|(slug, groups)| {
                        (
                            slug.trim_start_matches('#').to_ascii_lowercase(),
                            groups.clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sso_only: f.is_some_and(|f| f.sso_only),
        break_glass: f.and_then(|f| f.break_glass_email.clone()),
    };
    if let Some(problem) = config.problem() {
        bail!("{problem}");
    }
    if config.sso_only && config.break_glass.is_none() {
        bail!("oidc.sso_only needs oidc.break_glass_email: a local admin who can still sign in when the provider is down");
    }
    Ok(Some(config))
}

/// The config file in use: `--config FILE`, or `./lookout.toml` if it exists.
pub fn file_path(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if Path::new("lookout.toml").exists() => Some(PathBuf::from("lookout.toml")),
        None => None,
    }
}

/// Reads the config file (`.yaml`/`.yml` as YAML, anything else as TOML), or nothing.
pub fn load_file(explicit: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = file_path(explicit) else {
        return Ok(FileConfig::default());
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if yaml {
        serde_yaml_ng::from_str(&text).with_context(|| format!("in {}", path.display()))
    } else {
        toml::from_str(&text).with_context(|| format!("in {}", path.display()))
    }
}

/// Where and how data is stored, resolved.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The URL to open.
    pub url: String,
    /// What to show users (no password).
    pub display: String,
}

/// Resolves storage: an explicit URL, else SQLite in the data directory (created if missing).
pub fn storage(common: &CommonArgs, file: &FileConfig) -> Result<Storage> {
    if let Some(url) = common
        .database_url
        .clone()
        .or_else(|| file.database_url.clone())
    {
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            bail!("--database-url must start with sqlite:// or postgres://");
        }
        return Ok(Storage {
            display: redact(&url),
            url,
        });
    }
    let dir = common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("lookout-data"));
    private_dir(&dir)?;
    Ok(Storage {
        url: lookout_store::Store::sqlite_url_for_dir(&dir),
        display: dir.join("lookout.db").display().to_string(),
    })
}

/// Storage for a verb that works on a server's existing data (`query`, `report`, `pack
/// install`, `user create`, `token create`): as [`storage`], but a data directory without a
/// database, or a SQLite file, that does not exist is refused unless `create`. Run outside the
/// server's working directory, these verbs used to make a new empty `./lookout-data` and
/// report success on it.
pub fn existing_storage(common: &CommonArgs, file: &FileConfig, create: bool) -> Result<Storage> {
    if !create {
        if let Some(missing) = missing_database(common, file) {
            bail!(
                "{missing}. Point at the server's data with --data-dir DIR (or LOOKOUT_DATA_DIR, or --database-url), \
                 or at the running server with --server URL --token TOKEN (or LOOKOUT_URL and LOOKOUT_TOKEN); \
                 --create makes a new, empty database there"
            );
        }
    }
    storage(common, file)
}

/// What is missing, when the configured SQLite database does not exist (PostgreSQL databases
/// are the operator's to create, and a wrong one fails to connect).
fn missing_database(common: &CommonArgs, file: &FileConfig) -> Option<String> {
    if let Some(url) = common
        .database_url
        .as_deref()
        .or(file.database_url.as_deref())
    {
        let path = sqlite_path(url)?;
        return (!Path::new(path).exists())
            .then(|| format!("no SQLite database at {path} (--database-url)"));
    }
    let dir = common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("lookout-data"));
    let db = dir.join("lookout.db");
    // A relative directory also says where it was looked for: the verb ran somewhere else
    // than the server, which is the usual reason it is missing.
    let place = match std::env::current_dir() {
        Ok(cwd) if dir.is_relative() => format!(" (in {})", cwd.display()),
        _ => String::new(),
    };
    if db.exists() {
        None
    } else if dir.is_dir() {
        Some(format!(
            "no Lookout database in the data directory {}{place} ({} does not exist)",
            dir.display(),
            db.display()
        ))
    } else {
        Some(format!(
            "the data directory {}{place} does not exist",
            dir.display()
        ))
    }
}

/// The file of a `sqlite:` URL (`sqlite://PATH?mode=rwc`, `sqlite:PATH`); `None` for other
/// backends and in-memory databases.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Where the credential key is kept when `LOOKOUT_SECRET_KEY` is not set: `secret.key` in the
/// data directory (created if missing, also when the data itself is on PostgreSQL).
pub fn secret_key_file(common: &CommonArgs, file: &FileConfig) -> Result<PathBuf> {
    let dir = common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("lookout-data"));
    private_dir(&dir)?;
    Ok(dir.join("secret.key"))
}

/// Creates the data directory readable by its owner only (0700), and makes an existing one so:
/// it holds the database, its WAL and the key that seals stored credentials.
fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making data directory {} private", dir.display()))?;
        }
    }
    Ok(())
}

/// The listen addresses and public URL for `serve`.
pub fn listeners(args: &ServeArgs, file: &FileConfig) -> (SocketAddr, SocketAddr, Option<String>) {
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8800)));
    let otlp = args
        .otlp_listen
        .or(file.otlp_listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 4318)));
    (
        listen,
        otlp,
        args.public_url.clone().or_else(|| file.public_url.clone()),
    )
}

/// The log format.
pub fn log_format(common: &CommonArgs, file: &FileConfig) -> LogFormat {
    common
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Text)
}

/// A database URL without its password, for banners and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => format!("{scheme}://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `serve` arguments as clap parses them (no environment variables are set in tests).
    fn serve_args(args: &[&str]) -> ServeArgs {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["lookout", "serve"].iter().chain(args)).unwrap();
        match cli.command {
            crate::cli::Command::Serve(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn statsd_is_off_by_default_and_flags_beat_the_file() {
        let none = FileConfig::default();
        assert!(statsd(&serve_args(&[]), &none).unwrap().is_none());
        let file: FileConfig = toml::from_str(
            "[statsd]\nlisten = \"127.0.0.1:8125\"\nproject = \"shop\"\nflush_interval = \"30s\"\nquantiles = [0.5]\n",
        )
        .unwrap();
        let s = statsd(&serve_args(&[]), &file).unwrap().unwrap();
        assert_eq!(s.listen.port(), 8125);
        assert_eq!(s.project.as_deref(), Some("shop"));
        assert_eq!(s.flush_every, std::time::Duration::from_secs(30));
        assert_eq!(s.aggregate.quantiles, vec![0.5]);
        // Forgotten after an hour by default: 120 flushes of 30 s.
        assert_eq!(s.aggregate.idle_flushes, 120);
        let s = statsd(&serve_args(&["--statsd-forget-after", "6h"]), &file)
            .unwrap()
            .unwrap();
        assert_eq!(s.aggregate.idle_flushes, 720);
        // Every series is labelled with the replica; the host name unless given.
        assert!(!s.aggregate.instance.is_empty());
        let s = statsd(&serve_args(&["--statsd-instance", "web-2"]), &file)
            .unwrap()
            .unwrap();
        assert_eq!(s.aggregate.instance, "web-2");
        let s = statsd(
            &serve_args(&[
                "--statsd-listen",
                "127.0.0.1:9125",
                "--statsd-quantiles",
                "0.9,0.99",
            ]),
            &file,
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.listen.port(), 9125);
        assert_eq!(s.aggregate.quantiles, vec![0.9, 0.99]);
        // Out-of-range settings are refused with the setting's name.
        for bad in [
            &["--statsd-max-packet", "100"][..],
            &["--statsd-quantiles", "2"],
            &["--statsd-forget-after", "1s"],
        ] {
            let e = statsd(&serve_args(bad), &file).unwrap_err().to_string();
            assert!(e.contains("statsd"), "{e}");
        }
        let typo: Result<FileConfig, _> = toml::from_str("[statsd]\nlisten_addr = \"x\"\n");
        assert!(typo.is_err());
    }

    #[test]
    fn verbs_on_existing_data_refuse_a_missing_database_unless_asked_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nowhere");
        let common = |data_dir: Option<PathBuf>, url: Option<String>| CommonArgs {
            config: None,
            data_dir,
            database_url: url,
            log_format: None,
        };
        let file = FileConfig::default();
        let err = existing_storage(&common(Some(missing.clone()), None), &file, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&missing.display().to_string())
                && err.contains("--server")
                && err.contains("--data-dir")
                && err.contains("--create"),
            "{err}"
        );
        assert!(!missing.exists(), "nothing created");
        // An existing directory without a database is refused too, naming the file.
        let err = existing_storage(&common(Some(dir.path().into()), None), &file, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lookout.db"), "{err}");
        let url = format!("sqlite://{}?mode=rwc", missing.join("x.db").display());
        let err = existing_storage(&common(None, Some(url)), &file, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.db"), "{err}");
        // PostgreSQL is not checked here; --create makes the directory.
        assert!(existing_storage(
            &common(None, Some("postgres://db/lookout".into())),
            &file,
            false
        )
        .is_ok());
        assert!(existing_storage(&common(Some(missing.clone()), None), &file, true).is_ok());
        assert!(missing.is_dir());
    }

    #[test]
    fn passwords_never_reach_the_banner() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/lookout?sslmode=require"),
            "postgres://app:***@db:5432/lookout"
        );
        assert_eq!(redact("postgres://db/lookout"), "postgres://db/lookout");
    }

    #[test]
    fn the_file_rejects_unknown_keys_and_reads_known_ones() {
        let ok: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nlog_format = \"json\"").unwrap();
        assert_eq!(ok.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(ok.log_format, Some(LogFormat::Json));
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    }

    #[test]
    fn limits_default_to_fit_the_open_file_limit_and_bad_values_are_all_reported() {
        let (ingest, listener) = limits(&LimitsFileConfig::default(), Some(1024)).unwrap();
        assert_eq!(ingest, IngestLimits::default());
        assert_eq!(listener.max_connections, 1024 - 256);
        let file: FileConfig = toml::from_str(
            "[limits]\nmax_connections = 20\nheader_read_timeout = \"2s\"\nmax_envelope_bytes = 1048576\nmax_inflight_bytes = 4194304",
        )
        .unwrap();
        let (ingest, listener) = limits(&file.limits, None).unwrap();
        assert_eq!(listener.max_connections, 20);
        assert_eq!(
            listener.header_read_timeout,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(ingest.max_envelope_bytes, 1 << 20);
        let bad: FileConfig = toml::from_str(
            "[limits]\nidle_timeout = \"soon\"\nmax_event_bytes = 9999999\nmax_connections = 0",
        )
        .unwrap();
        let err = limits(&bad.limits, None).unwrap_err().to_string();
        for part in ["idle_timeout", "max_event_bytes", "max_connections"] {
            assert!(err.contains(part), "{err}");
        }
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_conections = 1").is_err());
    }

    #[test]
    fn yaml_files_carry_server_settings_and_monitors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lookout.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9100\nuptime:\n  deny_networks: [10.0.0.0/8]\nmonitors:\n  - name: api\n    type: http\n    url: http://127.0.0.1:9/\n",
        )
        .unwrap();
        let c = load_file(Some(&path)).unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.uptime.deny_networks, vec!["10.0.0.0/8"]);
        std::fs::write(&path, "uptime:\n  deny: []\n").unwrap();
        assert!(load_file(Some(&path)).is_err());
    }

    #[test]
    fn outbound_networks_merge_the_uptime_aliases() {
        let c: FileConfig = serde_yaml_ng::from_str(
            "outbound:\n  deny_networks: [127.0.0.0/8, \"::1/128\"]\nuptime:\n  deny_networks: [10.0.0.0/8, 127.0.0.0/8]\n  allow_networks: [192.0.2.0/24]\n",
        )
        .unwrap();
        let (deny, allow) = c.outbound_networks();
        assert_eq!(deny, vec!["127.0.0.0/8", "::1/128", "10.0.0.0/8"]);
        assert_eq!(allow, vec!["192.0.2.0/24"]);
        assert!(serde_yaml_ng::from_str::<FileConfig>("outbound:\n  deny: []\n").is_err());
    }

    #[test]
    fn oidc_comes_from_the_file_and_the_environment() {
        let none = |_: &str| None;
        assert!(oidc(&FileConfig::default(), none).unwrap().is_none());
        let c: FileConfig = toml::from_str(
            "[oidc]\nissuer = \"https://id.example.com/realms/ops/\"\nclient_id = \"lookout\"\n\
             allowed_domains = [\"example.com\"]\n[oidc.roles]\nadmin = [\"sre-leads\"]\nmember = [\"engineers\"]\n\
             [oidc.teams]\npayments = [\"grp-payments\", \"grp-billing\"]\n\"#Search\" = [\"grp-search\"]",
        )
        .unwrap();
        let err = oidc(&c, none).unwrap_err().to_string();
        assert!(err.contains("client_secret"), "{err}");
        let env = |k: &str| (k == "LOOKOUT_OIDC_CLIENT_SECRET").then(|| "s3cret".to_string());
        let o = oidc(&c, env).unwrap().unwrap();
        assert_eq!(o.issuer, "https://id.example.com/realms/ops");
        assert_eq!(o.client_secret, "s3cret");
        assert_eq!(o.groups_claim, "groups");
        assert_eq!(o.admin_groups, vec!["sre-leads"]);
        assert_eq!(
            o.team_groups,
            vec![
                ("search".to_string(), vec!["grp-search".to_string()]),
                (
                    "payments".to_string(),
                    vec!["grp-payments".to_string(), "grp-billing".to_string()]
                ),
            ]
        );
        assert_eq!(o.scopes, vec!["email", "profile"]);
        let plain: FileConfig = toml::from_str(
            "[oidc]\nissuer = \"http://id.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"",
        )
        .unwrap();
        assert!(oidc(&plain, none)
            .unwrap_err()
            .to_string()
            .contains("https"));
        let only: FileConfig = toml::from_str(
            "[oidc]\nissuer = \"https://x.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\nsso_only = true",
        )
        .unwrap();
        assert!(oidc(&only, none)
            .unwrap_err()
            .to_string()
            .contains("break_glass_email"));
        let env_only = |k: &str| match k {
            "LOOKOUT_OIDC_ISSUER" => Some("http://127.0.0.1:9999".to_string()),
            "LOOKOUT_OIDC_CLIENT_ID" => Some("a".to_string()),
            "LOOKOUT_OIDC_CLIENT_SECRET" => Some("b".to_string()),
            _ => None,
        };
        assert!(oidc(&FileConfig::default(), env_only).unwrap().is_some());
    }

    #[test]
    fn query_limits_default_and_refuse_impossible_values() {
        let d = query_limits(&FileConfig::default()).unwrap();
        assert_eq!(d, lookout_server::query::nrql::limits::Limits::default());
        let c: FileConfig = toml::from_str(
            "[query]\ntimeout_seconds = 0.5\nmax_concurrent = 2\nmax_answer_rows = 100",
        )
        .unwrap();
        let l = query_limits(&c).unwrap();
        assert_eq!(l.timeout, std::time::Duration::from_millis(500));
        assert_eq!((l.max_concurrent, l.max_answer_rows), (2, 100));
        for bad in [
            "timeout_seconds = 0",
            "timeout_seconds = -1",
            "max_concurrent = 0",
        ] {
            let c: FileConfig = toml::from_str(&format!("[query]\n{bad}")).unwrap();
            assert!(query_limits(&c).is_err(), "{bad}");
        }
        assert!(toml::from_str::<FileConfig>("[query]\ntimeout = 1").is_err());
    }
}
