//! Domain types every Lookout crate shares: roles, timestamps, ids and secrets.
//!
//! Nothing here does IO, so the crate compiles in seconds and its tests need no services.

pub mod id;
pub mod role;
pub mod seal;
pub mod secret;
pub mod slug;
pub mod time;
pub mod units;

pub use role::Role;
