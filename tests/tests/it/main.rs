//! The one integration-test binary: every module is a group of tests that use
//! real parts — real SQLite files, real processes, (later) real QUIC on loopback.

mod cli;
mod fixtures;
mod model;
mod net_demo;
mod net_faults;
mod net_multiprocess;
mod net_refusal;
mod store;
