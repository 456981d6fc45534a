//! The agent's state directory (`--state-dir`), so a restart loses nothing the agent still owes
//! the server: the result journal behind the buffer ([`Journal`]), the last assignment list
//! (a restarted agent checks on from it while the server is down) and the agent's id (so a
//! restarted agent keeps its place in its location's pool). One agent per directory: a lock
//! file holds the owner's pid.
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

/// The default state directory for `location`: `$XDG_STATE_HOME/lookout-probe/<location>`,
/// else `~/.local/state/lookout-probe/<location>`, else `./lookout-probe-state/<location>`.
pub fn default_dir(location: &str) -> PathBuf {
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

/// An agent's claimed state directory; the lock is released when dropped.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Creates (if needed) and claims `dir`. Refused while another live process holds it.
    pub fn open(dir: &Path) -> Result<StateDir, String> {
        fs::create_dir_all(dir).map_err(|e| format!("state dir {}: {e}", dir.display()))?;
        // The cached assignments hold monitors' specs, credentials included: owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("state dir {}: {e}", dir.display()))?;
        }
        let lock = dir.join(LOCK);
        if let Ok(text) = fs::read_to_string(&lock) {
            let pid = text.trim();
            let me = std::process::id().to_string();
            if !pid.is_empty() && pid != me && Path::new("/proc").join(pid).exists() {
                return Err(format!(
                    "state dir {} is in use by process {pid}; give each agent its own --state-dir",
                    dir.display()
                ));
            }
        }
        fs::write(&lock, std::process::id().to_string())
            .map_err(|e| format!("state dir {}: {e}", dir.display()))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
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

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.dir.join(LOCK));
    }
}

#[derive(serde::Deserialize)]
struct CachedAssignments {
    location: String,
    monitors: Vec<Assignment>,
}

/// Writes `path` whole or not at all: a temporary file, fsync'd, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

/// Creates (truncates) a file only its owner may read.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
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
        if let Ok(f) = File::open(&path) {
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
        };
        j.rewrite(owed.iter())?;
        Ok((j, owed))
    }

    /// Appends a result (written out at the next [`Journal::sync`] at the latest).
    pub fn append(&mut self, r: &AgentResult) {
        let res = serde_json::to_writer(&mut self.out, r)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        self.live += 1;
        self.dirty = true;
        self.outcome(res);
    }

    /// Marks the oldest `n` results gone (uploaded, or dropped to make room).
    pub fn forget(&mut self, n: usize) {
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
        let res = if self.live == 0 || (self.dead >= COMPACT_MIN && self.dead > self.live) {
            self.rewrite(live)
        } else {
            self.out
                .flush()
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
        fs::rename(&tmp, &self.path)?;
        self.out = BufWriter::new(OpenOptions::new().append(true).open(&self.path)?);
        self.dead = 0;
        self.live = n;
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

    #[test]
    fn a_directory_held_by_a_live_process_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        // Process 1 (init) is always alive.
        fs::write(tmp.path().join(LOCK), "1").unwrap();
        let e = StateDir::open(tmp.path()).unwrap_err();
        assert!(e.contains("in use by process 1"), "{e}");
        // A stale lock (no such process) is taken over.
        fs::write(tmp.path().join(LOCK), "999999999").unwrap();
        assert!(StateDir::open(tmp.path()).is_ok());
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
    }
}
