//! Escalation policies and the incident clock: which rule is paged, when the next one is, and what
//! acknowledging, the acknowledgement timeout and resolving do to that.
//!
//! PagerDuty's semantics: rule 0 is notified when the incident triggers; if nobody acknowledges
//! within its `escalation_delay_in_minutes`, the next rule is notified, and so on; after the last
//! rule the path repeats from rule 0 up to `num_loops` more times, then stays with the last rule
//! (exhausted). Acknowledging stops escalation; an acknowledged incident that is not resolved
//! within the acknowledgement timeout returns to triggered and escalates again from rule 0.
//! Low-urgency incidents notify rule 0 and never escalate.

use serde::{Deserialize, Serialize};

/// Most loops a policy may repeat (PagerDuty's UI limit).
pub const MAX_LOOPS: u32 = 9;
/// Most targets per rule (PagerDuty's limit).
pub const MAX_TARGETS: usize = 10;
/// Acknowledgement timeout when none is configured: 30 minutes.
pub const DEFAULT_ACK_TIMEOUT_MS: i64 = 30 * 60_000;

/// What a rule pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// A user, through their contact methods.
    User,
    /// Whoever is on call on the schedule when the rule fires.
    Schedule,
    /// A notification channel directly (a team's Slack channel, a webhook).
    Channel,
}

/// One target of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `user`, `schedule` or `channel`.
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// Its id.
    pub id: i64,
}

/// One escalation rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationRule {
    /// Minutes before an unacknowledged incident moves on to the next rule.
    pub escalation_delay_in_minutes: u32,
    /// Who is paged (1–10).
    pub targets: Vec<Target>,
}

/// An escalation policy's rules and repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    /// Rules in order.
    pub escalation_rules: Vec<EscalationRule>,
    /// How many times the whole path repeats after the last rule (0–9).
    #[serde(default)]
    pub num_loops: u32,
    /// Off: incidents routed to it are opened but page nobody. Absent means on.
    #[serde(default = "on")]
    pub enabled: bool,
}

fn on() -> bool {
    true
}

impl EscalationPolicy {
    /// Checks the limits; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.escalation_rules.is_empty() {
            return Err("escalation_rules must hold at least one rule".into());
        }
        if self.num_loops > MAX_LOOPS {
            return Err(format!("num_loops must be at most {MAX_LOOPS}"));
        }
        for (i, r) in self.escalation_rules.iter().enumerate() {
            if r.targets.is_empty() || r.targets.len() > MAX_TARGETS {
                return Err(format!(
                    "escalation_rules[{i}].targets must hold 1 to {MAX_TARGETS} targets"
                ));
            }
            // PagerDuty's minimum is 1 minute when there is more than one rule (or a loop);
            // 0 would page every rule at once, which is what several targets in one rule are for.
            if r.escalation_delay_in_minutes == 0
                && (self.escalation_rules.len() > 1 || self.num_loops > 0)
            {
                return Err(format!(
                    "escalation_rules[{i}].escalation_delay_in_minutes must be at least 1"
                ));
            }
        }
        Ok(())
    }

    fn delay_ms(&self, rule: usize) -> i64 {
        self.escalation_rules
            .get(rule)
            .map_or(0, |r| i64::from(r.escalation_delay_in_minutes) * 60_000)
    }

    /// The step after `(rule, lap)`, or none when the path is exhausted.
    fn after(&self, rule: usize, lap: u32) -> Option<(usize, u32)> {
        if rule + 1 < self.escalation_rules.len() {
            Some((rule + 1, lap))
        } else if lap < self.num_loops {
            Some((0, lap + 1))
        } else {
            None
        }
    }
}

/// The incident states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Open and paging.
    Triggered,
    /// Someone is on it.
    Acknowledged,
    /// Over.
    Resolved,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "triggered" => Some(Status::Triggered),
            "acknowledged" => Some(Status::Acknowledged),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// The part of an incident that decides its timers (what the store keeps per incident).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Current state.
    pub status: Status,
    /// High urgency escalates; low only notifies.
    pub high_urgency: bool,
    /// The rule paged last.
    pub rule: usize,
    /// How many times the path has wrapped around.
    pub lap: u32,
    /// When the next rule is due (triggered, high urgency, path not exhausted).
    pub next_escalation_at: Option<i64>,
    /// When an acknowledgement lapses.
    pub ack_until: Option<i64>,
}

/// Something the engine must do because the clock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Page the targets of `rule` (on lap `lap`); `repeat` when the path wrapped around.
    Notify {
        /// The rule whose targets are paged.
        rule: usize,
        /// Which pass over the rules.
        lap: u32,
        /// Why: the first page, an escalation, a repeat of the path or an ack that lapsed.
        why: Why,
        /// When it was due.
        at: i64,
    },
    /// The last rule of the last loop has passed; the incident stays with it.
    Exhausted {
        /// When.
        at: i64,
    },
}

/// Why a rule is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The incident triggered.
    Triggered,
    /// The previous rule's delay passed without an acknowledgement.
    Escalated,
    /// The path started over (`num_loops`).
    Repeated,
    /// The acknowledgement timed out and the incident triggered again.
    AckTimedOut,
}

impl Why {
    /// The timeline name.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Triggered => "triggered",
            Why::Escalated => "escalated",
            Why::Repeated => "repeated",
            Why::AckTimedOut => "ack_timeout",
        }
    }
}

impl Clock {
    /// A new incident at `now`: rule 0 is paged.
    pub fn trigger(policy: &EscalationPolicy, high_urgency: bool, now: i64) -> (Clock, Step) {
        let clock = Clock {
            status: Status::Triggered,
            high_urgency,
            rule: 0,
            lap: 0,
            next_escalation_at: escalation_due(policy, high_urgency, 0, now),
            ack_until: None,
        };
        let step = Step::Notify {
            rule: 0,
            lap: 0,
            why: Why::Triggered,
            at: now,
        };
        (clock, step)
    }

    /// Someone acknowledged at `now`: escalation stops until `now + ack_timeout_ms`.
    /// Returns false (and changes nothing) unless the incident was triggered.
    pub fn acknowledge(&mut self, now: i64, ack_timeout_ms: Option<i64>) -> bool {
        if self.status != Status::Triggered {
            return false;
        }
        self.status = Status::Acknowledged;
        self.next_escalation_at = None;
        self.ack_until = ack_timeout_ms.filter(|t| *t > 0).map(|t| now + t);
        true
    }

    /// Resolved: no more timers. False when it already was.
    pub fn resolve(&mut self) -> bool {
        if self.status == Status::Resolved {
            return false;
        }
        self.status = Status::Resolved;
        self.next_escalation_at = None;
        self.ack_until = None;
        true
    }

    /// The earliest instant at which [`Clock::advance`] has something to do.
    pub fn next_due(&self) -> Option<i64> {
        match self.status {
            Status::Triggered => self.next_escalation_at,
            Status::Acknowledged => self.ack_until,
            Status::Resolved => None,
        }
    }

    /// Applies every transition due by `now`, in order, and says what to page. A replica that
    /// was down for a while catches up here: each missed step is returned with its due time.
    pub fn advance(&mut self, policy: &EscalationPolicy, now: i64) -> Vec<Step> {
        let mut steps = Vec::new();
        // Bounded: each pass either moves one rule forward or clears the timer.
        for _ in 0..=(policy.escalation_rules.len() * (MAX_LOOPS as usize + 1) + 1) {
            match self.status {
                Status::Acknowledged => match self.ack_until {
                    Some(t) if t <= now => {
                        self.status = Status::Triggered;
                        self.ack_until = None;
                        self.rule = 0;
                        self.lap = 0;
                        self.next_escalation_at = escalation_due(policy, self.high_urgency, 0, t);
                        steps.push(Step::Notify {
                            rule: 0,
                            lap: 0,
                            why: Why::AckTimedOut,
                            at: t,
                        });
                    }
                    _ => break,
                },
                Status::Triggered => match self.next_escalation_at {
                    Some(t) if t <= now => match policy.after(self.rule, self.lap) {
                        Some((rule, lap)) => {
                            let why = if lap > self.lap {
                                Why::Repeated
                            } else {
                                Why::Escalated
                            };
                            self.rule = rule;
                            self.lap = lap;
                            self.next_escalation_at =
                                escalation_due(policy, self.high_urgency, rule, t);
                            steps.push(Step::Notify {
                                rule,
                                lap,
                                why,
                                at: t,
                            });
                        }
                        None => {
                            self.next_escalation_at = None;
                            steps.push(Step::Exhausted { at: t });
                        }
                    },
                    _ => break,
                },
                Status::Resolved => break,
            }
        }
        steps
    }
}

/// When rule `rule` (paged at `at`) hands over, if it ever does.
/// The last rule of the last lap still has a due time: reaching it records "exhausted".
fn escalation_due(
    policy: &EscalationPolicy,
    high_urgency: bool,
    rule: usize,
    at: i64,
) -> Option<i64> {
    high_urgency.then(|| at + policy.delay_ms(rule))
}
