//! Test helpers every Lookout capability reuses: a fresh PostgreSQL database per test, the
//! real `lookout` binary started on a free port with a temporary data directory, one typed
//! [`Client`] (over that socket or in process), one [`eventually`] for waiting on background
//! work, and [`both!`], the one way to run a test on SQLite and on PostgreSQL.
//!
//! PostgreSQL is the one on this machine (`LOOKOUT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Tests that need it fail when it is missing:
//! a skipped backend would let a PostgreSQL-only bug through CI.

pub mod client;
pub mod eventually;
pub mod load_target;
pub mod pg_cluster;
pub mod tcp_proxy;
pub use client::{Body, Client, Response};
pub use eventually::eventually;
pub use pg_cluster::PgCluster;
pub use tcp_proxy::TcpProxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

/// The administrative PostgreSQL URL tests create their databases through.
pub fn pg_admin_url() -> String {
    std::env::var("LOOKOUT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database made for one test and dropped when it ends.
pub struct PgDatabase {
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates `lookout_test_<random>` on the test server.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable: the storage suite must run on both backends.
    pub async fn create() -> PgDatabase {
        let admin = pg_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for the tests ({admin}): {e}. Start it, or set LOOKOUT_TEST_PG_URL.")
        });
        let name = format!("lookout_test_{:016x}", rand::random::<u64>());
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside async context; a short-lived runtime on a thread does the cleanup.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// Which storage a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite in the temp data dir.
    Sqlite,
    /// A fresh PostgreSQL database.
    Postgres,
}

/// A running `lookout serve`, killed when dropped.
pub struct TestServer {
    bin: PathBuf,
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    /// Holds the config file of [`TestServer::start_with_config`].
    config_dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
    /// The database of the server this one is a replica of ([`TestServer::replica`]).
    shared_db: Option<String>,
    /// One HTTP client (one connection pool) for every [`TestServer::client`].
    http: reqwest::Client,
    extra_env: Vec<(String, String)>,
    extra_args: Vec<String>,
    /// `http://127.0.0.1:PORT` of the UI and API.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the OTLP listener.
    pub otlp_url: String,
    /// The default project's DSN, from the banner.
    pub dsn: String,
    /// An admin API token valid on this server (made with `LOOKOUT_BOOTSTRAP_TOKEN`).
    pub admin_token: String,
}

impl TestServer {
    /// Starts `bin serve` on `backend` with an admin token and an admin user
    /// (`admin@example.com` / `correct horse battery`).
    pub async fn start(bin: &Path, backend: Backend) -> TestServer {
        Self::start_with_env(bin, backend, &[]).await
    }

    /// Like [`TestServer::start`], with extra environment variables.
    pub async fn start_with_env(bin: &Path, backend: Backend, env: &[(&str, &str)]) -> TestServer {
        Self::start_with(bin, backend, env, &[]).await
    }

    /// Like [`TestServer::start`], with extra environment variables and `serve` arguments.
    pub async fn start_with(
        bin: &Path,
        backend: Backend,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> TestServer {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let mut server = TestServer {
            bin: bin.to_path_buf(),
            child: None,
            data_dir: tempfile::tempdir().expect("temp data dir"),
            config_dir: None,
            pg,
            shared_db: None,
            http: reqwest::Client::new(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
            url: String::new(),
            otlp_url: String::new(),
            dsn: String::new(),
            admin_token: format!("lk_test{:032x}", rand::random::<u128>()),
        };
        server.spawn();
        server
    }

    /// A second server (another replica) on this one's PostgreSQL database, with its own data
    /// directory and the same admin token.
    ///
    /// # Panics
    /// When this server runs on SQLite: replicas share a PostgreSQL database.
    pub async fn replica(&self) -> TestServer {
        self.replica_with_env(&[]).await
    }

    /// Like [`TestServer::replica`], with extra environment variables for this replica only
    /// (a skewed clock through libfaketime, say).
    pub async fn replica_with_env(&self, env: &[(&str, &str)]) -> TestServer {
        let url = self
            .database_url()
            .expect("replicas share a PostgreSQL database")
            .to_string();
        let mut server = TestServer {
            bin: self.bin.clone(),
            child: None,
            data_dir: tempfile::tempdir().expect("temp data dir"),
            config_dir: None,
            pg: None,
            shared_db: Some(url),
            http: reqwest::Client::new(),
            extra_env: self
                .extra_env
                .iter()
                .cloned()
                .chain(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
            extra_args: self.extra_args.clone(),
            url: String::new(),
            otlp_url: String::new(),
            dsn: String::new(),
            admin_token: self.admin_token.clone(),
        };
        server.spawn();
        server
    }

    /// Another replica like [`TestServer::replica`], reaching the same database through
    /// `url` (a [`TcpProxy`] in front of it, say), with the same admin token.
    pub async fn replica_via(&self, url: &str) -> TestServer {
        let mut server = Self::start_unspawned(&self.bin, None, Some(url.to_string()), &[]);
        server.extra_env = self.extra_env.clone();
        server.admin_token = self.admin_token.clone();
        server.spawn();
        server
    }

    /// `n` replicas on one fresh PostgreSQL database, launched at the same moment: every process
    /// is spawned before any banner is awaited, so they migrate and join together (the start
    /// that used to fail one replica in two with a duplicate key). The first one owns the
    /// database. Panics, naming it, if any replica does not start.
    pub async fn replicas_together(bin: &Path, n: usize, env: &[(&str, &str)]) -> Vec<TestServer> {
        let first = Self::start_unspawned(bin, Some(PgDatabase::create().await), None, env);
        let url = first.database_url().map(str::to_string);
        let mut all = vec![first];
        for _ in 1..n {
            let mut r = Self::start_unspawned(bin, None, url.clone(), env);
            r.admin_token = all[0].admin_token.clone();
            all.push(r);
        }
        std::thread::scope(|scope| {
            for server in all.iter_mut() {
                scope.spawn(|| server.spawn());
            }
        });
        all
    }

    /// `n` replicas on the PostgreSQL database at `url` (one the test owns, on a private
    /// [`PgCluster`] it can stop and pause), launched at the same moment like
    /// [`TestServer::replicas_together`]. They share one admin token.
    pub async fn replicas_on(
        bin: &Path,
        url: &str,
        n: usize,
        env: &[(&str, &str)],
    ) -> Vec<TestServer> {
        let mut all: Vec<TestServer> = (0..n)
            .map(|_| Self::start_unspawned(bin, None, Some(url.to_string()), env))
            .collect();
        let token = all[0].admin_token.clone();
        for s in all.iter_mut() {
            s.admin_token = token.clone();
        }
        std::thread::scope(|scope| {
            for server in all.iter_mut() {
                scope.spawn(|| server.spawn());
            }
        });
        all
    }

    /// A server not started yet (see [`TestServer::replicas_together`]).
    fn start_unspawned(
        bin: &Path,
        pg: Option<PgDatabase>,
        shared_db: Option<String>,
        env: &[(&str, &str)],
    ) -> TestServer {
        TestServer {
            bin: bin.to_path_buf(),
            child: None,
            data_dir: tempfile::tempdir().expect("temp data dir"),
            config_dir: None,
            pg,
            shared_db,
            http: reqwest::Client::new(),
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            extra_args: Vec::new(),
            url: String::new(),
            otlp_url: String::new(),
            dsn: String::new(),
            admin_token: format!("lk_test{:032x}", rand::random::<u128>()),
        }
    }

    /// Like [`TestServer::start`], with `toml` as its config file (`--config`).
    pub async fn start_with_config(bin: &Path, backend: Backend, toml: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("config dir");
        let path = dir.path().join("lookout.toml");
        std::fs::write(&path, toml).expect("write the config file");
        let arg = path.to_str().expect("a UTF-8 temp path").to_string();
        let mut s = Self::start_with(bin, backend, &[], &["--config", &arg]).await;
        s.config_dir = Some(dir);
        s
    }

    /// The data directory (for tests that look at files).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The database URL the server uses, if it is PostgreSQL.
    pub fn database_url(&self) -> Option<&str> {
        self.pg
            .as_ref()
            .map(PgDatabase::url)
            .or(self.shared_db.as_deref())
    }

    /// The `lookout` command with this server's storage settings, for CLI verbs.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOOKOUT_DATA_DIR", self.data_dir.path());
        if let Some(url) = self.database_url() {
            cmd.env("LOOKOUT_DATABASE_URL", url);
        }
        cmd
    }

    /// Starts the process and waits for its banner (port 0: the banner says which port it got).
    fn spawn(&mut self) {
        let mut cmd = self.command();
        cmd.arg("serve");
        // A test may listen elsewhere (`--listen 0.0.0.0:0`, so network namespaces reach it).
        if !self.extra_args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(["--otlp-listen", "127.0.0.1:0"])
            .env("LOOKOUT_BOOTSTRAP_TOKEN", &self.admin_token)
            .env("LOOKOUT_ADMIN_EMAIL", "admin@example.com")
            .env("LOOKOUT_ADMIN_PASSWORD", "correct horse battery")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd.args(&self.extra_args);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn lookout");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut url, mut otlp, mut dsn) = (None, None, None);
        while url.is_none() || otlp.is_none() || dsn.is_none() {
            assert!(
                Instant::now() < deadline,
                "lookout did not print its banner in 30 s"
            );
            let Some(Ok(line)) = lines.next() else {
                panic!("lookout exited before printing its banner")
            };
            let value = || line.split_whitespace().last().map(str::to_string);
            if line.contains("UI and API:") {
                url = value();
            } else if line.contains("OTLP/HTTP:") {
                otlp = value();
            } else if line.contains("DSN:") {
                dsn = value();
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        self.url = url.unwrap_or_default();
        self.otlp_url = otlp.unwrap_or_default();
        self.dsn = dsn.unwrap_or_default();
        self.child = Some(child);
    }

    /// Kills the process with SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().ok()
    }

    /// Starts the server again on the same data (after [`TestServer::kill9`]).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Stops the server cleanly (SIGTERM, waiting for it to exit) and starts it again on the same
    /// data: one step of a rolling restart. Returns how the old process exited.
    pub fn restart_clean(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.terminate();
        self.spawn();
        status
    }

    /// The process id (for RSS readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A client that sends the admin token.
    pub fn admin_client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {}", self.admin_token);
        headers.insert(
            reqwest::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client")
    }

    /// The typed client with the admin token.
    pub fn client(&self) -> Client {
        self.anon().bearer(&self.admin_token)
    }

    /// The typed client without a credential.
    pub fn anon(&self) -> Client {
        Client::http_with(self.http.clone(), &self.url)
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Reads the resident set size of a process in KiB from `/proc`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Generates `sqlite::name` and `postgres::name` tests from `async fn name(Backend)`: the one
/// spelling of "this behaviour holds on both backends" (a PostgreSQL-only bug must fail CI).
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Backend::Postgres).await }
            )*
        }
    };
}

/// JSON helper re-exported for tests.
pub use serde_json::json;
