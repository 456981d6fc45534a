//! Alerting's pages: incidents, on-call and alert configuration.

pub mod alerts;
pub mod channels;
pub mod conditions;
pub mod escalations;
pub mod forms;
pub mod incident_actions;
pub mod incidents;
pub mod integrations;
pub mod notification_rules;
pub mod policies;
pub mod responder;
pub mod schedules;
