//! Emailed account links on SQLite and PostgreSQL: one spent link ends every other live link of
//! its kind for the user, a link for a user who joined already signs no one in, and concurrent
//! resends leave exactly one live link. An object saved with a team that another request deleted
//! meanwhile is refused as `Missing("team_id")` (the foreign key's violation, named), not a
//! database error.

use lookout_core::secret::hash_token;
use lookout_core::time::now_ms;
use lookout_core::Role;
use lookout_store::identity::{self, LinkPurpose};
use lookout_store::{tenancy, Backend, Store};
use sqlx::Row;

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    one_spent_link_ends_the_others_and_a_joined_user_is_not_signed_in_again,
    concurrent_resends_leave_one_live_link,
    saving_an_object_owned_by_a_deleted_team_names_the_team_field,
    audit_retention_deletes_only_entries_older_than_the_cutoff
);

const HOUR_MS: i64 = 3_600_000;

/// A second live link beside the one the store made: what a race between two resends, or a
/// link made before a fix, leaves behind.
async fn extra_link(store: &Store, purpose: &str, user_id: i64, secret: &str) {
    sqlx::query(
        "INSERT INTO account_links (purpose, user_id, token_hash, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, NULL, $4, $5)",
    )
    .bind(purpose)
    .bind(user_id)
    .bind(hash_token(secret))
    .bind(now_ms())
    .bind(now_ms() + HOUR_MS)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn live_links(store: &Store, user_id: i64, purpose: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM account_links
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose)
    .fetch_one(store.pool())
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

async fn one_spent_link_ends_the_others_and_a_joined_user_is_not_signed_in_again(f: Fixture) {
    let store = &f.store;
    let until = now_ms() + HOUR_MS;
    let grace = identity::invite_user(
        store,
        "grace@example.com",
        None,
        Role::Member,
        None,
        "first",
        until,
    )
    .await
    .unwrap();
    extra_link(store, "invite", grace.id, "second").await;
    let joined = identity::accept_invitation(store, "first", "Grace", "correct horse battery")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.id, grace.id);
    assert_eq!(live_links(store, grace.id, "invite").await, 0);
    assert!(
        identity::accept_invitation(store, "second", "Mallory", "mallory's password")
            .await
            .unwrap()
            .is_none(),
        "the other link was revoked with the first"
    );
    // A live invitation link for a user who has joined (whatever made it): refused, nothing
    // changed, no user answered to sign in.
    extra_link(store, "invite", grace.id, "third").await;
    assert!(
        identity::accept_invitation(store, "third", "Mallory", "mallory's password")
            .await
            .unwrap()
            .is_none()
    );
    let user = tenancy::get_user(store, grace.id).await.unwrap();
    assert_eq!(user.name.as_deref(), Some("Grace"));
    assert!(
        tenancy::verify_login(store, "grace@example.com", "correct horse battery")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        tenancy::verify_login(store, "grace@example.com", "mallory's password")
            .await
            .unwrap()
            .is_none()
    );

    // Two reset links: spending one ends the other, and the user's API tokens.
    let (token, _) = tenancy::create_token(store, "grace's script", Role::Member, Some(grace.id))
        .await
        .unwrap();
    identity::renew_link(store, LinkPurpose::Reset, grace.id, None, "r1", until)
        .await
        .unwrap();
    extra_link(store, "reset", grace.id, "r2").await;
    assert!(identity::reset_password(store, "r1", "analytical engine")
        .await
        .unwrap()
        .is_some());
    assert!(
        tenancy::token_for_secret(store, &token)
            .await
            .unwrap()
            .is_none(),
        "a reset revokes the user's API tokens"
    );
    assert!(identity::link_user(store, LinkPurpose::Reset, "r2")
        .await
        .unwrap()
        .is_none());
    assert!(identity::reset_password(store, "r2", "mallory's password")
        .await
        .unwrap()
        .is_none());
    assert!(
        tenancy::verify_login(store, "grace@example.com", "analytical engine")
            .await
            .unwrap()
            .is_some()
    );
}

async fn concurrent_resends_leave_one_live_link(f: Fixture) {
    let store = &f.store;
    let until = now_ms() + HOUR_MS;
    let ada = identity::invite_user(
        store,
        "ada@example.com",
        None,
        Role::Viewer,
        None,
        "s0",
        until,
    )
    .await
    .unwrap();
    let resends = (1..=8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            identity::renew_link(
                &store,
                LinkPurpose::Invite,
                ada.id,
                None,
                &format!("s{i}"),
                until,
            )
            .await
        })
    });
    for r in futures_util::future::join_all(resends).await {
        r.unwrap().unwrap();
    }
    assert_eq!(live_links(store, ada.id, "invite").await, 1);
}

/// The owning team checked by the service, then deleted by another request before the save: each
/// kind of owned object refuses the save naming `team_id`, and nothing is written.
async fn saving_an_object_owned_by_a_deleted_team_names_the_team_field(f: Fixture) {
    use lookout_store::alerting::{self, SpecKey, SpecTable};
    use lookout_store::ownership::TeamChange;
    use lookout_store::{teams, uptime, StoreError};
    let s = &f.store;
    let org = tenancy::default_org(s).await.unwrap().id;
    let team = teams::create(s, org, "gone", "Gone", None).await.unwrap();
    let policy = alerting::spec_save(
        s,
        SpecTable::EscalationPolicies,
        SpecKey::New(org),
        "p",
        &serde_json::json!({}),
        TeamChange::Keep,
    )
    .await
    .unwrap();
    let project = tenancy::create_project(s, org, "shop", None, None)
        .await
        .unwrap();
    let owned = tenancy::create_project_owned(s, org, "owned", None, None, Some(team.id))
        .await
        .unwrap();
    teams::delete(s, team.id).await.unwrap();
    // Renamed while its owner is deleted: the save leaves the owner alone (now none) and lands.
    let rename = tenancy::ProjectChanges {
        name: Some("Owned renamed".into()),
        ..Default::default()
    };
    let renamed = tenancy::update_project(s, owned.id, &rename).await.unwrap();
    assert_eq!(renamed.name, "Owned renamed");
    assert_eq!(renamed.team_id, None);
    let gone = TeamChange::Set(Some(team.id));
    let missing = |r: Result<(), StoreError>, what: &str| {
        assert!(
            matches!(r, Err(StoreError::Missing("team_id"))),
            "{what}: {r:?}"
        );
    };
    missing(
        alerting::spec_save(
            s,
            SpecTable::Policies,
            SpecKey::New(org),
            "new",
            &serde_json::json!({}),
            gone,
        )
        .await
        .map(drop),
        "a new alert policy",
    );
    missing(
        alerting::spec_save(
            s,
            SpecTable::EscalationPolicies,
            SpecKey::Id(policy.id),
            "p2",
            &serde_json::json!({}),
            gone,
        )
        .await
        .map(drop),
        "an escalation policy saved",
    );
    missing(
        alerting::schedule_save(s, org, None, "s", &serde_json::json!({}), &[], gone)
            .await
            .map(drop),
        "a new schedule",
    );
    missing(
        tenancy::create_project_owned(s, org, "new", None, None, Some(team.id))
            .await
            .map(drop),
        "a new project",
    );
    let changes = tenancy::ProjectChanges {
        team_id: Some(Some(team.id)),
        ..Default::default()
    };
    missing(
        tenancy::update_project(s, project.id, &changes)
            .await
            .map(drop),
        "a project saved",
    );
    let monitor = uptime::NewMonitor {
        org_id: org,
        project_id: None,
        name: "web".into(),
        kind: "http".into(),
        slug: None,
        spec: "{}".into(),
        paused: false,
        parent_id: None,
        push_token: None,
        managed_by: None,
    };
    missing(
        uptime::create_monitor_owned(s, &monitor, Some(team.id))
            .await
            .map(drop),
        "a new monitor",
    );
    // Nothing was written, and the policy kept its name.
    assert_eq!(
        alerting::spec_get(s, SpecTable::EscalationPolicies, policy.id)
            .await
            .unwrap()
            .name,
        "p"
    );
    assert!(alerting::spec_list(s, SpecTable::Policies, org)
        .await
        .unwrap()
        .is_empty());
    let projects = tenancy::list_projects(s, &lookout_store::Cursor::default())
        .await
        .unwrap()
        .items;
    assert!(projects
        .iter()
        .all(|p| p.name != "new" && p.team_id.is_none()));
}

/// The `audit.cleanup` job's delete: entries before the cutoff go, the rest stay, in order.
async fn audit_retention_deletes_only_entries_older_than_the_cutoff(f: Fixture) {
    use lookout_store::audit;
    let s = &f.store;
    let details = serde_json::json!({});
    for action in ["old.one", "old.two", "new.one"] {
        let entry = audit::NewEntry {
            actor: "user:1",
            actor_label: "ada@example.com",
            action,
            target: None,
            details: &details,
            address: None,
        };
        audit::record(s, &entry).await.unwrap();
    }
    // The two old ones backdated by a year and a day.
    let year_ago = now_ms() - 366 * 86_400_000;
    sqlx::query("UPDATE audit_log SET at = $1 WHERE action LIKE 'old.%'")
        .bind(year_ago)
        .execute(s.pool())
        .await
        .unwrap();
    let cutoff = now_ms() - 365 * 86_400_000;
    assert_eq!(audit::delete_before(s, cutoff).await.unwrap(), 2);
    let left = audit::list(
        s,
        &audit::Filter::default(),
        &lookout_store::Cursor::default(),
    )
    .await
    .unwrap()
    .items;
    let actions: Vec<&str> = left.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["new.one"]);
    assert_eq!(audit::delete_before(s, cutoff).await.unwrap(), 0);
}
