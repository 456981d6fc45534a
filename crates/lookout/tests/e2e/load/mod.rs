//! `lookout load`: the real binary against a local app. Exit codes (0, 99 on a failed threshold,
//! 104 on an invalid file with where it is), k6's `--summary-export` shape, `--out json` lines,
//! `quick`, and `--report-to`: the server keeps the run, compares two runs and turns their key
//! figures into baseline-series points.

use std::process::Output;

use lookout_testkit::load_target::LoadTarget;
use lookout_testkit::{Backend, TestServer};
use serde_json::Value;

use super::json_of;

fn lookout(args: &[&str]) -> Output {
    std::process::Command::new(crate::bin())
        .args(args)
        .output()
        .expect("run lookout")
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn scenario(base: &str, threshold: &str) -> String {
    format!(
        r#"
scenarios:
  api:
    executor: constant-arrival-rate
    rate: 40
    duration: 2s
    preAllocatedVUs: 5
    tags: {{ tier: api }}
    steps:
      - request: {{ name: item, url: "{base}/items/{{{{iteration}}}}" }}
        checks: {{ status: 200, jsonpath: {{ "$.name": "item 1" }} }}
  slow:
    executor: per-vu-iterations
    vus: 2
    iterations: 3
    startTime: 500ms
    steps:
      - request: {{ name: slow, url: "{base}/slow?ms=30" }}
thresholds:
  http_req_duration: ["{threshold}"]
  "http_req_duration{{scenario:slow}}": ["p(95)>=30"]
  http_req_failed: ["rate<0.01"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_summary_export_and_json_output_follow_k6() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pass = write(dir.path(), "pass.yaml", &scenario(&t.url(), "p(95)<5000"));
    let export = dir.path().join("summary.json");
    let out = dir.path().join("points.ndjson");
    let o = lookout(&[
        "load",
        "run",
        &pass,
        "-q",
        "--summary-export",
        export.to_str().unwrap(),
        "--out",
        &format!("json={}", out.display()),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("█ THRESHOLDS") && stdout.contains("✓ 'p(95)<5000'"),
        "{stdout}"
    );
    assert!(
        stdout.contains("http_reqs.") && stdout.contains("checks_total"),
        "{stdout}"
    );
    // k6's summary-export shape: trends in ms, counters with count and rate, rates with
    // passes/fails/value, thresholds mapped to "failed", checks under root_group.
    let k6: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let m = &k6["metrics"];
    assert_eq!(
        m["http_reqs"]["count"], 86,
        "80 arrivals + 6 iterations: {}",
        m["http_reqs"]
    );
    assert!(m["http_req_duration"]["p(95)"].as_f64().unwrap() > 0.0);
    assert_eq!(m["http_req_duration"]["thresholds"]["p(95)<5000"], false);
    assert!(
        m["http_req_duration{scenario:slow}"]["min"]
            .as_f64()
            .unwrap()
            >= 30.0
    );
    assert_eq!(m["http_req_failed"]["value"], 0.0);
    assert_eq!(m["iterations{scenario:api}"]["count"], 80);
    assert_eq!(m["vus_max"]["max"], 7.0);
    let checks = &k6["root_group"]["checks"];
    assert_eq!(checks["item: status is 200"]["passes"], 80);
    assert_eq!(checks["item: $.name == \"item 1\""]["passes"], 1);
    assert_eq!(checks["item: $.name == \"item 1\""]["fails"], 79);
    // One JSON line per metric, scenario and second.
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["type"] == "Point" && l["data"]["time"].is_string()));
    let reqs: f64 = lines
        .iter()
        .filter(|l| l["metric"] == "http_reqs" && l["data"]["tags"]["scenario"] == "api")
        .map(|l| l["data"]["value"].as_f64().unwrap())
        .sum();
    assert_eq!(reqs, 80.0);

    // A failed threshold: exit 99 and the summary says which.
    let fail = write(dir.path(), "fail.yaml", &scenario(&t.url(), "p(95)<0.001"));
    let o = lookout(&["load", "run", &fail, "-q"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(99), "{stdout}");
    assert!(stdout.contains("✗ 'p(95)<0.001'") && stdout.contains("some thresholds have failed"));

    // An invalid file: refused before any request, saying where.
    let before = t.hits().len();
    let bad = write(
        dir.path(),
        "bad.yaml",
        &scenario(&t.url(), "p(95)<5000").replace("rate: 40", "rate: 40\n    vus: 3"),
    );
    let o = lookout(&["load", "run", &bad]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(104), "{stderr}");
    assert!(
        stderr.contains("scenarios.api.vus: not an option of constant-arrival-rate"),
        "{stderr}"
    );
    let typo = write(
        dir.path(),
        "typo.yaml",
        "scenarios:\n  a:\n    executor: constant-vus\n    duration: 1s\n    stepz: []\n",
    );
    let o = lookout(&["load", "run", &typo]);
    assert_eq!(o.status.code(), Some(104));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `stepz`"));
    assert_eq!(
        t.hits().len(),
        before,
        "no request was sent for an invalid file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_loads_one_url() {
    let t = LoadTarget::start().await;
    let url = format!("{}/echo", t.url());
    let o = lookout(&[
        "load",
        "quick",
        &url,
        "-c",
        "4",
        "-n",
        "120",
        "-m",
        "POST",
        "-H",
        "X-Test: yes",
        "-b",
        "hello",
        "-q",
        "--threshold",
        "http_req_failed=rate<0.01",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("http_reqs") && stdout.contains("120"),
        "{stdout}"
    );
    let hits = t.hits();
    assert_eq!(hits.len(), 120);
    assert!(hits
        .iter()
        .all(|h| h.method == "POST" && h.body == "hello" && h.headers["x-test"] == "yes"));
    let o = lookout(&["load", "quick", &url, "--threshold", "nonsense"]);
    assert_eq!(o.status.code(), Some(104));
}

lookout_testkit::both!(reported_runs_are_kept_compared_and_become_baseline_points);

async fn reported_runs_are_kept_compared_and_become_baseline_points(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "checkout.yaml",
        &scenario(&t.url(), "p(95)<5000"),
    );
    for commit in ["aaa111", "bbb222"] {
        let o = lookout(&[
            "load",
            "run",
            &file,
            "-q",
            "--report-to",
            &s.url,
            "--token",
            &s.admin_token,
            "--commit",
            commit,
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{}/load-tests/", s.url)));
    }
    // A refused report is an error, and the run is not stored.
    let o = lookout(&[
        "load",
        "run",
        &file,
        "-q",
        "--report-to",
        &s.url,
        "--token",
        "lk_wrong",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let c = s.admin_client();
    let (st, list) = json_of(c.get(s.at("/api/v1/load-runs")).send().await.unwrap()).await;
    assert_eq!(st, 200, "{list}");
    let runs = list["items"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["commit"], "bbb222", "newest first");
    assert_eq!(runs[0]["name"], "checkout");
    assert_eq!(runs[0]["requests"], 86);
    assert_eq!(runs[0]["passed"], true);
    let (a, b) = (
        runs[1]["id"].as_i64().unwrap(),
        runs[0]["id"].as_i64().unwrap(),
    );

    let (st, run) = json_of(
        c.get(s.at(&format!("/api/v1/load-runs/{b}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let summary = &run["summary"];
    assert!(
        summary["series"].as_array().unwrap().len() >= 2,
        "per-second points are kept"
    );
    assert_eq!(summary["thresholds"].as_array().unwrap().len(), 3);
    assert!(run["scenario_file"]
        .as_str()
        .unwrap()
        .contains("constant-arrival-rate"));

    let (st, cmp) = json_of(
        c.get(s.at(&format!("/api/v1/load-runs/compare?a={a}&b={b}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{cmp}");
    let api = cmp["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "api")
        .unwrap();
    assert_eq!(api["a"]["requests"], 80);
    assert!(api["delta"]["rps_percent"].is_number());

    // Each run gave p95, req/s and error rate per scenario: 6 series with 2 points each.
    let (_, series) = json_of(c.get(s.at("/api/v1/series")).send().await.unwrap()).await;
    let items = series["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "{series}");
    let rps = items
        .iter()
        .find(|x| x["name"] == "load.rps" && x["tags"]["scenario"] == "api")
        .unwrap();
    assert_eq!(rps["tags"]["test"], "checkout");
    assert_eq!(rps["direction"], "higher_is_better");
    assert_eq!(rps["points"], 2);
    let (_, pts) = json_of(
        c.get(s.at(&format!("/api/v1/series/{}/points", rps["id"])))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let commits: Vec<&str> = pts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["commit"].as_str().unwrap())
        .collect();
    assert_eq!(commits, ["aaa111", "bbb222"]);
    assert!(pts["items"][0]["source"]
        .as_str()
        .unwrap()
        .starts_with("load_run:"));

    // Bad reports are refused with the field that is wrong; viewers cannot report.
    let (st, e) = json_of(
        c.post(s.at("/api/v1/load-runs"))
            .json(&serde_json::json!({"name": "x", "summary": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("load run"));
    let mut bad = run["summary"].clone();
    bad["scenarios"][0]["rps"] = serde_json::json!(-1.0);
    let (st, e) = json_of(
        c.post(s.at("/api/v1/load-runs"))
            .json(&serde_json::json!({"name": "x", "summary": bad}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 422);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("rps"),
        "{e}"
    );
    let (st, _) = json_of(
        c.get(s.at("/api/v1/load-runs/999999"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 404);
    let (st, _) = json_of(
        c.delete(s.at(&format!("/api/v1/load-runs/{a}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 204);
    let (_, list) = json_of(c.get(s.at("/api/v1/load-runs")).send().await.unwrap()).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_time_the_handshake_and_verify_certificates_unless_told_not_to() {
    let t = crate::uptime::targets::HttpTarget::start_tls(30).await;
    let url = format!("https://{}/", t.addr);
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("k6.json");
    let o = lookout(&[
        "load",
        "quick",
        &url,
        "-k",
        "-c",
        "2",
        "-n",
        "20",
        "-q",
        "--summary-export",
        export.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    assert_eq!(m["metrics"]["http_reqs"]["count"], 20);
    assert_eq!(m["metrics"]["http_req_failed"]["value"], 0.0);
    // One handshake per connection (2 VUs), kept alive for the other requests.
    assert!(
        m["metrics"]["http_req_tls_handshaking"]["max"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(m["metrics"]["http_req_tls_handshaking"]["med"], 0.0);
    // The self-signed certificate fails verification without -k.
    let o = lookout(&[
        "load",
        "quick",
        &url,
        "-c",
        "1",
        "-n",
        "3",
        "-q",
        "--threshold",
        "http_req_failed=rate<0.5",
    ]);
    assert_eq!(
        o.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
