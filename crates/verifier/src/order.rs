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
//! The graph is incremental, as Linux's lockdep is, so that a thread holding
//! thousands of locks costs work in proportion to the edges it adds, not to
//! the held locks times the graph:
//!
//! - **Chain cache.** A request is validated once per *chain*: the sequence
//!   of locks the processor holds plus the lock requested (lockdep's
//!   `chain_key`). Once every edge of a chain is in the graph, the same
//!   chain again adds nothing and is skipped in O(1) ([`LockOrder::chain_validated`]).
//! - **Incremental topological order** (Pearce and Kelly, "A dynamic
//!   topological sort algorithm for directed acyclic graphs", ACM JEA 11,
//!   2006). Every lock in the graph has an order number, smaller for locks
//!   taken earlier in every known order. A new edge `H → L` with
//!   `ord(H) < ord(L)` cannot close a cycle and is added without any search;
//!   otherwise a forward search from `L` bounded by `ord(H)` either reaches
//!   `H` (a cycle) or, with a backward search from `H` bounded by `ord(L)`,
//!   finds the only locks whose order numbers must be swapped. A lock new to
//!   the graph is placed first when it is the held lock and last when it is
//!   the requested one, so lock nesting that only ever adds new locks never
//!   searches at all.
//!
//! Reports do not depend on these shortcuts: when a cycle is found, the path
//! reported is the shortest `L → … → H`, found breadth-first with each lock's
//! successors in lock order, the same cycle on every run.
//! [`LockOrder::counters`] counts the work done, so tests can check its
//! shape without timing it.

use crate::fast_hash::{FxHashMap, FxHashSet};
use crate::{lock_addr, lock_name, LockInfo, Violation};
use std::collections::{HashMap, VecDeque};
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
    /// The lock that was held.
    pub from: LockId,
    /// The lock requested while `from` was held.
    pub to: LockId,
    /// Who first took them in this order, and where.
    pub witness: Witness,
}

/// A cycle found when adding an edge: the existing path from the requested
/// lock back to the held one, then the edge that closed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The edges in cycle order; the last one closed the cycle.
    pub edges: Vec<Edge>,
}

/// How much work the graph has done (counts, not time): what the tests use
/// to check that the work per request stays proportional to what is new.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderCounters {
    /// Requests whose chain (held locks plus requested lock) was already
    /// validated, skipped without looking at the held locks.
    pub chain_hits: u64,
    /// Chains validated: requests whose held locks were each examined.
    pub chains_validated: u64,
    /// (held lock, requested lock) pairs examined by validated chains: the
    /// edge validations.
    pub pairs_checked: u64,
    /// Edges added to the graph.
    pub edges_added: u64,
    /// New edges that went against the current topological order and so
    /// needed a search (the others cannot close a cycle).
    pub searches: u64,
    /// Locks visited by those searches, forward and backward.
    pub nodes_searched: u64,
}

/// The held-lock sequence of a processor, interned: equal keys mean the
/// same locks held in the same order (see `state::Machine::chain_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ChainKey {
    /// Interned sequence of the processor's acquisitions.
    pub holds: u32,
    /// Interned sequence of the interrupt locks of its running ISRs.
    pub isrs: u32,
}

/// No label: the witness has no separate holder.
pub(crate) const NO_LABEL: u32 = u32::MAX;

/// A witness with its context names interned (see [`LockOrder::intern`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CompactWitness {
    pub who: u32,
    pub holder: u32,
    pub from_line: u32,
    pub to_line: u32,
}

/// One lock of the graph.
#[derive(Clone, Debug)]
struct Node {
    lock: LockId,
    /// Topological order number: `ord(a) < ord(b)` for every edge `a → b`.
    ord: i64,
    /// Successors with the witness of each edge, in insertion order.
    succ: Vec<(u32, CompactWitness)>,
    /// Predecessors, in insertion order.
    pred: Vec<u32>,
}

/// The acquisition-order graph.
#[derive(Clone, Debug, Default)]
pub struct LockOrder {
    index: FxHashMap<LockId, u32>,
    nodes: Vec<Node>,
    /// The lock of the request being validated; its predecessors are the
    /// nodes whose `pred_marks` equal `request`.
    request_lock: Option<LockId>,
    pred_marks: Vec<u32>,
    request: u32,
    /// Order number for the next lock placed first / last.
    front: i64,
    back: i64,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    validated: FxHashSet<(ChainKey, LockId)>,
    /// Search marks: a node is visited in the current search when its mark
    /// equals `generation`.
    marks: Vec<u32>,
    generation: u32,
    counters: OrderCounters,
}

impl LockOrder {
    /// An empty graph.
    pub fn new() -> Self {
        LockOrder {
            front: -1,
            ..LockOrder::default()
        }
    }

    /// The work done so far.
    pub fn counters(&self) -> OrderCounters {
        self.counters
    }

    /// Record that `to` was requested while `from` was held. Returns the
    /// cycle if this edge is new and closes one (the edge is then not added).
    pub fn add(&mut self, from: LockId, to: LockId, witness: Witness) -> Option<Cycle> {
        self.start_request(to);
        if !self.is_new_edge(from, to) {
            return None;
        }
        let w = CompactWitness {
            who: self.intern(&witness.who),
            holder: witness
                .holder
                .as_deref()
                .map_or(NO_LABEL, |h| self.intern(h)),
            from_line: witness.from_line,
            to_line: witness.to_line,
        };
        self.insert(from, to, w)
    }

    /// True if `from → to` is in the graph (a scan of the shorter of the
    /// two locks' edge lists).
    pub fn has_edge(&self, from: LockId, to: LockId) -> bool {
        let (Some(&f), Some(&t)) = (self.index.get(&from), self.index.get(&to)) else {
            return false;
        };
        let (f, t) = (&self.nodes[f as usize], &self.nodes[t as usize]);
        if f.succ.len() <= t.pred.len() {
            f.succ
                .iter()
                .any(|&(n, _)| self.nodes[n as usize].lock == to)
        } else {
            t.pred.iter().any(|&n| self.nodes[n as usize].lock == from)
        }
    }

    /// Every edge, in lock order.
    pub fn edges(&self) -> Vec<Edge> {
        let mut out: Vec<Edge> = self
            .nodes
            .iter()
            .flat_map(|n| {
                n.succ.iter().map(move |&(t, w)| Edge {
                    from: n.lock,
                    to: self.nodes[t as usize].lock,
                    witness: self.witness(w),
                })
            })
            .collect();
        out.sort_by_key(|e| (e.from, e.to));
        out
    }

    /// True if the chain `key` + `lock` was validated before: every edge it
    /// implies is in the graph. Counts a chain hit.
    pub(crate) fn chain_validated(&mut self, key: ChainKey, lock: LockId) -> bool {
        let hit = self.validated.contains(&(key, lock));
        if hit {
            self.counters.chain_hits += 1;
        } else {
            self.counters.chains_validated += 1;
        }
        hit
    }

    /// Remember that every edge of the chain `key` + `lock` is in the graph.
    pub(crate) fn mark_validated(&mut self, key: ChainKey, lock: LockId) {
        self.validated.insert((key, lock));
    }

    /// Start validating requests of `to`: mark the locks with an edge to it
    /// (work in proportion to those edges), so that [`Self::is_new_edge`]
    /// answers for each held lock in O(1).
    pub(crate) fn start_request(&mut self, to: LockId) {
        self.request = self.request.wrapping_add(1);
        if self.request == 0 {
            self.pred_marks.iter_mut().for_each(|m| *m = 0);
            self.request = 1;
        }
        self.request_lock = Some(to);
        if let Some(&v) = self.index.get(&to) {
            for &p in &self.nodes[v as usize].pred {
                self.pred_marks[p as usize] = self.request;
            }
        }
    }

    /// Examine one (held, requested) pair, `to` being the lock of the last
    /// [`Self::start_request`]: true if `from → to` is a new edge (not a
    /// lock requested while held, not an edge already known).
    pub(crate) fn is_new_edge(&mut self, from: LockId, to: LockId) -> bool {
        self.counters.pairs_checked += 1;
        if from == to {
            return false;
        }
        if self.request_lock != Some(to) {
            return !self.has_edge(from, to);
        }
        match self.index.get(&from) {
            Some(&f) => self.pred_marks[f as usize] != self.request,
            None => true,
        }
    }

    /// The number of a context name, the same for equal names.
    pub(crate) fn intern(&mut self, label: &str) -> u32 {
        if let Some(&id) = self.label_ids.get(label) {
            return id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(label.to_string());
        self.label_ids.insert(label.to_string(), id);
        id
    }

    fn label(&self, id: u32) -> String {
        self.labels.get(id as usize).cloned().unwrap_or_default()
    }

    fn witness(&self, w: CompactWitness) -> Witness {
        Witness {
            who: self.label(w.who),
            holder: (w.holder != NO_LABEL).then(|| self.label(w.holder)),
            from_line: w.from_line,
            to_line: w.to_line,
        }
    }

    /// The node of `lock`, created (placed first when `first`, else last in
    /// the topological order) if the graph does not have it yet: a lock
    /// without edges may take any place.
    fn node(&mut self, lock: LockId, first: bool) -> u32 {
        if let Some(&n) = self.index.get(&lock) {
            return n;
        }
        let ord = if first {
            self.front -= 1;
            self.front + 1
        } else {
            self.back += 1;
            self.back - 1
        };
        let n = self.nodes.len() as u32;
        self.nodes.push(Node {
            lock,
            ord,
            succ: Vec::new(),
            pred: Vec::new(),
        });
        self.marks.push(0);
        self.pred_marks.push(0);
        self.index.insert(lock, n);
        n
    }

    /// Add the new edge `from → to` (checked by [`Self::is_new_edge`]), or
    /// return the cycle it would close.
    pub(crate) fn insert(&mut self, from: LockId, to: LockId, w: CompactWitness) -> Option<Cycle> {
        let u = self.node(from, true);
        let v = self.node(to, false);
        if self.nodes[u as usize].ord > self.nodes[v as usize].ord {
            self.counters.searches += 1;
            if self.reorder(u, v) {
                return Some(self.cycle(u, v, w));
            }
        }
        self.nodes[u as usize].succ.push((v, w));
        self.nodes[v as usize].pred.push(u);
        if self.request_lock == Some(to) {
            self.pred_marks[u as usize] = self.request;
        }
        self.counters.edges_added += 1;
        None
    }

    fn next_generation(&mut self) -> u32 {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.iter_mut().for_each(|m| *m = 0);
            self.generation = 1;
        }
        self.generation
    }

    /// Pearce–Kelly for a new edge `u → v` with `ord(v) < ord(u)`: true if
    /// `v` reaches `u` (a cycle; nothing changes). Otherwise the locks
    /// reachable from `v` and below `ord(u)` and those reaching `u` and
    /// above `ord(v)` swap order numbers, so `u → v` fits the order.
    fn reorder(&mut self, u: u32, v: u32) -> bool {
        let (lower, upper) = (self.nodes[v as usize].ord, self.nodes[u as usize].ord);
        // Forward from v, inside (lower, upper).
        let gen = self.next_generation();
        let mut forward = vec![v];
        self.marks[v as usize] = gen;
        let mut stack = vec![v];
        while let Some(n) = stack.pop() {
            for i in 0..self.nodes[n as usize].succ.len() {
                let w = self.nodes[n as usize].succ[i].0;
                if w == u {
                    self.counters.nodes_searched += forward.len() as u64;
                    return true;
                }
                if self.marks[w as usize] != gen && self.nodes[w as usize].ord < upper {
                    self.marks[w as usize] = gen;
                    forward.push(w);
                    stack.push(w);
                }
            }
        }
        // Backward from u, inside (lower, upper).
        let gen = self.next_generation();
        let mut backward = vec![u];
        self.marks[u as usize] = gen;
        stack.push(u);
        while let Some(n) = stack.pop() {
            for i in 0..self.nodes[n as usize].pred.len() {
                let p = self.nodes[n as usize].pred[i];
                if self.marks[p as usize] != gen && self.nodes[p as usize].ord > lower {
                    self.marks[p as usize] = gen;
                    backward.push(p);
                    stack.push(p);
                }
            }
        }
        self.counters.nodes_searched += (forward.len() + backward.len()) as u64;
        // The ancestors of u take the smallest of the freed order numbers,
        // then the descendants of v, each group keeping its relative order.
        backward.sort_by_key(|&n| self.nodes[n as usize].ord);
        forward.sort_by_key(|&n| self.nodes[n as usize].ord);
        let mut pool: Vec<i64> = backward
            .iter()
            .chain(&forward)
            .map(|&n| self.nodes[n as usize].ord)
            .collect();
        pool.sort_unstable();
        for (n, ord) in backward.iter().chain(&forward).zip(pool) {
            self.nodes[*n as usize].ord = ord;
        }
        false
    }

    /// The cycle closed by `u → v`: the shortest path `v → … → u`, found
    /// breadth-first with successors in lock order, then the new edge.
    fn cycle(&self, u: u32, v: u32, closing: CompactWitness) -> Cycle {
        let path = self.shortest_path(v, u);
        let mut edges: Vec<Edge> = path
            .windows(2)
            .map(|pair| {
                let (a, b) = (pair[0], pair[1]);
                let w = self.nodes[a as usize]
                    .succ
                    .iter()
                    .find(|(t, _)| *t == b)
                    .map(|&(_, w)| w);
                Edge {
                    from: self.nodes[a as usize].lock,
                    to: self.nodes[b as usize].lock,
                    witness: w.map_or_else(|| self.witness(closing), |w| self.witness(w)),
                }
            })
            .collect();
        edges.push(Edge {
            from: self.nodes[u as usize].lock,
            to: self.nodes[v as usize].lock,
            witness: self.witness(closing),
        });
        Cycle { edges }
    }

    /// Shortest path `from → … → to` (both included); `[from, to]` if the
    /// search finds none, which [`Self::reorder`] has ruled out.
    fn shortest_path(&self, from: u32, to: u32) -> Vec<u32> {
        let mut parent: FxHashMap<u32, u32> = FxHashMap::default();
        let mut queue = VecDeque::from([from]);
        while let Some(n) = queue.pop_front() {
            if n == to {
                let mut path = vec![to];
                let mut cur = to;
                while cur != from {
                    match parent.get(&cur) {
                        Some(&p) => cur = p,
                        None => break,
                    }
                    path.push(cur);
                }
                path.reverse();
                return path;
            }
            let mut next: Vec<u32> = self.nodes[n as usize]
                .succ
                .iter()
                .map(|&(t, _)| t)
                .collect();
            next.sort_by_key(|&t| self.nodes[t as usize].lock);
            for t in next {
                if t != from && !parent.contains_key(&t) {
                    parent.insert(t, n);
                    queue.push_back(t);
                }
            }
        }
        vec![from, to]
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

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
