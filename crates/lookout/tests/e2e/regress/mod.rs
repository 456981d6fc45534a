//! `lookout regress`: change points of a file without a server; pushes, imports and CI checks
//! against a running server; a fresh regression becomes a `regression.detected` event and pages
//! through an alert policy.

mod imports;

use std::process::Output;

use lookout_testkit::{Backend, TestServer};
use serde_json::{json, Value};

use crate::alerting::wait_any_incident;
use crate::json_of;

pub(crate) fn lookout(args: &[&str]) -> Output {
    std::process::Command::new(crate::bin())
        .args(args)
        .env_remove("LOOKOUT_TOKEN")
        .env_remove("LOOKOUT_URL")
        .output()
        .expect("run lookout")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Deterministic noise between 0 and 5.
fn noise(i: usize) -> f64 {
    ((i * 37) % 11) as f64 * 0.5
}

#[test]
fn analyze_finds_change_points_in_a_file_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("time,commit,p95\n");
    for i in 0..90 {
        let level = if i < 60 { 100.0 } else { 130.0 };
        csv += &format!(
            "2026-01-{:02}T00:00:00Z,c{i},{}\n",
            i % 28 + 1,
            level + noise(i)
        );
    }
    let file = dir.path().join("p95.csv");
    std::fs::write(&file, csv).unwrap();
    let f = file.to_str().unwrap();

    let o = lookout(&["regress", "analyze", f, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let cps: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cps = cps.as_array().unwrap();
    assert_eq!(cps.len(), 1, "{cps:?}");
    let c = &cps[0];
    assert_eq!(c["index"], 60);
    assert_eq!(c["commit"], "c60", "the first commit of the new regime");
    assert_eq!(c["direction"], "regression");
    assert!(c["p_value"].as_f64().unwrap() < 1e-6);
    let pct = c["change_percent"].as_f64().unwrap();
    assert!((28.0..32.0).contains(&pct), "{pct}");
    let (before, after) = (c["before"].as_f64().unwrap(), c["after"].as_f64().unwrap());
    assert!(before < after);
    assert!((c["change"].as_f64().unwrap() - (after - before)).abs() < 1e-9);

    // Read as throughput, the same step is an improvement; the text report says so.
    let o = lookout(&["regress", "analyze", f, "--higher-is-better"]);
    let out = text(&o.stdout);
    assert!(out.contains("90 points, 1 change point"), "{out}");
    assert!(out.contains("improvement") && out.contains("c60"), "{out}");

    // A flat series has none; a broken file is an error naming the line.
    std::fs::write(&file, "v\n1\n1\n1\n1\n1\n1\n1\n1\n").unwrap();
    let o = lookout(&["regress", "analyze", f, "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        json!([])
    );
    std::fs::write(&file, "v\n1\n2\nfast\n").unwrap();
    let o = lookout(&["regress", "analyze", f]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("line 4"), "{}", text(&o.stderr));
}

async fn pushes_find_a_regression_that_fails_the_check_and_pages(backend: Backend) {
    let s = TestServer::start(crate::bin(), backend).await;
    s.client()
        .post(
            "/api/v1/policies",
            json!({"name": "Perf", "severity": "warning", "service": "api",
               "conditions": [{"source": "regressions", "series": ["api.p95_ms"]}]}),
        )
        .await
        .expect(201);
    // A baseline of 40 points in one request.
    let points: Vec<Value> = (0..40)
        .map(|i| json!({"value": 100.0 + noise(i), "commit": format!("good{i}"), "at": 1_700_000_000_000_i64 + i as i64 * 60_000}))
        .collect();
    let state = s
        .client()
        .post(
            "/api/v1/series/api.p95_ms/points",
            json!({"tags": {"branch": "main"}, "unit": "ms", "points": points}),
        )
        .await
        .expect(201);
    assert_eq!(state["series"]["points"], 40);
    assert_eq!(state["change_points"], json!([]));
    assert_eq!(state["regression"], Value::Null);
    let check = |extra: &[&str]| {
        let mut args = vec![
            "regress",
            "check",
            "--series",
            "api.p95_ms",
            "--tag",
            "branch=main",
            "--server",
            &s.url,
            "--token",
            &s.admin_token,
        ];
        args.extend_from_slice(extra);
        lookout(&args)
    };
    let o = check(&[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).starts_with("ok"), "{}", text(&o.stdout));

    // A slower build: the CLI pushes one point per commit, as CI would.
    for i in 40..48 {
        let o = lookout(&[
            "regress",
            "push",
            "--series",
            "api.p95_ms",
            "--value",
            &format!("{}", 125.0 + noise(i)),
            "--unit",
            "ms",
            "--tag",
            "branch=main",
            "--commit",
            &format!("slow{i}"),
            "--server",
            &s.url,
            "--token",
            &s.admin_token,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    let o = check(&[]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}{}", text(&o.stderr));
    assert!(
        out.starts_with("REGRESSION  api.p95_ms {branch=main}: +2"),
        "{out}"
    );
    assert!(
        out.contains("commit slow40") && out.contains("from point 41 of 48"),
        "{out}"
    );
    assert!(
        out.contains(" ms: 10") && out.contains(" ms -> 12"),
        "absolute change and medians: {out}"
    );
    let o = check(&["--json"]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["regressed"], true);
    assert_eq!(j["series"][0]["regression"]["commit"], "slow40");
    assert_eq!(j["series"][0]["regression"]["direction"], "regression");

    // Listed across series, announced once, and paged through the policy.
    let recent = s
        .client()
        .get("/api/v1/regressions?direction=regression")
        .await
        .expect(200);
    let items = recent["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{recent}");
    assert_eq!(items[0]["series"], "api.p95_ms");
    assert_eq!(items[0]["tags"]["branch"], "main");
    assert_eq!(items[0]["index"], 40);
    let events = s.client().get("/api/v1/events?limit=200").await.expect(200);
    let detected: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "regression.detected")
        .collect();
    assert_eq!(
        detected.len(),
        1,
        "one event however many pushes saw it: {events}"
    );
    assert_eq!(detected[0]["payload"]["commit"], "slow40");
    let inc = wait_any_incident(&s, 10, |v| {
        v["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Performance regression: api.p95_ms {branch=main} +2"))
    })
    .await;
    assert_eq!(inc["service"], "api", "{inc}");

    // Other branches and other series are their own.
    let o = lookout(&[
        "regress",
        "check",
        "--series",
        "api.p95_ms",
        "--tag",
        "branch=feature",
        "--server",
        &s.url,
        "--token",
        &s.admin_token,
    ]);
    assert_eq!(o.status.code(), Some(2), "no such series is not a pass");
    assert!(
        text(&o.stderr).contains("no series named"),
        "{}",
        text(&o.stderr)
    );

    // Bad input is refused with the field named; a wrong token makes the check error out (2).
    let c = s.admin_client();
    for (body, needle) in [
        (json!({"points": []}), "points"),
        (json!({"value": 1, "direction": "sideways"}), "direction"),
        (json!({"value": 1, "at": "yesterday"}), "RFC 3339"),
        (json!({"value": 1, "tags": {"": "x"}}), "tags"),
        (json!({"value": "1"}), "points"),
    ] {
        let (st, v) = json_of(
            c.post(s.at("/api/v1/series/api.p95_ms/points"))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 422, "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let o = lookout(&[
        "regress",
        "check",
        "--series",
        "api.p95_ms",
        "--server",
        &s.url,
        "--token",
        "lk_wrong",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("401"), "{}", text(&o.stderr));
    let (st, _) = json_of(c.get(s.at("/api/v1/series/99999")).send().await.unwrap()).await;
    assert_eq!(st, 404);
}

lookout_testkit::both!(pushes_find_a_regression_that_fails_the_check_and_pages);
