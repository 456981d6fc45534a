//! Replicas started at the same moment all start, and share the shards evenly at once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_all_start_and_share_the_shards() {
    // The migration race failed one replica in 4 starts of 7; three rounds of three fresh
    // replicas on a fresh database each must all start.
    for round in 1..=3 {
        let servers = TestServer::replicas_together(crate::bin(), 3, SMALL_POOL).await;
        let refs: Vec<&TestServer> = servers.iter().collect();
        for s in &refs {
            assert_eq!(
                readyz(s).await.0,
                200,
                "round {round}: a replica is not ready"
            );
        }
        let url = servers[0].database_url().unwrap().to_string();
        let (took, share) = wait_for_shares(&url, &refs, 4, 20).await;
        assert!(
            share.iter().all(|n| *n <= 6),
            "round {round}: uneven shares {share:?}"
        );
        let streams = consumer_shares(&url, &refs).await;
        println!(
            "simultaneous start, round {round}: 3 of 3 replicas started; 16 shards shared {share:?} {:.1} s after start; stream consumers {streams:?}",
            took.as_secs_f64()
        );
        stop_all(servers);
    }
}

/// How many stream cursors each replica serves, once no replica serves more than its share
/// (waits up to 20 s for the placement to settle).
async fn consumer_shares(url: &str, servers: &[&TestServer]) -> Vec<usize> {
    let start = Instant::now();
    loop {
        let pool = db(url).await;
        let owners: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT lease_owner FROM event_cursors WHERE lease_until > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_cursors")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        let share: Vec<usize> = servers
            .iter()
            .map(|s| {
                let tag = format!("-{}-", s.pid().unwrap_or(0));
                owners.iter().flatten().filter(|o| o.contains(&tag)).count()
            })
            .collect();
        let cap = usize::try_from(total).unwrap().div_ceil(servers.len());
        if total >= 3
            && share.iter().all(|n| *n <= cap)
            && share.iter().filter(|n| **n > 0).count() >= 2
        {
            return share;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stream consumers not spread over the replicas: {share:?} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
