//! JavaScript source maps: the artifact bundles `sentry-cli` uploads, and resolving minified
//! stack frames to the original file, line, column, function and source context.
//!
//! Decoding is the kept `sourcemap` crate's (regular and index maps, `sourcesContent`); this
//! module only reads bundles, picks which map serves which frame, and rewrites the event JSON.
//! No IO: the caller finds the maps (by debug id, else release + dist + URL) and hands them in.
//!
//! Event shape after symbolication, as Sentry writes it: each frame carries the resolved
//! `filename`, `abs_path`, `lineno`, `colno`, `function`, `pre_context`/`context_line`/
//! `post_context`; the exception keeps the frames as sent under `raw_stacktrace`.
//!
//! Split along its seams: [`bundle`] reads what `sentry-cli` uploads, [`map`] decodes one map and
//! answers lookups in it, [`symbolicate`] rewrites an event's frames with the maps a caller found.

mod bundle;
mod map;
mod symbolicate;
#[cfg(test)]
mod tests;

pub use bundle::*;
pub use map::*;
pub use symbolicate::*;
