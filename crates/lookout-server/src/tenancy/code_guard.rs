//! Limits on guessing two-factor codes, beside the login throttle's growing delays, and the
//! spent pending sign-ins (a completed one's token is refused if replayed).
//!
//! A pending sign-in (the password was right) allows [`CodeGuard::PENDING_WRONG_CODES`] wrong
//! codes; then it is ended and the password must be typed again, however often its token is
//! replayed (the token is signed but stateless, so its nonce is remembered here until it would
//! expire anyway). And each account allows [`CodeGuard::ACCOUNT_WRONG_CODES`] wrong codes an
//! hour, whatever the pending sign-ins and client addresses: past that, codes for the account
//! are refused (429) until the oldest failure is an hour old. A million codes at 20 an hour
//! take about five years.
//!
//! Counted in Redis across replicas when it is configured and answers (the `*_shared` methods,
//! [`crate::shared::identity_limits`]), and always in memory here, which decides alone when
//! Redis does not answer; both maps only hold entries made by someone who knew a password, and
//! are bounded anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Wrong-code counts per pending sign-in and per account.
#[derive(Default)]
pub struct CodeGuard {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Pending sign-in nonce → (wrong codes, when the pending sign-in expires).
    pending: HashMap<String, (u32, i64)>,
    /// Pending sign-ins that completed: nonce → when their token expires. Their tokens are
    /// single-use (a replay must not sign in or re-apply old SSO grants).
    used: HashMap<String, i64>,
    /// User id → when each wrong code of the last hour was typed, oldest first.
    accounts: HashMap<i64, VecDeque<i64>>,
}

impl CodeGuard {
    /// Wrong codes one pending sign-in allows before the password is asked again.
    pub const PENDING_WRONG_CODES: u32 = 5;
    /// Wrong codes one account allows per [`CodeGuard::WINDOW_MS`].
    pub const ACCOUNT_WRONG_CODES: usize = 20;
    /// The account's window.
    pub const WINDOW_MS: i64 = 3_600_000;
    /// Entries kept per map; past it the oldest are dropped (only password holders add any).
    const MAX_ENTRIES: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this pending sign-in has had its wrong codes and must start again.
    pub fn pending_ended(&self, nonce: &str) -> bool {
        self.lock()
            .pending
            .get(nonce)
            .is_some_and(|(n, _)| *n >= Self::PENDING_WRONG_CODES)
    }

    /// Whether this pending sign-in has completed (its token is spent).
    pub fn used(&self, nonce: &str) -> bool {
        self.lock().used.contains_key(nonce)
    }

    /// Spends the pending sign-in `nonce` (valid until `expires`): true for the first caller
    /// only.
    pub fn claim(&self, nonce: &str, expires: i64, now: i64) -> bool {
        let mut g = self.lock();
        g.used.retain(|_, until| *until > now);
        if g.used.len() >= Self::MAX_ENTRIES {
            // Only completed sign-ins add entries; dropping the oldest would reopen them, so
            // refuse instead (the user logs in again once some expire).
            return false;
        }
        g.used.insert(nonce.to_string(), expires).is_none()
    }

    /// Milliseconds until the account may try a code again; `None` when it may now.
    pub fn account_wait(&self, user_id: i64, now: i64) -> Option<i64> {
        let mut g = self.lock();
        let times = g.accounts.get_mut(&user_id)?;
        while times.front().is_some_and(|t| *t <= now - Self::WINDOW_MS) {
            times.pop_front();
        }
        if times.len() < Self::ACCOUNT_WRONG_CODES {
            return None;
        }
        times.front().map(|t| (t + Self::WINDOW_MS - now).max(1))
    }

    /// Counts a wrong code for the pending sign-in `nonce` (valid until `expires`) and the
    /// account; whether the pending sign-in is still usable.
    pub fn wrong_code(&self, nonce: &str, expires: i64, user_id: i64, now: i64) -> bool {
        let mut g = self.lock();
        g.pending.retain(|_, (_, until)| *until > now);
        if g.pending.len() >= Self::MAX_ENTRIES {
            g.pending.clear();
        }
        let entry = g.pending.entry(nonce.to_string()).or_insert((0, expires));
        entry.0 += 1;
        let alive = entry.0 < Self::PENDING_WRONG_CODES;
        if g.accounts.len() >= Self::MAX_ENTRIES && !g.accounts.contains_key(&user_id) {
            g.accounts
                .retain(|_, t| t.back().is_some_and(|t| *t > now - Self::WINDOW_MS));
        }
        let times = g.accounts.entry(user_id).or_default();
        times.push_back(now);
        while times.len() > Self::ACCOUNT_WRONG_CODES {
            times.pop_front();
        }
        alive
    }
}

impl CodeGuard {
    /// [`CodeGuard::pending_ended`], across replicas when Redis answers.
    pub async fn pending_ended_shared(&self, nonce: &str) -> bool {
        let local = self.pending_ended(nonce);
        crate::shared::get()
            .totp_pending_ended(nonce)
            .await
            .map_or(local, |shared| shared || local)
    }

    /// [`CodeGuard::used`], across replicas when Redis answers.
    pub async fn used_shared(&self, nonce: &str) -> bool {
        let local = self.used(nonce);
        crate::shared::get()
            .totp_pending_used(nonce)
            .await
            .map_or(local, |shared| shared || local)
    }

    /// [`CodeGuard::claim`], across replicas when Redis answers: true for the first claim of
    /// the nonce anywhere.
    pub async fn claim_shared(&self, nonce: &str, expires: i64) -> bool {
        let now = lookout_core::time::now_ms();
        let local = self.claim(nonce, expires, now);
        crate::shared::get()
            .totp_pending_claim(nonce, (expires - now).max(1))
            .await
            .map_or(local, |shared| shared && local)
    }

    /// [`CodeGuard::account_wait`], across replicas when Redis answers.
    pub async fn account_wait_shared(&self, user_id: i64, now: i64) -> Option<i64> {
        let local = self.account_wait(user_id, now);
        // The stricter of the two: a replica that counted more than Redis holds (it lost
        // Redis for a while) keeps what it saw.
        crate::shared::get()
            .totp_account_wait(user_id)
            .await
            .map_or(local, |shared| shared.max(local))
    }

    /// [`CodeGuard::wrong_code`], counted in Redis too when it answers; whether the pending
    /// sign-in is still usable.
    pub async fn wrong_code_shared(
        &self,
        nonce: &str,
        expires: i64,
        user_id: i64,
        now: i64,
    ) -> bool {
        let local = self.wrong_code(nonce, expires, user_id, now);
        crate::shared::get()
            .totp_wrong_code(nonce, expires - now, user_id)
            .await
            .map_or(local, |shared| shared && local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_sign_in_ends_after_five_wrong_codes_and_an_account_after_twenty_an_hour() {
        let g = CodeGuard::default();
        let t = 1_000_000_000;
        for i in 1..=4 {
            assert!(g.wrong_code("a", t + 300_000, 7, t + i), "wrong code {i}");
            assert!(!g.pending_ended("a"));
        }
        assert!(
            !g.wrong_code("a", t + 300_000, 7, t + 5),
            "the fifth ends it"
        );
        assert!(g.pending_ended("a"), "replaying its token does not help");
        assert!(!g.pending_ended("b"), "another sign-in is its own");
        // Twenty wrong codes in an hour, over four sign-ins: the account is refused codes.
        for i in 0..15 {
            assert_eq!(g.account_wait(7, t + 10 + i), None);
            g.wrong_code(&format!("s{}", i / 5), t + 300_000, 7, t + 10 + i);
        }
        assert_eq!(g.account_wait(7, t + 100), Some(CodeGuard::WINDOW_MS - 99));
        assert_eq!(g.account_wait(8, t + 100), None, "other accounts are not");
        // An hour after the first wrong code, one more may be tried.
        assert_eq!(g.account_wait(7, t + 1 + CodeGuard::WINDOW_MS), None);
    }

    #[test]
    fn a_completed_pending_sign_in_is_spent_until_it_would_expire() {
        let g = CodeGuard::default();
        let t = 1_000_000_000;
        assert!(!g.used("a"));
        assert!(g.claim("a", t + 300_000, t), "the first completion");
        assert!(g.used("a"), "its token replayed");
        assert!(!g.claim("a", t + 300_000, t + 1), "a second completion");
        assert!(
            g.claim("b", t + 300_000, t + 1),
            "another sign-in is its own"
        );
        // Past its expiry the entry goes (the token no longer opens anyway).
        assert!(g.claim("c", t + 900_000, t + 300_001));
        assert!(!g.used("a"));
    }
}
