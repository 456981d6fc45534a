//! `lookout probe`: an agent that checks monitors from where it runs and reports to a Lookout
//! server, connecting out only (see [`crate::agent`] for the protocol).
//!
//! Three loops share the agent's state: the assignment loop long-polls the server for this
//! agent's monitors; the scheduler runs each monitor's checks on its interval (on a fixed
//! phase per monitor, so every agent of a pool computes the same scheduled times and a
//! takeover never checks a slot twice for good); the uploader posts buffered results in
//! batches. When the server cannot be reached the agent keeps checking from its cached list,
//! buffers results ([`buffer`]) and, after `fallback_after`, calls its fallback webhook once.
//! The buffer and the last assignment list are kept in the state directory ([`state`]), so an
//! agent restarted while the server is down checks on and uploads what it owed once it returns.
//! A revoked or unknown token stops the agent with an error: retrying cannot help.

pub mod buffer;
pub mod state;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::{watch, Semaphore};

use crate::agent::{AgentResult, Assignment, Assignments, ResultBatch, MAX_WAIT_SECONDS};
use crate::{Checker, NetPolicy};
use buffer::Buffer;
use lookout_core::time::now_ms;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The server's base URL (`https://lookout.example.com`).
    pub server: String,
    /// The location's agent token.
    pub token: String,
    /// The location's name (checked against the server's answer).
    pub location: String,
    /// This agent's id within the pool; by default the one kept in the state directory, or
    /// `<host>-<pid>` on the first start.
    pub agent_id: Option<String>,
    /// Where the results journal, the cached assignments and the agent id are kept
    /// (see [`state`]).
    pub state_dir: std::path::PathBuf,
    /// Results kept while the server is unreachable.
    pub buffer: usize,
    /// Checks running at once.
    pub concurrency: usize,
    /// Called once the server has been unreachable for `fallback_after`.
    pub fallback_webhook: Option<String>,
    /// See `fallback_webhook`.
    pub fallback_after: Duration,
    /// The outbound policy for checks and the fallback webhook.
    pub policy: NetPolicy,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The server refused the token (revoked, rotated or wrong).
    #[error("the server refused this agent's token: {0}")]
    Refused(String),
    /// The server's answer names another location than `--location`.
    #[error("{0}")]
    WrongLocation(String),
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// Another agent holds the state directory.
    #[error("{0}")]
    StateDirInUse(String),
}

impl ProbeError {
    /// The process's exit status: 3 only where restarting cannot help and the documented unit
    /// must not restart (the token refused, another location's token); a state directory in
    /// use is 4 (restarted: the other agent may stop), a configuration error 2.
    pub fn exit_code(&self) -> u8 {
        match self {
            ProbeError::Refused(_) | ProbeError::WrongLocation(_) => 3,
            ProbeError::Config(_) => 2,
            ProbeError::StateDirInUse(_) => 4,
        }
    }
}

/// The agent's version, sent with every request.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Results per batch.
const BATCH: usize = 1_000;
/// How long a request to the server may take beyond a long-poll's wait.
const REQUEST_SLACK: Duration = Duration::from_secs(10);

/// State the loops share.
struct Shared {
    cfg: ProbeConfig,
    /// The agent id in use (given, or kept in the state directory).
    agent_id: String,
    /// `None` when the directory could not be used (memory-only).
    state: Option<state::StateDir>,
    http: reqwest::Client,
    buffer: Mutex<Buffer>,
    /// Since when the server has been unreachable (ms), `None` while it answers.
    unreachable_since: Mutex<Option<i64>>,
}

impl Shared {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.server.trim_end_matches('/'))
    }

    fn reached(&self) {
        let was = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(since) = was {
            tracing::info!(
                down_for_s = (now_ms() - since) / 1000,
                "The server answers again."
            );
        }
    }

    fn unreachable(&self, why: &str) {
        let mut u = self
            .unreachable_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if u.is_none() {
            tracing::warn!(error = %why, "Cannot reach the server; checking on from the cached list and buffering results.");
            *u = Some(now_ms());
        }
    }

    fn counts(&self) -> (u64, u64) {
        let b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        (b.len() as u64, b.dropped())
    }
}

/// What a refusal by the server means for the agent.
async fn refusal(res: reqwest::Response) -> Result<reqwest::Response, ProbeError> {
    if res.status() == StatusCode::UNAUTHORIZED {
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        let msg = body
            .pointer("/error/message")
            .and_then(|m| m.as_str())
            .unwrap_or("unknown token")
            .to_string();
        return Err(ProbeError::Refused(msg));
    }
    Ok(res)
}

/// Runs the agent until the token is refused (an error) or the process is stopped.
pub async fn run(cfg: ProbeConfig) -> Result<(), ProbeError> {
    if !cfg.server.starts_with("http://") && !cfg.server.starts_with("https://") {
        return Err(ProbeError::Config(
            "--server must be an http:// or https:// URL".into(),
        ));
    }
    let http = reqwest::Client::builder()
        .user_agent(format!("lookout-probe/{VERSION}"))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ProbeError::Config(format!("HTTP client: {e}")))?;
    // The state directory makes restarts lose nothing, but checks matter more: when it cannot
    // be used (read-only disk, wrong owner, full), the agent says so and runs memory-only.
    // Only a directory another agent holds stops it (two agents would share one journal).
    let dir = match state::StateDir::open(&cfg.state_dir) {
        Ok(d) => Some(d),
        Err(state::OpenError::InUse(m)) => return Err(ProbeError::StateDirInUse(m)),
        Err(state::OpenError::Unusable(m)) => {
            tracing::error!(error = %m, "The state directory cannot be used; results are kept in memory only and a restart loses them.");
            None
        }
    };
    let journal = dir.as_ref().and_then(|d| match state::Journal::open(d) {
        Ok(j) => Some(j),
        Err(e) => {
            tracing::error!(error = %e, state_dir = %cfg.state_dir.display(), "The results journal cannot be opened; results are kept in memory only and a restart loses them.");
            None
        }
    });
    let buffer = match journal {
        Some((journal, owed)) => Buffer::with_journal(cfg.buffer, journal, owed),
        None => Buffer::new(cfg.buffer),
    };
    let agent_id = match &cfg.agent_id {
        Some(id) => id.clone(),
        None => match &dir {
            Some(d) => d.agent_id(default_agent_id),
            None => default_agent_id(),
        },
    };
    // The server refuses (400) every request with an id it does not take: better to say so
    // now than to run without ever reporting.
    if !crate::agent::valid_agent_field(&agent_id) {
        let from = if cfg.agent_id.is_some() {
            "--agent-id".to_string()
        } else {
            format!("the agent id kept in {}", cfg.state_dir.display())
        };
        return Err(ProbeError::Config(format!(
            "{from} must be 1 to {} printable ASCII characters (no spaces): {agent_id:?}",
            crate::agent::MAX_AGENT_FIELD
        )));
    }
    let cached = dir.as_ref().and_then(|d| d.assignments(&cfg.location));
    let shared = Arc::new(Shared {
        buffer: Mutex::new(buffer),
        agent_id,
        state: dir,
        unreachable_since: Mutex::new(None),
        http,
        cfg,
    });
    // Checks start from the cached list at once: the server may be the thing that is down.
    if let Some(c) = &cached {
        tracing::info!(
            monitors = c.len(),
            "Checking from the assignments cached before the restart until the server answers."
        );
    }
    let (tx, rx) = watch::channel(cached.unwrap_or_default());
    tracing::info!(location = %shared.cfg.location, agent = %shared.agent_id, state_dir = %shared.cfg.state_dir.display(), "Probe agent starting.");
    let checker = Arc::new(Checker::new(shared.cfg.policy.clone()));
    let scheduler = tokio::spawn(schedule(shared.clone(), checker, rx));
    let mut uploader = tokio::spawn(upload(shared.clone()));
    let fallback = tokio::spawn(fallback(shared.clone()));
    let persister = tokio::spawn(persist(shared.clone()));
    // A refusal seen by either the long-poll or an upload stops the agent.
    let outcome = tokio::select! {
        r = assignments(shared.clone(), tx) => r,
        r = &mut uploader => r.unwrap_or(Ok(())),
    };
    // Whatever ended the assignment loop ends the agent; results still buffered are lost with
    // a refused token anyway (the server would refuse them too).
    scheduler.abort();
    uploader.abort();
    fallback.abort();
    persister.abort();
    shared
        .buffer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sync();
    if let (Err(ProbeError::Refused(_)), Some(d)) = (&outcome, &shared.state) {
        // The cached specs hold monitors' credentials; a refused token has no claim to them.
        d.forget_assignments();
    }
    outcome
}

/// Long-polls for this agent's monitors and publishes each new list.
async fn assignments(
    shared: Arc<Shared>,
    tx: watch::Sender<Vec<Assignment>>,
) -> Result<(), ProbeError> {
    let mut version: Option<i64> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let (buffered, dropped) = shared.counts();
        let mut q = vec![
            ("agent_id", shared.agent_id.clone()),
            ("agent_version", VERSION.to_string()),
            ("buffered", buffered.to_string()),
            ("dropped", dropped.to_string()),
        ];
        if let Some(v) = version {
            q.push(("version", v.to_string()));
            q.push(("wait", format!("{}s", MAX_WAIT_SECONDS - 5)));
        }
        let res = shared
            .http
            .get(shared.url("/api/v1/agent/assignments"))
            .bearer_auth(&shared.cfg.token)
            .query(&q)
            .timeout(Duration::from_secs(MAX_WAIT_SECONDS) + REQUEST_SLACK)
            .send()
            .await;
        let res = match res {
            Ok(r) => refusal(r).await?,
            Err(e) => {
                shared.unreachable(&e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if !res.status().is_success() {
            shared.unreachable(&format!("assignments answered {}", res.status()));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            continue;
        }
        let list: Assignments = match res.json().await {
            Ok(l) => l,
            Err(e) => {
                shared.unreachable(&format!("assignments did not parse: {e}"));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        shared.reached();
        backoff = Duration::from_secs(1);
        if list.location != shared.cfg.location {
            return Err(ProbeError::WrongLocation(format!(
                "this token belongs to location {:?}, not {:?} (--location)",
                list.location, shared.cfg.location
            )));
        }
        if version != Some(list.version) {
            tracing::info!(
                monitors = list.monitors.len(),
                agents = list.agents,
                version = list.version,
                "Assignments received."
            );
            version = Some(list.version);
            if shared.state.is_some() {
                // A file write and fsync: off the runtime's two threads.
                let (s, monitors) = (shared.clone(), list.monitors.clone());
                tokio::task::spawn_blocking(move || {
                    if let Some(d) = &s.state {
                        d.keep_assignments(&s.cfg.location, &monitors);
                    }
                });
            }
            tx.send_replace(list.monitors);
        }
    }
}

/// `<host>-<pid>`: an agent id for a first start without `--agent-id`.
fn default_agent_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "agent".into());
    format!("{host}-{}", std::process::id())
}

/// A monitor's fixed offset within its interval (the same function as the replicas' runner, so
/// scheduled times are comparable across agents).
fn phase(id: i64, every: i64) -> i64 {
    (id.wrapping_mul(2_654_435_761)).rem_euclid(every.max(1))
}

/// The latest on-phase time at or before `now`.
fn slot_at_or_before(id: i64, every: i64, now: i64) -> i64 {
    let p = phase(id, every);
    let base = now - now.rem_euclid(every) + p;
    if base <= now {
        base
    } else {
        base - every
    }
}

struct Scheduled {
    assignment: Arc<Assignment>,
    every: i64,
    generation: u64,
    /// Whether this monitor's previous check still runs.
    running: Running,
}

/// A monitor's "check in progress" flag: a slot that comes due while the previous check still
/// runs (a slow target, or every permit busy) is skipped, not stacked up behind it.
#[derive(Clone, Default)]
struct Running(Arc<std::sync::atomic::AtomicBool>);

/// Held while a check runs; clears the flag when dropped (finished, or the task ended).
struct RunGuard(Arc<std::sync::atomic::AtomicBool>);

impl Running {
    fn try_start(&self) -> Option<RunGuard> {
        (!self.0.swap(true, std::sync::atomic::Ordering::AcqRel)).then(|| RunGuard(self.0.clone()))
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Runs every assigned monitor's checks on its schedule. A monitor newly assigned is checked at
/// once for its current slot (if the agent it came from already did, the server keeps one).
async fn schedule(
    shared: Arc<Shared>,
    checker: Arc<Checker>,
    mut rx: watch::Receiver<Vec<Assignment>>,
) {
    let permits = Arc::new(Semaphore::new(shared.cfg.concurrency.max(1)));
    let mut monitors: HashMap<i64, Scheduled> = HashMap::new();
    let mut heap: BinaryHeap<Reverse<(i64, i64, u64)>> = BinaryHeap::new();
    let mut generation = 0u64;
    // Slots skipped because the monitor's previous check still ran, since the agent started.
    let mut skipped = 0u64;
    // `changed()` marks the value seen when it returns, so a change it reports is remembered.
    let mut reload = true;
    loop {
        if reload || rx.has_changed().unwrap_or(false) {
            reload = false;
            let list = rx.borrow_and_update().clone();
            let now = now_ms();
            let mut next = HashMap::new();
            for a in list {
                let every = i64::from(a.spec.interval_seconds.max(1)) * 1000;
                match monitors.remove(&a.id) {
                    Some(s) if s.assignment.updated_at == a.updated_at => {
                        next.insert(a.id, s);
                    }
                    _ => {
                        generation += 1;
                        let due = slot_at_or_before(a.id, every, now);
                        heap.push(Reverse((now.max(due), a.id, generation)));
                        next.insert(
                            a.id,
                            Scheduled {
                                assignment: Arc::new(a),
                                every,
                                generation,
                                running: Running::default(),
                            },
                        );
                    }
                }
            }
            monitors = next;
        }
        let now = now_ms();
        while let Some(Reverse((at, id, gen))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            let Some(s) = monitors.get(&id) else { continue };
            if s.generation != gen {
                continue;
            }
            let scheduled_at = slot_at_or_before(id, s.every, at);
            heap.push(Reverse((scheduled_at + s.every, id, gen)));
            let Some(guard) = s.running.try_start() else {
                skipped += 1;
                tracing::warn!(
                    monitor = id,
                    skipped_total = skipped,
                    "A check came due while the previous one still ran; this slot is skipped."
                );
                continue;
            };
            let (shared, checker, permits) = (shared.clone(), checker.clone(), permits.clone());
            let a = s.assignment.clone();
            tokio::spawn(async move {
                let _running = guard;
                let Ok(_p) = permits.acquire_owned().await else {
                    return;
                };
                let started = now_ms();
                let o = checker.check(&a.spec).await;
                let r = AgentResult {
                    monitor_id: a.id,
                    scheduled_at,
                    at: started,
                    ok: o.ok,
                    latency_ms: Some(o.latency_ms),
                    message: o.failure,
                };
                shared
                    .buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(r);
            });
        }
        let wait = heap
            .peek()
            .map(|Reverse((at, _, _))| (at - now_ms()).clamp(1, 1000))
            .unwrap_or(1000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                reload = true;
            }
        }
    }
}

/// A batch's id, from what it holds: the same results sent again (a retry, or after a
/// restart, from the journal) carry the same id.
///
/// A digest of the agent id and every result's identity, cut to 32 hex characters: a fixed
/// length, so a long agent id never pushes it past the server's 100-character limit.
fn batch_id(agent: &str, sent: &[AgentResult]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(agent.as_bytes());
    h.update([0]);
    for r in sent {
        h.update(r.monitor_id.to_le_bytes());
        h.update(r.scheduled_at.to_le_bytes());
    }
    let mut id = hex::encode(h.finalize());
    id.truncate(32);
    id
}

/// Whether a 400's answer names a field of the agent's own (not of a result): then every
/// batch would be refused alike, and dropping results would lose them all.
fn blames_the_agent(answer: &str) -> bool {
    ["agent_id", "agent_version", "batch_id"]
        .iter()
        .any(|f| answer.contains(f))
}

/// Writes the results journal out once a second (an fsync), so a crash or a restart loses at
/// most the last second of checks.
async fn persist(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // An fsync (or a compaction's rewrite) can take long on a slow disk: on a blocking
        // thread, not one of the runtime's two.
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            s.buffer.lock().unwrap_or_else(|p| p.into_inner()).sync();
        })
        .await;
    }
}

/// Posts buffered results in batches, oldest first, every second (at once while more wait).
async fn upload(shared: Arc<Shared>) -> Result<(), ProbeError> {
    // Results per batch: halved on a 413 (a server with a smaller body budget), so one batch
    // too large never blocks every later upload; grows back after each stored batch.
    let mut size = BATCH;
    loop {
        let sent = shared
            .buffer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek(size);
        if sent.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let (buffered, dropped) = shared.counts();
        let batch = ResultBatch {
            batch_id: batch_id(&shared.agent_id, &sent),
            agent_id: shared.agent_id.clone(),
            agent_version: VERSION.into(),
            buffered: buffered.saturating_sub(sent.len() as u64),
            dropped,
            results: sent.clone(),
        };
        let res = shared
            .http
            .post(shared.url("/api/v1/agent/results"))
            .bearer_auth(&shared.cfg.token)
            .json(&batch)
            .timeout(REQUEST_SLACK * 3)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                shared.reached();
                size = (size * 2).min(BATCH);
                shared
                    .buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .confirm(&sent);
                if sent.len() < BATCH {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE && sent.len() > 1 => {
                shared.reached();
                size = next_size_after_413(sent.len());
                tracing::warn!(
                    results = sent.len(),
                    next = size,
                    "The server refused a batch as too large; sending smaller ones."
                );
            }
            Ok(r)
                if r.status() == StatusCode::BAD_REQUEST
                    || r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                let body = r.text().await.unwrap_or_default();
                if blames_the_agent(&body) {
                    // The agent's own fields (its id, version or the batch id): no result is at
                    // fault and every batch would be refused alike, so the results are kept.
                    tracing::error!(results = sent.len(), answer = %body,
                        "The server refuses this agent's batches (its id or version); results kept, retrying in 30 s. Fix --agent-id.");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    continue;
                }
                // The server will never take this batch: keeping it would block every later one.
                tracing::error!(results = sent.len(), answer = %body, "The server refused a batch as malformed; dropped.");
                shared
                    .buffer
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .confirm(&sent);
            }
            Ok(r) => {
                let r = refusal(r).await?;
                shared.unreachable(&format!("results answered {}", r.status()));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                shared.unreachable(&e.to_string());
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Calls the fallback webhook once per outage longer than `fallback_after`, and once more when
/// the server answers again.
async fn fallback(shared: Arc<Shared>) {
    let Some(url) = shared.cfg.fallback_webhook.clone() else {
        return;
    };
    let client = lookout_outbound::HttpClient::new(
        Arc::new(shared.cfg.policy.clone()),
        Duration::from_secs(10),
        &format!("lookout-probe/{VERSION}"),
    );
    let mut announced: Option<i64> = None;
    // Events decided but not yet delivered, oldest first: an outage announcement is only "sent"
    // once the webhook took it (2xx).
    let mut queue = WebhookQueue::default();
    let mut failures = 0u32;
    let mut next_try = 0i64;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let since = *shared
            .unreachable_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match (since, announced) {
            (Some(s), None) if now_ms() - s >= shared.cfg.fallback_after.as_millis() as i64 => {
                announced = Some(s);
                queue.push_back(json!({"event": "lookout.unreachable", "location": shared.cfg.location,
                       "agent_id": shared.agent_id, "server": shared.cfg.server, "since_ms": s,
                       "message": format!("Lookout at {} is unreachable from location {} (agent {})",
                                          shared.cfg.server, shared.cfg.location, shared.agent_id)}));
            }
            (None, Some(s)) => {
                announced = None;
                queue.push_back(
                    json!({"event": "lookout.reachable", "location": shared.cfg.location,
                       "agent_id": shared.agent_id, "server": shared.cfg.server, "since_ms": s,
                       "message": format!("Lookout at {} is reachable again from location {}",
                                          shared.cfg.server, shared.cfg.location)}),
                );
            }
            _ => {}
        }
        let Some(event) = queue.front() else { continue };
        if now_ms() < next_try {
            continue;
        }
        let name = event.get("event").cloned().unwrap_or_default();
        let done = match client.post(&url) {
            Ok(req) => match req.json(&event).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let done = queue.answered(status);
                    if (200..300).contains(&status) {
                        tracing::info!(status, event = %name, "Fallback webhook called.");
                    } else if done {
                        tracing::error!(status, event = %name, "Fallback webhook refused the call for good (check its URL); event dropped.");
                    } else {
                        tracing::warn!(status, event = %name, "Fallback webhook refused the call; trying again.");
                    }
                    done
                }
                Err(e) => {
                    tracing::warn!(error = %lookout_outbound::describe(&e), event = %name, "Fallback webhook failed; trying again.");
                    false
                }
            },
            Err(e) => {
                // The policy will not change while the agent runs: trying again cannot help.
                tracing::warn!(error = %e, "Fallback webhook refused by the outbound policy.");
                queue.answered(403)
            }
        };
        if done {
            failures = 0;
            next_try = 0;
        } else {
            failures += 1;
            next_try = now_ms() + fallback_backoff_ms(failures);
        }
    }
}

/// Fallback webhook events waiting for delivery, oldest first. Bounded: a webhook that never
/// takes them (2 events per outage) must not grow the agent's memory; the oldest are dropped and
/// their number sent as `missed_events` with the next event, until one is delivered.
#[derive(Debug, Default)]
struct WebhookQueue {
    events: std::collections::VecDeque<serde_json::Value>,
    /// Events dropped (for room, or refused for good) since the last delivery.
    missed: u64,
}

/// Most fallback webhook events kept waiting.
const WEBHOOK_QUEUE: usize = 8;

impl WebhookQueue {
    fn push_back(&mut self, event: serde_json::Value) {
        if self.events.len() >= WEBHOOK_QUEUE {
            self.events.pop_front();
            self.missed += 1;
        }
        self.events.push_back(event);
    }

    /// The next event to send, with the count of events missed before it.
    fn front(&self) -> Option<serde_json::Value> {
        let mut e = self.events.front()?.clone();
        if let (true, Some(o)) = (self.missed > 0, e.as_object_mut()) {
            o.insert("missed_events".into(), json!(self.missed));
        }
        Some(e)
    }

    /// Records the webhook's answer to the front event; whether it is done with (delivered, or
    /// refused for good: a 4xx other than 408 and 429, which no retry changes).
    fn answered(&mut self, status: u16) -> bool {
        if (200..300).contains(&status) {
            self.events.pop_front();
            self.missed = 0;
            true
        } else if (400..500).contains(&status) && status != 408 && status != 429 {
            self.events.pop_front();
            self.missed += 1;
            true
        } else {
            false
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.events.len()
    }
}

/// How long to wait before the next try after `failures` failed calls of the fallback webhook:
/// doubling from 2 s, at most 5 minutes.
fn fallback_backoff_ms(failures: u32) -> i64 {
    (2_000i64 << failures.saturating_sub(1).min(8)).min(300_000)
}

/// The batch size after a 413 for a batch of `sent` results: half, at least one.
fn next_size_after_413(sent: usize) -> usize {
    (sent / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_queue_stays_bounded_and_counts_what_it_missed() {
        let mut q = WebhookQueue::default();
        // Outage after outage against a webhook that always answers 500.
        for i in 0..(3 * WEBHOOK_QUEUE) {
            q.push_back(json!({"event": "lookout.unreachable", "n": i}));
            assert!(!q.answered(500));
            assert!(q.len() <= WEBHOOK_QUEUE);
        }
        assert_eq!(q.len(), WEBHOOK_QUEUE);
        let next = q.front().unwrap();
        assert_eq!(next["n"], 2 * WEBHOOK_QUEUE);
        assert_eq!(next["missed_events"], 2 * WEBHOOK_QUEUE);
        // Delivered: the count starts again.
        assert!(q.answered(204));
        assert!(q.front().unwrap().get("missed_events").is_none());
        // Refused for good (404) is dropped; 429 is tried again.
        assert!(!q.answered(429));
        assert!(q.answered(404));
        assert_eq!(q.len(), WEBHOOK_QUEUE - 2);
        assert_eq!(q.front().unwrap()["missed_events"], 1);
    }

    #[test]
    fn a_batch_id_is_short_whatever_the_agent_id_and_names_its_results() {
        let long = "a".repeat(100);
        let results: Vec<_> = (0..3).map(buffer::sample).collect();
        let id = batch_id(&long, &results);
        assert_eq!(id.len(), 32);
        assert!(crate::agent::valid_agent_field(&id));
        assert_eq!(id, batch_id(&long, &results), "a retry carries the same id");
        assert_ne!(id, batch_id(&long, &results[..2]));
        assert_ne!(id, batch_id("b", &results));
        assert!(!crate::agent::valid_agent_field(&"a".repeat(101)));
        assert!(!crate::agent::valid_agent_field("my agent"));
        assert!(blames_the_agent(
            r#"{"message":"agent_id must be 1 to 100 printable ASCII characters"}"#
        ));
        assert!(!blames_the_agent(
            r#"{"message":"results[0].monitor_id must be positive"}"#
        ));
    }

    #[test]
    fn retries_back_off_and_a_too_large_batch_is_halved() {
        assert_eq!(fallback_backoff_ms(1), 2_000);
        assert_eq!(fallback_backoff_ms(2), 4_000);
        assert_eq!(fallback_backoff_ms(30), 300_000);
        assert_eq!(next_size_after_413(1_000), 500);
        assert_eq!(next_size_after_413(1), 1);
    }

    #[test]
    fn a_slot_is_skipped_while_the_previous_check_runs() {
        let r = Running::default();
        let first = r.try_start().expect("nothing runs yet");
        assert!(r.try_start().is_none(), "overlapping slot must be skipped");
        drop(first);
        assert!(
            r.try_start().is_some(),
            "the next slot runs once the check ended"
        );
    }

    #[test]
    fn slots_are_on_the_monitor_phase() {
        let every = 60_000;
        let now = 1_800_000_012_345;
        let s = slot_at_or_before(7, every, now);
        assert!(s <= now && now - s < every);
        assert_eq!(s.rem_euclid(every), phase(7, every));
        assert_eq!(slot_at_or_before(7, every, s), s);
    }
}
