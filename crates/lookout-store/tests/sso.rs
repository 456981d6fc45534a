//! Single sign-on's rows on SQLite and PostgreSQL: a sign-in under way is taken once (a replayed
//! state finds nothing) and not after it expires; a provider account finds the same user at
//! every sign-in, links an existing account only by a verified email; the role and teams the
//! groups give are applied apart (after the second factor), each change with an audit entry in
//! the same transaction, and never change the break-glass account's role; grants from a sign-in
//! that a later sign-in overtook change nothing; an invited user's first SSO sign-in is the
//! invitation's acceptance, audited with it.

use lookout_core::Role;
use lookout_store::sso::{self, Found, PendingLogin, ProviderAccount};
use lookout_store::{audit, teams, tenancy, Backend, Cursor, StoreError};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    a_pending_sign_in_is_taken_once_and_not_after_it_expires,
    provider_accounts_find_link_or_create_users,
    grants_join_and_leave_teams_with_an_audit_entry_each
);

/// Issue times for the grants: later than any sign-in (the store refuses grants issued before
/// the user's latest sign-in began).
static ISSUED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MAX / 2);

fn pending(next: &str) -> PendingLogin {
    PendingLogin {
        nonce: "n0nce".into(),
        pkce_verifier: "verifier".into(),
        next: next.into(),
    }
}

async fn a_pending_sign_in_is_taken_once_and_not_after_it_expires(f: Fixture) {
    let s = &f.store;
    assert!(sso::begin_login(s, "h1", &pending("/errors"), 60_000)
        .await
        .unwrap());
    let got = sso::take_login(s, "h1").await.unwrap().expect("taken");
    assert_eq!(
        (got.nonce.as_str(), got.next.as_str()),
        ("n0nce", "/errors")
    );
    assert!(
        sso::take_login(s, "h1").await.unwrap().is_none(),
        "replayed"
    );
    assert!(sso::take_login(s, "never").await.unwrap().is_none());
    // Already expired when taken.
    assert!(sso::begin_login(s, "h2", &pending("/"), -1).await.unwrap());
    assert!(sso::take_login(s, "h2").await.unwrap().is_none());
}

async fn provider_accounts_find_link_or_create_users(f: Fixture) {
    let s = &f.store;
    let issuer = "https://id.example.com";
    let account = |subject: &'static str, email: &'static str, _role: Role| ProviderAccount {
        issuer,
        subject,
        email,
        email_verified: true,
        name: Some("Ada"),
    };
    let org = tenancy::default_org(s).await.unwrap().id;
    let grant = |user: i64, role: Role| async move {
        let g = sso::Grants {
            role,
            join: vec![],
            leave: vec![],
        };
        let at = ISSUED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        sso::apply_grants(s, org, user, issuer, Some("root@example.com"), &g, at)
            .await
            .unwrap();
        tenancy::get_user(s, user).await.unwrap().role
    };

    // Created on first sign-in, found again by subject even when the email changed.
    let (ada, found) = sso::sign_in(s, &account("s-ada", "ada@example.com", Role::Member))
        .await
        .unwrap();
    assert_eq!(found, Found::Created);
    assert_eq!(
        (ada.role, ada.name.as_deref()),
        (Role::Viewer, Some("Ada")),
        "a viewer until the sign-in completes and the groups' role is applied"
    );
    assert_eq!(grant(ada.id, Role::Member).await, Role::Member);
    assert!(sso::has_identity(s, ada.id).await.unwrap());
    let (again, found) = sso::sign_in(s, &account("s-ada", "ada@new.example.com", Role::Admin))
        .await
        .unwrap();
    assert_eq!(
        (again.id, found, again.role),
        (ada.id, Found::Known, Role::Member),
        "signing in alone changes no role"
    );
    assert_eq!(grant(ada.id, Role::Admin).await, Role::Admin);
    // No password: she cannot sign in with one.
    assert!(tenancy::verify_login(s, "ada@example.com", "")
        .await
        .unwrap()
        .is_none());

    // An existing local account: linked by a verified email, refused by an unverified one.
    let bob = tenancy::create_user(s, "bob@example.com", "password123", Role::Admin)
        .await
        .unwrap();
    assert!(!sso::has_identity(s, bob.id).await.unwrap());
    let unverified = ProviderAccount {
        email_verified: false,
        ..account("s-bob", "bob@example.com", Role::Viewer)
    };
    assert!(matches!(
        sso::sign_in(s, &unverified).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        !sso::has_identity(s, bob.id).await.unwrap(),
        "nothing linked"
    );
    let (linked, found) = sso::sign_in(s, &account("s-bob", "bob@example.com", Role::Viewer))
        .await
        .unwrap();
    assert_eq!(
        (linked.id, found, linked.role),
        (bob.id, Found::Linked, Role::Admin)
    );
    assert_eq!(grant(bob.id, Role::Viewer).await, Role::Viewer);

    // The break-glass admin keeps their role whatever the groups say.
    let root = tenancy::create_user(s, "root@example.com", "password123", Role::Admin)
        .await
        .unwrap();
    let (r, _) = sso::sign_in(s, &account("s-root", "root@example.com", Role::Viewer))
        .await
        .unwrap();
    assert_eq!(r.id, root.id);
    assert_eq!(grant(root.id, Role::Viewer).await, Role::Admin);

    // An invited user who signs in through the provider has accepted the invitation: active,
    // with an `invitation.accept` entry written with it (once: later sign-ins add none).
    let cy = lookout_store::identity::invite_user(
        s,
        "cy@example.com",
        None,
        Role::Member,
        None,
        "invite-secret",
        lookout_core::time::now_ms() + 3_600_000,
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let (joined, _) = sso::sign_in(s, &account("s-cy", "cy@example.com", Role::Viewer))
            .await
            .unwrap();
        assert_eq!((joined.id, joined.invited), (cy.id, false));
    }
    let accepts: Vec<_> = audit::list(s, &audit::Filter::default(), &Cursor::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.action == "invitation.accept")
        .collect();
    assert_eq!(accepts.len(), 1, "{accepts:?}");
    assert_eq!(
        accepts[0].target.as_deref(),
        Some(cy.id.to_string().as_str())
    );
    assert_eq!(accepts[0].actor, format!("user:{}", cy.id));
}

async fn grants_join_and_leave_teams_with_an_audit_entry_each(f: Fixture) {
    let s = &f.store;
    let org = tenancy::default_org(s).await.unwrap().id;
    let ada = tenancy::create_user(s, "ada@example.com", "password123", Role::Viewer)
        .await
        .unwrap();
    let pay = teams::create(s, org, "payments", "Payments", None)
        .await
        .unwrap();
    let search = teams::create(s, org, "search", "Search", None)
        .await
        .unwrap();
    let by_hand = teams::create(s, org, "by-hand", "By hand", None)
        .await
        .unwrap();
    teams::add_member(s, by_hand.id, ada.id).await.unwrap();
    let grants = |join: &[&str], leave: &[&str]| sso::Grants {
        role: Role::Member,
        join: join.iter().map(|s| s.to_string()).collect(),
        leave: leave.iter().map(|s| s.to_string()).collect(),
    };
    let issuer = "https://id.example.com";
    let applied = sso::apply_grants(
        s,
        org,
        ada.id,
        issuer,
        None,
        &grants(&["payments", "ghosts"], &["search", "by-hand"]),
        10,
    )
    .await
    .unwrap();
    assert_eq!(applied.role_was, Some(Role::Viewer));
    assert_eq!(applied.joined, ["payments"]);
    assert!(
        applied.left.is_empty(),
        "not in search; by-hand was an admin's"
    );
    assert_eq!(applied.missing, ["ghosts"]);
    let slugs = |ts: Vec<teams::Team>| ts.into_iter().map(|t| t.slug).collect::<Vec<_>>();
    assert_eq!(
        slugs(teams::of_user(s, ada.id).await.unwrap()),
        ["by-hand", "payments"]
    );
    // The same again changes nothing and records nothing; then a move to search.
    let again = sso::apply_grants(
        s,
        org,
        ada.id,
        issuer,
        None,
        &grants(&["payments"], &[]),
        20,
    )
    .await
    .unwrap();
    assert_eq!(again, sso::Applied::default());
    sso::apply_grants(
        s,
        org,
        ada.id,
        issuer,
        None,
        &grants(&["search"], &["payments"]),
        30,
    )
    .await
    .unwrap();
    assert_eq!(
        slugs(teams::of_user(s, ada.id).await.unwrap()),
        ["by-hand", "search"]
    );
    // A pending sign-in issued before a later sign-in of hers began (a replayed token, or one
    // overtaken by a newer sign-in) brings back nothing: not the old role, not the old teams, no
    // entries.
    let before = lookout_core::time::now_ms() - 1;
    sso::sign_in(
        s,
        &ProviderAccount {
            issuer,
            subject: "s-ada",
            email: "ada@example.com",
            email_verified: true,
            name: None,
        },
    )
    .await
    .unwrap();
    let admin = sso::Grants {
        role: Role::Admin,
        ..grants(&["payments"], &["search"])
    };
    for stale_at in [30, before] {
        let stale = sso::apply_grants(s, org, ada.id, issuer, None, &admin, stale_at)
            .await
            .unwrap();
        assert!(stale.stale, "issued at {stale_at}");
        assert_eq!(stale.role_was, None);
    }
    assert_eq!(
        tenancy::get_user(s, ada.id).await.unwrap().role,
        Role::Member
    );
    assert_eq!(
        slugs(teams::of_user(s, ada.id).await.unwrap()),
        ["by-hand", "search"]
    );

    let log = audit::list(s, &audit::Filter::default(), &Cursor::default())
        .await
        .unwrap()
        .items;
    let seen: Vec<(&str, &str, Option<&str>)> = log
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_deref()))
        .collect();
    let t = |team: i64| format!("{team}/{}", ada.id);
    assert_eq!(
        seen,
        [
            ("sso", "sso.team_leave", Some(t(pay.id).as_str())),
            ("sso", "sso.team_join", Some(t(search.id).as_str())),
            ("sso", "sso.team_join", Some(t(pay.id).as_str())),
            ("sso", "sso.role", Some(ada.id.to_string().as_str())),
        ],
        "newest first, one entry per change"
    );
    assert_eq!(log[0].actor_label, issuer);
    assert_eq!(log[0].details["team"], "payments");
    assert_eq!(log[3].details["before"], "viewer");
    assert_eq!(log[3].details["after"], "member");
}
