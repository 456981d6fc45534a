//! A private PostgreSQL cluster for a test: `initdb` into a temp dir, started on a free port
//! with the settings the test asks for (e.g. `shared_preload_libraries=pg_stat_statements`),
//! stopped and removed on drop. Tests that need server settings the machine's shared server does
//! not have use this instead of changing that server.
//!
//! PostgreSQL refuses to run as root, so as root the binaries run as the `postgres` user through
//! `runuser`; the data directory is handed to that user.
//!
//! The high-availability tests use it to fault the database the replicas share without touching
//! the machine's server: [`PgCluster::stop`] and [`PgCluster::start_again`] (a restart or an
//! outage), [`PgCluster::pause`] and [`PgCluster::resume`] (a database that hangs instead of
//! refusing: every process of this cluster, and only of this cluster, gets SIGSTOP).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The `-o` options it was started with, to start it again the same way.
    opts: String,
    /// Whether [`PgCluster::pause`] stopped its processes (drop resumes them first).
    paused: std::sync::atomic::AtomicBool,
    pub port: u16,
}

/// The newest installed PostgreSQL's binaries (`/usr/lib/postgresql/N/bin`), or `pg_config`'s.
fn bindir() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    if let Some(v) = versions.last() {
        return PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("PostgreSQL's server binaries are required (initdb, pg_ctl): install postgresql");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as `postgres` when we are root.
fn run(bin: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().expect("run a PostgreSQL binary")
}

impl PgCluster {
    /// Creates and starts a cluster with extra `-c name=value` settings.
    pub fn start(settings: &[&str]) -> PgCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let st = Command::new("chown")
                .args(["postgres:postgres", dir.path().to_str().unwrap()])
                .status()
                .expect("chown");
            assert!(st.success(), "chown the cluster directory to postgres");
        }
        let bin = bindir();
        let data = dir.path().join("data");
        let o = run(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(
            o.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            dir.path().display()
        );
        for s in settings {
            opts += &format!(" -c {s}");
        }
        let pg = PgCluster {
            dir,
            bin,
            opts,
            paused: std::sync::atomic::AtomicBool::new(false),
            port,
        };
        pg.start_again();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the cluster (again, after [`PgCluster::stop`]) on the same port and data, waiting
    /// until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let o = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &self.opts,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the cluster the way an operator's restart does (`pg_ctl stop -m fast`: sessions are
    /// ended, transactions in flight roll back) and waits until it is down.
    pub fn stop(&self) {
        let o = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(
            o.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// The postmaster's process id and every process it started (backends, WAL writer, …).
    fn processes(&self) -> Vec<u32> {
        let pidfile = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("the cluster is running (postmaster.pid)");
        let master: u32 = pidfile
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid in postmaster.pid");
        let mut all = vec![master];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // /proc/PID/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after ')'.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                all.push(pid);
            }
        }
        all
    }

    /// Sends `sig` to `pids`. A process that ended between the listing and the signal (a
    /// backend whose client went away) makes `kill` report failure while every other process
    /// got the signal; that is not an error here, so only a `kill` that cannot run fails.
    fn signal(&self, sig: &str, pids: &[u32]) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .args(pids.iter().map(u32::to_string))
            .status()
            .expect("kill");
    }

    /// Freezes every process of this cluster (SIGSTOP): connections stay open and nothing
    /// answers — a hung database rather than one that refuses. Undo with [`PgCluster::resume`].
    pub fn pause(&self) {
        let pids = self.processes();
        self.signal("STOP", &pids);
        self.paused.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets a paused cluster run again (SIGCONT).
    pub fn resume(&self) {
        let pids = self.processes();
        self.signal("CONT", &pids);
        self.paused
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// A URL for `database` (`postgres` exists from the start).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.paused.load(std::sync::atomic::Ordering::SeqCst) {
            self.resume();
        }
        let data = self.dir.path().join("data");
        let _ = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}
