//! Alerting's pages: incidents, on-call and alert configuration.

pub mod alerts;
pub mod incidents;
pub mod responder;
