//! The one way tests wait for something the server does in the background: poll until it is
//! there, within a deadline, and when it never comes, fail saying what was awaited and what was
//! seen last (a bare "timed out" sends whoever reads the failure back to the code).
//!
//! ```ignore
//! let m = eventually("monitor 3 to go down")
//!     .within(Duration::from_secs(15))
//!     .until(|| monitor(&s, 3), |m| m["status"] == "down")
//!     .await;
//! ```

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// A wait being set up: what for, for how long, how often to look.
#[must_use = "an Eventually does nothing until `.until` or `.poll` is awaited"]
pub struct Eventually {
    what: String,
    within: Duration,
    every: Duration,
}

/// Starts a wait for `what` (said in the failure message): 20 s, looking every 100 ms, unless
/// changed with [`Eventually::within`] and [`Eventually::every`].
pub fn eventually(what: impl Into<String>) -> Eventually {
    Eventually {
        what: what.into(),
        within: Duration::from_secs(20),
        every: Duration::from_millis(100),
    }
}

impl Eventually {
    /// The deadline, counted from the first look.
    pub fn within(mut self, d: Duration) -> Self {
        self.within = d;
        self
    }

    /// Shorthand for [`Eventually::within`] in seconds.
    pub fn secs(self, secs: u64) -> Self {
        self.within(Duration::from_secs(secs))
    }

    /// How long to sleep between looks.
    pub fn every(mut self, d: Duration) -> Self {
        self.every = d;
        self
    }

    /// Calls `probe` until it answers `Ok`, returning that value. `Err(seen)` means "not yet";
    /// the last `seen` is in the panic message when the deadline passes.
    ///
    /// # Panics
    /// When the deadline passes without an `Ok`.
    pub async fn poll<T, S, F, Fut>(self, mut probe: F) -> T
    where
        S: Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, S>>,
    {
        let deadline = Instant::now() + self.within;
        loop {
            match probe().await {
                Ok(v) => return v,
                Err(seen) => self.check(deadline, &seen),
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// Calls `fetch` until `done` holds for what it returned, and returns that.
    ///
    /// # Panics
    /// When the deadline passes first; the message has the last value fetched.
    pub async fn until<V, F, Fut>(self, mut fetch: F, mut done: impl FnMut(&V) -> bool) -> V
    where
        V: Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = V>,
    {
        let deadline = Instant::now() + self.within;
        loop {
            let v = fetch().await;
            if done(&v) {
                return v;
            }
            self.check(deadline, &v);
            tokio::time::sleep(self.every).await;
        }
    }

    /// Fails once the deadline has passed.
    fn check(&self, deadline: Instant, seen: &dyn Debug) {
        assert!(
            Instant::now() < deadline,
            "timed out after {:?} waiting for {}; last seen: {seen:#?}",
            self.within,
            self.what
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_first_value_that_passes() {
        let n = AtomicU32::new(0);
        let got = eventually("the third look")
            .every(Duration::from_millis(1))
            .until(
                || async { n.fetch_add(1, Ordering::SeqCst) + 1 },
                |v| *v == 3,
            )
            .await;
        assert_eq!(got, 3);
        assert_eq!(n.load(Ordering::SeqCst), 3, "no look after it passed");
    }

    #[tokio::test]
    async fn fails_naming_what_it_waited_for_and_the_last_value() {
        let n = AtomicU32::new(0);
        let waited = tokio::spawn(async move {
            eventually("a number above 1000")
                .within(Duration::from_millis(50))
                .every(Duration::from_millis(5))
                .until(|| async { n.fetch_add(1, Ordering::SeqCst) }, |v| *v > 1000)
                .await
        })
        .await;
        let panic = waited.expect_err("the wait must fail").into_panic();
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("waiting for a number above 1000"), "{msg}");
        let last: u32 = msg.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(last > 1, "the last value seen, not the first: {msg}");
    }
}
