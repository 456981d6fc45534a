//! NRQL, the query language of New Relic dashboards and alert conditions, as Lookout reads it:
//! [`parse`] turns a query into a [`Query`] ([`ast`]) or a [`ParseError`] that names the line,
//! the column and what was expected there; [`Query`]'s `Display` prints it back canonically, so
//! that a parsed query round-trips; [`time::window`] resolves its `SINCE`, `UNTIL`, `COMPARE
//! WITH` and `TIMESERIES` against the clock.
//!
//! Written by hand (a lexer and a recursive-descent parser) rather than with a parser generator:
//! NRQL's keywords are case-insensitive, its clauses come in any order, and the errors users see
//! must point at a column and say what would have fitted there.

pub mod ast;
mod lexer;
mod parser;
pub mod time;

pub use ast::Query;
pub use parser::{parse, ParseError};
