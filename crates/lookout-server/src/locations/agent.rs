//! The agent protocol's server side (`/api/v1/agent/…`), authenticated by a location's token:
//! the long-poll for an agent's assignments and the results batches. See
//! [`lookout_uptime::agent`] for the shapes and the decoder.

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use tokio::sync::Semaphore;
use utoipa::{IntoParams, ToSchema};

use super::service;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;
use lookout_store::locations::{self as lstore, AgentSeen, LocationResult, LocationRow};
use lookout_store::uptime as ustore;
use lookout_store::StoreError;
use lookout_uptime::agent::{self as proto, Assignments, BatchReceipt};
use lookout_uptime::state::{Health, Streaks};
use lookout_uptime::MonitorSpec;

/// The location whose token authenticated the request. Checked with the other request-part
/// extractors, before any body is read: an unknown token is 401, a revoked one 401 with
/// `token_revoked` and a message saying so, so the agent stops instead of retrying. The token
/// is kept (never logged: no `Debug`) so a long-poll can see it revoked or rotated while waiting.
#[derive(Clone)]
pub struct LocationAgent(pub LocationRow, pub AgentToken);

/// The bearer token of an agent request, held only to re-check it; deliberately not `Debug`.
#[derive(Clone)]
pub struct AgentToken(String);

/// Re-reads the token's location: revoked, rotated away or moved to another location since
/// the request was authenticated is `token_revoked`, so a waiting answer never hands monitor
/// specs (credentials included) to a token an admin has just cut off.
async fn still_valid(
    state: &AppState,
    location: &LocationRow,
    token: &AgentToken,
) -> ApiResult<()> {
    match lstore::location_for_token(state.store(), &token.0).await? {
        Some(l) if l.id == location.id && l.revoked_at.is_none() => Ok(()),
        _ => {
            tracing::info!(location = %location.name, "Waiting agent request cut off: its token was revoked or rotated.");
            Err(ApiError::Revoked(format!(
                "the token of location {:?} was revoked or rotated; use the new one",
                location.name
            )))
        }
    }
}

impl FromRequestParts<AppState> for LocationAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized)?
            .trim();
        if !token.starts_with(lstore::TOKEN_PREFIX) {
            return Err(ApiError::Unauthorized);
        }
        match lstore::location_for_token(state.store(), token).await? {
            None => {
                tracing::info!("Agent request with an unknown location token refused.");
                Err(ApiError::Unauthorized)
            }
            Some(l) if l.revoked_at.is_some() => {
                tracing::info!(location = %l.name, "Agent request with a revoked location token refused.");
                Err(ApiError::Revoked(format!(
                    "the token of location {:?} was revoked; ask an admin for a new one (rotate it)",
                    l.name
                )))
            }
            Some(l) => Ok(LocationAgent(l, AgentToken(token.to_string()))),
        }
    }
}

/// Long-polls waiting at once, across the replica: past this, agents are asked to come back.
const MAX_LONG_POLLS: usize = 1_024;
static LONG_POLLS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_LONG_POLLS));
/// How often a waiting agent is noted as seen, ms.
const TOUCH_MS: i64 = 10_000;
/// How often a waiting long-poll looks for a change.
const POLL_STEP: Duration = Duration::from_secs(1);

/// `GET /api/v1/agent/assignments` parameters.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignmentParams {
    /// The agent's id (1 to 100 printable characters).
    pub agent_id: String,
    /// The agent's version.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The version the agent has: the answer waits until the list differs from it.
    #[serde(default)]
    pub version: Option<i64>,
    /// How long to wait for a change: seconds, `30` or `30s` (at most 30; default 0).
    #[serde(default)]
    pub wait: Option<String>,
    /// Results the agent holds, not yet uploaded.
    #[serde(default)]
    pub buffered: Option<u64>,
    /// Results the agent dropped since it started.
    #[serde(default)]
    pub dropped: Option<u64>,
}

fn wait_of(w: Option<&str>) -> ApiResult<Duration> {
    let Some(w) = w else {
        return Ok(Duration::ZERO);
    };
    let secs: u64 = w
        .strip_suffix('s')
        .unwrap_or(w)
        .parse()
        .map_err(|_| ApiError::BadRequest("wait: seconds, such as 30 or 30s".into()))?;
    Ok(Duration::from_secs(secs.min(proto::MAX_WAIT_SECONDS)))
}

fn agent_field(what: &str, v: &str, required: bool) -> ApiResult<()> {
    if (required && v.is_empty())
        || v.len() > proto::MAX_AGENT_FIELD
        || !v.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::BadRequest(format!(
            "{what} must be up to {} printable ASCII characters",
            proto::MAX_AGENT_FIELD
        )));
    }
    Ok(())
}

fn count(n: Option<u64>) -> i64 {
    i64::try_from(n.unwrap_or(0)).unwrap_or(i64::MAX)
}

/// The monitors this agent checks. With `version`, the answer waits (up to `wait`, at most
/// 30 s) until the list differs from that version: a monitor added, changed or removed, or an
/// agent of the pool joining or leaving. Each call counts as the agent being seen.
#[utoipa::path(get, operation_id = "agent_assignments", path = "/api/v1/agent/assignments", tag = "monitors",
    params(AssignmentParams),
    responses((status = 200, description = "The agent's monitors", body = AssignmentsDoc),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn assignments(
    State(state): State<AppState>,
    LocationAgent(location, token): LocationAgent,
    ApiQuery(q): ApiQuery<AssignmentParams>,
) -> ApiResult<impl IntoResponse> {
    agent_field("agent_id", &q.agent_id, true)?;
    let agent_version = q.agent_version.as_deref().unwrap_or("");
    agent_field("agent_version", agent_version, false)?;
    let wait = wait_of(q.wait.as_deref())?;
    let seen = AgentSeen {
        agent_id: &q.agent_id,
        version: agent_version,
        buffered: count(q.buffered),
        dropped: count(q.dropped),
    };
    let _slot = if wait.is_zero() {
        None
    } else {
        Some(LONG_POLLS.try_acquire().map_err(|_| {
            ApiError::Unavailable("too many agents are waiting for assignments".into())
        })?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut last_key = None;
    let mut touched: Option<i64> = None;
    // The specs carry credentials: no cache along the way may keep them.
    let answer = |list: Assignments| ([(header::CACHE_CONTROL, "no-store")], Json(list));
    loop {
        let now = service::clock(&state);
        // Each pass, and so right before answering: a token revoked or rotated while this
        // request waited gets no monitors.
        if touched.is_some() {
            still_valid(&state, &location, &token).await?;
        }
        // Seen at the start, then every TOUCH_MS while waiting: well inside the liveness
        // timeout, without a write a second per waiting agent.
        if touched.is_none_or(|t| now - t >= TOUCH_MS) {
            lstore::touch_agent(state.store(), location.id, &seen, now).await?;
            touched = Some(now);
        }
        let key = service::pool_key(&state, location.id, now).await?;
        if last_key.as_ref() != Some(&key) {
            let list = service::assignments(&state, &location, &q.agent_id, &key.1).await?;
            if q.version != Some(list.version) || tokio::time::Instant::now() >= deadline {
                return Ok(answer(list));
            }
            last_key = Some(key);
        }
        if tokio::time::Instant::now() + POLL_STEP > deadline {
            tokio::time::sleep_until(deadline).await;
            still_valid(&state, &location, &token).await?;
            let key = service::pool_key(&state, location.id, service::clock(&state)).await?;
            let list = service::assignments(&state, &location, &q.agent_id, &key.1).await?;
            return Ok(answer(list));
        }
        tokio::time::sleep(POLL_STEP).await;
    }
}

/// One result in a batch (`lookout_uptime::agent::AgentResult`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AgentResultDoc {
    /// The monitor.
    monitor_id: i64,
    /// When the check was due, ms since the epoch: with the monitor and the location, the
    /// result's identity.
    scheduled_at: i64,
    /// When it ran, ms since the epoch.
    at: i64,
    /// Whether every condition held.
    ok: bool,
    /// Latency, ms.
    latency_ms: Option<f64>,
    /// Why it failed (cut to 1000 characters).
    message: Option<String>,
}

/// A results batch (`lookout_uptime::agent::ResultBatch`), at most 1 MiB and 5000 results.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ResultBatchDoc {
    /// Chosen by the agent; kept when the batch is sent again.
    batch_id: String,
    /// The agent's id.
    agent_id: String,
    /// The agent's version.
    agent_version: Option<String>,
    /// Results the agent still holds after this batch.
    buffered: Option<u64>,
    /// Results the agent dropped since it started.
    dropped: Option<u64>,
    /// The results.
    results: Vec<AgentResultDoc>,
}

/// What a stored batch answers (`lookout_uptime::agent::BatchReceipt`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BatchReceiptDoc {
    /// The batch's id.
    batch_id: String,
    /// Results stored now.
    stored: usize,
    /// Results stored before (a retried batch).
    duplicates: usize,
    /// Results for monitors no longer checked from this location.
    ignored: usize,
}

/// One assigned monitor (`lookout_uptime::agent::Assignment`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AssignmentDoc {
    /// The monitor.
    id: i64,
    /// Its definition, credentials included (the agent needs them to check).
    spec: Object,
    /// Its last change, ms.
    updated_at: i64,
}

/// An agent's assignments (`lookout_uptime::agent::Assignments`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AssignmentsDoc {
    /// Sent back as `version` to wait for the next change.
    version: i64,
    /// The location's name.
    location: String,
    /// Live agents sharing the location's monitors.
    agents: usize,
    /// This agent's share.
    monitors: Vec<AssignmentDoc>,
}

/// Any JSON object (a monitor spec).
type Object = serde_json::Map<String, serde_json::Value>;

/// Stores a batch of results. Each result is stored once (by monitor, location and scheduled
/// time), so a batch sent again is harmless; a malformed batch is refused whole (400, nothing
/// stored). Results for monitors no longer checked from this location are counted as ignored.
#[utoipa::path(post, operation_id = "agent_results", path = "/api/v1/agent/results", tag = "monitors",
    request_body = ResultBatchDoc,
    responses((status = 200, description = "Stored", body = BatchReceiptDoc), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn results(
    State(state): State<AppState>,
    LocationAgent(location, _): LocationAgent,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<BatchReceipt>)> {
    let bytes = axum::body::to_bytes(body, proto::MAX_BATCH_BYTES)
        .await
        .map_err(|_| {
            ApiError::TooLarge(format!(
                "a results batch is at most {} bytes; send fewer results per batch",
                proto::MAX_BATCH_BYTES
            ))
        })?;
    let now = service::clock(&state);
    let batch = proto::decode_batch(&bytes, now).map_err(|e| {
        tracing::info!(location = %location.name, error = %e, "Malformed agent batch refused.");
        ApiError::BadRequest(e)
    })?;
    let mut specs: std::collections::HashMap<i64, Option<MonitorSpec>> = Default::default();
    let mut accepted = Vec::with_capacity(batch.results.len());
    for r in &batch.results {
        if let std::collections::hash_map::Entry::Vacant(slot) = specs.entry(r.monitor_id) {
            let spec = match ustore::get_monitor(state.store(), r.monitor_id).await {
                Ok((m, _)) => serde_json::from_str::<MonitorSpec>(&m.spec)
                    .ok()
                    .filter(|s| s.locations.iter().any(|l| l == &location.name)),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            slot.insert(spec);
        }
        // Past the raw results' retention a result would be pruned at once, and stored again
        // if a late retry brought it back: ignored (and counted so) instead.
        let retained = r.scheduled_at >= now - ustore::results::RAW_RETENTION_MS;
        if retained && specs.get(&r.monitor_id).is_some_and(Option::is_some) {
            accepted.push(LocationResult {
                monitor_id: r.monitor_id,
                scheduled_at: r.scheduled_at,
                at: r.at,
                ok: r.ok,
                latency_us: r.latency_ms.map(|ms| (ms * 1000.0).round() as i64),
                message: r.message.clone(),
            });
        }
    }
    let ignored = batch.results.len() - accepted.len();
    let outcome = lstore::record_batch(state.store(), location.id, &accepted, |c, r| {
        if let Some(Some(spec)) = specs.get(&r.monitor_id) {
            apply_thresholds(c, r.ok, spec);
        }
    })
    .await?;
    lstore::touch_agent(
        state.store(),
        location.id,
        &AgentSeen {
            agent_id: &batch.agent_id,
            version: &batch.agent_version,
            buffered: i64::try_from(batch.buffered).unwrap_or(i64::MAX),
            dropped: i64::try_from(batch.dropped).unwrap_or(i64::MAX),
        },
        now,
    )
    .await?;
    for (monitor, from, to) in &outcome.changes {
        tracing::info!(monitor, location = %location.name, from = %from, to = %to, "Monitor changed health at a location.");
    }
    tracing::debug!(location = %location.name, batch = %batch.batch_id, stored = outcome.stored,
        duplicates = outcome.duplicates, ignored, "Agent batch stored.");
    Ok((
        StatusCode::OK,
        Json(BatchReceipt {
            batch_id: batch.batch_id,
            stored: outcome.stored,
            duplicates: outcome.duplicates,
            ignored,
        }),
    ))
}

/// One location's result applied to its state by the monitor's own thresholds (the same state
/// machine as the replicas' checker).
fn apply_thresholds(c: &mut lstore::LocationCheck, ok: bool, spec: &MonitorSpec) {
    let mut s = Streaks {
        health: Health::parse(&c.health),
        failures: u32::try_from(c.failures).unwrap_or(u32::MAX),
        successes: u32::try_from(c.successes).unwrap_or(u32::MAX),
    };
    s.record(ok, spec.failure_threshold(), spec.success_threshold());
    c.health = s.health.as_str().into();
    c.failures = i64::from(s.failures);
    c.successes = i64::from(s.successes);
}
