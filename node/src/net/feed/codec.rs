//! The interim change feed's messages and their binary encoding: a version byte, a
//! type byte, then fixed-width big-endian fields. Every count and length is checked
//! against its limit and against the bytes left before anything is allocated.

use yichuang_shared::ids::{DocId, NODE_ID_LEN, NodeId};

use crate::net::frame::FRAME_MAX_BYTES;
use crate::net::transport::PROTOCOL_VERSION;

/// Most entries in one batch; with the byte budget this keeps a batch well inside a frame.
pub const ENTRIES_MAX: usize = 4_096;
/// Longest document id on the wire (case ids are 33 bytes).
const DOC_ID_MAX_BYTES: usize = 64;
/// Longest rejection detail: a sentence, not a log.
pub const DETAIL_MAX_BYTES: usize = 512;

const T_HELLO: u8 = 1;
const T_CHANGES: u8 = 2;
const T_ACK: u8 = 3;
const T_REJECTED: u8 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("unsupported protocol version {0} (this node speaks {PROTOCOL_VERSION})")]
    Version(u8),
    #[error("unknown message type {0}")]
    Type(u8),
    #[error("message ends early while reading {0}")]
    Truncated(&'static str),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("{what} count {count} exceeds the limit of {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub node: NodeId,
    pub epoch: u64,
    pub head: u64,
    /// How far the sender has applied the receiver's feed: (epoch, seq); epoch 0 = never.
    pub your_epoch: u64,
    pub your_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub doc: DocId,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    /// Every in-scope change with `from_seq < seq <= up_to_seq`; `head` is the sender's newest.
    Changes {
        from_seq: u64,
        up_to_seq: u64,
        head: u64,
        entries: Vec<Entry>,
    },
    Ack {
        up_to_seq: u64,
    },
    Rejected {
        count: u32,
        detail: String,
    },
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = vec![PROTOCOL_VERSION];
        match self {
            Message::Hello(h) => {
                w.push(T_HELLO);
                w.extend_from_slice(&h.node.0);
                for v in [h.epoch, h.head, h.your_epoch, h.your_seq] {
                    w.extend_from_slice(&v.to_be_bytes());
                }
            }
            Message::Changes {
                from_seq,
                up_to_seq,
                head,
                entries,
            } => {
                w.push(T_CHANGES);
                for v in [*from_seq, *up_to_seq, *head] {
                    w.extend_from_slice(&v.to_be_bytes());
                }
                w.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for e in entries {
                    let id = e.doc.as_str().as_bytes();
                    w.push(id.len() as u8);
                    w.extend_from_slice(id);
                    w.extend_from_slice(&(e.bytes.len() as u32).to_be_bytes());
                    w.extend_from_slice(&e.bytes);
                }
            }
            Message::Ack { up_to_seq } => {
                w.push(T_ACK);
                w.extend_from_slice(&up_to_seq.to_be_bytes());
            }
            Message::Rejected { count, detail } => {
                w.push(T_REJECTED);
                w.extend_from_slice(&count.to_be_bytes());
                let mut d = detail.as_bytes();
                if d.len() > DETAIL_MAX_BYTES {
                    d = &d[..DETAIL_MAX_BYTES];
                }
                w.extend_from_slice(&(d.len() as u16).to_be_bytes());
                w.extend_from_slice(d);
            }
        }
        w
    }

    pub fn decode(payload: &[u8]) -> Result<Message, CodecError> {
        let mut r = Reader(payload);
        let version = r.u8("version")?;
        if version != PROTOCOL_VERSION {
            return Err(CodecError::Version(version));
        }
        let msg = match r.u8("type")? {
            T_HELLO => {
                let node = NodeId(
                    r.take(NODE_ID_LEN, "node id")?
                        .try_into()
                        .map_err(|_| CodecError::Invalid("node id"))?,
                );
                Message::Hello(Hello {
                    node,
                    epoch: r.u64("epoch")?,
                    head: r.u64("head")?,
                    your_epoch: r.u64("your epoch")?,
                    your_seq: r.u64("your seq")?,
                })
            }
            T_CHANGES => {
                let from_seq = r.u64("from seq")?;
                let up_to_seq = r.u64("up to seq")?;
                let head = r.u64("head")?;
                if up_to_seq < from_seq {
                    return Err(CodecError::Invalid("feed range"));
                }
                let n = r.u32("entry count")? as usize;
                if n > ENTRIES_MAX {
                    return Err(CodecError::TooMany {
                        what: "entries",
                        count: n,
                        max: ENTRIES_MAX,
                    });
                }
                // Each entry takes at least 6 bytes: no allocation beyond what the frame holds.
                if n * 6 > r.0.len() {
                    return Err(CodecError::Truncated("entries"));
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = r.u8("doc id length")? as usize;
                    if len > DOC_ID_MAX_BYTES {
                        return Err(CodecError::Invalid("doc id length"));
                    }
                    let id = std::str::from_utf8(r.take(len, "doc id")?)
                        .map_err(|_| CodecError::Invalid("doc id"))?;
                    let doc: DocId = id.parse().map_err(|_| CodecError::Invalid("doc id"))?;
                    let blen = r.u32("change length")? as usize;
                    if blen > FRAME_MAX_BYTES {
                        return Err(CodecError::Invalid("change length"));
                    }
                    entries.push(Entry {
                        doc,
                        bytes: r.take(blen, "change")?.to_vec(),
                    });
                }
                Message::Changes {
                    from_seq,
                    up_to_seq,
                    head,
                    entries,
                }
            }
            T_ACK => Message::Ack {
                up_to_seq: r.u64("ack")?,
            },
            T_REJECTED => {
                let count = r.u32("count")?;
                let len = r.u16("detail length")? as usize;
                if len > DETAIL_MAX_BYTES {
                    return Err(CodecError::Invalid("detail length"));
                }
                let detail = String::from_utf8_lossy(r.take(len, "detail")?).into_owned();
                Message::Rejected { count, detail }
            }
            other => return Err(CodecError::Type(other)),
        };
        if !r.0.is_empty() {
            return Err(CodecError::Trailing(r.0.len()));
        }
        Ok(msg)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(
            self.take(2, what)?
                .try_into()
                .map_err(|_| CodecError::Truncated(what))?,
        ))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?
                .try_into()
                .map_err(|_| CodecError::Truncated(what))?,
        ))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?
                .try_into()
                .map_err(|_| CodecError::Truncated(what))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let msgs = [
            Message::Hello(Hello {
                node: NodeId([7; 8]),
                epoch: 1,
                head: 2,
                your_epoch: 3,
                your_seq: 4,
            }),
            Message::Changes {
                from_seq: 1,
                up_to_seq: 9,
                head: 12,
                entries: vec![Entry {
                    doc: DocId::new_case([1; 16]),
                    bytes: vec![1, 2, 3],
                }],
            },
            Message::Ack { up_to_seq: 5 },
            Message::Rejected {
                count: 2,
                detail: "out of scope".into(),
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(Message::decode(&bytes), Ok(m.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    Message::decode(&bytes[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
        }
        assert_eq!(Message::decode(&[9, 1]), Err(CodecError::Version(9)));
        assert_eq!(
            Message::decode(&[PROTOCOL_VERSION, 77]),
            Err(CodecError::Type(77))
        );
        let mut huge = vec![PROTOCOL_VERSION, T_CHANGES];
        huge.extend_from_slice(&[0; 24]);
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Message::decode(&huge),
            Err(CodecError::TooMany { .. })
        ));
    }
}
