//! The reader/writer `EX_SPIN_LOCK`: bit 31 held exclusive, bit 30 an
//! exclusive acquirer waits, low bits the shared count.
//!
//! Writer preference: once an exclusive acquirer waits (bit 30) or holds the
//! exclusive bit while it drains readers (bit 31), new shared acquirers wait.
//! Waiting exclusive acquirers are granted in no promised order: whichever
//! polls first after the holder leaves wins (the engine's seeded schedule).

use super::{Owner, Poll};

/// Held exclusive (or an exclusive acquirer draining readers).
pub const EX_EXCLUSIVE: u32 = 1 << 31;
/// An exclusive acquirer waits.
pub const EX_WAITING: u32 = 1 << 30;
const COUNT_MASK: u32 = EX_WAITING - 1;

/// Why a release was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExReleaseError {
    /// Held, but in the other mode.
    WrongMode,
    /// Not held by this owner at all.
    NotHeld,
}

/// A reader/writer spin lock.
#[derive(Clone, Debug, Default)]
pub struct ExLockModel {
    word: u32,
    shared: Vec<Owner>,
    /// Owner of bit 31, and whether the readers have drained.
    exclusive: Option<(Owner, bool)>,
    waiting: Vec<Owner>,
}

impl ExLockModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw lock word.
    pub fn word(&self) -> u32 {
        self.word
    }

    pub fn shared_count(&self) -> u32 {
        self.word & COUNT_MASK
    }

    pub fn holds_shared(&self, owner: Owner) -> bool {
        self.shared.contains(&owner)
    }

    pub fn holds_exclusive(&self, owner: Owner) -> bool {
        self.exclusive == Some((owner, true))
    }

    /// Shared holders (with repeats) and the exclusive holder.
    pub fn holders(&self) -> (Vec<Owner>, Option<Owner>) {
        (
            self.shared.clone(),
            self.exclusive.filter(|e| e.1).map(|e| e.0),
        )
    }

    fn sync_waiting_bit(&mut self) {
        if self.waiting.is_empty() {
            self.word &= !EX_WAITING;
        } else {
            self.word |= EX_WAITING;
        }
    }

    /// Shared acquire (first phase and every poll): increment the count
    /// unless an exclusive holder or waiter is there.
    pub fn poll_shared(&mut self, owner: Owner) -> Poll {
        if self.word & (EX_EXCLUSIVE | EX_WAITING) == 0 {
            self.word += 1;
            self.shared.push(owner);
            Poll::Acquired
        } else {
            Poll::Spinning
        }
    }

    /// Exclusive acquire, first phase: claim bit 31 if it is free, else
    /// register as a waiting exclusive acquirer (bit 30).
    pub fn begin_exclusive(&mut self, owner: Owner) -> Poll {
        if self.word & EX_EXCLUSIVE == 0 {
            self.word |= EX_EXCLUSIVE;
            self.exclusive = Some((owner, false));
        } else {
            self.waiting.push(owner);
            self.sync_waiting_bit();
        }
        self.poll_exclusive(owner)
    }

    /// One step of an exclusive acquirer: a waiter claims bit 31 once it is
    /// free, then the claimant waits for the shared count to drain. An
    /// owner that already holds the lock exclusive and asks again waits for
    /// itself forever, as on Windows.
    pub fn poll_exclusive(&mut self, owner: Owner) -> Poll {
        if let Some(i) = self.waiting.iter().position(|&w| w == owner) {
            if self.exclusive.is_some() {
                return Poll::Spinning;
            }
            self.waiting.remove(i);
            self.sync_waiting_bit();
            self.word |= EX_EXCLUSIVE;
            self.exclusive = Some((owner, false));
        }
        match self.exclusive {
            Some((o, granted)) if o == owner && (granted || self.shared_count() == 0) => {
                self.exclusive = Some((owner, true));
                Poll::Acquired
            }
            _ => Poll::Spinning,
        }
    }

    pub fn release_shared(&mut self, owner: Owner) -> Result<(), ExReleaseError> {
        match self.shared.iter().position(|&o| o == owner) {
            Some(i) => {
                self.shared.remove(i);
                self.word -= 1;
                Ok(())
            }
            None if self.holds_exclusive(owner) => Err(ExReleaseError::WrongMode),
            None => Err(ExReleaseError::NotHeld),
        }
    }

    /// A shared release with no check of who holds what, as the retail
    /// `ExReleaseSpinLockShared` does: the word's count goes down by one
    /// (wrapping: on an exclusive hold with no readers it runs into the
    /// exclusive and waiting bits, as the real word would), and one shared
    /// record goes. Source: contract v2, 0x1007/0x1009 rows ("its word
    /// changes as on Windows").
    pub fn force_release_shared(&mut self) {
        self.word = self.word.wrapping_sub(1);
        if !self.shared.is_empty() {
            self.shared.remove(0);
        }
        if self.word & EX_EXCLUSIVE == 0 {
            self.exclusive = None;
        }
    }

    /// An exclusive release with no check, as the retail
    /// `ExReleaseSpinLockExclusive` does: the word is cleared (readers
    /// and waiters it counted are forgotten by the word, as on Windows).
    pub fn force_release_exclusive(&mut self) {
        self.word = 0;
        self.exclusive = None;
        self.shared.clear();
        self.sync_waiting_bit();
    }

    pub fn release_exclusive(&mut self, owner: Owner) -> Result<(), ExReleaseError> {
        if self.holds_exclusive(owner) {
            self.exclusive = None;
            self.word &= !EX_EXCLUSIVE;
            Ok(())
        } else if self.holds_shared(owner) {
            Err(ExReleaseError::WrongMode)
        } else {
            Err(ExReleaseError::NotHeld)
        }
    }

    /// ExTryConvertSharedSpinLockExclusive: succeeds only for the sole
    /// shared holder with no exclusive acquirer waiting; on failure the
    /// caller still holds it shared.
    pub fn try_convert(&mut self, owner: Owner) -> bool {
        let sole = self.shared.len() == 1 && self.shared[0] == owner;
        if sole && self.word & (EX_EXCLUSIVE | EX_WAITING) == 0 {
            self.shared.clear();
            self.word = EX_EXCLUSIVE;
            self.exclusive = Some((owner, true));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writer_waits() {
        let mut l = ExLockModel::new();
        assert_eq!(l.poll_shared(0), Poll::Acquired);
        assert_eq!(l.poll_shared(1), Poll::Acquired);
        assert_eq!(l.shared_count(), 2);
        assert_eq!(l.begin_exclusive(2), Poll::Spinning);
        // Writer preference: bit 31 is claimed, a new reader waits.
        assert_eq!(l.poll_shared(3), Poll::Spinning);
        l.release_shared(0).unwrap();
        l.release_shared(1).unwrap();
        assert_eq!(l.poll_exclusive(2), Poll::Acquired);
        assert_eq!(l.release_shared(2), Err(ExReleaseError::WrongMode));
        l.release_exclusive(2).unwrap();
        assert_eq!(l.poll_shared(3), Poll::Acquired);
    }

    #[test]
    fn waiting_writer_blocks_readers() {
        let mut l = ExLockModel::new();
        assert_eq!(l.begin_exclusive(0), Poll::Acquired);
        assert_eq!(l.begin_exclusive(1), Poll::Spinning);
        assert_ne!(l.word() & EX_WAITING, 0);
        l.release_exclusive(0).unwrap();
        assert_eq!(l.poll_shared(2), Poll::Spinning, "bit 30 still set");
        assert_eq!(l.poll_exclusive(1), Poll::Acquired);
        assert_eq!(l.word() & EX_WAITING, 0);
    }

    #[test]
    fn exclusive_recursion_waits_for_itself() {
        let mut l = ExLockModel::new();
        assert_eq!(l.begin_exclusive(0), Poll::Acquired);
        assert_eq!(l.begin_exclusive(0), Poll::Spinning);
        assert_eq!(l.poll_exclusive(0), Poll::Spinning);
        assert!(l.holds_exclusive(0));
    }

    #[test]
    fn try_convert_rules() {
        let mut l = ExLockModel::new();
        l.poll_shared(0);
        l.poll_shared(1);
        assert!(!l.try_convert(0), "not the sole holder");
        l.release_shared(1).unwrap();
        assert!(l.try_convert(0));
        assert!(l.holds_exclusive(0));
        l.release_exclusive(0).unwrap();
        l.poll_shared(0);
        l.poll_shared(1);
        assert_eq!(l.begin_exclusive(2), Poll::Spinning);
        l.release_shared(1).unwrap();
        assert!(!l.try_convert(0), "an exclusive acquirer waits");
        assert!(l.holds_shared(0));
    }
}
