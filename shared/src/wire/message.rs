//! The sync protocol's messages: the handshake (`Hello`), feed batches and their
//! acknowledgements, rejections with their reasons, reconciliation rounds,
//! per-document sync messages, departures and errors, as plain data.

use std::fmt;

use super::{Digest, Hash};
use crate::ids::{DocId, NodeId, Role};

/// A position in one node's change feed: its epoch and a sequence number in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FeedPos {
    pub epoch: u64,
    pub seq: u64,
}

/// The first message each side sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub node: NodeId,
    pub role: Role,
    /// The sender's feed epoch, changed whenever its store is restored from a backup.
    pub epoch: u64,
    /// The sender's newest feed sequence number.
    pub last_seq: u64,
    /// How far the sender has durably applied the receiver's feed, if ever.
    pub your_feed: Option<FeedPos>,
    /// The sender wants a reconciliation (first contact, restore, periodic check).
    pub want_reconcile: bool,
}

/// One change of one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEntry {
    pub doc: DocId,
    pub bytes: Vec<u8>,
}

/// A batch of the sender's feed: every in-scope change with `from_seq < seq <= up_to_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub from_seq: u64,
    pub up_to_seq: u64,
    /// The batch reached the end of the sender's feed when it was made.
    pub caught_up: bool,
    pub entries: Vec<ChangeEntry>,
}

/// The receiver has durably stored (applied, parked or refused) the feed up to `up_to_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub up_to_seq: u64,
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The actor is not bound to a node the receiver knows.
    UnknownAuthor,
    /// The author's node may not write this document.
    NotPermitted,
    /// Only the hub writes reference documents.
    ReferenceDoc,
    /// The bytes are not a valid change.
    Malformed,
}

impl RejectReason {
    pub(super) const ALL: [RejectReason; 4] = [
        RejectReason::UnknownAuthor,
        RejectReason::NotPermitted,
        RejectReason::ReferenceDoc,
        RejectReason::Malformed,
    ];

    pub fn code(self) -> u8 {
        match self {
            RejectReason::UnknownAuthor => 1,
            RejectReason::NotPermitted => 2,
            RejectReason::ReferenceDoc => 3,
            RejectReason::Malformed => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<RejectReason> {
        RejectReason::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::UnknownAuthor => "unknown_author",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::ReferenceDoc => "reference_doc",
            RejectReason::Malformed => "malformed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One refused change, as reported to its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub doc: DocId,
    pub hash: Hash,
    pub reason: RejectReason,
    pub detail: String,
}

/// What one side says about one range of the reconciled set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeMode {
    /// Nothing to do in this range.
    Skip,
    /// The count and fingerprint of the sender's items in the range.
    Fingerprint { count: u64, fingerprint: Digest },
    /// The sender's items in the range, in order.
    Items(Vec<(DocId, Digest)>),
}

/// A range `[previous upper, upper)` of document ids; `None` is past the last id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub upper: Option<DocId>,
    pub mode: RangeMode,
}

/// One round of range-based set reconciliation over (document id, heads digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconcile {
    pub round: u32,
    pub ranges: Vec<Range>,
}

/// One Automerge sync message for one document; empty bytes mean "nothing more to say".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocSyncEntry {
    pub doc: DocId,
    pub message: Vec<u8>,
}

/// Why a session was ended by one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Protocol,
    Version,
    UnknownPeer,
    Internal,
    Timeout,
}

impl ErrorCode {
    pub(super) const ALL: [ErrorCode; 5] = [
        ErrorCode::Protocol,
        ErrorCode::Version,
        ErrorCode::UnknownPeer,
        ErrorCode::Internal,
        ErrorCode::Timeout,
    ];

    pub fn code(self) -> u8 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::Version => 2,
            ErrorCode::UnknownPeer => 3,
            ErrorCode::Internal => 4,
            ErrorCode::Timeout => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// Every message of the sync protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Changes(Changes),
    Ack(Ack),
    Rejected(Vec<Rejection>),
    Reconcile(Reconcile),
    DocSync(Vec<DocSyncEntry>),
    /// Documents the receiver listed that are not (or no longer) in its scope as the sender sees it.
    Departed(Vec<DocId>),
    /// The sender ends the session.
    Error {
        code: ErrorCode,
        detail: String,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Changes(_) => "changes",
            Message::Ack(_) => "ack",
            Message::Rejected(_) => "rejected",
            Message::Reconcile(_) => "reconcile",
            Message::DocSync(_) => "doc_sync",
            Message::Departed(_) => "departed",
            Message::Error { .. } => "error",
        }
    }
}
