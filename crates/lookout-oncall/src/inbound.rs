//! Parsers for what other tools send to page through Lookout: PagerDuty Events API v2,
//! Prometheus Alertmanager's webhook (version 4; Grafana alerting sends a superset), and a generic
//! JSON webhook read through a configurable field mapping.
//!
//! Each turns untrusted bytes into [`Signal`]s or a list of field errors; nothing here touches
//! storage. Unknown fields are accepted everywhere, as the senders add fields over time.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use crate::dedup::{clip, Severity, MAX_DEDUP_KEY};

/// Longest summary kept (PagerDuty's limit).
pub const MAX_SUMMARY: usize = 1024;

/// What the sender wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Open an incident, or add to the open one with the same dedup key.
    Trigger,
    /// Acknowledge the open incident with this dedup key.
    Acknowledge,
    /// Resolve it.
    Resolve,
}

/// A link the sender attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Where.
    pub href: String,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One normalised alert signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// Trigger, acknowledge or resolve.
    pub action: Action,
    /// The key that joins signals into one incident (none: the caller makes one up).
    pub dedup_key: Option<String>,
    /// The incident title.
    pub title: String,
    /// Severity (error when the sender gave none).
    pub severity: Severity,
    /// The affected host or resource.
    pub source: Option<String>,
    /// Everything else worth showing (labels, annotations, custom details).
    pub details: Value,
    /// Links back to the sender.
    pub links: Vec<Link>,
}

/// Why a body was refused: a summary and one line per problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Summary.
    pub message: String,
    /// Each problem, naming the field.
    pub errors: Vec<String>,
}

impl Invalid {
    fn one(message: &str, error: String) -> Invalid {
        Invalid {
            message: message.into(),
            errors: vec![error],
        }
    }
}

#[derive(Deserialize)]
struct PdEvent {
    routing_key: Option<Value>,
    event_action: Option<Value>,
    dedup_key: Option<Value>,
    payload: Option<Value>,
    #[serde(default)]
    links: Vec<Value>,
    client: Option<Value>,
    client_url: Option<Value>,
}

/// A PagerDuty Events API v2 event: its routing key and the signal. Errors follow PagerDuty's
/// wording closely enough that a client's log makes sense either way.
pub fn pagerduty(body: &[u8]) -> Result<(String, Signal), Invalid> {
    let ev: PdEvent = serde_json::from_slice(body)
        .map_err(|e| Invalid::one("Event object is invalid", format!("invalid JSON: {e}")))?;
    let mut errors = Vec::new();
    let routing_key = match &ev.routing_key {
        Some(Value::String(k)) if k.len() == 32 => k.clone(),
        Some(Value::String(_)) => {
            errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".into());
            String::new()
        }
        _ => {
            errors.push("'routing_key' is missing or blank".into());
            String::new()
        }
    };
    let action = match ev.event_action.as_ref().and_then(Value::as_str) {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        Some(other) => {
            errors.push(format!(
                "'event_action' must be trigger, acknowledge or resolve, not {other:?}"
            ));
            None
        }
        None => {
            errors.push("'event_action' is missing or blank".into());
            None
        }
    };
    let dedup_key = match &ev.dedup_key {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.len() > MAX_DEDUP_KEY => {
            errors.push(format!(
                "'dedup_key' is longer than {MAX_DEDUP_KEY} characters"
            ));
            None
        }
        Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
        Some(_) => {
            errors.push("'dedup_key' must be a non-empty string".into());
            None
        }
    };
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        errors.push("'dedup_key' is required to acknowledge or resolve".into());
    }
    let payload = ev.payload.clone().unwrap_or(Value::Null);
    let mut title = String::new();
    let mut severity = Severity::Error;
    let mut source = None;
    if action == Some(Action::Trigger) {
        match payload.as_object() {
            None => errors.push("'payload' is missing or not an object".into()),
            Some(p) => {
                match p.get("summary").and_then(Value::as_str) {
                    Some(s) if !s.trim().is_empty() => title = clip(s, MAX_SUMMARY),
                    _ => errors.push("'payload.summary' is missing or blank".into()),
                }
                match p.get("source").and_then(Value::as_str) {
                    Some(s) if !s.trim().is_empty() => source = Some(clip(s, 255)),
                    _ => errors.push("'payload.source' is missing or blank".into()),
                }
                match p.get("severity").and_then(Value::as_str) {
                    Some(s @ ("critical" | "error" | "warning" | "info")) => {
                        severity = Severity::parse(s).unwrap_or(Severity::Error);
                    }
                    Some(s) => errors.push(format!(
                        "'payload.severity' must be critical, error, warning or info, not {s:?}"
                    )),
                    None => errors.push("'payload.severity' is missing or blank".into()),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Invalid {
            message: "Event object is invalid".into(),
            errors,
        });
    }
    let mut details = Map::new();
    if let Some(p) = payload.as_object() {
        for k in ["component", "group", "class", "timestamp", "custom_details"] {
            if let Some(v) = p.get(k) {
                details.insert(k.into(), v.clone());
            }
        }
    }
    for (k, v) in [("client", &ev.client), ("client_url", &ev.client_url)] {
        if let Some(v) = v {
            details.insert(k.into(), v.clone());
        }
    }
    let mut links: Vec<Link> = ev
        .links
        .iter()
        .filter_map(|l| serde_json::from_value(l.clone()).ok())
        .collect();
    if let Some(Value::String(url)) = &ev.client_url {
        links.push(Link {
            href: url.clone(),
            text: ev.client.as_ref().and_then(Value::as_str).map(String::from),
        });
    }
    Ok((
        routing_key,
        Signal {
            action: action.unwrap_or(Action::Trigger),
            dedup_key,
            title,
            severity,
            source,
            details: Value::Object(details),
            links,
        },
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmMessage {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    group_key: Option<String>,
    // Alertmanager spells it `externalURL` (camelCase alone would expect `externalUrl`).
    #[serde(default, rename = "externalURL", alias = "externalUrl")]
    external_url: Option<String>,
    #[serde(default)]
    common_labels: Map<String, Value>,
    #[serde(default)]
    alerts: Vec<AmAlert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: Option<String>,
    #[serde(default)]
    labels: Map<String, Value>,
    #[serde(default)]
    annotations: Map<String, Value>,
    #[serde(default)]
    starts_at: Option<String>,
    // Alertmanager and Grafana spell it `generatorURL`.
    #[serde(default, rename = "generatorURL", alias = "generatorUrl")]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    // Grafana's additions.
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(default, rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(default)]
    value_string: Option<String>,
}

/// An Alertmanager (version 4) or Grafana alerting webhook: one signal per alert, keyed by the
/// alert's fingerprint, so each alert of a group is reconciled on its own and resends of the
/// whole group change nothing. The title is `alertname: summary` (or whichever of the two exists).
pub fn alertmanager(body: &[u8]) -> Result<Vec<Signal>, Invalid> {
    let msg: AmMessage = serde_json::from_slice(body)
        .map_err(|e| Invalid::one("Webhook body is invalid", format!("invalid JSON: {e}")))?;
    if let Some(v) = &msg.version {
        if v != "4" && v != "1" {
            return Err(Invalid::one(
                "Webhook body is invalid",
                format!("'version' {v:?} is not supported (Alertmanager sends \"4\")"),
            ));
        }
    }
    let mut out = Vec::with_capacity(msg.alerts.len());
    for (i, a) in msg.alerts.iter().enumerate() {
        let status = a.status.as_deref().or(msg.status.as_deref());
        let action = match status {
            Some("firing" | "alerting") => Action::Trigger,
            Some("resolved" | "ok") => Action::Resolve,
            other => {
                return Err(Invalid::one(
                    "Webhook body is invalid",
                    format!("alerts[{i}].status must be firing or resolved, not {other:?}"),
                ))
            }
        };
        let label =
            |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(String::from);
        // Alertmanager always sends a fingerprint; for senders that do not, the sorted labels
        // identify the alert the same way.
        let key = match &a.fingerprint {
            Some(f) if !f.is_empty() => f.clone(),
            _ => {
                let mut pairs: Vec<String> = a
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                pairs.sort();
                format!(
                    "{}|{}",
                    msg.group_key.clone().unwrap_or_default(),
                    pairs.join(",")
                )
            }
        };
        let name = label(&a.labels, "alertname");
        let summary =
            label(&a.annotations, "summary").or_else(|| label(&a.annotations, "description"));
        let title = match (name, summary) {
            (Some(n), Some(s)) => format!("{n}: {s}"),
            (Some(n), None) => n,
            (None, Some(s)) => s,
            (None, None) => "Alert".into(),
        };
        let severity = label(&a.labels, "severity")
            .or_else(|| label(&msg.common_labels, "severity"))
            .and_then(|s| Severity::parse(&s))
            .unwrap_or(Severity::Error);
        let source = label(&a.labels, "instance")
            .or_else(|| label(&a.labels, "job"))
            .or_else(|| label(&a.labels, "service"));
        let mut links = Vec::new();
        for (href, text) in [
            (&a.generator_url, "Source"),
            (&a.dashboard_url, "Dashboard"),
            (&a.panel_url, "Panel"),
            (&a.silence_url, "Silence"),
            (&msg.external_url, "Alertmanager"),
        ] {
            if let Some(h) = href.as_ref().filter(|h| !h.is_empty()) {
                links.push(Link {
                    href: h.clone(),
                    text: Some(text.into()),
                });
            }
        }
        let mut details = Map::new();
        details.insert("labels".into(), Value::Object(a.labels.clone()));
        details.insert("annotations".into(), Value::Object(a.annotations.clone()));
        if let Some(s) = &a.starts_at {
            details.insert("starts_at".into(), Value::String(s.clone()));
        }
        if let Some(v) = &a.value_string {
            details.insert("value".into(), Value::String(v.clone()));
        }
        if let Some(g) = &msg.group_key {
            details.insert("group_key".into(), Value::String(g.clone()));
        }
        out.push(Signal {
            action,
            dedup_key: Some(clip(&key, MAX_DEDUP_KEY)),
            title: clip(&title, MAX_SUMMARY),
            severity,
            source,
            details: Value::Object(details),
            links,
        });
    }
    Ok(out)
}

/// Where a generic webhook's fields are, as JSONPath expressions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The title (default `$.title`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The severity (default `$.severity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The dedup key (default `$.dedup_key`, then `$.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    /// Where the state is (default `$.status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// State values that resolve (default `resolved`, `ok`, `OK`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolve_values: Vec<String>,
    /// State values that acknowledge (default `acknowledged`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acknowledge_values: Vec<String>,
}

impl Mapping {
    /// Checks that every path parses.
    pub fn validate(&self) -> Result<(), String> {
        for (field, p) in [
            ("title", &self.title),
            ("severity", &self.severity),
            ("dedup_key", &self.dedup_key),
            ("status", &self.status),
        ] {
            if let Some(p) = p {
                JsonPath::parse(p).map_err(|e| format!("mapping.{field}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A generic JSON webhook read through `mapping`.
pub fn mapped(body: &[u8], mapping: &Mapping) -> Result<Signal, Invalid> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::one("Webhook body is invalid", format!("invalid JSON: {e}")))?;
    let get = |path: Option<&String>, fallbacks: &[&str]| -> Result<Option<String>, Invalid> {
        let paths: Vec<&str> = match path {
            Some(p) => vec![p.as_str()],
            None => fallbacks.to_vec(),
        };
        for p in paths {
            let jp = JsonPath::parse(p)
                .map_err(|e| Invalid::one("Mapping is invalid", format!("{p}: {e}")))?;
            if let Some(v) = jp.query(&doc).first() {
                return Ok(match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                });
            }
        }
        Ok(None)
    };
    let title = get(
        mapping.title.as_ref(),
        &["$.title", "$.summary", "$.message"],
    )?
    .ok_or_else(|| {
        Invalid::one(
            "Webhook body is invalid",
            format!(
                "no title at {}",
                mapping
                    .title
                    .as_deref()
                    .unwrap_or("$.title, $.summary or $.message")
            ),
        )
    })?;
    let severity = get(mapping.severity.as_ref(), &["$.severity"])?
        .and_then(|s| Severity::parse(&s))
        .unwrap_or(Severity::Error);
    let dedup_key =
        get(mapping.dedup_key.as_ref(), &["$.dedup_key", "$.id"])?.map(|k| clip(&k, MAX_DEDUP_KEY));
    let status = get(mapping.status.as_ref(), &["$.status", "$.state"])?;
    let is = |values: &[String], defaults: &[&str], s: &str| {
        if values.is_empty() {
            defaults.iter().any(|d| d.eq_ignore_ascii_case(s))
        } else {
            values.iter().any(|v| v == s)
        }
    };
    let action = match status.as_deref() {
        Some(s) if is(&mapping.resolve_values, &["resolved", "ok", "resolve"], s) => {
            Action::Resolve
        }
        Some(s)
            if is(
                &mapping.acknowledge_values,
                &["acknowledged", "acknowledge"],
                s,
            ) =>
        {
            Action::Acknowledge
        }
        _ => Action::Trigger,
    };
    if action != Action::Trigger && dedup_key.is_none() {
        return Err(Invalid::one(
            "Webhook body is invalid",
            "a dedup key is required to acknowledge or resolve".into(),
        ));
    }
    Ok(Signal {
        action,
        dedup_key,
        title: clip(&title, MAX_SUMMARY),
        severity,
        source: None,
        details: doc,
        links: Vec::new(),
    })
}
