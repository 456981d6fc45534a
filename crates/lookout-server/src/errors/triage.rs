//! Triage in the API: assigning an issue to a user or team, its activity stream and comments,
//! per-project ownership rules, and the issue search's assignment terms (`assigned:me`,
//! `assigned:my_teams`, `assigned:#team`, `assigned:ada@example.com`, `is:unassigned`,
//! `is:assigned`), as Sentry writes them. Members assign and comment, as in Sentry; admins
//! change ownership rules. The service functions here are what the API, the issue page and
//! Sentry's web API (`super::sentry_issues`) call.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::not_found;
use crate::auth::{Admin, Caller, Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_protocol::ownership;
use lookout_store::errors::triage::{self, Actor, AssignError, AssignedFilter, Assignee, Target};
use lookout_store::errors::{self, Issue};
use lookout_store::{teams, tenancy};

/// Longest search query, in bytes.
pub const MAX_QUERY: usize = 500;

/// Who an issue is assigned to, as the API shows it (Sentry's `assignedTo` shape).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssigneeView {
    /// `user` or `team`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The user's or team's id.
    pub id: String,
    /// The user's name (or email), or the team's slug.
    pub name: String,
    /// The user's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl From<&Assignee> for AssigneeView {
    fn from(a: &Assignee) -> Self {
        match a {
            Assignee::User { id, email, name } => AssigneeView {
                kind: "user",
                id: id.to_string(),
                name: name.clone().unwrap_or_else(|| email.clone()),
                email: Some(email.clone()),
            },
            Assignee::Team { id, slug, .. } => AssigneeView {
                kind: "team",
                id: id.to_string(),
                name: slug.clone(),
                email: None,
            },
        }
    }
}

/// The actor a principal acts as in an issue's activity.
pub async fn actor_of(state: &AppState, who: &Principal) -> ServiceResult<Actor> {
    Ok(match &who.caller {
        Caller::Session(s) => Actor {
            user_id: Some(s.user.id),
            label: s.user.email.clone(),
        },
        Caller::Token(t) => match t.user_id {
            Some(uid) => Actor {
                user_id: Some(uid),
                label: tenancy::get_user(state.store(), uid).await?.email,
            },
            None => Actor {
                user_id: None,
                label: format!("token {}", t.name),
            },
        },
    })
}

/// Reads an assignee as Sentry clients write it: `user:ID`, `team:ID`, `#slug`, an email,
/// `me`, or empty (unassign).
pub async fn parse_assignee(
    state: &AppState,
    value: &str,
    me: Option<i64>,
) -> ServiceResult<Option<Target>> {
    let v = value.trim();
    let invalid = |m: String| ServiceError::Invalid(format!("assignedTo: {m}"));
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 254 {
        return Err(invalid("too long".into()));
    }
    if let Some(id) = v.strip_prefix("user:") {
        let id: i64 = id
            .parse()
            .map_err(|_| invalid(format!("{v:?} is not user:ID")))?;
        return Ok(Some(Target::User(id)));
    }
    if let Some(id) = v.strip_prefix("team:") {
        let id: i64 = id
            .parse()
            .map_err(|_| invalid(format!("{v:?} is not team:ID")))?;
        return Ok(Some(Target::Team(id)));
    }
    if v == "me" {
        return me
            .map(|u| Some(Target::User(u)))
            .ok_or_else(|| invalid("\"me\" needs a user: sign in or use a user's token".into()));
    }
    if let Some(slug) = v.strip_prefix('#') {
        let org = tenancy::default_org(state.store()).await?;
        return match teams::by_slug(state.store(), org.id, slug).await? {
            Some(t) => Ok(Some(Target::Team(t.id))),
            None => Err(invalid(format!("there is no team #{slug}"))),
        };
    }
    if v.contains('@') {
        return match lookout_store::identity::active_user_by_email(state.store(), v).await? {
            Some(u) => Ok(Some(Target::User(u.id))),
            None => Err(invalid(format!("there is no user {v}"))),
        };
    }
    Err(invalid(format!(
        "{v:?} is not user:ID, team:ID, #team, an email, me, or empty"
    )))
}

/// Assigns an issue (the service the API, the page and Sentry's API call).
pub async fn assign(
    state: &AppState,
    who: &Principal,
    issue_id: i64,
    value: &str,
) -> ServiceResult<Issue> {
    assign_with_status(state, who, issue_id, value, None).await
}

/// Assigns an issue and changes its status in one transaction (Sentry's issue update): either
/// both land or, when the assignee is refused, neither.
pub async fn assign_with_status(
    state: &AppState,
    who: &Principal,
    issue_id: i64,
    value: &str,
    status: Option<lookout_store::errors::StatusChange>,
) -> ServiceResult<Issue> {
    let to = parse_assignee(state, value, who.user_id()).await?;
    let actor = actor_of(state, who).await?;
    match triage::assign_with_status(state.store(), issue_id, to, &actor, status).await {
        Ok(i) => {
            tracing::info!(issue = issue_id, assignee = ?i.assignee.as_ref().map(Assignee::actor_id), "Issue assigned.");
            Ok(i)
        }
        Err(AssignError::Issue) => Err(ServiceError::NotFound("issue")),
        Err(AssignError::Assignee) => Err(ServiceError::Invalid(format!(
            "assignedTo: {value:?} does not exist"
        ))),
        Err(AssignError::Store(e)) => Err(e.into()),
    }
}

/// Assigns several issues at once (the issue list's bulk action): 1 to
/// [`triage::MAX_BULK_ISSUES`] distinct ids, all or none. Returns how many changed.
pub async fn assign_many(
    state: &AppState,
    who: &Principal,
    ids: &[i64],
    value: &str,
) -> ServiceResult<usize> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(ServiceError::Invalid("ids: tick at least one issue".into()));
    }
    if ids.len() > triage::MAX_BULK_ISSUES {
        return Err(ServiceError::Invalid(format!(
            "ids: at most {} issues at once",
            triage::MAX_BULK_ISSUES
        )));
    }
    let to = parse_assignee(state, value, who.user_id()).await?;
    let actor = actor_of(state, who).await?;
    match triage::assign_many(state.store(), &ids, to, &actor).await {
        Ok(n) => {
            tracing::info!(
                issues = ids.len(),
                changed = n,
                assignee = value,
                "Issues assigned in bulk."
            );
            Ok(n)
        }
        Err(AssignError::Issue) => Err(ServiceError::NotFound("issue")),
        Err(AssignError::Assignee) => Err(ServiceError::Invalid(format!(
            "assignedTo: {value:?} does not exist"
        ))),
        Err(AssignError::Store(e)) => Err(e.into()),
    }
}

/// Adds a comment (1 to 10 000 bytes); the users and teams it mentions are kept with it and
/// emailed (see [`super::mentions`]). The second value tells the author when some mentioned
/// people were not emailed (their mention-email budget ran out, or the mail queue is full).
pub async fn comment(
    state: &AppState,
    who: &Principal,
    issue_id: i64,
    text: &str,
) -> ServiceResult<(triage::Activity, Option<String>)> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ServiceError::Invalid("text: write something".into()));
    }
    if text.len() > triage::MAX_NOTE_BYTES {
        return Err(ServiceError::Invalid(format!(
            "text: at most {} bytes",
            triage::MAX_NOTE_BYTES
        )));
    }
    let actor = actor_of(state, who).await?;
    let issue = errors::get_issue(state.store(), issue_id)
        .await
        .map_err(ServiceError::not_found("issue"))?;
    let resolved = super::mentions::resolve(state, text).await?;
    let stored: Vec<Value> = resolved.iter().map(|(t, r)| r.stored(t)).collect();
    let a = triage::add_note(state.store(), issue_id, &actor, text, &stored)
        .await
        .map_err(ServiceError::not_found("issue"))?;
    tracing::info!(
        issue = issue_id,
        mentions = resolved.len(),
        "Comment added."
    );
    let notice =
        super::mentions::notify(state, issue_id, &issue.title, a.id, &actor, text, &resolved);
    Ok((a, notice))
}

/// What an issue search says besides its free text.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Search {
    /// Words to find in the title or culprit.
    pub text: Option<String>,
    /// The assignment filter.
    pub assigned: Option<AssignedFilter>,
    /// `is:resolved`, `is:unresolved`, `is:ignored`.
    pub status: Option<String>,
}

/// Parses a search (`assigned:me is:unresolved timeout`) for the caller `me`.
pub async fn parse_search(state: &AppState, q: &str, me: Option<i64>) -> ServiceResult<Search> {
    if q.len() > MAX_QUERY {
        return Err(ServiceError::Invalid(format!(
            "query: at most {MAX_QUERY} characters"
        )));
    }
    let mut s = Search::default();
    let mut words = Vec::new();
    let need_me =
        || me.ok_or_else(|| ServiceError::Invalid("query: assigned:me needs a user".into()));
    for tok in q.split_whitespace() {
        let lower = tok.to_ascii_lowercase();
        let filter = match lower.as_str() {
            "is:unassigned" | "assigned:none" | "!has:assignee" => AssignedFilter::Nobody,
            "is:assigned" | "has:assignee" => AssignedFilter::Anybody,
            "assigned:me" => AssignedFilter::User(need_me()?),
            "assigned:my_teams" | "assigned:[my_teams]" => AssignedFilter::TeamsOf(need_me()?),
            "is:unresolved" | "is:resolved" | "is:ignored" => {
                s.status = Some(lower[3..].to_string());
                continue;
            }
            _ => match lower.strip_prefix("assigned:") {
                Some(v) => match parse_assignee(state, v, me).await {
                    Ok(Some(Target::User(u))) => AssignedFilter::User(u),
                    Ok(Some(Target::Team(t))) => AssignedFilter::Team(t),
                    Ok(None) => AssignedFilter::Nobody,
                    Err(e) => {
                        return Err(ServiceError::Invalid(e.to_string().replacen(
                            "assignedTo",
                            "query",
                            1,
                        )))
                    }
                },
                None => {
                    words.push(tok);
                    continue;
                }
            },
        };
        s.assigned = Some(filter);
    }
    if !words.is_empty() {
        s.text = Some(words.join(" "));
    }
    Ok(s)
}

/// An assignment.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    /// `user:ID`, `team:ID`, `#team`, an email, `me`, or `""` / null to unassign.
    #[serde(rename = "assignedTo", alias = "assigned_to")]
    pub assigned_to: Option<String>,
}

/// Assigns an issue to a user or team, or unassigns it (member).
#[utoipa::path(put, path = "/api/v1/issues/{id}/assignee", tag = "errors",
    params(("id" = i64, Path, description = "Issue id")), request_body = AssignRequest,
    responses((status = 200, body = super::api::IssueView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_assignee(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignRequest>,
) -> ApiResult<Json<super::api::IssueView>> {
    let issue = assign(&state, &who, id, body.assigned_to.as_deref().unwrap_or("")).await?;
    Ok(Json(issue.into()))
}

/// A bulk assignment from the issue list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkAssignRequest {
    /// The issues (1 to 100).
    pub ids: Vec<i64>,
    /// `user:ID`, `team:ID`, `#team`, an email, `me`, or `""` / null to unassign.
    #[serde(rename = "assignedTo", alias = "assigned_to")]
    pub assigned_to: Option<String>,
}

/// What a bulk assignment changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAssigned {
    /// Issues whose assignee changed (those already so assigned are not counted).
    pub updated: usize,
}

/// Assigns several issues to one user or team, or unassigns them (member): all or none, so an
/// unknown issue or assignee changes nothing.
#[utoipa::path(put, path = "/api/v1/issues/assignee", tag = "errors",
    request_body = BulkAssignRequest,
    responses((status = 200, body = BulkAssigned), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_bulk_assignee(
    State(state): State<AppState>,
    who: Member,
    ApiJson(body): ApiJson<BulkAssignRequest>,
) -> ApiResult<Json<BulkAssigned>> {
    let updated = assign_many(
        &state,
        &who,
        &body.ids,
        body.assigned_to.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(BulkAssigned { updated }))
}

/// One entry of an issue's activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityView {
    /// Numeric id.
    pub id: i64,
    /// `note` (a comment), `assigned`, `auto_assigned` or `unassigned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who did it (an email, a token, or `ownership rules`).
    pub actor: String,
    /// The user who did it, if one did.
    pub user_id: Option<i64>,
    /// `{"text"}` for a note; `{"assignee", "label"}` for an assignment.
    #[schema(value_type = Object)]
    pub data: Value,
    /// When, RFC 3339.
    pub created_at: String,
    /// After a comment: why some people it mentions were not emailed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl From<triage::Activity> for ActivityView {
    fn from(a: triage::Activity) -> Self {
        ActivityView {
            id: a.id,
            kind: a.kind,
            actor: a.actor,
            user_id: a.user_id,
            data: a.data,
            created_at: iso(a.created_at),
            notice: None,
        }
    }
}

/// An issue's activity, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityList {
    /// The newest 200 entries, oldest first.
    pub items: Vec<ActivityView>,
}

/// An issue's activity: assignments and comments.
#[utoipa::path(get, path = "/api/v1/issues/{id}/activity", tag = "errors",
    params(("id" = i64, Path, description = "Issue id")),
    responses((status = 200, body = ActivityList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn activity(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ActivityList>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let items = triage::activity(state.store(), id)
        .await?
        .into_iter()
        .map(ActivityView::from)
        .collect();
    Ok(Json(ActivityList { items }))
}

/// A comment.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewComment {
    /// 1 to 10 000 bytes.
    pub text: String,
}

/// Comments on an issue (member).
#[utoipa::path(post, path = "/api/v1/issues/{id}/comments", tag = "errors",
    params(("id" = i64, Path, description = "Issue id")), request_body = NewComment,
    responses((status = 201, body = ActivityView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn post_comment(
    State(state): State<AppState>,
    who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewComment>,
) -> ApiResult<(StatusCode, Json<ActivityView>)> {
    let (a, notice) = comment(&state, &who, id, &body.text).await?;
    let mut view = ActivityView::from(a);
    view.notice = notice;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A project's ownership rules.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnershipView {
    /// The rules as written (Sentry's syntax; see docs/errors.md).
    pub raw: String,
    /// Whether new issues are assigned to the owners of the last matching rule.
    pub auto_assign: bool,
    /// Last saved, RFC 3339 (null: never).
    pub updated_at: Option<String>,
}

impl From<triage::StoredRules> for OwnershipView {
    fn from(r: triage::StoredRules) -> Self {
        OwnershipView {
            raw: r.raw,
            auto_assign: r.auto_assign,
            updated_at: (r.updated_at > 0).then(|| iso(r.updated_at)),
        }
    }
}

/// New ownership rules.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipUpdate {
    /// The rules (at most 64 KiB, 500 rules).
    pub raw: String,
    /// Assign new issues to their owners (default true).
    pub auto_assign: Option<bool>,
}

/// Checks rules: they parse, and every team they name exists. The message names the line.
pub async fn check_rules(state: &AppState, raw: &str) -> ServiceResult<()> {
    let rules = ownership::parse(raw).map_err(|e| ServiceError::Invalid(format!("raw: {e}")))?;
    let org = tenancy::default_org(state.store()).await?;
    // Each team once (500 rules of 20 owners may name the same few teams 10,000 times), at the
    // first line that names it.
    let mut slugs: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in &rules.rules {
        for o in &r.owners {
            if let ownership::Owner::Team(slug) = o {
                slugs.entry(slug.as_str()).or_insert(r.line);
            }
        }
    }
    let known: std::collections::HashSet<String> = teams::all(state.store(), org.id)
        .await?
        .into_iter()
        .map(|t| t.slug)
        .collect();
    let missing = slugs
        .into_iter()
        .filter(|(slug, _)| !known.contains(*slug))
        .map(|(slug, line)| (line, slug))
        .min();
    if let Some((line, slug)) = missing {
        return Err(ServiceError::Invalid(format!(
            "raw: line {line}: there is no team #{slug}"
        )));
    }
    Ok(())
}

/// A project's ownership rules.
#[utoipa::path(get, path = "/api/v1/projects/{id}/ownership", tag = "errors",
    params(("id" = i64, Path, description = "Project id")),
    responses((status = 200, body = OwnershipView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_ownership(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<OwnershipView>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    Ok(Json(triage::ownership(state.store(), id).await?.into()))
}

/// Replaces a project's ownership rules (admin); the 422 names the wrong line.
#[utoipa::path(put, path = "/api/v1/projects/{id}/ownership", tag = "errors",
    params(("id" = i64, Path, description = "Project id")), request_body = OwnershipUpdate,
    responses((status = 200, body = OwnershipView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_ownership(
    State(state): State<AppState>,
    _who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<OwnershipUpdate>,
) -> ApiResult<Json<OwnershipView>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    if let Err(e) = check_rules(&state, &body.raw).await {
        tracing::info!(project = id, error = %e, "Ownership rules refused.");
        return Err(e.into());
    }
    let saved = triage::save_ownership(
        state.store(),
        id,
        &body.raw,
        body.auto_assign.unwrap_or(true),
    )
    .await?;
    tracing::info!(project = id, "Ownership rules saved.");
    Ok(Json(saved.into()))
}

/// Maps a service refusal to the API's error (used by the Sentry-compatible routes too).
pub fn api_error(e: ServiceError) -> ApiError {
    e.into()
}
