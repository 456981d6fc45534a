//! Incidents, their timeline and the signals they stand for.
//!
//! Every change runs inside the caller's write transaction, so an incident, its timeline entry
//! and the notifications it queues commit together or not at all. Changes to the escalation clock
//! are fenced on the values read ([`save_clock`]): when two replicas race on the same timer, one
//! update wins and the other changes nothing, so a step is never applied twice.

use serde::Serialize;
use serde_json::Value as Json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::row::RowExt;
use crate::{Result, Store, StoreError};

/// An incident as stored.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    /// Id (also its number).
    pub id: i64,
    /// Organization.
    pub org_id: i64,
    /// `policy:<id>` or `integration:<id>`.
    pub scope: String,
    /// The key that joins signals into this incident.
    pub dedup_key: String,
    /// Title.
    pub title: String,
    /// `triggered`, `acknowledged`, `resolved`.
    pub status: String,
    /// `high` or `low`.
    pub urgency: String,
    /// `critical`, `error`, `warning`, `info`.
    pub severity: String,
    /// The service it concerns.
    pub service: Option<String>,
    /// The affected host or resource.
    pub source: Option<String>,
    /// The alert policy that opened it.
    pub policy_id: Option<i64>,
    /// The integration that opened it.
    pub integration_id: Option<i64>,
    /// Who gets paged.
    pub escalation_policy_id: Option<i64>,
    /// The runbook.
    pub runbook_id: Option<i64>,
    /// The runbook version in force when it opened.
    pub runbook_version: Option<i64>,
    /// The escalation rule paged last.
    pub rule_index: i64,
    /// Passes over the rules so far.
    pub lap: i64,
    /// When the next rule is due.
    pub next_escalation_at: Option<i64>,
    /// When the acknowledgement lapses.
    pub ack_until: Option<i64>,
    /// Signals joined into it.
    pub alert_count: i64,
    /// What the source sent (labels, links, custom details).
    pub details: Json,
    /// Runbook checklist ticks: `{"<item index>": true}`.
    pub checklist: Json,
    /// Opened, ms.
    pub created_at: i64,
    /// First acknowledged, ms.
    pub acknowledged_at: Option<i64>,
    /// Resolved, ms.
    pub resolved_at: Option<i64>,
    /// Changed, ms.
    pub updated_at: i64,
    /// The user it was reassigned to (none: the current escalation rule's targets hold it).
    pub assigned_user_id: Option<i64>,
    /// When a snooze ends (the incident is acknowledged until then).
    pub snoozed_until: Option<i64>,
    /// The incident it was merged into.
    pub merged_into: Option<i64>,
}

pub(crate) const COLS: &str =
    "id, org_id, scope, dedup_key, title, status, urgency, severity, service, \
    source, policy_id, integration_id, escalation_policy_id, runbook_id, runbook_version, \
    rule_index, lap, next_escalation_at, ack_until, alert_count, details, checklist, created_at, \
    acknowledged_at, resolved_at, updated_at, assigned_user_id, snoozed_until, merged_into";

pub(crate) fn row(r: &AnyRow) -> Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        scope: r.try_get("scope")?,
        dedup_key: r.try_get("dedup_key")?,
        title: r.try_get("title")?,
        status: r.try_get("status")?,
        urgency: r.try_get("urgency")?,
        severity: r.try_get("severity")?,
        service: r.try_get("service")?,
        source: r.try_get("source")?,
        policy_id: r.try_get("policy_id")?,
        integration_id: r.try_get("integration_id")?,
        escalation_policy_id: r.try_get("escalation_policy_id")?,
        runbook_id: r.try_get("runbook_id")?,
        runbook_version: r.try_get("runbook_version")?,
        rule_index: r.try_get("rule_index")?,
        lap: r.try_get("lap")?,
        next_escalation_at: r.try_get("next_escalation_at")?,
        ack_until: r.try_get("ack_until")?,
        alert_count: r.try_get("alert_count")?,
        details: r.json("details")?,
        checklist: r.json("checklist")?,
        created_at: r.try_get("created_at")?,
        acknowledged_at: r.try_get("acknowledged_at")?,
        resolved_at: r.try_get("resolved_at")?,
        updated_at: r.try_get("updated_at")?,
        assigned_user_id: r.try_get("assigned_user_id")?,
        snoozed_until: r.try_get("snoozed_until")?,
        merged_into: r.try_get("merged_into")?,
    })
}

/// What a new incident starts with.
#[derive(Debug, Clone)]
pub struct NewIncident {
    /// Organization.
    pub org_id: i64,
    /// `policy:<id>` or `integration:<id>`.
    pub scope: String,
    /// Dedup key.
    pub dedup_key: String,
    /// Title.
    pub title: String,
    /// `high`/`low`.
    pub urgency: String,
    /// Severity.
    pub severity: String,
    /// Service.
    pub service: Option<String>,
    /// Source host or resource.
    pub source: Option<String>,
    /// Opening policy.
    pub policy_id: Option<i64>,
    /// Opening integration.
    pub integration_id: Option<i64>,
    /// Escalation policy.
    pub escalation_policy_id: Option<i64>,
    /// Runbook and its version.
    pub runbook: Option<(i64, i64)>,
    /// When the first rule hands over (none: low urgency or no policy).
    pub next_escalation_at: Option<i64>,
    /// Details.
    pub details: Json,
    /// Now, ms.
    pub at: i64,
}

/// The open incident for `(scope, dedup_key)`, if any.
pub async fn find_open(
    tx: &mut Transaction<'static, Any>,
    scope: &str,
    dedup_key: &str,
) -> Result<Option<IncidentRow>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM incidents WHERE scope = $1 AND dedup_key = $2
         AND status <> 'resolved'"
    ))
    .bind(scope)
    .bind(dedup_key)
    .fetch_optional(&mut **tx)
    .await?;
    r.as_ref().map(row).transpose()
}

/// Opens an incident, or returns the open one with the same scope and key (`false`). On
/// PostgreSQL two replicas may race to open the same key; the partial unique index lets one
/// insert win and the other finds its row.
pub async fn open_or_find(
    tx: &mut Transaction<'static, Any>,
    n: &NewIncident,
) -> Result<(IncidentRow, bool)> {
    if let Some(open) = find_open(tx, &n.scope, &n.dedup_key).await? {
        return Ok((open, false));
    }
    if let Some(target) = merged_target(tx, &n.scope, &n.dedup_key).await? {
        return Ok((target, false));
    }
    let r = sqlx::query(&format!(
        "INSERT INTO incidents (org_id, scope, dedup_key, title, status, urgency, severity,
         service, source, policy_id, integration_id, escalation_policy_id, runbook_id,
         runbook_version, rule_index, lap, next_escalation_at, ack_until, alert_count, details,
         checklist, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'triggered', $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 0, $14,
         NULL, 1, $15, '{{}}', $16, $16)
         ON CONFLICT (scope, dedup_key) WHERE status <> 'resolved' DO NOTHING
         RETURNING {COLS}"
    ))
    .bind(n.org_id)
    .bind(&n.scope)
    .bind(&n.dedup_key)
    .bind(&n.title)
    .bind(&n.urgency)
    .bind(&n.severity)
    .bind(&n.service)
    .bind(&n.source)
    .bind(n.policy_id)
    .bind(n.integration_id)
    .bind(n.escalation_policy_id)
    .bind(n.runbook.map(|r| r.0))
    .bind(n.runbook.map(|r| r.1))
    .bind(n.next_escalation_at)
    .bind(n.details.to_string())
    .bind(n.at)
    .fetch_optional(&mut **tx)
    .await?;
    match r {
        Some(r) => Ok((row(&r)?, true)),
        None => find_open(tx, &n.scope, &n.dedup_key)
            .await?
            .map(|r| (r, false))
            .ok_or(StoreError::NotFound),
    }
}

/// Most merges followed from a key's last incident to an open one (a merged incident's target
/// may itself have been merged since); a loop cannot form, this only bounds the reads.
const MAX_MERGE_HOPS: usize = 8;

/// The open incident that the last incident with `(scope, dedup_key)` was merged into, if it
/// was merged and that incident (or the one it was merged into in turn) is still open: a later
/// event for a merged alert joins the incident it went to, as PagerDuty's merged alerts do.
pub async fn merged_target(
    tx: &mut Transaction<'static, Any>,
    scope: &str,
    dedup_key: &str,
) -> Result<Option<IncidentRow>> {
    let last = sqlx::query(
        "SELECT merged_into FROM incidents WHERE scope = $1 AND dedup_key = $2
         ORDER BY id DESC LIMIT 1",
    )
    .bind(scope)
    .bind(dedup_key)
    .fetch_optional(&mut **tx)
    .await?;
    let mut next: Option<i64> = match last {
        Some(r) => r.try_get("merged_into")?,
        None => None,
    };
    for _ in 0..MAX_MERGE_HOPS {
        let Some(id) = next else {
            return Ok(None);
        };
        let inc = match lock(tx, id).await {
            Err(StoreError::NotFound) => return Ok(None),
            r => r?,
        };
        if inc.status != "resolved" {
            return Ok(Some(inc));
        }
        next = inc.merged_into;
    }
    Ok(None)
}

/// Counts one more signal joined into an open incident.
pub async fn add_alert(tx: &mut Transaction<'static, Any>, id: i64, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE incidents SET alert_count = alert_count + 1, updated_at = $1 WHERE id = $2",
    )
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One incident, read inside `tx` and locked for the rest of it on PostgreSQL (SQLite's write
/// transaction already excludes other writers).
pub async fn lock(tx: &mut Transaction<'static, Any>, id: i64) -> Result<IncidentRow> {
    let lock = if tx.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    };
    let r = sqlx::query(&format!("SELECT {COLS} FROM incidents WHERE id = $1{lock}"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    row(&r)
}

/// One incident.
pub async fn get(store: &Store, id: i64) -> Result<IncidentRow> {
    let r = sqlx::query(&format!("SELECT {COLS} FROM incidents WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
    row(&r)
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these states.
    pub statuses: Vec<String>,
    /// Only this service.
    pub service: Option<String>,
    /// Ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// An organization's incidents, newest first.
pub async fn list(store: &Store, org_id: i64, f: &ListFilter) -> Result<Vec<IncidentRow>> {
    let statuses = if f.statuses.is_empty() {
        "triggered,acknowledged,resolved".to_string()
    } else {
        f.statuses.join(",")
    };
    // The status list is bound as one string and matched with a LIKE on both backends, so the
    // statement has one shape whatever the filter.
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM incidents WHERE org_id = $1 AND id < $2
         AND (',' || $3 || ',') LIKE ('%,' || status || ',%')
         AND ($4 IS NULL OR service = $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(org_id)
    .bind(f.before_id.unwrap_or(i64::MAX))
    .bind(statuses)
    .bind(&f.service)
    .bind(f.limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row).collect()
}

/// The clock columns of an incident, as read or as to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockCols<'a> {
    /// State.
    pub status: &'a str,
    /// Rule paged last.
    pub rule_index: i64,
    /// Lap.
    pub lap: i64,
    /// Next escalation.
    pub next_escalation_at: Option<i64>,
    /// Ack lapses.
    pub ack_until: Option<i64>,
}

impl IncidentRow {
    /// This incident's clock columns.
    pub fn clock(&self) -> ClockCols<'_> {
        ClockCols {
            status: &self.status,
            rule_index: self.rule_index,
            lap: self.lap,
            next_escalation_at: self.next_escalation_at,
            ack_until: self.ack_until,
        }
    }
}

/// Writes `new` over `old` if the row still holds `old`; false when another writer got there
/// first (the caller then rolls back). Sets `acknowledged_at` on the first acknowledgement and
/// `resolved_at` on resolution.
pub async fn save_clock(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    old: &ClockCols<'_>,
    new: &ClockCols<'_>,
    at: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE incidents SET status = $1, rule_index = $2, lap = $3, next_escalation_at = $4,
         ack_until = $5, updated_at = $6,
         acknowledged_at = CASE WHEN $1 = 'acknowledged' AND acknowledged_at IS NULL THEN $6
                                ELSE acknowledged_at END,
         resolved_at = CASE WHEN $1 = 'resolved' THEN $6 ELSE NULL END
         WHERE id = $7 AND status = $8 AND rule_index = $9 AND lap = $10
         AND COALESCE(next_escalation_at, -1) = COALESCE($11, -1)
         AND COALESCE(ack_until, -1) = COALESCE($12, -1)",
    )
    .bind(new.status)
    .bind(new.rule_index)
    .bind(new.lap)
    .bind(new.next_escalation_at)
    .bind(new.ack_until)
    .bind(at)
    .bind(id)
    .bind(old.status)
    .bind(old.rule_index)
    .bind(old.lap)
    .bind(old.next_escalation_at)
    .bind(old.ack_until)
    .execute(&mut **tx)
    .await?;
    Ok(n.rows_affected() == 1)
}

/// Incidents whose escalation or acknowledgement timer is due at `now`.
pub async fn due(store: &Store, now: i64, limit: i64) -> Result<Vec<IncidentRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLS} FROM incidents WHERE
         (status = 'triggered' AND next_escalation_at IS NOT NULL AND next_escalation_at <= $1)
         OR (status = 'acknowledged' AND ack_until IS NOT NULL AND ack_until <= $1)
         ORDER BY id LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(row).collect()
}

/// The soonest timer of any open incident (for sleeping until then).
pub async fn next_due(store: &Store) -> Result<Option<i64>> {
    let r = sqlx::query(
        "SELECT MIN(t) AS due FROM (
           SELECT MIN(next_escalation_at) AS t FROM incidents WHERE status = 'triggered'
           UNION ALL SELECT MIN(ack_until) AS t FROM incidents WHERE status = 'acknowledged'
         ) AS timers",
    )
    .fetch_one(store.pool())
    .await?;
    Ok(r.try_get("due")?)
}

/// Sets an open incident's priority: severity, urgency and title (a query condition's warning
/// and critical are one incident whose priority rises and falls).
pub async fn set_priority(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    (severity, urgency): (&str, &str),
    title: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE incidents SET severity = $1, urgency = $2, title = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(severity)
    .bind(urgency)
    .bind(title)
    .bind(at)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many signals other than `signal` are failing in incident `id` (a grouped incident's
/// priority must not fall because one of its signals got better).
pub async fn other_open_signals(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    signal: &str,
) -> Result<i64> {
    Ok(sqlx::query(
        "SELECT COUNT(*) AS n FROM incident_signals
         WHERE incident_id = $1 AND open = 1 AND signal <> $2",
    )
    .bind(id)
    .bind(signal)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?)
}

/// Routes incident `id` to escalation policy `ep` (it had none).
pub async fn set_escalation_policy(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    ep: i64,
    at: i64,
) -> Result<()> {
    sqlx::query("UPDATE incidents SET escalation_policy_id = $1, updated_at = $2 WHERE id = $3")
        .bind(ep)
        .bind(at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The open incident that `signal` (e.g. `issue:12`) is failing in, if any: a second policy
/// matching the same problem joins it instead of opening another.
pub async fn open_with_signal(
    tx: &mut Transaction<'static, Any>,
    org_id: i64,
    signal: &str,
) -> Result<Option<IncidentRow>> {
    let r = sqlx::query(&format!(
        "SELECT {COLS} FROM incidents WHERE org_id = $1 AND status <> 'resolved' AND id IN
         (SELECT incident_id FROM incident_signals WHERE signal = $2 AND open = 1)
         ORDER BY id LIMIT 1"
    ))
    .bind(org_id)
    .bind(signal)
    .fetch_optional(&mut **tx)
    .await?;
    r.as_ref().map(row).transpose()
}

/// Saves the runbook checklist ticks.
pub async fn set_checklist(
    tx: &mut Transaction<'static, Any>,
    id: i64,
    checklist: &Json,
    at: i64,
) -> Result<()> {
    sqlx::query("UPDATE incidents SET checklist = $1, updated_at = $2 WHERE id = $3")
        .bind(checklist.to_string())
        .bind(at)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Id.
    pub id: i64,
    /// When, ms.
    pub at: i64,
    /// What: `triggered`, `alert`, `notified`, `notify_failed`, `escalated`, `repeated`,
    /// `exhausted`, `acknowledged`, `ack_timeout`, `resolved`, `note`, `checklist`.
    pub kind: String,
    /// Who: `user:<email>`, `integration:<name>`, `policy:<name>`, `system`.
    pub actor: String,
    /// For people.
    pub message: String,
    /// Details.
    pub data: Option<Json>,
}

/// Appends to an incident's timeline.
pub async fn log(
    tx: &mut Transaction<'static, Any>,
    incident_id: i64,
    at: i64,
    kind: &str,
    actor: &str,
    message: &str,
    data: Option<&Json>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_log (incident_id, at, kind, actor, message, data)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(incident_id)
    .bind(at)
    .bind(kind)
    .bind(actor)
    .bind(message)
    .bind(data.map(Json::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An incident's timeline, oldest first.
pub async fn timeline(store: &Store, incident_id: i64) -> Result<Vec<LogEntry>> {
    let rows = sqlx::query(
        "SELECT id, at, kind, actor, message, data FROM incident_log WHERE incident_id = $1
         ORDER BY id",
    )
    .bind(incident_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let data: Option<String> = r.try_get("data")?;
            Ok(LogEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                message: r.try_get("message")?,
                data: data.and_then(|d| serde_json::from_str(&d).ok()),
            })
        })
        .collect()
}

/// Records that `signal` (e.g. `monitor:7`) is failing within incident `id`.
pub async fn open_signal(tx: &mut Transaction<'static, Any>, id: i64, signal: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_signals (incident_id, signal, open) VALUES ($1, $2, 1)
         ON CONFLICT (incident_id, signal) DO UPDATE SET open = 1",
    )
    .bind(id)
    .bind(signal)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Records that `signal` recovered; returns the open incidents it was the last failing signal
/// of (they resolve themselves).
pub async fn close_signal(tx: &mut Transaction<'static, Any>, signal: &str) -> Result<Vec<i64>> {
    let ids: Vec<i64> = sqlx::query(
        "SELECT s.incident_id FROM incident_signals s JOIN incidents i ON i.id = s.incident_id
         WHERE s.signal = $1 AND s.open = 1 AND i.status <> 'resolved'",
    )
    .bind(signal)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get("incident_id"))
    .collect::<std::result::Result<_, _>>()?;
    let mut done = Vec::new();
    for id in ids {
        sqlx::query("UPDATE incident_signals SET open = 0 WHERE incident_id = $1 AND signal = $2")
            .bind(id)
            .bind(signal)
            .execute(&mut **tx)
            .await?;
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM incident_signals WHERE incident_id = $1 AND open = 1",
        )
        .bind(id)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
        if left == 0 {
            done.push(id);
        }
    }
    Ok(done)
}

/// MTTA and MTTR for one group.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Responsiveness {
    /// The service, policy name or month the figures are for.
    pub key: String,
    /// Incidents opened in the range.
    pub incidents: i64,
    /// Of which acknowledged.
    pub acknowledged: i64,
    /// Of which resolved.
    pub resolved: i64,
    /// Mean time from trigger to first acknowledgement, seconds.
    pub mtta_seconds: Option<f64>,
    /// Mean time from trigger to resolution, seconds.
    pub mttr_seconds: Option<f64>,
}

/// Response sums of the incidents opened on one UTC day with one service, policy and integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSums {
    /// Service.
    pub service: Option<String>,
    /// Policy that opened them.
    pub policy_id: Option<i64>,
    /// Integration that opened them.
    pub integration_id: Option<i64>,
    /// The UTC day they were opened, ms.
    pub day: i64,
    /// Incidents.
    pub incidents: i64,
    /// Of which acknowledged.
    pub acknowledged: i64,
    /// Sum of trigger-to-acknowledgement times, ms.
    pub ack_ms: i64,
    /// Of which resolved.
    pub resolved: i64,
    /// Sum of trigger-to-resolution times, ms.
    pub resolve_ms: i64,
}

/// The incidents opened in `[since, until)`, summed per service, policy, integration and UTC
/// day; the server groups these (by service, policy, integration or month) so one query serves
/// every grouping. Summed by the database: the Incidents page asks for 90 days, and shipping
/// every incident of a busy quarter to the server took longer than the rest of the page
/// (issue 31: 50,000 incidents).
pub async fn response_times(
    store: &Store,
    org_id: i64,
    since: i64,
    until: i64,
) -> Result<Vec<ResponseSums>> {
    let rows = sqlx::query(
        "SELECT service, policy_id, integration_id, (created_at / 86400000) * 86400000 AS day,
                COUNT(*) AS n,
                COUNT(acknowledged_at) AS acked,
                CAST(COALESCE(SUM(acknowledged_at - created_at), 0) AS BIGINT) AS ack_ms,
                COUNT(resolved_at) AS resolved,
                CAST(COALESCE(SUM(resolved_at - created_at), 0) AS BIGINT) AS resolve_ms
         FROM incidents WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY service, policy_id, integration_id, (created_at / 86400000) * 86400000",
    )
    .bind(org_id)
    .bind(since)
    .bind(until)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ResponseSums {
                service: r.try_get("service")?,
                policy_id: r.try_get("policy_id")?,
                integration_id: r.try_get("integration_id")?,
                day: r.try_get("day")?,
                incidents: r.try_get("n")?,
                acknowledged: r.try_get("acked")?,
                ack_ms: r.try_get("ack_ms")?,
                resolved: r.try_get("resolved")?,
                resolve_ms: r.try_get("resolve_ms")?,
            })
        })
        .collect()
}
