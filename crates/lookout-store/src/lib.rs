//! Lookout's storage: one schema on SQLite (the embedded default) and PostgreSQL.
//!
//! [`Store`] owns the connection pool and knows which backend it talks to. Both backends share one
//! set of SQL statements (`$1` placeholders work on both, and times are `i64` milliseconds) through
//! sqlx's `Any` driver; only the DDL in `migrations/<backend>/` and a few locking clauses differ.
//!
//! The capabilities built on it:
//! - [`writer`]: the durable group-commit write path with a bounded queue;
//! - [`jobs`]: leased periodic and one-off background work, safe across replicas;
//! - [`events`]: the ordered domain-event stream and its consumer groups;
//! - [`tenancy`]: organizations, projects, DSN keys, users, sessions and API tokens;
//! - [`markers`]: change markers (deploys, config changes), the first user of the write path;
//! - [`load`]: load-test runs; [`series`]: baseline series and their points.

pub mod alerting;
pub mod apm;
pub mod audit;
pub mod backup;
pub mod cluster;
pub mod cursor;
pub mod dashboards;
pub mod dbhealth;
mod dialect;
pub mod errors;
pub mod events;
pub mod identity;
pub mod jobs;
pub mod load;
pub mod locations;
pub mod markers;
pub mod mfa;
mod migrate;
pub mod nrql;
pub mod operations;
pub mod ownership;
pub mod page;
pub mod prom;
pub mod regress;
pub mod reports;
pub mod row;
pub mod series;
pub mod sso;
pub mod teams;
pub mod tenancy;
pub mod uptime;
pub mod wake;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

pub use migrate::SCHEMA_VERSION;
pub use page::{Cursor, Page};
pub use writer::{Value, Write, WriteQueue, Writer};

/// Deletes row `id` of `table` (a table name from this crate, never user text); NotFound when
/// there is none.
pub(crate) async fn delete_by_id(store: &Store, table: &'static str, id: i64) -> Result<()> {
    // With the request's audit entry, in the same transaction (see `audit::record_pending_in`).
    let mut tx = store.begin_write().await?;
    let n = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if n.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs `first` (statements binding `$1` to `id`: the rows that hang on it) then deletes row
/// `id` of `table`, in one transaction; NotFound (nothing deleted) when there is no such row.
pub(crate) async fn delete_with(
    store: &Store,
    first: &[&str],
    table: &'static str,
    id: i64,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    for sql in first {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    let n = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    found(n)?;
    // The request's audit entry commits with the deletion it records.
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Commits `tx` with the request's audit entry in it (see `audit::record_pending_in`): the
/// configuration change and its record commit together or not at all.
pub(crate) async fn commit_audited(mut tx: Tx) -> Result<()> {
    audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// NotFound when an UPDATE or DELETE by id touched no row.
pub(crate) fn found(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// A `LIKE … ESCAPE '\'` pattern matching `text` anywhere, with `%`, `_` and `\` in it taken
/// literally (a search for `100%` or `user_id` must not match everything).
pub(crate) fn like_contains(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file in WAL mode.
    Sqlite,
    /// A PostgreSQL server, possibly shared by several Lookout replicas.
    Postgres,
}

impl Backend {
    /// The name used in logs and `/readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything that can go wrong in storage, as callers need to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique value is taken already (slug, email, …).
    #[error("{0} already exists")]
    Conflict(String),
    /// The write queue is full: the caller should answer 503 with `Retry-After`.
    #[error("write queue is full")]
    Overloaded,
    /// The server is stopping and takes no more writes.
    #[error("shutting down")]
    ShuttingDown,
    /// A `--database-url` that is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database url scheme (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// A list cursor that no page of this list returned (answered 400).
    #[error("invalid cursor {0:?}: pass the `next` value of the previous page")]
    BadCursor(String),
    /// Work done under a lease whose fencing token moved on: another claim took the lease, and
    /// nothing of the old holder's may be recorded any more.
    #[error("the lease this work was done under is no longer held")]
    Fenced,
    /// A stored value that does not parse (a role name, JSON payload).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Work against the database that its caller bounded in time did not finish (a hung
    /// connection, a database that stopped answering): named so logs do not call it corruption.
    #[error("{0} timed out")]
    TimedOut(&'static str),
    /// A field names a row that does not exist (any more): a team deleted by another request
    /// between the caller's check and this write. Answered 422 naming the field.
    #[error("{0} names something that no longer exists")]
    Missing(&'static str),
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
    pub(crate) fn conflict_as(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.to_string())
            }
            _ => StoreError::Db(e),
        }
    }
}

/// `e`, or [`StoreError::Missing`]`("team_id")` when it is a foreign-key violation of a write
/// that set the owning team to `team` and that team is gone: deleted by a concurrent request
/// after the caller checked it. SQLite's message does not name the key, so the team is looked
/// up (on a pooled connection: PostgreSQL's failed transaction takes no more statements).
/// The caller's failed `tx` is rolled back first, so the lookup never holds two connections
/// at once: under load a pool of N would otherwise deadlock with N writers waiting here.
pub(crate) async fn team_gone(
    store: &Store,
    tx: Tx,
    e: StoreError,
    team: Option<i64>,
) -> StoreError {
    // The write failed, so nothing in tx is kept; a failed rollback only loses the connection.
    let _ = tx.rollback().await;
    let fk =
        matches!(&e, StoreError::Db(sqlx::Error::Database(db)) if db.is_foreign_key_violation());
    let Some(team) = team.filter(|_| fk) else {
        return e;
    };
    match sqlx::query("SELECT id FROM teams WHERE id = $1")
        .bind(team)
        .fetch_optional(store.pool())
        .await
    {
        Ok(None) => StoreError::Missing("team_id"),
        _ => e,
    }
}

/// A boxed, sendable future: the return type of job and event handlers.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Shorthand for storage results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A write transaction from [`Store::begin_write`]: callers that make several store calls commit
/// together hold one and pass it in, without naming the database driver themselves.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A connection that reads run on: a transaction derefs to one, so a read can join the caller's
/// transaction instead of waiting for a second pooled connection.
pub type Conn = sqlx::AnyConnection;

/// The pool's size: `LOOKOUT_DATABASE_MAX_CONNECTIONS` (2 to 100), else `default`.
fn pool_size(default: u32) -> u32 {
    std::env::var("LOOKOUT_DATABASE_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| n.clamp(2, 100))
}

/// Makes a SQLite database and its `-wal`, `-shm` and `-journal` files readable by their owner
/// only: they hold password hashes, sessions and every event. SQLite gives the files it creates
/// beside a database the database's own mode, so fixing the main file (right after the pool
/// created it) covers the rest; existing ones are fixed too, for data made by older versions.
fn owner_only(db: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            match std::fs::metadata(&path) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    if let Err(e) =
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    {
                        tracing::warn!(file = %path.display(), error = %e, "Could not make a database file private.");
                    }
                }
                _ => {}
            }
        }
    }
}

/// A connection pool to the one database Lookout keeps its state in.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Orders this process's busiest SQLite writers (see [`Store::write_gate`]).
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The database URL (the backup shipper opens its own connection with it).
    url: std::sync::Arc<str>,
    /// WAL shipping, when `--backup-dir` turned it on (SQLite only).
    backup: std::sync::Arc<backup::Slot>,
    /// Which leased streams this replica should serve (set once by the server's cluster).
    placement: std::sync::Arc<std::sync::OnceLock<PlacementHook>>,
    /// Tells stream consumers that new rows were committed (see [`wake`]).
    wake: std::sync::Arc<wake::Wake>,
    /// Prometheus series ids by label set, per store (see [`prom::SeriesCache`]).
    prom: std::sync::Arc<prom::SeriesCache>,
}

/// Whether this replica should serve the leased stream (cursor) of that name.
pub type Placement = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The [`Placement`] a store was given (a closure has no `Debug` of its own).
struct PlacementHook(Placement);

impl std::fmt::Debug for PlacementHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Placement")
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`) and applies pending migrations.
    ///
    /// A SQLite file is created if missing. Migrations run in a transaction each, serialised
    /// across replicas on PostgreSQL by an advisory lock, so replicas may start together.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        // Statement logging would print every query at INFO; our own spans say what matters.
        let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    // WAL lets readers run beside the one writer. Background workers (group commit,
                    // stream consumers, WAL checkpoints, trace indexing) each hold one at times;
                    // with 4, request handlers queued behind them for seconds under ingest.
                    .max_connections(pool_size(8))
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .after_release(|conn, _| Box::pin(release_outside_transaction(conn)))
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    // LOOKOUT_DATABASE_MAX_CONNECTIONS sizes the pool: replicas × this must fit
                    // PostgreSQL's max_connections (docs/operations.md, "Topology and sizing").
                    .max_connections(pool_size(16))
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        let store = Store {
            pool,
            backend,
            gate: std::sync::Arc::default(),
            url: url.into(),
            backup: std::sync::Arc::default(),
            placement: std::sync::Arc::default(),
            wake: std::sync::Arc::default(),
            prom: std::sync::Arc::default(),
        };
        if let Some(db) = store.sqlite_path() {
            owner_only(&db);
        }
        migrate::apply(&store).await?;
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_wal(
                store.pool.clone(),
                store.gate.clone(),
                store.backup.clone(),
                store.sqlite_path(),
            ));
        }
        Ok(store)
    }

    /// The SQLite database file, when this store is on SQLite.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let rest = self.url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        Some(std::path::PathBuf::from(path))
    }

    /// Starts continuous backups into `options.dir`: a new run with a snapshot, then every
    /// commit shipped (see [`backup`]). SQLite only.
    pub async fn start_backup(
        &self,
        options: backup::BackupOptions,
    ) -> Result<(), backup::BackupError> {
        let db = self.sqlite_path().ok_or(backup::BackupError::NotSqlite)?;
        let shm = std::path::PathBuf::from(format!("{}-shm", db.display()));
        let clock = self
            .backup
            .clock
            .get_or_init(|| std::sync::Arc::new(backup::CommitClock::new(shm)))
            .clone();
        // Holding the slot keeps the checkpoint task away while the first snapshot is taken.
        let mut slot = self.backup.shipper.lock().await;
        if slot.is_some() {
            return Err(backup::BackupError::Refused("backups already run".into()));
        }
        let shipper =
            backup::Shipper::start(&self.url, SQLITE_PRAGMAS, db, options, clock.clone()).await?;
        *slot = Some(shipper);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if self.backup.stop_clock.set(stop).is_ok() {
            tokio::spawn(clock.poll(stopped));
        }
        Ok(())
    }

    /// The running backup's directory and run, if backups are on.
    pub async fn backup_run(&self) -> Option<(std::path::PathBuf, String)> {
        let slot = self.backup.shipper.lock().await;
        slot.as_ref()
            .map(|s| (s.dir().to_path_buf(), s.run().to_string()))
    }

    /// For a restore drill: ships everything committed, with nothing committing meanwhile, and
    /// counts every table's rows at that exact point.
    pub async fn backup_mark(
        &self,
    ) -> Result<(backup::Position, backup::Counts), backup::BackupError> {
        let _turn = self.write_gate().await;
        let mut slot = self.backup.shipper.lock().await;
        let shipper = slot
            .as_mut()
            .ok_or_else(|| backup::BackupError::Refused("backups are off".into()))?;
        shipper.mark().await
    }

    /// Notes that a commit just returned, so the backup knows when it happened (no-op without
    /// backups).
    pub(crate) fn note_commit(&self) {
        if let Some(clock) = self.backup.clock.get() {
            clock.note();
        }
    }

    /// The SQLite URL for a data directory: `<dir>/lookout.db`, created if missing.
    pub fn sqlite_url_for_dir(dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", dir.join("lookout.db").display())
    }

    /// The wake-ups of this store's stream consumers.
    pub fn wake(&self) -> &wake::Wake {
        &self.wake
    }

    /// Tells the stream consumers which cursors this replica should serve, so they spread over
    /// the replicas instead of all going to the first one to poll. Unset, every replica may serve
    /// every cursor (one at a time, under its lease).
    pub fn set_placement(&self, placement: Placement) {
        let _ = self.placement.set(PlacementHook(placement));
    }

    /// Whether this replica should serve cursor `name` (see [`Store::set_placement`]).
    pub(crate) fn placed_here(&self, name: &str) -> bool {
        self.placement.get().is_none_or(|p| (p.0)(name))
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The Prometheus series-id cache of this store.
    pub fn prom_cache(&self) -> &prom::SeriesCache {
        &self.prom
    }

    /// The pool, for capability crates that run their own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// On SQLite, a turn at the database's single write lock for this process's busiest writers
    /// (the group commit and the stream consumers), held from before `BEGIN IMMEDIATE` until after
    /// the commit. Without it they meet in SQLite's busy handler, which sleeps in steps of up to
    /// 100 ms and notices a released lock only when it wakes: under span ingest that left the
    /// CPU half idle (measured). `None` on PostgreSQL, whose row locks need no such queue.
    pub async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.gate.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`, which takes the write lock at once (waiting up to
    /// `busy_timeout`). A plain `BEGIN` that reads first and writes later fails with
    /// `SQLITE_BUSY_SNAPSHOT` if another connection committed in between, and no timeout helps.
    ///
    /// The transaction is begun in a task of its own, so a caller dropped while it waits (a
    /// `select!` that saw shutdown, a handler whose client hung up) cannot leak it. sqlx 0.8's
    /// `begin_with` has an await between running `BEGIN IMMEDIATE` and handing back the
    /// `Transaction`; a future dropped there returns the connection to the pool inside an open
    /// transaction that holds SQLite's write lock, and every writer after it fails with
    /// "database is locked" until the process exits (seen at shutdown: the server never
    /// stopped). A spawned task always runs to the end; if nobody awaits it any more, the
    /// transaction it made is dropped, which rolls it back.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let pool = self.pool.clone();
        let backend = self.backend;
        let begun = tokio::spawn(async move {
            match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            }
        })
        .await;
        match begun {
            Ok(tx) => Ok(tx?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StoreError::ShuttingDown),
        }
    }

    /// Whether the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The newest applied migration version (for `/readyz` and `lookout --version` output).
    pub async fn schema_version(&self) -> Result<i64> {
        migrate::current_version(self).await
    }

    /// Closes every connection (at shutdown, after the writer has flushed), shipping the last
    /// commits first when backups are on.
    pub async fn close(&self) {
        if let Some(stop) = self.backup.stop_clock.get() {
            let _ = stop.send(true);
        }
        let turn = self.write_gate().await;
        let mut slot = self.backup.shipper.lock().await;
        if let Some(mut shipper) = slot.take() {
            if let Err(e) = shipper.drain(&self.pool).await {
                tracing::error!(error = %e, "Final backup shipping failed.");
            }
            shipper.close().await;
        }
        drop(slot);
        drop(turn);
        self.pool.close().await;
    }
}

/// Whether a connection coming back to the SQLite pool may be reused: not while it is still
/// inside a transaction, which would hold the write lock for whoever takes it next (and make
/// their `BEGIN` fail). A dropped `Transaction` queues its rollback on the connection's worker,
/// so a ping (queued behind it) is awaited before the second look; a connection still inside a
/// transaction after that is closed, and closing rolls it back.
async fn release_outside_transaction(
    conn: &mut sqlx::AnyConnection,
) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("A connection came back inside a transaction; closed it to roll it back.");
        return Ok(false);
    }
    Ok(true)
}

/// Checkpoints the SQLite WAL into the database file in the background, until the pool closes.
///
/// Connections run with `wal_autocheckpoint=0`: otherwise the commit that crosses SQLite's
/// threshold copies the WAL into the database and fsyncs it before it returns, which under
/// ingest stalled the group commit for over a second at a time (measured). Here a passive
/// checkpoint copies frames without waiting for anyone; but only a checkpoint that finds no
/// reader on an old snapshot lets the next writer start the WAL over, and with readers always
/// about, the WAL grew by hundreds of megabytes — and every page read searches the WAL's index
/// first, so reads, and with them ingest, slowed as it grew (measured). So once the WAL passes
/// a few thousand frames, a restarting checkpoint runs with the write gate held: it waits for
/// the readers of the moment (short), copies the little the passive ones left, and the WAL
/// starts over.
///
/// With backups on, the shipper does each checkpoint, after shipping (see [`backup::ship`]).
async fn checkpoint_wal(
    pool: AnyPool,
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    backup: std::sync::Arc<backup::Slot>,
    db: Option<std::path::PathBuf>,
) {
    /// WAL frames (pages) beyond which the WAL is restarted: about 32 MB.
    const RESTART_FRAMES: i64 = 8_192;
    while !pool.is_closed() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Lock order everywhere: the write gate, then the backup slot.
        let mut slot = backup.shipper.lock().await;
        if let Some(shipper) = slot.as_mut() {
            let ticked = shipper.tick(&pool).await;
            drop(slot);
            let drained = match ticked {
                Ok((log, _)) if log >= RESTART_FRAMES => {
                    let _turn = gate.lock().await;
                    let mut slot = backup.shipper.lock().await;
                    match slot.as_mut() {
                        Some(shipper) => shipper.drain(&pool).await.map(|_| ()),
                        None => Ok(()),
                    }
                }
                other => other.map(|_| ()),
            };
            match drained {
                Ok(()) => {}
                Err(_) if pool.is_closed() => break,
                Err(e) => tracing::error!(error = %e, "Backup shipping failed."),
            }
            continue;
        }
        drop(slot);
        // Another process (the server) ships this database's WAL: only it may checkpoint, or
        // frames could be copied and then dropped before they were shipped.
        if db.as_deref().is_some_and(backup::ship::shipping_elsewhere) {
            continue;
        }
        let frames: std::result::Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        let result = match frames {
            Ok((_, log, _)) if log >= RESTART_FRAMES => {
                let _turn = gate.lock().await;
                sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                    .execute(&pool)
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        };
        match result {
            Ok(()) => {}
            Err(_) if pool.is_closed() => break,
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed."),
        }
    }
}

/// SQLite settings applied to every connection, each for a reason:
/// - `journal_mode=WAL`: readers never block the writer, and a commit is one sequential append.
/// - `synchronous=FULL`: a commit is fsynced before it returns, so an acknowledged write survives
///   power loss, not only `kill -9`. The group commit pays that fsync once per batch.
/// - `foreign_keys=ON`: SQLite leaves them off by default; the schema relies on cascades.
/// - `busy_timeout=5000`: a second writer (CLI, migrations) waits instead of failing at once.
/// - `temp_store=FILE`: sorts and temporary indexes stay in memory up to the cache size and
///   spill to an unlinked temporary file beyond it. With `MEMORY` a query sorting a large
///   result (an NRQL facet over millions of rows) held all of it in memory, outside any budget.
/// - `wal_autocheckpoint=0`: [`checkpoint_wal`] checkpoints instead, off the commit path.
/// - `cache_size=-16000` (16 MB instead of SQLite's 2 MB): span ingest inserts into indexes on
///   random trace ids; with the default cache nearly every insert re-read index pages (measured:
///   most of the writer thread's time in `pread`). That is each connection's ceiling, not what the
///   pool may hold: see `soft_heap_limit`.
/// - `soft_heap_limit=24 MiB`: one memory budget for SQLite in the whole process (the limit is
///   process-wide, whichever connection sets it). The bundled SQLite is built with
///   `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so every connection's page cache sits in one LRU; above
///   the limit the least recently used pages of any connection are recycled instead of new ones
///   allocated, and eight connections with a 16 MB ceiling each cannot hold 128 MB between them.
///   It is soft: a statement that needs more memory than the budget still gets it.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
     PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000; PRAGMA temp_store=FILE; \
     PRAGMA cache_size=-16000; PRAGMA soft_heap_limit=25165824; PRAGMA wal_autocheckpoint=0;";
