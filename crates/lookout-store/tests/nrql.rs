//! The event scans NRQL runs when the rollups cannot answer, on SQLite and PostgreSQL: each
//! hands back what was stored, for the projects asked about only, inside the window only, in
//! time order; and an error from the visitor (a query's deadline or memory budget) stops the
//! scan at once.

use std::collections::BTreeMap;

use lookout_apm::log::LogRecord;
use lookout_apm::metric::{Kind, Point, Reading};
use lookout_store::nrql::{self, BenchmarkPointRow, LogRow, MetricPointRow};
use lookout_store::series::{self, Direction, NewPoint, SeriesKey};
use lookout_store::writer::WriterConfig;
use lookout_store::{apm, tenancy, Backend, StoreError, Writer};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    logs_come_back_per_project_and_window_in_time_order,
    metric_points_and_benchmark_points_come_back_as_stored,
    a_visitor_error_stops_the_scan
);

const MINUTE: i64 = 60_000;
/// A fixed minute, so windows are exact.
const T0: i64 = 1_700_000_040_000;

/// Two projects of the default organization: (asked about, other).
async fn projects(f: &Fixture) -> (i64, i64) {
    let (p, _) = tenancy::ensure_default_project(&f.store).await.unwrap();
    let other = tenancy::create_project(&f.store, p.org_id, "Other", None, None)
        .await
        .unwrap();
    (p.id, other.id)
}

fn log(at_ms: i64, body: &str, trace: Option<&str>) -> LogRecord {
    LogRecord {
        time_ns: at_ms * 1_000_000,
        service: "shop".into(),
        severity_number: 17,
        severity: "ERROR".into(),
        body: body.into(),
        trace_id: trace.map(str::to_string),
        span_id: None,
        attributes: r#"{"user":"ann"}"#.into(),
    }
}

async fn logs(f: &Fixture, project: i64, since: i64, until: i64) -> Vec<LogRow> {
    let mut out = Vec::new();
    nrql::logs(&f.store, &[project], since, until, |l| {
        out.push(l);
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    out
}

async fn logs_come_back_per_project_and_window_in_time_order(f: Fixture) {
    let (p, other) = projects(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    // Written out of order, one at each end of the window and one past it.
    let mine = vec![
        log(T0 + 2 * MINUTE, "second", None),
        log(T0, "first", Some("abc")),
        log(T0 + 5 * MINUTE, "after the window", None),
    ];
    writer
        .queue()
        .write(apm::log_writes(p, mine))
        .await
        .unwrap();
    writer
        .queue()
        .write(apm::log_writes(
            other,
            vec![log(T0 + MINUTE, "other", None)],
        ))
        .await
        .unwrap();

    let got = logs(&f, p, T0, T0 + 5 * MINUTE).await;
    let bodies: Vec<&str> = got.iter().map(|l| l.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"]);
    let first = &got[0];
    assert_eq!(first.time_ns, T0 * 1_000_000);
    assert_eq!(
        (first.service.as_str(), first.severity.as_str()),
        ("shop", "ERROR")
    );
    assert_eq!(first.trace_id.as_deref(), Some("abc"));
    assert_eq!(first.span_id, None);
    assert_eq!(first.attributes, r#"{"user":"ann"}"#);
    // No projects, nothing (and no malformed `IN ()`).
    let mut none = 0;
    nrql::logs(&f.store, &[], 0, i64::MAX / 2_000_000, |_| {
        none += 1;
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(none, 0);
    writer.shutdown().await;
}

async fn metric_points_and_benchmark_points_come_back_as_stored(f: Fixture) {
    let (p, other) = projects(&f).await;
    let gauge = |project_service: &str, at: i64, v: f64| Point {
        name: "queue.depth".into(),
        unit: "{item}".into(),
        service: project_service.into(),
        attributes: r#"{"queue":"mail"}"#.into(),
        kind: Kind::Gauge,
        cumulative: false,
        start_ns: at * 1_000_000,
        time_ns: at * 1_000_000,
        reading: Reading::Number(v),
    };
    apm::metrics::ingest(&f.store, p, &[gauge("shop", T0 + 10_000, 7.0)])
        .await
        .unwrap();
    apm::metrics::ingest(&f.store, other, &[gauge("else", T0 + 10_000, 1.0)])
        .await
        .unwrap();
    let mut metrics: Vec<MetricPointRow> = Vec::new();
    nrql::metric_points(&f.store, &[p], T0, T0 + MINUTE, |m| {
        metrics.push(m);
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    let m = &metrics[0];
    assert_eq!(m.minute, T0);
    assert_eq!(
        (m.name.as_str(), m.service.as_str(), m.kind.as_str()),
        ("queue.depth", "shop", "gauge")
    );
    assert_eq!(m.unit, "{item}");
    assert_eq!(m.attributes, r#"{"queue":"mail"}"#);
    assert_eq!(m.last, Some(7.0));

    let point = |at: i64, value: f64| NewPoint {
        key: SeriesKey {
            name: "api.p95_ms".into(),
            tags: BTreeMap::from([("scenario".to_string(), "checkout".to_string())]),
            unit: "ms".into(),
            direction: Direction::LowerIsBetter,
        },
        at,
        value,
        commit: Some("abc1234".into()),
        version: None,
        build: Some("42".into()),
        source: "push".into(),
    };
    series::add(&f.store, p, &[point(T0 + 1, 120.5), point(T0 + 2, 99.0)])
        .await
        .unwrap();
    series::add(&f.store, other, &[point(T0 + 1, 1.0)])
        .await
        .unwrap();
    let mut bench: Vec<BenchmarkPointRow> = Vec::new();
    nrql::benchmark_points(&f.store, &[p], T0, T0 + 2, |b| {
        bench.push(b);
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap();
    assert_eq!(
        bench.len(),
        1,
        "the window ends before the second: {bench:?}"
    );
    let b = &bench[0];
    assert_eq!((b.at, b.value), (T0 + 1, 120.5));
    assert_eq!((b.name.as_str(), b.unit.as_str()), ("api.p95_ms", "ms"));
    assert_eq!(b.tags, r#"{"scenario":"checkout"}"#);
    assert_eq!(
        (
            b.commit.as_deref(),
            b.version.as_deref(),
            b.build.as_deref()
        ),
        (Some("abc1234"), None, Some("42"))
    );
}

async fn a_visitor_error_stops_the_scan(f: Fixture) {
    let (p, _) = projects(&f).await;
    let writer = Writer::start(f.store.clone(), WriterConfig::default());
    let many: Vec<LogRecord> = (0..50)
        .map(|i| log(T0 + i * 1_000, &format!("line {i}"), None))
        .collect();
    writer
        .queue()
        .write(apm::log_writes(p, many))
        .await
        .unwrap();
    let mut seen = 0;
    let got = nrql::logs(&f.store, &[p], T0, T0 + MINUTE, |_| {
        seen += 1;
        if seen == 3 {
            return Err(StoreError::Overloaded);
        }
        Ok(())
    })
    .await;
    assert!(matches!(got, Err(StoreError::Overloaded)), "{got:?}");
    assert_eq!(seen, 3, "no row is visited after the error");
    writer.shutdown().await;
}
