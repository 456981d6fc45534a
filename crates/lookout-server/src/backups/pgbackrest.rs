//! pgBackRest orchestration for the user's PostgreSQL: take full and differential backups, read
//! `pgbackrest info --output=json` and `pg_stat_archiver` for age, size, retention and WAL
//! archive lag, and run restore drills into a scratch cluster (restore, start on a private
//! socket, wait for recovery, check, count rows, tear down).
//!
//! Lookout never copies a PostgreSQL byte itself: pgBackRest does the backups and restores,
//! PostgreSQL does the recovery; this module runs their command lines and reads their output.
//!
//! Its SQL runs on the user's clusters (the live one and the scratch restore), not on Lookout's
//! own database, so it lives here rather than in `lookout-store`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lookout_outbound::NetPolicy;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use tokio::process::Command;

use lookout_store::backup::catalog::TargetRow;

/// The longest a backup may take before it is abandoned.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// The longest a drill's restore plus recovery may take.
const DRILL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Whether this process runs as root (then commands for a target with `run_as` go through
/// `runuser`, since pgBackRest and PostgreSQL refuse to run as root).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// `program args…` as the target's user.
fn command(t: &TargetRow, program: &str) -> Command {
    let mut cmd = match t.spec.run_as.as_deref() {
        Some(user) if running_as_root() => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--", program]);
            c
        }
        _ => Command::new(program),
    };
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// `pgbackrest [--config=…] --stanza=… <args>`.
fn pgbackrest(t: &TargetRow, args: &[&str]) -> Command {
    let mut cmd = command(t, "pgbackrest");
    if let Some(c) = &t.spec.config {
        cmd.arg(format!("--config={c}"));
    }
    cmd.arg(format!("--stanza={}", t.spec.stanza));
    cmd.args(args);
    cmd
}

/// Runs a command to completion within `limit`; stdout on success, else what went wrong
/// (stderr's last lines).
async fn run(mut cmd: Command, limit: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd.as_std().get_program());
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| format!("{what} did not finish within {} s", limit.as_secs()))?
        .map_err(|e| format!("could not run {what}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = if err.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        err.into_owned()
    };
    let tail: Vec<&str> = err.lines().rev().take(6).collect();
    Err(format!(
        "{what} failed ({}): {}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

/// Takes a backup of `kind` (`full`, `diff` or `incr`); returns pgBackRest's output.
pub async fn backup(t: &TargetRow, kind: &str) -> Result<String, String> {
    run(
        pgbackrest(t, &[&format!("--type={kind}"), "backup"]),
        BACKUP_TIMEOUT,
    )
    .await
}

/// Runs `pgbackrest check` (archiving works and the configuration is consistent).
pub async fn check(t: &TargetRow) -> Result<String, String> {
    run(pgbackrest(t, &["check"]), Duration::from_secs(300)).await
}

/// Creates the stanza (safe to repeat).
pub async fn stanza_create(t: &TargetRow) -> Result<String, String> {
    run(pgbackrest(t, &["stanza-create"]), Duration::from_secs(300)).await
}

/// What `pgbackrest info` says about a stanza, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Info {
    /// pgBackRest's status code (0: ok) and message.
    pub status_code: i64,
    pub status: String,
    /// PostgreSQL major version the stanza is for.
    pub pg_version: Option<String>,
    pub backups: usize,
    /// The newest backup: label, type, when it finished (ms), size and size in the repository.
    pub last_label: Option<String>,
    pub last_type: Option<String>,
    pub last_stop_ms: Option<i64>,
    pub last_size: Option<i64>,
    pub last_repo_size: Option<i64>,
    pub last_full_stop_ms: Option<i64>,
    /// The oldest backup's end: the earliest moment a restore can reach (retention).
    pub oldest_stop_ms: Option<i64>,
    /// The newest WAL segment in the archive.
    pub archive_max: Option<String>,
}

/// Reads `pgbackrest info --output=json` for the stanza `stanza` (fields pgBackRest documents
/// as stable).
pub fn parse_info(json: &str, stanza: &str) -> Result<Info, String> {
    let all: Value = serde_json::from_str(json).map_err(|e| format!("pgbackrest info: {e}"))?;
    let s = all
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == stanza))
        .ok_or_else(|| format!("pgbackrest info lists no stanza {stanza:?}"))?;
    let backups = s["backup"].as_array().cloned().unwrap_or_default();
    let stop = |b: &Value| b["timestamp"]["stop"].as_i64().map(|s| s * 1000);
    let last = backups.last();
    Ok(Info {
        status_code: s["status"]["code"].as_i64().unwrap_or(-1),
        status: s["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        pg_version: s["db"]
            .as_array()
            .and_then(|d| d.last())
            .and_then(|d| d["version"].as_str())
            .map(str::to_string),
        backups: backups.len(),
        last_label: last.and_then(|b| b["label"].as_str()).map(str::to_string),
        last_type: last.and_then(|b| b["type"].as_str()).map(str::to_string),
        last_stop_ms: last.and_then(stop),
        last_size: last.and_then(|b| b["info"]["size"].as_i64()),
        last_repo_size: last.and_then(|b| b["info"]["repository"]["size"].as_i64()),
        last_full_stop_ms: backups
            .iter()
            .rev()
            .find(|b| b["type"] == "full")
            .and_then(stop),
        oldest_stop_ms: backups.first().and_then(stop),
        archive_max: s["archive"]
            .as_array()
            .and_then(|a| a.last())
            .and_then(|a| a["max"].as_str())
            .map(str::to_string),
    })
}

/// Reads the stanza's info.
pub async fn info(t: &TargetRow) -> Result<Info, String> {
    let out = run(
        pgbackrest(t, &["--output=json", "info"]),
        Duration::from_secs(120),
    )
    .await?;
    parse_info(&out, &t.spec.stanza)
}

/// WAL archiving as the server sees it (`pg_stat_archiver`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Archiver {
    /// Seconds since the last segment was archived (`None`: never).
    pub since_last_archived_s: Option<f64>,
    /// Completed segments not archived yet.
    pub lag_segments: Option<i64>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
}

/// A WAL file name's position (timeline ignored): log × 256 + segment, for 16 MB segments.
fn wal_index(name: &str) -> Option<i64> {
    if name.len() < 24 {
        return None;
    }
    let log = i64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = i64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log * 256 + seg)
}

/// Connects to the user's database at `url`, only at an address the outbound policy allows.
async fn connect_user_db(url: &str, policy: &NetPolicy) -> Result<sqlx::PgConnection, String> {
    let opts = lookout_dbhealth::options_within(url, policy)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::ConnectOptions::connect(&opts)
        .await
        .map_err(|e| e.to_string())
}

/// Reads `pg_stat_archiver` through `url`.
pub async fn archiver(url: &str, policy: &NetPolicy) -> Result<Archiver, String> {
    let mut conn = connect_user_db(url, policy)
        .await
        .map_err(|e| format!("connecting for pg_stat_archiver: {e}"))?;
    let row = sqlx::query(
        "SELECT EXTRACT(EPOCH FROM now() - last_archived_time)::float8 AS since,
                failed_count, last_archived_wal, last_failed_wal,
                pg_walfile_name(pg_current_wal_lsn()) AS current_wal
         FROM pg_stat_archiver",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| format!("reading pg_stat_archiver: {e}"))?;
    let _ = conn.close().await;
    let last: Option<String> = row.try_get("last_archived_wal").ok().flatten();
    let current: Option<String> = row.try_get("current_wal").ok().flatten();
    let lag = match (
        last.as_deref().and_then(wal_index),
        current.as_deref().and_then(wal_index),
    ) {
        (Some(l), Some(c)) => Some((c - l - 1).max(0)),
        _ => None,
    };
    Ok(Archiver {
        since_last_archived_s: row.try_get("since").ok().flatten(),
        lag_segments: lag,
        failed_count: row.try_get("failed_count").unwrap_or(0),
        last_failed_wal: row.try_get("last_failed_wal").ok().flatten(),
    })
}

/// What a drill found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    /// `latest`, or the RFC 3339 time restored to.
    pub target: String,
    pub restore_ms: u64,
    pub recovery_ms: u64,
    /// Row counts per database and `schema.table` in the restored cluster.
    pub databases: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
    /// `pg_amcheck` on every database: `ok`, or what it reported.
    pub amcheck: String,
    /// Differences from the live database named in the target's connection string (latest
    /// drills only): tables missing on either side.
    pub missing_tables: Vec<String>,
    /// Problems that fail the drill.
    pub problems: Vec<String>,
}

/// A free TCP port on the loopback interface (the scratch cluster listens on a socket only,
/// but PostgreSQL names its socket after a port).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The directory of PostgreSQL's server programs for a target.
fn pg_bin(t: &TargetRow, version: Option<&str>) -> PathBuf {
    match (&t.spec.pg_bin, version) {
        (Some(dir), _) => PathBuf::from(dir),
        (None, Some(v)) => PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")),
        (None, None) => PathBuf::from("/usr/lib/postgresql/15/bin"),
    }
}

/// Restores the newest backup (or the state at `to`, ms) into a scratch cluster, starts it on a
/// private socket, waits for recovery to finish, checks it and counts every table's rows, then
/// stops it and deletes it.
pub async fn drill(
    t: &TargetRow,
    to: Option<i64>,
    live_url: Option<&str>,
    policy: &NetPolicy,
) -> DrillReport {
    let scratch = match tempfile::Builder::new().prefix("lookout-drill-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return DrillReport {
                problems: vec![format!("scratch directory: {e}")],
                ..DrillReport::default()
            }
        }
    };
    let mut report = DrillReport {
        target: to.map_or("latest".into(), lookout_core::time::iso),
        ..DrillReport::default()
    };
    let bin = match info(t).await {
        Ok(i) => pg_bin(t, i.pg_version.as_deref()),
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let result = tokio::time::timeout(
        DRILL_TIMEOUT,
        drill_in(t, &bin, to, (live_url, policy), scratch.path(), &mut report),
    )
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.problems.push(e),
        Err(_) => report.problems.push(format!(
            "the drill did not finish within {} s",
            DRILL_TIMEOUT.as_secs()
        )),
    }
    // Always tear down: stop whatever is running in the scratch directory, then delete it.
    let pg_ctl = bin.join("pg_ctl");
    let data = scratch.path().join("data");
    if data.join("postmaster.pid").exists() {
        let mut stop = command(t, &pg_ctl.to_string_lossy());
        stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
        let _ = run(stop, Duration::from_secs(60)).await;
    }
    report
}

async fn drill_in(
    t: &TargetRow,
    bin: &Path,
    to: Option<i64>,
    (live_url, policy): (Option<&str>, &NetPolicy),
    scratch: &Path,
    report: &mut DrillReport,
) -> Result<(), String> {
    let data = scratch.join("data");
    std::fs::create_dir(&data).map_err(|e| format!("scratch data directory: {e}"))?;
    if let Some(user) = t.spec.run_as.as_deref().filter(|_| running_as_root()) {
        chown_to(user, scratch)?;
        chown_to(user, &data)?;
    }
    let started = Instant::now();
    let pg1 = format!("--pg1-path={}", data.display());
    let mut args = vec![pg1.as_str(), "--archive-mode=off"];
    let target;
    if let Some(ms) = to {
        target = format!(
            "--target={}",
            chrono::DateTime::from_timestamp_millis(ms)
                .ok_or("restore time out of range")?
                .format("%Y-%m-%d %H:%M:%S%.3f+00")
        );
        args.extend(["--type=time", target.as_str(), "--target-action=promote"]);
    }
    args.push("restore");
    run(pgbackrest(t, &args), DRILL_TIMEOUT).await?;
    report.restore_ms = started.elapsed().as_millis() as u64;
    // A private socket in the scratch directory, no TCP, no archiving, and a trust rule for
    // that socket only, whatever the restored pg_hba.conf says.
    let hba = scratch.join("drill_hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(|e| format!("drill hba: {e}"))?;
    if let Some(user) = t.spec.run_as.as_deref().filter(|_| running_as_root()) {
        chown_to(user, &hba)?;
    }
    let port = free_port().map_err(|e| format!("free port: {e}"))?;
    let opts = format!(
        "-p {port} -c listen_addresses='' -k {} -c archive_mode=off -c hba_file={}",
        scratch.display(),
        hba.display()
    );
    let recovering = Instant::now();
    let mut start = command(t, &bin.join("pg_ctl").to_string_lossy());
    start
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(scratch.join("postgres.log"))
        .args(["-o", &opts, "-w", "-t", "3600", "start"]);
    if let Err(e) = run(start, DRILL_TIMEOUT).await {
        let log = std::fs::read_to_string(scratch.join("postgres.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        return Err(format!("{e}; postgres log: {}", tail.join(" | ")));
    }
    let role = t.spec.run_as.clone().unwrap_or_else(|| "postgres".into());
    let url_for = |db: &str| {
        format!(
            "postgres://{role}@localhost/{db}?host={}&port={port}",
            scratch.display()
        )
    };
    // Recovery ends with promotion; until then the cluster answers read-only.
    let mut conn = connect_retrying(&url_for("postgres")).await?;
    loop {
        let in_recovery: bool = sqlx::query("SELECT pg_is_in_recovery() AS in_recovery")
            .fetch_one(&mut conn)
            .await
            .and_then(|r| r.try_get("in_recovery"))
            .map_err(|e| format!("asking the scratch cluster: {e}"))?;
        if !in_recovery {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report.recovery_ms = recovering.elapsed().as_millis() as u64;
    let dbs: Vec<String> = sqlx::query(
        "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
    )
    .fetch_all(&mut conn)
    .await
    .and_then(|rows| rows.iter().map(|r| r.try_get("datname")).collect())
    .map_err(|e| format!("listing databases: {e}"))?;
    let _ = conn.close().await;
    for db in dbs {
        let mut c = sqlx::PgConnection::connect(&url_for(&db))
            .await
            .map_err(|e| format!("connecting to restored {db}: {e}"))?;
        report.databases.insert(db, count_tables(&mut c).await?);
        let _ = c.close().await;
    }
    // Heap and index consistency, where pg_amcheck is installed.
    let amcheck = bin.join("pg_amcheck");
    report.amcheck = if amcheck.exists() {
        let mut c = command(t, &amcheck.to_string_lossy());
        c.args(["-h", &scratch.to_string_lossy(), "-p", &port.to_string()])
            .args(["-U", &role, "--all", "--install-missing"]);
        match run(c, DRILL_TIMEOUT).await {
            Ok(_) => "ok".into(),
            Err(e) => {
                report.problems.push(format!("pg_amcheck: {e}"));
                e
            }
        }
    } else {
        "skipped: pg_amcheck is not installed".into()
    };
    if let (None, Some(url)) = (to, live_url) {
        compare_with_live(url, policy, report).await?;
    }
    Ok(())
}

async fn connect_retrying(url: &str) -> Result<sqlx::PgConnection, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match sqlx::PgConnection::connect(url).await {
            Ok(c) => return Ok(c),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("connecting to the scratch cluster: {last}"))
}

/// Exact row counts of every user table (`schema.table`).
async fn count_tables(
    c: &mut sqlx::PgConnection,
) -> Result<std::collections::BTreeMap<String, i64>, String> {
    let tables: Vec<(String, String)> = sqlx::query(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%' AND NOT c.relispartition
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await
    .and_then(|rows| {
        rows.iter()
            .map(|r| Ok((r.try_get("schema_name")?, r.try_get("table_name")?)))
            .collect()
    })
    .map_err(|e| format!("listing tables: {e}"))?;
    let mut out = std::collections::BTreeMap::new();
    for (schema, table) in tables {
        let q = format!(
            "SELECT count(*) AS n FROM \"{}\".\"{}\"",
            schema.replace('"', "\"\""),
            table.replace('"', "\"\"")
        );
        let n: i64 = sqlx::query(&q)
            .fetch_one(&mut *c)
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(|e| format!("counting {schema}.{table}: {e}"))?;
        out.insert(format!("{schema}.{table}"), n);
    }
    Ok(out)
}

/// Tables of the live database that the restored copy lacks, and the reverse: a latest
/// restore should have the same schema.
async fn compare_with_live(
    url: &str,
    policy: &NetPolicy,
    report: &mut DrillReport,
) -> Result<(), String> {
    let mut live = connect_user_db(url, policy)
        .await
        .map_err(|e| format!("connecting to the live database: {e}"))?;
    let db: String = sqlx::query("SELECT current_database()::text AS db")
        .fetch_one(&mut live)
        .await
        .and_then(|r| r.try_get("db"))
        .map_err(|e| e.to_string())?;
    let live_tables = count_tables(&mut live).await?;
    let _ = live.close().await;
    let restored = report.databases.get(&db).cloned().unwrap_or_default();
    for t in live_tables.keys().filter(|t| !restored.contains_key(*t)) {
        report
            .missing_tables
            .push(format!("{db}.{t} (missing from the restore)"));
    }
    for t in restored.keys().filter(|t| !live_tables.contains_key(*t)) {
        report
            .missing_tables
            .push(format!("{db}.{t} (no longer live)"));
    }
    if live_tables.keys().any(|t| !restored.contains_key(t)) {
        report.problems.push(format!(
            "the restore of {db} lacks tables the live database has"
        ));
    }
    Ok(())
}

/// Gives `path` to `user` (the scratch cluster must belong to the user PostgreSQL runs as).
fn chown_to(user: &str, path: &Path) -> Result<(), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    let (uid, gid) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| format!("no user {user:?} in /etc/passwd"))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {} to {user}: {e}", path.display()))
}

/// The JSON kept as a target's status: pgBackRest's info and the archiver's view.
pub fn status_json(
    info: &Result<Info, String>,
    archiver: Option<&Result<Archiver, String>>,
) -> Value {
    json!({
        "info": info.as_ref().ok(),
        "info_error": info.as_ref().err(),
        "archiver": archiver.and_then(|a| a.as_ref().ok()),
        "archiver_error": archiver.and_then(|a| a.as_ref().err()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pgbackrest --output=json info` in the shape pgBackRest 2.45 prints after a full and a
    /// differential backup (the e2e test reads the real tool's output).
    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000007","min":"000000010000000000000003"}],
      "backup":[
        {"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
         "info":{"delta":23251817,"repository":{"delta":3004839,"size":3004839},"size":23251817},"label":"20261129-101500F","lsn":{"start":"0/3000028","stop":"0/3000100"},
         "prior":null,"reference":null,"timestamp":{"start":1795947300,"stop":1795947305},"type":"full"},
        {"archive":{"start":"000000010000000000000005","stop":"000000010000000000000005"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,
         "info":{"delta":8192,"repository":{"delta":1024,"size":3004900},"size":23251900},"label":"20261129-101500F_20261129-102000D","lsn":{"start":"0/5000028","stop":"0/5000100"},
         "prior":"20261129-101500F","reference":["20261129-101500F"],"timestamp":{"start":1795947600,"stop":1795947602},"type":"diff"}],
      "cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7441234567890123456,"version":"15"}],"name":"main",
      "repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn info_is_summarised() {
        let i = parse_info(INFO, "main").unwrap();
        assert_eq!(i.status_code, 0);
        assert_eq!(i.backups, 2);
        assert_eq!(i.last_type.as_deref(), Some("diff"));
        assert_eq!(i.last_stop_ms, Some(1_795_947_602_000));
        assert_eq!(i.last_full_stop_ms, Some(1_795_947_305_000));
        assert_eq!(i.oldest_stop_ms, Some(1_795_947_305_000));
        assert_eq!(i.last_repo_size, Some(3_004_900));
        assert_eq!(i.pg_version.as_deref(), Some("15"));
        assert_eq!(i.archive_max.as_deref(), Some("000000010000000000000007"));
        assert!(parse_info(INFO, "other").unwrap_err().contains("no stanza"));
        assert!(parse_info("not json", "main").is_err());
    }

    #[test]
    fn wal_names_order_across_log_files() {
        assert_eq!(wal_index("0000000100000000000000FF"), Some(255));
        assert_eq!(wal_index("000000010000000100000000"), Some(256));
        assert_eq!(wal_index("short"), None);
    }
}
