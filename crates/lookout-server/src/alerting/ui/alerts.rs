//! The Alerts section: alert policies, escalation policies, integrations (with the URL to send
//! to), channels, runbooks and schedules at a glance, each linking to its form; alert policies,
//! escalation policies, schedules and channels switch on and off from the list, and a disabled
//! one carries a "Disabled" badge.

use askama::Template;
use axum::extract::{Query, State};
use serde_json::Value;

use crate::alerting::service::{integration_url, MASKED_KEY};
use crate::state::AppState;
use crate::teams::owned_ui::{TeamLists, TeamQuery};
use crate::ui::error::UiResult;
use crate::ui::extract::Page;
use crate::ui::layout::{render, PageCtx};
use lookout_store::alerting::{self as astore, SpecTable};
use lookout_store::tenancy;

/// A policy row: id, name, conditions, who it pages, grouping, enabled, owning team.
type PolicyRow = (i64, String, String, String, String, bool, String);

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    title: String,
    ctx: PageCtx,
    policies: Vec<PolicyRow>,
    escalations: Vec<(i64, String, String, bool, String)>,
    integrations: Vec<(i64, String, String, String, bool)>,
    channels: Vec<(i64, String, String, String, String, bool)>,
    runbooks: Vec<(i64, String, i64, crate::ui::fmt::When)>,
    schedules: Vec<(i64, String, String, bool, String)>,
    can_edit: bool,
    owners: TeamLists,
}

fn conditions(spec: &Value) -> String {
    spec["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| match c["source"].as_str() {
                    Some("monitor") => {
                        let ev: Vec<&str> = c["events"]
                            .as_array()
                            .map(|e| e.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        if ev.is_empty() {
                            "monitor: any".to_string()
                        } else {
                            format!("monitor: {}", ev.join(", "))
                        }
                    }
                    Some("errors") => format!("errors: {}", c["event"].as_str().unwrap_or("?")),
                    Some("nrql") => {
                        let t = |p: &str| {
                            c[p]["operator"]
                                .as_str()
                                .map(|o| format!(" {p} {} {}", o.replace('_', " "), c[p]["value"]))
                        };
                        format!(
                            "query: {}{}{}",
                            c["nrql"].as_str().unwrap_or("?"),
                            t("critical").unwrap_or_default(),
                            t("warning").unwrap_or_default()
                        )
                    }
                    other => other.unwrap_or("?").to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// `GET /alerts`.
pub async fn page(
    State(state): State<AppState>,
    Page {
        ctx, session: s, ..
    }: Page,
    Query(q): Query<TeamQuery>,
) -> UiResult {
    let team_lists = TeamLists::load(&state, s.user.id, &q).await?;
    let loaded = async {
        let store = state.store();
        let org = tenancy::default_org(store).await?;
        let eps = astore::spec_list(store, SpecTable::EscalationPolicies, org.id).await?;
        let ep_name = |id: Option<i64>| {
            id.and_then(|id| eps.iter().find(|e| e.id == id))
                .map_or("nobody".to_string(), |e| e.name.clone())
        };
        let policies = astore::spec_list(store, SpecTable::Policies, org.id)
            .await?
            .into_iter()
            .filter(|p| team_lists.keeps(p.team_id))
            .map(|p| {
                (
                    p.id,
                    p.name.clone(),
                    conditions(&p.spec),
                    ep_name(p.spec["escalation_policy_id"].as_i64()),
                    p.spec["grouping"]
                        .as_str()
                        .unwrap_or("per_signal")
                        .to_string(),
                    p.spec["enabled"] != Value::Bool(false),
                    team_lists.name(p.team_id),
                )
            })
            .collect();
        let escalations = eps
            .iter()
            .filter(|e| team_lists.keeps(e.team_id))
            .map(|e| {
                let rules = e.spec["escalation_rules"].as_array().map_or(0, Vec::len);
                (
                    e.id,
                    e.name.clone(),
                    format!(
                        "{rules} rule(s), repeats {} time(s), ack timeout {} min",
                        e.spec["num_loops"].as_i64().unwrap_or(0),
                        e.spec["ack_timeout_minutes"].as_i64().unwrap_or(30)
                    ),
                    e.spec["enabled"] != Value::Bool(false),
                    team_lists.name(e.team_id),
                )
            })
            .collect();
        let integrations = astore::integration_list(store, org.id)
            .await?
            .into_iter()
            .map(|i| {
                // Keys are credentials: shown to members, masked for viewers (as in the API).
                let key = if s.user.role >= lookout_core::Role::Member {
                    state.sealer().open(&i.key_sealed).unwrap_or_default()
                } else {
                    MASKED_KEY.to_string()
                };
                let url = integration_url(&state.settings().public_url, &i.kind, &key);
                let enabled = i.spec["enabled"] != Value::Bool(false);
                (i.id, i.name, i.kind, url, enabled)
            })
            .collect();
        let channels_rows = astore::channel_list(store, org.id, None).await?;
        let owners: Vec<i64> = channels_rows.iter().filter_map(|c| c.user_id).collect();
        let owner_names = astore::display_names(store, &owners).await?;
        let channels = channels_rows
            .into_iter()
            .map(|c| {
                let owner = c.user_id.map_or("team".into(), |u| {
                    owner_names.get(&u).cloned().unwrap_or(format!("user {u}"))
                });
                (
                    c.id,
                    c.name,
                    c.kind,
                    owner,
                    c.urgencies.join(", "),
                    c.enabled,
                )
            })
            .collect();
        let schedules = astore::spec_list(store, SpecTable::Schedules, org.id)
            .await?
            .into_iter()
            .filter(|s| team_lists.keeps(s.team_id))
            .map(|s| {
                let tz = s.spec["time_zone"].as_str().unwrap_or("UTC").to_string();
                let enabled = s.spec["enabled"] != Value::Bool(false);
                (s.id, s.name, tz, enabled, team_lists.name(s.team_id))
            })
            .collect();
        let runbooks = astore::runbook_list(store, org.id)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    r.name,
                    r.version,
                    crate::ui::fmt::When::at(r.updated_at),
                )
            })
            .collect();
        Ok::<_, lookout_store::StoreError>((
            policies,
            escalations,
            integrations,
            channels,
            runbooks,
            schedules,
        ))
    }
    .await;
    let (policies, escalations, integrations, channels, runbooks, schedules) = loaded?;
    Ok(render(&AlertsPage {
        title: "Alerts".into(),
        ctx,
        policies,
        escalations,
        integrations,
        channels,
        runbooks,
        schedules,
        can_edit: s.user.role >= lookout_core::Role::Member,
        owners: team_lists,
    }))
}
