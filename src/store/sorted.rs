//! An ordered set kept as a list of B-tree chunks that copies share: the
//! sorted set's index by (score, member).
//!
//! Two levels: a binary search over the chunks' upper bounds (kept in an
//! array of their own, so the search does not chase a pointer per step),
//! then the chunk's own B-tree of at most [`CHUNK_MAX`] elements. A clone
//! costs one reference count per chunk, and a write copies only the chunk it
//! changes when a snapshot still holds it (see `parts` for why). Rank sums
//! chunk lengths and counts within one chunk, instead of walking every member.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

/// A chunk that grows past this splits in two. Tests use small chunks, so
/// that a few thousand elements exercise every split and merge path.
#[cfg(not(test))]
pub const CHUNK_MAX: usize = 4096;
#[cfg(test)]
pub const CHUNK_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct Sorted<T> {
    chunks: Vec<Arc<BTreeSet<T>>>,
    /// `maxes[i]` separates the chunks: at least every element of
    /// `chunks[i]` (its last one, or a larger one removed since) and less
    /// than every element of `chunks[i + 1]`. No chunk is empty.
    maxes: Vec<T>,
    len: usize,
}

impl<T> Default for Sorted<T> {
    fn default() -> Self {
        Sorted { chunks: Vec::new(), maxes: Vec::new(), len: 0 }
    }
}

impl<T: Ord + Clone> Sorted<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk `x` is in or belongs in (the last one for a new maximum).
    fn chunk_for(&self, x: &T) -> usize {
        self.maxes.partition_point(|l| l < x).min(self.chunks.len().saturating_sub(1))
    }

    /// Inserts `x`; false if it was there.
    pub fn insert(&mut self, x: T) -> bool {
        if self.chunks.is_empty() {
            self.maxes.push(x.clone());
            self.chunks.push(Arc::new(BTreeSet::from([x])));
            self.len = 1;
            return true;
        }
        let ci = self.chunk_for(&x);
        let new_max = x > self.maxes[ci];
        let Some(c) = chunk_mut(&mut self.chunks[ci], &x, false) else {
            return false;
        };
        let added = if new_max { c.insert(x.clone()) } else { c.insert(x) };
        if !added {
            return false;
        }
        self.len += 1;
        if c.len() > CHUNK_MAX {
            let mid = c.iter().nth(c.len() / 2).expect("a full chunk").clone();
            let tail = c.split_off(&mid);
            let low_max = c.last().expect("half a full chunk").clone();
            self.chunks.insert(ci + 1, Arc::new(tail));
            self.maxes.insert(ci, low_max);
        }
        if new_max {
            // Only the last chunk takes a new maximum; after a split it is the next one.
            let last = self.maxes.len() - 1;
            self.maxes[last] = self.chunks[last].last().expect("not empty").clone();
        }
        true
    }

    /// Removes and returns the element equal to `x`.
    pub fn remove(&mut self, x: &T) -> Option<T> {
        if self.chunks.is_empty() {
            return None;
        }
        let ci = self.chunk_for(x);
        let c = chunk_mut(&mut self.chunks[ci], x, true)?;
        let v = c.take(x)?;
        // The chunk's bound stays as it is: it still separates the chunks.
        if c.is_empty() {
            self.chunks.remove(ci);
            self.maxes.remove(ci);
        }
        self.len -= 1;
        Some(v)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Elements within the bounds, in order (none when they are inverted).
    pub fn range<'s>(&'s self, lo: Bound<&T>, hi: Bound<&T>) -> impl DoubleEndedIterator<Item = &'s T> + use<'s, T> {
        let inverted = match (lo, hi) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        };
        // First chunk with an element at or past `lo`; last one that can hold one up to `hi`.
        let first = match lo {
            Bound::Unbounded => 0,
            Bound::Included(x) => self.maxes.partition_point(|l| l < x),
            Bound::Excluded(x) => self.maxes.partition_point(|l| l <= x),
        };
        let last = match hi {
            Bound::Unbounded => self.chunks.len(),
            Bound::Included(x) => self.maxes.partition_point(|l| l < x) + 1,
            Bound::Excluded(x) => self.maxes.partition_point(|l| l < x) + 1,
        }
        .min(self.chunks.len());
        let (first, last) = if inverted || first >= last { (0, 0) } else { (first, last - 1) };
        let ends = (first < self.chunks.len() && !inverted && self.len > 0).then(|| {
            if first == last {
                (self.chunks[first].range((lo, hi)), None)
            } else {
                (self.chunks[first].range((lo, Bound::Unbounded)), Some(self.chunks[last].range((Bound::Unbounded, hi))))
            }
        });
        let middle = if ends.is_some() && last > first { &self.chunks[first + 1..last] } else { &[][..] };
        let (head, tail) = ends.map_or((None, None), |(h, t)| (Some(h), t));
        head.into_iter().flatten().chain(middle.iter().flat_map(|c| c.iter())).chain(tail.into_iter().flatten())
    }

    pub fn first(&self) -> Option<&T> {
        self.chunks.first()?.first()
    }

    pub fn last(&self) -> Option<&T> {
        self.chunks.last()?.last()
    }

    /// The elements ranked `start..=end` (0-based, `start <= end < len`):
    /// the chunks before are skipped by their lengths, not walked.
    pub fn by_rank(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &T> {
        let (mut first, mut skip) = (0, start);
        while first < self.chunks.len() && skip >= self.chunks[first].len() {
            skip -= self.chunks[first].len();
            first += 1;
        }
        let mut left = end + 1 - start;
        self.chunks[first..]
            .iter()
            .map_while(move |c| {
                let part = c.iter().skip(std::mem::take(&mut skip)).take(left);
                left -= part.len();
                (part.len() > 0).then_some(part)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
    }

    /// How many elements are less than `x`.
    pub fn rank(&self, x: &T) -> usize {
        let ci = self.maxes.partition_point(|l| l < x);
        let before: usize = self.chunks[..ci].iter().map(|c| c.len()).sum();
        before + self.chunks.get(ci).map_or(0, |c| c.range(..x).count())
    }
}

/// A chunk, for a change that holds when `x` is (`present`) or is not in
/// it: copied first if a snapshot shares it, but not for a no-op (as
/// `Parts::part_mut`).
fn chunk_mut<'c, T: Ord + Clone>(chunk: &'c mut Arc<BTreeSet<T>>, x: &T, present: bool) -> Option<&'c mut BTreeSet<T>> {
    if Arc::strong_count(chunk) > 1 && chunk.contains(x) != present {
        return None;
    }
    Some(Arc::make_mut(chunk))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn bound(kind: u8, x: u16) -> Bound<u16> {
        match kind % 3 {
            0 => Bound::Unbounded,
            1 => Bound::Included(x),
            _ => Bound::Excluded(x),
        }
    }

    proptest! {
        /// Any sequence of inserts and removes leaves what a BTreeSet would,
        /// and every range, rank and copy agrees with it.
        #[test]
        fn behaves_as_a_btreeset(ops in prop::collection::vec((any::<bool>(), 0u16..2000), 0..3000),
                                 lo in (0u8..3, 0u16..2100), hi in (0u8..3, 0u16..2100)) {
            let (mut s, mut model) = (Sorted::default(), BTreeSet::new());
            let mut copy = None;
            for (i, (add, x)) in ops.iter().enumerate() {
                if i == ops.len() / 2 {
                    copy = Some((s.clone(), model.clone()));
                }
                if *add {
                    prop_assert_eq!(s.insert(*x), model.insert(*x));
                } else {
                    prop_assert_eq!(s.remove(x), model.take(x));
                }
            }
            prop_assert_eq!(s.len(), model.len());
            prop_assert!(s.iter().eq(model.iter()));
            prop_assert!(s.iter().rev().eq(model.iter().rev()));
            let (ranks, (lo, hi)) = ((lo.1 as usize, hi.1 as usize), (bound(lo.0, lo.1), bound(hi.0, hi.1)));
            let valid = match (lo, hi) {
                (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
                _ => true,
            };
            if valid {
                prop_assert!(s.range(lo.as_ref(), hi.as_ref()).eq(model.range((lo, hi))));
                prop_assert!(s.range(lo.as_ref(), hi.as_ref()).rev().eq(model.range((lo, hi)).rev()));
            }
            prop_assert_eq!(s.rank(&1000), model.range(..1000).count());
            if !model.is_empty() {
                let (a, b) = (ranks.0 % model.len(), ranks.1 % model.len());
                let (a, b) = (a.min(b), a.max(b));
                prop_assert!(s.by_rank(a, b).eq(model.iter().skip(a).take(b - a + 1)));
                prop_assert!(s.by_rank(a, b).rev().eq(model.iter().skip(a).take(b - a + 1).rev()));
                prop_assert_eq!(s.first(), model.first());
                prop_assert_eq!(s.last(), model.last());
            }
            if let Some((c, m)) = copy {
                prop_assert!(c.iter().eq(m.iter()));
            }
        }
    }

    #[test]
    fn empty_inverted_and_single_element_ranges() {
        let mut s = Sorted::default();
        (0..1000u32).for_each(|x| assert!(s.insert(x)));
        assert_eq!(s.range(Bound::Included(&10), Bound::Excluded(&10)).count(), 0);
        assert_eq!(s.range(Bound::Included(&10), Bound::Included(&10)).collect::<Vec<_>>(), [&10]);
        assert_eq!(s.rank(&10), 10);
        assert_eq!(s.range(Bound::Included(&20), Bound::Included(&10)).count(), 0);
        assert_eq!(s.range(Bound::Excluded(&999), Bound::Unbounded).count(), 0);
        assert_eq!(Sorted::<u32>::default().range(Bound::Unbounded, Bound::Unbounded).count(), 0);
    }
}
