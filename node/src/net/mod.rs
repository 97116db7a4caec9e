//! The network: QUIC transport with mutual TLS against the district CA, enrollment
//! and revocation, one task per peer connection, and the sync engine's session
//! running behind each connection.

pub mod backoff;
pub mod board;
pub mod enroll;
pub mod frame;
pub mod peer;
pub mod protocol;
pub mod relay;
pub mod sync;
pub mod tls;
pub mod transport;
