//! Tables keyed by names, for the checker's file-scope tables (a file may
//! declare 100,000 names).
//!
//! A short name (up to [`INLINE`] bytes, as nearly all are) is kept inside
//! the table's slot rather than in a string of its own, so finding a name
//! reads one slot and no separate allocation, and a table costs one
//! allocation, not one per name. The hash is a multiply-xor over eight
//! bytes at a time with a per-table random seed (unlike the standard
//! SipHash it reads each name once, cheaply). Like the standard tables,
//! iteration order is unspecified: callers never let it reach output.

use std::borrow::Borrow;
use std::collections::hash_map::{self, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

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

/// Hashes as the `str` it holds, so a `&str` finds it.
impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

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
#[derive(Clone, Debug)]
pub(crate) struct NameMap<V> {
    map: HashMap<Name, V, NameHash>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            map: HashMap::default(),
        }
    }
}

impl<V> NameMap<V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Room for `additional` more names without regrowing.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.map.reserve(additional);
    }

    pub(crate) fn get(&self, name: &(impl AsRef<str> + ?Sized)) -> Option<&V> {
        self.map.get(name.as_ref())
    }

    // Part of the `HashMap`/`HashSet` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn get_mut(&mut self, name: &(impl AsRef<str> + ?Sized)) -> Option<&mut V> {
        self.map.get_mut(name.as_ref())
    }

    // Part of the `HashMap`/`HashSet` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn contains_key(&self, name: &(impl AsRef<str> + ?Sized)) -> bool {
        self.map.contains_key(name.as_ref())
    }

    /// Insert or replace; the value replaced, if any.
    pub(crate) fn insert(&mut self, name: impl AsRef<str>, value: V) -> Option<V> {
        self.map.insert(Name::new(name.as_ref()), value)
    }

    /// The entry of `name`, to look it up and insert with one search.
    pub(crate) fn entry(&mut self, name: &str) -> hash_map::Entry<'_, Name, V> {
        self.map.entry(Name::new(name))
    }

    /// The names, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Name> {
        self.map.keys()
    }

    // Part of the `HashMap`/`HashSet` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    // Part of the `HashMap`/`HashSet` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A set of names (as `HashSet<String>` for the checker's uses).
#[derive(Clone, Debug, Default)]
pub(crate) struct NameSet {
    set: HashSet<Name, NameHash>,
}

impl NameSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Add `name`; whether it was new.
    pub(crate) fn insert(&mut self, name: impl AsRef<str>) -> bool {
        self.set.insert(Name::new(name.as_ref()))
    }

    // Part of the `HashMap`/`HashSet` interface kept for the checker.
    #[allow(dead_code)]
    pub(crate) fn contains(&self, name: &(impl AsRef<str> + ?Sized)) -> bool {
        self.set.contains(name.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_are_found_by_str_and_string() {
        let long = "A_NAME_LONGER_THAN_TWENTY_TWO_BYTES";
        let mut m = NameMap::new();
        assert_eq!(m.insert("G0".to_string(), 1), None);
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
        let mut keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["", "A_NAME_LONGER_THAN_TWENTY_TWO_BYTES", "G0", "é"]);
        let mut s = NameSet::new();
        assert!(s.insert("T"));
        assert!(!s.insert("T".to_string()));
        assert!(s.contains("T"));
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
