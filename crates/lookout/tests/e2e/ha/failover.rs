//! Failing over to a promoted standby, the procedure docs/operations.md gives: two replicas reach
//! PostgreSQL through PgBouncer; the primary streams synchronously to a standby; the primary
//! crashes (`pg_ctl stop -m immediate`), the standby is promoted and PgBouncer is repointed at it
//! (a config change and `SIGHUP`). Under Sentry ingest and uptime checks throughout: every event
//! acknowledged before, during and after the failover is on the new primary, the replicas turn
//! ready again on their own, and monitors go on being checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::errors::{envelope, envelope_url, exception_event, key_of, new_id};

/// The newest installed PostgreSQL's binaries.
fn pg_bin() -> PathBuf {
    let mut v: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries (apt install postgresql)")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    PathBuf::from(format!("/usr/lib/postgresql/{}/bin", v.last().unwrap()))
}

/// Runs a PostgreSQL program as `postgres` (it refuses root); panics with its output on failure.
fn as_postgres(program: &Path, args: &[&str]) -> String {
    let o = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        o.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One PostgreSQL server (primary or standby) in a directory of the test's.
struct Node {
    data: PathBuf,
    port: u16,
}

impl Node {
    /// Starts the server on a free port. A port found free can be taken by another test's
    /// server before PostgreSQL binds it (the e2e tests run side by side), so a start that
    /// fails on an address in use tries again on another port; any other failure panics with
    /// the server's log, which is where PostgreSQL says why.
    fn start(&mut self, dir: &Path) {
        for attempt in 1..=5 {
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                dir.display()
            );
            let log = dir.join(format!("pg-{}.log", self.port));
            let o = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin().join("pg_ctl"))
                .args(["-D", self.data.to_str().unwrap(), "-o", &opts])
                .args(["-l", log.to_str().unwrap(), "-w", "-t", "120", "start"])
                .output()
                .expect("runuser");
            if o.status.success() {
                return;
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if attempt < 5 && text.contains("Address already in use") {
                self.port = free_port();
                continue;
            }
            panic!(
                "pg_ctl start on port {}: {}{}\n--- {} ---\n{text}",
                self.port,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
                log.display()
            );
        }
    }

    fn ctl(&self, args: &[&str]) {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres(&pg_bin().join("pg_ctl"), &all);
    }

    fn sql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        as_postgres(
            &pg_bin().join("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-XAtc",
                sql,
            ],
        )
        .trim()
        .to_string()
    }
}

/// A primary with a synchronous standby and PgBouncer in front, all torn down on drop.
struct Pair {
    dir: tempfile::TempDir,
    primary: Node,
    standby: Node,
    bouncer: Option<Child>,
    bouncer_port: u16,
}

impl Pair {
    fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        let mut primary = Node {
            data: dir.path().join("primary"),
            port: free_port(),
        };
        as_postgres(
            &pg_bin().join("initdb"),
            &[
                "-D",
                primary.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        primary.start(dir.path());
        primary.sql("CREATE DATABASE lookout");
        let mut standby = Node {
            data: dir.path().join("standby"),
            port: free_port(),
        };
        let port = primary.port.to_string();
        as_postgres(
            &pg_bin().join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                standby.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        standby.start(dir.path());
        // Synchronous: a commit returns only once the standby has it, so nothing acknowledged
        // is lost with the primary.
        primary.sql("ALTER SYSTEM SET synchronous_standby_names = '*'");
        primary.sql("SELECT pg_reload_conf()");
        for _ in 0..100 {
            if primary.sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
                == "1"
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            primary.sql("SELECT sync_state FROM pg_stat_replication"),
            "sync",
            "the standby streams synchronously"
        );
        let mut pair = Pair {
            dir,
            primary,
            standby,
            bouncer: None,
            bouncer_port: free_port(),
        };
        pair.write_bouncer_config(pair.primary.port);
        std::fs::write(pair.dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let cfg = pair.dir.path().join("pgbouncer.ini");
        let child = Command::new("pgbouncer")
            .args(["-u", "postgres"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer (scripts/setup-test-deps installs it)");
        pair.bouncer = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", pair.bouncer_port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pair
    }

    /// PgBouncer's config, with `lookout` pointing at the server on `port`.
    fn write_bouncer_config(&self, port: u16) {
        let d = self.dir.path();
        let ini = format!(
            "[databases]\nlookout = host=127.0.0.1 port={port} dbname=lookout\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {}\nunix_socket_dir =\nauth_type = trust\n\
             auth_file = {}\npool_mode = session\nmax_client_conn = 200\ndefault_pool_size = 40\n\
             ignore_startup_parameters = extra_float_digits,options\nserver_login_retry = 1\n\
             logfile = {}\npidfile = {}\n",
            self.bouncer_port,
            d.join("users.txt").display(),
            d.join("pgbouncer.log").display(),
            d.join("pgbouncer.pid").display(),
        );
        std::fs::write(d.join("pgbouncer.ini"), ini).unwrap();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres", d.to_str().unwrap()])
            .status();
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/lookout",
            self.bouncer_port
        )
    }

    /// The failover: the primary crashes, the standby is promoted, PgBouncer is repointed.
    fn fail_over(&self) {
        self.primary.ctl(&["-m", "immediate", "-w", "stop"]);
        self.standby.ctl(&["-w", "promote"]);
        self.write_bouncer_config(self.standby.port);
        let pid = self.bouncer.as_ref().unwrap().id().to_string();
        let st = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(st.success());
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(mut c) = self.bouncer.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in [&self.standby, &self.primary] {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin().join("pg_ctl"))
                .args([
                    "-D",
                    n.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_promoted_standby_behind_pgbouncer_loses_nothing_acknowledged() {
    let pair = Pair::start();
    let url = pair.url();
    let env: Vec<(&str, &str)> = SMALL_POOL
        .iter()
        .copied()
        .chain([("LOOKOUT_DATABASE_URL", url.as_str())])
        .collect();
    let a = TestServer::start_with_env(crate::bin(), lookout_testkit::Backend::Sqlite, &env).await;
    let b = TestServer::start_with_env(crate::bin(), lookout_testkit::Backend::Sqlite, &env).await;
    let target = HttpTarget::start().await;
    let paths = monitors(&a, &target, "fo", 4, 2, 1).await;
    for (id, _) in &paths {
        crate::uptime::wait_status(&a, *id, "up", 30).await;
    }
    let key = key_of(&a);
    let urls = [envelope_url(&a), envelope_url(&b)];
    let acked = Arc::new(Mutex::new(Vec::new()));
    let retried = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    // A client behind a load balancer: round robin; a 503 is retried on the other replica.
    let client = {
        let (acked, retried, errors, stop) =
            (acked.clone(), retried.clone(), errors.clone(), stop.clone());
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = new_id();
                let body = envelope(
                    &id,
                    &exception_event(&id, "FailoverError", "v", "fo", "r"),
                    None,
                );
                for attempt in 0..40 {
                    let to = &urls[(n + attempt) % 2];
                    match c
                        .post(to)
                        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                        .body(body.clone())
                        .timeout(Duration::from_secs(15))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            acked.lock().unwrap().push(id.clone());
                            break;
                        }
                        Ok(r) if r.status() == 503 => {
                            retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Ok(r) => {
                            errors.lock().unwrap().push(format!("{}", r.status()));
                            break;
                        }
                        Err(e) => {
                            errors.lock().unwrap().push(e.to_string());
                            break;
                        }
                    }
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = acked.lock().unwrap().len();
    let failed_at = Instant::now();
    pair.fail_over();
    println!(
        "failover: primary crashed, standby promoted, PgBouncer repointed in {:?}",
        failed_at.elapsed()
    );
    // Both replicas find the new primary on their own.
    let mut ready_after = Duration::ZERO;
    for s in [&a, &b] {
        loop {
            if readyz(s).await.0 == 200 {
                break;
            }
            assert!(
                failed_at.elapsed() < Duration::from_secs(60),
                "a replica was not ready on the new primary within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ready_after = ready_after.max(failed_at.elapsed());
    }
    let probes_before = target.hits(&paths[0].1).len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    client.await.unwrap();
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let errors = errors.lock().unwrap().clone();
    let probes_after = target.hits(&paths[0].1).len();
    println!(
        "failover under ingest: {} events acknowledged ({before} before the crash), {} answers retried as 503, {} client errors; both replicas ready {ready_after:?} after the crash",
        acked.len(),
        retried.load(Ordering::Relaxed),
        errors.len()
    );
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");
    assert!(acked.len() > before, "ingest resumed on the new primary");
    assert!(
        probes_after > probes_before,
        "monitors are checked after the failover"
    );
    // Every acknowledged event is on the new primary.
    let pool = db(&format!(
        "postgres://postgres@127.0.0.1:{}/lookout",
        pair.standby.port
    ))
    .await;
    // Processed into events by now or soon (the processors are behind by seconds at most).
    let mut stored = std::collections::HashSet::new();
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(60) {
        let ids: Vec<String> = sqlx::query_scalar("SELECT event_id FROM error_events")
            .fetch_all(&pool)
            .await
            .unwrap();
        stored = ids.into_iter().map(|i| i.replace('-', "")).collect();
        if acked.iter().all(|id| stored.contains(&id.replace('-', ""))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(&id.replace('-', "")))
        .collect();
    pool.close().await;
    println!(
        "failover: {} of {} acknowledged events on the promoted standby",
        acked.len() - missing.len(),
        acked.len()
    );
    assert!(missing.is_empty(), "acknowledged events lost: {missing:?}");
    stop_all(vec![a, b]);
}
