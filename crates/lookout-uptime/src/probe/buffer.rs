//! The agent's result buffer: results wait here until the server stores them. Bounded: when the
//! server stays unreachable long enough to fill it, the oldest results are dropped first and
//! counted (the count is reported to the server, which shows it on the Locations page). With a
//! [`Journal`] every change is also written to the state directory, so a restarted agent
//! uploads what it still owed.

use std::collections::VecDeque;

use super::state::Journal;
use crate::agent::AgentResult;

/// Results waiting for upload, oldest first.
#[derive(Debug)]
pub struct Buffer {
    items: VecDeque<AgentResult>,
    capacity: usize,
    dropped: u64,
    journal: Option<Journal>,
}

impl Buffer {
    /// An empty buffer holding at most `capacity` results (at least one).
    pub fn new(capacity: usize) -> Buffer {
        Buffer {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            journal: None,
        }
    }

    /// A buffer backed by `journal`, holding `owed` (results from before a restart, oldest
    /// first; past the capacity the oldest are dropped and counted).
    pub fn with_journal(capacity: usize, journal: Journal, owed: Vec<AgentResult>) -> Buffer {
        let mut b = Buffer::new(capacity);
        for r in owed {
            if b.items.len() >= b.capacity {
                b.items.pop_front();
                b.dropped += 1;
            }
            b.items.push_back(r);
        }
        b.journal = Some(journal);
        // The journal was rewritten with all of `owed`: forget those dropped above, and write
        // down the count at the next sync.
        if let Some(j) = b.journal.as_mut() {
            j.forget(b.dropped as usize);
        }
        b
    }

    /// Writes the journal out (fsync), about once a second.
    pub fn sync(&mut self) {
        if let Some(j) = self.journal.as_mut() {
            j.sync(self.items.iter());
        }
    }

    /// Adds a result; when full, the oldest is dropped and counted.
    pub fn push(&mut self, r: AgentResult) {
        if self.items.len() >= self.capacity {
            self.items.pop_front();
            self.dropped += 1;
            if let Some(j) = self.journal.as_mut() {
                j.forget(1);
            }
        }
        if let Some(j) = self.journal.as_mut() {
            j.append(&r);
        }
        self.items.push_back(r);
    }

    /// A copy of the oldest `n` results (they stay until [`Buffer::confirm`]).
    pub fn peek(&self, n: usize) -> Vec<AgentResult> {
        self.items.iter().take(n).cloned().collect()
    }

    /// Removes results the server stored: the oldest ones, as long as they are the ones sent
    /// (results dropped meanwhile to make room are not counted twice).
    pub fn confirm(&mut self, sent: &[AgentResult]) {
        let mut gone = 0;
        for s in sent {
            if self.items.front() == Some(s) {
                self.items.pop_front();
                gone += 1;
            }
        }
        if let Some(j) = self.journal.as_mut() {
            j.forget(gone);
        }
    }

    /// Results waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Results dropped since the agent started.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// A result of monitor 1 scheduled and run at `i`, for tests.
#[cfg(test)]
pub(super) fn sample(i: i64) -> AgentResult {
    AgentResult {
        monitor_id: 1,
        scheduled_at: i,
        at: i,
        ok: i % 2 == 0,
        latency_ms: Some(1.5),
        message: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::sample as r;

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let mut b = Buffer::new(3);
        for i in 0..5 {
            b.push(r(i));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.dropped(), 2);
        assert_eq!(b.peek(1)[0].scheduled_at, 2);
    }

    #[test]
    fn confirmed_results_leave_even_when_some_were_dropped_meanwhile() {
        let mut b = Buffer::new(3);
        for i in 0..3 {
            b.push(r(i));
        }
        let sent = b.peek(2);
        b.push(r(3)); // drops 0 while 0 and 1 are in flight
        b.confirm(&sent);
        let left: Vec<i64> = b.peek(10).iter().map(|x| x.scheduled_at).collect();
        assert_eq!(left, [2, 3]);
    }
}
