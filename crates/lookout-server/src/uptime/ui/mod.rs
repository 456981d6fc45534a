//! Uptime's pages: monitors and their forms, status-page editing, and the public status pages.

pub mod monitors;
pub mod status_page;
