//! Replays every saved decoder input under `fixtures/fuzz/wire/` and runs the
//! decoder over a large seeded corpus of random and mutated frames: decoding
//! untrusted bytes returns an error or a message that round-trips, never a panic.

use std::path::PathBuf;

use yichuang_shared::ids::{DocId, NodeId, Role};
use yichuang_shared::wire::{
    Ack, ChangeEntry, Changes, DocSyncEntry, FeedPos, Hello, Message, Range, RangeMode, Reconcile,
    decode_frame,
};
use yichuang_tests::sim::Rng;

fn check(bytes: &[u8]) {
    if let Ok(msg) = Message::decode(bytes) {
        assert_eq!(
            Message::decode(&msg.encode()).as_ref(),
            Ok(&msg),
            "an accepted message must round-trip"
        );
    }
    if let Ok(Some((msg, used))) = decode_frame(bytes) {
        assert!(used <= bytes.len());
        assert_eq!(Message::decode(&msg.encode()).as_ref(), Ok(&msg));
    }
}

#[test]
fn saved_inputs_replay_without_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/fuzz/wire");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/fuzz/wire exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "bin") {
            check(&std::fs::read(&path).expect("a readable fixture"));
            count += 1;
        }
    }
    assert!(count >= 10, "only {count} saved inputs");
}

fn samples() -> Vec<Message> {
    let doc = DocId::new_case([7; 16]);
    vec![
        Message::Hello(Hello {
            node: NodeId([1; 8]),
            role: Role::Center,
            epoch: 42,
            last_seq: 1_000,
            your_feed: Some(FeedPos { epoch: 7, seq: 99 }),
            want_reconcile: true,
        }),
        Message::Changes(Changes {
            from_seq: 10,
            up_to_seq: 20,
            caught_up: false,
            entries: vec![ChangeEntry {
                doc: doc.clone(),
                bytes: vec![1, 2, 3, 4, 5],
            }],
        }),
        Message::Ack(Ack { up_to_seq: 300 }),
        Message::Reconcile(Reconcile {
            round: 3,
            ranges: vec![
                Range {
                    upper: Some(doc.clone()),
                    mode: RangeMode::Fingerprint {
                        count: 5,
                        fingerprint: [9; 16],
                    },
                },
                Range {
                    upper: None,
                    mode: RangeMode::Items(vec![(DocId::new_case([8; 16]), [1; 16])]),
                },
            ],
        }),
        Message::DocSync(vec![DocSyncEntry {
            doc: doc.clone(),
            message: vec![0x42, 1, 2],
        }]),
        Message::Departed(vec![doc]),
    ]
}

/// Stands in for a fuzzing campaign where no fuzzer runs (CI has no nightly):
/// 200,000 seeded inputs, half random, half valid frames with a few bytes changed.
#[test]
fn seeded_corpus_never_panics() {
    let mut rng = Rng::new(0xf022);
    let frames: Vec<Vec<u8>> = samples()
        .iter()
        .map(|m| m.encode_frame().expect("small frame"))
        .collect();
    for i in 0..200_000u32 {
        let mut bytes = if i % 2 == 0 {
            let len = rng.below(96) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            frames[rng.below(frames.len() as u64) as usize].clone()
        };
        if !bytes.is_empty() {
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
        }
        check(&bytes);
        if bytes.len() > 4 {
            check(&bytes[4..]);
        }
    }
}
