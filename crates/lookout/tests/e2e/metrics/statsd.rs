//! StatsD and DogStatsD into the real binary: the real Python `statsd` and `datadog` clients
//! send every metric type with tags to `--statsd-listen`, and after a flush PromQL answers the
//! exact counts and sums they sent, with the tags as labels. Malformed lines and an oversized
//! packet are counted at `/metrics` and cost nothing else.

use std::collections::BTreeMap;

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

/// A UDP port free a moment ago (the server binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(backend: Backend) -> (TestServer, u16) {
    start_env(backend, &[]).await
}

async fn start_env(backend: Backend, env: &[(&str, &str)]) -> (TestServer, u16) {
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let s = TestServer::start_with(
        crate::bin(),
        backend,
        env,
        &["--statsd-listen", &listen, "--statsd-flush-interval", "1s"],
    )
    .await;
    (s, port)
}

/// Runs a Python script with the port as its argument.
fn python(script: &str, port: u16) {
    let out = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .output()
        .expect("python3 (scripts/setup-test-deps installs statsd and datadog)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An instant PromQL query: (labels without `__name__`, value) per series.
async fn promql(s: &TestServer, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let r = reqwest::Client::new()
        .get(s.at("/prometheus/api/v1/query"))
        .query(&[("query", q)])
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{q}");
    let v: Value = r.json().await.unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (labels, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

/// Waits until `q` answers exactly one series with these labels and this value.
async fn expect(s: &TestServer, q: &str, labels: &[(&str, &str)], want: f64) {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    eventually(format!("{q} = {want} with {labels:?}"))
        .until(
            || promql(s, q),
            |got| {
                // Every StatsD series names its replica (`instance`, the host name by default).
                let mine = |l: &BTreeMap<String, String>| {
                    let mut l = l.clone();
                    l.remove("instance").is_some_and(|i| !i.is_empty()) && l == labels
                };
                got.len() == 1 && mine(&got[0].0) && (got[0].1 - want).abs() <= 1e-9 * want.abs()
            },
        )
        .await;
}

async fn nrql(s: &TestServer, q: &str) -> Value {
    let (status, v) = s
        .client()
        .post("/api/v1/query", json!({ "nrql": q }))
        .await
        .parts();
    assert_eq!(status, 200, "{q}: {v}");
    v
}

async fn self_metric(s: &TestServer, name: &str) -> f64 {
    let text = reqwest::Client::new()
        .get(s.at("/metrics"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

const STATSD: &str = r#"
import sys, statsd
c = statsd.StatsClient("127.0.0.1", int(sys.argv[1]), prefix="shop")
c.incr("orders", 3)
c.incr("orders", 2)
c.decr("refunds")
c.incr("refunds", 4)
c.gauge("queue", 10)
c.gauge("queue", -4, delta=True)
c.timing("db.query", 250)
c.timing("db.query", 750)
c.set("visitors", "alice")
c.set("visitors", "bob")
c.set("visitors", "alice")
"#;

const DOGSTATSD: &str = r#"
import sys
from datadog.dogstatsd import DogStatsd
# Buffered, so every line below goes out in one packet at flush(): u1 and u2 then land in
# the same flush interval (the client's default sends one packet per line; flush_interval=0
# turns off its background flush thread, which could split them).
d = DogStatsd(host="127.0.0.1", port=int(sys.argv[1]), disable_telemetry=True,
              disable_buffering=False, flush_interval=0)
d.increment("dd.requests", 4, tags=["env:prod", "canary"])
d.increment("dd.requests", 1, tags=["env:prod", "canary"])
d.gauge("dd.temp", 21.5, tags=["room:a"])
d.histogram("dd.payload", 100, tags=["env:prod"])
d.histogram("dd.payload", 300, tags=["env:prod"])
d.distribution("dd.latency", 5, tags=["env:prod"])
d.distribution("dd.latency", 7, tags=["env:prod"])
d.timing("dd.render", 40, tags=["env:prod"])
d.set("dd.users", "u1", tags=["env:prod"])
d.set("dd.users", "u2", tags=["env:prod"])
d.event("deployed", "v2 is out", tags=["env:prod"])
d.service_check("db.up", 0, tags=["env:prod"])
d.flush()
"#;

async fn statsd_and_dogstatsd_clients_read_back_through_promql(backend: Backend) {
    let (s, port) = start(backend).await;
    python(STATSD, port);
    python(DOGSTATSD, port);

    // pystatsd: counters as `_total` running sums, a gauge moved by a delta, a timer as a
    // summary in seconds, a set as the distinct members of its interval.
    expect(&s, "shop_orders_total", &[], 5.0).await;
    // `decr` would make the counter go down: refused and counted, the increments kept.
    expect(&s, "shop_refunds_total", &[], 4.0).await;
    expect(&s, "shop_queue", &[], 6.0).await;
    expect(&s, "shop_db_query_seconds_sum", &[], 1.0).await;
    expect(&s, "shop_db_query_seconds_count", &[], 2.0).await;
    expect(&s, "max_over_time(shop_visitors[5m])", &[], 2.0).await;

    // DogStatsD: the same, with tags as labels (a bare tag is "true").
    let prod = [("env", "prod")];
    expect(
        &s,
        "dd_requests_total",
        &[("env", "prod"), ("canary", "true")],
        5.0,
    )
    .await;
    expect(&s, "dd_temp", &[("room", "a")], 21.5).await;
    expect(&s, "dd_payload_sum", &prod, 400.0).await;
    expect(&s, "dd_payload_count", &prod, 2.0).await;
    expect(
        &s,
        r#"max_over_time(dd_payload{quantile="0.99"}[5m])"#,
        &[("env", "prod"), ("quantile", "0.99")],
        300.0,
    )
    .await;
    expect(&s, "dd_latency_sum", &prod, 12.0).await;
    expect(&s, "dd_latency_count", &prod, 2.0).await;
    expect(&s, "dd_render_seconds_sum", &prod, 0.04).await;
    expect(&s, "max_over_time(dd_users[5m])", &prod, 2.0).await;
    // NRQL's `FROM Metric` reads the same series: labels as attributes, the value under the
    // metric's name, and TIMESERIES over it.
    let v = nrql(
        &s,
        "SELECT average(dd_temp), count(*) FROM Metric WHERE room = 'a' SINCE 10 minutes ago",
    )
    .await;
    assert_eq!(v["rows"][0][0], json!(21.5), "{v}");
    assert!(v["rows"][0][1].as_f64().unwrap() >= 1.0, "{v}");
    let v = nrql(
        &s,
        "SELECT average(dd_temp) FROM Metric WHERE metricName = 'dd_temp' SINCE 10 minutes ago TIMESERIES 1 minute",
    )
    .await;
    // Buckets before the first flush are empty (null or 0); every other one is the gauge.
    let buckets: Vec<f64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r[1].as_f64())
        .filter(|b| *b != 0.0)
        .collect();
    assert!(
        !buckets.is_empty() && buckets.iter().all(|b| *b == 21.5),
        "{v}"
    );
    let v = nrql(
        &s,
        "SELECT min(shop_queue) FROM Metric WHERE metricName = 'shop_queue' SINCE 10 minutes ago",
    )
    .await;
    assert_eq!(v["rows"][0][0], json!(6.0), "{v}");
    // The event and the service check are counted, not stored.
    eventually("the event and the service check counted")
        .until(
            || self_metric(&s, "lookout_statsd_ignored_total"),
            |n| *n == 2.0,
        )
        .await;

    // More of the same counter later: the series keeps rising (what rate() needs).
    python(
        "import sys, statsd; statsd.StatsClient('127.0.0.1', int(sys.argv[1]), prefix='shop').incr('orders', 10)",
        port,
    );
    expect(&s, "shop_orders_total", &[], 15.0).await;
    // The `decr` is counted as a negative counter line, not as malformed.
    assert_eq!(
        self_metric(&s, "lookout_statsd_negative_counter_lines_total").await,
        1.0
    );
    assert_eq!(
        self_metric(&s, "lookout_statsd_malformed_lines_total").await,
        0.0
    );
}

async fn bad_statsd_packets_are_counted_and_harmless(backend: Backend) {
    let (s, port) = start(backend).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", port);
    // Two bad lines around a good one: the good one is taken.
    sock.send_to(b"garbage\nkept.line:1|c\nx:1|nosuchtype\n", to)
        .unwrap();
    // Over the 8 KiB packet budget: dropped whole, its valid line included.
    let mut big = b"too.big:1|c\n".to_vec();
    big.extend(std::iter::repeat_n(b'#', 9000));
    sock.send_to(&big, to).unwrap();
    sock.send_to(b"\xff\xfe:1|c\n:::|||\n", to).unwrap();
    expect(&s, "kept_line_total", &[], 1.0).await;
    eventually("the bad lines and the oversized packet counted")
        .until(
            || async {
                (
                    self_metric(&s, "lookout_statsd_malformed_lines_total").await,
                    self_metric(&s, "lookout_statsd_oversized_packets_total").await,
                )
            },
            |(bad, big)| *bad == 4.0 && *big == 1.0,
        )
        .await;
    assert!(promql(&s, "too_big_total").await.is_empty());
    // Still serving.
    let r = reqwest::get(s.at("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// At the project's series limit, new StatsD series are refused and counted, and the series
/// already stored keep being written (the refusal does not cost the whole flush).
async fn at_the_series_limit_only_new_statsd_series_are_lost(backend: Backend) {
    let (s, port) = start_env(backend, &[("LOOKOUT_PROMETHEUS_MAX_SERIES", "2")]).await;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = ("127.0.0.1", port);
    sock.send_to(b"kept:1|c\n", to).unwrap();
    expect(&s, "kept_total", &[], 1.0).await;
    sock.send_to(b"kept:1|c\nnew.one:1|c\nnew.two:1|c\n", to)
        .unwrap();
    expect(&s, "kept_total", &[], 2.0).await;
    eventually("the new series refused and counted")
        .until(
            || self_metric(&s, "lookout_statsd_series_refused_total"),
            |n| *n >= 2.0,
        )
        .await;
    // Later flushes leave the refused series out and keep writing the stored one.
    sock.send_to(b"kept:1|c\nnew.one:1|c\n", to).unwrap();
    expect(&s, "kept_total", &[], 3.0).await;
    assert!(promql(&s, "new_one_total").await.is_empty());
    assert!(promql(&s, "new_two_total").await.is_empty());
}

lookout_testkit::both!(
    statsd_and_dogstatsd_clients_read_back_through_promql,
    bad_statsd_packets_are_counted_and_harmless,
    at_the_series_limit_only_new_statsd_series_are_lost,
);
