//! Plain data shared by every Yichuang crate.

pub mod calendar;
pub mod deadline;
