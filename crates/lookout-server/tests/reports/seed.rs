//! The known data set, written through the store's own write paths with the controllable
//! clock set to each moment, so domain events, timelines and rollups carry the seeded times.
//!
//! The report's end `E` is 2026-11-10 08:00 UTC; data covers the 60 days before it.

use std::collections::BTreeMap;

use serde_json::json;

use lookout_apm::span::{kind, Category, Span};
use lookout_core::time::{iso, set_clock};
use lookout_oncall::dedup::Severity;
use lookout_oncall::inbound::{Action, Signal};
use lookout_server::alerting::engine::{self, Applied, Origin};
use lookout_store::alerting::{self as astore, incidents, SpecTable};
use lookout_store::apm::rollup::RollupProcessor;
use lookout_store::errors::process::{ingest_writes, ErrorProcessor};
use lookout_store::series::{Direction, NewPoint, SeriesKey};
use lookout_store::uptime::results::{self, ResultRow};
use lookout_store::uptime::{self as ustore, NewMonitor};
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Store, Write, Writer};

pub const M: i64 = 60_000;
pub const H: i64 = 60 * M;
pub const D: i64 = 24 * H;
/// 2026-11-10T08:00:00Z.
pub const E: i64 = 1_794_297_600_000;

/// Ids the assertions need.
pub struct Seeded {
    pub issue_a: i64,
    pub issue_b: i64,
    pub issue_c: i64,
    pub m1: i64,
    pub m2: i64,
    /// I0 … I6.
    pub incidents: Vec<i64>,
    pub policy_latency: i64,
    pub slo_availability: i64,
    pub slo_latency: i64,
    pub slo_uptime: i64,
}

/// The six request durations of one hour (ms); tripled during the report's last day.
pub fn durations(slow: bool) -> Vec<f64> {
    (0..6)
        .map(|i| (100 + 10 * i) as f64 * if slow { 3.0 } else { 1.0 })
        .collect()
}

/// Every duration of `GET /cart` (even i) and `POST /checkout` (odd i) in the week before E.
pub fn weekly_transaction_durations() -> (Vec<f64>, Vec<f64>) {
    let (mut cart, mut checkout) = (Vec::new(), Vec::new());
    for h in 0..7 * 24 {
        let slow = h >= 6 * 24;
        for (i, d) in durations(slow).into_iter().enumerate() {
            if i.is_multiple_of(2) {
                cart.push(d)
            } else {
                checkout.push(d)
            }
        }
    }
    (cart, checkout)
}

async fn write(w: &Writer, writes: Vec<Write>) {
    for chunk in writes.chunks(2_000) {
        w.queue().write(chunk.to_vec()).await.unwrap();
    }
}

fn event(id: &str, ty: &str, value: &str, at: i64, user: &str) -> String {
    json!({
        "event_id": id, "level": "error", "platform": "python", "environment": "prod",
        "timestamp": at as f64 / 1000.0, "user": {"id": user},
        "exception": {"values": [{"type": ty, "value": value,
            "stacktrace": {"frames": [{"filename": "app.py", "function": ty, "lineno": 3, "in_app": true}]}}]}
    })
    .to_string()
}

async fn errors(store: &Store, w: &Writer, p: i64) -> (i64, i64, i64) {
    let processor = ErrorProcessor::new(store.clone(), "seed");
    let mut n = 0u32;
    let mut send = |ty: &'static str, value: &'static str, at: i64, user: String| {
        n += 1;
        (format!("{n:032x}"), ty, value, at, user)
    };
    let mut batch = Vec::new();
    for k in 1..=59 {
        batch.push(send(
            "KeyError",
            "cart",
            E - k * D + 3 * H,
            format!("user-{}", k % 3),
        ));
    }
    for i in 0..5 {
        batch.push(send(
            "ValueError",
            "coupon",
            E - 5 * H + i * 10 * M,
            format!("u-b{}", i % 2),
        ));
    }
    batch.push(send("TimeoutError", "payment", E - 40 * D, "u-c".into()));
    batch.push(send(
        "TimeoutError",
        "payment",
        E - 40 * D + M,
        "u-c".into(),
    ));
    let regression = send("TimeoutError", "payment", E - 3 * D + H, "u-c".into());
    batch.sort_by_key(|e| e.3);
    for (id, ty, value, at, user) in batch {
        set_clock(Some(at));
        write(
            w,
            ingest_writes(
                p,
                at,
                vec![(
                    "event".into(),
                    Some(id.clone()),
                    event(&id, ty, value, at, &user),
                )],
                vec![],
            ),
        )
        .await;
        while processor.poll_once().await.unwrap() > 0 {}
    }
    let issues =
        lookout_store::errors::list_issues(store, p, &Default::default(), &Default::default())
            .await
            .unwrap()
            .items;
    let id_of = |t: &str| issues.iter().find(|i| i.title.starts_with(t)).unwrap().id;
    let (a, b, c) = (
        id_of("KeyError"),
        id_of("ValueError"),
        id_of("TimeoutError"),
    );
    set_clock(Some(E - 35 * D));
    lookout_store::errors::set_status(store, c, lookout_store::errors::StatusChange::Resolve)
        .await
        .unwrap();
    let (id, ty, value, at, user) = regression;
    set_clock(Some(at));
    write(
        w,
        ingest_writes(
            p,
            at,
            vec![(
                "event".into(),
                Some(id.clone()),
                event(&id, ty, value, at, &user),
            )],
            vec![],
        ),
    )
    .await;
    while processor.poll_once().await.unwrap() > 0 {}
    (a, b, c)
}

async fn monitors(store: &Store, w: &Writer, org: i64) -> (i64, i64) {
    let mut ids = Vec::new();
    for name in ["api health", "marketing site"] {
        let m = ustore::create_monitor(
            store,
            &NewMonitor {
                org_id: org,
                project_id: None,
                name: name.into(),
                kind: "http".into(),
                slug: None,
                spec: json!({"type": "http", "url": "http://example.invalid/"}).to_string(),
                paused: true,
                parent_id: None,
                push_token: None,
                managed_by: None,
            },
        )
        .await
        .unwrap();
        ids.push(m.id);
    }
    let (m1, m2) = (ids[0], ids[1]);
    // Failed checks of M1: 4 from E−45 d, 4 from E−20 d + 6 h, 2 from E−12 h.
    let mut failing = std::collections::BTreeSet::new();
    for (start, n) in [(E - 45 * D, 4), (E - 20 * D + 6 * H, 4), (E - 12 * H, 2)] {
        for i in 0..n {
            failing.insert(start + i * 10 * M);
        }
    }
    let mut writes = Vec::new();
    for i in 0..8640 {
        let at = E - 60 * D + i * 10 * M;
        for id in [m1, m2] {
            let ok = !(id == m1 && failing.contains(&at));
            writes.push(results::result_write(
                id,
                &ResultRow {
                    at,
                    ok,
                    maintenance: false,
                    latency_us: Some(1_000),
                    message: None,
                },
            ));
        }
    }
    for id in [m1, m2] {
        writes.push(ustore::change_write(
            id,
            E - 60 * D,
            "pending",
            "up",
            "check passed",
            false,
        ));
    }
    for (down, up) in [
        (E - 45 * D, E - 45 * D + 40 * M),
        (E - 20 * D + 6 * H, E - 20 * D + 6 * H + 40 * M),
        (E - 12 * H, E - 12 * H + 20 * M),
    ] {
        writes.push(ustore::change_write(
            m1, down, "up", "down", "HTTP 503", true,
        ));
        writes.push(ustore::change_write(
            m1,
            up,
            "down",
            "up",
            "check passed",
            true,
        ));
    }
    write(w, writes).await;
    // Rollups as the upkeep job makes them while time passes, up to 10 days before E; the
    // rest is read from raw results.
    let mut now = E - 60 * D;
    while now <= E - 10 * D {
        results::roll_up(store, now).await.unwrap();
        now += 6 * H;
    }
    (m1, m2)
}

struct Timeline {
    policy: i64,
    key: &'static str,
    service: Option<&'static str>,
    at: i64,
    details: serde_json::Value,
    ack: Option<i64>,
    note: Option<i64>,
    /// (when, by the system?)
    resolve: Option<(i64, bool)>,
}

async fn incident(store: &Store, t: &Timeline, org: i64) -> i64 {
    set_clock(Some(t.at));
    let mut tx = store.begin_write().await.unwrap();
    let origin = Origin {
        org_id: org,
        scope: format!("policy:{}", t.policy),
        policy_id: Some(t.policy),
        integration_id: None,
        escalation_policy_id: None,
        runbook_id: None,
        service: t.service.map(str::to_string),
        urgency: None,
        actor: "policy:seed".into(),
        count_repeats: false,
        signal_ref: None,
    };
    let signal = Signal {
        action: Action::Trigger,
        dedup_key: Some(t.key.into()),
        title: format!("{} ({})", t.key, iso(t.at)),
        severity: Severity::Error,
        source: None,
        details: t.details.clone(),
        links: Vec::new(),
    };
    let Applied::Opened(id) = engine::apply(&mut tx, &origin, &signal, t.at)
        .await
        .unwrap()
    else {
        panic!("not opened");
    };
    tx.commit().await.unwrap();
    let mut steps: Vec<(i64, &str)> = Vec::new();
    if let Some(a) = t.ack {
        steps.push((a, "ack"));
    }
    if let Some(n) = t.note {
        steps.push((n, "note"));
    }
    if let Some((r, system)) = t.resolve {
        steps.push((r, if system { "auto" } else { "resolve" }));
    }
    steps.sort();
    for (at, step) in steps {
        set_clock(Some(at));
        let mut tx = store.begin_write().await.unwrap();
        match step {
            "ack" => {
                engine::transition(
                    &mut tx,
                    id,
                    Action::Acknowledge,
                    "user:oncall@example.com",
                    at,
                )
                .await
                .unwrap();
            }
            "note" => incidents::log(
                &mut tx,
                id,
                at,
                "note",
                "user:oncall@example.com",
                "Restarted the pool",
                None,
            )
            .await
            .unwrap(),
            "resolve" => {
                engine::transition(&mut tx, id, Action::Resolve, "user:oncall@example.com", at)
                    .await
                    .unwrap();
            }
            _ => {
                engine::transition(&mut tx, id, Action::Resolve, "system", at)
                    .await
                    .unwrap();
                incidents::log(
                    &mut tx,
                    id,
                    at,
                    "auto_resolved",
                    "system",
                    "Recovered",
                    None,
                )
                .await
                .unwrap();
            }
        }
        tx.commit().await.unwrap();
    }
    id
}

fn span(n: u64, at: i64, i: usize, slow: bool) -> Span {
    let ms = durations(slow)[i];
    Span {
        trace_id: format!("{n:032x}"),
        span_id: format!("{n:016x}"),
        parent_span_id: None,
        service: "checkout".into(),
        instance: None,
        name: "request".into(),
        kind: kind::SERVER,
        start_ns: at * 1_000_000,
        duration_ns: (ms * 1e6) as i64,
        status: 0,
        error: slow && i == 5,
        category: Category::Request,
        operation: if i.is_multiple_of(2) {
            "GET /cart".into()
        } else {
            "POST /checkout".into()
        },
        status_class: if slow && i == 5 {
            "5xx".into()
        } else {
            "2xx".into()
        },
        http_status: Some(if slow && i == 5 { 500 } else { 200 }),
        db_system: None,
        db_statement: None,
        peer: None,
        resource: "0".into(),
        detail: "{}".into(),
    }
}

async fn spans(store: &Store, w: &Writer, p: i64) {
    let mut n = 0u64;
    for day in 0..60 {
        let mut batch = Vec::new();
        for h in 0..24 {
            let hour = E - 60 * D + day * D + h * H;
            let slow = hour >= E - D;
            for i in 0..6 {
                n += 1;
                batch.push(span(n, hour + i as i64 * 10 * M + 1_000, i, slow));
            }
        }
        write(
            w,
            lookout_store::apm::span_writes(p, batch, &[("0".into(), "{}".into())]),
        )
        .await;
    }
    let rollups = RollupProcessor::new(store.clone(), "seed");
    while rollups.poll_once().await.unwrap() > 0 {}
    lookout_store::apm::query::set_service_settings(
        store,
        &[p],
        "checkout",
        Some(200.0),
        None,
        lookout_store::ownership::TeamChange::Keep,
    )
    .await
    .unwrap();
}

pub async fn seed(store: &Store) -> Seeded {
    let w = Writer::start(store.clone(), WriterConfig::default());
    // The organization exists from before the data.
    set_clock(Some(E - 70 * D));
    let (project, _) = tenancy::ensure_default_project(store).await.unwrap();
    let org = tenancy::default_org(store).await.unwrap().id;
    let p = project.id;
    let (issue_a, issue_b, issue_c) = errors(store, &w, p).await;
    let (m1, m2) = monitors(store, &w, org).await;
    spans(store, &w, p).await;

    set_clock(Some(E - 70 * D));
    let policy_down = astore::spec_create(
        store,
        SpecTable::Policies,
        org,
        "API down",
        &json!({"conditions": []}),
    )
    .await
    .unwrap()
    .id;
    let policy_latency = astore::spec_create(
        store,
        SpecTable::Policies,
        org,
        "Checkout latency",
        &json!({"conditions": []}),
    )
    .await
    .unwrap()
    .id;
    let starts = |t: i64| json!({"starts_at": iso(t - 10 * M)});
    let timelines = [
        // I0: the month before.
        Timeline {
            policy: policy_down,
            key: "m1",
            service: Some("checkout"),
            at: E - 40 * D,
            details: json!({"event": "monitor.down", "payload": {"failing_since": E - 40 * D - 2 * M}}),
            ack: Some(E - 40 * D + 3 * M),
            note: None,
            resolve: Some((E - 40 * D + 10 * M, false)),
        },
        // I1: detected 2 min after the failure began, acknowledged at 4, a note, resolved at 38.
        Timeline {
            policy: policy_down,
            key: "m1",
            service: Some("checkout"),
            at: E - 20 * D + 6 * H + 2 * M,
            details: json!({"event": "monitor.down", "payload": {"failing_since": E - 20 * D + 6 * H, "at": E - 20 * D + 6 * H + 10 * M}}),
            ack: Some(E - 20 * D + 6 * H + 6 * M),
            note: Some(E - 20 * D + 6 * H + 7 * M),
            resolve: Some((E - 20 * D + 6 * H + 40 * M, false)),
        },
        // I2–I4: Alertmanager-style starts 10 min before; acknowledged at 2, left to resolve at 30.
        Timeline {
            policy: policy_latency,
            key: "latency",
            service: Some("checkout"),
            at: E - 10 * D,
            details: starts(E - 10 * D),
            ack: Some(E - 10 * D + 2 * M),
            note: None,
            resolve: Some((E - 10 * D + 30 * M, true)),
        },
        Timeline {
            policy: policy_latency,
            key: "latency",
            service: Some("checkout"),
            at: E - 6 * D,
            details: starts(E - 6 * D),
            ack: Some(E - 6 * D + 2 * M),
            note: None,
            resolve: Some((E - 6 * D + 30 * M, true)),
        },
        Timeline {
            policy: policy_latency,
            key: "latency",
            service: Some("checkout"),
            at: E - 2 * D,
            details: starts(E - 2 * D),
            ack: Some(E - 2 * D + 2 * M),
            note: None,
            resolve: Some((E - 2 * D + 30 * M, true)),
        },
        // I5: no recorded start, nobody acknowledged it.
        Timeline {
            policy: policy_down,
            key: "m1",
            service: None,
            at: E - 6 * H,
            details: json!({}),
            ack: None,
            note: None,
            resolve: None,
        },
        // I6: acknowledged only after the report's end.
        Timeline {
            policy: policy_down,
            key: "late",
            service: None,
            at: E - H,
            details: json!({}),
            ack: Some(E + H),
            note: None,
            resolve: None,
        },
    ];
    let mut ids = Vec::new();
    for t in &timelines {
        ids.push(incident(store, t, org).await);
    }

    // A benchmark series that steps up 50 %, pushed two days before E.
    set_clock(Some(E - 2 * D));
    let key = SeriesKey {
        name: "bench.latency".into(),
        tags: BTreeMap::new(),
        unit: "ms".into(),
        direction: Direction::LowerIsBetter,
    };
    let points: Vec<NewPoint> = (0..40)
        .map(|i| NewPoint {
            key: key.clone(),
            at: E - 50 * D + i * D,
            value: if i < 30 { 100.0 } else { 150.0 } + (i % 3) as f64,
            commit: Some(format!("c{i}")),
            version: None,
            build: None,
            source: "test".into(),
        })
        .collect();
    lookout_store::series::add(store, p, &points).await.unwrap();

    // A database: a check 25 days before E, and this morning's with a missing index.
    let target = lookout_store::dbhealth::create(
        store,
        &lookout_store::dbhealth::NewTarget {
            project_id: p,
            name: "shop-db".into(),
            url_sealed: "sealed".into(),
            verify: None,
            interval_seconds: 3600,
            slow_ms: 20.0,
            slow_calls: 100,
            enabled: false,
        },
    )
    .await
    .unwrap();
    let slow = json!([{"queryid": "1", "query": "SELECT * FROM orders WHERE customer_id = $1", "calls": 500,
                        "total_ms": 25000.0, "mean_ms": 50.0, "rows": 500, "blocks_read": 0, "io_ms": 0.0}]);
    for (at, size, findings) in [
        (E - 25 * D, 1_000_000, json!([])),
        (
            E - 3 * H,
            1_500_000,
            json!([{"kind": "missing_index", "severity": "warning", "object": "public.orders",
            "detail": "Sequential scans on orders filter by customer_id: add an index"}]),
        ),
    ] {
        set_clock(Some(at));
        let report = json!({"database": "shop", "server_version": "16", "size_bytes": size,
                            "findings": findings, "verifications": [], "slow_queries": slow});
        lookout_store::dbhealth::record(store, &target, at, Ok((report, vec![])))
            .await
            .unwrap();
    }

    // Backups of "shop": full backups 30 and 2 days before E, a failed drill in the last day.
    use lookout_store::backup::catalog::{record_run, NewRun};
    for (kind, at, error) in [
        ("full", E - 30 * D + H, None),
        ("full", E - 2 * D, None),
        ("drill", E - 20 * H, Some("restore failed")),
    ] {
        record_run(
            store,
            &NewRun {
                target: "shop",
                target_id: None,
                kind,
                started_at: at,
                duration_ms: 60_000,
                error: error.map(str::to_string),
                details: json!({}),
            },
        )
        .await
        .unwrap();
    }

    set_clock(Some(E - 3 * D));
    lookout_store::load::record(
        store,
        &lookout_store::load::NewRun {
            project_id: p,
            name: "checkout-smoke".into(),
            commit: None,
            started_at: E - 3 * D,
            duration_ms: 60_000,
            passed: true,
            requests: 6000,
            rps: 100.0,
            p95_ms: 250.0,
            error_rate: 0.001,
            summary: json!({}),
            scenario_file: None,
        },
        &[],
    )
    .await
    .unwrap();

    // SLOs: checkout availability 99.9 %, p95 ≤ 250 ms in 95 % of hours, the site at 99.99 %.
    let slo = |name: &str, spec: serde_json::Value| {
        let name = name.to_string();
        async move {
            astore::spec_create(store, SpecTable::Slos, org, &name, &spec)
                .await
                .unwrap()
                .id
        }
    };
    let slo_availability = slo("Checkout availability", json!({"service": "checkout", "indicator": "availability", "target": 99.9, "window_days": 30})).await;
    let slo_latency = slo("Checkout latency", json!({"service": "checkout", "indicator": "latency", "percentile": 95, "threshold_ms": 250.0, "target": 95.0, "window_days": 30})).await;
    let slo_uptime = slo("Site uptime", json!({"service": "marketing", "indicator": "availability", "source": "uptime", "monitor_id": m2, "target": 99.99, "window_days": 30})).await;
    w.shutdown().await;
    Seeded {
        issue_a,
        issue_b,
        issue_c,
        m1,
        m2,
        incidents: ids,
        policy_latency,
        slo_availability,
        slo_latency,
        slo_uptime,
    }
}
