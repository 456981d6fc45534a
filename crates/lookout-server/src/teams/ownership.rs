//! Team ownership as the API and the UI take it: the `team_id` of a body (checked against the
//! organization's teams, so an unknown team is a 422 naming the field, before anything is
//! written) and the `team` filter of lists (`mine`, a team's `#slug` or id).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_store::ownership::TeamChange;
use lookout_store::{teams, tenancy};

/// The `team` filter of lists of owned objects.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamParam {
    /// `mine` (the caller's teams), or a team's slug (with or without `#`) or id: only objects
    /// that team owns.
    pub team: Option<String>,
}

/// Refuses a team id that is not one of the organization's teams (tens, so read whole).
pub async fn check_team(state: &AppState, id: i64) -> ServiceResult<()> {
    let org = tenancy::default_org(state.store()).await?;
    if teams::all(state.store(), org.id)
        .await?
        .iter()
        .any(|t| t.id == id)
    {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "team_id: team {id} does not exist"
        )))
    }
}

/// The owner change a JSON body asks for: no `team_id` keeps the owner, `null` clears it, an id
/// sets it (checked).
pub async fn team_change(state: &AppState, body: &Value) -> ServiceResult<TeamChange> {
    match body.get("team_id") {
        None => Ok(TeamChange::Keep),
        Some(Value::Null) => Ok(TeamChange::Set(None)),
        Some(v) => {
            let id = v
                .as_i64()
                .ok_or_else(|| ServiceError::Invalid("team_id must be a team id or null".into()))?;
            check_team(state, id).await?;
            Ok(TeamChange::Set(Some(id)))
        }
    }
}

/// The owner a form's `team` field asks for: empty is none, otherwise a team id (checked).
pub async fn team_of_form(state: &AppState, field: Option<&str>) -> ServiceResult<Option<i64>> {
    match field.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            let id = s
                .parse::<i64>()
                .map_err(|_| ServiceError::Invalid("team: pick one of the teams".into()))?;
            check_team(state, id).await?;
            Ok(Some(id))
        }
    }
}

/// The teams a list is narrowed to: `None` is no filter; `mine` is the caller's teams (an
/// empty set when they belong to none); a slug or id names one team (unknown: 422).
pub async fn team_filter(
    state: &AppState,
    user_id: Option<i64>,
    team: Option<&str>,
) -> ServiceResult<Option<HashSet<i64>>> {
    let Some(team) = team.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if team == "mine" {
        let user = user_id.ok_or_else(|| {
            ServiceError::Invalid("team=mine needs a user: sign in, or use a user's token".into())
        })?;
        let mine = teams::of_user(state.store(), user).await?;
        return Ok(Some(mine.into_iter().map(|t| t.id).collect()));
    }
    let org = tenancy::default_org(state.store()).await?;
    let slug = team.trim_start_matches('#').to_ascii_lowercase();
    let found = teams::all(state.store(), org.id)
        .await?
        .into_iter()
        .find(|t| t.slug == slug || t.id.to_string() == team);
    match found {
        Some(t) => Ok(Some(HashSet::from([t.id]))),
        None => Err(ServiceError::Invalid(format!(
            "team: no team {team} (use mine, a team's slug or its id)"
        ))),
    }
}

/// Whether an object owned by `owner` passes `filter`.
pub fn keeps(filter: Option<&HashSet<i64>>, owner: Option<i64>) -> bool {
    match filter {
        None => true,
        Some(f) => owner.is_some_and(|o| f.contains(&o)),
    }
}

/// `rows` narrowed by the `team` filter of a list (each row's owner read by `owner`).
pub async fn filter_owned<T>(
    state: &AppState,
    user_id: Option<i64>,
    param: &TeamParam,
    rows: Vec<T>,
    owner: impl Fn(&T) -> Option<i64>,
) -> ServiceResult<Vec<T>> {
    let filter = team_filter(state, user_id, param.team.as_deref()).await?;
    Ok(rows
        .into_iter()
        .filter(|r| keeps(filter.as_ref(), owner(r)))
        .collect())
}

/// Serde `deserialize_with` for an optional nullable field: present (even `null`) is `Some`, so
/// a body can clear an owner (`"team_id": null`) apart from leaving it (no `team_id`).
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}
