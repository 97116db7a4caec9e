//! The case model: one Automerge document per case, its lifecycle and its conflicts,
//! and the rules of case work read from its events: trusted event times, deadlines,
//! facts for district metrics.

pub mod clock;
pub mod deadlines;
mod doc;
pub mod facts;
pub mod rules;
pub mod status;
pub mod timeline;

pub use doc::*;
pub use status::{EventKind, Status};

#[cfg(test)]
mod tests;
