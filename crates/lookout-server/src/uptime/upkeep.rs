//! The periodic uptime upkeep job: roll closed minutes, hours and days up from raw results, then
//! delete what is past retention (locations' results and agents too). Runs every minute on one
//! replica (a leased job).

use lookout_store::uptime::results;
use lookout_store::Store;

/// The job's id and kind.
pub const JOB: &str = "uptime.upkeep";

/// Rolls up, then enforces retention, at `now` (the cluster's clock: agents' last-seen times
/// are written with it).
pub async fn run(store: &Store, now: i64) -> Result<(), String> {
    let buckets = results::roll_up(store, now)
        .await
        .map_err(|e| e.to_string())?;
    let deleted = results::enforce_retention(store, now)
        .await
        .map_err(|e| e.to_string())?;
    // Agents' results are kept as long as the replicas' raw results; agents gone for a day are
    // forgotten (the Locations page lists the others, live or not).
    let located = lookout_store::locations::prune_results(store, now - results::RAW_RETENTION_MS)
        .await
        .map_err(|e| e.to_string())?;
    let agents = lookout_store::locations::forget_agents(store, now - 86_400_000)
        .await
        .map_err(|e| e.to_string())?;
    let locations = crate::locations::service::announce_health(store, now)
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(
        buckets,
        locations,
        deleted,
        located,
        agents,
        "Uptime rollups and retention done."
    );
    Ok(())
}
