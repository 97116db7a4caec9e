//! Length-prefixed frames on a QUIC stream: a `u32` big-endian payload length, then
//! the payload. The length is checked against [`FRAME_MAX_BYTES`] before anything is
//! allocated, so a peer can make us buffer at most one maximal frame.

use quinn::{ReadExactError, RecvStream, SendStream};

/// Largest payload accepted or sent, and the header size: the wire codec's, so the
/// transport and the codec can never disagree. A feed batch is budgeted well below it.
pub use yichuang_shared::wire::{FRAME_HEADER_BYTES, FRAME_MAX_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit of {FRAME_MAX_BYTES}")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("the stream ended in the middle of a frame")]
    Truncated,
    #[error("reading: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("writing: {0}")]
    Write(#[from] quinn::WriteError),
}

/// Reads one frame; `Ok(None)` when the peer finished the stream between frames.
pub async fn read_frame(recv: &mut RecvStream) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(_)) => return Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > FRAME_MAX_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let mut payload = vec![0u8; len];
    match recv.read_exact(&mut payload).await {
        Ok(()) => Ok(Some(payload)),
        Err(ReadExactError::FinishedEarly(_)) => Err(FrameError::Truncated),
        Err(ReadExactError::ReadError(e)) => Err(e.into()),
    }
}

/// Writes one frame; refuses a payload over the limit before sending a byte.
pub async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), FrameError> {
    if payload.len() > FRAME_MAX_BYTES {
        return Err(FrameError::TooLarge(payload.len()));
    }
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    // The length fits in u32: FRAME_MAX_BYTES is far below u32::MAX.
    send.write_all(&(payload.len() as u32).to_be_bytes())
        .await?;
    send.write_all(payload).await?;
    Ok(())
}
