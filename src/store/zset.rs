//! Sorted sets: a member-to-score map plus an ordered index by (score, member).

use std::cmp::Ordering;
use std::ops::Bound;

use super::parts::Parts;
use super::sorted::Sorted;
use super::value::{ELEM_OVERHEAD, Elem, LISTPACK_MAX_ENTRIES, LISTPACK_MAX_VALUE, elem};

/// A score with a total order (NaN is never stored: commands refuse it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Score {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.partial_cmp(&o.0).unwrap_or(Ordering::Equal)
    }
}

/// One end of a score range (`(1.5` is exclusive).
#[derive(Debug, Clone, Copy)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// One end of a lex range: `-`, `+`, `[a` or `(a`.
#[derive(Debug, Clone)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

impl LexBound {
    fn above_min(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= b.as_slice(),
            LexBound::Excl(b) => m > b.as_slice(),
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match self {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= b.as_slice(),
            LexBound::Excl(b) => m < b.as_slice(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ZSetValue {
    /// Indexed parts, so ZSCAN walks them as HSCAN does (see `Parts::scan`).
    scores: Parts<f64>,
    /// Sorted chunks that copies share (see `Parts` for why).
    order: Sorted<(Score, Elem)>,
    bytes: usize,
    big: bool,
}

fn cost(m: &[u8]) -> usize {
    2 * (m.len() + ELEM_OVERHEAD) + 16
}

impl ZSetValue {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_big(&self) -> bool {
        self.big
    }

    /// One ZSCAN step over a big sorted set (see [`Parts::scan`]): a member
    /// present throughout a scan is returned whatever scores change.
    pub fn scan(&self, cursor: u64, count: usize, emit: impl FnMut(&Elem, &f64)) -> u64 {
        self.scores.scan(cursor, count, emit)
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.scores.get(m).copied()
    }

    /// Sets a member's score; returns the previous score, if any.
    pub fn insert(&mut self, m: &[u8], score: f64) -> Option<f64> {
        let always = self.upsert(m, |_| Ok::<_, std::convert::Infallible>(Some(score)));
        always.unwrap_or_else(|never| match never {}).0
    }

    /// Finds `m` once and lets `decide` pick its score from the current one
    /// (`None` leaves the set as it is): ZADD's options with one lookup.
    /// Returns the previous score and the one decided.
    pub fn upsert<E>(
        &mut self,
        m: &[u8],
        decide: impl FnOnce(Option<f64>) -> Result<Option<f64>, E>,
    ) -> Result<(Option<f64>, Option<f64>), E> {
        if let Some(cur) = self.scores.get_mut(m) {
            let old = *cur;
            let new = decide(Some(old))?;
            // Equal scores (0 and -0 too) keep the stored one, as Redis does.
            if let Some(score) = new.filter(|&s| s != old) {
                *cur = score;
                let key = self.order.remove(&(Score(old), elem(m))).expect("index in sync");
                self.order.insert((Score(score), key.1));
            }
            return Ok((Some(old), new));
        }
        let Some(score) = decide(None)? else {
            return Ok((None, None));
        };
        self.bytes += cost(m);
        self.scores.insert_new(elem(m), score);
        self.order.insert((Score(score), elem(m)));
        self.big |= m.len() > LISTPACK_MAX_VALUE || self.scores.len() > LISTPACK_MAX_ENTRIES;
        Ok((None, Some(score)))
    }

    pub fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let s = self.scores.swap_remove(m)?;
        self.order.remove(&(Score(s), elem(m)));
        self.bytes -= cost(m);
        Some(s)
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        Some(self.order.rank(&(Score(s), elem(m))))
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order.iter().map(|(s, m)| (&m[..], s.0))
    }

    /// Members with `min <= score <= max` (bounds may be exclusive), ascending.
    pub fn range_by_score(&self, min: ScoreBound, max: ScoreBound) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        let key = |v: f64| (Score(v), elem(b""));
        let lo = if min.exclusive { min.value.next_up() } else { min.value };
        let hi = match (max.exclusive, max.value) {
            (false, v) if v == f64::INFINITY => Bound::Unbounded,
            (false, v) => Bound::Excluded(key(v.next_up())),
            (true, v) => Bound::Excluded(key(v)),
        };
        let empty = lo.is_nan()
            || (min.exclusive && min.value == f64::INFINITY)
            || match &hi {
                Bound::Excluded((h, _)) => lo >= h.0,
                _ => false,
            };
        let range = if empty {
            self.order.range(Bound::Included(&key(0.0)), Bound::Excluded(&key(0.0)))
        } else {
            self.order.range(Bound::Included(&key(lo)), hi.as_ref())
        };
        range.map(|(s, m)| (&m[..], s.0))
    }

    /// Members ranked `start..=end` in ascending order (within bounds).
    pub fn by_rank(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order.by_rank(start, end).map(|(s, m)| (&m[..], s.0))
    }

    /// Members between lex bounds. Redis defines this only when all scores
    /// are equal; then (score, member) order is member order and the range
    /// is found in the index. Otherwise every member is tested.
    pub fn range_by_lex<'a>(&'a self, min: &'a LexBound, max: &'a LexBound) -> Box<dyn DoubleEndedIterator<Item = (&'a [u8], f64)> + 'a> {
        let out = |(s, m): &'a (Score, Elem)| (&m[..], s.0);
        let (Some(lo), Some(hi)) = (self.order.first(), self.order.last()) else {
            return Box::new(std::iter::empty());
        };
        if lo.0 != hi.0 {
            return Box::new(self.order.iter().filter(move |(_, m)| min.above_min(m) && max.below_max(m)).map(out));
        }
        let at = |b: &[u8]| (lo.0, elem(b));
        let start = match min {
            LexBound::NegInf => Bound::Unbounded,
            LexBound::Incl(b) => Bound::Included(at(b)),
            LexBound::Excl(b) => Bound::Excluded(at(b)),
            LexBound::PosInf => return Box::new(std::iter::empty()),
        };
        let end = match max {
            LexBound::PosInf => Bound::Unbounded,
            LexBound::Incl(b) => Bound::Included(at(b)),
            LexBound::Excl(b) => Bound::Excluded(at(b)),
            LexBound::NegInf => return Box::new(std::iter::empty()),
        };
        Box::new(self.order.range(start.as_ref(), end.as_ref()).map(out))
    }
}
