//! Executor timing against a local server: arrival rates hold within 2% over 10 s, ramps follow
//! their stages, iteration executors run exactly their iterations, and an open model counts
//! the iterations it could not start instead of slowing down.

mod common;

use common::{run_yaml, value};
use lookout_testkit::load_target::LoadTarget;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_arrival_rate_holds_within_two_percent_over_ten_seconds() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: 200
    timeUnit: 1s
    duration: 10s
    preAllocatedVUs: 20
    steps:
      - request: { url: "{{env.BASE}}/items/{{iteration}}" }
        checks: { status: 200 }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let iterations = value(&s, "iterations", "count");
    assert!(
        (1960.0..=2040.0).contains(&iterations),
        "{iterations} iterations, want 2000 ± 2%"
    );
    let hits = t.hits();
    assert_eq!(
        hits.len() as f64,
        iterations,
        "one request per iteration reached the server"
    );
    assert_eq!(value(&s, "dropped_iterations", "count"), 0.0);
    // Evenly spread: each half of the run got half of the requests (± 2%).
    let first = hits[0].at;
    let early = hits
        .iter()
        .filter(|h| h.at.duration_since(first).as_secs_f64() < 5.0)
        .count() as f64;
    assert!(
        (980.0..=1020.0).contains(&early),
        "{early} requests in the first 5 s"
    );
    assert_eq!(value(&s, "checks", "rate"), 1.0);
    // Every iteration number was used once.
    let mut ids: Vec<u64> = hits
        .iter()
        .map(|h| h.path.trim_start_matches("/items/").parse().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as f64, iterations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_arrival_rate_follows_its_stages() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  ramp:
    executor: ramping-arrival-rate
    startRate: 0
    timeUnit: 1s
    preAllocatedVUs: 10
    maxVUs: 50
    stages:
      - { duration: 5s, target: 200 }
      - { duration: 5s, target: 200 }
    steps:
      - request: { url: "{{env.BASE}}/items/{{iteration}}" }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    // Area under the rate: 5 s ramping 0 → 200/s (500) plus 5 s at 200/s (1000).
    let iterations = value(&s, "iterations", "count");
    assert!(
        (1470.0..=1530.0).contains(&iterations),
        "{iterations} iterations, want 1500 ± 2%"
    );
    let hits = t.hits();
    let first = hits[0].at;
    let at = |h: &lookout_testkit::load_target::Hit| h.at.duration_since(first).as_secs_f64();
    // During the ramp the rate grows linearly: the first 2.5 s carry a quarter of its 500.
    let quarter = hits.iter().filter(|h| at(h) < 2.5).count() as f64;
    assert!(
        (105.0..=145.0).contains(&quarter),
        "{quarter} requests in the first 2.5 s, want ~125"
    );
    let ramp = hits.iter().filter(|h| at(h) < 5.0).count() as f64;
    assert!(
        (470.0..=530.0).contains(&ramp),
        "{ramp} requests during the ramp, want ~500"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_vus_follow_their_stages() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  users:
    executor: ramping-vus
    startVUs: 0
    gracefulRampDown: 1s
    stages:
      - { duration: 4s, target: 8 }
      - { duration: 3s, target: 8 }
      - { duration: 2s, target: 0 }
    steps:
      - request: { url: "{{env.BASE}}/slow?ms=50" }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let vus_at = |t: u32| {
        s.series
            .iter()
            .find(|p| p.t == t)
            .map(|p| p.scenarios[1].vus)
            .unwrap_or(99)
    };
    // The gauge is sampled at the end of each second: 2/4 → 4 VUs, 3/4 → 6, then 8.
    assert!((3..=5).contains(&vus_at(1)), "t=1: {} VUs", vus_at(1));
    assert!((5..=7).contains(&vus_at(2)), "t=2: {} VUs", vus_at(2));
    assert_eq!(vus_at(5), 8);
    assert!(vus_at(7) <= 4, "t=7: {} VUs while ramping down", vus_at(7));
    assert_eq!(value(&s, "vus_max", "max"), 8.0);
    // Each active VU does ~20 iterations a second: the hold at 8 VUs shows in the request rate.
    let hits = t.hits();
    let first = hits[0].at;
    let hold = hits
        .iter()
        .filter(|h| (4.5..6.5).contains(&h.at.duration_since(first).as_secs_f64()))
        .count();
    let ramp = hits
        .iter()
        .filter(|h| h.at.duration_since(first).as_secs_f64() < 1.0)
        .count();
    assert!(
        hold > ramp * 3,
        "{hold} requests in 2 s at 8 VUs vs {ramp} in the first second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iteration_executors_run_exactly_their_iterations() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  shared:
    executor: shared-iterations
    vus: 5
    iterations: 37
    steps:
      - request: { url: "{{env.BASE}}/items/s{{iteration}}" }
  pervu:
    executor: per-vu-iterations
    vus: 3
    iterations: 4
    steps:
      - request: { url: "{{env.BASE}}/items/p{{vu}}-{{vu_iteration}}" }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    let hits = t.hits();
    let mut shared: Vec<u64> = hits
        .iter()
        .filter_map(|h| h.path.strip_prefix("/items/s").map(|n| n.parse().unwrap()))
        .collect();
    shared.sort();
    assert_eq!(shared, (0..37).collect::<Vec<_>>());
    let mut pervu: Vec<String> = hits
        .iter()
        .filter_map(|h| h.path.strip_prefix("/items/p").map(str::to_string))
        .collect();
    pervu.sort();
    pervu.dedup();
    assert_eq!(
        pervu.len(),
        12,
        "3 VUs × 4 iterations, each (vu, iteration) once: {pervu:?}"
    );
    assert_eq!(value(&s, "iterations{scenario:shared}", "count"), 37.0);
    assert_eq!(value(&s, "iterations{scenario:pervu}", "count"), 12.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_drops_iterations_and_times_from_the_intended_start() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = run_yaml(
        r#"
scenarios:
  open:
    executor: constant-arrival-rate
    rate: 50
    duration: 4s
    preAllocatedVUs: 2
    maxVUs: 5
    gracefulStop: 2s
    steps:
      - request: { url: "{{env.BASE}}/slow?ms=500" }
"#,
        &t.url(),
        dir.path(),
    )
    .await;
    // 5 VUs at 2 iterations a second each can start ~40 of the 200 due; the rest are counted.
    let iterations = value(&s, "iterations", "count");
    let dropped = value(&s, "dropped_iterations", "count");
    assert!(
        (30.0..=50.0).contains(&iterations),
        "{iterations} iterations"
    );
    assert!(
        (iterations + dropped - 200.0).abs() <= 2.0,
        "{iterations} + {dropped} != 200"
    );
    assert_eq!(value(&s, "vus_max", "max"), 5.0);
    // The server's 500 ms shows in the latency; the slow server cannot hide it.
    assert!(value(&s, "http_req_duration", "med") >= 500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_down_interrupts_iterations_after_graceful_ramp_down() {
    let t = LoadTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = |grace: &str| {
        format!(
            r#"
scenarios:
  users:
    executor: ramping-vus
    startVUs: 2
    gracefulRampDown: {grace}
    stages:
      - {{ duration: 500ms, target: 2 }}
      - {{ duration: 100ms, target: 0 }}
      - {{ duration: 3s, target: 0 }}
    steps:
      - request: {{ url: "{{{{env.BASE}}}}/slow?ms=2000" }}
"#
        )
    };
    // 2 s requests, ramped to 0 at 0.6 s: with 300 ms of grace both are cut off...
    let cut = run_yaml(&yaml("300ms"), &t.url(), dir.path()).await;
    assert_eq!(value(&cut, "iterations", "count"), 0.0);
    assert_eq!(value(&cut, "http_reqs", "count"), 0.0);
    // ...with 3 s of grace both finish.
    let kept = run_yaml(&yaml("3s"), &t.url(), dir.path()).await;
    assert_eq!(value(&kept, "iterations", "count"), 2.0);
}
