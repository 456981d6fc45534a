//! APM over OTLP/HTTP with protobuf bodies built from the OTLP types: gzip, partial success, the
//! size cap and content types, durability of acknowledged spans across `kill -9`, and the
//! rollups read back through the API — on SQLite and PostgreSQL.

use std::io::Write;

use lookout_apm::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use lookout_apm::proto::common::v1::{any_value, AnyValue, KeyValue};
use lookout_apm::proto::resource::v1::Resource;
use lookout_apm::proto::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use lookout_testkit::{eventually, Backend, TestServer};
use prost::Message;
use reqwest::StatusCode;
use serde_json::Value;

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// A request span of `service` on `route` lasting `ms`, answered `code`; trace id from `n`.
fn request(n: u64, route: &str, ms: u64, code: i64, start_ns: u64) -> Span {
    let mut trace_id = vec![0u8; 8];
    trace_id.extend_from_slice(&(n + 1).to_be_bytes());
    Span {
        trace_id,
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: format!("GET {route}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + ms * 1_000_000,
        attributes: vec![
            kv("http.request.method", s("GET")),
            kv("http.route", s(route)),
            kv(
                "http.response.status_code",
                any_value::Value::IntValue(code),
            ),
        ],
        status: Some(Status {
            code: if code >= 500 {
                status::StatusCode::Error as i32
            } else {
                0
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

async fn post(
    s: &TestServer,
    body: Vec<u8>,
    content_type: &str,
    gzipped: bool,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/traces", s.otlp_url))
        .header("content-type", content_type)
        .body(body);
    if gzipped {
        r = r.header("content-encoding", "gzip");
    }
    r.send().await.unwrap()
}

async fn transactions(s: &TestServer, service: &str) -> Vec<Value> {
    let r = s
        .client()
        .get(&format!("/api/v1/apm/services/{service}/transactions"))
        .await;
    r.json["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until `service`'s transactions count `n` requests in all.
async fn wait_count(s: &TestServer, service: &str, n: u64) -> Vec<Value> {
    eventually(format!("{service} to count {n} requests"))
        .until(
            || transactions(s, service),
            |items| {
                items
                    .iter()
                    .map(|t| t["count"].as_u64().unwrap())
                    .sum::<u64>()
                    == n
            },
        )
        .await
}

async fn otlp_protobuf_ingest_rolls_up_and_refuses_what_it_must(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let now = now_ns() - 60_000_000_000;
    // 100 requests of 1..=100 ms, every tenth answered 503; plus one span with a bad id.
    let mut spans: Vec<Span> = (0..100)
        .map(|i| {
            request(
                i,
                "/items/:id",
                i + 1,
                if i % 10 == 0 { 503 } else { 200 },
                now + i * 1_000_000,
            )
        })
        .collect();
    spans.push(Span {
        trace_id: vec![1, 2, 3],
        ..request(500, "/x", 1, 200, now)
    });
    let r = post(
        &s,
        gzip(&export("catalog", spans).encode_to_vec()),
        "application/x-protobuf",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.expect("the bad span is reported");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace id"),
        "{}",
        partial.error_message
    );

    let items = wait_count(&s, "catalog", 100).await;
    let t = &items[0];
    assert_eq!(t["name"], "GET /items/:id");
    assert_eq!(t["error_rate"], 0.1);
    // Exact p50 is the 50th value (50 ms), p99 the 99th (99 ms), within the sketch's 1 %.
    for (k, want) in [("p50", 50.0), ("p99", 99.0)] {
        let got = t[k].as_f64().unwrap();
        assert!((got - want).abs() <= want * 0.01, "{k}: {got}");
    }

    // Malformed protobuf: 400. Unknown content type: 415. Over the cap once inflated: 413.
    let r = post(&s, vec![0xff, 0xff, 0xff], "application/x-protobuf", false).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post(&s, b"hello".to_vec(), "text/plain", false).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bomb = gzip(&vec![0u8; 17 * 1024 * 1024]);
    let r = post(&s, bomb, "application/x-protobuf", true).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing of the refused bodies was counted.
    assert_eq!(wait_count(&s, "catalog", 100).await.len(), 1);
}

/// OTLP shares the ingest memory budget (`limits.max_inflight_bytes`) with Sentry ingest and
/// remote write, and the main listener checks the token before it reads a body.
async fn otlp_bodies_are_budgeted_and_tokens_checked_first(backend: Backend) {
    let s = TestServer::start_with_config(
        crate::bin(),
        backend,
        "[limits]\nmax_envelope_bytes = 1048576\nmax_inflight_bytes = 2621440\n",
    )
    .await;
    // A body declared larger than the whole budget: 503 with Retry-After, before it is read.
    let r = post(
        &s,
        vec![0u8; 3 * 1024 * 1024],
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    // A small gzip body that inflates past the budget: refused the same way while inflating.
    let r = post(
        &s,
        gzip(&vec![0u8; 4 * 1024 * 1024]),
        "application/x-protobuf",
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The main listener: an unknown token is refused (401) without the body being read. The
    // head announces 1 MiB and no body byte is ever sent, so an answer proves the server did
    // not wait for it (a client still writing the body could also see the early close as a
    // broken pipe instead of the answer).
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\n\
         authorization: Bearer 0123456789abcdef0123456789abcdef\r\ncontent-length: 1048576\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut c, head.as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut c, &mut answer),
    )
    .await
    .expect("answered before the body was sent")
    .unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(status_line.starts_with("HTTP/1.1 401"), "{status_line}");
    // Refusals gave everything back: an ordinary export is taken and counted.
    let now = now_ns() - 60_000_000_000;
    let spans = (0..10)
        .map(|i| request(i, "/ok", 5, 200, now + i * 1_000_000))
        .collect();
    let r = post(
        &s,
        export("budgeted", spans).encode_to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(wait_count(&s, "budgeted", 10).await[0]["count"], 10);
}

async fn acknowledged_spans_survive_kill_9(backend: Backend) {
    let mut s = TestServer::start(crate::bin(), backend).await;
    let now = now_ns() - 60_000_000_000;
    let mut sent = 0;
    for batch in 0..20u64 {
        let spans = (0..50)
            .map(|i| request(batch * 50 + i, "/orders", 5 + i, 200, now + i))
            .collect();
        let r = post(
            &s,
            export("orders", spans).encode_to_vec(),
            "application/x-protobuf",
            false,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        sent += 50;
    }
    // Killed before the rollup consumer may have caught up: it resumes from its cursor.
    s.kill9();
    s.restart();
    let items = wait_count(&s, "orders", sent).await;
    assert_eq!(items[0]["count"], sent);
    // The services list (read from the per-service rows the same fold writes) agrees.
    let list = s.client().get("/api/v1/apm/services").await;
    let orders = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "orders")
        .cloned()
        .unwrap();
    assert_eq!(orders["count"], sent);
    assert_eq!(
        orders["p95"], items[0]["p95"],
        "{orders} against {}",
        items[0]
    );
}

mod alerts;
mod attributes;
mod limits;
mod query;
use alerts::a_query_condition_opens_and_resolves_an_incident_per_facet;
use attributes::nrql_facets_and_filters_by_the_attribute_asked_for;
use limits::{
    a_query_past_its_timeout_is_refused_with_retry_after, heavy_nrql_streams_within_its_budgets,
};
use query::nrql_answers_from_the_rollups;

lookout_testkit::both!(
    otlp_protobuf_ingest_rolls_up_and_refuses_what_it_must,
    otlp_bodies_are_budgeted_and_tokens_checked_first,
    acknowledged_spans_survive_kill_9,
    nrql_answers_from_the_rollups,
    a_query_condition_opens_and_resolves_an_incident_per_facet,
    heavy_nrql_streams_within_its_budgets,
    a_query_past_its_timeout_is_refused_with_retry_after,
    nrql_facets_and_filters_by_the_attribute_asked_for
);
