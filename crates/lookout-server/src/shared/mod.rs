//! What replicas share through an optional Redis (`--redis-url`, `LOOKOUT_REDIS_URL`): ingest
//! rate limits and the login throttle counted across replicas ([`limits`]), a short-lived cache
//! of NRQL and dashboard answers ([`cache`]), and wake-ups that tell the other replicas' consumers
//! new work was committed ([`wake`]).
//!
//! Redis never holds durable state: everything here is an optimisation or a tighter limit, and
//! each use has a per-replica fallback. Every call has a short deadline; the first failure opens
//! a breaker for [`BREAKER`], during which nothing waits on Redis at all (a stopped or hanging
//! Redis costs one deadline, then nothing), and the next call after it tries again. The state is
//! shown on `/metrics` (`lookout_redis_up`) and the Operations page.

pub mod cache;
pub mod identity_limits;
pub mod limits;
pub mod wake;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one Redis call may take before the replica stops waiting and falls back. Loopback
/// or same-rack Redis answers in well under a millisecond; anything slower than this is down for
/// our purposes, and an ingest request must not wait on it.
const DEADLINE: Duration = Duration::from_millis(250);
/// How long Redis is left alone after a failure before the next call tries it again.
const BREAKER: Duration = Duration::from_secs(2);

/// This process's link to Redis, or none (the default: everything per replica).
#[derive(Clone, Default)]
pub struct Shared {
    link: Option<Arc<Link>>,
}

struct Link {
    client: redis::Client,
    conn: ConnectionManager,
    /// When the process started; the breaker's times are offsets from it.
    epoch: Instant,
    /// Calls are skipped until this offset (ms since `epoch`).
    closed_until_ms: AtomicU64,
    /// Whether the last call succeeded (for `/metrics` and the log's state changes).
    up: AtomicBool,
    /// Where Redis is, without a password (for the log and the Operations page).
    shown: String,
}

static GLOBAL: OnceLock<Shared> = OnceLock::new();

/// The process's link, set once by `serve` ([`install`]); none in handler tests.
pub fn get() -> &'static Shared {
    GLOBAL.get_or_init(Shared::default)
}

/// Makes `shared` the process's link (the first call wins).
pub fn install(shared: Shared) {
    let _ = GLOBAL.set(shared);
}

impl Shared {
    /// A link to the Redis at `url` (`redis://[:password@]host:port[/db]`). Nothing is contacted
    /// yet: the first call connects, so a Redis that is down at start delays nothing.
    pub fn connect(url: &str) -> Result<Shared, String> {
        let client = redis::Client::open(url).map_err(|e| format!("LOOKOUT_REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE))
            // One quick retry; the breaker paces the rest.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("LOOKOUT_REDIS_URL: {e}"))?;
        let shown = match url::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                let _ = u.set_username("");
                u.to_string()
            }
            Err(_) => "redis".into(),
        };
        Ok(Shared {
            link: Some(Arc::new(Link {
                client,
                conn,
                epoch: Instant::now(),
                closed_until_ms: AtomicU64::new(0),
                up: AtomicBool::new(false),
                shown,
            })),
        })
    }

    /// Whether a Redis is configured at all.
    pub fn configured(&self) -> bool {
        self.link.is_some()
    }

    /// Whether the last call to Redis succeeded (false when none is configured).
    pub fn up(&self) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.up.load(Ordering::Relaxed))
    }

    /// Where Redis is, without credentials.
    pub fn location(&self) -> Option<&str> {
        self.link.as_ref().map(|l| l.shown.as_str())
    }

    /// Runs `call` on the shared connection within the deadline; `None` when there is no Redis,
    /// the breaker is open, or the call failed or timed out (then the breaker opens).
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let link = self.link.as_ref()?;
        let now = link.epoch.elapsed().as_millis() as u64;
        if now < link.closed_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let outcome = tokio::time::timeout(DEADLINE, call(link.conn.clone())).await;
        match outcome {
            Ok(Ok(v)) => {
                link.mark(true, what, None);
                Some(v)
            }
            Ok(Err(e)) => {
                link.mark(false, what, Some(e.to_string()));
                None
            }
            Err(_) => {
                link.mark(false, what, Some(format!("no answer within {DEADLINE:?}")));
                None
            }
        }
    }

    /// Whether Redis answers a `PING` now (at start, for the log).
    pub async fn ping(&self) -> bool {
        self.run("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .is_some()
    }

    /// A fresh connection for a subscriber (pub/sub needs one of its own).
    pub(crate) async fn pubsub(&self) -> Option<redis::aio::PubSub> {
        let link = self.link.as_ref()?;
        match tokio::time::timeout(DEADLINE, link.client.get_async_pubsub()).await {
            Ok(Ok(p)) => Some(p),
            _ => None,
        }
    }
}

impl Link {
    /// Records a call's outcome: logs each change of state once, opens the breaker on failure.
    fn mark(&self, ok: bool, what: &'static str, error: Option<String>) {
        let was = self.up.swap(ok, Ordering::Relaxed);
        metrics::gauge!("lookout_redis_up").set(if ok { 1.0 } else { 0.0 });
        if ok {
            if !was {
                tracing::info!(redis = %self.shown, "Redis reachable: limits, cache and wake-ups are shared across replicas.");
            }
            return;
        }
        let until = self.epoch.elapsed() + BREAKER;
        self.closed_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        metrics::counter!("lookout_redis_failures_total", "call" => what).increment(1);
        if was {
            tracing::warn!(redis = %self.shown, call = what, error = error.as_deref().unwrap_or(""),
                "Redis unreachable: limits are per replica, queries uncached and consumers poll until it returns.");
        } else {
            tracing::debug!(
                call = what,
                error = error.as_deref().unwrap_or(""),
                "Redis still unreachable."
            );
        }
    }
}
