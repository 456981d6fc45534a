//! Scraping with the real binary: a real `prometheus-node-exporter` scraped by Lookout and by a
//! real `prometheus` at once, whose series must be the same; `up` going to 0 and the series
//! going stale when the exporter stops; metric and target relabeling; file_sd changes; basic and
//! bearer credentials sent to a small test server; a redirect to a refused address refused; a
//! body over its limit failing the scrape with the error on the Targets API and page; roles on
//! the API; and two replicas on PostgreSQL scraping each target from one of them at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use lookout_testkit::{eventually, Backend, TestServer};
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tool the tests need: missing is a failure under CI, a skip otherwise.
fn tool(name: &str) -> Option<String> {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return Some(p);
        }
    }
    assert!(
        std::env::var("CI").is_err(),
        "{name} is missing (scripts/setup-test-deps installs it)"
    );
    eprintln!("skipping: {name} is not installed");
    None
}

/// A node exporter with a fixed set of collectors (their series do not come and go between
/// scrapes), on `port`.
fn node_exporter(bin: &str, port: u16) -> Proc {
    Proc(
        Command::new(bin)
            .args([
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
                "--collector.loadavg",
                "--collector.uname",
                "--collector.time",
                "--collector.stat",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node exporter"),
    )
}

async fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    match r.send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Label sets of `{job="…"}` series as a Prometheus series API answers them.
fn label_sets(v: &Value) -> BTreeSet<String> {
    v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let m: BTreeMap<String, String> =
                        serde_json::from_value(s.clone()).unwrap_or_default();
                    serde_json::to_string(&m).unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn targets(s: &TestServer) -> Vec<Value> {
    get_json(&s.at("/api/v1/prometheus/targets"), Some(&s.admin_token))
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn instant(s: &TestServer, q: &str) -> Vec<Value> {
    let url = format!(
        "{}?query={}",
        s.at("/prometheus/api/v1/query"),
        url_escape(q)
    );
    get_json(&url, Some(&s.admin_token)).await["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn url_escape(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Node exporter scraped by Lookout and by Prometheus: the same series; relabeling; file_sd;
/// then `up` 0 and every series stale once the exporter stops.
async fn node_exporter_is_scraped_like_prometheus_scrapes_it(backend: Backend) {
    let (Some(exporter), Some(prometheus)) = (tool("prometheus-node-exporter"), tool("prometheus"))
    else {
        return;
    };
    let port = free_port();
    let mut exporter_proc = Some(node_exporter(&exporter, port));
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n- job_name: node\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["127.0.0.1:{port}"],"labels":{{"team":"a"}}}}]"#),
    )
    .unwrap();
    let config = format!(
        r#"
[[scrape_configs]]
job_name = "node"
scrape_interval = "1s"
scrape_timeout = "1s"
static_configs = [{{ targets = ["127.0.0.1:{port}"] }}]

[[scrape_configs]]
job_name = "relabeled"
scrape_interval = "1s"
scrape_timeout = "1s"
static_configs = [{{ targets = ["127.0.0.1:{port}"], labels = {{ __meta_zone = "eu", env = "prod" }} }}]
relabel_configs = [
  {{ action = "labelmap", regex = "__meta_(.+)" }},
  {{ source_labels = ["__address__"], regex = "([^:]+):.*", target_label = "host", replacement = "$1" }},
]
metric_relabel_configs = [
  {{ action = "keep", source_labels = ["__name__"], regex = "node_load.*|node_cpu_seconds_total" }},
  {{ action = "drop", source_labels = ["mode"], regex = "steal|guest.*" }},
  {{ action = "replace", source_labels = ["mode"], target_label = "cpu_mode" }},
  {{ action = "labeldrop", regex = "mode|env" }},
]

[[scrape_configs]]
job_name = "filesd"
scrape_interval = "1s"
scrape_timeout = "1s"
file_sd_configs = [{{ files = ["{}"] }}]
metric_relabel_configs = [{{ action = "keep", source_labels = ["__name__"], regex = "node_load1" }}]
"#,
        sd.display()
    );
    let s = TestServer::start_with_config(crate::bin(), backend, &config).await;
    let job = url_escape(r#"{job="node"}"#);
    let prom_series = format!("http://127.0.0.1:{prom_port}/api/v1/series?match[]={job}");
    let lookout_series = format!("{}?match[]={job}", s.at("/prometheus/api/v1/series"));
    // Both scrape the exporter every second; wait until both hold the same label sets.
    let token = s.admin_token.clone();
    let same = eventually("Lookout and Prometheus to hold the same node series")
        .secs(90)
        .poll(|| async {
            let p = label_sets(&get_json(&prom_series, None).await);
            let l = label_sets(&get_json(&lookout_series, Some(&token)).await);
            if p.len() > 50 && p == l {
                Ok(p)
            } else {
                let missing: Vec<_> = p.difference(&l).take(5).cloned().collect();
                let extra: Vec<_> = l.difference(&p).take(5).cloned().collect();
                Err((p.len(), l.len(), missing, extra))
            }
        })
        .await;
    for name in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "node_load1",
    ] {
        assert!(
            same.iter()
                .any(|l| l.contains(&format!(r#""__name__":"{name}""#))),
            "{name} missing"
        );
    }
    // One scrape may time out on a busy machine (1 s timeout): up 1 is waited for, not
    // asserted at a single instant.
    let up = eventually("up 1 for the node job")
        .secs(30)
        .until(
            || instant(&s, r#"up{job="node"}"#),
            |v| v.first().is_some_and(|u| u["value"][1] == "1"),
        )
        .await;
    assert_eq!(up[0]["metric"]["instance"], format!("127.0.0.1:{port}"));

    // Relabeling: only the kept metrics, target labels mapped and made, mode renamed.
    let rel = eventually("relabeled series")
        .secs(30)
        .until(
            || instant(&s, r#"{job="relabeled", __name__=~"node_.*"}"#),
            |v| !v.is_empty(),
        )
        .await;
    for series in &rel {
        let m = &series["metric"];
        let name = m["__name__"].as_str().unwrap();
        assert!(
            name.starts_with("node_load") || name == "node_cpu_seconds_total",
            "{m}"
        );
        assert_eq!(m["zone"], "eu", "{m}");
        assert_eq!(m["host"], "127.0.0.1", "{m}");
        assert!(m.get("mode").is_none() && m.get("env").is_none(), "{m}");
        if name == "node_cpu_seconds_total" {
            let mode = m["cpu_mode"].as_str().unwrap();
            assert!(mode != "steal" && !mode.starts_with("guest"), "{m}");
        }
    }
    // The report series count what metric relabeling kept.
    let post = instant(
        &s,
        r#"scrape_samples_post_metric_relabeling{job="relabeled"}"#,
    )
    .await;
    let scraped = instant(&s, r#"scrape_samples_scraped{job="relabeled"}"#).await;
    let n = |v: &[Value]| v[0]["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    assert!(
        n(&post) < n(&scraped) && n(&post) >= 3.0,
        "{post:?} {scraped:?}"
    );

    // file_sd: the file's labels, then a change to them is picked up.
    let team = |t: &'static str| {
        let s = &s;
        async move { instant(s, &format!(r#"node_load1{{job="filesd", team="{t}"}}"#)).await }
    };
    eventually("file_sd target scraped")
        .secs(30)
        .until(|| team("a"), |v| !v.is_empty())
        .await;
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["127.0.0.1:{port}"],"labels":{{"team":"b"}}}}]"#),
    )
    .unwrap();
    eventually("the changed target file picked up")
        .secs(30)
        .until(|| team("b"), |v| !v.is_empty())
        .await;
    // The old target went away: its series are stale, no longer answered.
    eventually("the old file_sd target's series stale")
        .secs(30)
        .until(|| team("a"), Vec::is_empty)
        .await;

    // The Targets API and page show the targets up.
    let ts = eventually("the node target up on the Targets API")
        .secs(30)
        .until(
            || targets(&s),
            |ts| ts.iter().any(|t| t["job"] == "node" && t["health"] == "up"),
        )
        .await;
    let node = ts.iter().find(|t| t["job"] == "node").expect("node target");
    assert_eq!(node["url"], format!("http://127.0.0.1:{port}/metrics"));
    let (browser, cookie) =
        crate::foundation::sessions::sign_in(&s, "admin@example.com", "correct horse battery")
            .await;
    let page = browser
        .get(s.at("/explore/metrics/targets"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("http://127.0.0.1:{port}/metrics")),
        "{html}"
    );
    assert!(html.contains("status-up"));

    // The exporter stops: up 0, the error said, every series stale.
    drop(exporter_proc.take());
    eventually("up 0 once the exporter is gone")
        .secs(30)
        .until(
            || instant(&s, r#"up{job="node"}"#),
            |v| v.first().is_some_and(|u| u["value"][1] == "0"),
        )
        .await;
    assert!(
        instant(&s, r#"node_load1{job="node"}"#).await.is_empty(),
        "a stale series is not answered"
    );
    // The relabeled job is another loop, maybe on another shard: its markers may commit later.
    eventually("the relabeled job's series stale")
        .secs(30)
        .until(
            || instant(&s, r#"{job="relabeled", __name__=~"node_.*"}"#),
            Vec::is_empty,
        )
        .await;
    let ts = targets(&s).await;
    let node = ts.iter().find(|t| t["job"] == "node").unwrap();
    assert_eq!(node["health"], "down");
    assert!(
        node["last_error"].as_str().unwrap().contains("connect"),
        "{node}"
    );
}

/// What the small test server saw: (path, Authorization header, connection id).
type Seen = Arc<Mutex<Vec<(String, String, u64)>>>;

/// A scrape target with credentials, a redirect, a large body and a request log.
async fn test_target() -> (u16, Seen) {
    use axum::extract::{ConnectInfo, Request};
    use axum::response::IntoResponse;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let gz = |body: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    };
    let metrics = "# TYPE things gauge\nthings{kind=\"a\"} 1\nthings{kind=\"b\"} 2\n";
    let gzipped = Arc::new(gz(metrics.as_bytes()));
    // 8 MiB of comment bytes: a few KiB on the wire, far past the 1 MB limit unpacked.
    let bomb = Arc::new(gz(&vec![b'#'; 8 << 20]));
    let truncated = Arc::new(gzipped[..gzipped.len() / 2].to_vec());
    let app = axum::Router::new().fallback(
        move |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>, req: Request| {
            let log = log.clone();
            let (gzipped, bomb, truncated) = (gzipped.clone(), bomb.clone(), truncated.clone());
            async move {
                let path = req.uri().to_string();
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                log.lock()
                    .unwrap()
                    .push((path.clone(), auth.clone(), u64::from(peer.port())));
                let metrics = "# TYPE things gauge\nthings{kind=\"a\"} 1\nthings{kind=\"b\"} 2\n";
                if path.starts_with("/basic") {
                    // user:pass
                    if auth == "Basic dXNlcjpwYXNz" {
                        return metrics.into_response();
                    }
                    return (axum::http::StatusCode::UNAUTHORIZED, "no").into_response();
                }
                if path.starts_with("/bearer") {
                    if auth == "Bearer s3cret" {
                        return metrics.into_response();
                    }
                    return (axum::http::StatusCode::UNAUTHORIZED, "no").into_response();
                }
                if path.starts_with("/redirect") {
                    return (
                        axum::http::StatusCode::FOUND,
                        [("location", "http://169.254.169.254/latest/meta-data")],
                    )
                        .into_response();
                }
                for (route, body) in [
                    ("/gzip", &gzipped),
                    ("/bomb", &bomb),
                    ("/truncated", &truncated),
                ] {
                    if path.starts_with(route) {
                        return ([("content-encoding", "gzip")], body.to_vec()).into_response();
                    }
                }
                if path.starts_with("/big") {
                    return "x 1\n".repeat(10_000).into_response();
                }
                metrics.into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (port, seen)
}

/// Credentials are sent, a redirect to a refused address is refused, a body over its limit
/// fails the scrape with `up 0` and the error on the Targets API; jobs made through the API are
/// admin-only to write and masked to every reader.
async fn credentials_redirects_limits_and_the_api(backend: Backend) {
    let (port, seen) = test_target().await;
    let s = TestServer::start(crate::bin(), backend).await;
    let put = |name: &str, body: Value, token: String| {
        let url = s.at(&format!("/api/v1/prometheus/scrape-configs/{name}"));
        async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let target = format!("127.0.0.1:{port}");
    let job = |path: &str, extra: Value| {
        let mut j = json!({"scrape_interval": "1s", "metrics_path": path,
            "static_configs": [{"targets": [target.clone()]}]});
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        j
    };
    let admin = s.admin_token.clone();
    let r = put(
        "basic",
        job(
            "/basic",
            json!({"basic_auth": {"username": "user", "password": "pass"}}),
        ),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let r = put(
        "bearer",
        job("/bearer", json!({"bearer_token": "s3cret"})),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = put("redir", job("/redirect", json!({})), admin.clone()).await;
    assert_eq!(r.status(), 201);
    let r = put(
        "big",
        job("/big", json!({"body_size_limit": "1KB"})),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = put(
        "limited",
        job("/limited", json!({"sample_limit": 1})),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 201);
    for (name, path, extra) in [
        ("gzip", "/gzip", json!({})),
        ("bomb", "/bomb", json!({"body_size_limit": "1MB"})),
        ("truncated", "/truncated", json!({})),
    ] {
        let r = put(name, job(path, extra), admin.clone()).await;
        assert_eq!(r.status(), 201, "{name}");
    }

    // Validation names the field; a viewer may read but not write.
    let r = put(
        "bad",
        job("/x", json!({"scrape_timeout": "5s"})),
        admin.clone(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("scrape_timeout"),
        "{body}"
    );
    let viewer = s.client().token("viewer").await;
    let r = put("nope", job("/x", json!({})), viewer.clone()).await;
    assert_eq!(r.status(), 403);
    let listed = get_json(&s.at("/api/v1/prometheus/scrape-configs"), Some(&viewer)).await;
    let text = listed.to_string();
    assert!(text.contains("\"basic\""), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("\"pass\""),
        "{text}"
    );
    assert!(text.contains("********"));

    let by_job = |ts: &[Value], j: &str| ts.iter().find(|t| t["job"] == j).cloned();
    // The targets that answer are waited for until up: one scrape may time out on a busy
    // machine, which is not what this test is about.
    let ts = eventually("every test target scraped, those that answer up")
        .secs(60)
        .until(
            || targets(&s),
            |ts| {
                ["redir", "big", "limited", "bomb", "truncated"]
                    .iter()
                    .all(|j| by_job(ts, j).is_some())
                    && ["basic", "bearer", "gzip"]
                        .iter()
                        .all(|j| by_job(ts, j).is_some_and(|t| t["health"] == "up"))
            },
        )
        .await;
    // gzip: a gzipped body is read; a bomb stops at the body size limit; a cut stream fails.
    assert_eq!(instant(&s, r#"things{job="gzip"}"#).await.len(), 2);
    let bomb = by_job(&ts, "bomb").unwrap();
    assert_eq!(bomb["health"], "down");
    assert!(
        bomb["last_error"]
            .as_str()
            .unwrap()
            .contains("body size limit"),
        "{bomb}"
    );
    let up = instant(&s, r#"up{job="bomb"}"#).await;
    assert_eq!(up[0]["value"][1], "0");
    let truncated = by_job(&ts, "truncated").unwrap();
    assert_eq!(truncated["health"], "down");
    assert!(
        truncated["last_error"].as_str().unwrap().contains("gzip"),
        "{truncated}"
    );
    let redir = by_job(&ts, "redir").unwrap();
    assert_eq!(redir["health"], "down");
    assert!(
        redir["last_error"].as_str().unwrap().contains("redirect"),
        "{redir}"
    );
    let big = by_job(&ts, "big").unwrap();
    assert_eq!(big["health"], "down");
    assert!(
        big["last_error"]
            .as_str()
            .unwrap()
            .contains("body size limit"),
        "{big}"
    );
    let limited = by_job(&ts, "limited").unwrap();
    assert!(
        limited["last_error"]
            .as_str()
            .unwrap()
            .contains("sample_limit"),
        "{limited}"
    );
    // As Prometheus: a scrape failed by sample_limit still reports what it scraped.
    let n = instant(&s, r#"scrape_samples_scraped{job="limited"}"#).await;
    assert_eq!(n[0]["value"][1], "2", "{n:?}");
    let up = instant(&s, r#"up{job="limited"}"#).await;
    assert_eq!(up[0]["value"][1], "0");
    let up = instant(&s, r#"up{job="big"}"#).await;
    assert_eq!(up[0]["value"][1], "0");
    assert_eq!(instant(&s, r#"things{job="bearer"}"#).await.len(), 2);
    {
        let log = seen.lock().unwrap();
        assert!(log
            .iter()
            .any(|(p, a, _)| p.starts_with("/basic") && a == "Basic dXNlcjpwYXNz"));
        assert!(log
            .iter()
            .any(|(p, a, _)| p.starts_with("/bearer") && a == "Bearer s3cret"));
    }

    // An edit that keeps the masked password but moves the job elsewhere is refused: the
    // stored password is not sent to a new destination unless given again.
    let moved = json!({"scrape_interval": "1s", "metrics_path": "/basic",
        "static_configs": [{"targets": ["127.0.0.2:9"]}],
        "basic_auth": {"username": "user", "password": "********"}});
    let r = put("basic", moved, admin.clone()).await;
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("basic_auth.password"),
        "{body}"
    );
    // Kept in place, the masked password stays valid.
    let same = job(
        "/basic",
        json!({"scrape_interval": "2s", "basic_auth": {"username": "user", "password": "********"}}),
    );
    let r = put("basic", same, admin.clone()).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // The job form: a wrong field is named, what was typed is kept, nothing is saved; a right
    // one saves and the job is listed on the Targets page.
    let (browser, cookie) =
        crate::foundation::sessions::sign_in(&s, "admin@example.com", "correct horse battery")
            .await;
    let form = browser
        .get(s.at("/explore/metrics/targets/jobs/new"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::foundation::sessions::csrf_field(&form);
    let post = |fields: Vec<(&'static str, String)>| {
        let (b, c, url) = (
            browser.clone(),
            cookie.clone(),
            s.at("/explore/metrics/targets/jobs"),
        );
        async move {
            b.post(url)
                .header("cookie", c)
                .form(&fields)
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("job_name", "from-form".into()),
        ("targets", target.clone()),
        ("scrape_interval", "1s".into()),
        ("scrape_timeout", "9s".into()),
    ])
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(
            r#"id="scrape_timeout" name="scrape_timeout" value="9s" aria-invalid="true""#
        ),
        "{html}"
    );
    assert!(html.contains(r#"value="from-form""#), "typed values kept");
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("job_name", "from-form".into()),
        ("targets", target.clone()),
        ("scrape_interval", "1s".into()),
    ])
    .await;
    assert_eq!(r.status(), 303);
    let listed = get_json(&s.at("/api/v1/prometheus/scrape-configs"), Some(&admin)).await;
    assert!(listed.to_string().contains("from-form"), "{listed}");

    let r = reqwest::Client::new()
        .delete(s.at("/api/v1/prometheus/scrape-configs/big"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = reqwest::Client::new()
        .delete(s.at("/api/v1/prometheus/scrape-configs/big"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// Two replicas on one PostgreSQL database scrape eight targets: each target's scrapes come
/// over one connection at a time (a target moved from one replica to the other never goes
/// back and forth), and both replicas take a share.
async fn two_replicas_scrape_each_target_once() {
    let (port, seen) = test_target().await;
    let servers = TestServer::replicas_together(crate::bin(), 2, &[]).await;
    let a = &servers[0];
    for i in 0..8 {
        let body = json!({"scrape_interval": "1s", "metrics_path": "/count",
            "params": {"id": [i.to_string()]},
            "static_configs": [{"targets": [format!("127.0.0.1:{port}")]}]});
        let r = reqwest::Client::new()
            .put(a.at(&format!("/api/v1/prometheus/scrape-configs/job{i}")))
            .bearer_auth(&a.admin_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Wait until every target has been scraped 20 times, with both replicas holding shards.
    eventually("each target scraped 20 times, shards on both replicas")
        .secs(120)
        .poll(|| async {
            let log = seen.lock().unwrap().clone();
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for (p, _, _) in &log {
                *per.entry(p.clone()).or_default() += 1;
            }
            let leases = lookout_leases(a).await;
            let owners: BTreeSet<String> = leases.into_iter().collect();
            if per.len() == 8 && per.values().all(|n| *n >= 20) && owners.len() == 2 {
                Ok(())
            } else {
                Err((per, owners))
            }
        })
        .await;
    let log = seen.lock().unwrap().clone();
    let mut runs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (p, _, conn) in &log {
        let r = runs.entry(p.clone()).or_default();
        if r.last() != Some(conn) {
            r.push(*conn);
        }
    }
    for (path, conns) in runs {
        let distinct: BTreeSet<_> = conns.iter().collect();
        assert_eq!(
            distinct.len(),
            conns.len(),
            "{path}: scrapes alternated between connections {conns:?}, so two replicas scraped it at once"
        );
    }
}

/// The owners of the scrape shards' leases, as the Operations API tells (or the database).
async fn lookout_leases(s: &TestServer) -> Vec<String> {
    let url = s.database_url().expect("a PostgreSQL replica").to_string();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<(Option<String>,)> = sqlx::query_as(
        "SELECT owner FROM leases WHERE name LIKE 'prometheus.scrape.%' AND lease_until > (extract(epoch from now()) * 1000)::bigint",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().filter_map(|r| r.0).collect()
}

lookout_testkit::both!(
    node_exporter_is_scraped_like_prometheus_scrapes_it,
    credentials_redirects_limits_and_the_api,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_scrape_each_target_once() {
    two_replicas_scrape_each_target_once().await;
}
