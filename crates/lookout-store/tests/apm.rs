//! APM storage on SQLite and PostgreSQL: the rollup consumer counts every span once; minute, hour
//! and day rows give the same figures for the same window; a call between services is one edge
//! whichever of its spans arrives first; complete days become `apm.p95` series points once.

use lookout_apm::span::{kind, Category, Span};
use lookout_store::apm::query::{self, Filter};
use lookout_store::apm::rollup::{self, RollupProcessor, SERVICE_CATEGORY};
use lookout_store::apm::{daily, span_writes};
use lookout_store::series;
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Backend, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    tiers_agree_and_every_span_counts_once,
    a_cross_service_call_is_one_edge_in_either_order,
    service_rows_sum_every_operation_and_are_backfilled_once,
);

const DAY: i64 = 86_400_000;

fn span(n: u64, service: &str, parent: Option<u64>, cat: Category, start_ms: i64, ms: f64) -> Span {
    Span {
        trace_id: format!("{:032x}", n / 10),
        span_id: format!("{n:016x}"),
        parent_span_id: parent.map(|p| format!("{p:016x}")),
        service: service.into(),
        instance: None,
        name: "op".into(),
        kind: match cat {
            Category::Request => kind::SERVER,
            _ => kind::CLIENT,
        },
        start_ns: start_ms * 1_000_000,
        duration_ns: (ms * 1e6) as i64,
        status: 0,
        error: n.is_multiple_of(7),
        category: cat,
        operation: match cat {
            Category::Request => format!("GET /r{}", n % 3),
            Category::External => "payments.internal".into(),
            _ => "SELECT t".into(),
        },
        status_class: "2xx".into(),
        http_status: Some(200),
        db_system: (cat == Category::Db).then(|| "postgresql".into()),
        db_statement: None,
        peer: (cat == Category::External).then(|| "payments.internal".into()),
        resource: "0".into(),
        detail: "{}".into(),
    }
}

async fn drain(f: &Fixture) {
    let p = RollupProcessor::new(f.store.clone(), "test");
    while p.poll_once().await.unwrap() > 0 {}
}

async fn project(f: &Fixture) -> i64 {
    tenancy::ensure_default_project(&f.store)
        .await
        .unwrap()
        .0
        .id
}

async fn tiers_agree_and_every_span_counts_once(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = project(&f).await;
    // Four days of requests, every 97 seconds, durations cycling over 1..500 ms.
    let now = lookout_core::time::now_ms();
    let start = (now - 4 * DAY) / DAY * DAY + 3_600_000;
    let mut spans = Vec::new();
    let mut t = start;
    let mut n = 0u64;
    while t < now - 3_600_000 {
        spans.push(span(
            n,
            "shop",
            None,
            Category::Request,
            t,
            (n % 500 + 1) as f64,
        ));
        t += 97_000;
        n += 1;
    }
    let sent = spans.len() as u64;
    for chunk in spans.chunks(1_000) {
        writer
            .queue()
            .write(span_writes(p, chunk.to_vec(), &[]))
            .await
            .unwrap();
    }
    drain(&f).await;
    drain(&f).await;

    let projects = [p];
    let filter = Filter {
        projects: &projects,
        service: Some("shop"),
        category: Some("request"),
        ..Filter::default()
    };
    // The planned read (days, hours, minutes) and a minute-only read of the same window.
    let (since, until) = (start - 30 * 60_000, now);
    let planned = query::fold(&f.store, &filter, since, until, |c| {
        Some(c.operation.to_string())
    })
    .await
    .unwrap();
    let ranges = query::plan(since, until);
    let (first, last) = (ranges[0].1, ranges[ranges.len() - 1].2);
    let minutes = query::fold_ranges(&f.store, &filter, &[(0, first, last)], |c| {
        Some(c.operation.to_string())
    })
    .await
    .unwrap();
    assert!(
        query::plan(since, until).iter().any(|r| r.0 == 2),
        "the window spans whole days"
    );
    assert_eq!(planned.len(), 3);
    let total: u64 = planned.values().map(|r| r.count()).sum();
    assert_eq!(total, sent, "every span counted once");
    for (op, red) in &planned {
        let m = &minutes[op];
        assert_eq!(red.count(), m.count(), "{op}");
        assert_eq!(red.all.errors, m.all.errors, "{op}");
        assert_eq!(
            red.quantile(0.95),
            m.quantile(0.95),
            "{op}: tiers merge exactly"
        );
        assert_eq!(red.quantile(0.5), m.quantile(0.5), "{op}");
        assert!((red.all.sum - m.all.sum).abs() < 1e-6 * m.all.sum);
    }

    // Complete days become one p95 point per transaction and day, once.
    let added = daily::push(&f.store, now).await.unwrap();
    assert!(added >= 3 * 3, "{added}");
    assert_eq!(
        daily::push(&f.store, now).await.unwrap(),
        0,
        "a day is pushed once"
    );
    let all = series::list(&f.store, &[p], Some(daily::SERIES), &Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 3, "one series per transaction");
    writer.shutdown().await;
}

async fn a_cross_service_call_is_one_edge_in_either_order(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = project(&f).await;
    let now = lookout_core::time::now_ms() - 60_000;
    // Trace A: the client span first, the callee's server span in a later batch. Trace B: the
    // other way round. Trace C: both in one batch, callee first.
    let a_client = span(11, "shop", Some(10), Category::External, now, 30.0);
    let a_server = span(12, "payments", Some(11), Category::Request, now + 1, 20.0);
    let b_client = span(21, "shop", Some(20), Category::External, now, 30.0);
    let b_server = span(22, "payments", Some(21), Category::Request, now + 1, 20.0);
    let c_client = span(31, "shop", Some(30), Category::External, now, 30.0);
    let c_server = span(32, "payments", Some(31), Category::Request, now + 1, 20.0);
    // One processor throughout, as in a server: it keeps the unpaired ends between folds.
    let rollups = RollupProcessor::new(f.store.clone(), "test");
    for batch in [vec![a_client], vec![b_server]] {
        writer
            .queue()
            .write(span_writes(p, batch, &[]))
            .await
            .unwrap();
        while rollups.poll_once().await.unwrap() > 0 {}
    }
    for batch in [vec![a_server], vec![b_client], vec![c_server, c_client]] {
        writer
            .queue()
            .write(span_writes(p, batch, &[]))
            .await
            .unwrap();
    }
    while rollups.poll_once().await.unwrap() > 0 {}
    let edges = query::edges(&f.store, &[p], now - 3_600_000, now + 3_600_000)
        .await
        .unwrap();
    let calls: Vec<(&str, &str, &str, i64)> = edges
        .iter()
        .map(|e| {
            (
                e.source.as_str(),
                e.target.as_str(),
                e.target_kind.as_str(),
                e.count,
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("shop", "payments", "service", 3),
            ("shop", "payments.internal", "external", 3)
        ]
    );
    writer.shutdown().await;
}

/// Each service's figures from its service rows, and from its request rows folded together.
async fn per_service(
    f: &Fixture,
    p: i64,
    since: i64,
    until: i64,
) -> Vec<(String, [u64; 2], [String; 3])> {
    let projects = [p];
    let mut out = Vec::new();
    for (service, category) in [
        ("shop", SERVICE_CATEGORY),
        ("shop", "request"),
        ("payments", SERVICE_CATEGORY),
        ("payments", "request"),
    ] {
        let filter = Filter {
            projects: &projects,
            service: Some(service),
            category: Some(category),
            ..Filter::default()
        };
        let red = query::fold(&f.store, &filter, since, until, |_| Some(()))
            .await
            .unwrap()
            .remove(&())
            .unwrap_or_default();
        out.push((
            format!("{service} {category}"),
            [red.count(), red.all.errors],
            [
                format!("{:?}", red.quantile(0.5)),
                format!("{:?}", red.quantile(0.95)),
                format!("{:.6}", red.all.sum),
            ],
        ));
    }
    out
}

async fn service_rows_sum_every_operation_and_are_backfilled_once(f: Fixture) {
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let p = project(&f).await;
    let now = lookout_core::time::now_ms();
    // Two hours of shop requests (three operations), its database calls, and payments requests.
    let start = now - 2 * 3_600_000;
    let mut spans = Vec::new();
    for n in 0..600u64 {
        let t = start + n as i64 * 11_000;
        let ms = (n % 90 + 1) as f64;
        spans.push(span(n, "shop", None, Category::Request, t, ms));
        spans.push(span(10_000 + n, "shop", Some(n), Category::Db, t, ms / 2.0));
        if n % 3 == 0 {
            spans.push(span(
                20_000 + n,
                "payments",
                None,
                Category::Request,
                t,
                ms * 3.0,
            ));
        }
    }
    let write = |batch: Vec<Span>| {
        let q = writer.queue();
        async move { q.write(span_writes(p, batch, &[])).await.unwrap() }
    };
    write(spans).await;
    drain(&f).await;
    let (since, until) = (start - 60_000, now + 60_000);
    let figures = per_service(&f, p, since, until).await;
    assert_eq!(
        figures[0].1,
        [600, 86],
        "shop's 600 requests, every 7th failed"
    );
    assert_eq!(figures[2].1[0], 200);
    for pair in figures.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} against {}", pair[0].0, pair[1].0);
        assert_eq!(pair[0].2, pair[1].2, "{} against {}", pair[0].0, pair[1].0);
    }
    // Reads of every category leave the service rows out: no span is counted twice.
    let projects = [p];
    let all = Filter {
        projects: &projects,
        ..Filter::default()
    };
    let by_category = query::fold(&f.store, &all, since, until, |c| {
        Some(c.category.to_string())
    })
    .await
    .unwrap();
    assert_eq!(
        by_category
            .iter()
            .map(|(k, r)| (k.as_str(), r.count()))
            .collect::<Vec<_>>(),
        vec![("db", 600), ("request", 800)]
    );

    // A database rolled up before the service rows existed: migration 0032 leaves a marker, and
    // the consumer sums the old rows once before folding anything new.
    for sql in [
        "DELETE FROM apm_rollups WHERE category = 'service'",
        "INSERT INTO server_settings (name, value, updated_at) VALUES ('apm.service_rows', 'backfill', 0)",
    ] {
        sqlx::query(sql).execute(f.store.pool()).await.unwrap();
    }
    assert_eq!(per_service(&f, p, since, until).await[0].1, [0, 0]);
    let late = span(30_000, "shop", None, Category::Request, now - 60_000, 5.0);
    write(vec![late]).await;
    drain(&f).await;
    let after = per_service(&f, p, since, until).await;
    assert_eq!(
        after[0].1,
        [601, 86],
        "the old requests once, the new one once"
    );
    for pair in after.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} against {}", pair[0].0, pair[1].0);
        assert_eq!(pair[0].2, pair[1].2, "{} against {}", pair[0].0, pair[1].0);
    }
    let marker = sqlx::query("SELECT name FROM server_settings WHERE name = 'apm.service_rows'")
        .fetch_optional(f.store.pool())
        .await
        .unwrap();
    assert!(marker.is_none(), "the backfill ran once");
    assert!(rollup::service_rows_complete(&f.store).await.unwrap());

    // A replica of an earlier version folds during a rolling upgrade: it moves the cursor
    // without writing service rows. Readers see the rows are incomplete, and the next fold by
    // this version rebuilds them before folding anything new.
    sqlx::query("UPDATE server_settings SET value = '0' WHERE name = 'apm.service_rows.through'")
        .execute(f.store.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM apm_rollups WHERE category = 'service' AND service = 'payments'")
        .execute(f.store.pool())
        .await
        .unwrap();
    assert!(!rollup::service_rows_complete(&f.store).await.unwrap());
    write(vec![span(
        30_001,
        "payments",
        None,
        Category::Request,
        now - 60_000,
        7.0,
    )])
    .await;
    drain(&f).await;
    let healed = per_service(&f, p, since, until).await;
    assert_eq!(
        healed[2].1[0], 201,
        "payments' 200 old requests and the new one"
    );
    for pair in healed.chunks(2) {
        assert_eq!(pair[0].1, pair[1].1, "{} against {}", pair[0].0, pair[1].0);
        assert_eq!(pair[0].2, pair[1].2, "{} against {}", pair[0].0, pair[1].0);
    }
    assert!(rollup::service_rows_complete(&f.store).await.unwrap());
    writer.shutdown().await;
}
