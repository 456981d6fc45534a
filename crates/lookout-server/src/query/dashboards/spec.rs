//! A dashboard as code: what `lookout apply -f`, the config file's `dashboards:`, the API and
//! the UI's editor take, in YAML or JSON.
//!
//! ```yaml
//! name: Service overview
//! slug: service-overview          # optional: from the name
//! description: Golden signals per service.
//! filters:                        # facet filters offered above the widgets
//!   - attribute: appName
//!     values_from: SELECT uniques(appName) FROM Transaction
//! pages:
//!   - name: Overview
//!     widgets:
//!       - title: Throughput
//!         type: line              # line, area, stacked_bar, billboard, table, histogram, markdown
//!         query: SELECT rate(count(*), 1 minute) FROM Transaction FACET appName TIMESERIES
//!         width: 6                # of 12 columns
//!       - title: Error rate
//!         type: billboard
//!         query: SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction
//!         thresholds: {warning: 1, critical: 5}        # above (default) or direction: below
//!       - title: CPU by mode      # a PromQL widget over Prometheus metrics
//!         type: area
//!         language: promql        # nrql (default) or promql
//!         query: sum by (mode) (rate(node_cpu_seconds_total[5m]))
//!       - title: Notes
//!         type: markdown
//!         text: "Runbook: see **Checkout latency**."
//! ```

use serde::{Deserialize, Serialize};

/// A widget's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Line,
    Area,
    StackedBar,
    Billboard,
    Table,
    Histogram,
    Markdown,
}

/// Which way a billboard's thresholds point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Bad when the value is at or above the threshold.
    #[default]
    Above,
    /// Bad when it is at or below.
    Below,
}

/// A billboard's warning and critical values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    #[serde(default)]
    pub direction: Direction,
}

impl Thresholds {
    /// `critical`, `warning` or `ok` for `v`.
    pub fn state(&self, v: f64) -> &'static str {
        let bad = |t: Option<f64>| {
            t.is_some_and(|t| match self.direction {
                Direction::Above => v >= t,
                Direction::Below => v <= t,
            })
        };
        if bad(self.critical) {
            "critical"
        } else if bad(self.warning) {
            "warning"
        } else {
            "ok"
        }
    }
}

/// The language of a widget's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// NRQL over everything Lookout stores (the default).
    #[default]
    Nrql,
    /// PromQL over the Prometheus metric store, evaluated in the first project; the
    /// dashboard's facet filters do not apply to it.
    Promql,
}

impl Language {
    fn is_nrql(&self) -> bool {
        *self == Language::Nrql
    }
}

fn half() -> u8 {
    6
}

/// A widget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub title: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The query (every kind but markdown), in `language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// `nrql` (default) or `promql`.
    #[serde(default, skip_serializing_if = "Language::is_nrql")]
    pub language: Language,
    /// Markdown (markdown widgets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Columns of 12, default 6.
    #[serde(default = "half")]
    pub width: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
}

/// A page of widgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub name: String,
    pub widgets: Vec<Widget>,
}

/// A facet filter: `attribute = value` added to every widget's `WHERE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub attribute: String,
    /// A query whose `uniques()` lists the values offered (free text without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_from: Option<String>,
}

/// A dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    pub pages: Vec<Page>,
}

/// `Service overview` → `service-overview`.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

impl Dashboard {
    /// Its slug: given, or made from the name.
    pub fn slug(&self) -> String {
        self.slug.clone().unwrap_or_else(|| slugify(&self.name))
    }

    /// Checks every field and parses every query; the message says where.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err("name: 1 to 200 characters".into());
        }
        let slug = self.slug();
        if slug.is_empty()
            || slug.len() > 100
            || !slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err("slug: lowercase letters, digits and '-', 1 to 100".into());
        }
        if self.pages.is_empty() {
            return Err("pages: at least one".into());
        }
        if self.filters.len() > 5 {
            return Err("filters: at most 5".into());
        }
        for (i, f) in self.filters.iter().enumerate() {
            if f.attribute.trim().is_empty() {
                return Err(format!("filters[{i}].attribute: required"));
            }
            if let Some(q) = &f.values_from {
                lookout_nrql::parse(q)
                    .map_err(|e| format!("filters[{i}].values_from: {}", e.render(q)))?;
            }
        }
        for (p, page) in self.pages.iter().enumerate() {
            if page.widgets.is_empty() {
                return Err(format!("pages[{p}].widgets: at least one"));
            }
            for (i, w) in page.widgets.iter().enumerate() {
                let at = format!("pages[{p}].widgets[{i}]");
                if !(1..=12).contains(&w.width) {
                    return Err(format!("{at}.width: 1 to 12"));
                }
                match (w.kind, &w.query, &w.text) {
                    (Kind::Markdown, _, Some(_)) => {}
                    (Kind::Markdown, _, None) => {
                        return Err(format!("{at}.text: a markdown widget needs text"))
                    }
                    (Kind::Histogram, Some(_), _) if w.language == Language::Promql => {
                        return Err(format!(
                            "{at}.type: a promql widget is a line, area, stacked_bar, billboard or table"
                        ))
                    }
                    (_, Some(q), _) if w.language == Language::Promql => {
                        lookout_promql::Query::parse(q)
                            .map_err(|e| format!("{at}.query: {}", e.message))?;
                    }
                    (_, Some(q), _) => {
                        lookout_nrql::parse(q)
                            .map_err(|e| format!("{at}.query: {}", e.render(q)))?;
                    }
                    (_, None, _) => {
                        return Err(format!("{at}.query: required for a {:?} widget", w.kind))
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Dashboard, String> {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    /// As YAML, for export.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).unwrap_or_default()
    }
}

/// The dashboards in a file: one dashboard, a list of them, or a `dashboards:` list (as in the
/// config file).
pub fn read_many(text: &str) -> Result<Vec<Dashboard>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Doc {
        Wrapped { dashboards: Vec<Dashboard> },
        Many(Vec<Dashboard>),
        One(Box<Dashboard>),
    }
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        // Parsed once more as a single dashboard when untagged matching fails, for its message.
        match serde_yaml_ng::from_value::<Doc>(value.clone()) {
            Ok(Doc::Wrapped { dashboards }) | Ok(Doc::Many(dashboards)) => out.extend(dashboards),
            Ok(Doc::One(d)) => out.push(*d),
            Err(_) => {
                out.push(serde_yaml_ng::from_value::<Dashboard>(value).map_err(|e| e.to_string())?)
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "name: Service overview\npages:\n  - name: Overview\n    widgets:\n      - title: Throughput\n        type: line\n        query: SELECT count(*) FROM Transaction TIMESERIES\n      - title: Notes\n        type: markdown\n        text: hello\n        width: 12\n";

    #[test]
    fn yaml_round_trips_and_validates() {
        let d = Dashboard::from_yaml(YAML).unwrap();
        assert_eq!(d.slug(), "service-overview");
        assert!(d.validate().is_ok());
        assert_eq!(Dashboard::from_yaml(&d.to_yaml()).unwrap(), d);
        let mut bad = d.clone();
        bad.pages[0].widgets[0].query = Some("SELECT count(* FROM Transaction".into());
        assert!(bad
            .validate()
            .unwrap_err()
            .starts_with("pages[0].widgets[0].query: line 1"));
        let mut bad = d.clone();
        bad.pages[0].widgets[1].width = 13;
        assert!(bad.validate().unwrap_err().contains("width"));
    }

    #[test]
    fn promql_widgets_are_checked_as_promql() {
        let yaml = "name: M\npages:\n  - name: P\n    widgets:\n      - title: CPU\n        type: line\n        language: promql\n        query: sum by (mode) (rate(node_cpu_seconds_total[5m]))\n";
        let d = Dashboard::from_yaml(yaml).unwrap();
        assert_eq!(d.pages[0].widgets[0].language, Language::Promql);
        assert!(d.validate().is_ok());
        assert_eq!(Dashboard::from_yaml(&d.to_yaml()).unwrap(), d);
        // NRQL stays the default and is not written out.
        assert!(!Dashboard::from_yaml(YAML)
            .unwrap()
            .to_yaml()
            .contains("language"));
        let mut bad = d.clone();
        bad.pages[0].widgets[0].query = Some("sum(rate(x[5m])".into());
        assert!(bad
            .validate()
            .unwrap_err()
            .starts_with("pages[0].widgets[0].query: "));
        let mut bad = d.clone();
        bad.pages[0].widgets[0].query = Some("holt_winters(x[5m], 0.1, 0.1)".into());
        assert!(bad.validate().unwrap_err().contains("holt_winters"));
        let mut bad = d;
        bad.pages[0].widgets[0].kind = Kind::Histogram;
        assert!(bad.validate().unwrap_err().contains(".type"));
        assert!(Dashboard::from_yaml(&yaml.replace("promql", "sql")).is_err());
    }

    #[test]
    fn files_hold_one_many_or_a_dashboards_list() {
        assert_eq!(read_many(YAML).unwrap().len(), 1);
        let two = format!("{YAML}---\n{}", YAML.replace("Service overview", "Other"));
        assert_eq!(read_many(&two).unwrap().len(), 2);
        let wrapped = format!(
            "dashboards:\n{}",
            YAML.lines()
                .enumerate()
                .map(|(i, l)| if i == 0 {
                    format!("  - {l}\n")
                } else {
                    format!("    {l}\n")
                })
                .collect::<String>()
        );
        assert_eq!(read_many(&wrapped).unwrap()[0].name, "Service overview");
        assert!(read_many("name: x\npages: 3\n").is_err());
    }

    #[test]
    fn billboards_colour_by_direction() {
        let t = Thresholds {
            warning: Some(1.0),
            critical: Some(5.0),
            direction: Direction::Above,
        };
        assert_eq!(
            (t.state(0.5), t.state(1.0), t.state(7.0)),
            ("ok", "warning", "critical")
        );
        let t = Thresholds {
            warning: Some(0.9),
            critical: Some(0.7),
            direction: Direction::Below,
        };
        assert_eq!(
            (t.state(0.95), t.state(0.8), t.state(0.5)),
            ("ok", "warning", "critical")
        );
    }
}
