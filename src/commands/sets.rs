//! Sets and set algebra.

use std::collections::HashSet;

use super::args::{random_count, reply_random};
use super::hashes::{scan_indexed, scan_missing, scan_parts};
use super::notify::SET;
use super::{CmdError, CmdResult, Ctx};
use crate::store::value::SetValue;
use crate::store::{Slot, Value};

pub fn as_set(v: &Value) -> Result<&SetValue, CmdError> {
    match v {
        Value::Set(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

fn set_mut<'s>(slot: &'s mut Slot, create: bool) -> Result<Option<&'s mut SetValue>, CmdError> {
    match slot.value() {
        Some(Value::Set(_)) => {}
        Some(_) => return Err(CmdError::WrongType),
        None if !create => return Ok(None),
        None => {
            slot.set(Value::Set(Box::default()));
        }
    }
    match slot.value_mut() {
        Some(Value::Set(s)) => Ok(Some(s)),
        _ => unreachable!("checked set"),
    }
}

/// Reads the set at `key` (a miss is a `keymiss`).
fn with_set<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(&SetValue) -> R) -> Result<Option<R>, CmdError> {
    let r = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| as_set(&e.value).map(f)).transpose();
    ctx.looked_up(key, !matches!(r, Ok(None)));
    r
}

pub fn sadd(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let s = set_mut(slot, true)?.expect("created");
        Ok::<_, CmdError>(a[2..].iter().filter(|m| s.insert(m)).count())
    })?;
    if n > 0 {
        ctx.notify(SET, "sadd", a[1]);
    }
    ctx.reply_changed(n);
    Ok(())
}

pub fn srem(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let Some(s) = set_mut(slot, false)? else {
            return Ok(0);
        };
        Ok::<_, CmdError>(a[2..].iter().filter(|m| s.remove(m)).count())
    })?;
    if n > 0 {
        ctx.notify_emptied(SET, "srem", a[1]);
    }
    ctx.reply_changed(n);
    Ok(())
}

fn reply_set(ctx: &mut Ctx, members: &[Vec<u8>]) {
    ctx.out.set(members.len());
    for m in members {
        ctx.out.bulk(m);
    }
}

pub fn smembers(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let s = as_set(&e.value)?;
        let m = s.members();
        out.set(m.len());
        m.iter().for_each(|x| out.bulk(x));
        Ok::<_, CmdError>(())
    });
    match found {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(a[1]);
            ctx.out.set(0);
            Ok(())
        }
    }
}

pub fn sismember(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_set(ctx, a[1], |s| s.contains(a[2]))?;
    ctx.out.int(n.unwrap_or(false) as i64);
    Ok(())
}

pub fn smismember(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let flags =
        with_set(ctx, a[1], |s| a[2..].iter().map(|m| s.contains(m)).collect::<Vec<_>>())?.unwrap_or_else(|| vec![false; a.len() - 2]);
    ctx.out.array(flags.len());
    flags.iter().for_each(|&f| ctx.out.int(f as i64));
    Ok(())
}

pub fn scard(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_set(ctx, a[1], |s| s.len())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

fn spop_count(a: &[&[u8]]) -> Result<Option<usize>, CmdError> {
    match a.len() {
        2 => Ok(None),
        3 => super::lists::positive_count(a[2]).map(Some),
        _ => Err(CmdError::Syntax),
    }
}

pub fn spop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let count = spop_count(a)?;
    let now = ctx.now_ms;
    let popped = ctx.db().write(a[1], now, |slot| {
        let Some(s) = set_mut(slot, false)? else {
            return Ok(None);
        };
        let n = count.unwrap_or(1);
        if count.is_some() && n >= s.len() {
            // Everything goes, in SMEMBERS order, and the key with it.
            let all = s.members().into_iter().map(|m| m.to_vec()).collect();
            slot.remove();
            return Ok(Some(all));
        }
        let mut out = Vec::new();
        while out.len() < n && !s.is_empty() {
            let i = fastrand::usize(..s.len());
            out.extend(s.remove_index(i).map(|m| m.to_vec()));
        }
        Ok::<_, CmdError>(Some(out))
    })?;
    if popped.as_ref().is_some_and(|m| !m.is_empty()) {
        ctx.notify_emptied(SET, "spop", a[1]);
    }
    if let Some(members) = popped.as_ref().filter(|m| !m.is_empty()) {
        // Which members went was random: the log records which.
        let mut srem = vec![b"SREM".to_vec(), a[1].to_vec()];
        srem.extend(members.iter().cloned());
        ctx.client.propagate = Some(srem);
    }
    match (popped, count) {
        (None, None) => ctx.out.null(),
        (None, Some(_)) => ctx.out.set(0),
        (Some(v), None) => ctx.out.bulk_opt(v.first().map(|m| &m[..])),
        (Some(v), Some(_)) => reply_set(ctx, &v),
    }
    Ok(())
}

pub fn srandmember(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let count = match a.len() {
        2 => None,
        3 => Some(random_count(a[2], false)?),
        _ => return Err(CmdError::Syntax),
    };
    let (db, mark) = (ctx.db(), ctx.out.buf.len());
    let out = &mut *ctx.out;
    let done = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let s = as_set(&e.value)?;
        Ok::<_, CmdError>(reply_random(out, s.len(), count, false, |out, i, _| {
            if let Some(m) = s.get_index(i) {
                out.bulk(m);
            }
        }))
    });
    ctx.looked_up(a[1], done.is_some());
    let done = done.transpose()?;
    ctx.end_random_reply(done, count.is_none(), mark);
    Ok(())
}

pub fn smove(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let src_ok = db.read(a[1], now, false, |e| as_set(&e.value).map(|_| ()));
    let dst_ok = db.read(a[2], now, false, |e| as_set(&e.value).map(|_| ()));
    let src_exists = src_ok.is_some();
    if let Some(r) = src_ok {
        r?;
    }
    if let Some(r) = dst_ok {
        r?;
    }
    if !src_exists {
        ctx.out.int(0);
        return Ok(());
    }
    if a[1] == a[2] {
        let has = db.read(a[1], now, false, |e| as_set(&e.value).map(|s| s.contains(a[3])).unwrap_or(false));
        ctx.out.int(has.unwrap_or(false) as i64);
        return Ok(());
    }
    let moved = db.write(a[1], now, |slot| set_mut(slot, false).map(|s| s.is_some_and(|s| s.remove(a[3]))))?;
    if moved {
        // The source's events come before the destination is created.
        ctx.notify_emptied(SET, "srem", a[1]);
        let added = db.write(a[2], now, |slot| set_mut(slot, true).map(|s| s.is_some_and(|s| s.insert(a[3]))))?;
        if added {
            ctx.notify(SET, "sadd", a[2]);
        }
    }
    ctx.out.int(moved as i64);
    Ok(())
}

/// Loads the sets at `keys` (missing ones as None), type-checking all first.
fn load_sets(ctx: &Ctx, keys: &[&[u8]]) -> Result<Vec<Option<HashSet<Vec<u8>>>>, CmdError> {
    keys.iter().map(|k| with_set(ctx, k, |s| s.members().into_iter().map(|m| m.to_vec()).collect::<HashSet<_>>())).collect()
}

fn inter(sets: Vec<Option<HashSet<Vec<u8>>>>) -> HashSet<Vec<u8>> {
    if sets.iter().any(|s| s.is_none()) {
        return HashSet::new();
    }
    let mut sets: Vec<HashSet<Vec<u8>>> = sets.into_iter().flatten().collect();
    sets.sort_by_key(|s| s.len());
    let mut it = sets.into_iter();
    let first = it.next().unwrap_or_default();
    let rest: Vec<_> = it.collect();
    first.into_iter().filter(|m| rest.iter().all(|s| s.contains(m))).collect()
}

#[derive(Clone, Copy)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn compute(ctx: &Ctx, keys: &[&[u8]], op: Op) -> Result<Vec<Vec<u8>>, CmdError> {
    let result = match op {
        Op::Inter => inter(load_sets(ctx, keys)?),
        Op::Union => load_sets(ctx, keys)?.into_iter().flatten().flatten().collect(),
        Op::Diff => {
            let mut sets = load_sets(ctx, keys)?.into_iter();
            let mut first = sets.next().flatten().unwrap_or_default();
            for s in sets.flatten() {
                first.retain(|m| !s.contains(m));
            }
            first
        }
    };
    let mut v: Vec<Vec<u8>> = result.into_iter().collect();
    v.sort();
    Ok(v)
}

/// Stores a *STORE result (`event` on it), or deletes `dst` when the
/// result is empty.
fn store(ctx: &mut Ctx, dst: &[u8], members: &[Vec<u8>], event: &str) {
    let value = (!members.is_empty()).then(|| {
        let mut s = SetValue::default();
        members.iter().for_each(|m| {
            s.insert(m);
        });
        Value::Set(Box::new(s))
    });
    ctx.store_or_delete(dst, value, SET, event);
    ctx.out.int(members.len() as i64);
}

pub fn sinter(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[1..], Op::Inter)?;
    reply_set(ctx, &r);
    Ok(())
}

pub fn sunion(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[1..], Op::Union)?;
    reply_set(ctx, &r);
    Ok(())
}

pub fn sdiff(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[1..], Op::Diff)?;
    reply_set(ctx, &r);
    Ok(())
}

pub fn sinterstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[2..], Op::Inter)?;
    store(ctx, a[1], &r, "sinterstore");
    Ok(())
}

pub fn sunionstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[2..], Op::Union)?;
    store(ctx, a[1], &r, "sunionstore");
    Ok(())
}

pub fn sdiffstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let r = compute(ctx, &a[2..], Op::Diff)?;
    store(ctx, a[1], &r, "sdiffstore");
    Ok(())
}

/// Parses `numkeys key... [LIMIT n]` as SINTERCARD and ZINTERCARD do.
pub fn parse_card_args<'a>(a: &[&'a [u8]]) -> Result<(Vec<&'a [u8]>, usize), CmdError> {
    let numkeys = match crate::protocol::parse::parse_i64(a[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    if numkeys > a.len() - 2 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let keys = a[2..2 + numkeys].to_vec();
    let mut limit = 0usize;
    let mut i = 2 + numkeys;
    while i < a.len() {
        if super::args::is(a[i], "limit") && i + 1 < a.len() {
            match crate::protocol::parse::parse_i64(a[i + 1]) {
                Some(n) if n >= 0 => limit = n as usize,
                Some(_) => return Err(CmdError::err("LIMIT can't be negative")),
                None => return Err(CmdError::NotInteger),
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((keys, limit))
}

pub fn sintercard(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (keys, limit) = parse_card_args(a)?;
    let n = compute(ctx, &keys, Op::Inter)?.len();
    ctx.out.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// SSCAN reads the members it returns in place (an intset, at most a few
/// hundred members, is returned whole and in order, as Redis does).
pub fn sscan(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    super::keys::parse_scan(a, 3, false)?;
    let (db, now, touch) = (ctx.db(), ctx.now_ms, ctx.touch);
    let scanned = db.read(a[1], now, touch, |e| {
        let s = as_set(&e.value)?;
        if s.is_intset() {
            let members = s.members();
            return scan_indexed(ctx, a, members.len(), true, &|i| members.get(i).map(|m| vec![m.to_vec()]));
        }
        scan_parts(ctx, a, |cursor, count, emit| s.scan(cursor, count, |m| emit(&[m])))
    });
    if scanned.is_some() {
        ctx.keyhit();
    }
    scanned.unwrap_or_else(|| scan_missing(ctx, a))
}
