//! Prometheus relabeling (`relabel_configs`, `metric_relabel_configs`): the actions `replace`,
//! `keep`, `drop`, `labelmap`, `labeldrop`, `labelkeep`, `hashmod`, `lowercase` and `uppercase`
//! with Prometheus's defaults (separator `;`, regex `(.*)` anchored at both ends, replacement
//! `$1`) and its semantics: a label set to the empty string is removed, a `replace` whose target
//! expands to an invalid label name does nothing, `hashmod` is the last 8 bytes of the MD5 of
//! the joined source values modulo `modulus`.
//!
//! Label names are not validated here: the caller does after all rules ran (a rule may repair
//! or drop a bad one), as Prometheus does.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// A label set while rules run: sorted by name.
pub type Labels = BTreeMap<String, String>;

/// A rule's action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    #[default]
    Replace,
    /// Drop the series or target unless `regex` matches the joined source values.
    Keep,
    /// Drop it when `regex` matches.
    Drop,
    /// Copy labels whose name matches to the name `replacement` expands to.
    Labelmap,
    /// Remove labels whose name matches.
    Labeldrop,
    /// Remove labels whose name does not match.
    Labelkeep,
    /// Set `target_label` to the hash of the joined source values modulo `modulus`.
    Hashmod,
    /// Set `target_label` to the joined source values in lower case.
    Lowercase,
    /// Set `target_label` to the joined source values in upper case.
    Uppercase,
}

fn semicolon() -> String {
    ";".into()
}
fn everything() -> String {
    "(.*)".into()
}
fn dollar_one() -> String {
    "$1".into()
}

/// One rule as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values.
    #[serde(default = "semicolon")]
    pub separator: String,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// A regular expression, anchored at both ends.
    #[serde(default = "everything")]
    pub regex: String,
    /// For `hashmod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    /// What `replace` and `labelmap` write (`$1`, `${name}` refer to groups).
    #[serde(default = "dollar_one")]
    pub replacement: String,
    /// The action.
    #[serde(default)]
    pub action: Action,
}

/// A validated rule with its regular expression compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    cfg: RelabelConfig,
    re: regex::Regex,
}

/// Longest regular expression a rule takes.
pub const MAX_REGEX: usize = 4096;

impl Rule {
    /// Validates and compiles `cfg`; the error says what is wrong with it.
    pub fn new(cfg: &RelabelConfig) -> Result<Rule, String> {
        if cfg.regex.len() > MAX_REGEX {
            return Err(format!("regex is longer than {MAX_REGEX} bytes"));
        }
        let re = regex::RegexBuilder::new(&format!("^(?s:{})$", cfg.regex))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid regex {:?}: {e}", cfg.regex))?;
        let needs_target = matches!(
            cfg.action,
            Action::Replace | Action::Hashmod | Action::Lowercase | Action::Uppercase
        );
        if needs_target && cfg.target_label.as_deref().unwrap_or("").is_empty() {
            return Err(format!(
                "action {:?} needs target_label",
                format!("{:?}", cfg.action).to_lowercase()
            ));
        }
        if cfg.action == Action::Hashmod && cfg.modulus.unwrap_or(0) == 0 {
            return Err("action hashmod needs a modulus above 0".into());
        }
        if matches!(cfg.action, Action::Keep | Action::Drop | Action::Hashmod)
            && cfg.source_labels.is_empty()
        {
            return Err(format!(
                "action {} needs source_labels",
                format!("{:?}", cfg.action).to_lowercase()
            ));
        }
        Ok(Rule {
            cfg: cfg.clone(),
            re,
        })
    }

    /// Applies the rule; false when the label set is dropped.
    pub fn apply(&self, labels: &mut Labels) -> bool {
        let c = &self.cfg;
        let joined = || {
            c.source_labels
                .iter()
                .map(|n| labels.get(n).map(String::as_str).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&c.separator)
        };
        match c.action {
            Action::Keep => return self.re.is_match(&joined()),
            Action::Drop => return !self.re.is_match(&joined()),
            Action::Replace => {
                let val = joined();
                let Some(caps) = self.re.captures(&val) else {
                    return true;
                };
                let mut target = String::new();
                caps.expand(c.target_label.as_deref().unwrap_or(""), &mut target);
                if !crate::exposition::is_label_name(&target) {
                    return true;
                }
                let mut res = String::new();
                caps.expand(&c.replacement, &mut res);
                set(labels, target, res);
            }
            Action::Hashmod => {
                let val = joined();
                let d = Md5::digest(val.as_bytes());
                let mut last = [0u8; 8];
                if let Some(tail) = d.get(8..16) {
                    last.copy_from_slice(tail);
                }
                let m = u64::from_be_bytes(last) % c.modulus.unwrap_or(1).max(1);
                set(
                    labels,
                    c.target_label.clone().unwrap_or_default(),
                    m.to_string(),
                );
            }
            Action::Lowercase | Action::Uppercase => {
                let val = joined();
                let v = if c.action == Action::Lowercase {
                    val.to_lowercase()
                } else {
                    val.to_uppercase()
                };
                set(labels, c.target_label.clone().unwrap_or_default(), v);
            }
            Action::Labelmap => {
                let add: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(n, _)| self.re.is_match(n))
                    .map(|(n, v)| {
                        (
                            self.re.replace(n, c.replacement.as_str()).into_owned(),
                            v.clone(),
                        )
                    })
                    .collect();
                for (n, v) in add {
                    set(labels, n, v);
                }
            }
            Action::Labeldrop => labels.retain(|n, _| !self.re.is_match(n)),
            Action::Labelkeep => labels.retain(|n, _| self.re.is_match(n)),
        }
        true
    }
}

fn set(labels: &mut Labels, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// Compiles every rule; the error names the rule by its position (from 1).
pub fn compile(cfgs: &[RelabelConfig]) -> Result<Vec<Rule>, String> {
    cfgs.iter()
        .enumerate()
        .map(|(i, c)| Rule::new(c).map_err(|e| format!("rule {}: {e}", i + 1)))
        .collect()
}

/// Runs `rules` in order; false when one drops the label set.
pub fn process(rules: &[Rule], labels: &mut Labels) -> bool {
    rules.iter().all(|r| r.apply(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        let c: RelabelConfig = serde_json::from_str(yaml).unwrap();
        Rule::new(&c).unwrap()
    }

    fn set_of(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keep_and_drop_match_the_joined_source_values_whole() {
        let keep = rule(r#"{"action":"keep","source_labels":["job","mode"],"regex":"node;idle"}"#);
        assert!(keep.apply(&mut set_of(&[("job", "node"), ("mode", "idle")])));
        // Anchored: a partial match is no match.
        assert!(!keep.apply(&mut set_of(&[("job", "node"), ("mode", "idle2")])));
        let drop = rule(r#"{"action":"drop","source_labels":["__name__"],"regex":"go_.*"}"#);
        assert!(!drop.apply(&mut set_of(&[("__name__", "go_goroutines")])));
        assert!(drop.apply(&mut set_of(&[("__name__", "node_load1")])));
    }

    #[test]
    fn replace_expands_groups_and_removes_on_empty() {
        let r = rule(
            r#"{"source_labels":["__address__"],"regex":"([^:]+):\\d+","target_label":"host","replacement":"${1}"}"#,
        );
        let mut l = set_of(&[("__address__", "db1:9100")]);
        assert!(r.apply(&mut l));
        assert_eq!(l.get("host").map(String::as_str), Some("db1"));
        // No match: nothing changes.
        let mut l = set_of(&[("__address__", "db1")]);
        r.apply(&mut l);
        assert!(!l.contains_key("host"));
        // An empty result removes the target label.
        let clear = rule(r#"{"source_labels":["x"],"target_label":"env","replacement":""}"#);
        let mut l = set_of(&[("env", "prod")]);
        clear.apply(&mut l);
        assert!(!l.contains_key("env"));
        // A target that expands to an invalid name is left alone.
        let bad = rule(r#"{"source_labels":["a"],"target_label":"$1","regex":"(.*)"}"#);
        let mut l = set_of(&[("a", "1bad")]);
        bad.apply(&mut l);
        assert_eq!(l, set_of(&[("a", "1bad")]));
    }

    #[test]
    fn labelmap_labeldrop_labelkeep_work_on_names() {
        let map = rule(r#"{"action":"labelmap","regex":"__meta_(.+)"}"#);
        let mut l = set_of(&[("__meta_zone", "eu"), ("job", "n")]);
        map.apply(&mut l);
        assert_eq!(l.get("zone").map(String::as_str), Some("eu"));
        assert!(l.contains_key("__meta_zone"));
        let drop = rule(r#"{"action":"labeldrop","regex":"__meta_.*|zone"}"#);
        drop.apply(&mut l);
        assert_eq!(l, set_of(&[("job", "n")]));
        let keep = rule(r#"{"action":"labelkeep","regex":"job|__name__"}"#);
        let mut l = set_of(&[("job", "n"), ("x", "y"), ("__name__", "m")]);
        keep.apply(&mut l);
        assert_eq!(l, set_of(&[("job", "n"), ("__name__", "m")]));
    }

    #[test]
    fn hashmod_is_prometheus_md5() {
        let r = rule(
            r#"{"action":"hashmod","source_labels":["a"],"target_label":"shard","modulus":1000}"#,
        );
        let mut l = set_of(&[("a", "foo")]);
        r.apply(&mut l);
        // md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; the last 8 bytes big-endian mod 1000.
        let want = (0xedef_654f_ccc4_a4d8_u64 % 1000).to_string();
        assert_eq!(l.get("shard"), Some(&want));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let c = |s: &str| Rule::new(&serde_json::from_str::<RelabelConfig>(s).unwrap());
        assert!(c(r#"{"regex":"("}"#).unwrap_err().contains("invalid regex"));
        assert!(c(r#"{"action":"replace"}"#)
            .unwrap_err()
            .contains("target_label"));
        assert!(c(r#"{"action":"keep"}"#)
            .unwrap_err()
            .contains("source_labels"));
        assert!(serde_json::from_str::<RelabelConfig>(r#"{"action":"explode"}"#).is_err());
    }
}
