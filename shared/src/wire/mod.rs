//! The sync protocol's wire messages and their versioned, length-delimited binary
//! encoding, with hard size limits so that decoding untrusted bytes never panics
//! and never allocates more than the frame it was handed.
//!
//! A frame is a `u32` big-endian payload length followed by the payload. A payload
//! starts with the protocol version byte and the message type byte; lengths and
//! integers inside are LEB128 varints. Every count is checked against its limit and
//! against the bytes left before anything is allocated.
//!
//! The parts: `limits` (the protocol version and every size limit), `message` (the
//! messages), `encode` and `decode` (the binary form each way); `tests` holds the
//! round-trip properties of the two together.

mod decode;
mod encode;
mod limits;
mod message;
#[cfg(test)]
mod tests;

pub use decode::decode_frame;
pub use limits::*;
pub use message::{
    Ack, ChangeEntry, Changes, DocSyncEntry, ErrorCode, FeedPos, Hello, Message, Range, RangeMode,
    Reconcile, RejectReason, Rejection,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes exceeds the limit of {FRAME_MAX_BYTES}")]
    FrameTooLarge(usize),
    #[error("unsupported protocol version {0} (this node speaks {PROTOCOL_VERSION})")]
    Version(u8),
    #[error("unknown message type {0}")]
    MessageType(u8),
    #[error("message ends early while reading {0}")]
    Truncated(&'static str),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("malformed varint")]
    Varint,
    #[error("{what} count {count} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        count: u64,
        max: usize,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

// Message type and range mode bytes, shared by the encoder and the decoder.
const T_HELLO: u8 = 1;
const T_CHANGES: u8 = 2;
const T_ACK: u8 = 3;
const T_REJECTED: u8 = 4;
const T_RECONCILE: u8 = 5;
const T_DOC_SYNC: u8 = 6;
const T_DEPARTED: u8 = 7;
const T_ERROR: u8 = 8;
const T_CHANGES_DEFLATED: u8 = 9;

const MODE_SKIP: u8 = 0;
const MODE_FINGERPRINT: u8 = 1;
const MODE_ITEMS: u8 = 2;
