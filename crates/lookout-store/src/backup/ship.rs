//! Continuous shipping of the SQLite WAL into the backup directory, in step with checkpoints.
//!
//! The one rule that makes point-in-time recovery exact: **no frame is copied into the database
//! file before it has been shipped.** SQLite starts the WAL over (losing its frames) only once
//! every frame has been copied into the database file, so with that rule every frame that ever
//! existed is in the backup. Lookout is the only checkpointer (every connection runs with
//! `wal_autocheckpoint=0`, see `crate::checkpoint_wal`), so each checkpoint tick here:
//! 1. opens a read transaction on its own connection (the *pin*): a checkpoint cannot copy
//!    frames past a reader's snapshot;
//! 2. reads how far the WAL is committed from the wal-index and ships every frame up to there
//!    (at least the pin's snapshot);
//! 3. checkpoints (passively), then lets go of the pin.
//!
//! When the WAL grows past a few thousand frames, the tick runs with the write gate held and
//! repeats until the WAL is fully copied, so the next writer starts it over, as the restarting
//! checkpoint does without backups.
//!
//! Commit times come from [`CommitClock`]: the group commit notes the wal-index position right
//! after each commit (before it acknowledges), and a 10 ms poll notes it for every other writer.
//! A transaction's recorded time is the first note that shows it committed, so a write that was
//! acknowledged before T is restored by `--to T`, and one that started after T is not.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lookout_core::time::now_ms;
use sqlx::{AnyConnection, AnyPool, Connection};

use super::archive::{self, FileKind, RecordHeader, SnapshotHeader};
use super::wal::{self, Generation, IndexHeader, WalHeader};
use super::{BackupError, BackupOptions};

/// Where in the WAL each commit was first seen, and when.
#[derive(Debug)]
pub struct CommitClock {
    shm_path: PathBuf,
    /// The `-shm` file, opened once (see [`wal::LiveFile`] for why it is never closed).
    shm: std::sync::OnceLock<wal::LiveFile>,
    notes: Mutex<VecDeque<(i64, Generation, u32)>>,
}

impl CommitClock {
    pub(crate) fn new(shm: PathBuf) -> CommitClock {
        CommitClock {
            shm_path: shm,
            shm: std::sync::OnceLock::new(),
            notes: Mutex::default(),
        }
    }

    /// What the wal-index says now (`None` before SQLite created it).
    fn index(&self) -> Option<IndexHeader> {
        let shm = match self.shm.get() {
            Some(f) => f,
            None => {
                let f = wal::LiveFile::open(&self.shm_path).ok()?;
                self.shm.get_or_init(|| f)
            }
        };
        wal::read_index_header(shm.file())
    }

    /// Notes how far the WAL is committed now. Called right after a commit returns.
    pub fn note(&self) {
        if let Some(idx) = self.index() {
            self.push(idx.generation, idx.max_frame);
        }
    }

    fn push(&self, generation: Generation, max_frame: u32) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        // The time is read under the lock so notes are in time order.
        let t = now_ms();
        if notes
            .back()
            .is_some_and(|&(_, g, m)| g == generation && m >= max_frame)
        {
            return;
        }
        notes.push_back((t, generation, max_frame));
        if notes.len() > 100_000 {
            notes.pop_front();
        }
    }

    /// When frame `frame` of `generation` was first seen committed; `None` if never noted.
    fn committed_by(&self, generation: &Generation, frame: u32) -> Option<i64> {
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes
            .iter()
            .find(|(_, g, m)| g == generation && *m >= frame)
            .map(|&(t, _, _)| t)
    }

    /// Forgets notes about frames of `generation` already shipped (notes are in time order, so
    /// they lead the queue).
    fn forget_through(&self, generation: &Generation, frame: u32) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        while notes
            .front()
            .is_some_and(|(_, g, m)| g == generation && *m <= frame)
        {
            notes.pop_front();
        }
    }

    /// Forgets every note about a generation that is over (SQLite started the WAL over).
    fn forget_generation(&self, generation: &Generation) {
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        notes.retain(|(_, g, _)| g != generation);
    }

    /// Polls the wal-index every 10 ms until `stop` says so, noting each new position.
    pub(crate) async fn poll(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        while !*stop.borrow() {
            self.note();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Shipping state that file work needs (kept apart from the pin so it can move to a blocking
/// thread).
#[derive(Debug)]
struct Files {
    /// The database file, opened once (see [`wal::LiveFile`]).
    db: wal::LiveFile,
    wal: PathBuf,
    run_dir: PathBuf,
    /// Number of the newest file in the run.
    n: u32,
    /// The open WAL-records file, if one was started since the last snapshot.
    out: Option<(File, u64)>,
    /// Shipped so far: the generation, its last shipped frame, and the checksum chain after it.
    generation: Option<Generation>,
    shipped: u32,
    chain: Option<[u32; 2]>,
    /// Commit time of the newest shipped transaction.
    last_commit: i64,
    /// The database's size in pages after the newest shipped commit.
    last_pages: Option<u32>,
    last_record_at: i64,
}

/// Starts a new file once the current one passes this size.
const ROTATE_BYTES: u64 = 256 << 20;
/// An idle stream writes an empty record this often, so a restore can tell "nothing happened"
/// from "shipping stopped".
const HEARTBEAT_MS: i64 = 10_000;

/// A running shipper: one run directory, its pin connection, and the lock on the directory.
#[derive(Debug)]
pub struct Shipper {
    options: BackupOptions,
    run: String,
    pin: AnyConnection,
    files: Arc<Mutex<Files>>,
    clock: Arc<CommitClock>,
    last_snapshot: i64,
    _lock: File,
    /// Held beside the database while shipping, so other processes on it do not checkpoint.
    _shipping: File,
}

impl Shipper {
    /// Takes the directory's lock, opens a new run and writes its first snapshot.
    pub(crate) async fn start(
        url: &str,
        pragmas: &str,
        db: PathBuf,
        options: BackupOptions,
        clock: Arc<CommitClock>,
    ) -> Result<Shipper, BackupError> {
        std::fs::create_dir_all(options.dir.join("runs"))?;
        std::fs::create_dir_all(options.dir.join("requests"))?;
        // Every run holds a whole copy of the database: the directory is the owner's alone,
        // like the data directory.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) =
                std::fs::set_permissions(&options.dir, std::fs::Permissions::from_mode(0o700))
            {
                tracing::warn!(dir = %options.dir.display(), error = %e, "Could not make the backup directory private.");
            }
        }
        let lock = File::create(options.dir.join(".lock"))?;
        if lock.try_lock().is_err() {
            return Err(BackupError::Busy(options.dir.clone()));
        }
        let run = format!(
            "{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"),
            &lookout_core::id::new_sortable_id()[..6].to_lowercase()
        );
        let run_dir = options.dir.join("runs").join(&run);
        std::fs::create_dir_all(&run_dir)?;
        archive::sync_dir(&options.dir.join("runs"))?;
        let shipping = File::create(shipping_marker(&db))?;
        if shipping.try_lock().is_err() {
            return Err(BackupError::Refused(format!(
                "another process already ships {} to a backup directory",
                db.display()
            )));
        }
        let mut pin = AnyConnection::connect(url).await?;
        // The store's settings: a busy timeout, and never a checkpoint of its own.
        sqlx::Executor::execute(&mut pin, pragmas).await?;
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        let files = Files {
            db: wal::LiveFile::open(&db)?,
            wal,
            run_dir,
            n: 0,
            out: None,
            generation: None,
            shipped: 0,
            chain: None,
            last_commit: 0,
            last_pages: None,
            last_record_at: 0,
        };
        let mut shipper = Shipper {
            options,
            run,
            pin,
            files: Arc::new(Mutex::new(files)),
            clock,
            last_snapshot: 0,
            _lock: lock,
            _shipping: shipping,
        };
        // The first snapshot: the database file plus whatever committed frames are not yet
        // copied into it.
        // The caller holds the checkpoint slot, so nothing copies frames meanwhile.
        let (_, idx) = shipper.pin_and_read().await?;
        shipper.unpin().await;
        shipper.resync(idx);
        shipper.snapshot_blocking().await?;
        tracing::info!(run = %shipper.run, dir = %shipper.options.dir.display(), "Backup run started.");
        Ok(shipper)
    }

    /// The run's name (its directory under `runs/`).
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The backup directory.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Closes the pin connection (the directory lock goes with the shipper).
    pub(crate) async fn close(self) {
        let _ = self.pin.close().await;
    }

    async fn pin_and_read(&mut self) -> Result<(i64, IndexHeader), BackupError> {
        let t0 = now_ms();
        sqlx::query("BEGIN").execute(&mut self.pin).await?;
        let pinned = sqlx::query("SELECT count(*) FROM sqlite_master")
            .execute(&mut self.pin)
            .await;
        if let Err(e) = pinned {
            self.unpin().await;
            return Err(e.into());
        }
        let idx = self.clock.index().unwrap_or(IndexHeader {
            generation: [0; 8],
            max_frame: 0,
        });
        self.clock.push(idx.generation, idx.max_frame);
        Ok((t0, idx))
    }

    /// Restarts the stream at `idx` (the start of a run, or after the WAL stopped checking out
    /// against what was shipped): the next snapshot will hold everything up to there.
    fn resync(&mut self, idx: IndexHeader) {
        let mut f = self.files.lock().unwrap_or_else(|e| e.into_inner());
        f.generation = Some(idx.generation);
        f.shipped = idx.max_frame;
        f.chain = None;
        f.last_commit = now_ms();
        f.last_pages = None;
    }

    async fn unpin(&mut self) {
        if let Err(e) = sqlx::query("ROLLBACK").execute(&mut self.pin).await {
            tracing::warn!(error = %e, "Backup pin did not roll back.");
        }
    }

    /// One checkpoint tick with shipping. Returns the WAL's frames and how many are copied into
    /// the database file, as `PRAGMA wal_checkpoint` does.
    pub(crate) async fn tick(&mut self, pool: &AnyPool) -> Result<(i64, i64), BackupError> {
        let (t0, idx) = self.pin_and_read().await?;
        let shipped = self.ship(t0, idx).await;
        // Checkpoint only after shipping, and only while pinned: the pin keeps the checkpoint
        // within what was shipped even if the ship failed.
        let frames = checkpoint_pool(pool).await;
        self.unpin().await;
        if let Err(e) = shipped {
            // The stream has a gap from here; a snapshot at the current position starts it
            // again, and a restore never crosses the gap (it checks continuity).
            tracing::error!(error = %e, "Backup shipping failed; taking a new snapshot.");
            self.resync(idx);
            self.snapshot_blocking().await?;
            return Ok(frames);
        }
        if self.due_for_snapshot() {
            self.snapshot_blocking().await?;
        }
        Ok(frames)
    }

    /// Whether a periodic snapshot or a `lookout backup now` request is due.
    fn due_for_snapshot(&self) -> bool {
        let every = self.options.snapshot_every.as_millis() as i64;
        now_ms() - self.last_snapshot >= every || !pending_requests(&self.options.dir).is_empty()
    }

    async fn ship(&mut self, covered_until: i64, idx: IndexHeader) -> Result<(), BackupError> {
        let files = self.files.clone();
        let clock = self.clock.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
            f.ship(&clock, covered_until, idx)
        })
        .await
        .map_err(|e| BackupError::Io(std::io::Error::other(e)))?
    }

    /// Writes a snapshot now (and answers pending `lookout backup now` requests). Call between
    /// ticks: nothing else checkpoints meanwhile, so the database file holds still.
    async fn snapshot_blocking(&mut self) -> Result<SnapshotHeader, BackupError> {
        let files = self.files.clone();
        let clock = self.clock.clone();
        let options = self.options.clone();
        let header = tokio::task::spawn_blocking(move || {
            let mut f = files.lock().unwrap_or_else(|e| e.into_inner());
            let header = f.snapshot(&clock)?;
            f.prune(&options)?;
            answer_requests(&options.dir, &header);
            Ok::<_, BackupError>(header)
        })
        .await
        .map_err(|e| BackupError::Io(std::io::Error::other(e)))??;
        self.last_snapshot = now_ms();
        Ok(header)
    }

    /// Ships everything committed so far and checkpoints, holding the write gate if given so
    /// that the WAL ends fully copied (then the next writer starts it over). Used when the WAL
    /// has grown and at shutdown.
    pub(crate) async fn drain(&mut self, pool: &AnyPool) -> Result<(i64, i64), BackupError> {
        let mut frames = (0, 0);
        for _ in 0..20 {
            frames = self.tick(pool).await?;
            if frames.0 == frames.1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(frames)
    }

    /// Marks a reference point for a restore drill: with the write lock held (so nothing
    /// commits meanwhile), ships everything committed and runs `count` on the same snapshot.
    /// Returns the position the counts belong to.
    pub(crate) async fn mark(&mut self) -> Result<(super::Position, super::Counts), BackupError> {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.pin)
            .await?;
        let result = self.mark_pinned().await;
        self.unpin().await;
        result
    }

    async fn mark_pinned(&mut self) -> Result<(super::Position, super::Counts), BackupError> {
        let t0 = now_ms();
        let idx = self
            .clock
            .index()
            .ok_or_else(|| BackupError::Corrupt("no wal-index to mark".into()))?;
        self.clock.push(idx.generation, idx.max_frame);
        self.ship(t0, idx).await?;
        let counts = super::count_rows(&mut self.pin).await?;
        let f = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let position = super::Position {
            run: self.run.clone(),
            generation: archive::gen_hex(&idx.generation),
            frame: idx.max_frame,
            file: f.n,
        };
        Ok((position, counts))
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)` on the pool: (frames in the WAL, frames copied).
async fn checkpoint_pool(pool: &AnyPool) -> (i64, i64) {
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
    {
        Ok((_, log, done)) => (log, done),
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed.");
            (0, 0)
        }
    }
}

impl Files {
    /// Ships frames `shipped+1 ..= idx.max_frame` as records of whole transactions, at most
    /// [`wal::CHUNK_FRAMES`] frames each unless one transaction is longer (or a heartbeat).
    fn ship(
        &mut self,
        clock: &CommitClock,
        covered_until: i64,
        idx: IndexHeader,
    ) -> Result<(), BackupError> {
        let mut wal_file = match File::open(&self.wal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(header) = wal::read_header(&mut wal_file)? else {
            return Ok(());
        };
        if header.generation != idx.generation {
            // The WAL is being started over and its header is not written yet: next tick.
            return Ok(());
        }
        if self.generation != Some(idx.generation) {
            // SQLite started the WAL over. It does so only once every frame was copied into
            // the database, and nothing was copied unshipped, so the old generation is whole.
            if let Some(old) = self.generation {
                clock.forget_generation(&old);
            }
            self.generation = Some(idx.generation);
            self.shipped = 0;
            self.chain = Some(header.checksum);
        }
        if self.chain.is_none() {
            self.chain = Some(chain_through(&mut wal_file, &header, self.shipped)?);
        }
        let from = self.shipped + 1;
        let to = idx.max_frame;
        if to < from {
            if covered_until - self.last_record_at >= HEARTBEAT_MS {
                let heartbeat = RecordHeader {
                    gen: archive::gen_hex(&idx.generation),
                    first: from,
                    last: self.shipped,
                    page_size: header.page_size,
                    commits: Vec::new(),
                    covered_until,
                };
                self.append(&heartbeat, &[])?;
            }
            return Ok(());
        }
        // In records of whole transactions of at most wal::CHUNK_FRAMES frames, so a WAL of
        // gigabytes (a large transaction, a checkpoint held back by a long reader) is never
        // read into memory at once. A record that is not the last claims coverage only to its
        // last commit: a restore that stops after it must not claim the later commits' time.
        let chain = self.chain.unwrap_or(header.checksum);
        let whole = wal::read_in_pieces(
            &mut wal_file,
            &header,
            chain,
            from,
            to,
            |first, frames, after| {
                let last = first + (frames.len() / header.frame_size()) as u32 - 1;
                self.ship_record(clock, &idx, &header, covered_until, first, last, frames)?;
                self.shipped = last;
                self.chain = Some(after);
                clock.forget_through(&idx.generation, last);
                Ok::<(), BackupError>(())
            },
        )?;
        if !whole {
            return Err(BackupError::Corrupt(format!(
                "WAL frames {from}..={to} do not check out against the shipped chain"
            )));
        }
        Ok(())
    }

    /// Ships frames `first..=last` (whole transactions, `frames`) as one record.
    #[allow(clippy::too_many_arguments)]
    fn ship_record(
        &mut self,
        clock: &CommitClock,
        idx: &IndexHeader,
        header: &wal::WalHeader,
        covered_until: i64,
        first: u32,
        last: u32,
        frames: &[u8],
    ) -> Result<(), BackupError> {
        let fallback = now_ms();
        let mut commits = Vec::new();
        for (i, frame) in frames.chunks_exact(header.frame_size()).enumerate() {
            if wal::frame_commit_size(frame) != 0 {
                self.last_pages = Some(wal::frame_commit_size(frame));
                let n = first + i as u32;
                let t = clock.committed_by(&idx.generation, n).unwrap_or(fallback);
                commits.push((n, t));
            }
        }
        let covered_until = if last < idx.max_frame {
            commits
                .last()
                .map_or(covered_until, |&(_, t)| t.min(covered_until))
        } else {
            covered_until
        };
        let record = RecordHeader {
            gen: archive::gen_hex(&idx.generation),
            first,
            last,
            page_size: header.page_size,
            commits,
            covered_until,
        };
        self.append(&record, frames)?;
        if let Some(&(_, t)) = record.commits.last() {
            self.last_commit = self.last_commit.max(t);
        }
        Ok(())
    }

    /// Appends a record to the run's current WAL file (starting one if needed) and fsyncs it.
    fn append(&mut self, header: &RecordHeader, frames: &[u8]) -> Result<(), BackupError> {
        let bytes = archive::encode_record(header, frames)?;
        if self
            .out
            .as_ref()
            .is_some_and(|(_, len)| *len >= ROTATE_BYTES)
        {
            self.out = None;
        }
        if self.out.is_none() {
            self.n += 1;
            let path = self.run_dir.join(archive::file_name(FileKind::Wal, self.n));
            let file = File::create(&path)?;
            archive::sync_dir(&self.run_dir)?;
            self.out = Some((file, 0));
        }
        let (file, len) = self.out.as_mut().expect("opened above");
        file.write_all(&bytes)?;
        file.sync_data()?;
        *len += bytes.len() as u64;
        self.last_record_at = header.covered_until;
        Ok(())
    }

    /// Writes a snapshot of the state after the last shipped frame.
    ///
    /// The image is the database file with every shipped frame of the current WAL generation
    /// applied over it. They are all still in the WAL: it cannot start over before they are
    /// copied, and nothing is copied unshipped. The file alone is not the image: copies taken
    /// right after a checkpoint failed `integrity_check` under load (seen in the backup tests),
    /// and a checkpoint grows the file ahead to the newest size. Applying the frames in order
    /// settles every page the generation wrote at its shipped version, and the last commit's
    /// size settles the length. Call between ticks: nothing checkpoints meanwhile.
    fn snapshot(&mut self, clock: &CommitClock) -> Result<SnapshotHeader, BackupError> {
        let taken_at = now_ms();
        let idx = clock.index();
        let image = self.run_dir.join("snapshot.image");
        self.db.copy_to(&image)?;
        let page_size = self.db.page_size()?;
        let mut db = std::fs::OpenOptions::new().write(true).open(&image)?;
        if let (Some(generation), Some(idx)) = (self.generation, idx) {
            if idx.generation == generation && self.shipped > 0 {
                // Every shipped frame of this generation, applied in order over the file: pages
                // the generation wrote end at their newest shipped version whatever the last
                // checkpoint copied, and the file ends at the size the last commit recorded
                // (a checkpoint grows the file ahead to the newest size, past what was shipped).
                let mut wal_file = File::open(&self.wal)?;
                let header = wal::read_header(&mut wal_file)?
                    .filter(|h| h.generation == generation)
                    .ok_or_else(|| BackupError::Corrupt("WAL changed under a snapshot".into()))?;
                // A chunk of whole transactions at a time (wal::read_in_pieces).
                let mut chain = header.checksum;
                let whole = wal::read_in_pieces(
                    &mut wal_file,
                    &header,
                    header.checksum,
                    1,
                    self.shipped,
                    |_, frames, after| {
                        for tx in wal::transactions(frames, header.page_size).unwrap_or_default() {
                            wal::apply_transaction(&mut db, tx, header.page_size)?;
                        }
                        chain = after;
                        Ok::<(), BackupError>(())
                    },
                )?;
                if !whole {
                    return Err(BackupError::Corrupt("WAL frames do not check out".into()));
                }
                self.chain = Some(chain);
            }
        }
        if let Some(pages) = self.last_pages {
            db.set_len(u64::from(pages) * u64::from(page_size))?;
        }
        db.sync_all()?;
        drop(db);
        self.out = None;
        self.n += 1;
        let path = self
            .run_dir
            .join(archive::file_name(FileKind::Snapshot, self.n));
        let header = archive::write_snapshot(
            &path,
            &image,
            SnapshotHeader {
                gen: archive::gen_hex(&self.generation.unwrap_or([0; 8])),
                frame: self.shipped,
                page_size,
                as_of: if self.last_commit > 0 {
                    self.last_commit
                } else {
                    taken_at
                },
                taken_at,
                db_bytes: 0,
                sha256: String::new(),
            },
        )?;
        std::fs::remove_file(&image)?;
        tracing::info!(
            path = %path.display(),
            db_bytes = header.db_bytes,
            "Backup snapshot written."
        );
        Ok(header)
    }

    /// Deletes what the retention window no longer needs: everything before the newest
    /// snapshot that is older than the window (that snapshot is the window's starting point).
    fn prune(&self, options: &BackupOptions) -> Result<(), BackupError> {
        let horizon = now_ms() - options.retention.as_millis() as i64;
        super::restore::prune(&options.dir, horizon)
    }
}

/// The checksum chain after frame `n` of the WAL (reading and checking frames `1..=n`, a chunk
/// at a time).
fn chain_through(wal: &mut File, header: &WalHeader, n: u32) -> Result<[u32; 2], BackupError> {
    let mut chain = header.checksum;
    let mut at = 1;
    while at <= n {
        let end = at.saturating_add(wal::CHUNK_FRAMES - 1).min(n);
        chain = wal::read_frames(wal, header, chain, at, end)?
            .map(|(_, c)| c)
            .ok_or_else(|| BackupError::Corrupt("WAL frames do not check out".into()))?;
        at = end + 1;
    }
    Ok(chain)
}

/// The file a shipper holds locked beside the database (`lookout.db-shipping`).
fn shipping_marker(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-shipping", db.display()))
}

/// Whether some process (this one included) ships `db`'s WAL now.
pub(crate) fn shipping_elsewhere(db: &Path) -> bool {
    match File::open(shipping_marker(db)) {
        Ok(f) => f.try_lock_shared().is_err(),
        Err(_) => false,
    }
}

/// `lookout backup now` requests waiting in `DIR/requests/`.
fn pending_requests(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("requests"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "req"))
                .collect()
        })
        .unwrap_or_default()
}

/// Answers each pending request with the snapshot just written (`<id>.done`, JSON).
fn answer_requests(dir: &Path, header: &SnapshotHeader) {
    for req in pending_requests(dir) {
        let done = req.with_extension("done");
        let body = serde_json::to_vec(header).unwrap_or_default();
        if std::fs::write(&done, body).is_ok() {
            let _ = std::fs::remove_file(&req);
        }
    }
}
