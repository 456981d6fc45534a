//! A replica cut off from the database while the others reach it (a TCP proxy between that
//! replica and a private PostgreSQL closes its connections and refuses new ones for 20 s).
//!
//! The cut-off replica asks the others' `/readyz` once its leases near their end; they reach the
//! database, so it stops its checks before they take its monitors over: no target sees a doubled
//! probe. The others take the monitors over within interval + 10 s, nothing is stored twice,
//! nobody is paged, and once the partition heals the old runs stay fenced off.

use lookout_testkit::{PgCluster, TcpProxy};

use super::*;

const INTERVAL: u32 = 3;

/// Pairs of probes of one monitor less than half an interval apart, among probes in `from..to`.
fn doubled_probes(
    target: &HttpTarget,
    paths: &[(i64, String)],
    from: Instant,
    to: Instant,
) -> usize {
    paths
        .iter()
        .map(|(_, p)| {
            let hits: Vec<Instant> = target
                .hits(p)
                .into_iter()
                .filter(|t| *t >= from && *t <= to)
                .collect();
            hits.windows(2)
                .filter(|w| (w[1] - w[0]).as_secs_f64() < f64::from(INTERVAL) / 2.0)
                .count()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_is_taken_over_and_fenced() {
    let pg = PgCluster::start(&["max_connections=60"]);
    let admin = db(&pg.url("postgres")).await;
    sqlx::query("CREATE DATABASE lookout")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = pg.url("lookout");
    let mut servers = TestServer::replicas_on(crate::bin(), &url, 2, SMALL_POOL).await;
    let proxy = TcpProxy::start(([127, 0, 0, 1], pg.port).into()).await;
    let cut_off = servers[0]
        .replica_via(&format!(
            "postgres://postgres@127.0.0.1:{}/lookout",
            proxy.port
        ))
        .await;
    let target = HttpTarget::start().await;
    let paths = monitors(&servers[0], &target, "part", 12, INTERVAL, 1).await;
    for (id, _) in &paths {
        crate::uptime::wait_status(&servers[0], *id, "up", 30).await;
    }
    let refs = vec![&servers[0], &servers[1], &cut_off];
    let (_, share) = wait_for_shares(&url, &refs, 4, 30).await;
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2)).await;

    let window = Instant::now() - Duration::from_secs(u64::from(INTERVAL));
    proxy.cut();
    let cut = Instant::now();
    let (took, after) = wait_for_shares(&url, &[&servers[0], &servers[1]], 7, 30).await;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(took)).await;
    proxy.heal();
    let healed = Instant::now();
    // The cut-off replica finds its tokens moved on at its first renewal and stops its runs.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let settled = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 4)).await;
    let during = doubled_probes(&target, &paths, cut, healed);
    let later = doubled_probes(&target, &paths, settled, Instant::now());
    let worst = gaps(&target, &paths, window)
        .into_values()
        .map(|(max, _)| max)
        .fold(0.0, f64::max);
    let pool = db(&url).await;
    let stored_twice: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT monitor_id, at FROM monitor_results
         GROUP BY monitor_id, at HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let downs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM domain_events WHERE kind = 'monitor.down'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    println!(
        "a replica holding {} of 16 shards cut off from PostgreSQL for 20 s: the others hold {after:?} \
         after {:.1} s; worst gap {worst:.1} s (target ≤ {} s); doubled probes at the targets while \
         it was cut off: {during} (target 0), after the partition healed: {later}; results stored \
         twice {stored_twice}; pages {downs}",
        share[2],
        took.as_secs_f64(),
        INTERVAL + 10
    );
    assert!(
        worst <= f64::from(INTERVAL + 10),
        "a monitor waited {worst:.1} s"
    );
    assert_eq!(stored_twice, 0, "results stored twice");
    assert_eq!(downs, 0, "a monitor that stayed up was paged");
    assert_eq!(
        during, 0,
        "the cut-off replica probed on after the others took its monitors"
    );
    assert_eq!(later, 0, "doubled probes after the partition healed");
    drop(cut_off);
    stop_all(std::mem::take(&mut servers));
    drop(pg);
}
