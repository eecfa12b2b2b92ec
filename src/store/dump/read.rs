//! Reading each object type Redis 7.0 restores, into our values through
//! their own insert paths. After every element `held` is brought up to the
//! value's size, so the next string is refused before it is allocated when
//! the value would outgrow the caller's memory.

use super::rdb::Reader;
use super::ziplist::{self, Elem};
use super::{DumpError, stream};
use crate::store::listpack::{self, Item};
use crate::store::value::{HashValue, ListValue, SetValue, Value, ZSetValue};

type Result<T> = std::result::Result<T, DumpError>;

pub const STRING: u8 = 0;
const LIST: u8 = 1;
pub const SET: u8 = 2;
const ZSET: u8 = 3;
pub const HASH: u8 = 4;
pub const ZSET_2: u8 = 5;
const HASH_ZIPMAP: u8 = 9;
const LIST_ZIPLIST: u8 = 10;
pub const SET_INTSET: u8 = 11;
const ZSET_ZIPLIST: u8 = 12;
const HASH_ZIPLIST: u8 = 13;
const LIST_QUICKLIST: u8 = 14;
const STREAM_LISTPACKS: u8 = 15;
pub const HASH_LISTPACK: u8 = 16;
pub const ZSET_LISTPACK: u8 = 17;
pub const LIST_QUICKLIST_2: u8 = 18;
pub const STREAM_LISTPACKS_2: u8 = 19;

/// Quicklist node containers.
pub const NODE_PLAIN: u64 = 1;
pub const NODE_PACKED: u64 = 2;

/// The object of type `kind`. Modules (6, 7), 8 and types newer than 7.0
/// are refused, as Redis without the module refuses them.
pub fn object(r: &mut Reader, kind: u8) -> Result<Value> {
    let v = match kind {
        STRING => Value::string(&r.string()?),
        LIST => list(r, plain_list)?,
        LIST_ZIPLIST => list(r, ziplist_list)?,
        LIST_QUICKLIST => list(r, quicklist)?,
        LIST_QUICKLIST_2 => list(r, quicklist_2)?,
        SET => set(r, plain_set)?,
        SET_INTSET => set(r, intset)?,
        HASH => hash(r, plain_hash)?,
        HASH_ZIPMAP => hash(r, zipmap_hash)?,
        HASH_ZIPLIST => hash(r, ziplist_hash)?,
        HASH_LISTPACK => hash(r, listpack_hash)?,
        ZSET => zset(r, |r, z| plain_zset(r, z, text_double))?,
        ZSET_2 => zset(r, |r, z| plain_zset(r, z, |r| r.f64()))?,
        ZSET_ZIPLIST => zset(r, ziplist_zset)?,
        ZSET_LISTPACK => zset(r, listpack_zset)?,
        STREAM_LISTPACKS => Value::Stream(Box::new(stream::read(r, false)?)),
        STREAM_LISTPACKS_2 => Value::Stream(Box::new(stream::read(r, true)?)),
        _ => return Err(DumpError::BadData),
    };
    if v.is_empty_collection() {
        return Err(DumpError::BadData);
    }
    Ok(v)
}

fn list(r: &mut Reader, fill: fn(&mut Reader, &mut ListValue) -> Result<()>) -> Result<Value> {
    let mut l = ListValue::default();
    fill(r, &mut l)?;
    Ok(Value::List(Box::new(l)))
}

fn set(r: &mut Reader, fill: fn(&mut Reader, &mut SetValue) -> Result<()>) -> Result<Value> {
    let mut s = SetValue::default();
    fill(r, &mut s)?;
    Ok(Value::Set(Box::new(s)))
}

fn hash(r: &mut Reader, fill: fn(&mut Reader, &mut HashValue) -> Result<()>) -> Result<Value> {
    let mut h = HashValue::default();
    fill(r, &mut h)?;
    Ok(Value::Hash(Box::new(h)))
}

fn zset(r: &mut Reader, fill: impl FnOnce(&mut Reader, &mut ZSetValue) -> Result<()>) -> Result<Value> {
    let mut z = ZSetValue::default();
    fill(r, &mut z)?;
    Ok(Value::ZSet(Box::new(z)))
}

/// Checks the value's size after an insert (what a string read may add to
/// is then known exactly).
fn account(r: &mut Reader, bytes: usize) -> Result<()> {
    r.held = bytes;
    r.fits(0)
}

/// A listpack from a string, once fully validated.
fn listpack_blob(blob: &[u8]) -> Result<&[u8]> {
    if listpack::validate(blob) { Ok(blob) } else { Err(DumpError::BadData) }
}

/// A listpack element as text.
fn item_text<'b>(item: Item<'b>, buf: &'b mut itoa::Buffer) -> &'b [u8] {
    match item {
        Item::Int(v) => buf.format(v).as_bytes(),
        Item::Str(s) => s,
    }
}

fn push(r: &mut Reader, l: &mut ListValue, e: &[u8]) -> Result<()> {
    l.push(e, false);
    account(r, l.bytes())
}

fn plain_list(r: &mut Reader, l: &mut ListValue) -> Result<()> {
    for _ in 0..r.count(1)? {
        let e = r.string()?;
        push(r, l, &e)?;
    }
    Ok(())
}

fn push_ziplist(r: &mut Reader, l: &mut ListValue, zl: &[u8]) -> Result<()> {
    for e in ziplist::ziplist(zl).ok_or(DumpError::BadData)? {
        push(r, l, &e.bytes())?;
    }
    Ok(())
}

fn ziplist_list(r: &mut Reader, l: &mut ListValue) -> Result<()> {
    let zl = r.string()?;
    push_ziplist(r, l, &zl)
}

/// Quicklist 1 (3.2 to 6.2): ziplist nodes (empty ones are skipped).
fn quicklist(r: &mut Reader, l: &mut ListValue) -> Result<()> {
    for _ in 0..r.count(1)? {
        let zl = r.string()?;
        push_ziplist(r, l, &zl)?;
    }
    Ok(())
}

/// Quicklist 2 (7.0): listpack nodes, or plain nodes of one element.
fn quicklist_2(r: &mut Reader, l: &mut ListValue) -> Result<()> {
    for _ in 0..r.count(2)? {
        let container = r.len()?;
        let data = r.string()?;
        match container {
            NODE_PLAIN if !data.is_empty() => push(r, l, &data)?,
            NODE_PACKED => {
                let lp = listpack_blob(&data)?;
                let mut buf = itoa::Buffer::new();
                for item in listpack::Iter::new(lp) {
                    push(r, l, item_text(item, &mut buf))?;
                }
            }
            _ => return Err(DumpError::BadData),
        }
    }
    Ok(())
}

fn add_member(r: &mut Reader, s: &mut SetValue, m: &[u8]) -> Result<()> {
    if !s.insert(m) {
        return Err(DumpError::BadData);
    }
    account(r, 64 + s.bytes())
}

fn plain_set(r: &mut Reader, s: &mut SetValue) -> Result<()> {
    for _ in 0..r.count(1)? {
        let m = r.string()?;
        add_member(r, s, &m)?;
    }
    Ok(())
}

fn intset(r: &mut Reader, s: &mut SetValue) -> Result<()> {
    let blob = r.string()?;
    let mut buf = itoa::Buffer::new();
    for v in ziplist::intset(&blob).ok_or(DumpError::BadData)? {
        add_member(r, s, buf.format(v).as_bytes())?;
    }
    Ok(())
}

fn add_field(r: &mut Reader, h: &mut HashValue, f: &[u8], v: &[u8]) -> Result<()> {
    if !h.insert(f, v) {
        return Err(DumpError::BadData);
    }
    account(r, 64 + h.bytes())
}

fn plain_hash(r: &mut Reader, h: &mut HashValue) -> Result<()> {
    for _ in 0..r.count(2)? {
        let f = r.string()?;
        let v = r.string()?;
        add_field(r, h, &f, &v)?;
    }
    Ok(())
}

fn zipmap_hash(r: &mut Reader, h: &mut HashValue) -> Result<()> {
    let zm = r.string()?;
    for (f, v) in ziplist::zipmap(&zm).ok_or(DumpError::BadData)? {
        add_field(r, h, f, v)?;
    }
    Ok(())
}

/// Pairs of a ziplist with an even number of elements.
fn ziplist_pairs<'z>(zl: &'z [u8]) -> Result<impl Iterator<Item = (Elem<'z>, Elem<'z>)>> {
    let n = ziplist::ziplist(zl).ok_or(DumpError::BadData)?.count();
    if !n.is_multiple_of(2) {
        return Err(DumpError::BadData);
    }
    let mut it = ziplist::ziplist(zl).ok_or(DumpError::BadData)?;
    Ok(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
}

fn ziplist_hash(r: &mut Reader, h: &mut HashValue) -> Result<()> {
    let zl = r.string()?;
    for (f, v) in ziplist_pairs(&zl)? {
        add_field(r, h, &f.bytes(), &v.bytes())?;
    }
    Ok(())
}

/// Pairs of a validated listpack with an even number of elements.
fn listpack_pairs(lp: &[u8]) -> Result<impl Iterator<Item = (Item<'_>, Item<'_>)>> {
    let lp = listpack_blob(lp)?;
    if !listpack::count(lp).is_multiple_of(2) {
        return Err(DumpError::BadData);
    }
    let mut it = listpack::Iter::new(lp);
    Ok(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
}

fn listpack_hash(r: &mut Reader, h: &mut HashValue) -> Result<()> {
    let lp = r.string()?;
    let (mut fb, mut vb) = (itoa::Buffer::new(), itoa::Buffer::new());
    for (f, v) in listpack_pairs(&lp)? {
        add_field(r, h, item_text(f, &mut fb), item_text(v, &mut vb))?;
    }
    Ok(())
}

fn add_scored(r: &mut Reader, z: &mut ZSetValue, m: &[u8], score: f64) -> Result<()> {
    if score.is_nan() || z.insert(m, score).is_some() {
        return Err(DumpError::BadData);
    }
    account(r, 96 + z.bytes())
}

fn plain_zset(r: &mut Reader, z: &mut ZSetValue, score: fn(&mut Reader) -> Result<f64>) -> Result<()> {
    for _ in 0..r.count(2)? {
        let m = r.string()?;
        let s = score(r)?;
        add_scored(r, z, &m, s)?;
    }
    Ok(())
}

/// A double as text after a length byte (253 NaN, 254 +inf, 255 -inf).
fn text_double(r: &mut Reader) -> Result<f64> {
    match r.u8()? {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        n => score_text(r.bytes(n as usize)?),
    }
}

/// A score written as text (`%.17g`, `inf`, `-inf`); NaN is refused.
fn score_text(s: &[u8]) -> Result<f64> {
    let v: f64 = std::str::from_utf8(s).ok().and_then(|t| t.parse().ok()).ok_or(DumpError::BadData)?;
    if v.is_nan() { Err(DumpError::BadData) } else { Ok(v) }
}

fn ziplist_zset(r: &mut Reader, z: &mut ZSetValue) -> Result<()> {
    let zl = r.string()?;
    for (m, s) in ziplist_pairs(&zl)? {
        let score = match s {
            Elem::Int(v) => v as f64,
            Elem::Str(t) => score_text(t)?,
        };
        add_scored(r, z, &m.bytes(), score)?;
    }
    Ok(())
}

fn listpack_zset(r: &mut Reader, z: &mut ZSetValue) -> Result<()> {
    let lp = r.string()?;
    let mut buf = itoa::Buffer::new();
    for (m, s) in listpack_pairs(&lp)? {
        let score = match s {
            Item::Int(v) => v as f64,
            Item::Str(t) => score_text(t)?,
        };
        add_scored(r, z, item_text(m, &mut buf), score)?;
    }
    Ok(())
}
