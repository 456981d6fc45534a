//! The agent's state directory (`--state-dir`), so a restart loses nothing the agent still owes
//! the server: the result journal behind the buffer ([`Journal`]), the last assignment list
//! (a restarted agent checks on from it while the server is down) and the agent's id (so a
//! restarted agent keeps its place in its location's pool). One agent per directory: a lock
//! file holds a kernel advisory lock for the agent's lifetime (and its pid, for the message).
//!
//! The journal is an append-only file of JSON lines, one result a line, whose first `dead`
//! lines were uploaded or dropped; `dead` is kept in a small side file. Appends are flushed and
//! fsync'd once a second ([`Journal::sync`]), so a crash loses at most that second of checks;
//! the file is rewritten with only the live results when the dead part outgrows them, so it
//! stays within about twice the buffer's capacity. A line that does not parse (a torn write at
//! a crash) is skipped with a log line; an unreadable side file means nothing is known to be
//! uploaded, and the server stores a re-sent result once anyway.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::agent::{AgentResult, Assignment};

/// The results journal's file name in the state directory.
pub const JOURNAL: &str = "results.jsonl";
const DEAD: &str = "results.uploaded";
const ASSIGNMENTS: &str = "assignments.json";
const AGENT_ID: &str = "agent-id";
const LOCK: &str = "lock";

/// The default state directory for `location`: systemd's `$STATE_DIRECTORY` (its first path)
/// when set, else `$XDG_STATE_HOME/lookout-probe/<location>`, else
/// `~/.local/state/lookout-probe/<location>`, else `./lookout-probe-state/<location>`.
pub fn default_dir(location: &str) -> PathBuf {
    if let Some(first) = std::env::var("STATE_DIRECTORY")
        .ok()
        .and_then(|v| v.split(':').next().map(str::to_string))
        .filter(|v| !v.is_empty())
    {
        return PathBuf::from(first);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        });
    match base {
        Some(b) => b.join("lookout-probe").join(location),
        None => PathBuf::from("lookout-probe-state").join(location),
    }
}

/// Why a state directory cannot be claimed.
#[derive(Debug)]
pub enum OpenError {
    /// Another agent holds it.
    InUse(String),
    /// It cannot be created, locked or used (permissions, a full or read-only disk, not ours).
    Unusable(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::InUse(m) | OpenError::Unusable(m) => f.write_str(m),
        }
    }
}

/// An agent's claimed state directory; the lock is released when dropped (or the process
/// ends, however it ends).
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The open lock file whose advisory lock claims the directory.
    _lock: File,
}

impl StateDir {
    /// Creates (if needed) and claims `dir`. Refused while another live process holds it.
    pub fn open(dir: &Path) -> Result<StateDir, OpenError> {
        let unusable =
            |e: std::io::Error| OpenError::Unusable(format!("state dir {}: {e}", dir.display()));
        fs::create_dir_all(dir).map_err(unusable)?;
        // The cached assignments hold monitors' specs, credentials included: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            use std::os::unix::fs::PermissionsExt;
            // Created or found, it must be a real directory (not a symlink to elsewhere) owned
            // by this agent's user: another user's directory could be read or swapped under us.
            let meta = fs::symlink_metadata(dir).map_err(unusable)?;
            if !meta.file_type().is_dir() {
                return Err(OpenError::Unusable(format!(
                    "state dir {} is not a directory (a symlink?)",
                    dir.display()
                )));
            }
            let me = rustix::process::geteuid().as_raw();
            if meta.uid() != me {
                return Err(OpenError::Unusable(format!(
                    "state dir {} belongs to uid {}, not this agent's uid {me}",
                    dir.display(),
                    meta.uid()
                )));
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(unusable)?;
        }
        // A kernel advisory lock on an open file, held for the agent's lifetime: the kernel
        // releases it on any exit, kill -9 included, so a crashed agent never blocks its restart
        // (no pid liveness guess, which PID reuse fools). The pid inside only names the holder.
        let path = dir.join(LOCK);
        let mut lock = no_follow(OpenOptions::new().read(true).write(true).create(true))
            .truncate(false)
            .open(&path)
            .map_err(unusable)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                return Err(OpenError::InUse(format!(
                    "state dir {} is in use by {by}; give each agent its own --state-dir",
                    dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(unusable(e)),
        }
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.write_all(std::process::id().to_string().as_bytes()));
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The agent id kept from an earlier run, or `fresh` (kept for the next one).
    pub fn agent_id(&self, fresh: impl FnOnce() -> String) -> String {
        let path = self.dir.join(AGENT_ID);
        if let Ok(id) = fs::read_to_string(&path) {
            let id = id.trim();
            if !id.is_empty() && id.len() <= 200 {
                return id.to_string();
            }
        }
        let id = fresh();
        if let Err(e) = write_atomic(&path, id.as_bytes()) {
            tracing::warn!(error = %e, "Could not keep the agent id in the state dir.");
        }
        id
    }

    /// The assignment list of `location` kept from the last run (none when missing, for another
    /// location, or unreadable: logged).
    pub fn assignments(&self, location: &str) -> Option<Vec<Assignment>> {
        let text = fs::read(self.dir.join(ASSIGNMENTS)).ok()?;
        match serde_json::from_slice::<CachedAssignments>(&text) {
            Ok(c) if c.location == location => Some(c.monitors),
            Ok(c) => {
                tracing::warn!(cached = %c.location, "The cached assignments are another location's; ignored.");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "The cached assignments do not parse; ignored.");
                None
            }
        }
    }

    /// Keeps `monitors` as `location`'s assignment list for a restart.
    pub fn keep_assignments(&self, location: &str, monitors: &[Assignment]) {
        let body = serde_json::json!({"location": location, "monitors": monitors});
        if let Err(e) = write_atomic(&self.dir.join(ASSIGNMENTS), body.to_string().as_bytes()) {
            tracing::warn!(error = %e, "Could not cache the assignments in the state dir.");
        }
    }
}

impl StateDir {
    /// Removes the cached assignment list (the token was refused: its specs are not ours).
    pub fn forget_assignments(&self) {
        match fs::remove_file(self.dir.join(ASSIGNMENTS)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, "Could not remove the cached assignments."),
        }
    }
}

#[derive(serde::Deserialize)]
struct CachedAssignments {
    location: String,
    monitors: Vec<Assignment>,
}

/// Writes `path` whole or not at all: a temporary file, fsync'd, renamed over it, and the
/// directory fsync'd so the rename itself survives a crash.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    rename_durably(&tmp, path)
}

/// Renames `from` over `to` and fsyncs their directory.
fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::rename(from, to)?;
    #[cfg(unix)]
    if let Some(dir) = to.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Opens without following a symlink at the last path part (unix): a link planted in the
/// directory cannot redirect the agent's writes.
fn no_follow(o: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    o
}

/// Creates a new file only its owner may read, replacing a leftover one (a crash's temporary
/// file): removed first, then created exclusively, so nothing else is opened in its place.
fn create_private(path: &Path) -> std::io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    no_follow(&mut o).open(path)
}

/// The results journal behind the buffer.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    dead_path: PathBuf,
    out: BufWriter<File>,
    /// Lines at the head of the file already uploaded or dropped.
    dead: usize,
    /// Lines after them (the buffer's results).
    live: usize,
    /// Appends since the last fsync.
    dirty: bool,
    /// A write failed; logged once until one works again.
    failing: bool,
    /// A write or flush failed, so the file may end in a half-written record and `live` no
    /// longer counts its lines: nothing more is appended until the next sync rewrites the file
    /// from the buffer.
    needs_rewrite: bool,
}

/// Rewrite the journal once its dead head is this many lines and outgrows the live part.
const COMPACT_MIN: usize = 1_000;

impl Journal {
    /// Opens the journal in `dir` and reads the results still owed, oldest first: lines that do
    /// not parse are skipped and counted in the log. The file is rewritten with just those.
    pub fn open(dir: &StateDir) -> std::io::Result<(Journal, Vec<AgentResult>)> {
        let path = dir.path().join(JOURNAL);
        let dead_path = dir.path().join(DEAD);
        let dead: usize = fs::read_to_string(&dead_path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let mut owed = Vec::new();
        let mut corrupt = 0usize;
        if let Ok(f) = no_follow(OpenOptions::new().read(true)).open(&path) {
            for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
                let line = line?;
                if i < dead || line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<AgentResult>(&line) {
                    Ok(r) => owed.push(r),
                    Err(_) => corrupt += 1,
                }
            }
        }
        if corrupt > 0 {
            tracing::warn!(
                lines = corrupt,
                file = %path.display(),
                "Skipped results journal lines that do not parse (a write torn by a crash?)."
            );
        }
        if !owed.is_empty() {
            tracing::info!(
                results = owed.len(),
                "Results from before the restart are buffered for upload."
            );
        }
        let mut j = Journal {
            out: BufWriter::new(create_private(&path.with_extension("jsonl.new"))?),
            path,
            dead_path,
            dead: 0,
            live: 0,
            dirty: false,
            failing: false,
            needs_rewrite: false,
        };
        j.rewrite(owed.iter())?;
        Ok((j, owed))
    }

    /// Appends a result (written out at the next [`Journal::sync`] at the latest).
    pub fn append(&mut self, r: &AgentResult) {
        self.dirty = true;
        if self.needs_rewrite {
            return;
        }
        let res = serde_json::to_writer(&mut self.out, r)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        if res.is_ok() {
            self.live += 1;
        } else {
            self.needs_rewrite = true;
        }
        self.outcome(res);
    }

    /// Marks the oldest `n` results gone (uploaded, or dropped to make room).
    pub fn forget(&mut self, n: usize) {
        self.dirty = true;
        if self.needs_rewrite {
            // The counts are void until the rewrite, which writes only what is live.
            return;
        }
        let n = n.min(self.live);
        self.dead += n;
        self.live -= n;
        self.dirty = true;
    }

    /// Flushes and fsyncs appends, records how many head lines are gone, and rewrites the file
    /// when that head outgrows the live part. `live` are the buffer's results, oldest first.
    pub fn sync<'a>(&mut self, live: impl ExactSizeIterator<Item = &'a AgentResult>) {
        if !self.dirty {
            return;
        }
        let res = if self.needs_rewrite
            || self.live == 0
            || (self.dead >= COMPACT_MIN && self.dead > self.live)
        {
            self.rewrite(live)
        } else {
            let flushed = self.out.flush();
            if flushed.is_err() {
                self.needs_rewrite = true;
            }
            flushed
                .and_then(|()| self.out.get_ref().sync_data())
                .and_then(|()| write_atomic(&self.dead_path, self.dead.to_string().as_bytes()))
        };
        if res.is_ok() {
            self.dirty = false;
        }
        self.outcome(res);
    }

    /// Replaces the file with `live` only (nothing dead), durably.
    fn rewrite<'a>(
        &mut self,
        live: impl ExactSizeIterator<Item = &'a AgentResult>,
    ) -> std::io::Result<()> {
        let tmp = self.path.with_extension("jsonl.new");
        let mut w = BufWriter::new(create_private(&tmp)?);
        let n = live.len();
        for r in live {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        // The side file first: a crash between the two leaves a count of 0 against the old
        // file (results sent twice, stored once) rather than a count that skips owed results.
        write_atomic(&self.dead_path, b"0")?;
        rename_durably(&tmp, &self.path)?;
        self.out = BufWriter::new(no_follow(OpenOptions::new().append(true)).open(&self.path)?);
        self.dead = 0;
        self.live = n;
        self.needs_rewrite = false;
        Ok(())
    }

    fn outcome(&mut self, res: std::io::Result<()>) {
        match res {
            Ok(()) => {
                if self.failing {
                    tracing::info!("The results journal is written again.");
                }
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(error = %e, file = %self.path.display(), "Cannot write the results journal; results are kept in memory only.");
                }
                self.failing = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::buffer::sample as r;

    #[test]
    fn results_not_uploaded_survive_a_restart_and_uploaded_ones_do_not() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let dir = StateDir::open(tmp.path()).unwrap();
            let (mut j, owed) = Journal::open(&dir).unwrap();
            assert!(owed.is_empty());
            let all: Vec<AgentResult> = (0..5).map(r).collect();
            for x in &all {
                j.append(x);
            }
            j.forget(2);
            j.sync(all[2..].iter());
        }
        let dir = StateDir::open(tmp.path()).unwrap();
        let (_, owed) = Journal::open(&dir).unwrap();
        let at: Vec<i64> = owed.iter().map(|x| x.scheduled_at).collect();
        assert_eq!(at, [2, 3, 4]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_is_repaired_from_the_buffer_at_the_next_sync() {
        let tmp = tempfile::tempdir().unwrap();
        let all: Vec<AgentResult> = (0..6).map(r).collect();
        {
            let dir = StateDir::open(tmp.path()).unwrap();
            let (mut j, _) = Journal::open(&dir).unwrap();
            for x in &all[..3] {
                j.append(x);
            }
            j.sync(all[..3].iter());
            // Appends start failing (a full disk): a record may be half written, so nothing
            // more is appended and the line counts are void.
            j.out = BufWriter::with_capacity(
                8,
                OpenOptions::new().write(true).open("/dev/full").unwrap(),
            );
            for x in &all[3..] {
                j.append(x);
            }
            assert!(j.needs_rewrite);
            j.forget(2);
            // The next sync writes the file anew from the buffer (results 2 to 5).
            j.sync(all[2..].iter());
            assert!(!j.needs_rewrite);
        }
        let dir = StateDir::open(tmp.path()).unwrap();
        let (_, owed) = Journal::open(&dir).unwrap();
        let at: Vec<i64> = owed.iter().map(|x| x.scheduled_at).collect();
        assert_eq!(at, [2, 3, 4, 5]);
    }

    #[test]
    fn a_full_buffer_keeps_the_journal_bounded() {
        use crate::probe::buffer::Buffer;
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let (j, owed) = Journal::open(&dir).unwrap();
        let capacity = 300;
        let mut b = Buffer::with_journal(capacity, j, owed);
        let lines = || {
            fs::read_to_string(tmp.path().join(JOURNAL))
                .unwrap()
                .lines()
                .count()
        };
        let mut most = 0;
        // The server is down: ten times the capacity is checked, the oldest dropped for room.
        for i in 0..(10 * capacity as i64) {
            b.push(r(i));
            if i % 7 == 0 {
                b.sync();
                most = most.max(lines());
            }
        }
        b.sync();
        assert!(
            most <= 2 * capacity + COMPACT_MIN,
            "{most} lines for a buffer of {capacity}"
        );
        assert_eq!(b.len(), capacity);
        drop(b);
        let (_, owed) = Journal::open(&dir).unwrap();
        assert_eq!(owed.len(), capacity, "a restart finds the buffer");
    }

    #[test]
    fn a_torn_line_is_skipped_and_the_rest_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let good = serde_json::to_string(&r(7)).unwrap();
        fs::write(
            tmp.path().join(JOURNAL),
            format!("{good}\n{{\"monitor_id\":1,\"sched\n{good}\n"),
        )
        .unwrap();
        fs::write(tmp.path().join(DEAD), "garbage").unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let (_, owed) = Journal::open(&dir).unwrap();
        assert_eq!(owed.len(), 2);
        // Rewritten clean: the next start reads the same two without a skipped line.
        let text = fs::read_to_string(tmp.path().join(JOURNAL)).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn the_journal_is_compacted_once_its_uploaded_head_outgrows_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        let (mut j, _) = Journal::open(&dir).unwrap();
        let all: Vec<AgentResult> = (0..(COMPACT_MIN as i64 + 10)).map(r).collect();
        for x in &all {
            j.append(x);
        }
        j.forget(COMPACT_MIN + 5);
        j.sync(all[COMPACT_MIN + 5..].iter());
        let text = fs::read_to_string(tmp.path().join(JOURNAL)).unwrap();
        assert_eq!(text.lines().count(), 5);
    }

    /// Run by [`a_directory_held_by_a_killed_process_is_free_again`] in a child process:
    /// claims the directory named in the environment, then waits to be killed.
    #[test]
    fn hold_the_state_dir_until_killed() {
        let Some(dir) = std::env::var_os("LOOKOUT_TEST_HOLD_STATE_DIR") else {
            return;
        };
        let _held = StateDir::open(Path::new(&dir)).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(600));
    }

    #[test]
    fn a_directory_held_by_a_killed_process_is_free_again() {
        let tmp = tempfile::tempdir().unwrap();
        // Another agent in this process is refused, with the holder named.
        let first = StateDir::open(tmp.path()).unwrap();
        let e = StateDir::open(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("in use by process {}", std::process::id())),
            "{e}"
        );
        drop(first);
        // A child process holds it and is killed with SIGKILL (no clean-up runs): free again,
        // whoever has that pid now.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "probe::state::tests::hold_the_state_dir_until_killed",
                "--nocapture",
            ])
            .env("LOOKOUT_TEST_HOLD_STATE_DIR", tmp.path())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let pid = child.id().to_string();
        // The child writes its pid once it holds the lock.
        while fs::read_to_string(tmp.path().join(LOCK)).unwrap_or_default() != pid {
            assert!(
                std::time::Instant::now() < deadline,
                "the child never held the dir"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let e = StateDir::open(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("in use by process {pid}")), "{e}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(StateDir::open(tmp.path()).is_ok());
        assert!(tmp.path().join(LOCK).exists(), "the lock file is left");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_state_dir_is_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = StateDir::open(&link).unwrap_err();
        assert!(matches!(e, OpenError::Unusable(_)), "{e}");
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn cached_assignments_are_kept_per_location() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path()).unwrap();
        dir.keep_assignments("eu-west", &[]);
        assert_eq!(dir.assignments("eu-west").map(|a| a.len()), Some(0));
        assert!(dir.assignments("us-east").is_none());
        assert_eq!(dir.agent_id(|| "a-1".into()), "a-1");
        assert_eq!(dir.agent_id(|| "a-2".into()), "a-1");
        dir.forget_assignments();
        assert!(dir.assignments("eu-west").is_none());
    }
}
