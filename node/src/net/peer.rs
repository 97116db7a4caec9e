//! One task per peer connection: it owns the connection and its one stream, feeds
//! the protocol inbound frames and local changes, writes what the protocol yields,
//! and closes the connection with a code and reason when anything goes wrong.

use std::sync::Arc;
use std::time::Duration;

use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::board::Board;
use super::frame::{FrameError, read_frame, write_frame};
use super::protocol::{PeerProtocol, ProtocolError};
use super::tls::NodeIdentity;
use super::transport::{self, CloseCode};

/// Frames read ahead of the protocol. Small: the protocol's own window bounds what is
/// in flight, and a full queue pushes back on the peer through QUIC flow control.
const FRAMES_QUEUE_MAX: usize = 8;
/// How long a closing node waits for the peer to read the rest of our stream.
const SHUTDOWN_DRAIN_MS: u64 = 2_000;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// This node is shutting down.
    Shutdown,
    /// The link or the peer ended it.
    Closed(String),
    /// We refused the peer.
    Refused(CloseCode, String),
}

pub struct PeerConn<P> {
    pub conn: Connection,
    pub send: SendStream,
    /// Taken by the reader task when the session starts.
    pub recv: Option<RecvStream>,
    pub protocol: P,
    pub peer: NodeIdentity,
    pub cancel: CancellationToken,
    pub feed_head: watch::Receiver<u64>,
    pub board: Arc<Board>,
}

impl<P: PeerProtocol> PeerConn<P> {
    pub async fn run(self) -> Ended {
        let span = tracing::info_span!("peer", node = %self.peer.node_id, role = %self.peer.role, addr = %self.conn.remote_address());
        let conn = self.conn.clone();
        let (id, board) = (self.peer.node_id, self.board.clone());
        let ended = self.run_inner().instrument(span.clone()).await;
        let reason = match &ended {
            Ended::Shutdown => None,
            Ended::Closed(r) | Ended::Refused(_, r) => Some(r.clone()),
        };
        span.in_scope(|| tracing::info!(?ended, "session ended"));
        board.disconnected(id, &conn, reason);
        ended
    }

    fn refuse(&self, e: ProtocolError) -> Ended {
        tracing::warn!(code = e.code.as_str(), detail = %e.detail, "closing the connection");
        transport::close(&self.conn, e.code, &e.detail);
        Ended::Refused(e.code, e.detail)
    }

    async fn run_inner(mut self) -> Ended {
        let (frame_tx, mut frame_rx) =
            mpsc::channel::<Result<Option<Vec<u8>>, FrameError>>(FRAMES_QUEUE_MAX);
        let mut readers = JoinSet::new();
        let Some(mut recv) = self.recv.take() else {
            return Ended::Closed("no stream".into());
        };
        readers.spawn(async move {
            loop {
                let r = read_frame(&mut recv).await;
                let done = !matches!(r, Ok(Some(_)));
                if frame_tx.send(r).await.is_err() || done {
                    break;
                }
            }
        });
        let base = self.board.totals(self.peer.node_id);
        if let Err(e) = self.protocol.handle_connected().await {
            return self.refuse(e);
        }
        let ended = 'session: loop {
            while let Some(frame) = self.protocol.poll_transmit() {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return self.shutdown().await,
                    r = write_frame(&mut self.send, &frame) => if let Err(e) = r {
                        break 'session Ended::Closed(format!("writing: {e}"));
                    }
                }
            }
            self.board
                .update(self.peer.node_id, &self.protocol.stats(), &base);
            let deadline = self.protocol.poll_timeout();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => break self.shutdown().await,
                e = self.conn.closed() => break Ended::Closed(transport::describe_close(&e)),
                extra = self.conn.accept_bi() => {
                    if extra.is_ok() {
                        break self.refuse(ProtocolError::new(CloseCode::TooManyStreams, "one stream per connection: the peer opened another"));
                    }
                    // The connection is closing; `closed()` reports why on the next turn.
                }
                frame = frame_rx.recv() => match frame {
                    Some(Ok(Some(payload))) => {
                        if let Err(e) = self.protocol.handle_frame(payload).await {
                            break self.refuse(e);
                        }
                    }
                    Some(Ok(None)) => {
                        // The peer finished its stream: it is shutting down.
                        let _ = self.send.finish();
                        break Ended::Closed("the peer finished its stream (shutting down)".into());
                    }
                    Some(Err(FrameError::TooLarge(n))) => {
                        break self.refuse(ProtocolError::new(CloseCode::FrameTooLarge, format!("frame of {n} bytes exceeds the limit of {}", super::frame::FRAME_MAX_BYTES)));
                    }
                    Some(Err(FrameError::Read(e))) => break Ended::Closed(format!("reading: {e}")),
                    Some(Err(e)) => break self.refuse(ProtocolError::protocol(format!("malformed frame: {e}"))),
                    None => break Ended::Closed("reader ended".into()),
                },
                changed = self.feed_head.changed() => {
                    if changed.is_err() {
                        break self.shutdown().await;
                    }
                    let head = *self.feed_head.borrow_and_update();
                    if let Err(e) = self.protocol.handle_local_change(head).await {
                        break self.refuse(e);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if let Err(e) = self.protocol.handle_timeout(std::time::Instant::now()).await {
                        break self.refuse(e);
                    }
                }
            }
        };
        readers.abort_all();
        ended
    }

    /// Finishes our stream, gives the peer a moment to read it, then closes.
    async fn shutdown(&mut self) -> Ended {
        if self.send.finish().is_ok() {
            let _ = tokio::time::timeout(
                Duration::from_millis(SHUTDOWN_DRAIN_MS),
                self.send.stopped(),
            )
            .await;
        }
        transport::close(&self.conn, CloseCode::Shutdown, "the node is shutting down");
        Ended::Shutdown
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}
