//! Streams in a payload: the node listpacks by master ID, the metadata,
//! then the consumer groups with their pending entries and consumers.
//!
//! Our stream code reads node listpacks by position, so a node is only
//! stored once its layout is proven: the master entry, then every entry's
//! flags, ID offsets, fields and element count, the live and deleted counts
//! right, IDs strictly ascending across nodes and never past the last ID.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::{OrdMap, OrdSet};

use super::DumpError;
use super::rdb::{Reader, Writer, id_from_bytes};
use crate::store::listpack::{self, Item};
use crate::store::stream::{Consumer, Group, Pending, StreamId, StreamValue};

type Result<T> = std::result::Result<T, DumpError>;

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;
/// Accounting estimates while groups are read (the stream counts them
/// exactly once they are set).
const GROUP_COST: usize = 96;
const PENDING_COST: usize = 96;
const CONSUMER_COST: usize = 64;

/// What a node holds, once checked.
struct NodeSummary {
    live: u64,
    last: StreamId,
}

/// Reads integers off a node's listpack.
struct Items<'a>(listpack::Iter<'a>);

impl Items<'_> {
    fn int(&mut self) -> Result<i64> {
        self.0.next().and_then(Item::as_int).ok_or(DumpError::BadData)
    }

    fn count(&mut self) -> Result<usize> {
        usize::try_from(self.int()?).map_err(|_| DumpError::BadData)
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            self.0.next().ok_or(DumpError::BadData)?;
        }
        Ok(())
    }
}

/// Checks a node's layout (after its listpack was validated); `after` is
/// the last ID of the previous node, which every entry must follow.
fn check_node(master: StreamId, lp: &[u8], after: Option<StreamId>) -> Result<NodeSummary> {
    // A node's master ID is its first entry's: past every earlier entry.
    if after.is_some_and(|a| master <= a) {
        return Err(DumpError::BadData);
    }
    let mut it = Items(listpack::Iter::new(lp));
    let (live, deleted, fields) = (it.count()?, it.count()?, it.count()?);
    it.skip(fields)?;
    if it.int()? != 0 {
        return Err(DumpError::BadData);
    }
    let (mut seen_live, mut seen, mut prev) = (0usize, 0usize, None::<StreamId>);
    while let Some(flags) = it.0.next() {
        let flags = flags.as_int().filter(|f| (0..=3).contains(f)).ok_or(DumpError::BadData)?;
        let id = StreamId::new(master.ms.wrapping_add(it.int()? as u64), master.seq.wrapping_add(it.int()? as u64));
        let elements = if flags & FLAG_SAMEFIELDS != 0 {
            it.skip(fields)?;
            fields + 3
        } else {
            let n = it.count()?;
            it.skip(n.checked_mul(2).ok_or(DumpError::BadData)?)?;
            2 * n + 4
        };
        let ordered = prev.map_or(id >= master, |p| id > p);
        if it.count()? != elements || !ordered {
            return Err(DumpError::BadData);
        }
        prev = Some(id);
        seen += 1;
        seen_live += (flags & FLAG_DELETED == 0) as usize;
    }
    if seen == 0 || seen_live != live || seen != live + deleted {
        return Err(DumpError::BadData);
    }
    Ok(NodeSummary { live: live as u64, last: prev.expect("an entry") })
}

/// A stream of type 19 (`v2`) or 15 (5.0 to 6.2: no first, max-deleted
/// and entries-added metadata, no group entries-read).
pub fn read(r: &mut Reader, v2: bool) -> Result<StreamValue> {
    let mut s = StreamValue::default();
    let (mut live, mut last_entry) = (0u64, None);
    for _ in 0..r.count(2)? {
        let key = r.string()?;
        let master = id_from_bytes(key.as_ref().try_into().map_err(|_| DumpError::BadData)?);
        let lp = r.string()?;
        if !listpack::validate(&lp) {
            return Err(DumpError::BadData);
        }
        let node = check_node(master, &lp, last_entry)?;
        live += node.live;
        last_entry = Some(node.last);
        s.push_raw_node(master, lp.into_owned());
        r.held = 128 + s.bytes();
        r.fits(0)?;
    }
    s.length = r.len()?;
    s.last_id = r.len_id()?;
    if v2 {
        s.first_id = r.len_id()?;
        s.max_deleted_id = r.len_id()?;
        s.entries_added = r.len()?;
    } else {
        s.first_id = s.edge(false).unwrap_or(StreamId::MIN);
        s.entries_added = s.length;
    }
    // Appends rely on the last ID, lag on the counts (Redis's are signed
    // 64-bit: past that they are not counts).
    let consistent =
        s.length == live && s.entries_added >= s.length && s.entries_added <= i64::MAX as u64 && last_entry.is_none_or(|e| e <= s.last_id);
    if !consistent {
        return Err(DumpError::BadData);
    }
    let groups = read_groups(r, &s, v2)?;
    s.set_groups(groups);
    r.held = 128 + s.bytes();
    r.fits(0)?;
    Ok(s)
}

fn read_groups(r: &mut Reader, s: &StreamValue, v2: bool) -> Result<Vec<(Vec<u8>, Group)>> {
    let mut groups: BTreeMap<Vec<u8>, Group> = BTreeMap::new();
    for _ in 0..r.count(5)? {
        let name = r.string()?.into_owned();
        let last_id = r.len_id()?;
        let entries_read = if v2 {
            // All ones is Redis's -1, "unknown"; other negatives are corrupt.
            match r.len()? {
                u64::MAX => None,
                n if n <= i64::MAX as u64 => Some(n),
                _ => return Err(DumpError::BadData),
            }
        } else {
            s.entries_before(last_id)
        };
        r.held += name.len() + GROUP_COST;
        let group = read_group(r, last_id, entries_read)?;
        if groups.insert(name, group).is_some() {
            return Err(DumpError::BadData);
        }
    }
    Ok(groups.into_iter().collect())
}

/// One group's pending entries, then its consumers, each of which must own
/// pending entries of the group no other consumer owns; every pending
/// entry must end up with an owner.
fn read_group(r: &mut Reader, last_id: StreamId, entries_read: Option<u64>) -> Result<Group> {
    let mut unowned: OrdMap<StreamId, (u64, u64)> = OrdMap::new();
    for _ in 0..r.count(25)? {
        let id = r.raw_id()?;
        let (time, count) = (r.millis()?, r.len()?);
        if unowned.insert(id, (time, count)).is_some() {
            return Err(DumpError::BadData);
        }
        r.held += PENDING_COST;
        r.fits(0)?;
    }
    let mut pel = OrdMap::new();
    let mut consumers = OrdMap::new();
    for _ in 0..r.count(10)? {
        let name: Arc<[u8]> = r.string()?.as_ref().into();
        let seen_time = r.millis()?;
        let mut pending = OrdSet::new();
        for _ in 0..r.count(16)? {
            let id = r.raw_id()?;
            let (delivery_time, delivery_count) = unowned.remove(&id).ok_or(DumpError::BadData)?;
            pel.insert(id, Pending { consumer: name.clone(), delivery_time, delivery_count });
            pending.insert(id);
        }
        r.held += name.len() + CONSUMER_COST;
        r.fits(0)?;
        if consumers.insert(name, Consumer { seen_time, pending }).is_some() {
            return Err(DumpError::BadData);
        }
    }
    if !unowned.is_empty() {
        return Err(DumpError::BadData);
    }
    Ok(Group { last_id, entries_read, pel, consumers })
}

/// Writes a stream as Redis 7.0 does (type 19).
pub fn write(w: &mut Writer, s: &StreamValue) {
    w.len(s.nodes() as u64);
    for (master, lp) in s.raw_nodes() {
        w.string(&super::rdb::id_bytes(*master));
        w.string(lp);
    }
    w.len(s.length);
    w.len_id(s.last_id);
    w.len_id(s.first_id);
    w.len_id(s.max_deleted_id);
    w.len(s.entries_added);
    w.len(s.group_count() as u64);
    for (name, g) in s.groups() {
        w.string(name);
        w.len_id(g.last_id);
        w.len(g.entries_read.unwrap_or(u64::MAX));
        w.len(g.pel.len() as u64);
        for (id, p) in g.pel.iter() {
            w.raw_id(*id);
            w.millis(p.delivery_time);
            w.len(p.delivery_count);
        }
        w.len(g.consumers.len() as u64);
        for (cname, c) in g.consumers.iter() {
            w.string(cname);
            w.millis(c.seen_time);
            w.len(c.pending.len() as u64);
            for id in c.pending.iter() {
                w.raw_id(*id);
            }
        }
    }
}
