//! Range-based set reconciliation over (document id, digest of heads): both sides
//! hold the sorted set of documents in the scope they share; ranges whose count and
//! fingerprint agree are skipped, others are split sixteen ways or listed, until
//! each side knows which documents differ. Stateless between rounds apart from the
//! set itself, so a round costs one message and one pass over the ranges named.

use automerge::ChangeHash;
use sha2::{Digest as _, Sha256};
use yichuang_shared::ids::DocId;
use yichuang_shared::wire::{DIGEST_BYTES, Digest, Range, RangeMode};

/// A differing range with at most this many items is listed instead of split:
/// listing 64 items (about 3 KiB) costs less than another round of 16 fingerprints.
pub const ITEMS_INLINE_MAX: usize = 64;
/// A differing range is split into this many sub-ranges: with 10^4 documents and
/// 10^2 differences the differing ones are found in two splits.
pub const BUCKETS: usize = 16;
/// Bytes one reply may take before the rest of the ranges is answered with one
/// fingerprint over all of them (resolved in later rounds), so a reply always fits a frame.
pub const REPLY_BUDGET_BYTES: usize = 1024 * 1024;
/// Rounds after which a reconciliation is abandoned: each round narrows ranges
/// sixteen-fold, so 10^6 documents need about ten; more means a broken peer.
pub const ROUNDS_MAX: u32 = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReconcileError {
    #[error("range bounds are not increasing")]
    Unordered,
    #[error("the ranges do not reach the end of the set")]
    Incomplete,
    #[error("listed items are out of order or outside their range")]
    BadItems,
}

/// The digest of one document's state: its id and its sorted heads.
pub fn doc_digest(doc: &DocId, heads: &[ChangeHash]) -> Digest {
    let mut sorted = heads.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(doc.as_str().as_bytes());
    h.update([0u8]);
    for head in &sorted {
        h.update(head.0);
    }
    let full = h.finalize();
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&full[..DIGEST_BYTES]);
    out
}

/// One side's sorted set, with prefix sums so a range's fingerprint costs two lookups.
#[derive(Debug, Default)]
pub struct ReconcileSet {
    items: Vec<(DocId, Digest)>,
    /// `prefix[i]` is the wrapping sum of the first `i` digests.
    prefix: Vec<u128>,
}

/// What one side learns and answers from one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoundOutput {
    /// The reply's ranges; all `Skip` (merged into one) when this side has nothing left to ask.
    pub reply: Vec<Range>,
    /// Documents whose state differs, including those only one side holds.
    pub differing: Vec<DocId>,
}

impl RoundOutput {
    /// The reply says nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.reply.iter().all(|r| r.mode == RangeMode::Skip)
    }
}

impl ReconcileSet {
    /// From (document, heads) pairs in any order.
    pub fn new(docs: Vec<(DocId, Vec<ChangeHash>)>) -> ReconcileSet {
        let mut items: Vec<(DocId, Digest)> = docs
            .into_iter()
            .map(|(d, h)| {
                let digest = doc_digest(&d, &h);
                (d, digest)
            })
            .collect();
        items.sort();
        items.dedup_by(|a, b| a.0 == b.0);
        let mut prefix = Vec::with_capacity(items.len() + 1);
        let mut sum = 0u128;
        prefix.push(sum);
        for (_, d) in &items {
            sum = sum.wrapping_add(u128::from_le_bytes(*d));
            prefix.push(sum);
        }
        ReconcileSet { items, prefix }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn index_of(&self, bound: &Option<DocId>) -> usize {
        match bound {
            None => self.items.len(),
            Some(d) => self.items.partition_point(|(x, _)| x < d),
        }
    }

    fn fingerprint(&self, lo: usize, hi: usize) -> (u64, Digest) {
        (
            (hi - lo) as u64,
            self.prefix[hi].wrapping_sub(self.prefix[lo]).to_le_bytes(),
        )
    }

    /// The first message of the initiator: the whole set as one fingerprint, or
    /// listed when small. In sync, that is the whole exchange.
    pub fn initial(&self) -> Vec<Range> {
        if self.items.len() <= ITEMS_INLINE_MAX {
            return vec![Range {
                upper: None,
                mode: RangeMode::Items(self.items.clone()),
            }];
        }
        let (count, fingerprint) = self.fingerprint(0, self.items.len());
        vec![Range {
            upper: None,
            mode: RangeMode::Fingerprint { count, fingerprint },
        }]
    }

    fn split_or_list(
        &self,
        lo: usize,
        hi: usize,
        upper: &Option<DocId>,
        out: &mut Vec<Range>,
    ) -> usize {
        let n = hi - lo;
        if n <= ITEMS_INLINE_MAX {
            let items = self.items[lo..hi].to_vec();
            let bytes = 8 + items.len() * 52;
            out.push(Range {
                upper: upper.clone(),
                mode: RangeMode::Items(items),
            });
            return bytes;
        }
        for b in 0..BUCKETS {
            let start = lo + n * b / BUCKETS;
            let end = lo + n * (b + 1) / BUCKETS;
            let bound = if b + 1 == BUCKETS {
                upper.clone()
            } else {
                Some(self.items[end].0.clone())
            };
            let (count, fingerprint) = self.fingerprint(start, end);
            out.push(Range {
                upper: bound,
                mode: RangeMode::Fingerprint { count, fingerprint },
            });
        }
        BUCKETS * 60
    }

    /// Answers one message of the peer.
    pub fn process(&self, ranges: &[Range]) -> Result<RoundOutput, ReconcileError> {
        let mut out = RoundOutput::default();
        let mut reply: Vec<Range> = Vec::new();
        let mut spent = 0usize;
        let mut lower: Option<&DocId> = None;
        let mut lo = 0usize;
        for (i, range) in ranges.iter().enumerate() {
            if let (Some(prev), Some(up)) = (lower, &range.upper)
                && up <= prev
            {
                return Err(ReconcileError::Unordered);
            }
            if lower.is_some() && range.upper.is_none() && i + 1 != ranges.len() {
                return Err(ReconcileError::Unordered);
            }
            let hi = self.index_of(&range.upper).max(lo);
            if spent > REPLY_BUDGET_BYTES && range.mode != RangeMode::Skip {
                // Out of budget: answer everything left with one fingerprint.
                let n = self.items.len();
                let (count, fingerprint) = self.fingerprint(lo, n);
                reply.push(Range {
                    upper: None,
                    mode: RangeMode::Fingerprint { count, fingerprint },
                });
                out.reply = merge_skips(reply);
                return Ok(out);
            }
            match &range.mode {
                RangeMode::Skip => reply.push(Range {
                    upper: range.upper.clone(),
                    mode: RangeMode::Skip,
                }),
                RangeMode::Fingerprint { count, fingerprint } => {
                    if self.fingerprint(lo, hi) == (*count, *fingerprint) {
                        reply.push(Range {
                            upper: range.upper.clone(),
                            mode: RangeMode::Skip,
                        });
                    } else {
                        spent += self.split_or_list(lo, hi, &range.upper, &mut reply);
                    }
                }
                RangeMode::Items(theirs) => {
                    check_items(theirs, lower, &range.upper)?;
                    diff(&self.items[lo..hi], theirs, &mut out.differing);
                    reply.push(Range {
                        upper: range.upper.clone(),
                        mode: RangeMode::Skip,
                    });
                }
            }
            lower = range.upper.as_ref();
            lo = hi;
            if range.upper.is_none() {
                out.reply = merge_skips(reply);
                return Ok(out);
            }
        }
        Err(ReconcileError::Incomplete)
    }
}

fn check_items(
    items: &[(DocId, Digest)],
    lower: Option<&DocId>,
    upper: &Option<DocId>,
) -> Result<(), ReconcileError> {
    let mut prev = lower;
    let mut first = true;
    for (d, _) in items {
        if let Some(p) = prev {
            // The lower bound is inclusive, earlier items must be strictly smaller.
            if d < p || (!first && d <= p) {
                return Err(ReconcileError::BadItems);
            }
        }
        if let Some(u) = upper
            && d >= u
        {
            return Err(ReconcileError::BadItems);
        }
        prev = Some(d);
        first = false;
    }
    Ok(())
}

fn diff(mine: &[(DocId, Digest)], theirs: &[(DocId, Digest)], out: &mut Vec<DocId>) {
    let (mut i, mut j) = (0, 0);
    while i < mine.len() || j < theirs.len() {
        match (mine.get(i), theirs.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                if a.1 != b.1 {
                    out.push(a.0.clone());
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                out.push(a.0.clone());
                i += 1;
            }
            (Some(_), Some(b)) => {
                out.push(b.0.clone());
                j += 1;
            }
            (Some(a), None) => {
                out.push(a.0.clone());
                i += 1;
            }
            (None, Some(b)) => {
                out.push(b.0.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
}

fn merge_skips(ranges: Vec<Range>) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.mode == RangeMode::Skip
            && let Some(last) = out.last_mut()
            && last.mode == RangeMode::Skip
        {
            last.upper = r.upper;
            continue;
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn set(docs: &BTreeSet<(u16, u8)>) -> ReconcileSet {
        ReconcileSet::new(
            docs.iter()
                .map(|(d, v)| {
                    let mut id = [0u8; 16];
                    id[..2].copy_from_slice(&d.to_be_bytes());
                    (DocId::new_case(id), vec![ChangeHash([*v; 32])])
                })
                .collect(),
        )
    }

    /// Runs the protocol to the end; returns every document either side found differing and the rounds.
    fn run(a: &ReconcileSet, b: &ReconcileSet) -> (BTreeSet<DocId>, u32) {
        let mut found = BTreeSet::new();
        let mut msg = a.initial();
        let mut rounds = 1;
        let mut turn_b = true;
        loop {
            let side = if turn_b { b } else { a };
            let out = side.process(&msg).unwrap();
            found.extend(out.differing.iter().cloned());
            if out.is_done() {
                return (found, rounds);
            }
            rounds += 1;
            assert!(rounds < ROUNDS_MAX, "runaway reconciliation");
            msg = out.reply;
            turn_b = !turn_b;
        }
    }

    fn expected(a: &BTreeSet<(u16, u8)>, b: &BTreeSet<(u16, u8)>) -> BTreeSet<DocId> {
        let sa = set(a);
        let sb = set(b);
        let mut out = Vec::new();
        diff(&sa.items, &sb.items, &mut out);
        out.into_iter().collect()
    }

    proptest! {
        #[test]
        fn finds_exactly_the_differences(
            common in proptest::collection::btree_set((any::<u16>(), any::<u8>()), 0..2000),
            only_a in proptest::collection::btree_set((any::<u16>(), any::<u8>()), 0..40),
            only_b in proptest::collection::btree_set((any::<u16>(), any::<u8>()), 0..40),
        ) {
            let mut a = common.clone();
            a.extend(only_a.iter().copied());
            let mut b = common;
            b.extend(only_b.iter().copied());
            // One digest per document: keep the first version of each id.
            let dedup = |s: BTreeSet<(u16, u8)>| -> BTreeSet<(u16, u8)> {
                let mut seen = BTreeSet::new();
                s.into_iter().filter(|(d, _)| seen.insert(*d)).collect()
            };
            let (a, b) = (dedup(a), dedup(b));
            let (found, _) = run(&set(&a), &set(&b));
            prop_assert_eq!(found, expected(&a, &b));
        }
    }

    #[test]
    fn in_sync_costs_one_round_and_few_differences_few_rounds() {
        let docs: BTreeSet<(u16, u8)> = (0..10_000u16).map(|i| (i, 1)).collect();
        let (found, rounds) = run(&set(&docs), &set(&docs));
        assert!(found.is_empty());
        assert_eq!(rounds, 1);
        let mut changed = docs.clone();
        for i in (0..10_000u16).step_by(100) {
            changed.remove(&(i, 1));
            changed.insert((i, 2));
        }
        let (found, rounds) = run(&set(&docs), &set(&changed));
        assert_eq!(found.len(), 100);
        assert!(rounds <= 5, "{rounds} rounds");
    }

    #[test]
    fn hostile_ranges_are_refused() {
        let s = set(&(0..100u16).map(|i| (i, 1)).collect());
        let a = DocId::new_case([2; 16]);
        let b = DocId::new_case([1; 16]);
        let bad = vec![
            Range {
                upper: Some(a),
                mode: RangeMode::Skip,
            },
            Range {
                upper: Some(b),
                mode: RangeMode::Skip,
            },
            Range {
                upper: None,
                mode: RangeMode::Skip,
            },
        ];
        assert_eq!(s.process(&bad), Err(ReconcileError::Unordered));
        assert_eq!(s.process(&[]), Err(ReconcileError::Incomplete));
    }
}
