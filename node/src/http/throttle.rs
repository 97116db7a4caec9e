//! Login throttling: after [`LOGIN_FAILURES_MAX`] wrong passwords for one name within
//! [`LOGIN_WINDOW_MS`], that name is refused (429) for a window, even with the right
//! password; a successful login clears its count. Kept in memory, bounded: a restart
//! forgets it, which costs an attacker a restart of the node to earn five more tries.
//!
//! The tally is kept for the name as typed, whether or not an account has it, and a
//! locked name is refused before any lookup, so neither the answer nor its timing
//! says whether the name exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::store::users::USER_NAME_MAX_CHARS;

/// Wrong passwords for one name before it is locked: enough for typos and a
/// forgotten Caps Lock, too few to guess an eight-character password.
pub const LOGIN_FAILURES_MAX: u32 = 5;
/// The window the failures are counted in, and how long a lock lasts: long enough
/// to make guessing hopeless, short enough that a clerk who mistyped waits out a tea break.
pub const LOGIN_WINDOW_MS: i64 = 15 * 60_000;
/// Names tallied at once. A hall has dozens of accounts; this bounds the memory an
/// attacker spraying made-up names can take (each entry is under 200 bytes).
pub const LOGIN_NAMES_MAX: usize = 10_000;

/// The clock the throttle reads, in Unix milliseconds; tests pass their own.
pub type NowMs = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    pub failures_max: u32,
    pub window_ms: i64,
    pub names_max: usize,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            failures_max: LOGIN_FAILURES_MAX,
            window_ms: LOGIN_WINDOW_MS,
            names_max: LOGIN_NAMES_MAX,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Tally {
    failures: u32,
    window_start_ms: i64,
    /// 0 while not locked.
    locked_until_ms: i64,
}

impl Tally {
    /// When this tally stops mattering.
    fn expires_ms(&self, window_ms: i64) -> i64 {
        self.locked_until_ms
            .max(self.window_start_ms.saturating_add(window_ms))
    }
}

/// The failure tallies; a pure state machine over the `now_ms` it is given.
#[derive(Debug)]
pub struct Tallies {
    limits: LoginLimits,
    by_name: HashMap<String, Tally>,
}

/// Names longer than any account's share one key: none of them can sign in anyway,
/// and the key stays small.
fn key(name: &str) -> String {
    name.chars().take(USER_NAME_MAX_CHARS + 1).collect()
}

impl Tallies {
    pub fn new(limits: LoginLimits) -> Tallies {
        Tallies {
            limits,
            by_name: HashMap::new(),
        }
    }

    /// `Err(until_ms)` while `name` is locked.
    pub fn check(&mut self, name: &str, now_ms: i64) -> Result<(), i64> {
        let key = key(name);
        let Some(t) = self.by_name.get(&key) else {
            return Ok(());
        };
        if t.locked_until_ms > now_ms {
            return Err(t.locked_until_ms);
        }
        if t.locked_until_ms != 0 {
            // The lock has passed: a fresh start.
            self.by_name.remove(&key);
        }
        Ok(())
    }

    /// Counts a wrong password; locks the name when it reaches the limit.
    pub fn failed(&mut self, name: &str, now_ms: i64) {
        let key = key(name);
        if !self.by_name.contains_key(&key) {
            self.make_room(now_ms);
        }
        let window_ms = self.limits.window_ms;
        let t = self.by_name.entry(key).or_insert(Tally {
            failures: 0,
            window_start_ms: now_ms,
            locked_until_ms: 0,
        });
        if now_ms.saturating_sub(t.window_start_ms) >= window_ms {
            *t = Tally {
                failures: 0,
                window_start_ms: now_ms,
                locked_until_ms: 0,
            };
        }
        t.failures = t.failures.saturating_add(1);
        if t.failures >= self.limits.failures_max {
            t.locked_until_ms = now_ms.saturating_add(window_ms);
            tracing::warn!(
                failures = t.failures,
                "login locked after repeated wrong passwords"
            );
        }
    }

    /// A successful login clears the name's count.
    pub fn succeeded(&mut self, name: &str) {
        self.by_name.remove(&key(name));
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Keeps the map under its bound: first what has expired, then the unlocked
    /// tally that expires soonest, a live lock last (so spraying names does not free one).
    fn make_room(&mut self, now_ms: i64) {
        if self.by_name.len() < self.limits.names_max {
            return;
        }
        let window_ms = self.limits.window_ms;
        self.by_name.retain(|_, t| t.expires_ms(window_ms) > now_ms);
        if self.by_name.len() < self.limits.names_max {
            return;
        }
        tracing::warn!("login throttle full; forgetting the tallies that matter least");
        while self.by_name.len() >= self.limits.names_max {
            let Some(least) = self
                .by_name
                .iter()
                .min_by_key(|(_, t)| (t.locked_until_ms > now_ms, t.expires_ms(window_ms)))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.by_name.remove(&least);
        }
    }
}

/// The throttle as the login handler uses it: the tallies behind a lock, and a clock.
pub struct LoginGuard {
    tallies: Mutex<Tallies>,
    clock: NowMs,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard").finish_non_exhaustive()
    }
}

impl LoginGuard {
    pub fn new(limits: LoginLimits, clock: NowMs) -> LoginGuard {
        LoginGuard {
            tallies: Mutex::new(Tallies::new(limits)),
            clock,
        }
    }

    /// The limits of the module, on the node's clock.
    pub fn node_default() -> LoginGuard {
        LoginGuard::new(LoginLimits::default(), Arc::new(crate::clock::now_ms))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tallies, i64) -> T) -> T {
        let now = (self.clock)();
        // A panic while holding the lock cannot leave a tally half-written (every
        // update is a few plain assignments), so a poisoned lock is still sound.
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut tallies, now)
    }

    /// `Err((until_ms, now_ms))` while `name` is locked.
    pub fn check(&self, name: &str) -> Result<(), (i64, i64)> {
        self.with(|t, now| t.check(name, now).map_err(|until| (until, now)))
    }

    pub fn failed(&self, name: &str) {
        self.with(|t, now| t.failed(name, now));
    }

    pub fn succeeded(&self, name: &str) {
        self.with(|t, _| t.succeeded(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn limits(names_max: usize) -> LoginLimits {
        LoginLimits {
            failures_max: 3,
            window_ms: 1_000,
            names_max,
        }
    }

    #[test]
    fn locks_after_the_limit_until_the_window_passes() {
        let mut t = Tallies::new(limits(100));
        t.failed("C1", T0);
        t.failed("C1", T0 + 10);
        assert_eq!(t.check("C1", T0 + 20), Ok(()));
        t.failed("C1", T0 + 20);
        assert_eq!(t.check("C1", T0 + 21), Err(T0 + 1_020));
        assert_eq!(t.check("C1", T0 + 1_019), Err(T0 + 1_020));
        assert_eq!(t.check("C2", T0 + 21), Ok(()), "per name");
        assert_eq!(t.check("C1", T0 + 1_020), Ok(()));
        // After the lock, a fresh count: one more failure does not lock again.
        t.failed("C1", T0 + 1_030);
        assert_eq!(t.check("C1", T0 + 1_031), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_and_successes_reset_the_count() {
        let mut t = Tallies::new(limits(100));
        t.failed("C1", T0);
        t.failed("C1", T0 + 1);
        t.failed("C1", T0 + 1_000);
        assert_eq!(t.check("C1", T0 + 1_001), Ok(()), "the window moved on");
        t.failed("C1", T0 + 1_002);
        t.succeeded("C1");
        t.failed("C1", T0 + 1_003);
        t.failed("C1", T0 + 1_004);
        assert_eq!(t.check("C1", T0 + 1_005), Ok(()), "the success cleared it");
        t.failed("C1", T0 + 1_005);
        assert!(t.check("C1", T0 + 1_006).is_err());
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_live_locks_longest() {
        let mut t = Tallies::new(limits(4));
        for _ in 0..3 {
            t.failed("locked", T0);
        }
        for n in 0..50 {
            t.failed(&format!("spray{n}"), T0 + 1 + n);
            assert!(t.len() <= 4);
        }
        assert!(t.check("locked", T0 + 60).is_err(), "the lock survived");
        let long = "x".repeat(10_000);
        t.failed(&long, T0 + 70);
        assert!(t.by_name.keys().all(|k| k.chars().count() <= 65));
    }
}
