//! Team ownership on pages: the "Owning team" select every owned object's form carries, the
//! team column of lists, and the "All · My teams" filter above them (`?team=mine`).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::state::AppState;
use crate::ui::error::UiResult;
use lookout_store::{teams, tenancy};

/// The form that sets or clears one object's owning team from its page (a service, a project).
#[derive(Debug, Deserialize)]
pub struct TeamForm {
    pub(crate) csrf: String,
    /// The owning team's id, or empty for none.
    #[serde(default)]
    pub(crate) team: String,
}

/// The form field: every team, the one chosen, and whether a refusal named it.
#[derive(Debug, Clone, Default)]
pub struct TeamField {
    /// `(id, name)` of every team.
    pub options: Vec<(i64, String)>,
    /// The chosen team's id as typed (empty: no team).
    pub selected: String,
    /// The refusal named this field.
    pub refused: bool,
}

impl TeamField {
    /// Whether team `id` is the chosen one.
    pub fn is(&self, id: &i64) -> bool {
        self.selected.trim() == id.to_string()
    }
}

/// The field with `selected` chosen (a team id as text, or empty).
pub async fn team_field(state: &AppState, selected: &str, refused: bool) -> UiResult<TeamField> {
    let org = tenancy::default_org(state.store()).await?;
    Ok(TeamField {
        options: teams::all(state.store(), org.id)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect(),
        selected: selected.to_string(),
        refused,
    })
}

/// A stored owner as the form's text.
pub fn selected(team_id: Option<i64>) -> String {
    team_id.map(|t| t.to_string()).unwrap_or_default()
}

/// `?team=` of a list page.
#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    /// `mine`: only objects the viewer's teams own.
    pub team: Option<String>,
}

/// The list filter and the team names lists show.
#[derive(Debug, Default)]
pub struct TeamLists {
    /// Team id → name.
    names: HashMap<i64, String>,
    /// Set when the list shows the viewer's teams' objects only.
    mine: Option<HashSet<i64>>,
}

impl TeamLists {
    /// Loads the names and, with `?team=mine`, the viewer's teams.
    pub async fn load(state: &AppState, user_id: i64, q: &TeamQuery) -> UiResult<TeamLists> {
        let org = tenancy::default_org(state.store()).await?;
        let names = teams::all(state.store(), org.id)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let mine = if q.team.as_deref() == Some("mine") {
            Some(
                teams::of_user(state.store(), user_id)
                    .await?
                    .into_iter()
                    .map(|t| t.id)
                    .collect(),
            )
        } else {
            None
        };
        Ok(TeamLists { names, mine })
    }

    /// Whether an object owned by `owner` is listed.
    pub fn keeps(&self, owner: Option<i64>) -> bool {
        super::ownership::keeps(self.mine.as_ref(), owner)
    }

    /// Whether the "My teams" filter is on.
    pub fn mine(&self) -> bool {
        self.mine.is_some()
    }

    /// The owner's name for a list cell (empty when none).
    pub fn name(&self, owner: Option<i64>) -> String {
        owner
            .and_then(|t| self.names.get(&t).cloned())
            .unwrap_or_default()
    }
}
