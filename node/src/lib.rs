//! The Yichuang node: the imperative shell around the pure model and sync engine —
//! the SQLite store, the command line, benchmarks, and (as they arrive) transport and HTTP.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod district;
pub mod logging;
pub mod net;
pub mod serve;
pub mod store;
