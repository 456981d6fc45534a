//! Replicas started at the same moment all start, and share the shards evenly at once.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_all_start_and_share_the_shards() {
    // The migration race failed one replica in 4 starts of 7; three rounds of three fresh
    // replicas on a fresh database each must all start.
    for round in 1..=3 {
        let servers = TestServer::replicas_together(crate::bin(), 3, &[]).await;
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
        println!(
            "simultaneous start, round {round}: 3 of 3 replicas started; 16 shards shared {share:?} {:.1} s after start",
            took.as_secs_f64()
        );
        stop_all(servers);
    }
}
