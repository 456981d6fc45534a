//! What a responder needs on the incident page besides the timeline: the alert's own content
//! (description, labels, annotations, runbook and generator links from Alertmanager, Grafana or
//! a PagerDuty client; the reason and the policies that matched for Lookout's own signals),
//! links to its source (monitor, issue, service, query, database, backups), who was paged and
//! how each page went, and where the escalation stands (level, next step, acknowledgement
//! timeout), who it is assigned to, whether it is snoozed, the responders asked to help and
//! what was merged into it, and timeline messages with names and relative times. Read-only;
//! the page's actions are in `incidents` and `incident_actions`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ui::fmt::When;
use crate::ui::safe_link;
use lookout_oncall::{EscalationPolicy, TargetKind};
use lookout_store::alerting::incidents::IncidentRow;
use lookout_store::alerting::{self as astore, outbox, SpecTable};
use lookout_store::{Result, Store, StoreError};

/// The alert's content.
#[derive(Default)]
pub struct AlertView {
    /// An annotation's description or summary, or the reason Lookout's check gave.
    pub description: Option<String>,
    /// Labels (Alertmanager), sorted.
    pub labels: Vec<(String, String)>,
    /// Other annotations.
    pub annotations: Vec<(String, String)>,
    /// A runbook URL the sender gave (web links only).
    pub runbook_url: Option<String>,
    /// Links the sender gave (generator, dashboards): (label, href).
    pub links: Vec<(String, String)>,
    /// The policies that matched (Lookout's own signals).
    pub policies: Vec<String>,
}

/// A link to what the incident is about.
pub struct SourceLink {
    /// What it is ("Monitor homepage").
    pub label: String,
    /// Where its page is.
    pub href: String,
}

/// One page sent (or queued) for the incident.
pub struct PageLine {
    /// When it was queued.
    pub at: When,
    /// Why (`triggered`, `escalated`, `priority raised`, `resolved`…).
    pub event: String,
    /// The channel or contact method, with its type.
    pub channel: String,
    /// The person paged, for a contact method.
    pub who: Option<String>,
    /// `sent`, `pending` or `failed`, with the last error.
    pub status: String,
    /// The last error, when it failed.
    pub error: Option<String>,
}

/// Where the escalation stands.
pub struct EscalationView {
    /// The escalation policy's name.
    pub policy: String,
    /// The current level (1-based) and how many there are.
    pub level: i64,
    pub levels: usize,
    /// Who the current level pages.
    pub targets: Vec<String>,
    /// When the next level fires (none when acknowledged, resolved or at the last level).
    pub next: Option<When>,
    /// When an acknowledgement runs out and the incident triggers again.
    pub ack_until: Option<When>,
    /// Which pass through the rules this is (0: the first).
    pub lap: i64,
}

/// A responder asked to help, and how they were paged.
pub struct ResponderLine {
    /// The user's or escalation policy's name.
    pub name: String,
    /// `user` or `escalation policy`.
    pub kind: String,
    /// Who asked.
    pub asked_by: String,
    /// When.
    pub at: When,
    /// What they were asked.
    pub message: Option<String>,
    /// Each page: `Alice via pager (webhook)` and its status.
    pub pages: Vec<(String, String)>,
}

/// Everything the responder panels show.
pub struct Responder {
    pub alert: AlertView,
    pub sources: Vec<SourceLink>,
    pub pages: Vec<PageLine>,
    pub escalation: Option<EscalationView>,
    /// The user it was reassigned to.
    pub assignee: Option<String>,
    /// When a snooze ends (while snoozed).
    pub snoozed_until: Option<When>,
    /// Responders asked to help.
    pub responders: Vec<ResponderLine>,
    /// `(id, title)` of the incidents merged into this one.
    pub merged_from: Vec<(i64, String)>,
}

/// One piece of a timeline message: text, or a time shown relative with the absolute on hover.
pub struct Part {
    /// Text (empty for a time).
    pub text: String,
    /// A time.
    pub when: Option<When>,
}

/// `user 3` (as older entries and the delivery worker name people) and RFC 3339 times in a
/// timeline message.
fn message_pattern() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\buser (\d+)\b|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
            .expect("a valid pattern")
    })
}

/// The user ids a timeline message names as `user N`.
pub fn named_users(message: &str) -> Vec<i64> {
    message_pattern()
        .captures_iter(message)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .collect()
}

/// A timeline message as the page shows it: `user N` becomes the person's name, an RFC 3339
/// time a relative time with the absolute on hover. The stored text is left as it is (the API
/// answers it), so entries written before names were used read the same as new ones.
pub fn message_parts(message: &str, names: &BTreeMap<i64, String>) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut last = 0;
    let text = |s: &str| Part {
        text: s.to_string(),
        when: None,
    };
    for c in message_pattern().captures_iter(message) {
        let Some(m) = c.get(0) else { continue };
        let replaced = match c.get(1) {
            Some(id) => id
                .as_str()
                .parse::<i64>()
                .ok()
                .and_then(|id| names.get(&id))
                .map(|n| text(n)),
            None => chrono::DateTime::parse_from_rfc3339(m.as_str())
                .ok()
                .map(|t| Part {
                    text: String::new(),
                    when: Some(When::at(t.timestamp_millis())),
                }),
        };
        if let Some(p) = replaced {
            let mut before = &message[last..m.start()];
            if p.when.is_some() {
                // "retrying at 2026-…Z" reads "retrying in 2 s": the relative time says when.
                before = before.strip_suffix("at ").unwrap_or(before);
            }
            parts.push(text(before));
            parts.push(p);
            last = m.end();
        }
    }
    parts.push(text(&message[last..]));
    parts.retain(|p| p.when.is_some() || !p.text.is_empty());
    parts
}

async fn responder_lines(
    store: &Store,
    inc: &IncidentRow,
    channels: &BTreeMap<i64, String>,
) -> Result<Vec<ResponderLine>> {
    let views = crate::alerting::incident_ops::responders(store, inc.id).await?;
    let users: Vec<i64> = views
        .iter()
        .flat_map(|v| v.pages.iter().filter_map(|n| n.user_id))
        .collect();
    let names = astore::display_names(store, &users).await?;
    Ok(views
        .into_iter()
        .map(|v| ResponderLine {
            name: v.row.target_name.clone(),
            kind: v.row.target_type.replace('_', " "),
            asked_by: v.row.requested_by.clone(),
            at: When::at(v.row.requested_at),
            message: v.row.message.clone(),
            pages: v
                .pages
                .iter()
                .map(|n| {
                    let channel = channels
                        .get(&n.channel_id)
                        .cloned()
                        .unwrap_or_else(|| format!("channel {}", n.channel_id));
                    let who = n
                        .user_id
                        .map(|u| names.get(&u).cloned().unwrap_or(format!("user {u}")));
                    let line = match who {
                        Some(w) => format!("{w} via {channel}"),
                        None => channel,
                    };
                    (line, n.status.clone())
                })
                .collect(),
        })
        .collect())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

/// The alert's content from the incident's details.
pub fn alert_view(details: &Value) -> AlertView {
    let mut annotations = pairs(&details["annotations"]);
    let take = |name: &str, from: &mut Vec<(String, String)>| {
        from.iter()
            .position(|(k, _)| k == name)
            .map(|i| from.remove(i).1)
    };
    let description = take("description", &mut annotations)
        .or_else(|| take("summary", &mut annotations))
        .or_else(|| details["payload"]["reason"].as_str().map(str::to_string));
    let runbook_url = take("runbook_url", &mut annotations)
        .or_else(|| take("runbook", &mut annotations))
        .filter(|u| u.starts_with("http") && safe_link(u));
    let links = details["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let href = l["href"].as_str()?;
            (href.starts_with("http") && safe_link(href)).then(|| {
                let label = l["text"].as_str().unwrap_or(href).to_string();
                (label, href.to_string())
            })
        })
        .collect();
    let policies = details["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect();
    AlertView {
        description,
        labels: pairs(&details["labels"]),
        annotations,
        runbook_url,
        links,
        policies,
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Links to what the incident is about, from its signal and service.
pub fn sources(inc: &IncidentRow) -> Vec<SourceLink> {
    let mut out = Vec::new();
    let payload = &inc.details["payload"];
    let name = payload["name"].as_str();
    let source = inc.source.as_deref().unwrap_or_default();
    let mut parts = source.splitn(2, ':');
    let (kind, rest) = (parts.next().unwrap_or_default(), parts.next());
    let link = |label: String, href: String| SourceLink { label, href };
    match (kind, rest) {
        ("monitor" | "cert", Some(id)) if id.parse::<i64>().is_ok() => out.push(link(
            format!("Monitor {}", name.unwrap_or(id)),
            format!("/uptime/monitors/{id}"),
        )),
        ("issue", Some(id)) if id.parse::<i64>().is_ok() => {
            let title = payload["title"]
                .as_str()
                .map_or(String::new(), |t| format!(": {t}"));
            out.push(link(
                format!("Issue #{id}{title}"),
                format!("/errors/issues/{id}"),
            ));
        }
        ("nrql", Some(_)) => {
            if let Some(q) = payload["nrql"].as_str() {
                out.push(link(
                    "The condition's query".into(),
                    format!("/query?nrql={}", enc(q)),
                ));
            }
        }
        ("series", Some(_)) => out.push(link("Regressions".into(), "/regressions".into())),
        ("db", Some(_)) => out.push(link("Databases".into(), "/databases".into())),
        ("backup", Some(_)) => out.push(link("Backups".into(), "/backups".into())),
        _ => {}
    }
    if let Some(s) = &inc.service {
        out.push(link(
            format!("Service {s}"),
            format!("/performance/services/{}", enc(s)),
        ));
    }
    out
}

/// A channel as the page names it: `ops-hook (webhook)`.
fn channel_label(c: &astore::ChannelRow) -> String {
    format!("{} ({})", c.name, c.kind)
}

async fn escalation(store: &Store, inc: &IncidentRow) -> Result<Option<EscalationView>> {
    let Some(id) = inc.escalation_policy_id else {
        return Ok(None);
    };
    let row = match astore::spec_get(store, SpecTable::EscalationPolicies, id).await {
        Ok(r) => r,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(p) = serde_json::from_value::<EscalationPolicy>(row.spec.clone()) else {
        return Ok(None);
    };
    let rule = usize::try_from(inc.rule_index).unwrap_or(0);
    let targets = p
        .escalation_rules
        .get(rule)
        .map(|r| r.targets.clone())
        .unwrap_or_default();
    let users: Vec<i64> = targets
        .iter()
        .filter(|t| t.kind == TargetKind::User)
        .map(|t| t.id)
        .collect();
    let names = astore::display_names(store, &users).await?;
    let mut shown = Vec::new();
    for t in &targets {
        shown.push(match t.kind {
            TargetKind::User => names
                .get(&t.id)
                .cloned()
                .unwrap_or(format!("user {}", t.id)),
            TargetKind::Schedule => {
                match astore::spec_get(store, SpecTable::Schedules, t.id).await {
                    Ok(s) => format!("whoever is on call for {}", s.name),
                    Err(_) => format!("schedule {} (deleted)", t.id),
                }
            }
            TargetKind::Channel => match astore::channel_get(store, t.id).await {
                Ok(c) => channel_label(&c),
                Err(_) => format!("channel {} (deleted)", t.id),
            },
        });
    }
    let open = inc.status != "resolved";
    Ok(Some(EscalationView {
        policy: row.name,
        level: inc.rule_index + 1,
        levels: p.escalation_rules.len(),
        targets: shown,
        next: inc.next_escalation_at.filter(|_| open).map(When::at),
        ack_until: inc.ack_until.filter(|_| open).map(When::at),
        lap: inc.lap,
    }))
}

async fn pages(store: &Store, inc: &IncidentRow) -> Result<(Vec<PageLine>, BTreeMap<i64, String>)> {
    let rows = outbox::for_incident(store, inc.id).await?;
    let users: Vec<i64> = rows.iter().filter_map(|n| n.user_id).collect();
    let names = astore::display_names(store, &users).await?;
    let mut channels: BTreeMap<i64, String> = BTreeMap::new();
    let mut ids: Vec<i64> = rows.iter().map(|n| n.channel_id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let label = match astore::channel_get(store, id).await {
            Ok(c) => channel_label(&c),
            Err(_) => format!("channel {id} (deleted)"),
        };
        channels.insert(id, label);
    }
    let mut out = Vec::with_capacity(rows.len());
    for n in rows {
        out.push(PageLine {
            at: When::at(n.created_at),
            event: n.event.replace('_', " "),
            channel: channels[&n.channel_id].clone(),
            who: n
                .user_id
                .map(|u| names.get(&u).cloned().unwrap_or(format!("user {u}"))),
            status: n.status,
            error: n.last_error,
        });
    }
    Ok((out, channels))
}

/// Loads the responder panels of incident `inc`.
pub async fn load(store: &Store, inc: &IncidentRow) -> Result<Responder> {
    let (pages, channels) = pages(store, inc).await?;
    let assignee = match inc.assigned_user_id {
        Some(u) => Some(
            astore::display_names(store, &[u])
                .await?
                .remove(&u)
                .unwrap_or(format!("user {u}")),
        ),
        None => None,
    };
    let open = inc.status == "acknowledged";
    Ok(Responder {
        alert: alert_view(&inc.details),
        sources: sources(inc),
        escalation: escalation(store, inc).await?,
        responders: responder_lines(store, inc, &channels).await?,
        merged_from: lookout_store::alerting::incident_ops::merged_from(store, inc.id).await?,
        assignee: assignee.filter(|_| inc.status != "resolved"),
        snoozed_until: inc.snoozed_until.filter(|_| open).map(When::at),
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_timeline_message_names_people_and_shows_times_relative() {
        let names = BTreeMap::from([(3, "Alice".to_string())]);
        let msg = "Notified to user 3 via hook; retrying at 2026-12-06T10:00:00.000Z (user 9)";
        assert_eq!(named_users(msg), [3, 9]);
        let parts = message_parts(msg, &names);
        let shown: Vec<String> = parts
            .iter()
            .map(|p| p.when.as_ref().map_or(p.text.clone(), |w| w.absolute()))
            .collect();
        assert_eq!(
            shown,
            [
                "Notified to ",
                "Alice",
                " via hook; retrying ",
                "2026-12-06 10:00:00 UTC",
                " (user 9)"
            ]
        );
    }

    #[test]
    fn an_alertmanager_alert_shows_its_description_labels_and_links() {
        let v = alert_view(&json!({
            "labels": {"alertname": "HighLatency", "severity": "critical", "instance": "api-1"},
            "annotations": {"description": "p99 above 2 s", "runbook_url": "https://wiki.example/rb",
                            "dashboard": "grafana/d/1"},
            "links": [{"href": "https://prom.example/graph?g0", "text": "Source"},
                      {"href": "javascript:alert(1)", "text": "bad"}]}));
        assert_eq!(v.description.as_deref(), Some("p99 above 2 s"));
        assert_eq!(v.runbook_url.as_deref(), Some("https://wiki.example/rb"));
        assert_eq!(v.labels.len(), 3);
        assert_eq!(v.annotations, [("dashboard".into(), "grafana/d/1".into())]);
        assert_eq!(
            v.links,
            [("Source".into(), "https://prom.example/graph?g0".into())]
        );
    }
}
