//! The protocol version and the hard limits of the wire format: frame, document id,
//! entry, range and detail sizes, the deflate threshold, and the hash and digest
//! widths, each with the reason for its size.

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
