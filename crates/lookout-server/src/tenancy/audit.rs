//! The audit log: every sign-in (right and wrong) and every change made through the API or a
//! UI form, with who, what, when and from which address. `GET /api/v1/audit` and `/settings/audit`
//! (admins) read it.
//!
//! Changes are recorded by one middleware around the API and the pages ([`record_writes`]): a
//! write (any method but GET, HEAD and OPTIONS) that succeeded (status below 400) by a known
//! caller becomes `METHOD /path/{id}` with the ids as its target. One place, so a new route is
//! audited the day it is added, like `openapi_roles` checks its role. What is kept is the route
//! and ids, never a body: secrets cannot end up here.
//!
//! The entry is handed to the store for the length of the request
//! ([`lookout_store::audit::with_pending`]): every configuration write (alerting and uptime
//! objects, users, invitations, tokens, teams, projects, settings with their before/after,
//! status pages, dashboards, locations, backup targets, and every delete by id) inserts it in
//! its own transaction, so the change and its entry commit together. What remains (incident and
//! issue triage) is recorded after the change, when it succeeded: a crash between the two loses
//! the entry, never the change.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{forwarded_client, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{iso, ApiQuery};
use crate::state::AppState;
use lookout_store::audit::{self, Filter, NewEntry};
use lookout_store::Cursor;

/// Paths whose writes are not changes: reads sent as POST, sign-in steps recorded on their own,
/// and forms that only set a cookie.
fn audited(path: &str) -> bool {
    const SKIP: &[&str] = &[
        "/api/v1/query",
        "/api/v1/password-reset",
        "/login",
        "/setup",
        "/logout",
        "/invite/",
        "/reset",
    ];
    !SKIP.iter().any(|p| path.starts_with(p))
}

/// `/api/v1/users/7/name` → (`/api/v1/users/{id}/name`, `7`): numbers and long hex ids become
/// `{id}`; their values are the target.
pub fn normalise(path: &str) -> (String, Option<String>) {
    let mut ids = Vec::new();
    let shape: Vec<String> = path
        .split('/')
        .map(|seg| {
            let is_id = !seg.is_empty()
                && (seg.bytes().all(|b| b.is_ascii_digit())
                    || (seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit())));
            if is_id {
                // Long hex ids are session ids: keep a prefix to tell them apart, not the whole.
                ids.push(seg.chars().take(16).collect::<String>());
                "{id}".to_string()
            } else {
                seg.chars().take(64).collect()
            }
        })
        .collect();
    let target = (!ids.is_empty()).then(|| ids.join("/"));
    (shape.join("/").chars().take(300).collect(), target)
}

/// `(actor, label)` of a caller.
fn actor_of(c: &Caller) -> (String, String) {
    match c {
        Caller::Token(t) => (
            t.user_id
                .map_or_else(|| format!("token:{}", t.id), |u| format!("user:{u}")),
            format!("token {}", t.name),
        ),
        Caller::Session(s) => (format!("user:{}", s.user.id), s.user.email.clone()),
    }
}

/// The client address of a request, as [`crate::auth::ClientAddr`] reads it.
fn client_of(state: &AppState, req: &Request) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| forwarded_client(c.0.ip(), req.headers(), &state.settings().trusted_proxies))
        .map(|ip| ip.to_string())
}

/// Records a successful write by a known caller (see the module docs).
pub async fn record_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || !audited(req.uri().path())
    {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let address = client_of(&state, &req);
    let (parts, body) = req.into_parts();
    // The caller as the handler will see it; unknown callers are refused there and not recorded.
    let actor = match crate::auth::caller(&state, &parts).await {
        Ok(Some(c)) => Some(actor_of(&c)),
        _ => None,
    };
    let Some((actor, label)) = actor else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let (shape, target) = normalise(&path);
    let action = format!("{method} {shape}");
    let pending = audit::Pending {
        actor: actor.clone(),
        actor_label: label.clone(),
        action: action.clone(),
        target: target.clone(),
        details: json!({ "recorded": "with the change" }),
        address: address.clone(),
    };
    let (res, taken) =
        audit::with_pending(pending, next.run(Request::from_parts(parts, body))).await;
    {
        if !taken && res.status().as_u16() < 400 {
            let details = json!({ "status": res.status().as_u16() });
            let entry = NewEntry {
                actor: &actor,
                actor_label: &label,
                action: &action,
                target: target.as_deref(),
                details: &details,
                address: address.as_deref(),
            };
            if let Err(e) = audit::record(state.store(), &entry).await {
                tracing::error!(error = %e, action = %action, "Could not write the audit log.");
            }
        }
    }
    res
}

/// Records a sign-in: `ok` for a session started, else a refusal of `email`.
pub async fn sign_in(
    state: &AppState,
    user: Option<&lookout_store::tenancy::User>,
    email: &str,
    client: Option<std::net::IpAddr>,
    how: &str,
) {
    let mut email: String = email.trim().to_lowercase().chars().take(254).collect();
    if user.is_none() {
        // What was typed into a failed sign-in is kept only when it is an account's address: a
        // password typed into the email field by mistake must not sit in the log in clear.
        let known = matches!(
            lookout_store::identity::active_user_by_email(state.store(), &email).await,
            Ok(Some(_))
        );
        if !known {
            let hash = lookout_core::secret::hash_token(&email);
            email = format!("unknown:{}", &hash[..hash.len().min(16)]);
        }
    }
    let (actor, label, action) = match user {
        Some(u) => (
            format!("user:{}", u.id),
            u.email.clone(),
            "session.login".to_string(),
        ),
        None => (
            format!("email:{email}"),
            email.clone(),
            "session.login_failed".to_string(),
        ),
    };
    let details = json!({ "how": how });
    let address = client.map(|c| c.to_string());
    let target = user.map(|u| u.id.to_string());
    let entry = NewEntry {
        actor: &actor,
        actor_label: &label,
        action: &action,
        target: target.as_deref(),
        details: &details,
        address: address.as_deref(),
    };
    if let Err(e) = audit::record(state.store(), &entry).await {
        tracing::error!(error = %e, "Could not write the audit log.");
    }
}

/// Records the first administrator's creation through `POST /setup` (made before anyone could
/// be an actor, so the middleware, which records known callers only, does not).
pub async fn first_admin(
    state: &AppState,
    user: &lookout_store::tenancy::User,
    client: Option<std::net::IpAddr>,
) {
    let address = client.map(|c| c.to_string());
    let target = user.id.to_string();
    let entry = NewEntry {
        actor: &format!("user:{}", user.id),
        actor_label: &user.email,
        action: "setup.first_admin",
        target: Some(&target),
        details: &json!({ "how": "setup form" }),
        address: address.as_deref(),
    };
    if let Err(e) = audit::record(state.store(), &entry).await {
        tracing::error!(error = %e, "Could not write the audit log.");
    }
}

/// `GET /api/v1/audit` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// At or after this time (RFC 3339).
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    pub until: Option<String>,
    /// The actor (`user:3`, `token:2`) or part of their email or token name.
    pub actor: Option<String>,
    /// Part of the action (`escalation-policies`, `session.login_failed`).
    pub action: Option<String>,
    /// Rows per page (default 50, at most 1000).
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// When, RFC 3339.
    pub at: String,
    /// `user:ID`, `token:ID`, `sso` (single sign-on's role and team sync) or `email:ADDRESS`
    /// (failed sign-ins).
    pub actor: String,
    /// The actor's email or token name at the time.
    pub actor_label: String,
    /// `session.login`, `session.login_failed`, `sso.team_join`, … or `METHOD /path/{id}`.
    pub action: String,
    /// The ids the action names.
    pub target: Option<String>,
    /// More about it (written with the change, or the answer's status; a setting's before and
    /// after with secrets masked; how a sign-in went).
    #[schema(value_type = Object)]
    pub details: Value,
    /// The client's address.
    pub address: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for older entries; `null` on the last page.
    pub next: Option<String>,
}

fn time_param(name: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    ApiError::BadRequest(format!(
                        "{name} must be an RFC 3339 time like 2026-12-06T09:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// Reads the filters into a store filter.
fn filter_of(q: &AuditParams) -> ApiResult<Filter> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect::<String>())
    };
    Ok(Filter {
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        actor: text(&q.actor),
        action: text(&q.action),
    })
}

/// The audit log, newest first (admin).
#[utoipa::path(get, operation_id = "audit_list", path = "/api/v1/audit", tag = "users", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: crate::auth::Admin,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    let filter = filter_of(&q)?;
    let page = audit::list(
        state.store(),
        &filter,
        &Cursor {
            after: q.cursor.clone(),
            limit: q.limit,
        },
    )
    .await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(view).collect(),
        next: page.next,
    }))
}

fn view(e: audit::Entry) -> AuditEntry {
    AuditEntry {
        at: iso(e.at),
        actor: e.actor,
        actor_label: e.actor_label,
        action: e.action,
        target: e.target,
        details: e.details,
        address: e.address,
    }
}

// ------------------------------------------------------------------ the page

#[derive(askama::Template)]
#[template(path = "audit.html")]
struct AuditHtml {
    title: String,
    ctx: crate::ui::layout::PageCtx,
    rows: Vec<(crate::ui::fmt::When, AuditEntry)>,
    actor: String,
    action: String,
    since: String,
    until: String,
    error: Option<String>,
    next: Option<String>,
}

/// `GET /settings/audit` (admin): the log with the API's filters.
pub async fn page(
    State(state): State<AppState>,
    page: crate::ui::extract::Page<crate::ui::extract::Admin>,
    axum::extract::Query(q): axum::extract::Query<AuditParams>,
) -> crate::ui::error::UiResult {
    let (rows, next, error) = match filter_of(&q) {
        Ok(filter) => {
            let p = audit::list(
                state.store(),
                &filter,
                &Cursor {
                    after: q.cursor.clone(),
                    limit: q.limit.or(Some(100)),
                },
            )
            .await?;
            let rows = p
                .items
                .into_iter()
                .map(|e| (crate::ui::fmt::When::at(e.at), view(e)))
                .collect();
            (rows, p.next, None)
        }
        Err(e) => (Vec::new(), None, Some(e.to_string())),
    };
    let status = if error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    let html = AuditHtml {
        title: "Audit log".into(),
        ctx: page.ctx,
        rows,
        actor: q.actor.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        since: q.since.unwrap_or_default(),
        until: q.until.unwrap_or_default(),
        error,
        next,
    };
    Ok((status, crate::ui::layout::render(&html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_become_actions_with_their_ids_as_target() {
        assert_eq!(
            normalise("/api/v1/escalation-policies/12"),
            ("/api/v1/escalation-policies/{id}".into(), Some("12".into()))
        );
        assert_eq!(
            normalise("/settings/invitations/4/resend"),
            ("/settings/invitations/{id}/resend".into(), Some("4".into()))
        );
        assert_eq!(normalise("/api/v1/users"), ("/api/v1/users".into(), None));
        let sid = "ab".repeat(32);
        assert_eq!(
            normalise(&format!("/api/v1/me/sessions/{sid}")).1,
            Some("abababababababab".into())
        );
    }
}
