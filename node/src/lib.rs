//! The Yichuang node: the imperative shell around the pure model and sync engine —
//! the SQLite store, the command line, benchmarks, the QUIC transport and the HTTP side.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod district;
pub mod http;
pub mod logging;
pub mod net;
pub mod serve;
pub mod store;
