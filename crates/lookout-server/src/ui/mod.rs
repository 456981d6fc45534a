//! The web UI shell every capability's pages share: the router that merges their `pages()`,
//! the navigation, the signed-in session extractor, the layout (`layout`), the error type
//! (`error`), the role extractors (`extract`), Markdown and link defusing, safe redirects,
//! security headers and static assets. The pages themselves live in each capability's `ui`.
//!
//! Forms carry a CSRF token: the session's for logged-in forms, and a double-submit cookie for
//! the login and setup forms, which have no session yet.

mod assets;
pub mod error;
pub mod extract;
pub mod fmt;
pub mod layout;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Router;

use crate::auth::{cookie, SESSION_COOKIE};
use crate::state::AppState;
use lookout_core::secret::secrets_equal;
use lookout_store::tenancy::{self, Session};

/// A section of the navigation: path, label, and what it is for.
pub struct Section {
    /// Path of its page.
    pub href: &'static str,
    /// Navigation label.
    pub label: &'static str,
}

/// Every capability's place in the navigation, in order (Overview first, Settings last).
pub const SECTIONS: &[Section] = &[
    Section {
        href: "/",
        label: "Overview",
    },
    Section {
        href: "/errors",
        label: "Errors",
    },
    Section {
        href: "/performance",
        label: "Performance",
    },
    Section {
        href: "/uptime",
        label: "Uptime",
    },
    Section {
        href: "/incidents",
        label: "Incidents",
    },
    Section {
        href: "/on-call",
        label: "On-call",
    },
    Section {
        href: "/alerts",
        label: "Alerts",
    },
    Section {
        href: "/query",
        label: "Query",
    },
    Section {
        href: "/explore/metrics",
        label: "Metrics",
    },
    Section {
        href: "/dashboards",
        label: "Dashboards",
    },
    Section {
        href: "/load-tests",
        label: "Load tests",
    },
    Section {
        href: "/regressions",
        label: "Regressions",
    },
    Section {
        href: "/databases",
        label: "Databases",
    },
    Section {
        href: "/reports",
        label: "Reports",
    },
    Section {
        href: "/backups",
        label: "Backups",
    },
    Section {
        href: "/settings",
        label: "Settings",
    },
];

/// The UI's routes: every capability's pages, in navigation order, and the static assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(crate::tenancy::pages())
        .merge(crate::teams::pages())
        .merge(crate::errors::pages())
        .merge(crate::apm::pages())
        .merge(crate::uptime::pages())
        .merge(crate::locations::pages())
        .merge(crate::alerting::pages())
        .merge(crate::query::pages())
        .merge(crate::prometheus::pages())
        .merge(crate::load::pages())
        .merge(crate::regress::pages())
        .merge(crate::dbhealth::pages())
        .merge(crate::reports::pages())
        .merge(crate::backups::pages())
        .merge(crate::operations::pages())
        .merge(assets::router())
}

/// A logged-in UI user. Without a session, pages redirect to `/login` (or `/setup` when the
/// server has no user yet) instead of answering 401.
pub struct UiSession(pub Session);

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(sid) = cookie(&parts.headers, SESSION_COOKIE) {
            match tenancy::session(state.store(), sid).await {
                Ok(Some(s)) => return Ok(UiSession(s)),
                Ok(None) => {}
                Err(e) => return Err(ui_error(e)),
            }
        }
        match tenancy::is_set_up(state.store()).await {
            Ok(false) => Err(Redirect::to("/setup").into_response()),
            Ok(true) => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                Err(Redirect::to(&format!("/login?next={}", urlencode(next))).into_response())
            }
            Err(e) => Err(ui_error(e)),
        }
    }
}

/// The 403 page to answer when a form's CSRF field does not match the session's token.
pub(crate) fn csrf_refusal(session: &Session, sent: &str) -> Option<Response> {
    if secrets_equal(sent, &session.csrf_token) {
        return None;
    }
    tracing::info!(user = session.user.id, "Form refused: CSRF token mismatch.");
    Some((StatusCode::FORBIDDEN, Html(simple_page("Form expired", "This form expired or came from another site. Go back, reload the page and try again."))).into_response())
}

/// Checks a form's CSRF field against the session's token; a mismatch answers the 403 page.
pub(crate) fn check_csrf(session: &Session, sent: &str) -> Result<(), error::UiError> {
    match csrf_refusal(session, sent) {
        None => Ok(()),
        Some(r) => Err(r.into()),
    }
}

/// Refuses a form that lacks the session's CSRF token, or whose user is below `role`;
/// `what` names the action for the refusal ("adding monitors").
pub(crate) fn form_refusal(
    session: &Session,
    sent: &str,
    role: lookout_core::Role,
    what: &str,
) -> Option<Response> {
    if let Some(r) = csrf_refusal(session, sent) {
        return Some(r);
    }
    (session.user.role < role).then(|| {
        (
            StatusCode::FORBIDDEN,
            format!("{what} needs the {role} role"),
        )
            .into_response()
    })
}

/// Renders Markdown to HTML with raw HTML in the source escaped (runbooks and dashboard notes
/// are written by users and shown to others).
///
/// Link and image targets keep only http(s), mailto and same-site addresses: a runbook link to
/// `javascript:` or `data:` would run in the reader's session (escaped HTML alone does not stop
/// Markdown's own `[text](javascript:…)`).
pub(crate) fn markdown(src: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
    let defuse = |dest: CowStr<'static>| {
        if safe_link(&dest) {
            dest
        } else {
            CowStr::Borrowed("#")
        }
    };
    let parser =
        Parser::new_ext(src, Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS).map(|e| match e {
            Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: defuse(dest_url.into_static()),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: defuse(dest_url.into_static()),
                title,
                id,
            }),
            other => other,
        });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, parser);
    out
}

/// Whether a user-written link target may be put in an `href`: http(s), mailto, or an address
/// on this site (no scheme). Browsers drop tabs, newlines and leading spaces from a URL before
/// reading its scheme (`java\tscript:`), so the scheme is read the same way.
pub(crate) fn safe_link(target: &str) -> bool {
    let cleaned: String = target
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_end = cleaned.find(':');
    let path_start = cleaned.find(['/', '?', '#']);
    match (scheme_end, path_start) {
        // A `/`, `?` or `#` before the first `:`: a path on this site, no scheme.
        (Some(colon), Some(slash)) if slash < colon => true,
        (Some(colon), _) => matches!(&cleaned[..colon], "http" | "https" | "mailto"),
        (None, _) => true,
    }
}

/// A page for an internal failure; the cause goes to the log only.
pub(crate) fn ui_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(cause = %e, "Page failed on an internal error.");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(simple_page(
            "Something went wrong",
            "The server could not show this page. The details are in its log.",
        )),
    )
        .into_response()
}

/// The 404 page.
pub fn not_found_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(simple_page(
            "Not found",
            "There is no page at this address.",
        )),
    )
        .into_response()
}

/// A standalone page with a title and one sentence (errors).
#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

/// Renders a [`MessagePage`]; askama escapes both strings.
pub(crate) fn simple_page(title: &str, text: &str) -> String {
    askama::Template::render(&MessagePage { title, text })
        .unwrap_or_else(|_| crate::charts::esc(text))
}

/// Only local paths are followed after login, so `next` cannot send users to another site.
pub fn safe_next(next: &str) -> &str {
    // Browsers drop tabs and newlines inside a URL and read `\` as `/`, so `/\t/evil.example`
    // and `/\\evil.example` become `//evil.example`: refuse every control character and
    // backslash, then make sure that resolving it against our own origin keeps our host.
    let plain_path = next.starts_with('/')
        && !next.starts_with("//")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    let same_host = || {
        url::Url::parse("http://lookout.invalid/")
            .and_then(|base| base.join(next))
            .is_ok_and(|u| u.host_str() == Some("lookout.invalid") && u.port().is_none())
    };
    if plain_path && same_host() {
        next
    } else {
        "/"
    }
}

/// Text made safe inside HTML outside templates (emails' HTML parts): `&`, `<`, `>`, `"` and `'`.
/// The templates escape on their own; this is for HTML built with `format!`.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Percent-encodes a query value (only what a path and query can contain needs it).
pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Security headers for every UI response: no framing, no sniffing, scripts only from us.
pub fn security_headers() -> [(header::HeaderName, &'static str); 4] {
    headers_with_csp(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    )
}

/// Security headers for public status pages and feeds: the UI's, except that images may come
/// from any https address (a page's `logo_url` is usually on the company's own site).
pub fn status_page_headers() -> [(header::HeaderName, &'static str); 4] {
    headers_with_csp(
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; frame-ancestors 'none'; form-action 'self'",
    )
}

fn headers_with_csp(csp: &'static str) -> [(header::HeaderName, &'static str); 4] {
    [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next("/errors?x=1"), "/errors?x=1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        // `?next=/%09/evil.example`, decoded: a tab that browsers drop.
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
        assert_eq!(safe_next("/\r\n//evil.example"), "/");
        assert_eq!(safe_next("/x/\\evil"), "/");
        assert_eq!(safe_next("javascript:alert(1)"), "/");
        assert_eq!(safe_next("/incidents/3#timeline"), "/incidents/3#timeline");
        assert_eq!(urlencode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }

    #[test]
    fn markdown_links_keep_only_web_and_mail_targets() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "java\tscript:alert(1)",
            " javascript:alert(1)",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "vbscript:x",
        ] {
            assert!(!safe_link(bad), "{bad:?}");
            let html = markdown(&format!("[runbook](<{bad}>) ![img](<{bad}>)"));
            assert!(html.contains("href=\"#\""), "{bad:?}: {html}");
            assert!(html.contains("src=\"#\""), "{bad:?}: {html}");
            assert!(!html.to_lowercase().contains("script:"), "{bad:?}: {html}");
            assert!(!html.contains("data:"), "{bad:?}: {html}");
        }
        for good in [
            "https://wiki.example/runbook",
            "http://x",
            "mailto:oncall@example.com",
            "/incidents/3",
            "#step-2",
            "notes/a:b",
        ] {
            assert!(safe_link(good), "{good:?}");
        }
        assert!(
            markdown("[wiki](https://wiki.example/r)").contains("href=\"https://wiki.example/r\"")
        );
    }
}
