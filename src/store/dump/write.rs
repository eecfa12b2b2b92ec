//! Writing a value as Redis 7.0's DUMP does: the type its encoding maps
//! to, and the same bytes (quicklist nodes split where Redis splits them,
//! listpacks built as Redis builds them, scores as Redis formats them).

use super::rdb::Writer;
use super::read::{
    HASH, HASH_LISTPACK, LIST_QUICKLIST_2, NODE_PACKED, NODE_PLAIN, SET, SET_INTSET, STREAM_LISTPACKS_2, STRING, ZSET_2, ZSET_LISTPACK,
};
use crate::protocol::parse::parse_i64;
use crate::protocol::reply::format_double;
use crate::store::listpack;
use crate::store::value::{HashValue, ListValue, SetValue, Value, ZSetValue};

/// Redis's default list-max-listpack-size (-2): nodes of at most 8 KB.
const NODE_MAX_BYTES: usize = 8192;
/// What Redis assumes an element adds to a node besides its bytes.
const NODE_ENTRY_OVERHEAD: usize = 8;
/// Elements this large get a plain node of their own.
const PLAIN_THRESHOLD: usize = 1 << 30;

/// The type byte and the object.
pub fn object(v: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    match v {
        Value::Str(s, _) => {
            w.u8(STRING);
            w.string(s);
        }
        Value::List(l) => list(&mut w, l),
        Value::Set(s) => set(&mut w, s),
        Value::Hash(h) => hash(&mut w, h),
        Value::ZSet(z) => zset(&mut w, z),
        Value::Stream(s) => {
            w.u8(STREAM_LISTPACKS_2);
            super::stream::write(&mut w, s);
        }
    }
    w.out
}

/// A quicklist of listpack nodes, filled front to back as RPUSH fills them.
fn list(w: &mut Writer, l: &ListValue) {
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    for e in l.iter() {
        if e.len() >= PLAIN_THRESHOLD {
            nodes.push((NODE_PLAIN, e.to_vec()));
            continue;
        }
        match nodes.last_mut() {
            Some((NODE_PACKED, lp)) if lp.len() + e.len() + NODE_ENTRY_OVERHEAD <= NODE_MAX_BYTES => listpack::append_str(lp, e),
            _ => {
                let mut lp = listpack::new();
                listpack::append_str(&mut lp, e);
                nodes.push((NODE_PACKED, lp));
            }
        }
    }
    w.u8(LIST_QUICKLIST_2);
    w.len(nodes.len() as u64);
    for (container, data) in &nodes {
        w.len(*container);
        w.string(data);
    }
}

/// An intset (sorted, in the narrowest width that holds every member), or
/// a plain set.
fn set(w: &mut Writer, s: &SetValue) {
    let members = s.members();
    if !s.is_intset() {
        w.u8(SET);
        w.len(members.len() as u64);
        members.iter().for_each(|m| w.string(m));
        return;
    }
    let values: Vec<i64> = members.iter().map(|m| parse_i64(m).unwrap_or(0)).collect();
    let width = values.iter().map(|&v| int_width(v)).max().unwrap_or(2);
    let mut blob = Vec::with_capacity(8 + width * values.len());
    blob.extend_from_slice(&(width as u32).to_le_bytes());
    blob.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for v in values {
        blob.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    w.u8(SET_INTSET);
    w.string(&blob);
}

fn int_width(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// A listpack of fields and values in insertion order, or a plain hash.
fn hash(w: &mut Writer, h: &HashValue) {
    if h.is_big() {
        w.u8(HASH);
        w.len(h.len() as u64);
        for (f, v) in h.iter() {
            w.string(f);
            w.string(v);
        }
        return;
    }
    let mut lp = listpack::new();
    for (f, v) in h.iter() {
        listpack::append_str(&mut lp, f);
        listpack::append_str(&mut lp, v);
    }
    w.u8(HASH_LISTPACK);
    w.string(&lp);
}

/// A listpack of members and scores, ascending, or members with binary
/// scores from the highest down (a skiplist walked from its tail).
fn zset(w: &mut Writer, z: &ZSetValue) {
    if z.is_big() {
        w.u8(ZSET_2);
        w.len(z.len() as u64);
        for (m, s) in z.iter().rev() {
            w.string(m);
            w.f64(s);
        }
        return;
    }
    let mut lp = listpack::new();
    for (m, s) in z.iter() {
        listpack::append_str(&mut lp, m);
        match score_as_int(s) {
            Some(n) => listpack::append_int(&mut lp, n),
            None => listpack::append_str(&mut lp, format_double(s).as_bytes()),
        }
    }
    w.u8(ZSET_LISTPACK);
    w.string(&lp);
}

/// A score Redis stores in a listpack as an integer: integral and within
/// half the i64 range (-0 is 0).
fn score_as_int(s: f64) -> Option<i64> {
    const HALF: f64 = (i64::MAX / 2) as f64;
    if !(-HALF..=HALF).contains(&s) {
        return None;
    }
    let n = s as i64;
    (n as f64 == s).then_some(n)
}
