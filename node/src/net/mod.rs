//! The network: QUIC transport with mutual TLS against the district CA, enrollment
//! and revocation, one task per peer connection, and the interim change feed that
//! the sync engine's session replaces.

pub mod backoff;
pub mod board;
pub mod enroll;
pub mod feed;
pub mod frame;
pub mod peer;
pub mod protocol;
pub mod relay;
pub mod tls;
pub mod transport;
