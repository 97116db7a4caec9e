//! The one integration-test binary; each module is one area.

mod cost;
mod restore;
mod sim;
mod wire_fixtures;
