//! Single sign-on's rows on SQLite and PostgreSQL: a sign-in under way is taken once (a replayed
//! state finds nothing) and not after it expires; a provider account finds the same user at
//! every sign-in, links an existing account only by a verified email, gets its role from the
//! groups at each sign-in, and never changes the break-glass account's role.

use lookout_core::Role;
use lookout_store::sso::{self, Found, PendingLogin, ProviderAccount};
use lookout_store::{tenancy, Backend, StoreError};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    a_pending_sign_in_is_taken_once_and_not_after_it_expires,
    provider_accounts_find_link_or_create_users
);

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
    let account = |subject: &'static str, email: &'static str, role: Role| ProviderAccount {
        issuer,
        subject,
        email,
        email_verified: true,
        name: Some("Ada"),
        role,
        keep_role_of: Some("root@example.com"),
    };

    // Created on first sign-in, found again by subject even when the email changed.
    let (ada, found) = sso::sign_in(s, &account("s-ada", "ada@example.com", Role::Member))
        .await
        .unwrap();
    assert_eq!(found, Found::Created);
    assert_eq!((ada.role, ada.name.as_deref()), (Role::Member, Some("Ada")));
    assert!(sso::has_identity(s, ada.id).await.unwrap());
    let (again, found) = sso::sign_in(s, &account("s-ada", "ada@new.example.com", Role::Admin))
        .await
        .unwrap();
    assert_eq!(
        (again.id, found, again.role),
        (ada.id, Found::Known, Role::Admin)
    );
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
        (bob.id, Found::Linked, Role::Viewer)
    );

    // The break-glass admin keeps their role whatever the groups say.
    let root = tenancy::create_user(s, "root@example.com", "password123", Role::Admin)
        .await
        .unwrap();
    let (r, _) = sso::sign_in(s, &account("s-root", "root@example.com", Role::Viewer))
        .await
        .unwrap();
    assert_eq!((r.id, r.role), (root.id, Role::Admin));
}
