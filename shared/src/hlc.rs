//! Hybrid logical clocks: wall milliseconds in the high bits, a counter in the low 16,
//! so events order causally even when node clocks disagree.

use serde::{Deserialize, Serialize};

/// Bits of the logical counter. 65,536 events in one millisecond is far beyond a counter's pace.
const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;

/// How far ahead of the local clock a remote stamp may be before we refuse to follow it.
/// Clerks' PCs drift by seconds; a node a day ahead must not drag every clock with it.
pub const MAX_CLOCK_SKEW_MS: i64 = 5 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hlc(pub u64);

impl Hlc {
    pub fn new(wall_ms: i64, logical: u16) -> Hlc {
        Hlc((wall_ms.max(0) as u64) << LOGICAL_BITS | u64::from(logical))
    }

    pub fn wall_ms(self) -> i64 {
        (self.0 >> LOGICAL_BITS) as i64
    }

    pub fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The stamp for a new local event after `last`, given the wall clock `now_ms`.
    pub fn tick(last: Hlc, now_ms: i64) -> Hlc {
        if now_ms > last.wall_ms() {
            Hlc::new(now_ms, 0)
        } else if last.logical() < u16::MAX {
            Hlc(last.0 + 1)
        } else {
            // The counter is exhausted: borrow the next millisecond rather than wrap.
            Hlc::new(last.wall_ms() + 1, 0)
        }
    }

    /// Folds a remote stamp into the local clock. A remote stamp further ahead than
    /// [`MAX_CLOCK_SKEW_MS`] is not followed (the event carrying it is flagged elsewhere).
    pub fn observe(last: Hlc, remote: Hlc, now_ms: i64) -> Hlc {
        if remote.wall_ms() > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return last;
        }
        last.max(remote)
    }

    /// Whether a stamp is further in the future than a clock at `now_ms` allows.
    pub fn is_skewed(self, now_ms: i64) -> bool {
        self.wall_ms() > now_ms.saturating_add(MAX_CLOCK_SKEW_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_monotone_even_when_the_wall_clock_steps_back() {
        let mut last = Hlc::new(1_000, 0);
        for now in [1_000, 999, 500, 1_001, 1_001] {
            let next = Hlc::tick(last, now);
            assert!(next > last, "{next:?} after {last:?} at {now}");
            last = next;
        }
        assert_eq!(Hlc::tick(Hlc::new(10, u16::MAX), 5), Hlc::new(11, 0));
    }

    #[test]
    fn far_future_stamps_are_not_followed() {
        let last = Hlc::new(1_000, 3);
        assert_eq!(
            Hlc::observe(last, Hlc::new(2_000, 0), 1_000),
            Hlc::new(2_000, 0)
        );
        let day_ahead = Hlc::new(1_000 + 86_400_000, 0);
        assert_eq!(Hlc::observe(last, day_ahead, 1_000), last);
        assert!(day_ahead.is_skewed(1_000));
    }
}
