//! The ordinary `KSPIN_LOCK`: one word, test-and-test-and-set.

use super::{Owner, Poll};

/// An ordinary spin lock word. Free is 0; held is `(owner + 1) << 1 | 1`,
/// the checked-kernel encoding (owner tag with bit 0 set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpinLockModel {
    word: u64,
}

impl SpinLockModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw lock word.
    pub fn word(&self) -> u64 {
        self.word
    }

    fn tag(owner: Owner) -> u64 {
        ((owner as u64 + 1) << 1) | 1
    }

    /// Who holds it, if anyone.
    pub fn holder(&self) -> Option<Owner> {
        (self.word != 0).then(|| ((self.word >> 1) - 1) as Owner)
    }

    /// True when the word is zero (KeTestSpinLock's hint).
    pub fn is_free(&self) -> bool {
        self.word == 0
    }

    /// One test-and-set: takes the lock if the word is zero.
    pub fn try_acquire(&mut self, owner: Owner) -> bool {
        if self.word == 0 {
            self.word = Self::tag(owner);
            true
        } else {
            false
        }
    }

    /// First phase of an acquire.
    pub fn begin(&mut self, owner: Owner) -> Poll {
        self.poll(owner)
    }

    /// One spin iteration: read the word; when it is clear, test-and-set.
    pub fn poll(&mut self, owner: Owner) -> Poll {
        if self.try_acquire(owner) {
            Poll::Acquired
        } else {
            Poll::Spinning
        }
    }

    /// Release; `Err(holder)` when `owner` does not hold it.
    pub fn release(&mut self, owner: Owner) -> Result<(), Option<Owner>> {
        if self.holder() == Some(owner) {
            self.word = 0;
            Ok(())
        } else {
            Err(self.holder())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_and_set() {
        let mut l = SpinLockModel::new();
        assert_eq!(l.begin(3), Poll::Acquired);
        assert_eq!(l.holder(), Some(3));
        assert_eq!(l.word() & 1, 1);
        assert_eq!(l.begin(1), Poll::Spinning);
        assert_eq!(l.release(1), Err(Some(3)));
        assert_eq!(l.release(3), Ok(()));
        assert_eq!(l.poll(1), Poll::Acquired);
        assert!(!l.is_free());
    }
}
