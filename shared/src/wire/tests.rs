//! Round trips of the whole codec: every message encodes to a frame that decodes to
//! itself, no strict prefix decodes to a message, and mutated payloads never panic.

use proptest::prelude::*;

use super::*;
use crate::ids::{DocId, NodeId, Role};

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
        proptest::collection::vec((doc_id(), any::<[u8; 16]>()), 0..4).prop_map(RangeMode::Items),
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
}
