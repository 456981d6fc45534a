//! On-call configuration as domain operations, written once for the API and the pages: channels
//! (secrets sealed, `********` keeps a stored one), schedules and their overrides, and
//! escalation policies. Bodies are the API's JSON documents — a page turns its form into the
//! same document — so both are held to the same rules and name the same fields when refused.

use serde_json::{json, Value};

use crate::alerting::deliver::{deliver, Message, Receipt, CHANNEL_TYPES};
use crate::alerting::REDACTED;
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::teams::ownership::team_change;
use lookout_oncall::{EscalationPolicy, Schedule, TargetKind};
use lookout_store::alerting::{
    self as astore, ChannelInput, ChannelRow, OverrideRow, SpecKey, SpecRow, SpecTable,
};
use lookout_store::{tenancy, StoreError};

fn invalid(m: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(m.into())
}

/// The trimmed `name` of a body (1–200 characters).
pub fn name_of(body: &Value) -> ServiceResult<String> {
    match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 200 => Ok(n.to_string()),
        _ => Err(invalid("name is required (1-200 characters)")),
    }
}

/// Removes `id`, `name` and read-only fields so a GET document can be sent back with PUT.
pub fn spec_of(body: &Value, read_only: &[&str]) -> Value {
    let mut spec = body.clone();
    if let Some(m) = spec.as_object_mut() {
        for k in ["id", "name", "created_at", "updated_at", "team_id"]
            .iter()
            .chain(read_only)
        {
            m.remove(*k);
        }
    }
    spec
}

/// A body's `enabled`: absent or `null` is on (as for alert policies and integrations).
pub fn enabled_of(body: &Value) -> ServiceResult<bool> {
    match body.get("enabled") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(invalid("enabled must be true or false")),
    }
}

/// Refuses the first id that is not a user.
pub async fn check_users(state: &AppState, ids: &[i64]) -> ServiceResult<()> {
    let found = astore::user_names(state.store(), ids).await?;
    if let Some(missing) = ids.iter().find(|id| !found.iter().any(|f| f.0 == **id)) {
        return Err(invalid(format!("user {missing} does not exist")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------- channels

/// The secret fields of a channel type (sealed at rest, shown as `********`).
pub fn channel_secrets(kind: &str) -> &'static [&'static str] {
    CHANNEL_TYPES
        .iter()
        .find(|t| t.0 == kind)
        .map_or(&[][..], |t| t.2)
}

/// Validates a channel body; secrets are sealed, and `********` keeps the stored value. The
/// URL is checked here for its form; where it may point is the outbound policy's decision,
/// made when a notification (or a test) is sent.
pub async fn channel_input(
    state: &AppState,
    body: &Value,
    old: Option<&ChannelRow>,
) -> ServiceResult<ChannelInput> {
    let name = name_of(body)?;
    let enabled = enabled_of(body)?;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("type is required"))?;
    let Some((_, required, secrets)) = CHANNEL_TYPES.iter().find(|t| t.0 == kind) else {
        let names: Vec<&str> = CHANNEL_TYPES.iter().map(|t| t.0).collect();
        return Err(invalid(format!("type must be one of {}", names.join(", "))));
    };
    let mut config = serde_json::Map::new();
    for (k, v) in body.as_object().into_iter().flatten() {
        if matches!(
            k.as_str(),
            "id" | "name"
                | "type"
                | "user_id"
                | "urgencies"
                | "enabled"
                | "created_at"
                | "updated_at"
        ) {
            continue;
        }
        config.insert(k.clone(), v.clone());
    }
    for f in *required {
        if config
            .get(*f)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(invalid(format!("{kind} channels need {f}")));
        }
    }
    if let Some(url) = config
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| *u != REDACTED)
    {
        let u = url::Url::parse(url).map_err(|e| invalid(format!("url: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") {
            return Err(invalid("url must be http or https"));
        }
    }
    if let Some(p) = config.get("smtp_port") {
        if !p.as_u64().is_some_and(|p| (1..=65535).contains(&p)) {
            return Err(invalid("smtp_port must be a port number (1-65535)"));
        }
    }
    if let Some(sec) = config.get("security") {
        if !matches!(sec.as_str(), Some("starttls" | "tls" | "none")) {
            return Err(invalid("security must be starttls, tls or none"));
        }
    }
    if kind == "pagerduty" && old.is_none() && config.get("routing_key").is_none() {
        return Err(invalid("pagerduty channels need routing_key"));
    }
    for s in *secrets {
        match config.get(*s).and_then(Value::as_str) {
            Some(REDACTED) => match old.and_then(|o| o.config.get(*s)) {
                Some(prev) => {
                    config.insert((*s).into(), prev.clone());
                }
                None => {
                    config.remove(*s);
                }
            },
            Some(plain) => {
                let sealed = state.sealer().seal(plain);
                config.insert((*s).into(), json!(sealed));
            }
            None => {}
        }
    }
    let user_id = body.get("user_id").and_then(Value::as_i64);
    if let Some(u) = user_id {
        check_users(state, &[u]).await?;
    }
    let urgencies = match body.get("urgencies") {
        None | Some(Value::Null) => vec!["high".to_string(), "low".to_string()],
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for u in a {
                match u.as_str() {
                    Some(s @ ("high" | "low")) => out.push(s.to_string()),
                    _ => return Err(invalid("urgencies holds \"high\" and/or \"low\"")),
                }
            }
            out
        }
        Some(_) => return Err(invalid("urgencies must be a list")),
    };
    Ok(ChannelInput {
        name,
        kind: kind.into(),
        config: Value::Object(config),
        user_id,
        urgencies,
        enabled,
    })
}

/// Creates a channel in the default organization (the caller has checked who may own it).
pub async fn create_channel(state: &AppState, body: &Value) -> ServiceResult<ChannelRow> {
    let input = channel_input(state, body, None).await?;
    let org = tenancy::default_org(state.store()).await?;
    let row = astore::channel_create(state.store(), org.id, &input).await?;
    tracing::info!(channel = row.id, kind = %row.kind, "Notification channel created.");
    Ok(row)
}

/// Replaces channel `id` with `body` (`********` keeps a stored secret). The caller has
/// checked who may own it, before and after.
pub async fn update_channel(
    state: &AppState,
    old: &ChannelRow,
    body: &Value,
) -> ServiceResult<ChannelRow> {
    let input = channel_input(state, body, Some(old)).await?;
    let row = astore::channel_update(state.store(), old.id, &input).await?;
    if old.enabled != row.enabled {
        tracing::info!(channel = row.id, enabled = row.enabled, "Channel switched.");
    }
    Ok(row)
}

/// Switches channel `id` on or off. Off, pages queued for it are skipped (the incident's
/// timeline says so) instead of sent; Send test still sends, to check it before it is on.
pub async fn set_channel_enabled(state: &AppState, id: i64, enabled: bool) -> ServiceResult<()> {
    astore::channel_set_enabled(state.store(), id, enabled)
        .await
        .map_err(ServiceError::not_found("channel"))?;
    tracing::info!(channel = id, enabled, "Channel switched.");
    Ok(())
}

/// Sends a test notification through channel `id` on the one delivery path (the outbound
/// policy, the signature, the channel's format): `Ok` holds what the receiver answered, or why
/// it could not be reached — both are shown to the person testing, neither is an error here.
pub async fn test_channel(
    state: &AppState,
    id: i64,
    actor: &str,
) -> ServiceResult<Result<Receipt, String>> {
    let channel = astore::channel_get(state.store(), id)
        .await
        .map_err(ServiceError::not_found("channel"))?;
    let a = state.alerting();
    let page = format!("{}/alerts/channels/{id}", a.public_url());
    let now = lookout_core::time::now_ms();
    let msg = Message {
        event: "test".into(),
        incident_id: 0,
        title: format!("Test notification from Lookout, sent by {actor}"),
        status: "test".into(),
        severity: "info".into(),
        urgency: "low".into(),
        service: None,
        source: None,
        dedup_key: format!("lookout-test-{id}-{now}"),
        url: page.clone(),
        acknowledge_url: page.clone(),
        resolve_url: page,
        runbook_url: None,
        runbook_summary: None,
        created_at: lookout_core::time::iso(now),
    };
    let key = format!("test-{id}-{now}");
    let answer = deliver(a, &channel, &msg, &key).await;
    match &answer {
        Ok(r) => tracing::info!(channel = id, status = ?r.status, "Test notification sent."),
        Err(e) => tracing::info!(channel = id, error = %e, "Test notification failed."),
    }
    Ok(answer)
}

// --------------------------------------------------------------------------------- schedules

/// A schedule body: its name, the spec to store (layers, time zone, enabled), and the
/// overrides it carries without an `id` as `(user, start, end)` (new ones; those with an `id`
/// are already stored).
pub async fn schedule_input(
    state: &AppState,
    body: &Value,
) -> ServiceResult<(String, Value, Vec<(i64, i64, i64)>)> {
    let name = name_of(body)?;
    let enabled = enabled_of(body)?;
    let mut spec = spec_of(body, &["final_schedule"]);
    spec["enabled"] = Value::Bool(enabled);
    let mut parsed: Schedule =
        serde_json::from_value(spec).map_err(|e| invalid(format!("schedule: {e}")))?;
    parsed.validate().map_err(ServiceError::Invalid)?;
    check_users(state, &parsed.user_ids()).await?;
    let overrides: Vec<_> = std::mem::take(&mut parsed.overrides)
        .into_iter()
        .filter(|o| o.id.is_none())
        .map(|o| (o.user, o.start, o.end))
        .collect();
    let stored =
        serde_json::to_value(&parsed).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok((name, stored, overrides))
}

/// Creates a schedule with the overrides its body carries, in one transaction.
pub async fn create_schedule(state: &AppState, body: &Value) -> ServiceResult<SpecRow> {
    let (name, spec, overrides) = schedule_input(state, body).await?;
    let team = team_change(state, body).await?;
    let org = tenancy::default_org(state.store()).await?;
    Ok(astore::schedule_save(state.store(), org.id, None, &name, &spec, &overrides, team).await?)
}

/// Replaces a schedule's layers; overrides in the body without an `id` are added, in the same
/// transaction.
pub async fn update_schedule(state: &AppState, id: i64, body: &Value) -> ServiceResult<SpecRow> {
    let (name, spec, overrides) = schedule_input(state, body).await?;
    let team = team_change(state, body).await?;
    let old = astore::spec_get(state.store(), SpecTable::Schedules, id)
        .await
        .map_err(ServiceError::not_found("schedule"))?;
    let row = astore::schedule_save(
        state.store(),
        old.org_id,
        Some(id),
        &name,
        &spec,
        &overrides,
        team,
    )
    .await?;
    state.alerting().wake();
    Ok(row)
}

/// Switches schedule `id` on or off, keeping its layers and overrides. Off, nobody is on call
/// on it: escalation rules that page it reach nobody, and say so on the incident's timeline.
pub async fn set_schedule_enabled(state: &AppState, id: i64, enabled: bool) -> ServiceResult<()> {
    set_spec_enabled(state, SpecTable::Schedules, "schedule", id, enabled).await?;
    state.alerting().wake();
    Ok(())
}

/// Sets `enabled` in the spec of row `id` of `t`, keeping the rest.
async fn set_spec_enabled(
    state: &AppState,
    t: SpecTable,
    what: &'static str,
    id: i64,
    enabled: bool,
) -> ServiceResult<()> {
    let row = astore::spec_get(state.store(), t, id)
        .await
        .map_err(ServiceError::not_found(what))?;
    let mut spec = row.spec.clone();
    spec["enabled"] = Value::Bool(enabled);
    astore::spec_update(state.store(), t, id, &row.name, &spec).await?;
    tracing::info!(id, what, enabled, "Switched on or off.");
    Ok(())
}

/// Adds an override: `user` is on call from `start` until `end` (ms), above every layer.
pub async fn add_override(
    state: &AppState,
    schedule_id: i64,
    user: i64,
    start: i64,
    end: i64,
) -> ServiceResult<OverrideRow> {
    astore::spec_get(state.store(), SpecTable::Schedules, schedule_id).await?;
    if end <= start {
        return Err(invalid("end must be after start"));
    }
    check_users(state, &[user]).await?;
    let row = astore::override_create(state.store(), schedule_id, user, start, end).await?;
    state.alerting().wake();
    tracing::info!(
        schedule = schedule_id,
        user,
        override_id = row.id,
        "Override added."
    );
    Ok(row)
}

// ----------------------------------------------------------------------- escalation policies

/// An escalation policy body: its name and the spec to store; every target must exist.
pub async fn escalation_input(state: &AppState, body: &Value) -> ServiceResult<(String, Value)> {
    let name = name_of(body)?;
    let enabled = enabled_of(body)?;
    let mut spec = spec_of(body, &[]);
    spec["enabled"] = Value::Bool(enabled);
    let ack = spec.get("ack_timeout_minutes").cloned();
    if let Some(a) = &ack {
        if !a.as_i64().is_some_and(|m| (0..=24 * 60).contains(&m)) {
            return Err(invalid("ack_timeout_minutes must be 0 (off) to 1440"));
        }
    }
    let mut bare = spec.clone();
    if let Some(m) = bare.as_object_mut() {
        m.remove("ack_timeout_minutes");
    }
    let p: EscalationPolicy =
        serde_json::from_value(bare).map_err(|e| invalid(format!("escalation policy: {e}")))?;
    p.validate().map_err(ServiceError::Invalid)?;
    let org = tenancy::default_org(state.store()).await?;
    for (i, r) in p.escalation_rules.iter().enumerate() {
        for t in &r.targets {
            let found = match t.kind {
                TargetKind::User => !astore::user_names(state.store(), &[t.id]).await?.is_empty(),
                TargetKind::Schedule => {
                    exists(astore::spec_get(state.store(), SpecTable::Schedules, t.id).await)?
                }
                TargetKind::Channel => exists(
                    astore::channel_get(state.store(), t.id)
                        .await
                        .map(|c| c.org_id == org.id),
                )?,
            };
            if !found {
                return Err(invalid(format!(
                    "escalation_rules[{i}].targets: {:?} {} does not exist",
                    t.kind, t.id
                )));
            }
        }
    }
    let mut stored = serde_json::to_value(&p).map_err(|e| ServiceError::Internal(e.to_string()))?;
    if let (Some(m), Some(a)) = (stored.as_object_mut(), ack) {
        m.insert("ack_timeout_minutes".into(), a);
    }
    Ok((name, stored))
}

fn exists<T>(r: Result<T, StoreError>) -> ServiceResult<bool> {
    match r {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Creates an escalation policy.
pub async fn create_escalation_policy(state: &AppState, body: &Value) -> ServiceResult<SpecRow> {
    let input = escalation_input(state, body).await?;
    let t = SpecTable::EscalationPolicies;
    save_spec(state, t, "escalation policy", None, body, input).await
}

/// Stores a checked `(name, spec)` object as a new one (`id` none) or over object `id`, with the
/// owning team `body` asks for (checked: an unknown team is refused before anything is written).
pub async fn save_spec(
    state: &AppState,
    t: SpecTable,
    what: &'static str,
    id: Option<i64>,
    body: &Value,
    (name, spec): (String, Value),
) -> ServiceResult<SpecRow> {
    let team = team_change(state, body).await?;
    let key = match id {
        None => SpecKey::New(tenancy::default_org(state.store()).await?.id),
        Some(id) => SpecKey::Id(id),
    };
    astore::spec_save(state.store(), t, key, &name, &spec, team)
        .await
        .map_err(ServiceError::not_found(what))
}

/// Replaces an escalation policy (open incidents follow the new rules from their next step).
pub async fn update_escalation_policy(
    state: &AppState,
    id: i64,
    body: &Value,
) -> ServiceResult<SpecRow> {
    let input = escalation_input(state, body).await?;
    let t = SpecTable::EscalationPolicies;
    save_spec(state, t, "escalation policy", Some(id), body, input).await
}

/// Switches escalation policy `id` on or off. Off, incidents routed to it are still opened but
/// page nobody (their timeline says the policy is disabled), and open incidents stop escalating.
pub async fn set_escalation_enabled(state: &AppState, id: i64, enabled: bool) -> ServiceResult<()> {
    set_spec_enabled(
        state,
        SpecTable::EscalationPolicies,
        "escalation policy",
        id,
        enabled,
    )
    .await
}
