//! What an iteration does, against a local application: templating (VU, iteration, env, CSV
//! rows, random values), values extracted from one response (JSONPath, header, regex) used by
//! the next request, checks and their counts, redirects and chunked bodies, and thresholds
//! (sub-metrics, `abortOnFail`, `delayAbortEval`).

mod common;

use std::time::Instant;

use common::{run_yaml, value};
use lookout_testkit::load_target::LoadTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flow_extracts_values_and_feeds_rows_of_a_csv_file() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        "user,plan\nann,pro\nbob,free\ncy,pro\n",
    )
    .unwrap();
    let s = run_yaml(
        r#"
scenarios:
  login:
    executor: shared-iterations
    vus: 2
    iterations: 6
    data: { file: users.csv }
    env: { GREETING: hello }
    steps:
      - request:
          name: login
          method: POST
          url: "{{env.BASE}}/login"
          body: { user: "{{data.user}}", plan: "{{data.plan}}" }
        checks: { status: 200, header: { content-type: json } }
        extract:
          token: { jsonpath: "$.token" }
          session: { header: X-Session }
          who: { regex: '"name":"(\w+)"' }
      - sleep: 1ms..5ms
      - request:
          name: me
          url: "{{env.BASE}}/me?who={{who}}&it={{iteration}}&vu={{vu}}&r={{random.int(1,9)}}&g={{env.GREETING}}"
          headers: { Authorization: "Bearer {{token}}", X-Session: "{{session}}", X-Id: "{{random.uuid}}" }
        checks:
          status: 200
          jsonpath: { "$.user": ann }
          body_contains: '"user"'
          duration: "<5s"
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let hits = t.hits();
    let logins: Vec<_> = hits.iter().filter(|h| h.path == "/login").collect();
    let mes: Vec<_> = hits.iter().filter(|h| h.path == "/me").collect();
    assert_eq!((logins.len(), mes.len()), (6, 6));
    // Rows in order, one per iteration: each user twice, with their plan.
    let mut bodies: Vec<serde_json::Value> = logins
        .iter()
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .collect();
    bodies.sort_by_key(|b| b["user"].as_str().unwrap().to_string());
    let users: Vec<&str> = bodies.iter().map(|b| b["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["ann", "ann", "bob", "bob", "cy", "cy"]);
    assert!(bodies
        .iter()
        .all(|b| (b["user"] == "bob") == (b["plan"] == "free")));
    assert!(logins
        .iter()
        .all(|h| h.headers["content-type"] == "application/json"));
    for h in &mes {
        let q: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(h.query.as_bytes())
                .into_owned()
                .collect();
        let who = &q["who"];
        // The token and session of this VU's own login reached the next request.
        assert_eq!(h.headers["authorization"], format!("Bearer tok-{who}"));
        assert_eq!(h.headers["x-session"], format!("s-{who}"));
        assert_eq!(h.headers["x-id"].len(), 36);
        assert!(["1", "2"].contains(&q["vu"].as_str()));
        assert!((1..=9).contains(&q["r"].parse::<i32>().unwrap()));
        assert_eq!(q["g"], "hello");
    }
    let mut its: Vec<u32> = mes
        .iter()
        .map(|h| {
            url::form_urlencoded::parse(h.query.as_bytes())
                .find(|(k, _)| k == "it")
                .unwrap()
                .1
                .parse()
                .unwrap()
        })
        .collect();
    its.sort();
    assert_eq!(its, [0, 1, 2, 3, 4, 5]);
    // Checks: the user check passes for ann's two iterations only; everything else always.
    let check = |suffix: &str| {
        s.checks
            .iter()
            .find(|c| c.name.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix}: {:?}", s.checks))
    };
    assert_eq!(
        (
            check("$.user == \"ann\"").passes,
            check("$.user == \"ann\"").fails
        ),
        (2, 4)
    );
    assert_eq!(check("login: status is 200").passes, 6);
    assert_eq!(check("header content-type contains \"json\"").passes, 6);
    assert_eq!(check("me: body contains \"\\\"user\\\"\"").passes, 6);
    assert_eq!(check("me: duration < 5s").passes, 6);
    let total = 6.0 * 6.0;
    assert!((value(&s, "checks", "rate") - 32.0 / total).abs() < 1e-9);
    // A per-request breakdown exists because the scenario sends two kinds.
    assert_eq!(value(&s, "http_reqs{name:me}", "count"), 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_redirects_and_chunked_bodies_are_measured() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  mixed:
    executor: per-vu-iterations
    vus: 2
    iterations: 5
    steps:
      - request: { name: error, url: "{{env.BASE}}/status/503" }
        checks: { status: [200, 201] }
      - request: { name: moved, url: "{{env.BASE}}/redirect" }
        checks: { status: 200, body_contains: redirected }
      - request: { name: chunks, url: "{{env.BASE}}/chunked" }
        checks: { body_contains: "part0;part1;part2;part3;part4;" }
      - request: { name: refused, url: "http://127.0.0.1:9/", timeout: 2s }
thresholds:
  http_req_failed: ["rate<0.01"]
  "http_req_failed{name:chunks}": ["rate==0"]
  "http_reqs{status:503}": ["count==10"]
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let ok = |name: &str| {
        s.checks
            .iter()
            .filter(|c| c.name.starts_with(name))
            .map(|c| (c.passes, c.fails))
            .collect::<Vec<_>>()
    };
    assert_eq!(ok("error:"), [(0, 10)]);
    assert_eq!(ok("moved:"), [(10, 0), (10, 0)]);
    assert_eq!(ok("chunks:"), [(10, 0)]);
    // The redirect was followed: each hop is a request of its own.
    assert_eq!(
        t.hits()
            .iter()
            .filter(|h| h.path == "/items/redirected")
            .count(),
        10
    );
    assert_eq!(value(&s, "http_reqs", "count"), 50.0);
    // 503s and refused connections fail; 302 hops and 200s do not.
    assert!((value(&s, "http_req_failed", "rate") - 20.0 / 50.0).abs() < 1e-9);
    let th = |expr: &str, metric: &str| {
        s.thresholds
            .iter()
            .find(|t| t.expression == expr && t.metric == metric)
            .unwrap()
            .passed
    };
    assert!(!th("rate<0.01", "http_req_failed"));
    assert!(th("rate==0", "http_req_failed{name:chunks}"));
    assert!(th("count==10", "http_reqs{status:503}"));
    assert_eq!(s.exit_code(), 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_judge_sub_metrics_per_scenario() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  fast:
    executor: constant-vus
    vus: 2
    duration: 2s
    tags: { tier: web }
    steps:
      - request: { url: "{{env.BASE}}/items/1" }
        checks: { status: 200 }
  slow:
    executor: constant-vus
    vus: 2
    duration: 2s
    steps:
      - request: { url: "{{env.BASE}}/slow?ms=60" }
thresholds:
  "http_req_duration{scenario:fast}": ["p(95)<50", "avg<50"]
  "http_req_duration{scenario:slow}": ["p(95)<50", "p(50)>=60", "min>=60"]
  "http_req_duration{tier:web}": ["max<50"]
  checks: ["rate>0.99"]
  iterations: ["count>10"]
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let verdict: Vec<(String, String, bool)> = s
        .thresholds
        .iter()
        .map(|t| (t.metric.clone(), t.expression.clone(), t.passed))
        .collect();
    let want = [
        ("http_req_duration{scenario:fast}", "p(95)<50", true),
        ("http_req_duration{scenario:fast}", "avg<50", true),
        ("http_req_duration{scenario:slow}", "p(95)<50", false),
        ("http_req_duration{scenario:slow}", "p(50)>=60", true),
        ("http_req_duration{scenario:slow}", "min>=60", true),
        ("http_req_duration{tier:web}", "max<50", true),
        ("checks", "rate>0.99", true),
        ("iterations", "count>10", true),
    ];
    for (m, e, p) in want {
        assert!(
            verdict.contains(&(m.to_string(), e.to_string(), p)),
            "{m} {e} should be {p}: {verdict:?}"
        );
    }
    assert_eq!(s.exit_code(), 99);
    let text = lookout_load::summary::text(&s);
    assert!(text.contains("✗ 'p(95)<50' p(95)="), "{text}");
    assert!(text.contains("some thresholds have failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_after_its_delay() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let s = run_yaml(
        r#"
scenarios:
  failing:
    executor: constant-vus
    vus: 2
    duration: 30s
    steps:
      - request: { url: "{{env.BASE}}/status/500" }
        think: 10ms
thresholds:
  http_req_failed:
    - threshold: "rate<0.5"
      abortOnFail: true
      delayAbortEval: 2s
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let took = began.elapsed().as_secs_f64();
    assert!(
        (2.0..6.0).contains(&took),
        "stopped after {took:.1} s of a 30 s run"
    );
    assert!(
        s.aborted.as_deref().unwrap_or("").contains("abortOnFail"),
        "{:?}",
        s.aborted
    );
    assert_eq!(s.exit_code(), 99);
    assert!(value(&s, "http_reqs", "count") > 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vu_keeps_the_cookies_its_server_set() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  session:
    executor: per-vu-iterations
    vus: 3
    iterations: 2
    steps:
      - request: { name: login, method: POST, url: "{{env.BASE}}/session/u{{vu}}" }
      - request: { name: me, url: "{{env.BASE}}/session" }
        checks: { status: 200, body_contains: '"user":"u' }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    assert_eq!(s.checks[0].passes, 6, "{:?}", s.checks);
    // Each VU sent back its own session cookie, never another VU's.
    let mut cookies: Vec<String> = t
        .hits()
        .iter()
        .filter(|h| h.path == "/session")
        .map(|h| h.headers["cookie"].clone())
        .collect();
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies, ["sid=s-u1", "sid=s-u2", "sid=s-u3"]);
}
