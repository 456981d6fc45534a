//! Alerting storage on SQLite and PostgreSQL: one open incident per dedup key even when opened
//! concurrently, clock updates fenced against racing replicas, and an outbox whose pages are
//! queued once and claimed by one replica at a time.

use std::collections::HashSet;

use lookout_store::alerting::incidents::{self, ClockCols, NewIncident};
use lookout_store::alerting::outbox::{self, Page};
use lookout_store::alerting::{self as astore, ChannelInput};
use lookout_store::{tenancy, Backend};
use serde_json::json;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    concurrent_triggers_with_one_key_open_one_incident,
    clock_updates_are_fenced,
    the_outbox_queues_once_and_hands_each_page_to_one_replica,
    a_merged_monitor_recovering_does_not_resolve_a_manual_target,
    response_times_sum_acknowledgements_and_resolutions_per_service_and_day,
);

fn new(org: i64, key: &str, at: i64) -> NewIncident {
    NewIncident {
        org_id: org,
        scope: "integration:1".into(),
        dedup_key: key.into(),
        title: "t".into(),
        urgency: "high".into(),
        severity: "error".into(),
        service: None,
        source: None,
        policy_id: None,
        integration_id: None,
        escalation_policy_id: None,
        runbook: None,
        next_escalation_at: Some(at + 60_000),
        details: json!({}),
        at,
    }
}

async fn concurrent_triggers_with_one_key_open_one_incident(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.begin_write().await.unwrap();
            let (row, created) = incidents::open_or_find(&mut tx, &new(org, "k", 1000))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            (row.id, created)
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (id, c) = t.await.unwrap();
        ids.insert(id);
        created += usize::from(c);
    }
    assert_eq!(ids.len(), 1, "one incident for one key");
    assert_eq!(created, 1, "exactly one caller opened it");
    // Once resolved, the key opens a new incident.
    let id = *ids.iter().next().unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    let inc = incidents::lock(&mut tx, id).await.unwrap();
    let resolved = ClockCols {
        status: "resolved",
        next_escalation_at: None,
        ack_until: None,
        ..inc.clock()
    };
    assert!(
        incidents::save_clock(&mut tx, id, &inc.clock(), &resolved, 2000)
            .await
            .unwrap()
    );
    let (again, c) = incidents::open_or_find(&mut tx, &new(org, "k", 3000))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(c);
    assert_ne!(again.id, id);
    assert_eq!(
        incidents::get(&f.store, id).await.unwrap().resolved_at,
        Some(2000)
    );
}

async fn clock_updates_are_fenced(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let mut tx = f.store.begin_write().await.unwrap();
    let (inc, _) = incidents::open_or_find(&mut tx, &new(org, "fence", 0))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stale = inc.clone();
    let next = ClockCols {
        rule_index: 1,
        next_escalation_at: Some(120_000),
        ..inc.clock()
    };
    // Two replicas computed the same step from the same row; only the first write lands.
    for (i, expect) in [(0, true), (1, false)] {
        let mut tx = f.store.begin_write().await.unwrap();
        let ok = incidents::save_clock(&mut tx, inc.id, &stale.clock(), &next, 60_000 + i)
            .await
            .unwrap();
        assert_eq!(ok, expect);
        tx.commit().await.unwrap();
    }
    assert_eq!(
        incidents::get(&f.store, inc.id).await.unwrap().rule_index,
        1
    );
    assert_eq!(
        incidents::due(&f.store, 119_999, 10).await.unwrap().len(),
        0,
        "not due yet"
    );
    assert_eq!(
        incidents::due(&f.store, 120_000, 10).await.unwrap().len(),
        1
    );
}

async fn the_outbox_queues_once_and_hands_each_page_to_one_replica(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let ch = astore::channel_create(
        &f.store,
        org,
        &ChannelInput {
            name: "hook".into(),
            kind: "webhook".into(),
            config: json!({"url": "http://127.0.0.1:1/"}),
            user_id: None,
            urgencies: vec!["high".into()],
            enabled: true,
        },
    )
    .await
    .unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    let (inc, _) = incidents::open_or_find(&mut tx, &new(org, "o", 0))
        .await
        .unwrap();
    let pages: Vec<Page> = (0..40)
        .map(|i| Page {
            idempotency_key: format!("{}:triggered:{i}", inc.id),
            incident_id: inc.id,
            channel_id: ch.id,
            user_id: None,
            event: "triggered".into(),
            data: json!({}),
            delay_ms: 0,
        })
        .collect();
    assert_eq!(outbox::enqueue(&mut tx, &pages, 0).await.unwrap(), 40);
    // The same step retried queues nothing new.
    assert_eq!(outbox::enqueue(&mut tx, &pages, 0).await.unwrap(), 0);
    tx.commit().await.unwrap();

    // Four replicas claim at once: every page goes to exactly one of them.
    let mut tasks = Vec::new();
    for r in 0..4 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = outbox::claim(&store, &format!("r{r}#1"), 60_000, 7)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|n| n.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "no page claimed twice");
    assert_eq!(unique.len(), 40);

    // Leases run on the database's clock: nobody else gets a held page, and only the claim's
    // token can mark it.
    assert!(outbox::claim(&f.store, "r9#1", 60_000, 100)
        .await
        .unwrap()
        .is_empty());
    let id = all[0];
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(!outbox::mark_sent(&mut tx, id, "intruder", 5).await.unwrap());
    tx.commit().await.unwrap();

    // A page queued by a replica whose clock runs a day fast is due at once all the same.
    let late = Page {
        idempotency_key: format!("{}:triggered:fast", inc.id),
        ..pages[0].clone()
    };
    let day_ahead = lookout_store::cluster::db_now(&f.store).await.unwrap() + 86_400_000;
    let mut tx = f.store.begin_write().await.unwrap();
    assert_eq!(
        outbox::enqueue(&mut tx, &[late], day_ahead).await.unwrap(),
        1
    );
    tx.commit().await.unwrap();
    // Claimed by a replica that then stalls past its lease (a lease already over stands for it).
    let stalled = outbox::claim(&f.store, "r1#2", -1_000, 100).await.unwrap();
    assert_eq!(stalled.len(), 1, "due at once by the database's clock");
    let fast = stalled[0].id;
    // Another replica claims the lapsed page under a new token; the stalled claim's marks are
    // refused, the new one's recorded.
    let again = outbox::claim(&f.store, "r2#2", 60_000, 100).await.unwrap();
    assert_eq!(again.iter().map(|n| n.id).collect::<Vec<_>>(), vec![fast]);
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(!outbox::mark_sent(&mut tx, fast, "r1#2", 5).await.unwrap());
    assert!(
        outbox::mark_failed(&mut tx, fast, "r2#2", "HTTP 500", Some(10_000))
            .await
            .unwrap()
    );
    assert!(
        !outbox::mark_sent(&mut tx, fast, "r2#2", 5).await.unwrap(),
        "lease released"
    );
    tx.commit().await.unwrap();
    let n = outbox::for_incident(&f.store, inc.id).await.unwrap();
    let failed = n.iter().find(|x| x.id == fast).unwrap();
    assert_eq!(
        (failed.attempts, failed.last_error.as_deref()),
        (1, Some("HTTP 500"))
    );
    // The 40 others are leased for a minute; the failed one is due again in 10 s.
    let due = outbox::next_due_in(&f.store).await.unwrap().unwrap();
    assert!((5_000..=10_000).contains(&due), "next due in {due} ms");
}

/// A monitor incident merged into one opened by hand: the monitor's recovery closes its signal
/// but leaves the target open, since the target's own alert never resolved.
async fn a_merged_monitor_recovering_does_not_resolve_a_manual_target(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let mut tx = f.store.begin_write().await.unwrap();
    let (manual, _) = incidents::open_or_find(&mut tx, &new(org, "by-hand", 1000))
        .await
        .unwrap();
    let (monitor, _) = incidents::open_or_find(&mut tx, &new(org, "monitor-5", 1000))
        .await
        .unwrap();
    incidents::open_signal(&mut tx, monitor.id, "monitor:5")
        .await
        .unwrap();
    lookout_store::alerting::incident_ops::merge_into(&mut tx, monitor.id, manual.id, 2000)
        .await
        .unwrap();
    let done = incidents::close_signal(&mut tx, "monitor:5").await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        done.is_empty(),
        "the recovery resolved the merge target: {done:?}"
    );
    // Without the merge, the monitor's own incident still resolves on recovery.
    let mut tx = f.store.begin_write().await.unwrap();
    let (other, _) = incidents::open_or_find(&mut tx, &new(org, "monitor-6", 3000))
        .await
        .unwrap();
    incidents::open_signal(&mut tx, other.id, "monitor:6")
        .await
        .unwrap();
    let done = incidents::close_signal(&mut tx, "monitor:6").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done, vec![other.id]);
}

async fn response_times_sum_acknowledgements_and_resolutions_per_service_and_day(f: Fixture) {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    let day = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;
    // (service, opened, acknowledged after, resolved after), seconds.
    let cases: &[(&str, i64, Option<i64>, Option<i64>)] = &[
        ("api", 100, Some(60), Some(300)),
        ("api", 200, Some(120), None),
        ("api", 300, None, Some(900)),
        ("api", 400, None, None),
        ("db", 500, Some(30), Some(30)),
        // The next day: its own row.
        ("api", 86_400 + 10, Some(10), Some(20)),
    ];
    for (i, &(service, opened, ack, resolve)) in cases.iter().enumerate() {
        let at = day + opened * 1000;
        let mut tx = f.store.begin_write().await.unwrap();
        let (inc, _) = incidents::open_or_find(
            &mut tx,
            &NewIncident {
                service: Some(service.into()),
                ..new(org, &format!("r{i}"), at)
            },
        )
        .await
        .unwrap();
        let mut clock = (inc.status.clone(), inc.clock().next_escalation_at);
        for (status, after) in [("acknowledged", ack), ("resolved", resolve)] {
            let Some(after) = after else { continue };
            let old = ClockCols {
                status: &clock.0,
                next_escalation_at: clock.1,
                ..inc.clock()
            };
            let next = ClockCols {
                status,
                next_escalation_at: None,
                ..inc.clock()
            };
            assert!(
                incidents::save_clock(&mut tx, inc.id, &old, &next, at + after * 1000)
                    .await
                    .unwrap()
            );
            clock = (status.to_string(), None);
        }
        tx.commit().await.unwrap();
    }
    let mut rows = incidents::response_times(&f.store, org, day, day + 2 * 86_400_000)
        .await
        .unwrap();
    rows.sort_by_key(|r| (r.day, r.service.clone()));
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.service.as_deref().unwrap(),
                r.day,
                r.incidents,
                r.acknowledged,
                r.ack_ms,
                r.resolved,
                r.resolve_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("api", day, 4, 2, 180_000, 2, 1_200_000),
            ("db", day, 1, 1, 30_000, 1, 30_000),
            ("api", day + 86_400_000, 1, 1, 10_000, 1, 20_000),
        ]
    );
    let later = incidents::response_times(&f.store, org, day + 86_400_000, day + 2 * 86_400_000)
        .await
        .unwrap();
    assert_eq!(later.len(), 1, "only the second day's incident");
}
