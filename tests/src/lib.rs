//! Support code for the integration tests: the district simulator and its helpers.

pub mod sim;
