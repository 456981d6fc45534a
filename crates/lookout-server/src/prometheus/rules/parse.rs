//! Prometheus rule files (`groups:` → `name`, `interval`, `limit`, `rules:`), parsed and checked
//! as `promtool check rules` checks them: every problem at once, each naming its group, rule and
//! field, with Prometheus's wording where it has one.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

/// Largest rule file accepted, bytes.
pub const MAX_FILE_BYTES: usize = 256 * 1024;
/// Most groups one project may have, over all its files.
pub const MAX_GROUPS: usize = 100;
/// Most rules one project may have, over all its files.
pub const MAX_RULES: usize = 1_000;
/// Shortest evaluation interval a group may ask for.
pub const MIN_INTERVAL_MS: i64 = 1_000;
/// Longest evaluation interval.
pub const MAX_INTERVAL_MS: i64 = 24 * 3_600_000;

/// A parsed, checked rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    /// Its groups, in file order.
    pub groups: Vec<Group>,
}

/// A rule group: evaluated in order, every `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Unique within the file.
    pub name: String,
    /// Evaluation interval, ms; `None` takes the global default.
    pub interval_ms: Option<i64>,
    /// Most series (alerts, for an alerting rule) one rule may produce; 0 for no limit of its own
    /// (the hard cap still applies).
    pub limit: usize,
    /// How far in the past the group's queries are evaluated, ms (`query_offset`, Prometheus
    /// 2.53): for data that arrives late, such as remote write from far away.
    pub query_offset_ms: i64,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Recording or alerting.
    pub kind: Kind,
    /// The PromQL expression, as written.
    pub expr: String,
    /// Labels added to (or replacing those of) each result.
    pub labels: BTreeMap<String, String>,
}

/// What a rule does with its result.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `record:` writes each result as a series of this name.
    Record(String),
    /// `alert:` each result is an alert.
    Alert {
        /// Its name (`alertname`).
        name: String,
        /// How long a result must last before the alert fires, ms.
        for_ms: i64,
        /// How long the alert keeps firing after its result is gone, ms.
        keep_firing_for_ms: i64,
        /// Annotations (templates), by name.
        annotations: BTreeMap<String, String>,
    },
}

impl Rule {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        match &self.kind {
            Kind::Record(n) | Kind::Alert { name: n, .. } => n,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    interval: Option<String>,
    #[serde(default)]
    limit: i64,
    /// Prometheus 2.53's per-group query offset.
    query_offset: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<serde_yaml_ng::Value>,
    #[serde(rename = "for")]
    for_: Option<String>,
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    annotations: BTreeMap<String, serde_yaml_ng::Value>,
}

/// A duration as rule files write them (`30s`, `5m`, `1h30m`); a bare number is refused, as
/// Prometheus refuses it.
fn duration(text: &str) -> Result<i64, String> {
    // `0s`, `0m`… are valid in rule files (`for: 0s` is common) but PromQL's parser, which reads
    // the others, refuses a zero duration.
    let t = text.trim();
    if t.starts_with('0')
        && t.chars()
            .all(|c| c == '0' || matches!(c, 's' | 'm' | 'h' | 'd' | 'w' | 'y'))
        && t.chars().filter(|c| !c.is_ascii_digit()).count() <= 2
    {
        return Ok(0);
    }
    if text.trim().parse::<f64>().is_ok() && text.trim() != "0" {
        return Err(format!(
            "not a valid duration string: {text:?} (write a unit, as in 30s or 5m)"
        ));
    }
    lookout_promql::parse_duration_ms(text.trim())
        .ok_or_else(|| format!("not a valid duration string: {text:?}"))
}

fn scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Parses and checks a rule file; every problem found, each naming its place.
pub fn parse(text: &str) -> Result<RuleFile, Vec<String>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(vec![format!(
            "the rule file is {} bytes; at most {MAX_FILE_BYTES} are accepted",
            text.len()
        )]);
    }
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: Vec::new() }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| vec![format!("yaml: {e}")])?
    };
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for g in raw.groups {
        let gname = g.name.clone();
        let at = |e: String| format!("group {gname:?}: {e}");
        if g.name.trim().is_empty() {
            errors.push("Groupname must not be empty".to_string());
        } else if !seen.insert(g.name.clone()) {
            errors.push(format!(
                "groupname: {:?} is repeated in the same file",
                g.name
            ));
        }
        let interval_ms = match g.interval.as_deref().map(duration) {
            None => None,
            Some(Ok(ms)) if (MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&ms) => Some(ms),
            Some(Ok(_)) => {
                errors.push(at(
                    "interval: must be between 1s and 24h in Lookout".to_string()
                ));
                None
            }
            Some(Err(e)) => {
                errors.push(at(format!("interval: {e}")));
                None
            }
        };
        if g.limit < 0 {
            errors.push(at("limit: must not be negative".into()));
        }
        let query_offset_ms = match g.query_offset.as_deref().map(duration) {
            None => 0,
            Some(Ok(ms)) if ms <= MAX_INTERVAL_MS => ms,
            Some(Ok(_)) => {
                errors.push(at("query_offset: must be at most 24h in Lookout".into()));
                0
            }
            Some(Err(e)) => {
                errors.push(at(format!("query_offset: {e}")));
                0
            }
        };
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let label = r
                .record
                .clone()
                .or_else(|| r.alert.clone())
                .unwrap_or_default();
            let before = errors.len();
            let mut err = |e: String| {
                errors.push(format!("group {gname:?}, rule {}, {label:?}: {e}", i + 1));
            };
            match (&r.record, &r.alert) {
                (Some(_), Some(_)) => err("only one of 'record' and 'alert' must be set".into()),
                (None, None) => err("one of 'record' or 'alert' must be set".into()),
                _ => {}
            }
            let expr = match r.expr.as_ref().map(scalar) {
                None => {
                    err("field 'expr' must be set in rule".into());
                    String::new()
                }
                Some(None) => {
                    err("field 'expr' must be a string".into());
                    String::new()
                }
                Some(Some(e)) => e,
            };
            if !expr.trim().is_empty() {
                if let Err(e) = lookout_promql::Query::parse(&expr) {
                    err(format!("could not parse expression: {}", e.message));
                }
            } else if r.expr.is_some() {
                err("field 'expr' must be set in rule".into());
            }
            let mut labels = BTreeMap::new();
            for (k, v) in &r.labels {
                if !lookout_promql::is_label_name(k) || k == "__name__" {
                    err(format!("invalid label name: {k}"));
                }
                match scalar(v) {
                    Some(s) => {
                        labels.insert(k.clone(), s);
                    }
                    None => err(format!("labels: {k}: the value must be a string")),
                }
            }
            let mut annotations = BTreeMap::new();
            for (k, v) in &r.annotations {
                if !lookout_promql::is_label_name(k) {
                    err(format!("invalid annotation name: {k}"));
                }
                match scalar(v) {
                    Some(s) => {
                        annotations.insert(k.clone(), s);
                    }
                    None => err(format!("annotations: {k}: the value must be a string")),
                }
            }
            let for_ms = match r.for_.as_deref().map(duration) {
                None => 0,
                Some(Ok(ms)) => ms,
                Some(Err(e)) => {
                    err(format!("for: {e}"));
                    0
                }
            };
            let keep_ms = match r.keep_firing_for.as_deref().map(duration) {
                None => 0,
                Some(Ok(ms)) => ms,
                Some(Err(e)) => {
                    err(format!("keep_firing_for: {e}"));
                    0
                }
            };
            // As `promtool check rules`: an alerting rule's templates must parse.
            if let Some(name) = r.alert.as_deref().filter(|_| r.record.is_none()) {
                for (what, map) in [("label", &labels), ("annotation", &annotations)] {
                    for (k, text) in map {
                        if let Err(e) = super::template::check(name, text) {
                            err(format!("{what} {k:?}: {e}"));
                        }
                    }
                }
            }
            let kind = if let Some(name) = &r.record {
                if !r.annotations.is_empty() {
                    err("invalid field 'annotations' in recording rule".into());
                }
                if r.for_.is_some() {
                    err("invalid field 'for' in recording rule".into());
                }
                if r.keep_firing_for.is_some() {
                    err("invalid field 'keep_firing_for' in recording rule".into());
                }
                if !lookout_promql::is_metric_name(name) {
                    err(format!("invalid recording rule name: {name}"));
                }
                Kind::Record(name.clone())
            } else {
                let name = r.alert.clone().unwrap_or_default();
                if r.alert.is_some() && name.trim().is_empty() {
                    err("field 'alert' must not be empty".into());
                }
                Kind::Alert {
                    name,
                    for_ms,
                    keep_firing_for_ms: keep_ms,
                    annotations,
                }
            };
            if errors.len() == before {
                rules.push(Rule { kind, expr, labels });
            }
        }
        groups.push(Group {
            name: g.name,
            interval_ms,
            limit: usize::try_from(g.limit).unwrap_or(0),
            query_offset_ms,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(RuleFile { groups })
    } else {
        Err(errors)
    }
}

/// Checks a project's files together against [`MAX_GROUPS`] and [`MAX_RULES`].
pub fn check_project_limits<'a>(
    files: impl IntoIterator<Item = &'a RuleFile>,
) -> Result<(), String> {
    let (mut groups, mut rules) = (0usize, 0usize);
    for f in files {
        groups += f.groups.len();
        rules += f.groups.iter().map(|g| g.rules.len()).sum::<usize>();
    }
    if groups > MAX_GROUPS {
        return Err(format!(
            "the project would have {groups} rule groups; at most {MAX_GROUPS} are allowed"
        ));
    }
    if rules > MAX_RULES {
        return Err(format!(
            "the project would have {rules} rules; at most {MAX_RULES} are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_file_parses() {
        let f = parse(
            r#"
groups:
  - name: example
    interval: 30s
    limit: 10
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {tier: "1"}
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: {severity: critical}
        annotations:
          summary: "Instance {{ $labels.instance }} down"
"#,
        )
        .unwrap();
        let g = &f.groups[0];
        assert_eq!((g.interval_ms, g.limit), (Some(30_000), 10));
        assert_eq!(g.rules[0].kind, Kind::Record("job:up:sum".into()));
        match &g.rules[1].kind {
            Kind::Alert {
                name,
                for_ms,
                keep_firing_for_ms,
                annotations,
            } => {
                assert_eq!(
                    (name.as_str(), *for_ms, *keep_firing_for_ms),
                    ("InstanceDown", 300_000, 60_000)
                );
                assert!(annotations["summary"].contains("$labels.instance"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn alert_templates_must_parse_as_promtool_checks_them() {
        let e = parse(
            r#"
groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        labels: {severity: "{{ if gt $value 1.0 }}page{{ end"}
        annotations:
          ok: "{{ $labels.job | toUpper }} is {{ humanize $value }}"
          summary: "{{ nope $value }}"
"#,
        )
        .unwrap_err();
        let all = e.join("\n");
        assert_eq!(e.len(), 2, "{all}");
        assert!(
            all.contains(r#"rule 1, "A": label "severity": error parsing template __alert_A"#),
            "{all}"
        );
        assert!(
            all.contains(r#"annotation "summary": error parsing template __alert_A: template: __alert_A: function "nope" not defined"#),
            "{all}"
        );
    }

    #[test]
    fn errors_name_the_group_rule_and_field() {
        let e = parse(
            r#"
groups:
  - name: g
    rules:
      - record: ok
        expr: up
      - alert: Broken
        expr: sum(up
      - record: bad name
        expr: up
        for: 1m
      - alert: X
        record: y
        expr: up
  - name: g
    interval: 5
    rules: []
"#,
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(
            all.contains("group \"g\", rule 2, \"Broken\": could not parse expression"),
            "{all}"
        );
        assert!(
            all.contains(
                "group \"g\", rule 3, \"bad name\": invalid recording rule name: bad name"
            ),
            "{all}"
        );
        assert!(
            all.contains("rule 3, \"bad name\": invalid field 'for' in recording rule"),
            "{all}"
        );
        assert!(
            all.contains("rule 4, \"y\": only one of 'record' and 'alert' must be set"),
            "{all}"
        );
        assert!(
            all.contains("groupname: \"g\" is repeated in the same file"),
            "{all}"
        );
        assert!(
            all.contains("group \"g\": interval: not a valid duration string"),
            "{all}"
        );
    }

    #[test]
    fn zero_durations_are_durations() {
        assert_eq!(duration("0s"), Ok(0));
        assert_eq!(duration("0"), Ok(0));
        assert_eq!(duration("0ms"), Ok(0));
        assert_eq!(duration("1m30s"), Ok(90_000));
        assert!(duration("0x").is_err());
        assert!(duration("5").is_err());
    }

    #[test]
    fn unknown_fields_are_refused_as_prometheus_does() {
        let e = parse("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        fore: 1m\n").unwrap_err();
        assert!(e[0].contains("fore"), "{e:?}");
    }

    #[test]
    fn query_offset_is_read_and_bounded() {
        let g = |offset: &str| {
            parse(&format!(
                "groups:\n  - name: g\n    query_offset: {offset}\n    rules:\n      - record: r\n        expr: up\n"
            ))
        };
        assert_eq!(g("1m").unwrap().groups[0].query_offset_ms, 60_000);
        assert!(g("25h").unwrap_err()[0].contains("query_offset"));
        assert!(g("soon").unwrap_err()[0].contains("query_offset"));
    }

    #[test]
    fn project_limits_count_every_file() {
        let one = RuleFile {
            groups: (0..60)
                .map(|i| Group {
                    name: format!("g{i}"),
                    interval_ms: None,
                    limit: 0,
                    query_offset_ms: 0,
                    rules: vec![],
                })
                .collect(),
        };
        assert!(check_project_limits([&one]).is_ok());
        assert!(check_project_limits([&one, &one])
            .unwrap_err()
            .contains("120 rule groups"));
    }
}
