//! The report's sections as tables, sentences and charts, one function per section, for
//! [`super::sections`] to put in reading order.

use super::{
    c, change, count, duration, flag, issue_table, n, opt_ms, opt_pct, outcome_cells, rate,
};
use super::{Cell, Fmt, Section, Table};
use crate::charts::{self, Bar, Series};
use crate::reports::model::*;
use lookout_core::units;

/// The summary: a sentence per capability.
pub(super) fn summary_section(r: &Report) -> Section {
    let mut summary = Vec::new();
    if let Some(i) = &r.incidents {
        summary.push(c(format!(
            "{} opened ({} the period before).",
            count(i.opened.len() as i64, "incident", "incidents"),
            i.opened_previous
        )));
    }
    if let Some(e) = &r.errors {
        summary.push(c(format!(
            "{} ({}), {}, {} regressed.",
            count(e.events, "error event", "error events"),
            change(e.events, e.events_previous),
            count(e.new_issues.len() as i64, "new issue", "new issues"),
            e.regressed.len()
        )));
    }
    if let Some(u) = &r.uptime {
        let down: i64 = u.outages.iter().map(|o| o.duration_ms).sum();
        let below = u.monitors.iter().filter(|m| m.met == Some(false)).count();
        summary.push(Cell {
            class: if below > 0 { "bad" } else { "" },
            ..c(format!(
                "{}, {} of downtime; {} of {} below their uptime target.",
                count(u.outages.len() as i64, "outage", "outages"),
                duration(down),
                below,
                count(u.monitors.len() as i64, "monitor", "monitors")
            ))
        });
    }
    if let Some(slos) = &r.slos {
        let low = slos
            .iter()
            .filter(|s| s.budget.budget_remaining.is_some_and(|b| b < 0.25))
            .count();
        summary.push(flag(
            format!(
                "{low} of {} less than a quarter of the error budget left.",
                count(slos.len() as i64, "SLO has", "SLOs have")
            ),
            low > 0,
        ));
    }
    Section {
        id: "summary",
        title: "Summary".into(),
        lines: summary,
        charts: Vec::new(),
        tables: Vec::new(),
    }
}

/// The incidents section.
pub(super) fn incidents(r: &Report, f: &Fmt) -> Option<Section> {
    let i = r.incidents.as_ref()?;
    let t = &i.targets;
    let mut tables = vec![
        Table {
            caption: "Opened".into(),
            head: [
                "Incident", "Service", "Severity", "Status", "Opened", "Detect", "Ack", "Resolve",
            ]
            .map(String::from)
            .to_vec(),
            rows: i
                .opened
                .iter()
                .map(|x| {
                    let d = |a: Option<i64>, b: Option<i64>| match (a, b) {
                        (Some(a), Some(b)) => duration((b - a).max(0)),
                        _ => "—".into(),
                    };
                    vec![
                        f.link(format!("#{} {}", x.id, x.title), &x.url),
                        c(x.service.clone().unwrap_or_default()),
                        c(x.severity.clone()),
                        flag(x.status.clone(), x.status != "resolved"),
                        c(f.at(x.created_at)),
                        n(d(x.failure_start, Some(x.created_at))),
                        n(d(Some(x.created_at), x.acknowledged_at)),
                        n(d(Some(x.created_at), x.resolved_at)),
                    ]
                })
                .collect(),
            empty: "No incidents opened.".into(),
        },
        Table {
            caption: format!(
                "Outcomes by service (targets: detect {} min, acknowledge {} min, resolve {} min)",
                t.detect_minutes, t.acknowledge_minutes, t.resolve_minutes
            ),
            head: ["Service", "Incidents", "MTTD", "MTTA", "MTTR"]
                .map(String::from)
                .to_vec(),
            rows: std::iter::once(("All".to_string(), &i.outcomes))
                .chain(i.by_service.iter().map(|(k, v)| (k.clone(), v)))
                .map(|(k, o)| {
                    let mut row = vec![c(k)];
                    row.extend(outcome_cells(o));
                    row
                })
                .collect(),
            empty: String::new(),
        },
    ];
    if !i.by_month.is_empty() {
        tables.push(Table {
            caption: "Outcomes by month".into(),
            head: ["Month", "Incidents", "MTTD", "MTTA", "MTTR"]
                .map(String::from)
                .to_vec(),
            rows: i
                .by_month
                .iter()
                .map(|(k, o)| {
                    let mut row = vec![c(k.clone())];
                    row.extend(outcome_cells(o));
                    row
                })
                .collect(),
            empty: String::new(),
        });
    }
    Some(Section {
        id: "incidents",
        title: "Incidents and outcomes".into(),
        lines: vec![c(format!(
            "Detect: failure start to incident ({} of {} incidents had a recorded start). Acknowledge and resolve: from the incident opening.",
            i.outcomes.detected, i.outcomes.incidents
        ))],
        charts: Vec::new(),
        tables,
    })
}

/// The errors section.
pub(super) fn errors(r: &Report, f: &Fmt) -> Option<Section> {
    let e = r.errors.as_ref()?;
    let mut tables = vec![
        issue_table(f, "New issues", &e.new_issues, "No new issues."),
        issue_table(f, "Regressed issues", &e.regressed, "No regressions."),
    ];
    let mut charts = Vec::new();
    if r.kind != Kind::Daily {
        tables.push(issue_table(
            f,
            "Top issues by events",
            &e.top_by_events,
            "No error events.",
        ));
        tables.push(issue_table(
            f,
            "Top issues by users",
            &e.top_by_users,
            "No users affected.",
        ));
        if !e.top_by_events.is_empty() {
            charts.push(charts::bar_chart(
                "Events of the top issues",
                &e.top_by_events
                    .iter()
                    .map(|i| Bar {
                        label: format!("#{}", i.id),
                        value: i.events as f64,
                    })
                    .collect::<Vec<_>>(),
            ));
        }
    }
    Some(Section {
        id: "errors",
        title: "Errors".into(),
        lines: vec![c(format!(
            "{}, {} the period before.",
            count(e.events, "event", "events"),
            e.events_previous
        ))],
        charts,
        tables,
    })
}

/// The uptime section.
pub(super) fn uptime(r: &Report, f: &Fmt) -> Option<Section> {
    let u = r.uptime.as_ref()?;
    let mut charts = Vec::new();
    if r.kind != Kind::Daily && !u.monitors.is_empty() {
        charts.push(charts::bar_chart(
            "Uptime per monitor, %",
            &u.monitors
                .iter()
                .map(|m| Bar {
                    label: m.name.clone(),
                    value: m.uptime.unwrap_or(0.0),
                })
                .collect::<Vec<_>>(),
        ));
    }
    Some(Section {
        id: "uptime",
        title: "Uptime".into(),
        lines: Vec::new(),
        charts,
        tables: vec![
            Table {
                caption: "Outages".into(),
                head: ["Monitor", "Down from", "Until", "Down in period"]
                    .map(String::from)
                    .to_vec(),
                rows: u
                    .outages
                    .iter()
                    .map(|o| {
                        vec![
                            f.link(o.monitor.clone(), &o.url),
                            c(f.at(o.start)),
                            match o.end {
                                Some(e) => c(f.at(e)),
                                None => flag("still down", true),
                            },
                            n(duration(o.duration_ms)),
                        ]
                    })
                    .collect(),
                empty: "No monitor went down.".into(),
            },
            Table {
                caption: "Monitors against their uptime SLO".into(),
                head: [
                    "Monitor", "Uptime", "Before", "Target", "Downtime", "Outages",
                ]
                .map(String::from)
                .to_vec(),
                rows: u
                    .monitors
                    .iter()
                    .map(|m| {
                        vec![
                            f.link(m.name.clone(), &m.url),
                            flag(opt_pct(m.uptime, 3), m.met == Some(false)),
                            n(opt_pct(m.uptime_previous, 3)),
                            n(format!("{} %", m.target)),
                            n(duration(m.downtime_ms)),
                            n(m.outages.to_string()),
                        ]
                    })
                    .collect(),
                empty: "No monitors.".into(),
            },
        ],
    })
}

/// The services section.
pub(super) fn services(r: &Report, f: &Fmt) -> Option<Section> {
    let s = r.services.as_ref()?;
    let tx_table = |caption: &str, rows: &[TransactionLine]| Table {
        caption: caption.into(),
        head: [
            "Transaction",
            "Service",
            "Requests",
            "p95",
            "Average",
            "Time spent",
            "Share",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|t| {
                vec![
                    f.link(t.name.clone(), &t.url),
                    c(t.service.clone()),
                    n(t.requests.to_string()),
                    n(opt_ms(t.p95_ms)),
                    n(opt_ms(t.avg_ms)),
                    n(duration(t.total_ms as i64)),
                    n(opt_pct(Some(100.0 * t.share), 1)),
                ]
            })
            .collect(),
        empty: "No transactions.".into(),
    };
    let mut tables = vec![Table {
        caption: if r.kind == Kind::Daily {
            "Services that moved beyond their 7-day baseline".into()
        } else {
            "Services (period before and 7-day baseline in brackets)".into()
        },
        head: [
            "Service",
            "Requests",
            "rpm",
            "p95",
            "Error rate",
            "Apdex",
            "Moved",
        ]
        .map(String::from)
        .to_vec(),
        rows: s
            .services
            .iter()
            .map(|x| {
                vec![
                    f.link(x.name.clone(), &x.url),
                    n(format!("{} ({})", x.current.requests, x.previous.requests)),
                    n(units::number(x.current.throughput_rpm)),
                    n(format!(
                        "{} ({})",
                        opt_ms(x.current.p95_ms),
                        opt_ms(x.baseline.p95_ms)
                    )),
                    n(format!(
                        "{} ({})",
                        rate(x.current.error_rate),
                        rate(x.baseline.error_rate)
                    )),
                    n(x.current.apdex.map_or("—".into(), |a| format!("{a:.2}"))),
                    flag(x.moved.join("; "), !x.moved.is_empty()),
                ]
            })
            .collect(),
        empty: if r.kind == Kind::Daily {
            "No service moved beyond its baseline.".into()
        } else {
            "No requests recorded.".into()
        },
    }];
    if r.kind != Kind::Daily {
        tables.push(tx_table("Slowest transactions (p95)", &s.slowest));
        tables.push(tx_table("Most time-consuming transactions", &s.most_time));
    }
    Some(Section {
        id: "services",
        title: "Services".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables,
    })
}

/// The slos section.
pub(super) fn slos(r: &Report, f: &Fmt) -> Option<Section> {
    let slos = r.slos.as_ref()?;
    let mut charts = Vec::new();
    // SLOs without data have no budget to draw.
    let measured: Vec<&SloLine> = slos
        .iter()
        .filter(|s| s.budget.budget_remaining.is_some())
        .collect();
    if !measured.is_empty() {
        charts.push(charts::bar_chart(
            "Error budget left, %",
            &measured
                .iter()
                .map(|s| Bar {
                    label: s.name.clone(),
                    value: 100.0 * s.budget.budget_remaining.unwrap_or(0.0).max(0.0),
                })
                .collect::<Vec<_>>(),
        ));
    }
    Some(Section {
        id: "slos",
        title: "SLOs and error budgets".into(),
        lines: Vec::new(),
        charts,
        tables: vec![Table {
            caption: "Each over its own window, ending at the report's end".into(),
            head: [
                "SLO",
                "Objective",
                "Window",
                "Attainment",
                "Target",
                "Budget left",
                "Burn rate",
            ]
            .map(String::from)
            .to_vec(),
            rows: slos
                .iter()
                .map(|s| {
                    let b = &s.budget;
                    vec![
                        f.link(s.name.clone(), &s.url),
                        c(s.objective.clone()),
                        n(format!("{} d", s.window_days)),
                        flag(opt_pct(b.attainment, 3), b.met == Some(false)),
                        n(format!("{} %", b.target)),
                        flag(
                            opt_pct(b.budget_remaining.map(|x| 100.0 * x), 1),
                            b.budget_remaining.is_some_and(|x| x < 0.25),
                        ),
                        n(b.burn_rate.map_or("—".into(), |x| format!("{x:.2}×"))),
                    ]
                })
                .collect(),
            empty: "No SLOs defined: add them with POST /api/v1/slos.".into(),
        }],
    })
}

/// The regressions section.
pub(super) fn regressions(r: &Report, f: &Fmt) -> Option<Section> {
    let rs = r.regressions.as_ref()?;
    Some(Section {
        id: "regressions",
        title: "Performance regressions".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables: vec![Table {
            caption: "Change points found".into(),
            head: ["Series", "Kind", "Before", "After", "Change", "Commit"]
                .map(String::from)
                .to_vec(),
            rows: rs
                .iter()
                .map(|x| {
                    let tags: Vec<String> =
                        x.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    vec![
                        f.link(format!("{} {}", x.series, tags.join(" ")), &x.url),
                        flag(x.kind.clone(), x.kind == "regression"),
                        n(format!("{} {}", units::number(x.before), x.unit)),
                        n(format!("{} {}", units::number(x.after), x.unit)),
                        n(x.change_percent
                            .map_or("—".into(), |p| format!("{p:+.1} %"))),
                        c(x.commit.clone().unwrap_or_default()),
                    ]
                })
                .collect(),
            empty: "No change points found.".into(),
        }],
    })
}

/// The databases section.
pub(super) fn databases(r: &Report, f: &Fmt) -> Option<Section> {
    let d = r.databases.as_ref()?;
    let findings = |caption: &str, rows: &[FindingLine], empty: &str| Table {
        caption: caption.into(),
        head: ["Database", "Finding", "Severity", "Object", "Detail"]
            .map(String::from)
            .to_vec(),
        rows: rows
            .iter()
            .map(|x| {
                vec![
                    f.link(x.target.clone(), &x.url),
                    c(x.kind.replace('_', " ")),
                    c(x.severity.clone()),
                    c(x.object.clone()),
                    c(x.detail.clone()),
                ]
            })
            .collect(),
        empty: empty.into(),
    };
    let mut tables = vec![findings(
        "New findings",
        &d.new_findings,
        "No new findings.",
    )];
    if r.kind != Kind::Daily {
        tables.push(Table {
            caption: "Slow statements (newest check)".into(),
            head: ["Database", "Statement", "Calls", "Mean", "Total"]
                .map(String::from)
                .to_vec(),
            rows: d
                .slow_queries
                .iter()
                .map(|q| {
                    vec![
                        c(q.target.clone()),
                        c(q.query.chars().take(160).collect::<String>()),
                        n(q.calls.to_string()),
                        n(units::duration_ms(q.mean_ms)),
                        n(duration(q.total_ms as i64)),
                    ]
                })
                .collect(),
            empty: "No statement statistics.".into(),
        });
        tables.push(findings(
            "Index advice",
            &d.index_advice,
            "No index advice.",
        ));
    }
    Some(Section {
        id: "databases",
        title: "Databases".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables,
    })
}

/// The backups section.
pub(super) fn backups(r: &Report, f: &Fmt) -> Option<Section> {
    let b = r.backups.as_ref()?;
    Some(Section {
        id: "backups",
        title: "Backups and restore drills".into(),
        lines: vec![c("Exposure: how much data a loss at the report's end would cost, the age of the newest restorable point.")],
        charts: Vec::new(),
        tables: vec![Table {
            caption: String::new(),
            head: ["Target", "Newest backup", "Exposure", "Newest drill", "Runs", "Failed"]
                .map(String::from)
                .to_vec(),
            rows: b
                .targets
                .iter()
                .map(|x| {
                    vec![
                        f.link(x.target.clone(), &x.url),
                        match (x.last_backup_at, x.last_backup_ok) {
                            (Some(t), ok) => flag(f.at(t), ok == Some(false)),
                            (None, _) => flag("never", true),
                        },
                        n(x.exposure_ms.map_or("—".into(), duration)),
                        match (x.last_drill_at, x.last_drill_ok) {
                            (Some(t), Some(ok)) => {
                                flag(format!("{} {}", f.at(t), if ok { "passed" } else { "failed" }), !ok)
                            }
                            _ => flag("never", true),
                        },
                        n(x.runs.to_string()),
                        flag(x.failed_runs.to_string(), x.failed_runs > 0),
                    ]
                })
                .collect(),
            empty: "No backups configured.".into(),
        }],
    })
}

/// The load tests section.
pub(super) fn load_tests(r: &Report, f: &Fmt) -> Option<Section> {
    let l = r.load_tests.as_ref()?;
    Some(Section {
        id: "load",
        title: "Load tests".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables: vec![Table {
            caption: String::new(),
            head: [
                "Run",
                "Started",
                "Thresholds",
                "Requests",
                "req/s",
                "p95",
                "Errors",
            ]
            .map(String::from)
            .to_vec(),
            rows: l
                .iter()
                .map(|x| {
                    vec![
                        f.link(format!("#{} {}", x.id, x.name), &x.url),
                        c(f.at(x.started_at)),
                        flag(if x.passed { "passed" } else { "failed" }, !x.passed),
                        n(x.requests.to_string()),
                        n(units::per_second(x.rps)),
                        n(units::duration_ms(x.p95_ms)),
                        n(rate(Some(x.error_rate))),
                    ]
                })
                .collect(),
            empty: "No load tests ran.".into(),
        }],
    })
}

/// The noise section.
pub(super) fn noise(r: &Report, _: &Fmt) -> Option<Section> {
    let x = r.noise.as_ref()?;
    Some(Section {
        id: "noise",
        title: "Alert noise".into(),
        lines: vec![c(format!(
            "{} incidents were acknowledged and then resolved themselves with nothing done in between.",
            x.acknowledged_without_action
        ))],
        charts: Vec::new(),
        tables: vec![Table {
            caption: "Sources by incidents opened".into(),
            head: ["Source", "Incidents", "Acknowledged without action"].map(String::from).to_vec(),
            rows: x
                .sources
                .iter()
                .map(|s| {
                    vec![
                        c(s.name.clone()),
                        n(s.incidents.to_string()),
                        flag(s.acknowledged_without_action.to_string(), s.acknowledged_without_action > 0),
                    ]
                })
                .collect(),
            empty: "Nothing fired.".into(),
        }],
    })
}

/// The capacity section.
pub(super) fn capacity(r: &Report, f: &Fmt) -> Option<Section> {
    let cap = r.capacity.as_ref()?;
    let points: Vec<(i64, f64)> = cap
        .requests_per_day
        .iter()
        .map(|(d, v)| (*d, *v as f64))
        .collect();
    Some(Section {
        id: "capacity",
        title: "Capacity".into(),
        lines: vec![c(format!(
            "Requests: {} in the first 7 days, {} in the last 7 ({}).",
            cap.first_week_requests,
            cap.last_week_requests,
            cap.throughput_growth
                .map_or("no growth figure".into(), |g| format!(
                    "{:+.1} %",
                    100.0 * g
                ))
        ))],
        charts: vec![charts::time_series(
            "Requests per day",
            &[Series {
                name: "requests".into(),
                points,
            }],
            r.period.start,
            r.period.end,
        )],
        tables: vec![Table {
            caption: "Database size".into(),
            head: [
                "Database",
                "First check",
                "Size",
                "Newest check",
                "Size",
                "Growth",
            ]
            .map(String::from)
            .to_vec(),
            rows: cap
                .databases
                .iter()
                .map(|d| {
                    vec![
                        c(d.target.clone()),
                        c(f.at(d.first_at)),
                        n(lookout_core::units::bytes(d.first_bytes.max(0) as u64)),
                        c(f.at(d.last_at)),
                        n(lookout_core::units::bytes(d.last_bytes.max(0) as u64)),
                        n(change(d.last_bytes, d.first_bytes)),
                    ]
                })
                .collect(),
            empty: "No database checks in the period.".into(),
        }],
    })
}

/// The recurring section.
pub(super) fn recurring(r: &Report, f: &Fmt) -> Option<Section> {
    let rec = r.recurring.as_ref()?;
    Some(Section {
        id: "recurring",
        title: "Recurring incidents".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables: vec![Table {
            caption: String::new(),
            head: ["Incident", "Times opened"].map(String::from).to_vec(),
            rows: rec
                .iter()
                .map(|x| vec![f.link(x.title.clone(), &x.url), n(x.count.to_string())])
                .collect(),
            empty: "Nothing recurred.".into(),
        }],
    })
}

/// The suggestions section.
pub(super) fn suggestions(r: &Report, f: &Fmt) -> Option<Section> {
    let s = r.suggestions.as_ref()?;
    Some(Section {
        id: "suggestions",
        title: "Suggested actions".into(),
        lines: Vec::new(),
        charts: Vec::new(),
        tables: vec![Table {
            caption: "Each names the finding it comes from".into(),
            head: ["Action", "From"].map(String::from).to_vec(),
            rows: s
                .iter()
                .map(|x| {
                    vec![
                        match &x.url {
                            Some(u) => f.link(x.text.clone(), u),
                            None => c(x.text.clone()),
                        },
                        c(x.source.clone()),
                    ]
                })
                .collect(),
            empty: "Nothing to suggest this month.".into(),
        }],
    })
}
