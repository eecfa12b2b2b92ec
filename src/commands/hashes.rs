//! Hashes.

use super::args::{int, random_args, reply_random};
use super::keys::parse_scan;
use super::notify::HASH;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::parse::parse_i64;
use crate::store::value::HashValue;
use crate::store::{Slot, Value, glob};

pub fn as_hash(v: &Value) -> Result<&HashValue, CmdError> {
    match v {
        Value::Hash(h) => Ok(h),
        _ => Err(CmdError::WrongType),
    }
}

/// The hash at the slot, created if missing; WRONGTYPE for other values.
fn hash_or_new<'s>(slot: &'s mut Slot) -> Result<&'s mut HashValue, CmdError> {
    if slot.value().is_some_and(|v| !matches!(v, Value::Hash(_))) {
        return Err(CmdError::WrongType);
    }
    match slot.value_or_insert(|| Value::Hash(Box::default())) {
        Value::Hash(h) => Ok(h),
        _ => unreachable!("checked hash"),
    }
}

fn existing_hash<'s>(slot: &'s mut Slot) -> Result<Option<&'s mut HashValue>, CmdError> {
    if !slot.exists() {
        return Ok(None);
    }
    hash_or_new(slot).map(Some)
}

fn hset_generic(ctx: &mut Ctx, a: &[&[u8]], name: &str) -> Result<usize, CmdError> {
    if a.len() % 2 == 1 {
        return Err(CmdError::Arity(name.into()));
    }
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let h = hash_or_new(slot)?;
        Ok(a[2..].chunks(2).filter(|fv| h.insert(fv[0], fv[1])).count())
    })?;
    ctx.notify(HASH, "hset", a[1]);
    Ok(n)
}

pub fn hset(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = hset_generic(ctx, a, "hset")?;
    ctx.out.int(n as i64);
    Ok(())
}

pub fn hmset(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    hset_generic(ctx, a, "hmset")?;
    ctx.out.ok();
    Ok(())
}

pub fn hsetnx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let done = ctx.db().write(a[1], now, |slot| {
        if let Some(v) = slot.value()
            && as_hash(v)?.get(a[2]).is_some()
        {
            return Ok(false);
        }
        Ok::<_, CmdError>(hash_or_new(slot)?.insert(a[2], a[3]))
    })?;
    if done {
        ctx.notify(HASH, "hset", a[1]);
    }
    ctx.out.int(done as i64);
    Ok(())
}

/// Runs `f` on the hash at `key` if there is one (a miss is a `keymiss`).
fn with_hash<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(&HashValue) -> R) -> Result<Option<R>, CmdError> {
    let r = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| as_hash(&e.value).map(f)).transpose();
    ctx.looked_up(key, !matches!(r, Ok(None)));
    r
}

pub fn hget(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], ctx.now_ms, ctx.touch, |e| as_hash(&e.value).map(|h| out.bulk_opt(h.get(a[2]).map(|v| &v[..]))));
    match found {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(a[1]);
            ctx.out.null();
            Ok(())
        }
    }
}

pub fn hmget(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let vals: Vec<Option<Vec<u8>>> =
        with_hash(ctx, a[1], |h| a[2..].iter().map(|f| h.get(f).map(|v| v.to_vec())).collect())?.unwrap_or_else(|| vec![None; a.len() - 2]);
    ctx.out.array(vals.len());
    for v in &vals {
        ctx.out.bulk_opt(v.as_deref());
    }
    Ok(())
}

pub fn hdel(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let Some(h) = existing_hash(slot)? else {
            return Ok(0);
        };
        Ok::<_, CmdError>(a[2..].iter().filter(|f| h.remove(f)).count())
    })?;
    if n > 0 {
        ctx.notify_emptied(HASH, "hdel", a[1]);
    }
    ctx.reply_changed(n);
    Ok(())
}

pub fn hlen(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_hash(ctx, a[1], |h| h.len())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn hstrlen(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_hash(ctx, a[1], |h| h.get(a[2]).map_or(0, |v| v.len()))?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn hexists(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_hash(ctx, a[1], |h| h.get(a[2]).is_some())?;
    ctx.out.int(n.unwrap_or(false) as i64);
    Ok(())
}

/// HKEYS, HVALS, HGETALL.
fn hget_many(ctx: &mut Ctx, key: &[u8], keys: bool, vals: bool) -> CmdResult {
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(key, ctx.now_ms, ctx.touch, |e| {
        let h = as_hash(&e.value)?;
        if keys && vals {
            out.map(h.len());
        } else {
            out.array(h.len());
        }
        for (f, v) in h.iter() {
            if keys {
                out.bulk(f);
            }
            if vals {
                out.bulk(v);
            }
        }
        Ok::<_, CmdError>(())
    });
    match found {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(key);
            if keys && vals {
                ctx.out.map(0)
            } else {
                ctx.out.array(0)
            }
            Ok(())
        }
    }
}

pub fn hkeys(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    hget_many(ctx, a[1], true, false)
}

pub fn hvals(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    hget_many(ctx, a[1], false, true)
}

pub fn hgetall(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    hget_many(ctx, a[1], true, true)
}

pub fn hincrby(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let delta = int(a[3])?;
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let h = hash_or_new(slot)?;
        let cur = match h.get(a[2]) {
            None => 0,
            Some(v) => parse_i64(v).ok_or_else(|| CmdError::err("hash value is not an integer"))?,
        };
        let new = cur.checked_add(delta).ok_or(CmdError::Overflow)?;
        h.insert(a[2], itoa::Buffer::new().format(new).as_bytes());
        Ok::<_, CmdError>(new)
    })?;
    ctx.notify(HASH, "hincrby", a[1]);
    ctx.out.int(n);
    Ok(())
}

pub fn hincrbyfloat(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if !super::args::float(a[3])?.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    let now = ctx.now_ms;
    let text = ctx.db().write(a[1], now, |slot| {
        let h = hash_or_new(slot)?;
        let cur = h.get(a[2]).map(|v| v.to_vec()).unwrap_or_else(|| b"0".to_vec());
        if super::args::parse_f64(&cur).is_none() {
            return Err(CmdError::err("hash value is not a float"));
        }
        let text = super::strings::add_floats(&cur, a[3])?;
        h.insert(a[2], text.as_bytes());
        Ok(text)
    })?;
    ctx.notify(HASH, "hincrbyfloat", a[1]);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

pub fn hrandfield(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (withvalues, count) = random_args(a, "withvalues")?;
    let (db, mark) = (ctx.db(), ctx.out.buf.len());
    let out = &mut *ctx.out;
    let done = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let h = as_hash(&e.value)?;
        Ok::<_, CmdError>(reply_random(out, h.len(), count, withvalues, |out, i, with| {
            if let Some((f, v)) = h.get_index(i) {
                out.bulk(f);
                if with {
                    out.bulk(v);
                }
            }
        }))
    });
    ctx.looked_up(a[1], done.is_some());
    let done = done.transpose()?;
    ctx.end_random_reply(done, count.is_none(), mark);
    Ok(())
}

/// Collection SCAN over indexed storage: small (compact) collections are
/// returned whole with cursor 0, as Redis does for listpacks and intsets.
pub fn scan_indexed(ctx: &mut Ctx, a: &[&[u8]], len: usize, compact: bool, item: &dyn Fn(usize) -> Option<Vec<Vec<u8>>>) -> CmdResult {
    let o = parse_scan(a, 3, false)?;
    let (start, end) = if compact {
        (0, len)
    } else {
        (o.cursor.min(len as u64) as usize, (o.cursor.saturating_add(o.count as u64)).min(len as u64) as usize)
    };
    let mut items = Vec::new();
    for i in start..end {
        if let Some(parts) = item(i)
            && o.pattern.as_deref().is_none_or(|p| glob::matches(p, &parts[0], false))
        {
            items.extend(parts);
        }
    }
    reply_scan(ctx, if end >= len { 0 } else { end as u64 }, &items);
    Ok(())
}

/// A collection SCAN over a big hash or set, whose cursor does not miss a
/// member that stays (see `Parts::scan`): `step` walks from the cursor and
/// hands each member's reply parts (member, and value) to `emit`.
pub fn scan_parts(ctx: &mut Ctx, a: &[&[u8]], step: impl FnOnce(u64, usize, &mut dyn FnMut(&[&[u8]])) -> u64) -> CmdResult {
    let o = parse_scan(a, 3, false)?;
    let mut items: Vec<Vec<u8>> = Vec::new();
    let next = step(o.cursor, o.count, &mut |parts| {
        if o.pattern.as_deref().is_none_or(|p| glob::matches(p, parts[0], false)) {
            items.extend(parts.iter().map(|x| x.to_vec()));
        }
    });
    reply_scan(ctx, next, &items);
    Ok(())
}

fn reply_scan(ctx: &mut Ctx, next: u64, items: &[Vec<u8>]) {
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.bulks(items.iter().map(|x| &x[..]));
}

/// HSCAN reads the fields it returns in place, under the key's read lock:
/// a call costs its COUNT, not a copy of the whole hash.
pub fn hscan(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    parse_scan(a, 3, false)?;
    let (db, now, touch) = (ctx.db(), ctx.now_ms, ctx.touch);
    let scanned = db.read(a[1], now, touch, |e| {
        let h = as_hash(&e.value)?;
        if h.is_big() {
            return scan_parts(ctx, a, |cursor, count, emit| h.scan(cursor, count, |f, v| emit(&[f, v])));
        }
        scan_indexed(ctx, a, h.len(), true, &|i| h.get_index(i).map(|(f, v)| vec![f.to_vec(), v.to_vec()]))
    });
    if scanned.is_some() {
        ctx.keyhit();
    }
    scanned.unwrap_or_else(|| scan_missing(ctx, a))
}

/// A collection SCAN of a missing key: a `keymiss`, and an empty reply.
pub fn scan_missing(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ctx.keymiss(a[1]);
    scan_indexed(ctx, a, 0, true, &|_| None)
}
