//! Uptime monitoring's own logic, without storage: what a monitor is ([`spec`]), the condition
//! language its checks are judged by ([`conditions`]), the network probes ([`check`]), the
//! threshold state machine ([`state`]) and cron and maintenance time rules ([`schedule`]). Every
//! probe applies Lookout's one outbound policy ([`NetPolicy`], from `lookout-outbound`). The
//! server wires these to the store and the scheduler.
//!
//! Specs and conditions come from users (API, config files), so parsing them never panics.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod agent;
pub mod check;
pub mod conditions;
pub mod probe;
pub mod schedule;
pub mod spec;
pub mod state;

pub use check::{CheckOutcome, Checker};
pub use lookout_outbound::NetPolicy;
pub use spec::{Kind, MonitorSpec};
