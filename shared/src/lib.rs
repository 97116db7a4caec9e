//! Plain data shared by every Yichuang crate: ids, the case model, validation,
//! hybrid logical clocks, and (as they arrive) catalog, calendar and wire types.

pub mod case;
pub mod catalog;
pub mod hlc;
pub mod ids;
pub mod validate;
pub mod wire;
