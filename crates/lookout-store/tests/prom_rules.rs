//! Rule files and rule evaluation state on SQLite and PostgreSQL: files are replaced by name and
//! deleted with their state, and a write guarded by a rule shard's fencing token commits only
//! while that token holds the lease — samples and state of a replica that lost it are never
//! stored.

use lookout_store::cluster;
use lookout_store::prom::query;
use lookout_store::prom::rules::{self as rstore, GroupStateRow};
use lookout_store::prom::{MatchOp, Matcher};
use lookout_store::{tenancy, Backend, StoreError};

#[macro_use]
mod support;
use support::{fixture, Fixture};

both!(
    files_are_replaced_by_name_and_deleted_with_their_state,
    a_stale_fence_writes_nothing,
    an_evaluation_of_an_edited_or_deleted_file_stores_nothing,
    dropped_groups_lose_their_state,
);

async fn project(f: &Fixture) -> i64 {
    let org = tenancy::default_org(&f.store).await.unwrap().id;
    tenancy::create_project(&f.store, org, "rules", None, None)
        .await
        .unwrap()
        .id
}

fn state(p: i64, t: i64) -> GroupStateRow {
    GroupStateRow {
        project_id: p,
        file: "r.yml".into(),
        group_name: "g".into(),
        evaluated_at: t,
        state: format!("{{\"t\":{t}}}"),
    }
}

async fn files_are_replaced_by_name_and_deleted_with_their_state(f: Fixture) {
    let p = project(&f).await;
    rstore::put_file(&f.store, p, "r.yml", None, "groups: []", 1)
        .await
        .unwrap();
    rstore::put_file(&f.store, p, "r.yml", Some("config"), "groups: [x]", 2)
        .await
        .unwrap();
    let files = rstore::files(&f.store, p).await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (
            files[0].content.as_str(),
            files[0].managed_by.as_deref(),
            files[0].updated_at
        ),
        ("groups: [x]", Some("config"), 2)
    );
    let mut tx = f.store.begin_write().await.unwrap();
    rstore::save_state_in(&mut tx, &state(p, 10)).await.unwrap();
    rstore::save_state_in(&mut tx, &state(p, 20)).await.unwrap();
    tx.commit().await.unwrap();
    let s = rstore::state(&f.store, p, "r.yml", "g")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.evaluated_at, 20, "one row per group, the last write wins");
    rstore::delete_file(&f.store, p, "r.yml").await.unwrap();
    assert!(rstore::files(&f.store, p).await.unwrap().is_empty());
    assert!(rstore::states(&f.store, p).await.unwrap().is_empty());
    assert!(matches!(
        rstore::delete_file(&f.store, p, "r.yml").await,
        Err(StoreError::NotFound)
    ));
}

async fn a_stale_fence_writes_nothing(f: Fixture) {
    let p = project(&f).await;
    let lease = "rules.shard.0";
    cluster::ensure_leases(&f.store, &[lease.to_string()])
        .await
        .unwrap();
    let (a, seq) = cluster::claim(&f.store, lease, "replica-a", 60_000, 5_000)
        .await
        .unwrap()
        .unwrap();
    let labels = vec![vec![("__name__".to_string(), "job:x".to_string())]];
    let ids = rstore::series_ids(&f.store, i64::MAX, p, &labels)
        .await
        .unwrap();
    // A's write under its token commits.
    let mut tx = f.store.begin_write().await.unwrap();
    rstore::guard_in(&mut tx, lease, a, seq + 1).await.unwrap();
    rstore::insert_samples_in(&mut tx, p, &[(ids[0], 1_000, 1.5)], 1_000)
        .await
        .unwrap();
    rstore::save_state_in(&mut tx, &state(p, 1_000))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Replica B takes the lease over (A stopped heartbeating): A's token is stale.
    let (b, _) = cluster::claim(&f.store, lease, "replica-b", 60_000, 5_000)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("replica-a has no heartbeat, so its lease may be taken"));
    assert!(b > a);
    let mut tx = f.store.begin_write().await.unwrap();
    let e = rstore::guard_in(&mut tx, lease, a, seq + 2)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced), "{e}");
    drop(tx);
    let got = query::select(
        &f.store,
        p,
        &[Matcher::new("__name__", MatchOp::Eq, "job:x").unwrap()],
        0,
        10_000,
    )
    .await
    .unwrap();
    assert_eq!(got[0].samples, vec![(1_000, 1.5)]);
    let s = rstore::state(&f.store, p, "r.yml", "g")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.evaluated_at, 1_000, "A's later state was not stored");
}

/// The evaluator's write checks, under the file row's lock, that the file it evaluated is still
/// the stored version: after an edit or a delete it stores nothing, so a deleted group's state
/// is not written back and no incident is opened for it. The delete returns the state it
/// removed, read in its own transaction, so its firing alerts can be resolved.
async fn an_evaluation_of_an_edited_or_deleted_file_stores_nothing(f: Fixture) {
    let p = project(&f).await;
    rstore::put_file(&f.store, p, "r.yml", None, "groups: []", 1)
        .await
        .unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(rstore::file_unchanged_in(&mut tx, p, "r.yml", 1)
        .await
        .unwrap());
    rstore::save_state_in(&mut tx, &state(p, 10)).await.unwrap();
    tx.commit().await.unwrap();
    rstore::put_file(&f.store, p, "r.yml", None, "groups: [x]", 2)
        .await
        .unwrap();
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(
        !rstore::file_unchanged_in(&mut tx, p, "r.yml", 1)
            .await
            .unwrap(),
        "an evaluation of version 1 after the edit"
    );
    assert!(rstore::file_unchanged_in(&mut tx, p, "r.yml", 2)
        .await
        .unwrap());
    drop(tx);
    let mut tx = f.store.begin_write().await.unwrap();
    let deleted = rstore::delete_file_in(&mut tx, p, "r.yml").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(deleted, vec![state(p, 10)]);
    let mut tx = f.store.begin_write().await.unwrap();
    assert!(
        !rstore::file_unchanged_in(&mut tx, p, "r.yml", 2)
            .await
            .unwrap(),
        "an evaluation that finishes after the delete"
    );
    drop(tx);
    assert!(rstore::states(&f.store, p).await.unwrap().is_empty());
}

/// Saving a file deletes (and returns) the state of the groups it no longer has, so their
/// firing alerts can be resolved in the same transaction.
async fn dropped_groups_lose_their_state(f: Fixture) {
    let p = project(&f).await;
    let mut tx = f.store.begin_write().await.unwrap();
    rstore::save_state_in(&mut tx, &state(p, 10)).await.unwrap();
    let mut other = state(p, 20);
    other.group_name = "kept".into();
    rstore::save_state_in(&mut tx, &other).await.unwrap();
    let dropped = rstore::delete_states_except_in(&mut tx, p, "r.yml", &["kept".to_string()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(dropped, vec![state(p, 10)]);
    assert_eq!(rstore::states(&f.store, p).await.unwrap(), vec![other]);
}
