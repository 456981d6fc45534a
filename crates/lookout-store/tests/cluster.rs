//! Replicas and fenced leases on SQLite and PostgreSQL: a claim takes a new token, a stale
//! token's writes are refused as a whole, leases of silent replicas are taken over, a clean leave
//! frees them, and joins and losses are announced once.

use lookout_store::cluster as c;
use lookout_store::{events, Backend, StoreError, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    claims_are_fenced_and_stale_writes_are_refused_whole,
    silent_replicas_lose_their_leases_and_leaving_frees_them_at_once,
    joins_and_losses_are_announced_once,
);

const LEASE: i64 = 10_000;
const LIVE: i64 = 5_000;

async fn claims_are_fenced_and_stale_writes_are_refused_whole(f: Fixture) {
    let shard = "uptime.shard.0";
    c::ensure_leases(&f.store, &[shard.to_string()])
        .await
        .unwrap();
    c::heartbeat(&f.store, "a", "1", 0, None).await.unwrap();
    c::heartbeat(&f.store, "b", "1", 0, None).await.unwrap();
    let (first, seq) = c::claim(&f.store, shard, "a", LEASE, LIVE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seq, 0);
    // Held by a live replica and not expired: nobody else gets it, nor the holder again.
    assert_eq!(
        c::claim(&f.store, shard, "b", LEASE, LIVE).await.unwrap(),
        None
    );
    assert_eq!(
        c::claim(&f.store, shard, "a", LEASE, LIVE).await.unwrap(),
        None
    );
    let held = vec![(shard.to_string(), first)];
    assert_eq!(c::renew(&f.store, "a", &held, LEASE).await.unwrap(), held);

    let writer = Writer::start(f.store.clone(), Default::default());
    let q = writer.queue();
    let event = |n: i64| {
        events::publish(
            "test.fenced",
            None,
            Some(n.to_string()),
            &serde_json::json!({}),
        )
    };
    q.write(vec![c::guard(shard, first, 1), event(1)])
        .await
        .unwrap();
    // The same batch again (its acknowledgement lost, say) is refused, and known as written.
    let again = q.write(vec![c::guard(shard, first, 1), event(1)]).await;
    assert!(matches!(again, Err(StoreError::Fenced)), "{again:?}");
    assert_eq!(
        c::batch_written(&f.store, shard, first, 1).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        c::batch_written(&f.store, shard, first, 2).await.unwrap(),
        Some(false)
    );
    // Another claim moves the token (the lease is released first, as at a hand-back).
    c::release(&f.store, shard, first).await.unwrap();
    let (taken, seq) = c::claim(&f.store, shard, "b", LEASE, LIVE)
        .await
        .unwrap()
        .unwrap();
    assert!(taken > first);
    assert_eq!(seq, 1, "a claim continues the lease's batch numbers");
    let stale = q.write(vec![c::guard(shard, first, 2), event(2)]).await;
    assert!(matches!(stale, Err(StoreError::Fenced)), "{stale:?}");
    assert_eq!(
        c::batch_written(&f.store, shard, first, 2).await.unwrap(),
        None
    );
    // A stale release or renewal leaves the new holder alone.
    c::release(&f.store, shard, first).await.unwrap();
    assert!(c::renew(&f.store, "a", &held, LEASE)
        .await
        .unwrap()
        .is_empty());
    let now = c::leases(&f.store, "uptime.shard.").await.unwrap();
    assert_eq!(now[0].owner.as_deref(), Some("b"));
    assert_eq!(now[0].fence, taken);
    q.write(vec![c::guard(shard, taken, 2), event(3)])
        .await
        .unwrap();
    writer.shutdown().await;
    // Nothing of the refused batches was stored.
    let subjects: Vec<Option<String>> = events::read_after(&f.store, 0, 100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "test.fenced")
        .map(|e| e.subject)
        .collect();
    assert_eq!(subjects, vec![Some("1".into()), Some("3".into())]);
}

async fn silent_replicas_lose_their_leases_and_leaving_frees_them_at_once(f: Fixture) {
    let names: Vec<String> = (0..2).map(|i| format!("uptime.shard.{i}")).collect();
    c::ensure_leases(&f.store, &names).await.unwrap();
    c::heartbeat(&f.store, "a", "1", 0, None).await.unwrap();
    c::heartbeat(&f.store, "b", "1", 0, None).await.unwrap();
    let (a0, _) = c::claim(&f.store, &names[0], "a", LEASE, LIVE)
        .await
        .unwrap()
        .unwrap();
    let (a1, _) = c::claim(&f.store, &names[1], "a", LEASE, LIVE)
        .await
        .unwrap()
        .unwrap();
    // "a" stops heartbeating: with a live window of 50 ms, its unexpired lease is taken over.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    c::heartbeat(&f.store, "b", "1", 0, None).await.unwrap();
    let b0 = c::claim(&f.store, &names[0], "b", LEASE, 50).await.unwrap();
    assert!(
        b0.is_some_and(|(t, _)| t > a0),
        "a silent replica's lease is taken over: {b0:?}"
    );
    // "a" learns on renewal that only one lease is still its own.
    let held = vec![(names[0].clone(), a0), (names[1].clone(), a1)];
    let ours = c::renew(&f.store, "a", &held, LEASE).await.unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].0, names[1]);
    // Leaving frees it at once, for a live replica to claim with the normal window.
    c::leave(&f.store, "a").await.unwrap();
    assert!(c::claim(&f.store, &names[1], "b", LEASE, LIVE)
        .await
        .unwrap()
        .is_some());
    let (_, replicas) = c::replicas(&f.store).await.unwrap();
    assert_eq!(
        replicas.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
}

async fn joins_and_losses_are_announced_once(f: Fixture) {
    c::heartbeat(&f.store, "a", "1", 0, None).await.unwrap();
    let joined = || {
        events::publish(
            "replica.joined",
            None,
            Some("a".into()),
            &serde_json::json!({}),
        )
    };
    assert!(c::announce(&f.store, "a", true, joined()).await.unwrap());
    // A second replica seeing the same join a moment later announces nothing.
    assert!(!c::announce(&f.store, "a", true, joined()).await.unwrap());
    let lost = events::publish(
        "replica.lost",
        None,
        Some("a".into()),
        &serde_json::json!({}),
    );
    assert!(c::announce(&f.store, "a", false, lost).await.unwrap());
    let kinds: Vec<String> = events::read_after(&f.store, 0, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| k.starts_with("replica."))
        .collect();
    assert_eq!(kinds, vec!["replica.joined", "replica.lost"]);
}
