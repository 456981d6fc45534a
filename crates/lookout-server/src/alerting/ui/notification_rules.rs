//! The "How you are paged" panel of `/account`: the user's notification rules per urgency as
//! rows of (contact method, delay in minutes), with one empty row more to add one. Saved
//! through the same service as `PUT /api/v1/me/notification-rules`; a refused form comes back
//! as typed with the wrong row marked.

use super::forms;
use crate::alerting::notification_rules::{self as svc, RuleView, RulesView, MAX_RULES};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use lookout_store::alerting as astore;
use lookout_store::tenancy;

/// One row as typed.
#[derive(Debug, Clone, Default)]
pub struct RuleRow {
    /// The contact method's id, or empty.
    pub channel: String,
    /// The delay in minutes, as typed.
    pub delay: String,
    /// A refusal named this row.
    pub invalid: bool,
}

impl RuleRow {
    /// Whether contact method `id` is chosen.
    pub fn is(&self, id: &i64) -> bool {
        self.channel.trim() == id.to_string()
    }
}

/// The panel: the user's contact methods and the rows of each urgency.
#[derive(Debug, Clone, Default)]
pub struct RulesPanel {
    /// `(id, label)` of the user's contact methods.
    pub methods: Vec<(i64, String)>,
    /// High-urgency rows.
    pub high: Vec<RuleRow>,
    /// Low-urgency rows.
    pub low: Vec<RuleRow>,
}

fn rows(list: &[RuleView]) -> Vec<RuleRow> {
    list.iter()
        .map(|r| RuleRow {
            channel: r.channel_id.to_string(),
            delay: r.delay_minutes.to_string(),
            invalid: false,
        })
        .collect()
}

impl RulesPanel {
    /// From the posted pairs (`high0_channel`, `high0_delay`, …); rows without a contact method
    /// are dropped.
    pub fn parse(pairs: &[(String, String)]) -> RulesPanel {
        let mut p = RulesPanel::default();
        for (k, v) in pairs {
            for (urgency, list) in [("high", &mut p.high), ("low", &mut p.low)] {
                let Some((i, what)) = forms::indexed(k, urgency, MAX_RULES) else {
                    continue;
                };
                if list.len() <= i {
                    list.resize(i + 1, RuleRow::default());
                }
                match what {
                    "channel" => list[i].channel = v.clone(),
                    "delay" => list[i].delay = v.clone(),
                    _ => {}
                }
            }
        }
        for list in [&mut p.high, &mut p.low] {
            list.retain(|r| !r.channel.trim().is_empty());
        }
        p
    }

    /// The API document; a delay that is not a whole number is refused naming its row.
    fn body(&self) -> ServiceResult<RulesView> {
        let conv = |urgency: &str, list: &[RuleRow]| -> ServiceResult<Vec<RuleView>> {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    let bad = |f: &str| {
                        ServiceError::Invalid(format!("{urgency}[{i}].{f}: a whole number"))
                    };
                    let delay = r.delay.trim();
                    Ok(RuleView {
                        channel_id: r.channel.trim().parse().map_err(|_| bad("channel_id"))?,
                        delay_minutes: if delay.is_empty() {
                            0
                        } else {
                            delay.parse().map_err(|_| bad("delay_minutes"))?
                        },
                    })
                })
                .collect()
        };
        Ok(RulesView {
            high: Some(conv("high", &self.high)?),
            low: Some(conv("low", &self.low)?),
        })
    }

    /// Marks the row a refusal names (`low[2].delay_minutes`).
    fn mark(&mut self, message: &str) {
        for (urgency, list) in [("high", &mut self.high), ("low", &mut self.low)] {
            if let Some(i) = message
                .strip_prefix(&format!("{urgency}["))
                .and_then(|r| r.split_once(']'))
                .and_then(|(i, _)| i.parse::<usize>().ok())
            {
                if let Some(r) = list.get_mut(i) {
                    r.invalid = true;
                }
            }
        }
    }

    /// Saves the panel for `user_id`; the refusal (the panel marked) when the service refuses.
    pub async fn save(
        mut self,
        state: &AppState,
        user_id: i64,
    ) -> ServiceResult<Result<(), (RulesPanel, String)>> {
        let saved = match self.body() {
            Ok(b) => svc::set(state, user_id, &b).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match saved {
            Ok(()) => Ok(Ok(())),
            Err(ServiceError::Invalid(m)) => {
                self.mark(&m);
                Ok(Err((self, m)))
            }
            Err(e) => Err(e),
        }
    }
}

/// The panel for `user_id`: `typed` (after a refusal) or the stored rules, each urgency with
/// empty rows to add more, and the user's contact methods to choose from.
pub async fn panel(
    state: &AppState,
    user_id: i64,
    typed: Option<RulesPanel>,
) -> ServiceResult<RulesPanel> {
    let org = tenancy::default_org(state.store()).await?;
    let methods = astore::channel_list(state.store(), org.id, Some(user_id))
        .await?
        .into_iter()
        .map(|c| (c.id, format!("{} ({})", c.name, c.kind)))
        .collect();
    let mut p = match typed {
        Some(t) => t,
        None => {
            let stored = svc::get(state, user_id).await?;
            RulesPanel {
                high: rows(stored.high.as_deref().unwrap_or_default()),
                low: rows(stored.low.as_deref().unwrap_or_default()),
                ..RulesPanel::default()
            }
        }
    };
    p.methods = methods;
    // One empty row more than the rules, and at least three, so a first list of steps can be
    // written in one go.
    for list in [&mut p.high, &mut p.low] {
        let rows = (list.len() + 1).clamp(3, MAX_RULES);
        list.resize(rows, RuleRow::default());
    }
    Ok(p)
}
