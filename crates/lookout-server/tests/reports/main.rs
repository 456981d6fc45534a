//! A known two months of data — errors, checks, spans, incidents with their timelines, a
//! change point, database checks, backups, a load test — generated with the controllable clock
//! on SQLite and on PostgreSQL, then the daily, weekly and monthly reports for a fixed moment,
//! with every figure asserted against what the test computes from the data it wrote.
//!
//! One test binary of its own: the controllable clock is process-wide.

mod seed;

use std::sync::{Arc, Mutex};

use lookout_server::alerting::Alerting;
use lookout_server::reports::{self, render, schedule, Kind, Report, Request, Settings};
use lookout_store::alerting as astore;
use lookout_store::{Backend, Store};
use lookout_testkit::PgDatabase;
use seed::{Seeded, D, E, H, M};

async fn report(store: &Store, kind: Kind) -> Report {
    reports::build(
        store,
        &Request {
            kind,
            end: E,
            base_url: "https://lookout.example.com".into(),
            now: E + 3 * D,
        },
    )
    .await
    .unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-9)
}

/// The nearest-rank quantile of `xs`.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).max(1);
    v[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_known_month_gives_every_figure_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let pg;
        let url = match backend {
            Backend::Sqlite => Store::sqlite_url_for_dir(dir.path()),
            Backend::Postgres => {
                pg = PgDatabase::create().await;
                pg.url().to_string()
            }
        };
        let store = Store::open(&url).await.unwrap();
        let s = seed::seed(&store).await;
        lookout_core::time::set_clock(None);
        daily(&store, &s).await;
        weekly(&store, &s).await;
        monthly(&store, &s).await;
        scheduled(&store).await;
        event_types(&store, &s).await;
        store.close().await;
    }
}

/// A local webhook receiver: every body it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// The schedule at 08:00 UTC on Tuesdays and the 10th makes all three reports for E once, and
/// sends each through the webhook with the same figures as a report built on demand.
async fn scheduled(store: &Store) {
    let org = lookout_store::tenancy::default_org(store).await.unwrap();
    let (url, got) = receiver().await;
    let ch = astore::channel_create(
        store,
        org.id,
        &astore::ChannelInput {
            name: "reports".into(),
            kind: "webhook".into(),
            config: serde_json::json!({ "url": url }),
            user_id: None,
            urgencies: vec!["high".into(), "low".into()],
            enabled: true,
        },
    )
    .await
    .unwrap();
    let settings = Settings {
        timezone: "UTC".into(),
        time_of_day: "08:00".into(),
        weekly_day: "tuesday".into(),
        monthly_day: 10,
        channel_ids: vec![ch.id],
        ..Settings::default()
    };
    lookout_store::reports::save_settings(
        store,
        org.id,
        &serde_json::to_value(&settings).unwrap(),
        E,
    )
    .await
    .unwrap();
    let sealer =
        lookout_core::seal::Sealer::from_hex(&lookout_core::seal::Sealer::new_key_hex()).unwrap();
    let a = Alerting::new(
        store.clone(),
        sealer,
        "https://lookout.example.com",
        Default::default(),
    );
    // Half an hour after E every kind is due at E (a Tuesday, the 10th); the org is older.
    let made = schedule::run(&a, E + 30 * M).await.unwrap();
    assert_eq!(made.len(), 3, "daily, weekly and monthly are all due at E");
    assert!(
        schedule::run(&a, E + 31 * M).await.unwrap().is_empty(),
        "made once"
    );
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    for kind in [Kind::Daily, Kind::Weekly, Kind::Monthly] {
        let b = bodies
            .iter()
            .find(|b| b["report"]["kind"] == kind.as_str())
            .unwrap_or_else(|| panic!("{kind:?} was not delivered"));
        assert_eq!(b["event"], "report");
        assert_eq!(b["report"]["period"]["end"], E);
        let want = report(store, kind).await;
        assert_eq!(
            b["report"]["incidents"]["outcomes"],
            serde_json::to_value(&want.incidents.unwrap().outcomes).unwrap()
        );
        assert_eq!(b["report"]["errors"]["events"], want.errors.unwrap().events);
        let id = b["report_id"].as_i64().unwrap();
        assert_eq!(
            b["url"],
            format!("https://lookout.example.com/reports/{id}")
        );
        let d = lookout_store::reports::deliveries(store, id).await.unwrap();
        assert_eq!((d.len(), d[0].status.as_str()), (1, "sent"));
    }
}

/// NRQL over the same data, every event type read raw: answers computed from what was written.
async fn event_types(store: &Store, s: &Seeded) {
    let projects = lookout_store::tenancy::project_ids(store).await.unwrap();
    let month = format!("SINCE {} UNTIL {}", E - 30 * D, E);
    let ask = |nrql: String| {
        let projects = projects.clone();
        async move {
            lookout_server::query::nrql::run(store, &projects, &nrql, E + D)
                .await
                .unwrap_or_else(|e| panic!("{nrql}: {e}"))
                .rows
        }
    };
    use serde_json::json;
    // Checks: 4320 of M1 in the month, 6 of them failed.
    assert_eq!(
        ask(format!("SELECT count(*) FROM SyntheticCheck WHERE monitorId = {} AND result = 'FAILED' {month}", s.m1)).await,
        vec![vec![json!(6.0)]]
    );
    let up = ask(format!("SELECT percentage(count(*), WHERE result = 'SUCCESS') FROM SyntheticCheck FACET monitorName {month}")).await;
    assert_eq!(up[0][0], json!("marketing site"));
    assert!(close(up[0][1].as_f64().unwrap(), 100.0, 1e-12));
    assert!(close(
        up[1][1].as_f64().unwrap(),
        100.0 * 4314.0 / 4320.0,
        1e-12
    ));
    // Error events by their own timestamps: the report's 36.
    assert_eq!(
        ask(format!("SELECT count(*) FROM ErrorEvent {month}")).await,
        vec![vec![json!(36.0)]]
    );
    assert_eq!(
        ask(format!("SELECT uniqueCount(enduser.id) FROM ErrorEvent WHERE error.class = 'ValueError' {month}")).await,
        vec![vec![json!(2.0)]]
    );
    // Benchmark points: 30 at 100–102, then 10 at 150–152.
    let values: Vec<f64> = (0..40)
        .map(|i| if i < 30 { 100.0 } else { 150.0 } + (i % 3) as f64)
        .collect();
    let avg = values.iter().sum::<f64>() / 40.0;
    let got = ask(format!(
        "SELECT average(value), max(value) FROM BenchmarkPoint FACET name SINCE {} UNTIL {}",
        E - 60 * D,
        E
    ))
    .await;
    assert_eq!(got[0][0], json!("bench.latency"));
    assert!(close(got[0][1].as_f64().unwrap(), avg, 1e-12));
    assert_eq!(got[0][2], json!(152.0));
    assert_eq!(
        ask(format!(
            "SELECT count(*), latest(name) FROM LoadTestRun WHERE passed IS TRUE {month}"
        ))
        .await,
        vec![vec![json!(1.0), json!("checkout-smoke")]]
    );
    // Request spans on raw rows: the last day's failures, by status code.
    let day = format!("SINCE {} UNTIL {}", E - D, E);
    assert_eq!(
        ask(format!(
            "SELECT count(*) FROM Transaction FACET http.statusCode {day}"
        ))
        .await,
        vec![
            vec![json!(200.0), json!(120.0)],
            vec![json!(500.0), json!(24.0)]
        ]
    );
}

async fn daily(store: &Store, s: &Seeded) {
    let r = report(store, Kind::Daily).await;
    assert_eq!((r.period.start, r.period.end), (E - D, E));
    assert_eq!(r.title, "Daily check");
    // Errors: A once (k = 1), B five times; the day before, A once.
    let e = r.errors.as_ref().unwrap();
    assert_eq!((e.events, e.events_previous), (6, 1));
    assert_eq!(e.new_issues.len(), 1);
    assert_eq!(e.new_issues[0].id, s.issue_b);
    assert_eq!((e.new_issues[0].events, e.new_issues[0].users), (5, 2));
    assert_eq!(e.new_issues[0].url, format!("/errors/issues/{}", s.issue_b));
    assert!(e.regressed.is_empty(), "C regressed three days ago");
    assert!(e.top_by_events.is_empty(), "daily has no top lists");
    // Uptime: one 20-minute outage of M1; 2 of 144 checks failed.
    let u = r.uptime.as_ref().unwrap();
    assert_eq!(u.outages.len(), 1);
    let o = &u.outages[0];
    assert_eq!(
        (o.monitor_id, o.start, o.end, o.duration_ms),
        (s.m1, E - 12 * H, Some(E - 12 * H + 20 * M), 20 * M)
    );
    let m1 = u.monitors.iter().find(|m| m.id == s.m1).unwrap();
    assert_eq!((m1.checks, m1.failed_checks), (144, 2));
    assert!(close(m1.uptime.unwrap(), 100.0 * 142.0 / 144.0, 1e-9));
    assert_eq!(m1.met, Some(false));
    // Incidents: I5 and I6, neither acknowledged by the end (I6 is, an hour after it).
    let i = r.incidents.as_ref().unwrap();
    let ids: Vec<i64> = i.opened.iter().map(|x| x.id).collect();
    assert_eq!(ids, vec![s.incidents[5], s.incidents[6]]);
    assert!(i.opened.iter().all(|x| x.status == "triggered"));
    assert_eq!(i.opened_previous, 1);
    assert_eq!(
        (
            i.outcomes.incidents,
            i.outcomes.detected,
            i.outcomes.acknowledged
        ),
        (2, 0, 0)
    );
    assert_eq!(i.outcomes.mtta_ms, None);
    // Services: checkout moved on p95 and error rate against its 7-day baseline.
    let sv = &r.services.as_ref().unwrap().services;
    assert_eq!(sv.len(), 1);
    let c = &sv[0];
    assert_eq!(c.name, "checkout");
    assert_eq!((c.current.requests, c.baseline.requests), (144, 1008));
    assert!(close(c.current.error_rate.unwrap(), 24.0 / 144.0, 1e-9));
    assert_eq!(c.baseline.error_rate, Some(0.0));
    let daily_durations: Vec<f64> = seed::durations(true)
        .into_iter()
        .cycle()
        .take(144)
        .collect();
    assert!(close(
        c.current.p95_ms.unwrap(),
        quantile(&daily_durations, 0.95),
        0.02
    ));
    assert!(close(c.baseline.p95_ms.unwrap(), 150.0, 0.02));
    assert_eq!(c.moved.len(), 2, "{:?}", c.moved);
    assert!(c.moved[0].starts_with("p95 ") && c.moved[1].starts_with("error rate 16.7 %"));
    // Apdex with T = 200 ms: nothing satisfied, 120 tolerating, 24 failed.
    assert!(close(c.current.apdex.unwrap(), 60.0 / 144.0, 1e-9));
    // The missing index appeared in this morning's check.
    let db = r.databases.as_ref().unwrap();
    assert_eq!(db.new_findings.len(), 1);
    assert_eq!(
        (
            db.new_findings[0].kind.as_str(),
            db.new_findings[0].object.as_str()
        ),
        ("missing_index", "public.orders")
    );
    assert!(db.slow_queries.is_empty() && db.index_advice.is_empty());
    // Backups: the drill of the night failed; the newest backup is two days old.
    let b = &r.backups.as_ref().unwrap().targets;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].target, "shop");
    assert_eq!(b[0].last_backup_at, Some(E - 2 * D + 60_000));
    assert_eq!(b[0].exposure_ms, Some(2 * D - 60_000));
    assert_eq!(
        (b[0].last_drill_ok, b[0].runs, b[0].failed_runs),
        (Some(false), 1, 1)
    );
    assert!(r.regressions.as_ref().unwrap().is_empty());
    assert!(r.load_tests.is_none() && r.noise.is_none() && r.slos.is_none());
    assert!(r.capacity.is_none() && r.recurring.is_none() && r.suggestions.is_none());
    // The renderings say the same.
    let text = render::text(&r);
    assert!(text.contains("ValueError: coupon"), "{text}");
    assert!(
        text.contains("https://lookout.example.com/errors/issues/"),
        "{text}"
    );
    let html = render::html(&r, &r.base_url, None);
    for id in [
        "summary",
        "incidents",
        "errors",
        "uptime",
        "services",
        "backups",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
}

async fn weekly(store: &Store, s: &Seeded) {
    let r = report(store, Kind::Weekly).await;
    assert_eq!((r.period.start, r.previous.start), (E - 7 * D, E - 14 * D));
    let e = r.errors.as_ref().unwrap();
    // A: 7 (previous week 7); B: 5; C: 1, after being resolved.
    assert_eq!((e.events, e.events_previous), (13, 7));
    let top: Vec<(i64, i64, i64)> = e
        .top_by_events
        .iter()
        .map(|i| (i.id, i.events, i.events_previous))
        .collect();
    assert_eq!(
        top,
        vec![(s.issue_a, 7, 7), (s.issue_b, 5, 0), (s.issue_c, 1, 0)]
    );
    let users: Vec<(i64, i64)> = e.top_by_users.iter().map(|i| (i.id, i.users)).collect();
    assert_eq!(users, vec![(s.issue_a, 3), (s.issue_b, 2), (s.issue_c, 1)]);
    assert_eq!(
        e.regressed.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![s.issue_c]
    );
    let u = r.uptime.as_ref().unwrap();
    let m1 = u.monitors.iter().find(|m| m.id == s.m1).unwrap();
    assert_eq!(
        (m1.checks, m1.failed_checks, m1.downtime_ms, m1.outages),
        (1008, 2, 20 * M, 1)
    );
    let m2 = u.monitors.iter().find(|m| m.id == s.m2).unwrap();
    assert_eq!(
        (m2.uptime, m2.target, m2.met),
        (Some(100.0), 99.99, Some(true))
    );
    // Incidents I3–I6: two detected at 10 min, acknowledged at 2, resolved at 30.
    let i = r.incidents.as_ref().unwrap();
    assert_eq!(i.opened.len(), 4);
    assert_eq!(i.opened_previous, 1);
    let o = &i.outcomes;
    assert_eq!(
        (o.detected, o.mttd_ms, o.detect_met),
        (2, Some(10 * M), Some(false))
    );
    assert_eq!(
        (o.acknowledged, o.mtta_ms, o.acknowledge_met),
        (2, Some(2 * M), Some(true))
    );
    assert_eq!(
        (o.resolved, o.mttr_ms, o.resolve_met),
        (2, Some(30 * M), Some(true))
    );
    // Transactions: POST /checkout spent most time, and is slowest.
    let sv = r.services.as_ref().unwrap();
    let (cart, checkout) = seed::weekly_transaction_durations();
    let total = |xs: &[f64]| xs.iter().sum::<f64>();
    assert_eq!(sv.most_time[0].name, "POST /checkout");
    assert!(close(sv.most_time[0].total_ms, total(&checkout), 1e-9));
    assert!(close(sv.most_time[1].total_ms, total(&cart), 1e-9));
    assert!(close(
        sv.most_time[0].share,
        total(&checkout) / (total(&checkout) + total(&cart)),
        1e-9
    ));
    assert_eq!(sv.slowest[0].name, "POST /checkout");
    assert!(close(
        sv.slowest[0].p95_ms.unwrap(),
        quantile(&checkout, 0.95),
        0.02
    ));
    assert!(close(
        sv.slowest[1].p95_ms.unwrap(),
        quantile(&cart, 0.95),
        0.02
    ));
    assert_eq!(sv.services[0].current.requests, 1008);
    // The change point pushed two days ago.
    let rg = r.regressions.as_ref().unwrap();
    assert_eq!(rg.len(), 1);
    assert_eq!(rg[0].kind, "regression");
    assert!(rg[0].before < 103.0 && rg[0].after > 149.0, "{:?}", rg[0]);
    let db = r.databases.as_ref().unwrap();
    assert_eq!(db.index_advice.len(), 1);
    assert_eq!(db.slow_queries.len(), 1);
    assert!(close(db.slow_queries[0].mean_ms, 50.0, 1e-9));
    let load = r.load_tests.as_ref().unwrap();
    assert_eq!(load.len(), 1);
    assert_eq!(
        (load[0].name.as_str(), load[0].passed),
        ("checkout-smoke", true)
    );
    // Noise: the latency policy opened 2 incidents, both acknowledged and left to resolve.
    let n = r.noise.as_ref().unwrap();
    assert_eq!(n.acknowledged_without_action, 2);
    let latency = n
        .sources
        .iter()
        .find(|x| x.name == "Checkout latency")
        .unwrap();
    assert_eq!(
        (latency.incidents, latency.acknowledged_without_action),
        (2, 2)
    );
    let down = n.sources.iter().find(|x| x.name == "API down").unwrap();
    assert_eq!((down.incidents, down.acknowledged_without_action), (2, 0));
    assert_eq!(r.slos.as_ref().unwrap().len(), 3);
    assert!(r.capacity.is_none() && r.suggestions.is_none());
}

async fn monthly(store: &Store, s: &Seeded) {
    let r = report(store, Kind::Monthly).await;
    let e = r.errors.as_ref().unwrap();
    assert_eq!((e.events, e.events_previous), (36, 31));
    let u = r.uptime.as_ref().unwrap();
    let m1 = u.monitors.iter().find(|m| m.id == s.m1).unwrap();
    assert_eq!((m1.checks, m1.failed_checks), (4320, 6));
    assert!(close(m1.uptime.unwrap(), 100.0 * 4314.0 / 4320.0, 1e-9));
    assert!(close(
        m1.uptime_previous.unwrap(),
        100.0 * 4316.0 / 4320.0,
        1e-9
    ));
    assert_eq!(
        (m1.downtime_ms, m1.outages, m1.met),
        (60 * M, 2, Some(false))
    );
    // Outcomes over I1–I6: detect (2 + 10 + 10 + 10) / 4 min; acknowledge (4 + 2 + 2 + 2) / 4;
    // resolve (38 + 30 + 30 + 30) / 4.
    let i = r.incidents.as_ref().unwrap();
    let o = &i.outcomes;
    assert_eq!(o.incidents, 6);
    assert_eq!(
        (o.detected, o.mttd_ms, o.detect_met),
        (4, Some(8 * M), Some(false))
    );
    assert_eq!(
        (o.acknowledged, o.mtta_ms, o.acknowledge_met),
        (4, Some(150_000), Some(true))
    );
    assert_eq!(
        (o.resolved, o.mttr_ms, o.resolve_met),
        (4, Some(32 * M), Some(false))
    );
    let checkout = &i.by_service["checkout"];
    assert_eq!(
        (checkout.incidents, checkout.mttd_ms, checkout.mttr_ms),
        (4, Some(8 * M), Some(32 * M))
    );
    let none = &i.by_service["(none)"];
    assert_eq!((none.incidents, none.detected, none.resolved), (2, 0, 0));
    // By month: I1 and I2 in October, the rest in November.
    let oct = &i.by_month["2026-10"];
    assert_eq!(
        (oct.incidents, oct.mttd_ms, oct.mtta_ms, oct.mttr_ms),
        (2, Some(6 * M), Some(3 * M), Some(34 * M))
    );
    let nov = &i.by_month["2026-11"];
    assert_eq!(
        (nov.incidents, nov.mttd_ms, nov.mtta_ms, nov.mttr_ms),
        (4, Some(10 * M), Some(2 * M), Some(30 * M))
    );
    // SLOs at the end: 24 failed requests of 4320 against 99.9 %; 24 bad hours of 720 against
    // 95 %; the site never down.
    let slos = r.slos.as_ref().unwrap();
    let avail = slos.iter().find(|x| x.id == s.slo_availability).unwrap();
    let b = &avail.budget;
    assert_eq!((b.good, b.total), (4296.0, 4320.0));
    assert!(close(b.budget_total, 4.32, 1e-9));
    assert!(close(b.budget_remaining.unwrap(), 1.0 - 24.0 / 4.32, 1e-9));
    assert!(close(b.burn_rate.unwrap(), (24.0 / 4320.0) / 0.001, 1e-9));
    assert_eq!(b.met, Some(false));
    let lat = slos.iter().find(|x| x.id == s.slo_latency).unwrap();
    assert_eq!((lat.budget.good, lat.budget.total), (696.0, 720.0));
    assert!(close(
        lat.budget.budget_remaining.unwrap(),
        1.0 - 24.0 / 36.0,
        1e-9
    ));
    assert_eq!(lat.objective, "latency p95 ≤ 250 ms");
    let up = slos.iter().find(|x| x.id == s.slo_uptime).unwrap();
    assert_eq!(
        (up.budget.attainment, up.budget.budget_remaining),
        (Some(100.0), Some(1.0))
    );
    // Capacity: 4320 requests by UTC day (16 h of the first day, 8 h of the last), flat.
    let cap = r.capacity.as_ref().unwrap();
    let days: Vec<u64> = cap.requests_per_day.iter().map(|d| d.1).collect();
    assert_eq!(days.len(), 31);
    assert_eq!((days[0], days[1], days[30]), (96, 144, 48));
    assert_eq!(days.iter().sum::<u64>(), 4320);
    assert_eq!(
        (
            cap.first_week_requests,
            cap.last_week_requests,
            cap.throughput_growth
        ),
        (1008, 1008, Some(0.0))
    );
    assert_eq!(cap.databases.len(), 1);
    assert_eq!(
        (cap.databases[0].first_bytes, cap.databases[0].last_bytes),
        (1_000_000, 1_500_000)
    );
    // Recurring: the latency incident three times, the API one twice.
    let rec: Vec<(u64, i64)> = r
        .recurring
        .as_ref()
        .unwrap()
        .iter()
        .map(|x| (x.count, x.last_id))
        .collect();
    assert_eq!(rec, vec![(3, s.incidents[4]), (2, s.incidents[5])]);
    // Each suggestion names its finding.
    let mut sources: Vec<String> = r
        .suggestions
        .as_ref()
        .unwrap()
        .iter()
        .map(|x| x.source.clone())
        .collect();
    sources.sort();
    let mut want = vec![
        format!("slo:{}", s.slo_availability),
        "outcomes.mttd".to_string(),
        "outcomes.mttr".to_string(),
        format!("monitor:{}", s.m1),
        format!("incident:{}", s.incidents[4]),
        format!("policy:{}", s.policy_latency),
        format!("issue:{}", s.issue_a),
        "db:missing_index:public.orders".to_string(),
        "backup:shop".to_string(),
    ];
    want.sort();
    assert_eq!(sources, want);
    let html = render::html(&r, "", Some("/reports"));
    for id in [
        "slos",
        "capacity",
        "recurring",
        "suggestions",
        "noise",
        "load",
    ] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
    }
    assert!(html.contains("<svg"), "charts are inline SVG");
}
