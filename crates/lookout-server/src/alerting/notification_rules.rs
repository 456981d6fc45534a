//! Per-user notification rules, checked once for the API and the account page: for each
//! urgency an ordered list of (contact method, delay in minutes). An empty list is the default:
//! every contact method for that urgency at once.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_store::alerting::{self as astore, rules};
use lookout_store::tenancy;

/// Most rules per urgency.
pub const MAX_RULES: usize = 10;
/// Longest delay, minutes (a day).
pub const MAX_DELAY_MINUTES: i64 = 1440;
/// The urgencies rules are kept for.
pub const URGENCIES: [&str; 2] = ["high", "low"];

/// One rule as the API shows and takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleView {
    /// One of the user's contact methods (`GET /api/v1/channels?user=…`).
    pub channel_id: i64,
    /// Minutes after the page, if the incident is still unacknowledged (0: at once).
    pub delay_minutes: i64,
}

/// A user's rules per urgency; an empty list means every contact method for it at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesView {
    /// High-urgency incidents.
    #[serde(default)]
    pub high: Option<Vec<RuleView>>,
    /// Low-urgency incidents.
    #[serde(default)]
    pub low: Option<Vec<RuleView>>,
}

/// The rules of `user_id`, both urgencies present.
pub async fn get(state: &AppState, user_id: i64) -> ServiceResult<RulesView> {
    tenancy::get_user(state.store(), user_id)
        .await
        .map_err(ServiceError::not_found("user"))?;
    let all = rules::rules_of(state.store(), user_id).await?;
    let of = |u: &str| {
        Some(
            all.iter()
                .filter(|r| r.urgency == u)
                .map(|r| RuleView {
                    channel_id: r.channel_id,
                    delay_minutes: r.delay_minutes,
                })
                .collect(),
        )
    };
    Ok(RulesView {
        high: of("high"),
        low: of("low"),
    })
}

/// Replaces the urgencies `body` names (an absent one is kept). Each rule's channel must be one
/// of the user's contact methods and its delay 0 to [`MAX_DELAY_MINUTES`]; a refusal names the
/// rule (`high[1].channel_id`) and nothing is stored.
pub async fn set(state: &AppState, user_id: i64, body: &RulesView) -> ServiceResult<RulesView> {
    tenancy::get_user(state.store(), user_id)
        .await
        .map_err(ServiceError::not_found("user"))?;
    let org = tenancy::default_org(state.store()).await?;
    let methods = astore::channel_list(state.store(), org.id, Some(user_id)).await?;
    let mut checked = Vec::new();
    for (urgency, list) in [("high", &body.high), ("low", &body.low)] {
        let Some(list) = list else { continue };
        if list.len() > MAX_RULES {
            return Err(ServiceError::Invalid(format!(
                "{urgency}: at most {MAX_RULES} rules"
            )));
        }
        for (i, r) in list.iter().enumerate() {
            if !methods.iter().any(|c| c.id == r.channel_id) {
                return Err(ServiceError::Invalid(format!(
                    "{urgency}[{i}].channel_id: {} is not one of this user's contact methods",
                    r.channel_id
                )));
            }
            if !(0..=MAX_DELAY_MINUTES).contains(&r.delay_minutes) {
                return Err(ServiceError::Invalid(format!(
                    "{urgency}[{i}].delay_minutes: 0 to {MAX_DELAY_MINUTES}"
                )));
            }
        }
        let pairs: Vec<(i64, i64)> = list
            .iter()
            .map(|r| (r.channel_id, r.delay_minutes))
            .collect();
        checked.push((urgency, pairs));
    }
    // Every urgency in one transaction: a failure leaves all of them as they were.
    rules::set_rules(state.store(), user_id, &checked).await?;
    tracing::info!(user = user_id, "Notification rules changed.");
    get(state, user_id).await
}
