//! APM storage on SQLite and PostgreSQL: the rollup consumer counts every span once; minute, hour
//! and day rows give the same figures for the same window; a call between services is one edge
//! whichever of its spans arrives first; complete days become `apm.p95` series points once.

use lookout_apm::span::{kind, Category, Span};
use lookout_store::apm::query::{self, Filter};
use lookout_store::apm::rollup::RollupProcessor;
use lookout_store::apm::{daily, span_writes};
use lookout_store::series;
use lookout_store::writer::WriterConfig;
use lookout_store::{tenancy, Backend, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    tiers_agree_and_every_span_counts_once,
    a_cross_service_call_is_one_edge_in_either_order
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
