//! Alerting's JSON API: incidents, on-call (channels, schedules, overrides, escalation policies)
//! and alert configuration (policies, integrations, runbooks).

pub mod config;
pub mod incidents;
pub mod notification_rules;
pub mod oncall;
