//! The incident page's actions beyond acknowledge and resolve, as PagerDuty responders know
//! them: reassign to a user or an escalation policy, snooze, add a responder, and merge
//! incidents. Written once for the API (`/api/v1/incidents/{id}/…`) and the incident page; the
//! rules (who may be named, how long a snooze may be, what may be merged) live here.
//!
//! Each action runs in one write transaction with its timeline entry and the pages it queues
//! (through the engine's usual targets: a user's contact methods for the incident's urgency, an
//! escalation policy's first rule), and is fenced on the escalation clock like every other
//! change to it.

use serde_json::{json, Value};

use crate::alerting::engine::{self, Applied};
use crate::alerting::service::incident_view;
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_core::units::span;
use lookout_oncall::escalation::{Clock, Status};
use lookout_oncall::inbound::Action;
use lookout_oncall::{Target as RuleTarget, TargetKind};
use lookout_store::alerting::incident_ops::{self as ops, NewResponder};
use lookout_store::alerting::incidents::{self, IncidentRow};
use lookout_store::alerting::{self as astore, outbox, SpecTable};
use lookout_store::{tenancy, Result, StoreError, Tx};

/// Most incidents merged in one request.
pub const MAX_MERGE: usize = 50;
/// Longest snooze: 7 days, in minutes.
pub const MAX_SNOOZE_MINUTES: i64 = 7 * 24 * 60;
/// Longest note sent with a responder request.
pub const MAX_RESPONDER_MESSAGE: usize = 1000;

/// Whom an incident is reassigned to, or who is asked to respond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A user, paged through their contact methods.
    User(i64),
    /// An escalation policy, from its first rule.
    EscalationPolicy(i64),
}

impl Target {
    /// From the API's fields: exactly one of `user_id` and `escalation_policy_id`, each a number.
    pub fn from_json(body: &Value) -> ServiceResult<Target> {
        let id = |name: &str| match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ServiceError::Invalid(format!("{name} must be a number (an id)"))),
        };
        match (id("user_id")?, id("escalation_policy_id")?) {
            (Some(u), None) => Ok(Target::User(u)),
            (None, Some(e)) => Ok(Target::EscalationPolicy(e)),
            (Some(_), Some(_)) => Err(ServiceError::Invalid(
                "user_id and escalation_policy_id: give one of them, not both".into(),
            )),
            (None, None) => Err(ServiceError::Invalid(
                "user_id or escalation_policy_id is required".into(),
            )),
        }
    }

    /// From a form's select: `user:3` or `escalation_policy:2`.
    pub fn from_choice(choice: &str) -> ServiceResult<Target> {
        let bad = || ServiceError::Invalid("target: choose a user or an escalation policy".into());
        let (kind, id) = choice.split_once(':').ok_or_else(bad)?;
        let id = id.parse::<i64>().map_err(|_| bad())?;
        match kind {
            "user" => Ok(Target::User(id)),
            "escalation_policy" => Ok(Target::EscalationPolicy(id)),
            _ => Err(bad()),
        }
    }
}

/// A user's display name, or the refusal naming the field.
async fn user_named(tx: &mut Tx, id: i64) -> ServiceResult<String> {
    ops::user_name_in(tx, id)
        .await?
        .ok_or_else(|| ServiceError::Invalid(format!("user_id: there is no user {id}")))
}

/// An escalation policy of `org` with its name, or the refusal naming the field (a policy of
/// another organization is as unknown as a missing one).
async fn policy_named(
    tx: &mut Tx,
    org: i64,
    id: i64,
) -> ServiceResult<(lookout_oncall::EscalationPolicy, String)> {
    let missing = || {
        ServiceError::Invalid(format!(
            "escalation_policy_id: there is no escalation policy {id}"
        ))
    };
    let row = match astore::spec_get_in(tx, SpecTable::EscalationPolicies, id).await {
        Ok(r) if r.org_id == org => r,
        Ok(_) | Err(StoreError::NotFound) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let (p, _) = engine::escalation_policy(tx, id)
        .await?
        .ok_or_else(missing)?;
    Ok((p, row.name))
}

/// Incident `id` locked in `tx`, if it belongs to the caller's organization (another's answers
/// 404, as a missing one does) and is open.
async fn open_incident(tx: &mut Tx, org: i64, id: i64) -> ServiceResult<IncidentRow> {
    let inc = match incidents::lock(tx, id).await {
        Ok(i) if i.org_id == org => i,
        Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound("incident")),
        Err(e) => return Err(e.into()),
    };
    if inc.status == "resolved" {
        return Err(ServiceError::Invalid(format!(
            "incident #{id} is resolved; only an open incident can be changed"
        )));
    }
    Ok(inc)
}

fn lost_race() -> ServiceError {
    ServiceError::Conflict("the incident changed meanwhile; try again".into())
}

/// When rule `rule` of the incident's policy hands over if paged at `at` (high urgency only;
/// none without a policy or past the last rule).
fn due_after(
    policy: Option<&lookout_oncall::EscalationPolicy>,
    inc: &IncidentRow,
    at: i64,
) -> Option<i64> {
    let p = policy?;
    let rule = p
        .escalation_rules
        .get(usize::try_from(inc.rule_index).unwrap_or(0))?;
    (inc.urgency != "low").then(|| at + i64::from(rule.escalation_delay_in_minutes) * 60_000)
}

/// Pages user `user` on incident `inc` (their contact methods for its urgency).
async fn page_user(
    tx: &mut Tx,
    inc: &IncidentRow,
    user: i64,
    (key, event, data): (&str, &str, &Value),
    at: i64,
) -> Result<usize> {
    let t = [RuleTarget {
        kind: TargetKind::User,
        id: user,
    }];
    engine::page_targets(tx, inc, &t, (key, event, data), at).await
}

// ------------------------------------------------------------------------------- reassign

/// Reassigns incident `inc` to `target` at `now`. A user becomes its assignee and is paged;
/// escalation carries on from the current rule if they do not acknowledge. An escalation policy
/// replaces the incident's own, and escalation starts again at its first rule, which is paged.
/// Either way the incident is triggered again (an acknowledgement or a snooze ends): the new
/// assignee has to acknowledge it themself.
pub async fn reassign_in(
    tx: &mut Tx,
    inc: &IncidentRow,
    target: Target,
    actor: &str,
    now: i64,
) -> ServiceResult<()> {
    let id = inc.id;
    match target {
        Target::User(user) => {
            let name = user_named(tx, user).await?;
            let policy = match inc.escalation_policy_id {
                Some(ep) => engine::escalation_policy(tx, ep).await?.map(|(p, _)| p),
                None => None,
            };
            let mut clock = engine::clock_of(inc);
            clock.status = Status::Triggered;
            clock.ack_until = None;
            clock.next_escalation_at = due_after(policy.as_ref(), inc, now);
            if !engine::save(tx, inc, &clock, now).await? {
                return Err(lost_race());
            }
            // The earlier assignee's waiting steps go: the new assignee is paged instead.
            engine::cancel_delayed(tx, id, "reassigned", actor, now).await?;
            ops::set_assignee(tx, id, Some(user), now).await?;
            ops::set_snooze(tx, id, None, now).await?;
            incidents::log(
                tx,
                id,
                now,
                "reassigned",
                actor,
                &format!("Reassigned to {name}"),
                Some(&json!({"user_id": user})),
            )
            .await?;
            let inc = incidents::lock(tx, id).await?;
            let key = format!("{id}:reassigned:user:{user}:{now}");
            page_user(
                tx,
                &inc,
                user,
                (&key, "reassigned", &json!({"user_id": user})),
                now,
            )
            .await?;
        }
        Target::EscalationPolicy(ep) => {
            let (policy, name) = policy_named(tx, inc.org_id, ep).await?;
            let (fresh, _) = Clock::trigger(&policy, inc.urgency != "low", now);
            if !engine::save(tx, inc, &fresh, now).await? {
                return Err(lost_race());
            }
            engine::cancel_delayed(tx, id, "reassigned", actor, now).await?;
            ops::set_escalation(tx, id, ep, now).await?;
            ops::set_snooze(tx, id, None, now).await?;
            incidents::log(
                tx,
                id,
                now,
                "reassigned",
                actor,
                &format!(
                    "Reassigned to escalation policy {name}; escalation starts again at level 1"
                ),
                Some(&json!({"escalation_policy_id": ep})),
            )
            .await?;
            let inc = incidents::lock(tx, id).await?;
            engine::page_rule(tx, &inc, &policy, 0, 0, "reassigned", now).await?;
        }
    }
    Ok(())
}

/// `POST /api/v1/incidents/{id}/reassign` and the page's Reassign form.
pub async fn reassign(
    state: &AppState,
    id: i64,
    target: Target,
    actor: &str,
) -> ServiceResult<Value> {
    let org = tenancy::default_org(state.store()).await?;
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    let inc = open_incident(&mut tx, org.id, id).await?;
    reassign_in(&mut tx, &inc, target, actor, now).await?;
    finish(state, tx, id, "reassigned").await
}

// ------------------------------------------------------------------------------- snooze

/// Snoozes incident `inc` for `minutes` at `now`: acknowledged (a triggered one is
/// acknowledged first, as PagerDuty does), nobody is paged until the snooze ends, and then the
/// incident triggers again and its current level is paged ([`end_snooze`]). A snooze replaces
/// the acknowledgement timeout.
pub async fn snooze_in(
    tx: &mut Tx,
    inc: &IncidentRow,
    minutes: i64,
    actor: &str,
    now: i64,
) -> ServiceResult<i64> {
    if !(1..=MAX_SNOOZE_MINUTES).contains(&minutes) {
        return Err(ServiceError::Invalid(format!(
            "duration_minutes must be 1 to {MAX_SNOOZE_MINUTES} (7 days)"
        )));
    }
    let id = inc.id;
    if inc.status == "triggered" {
        engine::transition(tx, id, Action::Acknowledge, actor, now).await?;
    }
    let inc = incidents::lock(tx, id).await?;
    let until = now + minutes * 60_000;
    let mut clock = engine::clock_of(&inc);
    clock.status = Status::Acknowledged;
    clock.next_escalation_at = None;
    clock.ack_until = Some(until);
    if !engine::save(tx, &inc, &clock, now).await? {
        return Err(lost_race());
    }
    engine::cancel_delayed(tx, id, "acknowledged", actor, now).await?;
    ops::set_snooze(tx, id, Some(until), now).await?;
    incidents::log(
        tx,
        id,
        now,
        "snoozed",
        actor,
        &format!(
            "Snoozed for {}; pages again {} unless resolved",
            span(minutes * 60_000),
            iso(until)
        ),
        Some(&json!({"until": iso(until), "minutes": minutes})),
    )
    .await?;
    Ok(until)
}

/// `POST /api/v1/incidents/{id}/snooze` and the page's Snooze form.
pub async fn snooze(state: &AppState, id: i64, minutes: i64, actor: &str) -> ServiceResult<Value> {
    let org = tenancy::default_org(state.store()).await?;
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    let inc = open_incident(&mut tx, org.id, id).await?;
    snooze_in(&mut tx, &inc, minutes, actor, now).await?;
    finish(state, tx, id, "snoozed").await
}

/// The snooze of `inc` is over at `now` (called by the timers): the incident triggers again at
/// the level it was at, and that level is paged (the user it was reassigned to, or the current
/// rule's targets); escalation goes on from there. False when another replica got there first.
pub async fn end_snooze(tx: &mut Tx, inc: &IncidentRow, now: i64) -> Result<bool> {
    let at = inc.ack_until.unwrap_or(now).min(now);
    let policy = match inc.escalation_policy_id {
        Some(ep) => engine::escalation_policy(tx, ep).await?.map(|(p, _)| p),
        None => None,
    };
    let mut clock = engine::clock_of(inc);
    clock.status = Status::Triggered;
    clock.ack_until = None;
    clock.next_escalation_at = due_after(policy.as_ref(), inc, at);
    if !engine::save(tx, inc, &clock, now).await? {
        return Ok(false);
    }
    ops::set_snooze(tx, inc.id, None, now).await?;
    incidents::log(
        tx,
        inc.id,
        at,
        "snooze_ended",
        "system",
        "Snooze ended; triggered again and the current level paged",
        None,
    )
    .await?;
    let fresh = incidents::lock(tx, inc.id).await?;
    match (inc.assigned_user_id, &policy) {
        (Some(user), _) => {
            let key = format!("{}:snooze_ended:user:{user}:{at}", inc.id);
            page_user(tx, &fresh, user, (&key, "snooze_ended", &json!({})), at).await?;
        }
        (None, Some(p)) => {
            let rule = usize::try_from(inc.rule_index).unwrap_or(0);
            let lap = u32::try_from(inc.lap).unwrap_or(0);
            engine::page_rule(tx, &fresh, p, rule, lap, "snooze_ended", at).await?;
        }
        (None, None) => {
            incidents::log(
                tx,
                inc.id,
                at,
                "unrouted",
                "system",
                "No escalation policy: nobody was paged.",
                None,
            )
            .await?;
        }
    }
    Ok(true)
}

// ------------------------------------------------------------------------------- responders

/// Asks `target` to help with incident `inc` without changing whom it is assigned to: a user
/// is paged through their contact methods, an escalation policy's first rule is paged once (it
/// does not escalate for a request). The pages carry the request's id, so the incident lists
/// each responder with how they were paged. Returns the request's id.
pub async fn add_responder_in(
    tx: &mut Tx,
    inc: &IncidentRow,
    target: Target,
    message: Option<&str>,
    actor: &str,
    now: i64,
) -> ServiceResult<i64> {
    let message = message.map(str::trim).filter(|m| !m.is_empty());
    if message.is_some_and(|m| m.len() > MAX_RESPONDER_MESSAGE) {
        return Err(ServiceError::Invalid(format!(
            "message: at most {MAX_RESPONDER_MESSAGE} bytes"
        )));
    }
    let (kind, target_id, name, targets) = match target {
        Target::User(u) => {
            let name = user_named(tx, u).await?;
            let t = vec![RuleTarget {
                kind: TargetKind::User,
                id: u,
            }];
            ("user", u, name, t)
        }
        Target::EscalationPolicy(ep) => {
            let (p, name) = policy_named(tx, inc.org_id, ep).await?;
            let t = p
                .escalation_rules
                .first()
                .map(|r| r.targets.clone())
                .unwrap_or_default();
            ("escalation_policy", ep, name, t)
        }
    };
    let rid = ops::add_responder(
        tx,
        &NewResponder {
            incident_id: inc.id,
            target_type: kind,
            target_id,
            target_name: &name,
            message,
            requested_by: actor,
            at: now,
        },
    )
    .await?;
    let what = if kind == "user" {
        name.clone()
    } else {
        format!("escalation policy {name}")
    };
    let msg = match message {
        Some(m) => format!("Asked {what} to respond: {m}"),
        None => format!("Asked {what} to respond"),
    };
    incidents::log(
        tx,
        inc.id,
        now,
        "responder",
        actor,
        &msg,
        Some(&json!({"responder_id": rid, "target_type": kind, "target_id": target_id})),
    )
    .await?;
    let key = format!("{}:responder:{rid}", inc.id);
    let data = json!({"responder_id": rid});
    engine::page_targets(tx, inc, &targets, (&key, "responder_request", &data), now).await?;
    Ok(rid)
}

/// `POST /api/v1/incidents/{id}/responders` and the page's Add responder form; the incident.
pub async fn add_responder(
    state: &AppState,
    id: i64,
    target: Target,
    message: Option<&str>,
    actor: &str,
) -> ServiceResult<(i64, Value)> {
    let org = tenancy::default_org(state.store()).await?;
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    let inc = open_incident(&mut tx, org.id, id).await?;
    let rid = add_responder_in(&mut tx, &inc, target, message, actor, now).await?;
    let v = finish(state, tx, id, "responder requested").await?;
    Ok((rid, v))
}

/// A responder request with the pages sent for it.
pub struct ResponderView {
    /// The request.
    pub row: ops::ResponderRow,
    /// Its pages: (channel id, user id, status, last error).
    pub pages: Vec<outbox::NotificationRow>,
}

/// Incident `id`'s responder requests, each with its pages.
pub async fn responders(store: &lookout_store::Store, id: i64) -> Result<Vec<ResponderView>> {
    let rows = ops::responders(store, id).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let pages = outbox::for_incident(store, id).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mine = pages
                .iter()
                .filter(|n| n.data["responder_id"].as_i64() == Some(row.id))
                .cloned()
                .collect();
            ResponderView { row, pages: mine }
        })
        .collect())
}

/// A responder request as the API shows it.
pub fn responder_json(r: &ResponderView) -> Value {
    json!({
        "id": r.row.id,
        "target_type": r.row.target_type,
        "target_id": r.row.target_id,
        "target_name": r.row.target_name,
        "message": r.row.message,
        "requested_by": r.row.requested_by,
        "requested_at": iso(r.row.requested_at),
        "notifications": r.pages.iter().map(|n| json!({
            "id": n.id, "channel_id": n.channel_id, "user_id": n.user_id,
            "status": n.status, "last_error": n.last_error})).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------------------- merge

/// Merges incidents `sources` into `target` at `now`: each is resolved with a timeline entry
/// "Merged into #N", its signals and alert count move to the target (so a later event for one
/// of them joins the target), and the target's timeline lists what was merged. Refused: an
/// empty or too long list, the target itself, a resolved source; a source of another
/// organization or a missing one is not found.
pub async fn merge_in(
    tx: &mut Tx,
    target: &IncidentRow,
    sources: &[i64],
    actor: &str,
    now: i64,
) -> ServiceResult<Vec<i64>> {
    let mut ids: Vec<i64> = Vec::with_capacity(sources.len());
    for s in sources {
        if !ids.contains(s) {
            ids.push(*s);
        }
    }
    if ids.is_empty() || ids.len() > MAX_MERGE {
        return Err(ServiceError::Invalid(format!(
            "source_incident_ids must hold 1 to {MAX_MERGE} incident ids"
        )));
    }
    if ids.contains(&target.id) {
        return Err(ServiceError::Invalid(format!(
            "source_incident_ids: incident #{} cannot be merged into itself",
            target.id
        )));
    }
    let mut merged = Vec::with_capacity(ids.len());
    for id in &ids {
        let src = match incidents::lock(tx, *id).await {
            Ok(i) if i.org_id == target.org_id => i,
            Ok(_) | Err(StoreError::NotFound) => return Err(ServiceError::NotFound("incident")),
            Err(e) => return Err(e.into()),
        };
        if src.status == "resolved" {
            return Err(ServiceError::Invalid(format!(
                "source_incident_ids: incident #{id} is resolved already"
            )));
        }
        merged.push(src);
    }
    for src in &merged {
        incidents::log(
            tx,
            src.id,
            now,
            "merged",
            actor,
            &format!("Merged into #{}: {}", target.id, target.title),
            Some(&json!({"merged_into": target.id})),
        )
        .await?;
        ops::merge_into(tx, src.id, target.id, now).await?;
        if engine::transition(tx, src.id, Action::Resolve, actor, now).await? == Applied::Ignored {
            return Err(lost_race());
        }
    }
    let list: Vec<String> = merged
        .iter()
        .map(|s| format!("#{} ({})", s.id, s.title))
        .collect();
    incidents::log(
        tx,
        target.id,
        now,
        "merged",
        actor,
        &format!("Merged in {}", list.join(", ")),
        Some(&json!({"incidents": ids})),
    )
    .await?;
    Ok(ids)
}

/// `POST /api/v1/incidents/{id}/merge` and the page's Merge form: the target incident.
pub async fn merge(
    state: &AppState,
    id: i64,
    sources: &[i64],
    actor: &str,
) -> ServiceResult<Value> {
    let org = tenancy::default_org(state.store()).await?;
    let now = now_ms();
    let mut tx = state.store().begin_write().await?;
    let target = open_incident(&mut tx, org.id, id).await?;
    merge_in(&mut tx, &target, sources, actor, now).await?;
    finish(state, tx, id, "merged").await
}

/// Commits, wakes the outbox and the timers, and answers the incident.
async fn finish(state: &AppState, tx: Tx, id: i64, what: &str) -> ServiceResult<Value> {
    tx.commit().await.map_err(StoreError::from)?;
    state.alerting().wake();
    tracing::info!(incident = id, action = what, "Incident changed.");
    Ok(incident_view(&incidents::get(state.store(), id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_one_user_or_one_escalation_policy() {
        assert_eq!(
            Target::from_json(&json!({"user_id": 3})).unwrap(),
            Target::User(3)
        );
        assert_eq!(
            Target::from_choice("escalation_policy:2").unwrap(),
            Target::EscalationPolicy(2)
        );
        let both = Target::from_json(&json!({"user_id": 3, "escalation_policy_id": 2}));
        assert!(both.unwrap_err().to_string().contains("not both"));
        let text = Target::from_json(&json!({"user_id": "alice"}));
        assert!(text.unwrap_err().to_string().starts_with("user_id"));
        assert!(Target::from_choice("team:1").is_err());
    }
}
