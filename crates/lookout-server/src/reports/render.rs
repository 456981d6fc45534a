//! A report as people read it: printable HTML with SVG charts (the UI page, the email's HTML
//! part, `lookout report --html`), plain text (the email's text part, the CLI) and a short chat
//! summary (Slack, Mattermost, Discord, ntfy). All three come from one list of [`Section`]s,
//! so they say the same thing.

use askama::Template;
use chrono::TimeZone;

use super::model::*;
use super::outcomes::Outcome;
use crate::ui::chart::{self, Bar, Series};

/// A table cell: text, an optional link, and a class (`num`, `bad`, `good`).
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub href: Option<String>,
    pub class: &'static str,
}

fn c(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        href: None,
        class: "",
    }
}

fn n(text: impl Into<String>) -> Cell {
    Cell {
        class: "num",
        ..c(text)
    }
}

fn flag(text: impl Into<String>, bad: bool) -> Cell {
    Cell {
        class: if bad { "bad" } else { "good" },
        ..c(text)
    }
}

/// A table with its caption and what to say when it is empty.
#[derive(Debug, Clone)]
pub struct Table {
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub empty: String,
}

/// A section: sentences, charts (SVG), tables.
#[derive(Debug, Clone)]
pub struct Section {
    pub id: &'static str,
    pub title: String,
    pub lines: Vec<Cell>,
    pub charts: Vec<String>,
    pub tables: Vec<Table>,
}

/// How dates and links are written.
struct Fmt {
    tz: chrono_tz::Tz,
    base: String,
}

impl Fmt {
    fn at(&self, ms: i64) -> String {
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.format("%a %d %b %H:%M").to_string())
            .unwrap_or_default()
    }

    fn day(&self, ms: i64) -> String {
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.format("%a %d %b %Y %H:%M %Z").to_string())
            .unwrap_or_default()
    }

    fn link(&self, text: impl Into<String>, url: &str) -> Cell {
        Cell {
            href: Some(format!("{}{url}", self.base)),
            ..c(text)
        }
    }
}

/// `45 s`, `4.2 min`, `1 h 05 min`, `2 d 3 h`.
pub fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 600 => format!("{:.1} min", ms as f64 / 60_000.0),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {:02} min", s / 3_600, (s % 3_600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3_600),
    }
}

/// `1 incident`, `3 incidents`.
fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0} ms"))
}

fn opt_pct(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$} %"))
}

fn rate(v: Option<f64>) -> String {
    opt_pct(v.map(|r| 100.0 * r), 2)
}

fn change(cur: i64, prev: i64) -> String {
    if prev == 0 {
        return if cur == 0 { "—".into() } else { "new".into() };
    }
    format!("{:+.0} %", 100.0 * (cur - prev) as f64 / prev as f64)
}

fn outcome_cells(o: &Outcome) -> Vec<Cell> {
    let verdict = |v: Option<i64>, met: Option<bool>| match (v, met) {
        (Some(ms), Some(m)) => flag(duration(ms), !m),
        _ => c("—"),
    };
    vec![
        n(o.incidents.to_string()),
        verdict(o.mttd_ms, o.detect_met),
        verdict(o.mtta_ms, o.acknowledge_met),
        verdict(o.mttr_ms, o.resolve_met),
    ]
}

fn issue_table(f: &Fmt, caption: &str, rows: &[IssueLine], empty: &str) -> Table {
    Table {
        caption: caption.into(),
        head: vec![
            "Issue".into(),
            "Events".into(),
            "Before".into(),
            "Users".into(),
        ],
        rows: rows
            .iter()
            .map(|i| {
                vec![
                    f.link(format!("#{} {}", i.id, i.title), &i.url),
                    n(i.events.to_string()),
                    n(i.events_previous.to_string()),
                    n(i.users.to_string()),
                ]
            })
            .collect(),
        empty: empty.into(),
    }
}

/// The report's sections, in reading order.
pub fn sections(r: &Report, base: &str) -> Vec<Section> {
    let f = Fmt {
        tz: r.timezone.parse().unwrap_or(chrono_tz::UTC),
        base: base.trim_end_matches('/').to_string(),
    };
    let mut out = Vec::new();
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
    out.push(Section {
        id: "summary",
        title: "Summary".into(),
        lines: summary,
        charts: Vec::new(),
        tables: Vec::new(),
    });
    if let Some(i) = &r.incidents {
        let t = &i.targets;
        let mut tables = vec![
            Table {
                caption: "Opened".into(),
                head: ["Incident", "Service", "Severity", "Status", "Opened", "Detect", "Ack", "Resolve"]
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
                head: ["Service", "Incidents", "MTTD", "MTTA", "MTTR"].map(String::from).to_vec(),
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
        out.push(Section {
            id: "incidents",
            title: "Incidents and outcomes".into(),
            lines: vec![c(format!(
                "Detect: failure start to incident ({} of {} incidents had a recorded start). Acknowledge and resolve: from the incident opening.",
                i.outcomes.detected, i.outcomes.incidents
            ))],
            charts: Vec::new(),
            tables,
        });
    }
    if let Some(e) = &r.errors {
        let mut tables = vec![
            issue_table(&f, "New issues", &e.new_issues, "No new issues."),
            issue_table(&f, "Regressed issues", &e.regressed, "No regressions."),
        ];
        let mut charts = Vec::new();
        if r.kind != Kind::Daily {
            tables.push(issue_table(
                &f,
                "Top issues by events",
                &e.top_by_events,
                "No error events.",
            ));
            tables.push(issue_table(
                &f,
                "Top issues by users",
                &e.top_by_users,
                "No users affected.",
            ));
            if !e.top_by_events.is_empty() {
                charts.push(chart::bar_chart(
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
        out.push(Section {
            id: "errors",
            title: "Errors".into(),
            lines: vec![c(format!(
                "{}, {} the period before.",
                count(e.events, "event", "events"),
                e.events_previous
            ))],
            charts,
            tables,
        });
    }
    if let Some(u) = &r.uptime {
        let mut charts = Vec::new();
        if r.kind != Kind::Daily && !u.monitors.is_empty() {
            charts.push(chart::bar_chart(
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
        out.push(Section {
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
        });
    }
    if let Some(s) = &r.services {
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
                        n(format!("{:.1}", x.current.throughput_rpm)),
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
        out.push(Section {
            id: "services",
            title: "Services".into(),
            lines: Vec::new(),
            charts: Vec::new(),
            tables,
        });
    }
    if let Some(slos) = &r.slos {
        let mut charts = Vec::new();
        // SLOs without data have no budget to draw.
        let measured: Vec<&SloLine> = slos
            .iter()
            .filter(|s| s.budget.budget_remaining.is_some())
            .collect();
        if !measured.is_empty() {
            charts.push(chart::bar_chart(
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
        out.push(Section {
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
        });
    }
    if let Some(rs) = &r.regressions {
        out.push(Section {
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
                            n(format!("{:.3} {}", x.before, x.unit)),
                            n(format!("{:.3} {}", x.after, x.unit)),
                            n(x.change_percent
                                .map_or("—".into(), |p| format!("{p:+.1} %"))),
                            c(x.commit.clone().unwrap_or_default()),
                        ]
                    })
                    .collect(),
                empty: "No change points found.".into(),
            }],
        });
    }
    if let Some(d) = &r.databases {
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
                            n(format!("{:.1} ms", q.mean_ms)),
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
        out.push(Section {
            id: "databases",
            title: "Databases".into(),
            lines: Vec::new(),
            charts: Vec::new(),
            tables,
        });
    }
    if let Some(b) = &r.backups {
        out.push(Section {
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
        });
    }
    if let Some(l) = &r.load_tests {
        out.push(Section {
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
                            n(format!("{:.1}", x.rps)),
                            n(format!("{:.1} ms", x.p95_ms)),
                            n(rate(Some(x.error_rate))),
                        ]
                    })
                    .collect(),
                empty: "No load tests ran.".into(),
            }],
        });
    }
    if let Some(x) = &r.noise {
        out.push(Section {
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
        });
    }
    if let Some(cap) = &r.capacity {
        let points: Vec<(i64, f64)> = cap
            .requests_per_day
            .iter()
            .map(|(d, v)| (*d, *v as f64))
            .collect();
        out.push(Section {
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
            charts: vec![chart::time_series(
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
        });
    }
    if let Some(rec) = &r.recurring {
        out.push(Section {
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
        });
    }
    if let Some(s) = &r.suggestions {
        out.push(Section {
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
        });
    }
    out
}

/// `Daily check · Acme · Sat 28 Nov 2026 08:00 CET – Sun 29 Nov 2026 08:00 CET`.
pub fn headline(r: &Report) -> String {
    let f = Fmt {
        tz: r.timezone.parse().unwrap_or(chrono_tz::UTC),
        base: String::new(),
    };
    format!(
        "{} · {} · {} – {}",
        r.title,
        r.organization,
        f.day(r.period.start),
        f.day(r.period.end)
    )
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    headline: String,
    sections: Vec<Section>,
    back: Option<&'a str>,
}

/// The report as a standalone, printable HTML document; links are relative to `base` (the
/// public URL in emails and files, empty in the UI). `back`: a link back to the report list.
pub fn html(r: &Report, base: &str, back: Option<&str>) -> String {
    Page {
        headline: headline(r),
        sections: sections(r, base),
        back,
    }
    .render()
    .unwrap_or_else(|e| format!("<p>rendering failed: {e}</p>"))
}

/// The report as plain text with full links.
pub fn text(r: &Report) -> String {
    let mut out = format!("{}\n", headline(r));
    for s in sections(r, &r.base_url) {
        out.push_str(&format!("\n== {} ==\n", s.title));
        for l in &s.lines {
            out.push_str(&format!("{}\n", l.text));
        }
        for t in &s.tables {
            if !t.caption.is_empty() {
                out.push_str(&format!("\n{}\n", t.caption));
            }
            if t.rows.is_empty() {
                out.push_str(&format!("  {}\n", t.empty));
            }
            for row in &t.rows {
                let cells: Vec<String> = row
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.text.is_empty())
                    .map(|(i, c)| match (&c.href, t.head.get(i)) {
                        (Some(h), _) => format!("{} <{h}>", c.text),
                        (None, Some(name))
                            if c.class == "num" || c.class == "bad" || c.class == "good" =>
                        {
                            format!("{name}: {}", c.text)
                        }
                        _ => c.text.clone(),
                    })
                    .collect();
                out.push_str(&format!("  - {}\n", cells.join(" · ")));
            }
        }
    }
    out
}

/// A short chat summary: the headline, the summary lines, and the first lines of what needs
/// attention, with `link(label, url)` in the chat's link syntax.
pub fn summary(r: &Report, link: impl Fn(&str, &str) -> String) -> String {
    let url = format!("{}{}", r.base_url, "/reports");
    let mut out = vec![format!("*{}*", headline(r))];
    for s in sections(r, &r.base_url) {
        if s.id == "summary" {
            out.extend(s.lines.iter().map(|l| format!("• {}", l.text)));
        }
    }
    if let Some(i) = &r.incidents {
        let o = &i.outcomes;
        let show = |v: Option<i64>| v.map_or("—".into(), duration);
        out.push(format!(
            "• MTTD {} · MTTA {} · MTTR {}",
            show(o.mttd_ms),
            show(o.mtta_ms),
            show(o.mttr_ms)
        ));
    }
    for o in r.uptime.iter().flat_map(|u| &u.outages).take(5) {
        out.push(format!(
            "• {} down {}",
            link(&o.monitor, &format!("{}{}", r.base_url, o.url)),
            duration(o.duration_ms)
        ));
    }
    for i in r.errors.iter().flat_map(|e| &e.new_issues).take(5) {
        out.push(format!(
            "• New: {} ({} events)",
            link(&i.title, &format!("{}{}", r.base_url, i.url)),
            i.events
        ));
    }
    out.push(link("Open the full report", &url));
    out.join("\n")
}
