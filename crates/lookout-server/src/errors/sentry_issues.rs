//! The part of Sentry's web API that clients use to triage an issue: read it, assign it
//! (`PUT /api/0/issues/{id}/ {"assignedTo": "user:ID" | "team:ID" | email | ""}`, also the
//! status), and read and write its comments (`/api/0/issues/{id}/comments/`), with the
//! organization-scoped forms newer clients use (`/api/0/organizations/{org}/issues/{id}/…`), and
//! the project's bulk update (`PUT /api/0/projects/{org}/{project}/issues/?id=1&id=2`) for
//! `assignedTo`.
//!
//! Authenticated by a Lookout API token (Bearer) or a session, like `/api/v1`; changes need the
//! member role, checked before the body is read. Answers use Sentry's field names; the work is
//! done by the same services as `/api/v1` (`super::triage`).

use axum::extract::RawQuery;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::triage::{self, AssigneeView};
use crate::api::not_found;
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::state::AppState;
use lookout_store::errors::triage as store;
use lookout_store::errors::{self, Issue, StatusChange};
use lookout_store::tenancy;

/// The routes, with and without the trailing slash Sentry's clients send.
pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for slash in ["/", ""] {
        r = r
            .route(
                &format!("/api/0/issues/{{id}}{slash}"),
                get(get_issue).put(put_issue),
            )
            .route(
                &format!("/api/0/issues/{{id}}/comments{slash}"),
                get(list_comments).post(post_comment),
            )
            .route(
                &format!("/api/0/organizations/{{org}}/issues/{{id}}{slash}"),
                get(org_get_issue).put(org_put_issue),
            )
            .route(
                &format!("/api/0/organizations/{{org}}/issues/{{id}}/comments{slash}"),
                get(org_list_comments).post(org_post_comment),
            )
            .route(
                &format!("/api/0/projects/{{org}}/{{project}}/issues{slash}"),
                put(bulk_put),
            );
    }
    r
}

async fn sentry_issue(state: &AppState, i: Issue) -> ApiResult<Value> {
    let project = tenancy::get_project(state.store(), i.project_id).await?;
    let status = match i.status.as_str() {
        "resolved_next_release" => "resolved",
        s => s,
    };
    Ok(json!({
        "id": i.id.to_string(),
        "shortId": format!("{}-{}", project.slug.to_uppercase(), i.id),
        "title": i.title,
        "culprit": i.culprit,
        "level": i.level,
        "status": status,
        "substatus": i.substatus,
        "platform": i.platform,
        "count": i.count.to_string(),
        "userCount": i.user_count,
        "firstSeen": iso(i.first_seen),
        "lastSeen": iso(i.last_seen),
        "project": {"id": project.id.to_string(), "slug": project.slug, "name": project.name},
        "assignedTo": i.assignee.as_ref().map(AssigneeView::from),
    }))
}

async fn check_org(state: &AppState, org: &str) -> ApiResult<()> {
    if tenancy::default_org(state.store()).await?.slug != org {
        return Err(ApiError::NotFound("organization"));
    }
    Ok(())
}

/// `GET /api/0/issues/{id}/`
async fn get_issue(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let i = errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    Ok(Json(sentry_issue(&state, i).await?))
}

async fn org_get_issue(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((org, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    get_issue(State(state), who, ApiPath(id)).await
}

/// What Sentry's issue update takes (the fields Lookout acts on; others are ignored, as Sentry
/// ignores fields a client may not change).
#[derive(Debug, Deserialize)]
pub struct IssuePut {
    #[serde(rename = "assignedTo")]
    assigned_to: Option<Value>,
    status: Option<String>,
}

/// `PUT /api/0/issues/{id}/`: assign (`assignedTo`) and/or change the status.
async fn put_issue(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<IssuePut>,
) -> ApiResult<Json<Value>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let change = match body.status.as_deref() {
        None => None,
        Some("resolved") => Some(StatusChange::Resolve),
        Some("resolvedInNextRelease") => Some(StatusChange::ResolveInNextRelease),
        Some("unresolved") => Some(StatusChange::Unresolve),
        Some("ignored") => Some(StatusChange::Ignore {
            until: None,
            more_events: None,
        }),
        Some(s) => {
            return Err(ApiError::Validation(format!(
                "status: {s:?} is not resolved, resolvedInNextRelease, unresolved or ignored"
            )))
        }
    };
    let assignee = match &body.assigned_to {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::Validation(
                "assignedTo: a string (user:ID, team:ID, an email) or empty".into(),
            ))
        }
    };
    // Both in one transaction: a refused assignee (one that does not exist) changes nothing.
    match (&assignee, change) {
        (Some(a), c) => {
            triage::assign_with_status(&state, &who, id, a, c).await?;
        }
        (None, Some(c)) => {
            errors::set_status(state.store(), id, c).await?;
        }
        (None, None) => {}
    }
    let i = errors::get_issue(state.store(), id).await?;
    Ok(Json(sentry_issue(&state, i).await?))
}

async fn org_put_issue(
    State(state): State<AppState>,
    who: Member,
    ApiPath((org, id)): ApiPath<(String, i64)>,
    body: ApiJson<IssuePut>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    put_issue(State(state), who, ApiPath(id), body).await
}

fn sentry_note(a: &store::Activity) -> Value {
    json!({
        "id": a.id.to_string(),
        "type": "note",
        "data": {"text": a.data.get("text").cloned().unwrap_or(Value::Null)},
        "user": a.user_id.map(|u| json!({"id": u.to_string(), "email": a.actor, "name": a.actor})),
        "dateCreated": iso(a.created_at),
    })
}

/// `GET /api/0/issues/{id}/comments/`: the notes, newest first (as Sentry lists them).
async fn list_comments(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<Value>>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let mut notes: Vec<Value> = store::activity(state.store(), id)
        .await?
        .iter()
        .filter(|a| a.kind == "note")
        .map(sentry_note)
        .collect();
    notes.reverse();
    Ok(Json(notes))
}

async fn org_list_comments(
    State(state): State<AppState>,
    who: Principal,
    ApiPath((org, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Vec<Value>>> {
    check_org(&state, &org).await?;
    list_comments(State(state), who, ApiPath(id)).await
}

/// A Sentry comment.
#[derive(Debug, Deserialize)]
pub struct CommentPost {
    text: String,
}

/// `POST /api/0/issues/{id}/comments/`
async fn post_comment(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CommentPost>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (a, notice) = triage::comment(&state, &who, id, &body.text).await?;
    let mut note = sentry_note(&a);
    if let Some(n) = notice {
        // Not Sentry's shape, but a client that looks sees why nobody was emailed.
        note["notice"] = Value::String(n);
    }
    Ok((StatusCode::CREATED, Json(note)))
}

async fn org_post_comment(
    State(state): State<AppState>,
    who: Member,
    ApiPath((org, id)): ApiPath<(String, i64)>,
    body: ApiJson<CommentPost>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    check_org(&state, &org).await?;
    post_comment(State(state), who, ApiPath(id), body).await
}

/// `PUT /api/0/projects/{org}/{project}/issues/?id=1&id=2` `{"assignedTo"}`: Sentry's bulk
/// update, for assignment (all or none, at most 100 issues, every one of the project). A status
/// is changed one issue at a time (`PUT /api/0/issues/{id}/`).
async fn bulk_put(
    State(state): State<AppState>,
    who: Member,
    ApiPath((org, project)): ApiPath<(String, String)>,
    RawQuery(q): RawQuery,
    ApiJson(body): ApiJson<IssuePut>,
) -> ApiResult<Json<Value>> {
    check_org(&state, &org).await?;
    let project_id =
        lookout_store::errors::sourcemaps::project_by_slug(state.store(), &org, &project)
            .await?
            .ok_or(ApiError::NotFound("project"))?;
    let mut ids = Vec::new();
    for (k, v) in url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes()) {
        if k == "id" {
            if ids.len() >= store::MAX_BULK_ISSUES {
                return Err(ApiError::Validation(format!(
                    "id: at most {} issues at once",
                    store::MAX_BULK_ISSUES
                )));
            }
            ids.push(
                v.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest(format!("id: {v:?} is not an issue id")))?,
            );
        }
    }
    if ids.is_empty() {
        // Sentry's bulk update without `id` means "every issue of the project": not done here.
        return Err(ApiError::Validation(
            "id: name the issues to update (?id=1&id=2), at least one".into(),
        ));
    }
    if body.status.is_some() {
        return Err(ApiError::Validation(
            "status: change the status one issue at a time (PUT /api/0/issues/{id}/)".into(),
        ));
    }
    let value = match &body.assigned_to {
        Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ApiError::Validation(
                "assignedTo: a string (user:ID, team:ID, an email) or empty".into(),
            ))
        }
    };
    for id in &ids {
        let i = errors::get_issue(state.store(), *id)
            .await
            .map_err(not_found("issue"))?;
        if i.project_id != project_id {
            return Err(ApiError::NotFound("issue"));
        }
    }
    triage::assign_many(&state, &who, &ids, &value).await?;
    let first = errors::get_issue(state.store(), ids.first().copied().unwrap_or(0))
        .await
        .map_err(not_found("issue"))?;
    Ok(Json(
        json!({"assignedTo": first.assignee.as_ref().map(AssigneeView::from)}),
    ))
}
