//! The session's timers: when the node should next call `handle_timeout` (the
//! response timeout while an answer is awaited, the live-push batching window and
//! the next anti-entropy reconciliation), and what `handle_timeout` does when one
//! of them is due.

use yichuang_shared::wire::ErrorCode;

use super::{Phase, Recon, Session, SessionError};
use crate::store::Store;

impl Session {
    pub fn handle_timeout<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if matches!(self.phase, Phase::Closed | Phase::New) {
            return Ok(());
        }
        if self.awaiting() && now_ms >= self.last_activity_ms + self.config.response_timeout_ms {
            return Err(self.fail(ErrorCode::Timeout, "no answer in time".into()));
        }
        if self.phase != Phase::Open {
            return Ok(());
        }
        let result = self.on_timers(now_ms, store);
        if let Err(e) = &result {
            let _ = self.fail::<S::Error>(ErrorCode::Internal, e.to_string());
        }
        result
    }

    fn on_timers<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if self.push_at.is_some_and(|t| t <= now_ms) {
            self.push_at = None;
            self.pump_feed(now_ms, store)?;
        }
        if self.recon_next_at.is_some_and(|t| t <= now_ms) && matches!(self.recon, Recon::Idle) {
            self.recon_next_at = None;
            self.start_reconcile(now_ms, store)?;
        }
        self.check_caught_up(now_ms, store)
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<i64> {
        if matches!(self.phase, Phase::Closed | Phase::New) {
            return None;
        }
        let mut t: Option<i64> = None;
        let mut consider = |x: Option<i64>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.awaiting() {
            consider(Some(
                self.last_activity_ms + self.config.response_timeout_ms,
            ));
        }
        if self.phase == Phase::Open {
            consider(self.push_at);
            if matches!(self.recon, Recon::Idle) {
                consider(self.recon_next_at);
            }
        }
        t
    }

    /// Whether the session waits for an answer from the peer.
    fn awaiting(&self) -> bool {
        self.phase == Phase::AwaitHello
            || !self.out_inflight.is_empty()
            || matches!(self.recon, Recon::Running { .. } | Recon::Expected)
            || self.awaiting_docs > 0
    }
}
