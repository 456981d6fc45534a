//! Schemas for the OpenAPI document of handlers that build their answers as `serde_json::Value`
//! (a stored spec merged with its row's columns: channels, schedules, escalation policies,
//! alert policies, integrations, runbooks, incidents).
//!
//! Most of these types only describe (an incident, [`Incident`], is what `incident_view`
//! builds); the others' handlers do not build them. What keeps the two in step is
//! tests/sdk/test_openapi.py, which validates the server's real answers against these schemas
//! with every object closed (a field sent but not listed here fails). Fields a client may send
//! per type (a channel's `url`, `to`, …) are declared as `additionalProperties`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Declares `{"items": [...]}`: a whole list in one answer (lists without pagination).
macro_rules! items_of {
    ($name:ident, $item:ty) => {
        #[doc = concat!("All `", stringify!($item), "` rows.")]
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// The rows.
            pub items: Vec<$item>,
        }
    };
}

// ---------------------------------------------------------------------------------- channels

/// A notification channel or a user's contact method; secrets show as `********`.
#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `webhook`, `slack`, `discord`, `mattermost`, `email`, `ntfy` or `pagerduty`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user whose contact method this is; `null` for a team channel.
    pub user_id: Option<i64>,
    /// The urgencies it is used for (`high`, `low`).
    pub urgencies: Vec<String>,
    /// Off: pages to it are skipped ("skipped: channel disabled"); Send test still sends.
    pub enabled: bool,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
    /// The type's own settings (`url`, `secret`, `to`, `topic`, `routing_key`, …).
    #[serde(flatten)]
    pub config: BTreeMap<String, Value>,
}
items_of!(ChannelList, ChannelView);

/// A channel to create or replace: [`ChannelView`]'s fields (read-only ones are ignored).
#[derive(Serialize, ToSchema)]
pub struct ChannelInput {
    /// Name (1-200 characters).
    pub name: String,
    /// `webhook`, `slack`, `discord`, `mattermost`, `email`, `ntfy` or `pagerduty`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Makes it a contact method of this user.
    pub user_id: Option<i64>,
    /// `high` and/or `low` (default both).
    pub urgencies: Option<Vec<String>>,
    /// Default true; false: pages to it are skipped.
    pub enabled: Option<bool>,
    /// The type's own settings; `********` keeps a stored secret.
    #[serde(flatten)]
    pub config: BTreeMap<String, Value>,
}

// --------------------------------------------------------------------------------- schedules

/// A schedule override: `user` is on call from `start` to `end`, above every layer.
#[derive(Serialize, ToSchema)]
pub struct OverrideView {
    /// Id.
    pub id: i64,
    /// User id.
    pub user: i64,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
}
items_of!(OverrideList, OverrideView);

/// A new override.
#[derive(Serialize, ToSchema)]
pub struct OverrideInput {
    /// User id.
    pub user: i64,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
}

/// An on-call schedule in PagerDuty's shape.
#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// IANA time zone the layers' times are read in.
    pub time_zone: String,
    /// Rotation layers, lowest first (`start`, `end`, `rotation_virtual_start`,
    /// `rotation_turn_length_seconds`, `users`, `restrictions`).
    pub schedule_layers: Vec<BTreeMap<String, Value>>,
    /// Overrides that have not ended (one schedule), or none (the list).
    pub overrides: Vec<OverrideView>,
    /// Off: nobody is on call on it (its layers and overrides are kept).
    pub enabled: bool,
    /// The owning team's id (null: no team).
    pub team_id: Option<i64>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}
items_of!(ScheduleList, ScheduleView);

/// A schedule to create or replace; `overrides` without an `id` are added.
#[derive(Serialize, ToSchema)]
pub struct ScheduleInput {
    /// Name (1-200 characters).
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Rotation layers.
    pub schedule_layers: Vec<BTreeMap<String, Value>>,
    /// Overrides to add.
    pub overrides: Option<Vec<OverrideInput>>,
    /// Default true; false: nobody is on call on it.
    pub enabled: Option<bool>,
    /// The owning team's id; null clears it, absent keeps it.
    pub team_id: Option<i64>,
}

/// A user in an on-call answer.
#[derive(Serialize, ToSchema)]
pub struct OnCallUser {
    /// User id.
    pub id: i64,
    /// Display name (the email when none is set); absent for a deleted user.
    pub name: Option<String>,
    /// Email; absent for a deleted user.
    pub email: Option<String>,
}

/// Who is on call from `start` to `end`.
#[derive(Serialize, ToSchema)]
pub struct OnCallSpan {
    /// The user.
    pub user: OnCallUser,
    /// Start, RFC 3339.
    pub start: String,
    /// End, RFC 3339.
    pub end: String,
}

/// `?at=` answers who is on call then; `?since=&until=` answers the rendered spans.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OnCallAnswer {
    /// `?at=` (default now).
    At {
        /// Who is on call, `null` when nobody is.
        user: Option<OnCallUser>,
        /// The instant asked about, RFC 3339.
        at: String,
    },
    /// `?since=&until=`.
    Spans {
        /// The final schedule's spans in order.
        items: Vec<OnCallSpan>,
    },
}

/// `{"name"}`: a user's display name.
#[derive(Serialize, ToSchema)]
pub struct UserNameInput {
    /// The name; empty or `null` removes it.
    pub name: Option<String>,
}

// ----------------------------------------------------------------------- escalation policies

/// An escalation policy in PagerDuty's shape.
#[derive(Serialize, ToSchema)]
pub struct EscalationPolicyView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Rules in order: `escalation_delay_in_minutes` and `targets` of
    /// `{"type": "user|schedule|channel", "id"}`.
    pub escalation_rules: Vec<BTreeMap<String, Value>>,
    /// How many times the path repeats after the last rule (0-9).
    pub num_loops: i64,
    /// Minutes an acknowledgement holds before the incident pages again (0 = never; absent:
    /// the default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_timeout_minutes: Option<i64>,
    /// Off: incidents routed to it are opened but page nobody.
    pub enabled: bool,
    /// The owning team's id (null: no team).
    pub team_id: Option<i64>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}
items_of!(EscalationPolicyList, EscalationPolicyView);

/// An escalation policy to create or replace.
#[derive(Serialize, ToSchema)]
pub struct EscalationPolicyInput {
    /// Name (1-200 characters).
    pub name: String,
    /// Rules in order.
    pub escalation_rules: Vec<BTreeMap<String, Value>>,
    /// Repeats (0-9, default 0).
    pub num_loops: Option<i64>,
    /// 0 (off) to 1440; default 30.
    pub ack_timeout_minutes: Option<i64>,
    /// Default true; false: incidents routed to it page nobody.
    pub enabled: Option<bool>,
    /// The owning team's id; null clears it, absent keeps it.
    pub team_id: Option<i64>,
}

// ---------------------------------------------------------------------------------- policies

/// How an alert policy groups its signals into incidents.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyGrouping {
    /// One open incident per policy.
    PerPolicy,
    /// One per condition of the policy.
    PerCondition,
    /// One per condition and signal (monitor, issue, alert fingerprint).
    PerSignal,
}

/// An alert policy: what opens incidents.
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Conditions (each `{"source": …}` with the source's own fields).
    pub conditions: Vec<BTreeMap<String, Value>>,
    /// How alerts group into incidents.
    pub grouping: PolicyGrouping,
    /// `critical`, `error`, `warning` or `info`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `high` or `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    /// Service its incidents belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Escalation policy paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_policy_id: Option<i64>,
    /// Runbook attached to its incidents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook_id: Option<i64>,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// The owning team's id (null: no team).
    pub team_id: Option<i64>,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}
items_of!(PolicyList, PolicyView);

/// An alert policy to create or replace.
#[derive(Serialize, ToSchema)]
pub struct PolicyInput {
    /// Name.
    pub name: String,
    /// Conditions.
    pub conditions: Vec<BTreeMap<String, Value>>,
    /// Grouping (default `per_signal`).
    pub grouping: Option<PolicyGrouping>,
    /// Severity.
    pub severity: Option<String>,
    /// Urgency.
    pub urgency: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// Escalation policy.
    pub escalation_policy_id: Option<i64>,
    /// Runbook.
    pub runbook_id: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
    /// The owning team's id; null clears it, absent keeps it.
    pub team_id: Option<i64>,
}

// ------------------------------------------------------------------------------ integrations

/// An inbound integration: where another tool sends alerts.
#[derive(Serialize, ToSchema)]
pub struct IntegrationView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `pagerduty`, `alertmanager`, `grafana` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The integration key (PagerDuty's `routing_key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where to send.
    pub url: String,
    /// Escalation policy paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_policy_id: Option<i64>,
    /// Runbook attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook_id: Option<i64>,
    /// Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `high` or `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urgency: Option<String>,
    /// How a generic webhook's JSON maps to an alert (`webhook` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<BTreeMap<String, Value>>,
    /// Whether alerts sent to it are accepted (absent: yes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Created, RFC 3339.
    pub created_at: String,
}
items_of!(IntegrationList, IntegrationView);

/// An integration to create or change.
#[derive(Serialize, ToSchema)]
pub struct IntegrationInput {
    /// Name.
    pub name: String,
    /// `pagerduty`, `alertmanager`, `grafana` or `webhook` (on create).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Escalation policy.
    pub escalation_policy_id: Option<i64>,
    /// Runbook.
    pub runbook_id: Option<i64>,
    /// Service.
    pub service: Option<String>,
    /// `high` or `low`.
    pub urgency: Option<String>,
    /// Webhook mapping.
    pub mapping: Option<BTreeMap<String, Value>>,
    /// Off: the key stays but alerts sent to it are refused (default on).
    pub enabled: Option<bool>,
}

// ---------------------------------------------------------------------------------- runbooks

/// A runbook at one version.
#[derive(Serialize, ToSchema)]
pub struct RunbookView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// External URL.
    pub url: Option<String>,
    /// Version (1, 2, …).
    pub version: i64,
    /// Markdown.
    pub body: String,
    /// The body's `- [ ]` items in order.
    pub checklist: Vec<String>,
    /// Saved, RFC 3339.
    pub updated_at: String,
}
items_of!(RunbookList, RunbookView);

/// A runbook to create or save as a new version: a `body` (Markdown, up to 256 KiB) or a `url`.
#[derive(Serialize, ToSchema)]
pub struct RunbookInput {
    /// Name.
    pub name: String,
    /// Markdown.
    pub body: Option<String>,
    /// External URL.
    pub url: Option<String>,
}

// --------------------------------------------------------------------------------- incidents

/// An incident.
#[derive(Serialize, ToSchema)]
pub struct Incident {
    /// Id.
    pub id: i64,
    /// The same as `id` (PagerDuty's name).
    pub incident_number: i64,
    /// Title.
    pub title: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    /// `high` or `low`.
    pub urgency: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    /// Service.
    pub service: Option<String>,
    /// What opened it.
    pub source: Option<String>,
    /// Alerts with this key join it while it is open.
    pub dedup_key: String,
    /// Alert policy that opened it.
    pub policy_id: Option<i64>,
    /// Integration that opened it.
    pub integration_id: Option<i64>,
    /// Escalation policy paged.
    pub escalation_policy_id: Option<i64>,
    /// Runbook.
    pub runbook_id: Option<i64>,
    /// The runbook's version when it opened.
    pub runbook_version: Option<i64>,
    /// Current escalation rule, from 1.
    pub escalation_level: i64,
    /// Current repeat of the escalation path, from 0.
    pub escalation_loop: i64,
    /// Next escalation, RFC 3339.
    pub next_escalation_at: Option<String>,
    /// When an acknowledgement runs out, RFC 3339.
    pub acknowledgement_expires_at: Option<String>,
    /// Alerts that joined it.
    pub alert_count: i64,
    /// The first alert's details.
    pub details: Value,
    /// Ticked runbook checklist items: `{"0": true, …}`.
    #[schema(value_type = BTreeMap<String, bool>)]
    pub checklist: Value,
    /// Opened, RFC 3339.
    pub created_at: String,
    /// Acknowledged, RFC 3339.
    pub acknowledged_at: Option<String>,
    /// Resolved, RFC 3339.
    pub resolved_at: Option<String>,
    /// Changed, RFC 3339.
    pub updated_at: String,
    /// The user it was reassigned to; none while the escalation rule's targets hold it.
    pub assigned_user_id: Option<i64>,
    /// When a snooze ends and the current level is paged again, RFC 3339.
    pub snoozed_until: Option<String>,
    /// The incident it was merged into (it is resolved).
    pub merged_into: Option<i64>,
}

/// `{"items", "next_before"}`: incidents newest first; pass `next_before` as `?before=`.
#[derive(Serialize, ToSchema)]
pub struct IncidentList {
    /// The incidents.
    pub items: Vec<Incident>,
    /// The lowest id on this page when more may follow, else `null`.
    pub next_before: Option<i64>,
}

/// One timeline entry.
#[derive(Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When, RFC 3339.
    pub at: String,
    /// `triggered`, `alert`, `notified`, `acknowledged`, `escalated`, `note`, `checklist`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// Who or what (`user:…`, `token:…`, `system`, …).
    pub actor: String,
    /// Text.
    pub message: String,
    /// Structured data of the entry.
    pub data: Option<Value>,
}

/// One notification sent (or being sent) for an incident.
#[derive(Serialize, ToSchema)]
pub struct NotificationView {
    /// Id.
    pub id: i64,
    /// Channel.
    pub channel_id: i64,
    /// The user paged, for a contact method.
    pub user_id: Option<i64>,
    /// `triggered`, `acknowledged`, `resolved`, ….
    pub event: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Queued, RFC 3339.
    pub created_at: String,
    /// Delivered, RFC 3339.
    pub sent_at: Option<String>,
}

/// An incident with its timeline and notifications.
#[derive(Serialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Notifications.
    pub notifications: Vec<NotificationView>,
    /// Responders asked to help, oldest first.
    pub responders: Vec<ResponderRequest>,
}

/// Whom to reassign an incident to: exactly one of the two.
#[derive(Serialize, ToSchema)]
pub struct ReassignInput {
    /// A user: they are paged and become the assignee.
    pub user_id: Option<i64>,
    /// An escalation policy: it replaces the incident's, from its first rule.
    pub escalation_policy_id: Option<i64>,
}

/// How long to snooze.
#[derive(Serialize, ToSchema)]
pub struct SnoozeInput {
    /// Minutes, 1 to 10080 (7 days).
    pub duration_minutes: i64,
}

/// Who else to page: exactly one of `user_id` and `escalation_policy_id`.
#[derive(Serialize, ToSchema)]
pub struct ResponderInput {
    /// A user, through their contact methods.
    pub user_id: Option<i64>,
    /// An escalation policy: its first rule, once.
    pub escalation_policy_id: Option<i64>,
    /// What they are asked (up to 1000 bytes).
    pub message: Option<String>,
}

/// Incidents to merge into this one.
#[derive(Serialize, ToSchema)]
pub struct MergeInput {
    /// Their ids, 1 to 50.
    pub source_incident_ids: Vec<i64>,
}

/// One page sent for a responder request.
#[derive(Serialize, ToSchema)]
pub struct ResponderPage {
    /// The notification's id.
    pub id: i64,
    /// The channel or contact method.
    pub channel_id: i64,
    /// The user paged, for a contact method.
    pub user_id: Option<i64>,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// The last failure.
    pub last_error: Option<String>,
}

/// A responder request and how it was paged.
#[derive(Serialize, ToSchema)]
pub struct ResponderRequest {
    /// Id.
    pub id: i64,
    /// `user` or `escalation_policy`.
    pub target_type: String,
    /// The user's or policy's id.
    pub target_id: i64,
    /// Its name when asked.
    pub target_name: String,
    /// What they were asked.
    pub message: Option<String>,
    /// Who asked (`user:…`, `token:…`).
    pub requested_by: String,
    /// When, RFC 3339.
    pub requested_at: String,
    /// The pages sent for it.
    pub notifications: Vec<ResponderPage>,
}

/// An incident opened by hand.
#[derive(Serialize, ToSchema)]
pub struct NewIncident {
    /// Title (up to 1024 bytes).
    pub title: String,
    /// `critical`, `error` (default), `warning` or `info`.
    pub severity: Option<String>,
    /// `high` or `low`.
    pub urgency: Option<String>,
    /// Service.
    pub service: Option<String>,
    /// Escalation policy to page.
    pub escalation_policy_id: Option<i64>,
    /// Runbook to attach.
    pub runbook_id: Option<i64>,
    /// An open manual incident with this key is answered instead of a new one.
    pub dedup_key: Option<String>,
    /// Free-form details.
    pub details: Option<Value>,
}

/// A note for the timeline.
#[derive(Serialize, ToSchema)]
pub struct NoteInput {
    /// Text (up to 10000 bytes).
    pub message: String,
}

/// A checklist tick.
#[derive(Serialize, ToSchema)]
pub struct TickInput {
    /// The item's number, from 0.
    pub item: i64,
    /// Ticked (default true) or unticked.
    pub done: Option<bool>,
}

/// The incident's checklist after a tick.
#[derive(Serialize, ToSchema)]
pub struct ChecklistView {
    /// Ticked items: `{"0": true, …}`.
    pub checklist: BTreeMap<String, bool>,
}

/// A pre-filled postmortem.
#[derive(Serialize, ToSchema)]
pub struct PostmortemView {
    /// The incident.
    pub incident_id: i64,
    /// Markdown.
    pub markdown: String,
}

/// MTTA and MTTR of one group.
#[derive(Serialize, ToSchema)]
pub struct ResponseTimes {
    /// The group (service, policy or integration name, or `YYYY-MM`).
    pub key: String,
    /// Incidents opened.
    pub incidents: i64,
    /// Of them acknowledged.
    pub acknowledged: i64,
    /// Of them resolved.
    pub resolved: i64,
    /// Mean time to acknowledge, seconds.
    pub mtta_seconds: Option<f64>,
    /// Mean time to resolve, seconds.
    pub mttr_seconds: Option<f64>,
}

/// MTTA and MTTR per group.
#[derive(Serialize, ToSchema)]
pub struct IncidentMetrics {
    /// `service`, `policy`, `integration` or `month`.
    pub group_by: String,
    /// From, RFC 3339.
    pub since: String,
    /// Until, RFC 3339.
    pub until: String,
    /// Groups in key order.
    pub items: Vec<ResponseTimes>,
}
