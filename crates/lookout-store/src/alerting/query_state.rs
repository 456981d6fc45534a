//! The evaluation state of query (NRQL) alert conditions: per policy and condition, the
//! condition's hash, the end of the newest evaluated window and the signals as JSON. Saved in
//! the transaction that publishes what the evaluation found, so a window's breaches are
//! announced exactly once.

use serde_json::Value as Json;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError};

/// A condition's stored state.
#[derive(Debug, Clone)]
pub struct ConditionState {
    pub spec_hash: String,
    pub evaluated_until: i64,
    pub state: Json,
}

/// The state of condition `condition` of policy `policy_id`, if it was ever evaluated.
pub async fn load(store: &Store, policy_id: i64, condition: i64) -> Result<Option<ConditionState>> {
    let row = sqlx::query(
        "SELECT spec_hash, evaluated_until, state FROM nrql_condition_state WHERE policy_id = $1 AND condition = $2",
    )
    .bind(policy_id)
    .bind(condition)
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| {
        let state: String = r.try_get("state")?;
        Ok(ConditionState {
            spec_hash: r.try_get("spec_hash")?,
            evaluated_until: r.try_get("evaluated_until")?,
            state: serde_json::from_str(&state)
                .map_err(|e| StoreError::Corrupt(format!("condition state: {e}")))?,
        })
    })
    .transpose()
}

/// Saves a condition's state inside `tx`.
pub async fn save(
    tx: &mut Transaction<'static, Any>,
    policy_id: i64,
    condition: i64,
    s: &ConditionState,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO nrql_condition_state (policy_id, condition, spec_hash, evaluated_until, state, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (policy_id, condition) DO UPDATE SET spec_hash = excluded.spec_hash,
           evaluated_until = excluded.evaluated_until, state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(policy_id)
    .bind(condition)
    .bind(&s.spec_hash)
    .bind(s.evaluated_until)
    .bind(s.state.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
