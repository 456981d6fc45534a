//! Triage on the issue page (the assignee picker, the activity stream and the comment form) and
//! the project's ownership rules page (`/errors/ownership`). The forms call the same service
//! functions as the API (`super::triage`); a refused comment or rule set comes back with what was
//! typed and the reason.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::triage;
use crate::service::ServiceError;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract::{Admin, Member, Page, Signed, Viewer};
use crate::ui::fmt::When;
use crate::ui::layout::{render, PageCtx};
use lookout_core::Role;
use lookout_store::errors::triage as store;
use lookout_store::errors::Issue;
use lookout_store::{teams, tenancy, Cursor};

/// What the comment form kept when it was refused.
#[derive(Default)]
pub struct Typed {
    /// The comment as typed.
    pub comment: String,
    /// Why it was refused.
    pub error: Option<String>,
    /// Said after a comment was saved (e.g. mentions over the email budget were not mailed).
    pub notice: Option<String>,
}

impl Typed {
    /// 422 when the page shows a refused form, else 200.
    pub fn status(&self) -> StatusCode {
        if self.error.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        }
    }
}

/// One entry of the activity stream as shown.
pub struct ActivityLine {
    /// The entry's id (the page links to `#activity-{id}`).
    pub id: i64,
    /// `note`, `assigned`, `auto_assigned`, `unassigned`.
    pub kind: String,
    /// Who.
    pub actor: String,
    /// When.
    pub when: When,
    /// The comment, or whom it was assigned to.
    pub text: String,
    /// A comment as text and links: its mentions link to what they name.
    pub pieces: Vec<(String, Option<String>)>,
}

/// The triage part of the issue page.
pub struct TriageView {
    /// Who it is assigned to, as people read it (empty: nobody).
    pub assignee: String,
    /// The picker's current value (`user:ID`, `team:ID`, or empty).
    pub current: String,
    /// `(value, label)` of everyone it can be assigned to: teams first, then users.
    pub options: Vec<(String, String)>,
    /// Assignments and comments, oldest first.
    pub activity: Vec<ActivityLine>,
    /// The comment form as typed.
    pub typed: Typed,
}

/// The users an issue can be assigned to or a comment can mention (the first 1,000).
pub async fn people(state: &AppState) -> Result<Vec<tenancy::User>, lookout_store::StoreError> {
    Ok(tenancy::list_users(
        state.store(),
        &Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await?
    .items)
}

/// `(value, label)` of everyone an issue can be assigned to: teams first, then users (the
/// issue page's picker and the issue list's bulk action).
pub async fn assignee_options(state: &AppState) -> Result<Vec<(String, String)>, UiError> {
    let org = tenancy::default_org(state.store()).await?;
    let mut options: Vec<(String, String)> = teams::all(state.store(), org.id)
        .await?
        .into_iter()
        .map(|t| {
            (
                format!("team:{}", t.id),
                format!("#{} ({})", t.slug, t.name),
            )
        })
        .collect();
    options.extend(people(state).await?.into_iter().map(|u| {
        let label = match u.name {
            Some(n) => format!("{n} <{}>", u.email),
            None => u.email,
        };
        (format!("user:{}", u.id), label)
    }));
    Ok(options)
}

/// Loads the triage view of an issue.
pub async fn load(state: &AppState, issue: &Issue, typed: Typed) -> Result<TriageView, UiError> {
    let options = assignee_options(state).await?;
    let activity = store::activity(state.store(), issue.id)
        .await?
        .into_iter()
        .map(|a| {
            let s = |k: &str| {
                a.data
                    .get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            ActivityLine {
                pieces: if a.kind == "note" {
                    super::mentions::linked(&s("text"), a.data.get("mentions"))
                } else {
                    Vec::new()
                },
                text: if a.kind == "note" {
                    s("text")
                } else {
                    s("label")
                },
                id: a.id,
                kind: a.kind,
                actor: a.actor,
                when: When::at(a.created_at),
            }
        })
        .collect();
    Ok(TriageView {
        assignee: issue
            .assignee
            .as_ref()
            .map(|a| a.label())
            .unwrap_or_default(),
        current: issue
            .assignee
            .as_ref()
            .map(|a| a.actor_id())
            .unwrap_or_default(),
        options,
        activity,
        typed,
    })
}

/// The assign form.
#[derive(Deserialize)]
pub struct AssignForm {
    csrf: String,
    #[serde(default)]
    assigned_to: String,
}

/// `POST /errors/issues/{id}/assign`
pub async fn assign(
    State(state): State<AppState>,
    page: Page<Member>,
    Path(id): Path<i64>,
    Form(f): Form<AssignForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let who = principal(&page);
    match triage::assign(&state, &who, id, &f.assigned_to).await {
        Ok(_) => Ok(Redirect::to(&format!("/errors/issues/{id}#triage")).into_response()),
        Err(ServiceError::Invalid(m)) => {
            tracing::info!(issue = id, error = %m, "Assignment refused.");
            Err(UiError::Refused(StatusCode::UNPROCESSABLE_ENTITY, m))
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /errors/assign`: assigns the issues ticked on the list (`id` repeated, at most
/// [`store::MAX_BULK_ISSUES`]) to `assigned_to`, all or none, then shows the list again. A
/// refused request (nothing ticked, too many, an assignee that is gone) shows the list it came
/// from with the same issues ticked and the same assignee chosen, and says why (422).
pub async fn bulk_assign(
    State(state): State<AppState>,
    form: Signed<Member>,
    body: axum::body::Bytes,
) -> UiResult {
    let (mut csrf, mut to, mut back, mut ids) =
        (String::new(), String::new(), String::new(), Vec::new());
    for (k, v) in url::form_urlencoded::parse(&body) {
        match k.as_ref() {
            "csrf" => csrf = v.into_owned(),
            "assigned_to" => to = v.into_owned(),
            "back" => back = v.into_owned(),
            // One past the cap, so the service refuses the request instead of cutting it short.
            "id" if ids.len() <= store::MAX_BULK_ISSUES => ids.extend(v.parse::<i64>().ok()),
            _ => {}
        }
    }
    check_csrf(&form.session, &csrf)?;
    let who = crate::auth::Principal {
        caller: crate::auth::Caller::Session(form.session.clone()),
    };
    match triage::assign_many(&state, &who, &ids, &to).await {
        // Back to the list as it was filtered (only ever a path on this site).
        Ok(_) => Ok(Redirect::to(safe_back(&back)).into_response()),
        Err(ServiceError::Invalid(m)) => {
            tracing::info!(error = %m, "Bulk assignment refused.");
            // The list the form was on: its filters are the query of `back`.
            let q = safe_back(&back)
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|u| axum::extract::Query::try_from_uri(&u).ok())
                .map(|axum::extract::Query(q)| q)
                .unwrap_or_default();
            let ctx = form.layout(&state).await?;
            let kept = super::ui::BulkKept {
                ids,
                assigned_to: to,
                error: Some(m),
            };
            super::ui::list_page(&state, ctx, &form.session, q, kept).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Where the list form goes back to: `back` when it is a path on this site that a Location
/// header can carry (printable ASCII, `/` but not `//` or a backslash, a valid relative URI),
/// else `/errors`. Checked before use: a control character once made a 500 after the commit.
pub(crate) fn safe_back(back: &str) -> &str {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && back.bytes().all(|b| b.is_ascii_graphic())
        && back
            .parse::<axum::http::Uri>()
            .is_ok_and(|u| u.scheme().is_none() && u.authority().is_none());
    if ok {
        back
    } else {
        "/errors"
    }
}

fn principal<R: crate::ui::extract::MinRole>(page: &Page<R>) -> crate::auth::Principal {
    crate::auth::Principal {
        caller: crate::auth::Caller::Session(page.session.clone()),
    }
}

/// The comment form.
#[derive(Deserialize)]
pub struct CommentForm {
    csrf: String,
    #[serde(default)]
    text: String,
}

/// `POST /errors/issues/{id}/comments`
pub async fn comment(
    State(state): State<AppState>,
    page: Page<Member>,
    Path(id): Path<i64>,
    Form(f): Form<CommentForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    let who = principal(&page);
    match triage::comment(&state, &who, id, &f.text).await {
        Ok((a, None)) => {
            Ok(Redirect::to(&format!("/errors/issues/{id}#activity-{}", a.id)).into_response())
        }
        Ok((_, Some(notice))) => {
            let typed = Typed {
                notice: Some(notice),
                ..Typed::default()
            };
            super::ui::issue_page(&state, page.ctx, &page.session, id, None, typed).await
        }
        Err(ServiceError::Invalid(m)) => {
            tracing::info!(issue = id, error = %m, "Comment refused.");
            let typed = Typed {
                comment: f.text,
                error: Some(m),
                notice: None,
            };
            super::ui::issue_page(&state, page.ctx, &page.session, id, None, typed).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "ownership.html")]
struct OwnershipPage {
    title: String,
    ctx: PageCtx,
    project: String,
    raw: String,
    auto_assign: bool,
    updated: Option<When>,
    can_edit: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn ownership_page(
    state: &AppState,
    ctx: PageCtx,
    can_edit: bool,
    typed: Option<(String, bool, String)>,
    notice: Option<String>,
) -> UiResult {
    if ctx.project_id == 0 {
        return Err(UiError::Refused(
            StatusCode::NOT_FOUND,
            "Create a project first.".into(),
        ));
    }
    let project = tenancy::get_project(state.store(), ctx.project_id).await?;
    let saved = store::ownership(state.store(), project.id).await?;
    let (raw, auto_assign, error, status) = match typed {
        Some((raw, auto, e)) => (raw, auto, Some(e), StatusCode::UNPROCESSABLE_ENTITY),
        None => (saved.raw, saved.auto_assign, None, StatusCode::OK),
    };
    let html = render(&OwnershipPage {
        title: "Ownership rules".into(),
        ctx,
        project: project.name,
        raw,
        auto_assign,
        updated: (saved.updated_at > 0).then(|| When::at(saved.updated_at)),
        can_edit,
        error,
        notice,
    });
    Ok((status, html).into_response())
}

/// `GET /errors/ownership`
pub async fn ownership(State(state): State<AppState>, page: Page<Viewer>) -> UiResult {
    let admin = page.session.user.role >= Role::Admin;
    ownership_page(&state, page.ctx, admin, None, None).await
}

/// The ownership form.
#[derive(Deserialize)]
pub struct OwnershipForm {
    csrf: String,
    #[serde(default)]
    raw: String,
    #[serde(default)]
    auto_assign: Option<String>,
}

/// `POST /errors/ownership`
pub async fn save_ownership(
    State(state): State<AppState>,
    page: Page<Admin>,
    Form(f): Form<OwnershipForm>,
) -> UiResult {
    check_csrf(&page.session, &f.csrf)?;
    tenancy::get_project(state.store(), page.ctx.project_id)
        .await
        .map_err(|_| UiError::Refused(StatusCode::NOT_FOUND, "Choose a project first.".into()))?;
    let auto = f.auto_assign.is_some();
    if let Err(e) = triage::check_rules(&state, &f.raw).await {
        let msg = match e {
            ServiceError::Invalid(m) => m.trim_start_matches("raw: ").to_string(),
            e => return Err(e.into()),
        };
        tracing::info!(error = %msg, "Ownership rules refused.");
        return ownership_page(&state, page.ctx, true, Some((f.raw, auto, msg)), None).await;
    }
    store::save_ownership(state.store(), page.ctx.project_id, &f.raw, auto).await?;
    ownership_page(
        &state,
        page.ctx,
        true,
        None,
        Some("Ownership rules saved.".into()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::safe_back;

    #[test]
    fn back_is_only_ever_a_path_on_this_site() {
        for kept in ["/errors", "/errors?query=assigned%3Ame&page=2"] {
            assert_eq!(safe_back(kept), kept);
        }
        for refused in [
            "",
            "errors",
            "//evil.example/x",
            "/\\evil.example",
            "https://evil.example/",
            "/errors?x=\u{1}",
            "/errors\r\nSet-Cookie: a=b",
            "/errors?q=caf\u{e9}",
            "/errors x",
        ] {
            assert_eq!(safe_back(refused), "/errors", "{refused:?}");
        }
    }
}
