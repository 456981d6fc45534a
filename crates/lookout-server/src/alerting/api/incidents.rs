//! `/api/v1/incidents`: list, manual paging, one incident with its timeline, acknowledge,
//! resolve, reassign, snooze, responders, merge, notes, runbook checklist, postmortem, and
//! MTTA/MTTR. The configuration they come from (policies, integrations, runbooks) is in
//! `alert_config`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::IntoParams;

use crate::alerting::api::config::refs_exist;
use crate::alerting::engine::{self, Applied};
use crate::alerting::incident_ops as ops;
use crate::alerting::service::{
    act, incident_view, note, postmortem_markdown, response_groups, tick_item,
};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_core::time::{iso, now_ms};
use lookout_oncall::inbound::Action;
use lookout_store::alerting::incidents::{self, ListFilter};
use lookout_store::alerting::{self as astore, outbox, SpecTable};
use lookout_store::tenancy;

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
    let responders: Vec<Value> = ops::responders(state.store(), id)
        .await?
        .iter()
        .map(ops::responder_json)
        .collect();
    v["timeline"] = json!(timeline);
    v["notifications"] = json!(notes);
    v["responders"] = json!(responders);
    Ok(v)
}

pub(crate) fn actor_of(who: &Principal) -> String {
    match &who.caller {
        crate::auth::Caller::Session(s) => format!("user:{}", s.user.email),
        crate::auth::Caller::Token(t) => format!("token:{}", t.name),
    }
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

/// Reassigns an incident `{"user_id"}` or `{"escalation_policy_id"}`: the user is paged and
/// becomes its assignee, or the policy replaces the incident's and escalation starts again at
/// its first rule. The incident triggers again (an acknowledgement or snooze ends).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/reassign", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = crate::api::schemas::ReassignInput,
    responses((status = 200, body = crate::api::schemas::Incident), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reassign(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let target = ops::Target::from_json(&body)?;
    Ok(Json(
        ops::reassign(&state, id, target, &actor_of(&who)).await?,
    ))
}

/// Snoozes an incident `{"duration_minutes"}` (1 to 10080, 7 days): a triggered incident is
/// acknowledged first; nobody is paged until the snooze ends, then it triggers again and its
/// current level is paged.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/snooze", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = crate::api::schemas::SnoozeInput,
    responses((status = 200, body = crate::api::schemas::Incident), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn snooze(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let minutes = match body.get("duration_minutes") {
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::Validation("duration_minutes must be a whole number of minutes".into())
        })?,
        None => {
            return Err(ApiError::Validation(
                "duration_minutes is required (1 to 10080)".into(),
            ))
        }
    };
    Ok(Json(
        ops::snooze(&state, id, minutes, &actor_of(&who)).await?,
    ))
}

/// Asks another responder to help `{"user_id"}` or `{"escalation_policy_id"}`, with an
/// optional `message`: they are paged (a policy's first rule, once) without changing whom the
/// incident is assigned to.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/responders", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    request_body = crate::api::schemas::ResponderInput,
    responses((status = 201, body = crate::api::schemas::ResponderRequest), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_responder(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let target = ops::Target::from_json(&body)?;
    let message = match body.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.as_str()),
        Some(_) => return Err(ApiError::Validation("message must be text".into())),
    };
    let (rid, _) = ops::add_responder(&state, id, target, message, &actor_of(&who)).await?;
    let all = ops::responders(state.store(), id).await?;
    let mine = all
        .iter()
        .find(|r| r.row.id == rid)
        .map(ops::responder_json)
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(mine)))
}

/// Merges incidents `{"source_incident_ids": [..]}` (1 to 50) into this one: each is resolved
/// with "Merged into #N", its alerts and signals move here (later events for them join this
/// incident), and this timeline lists them. 404 for an incident that does not exist (or is
/// another organization's), 422 for this incident itself, a resolved source or a resolved
/// target.
#[utoipa::path(post, operation_id = "incidents_merge", path = "/api/v1/incidents/{id}/merge", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id (the target)")),
    request_body = crate::api::schemas::MergeInput,
    responses((status = 200, body = crate::api::schemas::Incident), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn merge(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let bad = || {
        ApiError::Validation(format!(
            "source_incident_ids must be a list of 1 to {} incident ids",
            ops::MAX_MERGE
        ))
    };
    let list = body
        .get("source_incident_ids")
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    // Bounded before anything is read: a list longer than the limit is refused as it is.
    if list.len() > ops::MAX_MERGE {
        return Err(bad());
    }
    let ids = list
        .iter()
        .map(Value::as_i64)
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(bad)?;
    Ok(Json(ops::merge(&state, id, &ids, &actor_of(&who)).await?))
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
