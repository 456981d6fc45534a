//! Prometheus remote write into the real binary and the read API out, on SQLite and PostgreSQL:
//! both protocol versions with every credential form, bit-exact NaN and staleness markers,
//! duplicates and late samples, and the refusals Prometheus relies on (400 drops a batch, 413,
//! 415, 401/403) with nothing of a refused batch stored.
//!
//! The test against a real Prometheus and `promtool` is tests/sdk/test_prometheus_remote_write.py.

mod rules;
mod statsd;

use lookout_protocol::remote_write::{self, encode, Metadata, MetricType, Series, STALE_NAN_BITS};
mod scrape;

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    labels.sort();
    Series {
        labels,
        samples: samples.to_vec(),
    }
}

/// The public key of the server's default DSN (`http://KEY@host/1`).
fn dsn_key(s: &TestServer) -> String {
    let rest = s.dsn.split("://").nth(1).unwrap();
    rest.split('@').next().unwrap().to_string()
}

async fn write(
    s: &TestServer,
    auth: (&str, &str),
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.at("/prometheus/api/v1/write"))
        .header(auth.0, auth.1)
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get(s: &TestServer, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(s.at(path))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn basic(user: &str, pass: &str) -> String {
    // Base64 by hand: the test must not trust the server's decoder to check it.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{pass}").into_bytes();
    let mut out = String::new();
    for c in raw.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

async fn remote_write_in_both_versions_reads_back_exactly(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let key = dsn_key(&s);
    let now = lookout_core_now();
    let stale = f64::from_bits(STALE_NAN_BITS);
    // 1.0 with the DSN key as bearer: NaN and a staleness marker, plus metadata.
    let v1 = encode::v1(
        &[
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                &[(now - 30_000, 1.0), (now - 15_000, f64::NAN), (now, stale)],
            ),
            series(&[("__name__", "up"), ("job", "prom")], &[(now, 1.0)]),
        ],
        &[Metadata {
            metric: "up".into(),
            kind: MetricType::Gauge,
            help: "Whether the target is up.".into(),
            unit: String::new(),
        }],
    );
    let r = write(
        &s,
        ("authorization", &format!("Bearer {key}")),
        "application/x-protobuf",
        v1.clone(),
    )
    .await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    // The same batch again (Prometheus retrying after a lost answer) changes nothing.
    let r = write(
        &s,
        ("authorization", &format!("Bearer {key}")),
        "application/x-protobuf",
        v1,
    )
    .await;
    assert_eq!(r.status(), 204);
    // 2.0 with an admin API token as basic-auth password: the written counts come back.
    let v2 = encode::v2(
        &[series(
            &[("__name__", "node_load1"), ("job", "node")],
            &[(now - 15_000, 0.5), (now, 0.75)],
        )],
        &[Metadata {
            metric: "node_load1".into(),
            kind: MetricType::Gauge,
            help: "1m load average.".into(),
            unit: String::new(),
        }],
    );
    let r = write(
        &s,
        ("authorization", &basic("prometheus", &s.admin_token)),
        V2,
        v2,
    )
    .await;
    assert_eq!(r.status(), 204);
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        h("x-prometheus-remote-write-samples-written").as_deref(),
        Some("2")
    );
    assert_eq!(
        h("x-prometheus-remote-write-histograms-written").as_deref(),
        Some("0")
    );
    assert_eq!(
        h("x-prometheus-remote-write-exemplars-written").as_deref(),
        Some("0")
    );

    let (st, body) = get(&s, "/prometheus/api/v1/series?match[]=up").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": [
            {"__name__": "up", "instance": "a:9100", "job": "node"},
            {"__name__": "up", "job": "prom"},
        ]})
    );
    let (_, body) = get(&s, "/prometheus/api/v1/labels").await;
    assert_eq!(body["data"], json!(["__name__", "instance", "job"]));
    let (_, body) = get(
        &s,
        "/prometheus/api/v1/label/__name__/values?match[]=%7Bjob%3D~%22no.%2A%22%7D",
    )
    .await;
    assert_eq!(body["data"], json!(["node_load1", "up"]));
    let (_, body) = get(&s, "/prometheus/api/v1/metadata").await;
    assert_eq!(
        body["data"]["up"],
        json!([{"type": "gauge", "help": "Whether the target is up.", "unit": ""}])
    );
    assert_eq!(body["data"]["node_load1"][0]["type"], "gauge");
    // A time range before the data selects nothing.
    let (_, body) = get(
        &s,
        &format!(
            "/prometheus/api/v1/series?match[]=up&start=0&end={}",
            (now - 3_600_000) / 1000
        ),
    )
    .await;
    assert_eq!(body["data"], json!([]));
    // POST with a form body, as promtool and Grafana send it.
    let r = reqwest::Client::new()
        .post(s.at("/prometheus/api/v1/series"))
        .bearer_auth(&s.admin_token)
        .form(&[("match[]", "node_load1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"][0]["__name__"], "node_load1");
}

/// Milliseconds since the epoch.
fn lookout_core_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn bad_remote_writes_are_refused_and_store_nothing(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let auth = format!("Bearer {}", dsn_key(&s));
    let auth = ("authorization", auth.as_str());
    let check = |r: reqwest::Response, want: u16| async move {
        let st = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(st, want, "{body}");
        assert_eq!(body["status"], "error", "{body}");
        body["error"].as_str().unwrap_or("").to_string()
    };
    // Not protobuf inside valid snappy.
    let msg = check(
        write(
            &s,
            auth,
            "application/x-protobuf",
            encode::snappy(b"\x0a\xff\xff\xff\xff\x0f"),
        )
        .await,
        400,
    )
    .await;
    assert!(msg.contains("protobuf"), "{msg}");
    // Not snappy at all.
    check(
        write(
            &s,
            auth,
            "application/x-protobuf",
            b"\xff\xff\xff\xff\xff".to_vec(),
        )
        .await,
        400,
    )
    .await;
    // A snappy bomb: a header claiming 1 GiB.
    let mut bomb = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    bomb.extend_from_slice(&[0; 64]);
    let msg = check(write(&s, auth, "application/x-protobuf", bomb).await, 413).await;
    assert!(msg.contains("at most"), "{msg}");
    // A million labels in one series.
    let label = [0x0a, 0x05, 0x0a, 0x01, b'a', 0x12, 0x00];
    let mut ts = Vec::with_capacity(7_000_000);
    for _ in 0..1_000_000 {
        ts.extend_from_slice(&label);
    }
    let mut raw = vec![0x0a];
    let mut n = ts.len();
    while n >= 0x80 {
        raw.push((n as u8) | 0x80);
        n >>= 7;
    }
    raw.push(n as u8);
    raw.extend_from_slice(&ts);
    let msg = check(
        write(&s, auth, "application/x-protobuf", encode::snappy(&raw)).await,
        400,
    )
    .await;
    assert!(msg.contains("labels"), "{msg}");
    // An invalid label name refuses the whole batch, the good series with it.
    let batch = encode::v2(
        &[
            series(&[("__name__", "good")], &[(1000, 1.0)]),
            series(&[("__name__", "bad"), ("a-b", "x")], &[(1000, 1.0)]),
        ],
        &[],
    );
    let msg = check(write(&s, auth, V2, batch).await, 400).await;
    assert!(msg.contains("invalid label name"), "{msg}");
    // A NUL byte (PostgreSQL cannot store it: refused, not retried for ever).
    let nul = encode::v1(
        &[series(&[("__name__", "n"), ("a", "x\0y")], &[(1000, 1.0)])],
        &[],
    );
    let msg = check(write(&s, auth, "application/x-protobuf", nul).await, 400).await;
    assert!(msg.contains("NUL"), "{msg}");
    // 100,001 empty series: 2 bytes each on the wire, counted and refused before decoding.
    let empties = [0x0a, 0x00].repeat(remote_write::MAX_SERIES + 1);
    let msg = check(
        write(&s, auth, "application/x-protobuf", encode::snappy(&empties)).await,
        413,
    )
    .await;
    assert!(msg.contains("series"), "{msg}");
    // A wrong content type, no credential, an unknown one, and a viewer token writing.
    check(write(&s, auth, "application/json", vec![]).await, 415).await;
    let empty = encode::v1(&[], &[]);
    check(
        write(&s, ("x-none", "1"), "application/x-protobuf", empty.clone()).await,
        401,
    )
    .await;
    check(
        write(
            &s,
            ("authorization", "Bearer nope"),
            "application/x-protobuf",
            empty.clone(),
        )
        .await,
        401,
    )
    .await;
    let viewer = s.client().token("viewer").await;
    check(
        write(
            &s,
            ("authorization", &format!("Bearer {viewer}")),
            "application/x-protobuf",
            empty,
        )
        .await,
        403,
    )
    .await;
    // A DSN key may not read.
    let r = reqwest::Client::new()
        .get(s.at("/prometheus/api/v1/labels"))
        .bearer_auth(dsn_key(&s))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Bad read parameters answer Prometheus's error shape.
    for path in [
        "/prometheus/api/v1/series",
        "/prometheus/api/v1/series?match[]=%7B%7D",
        "/prometheus/api/v1/series?match[]=up%7B",
        "/prometheus/api/v1/series?match[]=up&start=yesterday",
        "/prometheus/api/v1/label/a-b/values",
        "/prometheus/api/v1/series?match[]=%7Ba%3D~%22(%22%7D",
    ] {
        let (st, body) = get(&s, path).await;
        assert_eq!(
            (st, body["errorType"].as_str()),
            (400, Some("bad_data")),
            "{path}: {body}"
        );
    }
    // Nothing of the refused batches was stored.
    let (_, body) = get(&s, "/prometheus/api/v1/labels").await;
    assert_eq!(body, json!({"status": "success", "data": []}));
}

/// A DSN key always writes into its own project, whatever `X-Scope-OrgID` or `?project=` say;
/// samples out of bounds are answered 400 and not stored, the in-bounds ones are.
async fn a_dsn_key_writes_into_its_own_project(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let other: Value = s
        .admin_client()
        .post(s.at("/api/v1/projects"))
        .json(&json!({"name": "elsewhere"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_id = other["id"].as_i64().unwrap();
    let key = format!("Bearer {}", dsn_key(&s));
    let now = lookout_core_now();
    let body = encode::v1(&[series(&[("__name__", "mine")], &[(now, 1.0)])], &[]);
    let r = reqwest::Client::new()
        .post(s.at(&format!("/prometheus/api/v1/write?project={other_id}")))
        .header("authorization", &key)
        .header("x-scope-orgid", other_id.to_string())
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let names = |project: String| {
        let s = &s;
        async move {
            let r = reqwest::Client::new()
                .get(s.at("/prometheus/api/v1/label/__name__/values"))
                .bearer_auth(&s.admin_token)
                .header("x-scope-orgid", project)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["data"].clone()
        }
    };
    assert_eq!(names(other_id.to_string()).await, json!([]));
    let own = dsn_project(&s).await;
    assert_eq!(names(own.to_string()).await, json!(["mine"]));
    // Out of bounds: a day past retention and an hour ahead are refused, the rest kept.
    let day = 86_400_000;
    let body = encode::v1(
        &[
            series(&[("__name__", "ancient")], &[(now - 30 * day, 1.0)]),
            series(&[("__name__", "ahead")], &[(now + 3_600_000, 1.0)]),
            series(&[("__name__", "fine")], &[(now, 1.0)]),
        ],
        &[],
    );
    let r = write(&s, ("authorization", &key), "application/x-protobuf", body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("2 samples out of bounds"),
        "{v}"
    );
    assert_eq!(names(own.to_string()).await, json!(["fine", "mine"]));
}

/// The per-project series limit answers 400 naming it, and a body trickled slower than the
/// body timeout is answered 503 (retried) instead of holding its slot.
async fn limits_of_one_project_are_enforced(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with_env(
        crate::bin(),
        backend,
        &[
            ("LOOKOUT_PROMETHEUS_MAX_SERIES", "2"),
            ("LOOKOUT_PROMETHEUS_BODY_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    let key = format!("Bearer {}", dsn_key(&s));
    let now = lookout_core_now();
    let body = |names: &[&str]| {
        let series: Vec<Series> = names
            .iter()
            .map(|n| series(&[("__name__", n)], &[(now, 1.0)]))
            .collect();
        encode::v1(&series, &[])
    };
    let ct = "application/x-protobuf";
    let r = write(&s, ("authorization", &key), ct, body(&["a", "b"])).await;
    assert_eq!(r.status(), 204);
    let r = write(&s, ("authorization", &key), ct, body(&["a", "c"])).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("series limit of 2"),
        "{v}"
    );
    let r = write(&s, ("authorization", &key), ct, body(&["a", "b"])).await;
    assert_eq!(r.status(), 204, "known series are still written");
    // A body that never finishes arriving.
    let addr = s
        .at("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /prometheus/api/v1/write HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {key}\r\n\
         Content-Type: {ct}\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\nx"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(60), tcp.read(&mut buf))
            .await
            .expect("an answer while the body is still owed")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after"), "{text}");
}

/// Native histograms (remote write 2.0) are stored as the classic histogram they equal, and
/// counted as written in the answer.
async fn native_histograms_are_stored_as_classic_ones(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let now = lookout_core_now();
    let native = |count: f64| lookout_protocol::native_histogram::NativeHistogram {
        schema: 0,
        count,
        sum: 10.0,
        // (1, 2] and (4, 8]: a quarter of the observations, then the rest.
        positive: vec![(1, count / 4.0), (3, count * 3.0 / 4.0)],
        ..Default::default()
    };
    let body = encode::v2_native(
        &[
            ("__name__".into(), "rpc_seconds".into()),
            ("job".into(), "api".into()),
        ],
        &[(now - 15_000, native(4.0)), (now, native(8.0))],
    );
    let r = write(
        &s,
        ("authorization", &basic("prometheus", &s.admin_token)),
        V2,
        body,
    )
    .await;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let written = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        written("x-prometheus-remote-write-histograms-written").as_deref(),
        Some("2")
    );
    assert_eq!(
        written("x-prometheus-remote-write-samples-written").as_deref(),
        Some("0")
    );
    // The median of 8 observations is the 4th: 2 of them in (1, 2], so 2 of the 6 in (4, 8].
    let (st, body) = get(
        &s,
        "/prometheus/api/v1/query?query=histogram_quantile(0.5%2C%20rpc_seconds_bucket)",
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let v: f64 = body["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((v - (4.0 + 4.0 * 2.0 / 6.0)).abs() < 1e-12, "{body}");
    let (_, body) = get(&s, "/prometheus/api/v1/query?query=rpc_seconds_count").await;
    assert_eq!(body["data"]["result"][0]["value"][1], "8", "{body}");
}

/// The project the test server's DSN belongs to (its id is the DSN's path).
async fn dsn_project(s: &TestServer) -> i64 {
    s.dsn.rsplit('/').next().unwrap().parse().unwrap()
}

lookout_testkit::both!(
    remote_write_in_both_versions_reads_back_exactly,
    bad_remote_writes_are_refused_and_store_nothing,
    a_dsn_key_writes_into_its_own_project,
    limits_of_one_project_are_enforced,
    native_histograms_are_stored_as_classic_ones,
);
