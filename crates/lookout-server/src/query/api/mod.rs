//! Query's JSON API: NRQL queries and dashboards.

pub mod dashboards;
pub mod nrql;
