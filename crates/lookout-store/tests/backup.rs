//! Backups of the SQLite store: point-in-time restores hold exactly what was acknowledged by
//! then, across WAL restarts and periodic snapshots; drills' reference points restore exactly;
//! damage is found; retention keeps the window whole; one directory, one shipper.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_core::time::now_ms;
use lookout_store::backup::{self, BackupError, BackupOptions, Target};
use lookout_store::events;
use lookout_store::writer::WriterConfig;
use lookout_store::{Store, Writer};
use serde_json::json;

/// (id, when its write was sent, when it was acknowledged), ms.
type Sent = Arc<Mutex<Vec<(i64, i64, i64)>>>;

async fn open(dir: &Path) -> Store {
    Store::open(&Store::sqlite_url_for_dir(dir)).await.unwrap()
}

fn options(dir: &Path) -> BackupOptions {
    BackupOptions {
        snapshot_every: Duration::from_millis(700),
        ..BackupOptions::new(dir.to_path_buf())
    }
}

/// Fewest acknowledged writes a write phase makes, however long they take: with one in five
/// padded to 300 kB, that is about 70 MB, so the WAL passes 32 MB and starts over at least once
/// even on a machine too busy to write much in the phase's time.
const MIN_WRITES: usize = 1_200;

/// Writes numbered events from four tasks for `ms` (and at least [`MIN_WRITES`] of them),
/// recording send and acknowledgement times.
async fn write_for(store: &Store, ms: u64, next: Arc<std::sync::atomic::AtomicI64>) -> Sent {
    let writer = Writer::start(store.clone(), WriterConfig::default());
    let sent: Sent = Arc::default();
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (q, sent, next) = (writer.queue(), sent.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            // For `ms`, and on a slow or busy machine until enough writes exist for the
            // restore checks to mean something (a count, not a timing, decides).
            while tokio::time::Instant::now() < until || sent.lock().unwrap().len() < MIN_WRITES {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let start = now_ms();
                // Some writes are large, so the WAL passes 32 MB and starts over during the test.
                let pad = "x".repeat(if id % 5 == 0 { 300_000 } else { 100 });
                q.write(vec![events::publish(
                    "backup.test",
                    None,
                    Some(id.to_string()),
                    &json!({ "pad": pad }),
                )])
                .await
                .unwrap();
                sent.lock().unwrap().push((id, start, now_ms()));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    writer.shutdown().await;
    sent
}

/// The ids of the test's events in a restored database, and whether it checks out.
async fn restored_ids(db_dir: &Path) -> Vec<i64> {
    let store = open(db_dir).await;
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok", "the restored database passes integrity_check");
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT subject FROM domain_events WHERE kind = 'backup.test'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    store.close().await;
    let mut ids: Vec<i64> = rows.into_iter().map(|(s,)| s.parse().unwrap()).collect();
    ids.sort();
    ids
}

async fn restore_to(backups: &Path, target: Target) -> (Vec<i64>, backup::Restored) {
    let out = tempfile::tempdir().unwrap();
    let restored = backup::restore(backups, &target, &out.path().join("lookout.db")).unwrap();
    (restored_ids(out.path()).await, restored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restores_to_a_moment_hold_every_acknowledged_write_and_nothing_later() {
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let store = open(data.path()).await;
    store.start_backup(options(backups.path())).await.unwrap();
    // A second process on the same database (a CLI verb) must not checkpoint meanwhile: it
    // would copy frames the shipper has not seen, and SQLite could then drop them.
    let cli = open(data.path()).await;
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sent = write_for(&store, 3_000, next.clone()).await;
    cli.close().await;
    // Let shipping catch up, then look at what the directory holds.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let inv = backup::inventory(backups.path()).unwrap();
    assert!(inv.snapshots.len() >= 3, "periodic snapshots: {inv:?}");
    let sent = sent.lock().unwrap().clone();
    assert!(sent.len() > 300, "only {} writes", sent.len());
    let first = sent.iter().map(|s| s.2).min().unwrap();
    let last = sent.iter().map(|s| s.2).max().unwrap();
    for fraction in [0.2, 0.5, 0.8] {
        let t = first + ((last - first) as f64 * fraction) as i64;
        let (ids, restored) = restore_to(backups.path(), Target::Time(t)).await;
        for &(id, start, ack) in &sent {
            if ack < t {
                assert!(
                    ids.binary_search(&id).is_ok(),
                    "write {id} acknowledged at {ack} is missing from a restore to {t}: {restored:?}, {} ids restored",
                    ids.len()
                );
            }
            if start > t {
                assert!(
                    ids.binary_search(&id).is_err(),
                    "write {id} sent at {start} is in a restore to {t}"
                );
            }
        }
        assert!(restored.as_of <= t);
        assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
    }
    // A drill's reference point restores to exactly the counted state.
    let (position, counts) = store.backup_mark().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    backup::restore(
        backups.path(),
        &Target::Position(position),
        &out.path().join("lookout.db"),
    )
    .unwrap();
    let restored = open(out.path()).await;
    let mut conn = restored.pool().acquire().await.unwrap();
    assert_eq!(backup::count_rows(&mut conn).await.unwrap(), counts);
    drop(conn);
    restored.close().await;
    // After a clean stop, the latest restore holds every write.
    store.close().await;
    let (ids, _) = restore_to(backups.path(), Target::Latest).await;
    let mut all: Vec<i64> = sent.iter().map(|s| s.0).collect();
    all.sort();
    assert_eq!(ids, all);
    let report = backup::check_files(backups.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.records >= 3, "{report:?}");
    // The WAL started over during the run (so restores crossed generations).
    let mut generations = std::collections::BTreeSet::new();
    for run in backup::archive::list_runs(backups.path()).unwrap() {
        for f in run
            .files
            .iter()
            .filter(|f| f.kind == backup::archive::FileKind::Wal)
        {
            let (records, _) = backup::archive::decode_records(&std::fs::read(&f.path).unwrap());
            generations.extend(records.into_iter().map(|r| r.header.gen));
        }
    }
    assert!(generations.len() >= 2, "{generations:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_across_restarts_stand_alone_and_damage_is_reported() {
    let data = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let next = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let mut cut = 0;
    for _ in 0..2 {
        let store = open(data.path()).await;
        store
            .start_backup(BackupOptions::new(backups.path().to_path_buf()))
            .await
            .unwrap();
        // One directory, one shipper: a second store on it is refused.
        let other = open(data.path()).await;
        assert!(matches!(
            other
                .start_backup(BackupOptions::new(backups.path().to_path_buf()))
                .await,
            Err(BackupError::Busy(_))
        ));
        other.close().await;
        write_for(&store, 500, next.clone()).await;
        store.close().await;
        if cut == 0 {
            cut = now_ms();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let inv = backup::inventory(backups.path()).unwrap();
    assert_eq!(inv.runs.len(), 2);
    // Between the runs: everything of the first run.
    let (ids, _) = restore_to(backups.path(), Target::Time(cut)).await;
    let first_run_ids = ids.len();
    assert!(first_run_ids > 20);
    assert_eq!(ids, (0..first_run_ids as i64).collect::<Vec<_>>());
    let (ids, _) = restore_to(backups.path(), Target::Latest).await;
    assert_eq!(
        ids.len() as i64,
        next.load(std::sync::atomic::Ordering::SeqCst)
    );
    // Before the first snapshot there is nothing to restore, and the error says so.
    let out = tempfile::tempdir().unwrap();
    let err = backup::restore(
        backups.path(),
        &Target::Time(1_000),
        &out.path().join("x.db"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("before the oldest restorable moment"),
        "{err}"
    );
    // Retention: a horizon after the second run's snapshot drops the first run entirely.
    backup::restore::prune(backups.path(), now_ms()).unwrap();
    assert_eq!(backup::inventory(backups.path()).unwrap().runs.len(), 1);
    // A flipped byte in a snapshot is reported.
    let runs = backup::archive::list_runs(backups.path()).unwrap();
    let snap = &runs[0].files[0].path;
    let mut bytes = std::fs::read(snap).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(snap, bytes).unwrap();
    let report = backup::check_files(backups.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
}
