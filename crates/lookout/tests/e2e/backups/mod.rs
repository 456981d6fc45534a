//! End-to-end tests of backups: the real binary shipping its SQLite database with
//! `--backup-dir`, killed with SIGKILL under ingest and restored to a moment with
//! `lookout restore`; drills through the API and the Backups page, a damaged backup raising
//! `backup.failed` into an incident; and pgBackRest against a real PostgreSQL cluster.

mod pgbackrest;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lookout_core::time::{iso as rfc3339, now_ms};
use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::errors::{envelope, exception_event, key_of, new_id};
use crate::json_of;

/// The Sentry event ids in a (restored) database, processed or still in the inbox.
async fn event_ids(db: &Path) -> HashSet<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT event_id FROM error_events
         UNION SELECT event_id FROM ingest_items WHERE event_id IS NOT NULL",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

fn lookout(args: &[&str]) -> std::process::Output {
    Command::new(crate::bin())
        .args(args)
        .env_remove("LOOKOUT_DATA_DIR")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_ingest_then_restore_to_a_moment_keeps_exactly_what_was_acknowledged() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap().to_string();
    let mut s = TestServer::start_with(
        crate::bin(),
        Backend::Sqlite,
        &[],
        &["--backup-dir", &dir, "--backup-snapshot-interval", "2s"],
    )
    .await;
    let url = s.at("/api/1/envelope/");
    let key = key_of(&s);
    // (event id, sent at, acknowledged at)
    let sent: Arc<Mutex<Vec<(String, i64, i64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (url, key, sent) = (url.clone(), key.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            for i in 0..100_000 {
                let id = new_id();
                let ev = exception_event(&id, "ValueError", &format!("w{w} #{i}"), "parse", "r1");
                let start = now_ms();
                match c
                    .post(&url)
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                    .body(envelope(&id, &ev, None))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => sent.lock().unwrap().push((id, start, now_ms())),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    s.kill9();
    let killed = now_ms();
    for t in tasks {
        t.await.unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    assert!(sent.len() > 500, "only {} events acknowledged", sent.len());
    // A moment a few seconds before the kill, under full ingest.
    let t = killed - 2_500;
    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    let out = lookout(&[
        "--data-dir",
        data.to_str().unwrap(),
        "restore",
        "--backup-dir",
        &dir,
        "--to",
        &rfc3339(t),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("integrity_check ok"), "{stdout}");
    let ids = event_ids(&data.join("lookout.db")).await;
    let (mut before, mut after) = (0, 0);
    for (id, start, ack) in &sent {
        if *ack < t {
            before += 1;
            assert!(
                ids.contains(id),
                "event {id} acknowledged before the moment is missing"
            );
        }
        if *start > t {
            after += 1;
            assert!(
                !ids.contains(id),
                "event {id} sent after the moment was restored"
            );
        }
    }
    assert!(
        before > 100 && after > 100,
        "{before} before, {after} after"
    );
    // The restored data directory serves: a server starts on it and lists the events.
    let out = lookout(&[
        "--data-dir",
        data.to_str().unwrap(),
        "restore",
        "--backup-dir",
        &dir,
    ]);
    assert!(!out.status.success(), "restore never overwrites a database");
    assert!(String::from_utf8_lossy(&out.stderr).contains("never overwrites"));
    // The backup directory checks out, torn tail of the killed run included.
    let out = lookout(&["backup", "verify", "--backup-dir", &dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("integrity_check ok"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_pass_and_a_damaged_backup_raises_backup_failed_into_an_incident() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().to_str().unwrap().to_string();
    let s = TestServer::start_with(
        crate::bin(),
        Backend::Sqlite,
        &[],
        &["--backup-dir", &dir, "--backup-drill-interval", "0"],
    )
    .await;
    let c = s.admin_client();
    let (st, _) = json_of(
        c.post(s.at("/api/v1/policies"))
            .json(&json!({"name": "Backups", "severity": "critical",
                          "conditions": [{"source": "backups", "events": ["failed", "stale"]}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201);
    // A drill restores an exact point and finds every table's rows there.
    let (st, run) = json_of(c.post(s.at("/api/v1/backups/drill")).send().await.unwrap()).await;
    assert_eq!(st, 201, "{run}");
    assert_eq!(run["ok"], true, "{run}");
    assert_eq!(run["details"]["integrity"], "ok");
    assert_eq!(run["details"]["mismatches"], json!([]));
    assert!(run["details"]["tables"].as_u64().unwrap() > 20);
    let (_, overview) = json_of(c.get(s.at("/api/v1/backups")).send().await.unwrap()).await;
    assert_eq!(overview["builtin"]["enabled"], true);
    assert_eq!(overview["builtin"]["last_drill"]["ok"], true);
    assert!(overview["builtin"]["restorable_from"].is_string());
    // Damage the run's first snapshot: the next drill fails and pages.
    let run_dir = std::fs::read_dir(backups.path().join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let snap = run_dir.join("snapshot-000001.lks");
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&snap, bytes).unwrap();
    let (st, run) = json_of(c.post(s.at("/api/v1/backups/drill")).send().await.unwrap()).await;
    assert_eq!(st, 201);
    assert_eq!(run["ok"], false, "{run}");
    assert!(run["error"].as_str().unwrap().contains("checksum"), "{run}");
    let incident = wait_for_incident(&s, "Backup lookout").await;
    assert!(incident["title"]
        .as_str()
        .unwrap()
        .contains("restore drill failed"));
    let (_, overview) = json_of(c.get(s.at("/api/v1/backups")).send().await.unwrap()).await;
    assert_eq!(overview["builtin"]["last_drill"]["ok"], false);
}

/// Waits for an open incident whose title starts with `prefix`.
async fn wait_for_incident(s: &TestServer, prefix: &str) -> Value {
    crate::alerting::wait_any_incident(s, 10, |i| {
        i["title"].as_str().is_some_and(|t| t.starts_with(prefix))
    })
    .await
}
