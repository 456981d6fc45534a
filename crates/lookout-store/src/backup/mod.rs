//! Backups of the embedded SQLite database with point-in-time recovery.
//!
//! A server started with `--backup-dir` keeps a *run* in that directory: a snapshot of the
//! database, then every WAL frame as it is committed, with the time each transaction committed
//! ([`ship`]). `lookout restore --to T` picks the newest snapshot at or before `T` and replays
//! the frames after it up to the last transaction committed at or before `T` ([`restore`]).
//! The file formats are in [`archive`], the SQLite formats they carry in [`wal`].
//!
//! Why by hand rather than Litestream (the tool the research points at): Litestream is a Go
//! binary that is neither in Debian nor reachable from our build, and Lookout already owns
//! checkpointing (see `crate::checkpoint_wal`), which is the hard part of shipping a WAL
//! correctly: with checkpoints and shipping in one place, "never copy an unshipped frame" is
//! one ordering in one function instead of a race between two processes.

pub mod archive;
pub mod catalog;
pub mod restore;
pub mod ship;
pub mod wal;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use restore::{check_files, inventory, restore, FileReport, Inventory, Restored, Target};
pub use ship::{CommitClock, Shipper};

/// How the server backs up its SQLite database.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The backup directory (another disk or a mounted share).
    pub dir: PathBuf,
    /// How far back `--to` can go (default 7 days).
    pub retention: Duration,
    /// How often a new snapshot starts (default 6 hours); between snapshots, restores replay
    /// shipped WAL.
    pub snapshot_every: Duration,
}

impl BackupOptions {
    /// The defaults for `dir`: 7 days of retention, a snapshot every 6 hours.
    pub fn new(dir: PathBuf) -> BackupOptions {
        BackupOptions {
            dir,
            retention: Duration::from_secs(7 * 86_400),
            snapshot_every: Duration::from_secs(6 * 3_600),
        }
    }
}

/// Everything that can go wrong backing up or restoring.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Another server ships into the same directory.
    #[error("{0} is in use by another Lookout process (its .lock is held)")]
    Busy(PathBuf),
    /// Something read back does not check out.
    #[error("backup does not check out: {0}")]
    Corrupt(String),
    /// A request that cannot be done as asked (the reason says why).
    #[error("{0}")]
    Refused(String),
    /// Backups of this kind need SQLite.
    #[error("--backup-dir backs up the embedded SQLite database; on PostgreSQL use pgBackRest (see docs/backups.md)")]
    NotSqlite,
}

/// An exact place in a run's stream: after frame `frame` of WAL generation `generation`,
/// shipped into WAL file `file` (or earlier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub run: String,
    pub generation: String,
    pub frame: u32,
    pub file: u32,
}

/// Row counts per table.
pub type Counts = BTreeMap<String, i64>;

/// Counts the rows of every table on `conn` (in whatever transaction it has open).
pub async fn count_rows(conn: &mut sqlx::AnyConnection) -> Result<Counts, BackupError> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = Counts::new();
    for (name,) in tables {
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let (n,): (i64,) = sqlx::query_as(&sql).fetch_one(&mut *conn).await?;
        counts.insert(name, n);
    }
    Ok(counts)
}

/// The store's backup slot: the commit clock (once backups start) and the shipper, which the
/// checkpoint task drives.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub clock: std::sync::OnceLock<std::sync::Arc<CommitClock>>,
    pub shipper: tokio::sync::Mutex<Option<Shipper>>,
    pub stop_clock: std::sync::OnceLock<tokio::sync::watch::Sender<bool>>,
}

/// Checks a database file restored from a backup: SQLite's `integrity_check` answer (`ok` when
/// sound) and the rows of every table, read on a read-only connection of its own so the copy is
/// never changed by looking at it. Used by restore drills and by `lookout restore`/`verify`.
pub async fn check_copy(db: &std::path::Path) -> Result<(String, Counts), BackupError> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .map_err(|e| BackupError::Refused(format!("opening the restored copy: {e}")))?;
    let integrity: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?
        .try_get("integrity_check")?;
    let counts = count_rows(&mut conn).await?;
    let _ = conn.close().await;
    Ok((integrity, counts))
}
