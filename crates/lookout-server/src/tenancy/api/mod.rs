//! The core's JSON API: projects, users and invitations, one's own account, tokens, deploy
//! markers and the activity feed.

pub mod account;
pub mod activity;
pub mod invitations;
pub mod projects;
pub mod tokens;
pub mod two_factor;
pub mod users;
