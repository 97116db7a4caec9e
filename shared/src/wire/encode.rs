//! Encoding messages: the payload (version, type, body), the frame around it checked
//! against `FRAME_MAX_BYTES`, feed batches deflated when that pays, details cut to
//! their limit, and the `Writer` of bytes and LEB128 varints.

use super::*;
use crate::ids::{DocId, Role};

impl Message {
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
}

fn deflate(raw: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(raw).ok()?;
    z.finish().ok()
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

pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    pub(super) fn varint(&mut self, mut v: u64) {
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

    pub(super) fn len(&mut self, n: usize) {
        self.varint(n as u64);
    }

    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    pub(super) fn doc(&mut self, d: &DocId) {
        self.bytes(d.as_str().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
