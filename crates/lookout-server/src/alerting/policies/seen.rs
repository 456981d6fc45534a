//! What a domain event means to alert policies: the condition name it answers to, its signal
//! (`monitor:7`, `issue:12`, …), its title, and whether it triggers or resolves.

use serde_json::Value;

use super::{cluster, regression_title};
use lookout_oncall::dedup::Severity;
use lookout_oncall::inbound::Action;
use lookout_store::events::DomainEvent;

/// What a domain event means to policies.
pub(super) struct Seen {
    /// The monitor or error event name a condition lists.
    pub(super) name: &'static str,
    /// `monitor:7`, `issue:12`, `cert:7`.
    pub(super) signal: String,
    pub(super) title: String,
    pub(super) monitor_id: Option<i64>,
    pub(super) project_id: Option<i64>,
    pub(super) issue_id: Option<i64>,
    /// The series a performance regression was found in.
    pub(super) series: Option<String>,
    /// A database finding's kind and target.
    pub(super) db_kind: Option<String>,
    pub(super) db_target: Option<i64>,
    /// The backup target an event concerns (`lookout` for Lookout's own).
    pub(super) backup_target: Option<String>,
    /// The policy and condition a query condition's event belongs to.
    pub(super) nrql: Option<(i64, usize)>,
    /// A severity the event sets itself (a query condition's priority).
    pub(super) severity: Option<Severity>,
    /// A query condition's signal: the priority it should have once this event is applied,
    /// from what stays open (none: nothing does, and a recovery resolves it).
    pub(super) priority_after: Option<Severity>,
}

pub(super) fn read(e: &DomainEvent) -> Option<(Seen, Action)> {
    let p = &e.payload;
    let str_of = |k: &str| {
        p.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let monitor = p.get("monitor_id").and_then(Value::as_i64);
    let issue = p.get("issue_id").and_then(Value::as_i64);
    let seen = |name: &'static str, signal: String, title: String| Seen {
        name,
        signal,
        title,
        monitor_id: monitor,
        project_id: e.project_id,
        issue_id: issue,
        series: p.get("series").and_then(Value::as_str).map(str::to_string),
        db_kind: p.get("kind").and_then(Value::as_str).map(str::to_string),
        db_target: p.get("target_id").and_then(Value::as_i64),
        backup_target: p.get("target").and_then(Value::as_str).map(str::to_string),
        nrql: None,
        severity: None,
        priority_after: None,
    };
    if let Some(replica) = cluster::read(e) {
        return Some(replica);
    }
    let m = || format!("monitor:{}", monitor.unwrap_or_default());
    let i = || format!("issue:{}", issue.unwrap_or_default());
    if let Some(kind) = e.kind.strip_prefix("nrql.") {
        // Query conditions: the signal is the policy, condition and facet value. Warning,
        // critical and loss of signal are one incident per signal whose priority follows what
        // is still open (`open`, highest first; events from before it existed hold their own
        // priority only).
        let policy = p.get("policy_id").and_then(Value::as_i64)?;
        let condition = usize::try_from(p.get("condition").and_then(Value::as_i64)?).ok()?;
        let own = match kind {
            "signal_lost" | "signal_restored" => "lost".to_string(),
            _ => str_of("priority"),
        };
        let open: Option<Vec<&str>> = p
            .get("open")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let action = match kind {
            "breach" | "signal_lost" => Action::Trigger,
            _ => Action::Resolve,
        };
        let mut s = seen(
            "nrql",
            format!("nrql:{policy}:{condition}:{}", str_of("signal")),
            str_of("title"),
        );
        s.nrql = Some((policy, condition));
        s.severity = Some(priority_severity(&own));
        s.priority_after = match open {
            Some(open) => nrql_priority(&open),
            None if action == Action::Trigger => s.severity,
            None => None,
        };
        return Some((s, action));
    }
    Some(match e.kind.as_str() {
        "monitor.down" => (
            seen(
                "down",
                m(),
                format!("{} is down: {}", str_of("name"), str_of("reason")),
            ),
            Action::Trigger,
        ),
        "cron.missed" => (
            seen(
                "cron_missed",
                m(),
                format!("{}: {}", str_of("name"), str_of("reason")),
            ),
            Action::Trigger,
        ),
        "cron.failed" => (
            seen(
                "cron_failed",
                m(),
                format!("{}: {}", str_of("name"), str_of("reason")),
            ),
            Action::Trigger,
        ),
        "monitor.certificate_expiring" => (
            seen(
                "certificate_expiring",
                format!("cert:{}", monitor.unwrap_or_default()),
                format!("{}: {}", str_of("name"), str_of("reason")),
            ),
            Action::Trigger,
        ),
        "monitor.up" => (seen("up", m(), String::new()), Action::Resolve),
        "issue.created" => (
            seen("new_issue", i(), format!("New issue: {}", str_of("title"))),
            Action::Trigger,
        ),
        "issue.regressed" => (
            seen(
                "regression",
                i(),
                format!("Regression: {}", str_of("title")),
            ),
            Action::Trigger,
        ),
        "issue.events" => (seen("frequency", i(), String::new()), Action::Trigger),
        "issue.resolved" => (seen("resolved", i(), String::new()), Action::Resolve),
        "db.finding" => (
            seen(
                "db_finding",
                format!(
                    "db:{}:{}:{}",
                    p.get("target_id")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    str_of("kind"),
                    str_of("object")
                ),
                format!(
                    "{}: {} {}: {}",
                    str_of("target"),
                    str_of("kind").replace('_', " "),
                    str_of("object"),
                    str_of("detail").chars().take(200).collect::<String>()
                ),
            ),
            Action::Trigger,
        ),
        "backup.failed" | "backup.stale" => (
            seen(
                if e.kind == "backup.failed" {
                    "backup_failed"
                } else {
                    "backup_stale"
                },
                format!("backup:{}", str_of("target")),
                format!("Backup {}: {}", str_of("target"), str_of("reason")),
            ),
            Action::Trigger,
        ),
        "backup.ok" => (
            seen(
                "backup_ok",
                format!("backup:{}", str_of("target")),
                String::new(),
            ),
            Action::Resolve,
        ),
        "regression.detected" => (
            seen(
                "performance_regression",
                format!("series:{}", e.subject.as_deref().unwrap_or_default()),
                regression_title(p),
            ),
            Action::Trigger,
        ),
        _ => return None,
    })
}

/// A query condition's priority name as a severity (a lost signal pages as critical, as New
/// Relic's loss-of-signal incidents do).
fn priority_severity(p: &str) -> Severity {
    if p == "warning" {
        Severity::Warning
    } else {
        Severity::Critical
    }
}

/// The priority a query signal has while `open` (its open priorities and `lost`) stay open: the
/// highest breach, else critical for a lost signal alone; none when nothing is open.
fn nrql_priority(open: &[&str]) -> Option<Severity> {
    if open.contains(&"critical") {
        Some(Severity::Critical)
    } else if open.contains(&"warning") {
        Some(Severity::Warning)
    } else if open.contains(&"lost") {
        Some(Severity::Critical)
    } else {
        None
    }
}
