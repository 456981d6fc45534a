//! A scrape job's configuration as Prometheus writes it (`scrape_configs` entries), its
//! validation (every error names the field), and its credentials: sealed at rest, masked in
//! answers and `Debug`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use lookout_core::seal::Sealer;
use lookout_protocol::relabel::{self, RelabelConfig};

/// What a masked secret reads as in answers to roles that may not see it, and what the form
/// sends back to keep the stored one.
pub const MASK: &str = "********";

/// Default and largest `body_size_limit`.
pub const DEFAULT_BODY_LIMIT: u64 = 16 * 1024 * 1024;
/// Largest `body_size_limit` accepted.
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// Most targets one job may have (static and discovered).
pub const MAX_TARGETS: usize = 10_000;

/// A credential: never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { MASK })
    }
}

/// `basic_auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: Secret,
}

/// `authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme, `Bearer` unless given.
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    /// The credentials sent after the scheme.
    #[serde(default)]
    pub credentials: Secret,
}

fn bearer() -> String {
    "Bearer".into()
}

/// One `static_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels given to each.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One `file_sd_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// JSON or YAML files of target groups (`*` in the file name allowed).
    pub files: Vec<String>,
    /// Re-read at least this often (changes are picked up sooner, within a few seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<String>,
}

/// A size in bytes: a number or a string with a unit (`B`, `KB`, `MB`, `GB`, powers of 1024 as
/// Prometheus reads them; `KiB`… too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// Bytes.
    Bytes(u64),
    /// With a unit.
    Text(String),
}

/// A `scrape_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// The `job` label and the job's name (from the path in the API).
    #[serde(default)]
    pub job_name: String,
    /// The project written into (id or slug); the first project when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// How often (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,
    /// How long one scrape may take (default `10s`, at most the interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    /// Default `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
    /// `http` (default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Scraped labels win over target labels.
    #[serde(default)]
    pub honor_labels: bool,
    /// Explicit sample timestamps are kept (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub honor_timestamps: Option<bool>,
    /// URL query parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// The older spelling of `authorization` with a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// More samples than this after metric relabeling fail the scrape (0: no limit).
    #[serde(default)]
    pub sample_limit: u64,
    /// Largest body read, uncompressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<Size>,
    /// Fixed targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    /// Targets from files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Rules run on each target's labels before scraping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Rules run on each scraped sample's labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

/// A validated job, durations and limits resolved and rules compiled.
#[derive(Debug, Clone)]
pub struct Job {
    /// As configured (secrets in clear: only the scraper holds this).
    pub cfg: JobConfig,
    /// Scrape interval.
    pub interval: Duration,
    /// Scrape timeout.
    pub timeout: Duration,
    /// File re-read interval.
    pub refresh: Duration,
    /// Body limit, bytes.
    pub body_limit: u64,
    /// Target relabeling.
    pub relabel: Vec<relabel::Rule>,
    /// Metric relabeling.
    pub metric_relabel: Vec<relabel::Rule>,
}

/// A Prometheus duration: `1h30m`, `15s`, `500ms`, units y w d h m s ms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(format!("{s:?} is not a duration like 15s or 1m30s"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(format!("{s:?} is not a duration like 15s or 1m30s")),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(n.saturating_mul(ms));
    }
    u64::try_from(total)
        .map(Duration::from_millis)
        .map_err(|_| format!("{s:?} is too long"))
}

/// A size as Prometheus's `body_size_limit` reads it.
pub fn parse_size(s: &Size) -> Result<u64, String> {
    let text = match s {
        Size::Bytes(n) => return Ok(*n),
        Size::Text(t) => t.trim(),
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 16MB"))?;
    let mult: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size like 16MB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A validation error naming the field (`scrape_timeout`, `relabel_configs`…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

impl JobConfig {
    /// Checks everything and resolves durations, sizes and rules.
    pub fn validate(&self) -> Result<Job, Invalid> {
        let name = self.job_name.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(bad(
                "job_name",
                "give a name of 1 to 200 printable characters",
            ));
        }
        let dur = |field: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| bad(field, e)),
        };
        let interval = dur(
            "scrape_interval",
            &self.scrape_interval,
            Duration::from_secs(60),
        )?;
        if interval < Duration::from_secs(1) {
            return Err(bad("scrape_interval", "must be at least 1s"));
        }
        let timeout = dur(
            "scrape_timeout",
            &self.scrape_timeout,
            Duration::from_secs(10).min(interval),
        )?;
        if timeout.is_zero() || timeout > interval {
            return Err(bad(
                "scrape_timeout",
                "must be above 0 and at most scrape_interval",
            ));
        }
        let refresh = match self
            .file_sd_configs
            .iter()
            .find_map(|f| f.refresh_interval.as_ref())
        {
            None => Duration::from_secs(300),
            Some(s) => parse_duration(s).map_err(|e| bad("file_sd_configs.refresh_interval", e))?,
        };
        if let Some(p) = &self.metrics_path {
            if !p.starts_with('/') {
                return Err(bad("metrics_path", "must start with /"));
            }
        }
        if let Some(s) = &self.scheme {
            if s != "http" && s != "https" {
                return Err(bad("scheme", "http or https"));
            }
        }
        let body_limit = match &self.body_size_limit {
            None => DEFAULT_BODY_LIMIT,
            Some(s) => {
                let n = parse_size(s).map_err(|e| bad("body_size_limit", e))?;
                if n == 0 || n > MAX_BODY_LIMIT {
                    return Err(bad(
                        "body_size_limit",
                        format!("must be between 1 byte and {}", MAX_BODY_LIMIT),
                    ));
                }
                n
            }
        };
        let auths = [
            self.basic_auth.is_some(),
            self.authorization.is_some(),
            self.bearer_token.is_some(),
        ];
        if auths.iter().filter(|a| **a).count() > 1 {
            return Err(bad(
                "authorization",
                "give one of basic_auth, authorization and bearer_token",
            ));
        }
        let mut n = 0;
        for (i, sc) in self.static_configs.iter().enumerate() {
            for t in &sc.targets {
                check_address(t).map_err(|e| bad(&format!("static_configs[{i}].targets"), e))?;
            }
            for k in sc.labels.keys() {
                if !lookout_protocol::exposition::is_label_name(k) {
                    return Err(bad(
                        &format!("static_configs[{i}].labels"),
                        format!("{k:?} is not a label name"),
                    ));
                }
            }
            n += sc.targets.len();
        }
        if n > MAX_TARGETS {
            return Err(bad(
                "static_configs",
                format!("more than {MAX_TARGETS} targets"),
            ));
        }
        for (i, f) in self.file_sd_configs.iter().enumerate() {
            if f.files.is_empty() {
                return Err(bad(&format!("file_sd_configs[{i}].files"), "name a file"));
            }
        }
        for k in self.params.keys() {
            if k.is_empty() {
                return Err(bad("params", "a parameter needs a name"));
            }
        }
        let relabel =
            relabel::compile(&self.relabel_configs).map_err(|e| bad("relabel_configs", e))?;
        let metric_relabel = relabel::compile(&self.metric_relabel_configs)
            .map_err(|e| bad("metric_relabel_configs", e))?;
        Ok(Job {
            cfg: self.clone(),
            interval,
            timeout,
            refresh,
            body_limit,
            relabel,
            metric_relabel,
        })
    }

    /// The secrets, mutably (to seal, open or mask them all alike).
    fn secrets_mut(&mut self) -> Vec<&mut Secret> {
        let mut out = Vec::new();
        if let Some(b) = &mut self.basic_auth {
            out.push(&mut b.password);
        }
        if let Some(a) = &mut self.authorization {
            out.push(&mut a.credentials);
        }
        if let Some(t) = &mut self.bearer_token {
            out.push(t);
        }
        out
    }

    /// A copy with every credential sealed (as stored).
    pub fn sealed(&self, sealer: &Sealer) -> JobConfig {
        let mut c = self.clone();
        for s in c.secrets_mut() {
            if !s.0.is_empty() {
                s.0 = sealer.seal(&s.0);
            }
        }
        c
    }

    /// A stored copy with its credentials opened.
    pub fn opened(&self, sealer: &Sealer) -> Result<JobConfig, String> {
        let mut c = self.clone();
        for s in c.secrets_mut() {
            if lookout_core::seal::is_sealed(&s.0) {
                s.0 = sealer.open(&s.0)?;
            }
        }
        Ok(c)
    }

    /// A copy with every credential masked (for answers and pages).
    pub fn masked(&self) -> JobConfig {
        let mut c = self.clone();
        for s in c.secrets_mut() {
            if !s.0.is_empty() {
                s.0 = MASK.into();
            }
        }
        c
    }

    /// Where the job sends requests: scheme, targets, files, path and parameters. Credentials
    /// kept from a previous version are only sent on while this stays the same.
    pub fn destination(&self) -> String {
        serde_json::json!([
            self.scheme,
            self.metrics_path,
            self.static_configs
                .iter()
                .map(|s| &s.targets)
                .collect::<Vec<_>>(),
            self.file_sd_configs
                .iter()
                .map(|f| &f.files)
                .collect::<Vec<_>>(),
            self.relabel_configs,
            self.params,
        ])
        .to_string()
    }

    /// Fills masked credentials of an edit from `old` (the stored, opened job): allowed only
    /// when the destination did not change, so a kept password never goes to a new host.
    pub fn keep_secrets_from(&mut self, old: &JobConfig) -> Result<(), Invalid> {
        let same_place = self.destination() == old.destination();
        let keep = |field: &str, s: &mut Secret, old: Option<&Secret>| -> Result<(), Invalid> {
            if s.0 != MASK {
                return Ok(());
            }
            if !same_place {
                return Err(bad(
                    field,
                    "the targets changed: give the credential again (the stored one is not sent to a new destination)",
                ));
            }
            match old {
                Some(o) if !o.0.is_empty() => {
                    s.0.clone_from(&o.0);
                    Ok(())
                }
                _ => Err(bad(field, "no stored credential to keep; give it")),
            }
        };
        if let Some(b) = &mut self.basic_auth {
            let o = old.basic_auth.as_ref().map(|b| &b.password);
            keep("basic_auth.password", &mut b.password, o)?;
        }
        if let Some(a) = &mut self.authorization {
            let o = old.authorization.as_ref().map(|a| &a.credentials);
            keep("authorization.credentials", &mut a.credentials, o)?;
        }
        if let Some(t) = &mut self.bearer_token {
            keep("bearer_token", t, old.bearer_token.as_ref())?;
        }
        Ok(())
    }
}

/// A target address: `host:port` (or `host`), no scheme, path or credentials.
pub fn check_address(t: &str) -> Result<(), String> {
    if t.is_empty() || t.len() > 255 {
        return Err("a target is host:port".into());
    }
    if t.contains("://") || t.contains('/') || t.contains('@') || t.contains(char::is_whitespace) {
        return Err(format!(
            "{t:?} is not host:port (give the scheme in scheme and the path in metrics_path)"
        ));
    }
    url::Url::parse(&format!("http://{t}/"))
        .map(|_| ())
        .map_err(|_| format!("{t:?} is not host:port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> JobConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn durations_and_sizes_read_as_prometheus_writes_them() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("1x").is_err());
        assert_eq!(parse_size(&Size::Text("16MB".into())).unwrap(), 16 << 20);
        assert_eq!(parse_size(&Size::Bytes(10)).unwrap(), 10);
        assert!(parse_size(&Size::Text("lots".into())).is_err());
    }

    #[test]
    fn validation_names_the_wrong_field() {
        let e = |y: &str| job(y).validate().unwrap_err().field;
        assert_eq!(
            e("job_name: n\nscrape_interval: 10s\nscrape_timeout: 20s"),
            "scrape_timeout"
        );
        assert_eq!(e("job_name: n\nscrape_interval: soon"), "scrape_interval");
        assert_eq!(
            e("job_name: n\nstatic_configs: [{targets: ['http://a:1/x']}]"),
            "static_configs[0].targets"
        );
        assert_eq!(e("job_name: n\nmetrics_path: metrics"), "metrics_path");
        assert_eq!(e("job_name: n\nbody_size_limit: 1TB"), "body_size_limit");
        assert_eq!(
            e("job_name: n\nrelabel_configs: [{action: keep, regex: '('}]"),
            "relabel_configs"
        );
        assert_eq!(e("job_name: ''"), "job_name");
        let ok = job("job_name: n\nscrape_interval: 5s\nstatic_configs: [{targets: ['a:1']}]")
            .validate()
            .unwrap();
        assert_eq!(ok.timeout, Duration::from_secs(5));
        assert_eq!(ok.body_limit, DEFAULT_BODY_LIMIT);
    }

    #[test]
    fn secrets_are_masked_in_debug_and_answers_and_sealed_at_rest() {
        let c = job("job_name: n\nbasic_auth: {username: u, password: hunter2}");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&c.masked())
            .unwrap()
            .contains("hunter2"));
        let sealer = Sealer::from_hex(&Sealer::new_key_hex()).unwrap();
        let sealed = c.sealed(&sealer);
        assert!(!serde_json::to_string(&sealed).unwrap().contains("hunter2"));
        assert_eq!(sealed.opened(&sealer).unwrap(), c);
    }

    #[test]
    fn a_kept_password_never_follows_a_new_target() {
        let old = job("job_name: n\nstatic_configs: [{targets: ['a:1']}]\nbasic_auth: {username: u, password: p}");
        let mut same = old.masked();
        same.keep_secrets_from(&old).unwrap();
        assert_eq!(same, old);
        let mut moved = old.masked();
        moved.static_configs[0].targets = vec!["evil:1".into()];
        assert_eq!(
            moved.keep_secrets_from(&old).unwrap_err().field,
            "basic_auth.password"
        );
        // Given again, it may go to the new target.
        let mut again = moved.clone();
        again.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: Secret("new".into()),
        });
        again.keep_secrets_from(&old).unwrap();
    }
}
