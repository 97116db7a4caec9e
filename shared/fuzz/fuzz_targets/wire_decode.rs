//! Fuzzes the sync message decoder with untrusted bytes: it must never panic, and
//! whatever it accepts must encode back to a message that decodes to itself.
//! Run with `cargo +nightly fuzz run wire_decode` in `shared/`; save crashes
//! under `fixtures/fuzz/wire/`, where the integration tests replay them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use yichuang_shared::wire::{Message, decode_frame};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let again = Message::decode(&msg.encode()).expect("an accepted message re-encodes");
        assert_eq!(again, msg);
    }
    let _ = decode_frame(data);
});
