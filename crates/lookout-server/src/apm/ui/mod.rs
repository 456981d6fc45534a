//! APM's pages (under `/performance`): services, endpoints, traces and the service map.

pub mod performance;
pub mod traces;
