//! Lookout regression detection: change points in benchmark and load-test series
//! ([`detect`]), the series files `lookout regress analyze` reads ([`input`]), and importers for
//! common benchmark outputs ([`import`]).

pub mod detect;
pub mod import;
pub mod input;

pub use detect::{detect, ChangePoint, Options};

/// How many of the newest points a regression may start within and still fail `regress check`
/// (and page). An older regression has been seen by earlier checks; failing every later build
/// for it would teach teams to ignore the check.
pub const RECENT_POINTS: usize = 10;
