//! Per-user notification rules: for each urgency, an ordered list of (contact method, delay in
//! minutes), as PagerDuty has them. Escalation pages a user through their rules for the
//! incident's urgency (see the server's `alerting::engine::page_targets`); a user with none is
//! paged through every contact method for it at once.

use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store};
use lookout_core::time::now_ms;

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRule {
    /// `high` or `low`.
    pub urgency: String,
    /// Its place in the list (0 first).
    pub position: i64,
    /// The contact method (one of the user's channels).
    pub channel_id: i64,
    /// Minutes after the page before this one is sent, if still unacknowledged.
    pub delay_minutes: i64,
}

/// A user's rules, by urgency then position.
pub async fn rules_of_in(conn: &mut crate::Conn, user_id: i64) -> Result<Vec<NotificationRule>> {
    let rows = sqlx::query(
        "SELECT urgency, position, channel_id, delay_minutes FROM notification_rules
         WHERE user_id = $1 ORDER BY urgency, position",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NotificationRule {
                urgency: r.try_get("urgency")?,
                position: r.try_get("position")?,
                channel_id: r.try_get("channel_id")?,
                delay_minutes: r.try_get("delay_minutes")?,
            })
        })
        .collect()
}

/// [`rules_of_in`] on a pooled connection.
pub async fn rules_of(store: &Store, user_id: i64) -> Result<Vec<NotificationRule>> {
    rules_of_in(&mut *store.pool().acquire().await?, user_id).await
}

/// Replaces a user's rules for each urgency in `lists` (`(urgency, [(channel, delay minutes)])`
/// in order; an empty list: back to every contact method at once), all urgencies in one
/// transaction with the request's audit entry. A concurrent save of the same rules is a
/// [`StoreError::Conflict`](crate::StoreError::Conflict), not a database error.
pub async fn set_rules(
    store: &Store,
    user_id: i64,
    lists: &[(&str, Vec<(i64, i64)>)],
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let now = now_ms();
    for (urgency, rules) in lists {
        sqlx::query("DELETE FROM notification_rules WHERE user_id = $1 AND urgency = $2")
            .bind(user_id)
            .bind(*urgency)
            .execute(&mut *tx)
            .await?;
        for (i, (channel, delay)) in rules.iter().enumerate() {
            sqlx::query(
                "INSERT INTO notification_rules (user_id, urgency, position, channel_id,
                 delay_minutes, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user_id)
            .bind(*urgency)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(channel)
            .bind(delay)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(crate::StoreError::conflict_as(
                "this user's notification rules",
            ))?;
        }
    }
    crate::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
