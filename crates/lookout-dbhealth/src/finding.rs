//! What a check found: a kind (`slow_query`, `unused_index`, …), a severity, the object it is
//! about (`public.orders`, an index, a query id) and a sentence of detail.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `slow_query`, `unused_index`, `duplicate_index`, `invalid_index`, `missing_index`,
    /// `long_running_query`, `idle_in_transaction`, `connections`, `vacuum_overdue`,
    /// `analyze_overdue`, `wraparound`, `sequence_overflow`, `cache_hit_ratio`, `table_bloat`,
    /// `replication_lag`, `extension_missing`.
    pub kind: &'static str,
    pub severity: Severity,
    /// What it is about: `schema.table`, `schema.index`, or `query <id>`.
    pub object: String,
    pub detail: String,
    /// Figures behind it, for machines and trends (calls, mean_ms, size_bytes…).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Finding {
    pub fn new(
        kind: &'static str,
        severity: Severity,
        object: impl Into<String>,
        detail: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            severity,
            object: object.into(),
            detail: detail.into(),
            data: serde_json::Map::new(),
        }
    }

    /// Adds a figure.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Finding {
        self.data.insert(key.into(), value.into());
        self
    }
}
