//! The periodic uptime upkeep job: roll closed minutes, hours and days up from raw results, then
//! delete what is past retention. Runs every minute on one replica (a leased job).

use lookout_core::time::now_ms;
use lookout_store::uptime::results;
use lookout_store::Store;

/// The job's id and kind.
pub const JOB: &str = "uptime.upkeep";

/// Rolls up, then enforces retention.
pub async fn run(store: &Store) -> Result<(), String> {
    let now = now_ms();
    let buckets = results::roll_up(store, now)
        .await
        .map_err(|e| e.to_string())?;
    let deleted = results::enforce_retention(store, now)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(buckets, deleted, "Uptime rollups and retention done.");
    Ok(())
}
