//! Query's pages: the NRQL console and dashboards.

pub mod console;
pub mod dashboards;
