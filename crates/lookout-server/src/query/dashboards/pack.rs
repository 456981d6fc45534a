//! The default pack, `golden-signals`: eight alert policies, each with a runbook — high error
//! rate, p95 latency above target, Apdex drop, throughput drop, monitor down, slow database
//! queries, new or regressed error issue, heartbeat or backup missed — and four dashboards:
//! service overview, database, uptime, errors. Installing is idempotent: what exists by name
//! (policies, runbooks) or slug (dashboards) is left as the team changed it.
//!
//! The pack's policies page the escalation policy the installer names, or the organization's
//! only one; without one they page nobody, and the answer says so. A pack policy whose
//! conditions overlap a policy the team already has is installed and named in `overlaps`:
//! the policy consumer opens one incident per problem whichever policies match, so the overlap
//! costs no second page, but the team should know both exist.

use serde_json::{json, Value};

use super::spec::Dashboard;
use crate::alerting::policies::{Condition, PolicySpec};
use crate::service::{ServiceError, ServiceResult};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{tenancy, Store};

/// The packs there are.
pub const PACKS: &[&str] = &["golden-signals"];

/// What an install did.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct Installed {
    pub policies_created: Vec<String>,
    pub dashboards_created: Vec<String>,
    pub runbooks_created: Vec<String>,
    /// Already there, left as they are.
    pub kept: Vec<String>,
    /// The escalation policy the created alert policies page (none: they page nobody).
    pub escalation_policy: Option<PackEscalation>,
    /// Created policies that overlap one the team already has, in words.
    pub overlaps: Vec<String>,
    /// What the installer should know (no escalation policy, several to choose from).
    pub warnings: Vec<String>,
}

/// The escalation policy a pack's alert policies page.
#[derive(Debug, serde::Serialize, PartialEq, Eq)]
pub struct PackEscalation {
    pub id: i64,
    pub name: String,
}

/// Which escalation policy the pack's alert policies page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Escalation {
    /// The organization's only escalation policy, when it has exactly one.
    #[default]
    Default,
    /// This one, by id or name.
    Named(String),
    /// None: the policies page nobody until one is set.
    Nobody,
}

impl Escalation {
    /// From a flag or form value: empty is the default, `none` is nobody, else an id or name.
    pub fn parse(v: Option<&str>) -> Escalation {
        match v.map(str::trim) {
            None | Some("") => Escalation::Default,
            Some(n) if n.eq_ignore_ascii_case("none") => Escalation::Nobody,
            Some(n) => Escalation::Named(n.to_string()),
        }
    }
}

/// (name, runbook, policy spec without runbook).
fn policies() -> Vec<(&'static str, &'static str, Value)> {
    let nrql = |q: &str, critical: Value, warning: Value| {
        json!({"source": "nrql", "nrql": q, "window_seconds": 60, "delay_seconds": 120,
               "critical": critical, "warning": warning})
    };
    vec![
        ("High error rate",
         "# High error rate\n\nMore than 5 % of a service's requests failed for 5 minutes.\n\n- [ ] Open the service's page: which transactions fail, since when?\n- [ ] Check the newest deploy marker and roll back if it lines up\n- [ ] Look at the error issues of the same window\n",
         json!({"conditions": [nrql("SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction FACET appName",
             json!({"operator": "above", "value": 5, "duration_seconds": 300}),
             json!({"operator": "above", "value": 2, "duration_seconds": 300}))],
             "severity": "error"})),
        ("p95 latency above target",
         "# p95 latency above target\n\nA service's 95th percentile stayed above 1 s for 5 minutes.\n\n- [ ] Find the slowest transactions and their traces\n- [ ] Check database time and slow queries\n- [ ] Check external calls and saturation (CPU, pool sizes)\n",
         json!({"conditions": [nrql("SELECT percentile(duration, 95) FROM Transaction FACET appName",
             json!({"operator": "above", "value": 1.0, "duration_seconds": 300}),
             json!({"operator": "above", "value": 0.5, "duration_seconds": 300}))],
             "severity": "error"})),
        ("Apdex drop",
         "# Apdex drop\n\nFewer users are satisfied: Apdex (T = 0.5 s) stayed below 0.7.\n\n- [ ] Compare latency and errors with the previous day\n- [ ] Look for a deploy or a traffic change\n",
         json!({"conditions": [nrql("SELECT apdex(duration, t: 0.5) FROM Transaction FACET appName",
             json!({"operator": "below", "value": 0.7, "duration_seconds": 300}),
             json!({"operator": "below", "value": 0.85, "duration_seconds": 300}))],
             "severity": "warning"})),
        ("Throughput drop",
         "# Throughput drop\n\nA service served almost nothing for 10 minutes, or stopped reporting.\n\n- [ ] Is the service up (uptime monitors, load balancer)?\n- [ ] Is upstream traffic arriving (DNS, CDN)?\n- [ ] Is telemetry still exported?\n",
         json!({"conditions": [{"source": "nrql", "nrql": "SELECT count(*) FROM Transaction FACET appName",
             "window_seconds": 300, "delay_seconds": 120,
             "critical": {"operator": "below", "value": 1, "duration_seconds": 600},
             "gap_filling": {"type": "static", "value": 0},
             "loss_of_signal": {"expiration_seconds": 900, "open_incident": true, "close_incidents": false}}],
             "severity": "critical"})),
        ("Monitor down",
         "# Monitor down\n\nAn uptime check failed enough times in a row.\n\n- [ ] Open the monitor: what failed, from when?\n- [ ] Reproduce with curl from outside\n- [ ] Post on the status page if users are affected\n",
         json!({"conditions": [{"source": "monitor", "events": ["down"]}], "severity": "critical"})),
        ("Slow database queries",
         "# Slow database queries\n\nDatabase calls got slow, or a database check found slow statements.\n\n- [ ] Open the Databases page: statement, calls, mean time\n- [ ] EXPLAIN the statement; check for a missing index\n",
         json!({"conditions": [
             {"source": "database", "kinds": ["slow_query"]},
             nrql("SELECT percentile(duration, 95) FROM Span WHERE category = 'db' FACET appName",
                  json!({"operator": "above", "value": 0.5, "duration_seconds": 600}),
                  json!({"operator": "above", "value": 0.2, "duration_seconds": 600}))],
             "severity": "warning"})),
        ("New or regressed error issue",
         "# New or regressed error issue\n\nAn error nobody has seen before, or one that came back after being resolved.\n\n- [ ] Read the stack trace and the release it appeared in\n- [ ] Assign it, or resolve it in the next release\n",
         json!({"conditions": [{"source": "errors", "event": "new_issue"}, {"source": "errors", "event": "regression"}],
             "severity": "warning", "urgency": "low"})),
        ("Heartbeat or backup missed",
         "# Heartbeat or backup missed\n\nA scheduled job did not check in, or a backup or restore drill failed or is stale.\n\n- [ ] Check the job's logs and its last check-in\n- [ ] For backups: run `lookout backup verify` or a drill now\n",
         json!({"conditions": [{"source": "monitor", "events": ["cron_missed", "cron_failed"]},
                               {"source": "backups", "events": ["failed", "stale"]}],
             "severity": "critical"})),
    ]
}

const DASHBOARDS: &str = r#"
- name: Service overview
  slug: service-overview
  description: Golden signals per service, from the request spans.
  filters:
    - attribute: appName
      values_from: SELECT uniques(appName) FROM Transaction
  pages:
    - name: Overview
      widgets:
        - {title: Error rate, type: billboard, width: 3, query: "SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction", thresholds: {warning: 2, critical: 5}}
        - {title: Apdex, type: billboard, width: 3, query: "SELECT apdex(duration, t: 0.5) FROM Transaction", thresholds: {warning: 0.85, critical: 0.7, direction: below}}
        - {title: Requests per minute, type: billboard, width: 3, query: "SELECT rate(count(*), 1 minute) FROM Transaction"}
        - {title: p95, type: billboard, width: 3, query: "SELECT percentile(duration, 95) FROM Transaction", thresholds: {warning: 0.5, critical: 1}}
        - {title: Throughput, type: line, width: 6, query: "SELECT rate(count(*), 1 minute) FROM Transaction FACET appName TIMESERIES"}
        - {title: Response time p50/p95/p99 (s), type: line, width: 6, query: "SELECT percentile(duration, 50, 95, 99) FROM Transaction TIMESERIES"}
        - {title: Responses by status, type: stacked_bar, width: 6, query: "SELECT count(*) FROM Transaction FACET http.statusCode TIMESERIES"}
        - {title: Latency distribution (s), type: histogram, width: 6, query: "SELECT histogram(duration, 2, 10) FROM Transaction"}
        - {title: Slowest transactions, type: table, width: 12, query: "SELECT percentile(duration, 95), count(*), percentage(count(*), WHERE error IS TRUE) FROM Transaction FACET appName, name LIMIT 10"}
- name: Database
  slug: database
  description: Database calls seen by the applications' spans.
  filters:
    - attribute: appName
      values_from: SELECT uniques(appName) FROM Span WHERE category = 'db'
  pages:
    - name: Database
      widgets:
        - {title: Calls per minute, type: billboard, width: 4, query: "SELECT rate(count(*), 1 minute) FROM Span WHERE category = 'db'"}
        - {title: Mean call, type: billboard, width: 4, query: "SELECT average(duration) FROM Span WHERE category = 'db'", thresholds: {warning: 0.05, critical: 0.2}}
        - {title: Failed calls, type: billboard, width: 4, query: "SELECT filter(count(*), WHERE error IS TRUE) FROM Span WHERE category = 'db'", thresholds: {warning: 1, critical: 10}}
        - {title: p95 by database (s), type: line, width: 6, query: "SELECT percentile(duration, 95) FROM Span WHERE category = 'db' FACET db.system TIMESERIES"}
        - {title: Calls by service, type: stacked_bar, width: 6, query: "SELECT count(*) FROM Span WHERE category = 'db' FACET appName TIMESERIES"}
        - {title: Statements by total time, type: table, width: 12, query: "SELECT sum(duration), count(*), average(duration) FROM Span WHERE category = 'db' FACET db.statement LIMIT 15"}
- name: Uptime
  slug: uptime
  description: Every monitor's checks.
  filters:
    - attribute: monitorName
      values_from: SELECT uniques(monitorName) FROM SyntheticCheck
  pages:
    - name: Uptime
      widgets:
        - {title: Uptime, type: billboard, width: 4, query: "SELECT percentage(count(*), WHERE result = 'SUCCESS') FROM SyntheticCheck", thresholds: {warning: 99.9, critical: 99, direction: below}}
        - {title: Failed checks, type: billboard, width: 4, query: "SELECT filter(count(*), WHERE result = 'FAILED') FROM SyntheticCheck", thresholds: {warning: 1, critical: 5}}
        - {title: Check duration p95, type: billboard, width: 4, query: "SELECT percentile(duration, 95) FROM SyntheticCheck"}
        - {title: Uptime per monitor (%), type: table, width: 6, query: "SELECT percentage(count(*), WHERE result = 'SUCCESS'), count(*) FROM SyntheticCheck FACET monitorName LIMIT 50"}
        - {title: Check duration (s), type: line, width: 6, query: "SELECT average(duration) FROM SyntheticCheck FACET monitorName TIMESERIES"}
        - {title: Failures, type: stacked_bar, width: 12, query: "SELECT filter(count(*), WHERE result = 'FAILED') FROM SyntheticCheck FACET monitorName TIMESERIES"}
- name: Errors
  slug: errors
  description: Error events from the Sentry SDKs.
  filters:
    - attribute: appName
      values_from: SELECT uniques(appName) FROM ErrorEvent
  pages:
    - name: Errors
      widgets:
        - {title: Error events, type: billboard, width: 4, query: "SELECT count(*) FROM ErrorEvent"}
        - {title: Users affected, type: billboard, width: 4, query: "SELECT uniqueCount(enduser.id) FROM ErrorEvent"}
        - {title: Issues with events, type: billboard, width: 4, query: "SELECT uniqueCount(issueId) FROM ErrorEvent"}
        - {title: Events by class, type: area, width: 12, query: "SELECT count(*) FROM ErrorEvent FACET error.class TIMESERIES"}
        - {title: Top errors, type: table, width: 8, query: "SELECT count(*), uniqueCount(enduser.id), latest(error.message) FROM ErrorEvent FACET error.class LIMIT 20"}
        - {title: Triage, type: markdown, width: 4, text: "New or regressed issues page the team through the **New or regressed error issue** policy. Resolve an issue *in the next release* when the fix ships with it."}
"#;

/// The pack's dashboards.
pub fn dashboards() -> Vec<Dashboard> {
    serde_yaml_ng::from_str(DASHBOARDS).unwrap_or_default()
}

/// Installs pack `name` into the default organization, paging the default escalation policy.
pub async fn install(store: &Store, name: &str) -> Result<Installed, String> {
    install_with(store, name, &Escalation::Default)
        .await
        .map_err(|e| e.to_string())
}

/// The escalation policy `choice` names, with what the installer should hear about it.
async fn escalation_of(
    store: &Store,
    org: i64,
    choice: &Escalation,
) -> ServiceResult<(Option<PackEscalation>, Option<String>)> {
    let all = astore::spec_list(store, SpecTable::EscalationPolicies, org).await?;
    let view = |r: &lookout_store::alerting::SpecRow| PackEscalation {
        id: r.id,
        name: r.name.clone(),
    };
    Ok(match choice {
        Escalation::Nobody => (
            None,
            Some("installed without an escalation policy, as asked: its alert policies page nobody".into()),
        ),
        Escalation::Named(n) => {
            let found = all
                .iter()
                .find(|r| r.id.to_string() == *n || r.name.eq_ignore_ascii_case(n))
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "escalation_policy: no escalation policy {n:?} (give its id or name)"
                    ))
                })?;
            (Some(view(found)), None)
        }
        Escalation::Default => match all.as_slice() {
            [only] => (Some(view(only)), None),
            [] => (
                None,
                Some("there is no escalation policy yet: the pack's alert policies page nobody until one is set on them (or install again with an escalation policy)".into()),
            ),
            many => (
                None,
                Some(format!(
                    "{} escalation policies and none chosen: the pack's alert policies page nobody; choose one with --escalation-policy (or escalation_policy in the API)",
                    many.len()
                )),
            ),
        },
    })
}

/// Whether two conditions match some of the same problems.
fn overlap(a: &Condition, b: &Condition) -> bool {
    let meet = |x: &[String], y: &[String]| {
        x.is_empty() || y.is_empty() || x.iter().any(|v| y.contains(v))
    };
    let meet_ids =
        |x: &[i64], y: &[i64]| x.is_empty() || y.is_empty() || x.iter().any(|v| y.contains(v));
    match (a, b) {
        (
            Condition::Monitor {
                events: e1,
                monitor_ids: m1,
            },
            Condition::Monitor {
                events: e2,
                monitor_ids: m2,
            },
        ) => meet(e1, e2) && meet_ids(m1, m2),
        (Condition::Errors { event: e1, .. }, Condition::Errors { event: e2, .. }) => e1 == e2,
        (Condition::Backups { events: e1, .. }, Condition::Backups { events: e2, .. }) => {
            meet(e1, e2)
        }
        (Condition::Database { kinds: k1, .. }, Condition::Database { kinds: k2, .. }) => {
            meet(k1, k2)
        }
        (Condition::Regressions { .. }, Condition::Regressions { .. }) => true,
        (Condition::Nrql(x), Condition::Nrql(y)) => {
            let norm = |q: &str| {
                q.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(&x.nrql) == norm(&y.nrql)
        }
        _ => false,
    }
}

/// The team's policies (not this pack's) that `spec` overlaps, in words.
fn overlaps_with(
    policy: &str,
    spec: &PolicySpec,
    existing: &[(String, PolicySpec)],
) -> Vec<String> {
    existing
        .iter()
        .filter(|(_, other)| {
            spec.conditions
                .iter()
                .any(|c| other.conditions.iter().any(|o| overlap(c, o)))
        })
        .map(|(name, _)| {
            format!(
                "{policy:?} overlaps your policy {name:?}: both match some of the same problems (one incident opens between them, routed by the one that pages somebody)"
            )
        })
        .collect()
}

/// Installs pack `name` into the default organization; its alert policies page `escalation`.
pub async fn install_with(
    store: &Store,
    name: &str,
    escalation: &Escalation,
) -> ServiceResult<Installed> {
    if name != "golden-signals" {
        return Err(ServiceError::Invalid(format!(
            "no pack {name:?}: the packs are {}",
            PACKS.join(", ")
        )));
    }
    let e = ServiceError::from;
    let org = tenancy::default_org(store).await.map_err(e)?;
    let mut out = Installed::default();
    let (ep, warning) = escalation_of(store, org.id, escalation).await?;
    out.warnings.extend(warning);
    let existing = astore::spec_list(store, SpecTable::Policies, org.id)
        .await
        .map_err(e)?;
    let pack_names: Vec<&str> = policies().iter().map(|p| p.0).collect();
    let team: Vec<(String, PolicySpec)> = existing
        .iter()
        .filter(|p| !pack_names.contains(&p.name.as_str()))
        .filter_map(|p| {
            serde_json::from_value::<PolicySpec>(p.spec.clone())
                .ok()
                .filter(|s| s.enabled)
                .map(|s| (p.name.clone(), s))
        })
        .collect();
    let mut runbooks = astore::runbook_list(store, org.id).await.map_err(e)?;
    for (policy, book, spec) in policies() {
        if existing.iter().any(|p| p.name == policy) {
            out.kept.push(format!("policy {policy}"));
            continue;
        }
        let runbook_id = match runbooks.iter().find(|r| r.name == policy) {
            Some(r) => r.id,
            None => {
                let r = astore::runbook_save(
                    store,
                    org.id,
                    None,
                    policy,
                    None,
                    book,
                    "pack:golden-signals",
                )
                .await
                .map_err(e)?;
                out.runbooks_created.push(policy.to_string());
                runbooks.push(r.clone());
                r.id
            }
        };
        let mut spec = spec;
        spec["runbook_id"] = json!(runbook_id);
        if let Some(ep) = &ep {
            spec["escalation_policy_id"] = json!(ep.id);
        }
        let parsed: PolicySpec = serde_json::from_value(spec)
            .map_err(|x| ServiceError::Internal(format!("{policy}: {x}")))?;
        parsed
            .validate()
            .map_err(|x| ServiceError::Internal(format!("{policy}: {x}")))?;
        out.overlaps.extend(overlaps_with(policy, &parsed, &team));
        let stored =
            serde_json::to_value(&parsed).map_err(|x| ServiceError::Internal(x.to_string()))?;
        astore::spec_create(store, SpecTable::Policies, org.id, policy, &stored)
            .await
            .map_err(e)?;
        out.policies_created.push(policy.to_string());
    }
    // Only policies created now page it; kept ones page whatever the team set, so nothing is
    // claimed (or warned about) when every policy was kept.
    if out.policies_created.is_empty() {
        out.warnings.clear();
    } else {
        out.escalation_policy = ep;
    }
    for d in dashboards() {
        if lookout_store::dashboards::by_slug(store, org.id, &d.slug())
            .await
            .map_err(e)?
            .is_some()
        {
            out.kept.push(format!("dashboard {}", d.name));
            continue;
        }
        super::save(store, &d, Some("pack:golden-signals"))
            .await
            .map_err(ServiceError::Internal)?;
        out.dashboards_created.push(d.name.clone());
    }
    Ok(out)
}

/// Whether the pack looks installed (its dashboards exist), for the offer on the Dashboards page.
pub async fn installed(store: &Store) -> bool {
    super::list(store).await.is_ok_and(|rows| {
        rows.iter()
            .any(|r| r.managed_by.as_deref() == Some("pack:golden-signals"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pack_is_eight_valid_policies_and_four_valid_dashboards() {
        let p = policies();
        assert_eq!(p.len(), 8);
        for (name, book, spec) in p {
            let parsed: PolicySpec =
                serde_json::from_value(spec).unwrap_or_else(|e| panic!("{name}: {e}"));
            parsed.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(book.starts_with(&format!("# {name}")), "{name}");
        }
        let d = dashboards();
        assert_eq!(
            d.iter().map(|d| d.slug()).collect::<Vec<_>>(),
            ["service-overview", "database", "uptime", "errors"]
        );
        for x in &d {
            x.validate().unwrap_or_else(|e| panic!("{}: {e}", x.name));
        }
    }
}
