//! Hash-partitioned maps whose parts copies share: what lets a snapshot keep
//! a big hash, set or sorted set as it was at its cut while writers go on
//! changing it.
//!
//! A fork's copy-on-write copies the pages a writer touches; this copies the
//! parts. Cloning a [`Parts`] costs one reference count per part (a few
//! hundred for a million members), and the first write to a part a snapshot
//! still holds copies that part alone (at most [`PART_MAX`] members, tens of
//! microseconds), never the whole collection. Up to `PART_MAX` members there
//! is a single part, whose order is insertion order (as a listpack's is).

use std::sync::{Arc, LazyLock};

use std::collections::HashMap;

use indexmap::IndexMap;
use smallvec::SmallVec;

use super::value::{Elem, Hasher};

/// Above this many members per part on average, the parts double.
pub const PART_MAX: usize = 4096;

type Map<V> = IndexMap<Elem, V, Hasher>;

/// What a part is: an `IndexMap` where members are also reached by
/// position (hashes and sets: random members, SCAN cursors), a plain
/// `HashMap` where they are not (sorted-set scores), which finds a member
/// with one cache miss fewer.
pub trait Part<V: 'static>: Clone + Default {
    fn with_capacity(n: usize) -> Self;
    fn get(&self, k: &[u8]) -> Option<&V>;
    fn get_mut(&mut self, k: &[u8]) -> Option<&mut V>;
    fn insert(&mut self, k: Elem, v: V);
    /// Removes `k` (an `IndexMap` moves its last member into the gap).
    fn remove(&mut self, k: &[u8]) -> Option<V>;
    fn iter(&self) -> impl Iterator<Item = (&Elem, &V)>;
    fn into_members(self) -> impl Iterator<Item = (Elem, V)>;
}

macro_rules! impl_part {
    ($map:ident, $remove:ident) => {
        impl<V: Clone + 'static> Part<V> for $map<Elem, V, Hasher> {
            fn with_capacity(n: usize) -> Self {
                $map::with_capacity_and_hasher(n, Hasher::new())
            }
            fn get(&self, k: &[u8]) -> Option<&V> {
                $map::get(self, k)
            }
            fn get_mut(&mut self, k: &[u8]) -> Option<&mut V> {
                $map::get_mut(self, k)
            }
            fn insert(&mut self, k: Elem, v: V) {
                $map::insert(self, k, v);
            }
            fn remove(&mut self, k: &[u8]) -> Option<V> {
                $map::$remove(self, k)
            }
            fn iter(&self) -> impl Iterator<Item = (&Elem, &V)> {
                $map::iter(self)
            }
            fn into_members(self) -> impl Iterator<Item = (Elem, V)> {
                self.into_iter()
            }
        }
    };
}

impl_part!(IndexMap, swap_remove);
impl_part!(HashMap, remove);

/// Picks a member's part. One process-wide key: parts only spread the work
/// of a copy; each part's own map has its own random key against flooding.
static PICK: LazyLock<Hasher> = LazyLock::new(Hasher::new);

#[derive(Debug, Clone)]
pub struct Parts<V, M = Map<V>> {
    /// A power of two of them; a member lives in part `hash >> shift`.
    parts: SmallVec<[Arc<M>; 1]>,
    shift: u32,
    len: usize,
    _value: std::marker::PhantomData<V>,
}

impl<V: Clone + 'static, M: Part<V>> Default for Parts<V, M> {
    fn default() -> Self {
        Parts { parts: SmallVec::from_elem(Arc::default(), 1), shift: 64, len: 0, _value: std::marker::PhantomData }
    }
}

impl<V: Clone + 'static, M: Part<V>> Parts<V, M> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn part_of(&self, k: &[u8]) -> usize {
        if self.parts.len() == 1 { 0 } else { (PICK.hash_one(k) >> self.shift) as usize }
    }

    /// The part `k` belongs in, copied first if a snapshot shares it.
    fn part_mut(&mut self, k: &[u8]) -> &mut M {
        let i = self.part_of(k);
        Arc::make_mut(&mut self.parts[i])
    }

    pub fn get(&self, k: &[u8]) -> Option<&V> {
        self.parts[self.part_of(k)].get(k)
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        self.get(k).is_some()
    }

    pub fn get_mut(&mut self, k: &[u8]) -> Option<&mut V> {
        let i = self.part_of(k);
        // A miss does not copy a part a snapshot shares (see `sorted::chunk_mut`).
        if Arc::strong_count(&self.parts[i]) > 1 && self.parts[i].get(k).is_none() {
            return None;
        }
        Arc::make_mut(&mut self.parts[i]).get_mut(k)
    }

    /// Inserts a member that is not there (the caller checked).
    pub fn insert_new(&mut self, k: Elem, v: V) {
        self.part_mut(&k).insert(k, v);
        self.len += 1;
        if self.len > PART_MAX * self.parts.len() {
            self.split();
        }
    }

    /// Removes `k`, moving the part's last member into its place.
    pub fn swap_remove(&mut self, k: &[u8]) -> Option<V> {
        self.remove_with(k, |m| m.remove(k))
    }

    fn remove_with(&mut self, k: &[u8], f: impl FnOnce(&mut M) -> Option<V>) -> Option<V> {
        if !self.contains(k) {
            return None;
        }
        let v = f(self.part_mut(k));
        self.len -= v.is_some() as usize;
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Elem, &V)> {
        self.parts.iter().flat_map(|m| m.iter())
    }

    /// Doubles the parts: each member moves to the part its hash's next bit picks.
    fn split(&mut self) {
        let n = self.parts.len() * 2;
        let shift = 64 - n.trailing_zeros();
        let per = self.len / n + 1;
        let mut parts: SmallVec<[M; 1]> = (0..n).map(|_| M::with_capacity(per)).collect();
        for part in self.parts.drain(..) {
            for (k, v) in Arc::unwrap_or_clone(part).into_members() {
                parts[(PICK.hash_one(&k[..]) >> shift) as usize].insert(k, v);
            }
        }
        self.parts = parts.into_iter().map(Arc::new).collect();
        self.shift = shift;
    }
}

/// Members by position, for hashes and sets.
impl<V: Clone + 'static> Parts<V> {
    /// Removes `k`, keeping the order of the rest (for small collections,
    /// which have one part).
    pub fn shift_remove(&mut self, k: &[u8]) -> Option<V> {
        self.remove_with(k, |m| m.shift_remove(k))
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
