//! The report's sections that read errors, uptime, incidents, regressions, databases, backups
//! and load tests. Each takes the period and returns its part of [`super::model`]; the
//! services, capacity and SLO sections are in `services.rs`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeZone;
use serde_json::Value;

use super::model::*;
use super::outcomes::{self, Timing};
use super::slo::SloSpec;
use super::Settings;
use lookout_store::alerting::incidents::IncidentRow;
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::reports::facts;
use lookout_store::{Result, Store};

/// What every section needs.
pub(super) struct Ctx<'a> {
    pub store: &'a Store,
    pub org_id: i64,
    pub projects: &'a [i64],
    pub kind: Kind,
    pub period: &'a Period,
    pub previous: &'a Period,
    pub settings: &'a Settings,
}

impl Ctx<'_> {
    fn review(&self) -> bool {
        self.kind != Kind::Daily
    }
}

fn issue_line(a: &facts::IssueActivity) -> IssueLine {
    IssueLine {
        id: a.id,
        title: a.title.clone(),
        level: a.level.clone(),
        project_id: a.project_id,
        events: a.events,
        users: a.users,
        events_previous: a.events_previous,
        first_seen: a.first_seen,
        url: format!("/errors/issues/{}", a.id),
    }
}

/// New and regressed issues; weekly and monthly add the top issues by events and by users.
pub(super) async fn errors(c: &Ctx<'_>) -> Result<Errors> {
    let (p, prev) = (c.period, c.previous);
    let acts = facts::issue_activity(c.store, c.projects, prev.start, p.start, p.end).await?;
    let by_id: BTreeMap<i64, &facts::IssueActivity> = acts.iter().map(|a| (a.id, a)).collect();
    let busiest = |a: &IssueLine, b: &IssueLine| b.events.cmp(&a.events).then(a.id.cmp(&b.id));
    let mut new_issues: Vec<IssueLine> = acts
        .iter()
        .filter(|a| a.first_seen >= p.start && a.first_seen < p.end)
        .map(issue_line)
        .collect();
    new_issues.sort_by(busiest);
    let mut seen = BTreeSet::new();
    let mut regressed = Vec::new();
    for e in facts::events(c.store, &["issue.regressed"], p.start, p.end).await? {
        let Some(id) = e.payload["issue_id"].as_i64() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        regressed.push(match by_id.get(&id) {
            Some(a) => issue_line(a),
            None => IssueLine {
                id,
                title: e.payload["title"].as_str().unwrap_or_default().to_string(),
                level: String::new(),
                project_id: e.project_id.unwrap_or_default(),
                events: 0,
                users: 0,
                events_previous: 0,
                first_seen: 0,
                url: format!("/errors/issues/{id}"),
            },
        });
    }
    regressed.sort_by(busiest);
    let (mut top_by_events, mut top_by_users) = (Vec::new(), Vec::new());
    if c.review() {
        top_by_events = acts
            .iter()
            .filter(|a| a.events > 0)
            .map(issue_line)
            .collect();
        top_by_events.sort_by(busiest);
        top_by_events.truncate(10);
        top_by_users = acts
            .iter()
            .filter(|a| a.users > 0)
            .map(issue_line)
            .collect();
        top_by_users.sort_by(|a, b| b.users.cmp(&a.users).then(a.id.cmp(&b.id)));
        top_by_users.truncate(10);
    }
    Ok(Errors {
        events: acts.iter().map(|a| a.events).sum(),
        events_previous: acts.iter().map(|a| a.events_previous).sum(),
        new_issues,
        regressed,
        top_by_events,
        top_by_users,
    })
}

/// The down-to-up spans in a monitor's changes (the first may start before the period),
/// clipped to `[start, end)` for their duration; spans that end before the period are left out.
pub(super) fn outages(
    changes: &[(i64, String)],
    start: i64,
    end: i64,
) -> Vec<(i64, Option<i64>, i64)> {
    let mut out = Vec::new();
    let mut down_since: Option<i64> = None;
    for (at, to) in changes {
        match (to.as_str(), down_since) {
            ("down", None) => down_since = Some(*at),
            ("down", Some(_)) => {}
            (_, Some(since)) => {
                out.push((since, Some(*at)));
                down_since = None;
            }
            (_, None) => {}
        }
    }
    if let Some(since) = down_since {
        out.push((since, None));
    }
    out.into_iter()
        .filter(|(_, e)| e.is_none_or(|e| e > start))
        .map(|(s, e)| (s, e, e.unwrap_or(end).min(end) - s.max(start)))
        .collect()
}

fn pct(up: i64, down: i64) -> Option<f64> {
    (up + down > 0).then(|| 100.0 * up as f64 / (up + down) as f64)
}

/// Every monitor's uptime against its SLO, and the outages in the period.
pub(super) async fn uptime(c: &Ctx<'_>, slos: &[(SloLine, SloSpec)]) -> Result<Uptime> {
    let (p, prev) = (c.period, c.previous);
    let mut monitors = Vec::new();
    let mut all_outages = Vec::new();
    for (id, name, kind, _paused) in facts::monitors(c.store, c.org_id).await? {
        let changes = facts::monitor_changes(c.store, id, p.start, p.end).await?;
        let spans = outages(&changes, p.start, p.end);
        let (up, down) = facts::check_counts(c.store, id, p.start, p.end).await?;
        let (pup, pdown) = facts::check_counts(c.store, id, prev.start, prev.end).await?;
        let target = slos
            .iter()
            .find(|(_, s)| s.monitor_id == Some(id))
            .map_or(c.settings.uptime_target, |(_, s)| s.target);
        let uptime = pct(up, down);
        let url = format!("/uptime/monitors/{id}");
        monitors.push(MonitorLine {
            id,
            name: name.clone(),
            kind,
            uptime,
            uptime_previous: pct(pup, pdown),
            checks: up + down,
            failed_checks: down,
            target,
            met: uptime.map(|u| u >= target - 1e-9),
            downtime_ms: spans.iter().map(|s| s.2).sum(),
            outages: spans.len() as u64,
            url: url.clone(),
        });
        all_outages.extend(spans.into_iter().map(|(start, end, duration_ms)| Outage {
            monitor_id: id,
            monitor: name.clone(),
            start,
            end,
            duration_ms,
            url: url.clone(),
        }));
    }
    all_outages.sort_by_key(|o| (o.start, o.monitor_id));
    Ok(Uptime {
        monitors,
        outages: all_outages,
    })
}

/// The incident's status as of `t`.
fn status_at(acknowledged_at: Option<i64>, resolved_at: Option<i64>) -> &'static str {
    match (acknowledged_at, resolved_at) {
        (_, Some(_)) => "resolved",
        (Some(_), None) => "acknowledged",
        _ => "triggered",
    }
}

/// `2026-11` in the report's time zone.
fn month_of(tz: chrono_tz::Tz, ms: i64) -> String {
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Incidents opened in the period with outcomes overall, per service and (monthly) per month.
pub(super) async fn incidents(c: &Ctx<'_>, rows: &[IncidentRow]) -> Result<Incidents> {
    let (p, prev) = (c.period, c.previous);
    let previous = facts::incidents_opened(c.store, c.org_id, prev.start, prev.end).await?;
    let timings: Vec<Timing> = rows.iter().map(|i| Timing::of(i, p.end)).collect();
    let targets = c.settings.targets;
    let tz = c.settings.tz().unwrap_or(chrono_tz::UTC);
    let opened = rows
        .iter()
        .zip(&timings)
        .map(|(i, t)| IncidentLine {
            id: i.id,
            title: i.title.clone(),
            service: i.service.clone(),
            severity: i.severity.clone(),
            status: status_at(t.acknowledged_at, t.resolved_at).into(),
            created_at: i.created_at,
            failure_start: t.failure_start,
            acknowledged_at: t.acknowledged_at,
            resolved_at: t.resolved_at,
            url: format!("/incidents/{}", i.id),
        })
        .collect();
    let by_service = outcomes::grouped(
        rows.iter()
            .zip(&timings)
            .map(|(i, t)| (i.service.clone().unwrap_or_else(|| "(none)".into()), *t)),
        &targets,
    );
    let by_month = if c.kind == Kind::Monthly {
        outcomes::grouped(
            rows.iter()
                .zip(&timings)
                .map(|(i, t)| (month_of(tz, i.created_at), *t)),
            &targets,
        )
    } else {
        BTreeMap::new()
    };
    Ok(Incidents {
        opened,
        opened_previous: previous.len() as u64,
        outcomes: outcomes::outcome(&timings, &targets),
        targets,
        by_service,
        by_month,
    })
}

/// Whether an incident's timeline shows an acknowledgement followed by the system resolving
/// it with no note or checklist step by anyone: paged, looked at, nothing done.
pub(super) fn acknowledged_without_action(log: &[(String, String)]) -> bool {
    let Some(ack) = log.iter().position(|(k, _)| k == "acknowledged") else {
        return false;
    };
    let after = &log[ack..];
    let acted = after.iter().any(|(k, _)| k == "note" || k == "checklist");
    let self_resolved = after
        .iter()
        .any(|(k, a)| k == "auto_resolved" || (k == "resolved" && a == "system"));
    self_resolved && !acted
}

/// Which policies and integrations opened most incidents, and how many were acknowledged and
/// then left to resolve themselves.
pub(super) async fn noise(c: &Ctx<'_>, rows: &[IncidentRow]) -> Result<Noise> {
    let p = c.period;
    let logs = facts::incident_log_kinds(c.store, c.org_id, p.start, p.end).await?;
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for s in astore::spec_list(c.store, SpecTable::Policies, c.org_id).await? {
        names.insert(format!("policy:{}", s.id), s.name);
    }
    for i in astore::integration_list(c.store, c.org_id).await? {
        names.insert(format!("integration:{}", i.id), i.name);
    }
    let mut by_scope: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut total_quiet = 0;
    for i in rows {
        let quiet = logs
            .get(&i.id)
            .is_some_and(|l| acknowledged_without_action(l));
        let e = by_scope.entry(i.scope.clone()).or_default();
        e.0 += 1;
        if quiet {
            e.1 += 1;
            total_quiet += 1;
        }
    }
    let mut sources: Vec<NoiseLine> = by_scope
        .into_iter()
        .map(|(scope, (n, quiet))| NoiseLine {
            name: names.get(&scope).cloned().unwrap_or_else(|| scope.clone()),
            scope,
            incidents: n,
            acknowledged_without_action: quiet,
        })
        .collect();
    sources.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.scope.cmp(&b.scope)));
    Ok(Noise {
        sources,
        acknowledged_without_action: total_quiet,
    })
}

/// Incidents opened more than once in the period (the same source and deduplication key).
pub(super) fn recurring(rows: &[IncidentRow]) -> Vec<Recurring> {
    let mut groups: BTreeMap<(String, String), (u64, i64, String)> = BTreeMap::new();
    for i in rows {
        let e = groups
            .entry((i.scope.clone(), i.dedup_key.clone()))
            .or_insert((0, 0, String::new()));
        e.0 += 1;
        // Rows come oldest first: the last one seen is the newest.
        e.1 = i.id;
        e.2 = i.title.clone();
    }
    let mut out: Vec<Recurring> = groups
        .into_values()
        .filter(|(n, _, _)| *n > 1)
        .map(|(count, last_id, title)| Recurring {
            title,
            count,
            last_id,
            url: format!("/incidents/{last_id}"),
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.last_id.cmp(&b.last_id)));
    out
}

/// Change points detected in the period.
pub(super) async fn regressions(c: &Ctx<'_>) -> Result<Vec<RegressionLine>> {
    let p = c.period;
    let mut out: Vec<RegressionLine> =
        lookout_store::regress::recent(c.store, c.projects, None, 1_000)
            .await?
            .into_iter()
            .filter(|r| r.change.detected_at >= p.start && r.change.detected_at < p.end)
            .map(|r| RegressionLine {
                url: format!("/regressions/series/{}", r.change.series_id),
                series: r.series,
                tags: r.tags,
                kind: r.change.kind,
                before: r.change.before,
                after: r.change.after,
                change_percent: r.change.change_percent,
                unit: r.unit,
                commit: r.change.commit,
                detected_at: r.change.detected_at,
            })
            .collect();
    out.sort_by_key(|r| r.detected_at);
    Ok(out)
}

const INDEX_KINDS: &[&str] = &[
    "missing_index",
    "unused_index",
    "duplicate_index",
    "invalid_index",
];

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// New database findings in the period; weekly and monthly add the newest check's slow
/// statements and index advice per database.
pub(super) async fn databases(c: &Ctx<'_>) -> Result<Databases> {
    let p = c.period;
    let new_findings = facts::events(c.store, &["db.finding"], p.start, p.end)
        .await?
        .into_iter()
        .map(|e| FindingLine {
            target: text(&e.payload["target"]),
            kind: text(&e.payload["kind"]),
            severity: text(&e.payload["severity"]),
            object: text(&e.payload["object"]),
            detail: text(&e.payload["detail"]),
            url: format!(
                "/databases/{}",
                e.payload["target_id"].as_i64().unwrap_or_default()
            ),
        })
        .collect();
    let (mut slow_queries, mut index_advice) = (Vec::new(), Vec::new());
    if c.review() {
        for t in lookout_store::dbhealth::list(c.store, c.projects).await? {
            let (_, newest) = facts::db_checks_span(c.store, t.id, p.start, p.end).await?;
            let Some(report) = newest.and_then(|n| n.report) else {
                continue;
            };
            let mut slow: Vec<SlowQueryLine> = report["slow_queries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| SlowQueryLine {
                    target: t.name.clone(),
                    query: text(&q["query"]),
                    calls: q["calls"].as_i64().unwrap_or_default(),
                    mean_ms: q["mean_ms"].as_f64().unwrap_or_default(),
                    total_ms: q["total_ms"].as_f64().unwrap_or_default(),
                })
                .collect();
            slow.truncate(5);
            slow_queries.extend(slow);
            index_advice.extend(
                report["findings"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| INDEX_KINDS.contains(&f["kind"].as_str().unwrap_or_default()))
                    .map(|f| FindingLine {
                        target: t.name.clone(),
                        kind: text(&f["kind"]),
                        severity: text(&f["severity"]),
                        object: text(&f["object"]),
                        detail: text(&f["detail"]),
                        url: format!("/databases/{}", t.id),
                    }),
            );
        }
    }
    Ok(Databases {
        new_findings,
        slow_queries,
        index_advice,
    })
}

const BACKUP_KINDS: &[&str] = &["full", "diff", "incr", "snapshot"];

/// Every backup target's newest backup and drill before the period's end, with the data-loss
/// exposure then. The built-in backup's restorable point is its newest shipped commit when the
/// server is shipping now, else its newest snapshot.
pub(super) async fn backups(c: &Ctx<'_>) -> Result<Backups> {
    let p = c.period;
    let mut names = facts::backup_targets_with_runs(c.store).await?;
    for t in lookout_store::backup::catalog::list_targets(c.store).await? {
        if !names.contains(&t.spec.name) {
            names.push(t.spec.name);
        }
    }
    let shipped = match c.store.backup_run().await {
        Some((dir, _)) => {
            tokio::task::spawn_blocking(move || lookout_store::backup::inventory(&dir))
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|inv| inv.newest)
        }
        None => None,
    };
    let mut targets = Vec::new();
    for name in names {
        let backup = facts::newest_backup_run_before(c.store, &name, BACKUP_KINDS, p.end).await?;
        let drill = facts::newest_backup_run_before(c.store, &name, &["drill"], p.end).await?;
        let (runs, failed) = facts::backup_run_counts(c.store, &name, p.start, p.end).await?;
        let mut last_backup_at = backup
            .as_ref()
            .map(|b| b.started_at + b.duration_ms)
            .filter(|&t| t <= p.end);
        if name == lookout_store::backup::catalog::BUILTIN {
            if let Some(at) = shipped.filter(|&t| t <= p.end) {
                last_backup_at = Some(last_backup_at.map_or(at, |b| b.max(at)));
            }
        }
        let url = "/backups".to_string();
        targets.push(BackupLine {
            exposure_ms: last_backup_at.map(|t| p.end - t),
            last_backup_ok: backup.as_ref().map(|b| b.ok),
            last_backup_at,
            last_drill_at: drill.as_ref().map(|d| d.started_at),
            last_drill_ok: drill.as_ref().map(|d| d.ok),
            runs: runs as u64,
            failed_runs: failed as u64,
            target: name,
            url,
        });
    }
    Ok(Backups { targets })
}

/// Load-test runs started in the period.
pub(super) async fn load_tests(c: &Ctx<'_>) -> Result<Vec<LoadLine>> {
    let p = c.period;
    Ok(facts::load_runs(c.store, c.projects, p.start, p.end)
        .await?
        .into_iter()
        .map(|r| LoadLine {
            url: format!("/load-tests/{}", r.id),
            id: r.id,
            name: r.name,
            started_at: r.started_at,
            passed: r.passed,
            requests: r.requests,
            rps: r.rps,
            p95_ms: r.p95_ms,
            error_rate: r.error_rate,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(at: i64, to: &str) -> (i64, String) {
        (at, to.to_string())
    }

    #[test]
    fn outages_are_clipped_to_the_period() {
        // Down before the period, up inside; down again and still down at the end.
        let changes = [ch(50, "down"), ch(150, "up"), ch(300, "down")];
        assert_eq!(
            outages(&changes, 100, 400),
            vec![(50, Some(150), 50), (300, None, 100)]
        );
        // An outage that ended before the period is not in it.
        assert!(outages(&[ch(10, "down"), ch(20, "up")], 100, 400).is_empty());
        // Pending between down and up still ends the outage at the first non-down state.
        assert_eq!(
            outages(&[ch(120, "down"), ch(130, "down"), ch(200, "up")], 100, 400),
            vec![(120, Some(200), 80)]
        );
    }

    #[test]
    fn acknowledged_then_self_resolved_without_notes_is_noise() {
        let l = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(acknowledged_without_action(&l(&[
            ("triggered", "policy:x"),
            ("acknowledged", "user:a"),
            ("resolved", "system"),
            ("auto_resolved", "system"),
        ])));
        assert!(!acknowledged_without_action(&l(&[
            ("triggered", "policy:x"),
            ("acknowledged", "user:a"),
            ("note", "user:a"),
            ("resolved", "system"),
        ])));
        assert!(!acknowledged_without_action(&l(&[
            ("acknowledged", "user:a"),
            ("resolved", "user:a"),
        ])));
        assert!(!acknowledged_without_action(&l(&[("resolved", "system")])));
    }
}
