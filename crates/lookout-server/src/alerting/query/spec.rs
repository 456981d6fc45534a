//! What a query (NRQL) alert condition is made of, with New Relic's names and limits:
//!
//! ```json
//! {"source": "nrql",
//!  "nrql": "SELECT percentile(duration, 95) FROM Transaction FACET appName",
//!  "window_seconds": 60, "delay_seconds": 120, "evaluation_delay_seconds": 0,
//!  "critical": {"operator": "above", "value": 0.5, "duration_seconds": 300, "occurrences": "all"},
//!  "warning":  {"operator": "above", "value": 0.3, "duration_seconds": 300, "occurrences": "at_least_once"},
//!  "gap_filling": {"type": "none" | "static" | "last_value", "value": 0},
//!  "loss_of_signal": {"expiration_seconds": 600, "open_incident": true, "close_incidents": true},
//!  "project_ids": [1]}
//! ```
//!
//! Windows of whole minutes read the rollups when the query's shape allows; others (30 s,
//! 45 s, 90 s…) read the raw events. Ranges follow New Relic's.

use serde::{Deserialize, Serialize};

use lookout_nrql::ast::{Expr, Limit, Query};

/// Critical or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    Warning,
}

impl Priority {
    /// `critical`, `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Warning => "warning",
        }
    }
}

/// New Relic's threshold operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Above,
    AboveOrEquals,
    Below,
    BelowOrEquals,
    Equals,
    NotEquals,
}

impl Operator {
    /// Whether `v` breaches `threshold`.
    pub fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Operator::Above => v > threshold,
            Operator::AboveOrEquals => v >= threshold,
            Operator::Below => v < threshold,
            Operator::BelowOrEquals => v <= threshold,
            Operator::Equals => v == threshold,
            Operator::NotEquals => v != threshold,
        }
    }

    /// `above`, `at or above`, …, as titles say it.
    pub fn words(self) -> &'static str {
        match self {
            Operator::Above => "above",
            Operator::AboveOrEquals => "at or above",
            Operator::Below => "below",
            Operator::BelowOrEquals => "at or below",
            Operator::Equals => "equal to",
            Operator::NotEquals => "not equal to",
        }
    }
}

/// "For at least N" or "at least once in N".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Occurrences {
    #[default]
    All,
    AtLeastOnce,
}

/// A threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub operator: Operator,
    pub value: f64,
    /// A multiple of the window, up to 86,400 s; default one window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    #[serde(default)]
    pub occurrences: Occurrences,
    /// Filled in from the condition's window when the duration is left out.
    #[serde(skip)]
    pub window_seconds: u32,
}

impl Threshold {
    /// The duration, seconds.
    pub fn duration_seconds(&self) -> u32 {
        self.duration_seconds.unwrap_or(self.window_seconds)
    }
}

/// What an empty window counts as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GapFill {
    /// Nothing: it breaches nothing and breaks a "for at least" run.
    #[default]
    None,
    /// This value (New Relic's default static value is 0).
    Static {
        #[serde(default)]
        value: f64,
    },
    /// The signal's previous value.
    LastValue,
}

/// Loss of signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossOfSignal {
    /// 30 s – 48 h.
    pub expiration_seconds: u32,
    /// Open a "lost signal" incident (critical).
    #[serde(default)]
    pub open_incident: bool,
    /// Close the signal's open incidents.
    #[serde(default)]
    pub close_incidents: bool,
}

/// A query alert condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NrqlCondition {
    pub nrql: String,
    /// Aggregation window, 30–21,600 s in steps of 15; default 60.
    #[serde(default = "default_window")]
    pub window_seconds: u32,
    /// How long after its end a window is evaluated (late data), 0–1,200 s; default 120.
    #[serde(default = "default_delay")]
    pub delay_seconds: u32,
    /// New signals are not judged for this long, 0–7,200 s.
    #[serde(default)]
    pub evaluation_delay_seconds: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Threshold>,
    #[serde(default)]
    pub gap_filling: GapFill,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_of_signal: Option<LossOfSignal>,
    /// Only these projects (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project_ids: Vec<i64>,
}

fn default_window() -> u32 {
    60
}

fn default_delay() -> u32 {
    120
}

impl NrqlCondition {
    /// The thresholds set, critical first, with the window filled in.
    pub fn thresholds(&self) -> Vec<(Priority, Threshold)> {
        [
            (Priority::Critical, &self.critical),
            (Priority::Warning, &self.warning),
        ]
        .into_iter()
        .filter_map(|(p, t)| {
            t.clone().map(|mut t| {
                t.window_seconds = self.window_seconds;
                (p, t)
            })
        })
        .collect()
    }

    /// The query as evaluated: parsed, every facet kept (`LIMIT MAX`), its own time clauses
    /// dropped (each window sets them), or why it cannot be a condition.
    pub fn query(&self) -> Result<Query, String> {
        let mut q = lookout_nrql::parse(&self.nrql)
            .map_err(|e| format!("nrql: {}", e.render(&self.nrql)))?;
        if q.select.len() != 1 || matches!(q.select[0].expr, Expr::Star) {
            return Err("nrql: a condition's query selects exactly one aggregate".into());
        }
        if let Expr::Call { name, args } = &q.select[0].expr {
            if name.eq_ignore_ascii_case("percentile") && args.len() > 2 {
                return Err("nrql: one percentile per condition".into());
            }
        }
        // A condition compares a number: list and bucket aggregates give none.
        let text = q.select[0].expr.to_string().to_ascii_lowercase();
        if ["uniques(", "histogram("].iter().any(|f| text.contains(f)) {
            return Err("nrql: uniques() and histogram() give no number to compare (New Relic refuses them too)".into());
        }
        if q.compare_with.is_some() {
            return Err(
                "nrql: COMPARE WITH is not allowed in a condition (New Relic refuses it too)"
                    .into(),
            );
        }
        if q.limit.is_some() {
            return Err(
                "nrql: LIMIT is not allowed in a condition: every facet is evaluated".into(),
            );
        }
        q.limit = Some(Limit::Max);
        q.since = None;
        q.until = None;
        q.timeseries = None;
        Ok(q)
    }

    /// Checks the fields; the message names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.query()?;
        if !(30..=21_600).contains(&self.window_seconds) || !self.window_seconds.is_multiple_of(15)
        {
            return Err("window_seconds: 30 to 21600, in steps of 15".into());
        }
        if self.delay_seconds > 1_200 {
            return Err("delay_seconds: 0 to 1200".into());
        }
        if self.evaluation_delay_seconds > 7_200 {
            return Err("evaluation_delay_seconds: 0 to 7200".into());
        }
        let thresholds = self.thresholds();
        if thresholds.is_empty() {
            return Err("critical or warning: at least one threshold".into());
        }
        for (p, t) in &thresholds {
            let d = t.duration_seconds();
            if !(self.window_seconds..=86_400).contains(&d)
                || !d.is_multiple_of(self.window_seconds)
            {
                return Err(format!(
                    "{}.duration_seconds: up to 86400, a multiple of window_seconds",
                    p.as_str()
                ));
            }
            if !t.value.is_finite() {
                return Err(format!("{}.value: a number", p.as_str()));
            }
        }
        if let Some(l) = &self.loss_of_signal {
            if !(30..=172_800).contains(&l.expiration_seconds) {
                return Err("loss_of_signal.expiration_seconds: 30 to 172800".into());
            }
            if !l.open_incident && !l.close_incidents {
                return Err("loss_of_signal: open_incident, close_incidents or both".into());
            }
        }
        Ok(())
    }
}
