//! Uptime monitoring's pure parts. So far: [`conditions`], the small expression language a
//! monitor's checks are judged by (`[STATUS] == 200`, `[BODY].status == UP`, …).
//!
//! Conditions come from users (API, config files), so parsing them never panics.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod conditions;
