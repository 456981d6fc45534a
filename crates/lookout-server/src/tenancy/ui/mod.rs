//! The core's pages: overview, sign-in, settings, one's account, and the invitation and
//! password-reset pages reached from emailed links.

pub mod account;
pub mod activity;
pub mod invite;
pub mod overview;
pub mod session;
pub mod settings;
pub mod two_factor;
