//! How signals become incidents: severity and urgency, and the dedup key that decides whether a
//! signal opens a new incident or joins an open one.
//!
//! An open incident is identified by its scope (the policy or integration it came from) and its
//! dedup key; at most one incident per (scope, key) is open at a time. A signal with the key of an
//! open incident is added to it; after the incident resolves, the same key opens a new one.

use serde::{Deserialize, Serialize};

/// Longest dedup key accepted (PagerDuty's limit).
pub const MAX_DEDUP_KEY: usize = 255;

/// PagerDuty's severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Something may go wrong.
    Warning,
    /// Something is wrong.
    Error,
    /// Something important is down.
    Critical,
}

impl Severity {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Reads a name, leniently (`CRITICAL`, `warn`, `page`… as monitoring tools spell them).
    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "fatal" | "emergency" | "alert" | "p1" => {
                Some(Severity::Critical)
            }
            "error" | "err" | "high" | "major" | "p2" => Some(Severity::Error),
            "warning" | "warn" | "medium" | "minor" | "p3" => Some(Severity::Warning),
            "info" | "information" | "informational" | "low" | "ok" | "none" | "p4" | "p5" => {
                Some(Severity::Info)
            }
            _ => None,
        }
    }

    /// PagerDuty's severity-based urgency: critical and error page (high), warning and info do
    /// not escalate (low).
    pub fn urgency(self) -> Urgency {
        match self {
            Severity::Critical | Severity::Error => Urgency::High,
            Severity::Warning | Severity::Info => Urgency::Low,
        }
    }
}

/// High urgency escalates; low notifies once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Escalates until acknowledged.
    High,
    /// Notifies, never escalates.
    Low,
}

impl Urgency {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::High => "high",
            Urgency::Low => "low",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Urgency> {
        match s {
            "high" => Some(Urgency::High),
            "low" => Some(Urgency::Low),
            _ => None,
        }
    }
}

/// How an alert policy groups its signals into incidents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// One open incident per policy.
    PerPolicy,
    /// One per condition of the policy.
    PerCondition,
    /// One per condition and signal (monitor, issue, alert fingerprint): the default.
    #[default]
    PerSignal,
}

impl Grouping {
    /// The dedup key for a signal from condition `condition` about `signal`.
    pub fn key(self, condition: usize, signal: &str) -> String {
        let key = match self {
            Grouping::PerPolicy => "policy".to_string(),
            Grouping::PerCondition => format!("condition:{condition}"),
            Grouping::PerSignal => format!("condition:{condition}:{signal}"),
        };
        clip(&key, MAX_DEDUP_KEY)
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
