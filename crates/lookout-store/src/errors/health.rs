//! Release health: session counts per release, environment and day, from the `session` and
//! `sessions` items SDKs send, and the per-release summary the releases API shows.
//!
//! A `session` item is one session's update: it counts once when it starts (`init: true`) and
//! once more when it ends, by how it ended (`crashed`, `abnormal`, or `exited` with errors, which
//! is an errored session). Updates in between change nothing, so repeats never double-count.
//! A `sessions` item carries pre-aggregated buckets (server-mode SDKs).

use serde::Serialize;
use serde_json::Value;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store};
use lookout_protocol::event::parse_timestamp;

const DAY_MS: i64 = 86_400_000;

/// Counts to add for one (release, environment, day).
#[derive(Debug, Default, PartialEq)]
pub struct HealthDelta {
    /// Release.
    pub release: String,
    /// Environment.
    pub environment: String,
    /// Start of the UTC day, ms.
    pub day: i64,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that ended with handled errors.
    pub errored: i64,
    /// Sessions that crashed.
    pub crashed: i64,
    /// Sessions that ended abnormally.
    pub abnormal: i64,
}

fn attrs(v: &Value) -> Option<(String, String)> {
    let a = v.get("attrs")?;
    let release = a.get("release")?.as_str()?.to_string();
    let env = a
        .get("environment")
        .and_then(Value::as_str)
        .unwrap_or("production")
        .to_string();
    Some((release, env))
}

/// What a `session` or `sessions` payload adds; empty when it has no release (Sentry drops those).
pub fn deltas(kind: &str, payload: &Value, received_at: i64) -> Vec<HealthDelta> {
    let Some((release, environment)) = attrs(payload) else {
        return Vec::new();
    };
    let day_of = |v: Option<&Value>| {
        (v.and_then(parse_timestamp).unwrap_or(received_at)).div_euclid(DAY_MS) * DAY_MS
    };
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0).max(0);
    match kind {
        "session" => {
            let status = payload
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("ok");
            let d = HealthDelta {
                release,
                environment,
                day: day_of(payload.get("started")),
                sessions: i64::from(
                    payload
                        .get("init")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ),
                crashed: i64::from(status == "crashed"),
                abnormal: i64::from(status == "abnormal"),
                errored: i64::from(
                    status == "exited" && n(payload, "errors") > 0 || status == "errored",
                ),
            };
            if d.sessions + d.crashed + d.abnormal + d.errored == 0 {
                Vec::new()
            } else {
                vec![d]
            }
        }
        "sessions" => payload
            .get("aggregates")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(100)
            .map(|b| HealthDelta {
                release: release.clone(),
                environment: environment.clone(),
                day: day_of(b.get("started")),
                sessions: n(b, "exited") + n(b, "errored") + n(b, "crashed") + n(b, "abnormal"),
                errored: n(b, "errored"),
                crashed: n(b, "crashed"),
                abnormal: n(b, "abnormal"),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds deltas inside the processor's transaction.
pub(crate) async fn apply(
    tx: &mut Transaction<'static, Any>,
    project_id: i64,
    deltas: &[HealthDelta],
) -> Result<()> {
    for d in deltas {
        sqlx::query(
            "INSERT INTO release_health (project_id, release, environment, day, sessions, errored, crashed, abnormal)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (project_id, release, environment, day) DO UPDATE SET
                sessions = release_health.sessions + excluded.sessions, errored = release_health.errored + excluded.errored,
                crashed = release_health.crashed + excluded.crashed, abnormal = release_health.abnormal + excluded.abnormal",
        )
        .bind(project_id)
        .bind(&d.release)
        .bind(&d.environment)
        .bind(d.day)
        .bind(d.sessions)
        .bind(d.errored)
        .bind(d.crashed)
        .bind(d.abnormal)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One release of a project, as the releases list shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReleaseSummary {
    /// The release name.
    pub release: String,
    /// Error events seen in it.
    pub events: i64,
    /// Issues first seen in it ("new in this release").
    pub new_issues: i64,
    /// Sessions started.
    pub sessions: i64,
    /// Sessions that crashed.
    pub crashed: i64,
    /// Sessions that ended with errors.
    pub errored: i64,
    /// Share of sessions that did not crash, in percent (`None` without sessions).
    pub crash_free_percent: Option<f64>,
    /// Last activity (event or session day), ms.
    pub last_seen: i64,
}

/// Every release of a project seen in events or sessions, most recently active first.
pub async fn releases(
    store: &Store,
    project_id: i64,
    environment: Option<&str>,
) -> Result<Vec<ReleaseSummary>> {
    let rows = sqlx::query(
        // SUM of BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot read: cast back.
        "SELECT release, CAST(SUM(events) AS BIGINT) AS total_events,
                CAST(SUM(new_issues) AS BIGINT) AS total_new_issues, CAST(SUM(sessions) AS BIGINT) AS total_sessions,
                CAST(SUM(crashed) AS BIGINT) AS total_crashed, CAST(SUM(errored) AS BIGINT) AS total_errored,
                MAX(last_seen) AS latest FROM (
            SELECT t.value AS release, t.times_seen AS events, 0 AS new_issues, 0 AS sessions, 0 AS crashed, 0 AS errored, t.last_seen AS last_seen
              FROM issue_tags t JOIN issues i ON i.id = t.issue_id
             WHERE i.project_id = $1 AND t.key = 'release' AND i.merged_into IS NULL
            UNION ALL
            SELECT first_release, 0, 1, 0, 0, 0, first_seen FROM issues
             WHERE project_id = $1 AND first_release IS NOT NULL AND merged_into IS NULL
            UNION ALL
            SELECT release, 0, 0, sessions, crashed, errored, day FROM release_health
             WHERE project_id = $1 AND ($2 IS NULL OR environment = $2)
         ) r GROUP BY release ORDER BY MAX(last_seen) DESC LIMIT 200",
    )
    .bind(project_id)
    .bind(environment)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            // SUM over BIGINT is NUMERIC on PostgreSQL, which the Any driver cannot decode.
            let num = |col: &str| -> Result<i64> {
                // Only a value that does not decode reads as 0; a missing column is a bug.
                r.try_column(col)?;
                Ok(Row::try_get::<i64, _>(r, col)
                    .or_else(|_| Row::try_get::<f64, _>(r, col).map(|f| f as i64))
                    .unwrap_or(0))
            };
            let sessions = num("total_sessions")?;
            let crashed = num("total_crashed")?;
            Ok(ReleaseSummary {
                release: r.try_get("release")?,
                events: num("total_events")?,
                new_issues: num("total_new_issues")?,
                sessions,
                crashed,
                errored: num("total_errored")?,
                crash_free_percent: (sessions > 0)
                    .then(|| 100.0 * (sessions - crashed).max(0) as f64 / sessions as f64),
                last_seen: num("latest")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sessions_count_once_at_start_and_once_at_their_end() {
        let start = json!({"sid": "a", "init": true, "status": "ok", "started": "2026-11-28T12:00:00Z", "attrs": {"release": "r1"}});
        let d = deltas("session", &start, 0);
        assert_eq!(
            (d[0].sessions, d[0].crashed, d[0].environment.as_str()),
            (1, 0, "production")
        );
        let update = json!({"sid": "a", "init": false, "status": "ok", "errors": 1, "attrs": {"release": "r1"}});
        assert!(
            deltas("session", &update, 0).is_empty(),
            "an ongoing update changes nothing"
        );
        let end = json!({"sid": "a", "status": "exited", "errors": 2, "attrs": {"release": "r1", "environment": "prod"}});
        assert_eq!(deltas("session", &end, 0)[0].errored, 1);
        let crash =
            json!({"sid": "b", "init": true, "status": "crashed", "attrs": {"release": "r1"}});
        let d = deltas("session", &crash, 0);
        assert_eq!((d[0].sessions, d[0].crashed), (1, 1));
        assert!(
            deltas("session", &json!({"init": true, "status": "ok"}), 0).is_empty(),
            "no release: dropped"
        );
        let agg = json!({"attrs": {"release": "r2"}, "aggregates": [{"started": "2026-11-28T12:00:00Z", "exited": 8, "errored": 1, "crashed": 1}]});
        let d = deltas("sessions", &agg, 0);
        assert_eq!((d[0].sessions, d[0].errored, d[0].crashed), (10, 1, 1));
    }
}
