//! Service-level objectives: what one is made of, and the error-budget maths.
//!
//! An SLO is over a rolling window (default 30 days) ending at the moment it is evaluated.
//! Availability counts events — requests that did not fail (from the APM rollups) or checks
//! that passed (a monitor's results, maintenance left out). Latency counts hours: an hour is
//! good when the service's p95 (or p99) over that hour is at or under the threshold; hours
//! without requests do not count. The error budget is the share of the window allowed to be
//! bad, `(1 − target) × total`; `budget_remaining` is the part of it not yet used (negative
//! once overspent) and `burn_rate` how fast it went (1.0 spends exactly the budget over the
//! window).

use serde::{Deserialize, Serialize};

/// What an SLO measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// Share of good events.
    Availability,
    /// Share of hours whose percentile latency is within the threshold.
    Latency,
}

/// Where availability comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Requests of the service that did not fail.
    #[default]
    Requests,
    /// Checks of a monitor that passed.
    Uptime,
}

/// An SLO as stored (the `spec` of a row of `slos`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// The service it is for (`service.name`; with `source: uptime`, a label).
    pub service: String,
    pub indicator: Indicator,
    #[serde(default)]
    pub source: Source,
    /// The monitor, for `source: uptime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_id: Option<i64>,
    /// 95 or 99, for latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<u8>,
    /// For latency: an hour is good when its percentile is at or under this, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    /// Percent, e.g. 99.9.
    pub target: f64,
    /// Rolling window, days.
    #[serde(default = "default_window")]
    pub window_days: u32,
}

fn default_window() -> u32 {
    30
}

impl SloSpec {
    /// Checks the fields against each other; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.service.trim().is_empty() {
            return Err("service: required".into());
        }
        if !(self.target > 0.0 && self.target < 100.0) {
            return Err("target: a percentage above 0 and below 100, e.g. 99.9".into());
        }
        if !(1..=365).contains(&self.window_days) {
            return Err("window_days: 1 to 365".into());
        }
        match self.indicator {
            Indicator::Availability => {
                if self.source == Source::Uptime && self.monitor_id.is_none() {
                    return Err("monitor_id: required with source \"uptime\"".into());
                }
                if self.percentile.is_some() || self.threshold_ms.is_some() {
                    return Err("percentile, threshold_ms: only for indicator \"latency\"".into());
                }
            }
            Indicator::Latency => {
                if self.source == Source::Uptime {
                    return Err("source: latency comes from requests".into());
                }
                if !matches!(self.percentile, Some(95 | 99)) {
                    return Err("percentile: 95 or 99".into());
                }
                if !self.threshold_ms.is_some_and(|t| t > 0.0 && t.is_finite()) {
                    return Err("threshold_ms: a positive number of milliseconds".into());
                }
            }
        }
        Ok(())
    }
}

/// Attainment and error budget over a window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Budget {
    /// Good events (or hours).
    pub good: f64,
    /// All events (or hours) counted.
    pub total: f64,
    /// `100 × good / total`; `None` without data.
    pub attainment: Option<f64>,
    /// Percent.
    pub target: f64,
    /// Bad events the target allows: `(1 − target/100) × total`.
    pub budget_total: f64,
    /// Bad events so far.
    pub budget_used: f64,
    /// `1 − used / allowed`: 1.0 untouched, 0 spent, negative overspent; `None` without data.
    pub budget_remaining: Option<f64>,
    /// `(bad / total) / (1 − target/100)`; `None` without data.
    pub burn_rate: Option<f64>,
    /// Attainment at or above the target (`None` without data).
    pub met: Option<bool>,
}

/// The budget of `good` out of `total` against `target` percent.
pub fn budget(good: f64, total: f64, target: f64) -> Budget {
    let allowed_share = 1.0 - target / 100.0;
    let bad = (total - good).max(0.0);
    let has = total > 0.0;
    let budget_total = allowed_share * total;
    Budget {
        good,
        total,
        attainment: has.then(|| 100.0 * good / total),
        target,
        budget_total,
        budget_used: bad,
        budget_remaining: has.then(|| {
            if budget_total > 0.0 {
                1.0 - bad / budget_total
            } else {
                1.0
            }
        }),
        burn_rate: has.then(|| (bad / total) / allowed_share),
        met: has.then(|| 100.0 * good / total >= target - 1e-9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_maths() {
        // 99.9 % of 100,000 requests allows 100 failures; 25 failed.
        let b = budget(99_975.0, 100_000.0, 99.9);
        assert!((b.budget_total - 100.0).abs() < 1e-6);
        assert_eq!(b.budget_used, 25.0);
        assert!((b.budget_remaining.unwrap() - 0.75).abs() < 1e-9);
        assert!((b.burn_rate.unwrap() - 0.25).abs() < 1e-9);
        assert!((b.attainment.unwrap() - 99.975).abs() < 1e-9);
        assert_eq!(b.met, Some(true));
        // Overspent: 300 failures is three budgets.
        let b = budget(99_700.0, 100_000.0, 99.9);
        assert!((b.budget_remaining.unwrap() + 2.0).abs() < 1e-9);
        assert!((b.burn_rate.unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(b.met, Some(false));
        // No data: no verdict.
        let b = budget(0.0, 0.0, 99.0);
        assert_eq!(
            (b.attainment, b.met, b.budget_remaining),
            (None, None, None)
        );
    }

    #[test]
    fn specs_are_checked() {
        let ok: SloSpec = serde_json::from_value(serde_json::json!({
            "service": "checkout", "indicator": "latency", "percentile": 95,
            "threshold_ms": 300, "target": 99
        }))
        .unwrap();
        assert_eq!(ok.window_days, 30);
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.percentile = Some(90);
        assert!(bad.validate().unwrap_err().starts_with("percentile"));
        let mut bad = ok.clone();
        bad.target = 100.0;
        assert!(bad.validate().unwrap_err().starts_with("target"));
        let up: SloSpec = serde_json::from_value(serde_json::json!({
            "service": "site", "indicator": "availability", "source": "uptime", "target": 99.9
        }))
        .unwrap();
        assert!(up.validate().unwrap_err().starts_with("monitor_id"));
    }
}
