//! Seeds a team's worth of data into a running Lookout for `bench/scale.sh` (issue 31, target 4),
//! as fast as this machine allows and, where the product has one, through its own write path.
//!
//! - `events`: Sentry envelopes to the ingest endpoint, the real sentry-python event of
//!   `fixtures/sentry/01_capture_exception…` with a client `fingerprint`, exception type and value,
//!   release, environment, user and timestamp varied per event, so `--events` spread over
//!   `--groups` issues (the first `--groups` events open one issue each; the rest fall on them
//!   with a skew, as real traffic does). Timestamps spread over the last 14 days.
//! - `spans`: OTLP/HTTP JSON exports of 1,000 spans (100 traces of 10 spans: a server span with
//!   database and external calls, 5 services, 200 routes) to the OTLP listener: consecutive
//!   exports cover consecutive moments of the last 6 hours, as a live service's exporter's do.
//! - `history`: 90 days of check history for monitors that already exist (created through the
//!   API by the driver). The HTTP path can only produce results as checks run, and raw results are
//!   kept for a day by design, so this writes through the store's own write functions: raw results
//!   for the last 25 hours through the group-commit writer ([`results::result_write`]), hour and
//!   day rollups up to the last closed bucket with [`results::write_rollups`], then one
//!   [`results::roll_up`] pass: what a server that had run for 90 days would hold.
//!
//! Usage:
//!   scale_seed events --url URL/api/1/envelope/ --key KEY --events N --groups G [--first N]
//!              [--concurrency C]
//!   scale_seed spans --url OTLP_URL --spans N [--concurrency C]
//!   scale_seed history --database-url URL --monitors FIRST-LAST [--days 90] [--interval 300]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lookout_store::uptime::results::{self, Bucket, ResultRow};
use lookout_store::writer::{Writer, WriterConfig};
use lookout_store::Store;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

/// Words for exception types and messages, so searches have something to find at known rates:
/// each word names 1/40 of the issues.
const WORDS: &[&str] = &[
    "Timeout",
    "Connection",
    "Permission",
    "Lookup",
    "Key",
    "Value",
    "Index",
    "Attribute",
    "Runtime",
    "Overflow",
    "Memory",
    "Unicode",
    "Assertion",
    "Import",
    "Name",
    "Type",
    "Recursion",
    "System",
    "Broken",
    "Interrupted",
    "Database",
    "Integrity",
    "Operational",
    "Validation",
    "Serialization",
    "Payment",
    "Checkout",
    "Inventory",
    "Shipping",
    "Invoice",
    "Account",
    "Session",
    "Token",
    "Upload",
    "Download",
    "Render",
    "Template",
    "Cache",
    "Queue",
    "Worker",
];

/// Runs `concurrency` workers that each take the next index below `total`, build its request
/// with `build` and send it; prints progress and returns (accepted, refused).
async fn send_all<F>(total: u64, concurrency: usize, what: &'static str, build: F) -> (u64, u64)
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let build = Arc::new(build);
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (build, next, ok, refused) = (build.clone(), next.clone(), ok.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                // A full queue answers 429/503: wait and send the same request again, so the
                // seeded count is exact.
                let mut tries = 0;
                loop {
                    match build(n).send().await {
                        Ok(r) if r.status().is_success() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ if tries < 50 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                if n > 0 && n % (total / 10).max(1) == 0 {
                    eprintln!(
                        "  {what}: {n} of {total} sent ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    (ok.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
}

/// The fixture's event JSON (the envelope's third line).
fn fixture_event() -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/sentry/01_capture_exception.envelope.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    serde_json::from_str(text.lines().nth(2).expect("event line")).expect("event json")
}

/// Event `n` of `total` over `groups` issues, as a gzipped envelope.
fn envelope(base: &Value, n: u64, groups: u64, now: i64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n);
    // The first `groups` events open every issue; later ones favour low group numbers
    // (a cubic skew: a few loud issues, a long tail of rare ones).
    let g = if n < groups {
        n
    } else {
        let r: f64 = rng.gen();
        ((r * r * r) * groups as f64) as u64 % groups.max(1)
    };
    let word = WORDS[(g % WORDS.len() as u64) as usize];
    let mut ev = base.clone();
    let id = format!("{:016x}{:016x}", rng.gen::<u64>(), n);
    ev["event_id"] = json!(id);
    ev["fingerprint"] = json!([format!("scale-{g}")]);
    ev["exception"]["values"][0]["type"] = json!(format!("{word}Error"));
    ev["exception"]["values"][0]["value"] = json!(format!("{word} failed for order {g}"));
    ev["release"] = json!(format!("shop@1.{}.0", (g + n) % 20));
    ev["environment"] = json!(["production", "staging", "development"][(n % 3) as usize]);
    ev["user"] = json!({"id": format!("user-{}", rng.gen_range(0..20_000))});
    // Recent hours are busier: a quadratic lean towards now over 14 days.
    let back: f64 = rng.gen();
    ev["timestamp"] = json!((now - (back * back * 14.0 * DAY as f64) as i64) as f64 / 1000.0);
    let payload = serde_json::to_vec(&ev).expect("json");
    let mut body = format!("{{\"event_id\":\"{id}\"}}\n").into_bytes();
    body.extend_from_slice(
        format!(
            "{{\"type\":\"event\",\"content_type\":\"application/json\",\"length\":{}}}\n",
            payload.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(&payload);
    body.push(b'\n');
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&body).expect("gzip");
    gz.finish().expect("gzip")
}

async fn events(client: reqwest::Client) {
    let url = arg("--url").expect("--url http://host/api/1/envelope/");
    let key = arg("--key").expect("--key DSN public key");
    let total = num("--events", 10_000);
    let groups = num("--groups", 1_000).max(1);
    // Event numbers continue from `--first`, so a second run tops up without repeating ids.
    let first = num("--first", 0);
    let concurrency = num("--concurrency", 16) as usize;
    let base = Arc::new(fixture_event());
    let now = now_ms();
    let (ok, refused) = send_all(total, concurrency, "events", move |n| {
        client
            .post(&url)
            .header("content-encoding", "gzip")
            .header("content-type", "application/x-sentry-envelope")
            .header(
                "x-sentry-auth",
                format!(
                    "Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.python/2.75.0"
                ),
            )
            .body(envelope(&base, first + n, groups, now))
    })
    .await;
    println!("events accepted {ok}, refused {refused}");
}

fn attr(k: &str, v: Value) -> Value {
    let value = match v {
        Value::Number(n) => json!({"intValue": n.to_string()}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": k, "value": value})
}

const SERVICES: &[&str] = &["frontend", "checkout", "catalog", "payments", "accounts"];

/// Export `n` of `batches`: 100 traces of 10 spans from one service. Exports follow each other
/// in time across the last 6 hours, each covering the few seconds an SDK's batch does, so span
/// blocks are laid out as a live service's are.
fn span_batch(n: u64, batches: u64, now: i64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(n ^ 0x5eed);
    let service = SERVICES[(n % SERVICES.len() as u64) as usize];
    let mut spans = Vec::with_capacity(1000);
    for _ in 0..100 {
        let trace = format!("{:016x}{:016x}", rng.gen::<u64>(), rng.gen::<u64>());
        let root = format!("{:016x}", rng.gen::<u64>());
        let r = rng.gen_range(0..200);
        let route = format!("/api/v{}/resource{r}/:id", 1 + r % 3);
        let window = 6 * HOUR;
        let at = now - window
            + window * i64::try_from(n).expect("n") / i64::try_from(batches.max(1)).expect("b");
        let start_ms = at - rng.gen_range(0..5_000);
        let start = i128::from(start_ms) * 1_000_000;
        let ms: f64 = (3.6 + rng.gen::<f64>() * 1.2).exp();
        let dur = (ms * 1e6) as i128;
        let status = if rng.gen_bool(0.02) { 500 } else { 200 };
        spans.push(json!({
            "traceId": trace, "spanId": root, "name": format!("GET {route}"), "kind": 2,
            "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + dur).to_string(),
            "attributes": [attr("http.request.method", json!("GET")), attr("http.route", json!(route)),
                attr("http.response.status_code", json!(status)), attr("server.address", json!("shop.example.com"))],
            "status": {"code": if status == 500 { 2 } else { 0 }}
        }));
        for c in 0..9i128 {
            let s = start + dur * c / 10;
            let (name, attrs) = if c % 3 == 2 {
                (
                    "POST",
                    vec![
                        attr("http.request.method", json!("POST")),
                        attr("server.address", json!("api.stripe.com")),
                        attr("http.response.status_code", json!(200)),
                    ],
                )
            } else {
                (
                    "SELECT items",
                    vec![
                        attr("db.system.name", json!("postgresql")),
                        attr("db.namespace", json!("shop")),
                        attr(
                            "db.query.text",
                            json!(format!(
                                "SELECT id, name FROM items WHERE id = {}",
                                rng.gen_range(0..1_000_000)
                            )),
                        ),
                    ],
                )
            };
            spans.push(json!({
                "traceId": trace, "spanId": format!("{:016x}", rng.gen::<u64>()), "parentSpanId": root,
                "name": name, "kind": 3, "startTimeUnixNano": s.to_string(),
                "endTimeUnixNano": (s + dur / 12).to_string(), "attributes": attrs
            }));
        }
    }
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", json!(service)), attr("deployment.environment.name", json!("production"))]},
        "scopeSpans": [{"scope": {"name": "scale_seed"}, "spans": spans}]
    }]}))
    .expect("json")
}

async fn spans(client: reqwest::Client) {
    let url = arg("--url").expect("--url OTLP base URL");
    let total = num("--spans", 100_000);
    let concurrency = num("--concurrency", 4) as usize;
    let batches = total.div_ceil(1000);
    let now = now_ms();
    let endpoint = format!("{}/v1/traces", url.trim_end_matches('/'));
    let (ok, refused) = send_all(batches, concurrency, "span batches", move |n| {
        client
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(span_batch(n, batches, now))
    })
    .await;
    println!("spans accepted {}, refused {}", ok * 1000, refused * 1000);
}

async fn history() {
    let url = arg("--database-url").expect("--database-url sqlite://… or postgres://…");
    let range = arg("--monitors").expect("--monitors FIRST-LAST");
    let (first, last) = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .expect("--monitors FIRST-LAST");
    let days = i64::try_from(num("--days", 90)).expect("days");
    let interval = i64::try_from(num("--interval", 300)).expect("interval") * 1000;
    let store = Store::open(&url).await.expect("store");
    let writer = Writer::start(store.clone(), WriterConfig::default());
    let queue = writer.queue();
    let now = now_ms();
    // Rollups reach the last closed bucket: the server's rollup job may already have moved its
    // watermark past the raw rows written here, so it would not roll them up; the one pass of
    // roll_up below then only refines what it still can from the raw rows.
    let raw_from = now - results::RAW_RETENTION_MS;
    let hours_until = now - now.rem_euclid(HOUR);
    let days_until = now - now.rem_euclid(DAY);
    let since = now - days * DAY;
    let (mut raw_n, mut rollup_n) = (0u64, 0u64);
    let started = Instant::now();
    for chunk_start in (first..=last).step_by(50) {
        let chunk_end = (chunk_start + 49).min(last);
        let (mut hours, mut days_b) = (Vec::new(), Vec::new());
        let mut raw = Vec::new();
        for m in chunk_start..=chunk_end {
            let mut rng = rand::rngs::StdRng::seed_from_u64(m as u64);
            let base_us: i64 = rng.gen_range(20_000..200_000);
            // Each monitor has a bad stretch now and then: a few hours a month down.
            let per_hour = HOUR / interval.max(1);
            let mut b = since - since.rem_euclid(HOUR);
            while b < hours_until {
                let down = i64::from(rng.gen_bool(0.004)) * per_hour;
                hours.push((m, bucket(b, per_hour - down, down, base_us)));
                b += HOUR;
            }
            let mut d = since - since.rem_euclid(DAY);
            while d < days_until {
                let down = rng.gen_range(0..3);
                days_b.push((m, bucket(d, 24 * per_hour - down, down, base_us)));
                d += DAY;
            }
            let mut at = raw_from - raw_from.rem_euclid(interval) + (m * 997) % interval;
            while at < now {
                let ok = !rng.gen_bool(0.003);
                raw.push(results::result_write(
                    m,
                    &ResultRow {
                        at,
                        ok,
                        maintenance: false,
                        latency_us: Some(base_us + rng.gen_range(0..base_us / 2)),
                        message: (!ok).then(|| "connection refused".to_string()),
                    },
                ));
                at += interval;
            }
        }
        rollup_n += (hours.len() + days_b.len()) as u64;
        raw_n += raw.len() as u64;
        results::write_rollups(&store, "h", &hours)
            .await
            .expect("hour rollups");
        results::write_rollups(&store, "d", &days_b)
            .await
            .expect("day rollups");
        for part in raw.chunks(2_000) {
            queue.write(part.to_vec()).await.expect("raw results");
        }
        if (chunk_start - first) % 1000 == 0 {
            eprintln!(
                "  history: monitors {first}..{chunk_end} ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let rolled = results::roll_up(&store, now).await.expect("roll up");
    writer.shutdown().await;
    println!(
        "history: {raw_n} raw results, {rollup_n} rollups backfilled, {rolled} rolled up from raw"
    );
}

fn bucket(at: i64, up: i64, down: i64, base_us: i64) -> Bucket {
    Bucket {
        bucket: at,
        up,
        down,
        maintenance: 0,
        latency_avg_us: Some(base_us),
        latency_p95_us: Some(base_us * 2),
        latency_max_us: Some(base_us * 4),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let started = Instant::now();
    match std::env::args().nth(1).as_deref() {
        Some("events") => events(client).await,
        Some("spans") => spans(client).await,
        Some("history") => history().await,
        _ => {
            eprintln!("usage: scale_seed events|spans|history …");
            std::process::exit(2);
        }
    }
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}
