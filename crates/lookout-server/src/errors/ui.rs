//! The Errors section: the issue list (search, filters, sort, sparklines) and the issue page
//! (stack trace, breadcrumbs, tags, contexts, user, request, event navigation, raw JSON, and the
//! status actions), plus setup snippets for Python, JavaScript/Node and Rust.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::Value;

use crate::api::ProjectView;
use crate::charts;
use crate::extract::iso;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Member, Page, Signed};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::errors::{self, IssueFilter, StatusChange};
use lookout_store::tenancy::Session;
use lookout_store::{tenancy, Cursor, StoreError};

/// One row of the issue list.
pub struct IssueRow {
    id: i64,
    title: String,
    culprit: String,
    level: String,
    status: String,
    substatus: String,
    count: i64,
    users: i64,
    last_seen: When,
    spark: String,
    /// `#team` or the user's name; empty when unassigned.
    assignee: String,
}

/// Setup snippets for a DSN.
pub struct Snippets {
    pub(crate) python: String,
    pub(crate) node: String,
    pub(crate) rust: String,
}

pub(crate) fn snippets(dsn: &str) -> Snippets {
    Snippets {
        python: format!("pip install sentry-sdk\n\nimport sentry_sdk\nsentry_sdk.init(\n    dsn=\"{dsn}\",\n    release=\"myapp@1.0.0\",\n    environment=\"production\",\n)"),
        node: format!("npm install @sentry/node\n\nconst Sentry = require('@sentry/node');\nSentry.init({{\n  dsn: '{dsn}',\n  release: 'myapp@1.0.0',\n  environment: 'production',\n}});"),
        rust: format!("cargo add sentry\n\nlet _guard = sentry::init((\"{dsn}\", sentry::ClientOptions {{\n    release: sentry::release_name!(),\n    environment: Some(\"production\".into()),\n    ..Default::default()\n}}));"),
    }
}

#[derive(Template)]
#[template(path = "errors.html")]
struct ErrorsPage {
    title: String,
    ctx: PageCtx,
    project: Option<ProjectView>,
    issues: Vec<IssueRow>,
    next: Option<String>,
    q: ListQuery,
    environments: Vec<String>,
    releases: Vec<String>,
    snippets: Option<Snippets>,
    any_issue: bool,
    /// Members may tick issues and assign them in bulk.
    can_edit: bool,
    /// `(value, label)` of everyone the bulk action can assign to.
    assignees: Vec<(String, String)>,
    /// This list's address, for the bulk action to come back to.
    here: String,
    /// What a refused bulk action had ticked and chosen, shown again with why.
    kept: BulkKept,
}

/// A refused bulk assignment as it was submitted: the list shows it again ticked, with the
/// assignee still chosen and the reason beside the form.
#[derive(Default)]
pub struct BulkKept {
    /// The issues that were ticked.
    pub ids: Vec<i64>,
    /// The assignee that was chosen (`user:3`, `team:2`, or empty for nobody).
    pub assigned_to: String,
    /// Why the action was refused.
    pub error: Option<String>,
}

impl BulkKept {
    fn ticked(&self, id: &i64) -> bool {
        self.ids.contains(id)
    }
}

/// The list's query string.
#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    query: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    release: String,
    #[serde(default)]
    sort: String,
    /// "1": only issues first seen in the chosen release ("new in this release").
    #[serde(default)]
    new: String,
    #[serde(default)]
    cursor: String,
}

impl ListQuery {
    /// The query string of the next page.
    fn next_href(&self, cursor: &str) -> String {
        let enc = |s: &str| crate::ui::urlencode(s);
        format!(
            "/errors?query={}&status={}&environment={}&release={}&new={}&sort={}&cursor={}",
            enc(&self.query),
            enc(&self.status),
            enc(&self.environment),
            enc(&self.release),
            enc(&self.new),
            enc(&self.sort),
            enc(cursor)
        )
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim().to_string())
}

/// `GET /errors`
pub async fn list(
    State(state): State<AppState>,
    Page { ctx, session, .. }: Page,
    Query(q): Query<ListQuery>,
) -> UiResult {
    list_page(&state, ctx, &session, q, BulkKept::default()).await
}

/// The Errors list for `q`, with a refused bulk action's ticks, assignee and reason when
/// `kept` has them (then answered 422).
pub(crate) async fn list_page(
    state: &AppState,
    ctx: PageCtx,
    session: &Session,
    q: ListQuery,
    kept: BulkKept,
) -> UiResult {
    let pid = ctx.project_id;
    // `assigned:me is:unassigned …`: a term that names nobody is the form's mistake (422).
    let search = super::triage::parse_search(state, &q.query, Some(session.user.id))
        .await
        .map_err(|e| UiError::Refused(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let loaded: Result<_, StoreError> = async {
        if pid == 0 {
            return Ok((None, Vec::new(), None, Vec::new(), Vec::new(), false));
        }
        let project = ProjectView::new(
            tenancy::get_project(state.store(), pid).await?,
            state.settings(),
        );
        let status = match q.status.as_str() {
            "" => search.status.clone(),
            s => Some(s.to_string()),
        };
        if status
            .as_deref()
            .is_some_and(|s| s != "all" && !errors::STATUSES.contains(&s))
        {
            return Err(StoreError::NotFound);
        }
        let filter = IssueFilter {
            status,
            environment: opt(&q.environment),
            // "New in this release" narrows the release filter to issues first seen in it.
            release: opt(&q.release).filter(|_| q.new != "1"),
            first_release: opt(&q.release).filter(|_| q.new == "1"),
            query: search.text.clone(),
            sort: opt(&q.sort)
                .filter(|s| ["last_seen", "first_seen", "events", "users"].contains(&s.as_str())),
            assigned: search.assigned.clone(),
        };
        let page = errors::list_issues(
            state.store(),
            pid,
            &filter,
            &Cursor {
                // A page link with a mangled cursor shows the first page (the API answers 400).
                after: opt(&q.cursor).filter(|c| errors::parse_issue_cursor(c).is_some()),
                limit: Some(25),
            },
        )
        .await?;
        let hour = 3_600_000;
        let since = (now_ms() / hour - 23) * hour;
        let ids: Vec<i64> = page.items.iter().map(|i| i.id).collect();
        let mut hist: BTreeMap<i64, [f64; 24]> = BTreeMap::new();
        for (issue, bucket, n) in errors::issue_histograms(state.store(), &ids, since, hour).await?
        {
            let slot = usize::try_from((bucket - since) / hour)
                .unwrap_or(0)
                .min(23);
            hist.entry(issue).or_insert([0.0; 24])[slot] += n as f64;
        }
        let rows = page
            .items
            .into_iter()
            .map(|i| {
                let values = hist.get(&i.id).copied().unwrap_or([0.0; 24]);
                let total: f64 = values.iter().sum();
                IssueRow {
                    spark: charts::sparkline(
                        &values,
                        &format!("{total} events in the last 24 hours"),
                    ),
                    id: i.id,
                    title: i.title,
                    culprit: i.culprit,
                    level: i.level,
                    status: i.status,
                    substatus: i.substatus.unwrap_or_default(),
                    count: i.count,
                    users: i.user_count,
                    last_seen: When::at(i.last_seen),
                    assignee: i.assignee.as_ref().map(|a| a.label()).unwrap_or_default(),
                }
            })
            .collect();
        let mut envs = errors::project_tag_values(state.store(), pid, "environment").await?;
        let mut rels = errors::project_tag_values(state.store(), pid, "release").await?;
        // The menus list values of recently seen issues only; a filter on an older value (from a
        // link or a bookmark) stays selected, so the next submit of the form keeps it.
        for (menu, chosen) in [(&mut envs, &q.environment), (&mut rels, &q.release)] {
            if !chosen.is_empty() && !menu.contains(chosen) {
                menu.push(chosen.clone());
            }
        }
        let any = !errors::list_issues(
            state.store(),
            pid,
            &IssueFilter {
                status: Some("all".into()),
                ..Default::default()
            },
            &Cursor {
                after: None,
                limit: Some(1),
            },
        )
        .await?
        .items
        .is_empty();
        Ok((Some(project), rows, page.next, envs, rels, any))
    }
    .await;
    let (project, issues, next, environments, releases, any_issue) =
        loaded.map_err(|e| match e {
            // A status filter the store does not know.
            StoreError::NotFound => {
                UiError::Refused(StatusCode::BAD_REQUEST, "unknown status".into())
            }
            e => e.into(),
        })?;
    let snippets = project
        .as_ref()
        .and_then(|p| p.dsn.as_deref())
        .map(snippets);
    let can_edit = ctx.role != "viewer" && !issues.is_empty();
    let assignees = if can_edit {
        super::triage_ui::assignee_options(state).await?
    } else {
        Vec::new()
    };
    let here = q.next_href(&q.cursor);
    let status = if kept.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = render(&ErrorsPage {
        title: "Errors".into(),
        ctx,
        project,
        issues,
        next: next.map(|n| q.next_href(&n)),
        q,
        environments,
        releases,
        snippets,
        any_issue,
        can_edit,
        assignees,
        here,
        kept,
    });
    Ok((status, page).into_response())
}

/// A stack frame as shown.
pub struct FrameView {
    place: String,
    function: String,
    lineno: String,
    in_app: bool,
    pre: Vec<(String, String)>,
    line: Option<(String, String)>,
    post: Vec<(String, String)>,
    vars: Vec<(String, String)>,
}

/// An exception of the chain as shown.
pub struct ExceptionView {
    ty: String,
    value: String,
    mechanism: String,
    frames: Vec<FrameView>,
    /// The frames as sent, when source maps resolved them ("show minified").
    raw_frames: Vec<FrameView>,
}

/// A breadcrumb as shown.
pub struct CrumbView {
    time: String,
    category: String,
    level: String,
    message: String,
}

/// A tag value, its count and its share of the key's events in percent.
type TagShare = (String, i64, u32);

#[derive(Template)]
#[template(path = "issue.html")]
struct IssuePage {
    title: String,
    ctx: PageCtx,
    issue: crate::api::IssueView,
    /// First and last seen, as the page shows times.
    seen: (When, When),
    tags: Vec<(String, Vec<TagShare>)>,
    event_id: String,
    event_time: Option<When>,
    message: String,
    exceptions: Vec<ExceptionView>,
    crumbs: Vec<CrumbView>,
    event_tags: Vec<(String, String)>,
    contexts: Vec<(String, Vec<(String, String)>)>,
    user: Vec<(String, String)>,
    request: Vec<(String, String)>,
    older: Option<String>,
    newer: Option<String>,
    raw: String,
    can_edit: bool,
    /// The shown event's attachments: name, size, download link.
    attachments: Vec<(String, String, String)>,
    /// What users said about this issue's events: who, when, what.
    feedback: Vec<(String, When, String)>,
    /// Assignee, activity and comment form.
    triage: super::triage_ui::TriageView,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn kv(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|p| {
                p.as_array().map(|p| {
                    (
                        p.first().map(text).unwrap_or_default(),
                        p.get(1).map(text).unwrap_or_default(),
                    )
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn values(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) => o
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn frame_view(f: &Value) -> FrameView {
    let lineno = f.get("lineno").and_then(Value::as_i64);
    let numbered = |lines: Option<&Value>, start: Option<i64>| -> Vec<(String, String)> {
        let lines = lines.and_then(Value::as_array).cloned().unwrap_or_default();
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    start
                        .map(|s| (s + i as i64).to_string())
                        .unwrap_or_default(),
                    text(l),
                )
            })
            .collect()
    };
    let pre_len = f
        .get("pre_context")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as i64;
    FrameView {
        place: f
            .get("filename")
            .or_else(|| f.get("abs_path"))
            .or_else(|| f.get("module"))
            .map(text)
            .unwrap_or_else(|| "?".into()),
        function: f.get("function").map(text).unwrap_or_else(|| "?".into()),
        lineno: lineno.map(|l| l.to_string()).unwrap_or_default(),
        in_app: f.get("in_app").and_then(Value::as_bool).unwrap_or(false),
        pre: numbered(f.get("pre_context"), lineno.map(|l| l - pre_len)),
        line: f
            .get("context_line")
            .map(|c| (lineno.map(|l| l.to_string()).unwrap_or_default(), text(c))),
        post: numbered(f.get("post_context"), lineno.map(|l| l + 1)),
        vars: kv(f.get("vars")),
    }
}

/// `?event=ID`
#[derive(Deserialize)]
pub struct EventQuery {
    event: Option<String>,
}

/// `GET /errors/issues/{id}`
pub async fn issue(
    State(state): State<AppState>,
    Page {
        ctx, session: s, ..
    }: Page,
    Path(id): Path<i64>,
    Query(eq): Query<EventQuery>,
) -> UiResult {
    issue_page(
        &state,
        ctx,
        &s,
        id,
        eq.event,
        super::triage_ui::Typed::default(),
    )
    .await
}

/// The issue page, with what the comment form kept when it was refused.
pub(crate) async fn issue_page(
    state: &AppState,
    ctx: PageCtx,
    s: &tenancy::Session,
    id: i64,
    event: Option<String>,
    typed: super::triage_ui::Typed,
) -> UiResult {
    let eq = EventQuery { event };
    let loaded: Result<_, StoreError> = async {
        let issue = errors::get_issue(state.store(), id).await?;
        let tags = errors::issue_tags(state.store(), id).await?;
        let event_id = match eq.event {
            Some(e) => e,
            None => match errors::issue_events(
                state.store(),
                id,
                &Cursor {
                    after: None,
                    limit: Some(1),
                },
            )
            .await?
            .items
            .into_iter()
            .next()
            {
                Some((_, e)) => e.event_id,
                None => return Ok((issue, tags, None)),
            },
        };
        let ev = errors::get_event(state.store(), issue.project_id, &event_id).await?;
        Ok((issue, tags, Some(ev)))
    }
    .await;
    let (issue, tags, ev) = loaded?;
    let body = ev.as_ref().map(|e| e.body.clone()).unwrap_or(Value::Null);
    let exceptions = values(body.get("exception"))
        .iter()
        .rev()
        .map(|e| {
            let frames = e
                .pointer("/stacktrace/frames")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mech = e.get("mechanism");
            ExceptionView {
                ty: e.get("type").map(text).unwrap_or_default(),
                value: e.get("value").map(text).unwrap_or_default(),
                mechanism: match (
                    mech.and_then(|m| m.get("type")).map(text),
                    mech.and_then(|m| m.get("handled")).and_then(Value::as_bool),
                ) {
                    (Some(t), Some(h)) => {
                        format!("{t}, {}", if h { "handled" } else { "unhandled" })
                    }
                    (Some(t), None) => t,
                    _ => String::new(),
                },
                // Most recent call first, as Sentry shows it.
                frames: frames.iter().rev().map(frame_view).collect(),
                raw_frames: e
                    .pointer("/raw_stacktrace/frames")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().rev().map(frame_view).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let crumbs = values(body.get("breadcrumbs"))
        .iter()
        .map(|c| CrumbView {
            time: c
                .get("timestamp")
                .and_then(lookout_protocol::event::parse_timestamp)
                .map(iso)
                .unwrap_or_default(),
            category: c
                .get("category")
                .or_else(|| c.get("type"))
                .map(text)
                .unwrap_or_default(),
            level: c.get("level").map(text).unwrap_or_default(),
            message: c
                .get("message")
                .map(text)
                .unwrap_or_else(|| c.get("data").map(text).unwrap_or_default()),
        })
        .collect();
    let contexts = match body.get("contexts") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), kv(Some(v)))).collect(),
        _ => Vec::new(),
    };
    let mut request = Vec::new();
    if let Some(r) = body.get("request") {
        for k in ["method", "url", "query_string"] {
            if let Some(v) = r.get(k) {
                request.push((k.to_string(), text(v)));
            }
        }
        for (k, v) in kv(r.get("headers")) {
            request.push((k, v));
        }
    }
    let message = body
        .pointer("/logentry/formatted")
        .or_else(|| body.get("message"))
        .map(|m| {
            if let Some(f) = m.get("formatted") {
                text(f)
            } else {
                text(m)
            }
        })
        .unwrap_or_default();
    let tag_views = tags
        .into_iter()
        .map(|(k, vals)| {
            let total: i64 = vals.iter().map(|v| v.count).sum::<i64>().max(1);
            let rows = vals
                .into_iter()
                .map(|v| {
                    (
                        v.value,
                        v.count,
                        u32::try_from(v.count * 100 / total).unwrap_or(0),
                    )
                })
                .collect();
            (k, rows)
        })
        .collect();
    let (event_id, event_time, older, newer) = match &ev {
        Some(e) => (
            e.summary.event_id.clone(),
            Some(When::at(e.summary.timestamp)),
            e.previous_event_id.clone(),
            e.next_event_id.clone(),
        ),
        None => (String::new(), None, None, None),
    };
    let attachments = if event_id.is_empty() {
        Vec::new()
    } else {
        errors::attachments::list(state.store(), issue.project_id, &event_id)
            .await?
            .into_iter()
            .map(|a| {
                let url = super::attachments::download_path(issue.project_id, &a);
                (a.filename, format!("{} bytes", a.size), url)
            })
            .collect()
    };
    let feedback = errors::feedback::for_issue(state.store(), issue.id)
        .await?
        .into_iter()
        .map(|r| {
            let who = match (r.name, r.email) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (Some(n), None) => n,
                (None, Some(e)) => e,
                (None, None) => "anonymous".into(),
            };
            (who, When::at(r.created_at), r.comments)
        })
        .collect();
    let status = typed.status();
    let triage = super::triage_ui::load(state, &issue, typed).await?;
    let page = render(&IssuePage {
        title: issue.title.clone(),
        ctx,
        seen: (When::at(issue.first_seen), When::at(issue.last_seen)),
        issue: issue.into(),
        tags: tag_views,
        event_id,
        event_time,
        message,
        exceptions,
        crumbs,
        event_tags: kv(body.get("tags")),
        contexts,
        user: kv(body.get("user")),
        request,
        older,
        newer,
        raw: serde_json::to_string_pretty(&body).unwrap_or_default(),
        can_edit: s.user.role >= Role::Member,
        attachments,
        feedback,
        triage,
    })
    .into_response();
    Ok((status, page).into_response())
}

/// The status form.
#[derive(Deserialize)]
pub struct StatusForm {
    csrf: String,
    status: String,
}

/// `POST /errors/issues/{id}/status`
pub async fn set_status(
    State(state): State<AppState>,
    Signed { session: s, .. }: Signed<Member>,
    Path(id): Path<i64>,
    Form(f): Form<StatusForm>,
) -> UiResult {
    check_csrf(&s, &f.csrf)?;
    let change = match f.status.as_str() {
        "unresolved" => StatusChange::Unresolve,
        "resolved" => StatusChange::Resolve,
        "resolved_next_release" => StatusChange::ResolveInNextRelease,
        "ignored" => StatusChange::Ignore {
            until: None,
            more_events: None,
        },
        "ignored_24h" => StatusChange::Ignore {
            until: Some(now_ms() + 86_400_000),
            more_events: None,
        },
        _ => {
            return Err(UiError::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown status".into(),
            ))
        }
    };
    errors::set_status(state.store(), id, change).await?;
    Ok(Redirect::to(&format!("/errors/issues/{id}")).into_response())
}
