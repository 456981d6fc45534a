//! End-to-end tests of the foundation: start-up, API, roles, durability, CLI, configuration.

mod api;
mod cli;
mod durability;
mod hardening;
mod limits;
mod roles;
mod sessions;
