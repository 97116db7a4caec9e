//! Reconnect delays: exponential from a short first try, capped, with jitter so that
//! a district's nodes do not all knock on the hub in the same millisecond.

use std::time::Duration;

/// The first retry comes quickly: most drops are a blip.
pub const BACKOFF_MIN_MS: u64 = 200;
/// The longest wait between tries. A link that comes back is used within this
/// (plus the handshake), which is what "merge the moment a link comes back" needs.
pub const BACKOFF_MAX_MS: u64 = 3_000;

#[derive(Debug, Clone)]
pub struct Backoff {
    next_ms: u64,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Backoff {
        Backoff {
            next_ms: BACKOFF_MIN_MS,
            rng: seed | 1,
        }
    }

    /// A connection worked: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.next_ms = BACKOFF_MIN_MS;
    }

    /// The delay before the next try: uniform in [d/2, d], then d doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next_ms;
        self.next_ms = (d * 2).min(BACKOFF_MAX_MS);
        // xorshift64: jitter needs spread, not secrecy.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        Duration::from_millis(half + self.rng % (d - half + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(42);
        let delays: Vec<u64> = (0..12).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!(delays[0] >= BACKOFF_MIN_MS / 2 && delays[0] <= BACKOFF_MIN_MS);
        assert!(delays.iter().all(|&d| d <= BACKOFF_MAX_MS));
        assert!(delays[11] >= BACKOFF_MAX_MS / 2);
        b.reset();
        assert!(b.next_delay().as_millis() as u64 <= BACKOFF_MIN_MS);
    }
}
