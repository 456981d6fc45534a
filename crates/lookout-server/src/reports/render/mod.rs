//! A report as people read it: printable HTML with SVG charts (the UI page, the email's HTML
//! part, `lookout report --html`), plain text (the email's text part, the CLI) and a short chat
//! summary (Slack, Mattermost, Discord, ntfy). All three come from one list of [`Section`]s,
//! so they say the same thing.

use askama::Template;
use chrono::TimeZone;

use super::model::*;
use super::outcomes::Outcome;
/// `45 s`, `4.2 min`, `1 h 05 min`, `2 d 3 h`: the formatting every page uses.
pub use lookout_core::units::span as duration;

mod tables;

use tables::{
    backups, capacity, databases, errors, incidents, load_tests, noise, recurring, regressions,
    services, slos, suggestions, summary_section, uptime,
};

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

/// `1 incident`, `3 incidents`.
fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A latency as every page and the CLI show it (`0.42 ms`, `62.3 ms`, `1.25 s`).
fn opt_ms(v: Option<f64>) -> String {
    v.map_or("—".into(), lookout_core::units::duration_ms)
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
    let mut out = vec![summary_section(r)];
    for section in [
        incidents(r, &f),
        errors(r, &f),
        uptime(r, &f),
        services(r, &f),
        slos(r, &f),
        regressions(r, &f),
        databases(r, &f),
        backups(r, &f),
        load_tests(r, &f),
        noise(r, &f),
        capacity(r, &f),
        recurring(r, &f),
        suggestions(r, &f),
    ]
    .into_iter()
    .flatten()
    {
        out.push(section);
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
