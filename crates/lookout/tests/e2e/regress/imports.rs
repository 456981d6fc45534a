//! Benchmark outputs become series points: Criterion, hyperfine, pytest-benchmark, Google
//! Benchmark and k6 files pushed with `lookout regress push|check --file`.

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use super::{lookout, text};

fn write(path: &std::path::Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, v.to_string()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_outputs_become_series() {
    let s = TestServer::start(crate::bin(), Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A Criterion tree: `new/` counts, `base/` (the previous run) and `report/` do not.
    let crit = d.join("criterion");
    write(
        &crit.join("fib/20/new/estimates.json"),
        &json!({"mean": {"point_estimate": 2150.5}, "median": {"point_estimate": 2100.0}}),
    );
    write(
        &crit.join("fib/20/new/benchmark.json"),
        &json!({"full_id": "fib/20"}),
    );
    write(
        &crit.join("fib/20/base/estimates.json"),
        &json!({"mean": {"point_estimate": 1.0}}),
    );
    write(
        &crit.join("parse/json/new/estimates.json"),
        &json!({"mean": {"point_estimate": 880.0}}),
    );
    write(
        &crit.join("report/estimates.json"),
        &json!({"mean": {"point_estimate": 1.0}}),
    );
    let hyperfine = d.join("hyperfine.json");
    write(
        &hyperfine,
        &json!({"results": [
        {"command": "find ./src -name '*.rs'", "mean": 0.0123, "stddev": 0.001, "times": [0.012, 0.0126]}]}),
    );
    let pytest = d.join("pytest.json");
    write(
        &pytest,
        &json!({"commit_info": {"id": "f00dfeed"}, "benchmarks": [
        {"name": "test_parse", "fullname": "tests/test_bench.py::test_parse", "stats": {"mean": 0.00042, "median": 0.0004}}]}),
    );
    let google = d.join("google.json");
    write(
        &google,
        &json!({"context": {"num_cpus": 2}, "benchmarks": [
        {"name": "BM_Sort/1024", "run_name": "BM_Sort/1024", "run_type": "iteration", "real_time": 5123.0, "cpu_time": 5100.0, "time_unit": "ns"},
        {"name": "BM_Broken", "run_type": "iteration", "error_occurred": true, "real_time": 0.0}]}),
    );
    let k6 = d.join("k6.json");
    write(
        &k6,
        &json!({"root_group": {}, "metrics": {
        "http_req_duration": {"avg": 12.0, "p(95)": 31.5, "max": 80.0},
        "http_reqs": {"count": 1200, "rate": 199.5},
        "http_req_failed": {"passes": 3, "fails": 1197, "value": 0.0025},
        "http_req_duration{scenario:browse}": {"avg": 10.0, "p(95)": 25.0}}}),
    );

    let push = |file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "regress",
            "push",
            "--file",
            file.to_str().unwrap(),
            "--server",
            &s.url,
            "--token",
            &s.admin_token,
        ];
        args.extend_from_slice(extra);
        let o = lookout(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let out = push(&crit, &["--commit", "abc123"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("ok          fib/20: no regression"), "{out}");
    push(&hyperfine, &["--series", "cli"]);
    push(&pytest, &["--tag", "machine=ci-2"]);
    push(&google, &[]);
    // check --file pushes, then checks: first points are no regression.
    let o = lookout(&[
        "regress",
        "check",
        "--series",
        "k6",
        "--file",
        k6.to_str().unwrap(),
        "--server",
        &s.url,
        "--token",
        &s.admin_token,
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(text(&o.stdout).lines().count(), 6, "{}", text(&o.stdout));

    let all = s.client().get("/api/v1/series").await.expect(200);
    let by_name = |name: &str| -> Vec<Value> {
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] == name)
            .cloned()
            .collect()
    };
    let one = |name: &str| {
        let v = by_name(name);
        assert_eq!(v.len(), 1, "{name}: {all:#}");
        v[0].clone()
    };
    let fib = one("fib/20");
    assert_eq!(
        (fib["last_value"].as_f64(), fib["unit"].as_str()),
        (Some(2150.5), Some("ns"))
    );
    assert_eq!(one("parse/json")["last_value"], 880.0);
    let h = one("cli");
    assert_eq!(
        (h["last_value"].as_f64(), h["unit"].as_str()),
        (Some(0.0123), Some("s")),
        "one result: --series names it"
    );
    let p = one("tests/test_bench.py::test_parse");
    assert_eq!(p["tags"]["machine"], "ci-2");
    let pts = s
        .client()
        .get(&format!("/api/v1/series/{}/points", p["id"]))
        .await
        .expect(200);
    assert_eq!(
        pts["items"][0]["commit"], "f00dfeed",
        "pytest-benchmark names its commit"
    );
    assert_eq!(pts["items"][0]["source"], "pytest-benchmark");
    let g = one("BM_Sort/1024");
    assert_eq!(g["last_value"], 5123.0);
    assert!(
        by_name("BM_Broken").is_empty(),
        "errored benchmarks are skipped"
    );
    let rate = one("k6/http_reqs.rate");
    assert_eq!(
        (rate["last_value"].as_f64(), rate["direction"].as_str()),
        (Some(199.5), Some("higher_is_better"))
    );
    let p95 = by_name("k6/http_req_duration.p95");
    assert_eq!(p95.len(), 2, "whole run and per scenario");
    assert!(p95
        .iter()
        .any(|x| x["tags"]["scenario"] == "browse" && x["last_value"] == 25.0));
    assert_eq!(one("k6/http_req_failed.rate")["last_value"], 0.0025);
    assert_eq!(all["items"].as_array().unwrap().len(), 11, "{all:#}");

    // A file in no known format is refused before anything is sent.
    let junk = d.join("junk.json");
    write(&junk, &json!({"hello": 1}));
    let o = lookout(&[
        "regress",
        "push",
        "--file",
        junk.to_str().unwrap(),
        "--server",
        &s.url,
        "--token",
        &s.admin_token,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("not a format Lookout reads"),
        "{}",
        text(&o.stderr)
    );
}
