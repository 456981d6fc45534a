//! Saving and deleting rule files: the one place their rules live (a file is stored only when
//! it parses, and only while the project stays within [`parse::MAX_GROUPS`] and
//! [`parse::MAX_RULES`]). The API, the Rules page and the config reconciler call it.

use lookout_core::time::now_ms;
use lookout_store::prom::rules::{self as rstore, RuleFileRow};
use lookout_store::{Store, StoreError};

use super::parse::{self, RuleFile};
use crate::error::ApiError;

/// Longest rule file name.
pub const MAX_NAME: usize = 200;

/// Why a file was not saved.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file does not parse or breaks a limit: every problem, each naming its group, rule and
    /// field.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// The config file owns this file; change it there.
    #[error("{0}")]
    Conflict(String),
    /// No such file.
    #[error("rule file not found")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RulesError> for ApiError {
    fn from(e: RulesError) -> Self {
        match e {
            RulesError::Invalid(_) => ApiError::Validation(e.to_string()),
            RulesError::Conflict(m) => ApiError::Conflict(m),
            RulesError::NotFound => ApiError::NotFound("rule file"),
            RulesError::Store(s) => s.into(),
        }
    }
}

/// Checks a file name: 1 to [`MAX_NAME`] characters of letters, digits, `.`, `_`, `-` and `/`.
pub fn check_name(name: &str) -> Result<(), RulesError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if ok {
        Ok(())
    } else {
        Err(RulesError::Invalid(vec![format!(
            "name: 1 to {MAX_NAME} letters, digits, '.', '_', '-' or '/'"
        )]))
    }
}

/// Parses `content` and checks the project's limits with it in place of any file of that name
/// (a preview; [`save`] checks the limits again inside its write).
pub async fn check(
    store: &Store,
    project: i64,
    name: &str,
    content: &str,
) -> Result<RuleFile, RulesError> {
    check_name(name)?;
    let parsed = parse::parse(content).map_err(RulesError::Invalid)?;
    check_limits(rstore::files(store, project).await?, name, &parsed)?;
    Ok(parsed)
}

fn check_limits(files: Vec<RuleFileRow>, name: &str, parsed: &RuleFile) -> Result<(), RulesError> {
    let others: Vec<RuleFile> = files
        .into_iter()
        .filter(|f| f.name != name)
        .filter_map(|f| parse::parse(&f.content).ok())
        .collect();
    parse::check_project_limits(others.iter().chain(std::iter::once(parsed)))
        .map_err(|e| RulesError::Invalid(vec![e]))
}

/// Saves rule file `name` of `project` from the API or the page (a file the config file
/// declares is refused: it would be overwritten at the next reload).
pub async fn save(
    store: &Store,
    project: i64,
    name: &str,
    content: &str,
) -> Result<RuleFile, RulesError> {
    write(store, project, name, None, content).await
}

/// Saves a file the config file declares (unchanged content is left alone: no new version,
/// no audit entry).
pub async fn save_from_config(
    store: &Store,
    project: i64,
    name: &str,
    content: &str,
) -> Result<(), RulesError> {
    write(store, project, name, Some("config"), content).await?;
    Ok(())
}

/// The one write of a rule file: in one transaction, the project's writers serialised, the
/// limits checked against what is stored now, the file written, and the groups it no longer has
/// dropped with their state and the incidents of their firing alerts resolved (their state is
/// keyed by group, so nothing would resolve them later).
async fn write(
    store: &Store,
    project: i64,
    name: &str,
    managed_by: Option<&str>,
    content: &str,
) -> Result<RuleFile, RulesError> {
    check_name(name)?;
    let parsed = parse::parse(content).map_err(RulesError::Invalid)?;
    let origin = super::runner::origin(store, project).await?;
    let now = crate::alerting::db_now(store).await;
    let mut tx = store.begin_write().await?;
    rstore::lock_project_in(&mut tx, project).await?;
    let files = rstore::files_in(&mut tx, project).await?;
    if let Some(f) = files.iter().find(|f| f.name == name) {
        if managed_by.is_none() && f.managed_by.as_deref() == Some("config") {
            return Err(RulesError::Conflict(format!(
                "rule file {name:?} comes from the config file's rule_files; change it there"
            )));
        }
        if f.managed_by.as_deref() == managed_by && f.content == content {
            return Ok(parsed);
        }
    }
    check_limits(files, name, &parsed)?;
    rstore::put_file_in(&mut tx, project, name, managed_by, content, now_ms()).await?;
    let keep: Vec<String> = parsed.groups.iter().map(|g| g.name.clone()).collect();
    let dropped = rstore::delete_states_except_in(&mut tx, project, name, &keep).await?;
    resolve_in(&mut tx, &origin, &dropped, now).await?;
    lookout_store::audit::record_pending_in(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(parsed)
}

/// Resolves, in `tx`, the incidents of the firing alerts in these deleted group states.
async fn resolve_in(
    tx: &mut lookout_store::Tx,
    origin: &crate::alerting::engine::Origin,
    rows: &[rstore::GroupStateRow],
    now: i64,
) -> Result<(), StoreError> {
    for row in rows {
        let state: super::eval::GroupState = serde_json::from_str(&row.state).unwrap_or_default();
        for a in state.rules.iter().flat_map(|r| &r.alerts) {
            if a.state != super::eval::AlertState::Firing {
                continue;
            }
            if let Some(s) = super::runner::signal_of(a, lookout_oncall::inbound::Action::Resolve) {
                crate::alerting::engine::apply(tx, origin, &s, now).await?;
            }
        }
    }
    Ok(())
}

/// The file `name` of `project`, if any.
pub async fn find(
    store: &Store,
    project: i64,
    name: &str,
) -> Result<Option<RuleFileRow>, StoreError> {
    Ok(rstore::files(store, project)
        .await?
        .into_iter()
        .find(|f| f.name == name))
}

/// Deletes a file uploaded through the API or the page.
pub async fn delete(store: &Store, project: i64, name: &str) -> Result<(), RulesError> {
    match find(store, project, name).await? {
        None => Err(RulesError::NotFound),
        Some(f) if f.managed_by.as_deref() == Some("config") => Err(RulesError::Conflict(format!(
            "rule file {name:?} comes from the config file's rule_files; remove it there"
        ))),
        Some(_) => match remove(store, project, name).await {
            Err(StoreError::NotFound) => Err(RulesError::NotFound),
            other => Ok(other?),
        },
    }
}

/// Deletes a file with its groups' state and resolves, in the same transaction, the incidents
/// of the alerts it had firing (they would never be resolved otherwise). The state is read in
/// the transaction after the file row is deleted, so an evaluation racing the delete is either
/// included or stores nothing ([`rstore::file_unchanged_in`]).
pub async fn remove(store: &Store, project: i64, name: &str) -> Result<(), StoreError> {
    let origin = super::runner::origin(store, project).await?;
    let now = crate::alerting::db_now(store).await;
    let mut tx = store.begin_write().await?;
    let deleted = rstore::delete_file_in(&mut tx, project, name).await?;
    resolve_in(&mut tx, &origin, &deleted, now).await?;
    lookout_store::audit::record_pending_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
