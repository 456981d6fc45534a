//! Reading a backup directory back: what it holds, whether it checks out, rebuilding the
//! database as of a moment, and pruning what the retention window no longer needs.

use std::path::Path;

use serde::Serialize;

use super::archive::{self, FileKind, Record, Run, SnapshotHeader, Tail};
use super::wal;
use super::{BackupError, Position};

/// Where a restore should stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Everything the backup holds.
    Latest,
    /// Every transaction committed at or before this time (ms), nothing after.
    Time(i64),
    /// Exactly the state a drill's reference point saw.
    Position(Position),
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Restored {
    /// The run and snapshot it started from.
    pub run: String,
    pub snapshot: u32,
    /// When the newest restored transaction committed (the snapshot's time if none was
    /// replayed), ms.
    pub as_of: i64,
    /// Transactions replayed on top of the snapshot.
    pub transactions: u64,
    /// Up to when the run's shipping is known complete (ms): a target after this may miss
    /// writes that were never shipped (a crash, a full disk).
    pub covered_until: i64,
    /// Why the restore stopped short of what was asked, if it did.
    pub warnings: Vec<String>,
}

/// One snapshot in the inventory.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapshotEntry {
    pub run: String,
    pub n: u32,
    pub as_of: i64,
    pub taken_at: i64,
    pub db_bytes: u64,
    pub file_bytes: u64,
}

/// What a backup directory holds.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Inventory {
    pub runs: Vec<String>,
    pub snapshots: Vec<SnapshotEntry>,
    /// Records of shipped WAL and their total size.
    pub wal_files: usize,
    pub wal_bytes: u64,
    /// Bytes in all files.
    pub total_bytes: u64,
    /// The restorable window: the oldest snapshot's time to the newest shipped moment, ms.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
}

fn io(e: std::io::Error) -> BackupError {
    BackupError::Io(e)
}

/// Snapshot headers of a run, in order.
fn snapshots(run: &Run) -> Vec<(u32, SnapshotHeader, u64)> {
    run.files
        .iter()
        .filter(|f| f.kind == FileKind::Snapshot)
        .filter_map(|f| {
            let (h, _) = archive::read_snapshot_header(&f.path).ok()?;
            let len = std::fs::metadata(&f.path).ok()?.len();
            Some((f.n, h, len))
        })
        .collect()
}

/// The records of a run's WAL files after file `after`, in order, with each file's tail.
fn records_after(run: &Run, after: u32) -> Result<Vec<(Vec<Record>, Tail, String)>, BackupError> {
    let mut out = Vec::new();
    for f in run
        .files
        .iter()
        .filter(|f| f.kind == FileKind::Wal && f.n > after)
    {
        let bytes = std::fs::read(&f.path).map_err(io)?;
        let (records, tail) = archive::decode_records(&bytes);
        out.push((records, tail, f.path.display().to_string()));
    }
    Ok(out)
}

/// Lists what `dir` holds.
pub fn inventory(dir: &Path) -> Result<Inventory, BackupError> {
    let mut inv = Inventory::default();
    for run in archive::list_runs(dir).map_err(io)? {
        inv.runs.push(run.name.clone());
        for (n, h, len) in snapshots(&run) {
            inv.oldest = Some(inv.oldest.map_or(h.as_of, |o| o.min(h.as_of)));
            inv.newest = Some(inv.newest.map_or(h.as_of, |o| o.max(h.as_of)));
            inv.total_bytes += len;
            inv.snapshots.push(SnapshotEntry {
                run: run.name.clone(),
                n,
                as_of: h.as_of,
                taken_at: h.taken_at,
                db_bytes: h.db_bytes,
                file_bytes: len,
            });
        }
        for f in run.files.iter().filter(|f| f.kind == FileKind::Wal) {
            let len = std::fs::metadata(&f.path).map_err(io)?.len();
            inv.wal_files += 1;
            inv.wal_bytes += len;
            inv.total_bytes += len;
        }
        if let Some(last) = run.files.iter().rev().find(|f| f.kind == FileKind::Wal) {
            if let Some(h) = archive::last_record_header(&last.path).map_err(io)? {
                let t = h.covered_until;
                inv.newest = Some(inv.newest.map_or(t, |o| o.max(t)));
            }
        }
    }
    Ok(inv)
}

/// Rebuilds the database at `out` (which must not exist) as of `target`.
pub fn restore(dir: &Path, target: &Target, out: &Path) -> Result<Restored, BackupError> {
    if out.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists; restore never overwrites a database",
            out.display()
        )));
    }
    let runs = archive::list_runs(dir).map_err(io)?;
    // The newest snapshot that the target may start from.
    let mut chosen: Option<(&Run, u32, SnapshotHeader)> = None;
    for run in &runs {
        if let Target::Position(p) = target {
            if run.name != p.run {
                continue;
            }
        }
        for (n, h, _) in snapshots(run) {
            let fits = match target {
                Target::Latest => true,
                Target::Time(t) => h.as_of <= *t,
                Target::Position(p) => n < p.file || (n == p.file && h.frame <= p.frame),
            };
            if fits {
                chosen = Some((run, n, h));
            }
        }
    }
    let Some((run, n, snap)) = chosen else {
        let oldest = inventory(dir)?.oldest;
        return Err(BackupError::Refused(match (target, oldest) {
            (_, None) => format!("{} holds no snapshot", dir.display()),
            (Target::Time(t), Some(o)) => format!(
                "{} is before the oldest restorable moment, {}",
                lookout_core::time::iso(*t),
                lookout_core::time::iso(o)
            ),
            _ => "no snapshot fits that position".to_string(),
        }));
    };
    let snap_path = run
        .files
        .iter()
        .find(|f| f.kind == FileKind::Snapshot && f.n == n)
        .map(|f| f.path.clone())
        .expect("chosen from this run");
    archive::restore_snapshot(&snap_path, out).map_err(io)?;
    let mut db = std::fs::OpenOptions::new()
        .write(true)
        .open(out)
        .map_err(io)?;
    let mut done = Restored {
        run: run.name.clone(),
        snapshot: n,
        as_of: snap.as_of,
        transactions: 0,
        covered_until: snap.as_of,
        warnings: Vec::new(),
    };
    let mut generation = snap.gen.clone();
    let mut frame = snap.frame;
    let reached = |generation: &str, frame: u32| match target {
        Target::Position(p) => p.generation == generation && p.frame <= frame,
        _ => false,
    };
    'files: for (records, tail, path) in records_after(run, n)? {
        for record in records {
            let h = &record.header;
            // A position at frame 0 of a generation is reached as that generation begins.
            let enters_target = matches!(target, Target::Position(p)
                if p.frame == 0 && p.generation == h.gen && h.gen != generation);
            if reached(&generation, frame) || enters_target {
                break 'files;
            }
            // Each record continues the last: the next frame of the same generation, or the
            // first frame of a new one (SQLite started the WAL over).
            let continues = (h.gen == generation && Some(h.first) == frame.checked_add(1))
                || (h.gen != generation && h.first == 1);
            if !continues {
                done.warnings.push(format!(
                    "the run's records stop continuing at {path} (frame {} of {}, expected {} of {}); restored up to the gap",
                    h.first, h.gen, frame.wrapping_add(1), generation
                ));
                break 'files;
            }
            if h.last < h.first {
                done.covered_until = done.covered_until.max(h.covered_until);
                generation = h.gen.clone();
                frame = h.last;
                continue;
            }
            let frames = record.frames().map_err(io)?;
            let txs = wal::transactions(&frames, h.page_size)
                .filter(|t| t.len() == h.commits.len())
                .ok_or_else(|| BackupError::Corrupt(format!("a record in {path} is malformed")))?;
            let frame_size = (wal::FRAME_HEADER + h.page_size as usize) as u32;
            let mut at = h.first - 1;
            for (tx, &(commit_frame, t)) in txs.iter().zip(&h.commits) {
                if let Target::Time(limit) = target {
                    if t > *limit {
                        // The stream goes past the target, so it is complete up to it.
                        done.covered_until = done.covered_until.max(*limit);
                        break 'files;
                    }
                }
                at += tx.len() as u32 / frame_size;
                if at != commit_frame {
                    return Err(BackupError::Corrupt(format!(
                        "a record in {path} lists commit frame {commit_frame} where frame {at} commits"
                    )));
                }
                wal::apply_transaction(&mut db, tx, h.page_size).map_err(io)?;
                done.transactions += 1;
                done.as_of = done.as_of.max(t);
                generation = h.gen.clone();
                frame = commit_frame;
                if reached(&generation, frame) {
                    break 'files;
                }
            }
            generation = h.gen.clone();
            frame = h.last;
            done.covered_until = done.covered_until.max(h.covered_until);
        }
        if let Tail::Bad(why) = tail {
            done.warnings.push(format!(
                "{path} ends in a damaged record ({why}); a crash while shipping leaves one"
            ));
        }
    }
    db.sync_all().map_err(io)?;
    match target {
        Target::Time(t) if *t > done.covered_until => done.warnings.push(format!(
            "the backup is known complete only up to {}; writes after that may be missing",
            lookout_core::time::iso(done.covered_until)
        )),
        Target::Position(p) if !reached(&generation, frame) && p.frame != 0 => {
            return Err(BackupError::Corrupt(format!(
                "the backup never reached frame {} of {}",
                p.frame, p.generation
            )))
        }
        _ => {}
    }
    Ok(done)
}

/// Deletes everything before the newest snapshot taken at or before `horizon` (ms): that
/// snapshot becomes the oldest restorable point, so the window `horizon..now` stays whole.
pub fn prune(dir: &Path, horizon: i64) -> Result<(), BackupError> {
    let runs = archive::list_runs(dir).map_err(io)?;
    let mut base: Option<(usize, u32)> = None;
    for (i, run) in runs.iter().enumerate() {
        for (n, h, _) in snapshots(run) {
            if h.as_of <= horizon {
                base = Some((i, n));
            }
        }
    }
    let Some((base_run, base_n)) = base else {
        return Ok(());
    };
    for (i, run) in runs.iter().enumerate() {
        if i < base_run {
            std::fs::remove_dir_all(&run.dir).map_err(io)?;
            tracing::info!(run = %run.name, "Backup run past retention deleted.");
        } else if i == base_run {
            for f in run.files.iter().filter(|f| f.n < base_n) {
                std::fs::remove_file(&f.path).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// What checking every file found.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FileReport {
    pub snapshots: usize,
    pub records: usize,
    /// Problems, one line each; empty when everything checks out.
    pub problems: Vec<String>,
    /// Damaged tails that a crash while shipping explains (the newest file of a run).
    pub notes: Vec<String>,
}

/// Checks every snapshot against its checksum and every run's records for checksums and
/// continuity.
pub fn check_files(dir: &Path) -> Result<FileReport, BackupError> {
    let mut report = FileReport::default();
    let scratch = tempfile::tempdir().map_err(io)?;
    let runs = archive::list_runs(dir).map_err(io)?;
    for run in &runs {
        for f in &run.files {
            if f.kind == FileKind::Snapshot {
                let to = scratch.path().join("check.db");
                match archive::restore_snapshot(&f.path, &to) {
                    Ok(_) => report.snapshots += 1,
                    Err(e) => report.problems.push(format!("{}: {e}", f.path.display())),
                }
                let _ = std::fs::remove_file(&to);
            }
        }
        let newest_wal = run
            .files
            .iter()
            .rev()
            .find(|f| f.kind == FileKind::Wal)
            .map(|f| f.n);
        let mut position: Option<(String, u32)> = None;
        for f in run.files.iter() {
            if f.kind == FileKind::Snapshot {
                if let Ok((h, _)) = archive::read_snapshot_header(&f.path) {
                    position = Some((h.gen, h.frame));
                }
                continue;
            }
            let bytes = std::fs::read(&f.path).map_err(io)?;
            let (records, tail) = archive::decode_records(&bytes);
            for r in &records {
                report.records += 1;
                let h = &r.header;
                if let Some((g, frame)) = &position {
                    let ok = (h.gen == *g && Some(h.first) == frame.checked_add(1))
                        || (h.gen != *g && h.first == 1);
                    if !ok {
                        report.problems.push(format!(
                            "{}: records jump from frame {frame} of {g} to frame {} of {}",
                            f.path.display(),
                            h.first,
                            h.gen
                        ));
                    }
                }
                if h.last >= h.first {
                    if let Err(e) = r.frames() {
                        report.problems.push(format!("{}: {e}", f.path.display()));
                    }
                }
                position = Some((h.gen.clone(), h.last.max(h.first.saturating_sub(1))));
            }
            if let Tail::Bad(why) = tail {
                let line = format!("{}: {why}", f.path.display());
                if Some(f.n) == newest_wal {
                    report.notes.push(line);
                } else {
                    report.problems.push(line);
                }
            }
        }
    }
    Ok(report)
}
