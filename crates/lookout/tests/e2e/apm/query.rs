//! `POST /api/v1/query` (NRQL) over spans sent with OTLP: every figure is computed here from the
//! spans sent, not copied from the server; the parser's errors come back with a caret, shapes the
//! rollups cannot answer are refused with a reason, and an unknown attribute gives an empty
//! answer with a warning.

use lookout_testkit::{Backend, TestServer};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{export, now_ns, post, request, wait_count};

async fn query(s: &TestServer, nrql: &str) -> (StatusCode, Value) {
    s.client()
        .post("/api/v1/query", json!({ "nrql": nrql }))
        .await
        .parts()
}

async fn rows(s: &TestServer, nrql: &str) -> Vec<Vec<Value>> {
    let (status, v) = query(s, nrql).await;
    assert_eq!(status, StatusCode::OK, "{nrql}: {v}");
    serde_json::from_value(v["rows"].clone()).unwrap()
}

fn close(v: &Value, want: f64, rel: f64) -> bool {
    v.as_f64()
        .is_some_and(|x| (x - want).abs() <= rel * want.abs().max(1e-9))
}

pub(super) async fn nrql_answers_from_the_rollups(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let start = now_ns() - 5 * 60_000_000_000;
    // shop: GET /a takes 10, 20, … 400 ms (every tenth answered 500); GET /b 20 × 100 ms.
    // api: GET /c 10 × 1000 ms.
    let a_ms: Vec<u64> = (1..=40).map(|i| i * 10).collect();
    let mut shop: Vec<_> = a_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| {
            let code = if i % 10 == 0 { 500 } else { 200 };
            request(i as u64, "/a", *ms, code, start + i as u64 * 1_000_000)
        })
        .collect();
    shop.extend((0..20).map(|i| request(100 + i, "/b", 100, 200, start + i * 1_000_000)));
    let api: Vec<_> = (0..10)
        .map(|i| request(200 + i, "/c", 1000, 200, start + i * 1_000_000))
        .collect();
    for (service, spans) in [("shop", shop), ("api", api)] {
        let r = post(
            &s,
            export(service, spans).encode_to_vec(),
            "application/x-protobuf",
            false,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    wait_count(&s, "shop", 60).await;
    wait_count(&s, "api", 10).await;

    let columns = |v: &Value| -> Vec<(String, String)> {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().into(),
                    c["type"].as_str().unwrap().into(),
                )
            })
            .collect()
    };

    let (_, v) = query(&s, "SELECT count(*) FROM Transaction").await;
    assert_eq!(v["rows"], json!([[70.0]]), "{v}");
    assert_eq!(
        columns(&v),
        [("count(*)".to_string(), "number".to_string())]
    );
    assert_eq!(v["warnings"], json!([]));

    // Facets ranked by count; durations in seconds, as in New Relic.
    let (_, v) = query(
        &s,
        "SELECT count(*), average(duration), max(duration) FROM Transaction WHERE appName = 'shop' FACET name",
    )
    .await;
    assert_eq!(columns(&v)[0], ("name".to_string(), "string".to_string()));
    let r: Vec<Vec<Value>> = serde_json::from_value(v["rows"].clone()).unwrap();
    assert_eq!(r.len(), 2, "{v}");
    assert_eq!(
        (r[0][0].clone(), r[0][1].clone()),
        (json!("GET /a"), json!(40.0))
    );
    let mean_a = a_ms.iter().sum::<u64>() as f64 / 40.0 / 1000.0;
    assert!(close(&r[0][2], mean_a, 1e-9), "{:?}", r[0]);
    assert!(close(&r[0][3], 0.4, 1e-9), "{:?}", r[0]);
    assert_eq!(
        (r[1][0].clone(), r[1][1].clone()),
        (json!("GET /b"), json!(20.0))
    );
    assert!(close(&r[1][2], 0.1, 1e-9));

    // Percentiles at rank ⌊q·(n−1)⌋ of the sorted durations, within the sketch's 1 %.
    let mut sorted = a_ms.clone();
    sorted.sort_unstable();
    let rank = |q: f64| sorted[(q * (sorted.len() - 1) as f64).floor() as usize] as f64 / 1000.0;
    let (_, v) = query(
        &s,
        "SELECT percentile(duration, 50, 99) FROM Transaction WHERE name = 'GET /a'",
    )
    .await;
    let names: Vec<String> = columns(&v).into_iter().map(|c| c.0).collect();
    assert_eq!(
        names,
        ["percentile(duration, 50)", "percentile(duration, 99)"]
    );
    assert!(close(&v["rows"][0][0], rank(0.5), 0.01), "{v}");
    assert!(close(&v["rows"][0][1], rank(0.99), 0.01), "{v}");

    // Error percentage and count per service; filter() gives 0, not null, on an empty subset.
    let errors_a = (0..40).filter(|i| i % 10 == 0).count() as f64;
    let r = rows(
        &s,
        "SELECT percentage(count(*), WHERE error IS TRUE) AS 'Error %', filter(count(*), WHERE error IS TRUE) FROM Transaction FACET appName",
    )
    .await;
    assert_eq!(r[0][0], json!("shop"));
    assert!(close(&r[0][1], 100.0 * errors_a / 60.0, 1e-9), "{r:?}");
    assert_eq!(r[0][2], json!(errors_a));
    assert_eq!(r[1][0], json!("api"));
    assert_eq!((r[1][1].clone(), r[1][2].clone()), (json!(0.0), json!(0.0)));

    // Throughput per minute over half an hour, and arithmetic between aggregates.
    let r = rows(
        &s,
        "SELECT rate(count(*), 1 minute), count(*) / 7 FROM Transaction SINCE 30 minutes ago",
    )
    .await;
    assert!(close(&r[0][0], 70.0 / 30.0, 1e-9), "{r:?}");
    assert!(close(&r[0][1], 10.0, 1e-9));

    // Apdex with T = 0.1 s: satisfied ≤ 100 ms (10 of /a, all 20 of /b), tolerating ≤ 400 ms.
    let sat = a_ms.iter().filter(|ms| **ms <= 100).count() + 20;
    let tol = a_ms.iter().filter(|ms| **ms > 100 && **ms <= 400).count();
    let r = rows(
        &s,
        "SELECT apdex(duration, t: 0.1) FROM Transaction WHERE appName IN ('shop')",
    )
    .await;
    assert!(
        close(&r[0][0], (sat as f64 + tol as f64 / 2.0) / 60.0, 1e-9),
        "{r:?}"
    );

    // A time series: begin_time is a column, empty buckets count 0, the buckets add up.
    let (_, v) = query(
        &s,
        "SELECT count(*) FROM Transaction SINCE 10 minutes ago TIMESERIES 1 minute",
    )
    .await;
    assert_eq!(
        columns(&v)[0],
        ("begin_time".to_string(), "timestamp".to_string())
    );
    let r: Vec<Vec<Value>> = serde_json::from_value(v["rows"].clone()).unwrap();
    assert!((10..=11).contains(&r.len()), "{}", r.len());
    assert_eq!(r.iter().map(|x| x[1].as_f64().unwrap()).sum::<f64>(), 70.0);
    assert!(r.iter().filter(|x| x[1] == json!(0.0)).count() >= 9);
    assert!(r
        .windows(2)
        .all(|w| w[1][0].as_i64().unwrap() - w[0][0].as_i64().unwrap() == 60_000));

    // An unknown attribute: an empty answer and a warning, as in New Relic.
    let (status, v) = query(
        &s,
        "SELECT count(*) FROM Transaction WHERE customer = 'acme'",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["rows"], json!([[null]]));
    assert!(
        v["warnings"][0].as_str().unwrap().contains("customer"),
        "{v}"
    );

    // The same queries from the command line, on the server's database.
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(crate::bin());
        match s.database_url() {
            Some(url) => c.args(["--database-url", url]),
            None => c.arg("--data-dir").arg(s.data_dir()),
        };
        c.arg("query").args(args).output().unwrap()
    };
    let out = cli(&["SELECT count(*), max(duration) FROM Transaction FACET appName"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["appName", "count(*)", "max(duration)"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["shop", "60", "0.4"],
        "{table}"
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["api", "10", "1"],
        "{table}"
    );
    let out = cli(&["--json", "SELECT count(*) FROM Transaction"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], json!([[70.0]]));
    let out = cli(&[
        "--csv",
        "SELECT count(*) AS 'n' FROM Transaction FACET name LIMIT 1",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "name,n\nGET /a,40\n"
    );
    let out = cli(&["SELECT count(* FROM Transaction"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 1, column 16") && err.contains('^'),
        "{err}"
    );

    // A syntax error names the place; an unanswerable shape says why.
    let (status, v) = query(&s, "SELECT count(* FROM Transaction").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = v["error"]["message"]
        .as_str()
        .or(v["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("line 1, column 16") && msg.contains('^'),
        "{v}"
    );
    let (status, v) = query(&s, "SELECT count(*) FROM Pageview").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v.to_string().contains("SyntheticCheck"),
        "the known types are listed: {v}"
    );
    let (status, v) = query(&s, "SELECT funnel(session) FROM Transaction").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Shapes the rollups cannot answer run over the raw spans, with exact figures.
    // /a lasts 10, 20, … 400 ms (i = 0, 10, 20, 30 answered 500); /b 20 × 100 ms; /c 10 × 1 s.
    let over = a_ms.iter().filter(|ms| **ms > 200).count() + 10;
    assert_eq!(
        rows(&s, "SELECT count(*) FROM Transaction WHERE duration > 0.2").await,
        vec![vec![json!(over as f64)]]
    );
    assert_eq!(
        rows(&s, "SELECT uniqueCount(name) FROM Transaction").await,
        vec![vec![json!(3.0)]]
    );
    let fast = a_ms.iter().filter(|ms| **ms < 100).count();
    let cases = rows(&s, "SELECT count(*) FROM Transaction FACET CASES (WHERE duration < 0.1 AS 'fast', WHERE duration >= 0.1 AS 'slow')").await;
    assert_eq!(
        cases,
        vec![
            vec![json!("slow"), json!((70 - fast) as f64)],
            vec![json!("fast"), json!(fast as f64)]
        ]
    );
    let codes = rows(&s, "SELECT count(*) FROM Transaction FACET http.statusCode").await;
    assert_eq!(
        codes,
        vec![
            vec![json!(200.0), json!(66.0)],
            vec![json!(500.0), json!(4.0)]
        ]
    );
    let p50: Vec<f64> = {
        let mut all: Vec<f64> = a_ms.iter().map(|m| *m as f64 / 1000.0).collect();
        all.extend([0.1; 20]);
        all.sort_by(f64::total_cmp);
        vec![all[all.len().div_ceil(2) - 1]]
    };
    let got = rows(
        &s,
        "SELECT median(duration) FROM Transaction WHERE appName = 'shop' AND duration > 0",
    )
    .await;
    assert_eq!(got[0][0].as_f64(), Some(p50[0]), "exact on raw spans");
    let first = rows(
        &s,
        "SELECT name, duration FROM Transaction ORDER BY duration LIMIT 1",
    )
    .await;
    assert_eq!(first, vec![vec![json!("GET /a"), json!(0.01)]]);
    let (status, v) = query(&s, "SELECT * FROM Transaction LIMIT 5").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 5);
    let names: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names[0] == "timestamp"
            && names.contains(&"appName")
            && names.contains(&"duration")
            && names.contains(&"http.route"),
        "{names:?}"
    );
    let compared = rows(
        &s,
        "SELECT count(*) FROM Transaction SINCE 1 hour ago COMPARE WITH 1 week ago",
    )
    .await;
    assert_eq!(
        compared,
        vec![
            vec![json!("current"), json!(70.0)],
            vec![json!("previous"), Value::Null]
        ]
    );
    let latest = rows(&s, "SELECT latest(duration), earliest(duration), max(duration) - min(duration) FROM Transaction WHERE name = 'GET /a'").await;
    assert_eq!(latest, vec![vec![json!(0.4), json!(0.01), json!(0.39)]]);
    // Other event types: no logs were sent, so nothing matched.
    assert_eq!(
        rows(&s, "SELECT count(*) FROM Log").await,
        vec![vec![Value::Null]]
    );
}
