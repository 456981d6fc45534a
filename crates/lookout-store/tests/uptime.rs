//! Uptime storage on SQLite and PostgreSQL: monitors and their state, results, rollups with an
//! exact p95, uptime over windows, retention, cron check-ins and status pages.

use lookout_store::uptime::{self as ustore, cron, pages, results, MonitorState, NewMonitor};
use lookout_store::{tenancy, Backend, Cursor, Write, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    rollups_are_exact_and_uptime_spans_rollups_and_raw_results,
    cron_runs_open_complete_and_are_judged_once,
    status_pages_keep_incidents_with_their_updates,
    an_upkeep_that_fell_behind_rolls_up_the_days_it_missed,
    uptime_of_many_monitors_is_each_ones_uptime,
);

const HOUR: i64 = 3_600_000;

async fn monitor(f: &Fixture, kind: &str, slug: Option<&str>) -> i64 {
    let org = tenancy::default_org(&f.store).await.unwrap();
    let (project, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    ustore::create_monitor(
        &f.store,
        &NewMonitor {
            org_id: org.id,
            project_id: slug.map(|_| project.id),
            name: format!("{kind} monitor"),
            kind: kind.into(),
            slug: slug.map(str::to_string),
            spec: "{}".into(),
            paused: false,
            parent_id: None,
            push_token: None,
            managed_by: None,
        },
    )
    .await
    .unwrap()
    .id
}

async fn write(f: &Fixture, writes: Vec<Write>) {
    let w = Writer::start(f.store.clone(), Default::default());
    w.queue().write(writes).await.unwrap();
    w.shutdown().await;
}

async fn rollups_are_exact_and_uptime_spans_rollups_and_raw_results(f: Fixture) {
    let id = monitor(&f, "http", None).await;
    // "now" is 10:30 on some day; results every minute from 08:00 to 10:29, latency = minute
    // of the hour in ms, and every 10th check fails.
    let day = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR);
    let now = day + 10 * HOUR + 30 * 60_000;
    let mut w = Vec::new();
    for m in 0..150 {
        let at = day + 8 * HOUR + m * 60_000;
        w.push(results::result_write(
            id,
            &results::ResultRow {
                at,
                ok: m % 10 != 9,
                maintenance: false,
                latency_us: Some((m % 60 + 1) * 1000),
                message: None,
            },
        ));
    }
    write(&f, w).await;
    let n = results::roll_up(&f.store, now).await.unwrap();
    assert!(n >= 2, "hours 08 and 09 rolled up ({n} buckets)");
    let hours = results::buckets(&f.store, id, "h", day + 8 * HOUR)
        .await
        .unwrap();
    assert_eq!(
        hours.iter().map(|b| b.bucket).collect::<Vec<_>>(),
        vec![day + 8 * HOUR, day + 9 * HOUR, day + 10 * HOUR]
    );
    let h8 = &hours[0];
    assert_eq!((h8.up, h8.down), (54, 6));
    // Latencies 1..=60 ms, of which the failed checks' (10, 20, … 60 ms) are not latency: the
    // nearest-rank p95 is 57 ms, the average 30 ms, the max 59 ms.
    assert_eq!(h8.latency_p95_us, Some(57_000));
    assert_eq!(h8.latency_avg_us, Some(30_000));
    assert_eq!(h8.latency_max_us, Some(59_000));
    // The open hour (10:00-10:29) comes from raw results.
    assert_eq!(hours[2].up + hours[2].down, 30);
    // Minutes are computed from raw results.
    let minutes = results::buckets(&f.store, id, "m", day + 10 * HOUR)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 30);
    let (up, down) = results::counts_since(&f.store, id, day + 8 * HOUR)
        .await
        .unwrap();
    assert_eq!((up, down), (135, 15));
    let u = results::uptime_since(&f.store, id, day)
        .await
        .unwrap()
        .unwrap();
    assert!((u - 90.0).abs() < 1e-9, "{u}");
    // The upkeep runs on: the open hour closes, then the day; two days later raw results are
    // gone but the rollups remain.
    results::roll_up(&f.store, now + 2 * HOUR).await.unwrap();
    results::roll_up(&f.store, day + 24 * HOUR + 10 * 60_000)
        .await
        .unwrap();
    let later = now + 48 * HOUR;
    assert!(results::enforce_retention(&f.store, later).await.unwrap() >= 150);
    let page = results::list_results(&f.store, id, &Cursor::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let hours = results::buckets(&f.store, id, "h", day).await.unwrap();
    assert_eq!(hours.iter().map(|b| b.up + b.down).sum::<i64>(), 150);
    let days = results::buckets(&f.store, id, "d", day).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((days[0].up, days[0].down), (135, 15));
    // Counts over whole days read the day rollups, over ragged ends the hour rollups: the same
    // figures either way.
    let counts = |since| results::counts_between(&f.store, id, since, later);
    assert_eq!(counts(day - 24 * HOUR).await.unwrap(), (135, 15));
    assert_eq!(counts(day + 9 * HOUR).await.unwrap(), (81, 9));
    // The state row round-trips, except the ping time, which pings own.
    let state = MonitorState {
        health: "down".into(),
        alerted: true,
        failures: 3,
        last_failure: Some("boom".into()),
        cert_chain_valid: Some(false),
        ..MonitorState::default()
    };
    // A ping to a monitor that is not up asks its runner for a check, and joins the ping log.
    let (before, _) = ustore::get_monitor(&f.store, id).await.unwrap();
    assert_eq!(before.check_requested_at, None);
    ustore::record_ping(&f.store, id, 42, Some("192.0.2.7"), "POST")
        .await
        .unwrap();
    let (after, _) = ustore::get_monitor(&f.store, id).await.unwrap();
    assert_eq!(after.check_requested_at, Some(42));
    assert_eq!(
        ustore::pings(&f.store, id, 10).await.unwrap(),
        vec![ustore::Ping {
            at: 42,
            source: Some("192.0.2.7".into()),
            method: "POST".into()
        }]
    );
    ustore::request_check(&f.store, id, 42).await.unwrap();
    let (again, _) = ustore::get_monitor(&f.store, id).await.unwrap();
    assert_eq!(
        again.check_requested_at,
        Some(43),
        "a second request still moves it"
    );
    write(&f, vec![ustore::state_write(id, &state)]).await;
    let (_, got) = ustore::get_monitor(&f.store, id).await.unwrap();
    assert_eq!(
        got,
        MonitorState {
            last_ping_at: Some(42),
            ..state
        }
    );
}

async fn cron_runs_open_complete_and_are_judged_once(f: Fixture) {
    let id = monitor(&f, "cron", Some("nightly")).await;
    let mut tx = f.store.begin_write().await.unwrap();
    cron::apply_report(
        &mut tx,
        id,
        "run-1",
        "in_progress",
        1_000,
        None,
        Some("prod"),
    )
    .await
    .unwrap();
    cron::apply_report(&mut tx, id, "run-1", "ok", 4_000, None, Some("prod"))
        .await
        .unwrap();
    // A retried terminal report changes nothing.
    cron::apply_report(&mut tx, id, "run-1", "error", 5_000, None, None)
        .await
        .unwrap();
    // A terminal report alone starts its run `duration` earlier.
    cron::apply_report(&mut tx, id, "run-2", "error", 10_000, Some(2_000), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let runs = cron::unrecorded(&f.store, id).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].status.as_str(), runs[0].duration_ms),
        ("ok", Some(3_000))
    );
    assert_eq!(
        (runs[1].status.as_str(), runs[1].started_at),
        ("error", 8_000)
    );
    assert!(cron::started_between(&f.store, id, 0, 1_000).await.unwrap());
    assert!(!cron::started_between(&f.store, id, 1_001, 7_999)
        .await
        .unwrap());
    write(
        &f,
        vec![
            cron::recorded_write(runs[0].id, "ok"),
            cron::recorded_write(runs[1].id, "error"),
            cron::missed_write(id, 60_000),
        ],
    )
    .await;
    assert!(cron::unrecorded(&f.store, id).await.unwrap().is_empty());
    let recent = cron::recent(&f.store, id, 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(),
        vec!["missed", "error", "ok"]
    );
    // The slug is unique per project.
    let org = tenancy::default_org(&f.store).await.unwrap();
    let dup = ustore::create_monitor(
        &f.store,
        &NewMonitor {
            org_id: org.id,
            project_id: Some(1),
            name: "again".into(),
            kind: "cron".into(),
            slug: Some("nightly".into()),
            spec: "{}".into(),
            paused: false,
            parent_id: None,
            push_token: None,
            managed_by: None,
        },
    )
    .await;
    assert!(
        matches!(dup, Err(lookout_store::StoreError::Conflict(_))),
        "{dup:?}"
    );
    assert_eq!(
        ustore::cron_monitor(&f.store, 1, "nightly")
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
}

async fn status_pages_keep_incidents_with_their_updates(f: Fixture) {
    let a = monitor(&f, "http", None).await;
    let org = tenancy::default_org(&f.store).await.unwrap();
    let new = pages::NewStatusPage {
        org_id: org.id,
        slug: "acme".into(),
        title: "Acme".into(),
        description: String::new(),
        logo_url: None,
        monitor_ids: vec![a],
        managed_by: None,
    };
    let p = pages::create_page(&f.store, &new).await.unwrap();
    assert!(matches!(
        pages::create_page(&f.store, &new).await,
        Err(lookout_store::StoreError::Conflict(_))
    ));
    let i = pages::create_incident(&f.store, p.id, "Down", "major", "investigating", "Looking")
        .await
        .unwrap();
    let i = pages::add_update(&f.store, i.id, "resolved", "Fixed")
        .await
        .unwrap();
    assert_eq!(i.status, "resolved");
    assert!(i.resolved_at.is_some());
    assert_eq!(
        i.updates
            .iter()
            .map(|u| u.body.as_str())
            .collect::<Vec<_>>(),
        vec!["Fixed", "Looking"]
    );
    assert_eq!(
        pages::page_by_slug(&f.store, "acme")
            .await
            .unwrap()
            .monitor_ids,
        vec![a]
    );
    // Deleting a monitor keeps the page; deleting the page takes its incidents.
    ustore::delete_monitor(&f.store, a).await.unwrap();
    assert!(ustore::monitors_by_ids(&f.store, &[a])
        .await
        .unwrap()
        .is_empty());
    pages::delete_page(&f.store, p.id).await.unwrap();
    assert!(matches!(
        pages::get_incident(&f.store, i.id).await,
        Err(lookout_store::StoreError::NotFound)
    ));
}

/// Writes a check a minute for `minutes` minutes from `from`; every `fail_every`-th fails.
async fn checks(f: &Fixture, id: i64, from: i64, minutes: i64, fail_every: i64) {
    let w = (0..minutes)
        .map(|m| {
            results::result_write(
                id,
                &results::ResultRow {
                    at: from + m * 60_000,
                    ok: (m + 1) % fail_every != 0,
                    maintenance: false,
                    latency_us: Some(1000),
                    message: None,
                },
            )
        })
        .collect();
    write(f, w).await;
}

async fn an_upkeep_that_fell_behind_rolls_up_the_days_it_missed(f: Fixture) {
    let id = monitor(&f, "http", None).await;
    // Checks on one day from 08:00 to 10:29, then the server (and its upkeep) is down until two
    // days later: the results are older than raw retention by then.
    let day = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR);
    checks(&f, id, day + 8 * HOUR, 150, 10).await;
    let now = day + 50 * HOUR;
    // Retention first (the upkeep's order does not matter): results not yet rolled up stay.
    results::enforce_retention(&f.store, now).await.unwrap();
    assert_eq!(
        results::list_results(
            &f.store,
            id,
            &Cursor {
                limit: Some(1000),
                ..Cursor::default()
            }
        )
        .await
        .unwrap()
        .items
        .len(),
        150,
        "the raw results not rolled up yet are still there"
    );
    // The upkeep catches up a day per run.
    for k in 0..3 {
        results::roll_up(&f.store, now + k * 60_000).await.unwrap();
    }
    let days = results::buckets(&f.store, id, "d", day - 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(
        days.iter()
            .map(|b| (b.bucket, b.up, b.down))
            .collect::<Vec<_>>(),
        vec![(day, 135, 15)],
        "the missed day has its rollup"
    );
    let hours = results::buckets(&f.store, id, "h", day).await.unwrap();
    assert_eq!(hours.iter().map(|b| b.up + b.down).sum::<i64>(), 150);
    // Now rolled up, the raw results go; the uptime over the last three days still counts them.
    assert!(
        results::enforce_retention(&f.store, now + 3 * 60_000)
            .await
            .unwrap()
            >= 150
    );
    let u = results::uptime_many(&f.store, &[id], &[now - 72 * HOUR])
        .await
        .unwrap();
    assert_eq!(u[&id], vec![Some(90.0)]);
}

async fn uptime_of_many_monitors_is_each_ones_uptime(f: Fixture) {
    let day = 1_795_000_000_000 - 1_795_000_000_000 % (24 * HOUR);
    let (a, b, quiet) = (
        monitor(&f, "http", None).await,
        monitor(&f, "tcp", None).await,
        monitor(&f, "dns", None).await,
    );
    // Two days of history rolled up as the upkeep goes, then a ragged morning of raw results:
    // the windows below span day rollups, hour rollups and raw rows.
    checks(&f, a, day - 48 * HOUR, 48 * 60, 10).await;
    checks(&f, b, day - 30 * HOUR, 30 * 60, 4).await;
    for h in (-47..=0).map(|h| day + h * HOUR + 7 * 60_000) {
        results::roll_up(&f.store, h).await.unwrap();
    }
    checks(&f, a, day, 90, 3).await;
    checks(&f, b, day, 90, 2).await;
    let sinces = [
        day - 72 * HOUR,
        day - 36 * HOUR,
        day - 5 * HOUR,
        day + 30 * 60_000,
    ];
    let many = results::uptime_many(&f.store, &[a, b, quiet], &sinces)
        .await
        .unwrap();
    for id in [a, b, quiet] {
        let mut one = Vec::new();
        for &s in &sinces {
            one.push(results::uptime_since(&f.store, id, s).await.unwrap());
        }
        assert_eq!(many[&id], one, "monitor {id}");
    }
    // The figures themselves: monitor a's 48 h at 90 % and 90 minutes at 2/3.
    let a_all = (48 * 60 * 9 / 10 + 60) as f64 / (48 * 60 + 90) as f64 * 100.0;
    assert!(
        (many[&a][0].unwrap() - a_all).abs() < 1e-9,
        "{:?}",
        many[&a]
    );
    assert_eq!(many[&quiet], vec![None; 4]);
    // The list's heartbeat bars: each monitor's newest results, as its own list gives them.
    let recent = results::recent_many(&f.store, &[a, b, quiet], 7)
        .await
        .unwrap();
    for id in [a, b, quiet] {
        let one = results::list_results(
            &f.store,
            id,
            &Cursor {
                after: None,
                limit: Some(7),
            },
        )
        .await
        .unwrap()
        .items;
        let at = |v: &[results::ResultRow]| v.iter().map(|r| (r.at, r.ok)).collect::<Vec<_>>();
        assert_eq!(at(&recent[&id]), at(&one), "monitor {id}");
    }
    assert_eq!(recent[&a].len(), 7);
    assert!(recent[&quiet].is_empty());
}
