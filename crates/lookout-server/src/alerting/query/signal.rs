//! One signal of a query condition — one facet value's series of window values — and New
//! Relic's threshold semantics over it, as a pure state machine: [`Signal::step`] takes the
//! next closed window's value and says what opens and closes.
//!
//! - A window **breaches** a threshold when its value compares true with the operator; a window
//!   without data breaches nothing (gap filling may give it a value first).
//! - `all` ("for at least N"): opens when every window of the last N seconds breached.
//!   `at_least_once` ("at least once in N"): opens on one breaching window.
//! - Either way an open breach closes after N seconds with no breaching window (the recovery
//!   period), and counting starts over.
//! - Loss of signal: once a signal has had data, no data for the expiration opens a "lost
//!   signal" incident and/or closes its open breaches; data coming back closes the lost one.
//! - A signal first seen less than the evaluation delay ago is recorded but not judged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::{GapFill, NrqlCondition, Occurrences, Priority};

/// What a window changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A threshold breached long enough: open an incident. `since` is when the breaching run
    /// began (the failure start, for time to detect).
    Open {
        priority: Priority,
        value: Option<f64>,
        since: i64,
    },
    /// The recovery period passed without a breach: close it.
    Close { priority: Priority },
    /// No data for the loss-of-signal expiration.
    Lost { last_seen: i64 },
    /// Data again after a loss.
    Restored,
}

/// One priority's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Breach flags of the newest windows, oldest first (at most duration / window).
    pub breaches: Vec<bool>,
    /// Start of each of those windows.
    pub starts: Vec<i64>,
    /// When the open breach's run began; `None` when closed.
    pub open_since: Option<i64>,
}

/// A signal's state, kept between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The facet values, as shown in titles (`checkout, GET /cart`); empty without `FACET`.
    pub label: String,
    /// The end of the first window it had data in, ms.
    pub first_seen: i64,
    /// The end of the newest window it had data in, ms.
    pub last_seen: Option<i64>,
    /// The newest value (after gap filling).
    pub last_value: Option<f64>,
    /// Whether it is lost (loss of signal announced, data not back yet).
    pub lost: bool,
    /// Per priority.
    pub tracks: BTreeMap<Priority, Track>,
}

impl Signal {
    /// Takes the value of window `[start, end)` (`None`: no data) and returns what changed.
    pub fn step(
        &mut self,
        c: &NrqlCondition,
        start: i64,
        end: i64,
        data: Option<f64>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        if data.is_some() {
            if self.lost {
                self.lost = false;
                out.push(Change::Restored);
            }
            if self.last_seen.is_none() {
                self.first_seen = end;
            }
            self.last_seen = Some(end);
        } else if let (Some(los), Some(seen)) = (&c.loss_of_signal, self.last_seen) {
            if !self.lost && end - seen >= i64::from(los.expiration_seconds) * 1000 {
                self.lost = true;
                if los.close_incidents {
                    for (p, t) in self.tracks.iter_mut() {
                        if t.open_since.take().is_some() {
                            out.push(Change::Close { priority: *p });
                        }
                        t.breaches.clear();
                        t.starts.clear();
                    }
                }
                if los.open_incident {
                    out.push(Change::Lost { last_seen: seen });
                }
                return out;
            }
        }
        let value = match (data, &c.gap_filling) {
            (Some(v), _) => Some(v),
            (None, GapFill::None) => None,
            (None, GapFill::Static { value }) => Some(*value),
            (None, GapFill::LastValue) => self.last_value,
        };
        if value.is_some() {
            self.last_value = value;
        }
        // New signals are watched, not judged, for the evaluation delay.
        if self.last_seen.is_some()
            && end - self.first_seen < i64::from(c.evaluation_delay_seconds) * 1000
        {
            return out;
        }
        let window = i64::from(c.window_seconds) * 1000;
        for (priority, threshold) in c.thresholds() {
            let keep = (i64::from(threshold.duration_seconds()) * 1000 / window).max(1) as usize;
            let t = self.tracks.entry(priority).or_default();
            let breach = value.is_some_and(|v| threshold.operator.holds(v, threshold.value));
            t.breaches.push(breach);
            t.starts.push(start);
            if t.breaches.len() > keep {
                let cut = t.breaches.len() - keep;
                t.breaches.drain(..cut);
                t.starts.drain(..cut);
            }
            let full = t.breaches.len() == keep;
            match t.open_since {
                None => {
                    let since = match threshold.occurrences {
                        Occurrences::All if full && t.breaches.iter().all(|b| *b) => {
                            t.starts.first().copied()
                        }
                        Occurrences::AtLeastOnce if breach => Some(start),
                        _ => None,
                    };
                    if let Some(since) = since {
                        t.open_since = Some(since);
                        t.breaches.clear();
                        t.starts.clear();
                        out.push(Change::Open {
                            priority,
                            value,
                            since,
                        });
                    }
                }
                Some(_) => {
                    if full && t.breaches.iter().all(|b| !*b) {
                        t.open_since = None;
                        t.breaches.clear();
                        t.starts.clear();
                        out.push(Change::Close { priority });
                    }
                }
            }
        }
        out
    }

    /// Whether anything about it is open (kept even when idle).
    pub fn is_open(&self) -> bool {
        self.lost || self.tracks.values().any(|t| t.open_since.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(v: serde_json::Value) -> NrqlCondition {
        let mut base = json!({"nrql": "SELECT count(*) FROM Transaction", "window_seconds": 60,
                              "delay_seconds": 0});
        for (k, x) in v.as_object().unwrap() {
            base[k] = x.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    /// Feeds values one minute apart; returns the changes per window.
    fn run(c: &NrqlCondition, values: &[Option<f64>]) -> Vec<Vec<Change>> {
        let mut s = Signal::default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let start = i as i64 * 60_000;
                s.step(c, start, start + 60_000, *v)
            })
            .collect()
    }

    #[test]
    fn all_needs_every_window_of_the_duration_and_recovery_needs_as_many_without() {
        let c =
            cond(json!({"critical": {"operator": "above", "value": 10, "duration_seconds": 180}}));
        let got = run(
            &c,
            &[
                Some(11.0),
                Some(12.0),
                Some(9.0),
                Some(11.0),
                Some(11.0),
                Some(13.0),
                Some(1.0),
                Some(12.0),
                Some(1.0),
                Some(1.0),
                Some(1.0),
            ],
        );
        let opened: Vec<usize> = got
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.first(), Some(Change::Open { .. })))
            .map(|(i, _)| i)
            .collect();
        // Windows 3, 4, 5 breach in a row: open at 5, since the start of window 3.
        assert_eq!(opened, vec![5]);
        assert_eq!(
            got[5],
            vec![Change::Open {
                priority: Priority::Critical,
                value: Some(13.0),
                since: 180_000
            }]
        );
        // Closed after three windows without a breach (8, 9, 10); 7 breached again.
        assert_eq!(
            got[10],
            vec![Change::Close {
                priority: Priority::Critical
            }]
        );
        assert!(got[6..10].iter().all(Vec::is_empty));
    }

    #[test]
    fn at_least_once_opens_on_one_breach_and_below_compares_the_other_way() {
        let c = cond(
            json!({"warning": {"operator": "below", "value": 5, "duration_seconds": 120,
                                         "occurrences": "at_least_once"}}),
        );
        let got = run(&c, &[Some(6.0), Some(4.0), Some(6.0), Some(6.0)]);
        assert_eq!(
            got[1],
            vec![Change::Open {
                priority: Priority::Warning,
                value: Some(4.0),
                since: 60_000
            }]
        );
        assert_eq!(
            got[3],
            vec![Change::Close {
                priority: Priority::Warning
            }]
        );
    }

    #[test]
    fn empty_windows_reset_all_unless_gaps_are_filled() {
        let c = cond(
            json!({"critical": {"operator": "above_or_equals", "value": 0, "duration_seconds": 120}}),
        );
        // None, then a gap: the run is broken.
        assert!(run(&c, &[Some(1.0), None, Some(1.0)])
            .iter()
            .all(Vec::is_empty));
        let c = cond(
            json!({"critical": {"operator": "above_or_equals", "value": 1, "duration_seconds": 120},
                            "gap_filling": {"type": "last_value"}}),
        );
        let got = run(&c, &[Some(1.0), None]);
        assert!(matches!(got[1][..], [Change::Open { value: Some(v), .. }] if v == 1.0));
        let c = cond(
            json!({"critical": {"operator": "equals", "value": 0, "duration_seconds": 60},
                            "gap_filling": {"type": "static", "value": 0}}),
        );
        assert!(matches!(
            run(&c, &[Some(3.0), None])[1][..],
            [Change::Open { .. }]
        ));
    }

    #[test]
    fn loss_of_signal_opens_closes_and_restores() {
        // Recovery would take three empty windows; the loss comes first.
        let c = cond(
            json!({"critical": {"operator": "above", "value": 10, "duration_seconds": 180,
                                          "occurrences": "at_least_once"},
                            "loss_of_signal": {"expiration_seconds": 120, "open_incident": true, "close_incidents": true}}),
        );
        let got = run(&c, &[Some(20.0), None, None, None, Some(1.0)]);
        assert!(matches!(got[0][..], [Change::Open { .. }]));
        // 120 s after the last data (window 0 ended at 60 s): window 2 ends at 180 s.
        assert_eq!(
            got[2],
            vec![
                Change::Close {
                    priority: Priority::Critical
                },
                Change::Lost { last_seen: 60_000 }
            ]
        );
        assert!(got[3].is_empty(), "lost once");
        assert_eq!(got[4], vec![Change::Restored]);
        // Never seen: never lost.
        assert!(run(&c, &[None, None, None, None]).iter().all(Vec::is_empty));
    }

    #[test]
    fn new_signals_wait_for_the_evaluation_delay() {
        let c = cond(
            json!({"critical": {"operator": "above", "value": 10, "duration_seconds": 60},
                            "evaluation_delay_seconds": 120}),
        );
        let got = run(&c, &[Some(20.0), Some(20.0), Some(20.0)]);
        assert!(got[0].is_empty() && got[1].is_empty());
        assert!(matches!(got[2][..], [Change::Open { since: 120_000, .. }]));
    }

    #[test]
    fn warning_and_critical_are_tracked_apart() {
        let c = cond(
            json!({"critical": {"operator": "above", "value": 100, "duration_seconds": 60},
                            "warning": {"operator": "above", "value": 50, "duration_seconds": 60}}),
        );
        let got = run(&c, &[Some(60.0), Some(120.0), Some(10.0)]);
        assert_eq!(
            got[0],
            vec![Change::Open {
                priority: Priority::Warning,
                value: Some(60.0),
                since: 0
            }]
        );
        assert_eq!(
            got[1],
            vec![Change::Open {
                priority: Priority::Critical,
                value: Some(120.0),
                since: 60_000
            }]
        );
        assert_eq!(
            got[2],
            vec![
                Change::Close {
                    priority: Priority::Critical
                },
                Change::Close {
                    priority: Priority::Warning
                }
            ]
        );
    }
}
