//! Uptime's JSON API: monitors (with maintenance windows) and status pages.

pub mod monitors;
pub mod status_pages;
