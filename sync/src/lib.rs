//! The Yichuang sync protocol as a pure state machine (sans-IO): sessions between
//! two nodes, the change feed, range-based reconciliation, scopes and write rules,
//! and the store boundary that `node/` implements on SQLite.
//!
//! Architecture invariant: this crate performs no I/O and never reads the clock;
//! every input arrives through a `handle_*` call with `now_ms`, every output leaves
//! through a `poll_*` call.

pub mod apply;
pub mod fixture;
pub mod mem;
pub mod pair;
pub mod reconcile;
pub mod rules;
pub mod session;
pub mod store;

pub use rules::Scope;
pub use session::{FeedProgress, Session, SessionConfig, SessionError, SessionEvent};
pub use store::{NodeInfo, Store};
