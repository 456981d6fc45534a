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
    /// See `--log-format`.
    pub log_format: Option<LogFormat>,
    /// Uptime checks: outbound policy and concurrency.
    #[serde(default)]
    pub uptime: UptimeFileConfig,
    /// NRQL query limits (docs/query.md).
    #[serde(default)]
    pub query: QueryFileConfig,
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
}

/// The `uptime` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UptimeFileConfig {
    /// Networks checks may not reach, besides link-local and cloud metadata (denied by default).
    #[serde(default)]
    pub deny_networks: Vec<String>,
    /// When set, the only networks checks may reach.
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Checks in flight at once (default 1024).
    pub max_concurrent_checks: Option<usize>,
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
pub fn query_limits(file: &FileConfig) -> Result<lookout_server::nrql::limits::Limits> {
    let q = &file.query;
    let d = lookout_server::nrql::limits::Limits::default();
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
    Ok(lookout_server::nrql::limits::Limits {
        timeout,
        max_concurrent: positive("max_concurrent", q.max_concurrent, d.max_concurrent)?,
        queue: seconds("queue_seconds", q.queue_seconds, d.queue)?,
        max_memory_bytes: positive("max_memory_bytes", q.max_memory_bytes, d.max_memory_bytes)?,
        max_answer_rows: positive("max_answer_rows", q.max_answer_rows, d.max_answer_rows)?,
    })
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
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    Ok(Storage {
        url: lookout_store::Store::sqlite_url_for_dir(&dir),
        display: dir.join("lookout.db").display().to_string(),
    })
}

/// Where the credential key is kept when `LOOKOUT_SECRET_KEY` is not set: `secret.key` in the
/// data directory (created if missing, also when the data itself is on PostgreSQL).
pub fn secret_key_file(common: &CommonArgs, file: &FileConfig) -> Result<PathBuf> {
    let dir = common
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("lookout-data"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    Ok(dir.join("secret.key"))
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
    fn query_limits_default_and_refuse_impossible_values() {
        let d = query_limits(&FileConfig::default()).unwrap();
        assert_eq!(d, lookout_server::nrql::limits::Limits::default());
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
