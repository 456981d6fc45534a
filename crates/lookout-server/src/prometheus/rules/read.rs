//! `GET /prometheus/api/v1/rules` and `GET /prometheus/api/v1/alerts` with Prometheus's JSON
//! shapes (Grafana lists rules and alerts through them), and [`groups`], the view of a
//! project's groups with their stored state that the Rules page shows too.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lookout_store::prom::rules as rstore;
use lookout_store::{Store, StoreError};
use serde_json::{json, Map, Value as JsonValue};

use super::eval::{Alert, AlertState, GroupState, RuleState};
use super::parse::{Group, Kind, Rule};
use super::runner::{default_interval_ms, rule_key, rule_keys};
use crate::prometheus::read::{begin, PromRequest};
use crate::prometheus::PromError;
use crate::state::AppState;

/// One group as shown: where it is, what it holds, and its last evaluation.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// Rule file name.
    pub file: String,
    /// The group as parsed.
    pub group: Group,
    /// The last evaluation's timestamp, ms (`None`: never evaluated).
    pub evaluated_at: Option<i64>,
    /// Its stored state.
    pub state: GroupState,
}

impl GroupView {
    /// The stored state of `rule`, if this version of it was evaluated.
    /// (`rule` is one of this group's rules; two identical rules have separate state, see
    /// [`super::runner::rule_keys`]).
    pub fn rule_state(&self, rule: &Rule) -> Option<&RuleState> {
        let key = match self.group.rules.iter().position(|r| std::ptr::eq(r, rule)) {
            Some(i) => rule_keys(&self.group).swap_remove(i),
            None => rule_key(rule),
        };
        self.state.rules.iter().find(|r| r.key == key)
    }
}

/// The groups of `project`'s rule files, in file and group order, with their state.
pub async fn groups(store: &Store, project: i64) -> Result<Vec<GroupView>, StoreError> {
    let states: HashMap<(String, String), rstore::GroupStateRow> = rstore::states(store, project)
        .await?
        .into_iter()
        .map(|s| ((s.file.clone(), s.group_name.clone()), s))
        .collect();
    let mut out = Vec::new();
    for f in rstore::files(store, project).await? {
        let Ok(parsed) = super::parse::parse(&f.content) else {
            continue;
        };
        for group in parsed.groups {
            let row = states.get(&(f.name.clone(), group.name.clone()));
            out.push(GroupView {
                file: f.name.clone(),
                evaluated_at: row.map(|r| r.evaluated_at),
                state: row
                    .and_then(|r| serde_json::from_str(&r.state).ok())
                    .unwrap_or_default(),
                group,
            });
        }
    }
    Ok(out)
}

/// RFC 3339 with Go's zero time for "never", as Prometheus answers.
fn rfc3339(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => lookout_core::time::iso(ms),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn labels_obj(l: &[(String, String)]) -> JsonValue {
    JsonValue::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), JsonValue::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// A value as Prometheus's alerts API formats it (Go's `FormatFloat(v, 'e', -1, 64)`:
/// `1e+00`, `2.5e-01`).
pub fn value_e(text: &str) -> String {
    let Ok(v) = text.parse::<f64>() else {
        return text.to_string();
    };
    if !v.is_finite() {
        return lookout_promql::format_value(v);
    }
    let s = format!("{v:e}");
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// An alert in Prometheus's API shape.
pub fn alert_json(a: &Alert) -> JsonValue {
    let mut o = json!({
        "labels": labels_obj(&a.labels),
        "annotations": labels_obj(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": rfc3339(Some(a.active_at)),
        "value": value_e(&a.value),
    });
    if let Some(k) = a.keep_firing_since {
        o["keepFiringSince"] = json!(rfc3339(Some(k)));
    }
    o
}

/// `inactive`, `pending` or `firing`: the most severe state of a rule's alerts.
pub fn rule_state_name(s: Option<&RuleState>) -> &'static str {
    let alerts = s.map(|s| s.alerts.as_slice()).unwrap_or(&[]);
    if alerts.iter().any(|a| a.state == AlertState::Firing) {
        "firing"
    } else if alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    }
}

fn rule_json(g: &GroupView, r: &Rule) -> JsonValue {
    let s = g.rule_state(r);
    let common = |o: &mut JsonValue| {
        o["health"] = json!(s.map_or("unknown", |s| s.health.as_str()));
        o["lastError"] = json!(s.and_then(|s| s.last_error.clone()).unwrap_or_default());
        o["evaluationTime"] = json!(s.map_or(0.0, |s| s.duration_ms as f64 / 1000.0));
        o["lastEvaluation"] = json!(rfc3339(s.map(|s| s.evaluated_at)));
        o["labels"] = JsonValue::Object(
            r.labels
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    };
    match &r.kind {
        Kind::Record(name) => {
            let mut o = json!({"name": name, "query": r.expr, "type": "recording"});
            common(&mut o);
            o
        }
        Kind::Alert {
            name,
            for_ms,
            keep_firing_for_ms,
            annotations,
        } => {
            let alerts: Vec<JsonValue> = s
                .map(|s| s.alerts.iter().map(alert_json).collect())
                .unwrap_or_default();
            let mut o = json!({
                "state": rule_state_name(s),
                "name": name,
                "query": r.expr,
                "duration": *for_ms as f64 / 1000.0,
                "keepFiringFor": *keep_firing_for_ms as f64 / 1000.0,
                "annotations": annotations,
                "alerts": alerts,
                "type": "alerting",
            });
            common(&mut o);
            o
        }
    }
}

/// `GET /prometheus/api/v1/rules`: `type=alert|record` filters, as do `rule_name[]`,
/// `rule_group[]` and `file[]`.
pub async fn rules(State(state): State<AppState>, req: PromRequest) -> Result<Response, PromError> {
    let (project, p) = begin(&state, req).await?;
    let want = match p.one("type") {
        None | Some("") => None,
        Some("alert") => Some(true),
        Some("record") => Some(false),
        Some(other) => {
            return Err(PromError::bad_data(format!(
                "invalid parameter \"type\": not supported value {other:?}"
            )))
        }
    };
    let names: Vec<&str> = p.many("rule_name[]");
    let group_names: Vec<&str> = p.many("rule_group[]");
    let files: Vec<&str> = p.many("file[]");
    let mut out = Vec::new();
    for g in groups(state.store(), project).await? {
        if (!group_names.is_empty() && !group_names.contains(&g.group.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.file.as_str()))
        {
            continue;
        }
        let rules: Vec<JsonValue> = g
            .group
            .rules
            .iter()
            .filter(|r| match want {
                None => true,
                Some(alert) => matches!(r.kind, Kind::Alert { .. }) == alert,
            })
            .filter(|r| names.is_empty() || names.contains(&r.name()))
            .map(|r| rule_json(&g, r))
            .collect();
        if rules.is_empty() && (want.is_some() || !names.is_empty()) {
            continue;
        }
        out.push(json!({
            "name": g.group.name,
            "file": g.file,
            "rules": rules,
            "interval": g.group.interval_ms.unwrap_or_else(default_interval_ms) as f64 / 1000.0,
            "limit": g.group.limit,
            "evaluationTime": g.state.duration_ms as f64 / 1000.0,
            "lastEvaluation": rfc3339(g.evaluated_at),
        }));
    }
    Ok(Json(json!({"status": "success", "data": {"groups": out}})).into_response())
}

/// `GET /prometheus/api/v1/alerts`: every active (pending or firing) alert.
pub async fn alerts(
    State(state): State<AppState>,
    req: PromRequest,
) -> Result<Response, PromError> {
    let (project, _) = begin(&state, req).await?;
    let mut out = Vec::new();
    for g in groups(state.store(), project).await? {
        for r in &g.group.rules {
            if let Some(s) = g.rule_state(r) {
                out.extend(s.alerts.iter().map(alert_json));
            }
        }
    }
    Ok(Json(json!({"status": "success", "data": {"alerts": out}})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_formatted_as_prometheus_formats_them() {
        assert_eq!(value_e("1"), "1e+00");
        assert_eq!(value_e("0.25"), "2.5e-01");
        assert_eq!(value_e("12345"), "1.2345e+04");
        assert_eq!(value_e("NaN"), "NaN");
    }
}
