//! Limits counted across replicas in Redis: the per-project Sentry ingest rate limit and the
//! login throttle. Each is one Lua script, so the check and the count are one atomic step on the
//! Redis server (two replicas cannot both pass the last free slot), and each reads Redis's own
//! clock (`TIME`), so replicas with skewed clocks agree on windows and waits.
//!
//! When Redis cannot answer, the callers fall back to their per-replica counters
//! ([`crate::errors::ingest::RateLimiter`], [`crate::auth::LoginThrottle`]); the shared counts
//! simply are not consulted until Redis is back.

use std::net::IpAddr;
use std::sync::LazyLock;

use super::Shared;
use crate::auth::LoginThrottle;

/// Counts one event in the project's current one-minute window (on Redis's clock); answers
/// seconds until the window ends when the count passes the limit, else 0.
/// KEYS[1] key prefix; ARGV[1] limit.
static INGEST: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = math.floor(now / 60000)
local key = KEYS[1] .. ':' .. window
local n = redis.call('INCR', key)
if n == 1 then redis.call('PEXPIRE', key, 120000) end
if n > tonumber(ARGV[1]) then
  return math.floor(((window + 1) * 60000 - now + 999) / 1000)
end
return 0
",
    )
});

/// The login throttle's `begin` (see [`LoginThrottle`]): the longest wait any of the keys still
/// owes, or, if none, counts the attempt as a failure on every key and answers 0.
/// KEYS: account, [client]; ARGV: free failures per key (same order), max delay, forget after.
static BEGIN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local maxd = tonumber(ARGV[#KEYS + 1])
local forget = tonumber(ARGV[#KEYS + 2])
local wait = 0
local state = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'n', 'last')
  local n, last = tonumber(v[1]), tonumber(v[2])
  if n == nil or last == nil or now - last >= forget then
    n, last = 0, now
  end
  state[i] = n
  local over = n - tonumber(ARGV[i])
  if over > 0 then
    local delay = math.min(1000 * 2 ^ math.min(over - 1, 15), maxd)
    local w = last + delay - now
    if w > wait then wait = w end
  end
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'n', state[i] + 1, 'last', now)
  redis.call('PEXPIRE', key, forget)
end
return 0
",
    )
});

/// After a wrong password: the wait starts again from now. KEYS: account, [client].
static FAILED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'last', now) end
end
return 0
",
    )
});

/// After a right password: the account's failures are cleared, the client's attempt is taken
/// back. KEYS: account, [client].
static SUCCEEDED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('DEL', KEYS[1])
if KEYS[2] and tonumber(redis.call('HGET', KEYS[2], 'n') or '0') > 0 then
  redis.call('HINCRBY', KEYS[2], 'n', -1)
end
return 0
",
    )
});

impl Shared {
    /// Counts one event against `project`'s limit across every replica: `Some(None)` under the
    /// limit, `Some(Some(seconds))` over it, `None` when Redis cannot answer (count locally).
    pub async fn ingest_over(&self, project: i64, limit: i64) -> Option<Option<i64>> {
        let key = format!("lookout:ingest:{project}");
        let secs: i64 = self
            .run("ingest_limit", |mut c| async move {
                INGEST.key(key).arg(limit).invoke_async(&mut c).await
            })
            .await?;
        Some((secs > 0).then_some(secs))
    }

    /// [`LoginThrottle::begin`] across replicas: `Some(Err(ms to wait))`, `Some(Ok(()))` when the
    /// attempt may go on (it is counted), `None` when Redis cannot answer.
    pub async fn login_begin(
        &self,
        email: &str,
        client: Option<IpAddr>,
    ) -> Option<Result<(), i64>> {
        let keys = login_keys(email, client);
        let wait: i64 = self
            .run("login_throttle", |mut c| async move {
                let mut inv = BEGIN.prepare_invoke();
                for k in &keys {
                    inv.key(k);
                }
                inv.arg(LoginThrottle::FREE_ACCOUNT_FAILURES);
                if keys.len() > 1 {
                    inv.arg(LoginThrottle::FREE_CLIENT_FAILURES);
                }
                inv.arg(LoginThrottle::MAX_DELAY_MS)
                    .arg(LoginThrottle::FORGET_MS);
                inv.invoke_async(&mut c).await
            })
            .await?;
        Some(if wait > 0 { Err(wait) } else { Ok(()) })
    }

    /// [`LoginThrottle::failed`] across replicas; false when Redis cannot answer.
    pub async fn login_failed(&self, email: &str, client: Option<IpAddr>) -> bool {
        self.login_script(&FAILED, "login_failed", email, client)
            .await
    }

    /// [`LoginThrottle::succeeded`] across replicas; false when Redis cannot answer.
    pub async fn login_succeeded(&self, email: &str, client: Option<IpAddr>) -> bool {
        self.login_script(&SUCCEEDED, "login_succeeded", email, client)
            .await
    }

    async fn login_script(
        &self,
        script: &'static redis::Script,
        what: &'static str,
        email: &str,
        client: Option<IpAddr>,
    ) -> bool {
        let keys = login_keys(email, client);
        self.run(what, |mut c| async move {
            let mut inv = script.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.invoke_async::<i64>(&mut c).await
        })
        .await
        .is_some()
    }
}

/// The throttle's Redis keys: the account (a digest, see [`LoginThrottle::account_key`]), then the
/// client when known.
fn login_keys(email: &str, client: Option<IpAddr>) -> Vec<String> {
    let account = LoginThrottle::account_key(email);
    let mut keys = vec![format!("lookout:login:account:{account}")];
    if let Some(ip) = client {
        keys.push(format!(
            "lookout:login:client:{}",
            LoginThrottle::client_key(ip)
        ));
    }
    keys
}
