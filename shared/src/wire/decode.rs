//! Decoding untrusted bytes: a payload into a message and a frame from the front of a
//! buffer, with every count checked against its limit and the bytes left before any
//! allocation, deflated batches inflated to exactly their announced size, and the
//! `Reader` of bytes and canonical LEB128 varints. Nothing here may panic.

use super::*;
use crate::ids::{DocId, NODE_ID_LEN, NodeId, Role};

impl Message {
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
                    let raw_len = r.varint_at_most("inflated changes", FRAME_MAX_BYTES)?;
                    let rest = r.take(r.left(), "deflated changes")?;
                    inflated = inflate(rest, raw_len)?;
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
                let entries = body
                    .doc_entries("changes", "change")?
                    .into_iter()
                    .map(|(doc, bytes)| ChangeEntry { doc, bytes })
                    .collect();
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
                let list = r
                    .doc_entries("doc syncs", "sync message")?
                    .into_iter()
                    .map(|(doc, message)| DocSyncEntry { doc, message })
                    .collect();
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
        let n = self.varint_at_most(what, max)?;
        if n.saturating_mul(min_item_bytes) > self.left() {
            return Err(WireError::Truncated(what));
        }
        Ok(n)
    }

    /// A varint that may not exceed `max`: a count or a length, refused before use.
    fn varint_at_most(&mut self, what: &'static str, max: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        if n > max as u64 {
            return Err(WireError::TooMany {
                what,
                count: n,
                max,
            });
        }
        // Fits in usize: it is at most `max`.
        Ok(n as usize)
    }

    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.varint_at_most(what, max)?;
        self.take(n, what)
    }

    /// A counted list of (document id, bytes) pairs: feed changes, doc sync messages.
    fn doc_entries(
        &mut self,
        what: &'static str,
        item: &'static str,
    ) -> Result<Vec<(DocId, Vec<u8>)>, WireError> {
        let n = self.count(what, ENTRIES_MAX, 2)?;
        let mut out = Vec::new();
        for _ in 0..n {
            let doc = self.doc()?;
            out.push((doc, self.bytes(item, FRAME_MAX_BYTES)?.to_vec()));
        }
        Ok(out)
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
    use crate::wire::encode::Writer;

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::decode(&bytes);
            let _ = decode_frame(&bytes);
        }
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
