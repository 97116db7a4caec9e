//! The one integration-test binary: every module is a group of tests that use
//! real parts — real SQLite files, real processes, (later) real QUIC on loopback —
//! or the real sync engine in a simulated district.

mod cli;
mod cost;
mod fixtures;
mod model;
mod net_demo;
mod net_faults;
mod net_multiprocess;
mod net_refusal;
mod net_restore;
mod net_scope;
mod restore;
mod rules_calendar;
mod rules_casework;
mod rules_clock;
mod rules_deadlines;
mod rules_metrics;
mod rules_support;
mod sim;
mod store;
mod sync_store;
mod web_api;
mod web_browser;
mod wire_fixtures;
