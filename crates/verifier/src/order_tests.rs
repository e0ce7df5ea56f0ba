//! Structural tests of the incremental lock-order graph: they count the
//! work done (edge validations, chain-cache hits, searched locks) instead of
//! timing it, and check the incremental cycle detection against the plain
//! breadth-first search it replaces.

use super::*;
use crate::{Config, Verifier};
use std::collections::BTreeMap;
use std::sync::Arc;
use vcpu::{AcquireKind, ContextKind, Event, EventKind, Irql, LockFamily, LockMode};

/// A one-thread event stream on processor 0 over locks `LockId(n)`.
struct Stream {
    events: Vec<Event>,
}

impl Stream {
    fn new() -> Self {
        let mut s = Stream { events: Vec::new() };
        s.push(EventKind::ContextStart {
            kind: ContextKind::Thread,
            name: Arc::from("Worker"),
            irql: Irql::PASSIVE,
            interrupt_lock: None,
        });
        s
    }

    fn push(&mut self, kind: EventKind) {
        let n = self.events.len() as u64;
        self.events.push(Event {
            at: 10 * n,
            cpu: 0,
            ctx: 1,
            line: 100 + n as u32,
            kind,
        });
    }

    fn acquire(&mut self, lock: u32) {
        let (family, mode, how) = (
            LockFamily::Ordinary,
            LockMode::Exclusive,
            AcquireKind::AtDpcLevel,
        );
        let lock = LockId(lock);
        self.push(EventKind::AcquireRequested {
            lock,
            family,
            mode,
            how,
            irql: Irql::DISPATCH,
        });
        self.push(EventKind::Acquired {
            lock,
            family,
            mode,
            how,
            spun: 0,
        });
    }

    fn release(&mut self, lock: u32) {
        self.push(EventKind::Released {
            lock: LockId(lock),
            family: LockFamily::Ordinary,
            mode: LockMode::Exclusive,
        });
    }

    /// Feed a fresh verifier (no lock table: locks are `lock #n`); the
    /// stream must be clean.
    fn run(&self) -> Verifier {
        let config = Config {
            hold_limit_ns: u64::MAX,
            ..Config::default()
        };
        let mut v = Verifier::new(config, Vec::new(), Vec::new());
        for e in &self.events {
            assert_eq!(v.observe(e), None, "stream must be clean");
        }
        v
    }
}

/// The regression test of the 2,000-nested-locks slowdown, by counting:
/// nesting N locks validates each (held, requested) pair exactly once,
/// never searches the graph (every new edge points at a lock new to it), and
/// a second pass over the same chains is all chain-cache hits.
#[test]
fn nested_locks_validate_each_pair_once_and_never_search() {
    const N: u32 = 300;
    let mut s = Stream::new();
    for _ in 0..2 {
        (0..N).for_each(|i| s.acquire(i));
        (0..N).rev().for_each(|i| s.release(i));
    }
    let c = s.run().lock_order().counters();
    let pairs = u64::from(N * (N - 1) / 2);
    assert_eq!(c.chains_validated, u64::from(N), "{c:?}");
    assert_eq!(c.chain_hits, u64::from(N), "{c:?}");
    assert_eq!(c.pairs_checked, pairs, "{c:?}");
    assert_eq!(c.edges_added, pairs, "{c:?}");
    assert_eq!((c.searches, c.nodes_searched), (0, 0), "{c:?}");
}

/// Releasing out of order and taking the locks again gives the same chain
/// as the first time, so it is a cache hit; a different chain is not.
#[test]
fn chain_cache_follows_the_held_sequence() {
    let mut s = Stream::new();
    s.acquire(0);
    s.acquire(1);
    s.acquire(2);
    s.release(1); // out of order: the chain is now 0, 2
    s.acquire(3); // chain (0, 2) + 3: new
    s.release(3);
    s.release(2);
    s.release(0);
    s.acquire(0);
    s.acquire(2);
    s.acquire(3); // chain (0, 2) + 3 again: a hit
    s.release(3);
    s.release(2);
    s.acquire(3); // chain (0) + 3: new, though its only edge exists
    let v = s.run();
    let c = v.lock_order().counters();
    // Chains: () + 0, (0) + 1, (0, 1) + 2, (0, 2) + 3, then () + 0 (hit),
    // (0) + 2 (new: 2 was first taken over 0 and 1), (0, 2) + 3 (hit) and
    // (0) + 3 (new).
    assert_eq!(c.chain_hits, 2, "{c:?}");
    assert_eq!(c.chains_validated, 6, "{c:?}");
    assert_eq!(c.pairs_checked, 1 + 2 + 2 + 1 + 1, "{c:?}");
    assert_eq!(c.edges_added, 5, "{c:?}");
    assert!(v.lock_order().has_edge(LockId(0), LockId(3)));
    assert!(!v.lock_order().has_edge(LockId(1), LockId(3)));
}

/// A wide graph taken in one consistent order, built from the last lock
/// down so each new edge points at a lock with a long chain after it: the
/// topological order makes every edge fit without a search.
#[test]
fn consistent_order_never_searches() {
    const N: u32 = 400;
    const K: u32 = 8;
    let mut s = Stream::new();
    let mut edges = 0;
    for i in (0..N).rev() {
        for j in (i + 1)..=(i + K).min(N - 1) {
            s.acquire(i);
            s.acquire(j);
            s.release(j);
            s.release(i);
            edges += 1;
        }
    }
    let v = s.run();
    let c = v.lock_order().counters();
    assert_eq!(c.edges_added, edges, "{c:?}");
    assert_eq!((c.searches, c.nodes_searched), (0, 0), "{c:?}");
    assert_eq!(v.lock_order().edges().len() as u64, edges);
}

fn w(line: u32) -> Witness {
    Witness {
        who: "thread T".into(),
        holder: None,
        from_line: line,
        to_line: line + 1,
    }
}

/// An edge against the current order searches only the locks whose order
/// numbers lie between its two ends, however long the chains around them.
#[test]
fn an_edge_against_the_order_searches_only_between_its_ends() {
    const N: u32 = 1000;
    let (a, b) = (|i: u32| LockId(2 * i), |i: u32| LockId(2 * i + 1));
    let mut g = LockOrder::new();
    // Two chains built alternately: ord(a_i) < ord(b_i) < ord(a_(i+1)).
    for i in 0..N - 1 {
        assert_eq!(g.add(a(i), a(i + 1), w(i)), None);
        assert_eq!(g.add(b(i), b(i + 1), w(i)), None);
    }
    assert_eq!(g.counters().searches, 0);
    assert_eq!(g.add(b(500), a(500), w(1)), None);
    let c = g.counters();
    assert_eq!((c.searches, c.nodes_searched), (1, 2), "{c:?}");
    // The reordered graph still finds the cycle b499 → b500 → a500 → b499.
    let cycle = g.add(a(500), b(499), w(7)).expect("a cycle");
    let path: Vec<LockId> = cycle.edges.iter().map(|e| e.from).collect();
    assert_eq!(path, vec![b(499), b(500), a(500)]);
}

/// The breadth-first graph the incremental one replaced: a search from
/// the requested lock on every new edge.
#[derive(Default)]
struct Reference {
    edges: BTreeMap<LockId, BTreeMap<LockId, Witness>>,
}

impl Reference {
    fn add(&mut self, from: LockId, to: LockId, witness: Witness) -> Option<Cycle> {
        if from == to || self.edges.get(&from).is_some_and(|m| m.contains_key(&to)) {
            return None;
        }
        if let Some(path) = self.path(to, from) {
            let mut edges: Vec<Edge> = path
                .windows(2)
                .map(|p| Edge {
                    from: p[0],
                    to: p[1],
                    witness: self.edges[&p[0]][&p[1]].clone(),
                })
                .collect();
            edges.push(Edge { from, to, witness });
            return Some(Cycle { edges });
        }
        self.edges.entry(from).or_default().insert(to, witness);
        None
    }

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

    fn edges(&self) -> Vec<Edge> {
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
}

/// Every edge goes up the topological order.
fn assert_topological(g: &LockOrder) {
    for n in &g.nodes {
        for &(t, _) in &n.succ {
            assert!(n.ord < g.nodes[t as usize].ord, "edge against the order");
        }
    }
}

/// Random edge sequences over a few locks: the incremental graph gives the
/// same answer (no cycle, or the same cycle with the same witnesses) as the
/// breadth-first reference for every edge, keeps a topological order, and
/// ends with the same edges.
#[test]
fn incremental_graph_agrees_with_breadth_first_reference() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let mut cycles = 0;
    for _ in 0..400 {
        let locks = 3 + next(10);
        let (mut g, mut r) = (LockOrder::new(), Reference::default());
        for step in 0..(5 + next(40)) as u32 {
            let (from, to) = (LockId(next(locks) as u32), LockId(next(locks) as u32));
            let got = g.add(from, to, w(step));
            let want = r.add(from, to, w(step));
            cycles += u32::from(want.is_some());
            assert_eq!(got, want, "edge {from:?} → {to:?} at step {step}");
            assert_topological(&g);
        }
        assert_eq!(g.edges(), r.edges());
    }
    assert!(
        cycles > 100,
        "the random graphs must exercise cycles: {cycles}"
    );
}
