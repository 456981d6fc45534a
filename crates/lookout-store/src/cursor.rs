//! Leased cursors over the ordered streams (`domain_events`, `ingest_items`).
//!
//! A named cursor is served by one replica at a time: [`lease`] takes or renews it and returns
//! its position; [`advance`] moves it inside the transaction that applied the items, fenced by
//! owner and old position, so a replica that lost its lease cannot move it. Committing the effects
//! and the advance together is what makes processing exactly once per cursor.

use sqlx::{Any, Row, Transaction};

use crate::{Result, Store};
use lookout_core::time::now_ms;

/// Takes or renews the lease on cursor `name` for `owner`; its position if this owner holds it.
/// Lease times are the database's clock, so replicas with skewed clocks agree on expiry.
///
/// A cursor the placement gives to another replica ([`Store::set_placement`]) is handed back by
/// its holder (its lease cleared, for the owner to take at its next poll) and taken by others
/// only once its lease has expired, so a dead owner's stream still moves. Handing back is safe at
/// any moment: a batch in flight can only commit through [`advance`], fenced by owner and position.
pub async fn lease(store: &Store, name: &str, owner: &str, lease_ms: i64) -> Result<Option<i64>> {
    sqlx::query(
        "INSERT INTO event_cursors (consumer, position, updated_at) VALUES ($1, 0, $2)
         ON CONFLICT (consumer) DO NOTHING",
    )
    .bind(name)
    .bind(now_ms())
    .execute(store.pool())
    .await?;
    let now = crate::dialect::now_ms_sql(store.backend());
    if !store.placed_here(name) {
        let held = sqlx::query(
            "UPDATE event_cursors SET lease_owner = NULL, lease_until = NULL
             WHERE consumer = $1 AND lease_owner = $2",
        )
        .bind(name)
        .bind(owner)
        .execute(store.pool())
        .await?
        .rows_affected();
        if held > 0 {
            tracing::info!(
                consumer = name,
                "Handed a stream back to the replica it is placed on."
            );
            return Ok(None);
        }
        let sql = format!(
            "UPDATE event_cursors SET lease_owner = $1, lease_until = {now} + $2
             WHERE consumer = $3 AND lease_until IS NOT NULL AND lease_until < {now}
             RETURNING position"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(lease_ms)
            .bind(name)
            .fetch_optional(store.pool())
            .await?;
        return Ok(row.map(|r| r.try_get("position")).transpose()?);
    }
    let sql = format!(
        "UPDATE event_cursors SET lease_owner = $1, lease_until = {now} + $2
         WHERE consumer = $3 AND (lease_owner = $1 OR lease_until IS NULL OR lease_until < {now})
         RETURNING position"
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(lease_ms)
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.map(|r| r.try_get("position")).transpose()?)
}

/// Every cursor's name, for placing them over the replicas.
pub async fn names(store: &Store) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT consumer FROM event_cursors ORDER BY consumer")
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| Ok(r.try_get("consumer")?)).collect()
}

/// Moves cursor `name` from `from` to `to` inside `tx`; false if `owner` no longer holds it (the
/// caller must then roll back).
pub async fn advance(
    tx: &mut Transaction<'static, Any>,
    name: &str,
    owner: &str,
    from: i64,
    to: i64,
) -> Result<bool> {
    let moved = sqlx::query(
        "UPDATE event_cursors SET position = $1, updated_at = $2
         WHERE consumer = $3 AND lease_owner = $4 AND position = $5",
    )
    .bind(to)
    .bind(now_ms())
    .bind(name)
    .bind(owner)
    .bind(from)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// Ends a consumer's batch: moves cursor `name` from `from` to `to` and commits `tx`, or rolls
/// it back when `owner` lost the lease meanwhile (the batch is then another replica's). True when
/// the batch was committed.
pub async fn finish(
    mut tx: Transaction<'static, Any>,
    name: &str,
    owner: &str,
    from: i64,
    to: i64,
) -> Result<bool> {
    if advance(&mut tx, name, owner, from, to).await? {
        tx.commit().await?;
        Ok(true)
    } else {
        tx.rollback().await?;
        Ok(false)
    }
}

/// The position of cursor `name` (0 if it never ran): how far processing has got.
pub async fn position(store: &Store, name: &str) -> Result<i64> {
    let row = sqlx::query("SELECT position FROM event_cursors WHERE consumer = $1")
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.map(|r| r.try_get("position")).transpose()?.unwrap_or(0))
}

/// Runs a cursor consumer until `stop` resolves: `poll` folds one batch and says whether more is
/// waiting (poll again at once) or not (wait `idle`, or less when `wake` says its table got new
/// rows; see [`crate::wake`]); a failed batch is logged as `what` and retried after `idle`.
pub async fn poll_until<F, Fut>(
    mut poll: F,
    idle: std::time::Duration,
    mut wake: Option<tokio::sync::watch::Receiver<u64>>,
    what: &'static str,
    stop: impl std::future::Future<Output = ()>,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    tokio::pin!(stop);
    loop {
        // Seen before the poll: a commit during it changes the value and ends the next wait.
        if let Some(w) = wake.as_mut() {
            w.borrow_and_update();
        }
        let (wait, wakeable) = match poll().await {
            Ok(true) => (std::time::Duration::ZERO, false),
            Ok(false) => (idle, true),
            Err(e) => {
                tracing::warn!(error = %e, consumer = what, "Consumer batch failed; retrying.");
                (idle, false)
            }
        };
        match wake.as_mut().filter(|_| wakeable) {
            Some(w) => tokio::select! {
                () = &mut stop => break,
                () = crate::wake::idle(w, wait) => {}
            },
            None => tokio::select! {
                () = &mut stop => break,
                () = tokio::time::sleep(wait) => {}
            },
        }
    }
}
