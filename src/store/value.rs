//! Values and their byte accounting.
//!
//! Every collection tracks the bytes it holds as it changes, so that
//! [`Value::mem`] is O(1) and the keyspace can keep an exact running total by
//! comparing a value's size before and after each write. The encodings Redis
//! reports through `OBJECT ENCODING` are tracked with the same thresholds
//! (they are sticky: a big hash stays a hashtable when it shrinks, as in Redis).

use smallvec::SmallVec;

use super::parts::Parts;

use crate::protocol::parse::parse_i64;

pub use super::stream::StreamValue;
pub use super::zset::ZSetValue;

/// An element of a collection: up to 24 bytes inline (most members, fields
/// and list items), so a lookup does not chase a pointer to compare it.
pub type Elem = SmallVec<[u8; 24]>;
/// A string value: short ones (counters, flags) live inline with no allocation.
pub type StrBytes = SmallVec<[u8; 16]>;
/// Fast keyed hasher for collections (ahash with a random key resists hash flooding).
pub type Hasher = ahash::RandomState;

/// What a collection element costs beyond its bytes (pointer, length, table slot).
pub const ELEM_OVERHEAD: usize = 24;

/// Redis 7.0 thresholds for compact encodings.
pub const LISTPACK_MAX_ENTRIES: usize = 128;
/// A hash's listpack holds more (Redis 7.0's hash-max-listpack-entries).
pub const HASH_LISTPACK_MAX_ENTRIES: usize = 512;
pub const LISTPACK_MAX_VALUE: usize = 64;
pub const INTSET_MAX_ENTRIES: usize = 512;

pub fn elem(b: &[u8]) -> Elem {
    SmallVec::from_slice(b)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    List,
    Hash,
    Set,
    ZSet,
    Stream,
}

impl ValueType {
    /// The name `TYPE` replies with.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Hash => "hash",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Stream => "stream",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    /// The flag is true once the string was modified in place (APPEND,
    /// SETRANGE), which Redis reports as the `raw` encoding.
    Str(StrBytes, bool),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    Stream(Box<StreamValue>),
}

impl Value {
    pub fn string(b: &[u8]) -> Value {
        Value::Str(StrBytes::from_slice(b), false)
    }

    pub fn kind(&self) -> ValueType {
        match self {
            Value::Str(..) => ValueType::String,
            Value::List(_) => ValueType::List,
            Value::Hash(_) => ValueType::Hash,
            Value::Set(_) => ValueType::Set,
            Value::ZSet(_) => ValueType::ZSet,
            Value::Stream(_) => ValueType::Stream,
        }
    }

    /// Bytes this value accounts for.
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s, _) => {
                if s.spilled() {
                    s.len()
                } else {
                    0
                }
            }
            Value::List(l) => 48 + l.bytes,
            Value::Hash(h) => 64 + h.bytes,
            Value::Set(s) => 64 + s.bytes,
            Value::ZSet(z) => 96 + z.bytes(),
            Value::Stream(st) => 128 + st.bytes(),
        }
    }

    /// Whether a clone shares this value's storage rather than copying it,
    /// which is worth it past the compact sizes: a snapshot keeps such a
    /// clone instead of encoding the value on a writer's thread (lists,
    /// [`Parts`] and the sorted set's index are shared structures).
    pub fn is_shared_on_clone(&self) -> bool {
        match self {
            Value::Str(..) => false,
            Value::List(l) => l.len() > LISTPACK_MAX_ENTRIES,
            Value::Hash(h) => h.len() > LISTPACK_MAX_ENTRIES,
            Value::Set(s) => s.len() > LISTPACK_MAX_ENTRIES,
            Value::ZSet(z) => z.len() > LISTPACK_MAX_ENTRIES,
            Value::Stream(_) => true,
        }
    }

    /// An empty collection is deleted by the command that emptied it.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(..) => false,
            Value::List(l) => l.items.is_empty(),
            Value::Hash(h) => h.map.is_empty(),
            Value::Set(s) => s.set.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // An empty stream stays (it keeps its last ID and groups).
            Value::Stream(_) => false,
        }
    }

    /// The name `OBJECT ENCODING` replies with, as Redis 7.0 would.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s, raw) => {
                if !*raw && s.len() <= 20 && parse_i64(s).is_some() {
                    "int"
                } else if !*raw && s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::List(_) => "quicklist",
            Value::Hash(h) => {
                if h.big {
                    "hashtable"
                } else {
                    "listpack"
                }
            }
            Value::Set(s) => {
                if s.intset {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                if z.is_big() {
                    "skiplist"
                } else {
                    "listpack"
                }
            }
            Value::Stream(_) => "stream",
        }
    }
}

/// A list: a deque of elements in a tree of chunks that copies share (an
/// RRB vector), so a snapshot's copy of a big list costs O(1) and a push
/// during the snapshot copies one path of chunks, not the list.
#[derive(Debug, Clone, Default)]
pub struct ListValue {
    items: imbl::Vector<Elem>,
    bytes: usize,
}

fn cost(e: &[u8]) -> usize {
    e.len() + ELEM_OVERHEAD
}

impl ListValue {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Elem> {
        self.items.iter()
    }

    /// What the elements cost (see [`Value::mem`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Elements `start..=end` (within bounds).
    pub fn range(&self, start: usize, end: usize) -> impl ExactSizeIterator<Item = &Elem> {
        self.items.focus().narrow(start..=end).into_iter()
    }

    pub fn push(&mut self, e: &[u8], front: bool) {
        self.bytes += cost(e);
        if front { self.items.push_front(elem(e)) } else { self.items.push_back(elem(e)) }
    }

    pub fn pop(&mut self, front: bool) -> Option<Elem> {
        let e = if front { self.items.pop_front() } else { self.items.pop_back() }?;
        self.bytes -= cost(&e);
        Some(e)
    }

    pub fn get(&self, i: usize) -> Option<&Elem> {
        self.items.get(i)
    }

    pub fn set(&mut self, i: usize, e: &[u8]) {
        self.bytes = self.bytes - cost(&self.items[i]) + cost(e);
        self.items.set(i, elem(e));
    }

    pub fn insert(&mut self, i: usize, e: &[u8]) {
        self.bytes += cost(e);
        self.items.insert(i, elem(e));
    }

    pub fn remove(&mut self, i: usize) -> Option<Elem> {
        let e = (i < self.items.len()).then(|| self.items.remove(i))?;
        self.bytes -= cost(&e);
        Some(e)
    }

    /// Keeps only `start..=end` (already clamped, `start <= end < len`), or nothing.
    pub fn retain_range(&mut self, range: Option<(usize, usize)>) {
        match range {
            None => {
                self.items.clear();
                self.bytes = 0;
            }
            Some((start, end)) => {
                self.items.truncate(end + 1);
                drop(self.items.slice(..start));
                self.bytes = self.items.iter().map(|e| cost(e)).sum();
            }
        }
    }
}

/// A hash: field to value, in insertion order while small (like a listpack).
#[derive(Debug, Clone, Default)]
pub struct HashValue {
    map: Parts<Elem>,
    bytes: usize,
    big: bool,
}

impl HashValue {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, f: &[u8]) -> Option<&Elem> {
        self.map.get(f)
    }

    /// What the fields and values cost (see [`Value::mem`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True once the hash outgrew the compact (listpack) encoding.
    pub fn is_big(&self) -> bool {
        self.big
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Elem, &Elem)> {
        self.map.iter()
    }

    pub fn get_index(&self, i: usize) -> Option<(&Elem, &Elem)> {
        self.map.get_index(i)
    }

    /// One HSCAN step (see [`Parts::scan`]).
    pub fn scan(&self, cursor: u64, count: usize, emit: impl FnMut(&Elem, &Elem)) -> u64 {
        self.map.scan(cursor, count, emit)
    }

    /// Sets a field; true if it is new.
    pub fn insert(&mut self, f: &[u8], v: &[u8]) -> bool {
        if f.len() > LISTPACK_MAX_VALUE || v.len() > LISTPACK_MAX_VALUE {
            self.big = true;
        }
        let added = match self.map.get_mut(f) {
            Some(old) => {
                self.bytes = self.bytes - old.len() + v.len();
                *old = elem(v);
                false
            }
            None => {
                self.bytes += cost(f) + cost(v);
                self.map.insert_new(elem(f), elem(v));
                true
            }
        };
        if self.map.len() > HASH_LISTPACK_MAX_ENTRIES {
            self.big = true;
        }
        added
    }

    pub fn remove(&mut self, f: &[u8]) -> bool {
        // Small hashes keep their order, as a listpack does.
        let removed = if self.big { self.map.swap_remove(f) } else { self.map.shift_remove(f) };
        match removed {
            Some(v) => {
                self.bytes -= cost(f) + cost(&v);
                true
            }
            None => false,
        }
    }
}

/// A set: integers-only small sets report `intset` and list in numeric order.
#[derive(Debug, Clone)]
pub struct SetValue {
    set: Parts<()>,
    bytes: usize,
    intset: bool,
}

impl Default for SetValue {
    fn default() -> Self {
        SetValue { set: Parts::default(), bytes: 0, intset: true }
    }
}

impl SetValue {
    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.set.contains(m)
    }

    pub fn get_index(&self, i: usize) -> Option<&Elem> {
        self.set.get_index(i).map(|(m, _)| m)
    }

    /// One SSCAN step (see [`Parts::scan`]).
    pub fn scan(&self, cursor: u64, count: usize, mut emit: impl FnMut(&Elem)) -> u64 {
        self.set.scan(cursor, count, |m, _| emit(m))
    }

    /// What the members cost (see [`Value::mem`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_intset(&self) -> bool {
        self.intset
    }

    /// Members in the order SMEMBERS gives them: numeric for an intset.
    pub fn members(&self) -> Vec<&Elem> {
        let mut v: Vec<&Elem> = self.set.iter().map(|(m, _)| m).collect();
        if self.intset {
            v.sort_by_key(|m| parse_i64(m).unwrap_or(0));
        }
        v
    }

    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.set.contains(m) {
            return false;
        }
        if self.intset && (parse_i64(m).is_none() || self.set.len() >= INTSET_MAX_ENTRIES) {
            self.intset = false;
        }
        self.bytes += cost(m);
        self.set.insert_new(elem(m), ());
        true
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        if self.set.swap_remove(m).is_some() {
            self.bytes -= cost(m);
            true
        } else {
            false
        }
    }

    pub fn remove_index(&mut self, i: usize) -> Option<Elem> {
        let (m, _) = self.set.swap_remove_index(i)?;
        self.bytes -= cost(&m);
        Some(m)
    }
}
