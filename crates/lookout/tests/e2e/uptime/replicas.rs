//! Two replicas on one PostgreSQL database share the monitors: each monitor is checked by one
//! replica at a time, and when a replica dies the other takes its shards over.

use std::time::Duration;

use lookout_testkit::{Backend, TestServer};
use serde_json::json;

use super::targets::HttpTarget;
use super::*;

async fn result_count(s: &TestServer, id: i64) -> usize {
    let (_, r) = crate::json_of(
        s.admin_client()
            .get(s.at(&format!("/api/v1/monitors/{id}/results?limit=1000")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r["items"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_double_check_and_survive_a_crash() {
    let t = HttpTarget::start().await;
    let a = TestServer::start(crate::bin(), Backend::Postgres).await;
    let url = a.database_url().unwrap().to_string();
    let b = a.replica().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let m = create(&a, json!({"name": format!("m{i}"), "type": "http", "url": t.url("/"), "interval_seconds": 1})).await;
        ids.push(m["id"].as_i64().unwrap());
    }
    for id in &ids {
        wait_status(&b, *id, "up", 20).await;
    }
    let before: Vec<usize> = futures_counts(&b, &ids).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after: Vec<usize> = futures_counts(&b, &ids).await;
    for ((id, x), y) in ids.iter().zip(&before).zip(&after) {
        let n = y - x;
        // One check a second: about 6 in 6 s. Two replicas both checking would give about 12.
        assert!((4..=8).contains(&n), "monitor {id}: {n} results in 6 s");
    }
    // Kill the replica holding more shards: the survivor takes them over once their leases
    // expire (30 s) and the checks go on.
    let holders = shard_holders(&url).await;
    let (pa, pb) = (a.pid().unwrap(), b.pid().unwrap());
    let held = |pid: u32| {
        holders
            .iter()
            .filter(|o| o.contains(&format!("-{pid}-")))
            .count()
    };
    assert_eq!(held(pa) + held(pb), 16, "every shard is held: {holders:?}");
    let (mut victim, survivor) = if held(pa) >= held(pb) { (a, b) } else { (b, a) };
    victim.kill9();
    let b = survivor;
    let counts = futures_counts(&b, &ids).await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let later = futures_counts(&b, &ids).await;
    for ((id, x), y) in ids.iter().zip(&counts).zip(&later) {
        assert!(
            y - x >= 5,
            "monitor {id} was not checked after the crash: {x} → {y}"
        );
    }
}

/// The lease owner of each uptime shard.
async fn shard_holders(url: &str) -> Vec<String> {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<Option<String>> =
        sqlx::query_scalar("SELECT lease_owner FROM jobs WHERE kind = 'uptime.shard' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter().flatten().collect()
}

async fn futures_counts(s: &TestServer, ids: &[i64]) -> Vec<usize> {
    let mut out = Vec::new();
    for id in ids {
        out.push(result_count(s, *id).await);
    }
    out
}
