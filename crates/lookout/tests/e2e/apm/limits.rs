//! What one NRQL query may cost, on the real server over spans sent with OTLP: heavy raw-span
//! queries at once stay within a stated memory budget (peak RSS, `VmHWM` reset through
//! `/proc/PID/clear_refs`) and count exactly; past `query.max_concurrent` a query is refused
//! with 503 and `Retry-After`; past `query.timeout_seconds` with 503 and `Retry-After`; past
//! `query.max_memory_bytes` or `query.max_answer_rows` with 422. Each refusal names its setting.

use lookout_testkit::{eventually, Backend, TestServer};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{export, now_ns, post, request};

/// Spans sent: enough that collecting them as rows took gigabytes (about 4 KB a row).
const SPANS: u64 = 120_000;
/// The peak RSS the server stays under while three of these queries run at once.
const BUDGET_KIB: u64 = 300 * 1024;

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

async fn query(s: &TestServer, nrql: &str) -> reqwest::Response {
    s.admin_client()
        .post(s.at("/api/v1/query"))
        .json(&json!({ "nrql": nrql }))
        .send()
        .await
        .unwrap()
}

async fn start(backend: Backend, query_section: &str) -> TestServer {
    TestServer::start_with_config(crate::bin(), backend, &format!("[query]\n{query_section}")).await
}

/// Sends `n` request spans over the last 20 minutes (50 routes) and waits until NRQL counts
/// them all.
async fn send_spans(s: &TestServer, n: u64) {
    let start = now_ns() - 20 * 60_000_000_000;
    let step = 20 * 60_000_000_000 / n;
    for batch in 0..n.div_ceil(5_000) {
        let spans = (batch * 5_000..((batch + 1) * 5_000).min(n))
            .map(|i| {
                request(
                    i,
                    &format!("/r{}", i % 50),
                    5 + i % 90,
                    200,
                    start + i * step,
                )
            })
            .collect();
        let r = post(
            s,
            export("shop", spans).encode_to_vec(),
            "application/x-protobuf",
            false,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    eventually(format!("NRQL to count the {n} spans sent"))
        .secs(300)
        .every(std::time::Duration::from_millis(500))
        .until(
            || async {
                let r = query(s, "SELECT count(*) FROM Span SINCE 1 hour ago").await;
                (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
            },
            |(st, v)| *st == StatusCode::OK && v["rows"][0][0] == json!(n as f64),
        )
        .await;
}

async fn refusal(r: reqwest::Response) -> (StatusCode, Option<String>, String) {
    let status = r.status();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = r.json().await.unwrap();
    (
        status,
        retry,
        v["error"]["message"].as_str().unwrap_or("").into(),
    )
}

pub(super) async fn heavy_nrql_streams_within_its_budgets(backend: Backend) {
    let s = start(
        backend,
        "max_concurrent = 3\nqueue_seconds = 0\nmax_memory_bytes = 1048576\nmax_answer_rows = 100\n",
    )
    .await;
    send_spans(&s, SPANS).await;
    let pid = s.pid().unwrap();

    // Six heavy queries at once: three run, three find every slot taken and are told to retry.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let heavy = "SELECT count(*) FROM Span SINCE 30 days ago";
    let q = || refusal_or_count(&s, heavy);
    let (a, b, c, d, e, f) = tokio::join!(q(), q(), q(), q(), q(), q());
    let answers = [a, b, c, d, e, f];
    let peak = vm_hwm_kib(pid);
    let counted: Vec<&Value> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    let refused: Vec<&(StatusCode, Option<String>, String)> =
        answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(!counted.is_empty(), "{answers:?}");
    for c in &counted {
        assert_eq!(**c, json!(SPANS as f64), "every span counted, exactly");
    }
    assert!(
        !refused.is_empty(),
        "six at once with three slots: {answers:?}"
    );
    for (status, retry, message) in &refused {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(message.contains("query.max_concurrent"), "{message}");
    }
    eprintln!(
        "peak RSS over {} concurrent count(*) of {SPANS} spans: {} MiB (budget {} MiB)",
        counted.len(),
        peak / 1024,
        BUDGET_KIB / 1024
    );
    assert!(
        peak <= BUDGET_KIB,
        "peak RSS {peak} KiB over the {BUDGET_KIB} KiB budget"
    );

    // Keeping a value per span for uniqueCount passes the 1 MiB memory budget: 422.
    let (status, retry, message) = refusal(
        query(
            &s,
            "SELECT uniqueCount(trace.id) FROM Span SINCE 1 hour ago",
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
    assert_eq!(retry, None);
    assert!(message.contains("query.max_memory_bytes"), "{message}");

    // 50 routes × 30 one-minute buckets are more than 100 answer rows: 422, on raw spans and on
    // the rollups alike; a lower LIMIT fits.
    for nrql in [
        "SELECT count(*) FROM Span FACET name LIMIT 50 TIMESERIES 1 minute SINCE 30 minutes ago",
        "SELECT count(*) FROM Transaction FACET name LIMIT 50 TIMESERIES 1 minute SINCE 30 minutes ago",
    ] {
        let (status, _, message) = refusal(query(&s, nrql).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{nrql}: {message}");
        // 30 one-minute buckets, or 31 when the window does not start on a whole minute.
        assert!(
            message.contains("50 facet values × 3")
                && message.contains("query.max_answer_rows = 100"),
            "{message}"
        );
    }
    let r = query(
        &s,
        "SELECT count(*) FROM Span FACET name LIMIT 3 TIMESERIES 1 minute SINCE 30 minutes ago",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let rows = v["rows"].as_array().unwrap().len();
    assert!(rows == 90 || rows == 93, "{rows} rows");
}

async fn refusal_or_count(
    s: &TestServer,
    nrql: &str,
) -> Result<Value, (StatusCode, Option<String>, String)> {
    let r = query(s, nrql).await;
    if r.status() == StatusCode::OK {
        let v: Value = r.json().await.unwrap();
        Ok(v["rows"][0][0].clone())
    } else {
        Err(refusal(r).await)
    }
}

pub(super) async fn a_query_past_its_timeout_is_refused_with_retry_after(backend: Backend) {
    // One millisecond: reading thousands of spans takes longer on any machine.
    let s = start(backend, "timeout_seconds = 0.001\n").await;
    send_spans_unchecked(&s, 20_000).await;
    let (status, retry, message) =
        refusal(query(&s, "SELECT count(*) FROM Span SINCE 1 hour ago").await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(
        message.contains("0.001 s") && message.contains("query.timeout_seconds"),
        "{message}"
    );
}

/// Sends spans and waits until the rollups hold them all (a raw count would time out here).
async fn send_spans_unchecked(s: &TestServer, n: u64) {
    let start = now_ns() - 20 * 60_000_000_000;
    let spans = (0..n)
        .map(|i| request(i, "/t", 5, 200, start + i * 1_000_000))
        .collect();
    let r = post(
        s,
        export("shop", spans).encode_to_vec(),
        "application/x-protobuf",
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    super::wait_count(s, "shop", n).await;
}
