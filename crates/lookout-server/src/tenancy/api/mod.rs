//! The core's JSON API: projects, users, tokens, deploy markers and the activity feed.

pub mod activity;
pub mod projects;
pub mod tokens;
pub mod users;
