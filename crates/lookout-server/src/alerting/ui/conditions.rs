//! An alert policy's conditions as form rows: one fieldset per condition, its source chosen in
//! a select and that source's fields beside it, so every condition the config model holds
//! (`alerting::policies::Condition`, NRQL thresholds, gap filling and loss of signal included)
//! is shown, edited and saved without JSON. A trailing empty row adds a condition; a row's
//! Remove box drops it. The page works as plain form posts; app.js only hides the fields of the
//! sources not chosen.
//!
//! Rows are posted as `c{i}_{field}` (`c0_source`, `c1_critical_value`, …). A refusal names the
//! row and field it is about: the form's own (an id that is not a number) and the service's
//! (`conditions[1].window_seconds: …`) alike.

use serde_json::{json, Map, Value};

use super::forms::Refusal;

/// Most condition rows a form reads.
pub const MAX_CONDITIONS: usize = 20;

/// The sources a row may choose, with what the form calls them.
pub const SOURCES: &[(&str, &str)] = &[
    ("monitor", "Uptime monitors and cron jobs"),
    ("errors", "Error tracking"),
    ("nrql", "A query (NRQL) against thresholds"),
    ("database", "Database findings"),
    ("backups", "Backups"),
    ("regressions", "Performance regressions"),
    ("cluster", "Lookout's own replicas"),
];

/// New Relic's threshold operators, with how the form says them.
pub const OPERATORS: &[(&str, &str)] = &[
    ("above", "above"),
    ("above_or_equals", "at or above"),
    ("below", "below"),
    ("below_or_equals", "at or below"),
    ("equals", "equal to"),
    ("not_equals", "not equal to"),
];

/// A critical or warning threshold as typed; an empty value means the threshold is not set.
#[derive(Debug, Clone, Default)]
pub struct ThresholdForm {
    /// One of [`OPERATORS`].
    pub operator: String,
    /// The number compared with.
    pub value: String,
    /// For at least this many seconds (empty: one window).
    pub duration: String,
    /// `all` (for at least) or `at_least_once` (at least once in).
    pub occurrences: String,
}

impl ThresholdForm {
    fn of(t: &Value) -> ThresholdForm {
        if t.is_null() {
            return ThresholdForm::default();
        }
        ThresholdForm {
            operator: text(&t["operator"]),
            value: text(&t["value"]),
            duration: text(&t["duration_seconds"]),
            occurrences: text(&t["occurrences"]),
        }
    }
}

/// One condition row as typed.
#[derive(Debug, Clone, Default)]
pub struct ConditionForm {
    /// One of [`SOURCES`]; empty on the row that adds a condition.
    pub source: String,
    /// Monitor events, the errors event, database kinds, backup events or regression series,
    /// comma-separated.
    pub events: String,
    /// Only these: monitor, project or database target ids, or backup target names.
    pub ids: String,
    /// Errors `frequency`: more than this many events…
    pub threshold: String,
    /// …within this many minutes.
    pub window_minutes: String,
    /// The query.
    pub nrql: String,
    /// Aggregation window, seconds.
    pub window_seconds: String,
    /// Evaluation delay after a window ends, seconds.
    pub delay_seconds: String,
    /// New signals are not judged for this long, seconds.
    pub evaluation_delay_seconds: String,
    /// Critical threshold.
    pub critical: ThresholdForm,
    /// Warning threshold.
    pub warning: ThresholdForm,
    /// `none`, `static` or `last_value`.
    pub gap_filling: String,
    /// The static gap value.
    pub gap_value: String,
    /// Loss of signal after this many seconds (empty: off).
    pub los_expiration: String,
    /// Loss of signal opens an incident.
    pub los_open: bool,
    /// Loss of signal closes the signal's incidents.
    pub los_close: bool,
    /// Remove this row on save.
    pub remove: bool,
    /// The field a refusal names in this row (`nrql`, `critical_value`, …), or `row` when it
    /// names the row only.
    pub bad: String,
}

/// A JSON value as form text: strings bare, numbers as written, null empty.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A list of strings or numbers as comma-separated text.
fn joined(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl ConditionForm {
    /// Whether the row's field `f` is the one refused.
    pub fn is_bad(&self, f: &str) -> bool {
        self.bad == f
    }

    /// Whether the `part` of threshold `p` (`critical_value`, `warning_duration`) is refused.
    pub fn is_bad_in(&self, p: &str, part: &str) -> bool {
        self.bad.strip_prefix(p).and_then(|r| r.strip_prefix('_')) == Some(part)
    }

    /// The two thresholds as `(key, form, label)`, for the template.
    pub fn thresholds(&self) -> [(&'static str, &ThresholdForm, &'static str); 2] {
        [
            ("critical", &self.critical, "Critical"),
            ("warning", &self.warning, "Warning"),
        ]
    }

    /// A stored condition as its row.
    pub fn of(c: &Value) -> ConditionForm {
        let source = text(&c["source"]);
        let mut f = ConditionForm {
            source: source.clone(),
            ..ConditionForm::default()
        };
        match source.as_str() {
            "monitor" => {
                f.events = joined(&c["events"]);
                f.ids = joined(&c["monitor_ids"]);
            }
            "errors" => {
                f.events = text(&c["event"]);
                f.threshold = text(&c["threshold"]);
                f.window_minutes = text(&c["window_minutes"]);
                f.ids = joined(&c["project_ids"]);
            }
            "database" => {
                f.events = joined(&c["kinds"]);
                f.ids = joined(&c["target_ids"]);
            }
            "backups" => {
                f.events = joined(&c["events"]);
                f.ids = joined(&c["targets"]);
            }
            "cluster" => f.events = joined(&c["events"]),
            "regressions" => {
                f.events = joined(&c["series"]);
                f.ids = joined(&c["project_ids"]);
            }
            "nrql" => {
                f.nrql = text(&c["nrql"]);
                f.window_seconds = text(&c["window_seconds"]);
                f.delay_seconds = text(&c["delay_seconds"]);
                f.evaluation_delay_seconds = text(&c["evaluation_delay_seconds"]);
                f.critical = ThresholdForm::of(&c["critical"]);
                f.warning = ThresholdForm::of(&c["warning"]);
                f.gap_filling = text(&c["gap_filling"]["type"]);
                f.gap_value = text(&c["gap_filling"]["value"]);
                let los = &c["loss_of_signal"];
                f.los_expiration = text(&los["expiration_seconds"]);
                f.los_open = los["open_incident"] == Value::Bool(true);
                f.los_close = los["close_incidents"] == Value::Bool(true);
                f.ids = joined(&c["project_ids"]);
            }
            _ => {}
        }
        f
    }

    /// Sets the field a posted `c{i}_{what}` names.
    fn set(&mut self, what: &str, v: String) {
        let t = |t: &mut ThresholdForm, part: &str, v: String| match part {
            "operator" => t.operator = v,
            "value" => t.value = v,
            "duration" => t.duration = v,
            "occurrences" => t.occurrences = v,
            _ => {}
        };
        match what {
            "source" => self.source = v,
            "events" => self.events = v,
            "ids" => self.ids = v,
            "threshold" => self.threshold = v,
            "window_minutes" => self.window_minutes = v,
            "nrql" => self.nrql = v,
            "window_seconds" => self.window_seconds = v,
            "delay_seconds" => self.delay_seconds = v,
            "evaluation_delay_seconds" => self.evaluation_delay_seconds = v,
            "gap_filling" => self.gap_filling = v,
            "gap_value" => self.gap_value = v,
            "los_expiration" => self.los_expiration = v,
            "los_open" => self.los_open = true,
            "los_close" => self.los_close = true,
            "remove" => self.remove = true,
            other => {
                if let Some(part) = other.strip_prefix("critical_") {
                    t(&mut self.critical, part, v);
                } else if let Some(part) = other.strip_prefix("warning_") {
                    t(&mut self.warning, part, v);
                }
            }
        }
    }

    /// The API's condition, or the refusal of a field that cannot be one (row `i`), which is
    /// then marked.
    fn body(&mut self, i: usize) -> Result<Value, Refusal> {
        let built = self.build(i);
        if let Err(r) = &built {
            let prefix = format!("c{i}_");
            self.bad = r.field.strip_prefix(&prefix).unwrap_or("row").to_string();
        }
        built
    }

    fn build(&self, i: usize) -> Result<Value, Refusal> {
        let refuse = |field: &str, key: &str, why: String| Refusal {
            message: format!("conditions[{i}].{key}: {why}"),
            field: format!("c{i}_{field}"),
        };
        let whole = |s: &str| s.trim().parse::<i64>().ok();
        let ids = |key: &str, s: &str| -> Result<Vec<i64>, (String, String)> {
            list(s)
                .into_iter()
                .map(|x| {
                    x.parse::<i64>()
                        .map_err(|_| (key.to_string(), format!("{x:?} is not an id")))
                })
                .collect()
        };
        let mut v = Map::new();
        v.insert("source".into(), json!(self.source));
        let ids_key = match self.source.as_str() {
            "monitor" => "monitor_ids",
            "database" => "target_ids",
            "backups" => "targets",
            _ => "project_ids",
        };
        if self.source == "backups" {
            v.insert("targets".into(), json!(list(&self.ids)));
        } else if self.source == "cluster" {
            // Replicas have no ids to filter by: their names change with every start.
        } else {
            match ids(ids_key, &self.ids) {
                Ok(list) if list.is_empty() && self.source == "nrql" => {}
                Ok(list) => {
                    v.insert(ids_key.into(), json!(list));
                }
                Err((key, why)) => return Err(refuse("ids", &key, why)),
            }
        }
        match self.source.as_str() {
            "monitor" | "backups" | "cluster" => {
                v.insert("events".into(), json!(list(&self.events)));
            }
            "database" => {
                v.insert("kinds".into(), json!(list(&self.events)));
            }
            "regressions" => {
                v.insert("series".into(), json!(list(&self.events)));
            }
            "errors" => {
                v.insert("event".into(), json!(self.events.trim()));
                for (key, typed) in [
                    ("threshold", &self.threshold),
                    ("window_minutes", &self.window_minutes),
                ] {
                    if typed.trim().is_empty() {
                        continue;
                    }
                    match whole(typed) {
                        Some(n) => {
                            v.insert(key.into(), json!(n));
                        }
                        None => return Err(refuse(key, key, "a whole number".into())),
                    }
                }
            }
            "nrql" => {
                v.insert("nrql".into(), json!(self.nrql.trim()));
                for (key, typed) in [
                    ("window_seconds", &self.window_seconds),
                    ("delay_seconds", &self.delay_seconds),
                    ("evaluation_delay_seconds", &self.evaluation_delay_seconds),
                ] {
                    if typed.trim().is_empty() {
                        continue;
                    }
                    match typed.trim().parse::<u32>() {
                        Ok(n) => {
                            v.insert(key.into(), json!(n));
                        }
                        Err(_) => return Err(refuse(key, key, "a whole number of seconds".into())),
                    }
                }
                for (p, t) in [("critical", &self.critical), ("warning", &self.warning)] {
                    if t.value.trim().is_empty() {
                        continue;
                    }
                    let Ok(value) = t.value.trim().parse::<f64>() else {
                        return Err(refuse(
                            &format!("{p}_value"),
                            &format!("{p}.value"),
                            "a number".into(),
                        ));
                    };
                    let mut th = json!({
                        "operator": if t.operator.is_empty() { "above" } else { t.operator.as_str() },
                        "value": value,
                    });
                    if !t.duration.trim().is_empty() {
                        match t.duration.trim().parse::<u32>() {
                            Ok(d) => th["duration_seconds"] = json!(d),
                            Err(_) => {
                                return Err(refuse(
                                    &format!("{p}_duration"),
                                    &format!("{p}.duration_seconds"),
                                    "a whole number of seconds".into(),
                                ))
                            }
                        }
                    }
                    if !t.occurrences.is_empty() {
                        th["occurrences"] = json!(t.occurrences);
                    }
                    v.insert(p.into(), th);
                }
                match self.gap_filling.as_str() {
                    "" => {}
                    "static" => {
                        let value = if self.gap_value.trim().is_empty() {
                            0.0
                        } else {
                            match self.gap_value.trim().parse::<f64>() {
                                Ok(x) => x,
                                Err(_) => {
                                    return Err(refuse(
                                        "gap_value",
                                        "gap_filling.value",
                                        "a number".into(),
                                    ))
                                }
                            }
                        };
                        v.insert(
                            "gap_filling".into(),
                            json!({"type": "static", "value": value}),
                        );
                    }
                    other => {
                        v.insert("gap_filling".into(), json!({"type": other}));
                    }
                }
                if !self.los_expiration.trim().is_empty() {
                    let Ok(secs) = self.los_expiration.trim().parse::<u32>() else {
                        return Err(refuse(
                            "los_expiration",
                            "loss_of_signal.expiration_seconds",
                            "a whole number of seconds".into(),
                        ));
                    };
                    v.insert(
                        "loss_of_signal".into(),
                        json!({"expiration_seconds": secs, "open_incident": self.los_open,
                               "close_incidents": self.los_close}),
                    );
                }
            }
            _ => {}
        }
        Ok(Value::Object(v))
    }
}

/// Reads the condition rows from a posted form's pairs (`c{i}_{field}`); other pairs are
/// handed back.
pub fn parse(pairs: Vec<(String, String)>) -> (Vec<ConditionForm>, Vec<(String, String)>) {
    let mut rows: Vec<ConditionForm> = Vec::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        let Some((i, what)) = k
            .strip_prefix('c')
            .and_then(|r| r.split_once('_'))
            .and_then(|(i, w)| i.parse::<usize>().ok().map(|i| (i, w.to_string())))
        else {
            rest.push((k, v));
            continue;
        };
        if i >= MAX_CONDITIONS {
            continue;
        }
        if rows.len() <= i {
            rows.resize(i + 1, ConditionForm::default());
        }
        rows[i].set(&what, v);
    }
    // The empty row that adds a condition, and rows marked for removal, are not conditions.
    rows.retain(|r| !r.source.is_empty() && !r.remove);
    (rows, rest)
}

/// The API's `conditions` from the rows, or the refusal of the first row that cannot be one.
pub fn body(rows: &mut [ConditionForm]) -> Result<Value, Refusal> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter_mut().enumerate() {
        out.push(r.body(i)?);
    }
    Ok(Value::Array(out))
}

/// Marks the row and field a service refusal names (`conditions[2].critical.value: …`) and
/// answers the form field it is, or `None` when it names no row.
pub fn mark(rows: &mut [ConditionForm], message: &str) -> Option<String> {
    let (_, rest) = message.split_once("conditions[")?;
    let (i, rest) = rest.split_once(']')?;
    let i: usize = i.parse().ok()?;
    let row = rows.get_mut(i)?;
    let key = rest.trim_start_matches(['.', ':', ' ']);
    let field = [
        ("events", "events"),
        ("event", "events"),
        ("kinds", "events"),
        ("series", "events"),
        ("monitor_ids", "ids"),
        ("project_ids", "ids"),
        ("target_ids", "ids"),
        ("targets", "ids"),
        ("frequency", "threshold"),
        ("threshold", "threshold"),
        ("window_minutes", "window_minutes"),
        ("nrql", "nrql"),
        ("window_seconds", "window_seconds"),
        ("delay_seconds", "delay_seconds"),
        ("evaluation_delay_seconds", "evaluation_delay_seconds"),
        ("critical.duration_seconds", "critical_duration"),
        ("warning.duration_seconds", "warning_duration"),
        ("critical.value", "critical_value"),
        ("warning.value", "warning_value"),
        ("critical or warning", "critical_value"),
        ("loss_of_signal", "los_expiration"),
        ("gap_filling", "gap_filling"),
    ]
    .iter()
    .find(|(prefix, _)| key.starts_with(prefix))
    .map_or("row", |(_, f)| f);
    row.bad = field.to_string();
    Some(format!("c{i}_{field}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::policies::PolicySpec;

    /// Every field of every condition the config model holds.
    fn everything() -> Value {
        json!([
            {"source": "monitor", "events": ["down", "cron_missed"], "monitor_ids": [3, 4]},
            {"source": "monitor"},
            {"source": "errors", "event": "frequency", "threshold": 100, "window_minutes": 5,
             "project_ids": [1]},
            {"source": "errors", "event": "new_issue"},
            {"source": "database", "kinds": ["invalid_index"], "target_ids": [2]},
            {"source": "backups", "events": ["failed", "stale"], "targets": ["lookout", "pg-main"]},
            {"source": "cluster", "events": ["lost", "joined"]},
            {"source": "regressions", "series": ["api.p95_ms"], "project_ids": [1, 2]},
            {"source": "nrql", "nrql": "SELECT average(duration) FROM Transaction FACET appName",
             "window_seconds": 120, "delay_seconds": 60, "evaluation_delay_seconds": 600,
             "critical": {"operator": "above_or_equals", "value": 0.5, "duration_seconds": 360,
                          "occurrences": "at_least_once"},
             "warning": {"operator": "not_equals", "value": -1.25},
             "gap_filling": {"type": "static", "value": 7.5},
             "loss_of_signal": {"expiration_seconds": 900, "open_incident": true,
                                "close_incidents": false},
             "project_ids": [5]},
            {"source": "nrql", "nrql": "SELECT count(*) FROM Transaction",
             "warning": {"operator": "below", "value": 1}, "gap_filling": {"type": "last_value"}}
        ])
    }

    /// The pairs a browser would post for `rows`, as the template names them.
    fn posted(rows: &[ConditionForm]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let mut put = |k: &str, v: &str| out.push((format!("c{i}_{k}"), v.to_string()));
            put("source", &r.source);
            put("events", &r.events);
            put("ids", &r.ids);
            put("threshold", &r.threshold);
            put("window_minutes", &r.window_minutes);
            put("nrql", &r.nrql);
            put("window_seconds", &r.window_seconds);
            put("delay_seconds", &r.delay_seconds);
            put("evaluation_delay_seconds", &r.evaluation_delay_seconds);
            for (p, t) in [("critical", &r.critical), ("warning", &r.warning)] {
                put(&format!("{p}_operator"), &t.operator);
                put(&format!("{p}_value"), &t.value);
                put(&format!("{p}_duration"), &t.duration);
                put(&format!("{p}_occurrences"), &t.occurrences);
            }
            put("gap_filling", &r.gap_filling);
            put("gap_value", &r.gap_value);
            put("los_expiration", &r.los_expiration);
            if r.los_open {
                put("los_open", "on");
            }
            if r.los_close {
                put("los_close", "on");
            }
        }
        // The empty row that adds one.
        out.push((format!("c{}_source", rows.len()), String::new()));
        out
    }

    fn spec(conditions: Value) -> PolicySpec {
        let p: PolicySpec = serde_json::from_value(json!({ "conditions": conditions })).unwrap();
        p.validate().unwrap();
        p
    }

    #[test]
    fn every_condition_round_trips_through_its_rows() {
        // As stored: the spec the service saves, every default written out.
        let stored = serde_json::to_value(spec(everything())).unwrap();
        let rows: Vec<ConditionForm> = stored["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(ConditionForm::of)
            .collect();
        let (mut back, rest) = parse(posted(&rows));
        assert!(rest.is_empty());
        assert_eq!(back.len(), rows.len(), "the empty row is no condition");
        let saved = body(&mut back).unwrap();
        assert_eq!(spec(saved), spec(everything()));
    }

    #[test]
    fn a_removed_row_is_dropped_and_a_bad_id_names_its_row_and_field() {
        let pairs = vec![
            ("c0_source".to_string(), "monitor".to_string()),
            ("c0_remove".into(), "on".into()),
            ("c1_source".into(), "monitor".into()),
            ("c1_ids".into(), "3, web".into()),
        ];
        let (mut rows, _) = parse(pairs);
        assert_eq!(rows.len(), 1);
        let r = body(&mut rows).unwrap_err();
        assert_eq!(r.field, "c0_ids");
        assert_eq!(r.message, "conditions[0].monitor_ids: \"web\" is not an id");
        assert!(rows[0].is_bad("ids"));
    }

    #[test]
    fn a_service_refusal_marks_the_row_and_field_it_names() {
        let mut rows = vec![ConditionForm::default(), ConditionForm::default()];
        let f = mark(
            &mut rows,
            "conditions[1].critical.duration_seconds: up to 86400, a multiple of window_seconds",
        );
        assert_eq!(f.as_deref(), Some("c1_critical_duration"));
        assert!(rows[1].is_bad("critical_duration"));
        let f = mark(
            &mut rows,
            "conditions[0]: frequency needs threshold >= 1 and window_minutes 1-1440",
        );
        assert_eq!(f.as_deref(), Some("c0_threshold"));
        assert_eq!(mark(&mut rows, "name is required"), None);
    }
}
