//! What the incident page's actions store beyond the escalation clock: who an incident is
//! assigned to, a snooze's end, merges (the merged incident's signals and alert count move to
//! the target), and responder requests (someone else paged without changing the assignee).
//!
//! Every change runs inside the caller's write transaction, with the timeline entry and the
//! pages it goes with (see `incidents`).

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store};

/// Assigns incident `id` to user `user` (none: back to the escalation rule's targets).
pub async fn set_assignee(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    user: Option<i64>,
    at: i64,
) -> Result<()> {
    sqlx::query("UPDATE incidents SET assigned_user_id = $1, updated_at = $2 WHERE id = $3")
        .bind(user)
        .bind(at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves incident `id` to escalation policy `ep` and drops any user assignment (reassigning to
/// a policy hands the incident to its rules).
pub async fn set_escalation(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    ep: i64,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE incidents SET escalation_policy_id = $1, assigned_user_id = NULL, updated_at = $2
         WHERE id = $3",
    )
    .bind(ep)
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records when incident `id`'s snooze ends (none: not snoozed).
pub async fn set_snooze(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    until: Option<i64>,
    at: i64,
) -> Result<()> {
    sqlx::query("UPDATE incidents SET snoozed_until = $1, updated_at = $2 WHERE id = $3")
        .bind(until)
        .bind(at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves what incident `from` stands for into incident `into`: its signals (a monitor or issue
/// that fails again joins `into`; one failing in both stays failing) and its alert count, and
/// records the merge on `from`. The caller resolves `from`.
pub async fn merge_into(
    tx: &mut Transaction<'static, Any>,
    from: i64,
    into: i64,
    at: i64,
) -> Result<()> {
    // An incident with no signals (opened by hand or by an integration) stands for itself: it
    // gets an open signal of its own before the merge, so the recovery of a merged monitor or
    // issue cannot resolve a target whose own alert still fires (PagerDuty resolves an incident
    // only when all its alerts have). Either incident's own signal is closed only by resolving.
    // SQLite needs the WHERE in an INSERT … SELECT … ON CONFLICT (its parser's rule).
    for own in [into, from] {
        sqlx::query(
            "INSERT INTO incident_signals (incident_id, signal, open)
             SELECT $1, $2, 1 WHERE NOT EXISTS (SELECT 1 FROM incident_signals WHERE incident_id = $3)
             ON CONFLICT (incident_id, signal) DO NOTHING",
        )
        .bind(into)
        .bind(format!("incident:{own}"))
        .bind(own)
        .execute(&mut **tx)
        .await?;
    }
    // PostgreSQL reads the same WHERE rule.
    sqlx::query(
        "INSERT INTO incident_signals (incident_id, signal, open)
         SELECT $1, signal, open FROM incident_signals WHERE incident_id = $2
         ON CONFLICT (incident_id, signal) DO UPDATE SET open =
           CASE WHEN excluded.open = 1 THEN 1 ELSE incident_signals.open END",
    )
    .bind(into)
    .bind(from)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM incident_signals WHERE incident_id = $1")
        .bind(from)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE incidents SET alert_count = alert_count +
           (SELECT alert_count FROM incidents WHERE id = $1), updated_at = $2 WHERE id = $3",
    )
    .bind(from)
    .bind(at)
    .bind(into)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE incidents SET merged_into = $1, updated_at = $2 WHERE id = $3")
        .bind(into)
        .bind(at)
        .bind(from)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `(id, title)` of the incidents merged into `id`, oldest first.
pub async fn merged_from(store: &Store, id: i64) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query("SELECT id, title FROM incidents WHERE merged_into = $1 ORDER BY id")
        .bind(id)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("title")?)))
        .collect()
}

/// What people call user `id` (their name, else their email), read inside `tx`: the engine
/// names people in the timeline and must not wait for a second pooled connection meanwhile.
pub async fn user_name_in(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Option<String>> {
    let r = sqlx::query("SELECT name, email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match r {
        Some(r) => {
            let name: Option<String> = r.try_get("name")?;
            Some(match name {
                Some(n) => n,
                None => r.try_get("email")?,
            })
        }
        None => None,
    })
}

/// A responder request as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ResponderRow {
    /// Id (the pages sent for it carry it as `responder_id`).
    pub id: i64,
    /// The incident.
    pub incident_id: i64,
    /// `user` or `escalation_policy`.
    pub target_type: String,
    /// The user's or policy's id.
    pub target_id: i64,
    /// Its name when requested.
    pub target_name: String,
    /// What the requester asked.
    pub message: Option<String>,
    /// Who asked (`user:<email>`, `token:<name>`).
    pub requested_by: String,
    /// When, ms.
    pub requested_at: i64,
}

/// A new responder request.
#[derive(Debug, Clone)]
pub struct NewResponder<'a> {
    /// The incident.
    pub incident_id: i64,
    /// `user` or `escalation_policy`.
    pub target_type: &'a str,
    /// Its id.
    pub target_id: i64,
    /// Its name.
    pub target_name: &'a str,
    /// What the requester asked.
    pub message: Option<&'a str>,
    /// Who asked.
    pub requested_by: &'a str,
    /// When, ms.
    pub at: i64,
}

/// Records a responder request; its id.
pub async fn add_responder(
    tx: &mut Transaction<'static, Any>,
    n: &NewResponder<'_>,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO incident_responders (incident_id, target_type, target_id, target_name,
         message, requested_by, requested_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(n.incident_id)
    .bind(n.target_type)
    .bind(n.target_id)
    .bind(n.target_name)
    .bind(n.message)
    .bind(n.requested_by)
    .bind(n.at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(r.try_get("id")?)
}

/// Incident `id`'s responder requests, oldest first.
pub async fn responders(store: &Store, id: i64) -> Result<Vec<ResponderRow>> {
    let rows = sqlx::query(
        "SELECT id, incident_id, target_type, target_id, target_name, message, requested_by,
         requested_at FROM incident_responders WHERE incident_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ResponderRow {
                id: r.try_get("id")?,
                incident_id: r.try_get("incident_id")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                target_name: r.try_get("target_name")?,
                message: r.try_get("message")?,
                requested_by: r.try_get("requested_by")?,
                requested_at: r.try_get("requested_at")?,
            })
        })
        .collect()
}
