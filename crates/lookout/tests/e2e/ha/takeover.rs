//! `kill -9` of a replica: its shards are taken over and checks that fell due run at once, so no
//! monitor waits longer than its interval + 10 s and none is probed twice in one interval; a
//! replica that joins takes its share within 60 s.

use super::*;

/// The monitors' interval in this test, seconds.
const INTERVAL: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_leaves_no_gap_no_double_and_a_joiner_takes_its_share() {
    let target = HttpTarget::start().await;
    let mut servers = TestServer::replicas_together(crate::bin(), 3, SMALL_POOL).await;
    let url = servers[0].database_url().unwrap().to_string();
    let paths = monitors(&servers[0], &target, "m", 24, INTERVAL, 1).await;
    let steady = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2 + 5)).await;
    // Steady state: every monitor probed once per interval, by one replica.
    for (p, (max, min)) in gaps(&target, &paths, steady) {
        assert!(
            max <= f64::from(INTERVAL) + 2.0 && min >= f64::from(INTERVAL) - 2.0,
            "{p} in steady state: gaps {min:.1}–{max:.1} s at a {INTERVAL} s interval"
        );
    }

    // Kill the replica holding the most shards.
    let refs: Vec<&TestServer> = servers.iter().collect();
    let share = shares(&url, &refs).await;
    let victim = (0..3).max_by_key(|i| share[*i]).unwrap();
    let window = Instant::now() - Duration::from_secs(u64::from(INTERVAL));
    servers[victim].kill9();
    let killed = Instant::now();
    // The victim's struct stays: the first replica owns the test database.
    let survivors: Vec<&TestServer> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| &servers[i])
        .collect();
    let refs = survivors.clone();
    let (takeover, after) = wait_for_shares(&url, &refs, 7, 30).await;
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 3)).await;
    let g = gaps(&target, &paths, window);
    let worst = g.values().map(|(max, _)| *max).fold(0.0, f64::max);
    let closest = g
        .values()
        .map(|(_, min)| *min)
        .fold(f64::INFINITY, f64::min);
    println!(
        "kill -9 of the replica holding {} of 16 shards: survivors hold {after:?} after {:.1} s; \
         worst gap {worst:.1} s (target ≤ {} s), closest probes {closest:.1} s apart (a double would be < {} s)",
        share[victim],
        takeover.as_secs_f64(),
        INTERVAL + 10,
        INTERVAL / 2
    );
    assert!(
        worst <= f64::from(INTERVAL + 10),
        "a monitor waited {worst:.1} s: {g:?}"
    );
    assert!(
        closest >= f64::from(INTERVAL) / 2.0,
        "a monitor was probed twice in one interval: {g:?}"
    );
    assert!(killed.elapsed() > takeover);

    // A replica joining takes its share (at least 4 of 16 among three) within 60 s.
    let joiner = survivors[0].replica().await;
    let joined = Instant::now();
    let refs: Vec<&TestServer> = survivors
        .iter()
        .copied()
        .chain(std::iter::once(&joiner))
        .collect();
    let (took, share) = wait_for_shares(&url, &refs, 4, 60).await;
    println!(
        "a joining replica holds its share within {:.1} s (target ≤ 60 s): {share:?}",
        took.as_secs_f64()
    );
    let handover = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(INTERVAL) * 2 + 2)).await;
    // A hand-over between live replicas: the giver writes its last results before it lets go,
    // so no monitor misses an interval. (If that last write fails, the taker finds the check
    // overdue and runs it again at once: a repeat, never a gap, so only gaps are held here.)
    let g = gaps(
        &target,
        &paths,
        handover - Duration::from_secs(u64::from(INTERVAL)),
    );
    let worst = g.values().map(|(max, _)| *max).fold(0.0, f64::max);
    let closest = g
        .values()
        .map(|(_, min)| *min)
        .fold(f64::INFINITY, f64::min);
    println!(
        "hand-over to the joining replica: worst gap {worst:.1} s (target ≤ {} s), closest probes {closest:.1} s apart",
        INTERVAL + 10
    );
    assert!(
        worst <= f64::from(INTERVAL + 10),
        "a monitor waited {worst:.1} s across the hand-over: {g:?}"
    );
    assert!(joined.elapsed() >= took);
    servers.push(joiner);
    stop_all(servers);
}
