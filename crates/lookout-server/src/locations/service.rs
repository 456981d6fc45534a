//! Locations' domain operations, written once for the API, the UI and the agent protocol:
//! creating, renaming, rotating, revoking and deleting locations; checking the `locations` a
//! monitor names; and working out which monitors each live agent of a location checks.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_store::locations::{self as lstore, LocationRow};
use lookout_store::tenancy;
use lookout_uptime::agent::{self as proto, Assignment, Assignments};
use lookout_uptime::spec::{validate_location_name, LOCAL};
use lookout_uptime::MonitorSpec;

/// An agent not seen for this long has left its location's pool: its monitors go to the others
/// (agents long-poll for at most [`proto::MAX_WAIT_SECONDS`], so a live one is seen well within).
pub const AGENT_LIVE_MS: i64 = 45_000;

/// A location with no live agent for this long is announced offline.
pub const LOCATION_OFFLINE_MS: i64 = 60_000;

/// A location as the API and forms send it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    /// Unique name monitors refer to: 1 to 50 of a-z, 0-9 and '-' (`local` is the replicas').
    pub name: String,
    /// Free text (where it runs, who looks after it).
    #[serde(default)]
    pub description: String,
}

/// A change to a location: the fields given are changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationPatch {
    /// New name (monitors naming the old one must be changed first: 409 otherwise).
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
}

fn checked_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    validate_location_name(name).map_err(|e| ServiceError::Invalid(format!("name: {e}")))?;
    if name == LOCAL {
        return Err(ServiceError::Invalid(
            "name: \"local\" is the replicas' own checker".into(),
        ));
    }
    Ok(name.to_string())
}

fn checked_description(d: &str) -> ServiceResult<String> {
    let d = d.trim();
    if d.chars().count() > 500 {
        return Err(ServiceError::Invalid(
            "description: at most 500 characters".into(),
        ));
    }
    Ok(d.to_string())
}

/// Creates a location; returns its token (shown once) and the row.
pub async fn create(
    state: &AppState,
    input: &LocationInput,
) -> ServiceResult<(String, LocationRow)> {
    let name = checked_name(&input.name)?;
    let description = checked_description(&input.description)?;
    let org = tenancy::default_org(state.store()).await?;
    let (token, row) = lstore::create_location(state.store(), org.id, &name, &description).await?;
    tracing::info!(location = row.id, name = %row.name, "Location created.");
    Ok((token, row))
}

/// Changes a location's name or description. A rename is refused while monitors name the old
/// name: they would silently lose the location.
pub async fn update(
    state: &AppState,
    id: i64,
    patch: &LocationPatch,
) -> ServiceResult<LocationRow> {
    let row = lstore::get_location(state.store(), id)
        .await
        .map_err(ServiceError::not_found("location"))?;
    let name = match &patch.name {
        Some(n) => checked_name(n)?,
        None => row.name.clone(),
    };
    let description = match &patch.description {
        Some(d) => checked_description(d)?,
        None => row.description.clone(),
    };
    if name != row.name {
        refuse_if_used(state, &row.name, "renamed").await?;
    }
    Ok(lstore::update_location(state.store(), id, &name, &description).await?)
}

/// Replaces a location's token (and lifts a revocation); returns the new one, shown once.
pub async fn rotate(state: &AppState, id: i64) -> ServiceResult<String> {
    let token = lstore::rotate_token(state.store(), id)
        .await
        .map_err(ServiceError::not_found("location"))?;
    tracing::info!(location = id, "Location token rotated.");
    Ok(token)
}

/// Revokes a location's token: its agents are refused (and stop) at their next request.
pub async fn revoke(state: &AppState, id: i64) -> ServiceResult<LocationRow> {
    let row = lstore::revoke_token(state.store(), id)
        .await
        .map_err(ServiceError::not_found("location"))?;
    tracing::info!(location = id, "Location token revoked.");
    Ok(row)
}

/// Deletes a location no monitor names.
pub async fn delete(state: &AppState, id: i64) -> ServiceResult<()> {
    let row = lstore::get_location(state.store(), id)
        .await
        .map_err(ServiceError::not_found("location"))?;
    refuse_if_used(state, &row.name, "deleted").await?;
    lstore::delete_location(state.store(), id).await?;
    tracing::info!(location = id, name = %row.name, "Location deleted.");
    Ok(())
}

/// The monitors naming location `name`, as (id, name).
pub async fn monitors_naming(state: &AppState, name: &str) -> ServiceResult<Vec<(i64, String)>> {
    Ok(lstore::monitors_with_locations(state.store())
        .await?
        .into_iter()
        .filter_map(|m| {
            let spec: MonitorSpec = serde_json::from_str(&m.spec).ok()?;
            spec.locations
                .iter()
                .any(|l| l == name)
                .then_some((m.id, m.name))
        })
        .collect())
}

async fn refuse_if_used(state: &AppState, name: &str, what: &str) -> ServiceResult<()> {
    let users = monitors_naming(state, name).await?;
    if let Some((id, monitor)) = users.first() {
        return Err(ServiceError::Conflict(format!(
            "location {name:?} cannot be {what} while {} monitor(s) check from it (first: {monitor:?}, id {id}); remove it from them first",
            users.len()
        )));
    }
    Ok(())
}

/// Refuses (422, naming the field) a monitor whose `locations` names a location that does not
/// exist. `local` always exists.
pub async fn check_monitor_locations(state: &AppState, spec: &MonitorSpec) -> ServiceResult<()> {
    if spec.locations.iter().all(|l| l == LOCAL) {
        return Ok(());
    }
    let known = lstore::list_locations(state.store()).await?;
    for name in &spec.locations {
        if name != LOCAL && !known.iter().any(|l| &l.name == name) {
            return Err(ServiceError::Invalid(format!(
                "locations: no location {name:?} (create it first, or use \"local\")"
            )));
        }
    }
    Ok(())
}

/// Accepts `locations` as GET shows them (objects with a `name`) as well as names, so a monitor
/// document fetched can be sent back as it is.
pub fn names_from_view(body: &mut serde_json::Value) {
    let Some(list) = body.get_mut("locations").and_then(|v| v.as_array_mut()) else {
        return;
    };
    for item in list.iter_mut() {
        if let Some(name) = item.get("name").and_then(|n| n.as_str()) {
            *item = serde_json::Value::String(name.to_string());
        }
    }
}

/// The live agents of a location at `now`, by id.
pub async fn live_agents(
    state: &AppState,
    location_id: i64,
    now: i64,
) -> ServiceResult<Vec<String>> {
    Ok(lstore::agents(state.store(), location_id)
        .await?
        .into_iter()
        .filter(|a| now - a.last_seen_at <= AGENT_LIVE_MS)
        .map(|a| a.agent_id)
        .collect())
}

/// What an agent's list depends on besides the definitions: which agents share the pool.
pub type PoolKey = ((i64, i64), Vec<String>);

/// The cluster's clock (the database's, as the leases use), so agents' last-seen times written
/// by one replica and compared by another agree though the replicas' clocks drift; this
/// replica's clock before it has joined a cluster.
pub fn clock(state: &AppState) -> i64 {
    state
        .cluster()
        .map_or_else(lookout_core::time::now_ms, |c| c.now_ms())
}

/// A cheap fingerprint of what `agent`'s list depends on: when it is unchanged, so is the list.
pub async fn pool_key(state: &AppState, location_id: i64, now: i64) -> ServiceResult<PoolKey> {
    Ok((
        lstore::definitions_version(state.store()).await?,
        live_agents(state, location_id, now).await?,
    ))
}

/// The monitors `agent_id` of `location` checks: the location's active monitors, split among
/// its live agents by rendezvous hashing (`agents` must include `agent_id`).
pub async fn assignments(
    state: &AppState,
    location: &LocationRow,
    agent_id: &str,
    agents: &[String],
) -> ServiceResult<Assignments> {
    let mut monitors = Vec::new();
    for m in lstore::monitors_with_locations(state.store()).await? {
        if m.paused {
            continue;
        }
        let Some(spec) = crate::uptime::opened_spec(&m.spec, state.sealer()) else {
            tracing::warn!(
                monitor = m.id,
                "Stored monitor spec does not open; not assigned."
            );
            continue;
        };
        if spec.kind.is_passive() || !spec.locations.iter().any(|l| l == &location.name) {
            continue;
        }
        if proto::owner(agents, m.id) != Some(agent_id) {
            continue;
        }
        monitors.push(Assignment {
            id: m.id,
            spec,
            updated_at: m.updated_at,
        });
    }
    let pairs: Vec<(i64, i64)> = monitors.iter().map(|a| (a.id, a.updated_at)).collect();
    Ok(Assignments {
        version: proto::list_version(&pairs),
        location: location.name.clone(),
        agents: agents.len(),
        monitors,
    })
}

/// A location's status as the API and the Locations page show it: `revoked` (its token was
/// revoked), `waiting` (no agent ever reported), `online` or `offline`.
pub fn status(location: &LocationRow, newest_seen: Option<i64>, now: i64) -> &'static str {
    if location.revoked_at.is_some() {
        "revoked"
    } else if newest_seen.is_none() {
        "waiting"
    } else if is_online(location, newest_seen, now) {
        "online"
    } else {
        "offline"
    }
}

/// Whether a location counts now: it has an agent seen within [`LOCATION_OFFLINE_MS`] and its
/// token is not revoked.
pub fn is_online(location: &LocationRow, newest_seen: Option<i64>, now: i64) -> bool {
    location.revoked_at.is_none() && newest_seen.is_some_and(|t| now - t <= LOCATION_OFFLINE_MS)
}

/// Announces locations whose health changed since the last announcement: `location.offline`
/// when no agent reported within [`LOCATION_OFFLINE_MS`] (or the token was revoked),
/// `location.online` when one reports again. Run by the uptime upkeep job (one replica, every
/// minute); returns how many changed.
pub async fn announce_health(
    store: &lookout_store::Store,
    now: i64,
) -> lookout_store::Result<usize> {
    let mut changed = 0;
    for loc in lstore::list_locations(store).await? {
        let newest = lstore::agents(store, loc.id)
            .await?
            .iter()
            .map(|a| a.last_seen_at)
            .max();
        // A location no agent ever reported from is not announced offline: it is being set up.
        let online = is_online(&loc, newest, now);
        if online != loc.offline || (newest.is_none() && loc.revoked_at.is_none()) {
            continue;
        }
        let kind = if online {
            "location.online"
        } else {
            "location.offline"
        };
        let payload = serde_json::json!({"location_id": loc.id, "name": loc.name, "at": now,
            "last_seen_at": newest, "revoked": loc.revoked_at.is_some()});
        let event = lookout_store::events::publish(kind, None, Some(loc.name.clone()), &payload);
        if lstore::set_offline(store, loc.id, !online, event).await? {
            tracing::info!(location = %loc.name, event = kind, "Location health changed.");
            changed += 1;
        }
    }
    Ok(changed)
}
