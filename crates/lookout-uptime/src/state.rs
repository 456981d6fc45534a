//! The monitor state machine: thresholds decide when a run of results changes the state.
//!
//! As in Gatus: `failure_threshold` consecutive failures take a monitor down, and
//! `success_threshold` consecutive successes bring a down monitor back up. A new monitor leaves
//! `pending` on its first success, or when failures reach the threshold. Whether a change pages
//! anyone (maintenance, a parent that is down) is the runner's decision, not this one's.

use serde::{Deserialize, Serialize};

/// A monitor's health as the thresholds see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No decision yet.
    Pending,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

impl Health {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Pending => "pending",
            Health::Up => "up",
            Health::Down => "down",
        }
    }

    /// Reads a stored name (unknown names read as pending).
    pub fn parse(s: &str) -> Health {
        match s {
            "up" => Health::Up,
            "down" => Health::Down,
            _ => Health::Pending,
        }
    }
}

/// Streak counters and the current health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaks {
    /// Current health.
    pub health: Health,
    /// Failures in a row.
    pub failures: u32,
    /// Successes in a row.
    pub successes: u32,
}

impl Default for Streaks {
    fn default() -> Self {
        Streaks {
            health: Health::Pending,
            failures: 0,
            successes: 0,
        }
    }
}

impl Streaks {
    /// Counts one result; returns the new health when it changed.
    pub fn record(
        &mut self,
        ok: bool,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> Option<Health> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let next = match (self.health, ok) {
            (Health::Pending, true) => Health::Up,
            (Health::Down, true) if self.successes >= success_threshold.max(1) => Health::Up,
            (Health::Pending | Health::Up, false) if self.failures >= failure_threshold.max(1) => {
                Health::Down
            }
            (h, _) => h,
        };
        (next != self.health).then(|| {
            self.health = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(results: &[bool], f: u32, s: u32) -> Vec<Option<Health>> {
        let mut st = Streaks::default();
        results.iter().map(|ok| st.record(*ok, f, s)).collect()
    }

    #[test]
    fn three_failures_down_two_successes_up() {
        use Health::*;
        let r = run(
            &[true, false, false, true, false, false, false, true, true],
            3,
            2,
        );
        assert_eq!(
            r,
            vec![
                Some(Up),
                None,
                None,
                None,
                None,
                None,
                Some(Down),
                None,
                Some(Up)
            ]
        );
    }

    #[test]
    fn a_new_monitor_that_never_passes_goes_down_at_the_threshold() {
        assert_eq!(run(&[false, false, false], 3, 2)[2], Some(Health::Down));
        assert_eq!(run(&[false], 1, 1)[0], Some(Health::Down));
    }
}
