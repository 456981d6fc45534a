//! Uptime's pages: monitors and their forms, status-page editing, and the public status pages.

pub mod monitor_form;
pub mod monitor_locations;
pub mod monitor_page;
pub mod monitors;
pub mod status_page;
