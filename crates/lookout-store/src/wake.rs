//! Wake-ups for stream consumers: after a commit that appended to a stream table (domain
//! events, ingested items, APM parts), the consumers of that table in this process are told at
//! once instead of finding it at their next poll, and a hook set by the server passes the news to
//! the other replicas (through Redis, when configured; see the server's `shared::wake`).
//!
//! (The APM rollup is not woken: its idle second is what gathers parts into one fold.)
//!
//! A wake-up is only a hint: consumers still poll on their idle interval, so a lost wake-up (a
//! replica without Redis, a publisher that commits its own transaction) costs latency, never
//! work. Each table has a `watch` channel whose value counts commits: a consumer that was busy
//! when the signal came sees the count changed and polls again, so no signal falls between two
//! waits.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

/// Something to call with the stream table a local commit appended to.
pub type CommitHook = Arc<dyn Fn(&'static str) + Send + Sync>;

/// The per-table signals of one store.
pub struct Wake {
    tables: Vec<(&'static str, watch::Sender<u64>)>,
    hook: OnceLock<CommitHook>,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            tables: crate::events::STREAM_TABLES
                .iter()
                .map(|t| (*t, watch::Sender::new(0)))
                .collect(),
            hook: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

impl Wake {
    fn sender(&self, table: &str) -> Option<&watch::Sender<u64>> {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, s)| s)
    }

    /// A commit in this process appended to `table`: wake local consumers and tell the hook.
    pub(crate) fn committed(&self, table: &'static str) {
        self.signal(table);
        if let Some(hook) = self.hook.get() {
            hook(table);
        }
    }

    /// Wakes this process's consumers of `table` (a commit elsewhere appended to it).
    pub fn signal(&self, table: &str) {
        if let Some(s) = self.sender(table) {
            s.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver that changes when `table` gets new rows (never changes for an unknown table).
    pub fn waiter(&self, table: &str) -> watch::Receiver<u64> {
        match self.sender(table) {
            Some(s) => s.subscribe(),
            None => watch::Sender::new(0).subscribe(),
        }
    }

    /// Sets the hook told of local commits (the first call wins).
    pub fn set_hook(&self, hook: CommitHook) {
        let _ = self.hook.set(hook);
    }
}

/// Sleeps `idle`, or less if `waiter` changes first (a closed channel just sleeps).
pub async fn idle(waiter: &mut watch::Receiver<u64>, idle: std::time::Duration) {
    if idle.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(idle) => {}
        r = waiter.changed() => {
            if r.is_err() {
                tokio::time::sleep(idle).await;
            }
        }
    }
}
