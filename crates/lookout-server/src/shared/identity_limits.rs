//! The two-factor code guard and the password-reset limiter counted across replicas in Redis
//! (see [`crate::tenancy::code_guard::CodeGuard`] and [`crate::tenancy::links::ResetRequests`],
//! which keep counting in each replica and decide alone when Redis cannot answer). Each step
//! is one Lua script on Redis's own clock, like the login throttle in [`super::limits`].
//!
//! Keys: `lookout:totp:pending:{sha256(nonce)}` (wrong codes of one pending sign-in, expiring
//! with it), `lookout:totp:account:{user id}` (a sorted set of the last hour's wrong codes) and
//! `lookout:reset:client:{address or /64}` (the last minute's reset requests).

use std::net::IpAddr;
use std::sync::LazyLock;

use super::Shared;
use crate::auth::LoginThrottle;
use crate::tenancy::code_guard::CodeGuard;
use crate::tenancy::links::{ResetRequests, RESETS_PER_CLIENT};

/// A sliding window of events in a sorted set scored by Redis's clock (ms). Answers the ms to
/// wait when `limit` events are in the window, else 0. ARGV[3]: 0 only checks, 1 adds the event
/// when under the limit, 2 adds it whatever the count.
/// KEYS[1] the set; ARGV[1] limit; ARGV[2] window ms; ARGV[3] mode.
static WINDOW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, limit, window, mode = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local n = redis.call('ZCARD', key)
local wait = 0
if n >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  wait = math.max(tonumber(oldest[2]) + window - now, 1)
end
if mode == 2 or (mode == 1 and wait == 0) then
  local seq = redis.call('HINCRBY', key .. ':seq', 'n', 1)
  redis.call('PEXPIRE', key .. ':seq', window)
  redis.call('ZADD', key, now, tostring(now) .. ':' .. tostring(seq))
  redis.call('PEXPIRE', key, window)
end
return wait
",
    )
});

/// Counts a wrong code of a pending sign-in, kept until it expires: ARGV[1] ms from now, by
/// Redis's clock (a replica's fast or slow clock does not shorten or stretch it); answers the
/// count. KEYS[1] the counter; ARGV[1] time to live, ms.
static PENDING: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], now + math.max(tonumber(ARGV[1]), 1))
return n
",
    )
});

/// The key of a pending sign-in's wrong-code count.
fn pending_key(nonce: &str) -> String {
    nonce_key("pending", nonce)
}

/// The key marking a pending sign-in spent.
fn used_key(nonce: &str) -> String {
    nonce_key("used", nonce)
}

fn nonce_key(kind: &str, nonce: &str) -> String {
    use sha2::Digest;
    format!(
        "lookout:totp:{kind}:{}",
        hex::encode(&sha2::Sha256::digest(nonce.as_bytes())[..16])
    )
}

fn account_key(user_id: i64) -> String {
    format!("lookout:totp:account:{user_id}")
}

impl Shared {
    async fn window(
        &self,
        what: &'static str,
        key: String,
        limit: usize,
        ms: i64,
        mode: i64,
    ) -> Option<i64> {
        self.run(what, |mut c| async move {
            WINDOW
                .key(key)
                .arg(limit)
                .arg(ms)
                .arg(mode)
                .invoke_async(&mut c)
                .await
        })
        .await
    }

    /// [`CodeGuard::pending_ended`] across replicas; `None` when Redis cannot answer.
    pub async fn totp_pending_ended(&self, nonce: &str) -> Option<bool> {
        let key = pending_key(nonce);
        let n: Option<i64> = self
            .run("totp_pending", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Some(n.unwrap_or(0) >= i64::from(CodeGuard::PENDING_WRONG_CODES))
    }

    /// [`CodeGuard::used`] across replicas; `None` when Redis cannot answer.
    pub async fn totp_pending_used(&self, nonce: &str) -> Option<bool> {
        let key = used_key(nonce);
        let n: Option<i64> = self
            .run("totp_used", |mut c| async move {
                redis::cmd("GET").arg(key).query_async(&mut c).await
            })
            .await?;
        Some(n.is_some())
    }

    /// [`CodeGuard::claim`] across replicas (`SET NX`, kept until the token would expire):
    /// whether this was the first claim; `None` when Redis cannot answer.
    pub async fn totp_pending_claim(&self, nonce: &str, ttl_ms: i64) -> Option<bool> {
        let key = used_key(nonce);
        let set: Option<String> = self
            .run("totp_claim", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Some(set.is_some())
    }

    /// [`CodeGuard::account_wait`] across replicas: `Some(None)` when the account may try a
    /// code, `Some(Some(ms))` when it must wait; `None` when Redis cannot answer.
    pub async fn totp_account_wait(&self, user_id: i64) -> Option<Option<i64>> {
        let wait = self
            .window(
                "totp_account",
                account_key(user_id),
                CodeGuard::ACCOUNT_WRONG_CODES,
                CodeGuard::WINDOW_MS,
                0,
            )
            .await?;
        Some((wait > 0).then_some(wait))
    }

    /// [`CodeGuard::wrong_code`] across replicas: whether the pending sign-in is still usable;
    /// `None` when Redis cannot answer.
    pub async fn totp_wrong_code(&self, nonce: &str, ttl_ms: i64, user_id: i64) -> Option<bool> {
        let key = pending_key(nonce);
        let n: i64 = self
            .run("totp_wrong_code", |mut c| async move {
                PENDING.key(key).arg(ttl_ms).invoke_async(&mut c).await
            })
            .await?;
        self.window(
            "totp_account",
            account_key(user_id),
            CodeGuard::ACCOUNT_WRONG_CODES,
            CodeGuard::WINDOW_MS,
            2,
        )
        .await?;
        Some(n < i64::from(CodeGuard::PENDING_WRONG_CODES))
    }

    /// [`ResetRequests::admit`] across replicas: `Some(Some(seconds))` when `client` asked too
    /// often, `Some(None)` when it may (the request is counted); `None` when Redis cannot answer.
    pub async fn reset_admit(&self, client: IpAddr) -> Option<Option<i64>> {
        let key = format!("lookout:reset:client:{}", LoginThrottle::client_key(client));
        let wait = self
            .window(
                "reset_limit",
                key,
                RESETS_PER_CLIENT,
                ResetRequests::WINDOW_MS,
                1,
            )
            .await?;
        Some((wait > 0).then_some((wait + 999) / 1000))
    }
}
