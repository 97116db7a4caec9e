//! The sync protocol's wire messages and their versioned, length-delimited binary
//! encoding, with hard size limits so that decoding untrusted bytes never panics
//! and never allocates more than the frame it was handed.
//!
//! A frame is a `u32` big-endian payload length followed by the payload. A payload
//! starts with the protocol version byte and the message type byte; lengths and
//! integers inside are LEB128 varints. Every count is checked against its limit and
//! against the bytes left before anything is allocated.

use std::fmt;

use crate::ids::{DocId, NODE_ID_LEN, NodeId, Role};

/// The protocol version this build speaks. Bumped on any incompatible change;
/// a peer with another version is refused at the first frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest frame payload accepted or produced. A feed batch is budgeted well
/// below this (see the sync crate's batch budget); the rest is head-room for one
/// per-document sync message of a long case. 4 MiB per frame bounds what one
/// peer can make us buffer, across 13 centers and dozens of laptops.
pub const FRAME_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of the frame header (the payload length).
pub const FRAME_HEADER_BYTES: usize = 4;
/// Longest document id: case ids are 33 bytes, reference ids shorter.
pub const DOC_ID_MAX_BYTES: usize = 64;
/// Most entries (changes, rejections, doc syncs, departures) in one message. A
/// change is at least a few dozen bytes, so a full frame never holds more.
pub const ENTRIES_MAX: usize = 65_536;
/// Most ranges in one reconciliation message: 16-way splits of a few thousand
/// differing ranges, a few hundred KiB.
pub const RANGES_MAX: usize = 65_536;
/// Most (document, digest) items listed inline for one range.
pub const RANGE_ITEMS_MAX: usize = 1_024;
/// Longest human-readable detail in a rejection or error: a sentence, not a log.
pub const DETAIL_MAX_BYTES: usize = 1_024;
/// Feed batches whose entries take more than this are sent deflated: changes of
/// one district share actors, keys and clerks, and compress three- to fourfold;
/// below it the saving does not pay for the work.
pub const DEFLATE_MIN_BYTES: usize = 512;
/// Bytes of an Automerge change hash.
pub const HASH_BYTES: usize = 32;
/// Bytes of a document state digest and of a range fingerprint.
pub const DIGEST_BYTES: usize = 16;

/// A change hash as raw bytes (an Automerge `ChangeHash`).
pub type Hash = [u8; HASH_BYTES];
/// A digest of a document's heads or a fingerprint of a range.
pub type Digest = [u8; DIGEST_BYTES];

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
    const ALL: [RejectReason; 4] = [
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
    const ALL: [ErrorCode; 5] = [
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

    /// The payload (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        w.u8(PROTOCOL_VERSION);
        match self {
            Message::Hello(h) => {
                w.u8(T_HELLO);
                w.0.extend_from_slice(&h.node.0);
                w.u8(role_code(h.role));
                w.varint(h.epoch);
                w.varint(h.last_seq);
                match h.your_feed {
                    None => w.u8(0),
                    Some(p) => {
                        w.u8(1);
                        w.varint(p.epoch);
                        w.varint(p.seq);
                    }
                }
                w.u8(u8::from(h.want_reconcile));
            }
            Message::Changes(c) => {
                let mut body = Writer(Vec::new());
                body.len(c.entries.len());
                for e in &c.entries {
                    body.doc(&e.doc);
                    body.bytes(&e.bytes);
                }
                let deflated = if body.0.len() > DEFLATE_MIN_BYTES {
                    deflate(&body.0)
                } else {
                    None
                };
                match deflated {
                    Some(z) if z.len() < body.0.len() => {
                        w.u8(T_CHANGES_DEFLATED);
                        w.varint(c.from_seq);
                        w.varint(c.up_to_seq);
                        w.u8(u8::from(c.caught_up));
                        w.len(body.0.len());
                        w.0.extend_from_slice(&z);
                    }
                    _ => {
                        w.u8(T_CHANGES);
                        w.varint(c.from_seq);
                        w.varint(c.up_to_seq);
                        w.u8(u8::from(c.caught_up));
                        w.0.extend_from_slice(&body.0);
                    }
                }
            }
            Message::Ack(a) => {
                w.u8(T_ACK);
                w.varint(a.up_to_seq);
            }
            Message::Rejected(list) => {
                w.u8(T_REJECTED);
                w.len(list.len());
                for r in list {
                    w.doc(&r.doc);
                    w.0.extend_from_slice(&r.hash);
                    w.u8(r.reason.code());
                    w.bytes(truncate(&r.detail).as_bytes());
                }
            }
            Message::Reconcile(r) => {
                w.u8(T_RECONCILE);
                w.varint(u64::from(r.round));
                w.len(r.ranges.len());
                for range in &r.ranges {
                    match &range.upper {
                        None => w.u8(0),
                        Some(d) => {
                            w.u8(1);
                            w.doc(d);
                        }
                    }
                    match &range.mode {
                        RangeMode::Skip => w.u8(MODE_SKIP),
                        RangeMode::Fingerprint { count, fingerprint } => {
                            w.u8(MODE_FINGERPRINT);
                            w.varint(*count);
                            w.0.extend_from_slice(fingerprint);
                        }
                        RangeMode::Items(items) => {
                            w.u8(MODE_ITEMS);
                            w.len(items.len());
                            for (d, digest) in items {
                                w.doc(d);
                                w.0.extend_from_slice(digest);
                            }
                        }
                    }
                }
            }
            Message::DocSync(list) => {
                w.u8(T_DOC_SYNC);
                w.len(list.len());
                for e in list {
                    w.doc(&e.doc);
                    w.bytes(&e.message);
                }
            }
            Message::Departed(docs) => {
                w.u8(T_DEPARTED);
                w.len(docs.len());
                for d in docs {
                    w.doc(d);
                }
            }
            Message::Error { code, detail } => {
                w.u8(T_ERROR);
                w.u8(code.code());
                w.bytes(truncate(detail).as_bytes());
            }
        }
        w.0
    }

    /// The frame: payload length (u32, big-endian) and payload. Fails if the
    /// message would exceed [`FRAME_MAX_BYTES`], so a sender learns before the peer refuses it.
    pub fn encode_frame(&self) -> Result<Vec<u8>, WireError> {
        let payload = self.encode();
        if payload.len() > FRAME_MAX_BYTES {
            return Err(WireError::FrameTooLarge(payload.len()));
        }
        let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        // The length fits in u32: FRAME_MAX_BYTES is far below u32::MAX.
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes one payload; every byte must be consumed.
    pub fn decode(payload: &[u8]) -> Result<Message, WireError> {
        if payload.len() > FRAME_MAX_BYTES {
            return Err(WireError::FrameTooLarge(payload.len()));
        }
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
        let version = r.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(WireError::Version(version));
        }
        let kind = r.u8("message type")?;
        let msg = match kind {
            T_HELLO => {
                let node = NodeId(r.array::<NODE_ID_LEN>("node id")?);
                let role = role_of(r.u8("role")?)?;
                let epoch = r.varint()?;
                let last_seq = r.varint()?;
                let your_feed = match r.u8("feed flag")? {
                    0 => None,
                    1 => Some(FeedPos {
                        epoch: r.varint()?,
                        seq: r.varint()?,
                    }),
                    other => return Err(invalid("feed flag", other)),
                };
                let want_reconcile = r.bool("reconcile flag")?;
                Message::Hello(Hello {
                    node,
                    role,
                    epoch,
                    last_seq,
                    your_feed,
                    want_reconcile,
                })
            }
            T_CHANGES | T_CHANGES_DEFLATED => {
                let from_seq = r.varint()?;
                let up_to_seq = r.varint()?;
                if up_to_seq < from_seq {
                    return Err(WireError::Invalid {
                        what: "feed range",
                        detail: format!("up to {up_to_seq} is before {from_seq}"),
                    });
                }
                let caught_up = r.bool("caught-up flag")?;
                let inflated;
                let mut body = if kind == T_CHANGES_DEFLATED {
                    let raw_len = r.varint()?;
                    if raw_len > FRAME_MAX_BYTES as u64 {
                        return Err(WireError::TooMany {
                            what: "inflated changes",
                            count: raw_len,
                            max: FRAME_MAX_BYTES,
                        });
                    }
                    let rest = r.take(r.left(), "deflated changes")?;
                    inflated = inflate(rest, raw_len as usize)?;
                    Reader {
                        buf: &inflated,
                        pos: 0,
                    }
                } else {
                    Reader {
                        buf: &payload[r.pos..],
                        pos: 0,
                    }
                };
                let n = body.count("changes", ENTRIES_MAX, 2)?;
                let mut entries = Vec::new();
                for _ in 0..n {
                    let doc = body.doc()?;
                    let bytes = body.bytes("change", FRAME_MAX_BYTES)?.to_vec();
                    entries.push(ChangeEntry { doc, bytes });
                }
                if body.left() != 0 {
                    return Err(WireError::Trailing(body.left()));
                }
                // The body was the rest of the payload.
                r.pos = payload.len();
                Message::Changes(Changes {
                    from_seq,
                    up_to_seq,
                    caught_up,
                    entries,
                })
            }
            T_ACK => Message::Ack(Ack {
                up_to_seq: r.varint()?,
            }),
            T_REJECTED => {
                let n = r.count("rejections", ENTRIES_MAX, 2 + HASH_BYTES + 2)?;
                let mut list = Vec::new();
                for _ in 0..n {
                    let doc = r.doc()?;
                    let hash = r.array::<HASH_BYTES>("change hash")?;
                    let code = r.u8("reason")?;
                    let reason =
                        RejectReason::from_code(code).ok_or_else(|| invalid("reason", code))?;
                    let detail = r.text("detail", DETAIL_MAX_BYTES)?;
                    list.push(Rejection {
                        doc,
                        hash,
                        reason,
                        detail,
                    });
                }
                Message::Rejected(list)
            }
            T_RECONCILE => {
                let round = r.varint()?;
                let round = u32::try_from(round).map_err(|_| WireError::Invalid {
                    what: "round",
                    detail: format!("{round} is out of range"),
                })?;
                let n = r.count("ranges", RANGES_MAX, 2)?;
                let mut ranges = Vec::new();
                for _ in 0..n {
                    let upper = match r.u8("bound flag")? {
                        0 => None,
                        1 => Some(r.doc()?),
                        other => return Err(invalid("bound flag", other)),
                    };
                    let mode = match r.u8("range mode")? {
                        MODE_SKIP => RangeMode::Skip,
                        MODE_FINGERPRINT => {
                            let count = r.varint()?;
                            RangeMode::Fingerprint {
                                count,
                                fingerprint: r.array::<DIGEST_BYTES>("fingerprint")?,
                            }
                        }
                        MODE_ITEMS => {
                            let k = r.count("range items", RANGE_ITEMS_MAX, 2 + DIGEST_BYTES)?;
                            let mut items = Vec::new();
                            for _ in 0..k {
                                let d = r.doc()?;
                                items.push((d, r.array::<DIGEST_BYTES>("digest")?));
                            }
                            RangeMode::Items(items)
                        }
                        other => return Err(invalid("range mode", other)),
                    };
                    ranges.push(Range { upper, mode });
                }
                Message::Reconcile(Reconcile { round, ranges })
            }
            T_DOC_SYNC => {
                let n = r.count("doc syncs", ENTRIES_MAX, 2)?;
                let mut list = Vec::new();
                for _ in 0..n {
                    let doc = r.doc()?;
                    let message = r.bytes("sync message", FRAME_MAX_BYTES)?.to_vec();
                    list.push(DocSyncEntry { doc, message });
                }
                Message::DocSync(list)
            }
            T_DEPARTED => {
                let n = r.count("departed documents", ENTRIES_MAX, 2)?;
                let mut docs = Vec::new();
                for _ in 0..n {
                    docs.push(r.doc()?);
                }
                Message::Departed(docs)
            }
            T_ERROR => {
                let c = r.u8("error code")?;
                let code = ErrorCode::from_code(c).ok_or_else(|| invalid("error code", c))?;
                Message::Error {
                    code,
                    detail: r.text("detail", DETAIL_MAX_BYTES)?,
                }
            }
            other => return Err(WireError::MessageType(other)),
        };
        let left = payload.len() - r.pos;
        if left != 0 {
            return Err(WireError::Trailing(left));
        }
        Ok(msg)
    }
}

/// Reads one frame from the front of `buf`: `Ok(None)` while it is incomplete,
/// otherwise the message and the bytes consumed. An oversized length is refused
/// from the header alone, before any payload is buffered.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let Some(header) = buf.get(..FRAME_HEADER_BYTES) else {
        return Ok(None);
    };
    let mut len_bytes = [0u8; FRAME_HEADER_BYTES];
    len_bytes.copy_from_slice(header);
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > FRAME_MAX_BYTES {
        return Err(WireError::FrameTooLarge(len));
    }
    let Some(payload) = buf.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len) else {
        return Ok(None);
    };
    Ok(Some((Message::decode(payload)?, FRAME_HEADER_BYTES + len)))
}

fn deflate(raw: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).ok()?;
    z.finish().ok()
}

/// Inflates at most `raw_len` bytes and insists on exactly that many, so a
/// hostile stream can neither overrun the frame limit nor lie about its size.
fn inflate(z: &[u8], raw_len: usize) -> Result<Vec<u8>, WireError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw_len.min(z.len().saturating_mul(8)));
    flate2::read::DeflateDecoder::new(z)
        .take(raw_len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| WireError::Invalid {
            what: "deflated changes",
            detail: e.to_string(),
        })?;
    if out.len() != raw_len {
        return Err(WireError::Invalid {
            what: "deflated changes",
            detail: format!("{} bytes where {raw_len} were announced", out.len()),
        });
    }
    Ok(out)
}

fn truncate(s: &str) -> &str {
    if s.len() <= DETAIL_MAX_BYTES {
        return s;
    }
    let mut end = DETAIL_MAX_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Hub => 1,
        Role::Center => 2,
        Role::Laptop => 3,
    }
}

fn role_of(code: u8) -> Result<Role, WireError> {
    match code {
        1 => Ok(Role::Hub),
        2 => Ok(Role::Center),
        3 => Ok(Role::Laptop),
        other => Err(invalid("role", other)),
    }
}

fn invalid(what: &'static str, value: u8) -> WireError {
    WireError::Invalid {
        what,
        detail: format!("unknown value {value}"),
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn doc(&mut self, d: &DocId) {
        self.bytes(d.as_str().as_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let b = *self.buf.get(self.pos).ok_or(WireError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    fn bool(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(invalid(what, other)),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if n > self.left() {
            return Err(WireError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// LEB128, at most ten bytes, no overflow and no over-long encodings.
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8("varint")?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(WireError::Varint);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(WireError::Varint);
                }
                return Ok(v);
            }
        }
        Err(WireError::Varint)
    }

    /// A count of items that each take at least `min_item_bytes`: checked against
    /// its limit and against the bytes left, so no allocation trusts the peer.
    fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_item_bytes: usize,
    ) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(WireError::TooMany {
                what,
                count: n,
                max,
            });
        }
        let n = n as usize;
        if n.saturating_mul(min_item_bytes) > self.left() {
            return Err(WireError::Truncated(what));
        }
        Ok(n)
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(WireError::TooMany {
                what,
                count: n,
                max,
            });
        }
        self.take(n as usize, what)
    }

    fn text(&mut self, what: &'static str, max: usize) -> Result<String, WireError> {
        let b = self.bytes(what, max)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| WireError::Invalid {
                what,
                detail: e.to_string(),
            })
    }

    fn doc(&mut self) -> Result<DocId, WireError> {
        let b = self.bytes("document id", DOC_ID_MAX_BYTES)?;
        let s = std::str::from_utf8(b).map_err(|e| WireError::Invalid {
            what: "document id",
            detail: e.to_string(),
        })?;
        s.parse()
            .map_err(|e: crate::ids::IdError| WireError::Invalid {
                what: "document id",
                detail: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn doc_id() -> impl Strategy<Value = DocId> {
        prop_oneof![
            any::<[u8; 16]>().prop_map(DocId::new_case),
            prop_oneof![Just("ref-catalog"), Just("ref-calendar"), Just("ref-nodes")]
                .prop_map(|s| s.parse::<DocId>().expect("a reference id parses")),
        ]
    }

    fn role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Hub), Just(Role::Center), Just(Role::Laptop)]
    }

    fn detail() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-z 一-龥]{0,40}").expect("a valid regex")
    }

    fn message() -> impl Strategy<Value = Message> {
        let hello = (
            any::<[u8; 8]>(),
            role(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<(u64, u64)>>(),
            any::<bool>(),
        )
            .prop_map(|(n, role, epoch, last_seq, feed, want_reconcile)| {
                Message::Hello(Hello {
                    node: NodeId(n),
                    role,
                    epoch,
                    last_seq,
                    your_feed: feed.map(|(epoch, seq)| FeedPos { epoch, seq }),
                    want_reconcile,
                })
            });
        let changes = (
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(
                (doc_id(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..6,
            ),
        )
            .prop_map(|(from, extra, caught_up, entries)| {
                Message::Changes(Changes {
                    from_seq: u64::from(from),
                    up_to_seq: u64::from(from) + u64::from(extra),
                    caught_up,
                    entries: entries
                        .into_iter()
                        .map(|(doc, bytes)| ChangeEntry { doc, bytes })
                        .collect(),
                })
            });
        let ack = any::<u64>().prop_map(|up_to_seq| Message::Ack(Ack { up_to_seq }));
        let rejected =
            proptest::collection::vec((doc_id(), any::<[u8; 32]>(), 0usize..4, detail()), 0..5)
                .prop_map(|list| {
                    Message::Rejected(
                        list.into_iter()
                            .map(|(doc, hash, r, detail)| Rejection {
                                doc,
                                hash,
                                reason: RejectReason::ALL[r],
                                detail,
                            })
                            .collect(),
                    )
                });
        let mode = prop_oneof![
            Just(RangeMode::Skip),
            (any::<u64>(), any::<[u8; 16]>())
                .prop_map(|(count, fingerprint)| RangeMode::Fingerprint { count, fingerprint }),
            proptest::collection::vec((doc_id(), any::<[u8; 16]>()), 0..4)
                .prop_map(RangeMode::Items),
        ];
        let reconcile = (
            any::<u32>(),
            proptest::collection::vec((proptest::option::of(doc_id()), mode), 0..6),
        )
            .prop_map(|(round, ranges)| {
                Message::Reconcile(Reconcile {
                    round,
                    ranges: ranges
                        .into_iter()
                        .map(|(upper, mode)| Range { upper, mode })
                        .collect(),
                })
            });
        let doc_sync = proptest::collection::vec(
            (doc_id(), proptest::collection::vec(any::<u8>(), 0..64)),
            0..5,
        )
        .prop_map(|l| {
            Message::DocSync(
                l.into_iter()
                    .map(|(doc, message)| DocSyncEntry { doc, message })
                    .collect(),
            )
        });
        let departed = proptest::collection::vec(doc_id(), 0..5).prop_map(Message::Departed);
        let error = (0usize..5, detail()).prop_map(|(c, detail)| Message::Error {
            code: ErrorCode::ALL[c],
            detail,
        });
        prop_oneof![
            hello, changes, ack, rejected, reconcile, doc_sync, departed, error
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(msg in message()) {
            let frame = msg.encode_frame().unwrap();
            let (back, used) = decode_frame(&frame).unwrap().unwrap();
            prop_assert_eq!(used, frame.len());
            prop_assert_eq!(back, msg);
            // Any strict prefix is incomplete or an error, never a different message.
            for cut in [0, 1, 3, frame.len() / 2, frame.len() - 1] {
                match decode_frame(&frame[..cut]) {
                    Ok(None) | Err(_) => {}
                    Ok(Some(_)) => prop_assert!(false, "prefix of {} bytes decoded", cut),
                }
            }
        }

        #[test]
        fn mutated_payloads_never_panic(msg in message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut payload = msg.encode();
            for (at, b) in flips {
                let i = at % payload.len();
                payload[i] = b;
            }
            let _ = Message::decode(&payload);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
            let _ = decode_frame(&bytes);
        }
    }

    #[test]
    fn large_batches_travel_deflated_and_round_trip() {
        let entries: Vec<ChangeEntry> = (0..50u8)
            .map(|i| ChangeEntry {
                doc: DocId::new_case([i; 16]),
                bytes: b"an automerge change ".repeat(12),
            })
            .collect();
        let raw: usize = entries.iter().map(|e| e.bytes.len()).sum();
        let msg = Message::Changes(Changes {
            from_seq: 1,
            up_to_seq: 60,
            caught_up: true,
            entries,
        });
        let payload = msg.encode();
        assert_eq!(payload[1], T_CHANGES_DEFLATED);
        assert!(payload.len() * 3 < raw, "{} bytes for {raw}", payload.len());
        assert_eq!(Message::decode(&payload), Ok(msg));
        // A deflated body that claims another size is refused.
        let mut lie = payload.clone();
        lie[5] ^= 1;
        assert!(Message::decode(&lie).is_err());
    }

    #[test]
    fn limits_are_enforced_before_allocation() {
        // A frame header claiming more than the limit is refused from the header alone.
        let huge = ((FRAME_MAX_BYTES + 1) as u32).to_be_bytes();
        assert_eq!(
            decode_frame(&huge),
            Err(WireError::FrameTooLarge(FRAME_MAX_BYTES + 1))
        );
        // A count larger than the bytes left is refused, not pre-allocated.
        let mut w = Writer(vec![PROTOCOL_VERSION, T_DEPARTED]);
        w.varint(60_000);
        assert!(matches!(
            Message::decode(&w.0),
            Err(WireError::Truncated(_))
        ));
        let mut w = Writer(vec![PROTOCOL_VERSION, T_DEPARTED]);
        w.varint(u64::MAX);
        assert!(matches!(
            Message::decode(&w.0),
            Err(WireError::TooMany { .. })
        ));
        // Unknown versions and types are named.
        assert_eq!(Message::decode(&[9, T_ACK, 0]), Err(WireError::Version(9)));
        assert_eq!(
            Message::decode(&[PROTOCOL_VERSION, 200]),
            Err(WireError::MessageType(200))
        );
        // Over-long varints and trailing bytes are refused.
        assert_eq!(
            Message::decode(&[PROTOCOL_VERSION, T_ACK, 0x80, 0x00]),
            Err(WireError::Varint)
        );
        assert_eq!(
            Message::decode(&[PROTOCOL_VERSION, T_ACK, 0x01, 0x00]),
            Err(WireError::Trailing(1))
        );
        let max = Writer(vec![]);
        let mut max = max;
        max.varint(u64::MAX);
        let mut p = vec![PROTOCOL_VERSION, T_ACK];
        p.extend_from_slice(&max.0);
        assert_eq!(
            Message::decode(&p),
            Ok(Message::Ack(Ack {
                up_to_seq: u64::MAX
            }))
        );
        // Bad document ids are refused.
        let mut w = Writer(vec![PROTOCOL_VERSION, T_DEPARTED]);
        w.varint(1);
        w.bytes(b"not-a-doc");
        assert!(matches!(
            Message::decode(&w.0),
            Err(WireError::Invalid {
                what: "document id",
                ..
            })
        ));
    }
}
