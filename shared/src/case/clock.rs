//! The order and the trusted time of a case's events, derived from the document alone
//! (its events and its Automerge change graph), so every node holding the same changes
//! derives the same, whatever order they arrived in and whatever its own clock says.
//!
//! # The clock rule
//!
//! A stamp is a claim by the writing node's clock. Causality is a fact: an event whose
//! change depends on another event's change was written after its writer had seen that
//! event, so it happened later. Three steps turn claims and facts into event times:
//!
//! 1. **Evidence.** For every pair of events by different nodes where `b` causally
//!    follows `a`, a stamp of `a` more than [`MAX_CLOCK_SKEW_MS`] after the stamp of `b`
//!    proves that one of the two clocks is wrong: `a`'s node is ahead of `b`'s, by at
//!    least the difference. The sharpest evidence is a receipt: a node that receives an
//!    event stamped in its future records a `clock_skew_noted` event at once (see
//!    `timeline::skew_notes`), which follows the event causally and carries the
//!    receiver's clock at arrival, so the gap measures the writer's offset.
//! 2. **Verdict.** Each such pair blames one node. The node that disagrees with more
//!    distinct other nodes of the case is blamed (one wrong clock disagrees with every
//!    right one). Two clocks alone cannot tell which of them is wrong, so a tie trusts
//!    the node that created the case (its home center, which keeps the case's time);
//!    if neither created it, the node stamping in the future is blamed, as the hybrid
//!    logical clock does when it refuses to follow a far-future stamp.
//! 3. **Correction.** A blamed node's events are shifted by the smallest offset that
//!    explains the evidence (back by the largest amount it was found ahead, or forward
//!    by the largest amount it was found behind), then kept between the stamps of the
//!    trusted events they causally follow and precede. Those events are flagged as
//!    skewed. Events of trusted nodes keep their stamps.
//!
//! The fold order then respects causality outright: each event sorts after every event
//! its writer had seen (its order key is raised above theirs), so a node a day slow
//! cannot land its step before the step it answered, nor a node a day fast land its
//! step after the answer to it. Concurrent events sort by their corrected time.
//!
//! What the rule cannot do: a wrong clock that no other node's events contradict (a
//! case no other node has received yet, or a slow clock whose events nobody answered)
//! is invisible in the document until that evidence arrives, and two nodes alone are
//! judged by the tie rule above. Nodes should also check their own clock against the
//! hub when they sync.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::Event;
use super::status::EventOrder;
use crate::hlc::{Hlc, MAX_CLOCK_SKEW_MS};

/// Writer nodes whose clocks are compared in one case. A real case has a handful (its
/// center, a laptop, the hub); the cap keeps the per-change tables of a forged document
/// with thousands of writers small. Events of further nodes keep their stamps and give
/// no evidence.
pub const CLOCK_NODES_MAX: usize = 32;

/// Which way a node's clock was found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkewDirection {
    /// Stamped in the future.
    Ahead,
    /// Stamped in the past.
    Behind,
}

/// An event whose stamp the rule corrected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkewedEvent {
    pub event_id: String,
    pub node: String,
    pub direction: SkewDirection,
    pub stamped_ms: i64,
    /// The time used for deadlines and metrics.
    pub effective_ms: i64,
}

/// The causal structure of a document: for each change, the indices of the changes it
/// depends on. Indices must be topological (every dependency before its dependant);
/// [`CausalGraph::new`] sorts any input into that shape.
#[derive(Clone, Debug, Default)]
pub struct CausalGraph {
    parents: Vec<Vec<usize>>,
}

impl CausalGraph {
    /// Builds the graph from `(hash, deps)` pairs in any order. Dependencies outside the
    /// list (not loaded, or forged) are ignored; the result maps each input position to
    /// its position in topological order.
    pub fn new<H: Clone + Eq + std::hash::Hash>(
        changes: &[(H, Vec<H>)],
    ) -> (CausalGraph, Vec<usize>) {
        let index: HashMap<&H, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, (h, _))| (h, i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); changes.len()];
        let mut waiting: Vec<usize> = vec![0; changes.len()];
        for (i, (_, deps)) in changes.iter().enumerate() {
            for dep in deps {
                if let Some(&d) = index.get(dep) {
                    children[d].push(i);
                    waiting[i] += 1;
                }
            }
        }
        // Kahn's algorithm; a cycle (impossible in a hash-linked history) leaves its
        // members unsorted, and they are appended with no parents.
        let mut order: Vec<usize> = (0..changes.len()).filter(|&i| waiting[i] == 0).collect();
        let mut next = 0;
        while next < order.len() {
            let i = order[next];
            next += 1;
            for &c in &children[i] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    order.push(c);
                }
            }
        }
        let mut position = vec![usize::MAX; changes.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        for slot in position.iter_mut().filter(|p| **p == usize::MAX) {
            *slot = order.len();
            order.push(usize::MAX);
        }
        let mut parents = vec![Vec::new(); changes.len()];
        for (i, (_, deps)) in changes.iter().enumerate() {
            let me = position[i];
            for dep in deps {
                if let Some(&d) = index.get(dep)
                    && position[d] < me
                {
                    parents[me].push(position[d]);
                }
            }
        }
        (CausalGraph { parents }, position)
    }

    pub fn len(&self) -> usize {
        self.parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }
}

/// One event's place in the document: the change (topological index) that wrote it.
#[derive(Clone, Copy, Debug)]
pub struct Placed<'a> {
    pub event: &'a Event,
    pub change: Option<usize>,
}

/// The rule's answer for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventClock {
    /// The time used for deadlines and metrics.
    pub at_ms: i64,
    /// The fold order: causal first, then corrected time, node and id.
    pub order: EventOrder,
    pub skew: Option<SkewDirection>,
}

/// Per-node evidence, indexed by the node's slot (order of first appearance).
#[derive(Debug, Default)]
struct Verdict {
    ahead_by: Vec<i64>,
    behind_by: Vec<i64>,
}

impl Verdict {
    fn blamed(&self, slot: usize) -> bool {
        self.ahead_by[slot] > 0 || self.behind_by[slot] > 0
    }
}

/// Applies the clock rule (see the module documentation) to every event; the answer
/// has one entry per input event, in input order.
pub fn analyse(events: &[Placed<'_>], graph: &CausalGraph, creator: &str) -> Vec<EventClock> {
    let changes = graph.len();
    // Changes outside the graph get a private slot with no parents.
    let change_of: Vec<usize> = events
        .iter()
        .enumerate()
        .map(|(i, p)| p.change.filter(|&c| c < changes).unwrap_or(changes + i))
        .collect();
    let slots_total = changes + events.len();
    let parents = |c: usize| -> &[usize] { graph.parents.get(c).map(Vec::as_slice).unwrap_or(&[]) };

    let mut slot_of_node: BTreeMap<&str, usize> = BTreeMap::new();
    let mut node_names: Vec<&str> = Vec::new();
    let node_slot: Vec<Option<usize>> = events
        .iter()
        .map(|p| {
            let node = p.event.node.as_str();
            if let Some(&s) = slot_of_node.get(node) {
                return Some(s);
            }
            if node_names.len() >= CLOCK_NODES_MAX {
                return None;
            }
            slot_of_node.insert(node, node_names.len());
            node_names.push(node);
            Some(node_names.len() - 1)
        })
        .collect();
    let nodes = node_names.len();
    let mut by_change: Vec<Vec<usize>> = vec![Vec::new(); slots_total];
    for (i, &c) in change_of.iter().enumerate() {
        by_change[c].push(i);
    }
    let stamp = |i: usize| events[i].event.hlc.wall_ms();

    // Latest stamp per node among each change's strict ancestors.
    let mut before: Vec<Vec<Option<i64>>> = vec![vec![None; nodes]; slots_total];
    for c in 0..changes {
        let mut acc = vec![None; nodes];
        for &p in parents(c) {
            for k in 0..nodes {
                acc[k] = acc[k].max(before[p][k]);
            }
            for &i in &by_change[p] {
                if let Some(k) = node_slot[i] {
                    acc[k] = acc[k].max(Some(stamp(i)));
                }
            }
        }
        before[c] = acc;
    }

    // Step 1: evidence. `ahead[k][j]` is how far node k was found ahead of node j.
    let mut ahead = vec![vec![0i64; nodes]; nodes];
    for (i, &c) in change_of.iter().enumerate() {
        let Some(j) = node_slot[i] else { continue };
        for k in (0..nodes).filter(|&k| k != j) {
            if let Some(earlier) = before[c][k] {
                let gap = earlier.saturating_sub(stamp(i));
                if gap > MAX_CLOCK_SKEW_MS {
                    ahead[k][j] = ahead[k][j].max(gap);
                }
            }
        }
    }

    // Step 2: verdict.
    let disagreements: Vec<usize> = (0..nodes)
        .map(|n| {
            (0..nodes)
                .filter(|&m| ahead[n][m] > 0 || ahead[m][n] > 0)
                .count()
        })
        .collect();
    let mut verdict = Verdict {
        ahead_by: vec![0; nodes],
        behind_by: vec![0; nodes],
    };
    for k in 0..nodes {
        for j in 0..nodes {
            let gap = ahead[k][j];
            if gap == 0 {
                continue;
            }
            let blame_ahead = match disagreements[k].cmp(&disagreements[j]) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => node_names[k] != creator,
            };
            if blame_ahead {
                verdict.ahead_by[k] = verdict.ahead_by[k].max(gap);
            } else {
                verdict.behind_by[j] = verdict.behind_by[j].max(gap);
            }
        }
    }

    // Step 3: correction, bounded by trusted events on both sides.
    let trusted = |i: usize| node_slot[i].is_none_or(|k| !verdict.blamed(k));
    let mut trusted_before: Vec<Option<i64>> = vec![None; slots_total];
    for c in 0..changes {
        let mut acc = None;
        for &p in parents(c) {
            acc = acc.max(trusted_before[p]);
            for &i in by_change[p].iter().filter(|&&i| trusted(i)) {
                acc = acc.max(Some(stamp(i)));
            }
        }
        trusted_before[c] = acc;
    }
    let mut trusted_after: Vec<Option<i64>> = vec![None; slots_total];
    for c in (0..changes).rev() {
        let own = by_change[c]
            .iter()
            .filter(|&&i| trusted(i))
            .map(|&i| stamp(i))
            .min();
        let here = min_opt(own, trusted_after[c]);
        for &p in parents(c) {
            trusted_after[p] = min_opt(trusted_after[p], here);
        }
    }
    let at_ms: Vec<i64> = (0..events.len())
        .map(|i| {
            let Some(k) = node_slot[i].filter(|&k| verdict.blamed(k)) else {
                return stamp(i);
            };
            let c = change_of[i];
            let mut t = stamp(i)
                .saturating_sub(verdict.ahead_by[k])
                .saturating_add(verdict.behind_by[k]);
            if let Some(upper) = trusted_after[c] {
                t = t.min(upper);
            }
            if let Some(lower) = trusted_before[c] {
                t = t.max(lower);
            }
            t
        })
        .collect();

    // The order: corrected time, raised above every causal ancestor.
    let base = |i: usize| Hlc::new(at_ms[i], events[i].event.hlc.logical());
    let mut order_hlc: Vec<Hlc> = vec![Hlc(0); events.len()];
    let mut floor: Vec<Option<Hlc>> = vec![None; slots_total];
    for c in 0..slots_total {
        let mut acc: Option<Hlc> = None;
        for &p in parents(c) {
            acc = acc.max(floor[p]);
            for &i in &by_change[p] {
                acc = acc.max(Some(order_hlc[i]));
            }
        }
        floor[c] = acc;
        // Events of one change follow each other in document order.
        for &i in &by_change[c] {
            let raised = acc.map_or(Hlc(0), |a| Hlc(a.0.saturating_add(1)));
            order_hlc[i] = base(i).max(raised);
            acc = Some(order_hlc[i]);
        }
    }

    (0..events.len())
        .map(|i| {
            let skew = node_slot[i].filter(|&k| verdict.blamed(k)).and_then(|k| {
                if (at_ms[i] - stamp(i)).abs() <= MAX_CLOCK_SKEW_MS {
                    None
                } else if verdict.ahead_by[k] >= verdict.behind_by[k] {
                    Some(SkewDirection::Ahead)
                } else {
                    Some(SkewDirection::Behind)
                }
            });
            EventClock {
                at_ms: at_ms[i],
                order: EventOrder {
                    hlc: order_hlc[i],
                    node: events[i].event.node.clone(),
                    id: events[i].event.id.clone(),
                },
                skew,
            }
        })
        .collect()
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests;
