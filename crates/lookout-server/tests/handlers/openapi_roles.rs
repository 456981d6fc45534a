//! Roles on every route, generated from the served OpenAPI document: each operation is called
//! without credentials (401), with a viewer token (403 on every write), and with a member token
//! (403 exactly on the admin routes listed here). A new route is covered the day it is added; a
//! route that loosens or tightens its role fails until this file says why. (Moved here from the
//! e2e suite: it only needs the router's answers, not a running server.)

use std::collections::BTreeSet;

use axum::http::Method;
use lookout_testkit::Client;
use serde_json::{json, Value};

use crate::Harness;

/// Operations anyone may call, with why.
const PUBLIC: &[(&str, &str)] = &[
    (
        "GET /api/v1/openapi.json",
        "the API's own description, which clients fetch before they have a token",
    ),
    (
        "POST /api/v1/password-reset",
        "a forgotten password is asked for signed out; the answer is the same for every address",
    ),
];

/// Writes a viewer may make, with why (each still checks ownership inside). `POST
/// /api/v1/channels` is not here: with the empty body this test sends it is a team channel,
/// which needs member (a viewer's own contact method is tested in hardening.rs).
const VIEWER_WRITES: &[(&str, &str)] = &[
    (
        "POST /api/v1/tokens",
        "anyone makes tokens for themself, never above their own role",
    ),
    (
        "DELETE /api/v1/tokens/{id}",
        "anyone revokes their own tokens (others' answer 403 or 404)",
    ),
    (
        "PUT /api/v1/channels/{id}",
        "a user changes their own contact methods (checked on the stored and the new owner)",
    ),
    (
        "DELETE /api/v1/channels/{id}",
        "a user deletes their own contact methods",
    ),
    (
        "POST /api/v1/query",
        "NRQL is a read; POST carries the query text",
    ),
    ("PATCH /api/v1/me", "everyone names themself"),
    (
        "PUT /api/v1/me/notification-rules",
        "everyone decides how they are paged",
    ),
    (
        "POST /api/v1/me/calendar-feed",
        "everyone subscribes to their own shifts",
    ),
    (
        "DELETE /api/v1/me/calendar-feed",
        "everyone revokes their own calendar feed",
    ),
    (
        "POST /api/v1/password-reset",
        "public (see PUBLIC): anyone may ask for a reset link",
    ),
    (
        "POST /api/v1/me/password",
        "everyone changes their own password",
    ),
    (
        "POST /api/v1/me/totp",
        "everyone sets up their own second factor",
    ),
    (
        "POST /api/v1/me/totp/confirm",
        "everyone sets up their own second factor",
    ),
    (
        "POST /api/v1/me/totp/disable",
        "everyone turns their own second factor off (with their password, unless required)",
    ),
    (
        "DELETE /api/v1/me/sessions/{id}",
        "everyone ends their own sessions (others' answer 404)",
    ),
];

/// Operations authenticated by a location's agent token, not a user's role: every user token,
/// whatever its role, is refused with 401.
const LOCATION_AGENT: &[&str] = &[
    "GET /api/v1/agent/assignments",
    "POST /api/v1/agent/results",
];

/// The operations that need the admin role, with why.
const ADMIN: &[(&str, &str)] = &[
    (
        "PUT /api/v1/prometheus/scrape-configs/{name}",
        "a scrape job sends its credentials to the URLs it names",
    ),
    (
        "DELETE /api/v1/prometheus/scrape-configs/{name}",
        "scrape jobs are the admin's, as their credentials are",
    ),
    (
        "GET /api/v1/locations",
        "locations' agents hold their tokens",
    ),
    (
        "POST /api/v1/locations",
        "a location's token checks monitors with their credentials",
    ),
    ("GET /api/v1/locations/{id}", "locations are the admin's"),
    ("PATCH /api/v1/locations/{id}", "locations are the admin's"),
    ("DELETE /api/v1/locations/{id}", "locations are the admin's"),
    ("POST /api/v1/locations/{id}/token", "a new agent token"),
    (
        "DELETE /api/v1/locations/{id}/token",
        "agent tokens are the admin's",
    ),
    ("GET /api/v1/users", "users are the admin's"),
    ("POST /api/v1/teams", "teams are the admin's"),
    ("PUT /api/v1/teams/{id}", "teams are the admin's"),
    ("DELETE /api/v1/teams/{id}", "teams are the admin's"),
    (
        "PUT /api/v1/teams/{id}/members/{user_id}",
        "team membership is the admin's",
    ),
    (
        "DELETE /api/v1/teams/{id}/members/{user_id}",
        "team membership is the admin's",
    ),
    (
        "PUT /api/v1/projects/{id}/ownership",
        "ownership rules route issues and pages: project settings are the admin's",
    ),
    ("POST /api/v1/users", "users are the admin's"),
    ("DELETE /api/v1/users/{id}", "users are the admin's"),
    ("GET /api/v1/users/{id}", "admin, or the user themself"),
    ("PUT /api/v1/users/{id}/name", "admin, or the user themself"),
    ("GET /api/v1/audit", "who did what is for admins to review"),
    (
        "GET /api/v1/users/{id}/notification-rules",
        "another user's paging rules are the admin's to see",
    ),
    (
        "PUT /api/v1/users/{id}/notification-rules",
        "another user's paging rules are the admin's to set",
    ),
    (
        "GET /api/v1/settings/sso",
        "the installation's single sign-on settings",
    ),
    (
        "POST /api/v1/settings/sso/test",
        "calls the identity provider on the installation's behalf",
    ),
    ("GET /api/v1/invitations", "invitations are the admin's"),
    (
        "POST /api/v1/invitations/{id}/resend",
        "invitations are the admin's",
    ),
    (
        "DELETE /api/v1/invitations/{id}",
        "invitations are the admin's",
    ),
    (
        "PUT /api/v1/users/{id}/totp-required",
        "the admin decides who must use a second factor",
    ),
    (
        "DELETE /api/v1/users/{id}/totp",
        "the admin clears a lost second factor",
    ),
    (
        "GET /api/v1/settings/security",
        "the installation's sign-in rules",
    ),
    (
        "PUT /api/v1/settings/security",
        "the installation's sign-in rules",
    ),
    (
        "GET /api/v1/settings/mail",
        "the installation's SMTP server and its credentials",
    ),
    (
        "PUT /api/v1/settings/mail",
        "the installation's SMTP server and its credentials",
    ),
    (
        "POST /api/v1/db-targets",
        "a database target holds a database password",
    ),
    (
        "PUT /api/v1/db-targets/{id}",
        "a database target holds a database password",
    ),
    (
        "DELETE /api/v1/db-targets/{id}",
        "a database target holds a database password",
    ),
    (
        "POST /api/v1/backup-targets",
        "backup targets hold credentials and run pgBackRest",
    ),
    (
        "DELETE /api/v1/backup-targets/{id}",
        "backup targets hold credentials",
    ),
    (
        "POST /api/v1/backup-targets/{id}/backup",
        "starts pgBackRest on a target",
    ),
    (
        "POST /api/v1/backup-targets/{id}/check",
        "runs pgBackRest on a target",
    ),
    (
        "POST /api/v1/backup-targets/{id}/drill",
        "restores a target into a scratch cluster",
    ),
    (
        "POST /api/v1/backups/drill",
        "restores Lookout's own data to check it",
    ),
    (
        "POST /api/v1/packs/{name}/install",
        "adds alert policies that page the team",
    ),
    (
        "PUT /api/v1/report-settings",
        "decides who receives reports and where",
    ),
    (
        "GET /api/v1/operations",
        "the installation's replicas, hosts and internals",
    ),
];

/// Every `METHOD /path` in the served document.
async fn operations(h: &Harness) -> Vec<(Method, String)> {
    let doc = h.anon.get("/api/v1/openapi.json").await.expect(200);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, _) in item.as_object().unwrap() {
            if let Ok(method) = m.to_uppercase().parse::<Method>() {
                out.push((method, path.clone()));
            }
        }
    }
    assert!(out.len() > 100, "only {} operations documented", out.len());
    out
}

/// The path with every parameter filled: ids of rows that exist (1 is the default project and
/// the first of most things), so that a role check cannot hide behind a 404.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
        out.push('1');
        rest = &rest[(close + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

async fn status(c: &Client, m: &Method, path: &str) -> (u16, Value) {
    let body = (!matches!(*m, Method::GET | Method::HEAD | Method::DELETE)).then(|| json!({}));
    let (st, v) = c.send(m.clone(), &filled(path), body).await.parts();
    (st.as_u16(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_in_the_openapi_document_enforces_its_role() {
    let h = Harness::sqlite().await;
    let viewer = h.admin.bearer(&h.admin.token("viewer").await);
    let member = h.admin.bearer(&h.admin.token("member").await);
    let name = |m: &Method, p: &str| format!("{m} {p}");
    let public: BTreeSet<&str> = PUBLIC.iter().map(|(o, _)| *o).collect();
    let viewer_writes: BTreeSet<&str> = VIEWER_WRITES.iter().map(|(o, _)| *o).collect();
    let mut problems = Vec::new();
    let mut admin_seen = BTreeSet::new();
    for (m, path) in operations(&h).await {
        let op = name(&m, &path);
        let (anon, body) = status(&h.anon, &m, &path).await;
        if public.contains(op.as_str()) {
            if anon == 401 {
                problems.push(format!("{op}: listed public but answers 401"));
            }
        } else if anon != 401 {
            problems.push(format!(
                "{op}: {anon} without credentials, want 401: {body}"
            ));
        }
        if LOCATION_AGENT.contains(&op.as_str()) {
            for c in [&viewer, &member, &h.admin] {
                let (st, body) = status(c, &m, &path).await;
                if st != 401 {
                    problems.push(format!("{op}: a user token got {st}, want 401: {body}"));
                }
            }
            continue;
        }
        let write = !matches!(m, Method::GET | Method::HEAD);
        let (as_viewer, body) = status(&viewer, &m, &path).await;
        let admin_only = ADMIN.iter().any(|(o, _)| *o == op);
        let viewer_may = !write || viewer_writes.contains(op.as_str());
        if (admin_only || !viewer_may) && as_viewer != 403 {
            problems.push(format!("{op}: viewer got {as_viewer}, want 403: {body}"));
        }
        if !admin_only && viewer_may && as_viewer == 403 {
            problems.push(format!("{op}: viewer got 403, but viewers may: {body}"));
        }
        let (as_member, body) = status(&member, &m, &path).await;
        if as_member == 403 {
            admin_seen.insert(op.clone());
        }
        if as_member >= 500 {
            problems.push(format!("{op}: member got {as_member}: {body}"));
        }
    }
    let want: BTreeSet<String> = ADMIN.iter().map(|(o, _)| o.to_string()).collect();
    for op in admin_seen.symmetric_difference(&want) {
        problems.push(format!(
            "{op}: {} (update ADMIN with the reason)",
            if admin_seen.contains(op) {
                "refuses members but is not listed as admin-only"
            } else {
                "listed admin-only but a member got through"
            }
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
