//! Team ownership of configuration objects: schedules, escalation policies, alert policies,
//! monitors, projects and APM services carry a `team_id` written in the same statement as the
//! object (see [`crate::alerting::spec_save`] and the monitor, project and APM service writes);
//! this module holds what they share. Ownership is a label for people ("whose is this?", "my
//! teams' monitors"); it grants no rights.

/// What a write does to an object's owning team: PUT bodies without `team_id` keep it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TeamChange {
    /// Leave the owner as it is (a new object gets none).
    #[default]
    Keep,
    /// Set the owner (`None`: no owner).
    Set(Option<i64>),
}

impl TeamChange {
    /// The owner a new object gets.
    pub fn initial(self) -> Option<i64> {
        match self {
            TeamChange::Keep => None,
            TeamChange::Set(t) => t,
        }
    }

    /// 1 when an update sets the owner (bound next to [`TeamChange::value`] in
    /// `CASE WHEN flag = 1 THEN value ELSE team_id END`).
    pub fn flag(self) -> i64 {
        i64::from(matches!(self, TeamChange::Set(_)))
    }

    /// The owner to set, when [`TeamChange::flag`] is 1.
    pub fn value(self) -> Option<i64> {
        self.initial()
    }
}
