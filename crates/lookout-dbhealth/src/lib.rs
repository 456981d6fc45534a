//! Lookout database health for PostgreSQL 13+: slow queries from `pg_stat_statements`, index
//! advice (unused, duplicate, invalid, missing), operational checks (long-running queries,
//! connections, vacuum, wraparound, sequences, cache, bloat, replication) and EXPLAIN-based index
//! verification. [`check`] runs everything over one connection and returns a [`Report`]; the CLI
//! (`lookout db check`) prints it and the server stores it, through [`check_within`], which
//! reaches only addresses the outbound policy allows.
//!
//! Every catalog read takes at most 5,000 rows (`LIMIT 5000`), the most significant first
//! (largest, oldest, most scanned, longest running): a database with hundreds of thousands of
//! tables or indexes cannot make one check hold all of them in memory.

pub mod finding;
pub mod indexes;
pub mod ops;
pub mod stats;
pub mod verify;

use lookout_outbound::NetPolicy;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

pub use finding::{Finding, Severity};
pub use stats::SlowQuery;
pub use verify::{Rule, Verification};

/// Thresholds (PgHero's defaults where it has one).
#[derive(Debug, Clone)]
pub struct Options {
    /// A statement is slow at this mean time…
    pub slow_ms: f64,
    /// …once it ran this often.
    pub slow_calls: i64,
    /// Statements kept, by total time.
    pub top_queries: i64,
    /// A query or an idle transaction this old is reported.
    pub long_running_s: f64,
    /// An index scanned at most this often since the statistics reset is unused.
    pub unused_max_scans: i64,
    /// Tables smaller than this are never missing an index…
    pub missing_min_rows: i64,
    /// …nor tables sequentially scanned fewer times than this.
    pub missing_min_scans: i64,
    /// A replica this far behind is reported.
    pub replication_lag_s: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            slow_ms: 20.0,
            slow_calls: 100,
            top_queries: 50,
            long_running_s: 60.0,
            unused_max_scans: 50,
            missing_min_rows: 10_000,
            missing_min_scans: 50,
            replication_lag_s: 60.0,
        }
    }
}

/// Everything one check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `user@host:port/database`, without the password.
    pub database: String,
    pub server_version: String,
    /// `pg_database_size` of the checked database, bytes (reports chart its growth).
    pub size_bytes: i64,
    pub findings: Vec<Finding>,
    pub verifications: Vec<Verification>,
    /// Statements by total time (empty without `pg_stat_statements`).
    pub slow_queries: Vec<SlowQuery>,
}

impl Report {
    /// Whether every verification rule held.
    pub fn verified(&self) -> bool {
        self.verifications.iter().all(|v| v.passed)
    }
}

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Url(String),
    #[error("connecting to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("{what}: {message}")]
    Query { what: &'static str, message: String },
    #[error("PostgreSQL {0} is not supported (13 or newer)")]
    Version(String),
}

/// The database a URL names, for display: the password never appears.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let user = if u.username().is_empty() {
                String::new()
            } else {
                format!("{}@", u.username())
            };
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{user}{}{port}{}",
                u.host_str().unwrap_or("localhost"),
                u.path()
            )
        }
        Err(_) => "(unparsable connection string)".into(),
    }
}

/// A database error without the statement or connection details it may echo.
pub(crate) fn sql_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    }
}

fn query_error(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| Error::Query {
        what,
        message: sql_error(&e),
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions, Error> {
    url.parse().map_err(|_| {
        Error::Url(format!(
            "{}: not a postgres:// connection string",
            redact(url)
        ))
    })
}

/// Connection options for `url` that reach only an address `policy` allows: the host is
/// resolved once, judged, and the connection goes to the judged address, so a second lookup
/// cannot answer differently (DNS rebinding). With `sslmode=verify-full` the name is kept,
/// because the certificate is checked against it (and a rebound address could not present
/// it). A Unix socket reaches this host, so it is refused when the policy denies 127.0.0.1.
pub async fn options_within(url: &str, policy: &NetPolicy) -> Result<PgConnectOptions, Error> {
    let opts = parse_url(url)?;
    let refused = |message: String| Error::Connect {
        target: redact(url),
        message,
    };
    if opts.get_socket().is_some() || opts.get_host().starts_with('/') {
        let local = std::net::IpAddr::from([127, 0, 0, 1]);
        return match policy.refuses(local) {
            Some(why) => Err(refused(format!("a Unix socket reaches this host: {why}"))),
            None => Ok(opts),
        };
    }
    let addrs = lookout_outbound::resolve(policy, opts.get_host(), opts.get_port())
        .await
        .map_err(refused)?;
    let is_name = opts.get_host().parse::<std::net::IpAddr>().is_err();
    match addrs.first() {
        Some(_) if is_name && matches!(opts.get_ssl_mode(), PgSslMode::VerifyFull) => Ok(opts),
        Some(a) => {
            let ip = a.ip().to_string();
            Ok(opts.host(&ip))
        }
        None => Err(refused("no address".into())),
    }
}

/// Why a target at `url` may not be saved: its host resolves now only to addresses `policy`
/// refuses (or it is a Unix socket and this host is denied). Checks judge the host again.
pub async fn refusal_now(url: &str, policy: &NetPolicy) -> Option<String> {
    let opts = parse_url(url).ok()?;
    if opts.get_socket().is_some() || opts.get_host().starts_with('/') {
        return policy
            .refuses(std::net::IpAddr::from([127, 0, 0, 1]))
            .map(|why| format!("a Unix socket reaches this host: {why}"));
    }
    lookout_outbound::refusal_now(policy, opts.get_host(), opts.get_port()).await
}

/// Connects (with a 10 s timeout) and sets a statement timeout for the checks.
pub async fn connect(url: &str) -> Result<PgConnection, Error> {
    connect_with(url, parse_url(url)?).await
}

async fn connect_with(url: &str, opts: PgConnectOptions) -> Result<PgConnection, Error> {
    let target = redact(url);
    let opts = opts
        .application_name("lookout db check")
        .disable_statement_logging();
    let mut conn = tokio::time::timeout(std::time::Duration::from_secs(10), opts.connect())
        .await
        .map_err(|_| Error::Connect {
            target: target.clone(),
            message: "timed out after 10 s".into(),
        })?
        .map_err(|e| Error::Connect {
            target: target.clone(),
            message: sql_error(&e),
        })?;
    sqlx::query("SET statement_timeout = '60s'")
        .execute(&mut conn)
        .await
        .map_err(query_error("setting the statement timeout"))?;
    Ok(conn)
}

/// Runs every check, then the verification rules (for the operator's own command line).
pub async fn check(url: &str, opt: &Options, rules: &[Rule]) -> Result<Report, Error> {
    check_on(url, connect(url).await?, opt, rules).await
}

/// [`check`] for a user-supplied target: connects only to an address `policy` allows.
pub async fn check_within(
    url: &str,
    policy: &NetPolicy,
    opt: &Options,
    rules: &[Rule],
) -> Result<Report, Error> {
    let conn = connect_with(url, options_within(url, policy).await?).await?;
    check_on(url, conn, opt, rules).await
}

async fn check_on(
    url: &str,
    mut conn: PgConnection,
    opt: &Options,
    rules: &[Rule],
) -> Result<Report, Error> {
    let row = sqlx::query(
        "SELECT current_setting('server_version') AS version,
                current_setting('server_version_num')::int4 AS version_num,
                pg_database_size(current_database())::int8 AS size_bytes",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(query_error("reading the server version"))?;
    let version: String = row.try_get("version").unwrap_or_default();
    let num: i32 = row.try_get("version_num").unwrap_or_default();
    let size_bytes: i64 = row.try_get("size_bytes").unwrap_or_default();
    if num < 130_000 {
        return Err(Error::Version(version));
    }
    let (slow, mut findings) = stats::slow_queries(&mut conn, opt)
        .await
        .map_err(query_error("slow queries"))?;
    findings.extend(
        indexes::invalid(&mut conn)
            .await
            .map_err(query_error("invalid indexes"))?,
    );
    findings.extend(
        indexes::unused(&mut conn, opt)
            .await
            .map_err(query_error("unused indexes"))?,
    );
    findings.extend(
        indexes::duplicates(&mut conn)
            .await
            .map_err(query_error("duplicate indexes"))?,
    );
    findings.extend(
        indexes::missing(&mut conn, opt, &slow)
            .await
            .map_err(query_error("missing indexes"))?,
    );
    findings.extend(
        ops::activity(&mut conn, opt)
            .await
            .map_err(query_error("activity"))?,
    );
    findings.extend(
        ops::connections(&mut conn)
            .await
            .map_err(query_error("connections"))?,
    );
    findings.extend(
        ops::vacuum(&mut conn)
            .await
            .map_err(query_error("vacuum"))?,
    );
    findings.extend(
        ops::wraparound(&mut conn)
            .await
            .map_err(query_error("wraparound"))?,
    );
    findings.extend(
        ops::sequences(&mut conn)
            .await
            .map_err(query_error("sequences"))?,
    );
    findings.extend(
        ops::cache_hits(&mut conn)
            .await
            .map_err(query_error("cache hit ratio"))?,
    );
    findings.extend(ops::bloat(&mut conn).await.map_err(query_error("bloat"))?);
    findings.extend(
        ops::replication(&mut conn, opt)
            .await
            .map_err(query_error("replication"))?,
    );
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.kind.cmp(b.kind)));
    let verifications = verify::run(&mut conn, rules).await;
    let _ = conn.close().await;
    Ok(Report {
        database: redact(url),
        server_version: version,
        size_bytes,
        findings,
        verifications,
        slow_queries: slow,
    })
}

/// The report as text: findings by severity, the slowest statements, then the verifications.
pub fn render(r: &Report) -> String {
    let mut s = format!(
        "Database {} (PostgreSQL {})\n\n",
        r.database, r.server_version
    );
    if r.findings.is_empty() {
        s += "No findings.\n";
    } else {
        s += &format!("FINDINGS ({})\n", r.findings.len());
        for f in &r.findings {
            s += &format!(
                "  {:<8} {:<20} {}\n           {}\n",
                f.severity.as_str(),
                f.kind,
                f.object,
                f.detail
            );
        }
    }
    if !r.slow_queries.is_empty() {
        s += "\nTOP STATEMENTS BY TOTAL TIME\n";
        s += &format!(
            "  {:>10} {:>10} {:>9}  query\n",
            "total ms", "mean ms", "calls"
        );
        for q in r.slow_queries.iter().take(10) {
            s += &format!(
                "  {:>10.0} {:>10.2} {:>9}  {}\n",
                q.total_ms,
                q.mean_ms,
                q.calls,
                stats::one_line(&q.query, 80)
            );
        }
    }
    if !r.verifications.is_empty() {
        let failed = r.verifications.iter().filter(|v| !v.passed).count();
        s += &format!(
            "\nVERIFICATIONS ({} passed, {failed} failed)\n",
            r.verifications.len() - failed
        );
        for v in &r.verifications {
            s += &format!(
                "  {}  {}\n        {}\n",
                if v.passed { "PASS" } else { "FAIL" },
                v.name,
                v.detail
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example.com:6432/shop?sslmode=require"),
            "app@db.example.com:6432/shop"
        );
        assert_eq!(redact("nonsense"), "(unparsable connection string)");
    }
}
