//! The storage suite, run against SQLite and PostgreSQL alike.
//!
//! Each `both!` test becomes `sqlite::name` and `postgres::name`; the PostgreSQL variant runs on a
//! fresh database of the server on this machine and fails (never skips) when it is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_core::Role;
use lookout_store::events::{self, Consumer, DomainEvent, Handler};
use lookout_store::jobs::{self, JobHandler, Scheduler, SchedulerConfig};
use lookout_store::markers::{self, Marker};
use lookout_store::tenancy;
use lookout_store::writer::WriterConfig;
use lookout_store::{Backend, Cursor, Store, StoreError, Write, Writer};
use serde_json::json;
use sqlx::Row;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    migrations_are_idempotent_and_versioned,
    acknowledged_group_commits_are_all_stored_in_order,
    a_bad_write_fails_alone_and_the_rest_of_its_batch_commits,
    projects_get_a_dsn_key_and_unique_slugs,
    users_log_in_only_with_their_password,
    tokens_are_stored_hashed_and_stop_working_when_revoked,
    pagination_walks_every_row_once,
    one_off_jobs_run_once_and_failures_retry_with_the_error_kept,
    periodic_jobs_run_on_their_cadence,
    three_schedulers_run_each_job_exactly_once,
    a_crashed_schedulers_job_is_taken_over_after_its_lease,
    three_consumers_apply_each_event_exactly_once_in_order,
    retention_bounds_events_by_age_and_count,
    large_events_are_processed_in_batches_of_bounded_size,
    write_transactions_abandoned_midway_leave_no_lock_behind,
);

async fn migrations_are_idempotent_and_versioned(f: Fixture) {
    assert_eq!(
        f.store.schema_version().await.unwrap(),
        lookout_store::SCHEMA_VERSION
    );
    // A second open (a restart, or a second replica) applies nothing and keeps the data.
    tenancy::create_user(&f.store, "a@example.com", "pw-123456", Role::Admin)
        .await
        .unwrap();
    let again = Store::open(&f.url).await.unwrap();
    assert_eq!(
        again.schema_version().await.unwrap(),
        lookout_store::SCHEMA_VERSION
    );
    assert_eq!(tenancy::user_count(&again).await.unwrap(), 1);
}

/// A caller of `begin_write` can be dropped at any of its awaits: a `select!` that saw shutdown,
/// a request whose client hung up. None of those may leave a connection inside a transaction
/// (on SQLite it would hold the write lock, and every later write would fail and the server
/// never stop).
async fn write_transactions_abandoned_midway_leave_no_lock_behind(f: Fixture) {
    use std::future::Future;
    for polls in 1..12 {
        for pause_us in [0, 50, 200, 1_000] {
            let mut begin = Box::pin(f.store.begin_write());
            for _ in 0..polls {
                let ready = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(begin.as_mut().poll(cx).is_ready())
                })
                .await;
                if ready {
                    break;
                }
                // Lets the connection's worker get on with what was asked of it.
                tokio::time::sleep(Duration::from_micros(pause_us)).await;
            }
            drop(begin);
        }
    }
    // More writes than the pool holds connections, so each one is used again.
    for n in 0..20_i64 {
        let write = async {
            let mut tx = f.store.begin_write().await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS abandoned_probe (n BIGINT)")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO abandoned_probe (n) VALUES ($1)")
                .bind(n)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(Duration::from_secs(20), write)
            .await
            .unwrap_or_else(|_| panic!("write {n} waited 20 s for a lock"))
            .unwrap_or_else(|e| panic!("write {n} failed: {e}"));
    }
}

fn marker(project_id: i64, i: usize) -> Marker {
    Marker {
        id: lookout_core::id::new_sortable_id(),
        project_id,
        kind: "deploy".into(),
        title: format!("deploy {i}"),
        version: Some(format!("1.0.{i}")),
        url: None,
        at: i as i64,
    }
}

async fn acknowledged_group_commits_are_all_stored_in_order(f: Fixture) {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let queue = writer.queue();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let q = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                q.write(markers::record(&marker(project.id, t * 40 + i)))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    writer.shutdown().await;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM markers")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 2000);
    let evs = events::read_after(&f.store, 0, 5000, Some(project.id))
        .await
        .unwrap();
    let created = evs.iter().filter(|e| e.kind == "marker.created").count();
    assert_eq!(created, 2000);
    assert!(evs.windows(2).all(|w| w[0].seq < w[1].seq));
}

async fn a_bad_write_fails_alone_and_the_rest_of_its_batch_commits(f: Fixture) {
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let q = writer.queue();
    let good = marker(project.id, 1);
    let mut dup = marker(project.id, 2);
    dup.id = good.id.clone();
    let other = marker(project.id, 3);
    // Submitted together, so they likely share a batch; the duplicate key must fail alone.
    let (a, b, c) = tokio::join!(
        q.write(markers::record(&good)),
        q.write(markers::record(&dup)),
        q.write(markers::record(&other))
    );
    assert!(a.is_ok() && c.is_ok(), "good writes failed: {a:?} {c:?}");
    assert!(
        matches!(b, Err(StoreError::Db(_))),
        "duplicate id was accepted: {b:?}"
    );
    // A write to a project that does not exist violates the foreign key.
    let orphan = q.write(markers::record(&marker(999_999, 4))).await;
    assert!(orphan.is_err());
    writer.shutdown().await;
    let page = markers::list(&f.store, project.id, &Cursor::default())
        .await
        .unwrap();
    let titles: Vec<_> = page.items.iter().map(|m| m.title.as_str()).collect();
    assert_eq!(titles, vec!["deploy 3", "deploy 1"]);
}

async fn projects_get_a_dsn_key_and_unique_slugs(f: Fixture) {
    let (default, created) = tenancy::ensure_default_project(&f.store).await.unwrap();
    assert!(created);
    let (again, created_again) = tenancy::ensure_default_project(&f.store).await.unwrap();
    assert!(!created_again);
    assert_eq!(again.id, default.id);
    let key = default.public_key.clone().unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(
        tenancy::project_for_key(&f.store, &key).await.unwrap(),
        Some(default.id)
    );
    assert_eq!(
        tenancy::project_for_key(&f.store, "0".repeat(32).as_str())
            .await
            .unwrap(),
        None
    );
    let p = tenancy::create_project(
        &f.store,
        default.org_id,
        "Checkout API",
        None,
        Some("python"),
    )
    .await
    .unwrap();
    assert_eq!(p.slug, "checkout-api");
    assert_eq!(
        tenancy::get_project(&f.store, p.id).await.unwrap().name,
        "Checkout API"
    );
    let dup = tenancy::create_project(&f.store, default.org_id, "Checkout  API!", None, None).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(matches!(
        tenancy::get_project(&f.store, 424242).await,
        Err(StoreError::NotFound)
    ));
    // A scrape job's `project` key is looked up by slug directly, not in a page of the list.
    assert_eq!(
        tenancy::project_id_by_slug(&f.store, "checkout-api")
            .await
            .unwrap(),
        Some(p.id)
    );
    assert_eq!(
        tenancy::project_id_by_slug(&f.store, "nope").await.unwrap(),
        None
    );
    let evs = events::read_after(&f.store, 0, 100, None).await.unwrap();
    assert_eq!(
        evs.iter().filter(|e| e.kind == "project.created").count(),
        2
    );
}

async fn users_log_in_only_with_their_password(f: Fixture) {
    let u = tenancy::create_user(&f.store, " Ada@Example.com ", "s3cret-pass", Role::Member)
        .await
        .unwrap();
    assert_eq!(u.email, "ada@example.com");
    assert!(
        tenancy::verify_login(&f.store, "ada@example.com", "s3cret-pass")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        tenancy::verify_login(&f.store, "ADA@example.com", "s3cret-pass")
            .await
            .unwrap()
            .is_some()
    );
    assert!(tenancy::verify_login(&f.store, "ada@example.com", "wrong")
        .await
        .unwrap()
        .is_none());
    assert!(
        tenancy::verify_login(&f.store, "bob@example.com", "s3cret-pass")
            .await
            .unwrap()
            .is_none()
    );
    let dup = tenancy::create_user(&f.store, "ada@example.com", "x", Role::Viewer).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let stored: String = sqlx::query("SELECT password_hash FROM users")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("password_hash");
    assert!(stored.starts_with("$argon2id$") && !stored.contains("s3cret"));
    // Sessions: the cookie value works, its stored form is a hash, logout ends it.
    let (sid, s) = tenancy::create_session(&f.store, &u, 60_000).await.unwrap();
    let found = tenancy::session(&f.store, &sid).await.unwrap().unwrap();
    assert_eq!(found.user.id, u.id);
    assert_eq!(found.csrf_token, s.csrf_token);
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE id_hash = $1")
        .bind(&sid)
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0, "session id stored in the clear");
    tenancy::delete_session(&f.store, &sid).await.unwrap();
    assert!(tenancy::session(&f.store, &sid).await.unwrap().is_none());
    let (expired, _) = tenancy::create_session(&f.store, &u, -1).await.unwrap();
    assert!(tenancy::session(&f.store, &expired)
        .await
        .unwrap()
        .is_none());
    assert_eq!(tenancy::delete_expired_sessions(&f.store).await.unwrap(), 1);
}

async fn tokens_are_stored_hashed_and_stop_working_when_revoked(f: Fixture) {
    let (secret, t) = tenancy::create_token(&f.store, "ci", Role::Member, None)
        .await
        .unwrap();
    assert!(secret.starts_with("lk_"));
    let found = tenancy::token_for_secret(&f.store, &secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, found.role), (t.id, Role::Member));
    let leaked: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM api_tokens WHERE token_hash = $1 OR name = $1")
            .bind(&secret)
            .fetch_one(f.store.pool())
            .await
            .unwrap()
            .get("n");
    assert_eq!(leaked, 0);
    assert!(
        tenancy::ensure_token(&f.store, "lk_bootstrap_value", "bootstrap", Role::Admin)
            .await
            .unwrap()
    );
    assert!(
        !tenancy::ensure_token(&f.store, "lk_bootstrap_value", "bootstrap", Role::Admin)
            .await
            .unwrap()
    );
    tenancy::revoke_token(&f.store, t.id).await.unwrap();
    assert!(tenancy::token_for_secret(&f.store, &secret)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        tenancy::revoke_token(&f.store, t.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn pagination_walks_every_row_once(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap();
    for i in 0..7 {
        tenancy::create_project(&f.store, org.id, &format!("p{i}"), None, None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = Cursor {
        after: None,
        limit: Some(3),
    };
    loop {
        let page = tenancy::list_projects(&f.store, &cursor).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|p| p.name.clone()));
        match page.next {
            Some(n) => cursor.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
}

/// A handler that counts runs per job id, failing the first `fail_first` runs of each.
fn counting_handler(runs: Arc<Mutex<HashMap<String, usize>>>, fail_first: usize) -> JobHandler {
    Arc::new(move |job| {
        let runs = runs.clone();
        Box::pin(async move {
            let n = {
                let mut m = runs.lock().unwrap();
                let e = m.entry(job.id.clone()).or_default();
                *e += 1;
                *e
            };
            if n <= fail_first {
                Err(format!("boom {n}"))
            } else {
                Ok(())
            }
        })
    })
}

fn fast() -> SchedulerConfig {
    SchedulerConfig {
        lease: Duration::from_millis(900),
        poll: Duration::from_millis(20),
        concurrency: 4,
    }
}

async fn one_off_jobs_run_once_and_failures_retry_with_the_error_kept(f: Fixture) {
    let ok_runs = Arc::new(Mutex::new(HashMap::new()));
    let flaky_runs = Arc::new(Mutex::new(HashMap::new()));
    let ok = jobs::enqueue(&f.store, "ok", &json!({"n": 1}), 0)
        .await
        .unwrap();
    let flaky = jobs::enqueue(&f.store, "flaky", &json!({}), 0)
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sched = Scheduler::new(f.store.clone(), "s1", fast())
        .handle("ok", counting_handler(ok_runs.clone(), 0))
        .handle("flaky", counting_handler(flaky_runs.clone(), 1));
    let task = tokio::spawn(sched.run(async {
        let _ = stop_rx.await;
    }));
    // The flaky job fails once, then is retried after a 2 s backoff.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let st = jobs::state(&f.store, &flaky).await.unwrap().unwrap();
        if st.done_at.is_some() {
            assert_eq!(st.attempts, 2);
            assert_eq!(st.last_error, None);
            break;
        }
        if st.attempts == 1 && st.last_error.is_some() {
            assert_eq!(st.last_error.as_deref(), Some("boom 1"));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "flaky job never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(ok_runs.lock().unwrap().get(&ok), Some(&1));
    assert_eq!(flaky_runs.lock().unwrap().get(&flaky), Some(&2));
    assert!(jobs::state(&f.store, &ok)
        .await
        .unwrap()
        .unwrap()
        .done_at
        .is_some());
}

async fn periodic_jobs_run_on_their_cadence(f: Fixture) {
    jobs::ensure_periodic(&f.store, "tick", "tick", 200)
        .await
        .unwrap();
    jobs::ensure_periodic(&f.store, "tick", "tick", 200)
        .await
        .unwrap();
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sched = Scheduler::new(f.store.clone(), "s1", fast())
        .handle("tick", counting_handler(runs.clone(), 0));
    let task = tokio::spawn(sched.run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    stop_tx.send(()).unwrap();
    task.await.unwrap();
    let n = runs.lock().unwrap().get("tick").copied().unwrap_or(0);
    // Due at once, then every 200 ms for ~1.1 s: about 6 runs; generous bounds for a busy machine.
    assert!((3..=7).contains(&n), "ran {n} times");
}

async fn three_schedulers_run_each_job_exactly_once(f: Fixture) {
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(
            jobs::enqueue(&f.store, "work", &json!({ "i": i }), 0)
                .await
                .unwrap(),
        );
    }
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for s in 0..3 {
        // Each scheduler gets its own pool, as separate replicas would.
        let store = Store::open(&f.url).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        // A lease long enough to cover a completion queued behind the other replicas' commits
        // (each an fsync on SQLite); takeover after expiry is the next test's subject.
        let config = SchedulerConfig {
            lease: Duration::from_secs(5),
            ..fast()
        };
        let sched = Scheduler::new(store, &format!("replica-{s}"), config)
            .handle("work", counting_handler(runs.clone(), 0));
        tasks.push(tokio::spawn(sched.run(async {
            let _ = rx.await;
        })));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while runs.lock().unwrap().len() < ids.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not all run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give any double-claim a chance to show before stopping.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "job {id} ran {:?} times",
            runs.get(id)
        );
    }
    let owners: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT lease_owner FROM jobs WHERE lease_owner IS NOT NULL")
            .fetch_all(f.store.pool())
            .await
            .unwrap();
    assert!(owners.is_empty(), "leases left behind: {owners:?}");
}

async fn a_crashed_schedulers_job_is_taken_over_after_its_lease(f: Fixture) {
    let id = jobs::enqueue(&f.store, "slow", &json!({}), 0)
        .await
        .unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let hang: JobHandler = {
        let started = started.clone();
        Arc::new(move |_| {
            let started = started.clone();
            Box::pin(async move {
                started.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            })
        })
    };
    let crashed = tokio::spawn(
        Scheduler::new(f.store.clone(), "doomed", fast())
            .handle("slow", hang)
            .run(std::future::pending()),
    );
    started.notified().await;
    crashed.abort(); // the replica dies mid-run: no completion, no more renewals
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let heir = tokio::spawn(
        Scheduler::new(f.store.clone(), "heir", fast())
            .handle("slow", counting_handler(runs.clone(), 0))
            .run(async {
                let _ = stop_rx.await;
            }),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while jobs::state(&f.store, &id)
        .await
        .unwrap()
        .unwrap()
        .done_at
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    heir.await.unwrap();
    assert_eq!(runs.lock().unwrap().get(&id), Some(&1));
}

async fn three_consumers_apply_each_event_exactly_once_in_order(f: Fixture) {
    sqlx::raw_sql("CREATE TABLE applied (seq BIGINT PRIMARY KEY, consumer TEXT NOT NULL)")
        .execute(f.store.pool())
        .await
        .unwrap();
    // Publishers on two pools at once, as two replicas would.
    let writers: Vec<Writer> = vec![
        Writer::start(f.store.clone(), WriterConfig::default()),
        Writer::start(Store::open(&f.url).await.unwrap(), WriterConfig::default()),
    ];
    let mut stops = Vec::new();
    let mut tasks = Vec::new();
    for c in 0..3 {
        let store = Store::open(&f.url).await.unwrap();
        let me = format!("consumer-{c}");
        let tag = me.clone();
        let handler: Handler = Arc::new(move |evs: Vec<DomainEvent>| {
            let tag = tag.clone();
            Box::pin(async move {
                Ok(evs
                    .iter()
                    .map(|e| Write::Insert {
                        table: "applied",
                        columns: &["seq", "consumer"],
                        values: vec![e.seq.into(), tag.clone().into()],
                    })
                    .collect())
            })
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        stops.push(tx);
        let consumer = Consumer::new(store, "test-group", &me)
            .lease_ms(500)
            .batch(37);
        tasks.push(tokio::spawn(consumer.run(
            handler,
            Duration::from_millis(10),
            async {
                let _ = rx.await;
            },
        )));
    }
    let mut pubs = Vec::new();
    for p in 0..10 {
        let q = writers[p % 2].queue();
        pubs.push(tokio::spawn(async move {
            for i in 0..40 {
                q.write(vec![events::publish(
                    "test.happened",
                    None,
                    None,
                    &json!({ "p": p, "i": i }),
                )])
                .await
                .unwrap();
            }
        }));
    }
    for p in pubs {
        p.await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM applied")
            .fetch_one(f.store.pool())
            .await
            .unwrap()
            .get("n");
        if n >= 400 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {n} of 400 events applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.unwrap();
    }
    for w in writers {
        w.shutdown().await;
    }
    let applied: Vec<i64> = sqlx::query("SELECT seq FROM applied ORDER BY seq")
        .fetch_all(f.store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("seq"))
        .collect();
    let published: Vec<i64> = events::read_after(&f.store, 0, 1000, None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "test.happened")
        .map(|e| e.seq)
        .collect();
    assert_eq!(applied, published, "every event applied exactly once");
    let pos: i64 = sqlx::query("SELECT position FROM event_cursors WHERE consumer = 'test-group'")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("position");
    assert_eq!(pos, *published.last().unwrap());
}

/// SQLite only: while another connection holds the write lock, the queue fills and refuses more
/// at once, and everything acknowledged before still commits when the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_refuses_writes_instead_of_growing() {
    let f = fixture(Backend::Sqlite).await;
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let mut blocker = f.store.pool().acquire().await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let writer = Writer::start(
        f.store.clone(),
        WriterConfig {
            queue_capacity: 8,
            max_batch: 4,
        },
    );
    let q = writer.queue();
    let mut pending = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        let q2 = q.clone();
        let m = marker(project.id, i);
        pending.push(tokio::spawn(
            async move { q2.write(markers::record(&m)).await },
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut *blocker)
        .await
        .unwrap();
    drop(blocker);
    let mut acked = 0;
    for p in pending {
        match p.await.unwrap() {
            Ok(()) => acked += 1,
            Err(StoreError::Overloaded) => refused += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    writer.shutdown().await;
    assert!(refused > 0, "the queue never refused a write");
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM markers")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(
        n, acked,
        "every acknowledged write is stored, and nothing else"
    );
}

async fn retention_bounds_events_by_age_and_count(f: Fixture) {
    use lookout_store::errors::{
        self,
        process::{ingest_writes, ErrorProcessor},
    };
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let now = lookout_core::time::now_ms();
    let mut items = Vec::new();
    for i in 0..30 {
        let ty = if i < 20 { "Flood" } else { "Rare" };
        let ev = json!({"event_id": format!("{i:032x}"), "level": "error", "platform": "python",
            "exception": {"values": [{"type": ty, "value": "x"}]}});
        items.push((
            "event".to_string(),
            Some(format!("{i:032x}")),
            ev.to_string(),
        ));
    }
    writer
        .queue()
        .write(ingest_writes(project.id, now, items, Vec::new()))
        .await
        .unwrap();
    writer.shutdown().await;
    let p = ErrorProcessor::new(f.store.clone(), "t");
    while p.poll_once().await.unwrap() > 0 {}
    let count = |sql: &'static str| {
        let store = f.store.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get::<i64, _>("n")
        }
    };
    assert_eq!(count("SELECT COUNT(*) AS n FROM error_events").await, 30);
    // The grouped inbox items go at once; a count cap of 25 drops the 5 oldest events.
    tenancy::update_project(
        &f.store,
        project.id,
        &tenancy::ProjectChanges {
            max_events: Some(25),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = errors::enforce_retention(&f.store).await.unwrap();
    assert_eq!((r.events, r.inbox_items), (5, 30));
    assert_eq!(count("SELECT COUNT(*) AS n FROM error_events").await, 25);
    // Age: the Rare issue's events are made 100 days old; they and their issue go.
    sqlx::query("UPDATE error_events SET timestamp = $1 WHERE title LIKE 'Rare%'")
        .bind(now - 100 * 86_400_000)
        .execute(f.store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE issues SET last_seen = $1 WHERE title LIKE 'Rare%'")
        .bind(now - 100 * 86_400_000)
        .execute(f.store.pool())
        .await
        .unwrap();
    let r = errors::enforce_retention(&f.store).await.unwrap();
    assert_eq!((r.events, r.issues), (10, 1));
    assert_eq!(count("SELECT COUNT(*) AS n FROM issues").await, 1);
    assert_eq!(count("SELECT COUNT(*) AS n FROM error_events").await, 15);
    assert_eq!(
        errors::enforce_retention(&f.store).await.unwrap(),
        errors::RetentionReport::default()
    );
}

/// Events near the 1 MiB cap are read and grouped a bounded number of bytes at a time (a batch
/// of 500 such events would hold 500 MiB): each poll takes what fits in
/// `process::BATCH_BYTES`, always at least one, and every event ends up grouped.
async fn large_events_are_processed_in_batches_of_bounded_size(f: Fixture) {
    use lookout_store::errors::process::{ingest_writes, ErrorProcessor, BATCH_BYTES};
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let now = lookout_core::time::now_ms();
    let filler = "x".repeat(900 * 1024);
    let mut items = Vec::new();
    for i in 0..40 {
        let ev = json!({"event_id": format!("{i:032x}"), "level": "error", "platform": "python",
            "exception": {"values": [{"type": "Big", "value": "x"}]}, "extra": {"filler": filler}});
        items.push((
            "event".to_string(),
            Some(format!("{i:032x}")),
            ev.to_string(),
        ));
    }
    // Written in small groups: the group commit takes at most a few MiB per write.
    for chunk in items.chunks(4) {
        writer
            .queue()
            .write(ingest_writes(project.id, now, chunk.to_vec(), Vec::new()))
            .await
            .unwrap();
    }
    writer.shutdown().await;
    let p = ErrorProcessor::new(f.store.clone(), "t");
    let per_event = 900 * 1024 + 200;
    let most = (BATCH_BYTES as usize).div_ceil(per_event) + 1;
    let mut polls = Vec::new();
    loop {
        let n = p.poll_once().await.unwrap();
        if n == 0 {
            break;
        }
        assert!(
            n <= most,
            "a batch of {n} events of 900 KiB is over the byte budget"
        );
        polls.push(n);
    }
    assert_eq!(
        polls.iter().sum::<usize>(),
        40,
        "every event is read once: {polls:?}"
    );
    assert!(
        polls.len() >= 3,
        "40 events of 900 KiB take several batches: {polls:?}"
    );
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM error_events")
        .fetch_one(f.store.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(stored, 40);
}
