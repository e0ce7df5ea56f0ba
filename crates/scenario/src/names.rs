//! Tables keyed by names, for the checker's file-scope tables (a file may
//! declare 100,000 names).
//!
//! A short name (up to [`INLINE`] bytes, as nearly all are) is kept inside
//! its entry rather than in a string of its own, so a table costs two
//! allocations, not one per name, and comparing a name reads no other
//! memory. The hash is a multiply-xor over eight bytes at a time with a
//! per-table random seed (the standard SipHash costs several times more
//! per name). [`NameMap`] keeps its entries in insertion order, so its
//! iteration order is deterministic; callers do not rely on it for output.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Longest name kept in the slot itself.
const INLINE: usize = 22;

/// A name as a table key.
#[derive(Clone)]
pub(crate) enum Name {
    /// `len` bytes of `bytes` (always whole UTF-8, copied from a `str`).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(s.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..*len as usize],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // The bytes were a whole `str`, so this never fails.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or("")
            }
            Name::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

/// Multiply-xor hashing of eight bytes at a time, finished with a full
/// avalanche (so every bit of the result depends on every input bit).
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHasher {
    hash: u64,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(K).rotate_left(23);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            // The length tells "a" from "a\0".
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b) | 1 << 63);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // murmur3's 64-bit finalizer.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }
}

/// Makes [`NameHasher`]s that start from a seed drawn once per table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHash {
    seed: u64,
}

impl Default for NameHash {
    fn default() -> Self {
        NameHash {
            seed: RandomState::new().hash_one(0x5EED_u64),
        }
    }
}

impl BuildHasher for NameHash {
    type Hasher = NameHasher;

    fn build_hasher(&self) -> NameHasher {
        NameHasher { hash: self.seed }
    }
}

/// A map from names to `V`: the part of `HashMap<String, V>`'s interface
/// the checker uses, taking any `String` or `&str` as the key.
///
/// The entries are kept in insertion order in one vector, and found
/// through a table of slots (open addressing, linear probing, at most 7/8
/// full) that each hold an entry's index and 32 bits of its hash. A
/// search reads a run of slots, usually within one cache line, and the
/// entry: the slots of 100,000 names take 1 MB, where a table of whole
/// entries would take six times that, and entries looked up in the order
/// they were declared (as the checker's passes over the file do) are read
/// in order.
#[derive(Clone, Debug)]
pub(crate) struct NameMap<V> {
    entries: Vec<(Name, V)>,
    /// 0: empty; else `hash >> 32 << 32 | (index + 1)`. A power of two
    /// long, or empty.
    slots: Vec<u64>,
    hash: NameHash,
    /// The entry after the one found last: the checker's passes look names
    /// up in the order they were declared, and this entry is tried first,
    /// without hashing (a search of the slots reads a random place of
    /// them, which for 100,000 names is well out of the processor's
    /// nearest caches).
    next: Cell<usize>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            entries: Vec::new(),
            slots: Vec::new(),
            hash: NameHash::default(),
            next: Cell::new(0),
        }
    }
}

impl<V> NameMap<V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn hash_of(&self, name: &str) -> u64 {
        self.hash.hash_one(name)
    }

    /// The index of `name`'s entry, or the empty slot where it would go.
    fn find(&self, hash: u64, name: &str) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = hash as usize & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                return Err(i);
            }
            if s >> 32 == tag {
                let index = (s as u32 - 1) as usize;
                if self.entries[index].0.bytes() == name.as_bytes() {
                    return Ok(index);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Slots for at least `entries` entries, at most 7/8 full.
    fn grow_to(&mut self, entries: usize) {
        let want = (entries.saturating_mul(8) / 7 + 1)
            .max(16)
            .next_power_of_two();
        if want <= self.slots.len() {
            return;
        }
        self.slots = vec![0; want];
        let mask = want - 1;
        for index in 0..self.entries.len() {
            let hash = self.hash_of(self.entries[index].0.as_str());
            let mut i = hash as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (hash >> 32 << 32) | (index as u64 + 1);
        }
    }

    /// Room for `additional` more names without regrowing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
        self.grow_to(self.entries.len().saturating_add(additional));
    }

    pub(crate) fn get(&self, name: &(impl AsRef<str> + ?Sized)) -> Option<&V> {
        let name = name.as_ref();
        let index = match self.entries.get(self.next.get()) {
            Some((n, _)) if n.bytes() == name.as_bytes() => self.next.get(),
            _ => self.find(self.hash_of(name), name).ok()?,
        };
        self.next.set(index + 1);
        Some(&self.entries[index].1)
    }

    // Part of the `HashMap` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn get_mut(&mut self, name: &(impl AsRef<str> + ?Sized)) -> Option<&mut V> {
        let name = name.as_ref();
        let index = self.find(self.hash_of(name), name).ok()?;
        Some(&mut self.entries[index].1)
    }

    // Part of the `HashMap` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn contains_key(&self, name: &(impl AsRef<str> + ?Sized)) -> bool {
        self.get(name).is_some()
    }

    /// Insert or replace; the value replaced, if any.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, name: impl AsRef<str>, value: V) -> Option<V> {
        let name = name.as_ref();
        match self.insert_new(name, value) {
            Ok(()) => None,
            Err((index, value)) => Some(std::mem::replace(&mut self.entries[index].1, value)),
        }
    }

    /// Insert `name` if it is new; else leave the map as it is and hand back
    /// the value that is there. One search either way.
    pub(crate) fn insert_or_get(&mut self, name: &str, value: V) -> Option<&V> {
        match self.insert_new(name, value) {
            Ok(()) => None,
            Err((index, _)) => Some(&self.entries[index].1),
        }
    }

    /// Insert a new name; `Err` with the index of the entry already there
    /// (and `value` back) if it is not new.
    fn insert_new(&mut self, name: &str, value: V) -> Result<(), (usize, V)> {
        let hash = self.hash_of(name);
        let mut slot = match self.find(hash, name) {
            Ok(index) => return Err((index, value)),
            Err(slot) => slot,
        };
        if (self.entries.len() + 1) * 8 > self.slots.len() * 7 {
            self.grow_to(self.entries.len() + 1);
            slot = match self.find(hash, name) {
                Err(slot) => slot,
                Ok(index) => return Err((index, value)),
            };
        }
        let index = self.entries.len();
        self.slots[slot] = (hash >> 32 << 32) | (index as u64 + 1);
        self.entries.push((Name::new(name), value));
        Ok(())
    }

    /// The names, in the order they were first inserted.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Name> {
        self.entries.iter().map(|(name, _)| name)
    }

    // Part of the `HashMap` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    // Part of the `HashMap` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A set of names (as `HashSet<String>` for the checker's and parser's uses).
#[derive(Clone, Debug, Default)]
pub(crate) struct NameSet {
    set: NameMap<()>,
}

impl NameSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Add `name`; whether it was new.
    pub(crate) fn insert(&mut self, name: impl AsRef<str>) -> bool {
        self.set.insert_or_get(name.as_ref(), ()).is_none()
    }

    /// Room for `additional` more names without regrowing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.set.reserve(additional);
    }

    pub(crate) fn contains(&self, name: &(impl AsRef<str> + ?Sized)) -> bool {
        self.set.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_are_found_by_str_and_string() {
        let long = "A_NAME_LONGER_THAN_TWENTY_TWO_BYTES";
        let mut m = NameMap::new();
        let owned = String::from("G0");
        assert_eq!(m.insert(owned, 1), None);
        assert_eq!(m.insert(long, 2), None);
        assert_eq!(m.insert("é", 3), None);
        assert_eq!(m.insert("", 4), None);
        assert_eq!(m.get("G0"), Some(&1));
        assert_eq!(m.get(&"G0".to_string()), Some(&1));
        assert_eq!(m.get(long), Some(&2));
        assert_eq!(m.get("é"), Some(&3));
        assert_eq!(m.get(""), Some(&4));
        assert_eq!(m.get("G1"), None);
        assert_eq!(m.get("G0\0"), None);
        assert_eq!(m.insert("G0", 5), Some(1));
        assert_eq!(m.len(), 4);
        let keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["G0", "A_NAME_LONGER_THAN_TWENTY_TWO_BYTES", "é", ""]);
        assert_eq!(m.insert_or_get("é", 9), Some(&3));
        assert_eq!(m.insert_or_get("e", 9), None);
        assert_eq!(m.get("e"), Some(&9));
        let mut s = NameSet::new();
        assert!(s.insert("T"));
        let owned = String::from("T");
        assert!(!s.insert(owned));
        assert!(s.contains("T"));
    }

    #[test]
    fn a_growing_map_finds_every_name() {
        let mut m = NameMap::new();
        for i in 0..10_000 {
            assert_eq!(m.insert(format!("N{i}"), i), None);
        }
        let mut r = NameMap::new();
        r.reserve(10);
        for i in 0..10_000 {
            assert_eq!(m.get(&format!("N{i}")), Some(&i));
            assert_eq!(m.get(&format!("M{i}")), None);
            assert_eq!(r.insert_or_get(&format!("N{i}"), i), None);
        }
        assert!(m
            .keys()
            .map(|k| k.as_str())
            .eq((0..10_000).map(|i| format!("N{i}"))));
        assert_eq!(NameMap::<u8>::new().get("x"), None);
    }

    #[test]
    fn names_of_22_and_23_bytes() {
        let a = "x".repeat(INLINE);
        let b = "x".repeat(INLINE + 1);
        assert!(matches!(Name::new(&a), Name::Inline { .. }));
        assert!(matches!(Name::new(&b), Name::Heap(_)));
        assert_eq!(Name::new(&a).as_str(), a);
        assert_eq!(Name::new(&b).as_str(), b);
        assert_ne!(Name::new(&a), Name::new(&b));
    }

    #[test]
    fn many_similar_names_spread_over_the_table() {
        // Names differing in one digit must not pile into few buckets:
        // count distinct low bits of their hashes.
        let h = NameHash::default();
        let mut low = std::collections::BTreeSet::new();
        for i in 0..4096 {
            low.insert(h.hash_one(format!("G{i}").as_str()) & 0xFFF);
        }
        assert!(low.len() > 2000, "{} distinct", low.len());
    }
}
