//! End-to-end tests of the foundation: start-up, API, durability, CLI, configuration. (The
//! role and validation answers are tested in process: crates/lookout-server/tests/handlers.)

mod api;
mod audit_log;
mod cli;
mod cli_server;
mod durability;
mod hardening;
pub(crate) mod identity;
mod limits;
pub(crate) mod sessions;
mod two_factor;
mod two_factor_links;
