//! QUIC endpoints on quinn 0.11: transport limits, keep-alive under the idle timeout,
//! the ALPN that names the protocol version, and the application close codes a peer
//! sees when it is refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, IdleTimeout, TransportConfig, VarInt};

use super::tls::{self, Credentials, TlsError, Trust};

/// The protocol version carried in ALPN and in the first byte of every payload.
pub use yichuang_shared::wire::PROTOCOL_VERSION;
/// ALPN: a peer speaking another version fails the handshake instead of
/// misreading frames. Kept equal to [`PROTOCOL_VERSION`] by a test.
pub const ALPN: &[u8] = b"yichuang/1";

#[cfg(test)]
mod tests {
    #[test]
    fn alpn_names_the_wire_protocol_version() {
        assert_eq!(
            super::ALPN,
            format!("yichuang/{}", super::PROTOCOL_VERSION).as_bytes()
        );
    }
}

/// A link is declared dead after this long without a packet. Short, so a cut cable
/// shows in `status` within seconds; keep-alives keep a healthy idle link open.
pub const IDLE_TIMEOUT_MS: u64 = 6_000;
/// Keep-alive ping period: a third of the idle timeout, so two lost pings in a row
/// still do not end a healthy link.
pub const KEEP_ALIVE_MS: u64 = IDLE_TIMEOUT_MS / 3;
/// Bidirectional streams a peer may open at once. The protocol uses one; the second
/// is allowed only so we can see it and close the connection with a clear reason.
pub const PEER_BIDI_STREAMS_MAX: u32 = 2;
/// Per-stream receive window: two maximal frames in flight.
const STREAM_WINDOW_BYTES: u32 = 2 * super::frame::FRAME_MAX_BYTES as u32;
/// Per-connection receive window. Bounds memory per peer: 63 peers × 8 MiB worst case.
const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Why a connection was closed by the application; the code travels in the
/// CONNECTION_CLOSE frame with a human reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseCode {
    /// Orderly shutdown of a node.
    Shutdown,
    /// A frame that does not decode.
    Protocol,
    /// A frame over the size limit.
    FrameTooLarge,
    /// Wrong ALPN or protocol version.
    Version,
    /// The node's certificate has been revoked.
    Revoked,
    /// The node may not connect here (wrong role or center).
    NotAllowed,
    /// More streams than the protocol uses.
    TooManyStreams,
    /// Changes outside the sender's scope or write rights.
    OutOfScope,
    /// A newer connection from the same node replaced this one.
    Replaced,
    /// The node cannot serve now (store error, overload).
    Internal,
}

impl CloseCode {
    const ALL: [CloseCode; 10] = [
        CloseCode::Shutdown,
        CloseCode::Protocol,
        CloseCode::FrameTooLarge,
        CloseCode::Version,
        CloseCode::Revoked,
        CloseCode::NotAllowed,
        CloseCode::TooManyStreams,
        CloseCode::OutOfScope,
        CloseCode::Replaced,
        CloseCode::Internal,
    ];

    pub fn code(self) -> u32 {
        match self {
            CloseCode::Shutdown => 0,
            CloseCode::Protocol => 1,
            CloseCode::FrameTooLarge => 2,
            CloseCode::Version => 3,
            CloseCode::Revoked => 4,
            CloseCode::NotAllowed => 5,
            CloseCode::TooManyStreams => 6,
            CloseCode::OutOfScope => 7,
            CloseCode::Replaced => 8,
            CloseCode::Internal => 9,
        }
    }

    pub fn from_code(code: u64) -> Option<CloseCode> {
        CloseCode::ALL
            .into_iter()
            .find(|c| u64::from(c.code()) == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseCode::Shutdown => "shutdown",
            CloseCode::Protocol => "protocol",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::Version => "version",
            CloseCode::Revoked => "revoked",
            CloseCode::NotAllowed => "not_allowed",
            CloseCode::TooManyStreams => "too_many_streams",
            CloseCode::OutOfScope => "out_of_scope",
            CloseCode::Replaced => "replaced",
            CloseCode::Internal => "internal",
        }
    }

    pub fn var_int(self) -> VarInt {
        VarInt::from_u32(self.code())
    }
}

/// Closes `conn` with a code and a reason the peer can print.
pub fn close(conn: &quinn::Connection, code: CloseCode, reason: &str) {
    conn.close(code.var_int(), reason.as_bytes());
}

/// A human line for why a connection ended, from either side's point of view.
pub fn describe_close(e: &quinn::ConnectionError) -> String {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            let code = CloseCode::from_code(c.error_code.into_inner())
                .map(CloseCode::as_str)
                .unwrap_or("unknown");
            format!(
                "closed by the peer ({code}): {}",
                String::from_utf8_lossy(&c.reason)
            )
        }
        quinn::ConnectionError::ConnectionClosed(c) => format!("refused by the peer: {c}"),
        quinn::ConnectionError::LocallyClosed => "closed here".into(),
        quinn::ConnectionError::TimedOut => "the link timed out (no packets for a while)".into(),
        other => other.to_string(),
    }
}

fn transport_config() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    // Invariant: the constant is far below the VarInt maximum.
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(Duration::from_millis(IDLE_TIMEOUT_MS)).expect("idle timeout fits"),
    ));
    t.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)));
    t.max_concurrent_bidi_streams(VarInt::from_u32(PEER_BIDI_STREAMS_MAX));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES));
    t.datagram_receive_buffer_size(None);
    Arc::new(t)
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("quic configuration: {0}")]
    Config(String),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The client side of a node: dials with its certificate.
pub fn client_config(
    creds: &Credentials,
    trust: &Arc<Trust>,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = tls::client_config(creds, trust, ALPN)?;
    let quic =
        QuicClientConfig::try_from(tls).map_err(|e| TransportError::Config(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport_config());
    Ok(config)
}

pub fn server_config(
    creds: &Credentials,
    trust: &Arc<Trust>,
) -> Result<quinn::ServerConfig, TransportError> {
    let tls = tls::server_config(creds, trust, ALPN)?;
    let quic =
        QuicServerConfig::try_from(tls).map_err(|e| TransportError::Config(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport_config());
    // 0-RTT is off (rustls' default max_early_data_size is 0): sync messages are not
    // all idempotent, and replayed early data could repeat an acknowledgement.
    Ok(config)
}

/// An endpoint that listens on `listen` (when given) and dials with our certificate.
pub fn endpoint(
    listen: Option<SocketAddr>,
    creds: &Credentials,
    trust: &Arc<Trust>,
) -> Result<Endpoint, TransportError> {
    let client = client_config(creds, trust)?;
    let mut endpoint = match listen {
        Some(addr) => {
            let server = server_config(creds, trust)?;
            Endpoint::server(server, addr)
                .map_err(|source| TransportError::Bind { addr, source })?
        }
        None => {
            let addr: SocketAddr = ([0, 0, 0, 0], 0).into();
            Endpoint::client(addr).map_err(|source| TransportError::Bind { addr, source })?
        }
    };
    endpoint.set_default_client_config(client);
    Ok(endpoint)
}

/// The peer's identity from its verified certificate, and the ALPN it agreed to.
pub fn peer_identity(conn: &quinn::Connection) -> Option<tls::NodeIdentity> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::NodeIdentity::from_cert(certs.first()?).ok()
}

pub fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}
