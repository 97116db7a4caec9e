//! Plain data shared by every Yichuang crate: ids, the case model, validation,
//! hybrid logical clocks, the catalog, the working-day calendar and deadlines.

pub mod calendar;
pub mod case;
pub mod catalog;
pub mod deadline;
pub mod hlc;
pub mod ids;
pub mod metrics;
pub mod validate;
pub mod wire;
