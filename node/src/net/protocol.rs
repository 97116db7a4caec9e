//! The narrow interface between a connection task and what it speaks. The task owns
//! the socket, the stream, the timers and cancellation; the protocol is fed inbound
//! frames and news of local changes, and yields outbound frames and a timer. The sync
//! engine's session implements it ([`super::sync`]).

use std::future::Future;
use std::time::Instant;

use serde::Serialize;

use super::transport::CloseCode;

/// Why a protocol ended a session; the connection is closed with the code and detail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct ProtocolError {
    pub code: CloseCode,
    pub detail: String,
}

impl ProtocolError {
    pub fn new(code: CloseCode, detail: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            detail: detail.into(),
        }
    }

    pub fn protocol(detail: impl Into<String>) -> ProtocolError {
        ProtocolError::new(CloseCode::Protocol, detail)
    }

    pub fn internal(detail: impl Into<String>) -> ProtocolError {
        ProtocolError::new(CloseCode::Internal, detail)
    }
}

/// What a session reports for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PeerStats {
    /// How far the peer has acknowledged our feed.
    pub acked_by_peer: u64,
    /// Our feed's newest sequence number as last seen.
    pub our_head: u64,
    /// How far we have durably applied the peer's feed.
    pub received_seq: u64,
    /// The peer's newest feed sequence number as it last told us.
    pub peer_head: u64,
    /// Changes we sent and the peer applied.
    pub changes_sent: u64,
    /// Changes we received and stored.
    pub changes_received: u64,
    /// Changes of ours the peer refused.
    pub rejected_by_peer: u64,
    /// Changes of the peer's we refused.
    pub rejected_from_peer: u64,
    /// Both directions have reached the other's head once.
    pub caught_up: bool,
    /// Frames handled from the peer: every message moves it, so a watcher of the board
    /// wakes for document syncs and reconciliation too, not only for feed positions.
    pub frames_received: u64,
}

pub trait PeerProtocol: Send + 'static {
    /// The connection is up: queue the first frames.
    fn handle_connected(&mut self) -> impl Future<Output = Result<(), ProtocolError>> + Send;
    /// One inbound frame's payload.
    fn handle_frame(
        &mut self,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;
    /// The local feed's newest sequence number moved to `head`.
    fn handle_local_change(
        &mut self,
        head: u64,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;
    /// The deadline from [`PeerProtocol::poll_timeout`] passed.
    fn handle_timeout(
        &mut self,
        now: Instant,
    ) -> impl Future<Output = Result<(), ProtocolError>> + Send;
    /// The next frame payload to send, if any.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When to call [`PeerProtocol::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    fn stats(&self) -> PeerStats;
}
