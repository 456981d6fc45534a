//! What a monitor is: the JSON (API) and YAML (config file) shape, its defaults, and validation.
//!
//! One flat document serves every type, as Uptime Kuma's and Gatus's users know it: fields a type
//! does not use are rejected rather than silently ignored, so `host` on an HTTP monitor is a 400,
//! not a surprise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::conditions;
use crate::schedule::CronSchedule;

/// The kinds of monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An HTTP(S) request.
    Http,
    /// A TCP connect.
    Tcp,
    /// A DNS query to a chosen resolver.
    Dns,
    /// An ICMP echo.
    Icmp,
    /// A TLS handshake, judging the certificate.
    Tls,
    /// A URL the watched job calls; silence is the failure.
    Heartbeat,
    /// A scheduled job reporting check-ins (Sentry crons).
    Cron,
}

impl Kind {
    /// The name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Dns => "dns",
            Kind::Icmp => "icmp",
            Kind::Tls => "tls",
            Kind::Heartbeat => "heartbeat",
            Kind::Cron => "cron",
        }
    }

    /// Whether the target reports to us (no outbound check).
    pub fn is_passive(self) -> bool {
        matches!(self, Kind::Heartbeat | Kind::Cron)
    }
}

/// Basic authentication for HTTP monitors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password (stored encrypted, never returned by the API).
    pub password: String,
}

fn default_interval() -> u32 {
    60
}
fn default_timeout() -> u32 {
    10
}
fn yes() -> bool {
    true
}

/// A monitor as users declare it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// Display name; unique per organization for monitors declared in the config file.
    pub name: String,
    /// What kind of check.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Target URL (`http`, `tls`; `tls` also takes `host`+`port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Target host (`tcp`, `icmp`, `tls`; the name queried for `dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Target port (`tcp`, `tls`; for `dns`, the resolver's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Seconds between checks (≥ 1). For heartbeats: how often a ping is expected.
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Seconds before a check is abandoned as failed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Consecutive failures before the monitor is down (default 3; cron 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// Consecutive successes before a down monitor is up (default 2; cron 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<u32>,
    /// Conditions that must all hold; defaults depend on the type (see [`MonitorSpec::conditions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// A paused monitor is not checked.
    #[serde(default)]
    pub paused: bool,
    /// Heartbeat: slack after the interval; cron: the check-in margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
    /// A monitor this one depends on: while it is down, this one does not alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i64>,

    /// HTTP method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// HTTP request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// HTTP request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Follow HTTP redirects (up to 10).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Verify TLS certificates (`http`, `tls`).
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// HTTP bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,

    /// DNS record type (default `A`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    /// DNS resolver `ip[:port]` (default: the first nameserver of `/etc/resolv.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
    /// DNS answers that must all be present.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_answers: Vec<String>,
    /// DNS response code expected (default `NOERROR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_rcode: Option<String>,

    /// Days of certificate validity left below which `monitor.certificate_expiring` is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning_days: Option<u32>,

    /// Cron: the monitor slug check-ins name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Cron: the project whose DSN key check-ins use (default: the first project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Cron: a crontab schedule (`0 * * * *`); without it the schedule is every `interval_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Cron: the schedule's IANA timezone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Cron: seconds an `in_progress` run may take before it is a `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_seconds: Option<u32>,

    /// Where the monitor is checked from: [`LOCAL`] (the replicas' own checker) and location
    /// names whose `lookout probe` agents check it. Empty means `["local"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<String>,
    /// How many locations must fail before the monitor is down (default: a majority).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<Confirm>,
}

/// The location name of the replicas' own checker.
pub const LOCAL: &str = "local";

/// Most locations one monitor may name.
pub const MAX_LOCATIONS: usize = 32;

/// The confirmation rule of a monitor checked from several locations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// Locations (each by its own failure threshold) that must fail for the monitor to be down.
    pub min_failing_locations: u32,
}

/// Checks a location name: 1 to 50 of a-z, 0-9 and '-', starting with a letter or digit.
pub fn validate_location_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 50
        || name.starts_with('-')
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "{name:?} must be 1 to 50 characters of a-z, 0-9 and '-'"
        ));
    }
    Ok(())
}

/// A spec that cannot be used, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// The JSON field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field,
        reason: reason.into(),
    }
}

/// DNS record types a monitor may query.
pub const RECORD_TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA",
];

impl MonitorSpec {
    /// The locations checking this monitor (`["local"]` when none are named).
    pub fn location_names(&self) -> Vec<&str> {
        if self.locations.is_empty() {
            vec![LOCAL]
        } else {
            self.locations.iter().map(String::as_str).collect()
        }
    }

    /// How many of `active` locations must fail for the monitor to be down: the rule's k as
    /// set (with fewer than k active, the monitor cannot be down: one vantage point left must
    /// not page), or without a rule a majority of the active ones; never less than one.
    pub fn failing_needed(&self, active: usize) -> usize {
        match self.confirm {
            Some(c) => (c.min_failing_locations as usize).max(1),
            None => (active / 2 + 1).clamp(1, active.max(1)),
        }
    }

    /// The shape of `locations` and `confirm` (whether each named location exists is the
    /// caller's question).
    fn validate_locations(&mut self) -> Result<(), SpecError> {
        // A passive monitor's view lists `["local"]` (where its pings land): sent back as is
        // (GET then PUT), that means no locations, not a refusal.
        if self.kind.is_passive() && self.locations.iter().all(|n| n == LOCAL) {
            self.locations.clear();
        }
        if !self.locations.is_empty() && self.kind.is_passive() {
            return Err(err(
                "locations",
                format!("does not apply to {} monitors", self.kind.as_str()),
            ));
        }
        if self.locations.len() > MAX_LOCATIONS {
            return Err(err("locations", format!("at most {MAX_LOCATIONS}")));
        }
        for (i, name) in self.locations.iter().enumerate() {
            validate_location_name(name).map_err(|e| err("locations", e))?;
            if self.locations.iter().take(i).any(|n| n == name) {
                return Err(err("locations", format!("{name:?} is named twice")));
            }
        }
        if let Some(c) = self.confirm {
            let n = self.location_names().len();
            if c.min_failing_locations == 0 || c.min_failing_locations as usize > n {
                return Err(err(
                    "confirm",
                    format!(
                        "min_failing_locations must be between 1 and the number of locations ({n})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the spec and fills the type's defaults; the error names the field.
    pub fn validate(&mut self) -> Result<(), SpecError> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || self.name.chars().count() > 200 {
            return Err(err("name", "must be 1 to 200 characters"));
        }
        if self.interval_seconds == 0 || self.interval_seconds > 7 * 86_400 {
            return Err(err("interval_seconds", "must be between 1 and 604800"));
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 300 {
            return Err(err("timeout_seconds", "must be between 1 and 300"));
        }
        for (field, v) in [
            ("failure_threshold", self.failure_threshold),
            ("success_threshold", self.success_threshold),
        ] {
            if matches!(v, Some(n) if n == 0 || n > 100) {
                return Err(err(field, "must be between 1 and 100"));
            }
        }
        for c in &self.conditions {
            conditions::parse(c).map_err(|e| err("conditions", e.to_string()))?;
        }
        self.validate_locations()?;
        let k = self.kind;
        let uses = |f: &'static str, set: bool, allowed: &[Kind]| {
            if set && !allowed.contains(&k) {
                Err(err(f, format!("does not apply to {} monitors", k.as_str())))
            } else {
                Ok(())
            }
        };
        use Kind::*;
        uses("url", self.url.is_some(), &[Http, Tls])?;
        uses("host", self.host.is_some(), &[Tcp, Icmp, Dns, Tls])?;
        uses("port", self.port.is_some(), &[Tcp, Tls, Dns])?;
        uses(
            "grace_seconds",
            self.grace_seconds.is_some(),
            &[Heartbeat, Cron],
        )?;
        uses("method", self.method.is_some(), &[Http])?;
        uses("headers", !self.headers.is_empty(), &[Http])?;
        uses("body", self.body.is_some(), &[Http])?;
        uses("basic_auth", self.basic_auth.is_some(), &[Http])?;
        uses("bearer_token", self.bearer_token.is_some(), &[Http])?;
        uses("record_type", self.record_type.is_some(), &[Dns])?;
        uses("resolver", self.resolver.is_some(), &[Dns])?;
        uses(
            "expected_answers",
            !self.expected_answers.is_empty(),
            &[Dns],
        )?;
        uses("expected_rcode", self.expected_rcode.is_some(), &[Dns])?;
        uses(
            "expiry_warning_days",
            self.expiry_warning_days.is_some(),
            &[Http, Tls],
        )?;
        uses("slug", self.slug.is_some(), &[Cron])?;
        uses("project_id", self.project_id.is_some(), &[Cron])?;
        uses("schedule", self.schedule.is_some(), &[Cron])?;
        uses("timezone", self.timezone.is_some(), &[Cron])?;
        uses(
            "max_runtime_seconds",
            self.max_runtime_seconds.is_some(),
            &[Cron],
        )?;
        match k {
            Http => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| err("url", "is required"))?;
                let parsed = reqwest::Url::parse(url).map_err(|e| err("url", e.to_string()))?;
                if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                    return Err(err("url", "must be an http:// or https:// URL with a host"));
                }
                if let Some(m) = &self.method {
                    let m = m.to_ascii_uppercase();
                    if reqwest::Method::from_bytes(m.as_bytes()).is_err() {
                        return Err(err("method", "is not an HTTP method"));
                    }
                    self.method = Some(m);
                }
                for (name, value) in &self.headers {
                    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                        || reqwest::header::HeaderValue::from_str(value).is_err()
                    {
                        return Err(err("headers", format!("{name:?} is not a valid header")));
                    }
                }
            }
            Tcp => {
                need_host(&self.host)?;
                self.port.ok_or_else(|| err("port", "is required"))?;
            }
            Icmp => need_host(&self.host)?,
            Dns => {
                need_host(&self.host)?;
                let t = self
                    .record_type
                    .get_or_insert_with(|| "A".into())
                    .to_ascii_uppercase();
                if !RECORD_TYPES.contains(&t.as_str()) {
                    return Err(err(
                        "record_type",
                        format!("must be one of {}", RECORD_TYPES.join(", ")),
                    ));
                }
                self.record_type = Some(t);
                if let Some(r) = &self.resolver {
                    crate::check::dns::resolver_addr(r).map_err(|e| err("resolver", e))?;
                }
                if let Some(rc) = &mut self.expected_rcode {
                    *rc = rc.to_ascii_uppercase();
                }
            }
            Tls => match (&self.url, &self.host) {
                (Some(url), None) => {
                    let u = reqwest::Url::parse(url).map_err(|e| err("url", e.to_string()))?;
                    if u.host_str().is_none() {
                        return Err(err("url", "needs a host"));
                    }
                }
                (None, Some(_)) => {}
                _ => {
                    return Err(err(
                        "url",
                        "give either url or host (with port, default 443)",
                    ))
                }
            },
            Heartbeat => {}
            Cron => {
                let slug = self
                    .slug
                    .get_or_insert_with(|| lookout_core::slug::slugify(&self.name));
                if slug.is_empty()
                    || slug.len() > 50
                    || !slug
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(err("slug", "must be 1 to 50 letters, digits, - or _"));
                }
                self.cron_schedule().map_err(|e| err("schedule", e))?;
            }
        }
        Ok(())
    }

    /// Consecutive failures before down.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
            .unwrap_or(if self.kind == Kind::Cron { 1 } else { 3 })
    }

    /// Consecutive successes before up again.
    pub fn success_threshold(&self) -> u32 {
        self.success_threshold
            .unwrap_or(if self.kind == Kind::Cron { 1 } else { 2 })
    }

    /// The conditions to judge by: the user's, or the type's defaults.
    pub fn conditions(&self) -> Vec<String> {
        if !self.conditions.is_empty() {
            return self.conditions.clone();
        }
        match self.kind {
            Kind::Http => vec!["[STATUS] < 400".into()],
            Kind::Dns => vec![format!(
                "[DNS_RCODE] == {}",
                self.expected_rcode.as_deref().unwrap_or("NOERROR")
            )],
            Kind::Tcp | Kind::Icmp | Kind::Tls => vec!["[CONNECTED] == true".into()],
            Kind::Heartbeat | Kind::Cron => Vec::new(),
        }
    }

    /// The heartbeat grace or cron margin, seconds (default 60).
    pub fn grace_seconds(&self) -> u32 {
        self.grace_seconds.unwrap_or(60)
    }

    /// Days left below which the certificate counts as expiring (default 14).
    pub fn expiry_warning_days(&self) -> u32 {
        self.expiry_warning_days.unwrap_or(14)
    }

    /// The cron schedule (crontab in its timezone, or every `interval_seconds`).
    pub fn cron_schedule(&self) -> Result<CronSchedule, String> {
        CronSchedule::new(
            self.schedule.as_deref(),
            self.interval_seconds,
            self.timezone.as_deref(),
        )
    }

    /// What the monitor checks, as people and notifications may see it: the URL with any
    /// password in it redacted, else the host, else the check-in slug.
    pub fn target(&self) -> Option<String> {
        match &self.url {
            Some(u) => Some(redact_url_password(u)),
            None => self.host.clone().or_else(|| self.slug.clone()),
        }
    }

    /// The same spec with secrets replaced by `"********"`, for API answers.
    pub fn redacted(&self) -> MonitorSpec {
        let mut s = self.clone();
        if let Some(u) = &mut s.url {
            *u = redact_url_password(u);
        }
        if let Some(b) = &mut s.basic_auth {
            b.password = REDACTED.into();
        }
        if s.bearer_token.is_some() {
            s.bearer_token = Some(REDACTED.into());
        }
        for (k, v) in s.headers.iter_mut() {
            if is_secret_header(k) {
                *v = REDACTED.into();
            }
        }
        s
    }

    /// Applies `f` to every credential (basic-auth password, bearer token, secret headers): the
    /// server seals them before storing and opens them before checking.
    pub fn map_secrets<E>(
        &mut self,
        mut f: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<(), E> {
        if let Some(u) = &mut self.url {
            if let Some((mut parsed, password)) = url_password(u) {
                let mapped = f(&password)?;
                if parsed.set_password(Some(&mapped)).is_ok() {
                    *u = parsed.to_string();
                }
            }
        }
        if let Some(b) = &mut self.basic_auth {
            b.password = f(&b.password)?;
        }
        if let Some(t) = &mut self.bearer_token {
            *t = f(t)?;
        }
        for (k, v) in self.headers.iter_mut() {
            if is_secret_header(k) {
                *v = f(v)?;
            }
        }
        Ok(())
    }

    /// Fills secrets the user sent back redacted from `old` (so an edit of the returned JSON
    /// keeps the stored password).
    ///
    /// Stored secrets follow only an unchanged destination (scheme, host and port of the URL):
    /// otherwise a member, who is never shown them, could point the URL at their own server
    /// and receive them on the next check. Sending `********` for a moved monitor is refused.
    pub fn keep_secrets_from(&mut self, old: &MonitorSpec) -> Result<(), SpecError> {
        let same_place = match (self.url.as_deref(), old.url.as_deref()) {
            (None, None) => true,
            (Some(new), Some(old)) => match (url::Url::parse(new), url::Url::parse(old)) {
                (Ok(n), Ok(o)) => {
                    n.scheme() == o.scheme()
                        && n.host_str() == o.host_str()
                        && n.port_or_known_default() == o.port_or_known_default()
                }
                _ => false,
            },
            _ => false,
        };
        let moved = || {
            err(
                "url",
                "points somewhere else now: send its credentials again instead of ********",
            )
        };
        if let (Some(u), Some(o)) = (&mut self.url, &old.url) {
            if let (Some((mut new, pw)), Some((old, old_pw))) = (url_password(u), url_password(o)) {
                if pw == REDACTED {
                    if !same_place || new.username() != old.username() {
                        return Err(moved());
                    }
                    if new.set_password(Some(&old_pw)).is_ok() {
                        *u = new.to_string();
                    }
                }
            }
        }
        if let (Some(b), Some(o)) = (&mut self.basic_auth, &old.basic_auth) {
            if b.password == REDACTED {
                if !same_place {
                    return Err(moved());
                }
                b.password = o.password.clone();
            }
        }
        if self.bearer_token.as_deref() == Some(REDACTED) {
            if !same_place {
                return Err(moved());
            }
            self.bearer_token = old.bearer_token.clone();
        }
        for (k, v) in self.headers.iter_mut() {
            if v == REDACTED {
                if let Some(o) = old.headers.get(k) {
                    if !same_place {
                        return Err(moved());
                    }
                    *v = o.clone();
                }
            }
        }
        Ok(())
    }
}

/// What redacted secrets read as.
pub const REDACTED: &str = "********";

/// A URL and the password in its userinfo (percent-decoded), if it has one.
fn url_password(u: &str) -> Option<(url::Url, String)> {
    let parsed = url::Url::parse(u).ok()?;
    let password = percent_encoding::percent_decode_str(parsed.password()?)
        .decode_utf8_lossy()
        .into_owned();
    Some((parsed, password))
}

/// `u` with the password in its userinfo replaced by `********` (unchanged without one).
pub fn redact_url_password(u: &str) -> String {
    match url_password(u) {
        Some((mut parsed, _)) => match parsed.set_password(Some(REDACTED)) {
            Ok(()) => parsed.to_string(),
            // A URL that cannot carry a password never had one; never echo it, to be safe.
            Err(()) => String::new(),
        },
        None => u.to_string(),
    }
}

/// Headers whose values are credentials.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "cookie"
        || n.contains("token")
        || n.contains("api-key")
        || n.contains("secret")
}

fn need_host(h: &Option<String>) -> Result<(), SpecError> {
    match h.as_deref() {
        Some(h) if !h.trim().is_empty() && h.len() <= 253 && !h.contains('/') => Ok(()),
        _ => Err(err("host", "is required (a host name or IP address)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<MonitorSpec, String> {
        let mut s: MonitorSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }

    #[test]
    fn defaults_follow_the_issue() {
        let s = spec(r#"{"name":"api","type":"http","url":"http://127.0.0.1:1/health"}"#).unwrap();
        assert_eq!(s.interval_seconds, 60);
        assert_eq!(s.failure_threshold(), 3);
        assert_eq!(s.success_threshold(), 2);
        assert_eq!(s.conditions(), vec!["[STATUS] < 400"]);
        assert!(s.follow_redirects && s.verify_tls);
    }

    #[test]
    fn fields_of_another_type_and_bad_values_are_named() {
        let e = spec(r#"{"name":"x","type":"http","url":"http://a","port":80}"#).unwrap_err();
        assert!(e.starts_with("port:"), "{e}");
        let e = spec(r#"{"name":"x","type":"tcp","host":"a"}"#).unwrap_err();
        assert!(e.starts_with("port:"), "{e}");
        let e = spec(r#"{"name":"x","type":"http","url":"ftp://a"}"#).unwrap_err();
        assert!(e.starts_with("url:"), "{e}");
        let e = spec(r#"{"name":"x","type":"http","url":"http://a","conditions":["[STATUS] =="]}"#)
            .unwrap_err();
        assert!(e.starts_with("conditions:"), "{e}");
        let e = spec(r#"{"name":"x","type":"dns","host":"a","record_type":"BOGUS"}"#).unwrap_err();
        assert!(e.starts_with("record_type:"), "{e}");
        let e = spec(r#"{"name":"x","type":"cron","schedule":"61 * * * *"}"#).unwrap_err();
        assert!(e.starts_with("schedule:"), "{e}");
        assert!(spec(r#"{"name":"x","type":"http","url":"http://a","colour":1}"#).is_err());
    }

    #[test]
    fn cron_monitors_get_a_slug_and_sentry_like_thresholds() {
        let s = spec(r#"{"name":"Nightly Backup!","type":"cron","schedule":"0 3 * * *","timezone":"Europe/Paris"}"#)
            .unwrap();
        assert_eq!(s.slug.as_deref(), Some("nightly-backup"));
        assert_eq!(s.failure_threshold(), 1);
    }

    #[test]
    fn secrets_are_redacted_and_kept_on_edit() {
        let s = spec(r#"{"name":"x","type":"http","url":"http://a","bearer_token":"t0p","headers":{"Authorization":"Basic eA==","Accept":"*/*"},"basic_auth":{"username":"u","password":"p"}}"#)
            .unwrap();
        let r = s.redacted();
        assert_eq!(r.bearer_token.as_deref(), Some(REDACTED));
        assert_eq!(r.headers["Authorization"], REDACTED);
        assert_eq!(r.headers["Accept"], "*/*");
        assert_eq!(r.basic_auth.as_ref().unwrap().password, REDACTED);
        let mut edited = r.clone();
        edited.keep_secrets_from(&s).unwrap();
        assert_eq!(edited, s);
        // Pointed elsewhere (another host, or http instead of https), the stored secrets stay.
        for elsewhere in ["http://evil.example", "https://a"] {
            let mut moved = r.clone();
            moved.url = Some(elsewhere.into());
            let e = moved.keep_secrets_from(&s).unwrap_err();
            assert!(e.to_string().starts_with("url:"), "{e}");
        }
    }

    #[test]
    fn url_passwords_are_sealed_redacted_and_kept_only_for_the_same_host() {
        let s = spec(r#"{"name":"x","type":"http","url":"https://ops:p%40ss@example.com/health"}"#)
            .unwrap();
        let r = s.redacted();
        assert_eq!(
            r.url.as_deref(),
            Some("https://ops:********@example.com/health")
        );
        assert_eq!(s.target().as_deref(), r.url.as_deref());
        // Sealing maps the decoded password and opening restores the exact URL.
        let mut sealed = s.clone();
        sealed
            .map_secrets(|v| Ok::<_, ()>(format!("sealed:{}", v.len())))
            .unwrap();
        assert!(!sealed.url.as_deref().unwrap().contains("p%40ss"));
        let mut back = s.clone();
        back.map_secrets(|v| Ok::<_, ()>(v.to_string())).unwrap();
        assert_eq!(back, s);
        let mut edited = r.clone();
        edited.keep_secrets_from(&s).unwrap();
        assert_eq!(edited, s);
        // The redacted URL moved to another host, or to plain http, does not take the password.
        for elsewhere in [
            "https://ops:********@evil.example/health",
            "http://ops:********@example.com:443/health",
        ] {
            let mut moved = r.clone();
            moved.url = Some(elsewhere.into());
            assert!(moved.keep_secrets_from(&s).is_err(), "{elsewhere}");
        }
        // URLs without a password are left alone.
        let plain = spec(r#"{"name":"x","type":"http","url":"http://a/b?c=d"}"#).unwrap();
        assert_eq!(plain.redacted().url, plain.url);
    }
}
