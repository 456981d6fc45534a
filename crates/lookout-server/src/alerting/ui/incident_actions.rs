//! The incident page's action forms — Reassign, Snooze, Add responder, Merge — and what they
//! offer (users and escalation policies by name, the other open incidents). Each form posts to
//! its own address, is refused to viewers before its body is read, and calls the service the
//! API calls (`alerting::incident_ops`); a refused form comes back as the incident page with
//! 422, the form open, what was typed kept and the wrong field marked.

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};

use crate::alerting::incident_ops::{self as ops, Target};
use crate::alerting::ui::forms::{self, Refusal};
use crate::service::ServiceResult;
use crate::state::AppState;
use crate::ui::check_csrf;
use crate::ui::error::UiResult;
use crate::ui::extract::{Member, Signed};
use lookout_store::alerting::incidents::{self, ListFilter};
use lookout_store::alerting::SpecTable;
use lookout_store::tenancy;

/// A form the page refused: which one, why, and what was typed.
#[derive(Debug, Default)]
pub struct Refused {
    /// `reassign`, `snooze`, `responder` or `merge`.
    pub form: &'static str,
    /// The message and the field it names.
    pub refusal: Refusal,
    /// The fields as posted.
    pub values: Vec<(String, String)>,
}

/// What the action forms offer and, after a refusal, hold.
#[derive(Debug, Default)]
pub struct ActionForms {
    /// `(value, label)` of every user (`user:3`) and escalation policy
    /// (`escalation_policy:2`), for the Reassign and Add responder selects.
    pub users: Vec<(String, String)>,
    /// The escalation policies, as `users`.
    pub policies: Vec<(String, String)>,
    /// Other open incidents `(id, title, status)`, for Merge (at most [`ops::MAX_MERGE`]).
    pub others: Vec<(i64, String, String)>,
    /// The form refused, if any.
    pub refused: Option<Refused>,
}

impl ActionForms {
    fn refused_form(&self, form: &str) -> Option<&Refused> {
        self.refused.as_ref().filter(|r| r.form == form)
    }

    /// Whether form `form` was refused (it is shown open).
    pub fn open(&self, form: &str) -> bool {
        self.refused_form(form).is_some()
    }

    /// The refusal message of `form`, or empty.
    pub fn error(&self, form: &str) -> String {
        self.refused_form(form)
            .map(|r| r.refusal.message.clone())
            .unwrap_or_default()
    }

    /// Whether `field` of `form` is the one refused.
    pub fn bad(&self, form: &str, field: &str) -> bool {
        self.refused_form(form).is_some_and(|r| r.refusal.is(field))
    }

    /// What was typed into `field` of `form` (empty when not refused).
    pub fn value(&self, form: &str, field: &str) -> String {
        self.refused_form(form)
            .and_then(|r| r.values.iter().find(|(k, _)| k == field))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Whether `value` was chosen for `field` of `form` (a select's option, a checkbox).
    pub fn chose(&self, form: &str, field: &str, value: &str) -> bool {
        self.refused_form(form)
            .is_some_and(|r| r.values.iter().any(|(k, v)| k == field && v == value))
    }

    /// Whether the snooze length `value` is the one to show selected (4 h unless refused).
    pub fn snooze_choice(&self, value: &str) -> bool {
        if self.open("snooze") {
            self.chose("snooze", "duration", value)
        } else {
            value == "240"
        }
    }
}

/// Loads what the forms of incident `id` offer.
pub async fn load(state: &AppState, id: i64) -> UiResult<ActionForms> {
    let users = forms::users(state)
        .await?
        .into_iter()
        .map(|(id, name)| (format!("user:{id}"), name))
        .collect();
    let policies = forms::spec_names(state, SpecTable::EscalationPolicies)
        .await?
        .into_iter()
        .map(|(id, name)| (format!("escalation_policy:{id}"), name))
        .collect();
    let org = tenancy::default_org(state.store())
        .await
        .map_err(crate::ui::error::UiError::from)?;
    let others = incidents::list(
        state.store(),
        org.id,
        &ListFilter {
            statuses: vec!["triggered".into(), "acknowledged".into()],
            limit: ops::MAX_MERGE as i64 + 1,
            ..Default::default()
        },
    )
    .await
    .map_err(crate::ui::error::UiError::from)?
    .into_iter()
    .filter(|i| i.id != id)
    .take(ops::MAX_MERGE)
    .map(|i| (i.id, i.title, i.status))
    .collect();
    Ok(ActionForms {
        users,
        policies,
        others,
        refused: None,
    })
}

/// Which form field a service message names.
const FIELDS: &[(&str, &str)] = &[
    ("user_id", "target"),
    ("escalation_policy_id", "target"),
    ("target", "target"),
    ("duration_minutes", "custom_minutes"),
    ("message", "message"),
    ("source_incident_ids", "source"),
];

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Answers a posted action: back to the incident page when it happened, or the page with the
/// form refused (422).
async fn answer(
    state: &AppState,
    signed: &Signed<Member>,
    id: i64,
    form: &'static str,
    pairs: Vec<(String, String)>,
    result: ServiceResult<()>,
) -> UiResult {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/incidents/{id}")).into_response()),
        Err(e) => {
            let refusal = forms::refusal(e, FIELDS)?;
            let refused = Refused {
                form,
                refusal,
                values: pairs.into_iter().filter(|(k, _)| k != "csrf").collect(),
            };
            let ctx = signed.layout(state).await?;
            let page =
                super::incidents::detail_page(state, ctx, &signed.session, id, Some(refused))
                    .await?;
            Ok(forms::with_status(page, true))
        }
    }
}

/// `POST /incidents/{id}/reassign` (`target`: `user:N` or `escalation_policy:N`).
pub async fn reassign(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    check_csrf(&signed.session, field(&pairs, "csrf"))?;
    let actor = forms::actor(&signed.session);
    let result = async {
        let target = Target::from_choice(field(&pairs, "target"))?;
        ops::reassign(&state, id, target, &actor).await.map(|_| ())
    }
    .await;
    answer(&state, &signed, id, "reassign", pairs, result).await
}

/// `POST /incidents/{id}/snooze` (`duration`: minutes, or `custom` with `custom_minutes`).
pub async fn snooze(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    check_csrf(&signed.session, field(&pairs, "csrf"))?;
    let actor = forms::actor(&signed.session);
    let typed = match field(&pairs, "duration") {
        "custom" => field(&pairs, "custom_minutes"),
        d => d,
    };
    let result = async {
        let minutes = typed.trim().parse::<i64>().map_err(|_| {
            crate::service::ServiceError::Invalid(format!(
                "duration_minutes must be a whole number of minutes, 1 to {}",
                ops::MAX_SNOOZE_MINUTES
            ))
        })?;
        ops::snooze(&state, id, minutes, &actor).await.map(|_| ())
    }
    .await;
    answer(&state, &signed, id, "snooze", pairs, result).await
}

/// `POST /incidents/{id}/responders` (`target`, optional `message`).
pub async fn add_responder(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    check_csrf(&signed.session, field(&pairs, "csrf"))?;
    let actor = forms::actor(&signed.session);
    let result = async {
        let target = Target::from_choice(field(&pairs, "target"))?;
        let message = Some(field(&pairs, "message"));
        ops::add_responder(&state, id, target, message, &actor)
            .await
            .map(|_| ())
    }
    .await;
    answer(&state, &signed, id, "responder", pairs, result).await
}

/// `POST /incidents/{id}/merge` (`source` repeated: the incidents to merge into this one).
pub async fn merge(
    State(state): State<AppState>,
    signed: Signed<Member>,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> UiResult {
    check_csrf(&signed.session, field(&pairs, "csrf"))?;
    let actor = forms::actor(&signed.session);
    // Bounded: one more than the limit is enough for the service to refuse the list.
    let sources: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "source")
        .take(ops::MAX_MERGE + 1)
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let result = ops::merge(&state, id, &sources, &actor).await.map(|_| ());
    answer(&state, &signed, id, "merge", pairs, result).await
}
