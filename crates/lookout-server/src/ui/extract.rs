//! Extractors that put the UI's checks in the handler's signature, so a page cannot forget them:
//! [`Page<R>`] (a signed-in user with at least role `R`, with the layout loaded for the section
//! the address is in), and [`Signed<R>`] for forms, which load the layout only when they answer
//! with a page. Roles are refused with a 403 page before the form body is read.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use lookout_core::Role;
use lookout_store::tenancy::Session;

use crate::state::AppState;
use crate::ui::error::UiError;
use crate::ui::layout::{page_ctx, PageCtx};
use crate::ui::{UiSession, SECTIONS};

/// The least role a page or form needs, as a type: [`Viewer`] (anyone signed in), [`Member`],
/// [`Admin`].
pub trait MinRole: Send + Sync + 'static {
    /// The role.
    const ROLE: Role;
}

/// Anyone signed in.
pub struct Viewer;
/// The member role or above.
pub struct Member;
/// Administrators.
pub struct Admin;

impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Member {
    const ROLE: Role = Role::Member;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A signed-in page request by a user with at least role `R`: the session and the layout
/// context (navigation, projects, the selected project) for the navigation section the address
/// belongs to. The role is checked before the layout is loaded and before any form body is read.
pub struct Page<R: MinRole = Viewer> {
    /// Who is reading.
    pub session: Session,
    /// What the layout needs.
    pub ctx: PageCtx,
    role: PhantomData<R>,
}

/// The navigation section an address belongs to: the longest section path that is the address
/// or a parent of it (`/uptime/monitors/4` is in `/uptime`); `/` otherwise.
pub fn section_of(path: &str) -> &'static str {
    // The operations page is reached from Settings and belongs with it in the navigation.
    if path == "/operations" {
        return "/settings";
    }
    SECTIONS
        .iter()
        .map(|s| s.href)
        .filter(|h| *h != "/")
        .filter(|h| {
            path == *h
                || path
                    .strip_prefix(h)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|h| h.len())
        .unwrap_or("/")
}

impl<R: MinRole> FromRequestParts<AppState> for Page<R> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let signed = Signed::<R>::from_request_parts(parts, state).await?;
        let ctx = signed.layout(state).await?;
        Ok(Page {
            session: signed.session,
            ctx,
            role: PhantomData,
        })
    }
}

/// A signed-in user with at least role `R`, for forms: the role is checked before the body is
/// read, and the layout is loaded only when the form answers with a page ([`Signed::layout`]),
/// not on every successful post that redirects.
pub struct Signed<R: MinRole = Viewer> {
    /// Who is posting.
    pub session: Session,
    headers: HeaderMap,
    section: &'static str,
    role: PhantomData<R>,
}

impl<R: MinRole> Signed<R> {
    /// The layout context for the section the address belongs to.
    pub async fn layout(&self, state: &AppState) -> Result<PageCtx, UiError> {
        page_ctx(state, &self.session, &self.headers, self.section).await
    }
}

impl<R: MinRole> FromRequestParts<AppState> for Signed<R> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, UiError> {
        let UiSession(session) = UiSession::from_request_parts(parts, state)
            .await
            .map_err(UiError::from)?;
        at_least(&session, R::ROLE)?;
        Ok(Signed {
            session,
            headers: parts.headers.clone(),
            section: section_of(parts.uri.path()),
            role: PhantomData,
        })
    }
}

/// Refuses a signed-in user below `role` with a 403 page naming the role.
fn at_least(session: &Session, role: Role) -> Result<(), UiError> {
    if session.user.role >= role {
        return Ok(());
    }
    Err(UiError::Refused(
        StatusCode::FORBIDDEN,
        format!(
            "This needs the {role} role; you are a {}.",
            session.user.role
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::section_of;

    #[test]
    fn an_address_belongs_to_its_navigation_section() {
        assert_eq!(section_of("/"), "/");
        assert_eq!(section_of("/uptime"), "/uptime");
        assert_eq!(section_of("/uptime/monitors/4"), "/uptime");
        assert_eq!(section_of("/on-call/3/overrides"), "/on-call");
        assert_eq!(section_of("/performance/traces/ab"), "/performance");
        // A section is matched on whole path segments, not on a prefix of a word.
        assert_eq!(section_of("/uptimes"), "/");
        assert_eq!(section_of("/settings"), "/settings");
        assert_eq!(section_of("/operations"), "/settings");
    }
}
