//! The core's pages: overview, sign-in and settings.

pub mod activity;
pub mod overview;
pub mod session;
pub mod settings;
