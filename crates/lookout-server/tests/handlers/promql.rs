//! PromQL queries under `/prometheus/api/v1/query(_range)`, in process: who may query, the
//! answer's JSON shape for GET and form POST, and every bad parameter answered in Prometheus's
//! error shape with its status (400 `bad_data`, 422 `execution`), never a 500 or a partial
//! answer. Agreement with a real Prometheus is tested in tests/sdk/test_promql_compare.py.

use lookout_protocol::remote_write::{Batch, Series};
use serde_json::{json, Value};

use crate::Harness;

/// 0:00 of a fixed day, so times in the answers are known.
const T0: i64 = 1_700_000_000_000;

/// Stores `requests_total{job="api",code=...}` every 15 s for 10 minutes: 2xx rising by 1.5 a
/// sample, 5xx by 0.5.
async fn seed(h: &Harness) {
    let (project, _) = lookout_store::tenancy::ensure_default_project(&h.store)
        .await
        .unwrap();
    let project = project.id;
    let series = |code: &str, per: f64| Series {
        labels: vec![
            ("__name__".into(), "requests_total".into()),
            ("code".into(), code.into()),
            ("job".into(), "api".into()),
        ],
        samples: (0..=40)
            .map(|i| (T0 + i * 15_000, per * i as f64))
            .collect(),
    };
    let batch = Batch {
        series: vec![series("2xx", 1.5), series("5xx", 0.5)],
        ..Batch::default()
    };
    lookout_store::prom::ingest(&h.store, &h.writes, project, &batch)
        .await
        .unwrap();
}

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn error(h: &Harness, path: &str, status: u16, kind: &str, says: &str) -> Value {
    let r = h.viewer.get(path).await;
    assert_eq!(r.status.as_u16(), status, "{r:?}");
    let v = r.json;
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["errorType"], kind, "{v}");
    assert!(v["error"].as_str().unwrap().contains(says), "{path}: {v}");
    v
}

#[tokio::test]
async fn queries_answer_prometheus_shapes_and_refuse_bad_parameters() {
    let h = Harness::sqlite().await;
    seed(&h).await;
    let at = T0 + 300_000;

    // Any role may query; no credential may not.
    h.anon
        .get(&format!(
            "/prometheus/api/v1/query?query=up&time={}",
            secs(at)
        ))
        .await
        .expect(401);
    let path = format!(
        "/prometheus/api/v1/query?query={}&time={}",
        q("sum by (job) (rate(requests_total[1m]))"),
        secs(at)
    );
    let v = h.viewer.get(&path).await.expect(200);
    assert_eq!(
        v,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "api"}, "value": [1_700_000_300.0, "0.13333333333333333"]}]}})
    );
    // A form POST answers the same as a GET (Grafana posts).
    let form = format!(
        "query={}&time={}",
        q("sum by (job) (rate(requests_total[1m]))"),
        secs(at)
    );
    let posted = h
        .viewer
        .post_raw(
            "/prometheus/api/v1/query",
            "application/x-www-form-urlencoded",
            form,
        )
        .await
        .expect(200);
    assert_eq!(posted, v);

    // A range query: one point per step, times as seconds, values as strings; RFC 3339 and a
    // duration step are read as Prometheus reads them.
    let v = h
        .viewer
        .get(&format!(
            "/prometheus/api/v1/query_range?query={}&start=2023-11-14T22:13:20Z&end={}&step=1m",
            q("requests_total{code=\"5xx\"}"),
            secs(T0 + 180_000)
        ))
        .await
        .expect(200);
    assert_eq!(v["data"]["resultType"], "matrix");
    let series = &v["data"]["result"][0];
    assert_eq!(series["metric"]["code"], "5xx");
    assert_eq!(
        series["values"],
        json!([
            [1_700_000_000.0, "0"],
            [1_700_000_060.0, "2"],
            [1_700_000_120.0, "4"],
            [1_700_000_180.0, "6"]
        ])
    );

    // Bad parameters and queries: 400 bad_data naming the parameter or the problem, never a
    // wrong number.
    let range = "/prometheus/api/v1/query_range?query=up";
    let instant = "/prometheus/api/v1/query";
    let bad: Vec<(String, &str)> = vec![
        (instant.to_string(), "\"query\""),
        (format!("{instant}?query=up&time=yesterday"), "\"time\""),
        (format!("{instant}?query=up&timeout=soon"), "\"timeout\""),
        (format!("{range}&end=10&step=1"), "\"start\""),
        (format!("{range}&start=10&step=1"), "\"end\""),
        (format!("{range}&start=10&end=20"), "\"step\""),
        (
            format!("{range}&start=20&end=10&step=1"),
            "end timestamp must not be before start",
        ),
        (
            format!("{range}&start=10&end=20&step=0"),
            "zero or negative",
        ),
        (
            format!("{range}&start=10&end=20&step=-5"),
            "zero or negative",
        ),
        (format!("{range}&start=10&end=20&step=5parsecs"), "\"step\""),
        (
            format!("{range}&start=0&end=100000&step=1"),
            "11,000 points",
        ),
        (format!("{instant}?query={}", q("sum(")), ""),
        (
            format!("{instant}?query={}", q("histogram_count(requests_total)")),
            "function \"histogram_count\" is not supported",
        ),
        (
            format!(
                "{instant}?query={}",
                q("holt_winters(requests_total[5m], 0.5, 0.5)")
            ),
            "holt_winters",
        ),
    ];
    for (path, says) in &bad {
        error(&h, path, 400, "bad_data", says).await;
    }
    // Many-to-many matching is an execution error (422), as in Prometheus.
    error(
        &h,
        &format!(
            "/prometheus/api/v1/query?query={}&time={}",
            q("requests_total + on(job) requests_total"),
            secs(at)
        ),
        422,
        "execution",
        "",
    )
    .await;
    // A form POST of another type is refused before it is read.
    let r = h
        .viewer
        .post_raw("/prometheus/api/v1/query", "application/json", "{}")
        .await;
    assert_eq!(r.status.as_u16(), 415, "{r:?}");

    // Over the sample budget: Prometheus's error, never a partial answer. The budget is this
    // harness's own (set on its state), so tests running beside it keep the default.
    h.state.set_promql_max_samples(50);
    error(
        &h,
        &format!(
            "/prometheus/api/v1/query?query={}&time={}",
            q("count_over_time(requests_total[10m])"),
            secs(T0 + 600_000)
        ),
        422,
        "execution",
        "too many samples",
    )
    .await;
    // Under it, the same query answers.
    h.state.set_promql_max_samples(200);
    let v = h
        .viewer
        .get(&format!(
            "/prometheus/api/v1/query?query={}&time={}",
            q("sum(count_over_time(requests_total[10m]))"),
            secs(T0 + 600_000)
        ))
        .await
        .expect(200);
    assert_eq!(v["data"]["result"][0]["value"][1], "82");
    // A series' labels count against the same budget (1 + label bytes / 16): one sample
    // under a 4 KiB label is ~250 samples' worth, over the 200 allowed, so it is refused
    // before its samples are read.
    let (project, _) = lookout_store::tenancy::ensure_default_project(&h.store)
        .await
        .unwrap();
    let wide = Batch {
        series: vec![Series {
            labels: vec![
                ("__name__".into(), "wide".into()),
                ("blob".into(), "x".repeat(4000)),
            ],
            samples: vec![(T0, 1.0)],
        }],
        ..Batch::default()
    };
    lookout_store::prom::ingest(&h.store, &h.writes, project.id, &wide)
        .await
        .unwrap();
    error(
        &h,
        &format!("/prometheus/api/v1/query?query=wide&time={}", secs(T0)),
        422,
        "execution",
        "too many samples",
    )
    .await;
}

#[tokio::test]
async fn dashboard_widgets_take_promql_checked_on_save() {
    let h = Harness::sqlite().await;
    let dashboard = |query: &str, kind: &str| {
        json!({"name": "Metrics", "pages": [{"name": "P", "widgets": [
            {"title": "CPU", "type": kind, "language": "promql", "query": query}]}]})
    };
    let r = h
        .member
        .post(
            "/api/v1/dashboards",
            dashboard("sum by (mode) (rate(node_cpu_seconds_total[5m]))", "area"),
        )
        .await;
    let id = r.expect(201)["id"].as_i64().unwrap();
    let v = h
        .viewer
        .get(&format!("/api/v1/dashboards/{id}"))
        .await
        .expect(200);
    assert_eq!(
        v["spec"]["pages"][0]["widgets"][0]["language"], "promql",
        "{v}"
    );
    // A query the PromQL parser refuses is 422 naming the widget and the function; an NRQL
    // widget with the same text would be refused by NRQL instead.
    let r = h
        .member
        .post(
            "/api/v1/dashboards",
            dashboard("holt_winters(x[5m], 0.5, 0.5)", "line"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert!(
        r.message().starts_with("pages[0].widgets[0].query")
            && r.message().contains("holt_winters"),
        "{r:?}"
    );
    let r = h
        .member
        .post("/api/v1/dashboards", dashboard("up", "histogram"))
        .await;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // Viewers may not save dashboards, whatever the language.
    let r = h
        .viewer
        .post("/api/v1/dashboards", dashboard("up", "line"))
        .await;
    assert_eq!(r.status.as_u16(), 403, "{r:?}");
}
