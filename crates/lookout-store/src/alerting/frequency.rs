//! What the alert policy consumer reads about an error issue when a `frequency` condition is
//! checked: how many events it had in the window, and its title for the incident.
//!
//! Both run on the consumer's transaction (the batch it applies), so they see the same snapshot
//! the incident change commits with, and never wait for a second pooled connection.

use sqlx::Row;

use crate::{Conn, Result};

/// Events of issue `issue_id` received at or after `since` (ms).
pub async fn issue_events_since(conn: &mut Conn, issue_id: i64, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM error_events WHERE issue_id = $1 AND received_at >= $2",
    )
    .bind(issue_id)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

/// The title of issue `issue_id` (none when it is gone).
pub async fn issue_title(conn: &mut Conn, issue_id: i64) -> Result<Option<String>> {
    let r = sqlx::query("SELECT title FROM issues WHERE id = $1")
        .bind(issue_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(r.map(|r| r.try_get("title")).transpose()?)
}
