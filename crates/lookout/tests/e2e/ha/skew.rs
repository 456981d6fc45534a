//! A replica whose clock runs 45 s fast (libfaketime) neither takes the others' work, nor
//! escalates an incident early, nor leaves gaps when it dies: leases, heartbeats, schedules,
//! escalation timers and the notification outbox use the database's clock.

use super::*;

const INTERVAL: u32 = 10;
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_fast_clock_takes_only_its_share_and_dies_cleanly() {
    assert!(
        std::path::Path::new(FAKETIME).exists(),
        "libfaketime is required (scripts/setup-test-deps installs the faketime package)"
    );
    let target = HttpTarget::start().await;
    let a =
        TestServer::start_with_env(crate::bin(), lookout_testkit::Backend::Postgres, SMALL_POOL)
            .await;
    let b = a.replica().await;
    let url = a.database_url().unwrap().to_string();
    wait_for_shares(&url, &[&a, &b], 7, 20).await;
    let paths = monitors(&a, &target, "skew", 12, INTERVAL, 1).await;
    let mut fast = a
        .replica_with_env(&[("LD_PRELOAD", FAKETIME), ("FAKETIME", "+45s")])
        .await;
    let (took, share) = wait_for_shares(&url, &[&a, &b, &fast], 4, 30).await;
    // Held a while: the fast replica must not have taken more than its share meanwhile.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = shares(&url, &[&a, &b, &fast]).await;
    println!(
        "a replica 45 s fast joins: shares {share:?} after {:.1} s, {held:?} 5 s later (target: even, ≤ 6 each)",
        took.as_secs_f64()
    );
    assert!(
        held.iter().all(|n| (4..=6).contains(n)),
        "uneven with a fast clock: {held:?}"
    );
    // Results it records carry the database's time, not its own.
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL))).await;
    let pool = db(&url).await;
    let ahead: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM monitor_results WHERE at > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT) + 5000",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(
        ahead, 0,
        "results stamped in the future by the fast replica"
    );
    // An incident raised through a replica with a true clock, its escalation due in a minute,
    // while the fast replica's timer loop runs too: judged by its own clock, the fast replica
    // found the step due 45 s early. By the database's clock it goes out on time, once.
    let (early, escalated_after, pages) = escalation_through(&a).await;
    println!(
        "a 1-minute escalation with a replica 45 s fast running timers: escalated after {:.1} s \
         (45 s early would be ~15 s); pages to the first level {}, to the second {}",
        escalated_after.as_secs_f64(),
        pages.0,
        pages.1
    );
    assert!(
        !early,
        "escalated {escalated_after:?} after the trigger, before the 1-minute delay"
    );
    assert_eq!(pages, (1, 1), "each level paged once");
    // Its death: the others take over within the live window, no monitor waits past interval + 10 s.
    let window = Instant::now() - Duration::from_secs(u64::from(INTERVAL));
    fast.kill9();
    let (takeover, after) = wait_for_shares(&url, &[&a, &b], 7, 30).await;
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2)).await;
    let g = gaps(&target, &paths, window);
    let worst = g.values().map(|(max, _)| *max).fold(0.0, f64::max);
    let closest = g
        .values()
        .map(|(_, min)| *min)
        .fold(f64::INFINITY, f64::min);
    println!(
        "the fast replica killed: shares {after:?} after {:.1} s; worst gap {worst:.1} s (target ≤ {} s), closest probes {closest:.1} s apart",
        takeover.as_secs_f64(),
        INTERVAL + 10
    );
    assert!(
        worst <= f64::from(INTERVAL + 10),
        "a monitor waited {worst:.1} s: {g:?}"
    );
    assert!(
        closest >= f64::from(INTERVAL) / 2.0,
        "a double probe: {g:?}"
    );
    drop(fast);
    drop(b);
}

/// Two users paged by webhook, a policy that pages the first at once and escalates to the second
/// after one minute, and an alert sent to `through`. Returns whether the escalation came before
/// the minute was up (by this host's clock, with a second's allowance for delivery), how long it
/// took, and how many pages each level got.
async fn escalation_through(through: &TestServer) -> (bool, Duration, (usize, usize)) {
    use crate::alerting::{user, Receiver};
    let (first, second) = (Receiver::start().await, Receiver::start().await);
    let a = user(through, "first@example.com").await;
    let b = user(through, "second@example.com").await;
    for (uid, r) in [(a, &first), (b, &second)] {
        through
            .client()
            .post(
                "/api/v1/channels",
                json!({"name": "hook", "type": "webhook", "url": r.url("/"), "user_id": uid}),
            )
            .await
            .expect(201);
    }
    let ep = through
        .client()
        .post(
            "/api/v1/escalation-policies",
            json!({"name": "two levels", "num_loops": 0, "escalation_rules": [
            {"escalation_delay_in_minutes": 1, "targets": [{"type": "user", "id": a}]},
            {"escalation_delay_in_minutes": 1, "targets": [{"type": "user", "id": b}]}]}),
        )
        .await
        .expect(201);
    let i = through
        .client()
        .post(
            "/api/v1/integrations",
            json!({"name": "pd", "type": "pagerduty", "escalation_policy_id": ep["id"]}),
        )
        .await
        .expect(201);
    let triggered = Instant::now();
    let r = reqwest::Client::new()
        .post(through.at("/v2/enqueue"))
        .json(&json!({"routing_key": i["key"], "event_action": "trigger", "dedup_key": "skew",
                      "payload": {"summary": "checkout 5xx", "source": "api", "severity": "error"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    first.wait(1, 15).await;
    second.wait(1, 80).await;
    let after = triggered.elapsed();
    // Settle: a doubled page would arrive within the outbox's lease.
    tokio::time::sleep(Duration::from_secs(3)).await;
    (
        after < Duration::from_secs(59),
        after,
        (first.got().len(), second.got().len()),
    )
}
