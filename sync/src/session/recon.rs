//! Range-based reconciliation inside a session: starting the rounds, answering the
//! peer's rounds in order over the documents in its scope, and queueing a document
//! sync for each document found to differ.

use yichuang_shared::ids::DocId;
use yichuang_shared::wire::{Message, RangeMode, Reconcile};

use super::{Recon, Session, SessionError, SessionEvent, st};
use crate::reconcile::{ROUNDS_MAX, ReconcileSet};
use crate::store::Store;

impl Session {
    pub(super) fn start_reconcile<S: Store>(
        &mut self,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        let set = self.reconcile_set(store)?;
        let ranges = set.initial();
        self.stats.reconcile_rounds += 1;
        self.recon_differing = 0;
        self.send(Message::Reconcile(Reconcile { round: 0, ranges }), now_ms);
        self.recon = Recon::Running {
            set,
            expect_round: 1,
        };
        Ok(())
    }

    /// The documents in the peer's scope as we see it, minus those it said departed.
    /// Our own scope does not narrow it: a case we created for a center (a laptop's
    /// new case) or wrote while it moved away must still reach the peer; views that
    /// disagree meet in a document sync or a departure notice.
    fn reconcile_set<S: Store>(&self, store: &S) -> Result<ReconcileSet, SessionError<S::Error>> {
        let mut docs = st(store.docs_in_scope(std::slice::from_ref(self.peer_scope())))?;
        docs.retain(|(d, _)| !self.departed.contains(d));
        Ok(ReconcileSet::new(docs))
    }

    pub(super) fn on_reconcile<S: Store>(
        &mut self,
        r: Reconcile,
        now_ms: i64,
        store: &mut S,
    ) -> Result<(), SessionError<S::Error>> {
        if r.round >= ROUNDS_MAX {
            return Err(Self::protocol(format!(
                "reconciliation ran past {ROUNDS_MAX} rounds"
            )));
        }
        let recon = std::mem::replace(&mut self.recon, Recon::Idle);
        let (set, expect) = match recon {
            Recon::Running { set, expect_round } => (set, expect_round),
            Recon::Idle | Recon::Expected | Recon::Finishing if r.round == 0 && !self.initiator => {
                self.recon_differing = 0;
                (self.reconcile_set(store)?, 0)
            }
            other => {
                self.recon = other;
                return Err(Self::protocol(format!(
                    "unexpected reconciliation round {}",
                    r.round
                )));
            }
        };
        if r.round != expect {
            return Err(Self::protocol(format!(
                "reconciliation round {} where {expect} was expected",
                r.round
            )));
        }
        self.stats.reconcile_rounds += 1;
        let terminator = r.ranges.iter().all(|x| x.mode == RangeMode::Skip);
        let out = set
            .process(&r.ranges)
            .map_err(|e| Self::protocol(format!("reconciliation: {e}")))?;
        self.recon_differing += out.differing.len();
        let done = out.is_done();
        self.on_differing(out.differing);
        if terminator {
            self.finish_reconcile();
        } else if done {
            self.send(
                Message::Reconcile(Reconcile {
                    round: r.round + 1,
                    ranges: out.reply,
                }),
                now_ms,
            );
            self.finish_reconcile();
        } else {
            self.send(
                Message::Reconcile(Reconcile {
                    round: r.round + 1,
                    ranges: out.reply,
                }),
                now_ms,
            );
            self.recon = Recon::Running {
                set,
                expect_round: r.round + 2,
            };
        }
        self.pump_doc_syncs(now_ms, store)?;
        self.check_caught_up(now_ms, store)
    }

    fn finish_reconcile(&mut self) {
        self.events.push_back(SessionEvent::Reconciled {
            differing: self.recon_differing,
        });
        self.recon = Recon::Finishing;
    }

    /// Documents found to differ: each gets a document sync. One outside the peer's
    /// scope still does, withheld: we send only hashes and take what the peer has
    /// that we lack (a hub restored from a backup recovers a transfer that way),
    /// then tell it the document departed.
    fn on_differing(&mut self, docs: Vec<DocId>) {
        for doc in docs {
            self.queue_doc_sync(&doc);
        }
    }
}
