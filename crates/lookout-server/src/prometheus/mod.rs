//! Prometheus compatibility under `/prometheus` (a client's base URL is
//! `http://host:8800/prometheus`, as with Mimir): remote write in ([`write`]), the HTTP API's
//! series, labels, label values and metadata out ([`read`]), PromQL instant and range queries
//! ([`promql`]), the metrics explorer page ([`ui`]), and the store's compaction and retention
//! jobs.
//!
//! **Who may do what, and which project the data is in.** Credentials come as Prometheus sends
//! them: `Authorization: Bearer <secret>` (`authorization:` / `bearer_token`) or basic auth
//! (`basic_auth:`, the secret as password; a username alone is taken too).
//! - A project's **DSN public key** may only write, into that project.
//! - An **API token** may write with the member role or above and read with any role. It names
//!   the project with the `X-Scope-OrgID` header (Mimir's tenant header; a project id or slug)
//!   or the `project` query parameter; without either, the first project.
//! - A signed-in **UI session** may read (GET), for the pages.

pub mod promql;
pub mod read;
pub mod rules;
pub mod scrape;
pub mod ui;
pub mod write;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::prom::chunk;
use lookout_store::prom::compact::{self, Fence};
use lookout_store::prom::tiers::{self, Retention};
use lookout_store::StoreError;
use serde_json::json;

use crate::state::AppState;

/// The routes, merged into the main listener's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/prometheus/api/v1/write", post(write::remote_write))
        .route(
            "/prometheus/api/v1/query",
            get(promql::instant).post(promql::instant),
        )
        .route(
            "/prometheus/api/v1/query_range",
            get(promql::range).post(promql::range),
        )
        .route(
            "/prometheus/api/v1/series",
            get(read::series).post(read::series),
        )
        .route(
            "/prometheus/api/v1/labels",
            get(read::labels).post(read::labels),
        )
        .route(
            "/prometheus/api/v1/label/{name}/values",
            get(read::label_values),
        )
        .route(
            "/prometheus/api/v1/metadata",
            get(read::metadata).post(read::metadata),
        )
        .merge(rules::routes())
}

/// The metrics explorer page.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/explore/metrics", get(ui::explorer))
        .route("/explore/metrics/targets", get(scrape::ui::targets))
        .route("/explore/metrics/targets/jobs", post(scrape::ui::save_job))
        .route(
            "/explore/metrics/targets/jobs/new",
            get(scrape::ui::new_job),
        )
        .route(
            "/explore/metrics/targets/jobs/{name}",
            get(scrape::ui::edit_job),
        )
        .route(
            "/explore/metrics/targets/jobs/{name}/delete",
            post(scrape::ui::delete_job),
        )
        .merge(rules::pages())
}

/// The scrape jobs and targets in the JSON API.
pub fn api() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(scrape::api::list))
        .routes(routes!(scrape::api::put, scrape::api::delete))
        .routes(routes!(scrape::api::targets))
}

/// An answer in Prometheus's error shape: `{"status":"error","errorType":…,"error":…}`.
#[derive(Debug)]
pub struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl PromError {
    /// 400 `bad_data`.
    pub fn bad_data(message: impl Into<String>) -> Self {
        PromError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
            retry_after: None,
        }
    }

    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        PromError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    fn unauthorized() -> Self {
        PromError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <API token or DSN key>, or basic auth with it as password",
        )
    }

    /// 503 with `Retry-After`: the write queue or the ingest budget is full.
    pub fn busy(message: impl Into<String>) -> Self {
        PromError {
            retry_after: Some(1),
            ..PromError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }
}

impl From<StoreError> for PromError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded | StoreError::ShuttingDown => {
                PromError::busy("the server is busy; retry later")
            }
            other => {
                tracing::error!(error = %other, "Prometheus request failed in storage.");
                PromError {
                    retry_after: Some(5),
                    ..PromError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "internal",
                        "storage unavailable",
                    )
                }
            }
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        if self.status.is_client_error() {
            tracing::info!(status = self.status.as_u16(), reason = %self.message, "Prometheus request refused.");
        }
        let body = json!({"status": "error", "errorType": self.kind, "error": self.message});
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

/// What a request may do, and in which project.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The project read or written.
    pub project: i64,
    /// Whether it may write.
    pub write: bool,
    /// Whether it may read.
    pub read: bool,
}

/// The secrets a request carries: the bearer token, or basic auth's password then username.
fn secrets(headers: &HeaderMap) -> Result<Vec<String>, PromError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(vec![]);
    };
    let value = value.to_str().map_err(|_| PromError::unauthorized())?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(vec![rest.to_string()]);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest).ok_or_else(PromError::unauthorized)?;
        let text = String::from_utf8(decoded).map_err(|_| PromError::unauthorized())?;
        let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
        return Ok([pass, user]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect());
    }
    Err(PromError::unauthorized())
}

/// Standard base64 (padding optional); `None` for anything else. Eighteen lines instead of a
/// dependency: basic auth is the only base64 Lookout reads.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() > 4096 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The project an API token or session names (`X-Scope-OrgID`, else `?project=`, else the
/// first project).
async fn named_project(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<i64, PromError> {
    let header = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let param = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "project")
            .map(|(_, v)| v.into_owned())
    });
    crate::api::scope::project_of(state, header.or(param).as_deref())
        .await
        .map_err(project_error)
}

/// Only a project that does not exist is the sender's fault (400, dropped by Prometheus); a
/// database blip is 503 so that Prometheus retries instead of losing the batch.
fn project_error(e: crate::error::ApiError) -> PromError {
    match e {
        crate::error::ApiError::Validation(m) => PromError::bad_data(m),
        other => {
            tracing::warn!(error = %other, "Prometheus request: project lookup failed.");
            PromError {
                retry_after: Some(5),
                ..PromError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage unavailable; retry later",
                )
            }
        }
    }
}

/// Authenticates a request before its body is read (see the module documentation).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    want_write: bool,
) -> Result<Access, PromError> {
    let secrets = secrets(headers)?;
    for secret in &secrets {
        if want_write {
            match state.ingest_keys().lookup(state, secret, now_ms()).await {
                Ok(Some((project, _))) => {
                    return Ok(Access {
                        project,
                        write: true,
                        read: false,
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(t) = lookout_store::tenancy::token_for_secret(state.store(), secret).await? {
            let project = named_project(state, headers, query).await?;
            let access = Access {
                project,
                write: t.role >= Role::Member,
                read: true,
            };
            if want_write && !access.write {
                return Err(PromError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "writing metrics needs the member role",
                ));
            }
            return Ok(access);
        }
    }
    if secrets.is_empty() && !want_write {
        let parts = {
            let mut req = axum::http::Request::new(());
            *req.headers_mut() = headers.clone();
            req.into_parts().0
        };
        if let Ok(Some(crate::auth::Caller::Session(_))) = crate::auth::caller(state, &parts).await
        {
            let project = named_project(state, headers, query).await?;
            return Ok(Access {
                project,
                write: false,
                read: true,
            });
        }
    }
    Err(PromError::unauthorized())
}

/// How long raw samples are kept: `LOOKOUT_PROMETHEUS_RETENTION_DAYS` (1 to 3650), else 15 days,
/// Prometheus's own default.
pub fn retention_ms() -> i64 {
    tier_retention().raw_ms
}

/// How long each resolution is kept: raw samples (`LOOKOUT_PROMETHEUS_RETENTION_DAYS`, else 15
/// days), 5-minute aggregates (`LOOKOUT_PROMETHEUS_RETENTION_5M_DAYS`, else 90 days) and
/// 1-hour aggregates (`LOOKOUT_PROMETHEUS_RETENTION_1H_DAYS`, else 365 days), each at most 3650.
pub fn tier_retention() -> Retention {
    retention_from(&|var| std::env::var(var).ok())
}

/// [`tier_retention`] from `env`. A coarser resolution is kept at least as long as a finer one
/// (a shorter setting is raised to it): its buckets are what is left once the finer ones go.
fn retention_from(env: &dyn Fn(&str) -> Option<String>) -> Retention {
    const DAY: i64 = 86_400_000;
    let days = |var: &str, default: i64, min: i64| {
        env(var)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
            .clamp(min, 3650)
    };
    let raw = days("LOOKOUT_PROMETHEUS_RETENTION_DAYS", 15, 1);
    let m5 = days("LOOKOUT_PROMETHEUS_RETENTION_5M_DAYS", 90, raw);
    let h1 = days("LOOKOUT_PROMETHEUS_RETENTION_1H_DAYS", 365, m5);
    Retention {
        raw_ms: raw * DAY,
        m5_ms: m5 * DAY,
        h1_ms: h1 * DAY,
    }
}

/// How long a head row waits before compaction: `LOOKOUT_PROMETHEUS_COMPACT_AFTER_MS` (tests and
/// the bench set it low), else [`compact::SETTLE_MS`].
fn settle_ms() -> i64 {
    std::env::var("LOOKOUT_PROMETHEUS_COMPACT_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(compact::SETTLE_MS, |v| v.max(0))
}

/// The chunk layout compaction writes: the old one while a live replica runs another version
/// (a rolling upgrade: a replica from before the layout's version byte would refuse the new
/// chunks on read, and quarantine them when merging late samples), else the current one.
async fn chunk_layout(store: &lookout_store::Store) -> lookout_store::Result<chunk::Layout> {
    let (now, replicas) = lookout_store::cluster::replicas(store).await?;
    let mixed = replicas.iter().any(|r| {
        r.heartbeat_at >= now - crate::cluster::LIVE_MS && r.version != env!("CARGO_PKG_VERSION")
    });
    Ok(if mixed {
        chunk::Layout::V0
    } else {
        chunk::Layout::V1
    })
}

/// Compaction and downsampling every minute (fenced by the job's lease) and retention every ten.
pub fn jobs(bg: &crate::tasks::Background) -> Vec<crate::tasks::PeriodicJob> {
    use std::sync::Arc;
    let store = bg.store.clone();
    let every = std::env::var("LOOKOUT_PROMETHEUS_COMPACT_EVERY_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(60_000, |v| v.max(1_000));
    let compaction = crate::tasks::PeriodicJob {
        id: "prometheus.compact",
        every_ms: every,
        handler: Arc::new(move |job| {
            let store = store.clone();
            Box::pin(async move {
                let fence = Fence {
                    job: job.id.clone(),
                    token: job.fence(),
                };
                let now = now_ms();
                let layout = chunk_layout(&store).await.map_err(|e| e.to_string())?;
                let done = compact::compact_as(&store, Some(&fence), now, settle_ms(), layout)
                    .await
                    .map_err(|e| e.to_string())?;
                if done.head_rows > 0 {
                    tracing::debug!(
                        head_rows = done.head_rows,
                        samples = done.samples,
                        chunks = done.chunks,
                        "Prometheus samples compacted."
                    );
                }
                // Under the same lease: raw blocks past the raw retention become 5-minute and
                // 1-hour aggregates before retention may delete them.
                let tiered = tiers::downsample(&store, Some(&fence), now, retention_ms())
                    .await
                    .map_err(|e| e.to_string())?;
                if tiered.chunks > 0 {
                    tracing::debug!(
                        chunks = tiered.chunks,
                        rows = tiered.rows,
                        "Prometheus blocks downsampled."
                    );
                }
                Ok(())
            })
        }),
    };
    vec![
        compaction,
        crate::tasks::PeriodicJob::on_store(
            "prometheus.scrape.orphans",
            60_000,
            &bg.store,
            |store| async move {
                lookout_store::prom::scrape::forget_orphan_targets(&store)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        ),
        crate::tasks::PeriodicJob::on_store(
            "prometheus.retention",
            600_000,
            &bg.store,
            |store| async move {
                let n = tiers::enforce_retention(&store, now_ms(), &tier_retention())
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::debug!(deleted = n, "Prometheus retention enforced.");
                Ok(())
            },
        ),
    ]
}

/// The scrape shards, placed on the live replicas under fenced leases.
pub fn workers(bg: &crate::tasks::Background) -> Vec<tokio::task::JoinHandle<()>> {
    let ctx = std::sync::Arc::new(scrape::run::ScrapeContext {
        store: bg.store.clone(),
        writes: bg.writes.clone(),
        sealer: bg.sealer.clone(),
        policy: bg.outbound().clone(),
        cluster: bg.cluster.clone(),
    });
    vec![scrape::run::placement(ctx, bg.stop.clone())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_kept_at_least_as_long_as_finer_data() {
        const DAY: i64 = 86_400_000;
        let defaults = retention_from(&|_| None);
        assert_eq!(
            (defaults.raw_ms, defaults.m5_ms, defaults.h1_ms),
            (15 * DAY, 90 * DAY, 365 * DAY)
        );
        let set = |pairs: &'static [(&'static str, &'static str)]| {
            retention_from(&move |var| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == var)
                    .map(|(_, v)| v.to_string())
            })
        };
        // A 5-minute retention below the raw one is raised to it; the 1-hour one follows.
        let r = set(&[
            ("LOOKOUT_PROMETHEUS_RETENTION_DAYS", "30"),
            ("LOOKOUT_PROMETHEUS_RETENTION_5M_DAYS", "7"),
            ("LOOKOUT_PROMETHEUS_RETENTION_1H_DAYS", "20"),
        ]);
        assert_eq!((r.raw_ms, r.m5_ms, r.h1_ms), (30 * DAY, 30 * DAY, 30 * DAY));
        let r = set(&[
            ("LOOKOUT_PROMETHEUS_RETENTION_1H_DAYS", "99999"),
            ("LOOKOUT_PROMETHEUS_RETENTION_5M_DAYS", "soon"),
        ]);
        assert_eq!((r.m5_ms, r.h1_ms), (90 * DAY, 3650 * DAY));
    }

    #[test]
    fn only_a_missing_project_is_the_senders_fault() {
        use crate::error::ApiError;
        let e = project_error(ApiError::Validation("project: no project \"x\"".into()));
        assert_eq!((e.status, e.retry_after), (StatusCode::BAD_REQUEST, None));
        // A database blip must be retried by Prometheus, not dropped with a 400.
        let e = project_error(ApiError::Internal("pool timed out".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.retry_after.is_some());
    }

    #[test]
    fn basic_auth_is_decoded() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("a*b").is_none());
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(secrets(&h).unwrap(), vec!["pass", "user"]);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(secrets(&h).unwrap(), vec!["abc"]);
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(secrets(&h).is_err());
    }
}
