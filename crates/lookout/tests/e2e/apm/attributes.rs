//! NRQL answers the attribute it was asked for: request spans sent over OTLP whose `http.route`
//! (`/api/orders`) differs from their transaction name (`GET /api/orders`, or the span name when
//! there is no method) are faceted and filtered by each attribute as sent — `http.route` from
//! the raw spans, `name` from the rollups — never one answered from the other.

use std::collections::BTreeMap;

use lookout_apm::proto::common::v1::any_value;
use lookout_apm::proto::trace::v1::{span, Span};
use lookout_testkit::{Backend, TestServer};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{export, kv, now_ns, post, s, wait_count};

/// A server span named `name` with the given method and route, lasting `ms`.
fn server_span(n: u64, name: &str, method: Option<&str>, route: Option<&str>, ms: u64) -> Span {
    let start = now_ns() - 5 * 60_000_000_000 + n * 1_000_000;
    let mut trace_id = vec![7u8; 8];
    trace_id.extend_from_slice(&(n + 1).to_be_bytes());
    let mut attributes = vec![kv(
        "http.response.status_code",
        any_value::Value::IntValue(200),
    )];
    if let Some(m) = method {
        attributes.push(kv("http.request.method", s(m)));
    }
    if let Some(r) = route {
        attributes.push(kv("http.route", s(r)));
    }
    Span {
        trace_id,
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        attributes,
        ..Default::default()
    }
}

async fn answer(s: &TestServer, nrql: &str) -> Value {
    let (status, v) = s
        .client()
        .post("/api/v1/query", json!({ "nrql": nrql }))
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{nrql}: {v}");
    v
}

/// The rows of a one-facet query as facet value → the remaining columns.
async fn by_facet(s: &TestServer, nrql: &str) -> BTreeMap<String, Vec<Value>> {
    let v = answer(s, nrql).await;
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let key = r[0].as_str().map_or("(null)".to_string(), str::to_string);
            (key, r[1..].to_vec())
        })
        .collect()
}

async fn single(s: &TestServer, nrql: &str) -> Value {
    answer(s, nrql).await["rows"][0][0].clone()
}

pub(super) async fn nrql_facets_and_filters_by_the_attribute_asked_for(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    // 3 × GET /api/orders (100 ms), 2 × POST /api/users/:id (200 ms), a span named `checkout`
    // with a route but no method (300 ms), and `healthz` with neither (50 ms).
    let mut spans: Vec<Span> = (0..3)
        .map(|i| server_span(i, "GET /api/orders", Some("GET"), Some("/api/orders"), 100))
        .collect();
    spans.extend((3..5).map(|i| {
        server_span(
            i,
            "POST /api/users/:id",
            Some("POST"),
            Some("/api/users/:id"),
            200,
        )
    }));
    spans.push(server_span(5, "checkout", None, Some("/api/checkout"), 300));
    spans.push(server_span(6, "healthz", None, None, 50));
    let r = post(
        &s,
        export("shop", spans).encode_to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    wait_count(&s, "shop", 7).await;

    // FACET http.route: the routes as sent, with each route's own figures.
    let routes = by_facet(
        &s,
        "SELECT count(*), average(duration) FROM Transaction FACET http.route",
    )
    .await;
    // (count, average seconds) of a facet value, the average to the float's last digits.
    let figures = |k: &str| -> Option<(f64, f64)> {
        let v = routes.get(k)?;
        Some((v[0].as_f64()?, (v[1].as_f64()? * 1e9).round() / 1e9))
    };
    assert_eq!(figures("/api/orders"), Some((3.0, 0.1)));
    assert_eq!(figures("/api/users/:id"), Some((2.0, 0.2)));
    assert_eq!(figures("/api/checkout"), Some((1.0, 0.3)));
    assert!(
        !routes
            .keys()
            .any(|k| k.starts_with("GET ") || k == "checkout"),
        "a transaction name answered for http.route: {routes:?}"
    );
    // The route-less span has no http.route: null, not its name.
    assert_eq!(figures("(null)"), Some((1.0, 0.05)));

    // FACET name: the transaction names, from the rollups.
    let names = by_facet(&s, "SELECT count(*) FROM Transaction FACET name").await;
    let names: BTreeMap<&str, f64> = names
        .iter()
        .map(|(k, v)| (k.as_str(), v[0].as_f64().unwrap()))
        .collect();
    assert_eq!(
        names,
        BTreeMap::from([
            ("GET /api/orders", 3.0),
            ("POST /api/users/:id", 2.0),
            ("checkout", 1.0),
            ("healthz", 1.0)
        ])
    );

    // WHERE on http.route filters by the route.
    let count = |w: &str| format!("SELECT count(*) FROM Transaction WHERE {w}");
    assert_eq!(
        single(&s, &count("http.route = '/api/orders'")).await,
        json!(3.0)
    );
    assert_eq!(
        single(&s, &count("http.route LIKE '/api/users%'")).await,
        json!(2.0)
    );
    assert_eq!(
        single(&s, &count("http.route IS NULL")).await,
        json!(1.0),
        "only healthz has no route"
    );
    // A transaction name is not a route, and nothing matched is null.
    assert_eq!(
        single(&s, &count("http.route = 'GET /api/orders'")).await,
        Value::Null
    );
    assert_eq!(
        single(&s, &count("name = 'GET /api/orders'")).await,
        json!(3.0)
    );
    assert_eq!(
        single(
            &s,
            "SELECT filter(count(*), WHERE http.route = '/api/checkout') FROM Transaction WHERE appName = 'shop'"
        )
        .await,
        json!(1.0)
    );
    // The same from the command line through the server: the table rounds as people read
    // (0.1, not 0.10000000000000002), the seconds NRQL answers kept.
    let out = std::process::Command::new(crate::bin())
        .env_clear()
        .env("LOOKOUT_TOKEN", &s.admin_token)
        .args(["query", "--server", &s.url])
        .arg("SELECT count(*), average(duration) FROM Transaction WHERE http.route IS NOT NULL FACET http.route")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["http.route", "count(*)", "average(duration)"],
        "{table}"
    );
    assert_eq!(lines[2], ["/api/orders", "3", "0.1"], "{table}");
    assert_eq!(lines[3], ["/api/users/:id", "2", "0.2"], "{table}");
    assert_eq!(lines[4], ["/api/checkout", "1", "0.3"], "{table}");

    // Both at once: the route's transactions by name.
    let both = by_facet(
        &s,
        "SELECT count(*) FROM Transaction WHERE http.route IN ('/api/orders', '/api/checkout') FACET name",
    )
    .await;
    assert_eq!(
        both.keys().map(String::as_str).collect::<Vec<_>>(),
        ["GET /api/orders", "checkout"]
    );
}
