//! pgBackRest through Lookout against a real PostgreSQL cluster the test creates (initdb on a
//! free port, WAL archived by pgBackRest): a full backup, more rows, a restore drill to a moment
//! between them that finds exactly the rows of that moment, a latest drill with pg_amcheck, a
//! differential backup, and the target's figures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lookout_testkit::{eventually, Backend, Client, TestServer};
use serde_json::{json, Value};

/// PostgreSQL's server programs (Debian keeps them per major version).
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server programs under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("initdb")
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// `program args…` as the postgres user (PostgreSQL and pgBackRest refuse to run as root).
fn as_postgres(program: &str, args: &[&str]) -> String {
    let mut cmd = if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output().expect("run");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A scratch cluster with pgBackRest archiving; stopped on drop.
struct Cluster {
    base: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl Cluster {
    fn start() -> Cluster {
        let base = tempfile::Builder::new()
            .prefix("lookout-pgbr-")
            .tempdir()
            .unwrap();
        let b = base.path();
        if root() {
            let out = Command::new("chown")
                .args(["postgres:postgres", b.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(out.success());
        }
        for d in ["repo", "log", "lock", "spool"] {
            as_postgres("mkdir", &[b.join(d).to_str().unwrap()]);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = pg_bin();
        let data = b.join("data");
        as_postgres(
            bin.join("initdb").to_str().unwrap(),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        );
        let conf = format!(
            "[global]\nrepo1-path={0}/repo\nlog-path={0}/log\nlock-path={0}/lock\nspool-path={0}/spool\nstart-fast=y\nrepo1-retention-full=2\n\n[t]\npg1-path={0}/data\npg1-port={1}\npg1-socket-path={0}\n",
            b.display(),
            port
        );
        std::fs::write(b.join("pgbackrest.conf"), conf).unwrap();
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{0}'\nwal_level = replica\narchive_mode = on\narchive_command = 'pgbackrest --config={0}/pgbackrest.conf --stanza=t archive-push %p'\nmax_wal_senders = 3\n",
            b.display()
        );
        let pg_conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&pg_conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&pg_conf, text).unwrap();
        as_postgres(
            bin.join("pg_ctl").to_str().unwrap(),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                b.join("pg.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        let c = Cluster { base, port, bin };
        c.pgbackrest(&["stanza-create"]);
        c
    }

    fn config(&self) -> PathBuf {
        self.base.path().join("pgbackrest.conf")
    }

    fn pgbackrest(&self, args: &[&str]) -> String {
        let config = format!("--config={}", self.config().display());
        let mut all = vec![config.as_str(), "--stanza=t"];
        all.extend(args);
        as_postgres("pgbackrest", &all)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                &self.url(),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn data(&self) -> PathBuf {
        self.base.path().join("data")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(if root() { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// The admin client, patient enough for backups and restore drills (minutes on this machine).
fn patient(s: &TestServer) -> Client {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    Client::http_with(http, &s.url).bearer(&s.admin_token)
}

fn orders(run: &Value) -> i64 {
    run["details"]["databases"]["postgres"]["public.orders"]
        .as_i64()
        .unwrap_or_else(|| panic!("no orders count in {run}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbackrest_backups_and_a_restore_to_a_moment_between_writes() {
    let cluster = Cluster::start();
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let pg = patient(&s);
    let (st, t) = pg
        .post(
            "/api/v1/backup-targets",
            json!({"name": "scratch", "stanza": "t", "config": cluster.config(),
               "run_as": if root() { Some("postgres") } else { None },
               "pg_url": cluster.url(), "pg_bin": cluster.bin, "full_every_hours": 24,
               "drill_every_hours": 0}),
        )
        .await
        .parts();
    assert_eq!(st, 201, "{t}");
    let id = t["id"].as_i64().unwrap();
    assert!(
        t.get("pg_url").is_none(),
        "the connection string is never shown"
    );
    // pgbackrest check: archiving reaches the repository.
    let (st, check) = pg
        .post(&format!("/api/v1/backup-targets/{id}/check"), json!({}))
        .await
        .parts();
    assert_eq!(st, 200);
    assert_eq!(check["ok"], true, "{check}");
    assert!(check["guidance"]
        .as_str()
        .unwrap()
        .contains("archive-push %p"));
    cluster.psql("CREATE TABLE orders (id serial PRIMARY KEY, note text); INSERT INTO orders (note) SELECT 'first' FROM generate_series(1, 100)");
    let (st, run) = pg
        .post(
            &format!("/api/v1/backup-targets/{id}/backup"),
            json!({"type": "full"}),
        )
        .await
        .parts();
    assert_eq!(st, 201);
    assert_eq!(run["ok"], true, "{run}");
    // Rows after the backup, a moment, then more rows.
    cluster.psql("INSERT INTO orders (note) SELECT 'second' FROM generate_series(1, 50)");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let moment: String = cluster
        .psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    cluster.psql("INSERT INTO orders (note) SELECT 'third' FROM generate_series(1, 70)");
    cluster.psql("SELECT pg_switch_wal()");
    // The switched segment reaches the archive.
    for _ in 0..100 {
        if cluster.psql("SELECT last_archived_wal IS NOT NULL AND last_archived_wal >= pg_walfile_name(pg_current_wal_lsn()) OR archived_count > 2 FROM pg_stat_archiver") == "t" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // pgbackrest check switches the WAL and waits until it is archived (retried: the schedule
    // may be taking the target's first full backup at this moment).
    let config = format!("--config={}", cluster.config().display());
    let mut checked = false;
    for _ in 0..10 {
        let mut cmd = if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbackrest"]);
            c
        } else {
            Command::new("pgbackrest")
        };
        if cmd
            .args([config.as_str(), "--stanza=t", "check"])
            .status()
            .unwrap()
            .success()
        {
            checked = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(checked, "pgbackrest check never passed");
    let (st, drill) = pg
        .post(
            &format!("/api/v1/backup-targets/{id}/drill"),
            json!({"to": moment}),
        )
        .await
        .parts();
    assert_eq!(st, 201);
    assert_eq!(drill["ok"], true, "{drill}");
    assert_eq!(
        orders(&drill),
        150,
        "the restore holds the rows of the moment, not later ones"
    );
    let (st, drill) = pg
        .post(&format!("/api/v1/backup-targets/{id}/drill"), json!({}))
        .await
        .parts();
    assert_eq!(st, 201);
    assert_eq!(drill["ok"], true, "{drill}");
    assert_eq!(orders(&drill), 220);
    assert_eq!(drill["details"]["missing_tables"], json!([]));
    assert_eq!(drill["details"]["amcheck"], "ok");
    let (st, run) = pg
        .post(
            &format!("/api/v1/backup-targets/{id}/backup"),
            json!({"type": "diff"}),
        )
        .await
        .parts();
    assert_eq!(st, 201);
    assert_eq!(run["ok"], true, "{run}");
    // The schedule takes a new target's first full backup too, at its next pass (it may race
    // the end of this test): pgBackRest's count settles at every successful backup Lookout
    // recorded.
    let (c, runs_path) = (s.client(), format!("/api/v1/backup-targets/{id}/runs"));
    let (t, runs) = eventually("pgBackRest's count to match the backups Lookout recorded")
        .every(Duration::from_millis(200))
        .until(
            || async {
                let t = c.get("/api/v1/backups").await.json["targets"][0].clone();
                (t, c.get(&runs_path).await.json)
            },
            |(t, runs)| {
                let taken = runs["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["ok"] == true && r["kind"] != "drill")
                    .count();
                t["backups"] == taken
            },
        )
        .await;
    let kinds: Vec<&str> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == true)
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"full") && kinds.contains(&"diff"), "{runs}");
    assert_eq!(
        t["backups"].as_u64().unwrap() as usize,
        kinds.iter().filter(|k| **k != "drill").count(),
        "{t} {runs}"
    );
    assert!(t["age_seconds"].as_i64().unwrap() < 60);
    assert!(t["repo_size_bytes"].as_i64().unwrap() > 0);
    assert!(t["wal_lag_segments"].is_i64(), "{t}");
    assert_eq!(t["last_drill"]["ok"], true);
    // Scratch clusters are gone after their drills.
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("lookout-drill-")
        })
        .filter(|e| Path::new(&e.path()).join("data").exists())
        .count();
    assert_eq!(leftovers, 0);
}
