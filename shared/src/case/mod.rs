//! The case model: one Automerge document per case, its lifecycle and its conflicts.

mod doc;
pub mod status;

pub use doc::*;
pub use status::{EventKind, Status};
