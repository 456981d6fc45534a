//! Alerting's domain operations on incidents, written once for the API, the incident page and
//! signed one-click links: acknowledge and resolve, notes, runbook checklists, the postmortem
//! draft, and MTTA/MTTR grouping. They return [`ServiceError`].

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::alerting::engine::{self, Applied};
use crate::api::schemas::Incident;
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_oncall::inbound::Action;
use lookout_store::alerting as astore;
use lookout_store::alerting::incidents::{self, IncidentRow};

/// An incident as the API shows it: [`Incident`], so the answer is its documented schema.
pub fn incident_view(i: &IncidentRow) -> Value {
    let opt = |t: Option<i64>| t.map(iso);
    json!(Incident {
        id: i.id,
        incident_number: i.id,
        title: i.title.clone(),
        status: i.status.clone(),
        urgency: i.urgency.clone(),
        severity: i.severity.clone(),
        service: i.service.clone(),
        source: i.source.clone(),
        dedup_key: i.dedup_key.clone(),
        policy_id: i.policy_id,
        integration_id: i.integration_id,
        escalation_policy_id: i.escalation_policy_id,
        runbook_id: i.runbook_id,
        runbook_version: i.runbook_version,
        escalation_level: i.rule_index + 1,
        escalation_loop: i.lap,
        next_escalation_at: opt(i.next_escalation_at),
        acknowledgement_expires_at: opt(i.ack_until),
        alert_count: i.alert_count,
        details: i.details.clone(),
        checklist: i.checklist.clone(),
        created_at: iso(i.created_at),
        acknowledged_at: opt(i.acknowledged_at),
        resolved_at: opt(i.resolved_at),
        updated_at: iso(i.updated_at),
        assigned_user_id: i.assigned_user_id,
        snoozed_until: opt(i.snoozed_until),
        merged_into: i.merged_into,
    })
}

/// Acknowledges or resolves an incident for `actor`; 409 when it is not in a state that allows it.
pub async fn act(state: &AppState, id: i64, action: Action, actor: &str) -> ServiceResult<Value> {
    let a = state.alerting();
    // The database's clock: an acknowledgement's timeout is judged by it on every replica.
    let now = super::db_now(state.store()).await;
    let mut tx = state.store().begin_write().await?;
    let r = engine::transition(&mut tx, id, action, actor, now).await?;
    tx.commit().await.map_err(lookout_store::StoreError::from)?;
    if r == Applied::Ignored {
        let inc = incidents::get(state.store(), id).await?;
        return Err(ServiceError::Conflict(format!(
            "incident {id} is {}; nothing to do",
            inc.status
        )));
    }
    a.wake();
    tracing::info!(incident = id, action = ?action, "Incident changed.");
    Ok(incident_view(&incidents::get(state.store(), id).await?))
}

/// Adds a note to an incident's timeline for `actor` (the API and the incident page); returns
/// when and the trimmed text.
pub async fn note(
    state: &AppState,
    id: i64,
    actor: &str,
    msg: &str,
) -> ServiceResult<(i64, String)> {
    let msg = msg.trim();
    if msg.is_empty() || msg.len() > 10_000 {
        return Err(ServiceError::Invalid(
            "message is required (up to 10000 bytes)".into(),
        ));
    }
    incidents::get(state.store(), id).await?;
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    incidents::log(&mut tx, id, now, "note", actor, msg, None).await?;
    tx.commit().await.map_err(lookout_store::StoreError::from)?;
    Ok((now, msg.to_string()))
}

/// Ticks (or unticks) checklist item `item` of the incident's runbook for `actor`, with a
/// timeline entry; returns the checklist.
pub async fn tick_item(
    state: &AppState,
    id: i64,
    actor: &str,
    item: u64,
    done: bool,
) -> ServiceResult<Value> {
    let inc = incidents::get(state.store(), id).await?;
    let items = match inc.runbook_id {
        Some(r) => checklist_items(
            &astore::runbook_get(state.store(), r, inc.runbook_version)
                .await?
                .body,
        ),
        None => Vec::new(),
    };
    let Some(text) = usize::try_from(item).ok().and_then(|i| items.get(i)) else {
        return Err(ServiceError::Invalid(format!(
            "the runbook has {} checklist items",
            items.len()
        )));
    };
    let mut checklist = inc.checklist.clone();
    checklist[item.to_string()] = json!(done);
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    incidents::set_checklist(&mut tx, id, &checklist, now).await?;
    let verb = if done { "Ticked" } else { "Unticked" };
    incidents::log(
        &mut tx,
        id,
        now,
        "checklist",
        actor,
        &format!("{verb} checklist item: {text}"),
        Some(&json!({"item": item, "done": done})),
    )
    .await?;
    tx.commit().await.map_err(lookout_store::StoreError::from)?;
    Ok(checklist)
}

/// The `- [ ]` items of a Markdown runbook, in order.
pub fn checklist_items(body: &str) -> Vec<String> {
    body.lines()
        .map(str::trim_start)
        .filter_map(|l| {
            l.strip_prefix("- [ ] ")
                .or_else(|| l.strip_prefix("* [ ] "))
                .or_else(|| l.strip_prefix("- [x] "))
                .or_else(|| l.strip_prefix("- [X] "))
        })
        .map(|s| s.trim().to_string())
        .collect()
}

/// A postmortem in Markdown, pre-filled from the incident and its timeline (the API and the
/// incident page).
pub fn postmortem_markdown(inc: &IncidentRow, timeline: &[incidents::LogEntry]) -> String {
    let mins = |a: i64, b: Option<i64>| {
        b.map(|b| format!("{:.1} min", (b - a) as f64 / 60_000.0))
            .unwrap_or_else(|| "—".into())
    };
    let mut md = format!(
        "# Postmortem: {}\n\n- Incident: #{} ({})\n- Service: {}\n- Severity: {}, {} urgency\n\
         - Triggered: {}\n- Acknowledged: {} (time to acknowledge: {})\n\
         - Resolved: {} (time to resolve: {})\n\n## Summary\n\n_What happened, in two sentences._\n\n\
         ## Impact\n\n_Who noticed, for how long._\n\n## Timeline\n\n",
        inc.title,
        inc.id,
        inc.status,
        inc.service.as_deref().unwrap_or("—"),
        inc.severity,
        inc.urgency,
        iso(inc.created_at),
        inc.acknowledged_at.map(iso).unwrap_or_else(|| "—".into()),
        mins(inc.created_at, inc.acknowledged_at),
        inc.resolved_at.map(iso).unwrap_or_else(|| "—".into()),
        mins(inc.created_at, inc.resolved_at),
    );
    for e in timeline {
        md.push_str(&format!(
            "- {} — {} ({}): {}\n",
            iso(e.at),
            e.kind,
            e.actor,
            e.message
        ));
    }
    md.push_str(
        "\n## Root cause\n\n_Why it happened._\n\n## What went well\n\n\n## What went badly\n\n\n\
         ## Action items\n\n- [ ] \n",
    );
    md
}

/// The rows [`incidents::response_times`] answers.
pub type ResponseRow = incidents::ResponseSums;

/// MTTA and MTTR per group, `key` naming each row's group from `(service, policy, integration,
/// day opened)`; groups in key order. Shared by the API and the Incidents page so both show the
/// same figures.
pub fn response_groups(
    rows: Vec<ResponseRow>,
    key: impl Fn((&Option<String>, Option<i64>, Option<i64>, i64)) -> String,
) -> Vec<incidents::Responsiveness> {
    #[derive(Default)]
    struct Acc {
        n: i64,
        acked: i64,
        resolved: i64,
        ack_sum: i64,
        res_sum: i64,
    }
    let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
    for r in &rows {
        let g = groups
            .entry(key((&r.service, r.policy_id, r.integration_id, r.day)))
            .or_default();
        g.n += r.incidents;
        g.acked += r.acknowledged;
        g.ack_sum += r.ack_ms;
        g.resolved += r.resolved;
        g.res_sum += r.resolve_ms;
    }
    let mean = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64 / 1000.0);
    groups
        .into_iter()
        .map(|(k, g)| incidents::Responsiveness {
            key: k,
            incidents: g.n,
            acknowledged: g.acked,
            resolved: g.resolved,
            mtta_seconds: mean(g.ack_sum, g.acked),
            mttr_seconds: mean(g.res_sum, g.resolved),
        })
        .collect()
}

/// The URL an integration of `kind` with `key` receives at.
pub fn integration_url(public_url: &str, kind: &str, key: &str) -> String {
    match kind {
        "pagerduty" => format!("{public_url}/v2/enqueue"),
        _ => format!("{public_url}/integrations/{key}/{kind}"),
    }
}

/// An integration's key is a credential: whoever holds it opens and resolves incidents. Members
/// (who create and wire integrations) see it; viewers see it masked, in the URL too.
pub const MASKED_KEY: &str = "********";
