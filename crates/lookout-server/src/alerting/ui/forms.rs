//! What the alert-configuration forms share: which field a refusal names (so the page marks it
//! and keeps what was typed), the lists a form offers (users, schedules, channels, escalation
//! policies, runbooks) and small conversions from form text to the API's JSON values.
//!
//! Forms are turned into the API's JSON documents and handed to the same service functions the
//! API calls (`alerting::config`, `alerting::oncall`): the rules live there, once.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::service::ServiceError;
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::{tenancy, Cursor, StoreError};

/// Largest form body these pages accept (a runbook is at most 256 KiB of Markdown).
pub const MAX_FORM: usize = 300 * 1024;

/// A refused form: the message, and the form field it names (empty when none is named).
#[derive(Debug, Default, Clone)]
pub struct Refusal {
    /// What is wrong, as the service said it.
    pub message: String,
    /// The field to mark.
    pub field: String,
}

impl Refusal {
    /// Whether `name` is the field refused.
    pub fn is(&self, name: &str) -> bool {
        self.field == name
    }
}

/// The refusal of a form from a service error, or the error when it is not about the input
/// (storage, a missing row). `fields` maps the names in messages (`escalation_rules[0].targets`,
/// `smtp_host`) to the form's fields, first match wins.
pub fn refusal(e: ServiceError, fields: &[(&str, &str)]) -> UiResult<Refusal> {
    match e {
        ServiceError::Invalid(message) | ServiceError::Conflict(message) => {
            let field = fields
                .iter()
                .find(|(needle, _)| mentions(&message, needle))
                .map(|(_, f)| f.to_string())
                .unwrap_or_default();
            Ok(Refusal { message, field })
        }
        e => Err(e.into()),
    }
}

/// Whether `msg` names `word` as a whole word (`url` in "url: …", not in "urgency").
fn mentions(msg: &str, word: &str) -> bool {
    msg.match_indices(word).any(|(i, _)| {
        let before = msg[..i].chars().next_back();
        let after = msg[i + word.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !part(before) && !part(after)
    })
}

/// A page answered with 422 when it shows a refusal.
pub fn with_status(mut r: Response, refused: bool) -> Response {
    if refused {
        *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

/// A repeated form field's row and part: `indexed("rule2_delay", "rule", 20)` is `(2, "delay")`;
/// none for other names and for rows at or past `max` (forms show at most that many).
pub fn indexed<'k>(key: &'k str, prefix: &str, max: usize) -> Option<(usize, &'k str)> {
    key.strip_prefix(prefix)
        .and_then(|r| r.split_once('_'))
        .and_then(|(i, w)| i.parse::<usize>().ok().map(|i| (i, w)))
        .filter(|(i, _)| *i < max)
}

/// `""` as null, a number as an id, anything else kept as text (so the service refuses it
/// and names the field).
pub fn opt_id(s: &str) -> Value {
    let s = s.trim();
    if s.is_empty() {
        Value::Null
    } else {
        s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n))
    }
}

/// A whole number typed in a form: a number when it is one, the text otherwise (refused by
/// the service with the field's name), absent when empty.
pub fn number(s: &str) -> Option<Value> {
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        Some(s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n)))
    }
}

/// Users as `(id, name)`, named by display name or email.
pub async fn users(state: &AppState) -> UiResult<Vec<(i64, String)>> {
    let list = tenancy::list_users(
        state.store(),
        &Cursor {
            after: None,
            limit: Some(1000),
        },
    )
    .await?
    .items;
    let ids: Vec<i64> = list.iter().map(|u| u.id).collect();
    Ok(astore::display_names(state.store(), &ids)
        .await?
        .into_iter()
        .collect())
}

/// Users as `(id, label)` for a select: the display name, with the email beside it when
/// another user shows the same name (two people called Alex Kim must be told apart).
pub async fn user_choices(state: &AppState) -> UiResult<Vec<(i64, String)>> {
    let ids: Vec<i64> = users(state).await?.iter().map(|u| u.0).collect();
    let rows = astore::user_names(state.store(), &ids).await?;
    let shown = |r: &(i64, Option<String>, String)| r.1.clone().unwrap_or_else(|| r.2.clone());
    Ok(rows
        .iter()
        .map(|r| {
            let name = shown(r);
            let shared = rows.iter().any(|o| o.0 != r.0 && shown(o) == name);
            let label = if shared && name != r.2 {
                format!("{name} <{}>", r.2)
            } else {
                name
            };
            (r.0, label)
        })
        .collect())
}

/// The name of user `id` in `users`, or "user N".
pub fn user_name(users: &[(i64, String)], id: i64) -> String {
    users
        .iter()
        .find(|u| u.0 == id)
        .map_or_else(|| format!("user {id}"), |u| u.1.clone())
}

/// `(id, name)` of the rows of a spec table.
pub async fn spec_names(state: &AppState, t: SpecTable) -> Result<Vec<(i64, String)>, UiError> {
    let org = tenancy::default_org(state.store()).await?;
    Ok(astore::spec_list(state.store(), t, org.id)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect())
}

/// `(id, name)` of the runbooks.
pub async fn runbook_names(state: &AppState) -> Result<Vec<(i64, String)>, StoreError> {
    let org = tenancy::default_org(state.store()).await?;
    Ok(astore::runbook_list(state.store(), org.id)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect())
}

/// `(id, name)` of the team channels (not users' contact methods).
pub async fn channel_names(state: &AppState) -> Result<Vec<(i64, String)>, StoreError> {
    let org = tenancy::default_org(state.store()).await?;
    Ok(astore::channel_list(state.store(), org.id, None)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

/// The actor recorded for a change made on a page.
pub fn actor(session: &tenancy::Session) -> String {
    format!("user:{}", session.user.email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_field_its_message_names() {
        let fields = [
            ("url", "url"),
            ("urgencies", "urgency_high"),
            ("name", "name"),
        ];
        let r = refusal(
            ServiceError::Invalid("url: relative URL without a base".into()),
            &fields,
        )
        .unwrap();
        assert!(r.is("url"));
        let r = refusal(
            ServiceError::Invalid("urgencies holds \"high\" and/or \"low\"".into()),
            &fields,
        )
        .unwrap();
        assert_eq!(r.field, "urgency_high");
        let r = refusal(ServiceError::Invalid("something else".into()), &fields).unwrap();
        assert_eq!(r.field, "");
    }
}
