//! Self-observability: `/healthz`, `/readyz`, Prometheus text at `/metrics`, and the middleware
//! that counts and times every HTTP request by route and status.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::state::AppState;

/// Latency buckets in seconds: fine below 100 ms where the API lives, coarse above.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("lookout_storage_commit_batch_writes".into()),
                        &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0],
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first (tests); ours still renders.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Counts and times each request under its route pattern (never the raw path: ids in paths
/// would create a time series per id).
///
/// Every label is bounded: the route is a pattern of the router or `unmatched`, the method one of
/// the standard nine or `other`, the status a number below 1000. The exporter keeps every series
/// it has seen for the life of the process, so a label taken from the request as sent (a made-up
/// method such as `XYZ123`) would let any client grow memory and `/metrics` without bound.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = method_label(req.method());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("lookout_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("lookout_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// The `method` label: a standard method by name, anything else as `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// How long `/readyz` waits for storage before answering 503: a load balancer's probe must get
/// an answer, never hang (it did through a database outage).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1_500);

/// `GET /readyz`: storage answers, takes writes (this replica's heartbeat, a write, succeeded
/// within the last seconds) and migrations are applied; 503 otherwise, within [`READY_TIMEOUT`].
pub async fn readyz(State(state): State<AppState>) -> Response {
    let backend = state.store().backend().name();
    // The body names a category only; the storage error itself (which can carry the database
    // user or host) goes to the log, since anyone can ask this route.
    let unavailable = |reason: &'static str, detail: String| {
        tracing::warn!(reason, detail = %detail, "Not ready.");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({ "status": "unavailable", "storage": backend, "reason": reason })),
        )
            .into_response()
    };
    if let Some(Err(why)) = state.cluster().map(crate::cluster::Cluster::ready) {
        return unavailable("storage does not take writes", why);
    }
    let probe = async {
        state.store().ping().await?;
        state.store().schema_version().await
    };
    match tokio::time::timeout(READY_TIMEOUT, probe).await {
        Ok(Ok(v)) if v >= lookout_store::SCHEMA_VERSION => Json(json!({
            "status": "ready",
            "storage": backend,
            "schema_version": v,
            "replica": state.cluster().map(|c| c.name().to_string()),
            // How long this replica's heartbeats have succeeded without a break: a replica cut
            // off from the database asks it, to tell a partition from an outage that just ended.
            "healthy_ms": state.cluster().and_then(crate::cluster::Cluster::healthy_for)
                .map(|d| d.as_millis() as u64),
        }))
        .into_response(),
        Ok(Ok(v)) => unavailable(
            "the schema is older than this build's",
            format!("schema version {v}"),
        ),
        Ok(Err(e)) => unavailable("storage does not answer", e.to_string()),
        Err(_) => unavailable("storage does not answer", "no answer within 1.5 s".into()),
    }
}

/// `GET /metrics`: Prometheus text exposition, `lookout_` prefix.
pub async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("lookout_write_queue_depth").set(state.writes().depth() as f64);
    if let Some(rss) = resident_bytes() {
        metrics::gauge!("lookout_process_resident_memory_bytes").set(rss as f64);
    }
    let mut text = state.metrics().render();
    text.push_str(&crate::operations::metrics_text(&state).await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This process's resident set size, from `/proc` (Linux only; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}
