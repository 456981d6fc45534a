//! Benchmark: durable writes per second through the group commit, on SQLite and PostgreSQL.
//!
//! Many concurrent callers each submit one small write and wait for its acknowledgement, as
//! HTTP handlers do; a write counts once it is committed (fsynced on SQLite: synchronous=FULL).
//! Two workloads: a single small row, and a change marker (its row plus its domain event).
//!
//! Run: `cargo run --release -p lookout-store --example group_commit_bench [seconds] [callers]`
//! (bench/foundation.sh runs it and prints the figures against the targets).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lookout_store::markers::{self, Marker};
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Store, Write, Writer};

const TARGET_SQLITE: f64 = 50_000.0;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let callers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open(&Store::sqlite_url_for_dir(dir.path()))
        .await
        .expect("sqlite");
    let pg_db = lookout_testkit::PgDatabase::create().await;
    let pg = Store::open(pg_db.url()).await.expect("postgres");
    println!("group commit: {callers} concurrent callers, {secs} s per run, each write acknowledged after commit");
    for (name, store) in [("sqlite", &sqlite), ("postgres", &pg)] {
        sqlx::raw_sql("CREATE TABLE bench_rows (id TEXT NOT NULL, value BIGINT NOT NULL)")
            .execute(store.pool())
            .await
            .expect("bench table");
        let (project, _) = tenancy::ensure_default_project(store)
            .await
            .expect("project");
        let row = run(store, secs, callers, |i| {
            vec![Write::Insert {
                table: "bench_rows",
                columns: &["id", "value"],
                values: vec![format!("r{i}").into(), (i as i64).into()],
            }]
        })
        .await;
        let marker = run(store, secs, callers, move |i| {
            markers::record(&Marker {
                id: lookout_core::id::new_sortable_id(),
                project_id: project.id,
                kind: "deploy".into(),
                title: format!("deploy {i}"),
                version: None,
                url: None,
                at: 0,
            })
        })
        .await;
        let target = if name == "sqlite" {
            format!("  (target >= {TARGET_SQLITE:.0}/s)")
        } else {
            String::new()
        };
        println!("{name:>9}: small row        {row:>9.0} durable writes/s{target}");
        println!("{name:>9}: marker + event   {marker:>9.0} durable writes/s");
    }
}

/// Runs `callers` loops of write-and-wait for `secs` seconds; returns acknowledged writes/s.
async fn run(
    store: &Store,
    secs: u64,
    callers: usize,
    make: impl Fn(u64) -> Vec<Write> + Send + Sync + 'static,
) -> f64 {
    let writer = Writer::start(store.clone(), WriterConfig::default());
    let make = Arc::new(make);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..callers {
        let (q, make, done, stop) = (writer.queue(), make.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c as u64 * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                match q.write(make(i)).await {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(lookout_store::StoreError::Overloaded) => tokio::task::yield_now().await,
                    Err(e) => panic!("write failed: {e}"),
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("caller");
    }
    let n = done.load(Ordering::Relaxed) as f64;
    let elapsed = started.elapsed().as_secs_f64();
    writer.shutdown().await;
    n / elapsed
}
