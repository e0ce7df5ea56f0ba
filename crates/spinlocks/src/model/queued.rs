//! The in-stack queued spin lock: an MCS queue.
//!
//! The lock word holds the queue's tail. Each acquirer brings a node
//! (`{ Next, Lock }` with `LOCK_QUEUE_WAIT` and `LOCK_QUEUE_OWNER` bits);
//! nodes live in a slab here and are named by [`NodeId`], standing in for the
//! `KLOCK_QUEUE_HANDLE` on the caller's stack. Linking into the predecessor
//! is a separate step from swapping the tail, so the race the real algorithm
//! handles — a release that finds no successor linked although the tail has
//! moved — happens here too, and the releaser must wait for the link.

use super::{Owner, Poll};

/// `LOCK_QUEUE_WAIT`: the node's owner is waiting.
pub const LOCK_QUEUE_WAIT: u8 = 1;
/// `LOCK_QUEUE_OWNER`: the node's owner holds the lock.
pub const LOCK_QUEUE_OWNER: u8 = 2;

/// A queue node (what a KLOCK_QUEUE_HANDLE holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

#[derive(Clone, Debug)]
struct Node {
    next: Option<NodeId>,
    bits: u8,
    owner: Owner,
    /// Predecessor still to be linked to (between the tail swap and the link).
    linking: Option<NodeId>,
    in_use: bool,
}

/// An MCS queue lock.
#[derive(Clone, Debug, Default)]
pub struct QueuedLockModel {
    tail: Option<NodeId>,
    nodes: Vec<Node>,
}

impl QueuedLockModel {
    pub fn new() -> Self {
        Self::default()
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id.0 as usize]
    }

    fn alloc(&mut self, owner: Owner) -> NodeId {
        let fresh = Node {
            next: None,
            bits: 0,
            owner,
            linking: None,
            in_use: true,
        };
        if let Some(i) = self.nodes.iter().position(|n| !n.in_use) {
            self.nodes[i] = fresh;
            NodeId(i as u32)
        } else {
            self.nodes.push(fresh);
            NodeId(self.nodes.len() as u32 - 1)
        }
    }

    /// True when the tail is empty (nobody holds or waits).
    pub fn is_free(&self) -> bool {
        self.tail.is_none()
    }

    /// Who holds it (the node with the OWNER bit).
    pub fn holder(&self) -> Option<Owner> {
        self.nodes
            .iter()
            .find(|n| n.in_use && n.bits & LOCK_QUEUE_OWNER != 0)
            .map(|n| n.owner)
    }

    /// The owner of a node.
    pub fn node_owner(&self, node: NodeId) -> Option<Owner> {
        self.nodes
            .get(node.0 as usize)
            .filter(|n| n.in_use)
            .map(|n| n.owner)
    }

    /// True if `node` holds the lock.
    pub fn is_owner(&self, node: NodeId) -> bool {
        self.nodes
            .get(node.0 as usize)
            .is_some_and(|n| n.in_use && n.bits & LOCK_QUEUE_OWNER != 0)
    }

    /// Owners waiting, in queue order (head first), following `next` links
    /// from the holder; not-yet-linked waiters come last.
    pub fn waiters(&self) -> Vec<Owner> {
        let mut out = Vec::new();
        let head = self
            .nodes
            .iter()
            .position(|n| n.in_use && n.bits & LOCK_QUEUE_OWNER != 0);
        let mut cur = head.and_then(|h| self.nodes[h].next);
        while let Some(id) = cur {
            out.push(self.node(id).owner);
            cur = self.node(id).next;
        }
        for n in &self.nodes {
            if n.in_use && n.linking.is_some() {
                out.push(n.owner);
            }
        }
        out
    }

    /// First phase: take a node, swap the tail to it. With no previous tail
    /// the lock is ours; otherwise set WAIT and link on the next poll.
    pub fn begin(&mut self, owner: Owner) -> (NodeId, Poll) {
        let me = self.alloc(owner);
        match self.tail.replace(me) {
            None => {
                self.node_mut(me).bits = LOCK_QUEUE_OWNER;
                (me, Poll::Acquired)
            }
            Some(pred) => {
                let n = self.node_mut(me);
                n.bits = LOCK_QUEUE_WAIT;
                n.linking = Some(pred);
                (me, Poll::Spinning)
            }
        }
    }

    /// One step of a waiter: link into the predecessor if not yet done,
    /// then test our own WAIT bit.
    pub fn poll(&mut self, me: NodeId) -> Poll {
        if let Some(pred) = self.node_mut(me).linking.take() {
            self.node_mut(pred).next = Some(me);
            return Poll::Spinning;
        }
        if self.node(me).bits & LOCK_QUEUE_WAIT == 0 {
            Poll::Acquired
        } else {
            Poll::Spinning
        }
    }

    /// First phase of a release. `Acquired` here means "released"; `Spinning`
    /// means a successor swapped the tail but has not linked yet: call
    /// [`poll_release`](Self::poll_release) until it returns `Acquired`.
    pub fn begin_release(&mut self, me: NodeId) -> Poll {
        if self.node(me).next.is_none() {
            if self.tail == Some(me) {
                self.tail = None;
                self.node_mut(me).in_use = false;
                return Poll::Acquired;
            }
            return Poll::Spinning;
        }
        self.poll_release(me)
    }

    /// Wait for the successor's link, then hand the lock over.
    pub fn poll_release(&mut self, me: NodeId) -> Poll {
        match self.node(me).next {
            None => Poll::Spinning,
            Some(succ) => {
                let s = self.node_mut(succ);
                s.bits = (s.bits & !LOCK_QUEUE_WAIT) | LOCK_QUEUE_OWNER;
                self.node_mut(me).in_use = false;
                Poll::Acquired
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_handoff() {
        let mut l = QueuedLockModel::new();
        let (a, p) = l.begin(0);
        assert_eq!(p, Poll::Acquired);
        let (b, _) = l.begin(1);
        let (c, _) = l.begin(2);
        assert_eq!(l.poll(c), Poll::Spinning); // links behind b
        assert_eq!(l.poll(b), Poll::Spinning); // links behind a
        assert_eq!(l.waiters(), vec![1, 2]);
        assert_eq!(l.begin_release(a), Poll::Acquired);
        assert_eq!(l.holder(), Some(1));
        assert_eq!(l.poll(c), Poll::Spinning);
        assert_eq!(l.poll(b), Poll::Acquired);
        assert_eq!(l.begin_release(b), Poll::Acquired);
        assert_eq!(l.poll(c), Poll::Acquired);
        assert_eq!(l.begin_release(c), Poll::Acquired);
        assert!(l.is_free());
    }

    #[test]
    fn release_waits_for_linking_successor() {
        let mut l = QueuedLockModel::new();
        let (a, _) = l.begin(0);
        let (b, _) = l.begin(1); // tail swapped, not linked yet
        assert_eq!(l.begin_release(a), Poll::Spinning);
        assert_eq!(l.poll_release(a), Poll::Spinning);
        assert_eq!(l.poll(b), Poll::Spinning); // links
        assert_eq!(l.poll_release(a), Poll::Acquired);
        assert_eq!(l.poll(b), Poll::Acquired);
    }
}
