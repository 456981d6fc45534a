//! `/api/v1/incidents`: list, manual paging, one incident with its timeline, acknowledge,
//! resolve, notes, runbook checklist, postmortem, and MTTA/MTTR. The configuration they come
//! from (policies, integrations, runbooks) is in `alert_config`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::alerting::api::config::refs_exist;
use crate::alerting::engine::{self, Applied};
use crate::api::schemas::Incident;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_oncall::inbound::Action;
use lookout_store::alerting::incidents::{self, IncidentRow, ListFilter};
use lookout_store::alerting::{self as astore, outbox, SpecTable};
use lookout_store::tenancy;

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
    })
}

/// `?status=triggered,acknowledged&service=&limit=&before=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Comma-separated states (default all).
    pub status: Option<String>,
    /// Only this service.
    pub service: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<i64>,
    /// Only incidents with a lower id (paging).
    pub before: Option<i64>,
}

/// Lists incidents, newest first.
#[utoipa::path(get, operation_id = "incidents_list", path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery),
    responses((status = 200, body = crate::api::schemas::IncidentList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> ApiResult<Json<Value>> {
    let org = tenancy::default_org(state.store()).await?;
    let statuses: Vec<String> = q
        .status
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if let Some(bad) = statuses
        .iter()
        .find(|s| !matches!(s.as_str(), "triggered" | "acknowledged" | "resolved"))
    {
        return Err(ApiError::BadRequest(format!(
            "status {bad:?}: use triggered, acknowledged or resolved"
        )));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = incidents::list(
        state.store(),
        org.id,
        &ListFilter {
            statuses,
            service: q.service.clone(),
            before_id: q.before,
            limit,
        },
    )
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(json!({
        "items": rows.iter().map(incident_view).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

/// Opens an incident by hand (`{"title", "severity", "urgency", "service",
/// "escalation_policy_id", "runbook_id", "dedup_key", "details"}`): someone pages the team
/// directly. A `dedup_key` of an open manual incident answers that incident (200) instead.
#[utoipa::path(post, operation_id = "incidents_create", path = "/api/v1/incidents", tag = "incidents", request_body = crate::api::schemas::NewIncident,
    responses((status = 201, body = crate::api::schemas::Incident), (status = 200, body = crate::api::schemas::Incident),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    who: Member,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::trim);
    let title = field("title")
        .filter(|t| !t.is_empty() && t.len() <= 1024)
        .ok_or_else(|| ApiError::Validation("title is required (up to 1024 bytes)".into()))?;
    let severity = match field("severity") {
        Some(s) => lookout_oncall::dedup::Severity::parse(s).ok_or_else(|| {
            ApiError::Validation("severity must be critical, error, warning or info".into())
        })?,
        None => lookout_oncall::dedup::Severity::Error,
    };
    let urgency = match field("urgency") {
        Some(u) => Some(
            lookout_oncall::dedup::Urgency::parse(u)
                .ok_or_else(|| ApiError::Validation("urgency must be high or low".into()))?,
        ),
        None => None,
    };
    let ep = body.get("escalation_policy_id").and_then(Value::as_i64);
    let runbook = body.get("runbook_id").and_then(Value::as_i64);
    refs_exist(&state, ep, runbook).await?;
    let dedup = field("dedup_key")
        .filter(|k| !k.is_empty())
        .map(|k| lookout_oncall::dedup::clip(k, lookout_oncall::dedup::MAX_DEDUP_KEY))
        .unwrap_or_else(|| lookout_core::secret::random_hex(16));
    let org = tenancy::default_org(state.store()).await?;
    let origin = engine::Origin {
        org_id: org.id,
        scope: "manual".into(),
        policy_id: None,
        integration_id: None,
        escalation_policy_id: ep,
        runbook_id: runbook,
        service: field("service").map(String::from),
        urgency,
        actor: actor_of(&who),
        count_repeats: false,
        signal_ref: None,
    };
    let signal = lookout_oncall::inbound::Signal {
        action: Action::Trigger,
        dedup_key: Some(dedup),
        title: title.to_string(),
        severity,
        source: None,
        details: body.get("details").cloned().unwrap_or(json!({})),
        links: Vec::new(),
    };
    let a = state.alerting();
    let mut tx = state.store().begin_write().await?;
    let applied = engine::apply(&mut tx, &origin, &signal, now_ms()).await?;
    tx.commit().await.map_err(lookout_store::StoreError::from)?;
    a.wake();
    let (status, id) = match applied {
        Applied::Opened(id) => (StatusCode::CREATED, id),
        Applied::Joined(id) => (StatusCode::OK, id),
        _ => {
            return Err(ApiError::Internal(
                "a trigger neither opened nor joined".into(),
            ))
        }
    };
    Ok((
        status,
        Json(incident_view(&incidents::get(state.store(), id).await?)),
    ))
}

/// One incident with its timeline and notifications.
#[utoipa::path(get, operation_id = "incidents_get_one", path = "/api/v1/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, body = crate::api::schemas::IncidentDetail), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(full_view(&state, id).await?))
}

/// The incident, its timeline and its notifications.
pub async fn full_view(state: &AppState, id: i64) -> ApiResult<Value> {
    let inc = incidents::get(state.store(), id).await?;
    let mut v = incident_view(&inc);
    let timeline: Vec<Value> = incidents::timeline(state.store(), id)
        .await?
        .into_iter()
        .map(|e| {
            json!({"at": iso(e.at), "type": e.kind, "actor": e.actor, "message": e.message,
                   "data": e.data})
        })
        .collect();
    let notes: Vec<Value> = outbox::for_incident(state.store(), id)
        .await?
        .into_iter()
        .map(|n| {
            json!({"id": n.id, "channel_id": n.channel_id, "user_id": n.user_id,
                   "event": n.event, "status": n.status, "attempts": n.attempts,
                   "last_error": n.last_error, "created_at": iso(n.created_at),
                   "sent_at": n.sent_at.map(iso)})
        })
        .collect();
    v["timeline"] = json!(timeline);
    v["notifications"] = json!(notes);
    Ok(v)
}

pub(crate) fn actor_of(who: &Principal) -> String {
    match &who.caller {
        crate::auth::Caller::Session(s) => format!("user:{}", s.user.email),
        crate::auth::Caller::Token(t) => format!("token:{}", t.name),
    }
}

/// Acknowledges or resolves an incident for `actor`; 409 when it is not in a state that allows it.
pub async fn act(state: &AppState, id: i64, action: Action, actor: &str) -> ApiResult<Value> {
    let a = state.alerting();
    let mut tx = state.store().begin_write().await?;
    let r = engine::transition(&mut tx, id, action, actor, now_ms()).await?;
    tx.commit().await.map_err(lookout_store::StoreError::from)?;
    if r == Applied::Ignored {
        let inc = incidents::get(state.store(), id).await?;
        return Err(ApiError::Conflict(format!(
            "incident {id} is {}; nothing to do",
            inc.status
        )));
    }
    a.wake();
    tracing::info!(incident = id, action = ?action, "Incident changed.");
    Ok(incident_view(&incidents::get(state.store(), id).await?))
}

/// Acknowledges an incident: escalation stops until the acknowledgement timeout.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 409, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        act(&state, id, Action::Acknowledge, &actor_of(&who)).await?,
    ))
}

/// Resolves an incident.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, body = crate::api::schemas::Incident), (status = 409, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        act(&state, id, Action::Resolve, &actor_of(&who)).await?,
    ))
}

/// Adds a note `{"message"}` to the timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/notes", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = crate::api::schemas::NoteInput, responses((status = 201, body = crate::api::schemas::TimelineEntry), (status = 422, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let msg = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (at, msg) = note(&state, id, &actor_of(&who), msg).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"at": iso(at), "type": "note", "actor": actor_of(&who), "message": msg})),
    ))
}

/// Adds a note to an incident's timeline for `actor` (the API and the incident page); returns
/// when and the trimmed text.
pub async fn note(state: &AppState, id: i64, actor: &str, msg: &str) -> ApiResult<(i64, String)> {
    let msg = msg.trim();
    if msg.is_empty() || msg.len() > 10_000 {
        return Err(ApiError::Validation(
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

/// Ticks or unticks runbook checklist item `{"item": n, "done": bool}`; the tick goes into the
/// timeline.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/checklist", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = crate::api::schemas::TickInput, responses((status = 200, body = crate::api::schemas::ChecklistView), (status = 422, body = ErrorBody)))]
pub async fn tick(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let item = body.get("item").and_then(Value::as_u64).ok_or_else(|| {
        ApiError::Validation("item (the checklist item's number) is required".into())
    })?;
    let done = body.get("done").and_then(Value::as_bool).unwrap_or(true);
    let checklist = tick_item(&state, id, &actor_of(&who), item, done).await?;
    Ok(Json(json!({ "checklist": checklist })))
}

/// Ticks (or unticks) checklist item `item` of the incident's runbook for `actor`, with a
/// timeline entry; returns the checklist.
pub async fn tick_item(
    state: &AppState,
    id: i64,
    actor: &str,
    item: u64,
    done: bool,
) -> ApiResult<Value> {
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
        return Err(ApiError::Validation(format!(
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

/// A postmortem in Markdown, pre-filled from the incident and its timeline.
#[utoipa::path(get, path = "/api/v1/incidents/{id}/postmortem", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, body = crate::api::schemas::PostmortemView), (status = 404, body = ErrorBody)))]
pub async fn postmortem(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let inc = incidents::get(state.store(), id).await?;
    let timeline = incidents::timeline(state.store(), id).await?;
    Ok(Json(
        json!({"incident_id": id, "markdown": postmortem_markdown(&inc, &timeline)}),
    ))
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
pub type ResponseRow = (
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
);

/// MTTA and MTTR per group, `key` naming each incident's group from `(service, policy,
/// integration, created_at)`; groups in key order. Shared by the API and the Incidents page so
/// both show the same figures.
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
    for (service, policy, integration, created, acked, resolved) in &rows {
        let g = groups
            .entry(key((service, *policy, *integration, *created)))
            .or_default();
        g.n += 1;
        if let Some(a) = acked {
            g.acked += 1;
            g.ack_sum += a - created;
        }
        if let Some(r) = resolved {
            g.resolved += 1;
            g.res_sum += r - created;
        }
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

/// `?group_by=service|policy|month&since=&until=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `service` (default), `policy`, `integration` or `month`.
    pub group_by: Option<String>,
    /// From (RFC 3339; default 90 days ago).
    pub since: Option<String>,
    /// Until (RFC 3339; default now).
    pub until: Option<String>,
}

/// MTTA and MTTR from the incidents' recorded timestamps, grouped by service, policy,
/// integration or month (UTC).
#[utoipa::path(get, operation_id = "incidents_metrics", path = "/api/v1/incidents/metrics", tag = "incidents", params(MetricsQuery),
    responses((status = 200, body = crate::api::schemas::IncidentMetrics), (status = 400, body = ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    _who: Principal,
    ApiQuery(q): ApiQuery<MetricsQuery>,
) -> ApiResult<Json<Value>> {
    let now = now_ms();
    let t = |v: &Option<String>, name: &str, default: i64| match v {
        Some(s) => lookout_oncall::schedule::parse_rfc3339(s)
            .map_err(|e| ApiError::BadRequest(format!("{name}: {e}"))),
        None => Ok(default),
    };
    let since = t(&q.since, "since", now - 90 * 86_400_000)?;
    let until = t(&q.until, "until", now)?;
    let by = q.group_by.as_deref().unwrap_or("service");
    if !matches!(by, "service" | "policy" | "integration" | "month") {
        return Err(ApiError::BadRequest(
            "group_by must be service, policy, integration or month".into(),
        ));
    }
    let org = tenancy::default_org(state.store()).await?;
    let rows = incidents::response_times(state.store(), org.id, since, until).await?;
    let mut names = BTreeMap::new();
    if by == "policy" {
        for p in astore::spec_list(state.store(), SpecTable::Policies, org.id).await? {
            names.insert(p.id, p.name);
        }
    } else if by == "integration" {
        for i in astore::integration_list(state.store(), org.id).await? {
            names.insert(i.id, i.name);
        }
    }
    let groups = response_groups(rows, |(service, policy, integration, created)| match by {
        "policy" => policy
            .map(|p| {
                names
                    .get(&p)
                    .cloned()
                    .unwrap_or_else(|| format!("policy {p}"))
            })
            .unwrap_or_else(|| "(none)".into()),
        "integration" => integration
            .map(|p| {
                names
                    .get(&p)
                    .cloned()
                    .unwrap_or_else(|| format!("integration {p}"))
            })
            .unwrap_or_else(|| "(none)".into()),
        "month" => iso(created).get(..7).unwrap_or_default().to_string(),
        _ => service.clone().unwrap_or_else(|| "(none)".into()),
    });
    let out: Vec<Value> = groups
        .into_iter()
        .map(|g| serde_json::to_value(g).unwrap_or_default())
        .collect();
    Ok(Json(
        json!({"group_by": by, "since": iso(since), "until": iso(until), "items": out}),
    ))
}
