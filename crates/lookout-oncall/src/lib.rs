//! On-call logic with no I/O: who is on call ([`schedule`]), when an incident escalates and to
//! which rule ([`escalation`]), and how incoming alerts map to incidents ([`dedup`]).
//!
//! Everything here is a function of its inputs and an explicit "now" in milliseconds since the
//! epoch, so the server, the API and the table-driven tests all run the same code with any clock.

pub mod dedup;
pub mod escalation;
pub mod inbound;
pub mod schedule;

pub use escalation::{EscalationPolicy, EscalationRule, Target, TargetKind};
pub use schedule::{Layer, Override, Restriction, RestrictionKind, Schedule, Span};
