//! Streams: entries ordered by ID in nodes that are Redis listpacks (the
//! same layout, the same rules for when a node is full, so sizes, trimming
//! with `~` and DUMP payloads come out as Redis's), plus consumer groups.
//!
//! A node's listpack: a master entry (live count, deleted count, the
//! field names of the node's first entry, a 0), then each entry as flags,
//! ms and seq offsets from the node's master ID, the fields (only values
//! when they are the master's names: SAMEFIELDS) and the count of the
//! entry's elements. A deleted entry keeps its place with the DELETED flag.
//!
//! Nodes live in a persistent ordered map by master ID and are shared
//! between clones (`Arc`): a snapshot's copy costs a reference count, and a
//! writer copies only the node it changes. Appends touch the last node
//! (O(1) amortised), a range starts with one O(log n) seek, and trimming
//! drops whole nodes from the front.

use std::fmt;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use smallvec::SmallVec;

use super::listpack::{self, Item};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// What Redis allows one entry's fields and values to take, in total.
pub const MAX_ENTRY_BYTES: usize = (1 << 30) - 1024;
/// Bookkeeping per node (map slot, `Arc`), per group, consumer and pending entry.
const NODE_OVERHEAD: usize = 48;
const GROUP_OVERHEAD: usize = 96;
const CONSUMER_OVERHEAD: usize = 64;
const PENDING_OVERHEAD: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn text(self) -> IdText {
        let mut t = IdText { buf: [0; 41], len: 0 };
        let mut put = |b: &[u8]| {
            t.buf[t.len..t.len + b.len()].copy_from_slice(b);
            t.len += b.len();
        };
        put(itoa::Buffer::new().format(self.ms).as_bytes());
        put(b"-");
        put(itoa::Buffer::new().format(self.seq).as_bytes());
        t
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// C's `strtoull` after Redis's `string2ll` (what `string2ull` accepts):
/// leading spaces and a sign allowed, a negative number wraps.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if let Some(n) = crate::protocol::parse::parse_i64(s) {
        return (n >= 0).then_some(n as u64);
    }
    let s = std::str::from_utf8(s).ok()?.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID, or None past the last possible one.
    pub fn incr(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    pub fn decr(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// Parses `ms-seq`, `ms` (the seq is `missing_seq`), `-` and `+`
    /// (refused when `strict`), and with `allow_auto` `ms-*`; returns the
    /// ID and whether its seq was given.
    pub fn parse(a: &[u8], missing_seq: u64, strict: bool, allow_auto: bool) -> Option<(StreamId, bool)> {
        if a.len() > 127 {
            return None;
        }
        match a {
            b"-" | b"+" if strict => None,
            b"-" => Some((StreamId::MIN, true)),
            b"+" => Some((StreamId::MAX, true)),
            _ => {
                let Some(dash) = a.iter().position(|&b| b == b'-') else {
                    return Some((StreamId::new(parse_u64(a)?, missing_seq), true));
                };
                let ms = parse_u64(&a[..dash])?;
                match &a[dash + 1..] {
                    b"*" if allow_auto => Some((StreamId::new(ms, 0), false)),
                    seq => Some((StreamId::new(ms, parse_u64(seq)?), true)),
                }
            }
        }
    }
}

/// One entry, decoded: its ID and fields with values.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The fields and values of an entry as they lie in its node (no copy).
pub type FieldRefs<'a> = SmallVec<[(Item<'a>, Item<'a>); 4]>;

/// One entry as it lies in its node: what a reply is written from without
/// copying the entry out first.
#[derive(Debug)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    pub fields: FieldRefs<'a>,
}

impl EntryRef<'_> {
    pub fn to_owned(&self) -> StreamEntry {
        StreamEntry { id: self.id, fields: self.fields.iter().map(|(f, v)| (f.to_bytes(), v.to_bytes())).collect() }
    }
}

/// An ID's text (`ms-seq`) without allocating.
pub struct IdText {
    buf: [u8; 41],
    len: usize,
}

impl IdText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// An entry pending acknowledgement in a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub consumer: Arc<[u8]>,
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consumer {
    pub seen_time: u64,
    pub pending: OrdSet<StreamId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    /// `None` when unknown (Redis's -1).
    pub entries_read: Option<u64>,
    pub pel: OrdMap<StreamId, Pending>,
    pub consumers: OrdMap<Arc<[u8]>, Consumer>,
}

#[derive(Debug, Clone, Default)]
pub struct StreamValue {
    nodes: OrdMap<StreamId, Arc<Vec<u8>>>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    groups: OrdMap<Arc<[u8]>, Group>,
    /// Bytes of nodes and groups, kept as they change (see `Value::mem`).
    bytes: usize,
}

/// A node's entries as offsets: where each entry's flags are, its ID, and
/// its flags.
struct Located {
    flags_at: usize,
    id: StreamId,
    flags: i64,
}

/// Reads a node: its master ID's entries with their fields.
struct Node<'a> {
    master: StreamId,
    items: Vec<(usize, Item<'a>)>,
    master_fields: usize,
}

impl<'a> Node<'a> {
    fn read(master: StreamId, lp: &'a [u8]) -> Node<'a> {
        let items: Vec<(usize, Item<'a>)> = listpack::Iter::new(lp).positions().collect();
        let master_fields = items.get(2).and_then(|(_, i)| i.as_int()).unwrap_or(0) as usize;
        Node { master, items, master_fields }
    }

    fn int(&self, i: usize) -> i64 {
        self.items.get(i).and_then(|(_, x)| x.as_int()).unwrap_or(0)
    }

    fn live(&self) -> i64 {
        self.int(0)
    }

    fn deleted(&self) -> i64 {
        self.int(1)
    }

    /// Index of the first entry's flags.
    fn first_entry(&self) -> usize {
        3 + self.master_fields + 1
    }

    /// Every entry (deleted ones too), in order, with the index of its flags.
    fn entries(&self) -> Vec<(usize, Located)> {
        let mut out = Vec::new();
        let mut i = self.first_entry();
        while i + 2 < self.items.len() {
            let flags = self.int(i);
            let id =
                StreamId::new(self.master.ms.wrapping_add(self.int(i + 1) as u64), self.master.seq.wrapping_add(self.int(i + 2) as u64));
            out.push((i, Located { flags_at: self.items[i].0, id, flags }));
            let fields = if flags & FLAG_SAMEFIELDS != 0 { self.master_fields } else { 2 * self.int(i + 3) as usize + 1 };
            i += 3 + fields + 1;
        }
        out
    }

    /// The fields and values of the entry whose flags are at index `i`.
    fn fields(&self, i: usize, flags: i64) -> FieldRefs<'a> {
        let item = |j: usize| self.items.get(j).map_or(Item::Str(b""), |(_, x)| *x);
        if flags & FLAG_SAMEFIELDS != 0 {
            (0..self.master_fields).map(|k| (item(3 + k), item(i + 3 + k))).collect()
        } else {
            let n = self.int(i + 3) as usize;
            (0..n).map(|k| (item(i + 4 + 2 * k), item(i + 5 + 2 * k))).collect()
        }
    }
}

/// Walks a node's entries front to back without decoding the whole node.
struct Forward<'a> {
    it: listpack::Iter<'a>,
    master: StreamId,
    names: SmallVec<[Item<'a>; 8]>,
}

impl<'a> Forward<'a> {
    fn new(master: StreamId, lp: &'a [u8]) -> Forward<'a> {
        let mut it = listpack::Iter::new(lp);
        it.next();
        it.next();
        let n = it.next().and_then(Item::as_int).unwrap_or(0).max(0) as usize;
        let names = (0..n).map_while(|_| it.next()).collect();
        it.next();
        Forward { it, master, names }
    }

    fn int(&mut self) -> Option<i64> {
        self.it.next().and_then(Item::as_int)
    }

    /// The next entry's ID and flags (its fields are read or skipped next).
    fn head(&mut self) -> Option<(StreamId, i64)> {
        let (flags, ms, seq) = (self.int()?, self.int()?, self.int()?);
        Some((StreamId::new(self.master.ms.wrapping_add(ms as u64), self.master.seq.wrapping_add(seq as u64)), flags))
    }

    fn skip(&mut self, flags: i64) {
        let n = if flags & FLAG_SAMEFIELDS != 0 { self.names.len() } else { 2 * self.int().unwrap_or(0).max(0) as usize };
        for _ in 0..=n {
            self.it.next();
        }
    }

    fn fields(&mut self, flags: i64) -> FieldRefs<'a> {
        let mut out = FieldRefs::new();
        let text = |x: Option<Item<'a>>| x.unwrap_or(Item::Str(b""));
        if flags & FLAG_SAMEFIELDS != 0 {
            for k in 0..self.names.len() {
                out.push((self.names[k], text(self.it.next())));
            }
        } else {
            for _ in 0..self.int().unwrap_or(0).max(0) {
                let f = text(self.it.next());
                out.push((f, text(self.it.next())));
            }
        }
        self.it.next();
        out
    }
}

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

impl StreamValue {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Node count (XINFO's radix-tree-keys).
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The node listpacks with their master IDs (DUMP, snapshots).
    pub fn raw_nodes(&self) -> impl Iterator<Item = (&StreamId, &Arc<Vec<u8>>)> {
        self.nodes.iter()
    }

    /// Adds a node as read from a snapshot or a payload (checked by the caller).
    pub fn push_raw_node(&mut self, master: StreamId, lp: Vec<u8>) {
        self.bytes += lp.len() + NODE_OVERHEAD;
        self.nodes.insert(master, Arc::new(lp));
    }

    /// Appends an entry as XADD does: `id` is the ID given (with whether its
    /// seq was), or None for `*`. Errors: `Err(true)` for an ID not above
    /// the last one, `Err(false)` for entries too large.
    pub fn append(
        &mut self,
        id: Option<(StreamId, bool)>,
        now_ms: u64,
        fields: &[(&[u8], &[u8])],
        node_bytes: usize,
        node_entries: usize,
    ) -> Result<StreamId, bool> {
        let id = match id {
            Some((id, true)) => id,
            Some((id, false)) if id.ms == self.last_id.ms => self.last_id.incr().filter(|n| n.ms == id.ms).ok_or(true)?,
            Some((id, false)) => id,
            None if now_ms > self.last_id.ms => StreamId::new(now_ms, 0),
            None => self.last_id.incr().ok_or(true)?,
        };
        if id <= self.last_id {
            return Err(true);
        }
        let total: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        if total > MAX_ENTRY_BYTES {
            return Err(false);
        }
        let max_bytes = if node_bytes == 0 || node_bytes > MAX_ENTRY_BYTES { MAX_ENTRY_BYTES } else { node_bytes };
        let tail = self.nodes.get_max().map(|(k, lp)| {
            let (live, deleted) = counts(lp);
            (*k, lp.len(), live + deleted)
        });
        let reuse = tail.filter(|&(_, size, count)| size + total < max_bytes && (node_entries == 0 || (count as usize) < node_entries));
        match reuse {
            Some((master, ..)) => self.append_to(master, id, fields),
            None => self.new_node(id, fields),
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    fn new_node(&mut self, id: StreamId, fields: &[(&[u8], &[u8])]) {
        let mut lp = listpack::new();
        listpack::append_int(&mut lp, 1);
        listpack::append_int(&mut lp, 0);
        listpack::append_int(&mut lp, fields.len() as i64);
        for (f, _) in fields {
            listpack::append_str(&mut lp, f);
        }
        listpack::append_int(&mut lp, 0);
        write_entry(&mut lp, id, id, FLAG_SAMEFIELDS, fields);
        self.push_raw_node(id, lp);
    }

    fn append_to(&mut self, master: StreamId, id: StreamId, fields: &[(&[u8], &[u8])]) {
        let lp = Arc::make_mut(self.nodes.get_mut(&master).expect("the tail node"));
        let before = lp.len();
        // Only the master entry is read: the live count, and the field
        // names an entry may share (SAMEFIELDS).
        let mut head = listpack::Iter::new(lp);
        let live = head.next().and_then(Item::as_int).unwrap_or(0);
        let master_fields = head.nth(1).and_then(Item::as_int).unwrap_or(0) as usize;
        let same = master_fields == fields.len() && fields.iter().all(|(f, _)| head.next().is_some_and(|m| m.eq_bytes(f)));
        listpack::replace_int(lp, listpack::HEADER, live + 1);
        write_entry(lp, master, id, if same { FLAG_SAMEFIELDS } else { 0 }, fields);
        self.bytes = self.bytes + lp.len() - before;
    }

    /// Calls `f` with each live entry from `start` to `end` (both
    /// inclusive), ascending or (`rev`) descending, until it returns false.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, mut f: impl FnMut(StreamEntry) -> bool) {
        self.range_refs(start, end, rev, |e| f(e.to_owned()))
    }

    /// `range` with each entry as it lies in its node.
    pub fn range_refs<'s>(&'s self, start: StreamId, end: StreamId, rev: bool, mut f: impl FnMut(EntryRef<'s>) -> bool) {
        if start > end {
            return;
        }
        // The node holding `start` begins at or before it.
        let first = self.nodes.range(..=start).next_back().map_or(start, |(k, _)| *k);
        let nodes: Box<dyn Iterator<Item = (&StreamId, &Arc<Vec<u8>>)>> =
            if rev { Box::new(self.nodes.range(first..=end).rev()) } else { Box::new(self.nodes.range(first..=end)) };
        for (master, lp) in nodes {
            let more = if rev {
                Self::node_backward(*master, lp, start, end, &mut f)
            } else {
                Self::node_forward(*master, lp, start, end, &mut f)
            };
            if !more {
                return;
            }
        }
    }

    /// One node's entries in `start..=end`, front to back, read lazily: a
    /// short range (XRANGE ... COUNT 10, XREAD) stops without decoding the
    /// rest of the node. False when `f` or the range is done.
    fn node_forward<'s>(master: StreamId, lp: &'s [u8], start: StreamId, end: StreamId, f: &mut impl FnMut(EntryRef<'s>) -> bool) -> bool {
        let mut walk = Forward::new(master, lp);
        while let Some((id, flags)) = walk.head() {
            if id > end {
                return false;
            }
            if flags & FLAG_DELETED != 0 || id < start {
                walk.skip(flags);
                continue;
            }
            let fields = walk.fields(flags);
            if !f(EntryRef { id, fields }) {
                return false;
            }
        }
        true
    }

    fn node_backward<'s>(master: StreamId, lp: &'s [u8], start: StreamId, end: StreamId, f: &mut impl FnMut(EntryRef<'s>) -> bool) -> bool {
        let node = Node::read(master, lp);
        for (i, e) in node.entries().iter().rev() {
            if e.id < start {
                return false;
            }
            if e.flags & FLAG_DELETED != 0 || e.id > end {
                continue;
            }
            if !f(EntryRef { id: e.id, fields: node.fields(*i, e.flags) }) {
                return false;
            }
        }
        true
    }

    /// The entry with this ID, if it is there.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry> {
        let mut found = None;
        self.range(id, id, false, |e| {
            found = Some(e);
            false
        });
        found
    }

    /// The first (or last) live entry's ID.
    pub fn edge(&self, last: bool) -> Option<StreamId> {
        let mut found = None;
        self.range(StreamId::MIN, StreamId::MAX, last, |e| {
            found = Some(e.id);
            false
        });
        found
    }

    /// The last live entry's ID, or 0-0 (Redis's streamLastValidID).
    pub fn last_valid_id(&self) -> StreamId {
        if self.length == 0 { StreamId::MIN } else { self.edge(true).unwrap_or(StreamId::MIN) }
    }

    /// Marks one entry deleted (XDEL); false if it was not there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some(master) = self.nodes.range(..=id).next_back().map(|(k, _)| *k) else { return false };
        let lp = Arc::make_mut(self.nodes.get_mut(&master).expect("found"));
        let before = lp.len();
        let (flags_at, flags, live, deleted) = {
            let node = Node::read(master, lp);
            let Some((_, e)) = node.entries().into_iter().find(|(_, e)| e.id == id && e.flags & FLAG_DELETED == 0) else {
                return false;
            };
            (e.flags_at, e.flags, node.live(), node.deleted())
        };
        listpack::replace_int(lp, flags_at, flags | FLAG_DELETED);
        set_counts(lp, live - 1, deleted + 1);
        let after = lp.len();
        if live == 1 {
            self.nodes.remove(&master);
            self.bytes -= before + NODE_OVERHEAD;
        } else {
            self.bytes = self.bytes + after - before;
        }
        self.length -= 1;
        true
    }

    /// XDEL's bookkeeping after deleting `ids` (those that were there).
    pub fn after_delete(&mut self, deleted: &[StreamId]) {
        for &id in deleted {
            self.max_deleted_id = self.max_deleted_id.max(id);
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted.contains(&self.first_id) {
            self.first_id = self.edge(false).unwrap_or(StreamId::MIN);
        }
    }

    /// Trims as Redis's streamTrim: whole nodes from the front while they
    /// are entirely past the limit; then, unless `approx`, entries of the
    /// next node one by one. `limit` caps the entries removed (0: no cap).
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some((master, lp)) = self.nodes.get_min().map(|(k, v)| (*k, v.clone())) {
            if let Trim::MaxLen(max) = how
                && self.length <= max
            {
                break;
            }
            let node = Node::read(master, &lp);
            let live = node.live() as u64;
            if limit > 0 && deleted + live > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(max) => self.length - live >= max,
                Trim::MinId(min) => node.entries().last().is_some_and(|(_, e)| e.id < min),
            };
            if whole {
                self.nodes.remove(&master);
                self.bytes -= lp.len() + NODE_OVERHEAD;
                self.length -= live;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            deleted += self.trim_within(master, how);
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge(false).unwrap_or(StreamId::MIN);
        }
        deleted
    }

    /// Marks the first entries of one node deleted while the limit wants.
    fn trim_within(&mut self, master: StreamId, how: Trim) -> u64 {
        let lp = Arc::make_mut(self.nodes.get_mut(&master).expect("found"));
        let before = lp.len();
        let node = Node::read(master, lp);
        let (live, deleted) = (node.live(), node.deleted());
        let mut marks = Vec::new();
        let mut length = self.length;
        for (_, e) in node.entries() {
            let stop = match how {
                Trim::MaxLen(max) => length <= max,
                Trim::MinId(min) => e.id >= min,
            };
            if stop {
                break;
            }
            if e.flags & FLAG_DELETED == 0 {
                marks.push((e.flags_at, e.flags));
                length -= 1;
            }
        }
        // From the back, so earlier offsets stay valid (a flag keeps its size).
        for &(at, flags) in marks.iter().rev() {
            listpack::replace_int(lp, at, flags | FLAG_DELETED);
        }
        let n = marks.len() as i64;
        set_counts(lp, live - n, deleted + n);
        self.bytes = self.bytes + lp.len() - before;
        self.length -= n as u64;
        n as u64
    }

    /// Whether entries between `start` and `end` may have been deleted
    /// (Redis's streamRangeHasTombstones).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() || self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries were ever added up to `id`, when that can be known
    /// (Redis's streamEstimateDistanceFromFirstEverEntry).
    pub fn entries_before(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.length == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            _ => {}
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.length),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.length + 1),
                _ => {}
            }
        }
        None
    }

    /// A group's lag, when it can be known (negative after an XGROUP
    /// SETID ... ENTRIESREAD past the entries added, as in Redis).
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match g.entries_read.filter(|_| !self.range_has_tombstones(g.last_id, StreamId::MAX)) {
            Some(read) => read,
            None => self.entries_before(g.last_id)?,
        };
        // Counters come from XSETID and restores: no overflow, whatever they hold.
        Some((self.entries_added as i128 - read as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    // Consumer groups. Every change goes through these methods, which keep
    // `bytes` exact.

    pub fn groups(&self) -> impl Iterator<Item = (&Arc<[u8]>, &Group)> {
        self.groups.iter()
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Creates a group; false if it exists.
    pub fn create_group(&mut self, name: &[u8], last_id: StreamId, entries_read: Option<u64>) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        self.bytes += name.len() + GROUP_OVERHEAD;
        self.groups.insert(name.into(), Group { last_id, entries_read, pel: OrdMap::new(), consumers: OrdMap::new() });
        true
    }

    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        let Some(g) = self.groups.remove(name) else { return false };
        self.bytes -= name.len() + GROUP_OVERHEAD + group_bytes(&g);
        true
    }

    /// Changes a group with `f`, keeping the accounting.
    pub fn with_group<R>(&mut self, name: &[u8], f: impl FnOnce(&mut Group) -> R) -> Option<R> {
        let g = self.groups.get_mut(name)?;
        let before = group_bytes(g);
        let r = f(g);
        let after = group_bytes(g);
        self.bytes = self.bytes + after - before;
        Some(r)
    }

    /// Everything a stream holds, for the snapshot and DUMP.
    pub fn set_groups(&mut self, groups: Vec<(Vec<u8>, Group)>) {
        for (name, g) in groups {
            self.bytes += name.len() + GROUP_OVERHEAD + group_bytes(&g);
            self.groups.insert(name.into(), g);
        }
    }
}

/// A group's consumers and pending entries, in bytes. O(consumers): the
/// pending counts are kept by the maps.
fn group_bytes(g: &Group) -> usize {
    let consumers: usize = g.consumers.iter().map(|(n, c)| n.len() + CONSUMER_OVERHEAD + 16 * c.pending.len()).sum();
    consumers + g.pel.len() * PENDING_OVERHEAD
}

/// A node's live and deleted counts (its first two elements).
fn counts(lp: &[u8]) -> (i64, i64) {
    let mut it = listpack::Iter::new(lp);
    let live = it.next().and_then(Item::as_int).unwrap_or(0);
    (live, it.next().and_then(Item::as_int).unwrap_or(0))
}

/// Rewrites a node's live and deleted counts (its first two elements).
fn set_counts(lp: &mut Vec<u8>, live: i64, deleted: i64) {
    let live_at = listpack::HEADER;
    let deleted_at = listpack::replace_int(lp, live_at, live);
    listpack::replace_int(lp, deleted_at, deleted);
}

fn write_entry(lp: &mut Vec<u8>, master: StreamId, id: StreamId, flags: i64, fields: &[(&[u8], &[u8])]) {
    listpack::append_int(lp, flags);
    listpack::append_int(lp, id.ms.wrapping_sub(master.ms) as i64);
    listpack::append_int(lp, id.seq.wrapping_sub(master.seq) as i64);
    let same = flags & FLAG_SAMEFIELDS != 0;
    if !same {
        listpack::append_int(lp, fields.len() as i64);
    }
    for (f, v) in fields {
        if !same {
            listpack::append_str(lp, f);
        }
        listpack::append_str(lp, v);
    }
    let count = fields.len() + 3 + if same { 0 } else { fields.len() + 1 };
    listpack::append_int(lp, count as i64);
}

impl Group {
    /// Records `id` as delivered to `consumer` now (XREADGROUP's PEL entry),
    /// taking it from another consumer if it was pending there.
    pub fn deliver(&mut self, id: StreamId, consumer: &Arc<[u8]>, now_ms: u64) {
        if let Some(old) = self.pel.get(&id).map(|p| p.consumer.clone())
            && let Some(c) = self.consumers.get_mut(&old)
        {
            c.pending.remove(&id);
        }
        self.pel.insert(id, Pending { consumer: consumer.clone(), delivery_time: now_ms, delivery_count: 1 });
        self.consumer_mut(consumer, now_ms).pending.insert(id);
    }

    /// The consumer, created if missing (its seen time is not refreshed).
    pub fn consumer_mut(&mut self, name: &Arc<[u8]>, now_ms: u64) -> &mut Consumer {
        self.consumers.entry(name.clone()).or_insert_with(|| Consumer { seen_time: now_ms, pending: OrdSet::new() })
    }

    /// Removes a pending entry (XACK, or an entry that no longer exists).
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else { return false };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pending.remove(&id);
        }
        true
    }

    /// Moves a pending entry to `consumer` (XCLAIM).
    pub fn claim(&mut self, id: StreamId, consumer: &Arc<[u8]>, now_ms: u64) -> &mut Pending {
        let old = self.pel.get(&id).map(|p| p.consumer.clone());
        if let Some(old) = old.filter(|o| o != consumer)
            && let Some(c) = self.consumers.get_mut(&old)
        {
            c.pending.remove(&id);
        }
        self.consumer_mut(consumer, now_ms).pending.insert(id);
        // A new pending entry (XCLAIM ... FORCE) starts as delivered once, as in Redis.
        let p = self.pel.entry(id).or_insert_with(|| Pending { consumer: consumer.clone(), delivery_time: now_ms, delivery_count: 1 });
        p.consumer = consumer.clone();
        p
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in c.pending.iter() {
            self.pel.remove(id);
        }
        Some(c.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(s: &mut StreamValue, ms: u64, f: &[u8], v: &[u8]) -> StreamId {
        s.append(Some((StreamId::new(ms, 0), false)), 0, &[(f, v)], 4096, 100).unwrap()
    }

    fn ids(s: &StreamValue, rev: bool) -> Vec<StreamId> {
        let mut out = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, rev, |e| {
            out.push(e.id);
            true
        });
        out
    }

    #[test]
    fn entries_fill_nodes_of_a_hundred_and_read_back_in_both_directions() {
        let mut s = StreamValue::default();
        for i in 1..=250 {
            add(&mut s, i, b"f", format!("v{i}").as_bytes());
        }
        assert_eq!((s.len(), s.nodes()), (250, 3));
        let fwd = ids(&s, false);
        assert_eq!(fwd.len(), 250);
        assert!(fwd.windows(2).all(|w| w[0] < w[1]));
        let mut rev = ids(&s, true);
        rev.reverse();
        assert_eq!(fwd, rev);
        assert_eq!(s.get(StreamId::new(120, 0)).unwrap().fields, [(b"f".to_vec(), b"v120".to_vec())]);
        let mut part = Vec::new();
        s.range(StreamId::new(99, 0), StreamId::new(101, 0), false, |e| {
            part.push(e.id.ms);
            true
        });
        assert_eq!(part, [99, 100, 101]);
    }

    #[test]
    fn deletes_and_trims_keep_counts_and_bytes() {
        let mut s = StreamValue::default();
        for i in 1..=250 {
            add(&mut s, i, b"f", b"v");
        }
        let total = s.bytes();
        assert!(s.delete(StreamId::new(5, 0)));
        assert!(!s.delete(StreamId::new(5, 0)));
        assert_eq!(s.len(), 249);
        assert_eq!(s.trim(Trim::MaxLen(200), true, 0), 0, "~ removes whole nodes only");
        assert_eq!(s.trim(Trim::MaxLen(150), true, 0), 99);
        assert_eq!((s.len(), s.nodes()), (150, 2));
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(ids(&s, false)[0], StreamId::new(131, 0));
        assert_eq!(s.trim(Trim::MinId(StreamId::new(240, 0)), false, 0), 109);
        assert_eq!(ids(&s, false).len(), 11);
        assert!(s.bytes() < total);
        // Bytes counted incrementally equal bytes counted from scratch.
        let recount: usize = s.raw_nodes().map(|(_, lp)| lp.len() + NODE_OVERHEAD).sum();
        assert_eq!(s.bytes(), recount);
    }

    #[test]
    fn ids_parse_like_redis() {
        let p = |s: &str| StreamId::parse(s.as_bytes(), 0, false, true).map(|(id, given)| (id.to_string(), given));
        assert_eq!(p("5"), Some(("5-0".into(), true)));
        assert_eq!(p("5-3"), Some(("5-3".into(), true)));
        assert_eq!(p("5-*"), Some(("5-0".into(), false)));
        assert_eq!(p("-"), Some(("0-0".into(), true)));
        assert_eq!(p("+"), Some(("18446744073709551615-18446744073709551615".into(), true)));
        assert_eq!(p("18446744073709551615-0"), Some(("18446744073709551615-0".into(), true)));
        assert_eq!(p("-1"), None);
        assert_eq!(p("a-1"), None);
        assert_eq!(p("1-a"), None);
        assert_eq!(StreamId::parse(b"-", 0, true, false), None);
    }
}

/// The durable form of a stream (snapshots): metadata, the node listpacks
/// as they are, then the groups with their pending entries and consumers.
pub mod durable {
    use std::sync::Arc;

    use ferrite_policy_abi::{DecodeError, Reader, Writer};
    use imbl::{OrdMap, OrdSet};

    use super::{Consumer, Group, Pending, StreamId, StreamValue, listpack};

    fn id(w: &mut Writer, id: StreamId) {
        w.u64(id.ms).u64(id.seq);
    }

    fn read_id(r: &mut Reader) -> Result<StreamId, DecodeError> {
        Ok(StreamId::new(r.u64()?, r.u64()?))
    }

    pub fn encode(s: &StreamValue, w: &mut Writer) {
        w.u64(s.length).u64(s.entries_added);
        for x in [s.last_id, s.first_id, s.max_deleted_id] {
            id(w, x);
        }
        w.u32(s.nodes.len() as u32);
        for (master, lp) in s.nodes.iter() {
            id(w, *master);
            w.bytes(lp);
        }
        w.u32(s.groups.len() as u32);
        for (name, g) in s.groups.iter() {
            w.bytes(name);
            id(w, g.last_id);
            w.u64(g.entries_read.unwrap_or(u64::MAX));
            w.u32(g.pel.len() as u32);
            for (pid, p) in g.pel.iter() {
                id(w, *pid);
                w.bytes(&p.consumer).u64(p.delivery_time).u64(p.delivery_count);
            }
            w.u32(g.consumers.len() as u32);
            for (cname, c) in g.consumers.iter() {
                w.bytes(cname).u64(c.seen_time).u32(c.pending.len() as u32);
                c.pending.iter().for_each(|x| id(w, *x));
            }
        }
    }

    pub fn decode(r: &mut Reader) -> Result<StreamValue, DecodeError> {
        let mut s = StreamValue { length: r.u64()?, entries_added: r.u64()?, ..Default::default() };
        (s.last_id, s.first_id, s.max_deleted_id) = (read_id(r)?, read_id(r)?, read_id(r)?);
        for _ in 0..r.count(20)? {
            let master = read_id(r)?;
            let lp = r.bytes()?;
            if !listpack::validate(lp) {
                return Err(DecodeError::Truncated);
            }
            s.push_raw_node(master, lp.to_vec());
        }
        let mut groups = Vec::new();
        for _ in 0..r.count(36)? {
            let name = r.bytes()?.to_vec();
            let last_id = read_id(r)?;
            let entries_read = Some(r.u64()?).filter(|&n| n != u64::MAX);
            let mut pel = OrdMap::new();
            for _ in 0..r.count(36)? {
                let pid = read_id(r)?;
                let consumer: Arc<[u8]> = r.bytes()?.into();
                pel.insert(pid, Pending { consumer, delivery_time: r.u64()?, delivery_count: r.u64()? });
            }
            let mut consumers = OrdMap::new();
            for _ in 0..r.count(16)? {
                let cname: Arc<[u8]> = r.bytes()?.into();
                let seen_time = r.u64()?;
                let mut pending = OrdSet::new();
                for _ in 0..r.count(16)? {
                    pending.insert(read_id(r)?);
                }
                consumers.insert(cname, Consumer { seen_time, pending });
            }
            groups.push((name, Group { last_id, entries_read, pel, consumers }));
        }
        s.set_groups(groups);
        Ok(s)
    }
}
