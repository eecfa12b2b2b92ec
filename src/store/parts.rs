//! Hash-partitioned maps whose parts copies share: what lets a snapshot keep
//! a big hash, set or sorted set as it was at its cut while writers go on
//! changing it.
//!
//! A fork's copy-on-write copies the pages a writer touches; this copies the
//! parts. Cloning a [`Parts`] costs one reference count per part (a few
//! hundred for a million members), and the first write to a part a snapshot
//! still holds copies that part alone (about [`PART_MAX`] members or fewer,
//! as parts double on the average; tens of microseconds), never the whole
//! collection. Up to `PART_MAX` members there
//! is a single part, whose order is insertion order (as a listpack's is).
//!
//! A member is hashed once per operation: the same hash picks its part
//! (bits 32 and up, which a part's table does not use below four billion
//! slots) and finds it in the part, through the maps' raw-entry APIs. So
//! every part's table uses the one process-wide key the hash is made with.

use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut as IxEntry};
use smallvec::SmallVec;

use super::value::{Elem, Hasher};

/// Above this many members per part on average, the parts double.
pub const PART_MAX: usize = 4096;

/// The key of every part's hash (random per process, as Redis's siphash
/// seed is, against flooding).
static KEY: LazyLock<Hasher> = LazyLock::new(Hasher::new);

fn hash(k: &[u8]) -> u64 {
    KEY.hash_one(k)
}

type Map<V> = IndexMap<Elem, V, Hasher>;
/// What a part is: an `IndexMap`, where members are also reached by
/// position (random members, SCAN cursors). Every lookup comes with the
/// member's hash, made with [`KEY`].
pub trait Part<V: 'static>: Clone {
    fn with_capacity(n: usize) -> Self;
    fn get(&self, h: u64, k: &[u8]) -> Option<&V>;
    fn get_mut(&mut self, h: u64, k: &[u8]) -> Option<&mut V>;
    /// Inserts a member that is not there.
    fn insert(&mut self, h: u64, k: Elem, v: V);
    /// Removes `k` (an `IndexMap` moves its last member into the gap).
    fn remove(&mut self, h: u64, k: &[u8]) -> Option<V>;
    fn iter(&self) -> impl Iterator<Item = (&Elem, &V)>;
    fn into_members(self) -> impl Iterator<Item = (Elem, V)>;
}

impl<V: Clone + 'static> Part<V> for Map<V> {
    fn with_capacity(n: usize) -> Self {
        Map::with_capacity_and_hasher(n, KEY.clone())
    }
    fn get(&self, h: u64, k: &[u8]) -> Option<&V> {
        self.raw_entry_v1().from_key_hashed_nocheck(h, k).map(|(_, v)| v)
    }
    fn get_mut(&mut self, h: u64, k: &[u8]) -> Option<&mut V> {
        match self.raw_entry_mut_v1().from_key_hashed_nocheck(h, k) {
            IxEntry::Occupied(o) => Some(o.into_mut()),
            IxEntry::Vacant(_) => None,
        }
    }
    fn insert(&mut self, h: u64, k: Elem, v: V) {
        if let IxEntry::Vacant(e) = self.raw_entry_mut_v1().from_key_hashed_nocheck(h, &k[..]) {
            e.insert_hashed_nocheck(h, k, v);
        }
    }
    fn remove(&mut self, h: u64, k: &[u8]) -> Option<V> {
        match self.raw_entry_mut_v1().from_key_hashed_nocheck(h, k) {
            IxEntry::Occupied(o) => Some(o.swap_remove()),
            IxEntry::Vacant(_) => None,
        }
    }
    fn iter(&self) -> impl Iterator<Item = (&Elem, &V)> {
        Map::iter(self)
    }
    fn into_members(self) -> impl Iterator<Item = (Elem, V)> {
        self.into_iter()
    }
}

#[derive(Debug, Clone)]
pub struct Parts<V, M = Map<V>> {
    /// A power of two of them; a member lives in part `(hash >> 32) & (len - 1)`.
    parts: SmallVec<[Arc<M>; 1]>,
    len: usize,
    _value: std::marker::PhantomData<V>,
}

impl<V: Clone + 'static, M: Part<V>> Default for Parts<V, M> {
    fn default() -> Self {
        Parts { parts: SmallVec::from_elem(Arc::new(M::with_capacity(0)), 1), len: 0, _value: std::marker::PhantomData }
    }
}

/// The part of a member with hash `h` among `n` (a power of two).
fn part_of(h: u64, n: usize) -> usize {
    (h >> 32) as usize & (n - 1)
}

impl<V: Clone + 'static, M: Part<V>> Parts<V, M> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, k: &[u8]) -> Option<&V> {
        let h = hash(k);
        self.parts[part_of(h, self.parts.len())].get(h, k)
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        self.get(k).is_some()
    }

    /// The part of hash `h`, for a change that holds when the member is
    /// (`present`) or is not in it: copied first if a snapshot shares it,
    /// but not for a no-op. (No `Weak` is ever made of a part or chunk, so a
    /// strong count of one means `make_mut` will not copy: a plain load,
    /// where `get_mut` is one more atomic read-modify-write per write.)
    fn part_mut(&mut self, h: u64, k: &[u8], present: bool) -> Option<&mut M> {
        let i = part_of(h, self.parts.len());
        let part = &mut self.parts[i];
        if Arc::strong_count(part) > 1 && part.get(h, k).is_some() != present {
            return None;
        }
        Some(Arc::make_mut(part))
    }

    pub fn get_mut(&mut self, k: &[u8]) -> Option<&mut V> {
        let h = hash(k);
        self.part_mut(h, k, true)?.get_mut(h, k)
    }

    /// Inserts a member that is not there (the caller checked).
    pub fn insert_new(&mut self, k: Elem, v: V) {
        let h = hash(&k);
        if let Some(part) = self.part_mut(h, &k, false) {
            part.insert(h, k, v);
            self.len += 1;
        }
        if self.len > PART_MAX * self.parts.len() {
            self.split();
        }
    }

    /// Removes `k`, moving the part's last member into its place.
    pub fn swap_remove(&mut self, k: &[u8]) -> Option<V> {
        let h = hash(k);
        let v = self.part_mut(h, k, true)?.remove(h, k);
        self.len -= v.is_some() as usize;
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Elem, &V)> {
        self.parts.iter().flat_map(|m| m.iter())
    }

    /// Doubles the parts: each member of part `i` stays or moves to part
    /// `i + n`, as its hash's next bit says. One part at a time, so that
    /// what the old one held is freed before the next is copied (all at
    /// once, old and new maps were alive together: twice the memory).
    fn split(&mut self) {
        let n = self.parts.len();
        let per = self.len / (2 * n) + 1;
        let mut upper = Vec::with_capacity(n);
        for i in 0..n {
            let old = std::mem::replace(&mut self.parts[i], Arc::new(M::with_capacity(0)));
            let (mut stay, mut go) = (M::with_capacity(per), M::with_capacity(per));
            for (k, v) in Arc::unwrap_or_clone(old).into_members() {
                let h = hash(&k);
                let to = if part_of(h, 2 * n) == i { &mut stay } else { &mut go };
                to.insert(h, k, v);
            }
            self.parts[i] = Arc::new(stay);
            upper.push(Arc::new(go));
        }
        self.parts.extend(upper);
    }
}

/// Members by position, for hashes and sets.
impl<V: Clone + 'static> Parts<V> {
    /// Removes `k`, keeping the order of the rest (for small collections,
    /// which have one part).
    pub fn shift_remove(&mut self, k: &[u8]) -> Option<V> {
        let h = hash(k);
        let v = match self.part_mut(h, k, true)?.raw_entry_mut_v1().from_key_hashed_nocheck(h, k) {
            IxEntry::Occupied(o) => Some(o.shift_remove()),
            IxEntry::Vacant(_) => None,
        };
        self.len -= v.is_some() as usize;
        v
    }

    /// The `i`th member in iteration order.
    pub fn get_index(&self, i: usize) -> Option<(&Elem, &V)> {
        let (p, j) = self.locate(i)?;
        self.parts[p].get_index(j)
    }

    pub fn swap_remove_index(&mut self, i: usize) -> Option<(Elem, V)> {
        let (p, j) = self.locate(i)?;
        let kv = Arc::make_mut(&mut self.parts[p]).swap_remove_index(j);
        self.len -= kv.is_some() as usize;
        kv
    }

    /// One step of a SCAN: up to `count` members from `cursor` (0 starts),
    /// and the cursor to go on with (0 when done). Parts are walked from the
    /// last to the first and each part from its end to its start, so a member
    /// present for the whole scan is returned at least once whatever changes
    /// meanwhile: an insertion lands at a part's end (already walked), and a
    /// removal moves a walked member (its part's last) into the gap or shifts
    /// later ones back (a second visit, which SCAN allows), never an unwalked
    /// one out of reach. A cursor from another part count (the parts doubled
    /// since) starts again: duplicates, no misses, as Redis allows.
    ///
    /// The cursor packs the part count's log2 + 1 (bits 56 and up), the part
    /// (bits 32-55) and how many of its members are left to walk (bits 0-31).
    pub fn scan(&self, cursor: u64, count: usize, mut emit: impl FnMut(&Elem, &V)) -> u64 {
        let n = self.parts.len();
        let shape = n.trailing_zeros() as u64 + 1;
        let resumed = (cursor >> 56 == shape).then_some((((cursor >> 32) & 0xff_ffff) as usize, (cursor & 0xffff_ffff) as usize));
        let (mut part, mut left) = resumed.filter(|&(p, _)| p < n).unwrap_or((n - 1, usize::MAX));
        left = left.min(self.parts[part].len());
        let mut budget = count;
        loop {
            if left == 0 {
                if part == 0 {
                    return 0;
                }
                part -= 1;
                left = self.parts[part].len();
                continue;
            }
            if budget == 0 {
                return shape << 56 | (part as u64) << 32 | left as u64;
            }
            left -= 1;
            budget -= 1;
            if let Some((k, v)) = self.parts[part].get_index(left) {
                emit(k, v);
            }
        }
    }

    /// (part, index in it) of the `i`th member.
    fn locate(&self, mut i: usize) -> Option<(usize, usize)> {
        for (p, m) in self.parts.iter().enumerate() {
            if i < m.len() {
                return Some((p, i));
            }
            i -= m.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::elem;

    #[test]
    fn members_survive_splits_and_a_copy_keeps_its_state() {
        let mut p = Parts::<u32>::default();
        let n = PART_MAX as u32 * 5;
        for i in 0..n {
            p.insert_new(elem(i.to_string().as_bytes()), i);
        }
        assert_eq!(p.parts.len(), 8);
        let copy = p.clone();
        for i in (0..n).step_by(2) {
            assert_eq!(p.swap_remove(i.to_string().as_bytes()), Some(i));
        }
        *p.get_mut(b"1").unwrap() = 100;
        assert_eq!((p.len(), copy.len()), (n as usize / 2, n as usize));
        assert_eq!(copy.get(b"1"), Some(&1));
        assert_eq!(p.get(b"1"), Some(&100));
        assert!(copy.iter().all(|(k, v)| k[..] == *v.to_string().as_bytes()));
        assert_eq!(p.iter().count(), p.len());
        let all: std::collections::HashSet<_> = (0..p.len()).map(|i| p.get_index(i).unwrap().0.clone()).collect();
        assert_eq!(all.len(), p.len());
        assert!(p.get_index(p.len()).is_none());
    }

    #[test]
    fn a_write_copies_only_the_part_it_touches() {
        let mut p = Parts::<()>::default();
        for i in 0..PART_MAX * 4 + 1 {
            p.insert_new(elem(i.to_string().as_bytes()), ());
        }
        let copy = p.clone();
        p.swap_remove(b"7");
        let shared = p.parts.iter().zip(&copy.parts).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, p.parts.len() - 1);
    }

    /// Members present from a SCAN's start to its end are all returned,
    /// while others are removed and added (enough to double the parts).
    #[test]
    fn a_scan_misses_no_member_present_throughout() {
        let mut p = Parts::<()>::default();
        let key = |i: usize| elem(format!("m{i}").as_bytes());
        for i in 0..PART_MAX * 3 {
            p.insert_new(key(i), ());
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut seen, mut removed) = (std::collections::HashSet::new(), std::collections::HashSet::new());
        let (mut cursor, mut next_new) = (0, PART_MAX * 3);
        loop {
            cursor = p.scan(cursor, 100, |k, _| {
                seen.insert(k.clone());
            });
            for _ in 0..40 {
                let victim = rng.usize(..PART_MAX * 3);
                if p.swap_remove(&key(victim)).is_some() {
                    removed.insert(victim);
                }
                for _ in 0..2 {
                    p.insert_new(key(next_new), ());
                    next_new += 1;
                }
            }
            if cursor == 0 {
                break;
            }
        }
        assert!(p.parts.len() > 4, "the parts doubled during the scan");
        let missed: Vec<_> = (0..PART_MAX * 3).filter(|i| !removed.contains(i) && !seen.contains(&key(*i))).collect();
        assert!(missed.is_empty(), "missed {} members, e.g. {:?}", missed.len(), &missed[..missed.len().min(5)]);
    }

    #[test]
    fn one_part_keeps_insertion_order() {
        let mut p = Parts::<()>::default();
        for k in [&b"c"[..], b"a", b"b"] {
            p.insert_new(elem(k), ());
        }
        p.shift_remove(b"c");
        let order: Vec<_> = p.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(order, [b"a".to_vec(), b"b".to_vec()]);
    }
}
