//! The dead man's switch through a storage fault: while the database takes no writes the
//! replica is not ready and stops pinging `--heartbeat-url` (so the outside service pages);
//! once writes work again the pings resume.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_storage_stops_the_heartbeat_pings_until_it_is_back() {
    let target = HttpTarget::start().await;
    let url = target.url("/ping/ro");
    let a = TestServer::start_with_env(
        crate::bin(),
        lookout_testkit::Backend::Postgres,
        &[
            ("LOOKOUT_HEARTBEAT_URL", url.as_str()),
            ("LOOKOUT_HEARTBEAT_EVERY_MS", "300"),
        ],
    )
    .await;
    let db = a.database_url().unwrap().to_string();
    let start = Instant::now();
    while target.hits("/ping/ro").len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "no pings");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = db_name(&db);
    admin_and_reconnect(
        &db,
        &format!("ALTER DATABASE {name} SET default_transaction_read_only = on"),
    )
    .await;
    let start = Instant::now();
    while readyz(&a).await.0 != 503 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "/readyz stayed 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A ping already on its way may land just after; from then on, silence.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during: Vec<Instant> = target
        .hits("/ping/ro")
        .into_iter()
        .filter(|t| *t >= quiet_from)
        .collect();
    println!(
        "read-only storage: not ready after {:.1} s, {} pings in the next 5 s (want 0)",
        start.elapsed().as_secs_f64() - 5.5,
        during.len()
    );
    assert!(during.is_empty(), "{} pings while not ready", during.len());
    admin_and_reconnect(
        &db,
        &format!("ALTER DATABASE {name} RESET default_transaction_read_only"),
    )
    .await;
    let back = Instant::now();
    loop {
        if target.hits("/ping/ro").into_iter().any(|t| t > back) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "pings did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "writes back: pings resumed after {:.1} s",
        back.elapsed().as_secs_f64()
    );
}
