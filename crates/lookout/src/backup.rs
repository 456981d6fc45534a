//! `lookout backup now|list|verify` and `lookout restore`: the command-line side of the
//! embedded database's backups (the work is in `lookout_store::backup`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lookout_core::units::{bytes as size, datetime_utc, grouped};
use lookout_store::backup::{self, BackupOptions, Target};
use lookout_store::Store;

use crate::config::Storage;

/// Takes a snapshot now. A server shipping into `dir` holds its lock; then the request goes
/// through `DIR/requests/` and the server answers it at its next checkpoint, and no data
/// directory is needed here. Otherwise the database `storage` resolves to (an existing one,
/// unless `--create`) is opened here and a run holding just a snapshot is written; nothing is
/// created before that storage is found.
pub async fn now(dir: &Path, storage: impl FnOnce() -> Result<Storage>) -> Result<()> {
    if server_ships_into(dir) {
        return through_server(dir).await;
    }
    let storage = storage()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let store = Store::open(&storage.url)
        .await
        .with_context(|| format!("opening {}", storage.display))?;
    store
        .start_backup(BackupOptions::new(dir.to_path_buf()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (_, run) = store
        .backup_run()
        .await
        .context("the backup did not start")?;
    store.close().await;
    println!("Snapshot written: run {run} in {}.", dir.display());
    Ok(())
}

/// Whether a running server holds `dir`'s lock (it ships into it). The lock file is opened,
/// never created: a directory without one has no server.
fn server_ships_into(dir: &Path) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(".lock"))
        .is_ok_and(|lock| lock.try_lock().is_err())
}

/// Asks the server shipping into `dir` for a snapshot and waits for its answer (120 s).
async fn through_server(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("requests"))
        .with_context(|| format!("creating {}", dir.join("requests").display()))?;
    let id = lookout_core::id::new_sortable_id();
    let req = dir.join("requests").join(format!("{id}.req"));
    std::fs::write(&req, b"snapshot\n")?;
    let done = req.with_extension("done");
    for _ in 0..1200 {
        if let Ok(body) = std::fs::read(&done) {
            let _ = std::fs::remove_file(&done);
            let h: backup::archive::SnapshotHeader = serde_json::from_slice(&body)?;
            println!(
                "Snapshot written by the running server: as of {}, {} of database.",
                datetime_utc(h.as_of),
                size(h.db_bytes)
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::fs::remove_file(&req);
    bail!(
        "the server shipping into {} did not answer within 120 s",
        dir.display()
    );
}

/// Prints what the directory holds.
pub fn list(dir: &Path, json: bool) -> Result<()> {
    let inv = backup::inventory(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&inv)?);
        return Ok(());
    }
    match (inv.oldest, inv.newest) {
        (Some(o), Some(n)) => println!(
            "Restorable from {} to {}.",
            datetime_utc(o),
            datetime_utc(n)
        ),
        _ => println!("{} holds no backup yet.", dir.display()),
    }
    println!(
        "{} runs, {} snapshots, {} WAL files ({}); {} in all.",
        inv.runs.len(),
        inv.snapshots.len(),
        inv.wal_files,
        size(inv.wal_bytes),
        size(inv.total_bytes)
    );
    println!(
        "{:<34} {:>4}  {:<23}  {:>10}  {:>10}",
        "RUN", "N", "AS OF", "DATABASE", "FILE"
    );
    for s in &inv.snapshots {
        println!(
            "{:<34} {:>4}  {:<23}  {:>10}  {:>10}",
            s.run,
            s.n,
            datetime_utc(s.as_of),
            size(s.db_bytes),
            size(s.file_bytes)
        );
    }
    Ok(())
}

/// Checks every file, then restores the newest state into a scratch file and runs SQLite's
/// integrity check. Returns whether everything checked out.
pub async fn verify(dir: &Path, json: bool) -> Result<bool> {
    let d = dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || backup::check_files(&d))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let scratch = tempfile::tempdir()?;
    let out = scratch.path().join("lookout.db");
    let (d, o) = (dir.to_path_buf(), out.clone());
    let restored =
        tokio::task::spawn_blocking(move || backup::restore(&d, &Target::Latest, &o)).await?;
    let mut problems = files.problems.clone();
    let mut integrity = String::from("not run");
    let mut counts = backup::Counts::new();
    match &restored {
        Ok(_) => {
            let (i, c) = check_database(&out).await?;
            if i != "ok" {
                problems.push(format!("integrity_check of the newest restore: {i}"));
            }
            integrity = i;
            counts = c;
        }
        Err(e) => problems.push(format!("restoring the newest state: {e}")),
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": problems.is_empty(), "snapshots": files.snapshots, "records": files.records,
                "problems": problems, "notes": files.notes, "integrity": integrity,
                "restored": restored.as_ref().ok(), "rows": counts,
            }))?
        );
    } else {
        println!(
            "{} snapshots and {} WAL records checked.",
            files.snapshots, files.records
        );
        for n in &files.notes {
            println!("note: {n}");
        }
        if let Ok(r) = &restored {
            println!(
                "Newest state restored (as of {}, {} transactions replayed): integrity_check {}, {} rows in {} tables.",
                datetime_utc(r.as_of),
                grouped(i64::try_from(r.transactions).unwrap_or(i64::MAX)),
                integrity,
                grouped(counts.values().sum::<i64>()),
                counts.len()
            );
        }
        for p in &problems {
            println!("PROBLEM: {p}");
        }
        if problems.is_empty() {
            println!("OK");
        }
    }
    Ok(problems.is_empty())
}

/// `PRAGMA integrity_check` and row counts of a database file.
async fn check_database(db: &Path) -> Result<(String, backup::Counts)> {
    backup::check_copy(db)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Rebuilds the database into `data_dir` as of `to` (RFC 3339) or the newest state.
pub async fn restore(dir: &Path, to: Option<&str>, data_dir: Option<PathBuf>) -> Result<()> {
    let Some(data_dir) = data_dir else {
        bail!("give the new data directory with --data-dir (restore never writes into an existing database)");
    };
    let target = match to {
        Some(t) => Target::Time(
            chrono::DateTime::parse_from_rfc3339(t)
                .with_context(|| {
                    format!("--to {t:?}: write an RFC 3339 time, e.g. 2026-11-29T10:15:00Z")
                })?
                .timestamp_millis(),
        ),
        None => Target::Latest,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let out = data_dir.join("lookout.db");
    let (d, o) = (dir.to_path_buf(), out.clone());
    let restored = tokio::task::spawn_blocking(move || backup::restore(&d, &target, &o))
        .await?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (integrity, counts) = check_database(&out).await?;
    for w in &restored.warnings {
        eprintln!("warning: {w}");
    }
    if integrity != "ok" {
        bail!("the restored database fails integrity_check: {integrity}");
    }
    println!(
        "Restored {} as of {} (snapshot {} of run {}, {} transactions replayed): integrity_check ok, {} rows in {} tables.",
        out.display(),
        datetime_utc(restored.as_of),
        restored.snapshot,
        restored.run,
        grouped(i64::try_from(restored.transactions).unwrap_or(i64::MAX)),
        grouped(counts.values().sum::<i64>()),
        counts.len()
    );
    Ok(())
}
