//! The lock-order graph of Driver Verifier's deadlock detection.
//!
//! An edge `H → L` means some processor requested `L` while holding `H`;
//! each edge keeps its first witness (which context, which lines). The graph
//! lives for the whole run, so two orders that never overlapped in time still
//! meet here: adding an edge `H → L` when a path `L → … → H` already exists
//! closes a cycle, which is a lock hierarchy violation (0xC4/0x1001) whether
//! or not the processors ever deadlocked. Every family takes part, shared
//! holds of an `EX_SPIN_LOCK` included.
//!
//! Adjacency is kept in `BTreeMap`s and paths are found breadth-first in
//! that order, so the reported cycle is the shortest one and always the same.

use crate::{lock_addr, lock_name, LockInfo, Violation};
use std::collections::{BTreeMap, VecDeque};
use vcpu::bugcheck::c4;
use vcpu::{Bugcheck, LockId};

/// Who first took two locks in an order, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witness {
    /// The requesting context, e.g. `thread Reader`.
    pub who: String,
    /// The context that took the held lock, when it is not `who` (an ISR
    /// requesting a lock while the context it interrupted holds another).
    pub holder: Option<String>,
    /// Line of the held lock's acquire.
    pub from_line: u32,
    /// Line of the request of the second lock.
    pub to_line: u32,
}

/// One edge of the graph with its witness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: LockId,
    pub to: LockId,
    pub witness: Witness,
}

/// A cycle found when adding an edge: the existing path from the requested
/// lock back to the held one, then the edge that closed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub edges: Vec<Edge>,
}

/// The acquisition-order graph.
#[derive(Clone, Debug, Default)]
pub struct LockOrder {
    edges: BTreeMap<LockId, BTreeMap<LockId, Witness>>,
}

impl LockOrder {
    pub fn new() -> Self {
        LockOrder::default()
    }

    /// Record that `to` was requested while `from` was held. Returns the
    /// cycle if this edge is new and closes one (the edge is then not added).
    pub fn add(&mut self, from: LockId, to: LockId, witness: Witness) -> Option<Cycle> {
        if from == to || self.has_edge(from, to) {
            return None;
        }
        if let Some(path) = self.path(to, from) {
            let mut edges: Vec<Edge> = path
                .windows(2)
                .map(|w| Edge {
                    from: w[0],
                    to: w[1],
                    witness: self.edges[&w[0]][&w[1]].clone(),
                })
                .collect();
            edges.push(Edge { from, to, witness });
            return Some(Cycle { edges });
        }
        self.edges.entry(from).or_default().insert(to, witness);
        None
    }

    pub fn has_edge(&self, from: LockId, to: LockId) -> bool {
        self.edges.get(&from).is_some_and(|m| m.contains_key(&to))
    }

    /// Every edge, in lock order.
    pub fn edges(&self) -> Vec<Edge> {
        self.edges
            .iter()
            .flat_map(|(&from, m)| {
                m.iter().map(move |(&to, w)| Edge {
                    from,
                    to,
                    witness: w.clone(),
                })
            })
            .collect()
    }

    /// Shortest path `from → … → to` (both included), if any.
    fn path(&self, from: LockId, to: LockId) -> Option<Vec<LockId>> {
        let mut parent: BTreeMap<LockId, LockId> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut path = vec![to];
                let mut cur = to;
                while cur != from {
                    cur = parent[&cur];
                    path.push(cur);
                }
                path.reverse();
                return Some(path);
            }
            for &next in self.edges.get(&n).into_iter().flat_map(|m| m.keys()) {
                if next != from && !parent.contains_key(&next) {
                    parent.insert(next, n);
                    queue.push_back(next);
                }
            }
        }
        None
    }
}

/// `line 12`, or `on entry` for line 0: the interrupt lock an ISR holds
/// from its start has no statement of its own.
fn place(line: u32) -> String {
    if line == 0 {
        "on entry".to_string()
    } else {
        format!("line {line}")
    }
}

impl Cycle {
    /// The locks of the cycle in order, the first repeated at the end:
    /// `Table → Stats → Table`.
    pub fn describe(&self, locks: &[LockInfo]) -> String {
        let mut names: Vec<String> = self
            .edges
            .iter()
            .map(|e| lock_name(locks, e.from))
            .collect();
        if let Some(first) = self.edges.first() {
            names.push(lock_name(locks, first.from));
        }
        names.join(" → ")
    }

    /// The 0xC4/0x1001 violation: P2 the lock whose request closed the
    /// cycle, P3 the held lock it conflicts with.
    pub fn violation(&self, locks: &[LockInfo]) -> Violation {
        let closing = self.edges.last().expect("a cycle has at least two edges");
        let (held, requested) = (closing.from, closing.to);
        let bugcheck = Bugcheck::verifier(
            c4::LOCK_HIERARCHY_VIOLATION,
            lock_addr(locks, requested),
            lock_addr(locks, held),
            0,
        );
        let detail = format!(
            "lock hierarchy violation: {} requested {} (line {}) while holding {}, \
             closing the lock-order cycle {}",
            closing.witness.who,
            lock_name(locks, requested),
            closing.witness.to_line,
            lock_name(locks, held),
            self.describe(locks),
        );
        let mut analysis: Vec<String> = self
            .edges
            .iter()
            .map(|e| {
                let w = &e.witness;
                let held_note = match &w.holder {
                    Some(h) => format!(", held by the {h} it interrupted"),
                    None => String::new(),
                };
                format!(
                    "{}: {} ({}{}) then {} ({})",
                    w.who,
                    lock_name(locks, e.from),
                    place(w.from_line),
                    held_note,
                    lock_name(locks, e.to),
                    place(w.to_line)
                )
            })
            .collect();
        let n = self.edges.len();
        analysis.push(if n == 2 {
            format!(
                "{} and {} are taken in opposite orders: if both run at the same time on \
                 two processors, each can hold one lock while spinning forever on the other. \
                 Driver Verifier reports the cycle whether or not this run deadlocked.",
                lock_name(locks, self.edges[0].from),
                lock_name(locks, self.edges[1].from),
            )
        } else {
            format!(
                "Together these orders form the cycle {}: if they run at the same time on \
                 {n} processors, each can hold one lock of the cycle while spinning forever \
                 on the next. Driver Verifier reports the cycle whether or not this run \
                 deadlocked.",
                self.describe(locks),
            )
        });
        Violation {
            bugcheck,
            detail,
            analysis,
        }
    }
}
