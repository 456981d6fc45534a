//! `/api/v1/projects/{id}/issues`, `/api/v1/issues/{id}` and events: error tracking's API.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{not_found, page_of, ListParams};
use crate::auth::{Member, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use lookout_store::errors::{self, Issue, IssueFilter, StatusChange};
use lookout_store::tenancy;

/// An issue as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueView {
    /// Numeric id.
    pub id: i64,
    /// The project.
    pub project_id: i64,
    /// The first event's `Type: value` or message, as sent.
    pub title: String,
    /// Where it happens.
    pub culprit: String,
    /// `fatal`, `error`, `warning`, `info`, `debug`.
    pub level: String,
    /// `unresolved`, `resolved`, `resolved_next_release`, `ignored`.
    pub status: String,
    /// `new`, `ongoing`, `regressed`, `escalating`, or null.
    pub substatus: Option<String>,
    /// Events.
    pub count: i64,
    /// Distinct affected users.
    pub user_count: i64,
    /// First event, RFC 3339.
    pub first_seen: String,
    /// Last event, RFC 3339.
    pub last_seen: String,
    /// Release of the first event.
    pub first_release: Option<String>,
    /// Release of the last event.
    pub last_release: Option<String>,
    /// SDK platform.
    pub platform: String,
    /// Who it is assigned to (Sentry's `assignedTo`), or null.
    #[serde(rename = "assignedTo")]
    pub assigned_to: Option<super::triage::AssigneeView>,
}

impl From<Issue> for IssueView {
    fn from(i: Issue) -> Self {
        IssueView {
            id: i.id,
            project_id: i.project_id,
            title: i.title,
            culprit: i.culprit,
            level: i.level,
            status: i.status,
            substatus: i.substatus,
            count: i.count,
            user_count: i.user_count,
            first_seen: iso(i.first_seen),
            last_seen: iso(i.last_seen),
            first_release: i.first_release,
            last_release: i.last_release,
            assigned_to: i.assignee.as_ref().map(Into::into),
            platform: i.platform,
        }
    }
}

page_of!(IssuePage, IssueView);

/// Filters of the issue list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IssueParams {
    /// `unresolved` (default), `resolved`, `resolved_next_release`, `ignored` or `all`.
    pub status: Option<String>,
    /// Only issues seen in this environment.
    pub environment: Option<String>,
    /// Only issues seen in this release.
    pub release: Option<String>,
    /// Only issues first seen in this release.
    pub first_release: Option<String>,
    /// Text in the title or culprit, with Sentry's search terms: `assigned:me`,
    /// `assigned:my_teams`, `assigned:#team`, `assigned:ada@example.com`, `is:unassigned`,
    /// `is:assigned`, `is:resolved` (a `status` parameter wins over `is:`).
    pub query: Option<String>,
    /// `last_seen` (default), `first_seen`, `events` or `users`.
    pub sort: Option<String>,
}

/// Lists a project's issues.
#[utoipa::path(get, operation_id = "issues_list", path = "/api/v1/projects/{id}/issues", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), IssueParams, ListParams),
    responses((status = 200, body = IssuePage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(f): ApiQuery<IssueParams>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<IssuePage>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    if let Some(s) = f.status.as_deref() {
        if s != "all" && !errors::STATUSES.contains(&s) {
            return Err(ApiError::Validation(format!(
                "status must be one of {}, or all",
                errors::STATUSES.join(", ")
            )));
        }
    }
    if let Some(s) = f.sort.as_deref() {
        if !["last_seen", "first_seen", "events", "users"].contains(&s) {
            return Err(ApiError::Validation(
                "sort must be last_seen, first_seen, events or users".into(),
            ));
        }
    }
    let search =
        super::triage::parse_search(&state, f.query.as_deref().unwrap_or(""), who.user_id())
            .await?;
    let filter = IssueFilter {
        status: f.status.or(search.status),
        environment: f.environment,
        release: f.release,
        first_release: f.first_release,
        query: search.text,
        sort: f.sort,
        assigned: search.assigned,
    };
    let page = errors::list_issues(state.store(), id, &filter, &q.cursor()).await?;
    Ok(Json(page.map(IssueView::from).into()))
}

/// A tag key and its most frequent values.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagBreakdown {
    /// Tag key (`release`, `environment`, `browser`, …).
    pub key: String,
    /// Values by count, at most 10.
    pub values: Vec<TagCount>,
}

/// One tag value.
#[derive(Debug, Serialize, ToSchema)]
pub struct TagCount {
    /// The value.
    pub value: String,
    /// Events with it.
    pub count: i64,
}

/// An issue with its tag breakdowns.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueDetail {
    /// The issue.
    #[serde(flatten)]
    pub issue: IssueView,
    /// Tag breakdowns.
    pub tags: Vec<TagBreakdown>,
}

/// Shows one issue with tag breakdowns.
#[utoipa::path(get, operation_id = "issues_get_one", path = "/api/v1/issues/{id}", tag = "errors", params(("id" = i64, Path, description = "Issue id")),
    responses((status = 200, body = IssueDetail), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IssueDetail>> {
    let issue = errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let tags = errors::issue_tags(state.store(), id)
        .await?
        .into_iter()
        .map(|(key, vals)| TagBreakdown {
            key,
            values: vals
                .into_iter()
                .map(|v| TagCount {
                    value: v.value,
                    count: v.count,
                })
                .collect(),
        })
        .collect();
    Ok(Json(IssueDetail {
        issue: issue.into(),
        tags,
    }))
}

/// A status change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IssueUpdate {
    /// `unresolved`, `resolved`, `resolved_next_release` or `ignored`.
    pub status: String,
    /// With `ignored`: ignore for this many minutes.
    pub ignore_minutes: Option<i64>,
    /// With `ignored`: ignore until this many more events.
    pub ignore_count: Option<i64>,
}

/// Changes an issue's status (member).
#[utoipa::path(put, operation_id = "issues_update", path = "/api/v1/issues/{id}", tag = "errors", params(("id" = i64, Path, description = "Issue id")),
    request_body = IssueUpdate, responses((status = 200, body = IssueView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<IssueUpdate>,
) -> ApiResult<Json<IssueView>> {
    let change = match body.status.as_str() {
        "unresolved" => StatusChange::Unresolve,
        "resolved" => StatusChange::Resolve,
        "resolved_next_release" => StatusChange::ResolveInNextRelease,
        "ignored" => StatusChange::Ignore {
            until: body
                .ignore_minutes
                .filter(|m| *m > 0)
                .map(|m| lookout_core::time::now_ms() + m * 60_000),
            more_events: body.ignore_count.filter(|n| *n > 0),
        },
        _ => {
            return Err(ApiError::Validation(format!(
                "status must be one of {}",
                errors::STATUSES.join(", ")
            )))
        }
    };
    let issue = errors::set_status(state.store(), id, change)
        .await
        .map_err(not_found("issue"))?;
    tracing::info!(issue = id, status = %issue.status, "Issue status changed.");
    Ok(Json(issue.into()))
}

/// Issues to merge into this one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MergeRequest {
    /// Ids of the issues to fold into the target.
    pub issues: Vec<i64>,
}

/// Merges other issues of the same project into this one (member).
#[utoipa::path(post, path = "/api/v1/issues/{id}/merge", tag = "errors", params(("id" = i64, Path, description = "Target issue id")),
    request_body = MergeRequest, responses((status = 200, body = IssueView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn merge(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MergeRequest>,
) -> ApiResult<Json<IssueView>> {
    if body.issues.is_empty() {
        return Err(ApiError::Validation(
            "issues must name at least one issue".into(),
        ));
    }
    let issue = errors::merge(state.store(), id, &body.issues)
        .await
        .map_err(not_found("issue"))?;
    Ok(Json(issue.into()))
}

/// An event in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventSummaryView {
    /// 32-hex event id.
    pub event_id: String,
    /// Its issue.
    pub issue_id: i64,
    /// When it happened, RFC 3339.
    pub timestamp: String,
    /// Level.
    pub level: String,
    /// Release.
    pub release: Option<String>,
    /// Environment.
    pub environment: String,
    /// Title as sent.
    pub title: String,
}

impl From<errors::EventSummary> for EventSummaryView {
    fn from(e: errors::EventSummary) -> Self {
        EventSummaryView {
            event_id: e.event_id,
            issue_id: e.issue_id,
            timestamp: iso(e.timestamp),
            level: e.level,
            release: e.release,
            environment: e.environment,
            title: e.title,
        }
    }
}

page_of!(ErrorEventPage, EventSummaryView);

/// An issue's events, newest first.
#[utoipa::path(get, path = "/api/v1/issues/{id}/events", tag = "errors", params(("id" = i64, Path, description = "Issue id"), ListParams),
    responses((status = 200, body = ErrorEventPage), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ErrorEventPage>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let page = errors::issue_events(state.store(), id, &q.cursor()).await?;
    Ok(Json(page.map(|(_, e)| EventSummaryView::from(e)).into()))
}

/// One event with its normalised JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    /// Summary.
    #[serde(flatten)]
    pub summary: EventSummaryView,
    /// The normalised event.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// The next older event of the issue.
    pub previous_event_id: Option<String>,
    /// The next newer event of the issue.
    pub next_event_id: Option<String>,
}

/// One event of a project by event id (dashed or not).
#[utoipa::path(get, path = "/api/v1/projects/{id}/events/{event_id}", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ("event_id" = String, Path, description = "Event id")),
    responses((status = 200, body = EventDetail), (status = 404, body = ErrorBody)))]
pub async fn event(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath((id, event_id)): ApiPath<(i64, String)>,
) -> ApiResult<Json<EventDetail>> {
    let e = errors::get_event(state.store(), id, &event_id)
        .await
        .map_err(not_found("event"))?;
    Ok(Json(EventDetail {
        summary: e.summary.into(),
        event: e.body,
        previous_event_id: e.previous_event_id,
        next_event_id: e.next_event_id,
    }))
}

/// One release with its error and session health.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    /// Release name.
    pub release: String,
    /// Error events seen in it.
    pub events: i64,
    /// Issues first seen in it.
    pub new_issues: i64,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that crashed.
    pub crashed: i64,
    /// Sessions that ended with errors.
    pub errored: i64,
    /// Percent of sessions without a crash; null without sessions.
    pub crash_free_percent: Option<f64>,
    /// Last activity, RFC 3339.
    pub last_seen: String,
}

/// Releases list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseList {
    /// Releases, most recently active first (at most 200).
    pub items: Vec<ReleaseView>,
}

/// Filter of the releases list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseParams {
    /// Only sessions of this environment.
    pub environment: Option<String>,
}

/// A project's releases with events, new issues and session health (crash-free rate).
#[utoipa::path(get, path = "/api/v1/projects/{id}/releases", tag = "errors",
    params(("id" = i64, Path, description = "Project id"), ReleaseParams),
    responses((status = 200, body = ReleaseList), (status = 404, body = ErrorBody)))]
pub async fn releases(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(f): ApiQuery<ReleaseParams>,
) -> ApiResult<Json<ReleaseList>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    let items = errors::health::releases(state.store(), id, f.environment.as_deref())
        .await?
        .into_iter()
        .map(|r| ReleaseView {
            release: r.release,
            events: r.events,
            new_issues: r.new_issues,
            sessions: r.sessions,
            crashed: r.crashed,
            errored: r.errored,
            crash_free_percent: r.crash_free_percent,
            last_seen: iso(r.last_seen),
        })
        .collect();
    Ok(Json(ReleaseList { items }))
}

/// A grouping hash of an issue.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueHashView {
    /// 32-hex hash.
    pub hash: String,
    /// Stored events whose primary hash it is.
    pub events: i64,
    /// The newest such event's title.
    pub latest_title: Option<String>,
}

/// Hashes list.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueHashList {
    /// The issue's hashes.
    pub items: Vec<IssueHashView>,
}

/// An issue's grouping hashes (what unmerge can split off).
#[utoipa::path(get, path = "/api/v1/issues/{id}/hashes", tag = "errors", params(("id" = i64, Path, description = "Issue id")),
    responses((status = 200, body = IssueHashList), (status = 404, body = ErrorBody)))]
pub async fn hashes(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<IssueHashList>> {
    errors::get_issue(state.store(), id)
        .await
        .map_err(not_found("issue"))?;
    let items = errors::issue_hashes(state.store(), id)
        .await?
        .into_iter()
        .map(|h| IssueHashView {
            hash: h.hash,
            events: h.events,
            latest_title: h.latest_title,
        })
        .collect();
    Ok(Json(IssueHashList { items }))
}

/// Hashes to split off.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UnmergeRequest {
    /// Hashes of this issue that move, with their events, to a new issue.
    pub hashes: Vec<String>,
}

/// Splits hashes and their events off into a new issue (member); answers the new issue.
#[utoipa::path(post, path = "/api/v1/issues/{id}/unmerge", tag = "errors", params(("id" = i64, Path, description = "Issue id")),
    request_body = UnmergeRequest, responses((status = 200, body = IssueView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn unmerge(
    State(state): State<AppState>,
    _who: Member,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UnmergeRequest>,
) -> ApiResult<Json<IssueView>> {
    let issue = errors::unmerge(state.store(), id, &body.hashes)
        .await
        .map_err(not_found("issue"))?;
    tracing::info!(issue = id, new_issue = issue.id, "Issue unmerged.");
    Ok(Json(issue.into()))
}

/// Events an SDK dropped before sending, as its client reports said.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientReportCount {
    /// Why (`ratelimit_backoff`, `queue_overflow`, `before_send`, …).
    pub reason: String,
    /// What (`error`, `transaction`, …).
    pub category: String,
    /// How many, in total.
    pub quantity: i64,
}

/// Client-report totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientReportList {
    /// Totals by reason and category.
    pub items: Vec<ClientReportCount>,
}

/// What a project's SDKs reported dropping (their `client_report` items, summed).
#[utoipa::path(get, path = "/api/v1/projects/{id}/client-reports", tag = "errors",
    params(("id" = i64, Path, description = "Project id")),
    responses((status = 200, body = ClientReportList), (status = 404, body = ErrorBody)))]
pub async fn client_reports(
    State(state): State<AppState>,
    _who: Principal,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ClientReportList>> {
    tenancy::get_project(state.store(), id)
        .await
        .map_err(not_found("project"))?;
    let items = errors::client_reports(state.store(), id)
        .await?
        .into_iter()
        .map(|(reason, category, quantity)| ClientReportCount {
            reason,
            category,
            quantity,
        })
        .collect();
    Ok(Json(ClientReportList { items }))
}
