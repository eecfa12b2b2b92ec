//! Lists, including the blocking pops and moves.

use super::args::{int, is, timeout_ms};
use super::notify::LIST;
use super::{CmdError, CmdResult, Ctx};
use crate::server::client::BlockSpec;
use crate::store::value::{Elem, ListValue};
use crate::store::{Keyspace, Slot, Value};

pub fn as_list(v: &Value) -> Result<&ListValue, CmdError> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

fn list_mut<'s>(slot: &'s mut Slot) -> Result<Option<&'s mut ListValue>, CmdError> {
    match slot.value() {
        None => return Ok(None),
        Some(Value::List(_)) => {}
        Some(_) => return Err(CmdError::WrongType),
    }
    match slot.value_mut() {
        Some(Value::List(l)) => Ok(Some(l)),
        _ => unreachable!("checked list"),
    }
}

fn push_generic(ctx: &mut Ctx, a: &[&[u8]], front: bool, only_existing: bool) -> CmdResult {
    let now = ctx.now_ms;
    let len = ctx.db().write(a[1], now, |slot| {
        if slot.value().is_some_and(|v| !matches!(v, Value::List(_))) {
            return Err(CmdError::WrongType);
        }
        if only_existing && !slot.exists() {
            return Ok(0);
        }
        let Value::List(l) = slot.value_or_insert(|| Value::List(Box::default())) else { unreachable!() };
        for e in &a[2..] {
            l.push(e, front);
        }
        Ok(l.len())
    })?;
    if len > 0 {
        ctx.notify(LIST, if front { "lpush" } else { "rpush" }, a[1]);
    }
    ctx.out.int(len as i64);
    Ok(())
}

pub fn lpush(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    push_generic(ctx, a, true, false)
}

pub fn rpush(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    push_generic(ctx, a, false, false)
}

pub fn lpushx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    push_generic(ctx, a, true, true)
}

pub fn rpushx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    push_generic(ctx, a, false, true)
}

/// Pops up to `n` elements; None if the key is missing.
fn pop_n(db: &Keyspace, key: &[u8], now: u64, front: bool, n: usize) -> Result<Option<Vec<Elem>>, CmdError> {
    db.write(key, now, |slot| {
        let Some(l) = list_mut(slot)? else {
            return Ok(None);
        };
        let take = n.min(l.len());
        Ok(Some((0..take).filter_map(|_| l.pop(front)).collect()))
    })
}

/// A pop's events: `lpop`/`rpop`, then `del` when it took the last element.
fn popped_events(ctx: &Ctx, key: &[u8], front: bool) {
    ctx.notify_emptied(LIST, if front { "lpop" } else { "rpop" }, key);
}

fn pop_generic(ctx: &mut Ctx, a: &[&[u8]], front: bool) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Arity(if front { "lpop" } else { "rpop" }.into()));
    }
    let count = match a.get(2) {
        Some(c) => Some(positive_count(c)?),
        None => None,
    };
    let popped = pop_n(ctx.db(), a[1], ctx.now_ms, front, count.unwrap_or(1))?;
    if popped.as_ref().is_some_and(|v| !v.is_empty()) {
        popped_events(ctx, a[1], front);
    }
    match (popped, count) {
        (None, Some(_)) => ctx.out.null_array(),
        (None, None) => ctx.out.null(),
        (Some(v), None) => ctx.out.bulk_opt(v.first().map(|e| &e[..])),
        (Some(v), Some(_)) => ctx.out.bulks(v.iter().map(|e| &e[..])),
    }
    Ok(())
}

pub fn positive_count(c: &[u8]) -> Result<usize, CmdError> {
    match crate::protocol::parse::parse_i64(c) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(CmdError::err("value is out of range, must be positive")),
    }
}

pub fn lpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, a, true)
}

pub fn rpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    pop_generic(ctx, a, false)
}

pub fn llen(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| as_list(&e.value).map(|l| l.len()));
    ctx.looked_up(a[1], n.is_some());
    let n = n.transpose()?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn lrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (start, end) = (int(a[2])?, int(a[3])?);
    let db = ctx.db();
    let out = &mut *ctx.out;
    let r = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let l = as_list(&e.value)?;
        match super::args::clamp_range(start, end, l.len()) {
            None => out.array(0),
            Some((s, e)) => out.bulks(l.range(s, e).map(|x| &x[..])),
        }
        Ok::<_, CmdError>(())
    });
    match r {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(a[1]);
            ctx.out.array(0);
            Ok(())
        }
    }
}

/// A list index (negative from the end) resolved against `len`.
fn resolve(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (i >= 0 && (i as usize) < len).then_some(i as usize)
}

pub fn lindex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let i = int(a[2])?;
    let v = ctx
        .db()
        .read(a[1], ctx.now_ms, ctx.touch, |e| as_list(&e.value).map(|l| resolve(i, l.len()).and_then(|i| l.get(i)).map(|x| x.to_vec())));
    ctx.looked_up(a[1], v.is_some());
    let v = v.transpose()?;
    ctx.out.bulk_opt(v.flatten().as_deref());
    Ok(())
}

pub fn lset(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let i = int(a[2])?;
    let now = ctx.now_ms;
    ctx.db().write(a[1], now, |slot| {
        let l = list_mut(slot)?.ok_or(CmdError::NoSuchKey)?;
        let i = resolve(i, l.len()).ok_or(CmdError::IndexOutOfRange)?;
        l.set(i, a[3]);
        Ok::<_, CmdError>(())
    })?;
    ctx.notify(LIST, "lset", a[1]);
    ctx.out.ok();
    Ok(())
}

pub fn linsert(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let after = if is(a[2], "after") {
        true
    } else if is(a[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let Some(l) = list_mut(slot)? else {
            return Ok(0);
        };
        let pivot = l.iter().position(|x| &x[..] == a[3]);
        match pivot {
            None => Ok(-1),
            Some(p) => {
                l.insert(p + after as usize, a[4]);
                Ok::<_, CmdError>(l.len() as i64)
            }
        }
    })?;
    if n > 0 {
        ctx.notify(LIST, "linsert", a[1]);
    }
    ctx.out.int(n);
    Ok(())
}

pub fn lrem(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let count = int(a[2])?;
    let now = ctx.now_ms;
    let removed = ctx.db().write(a[1], now, |slot| {
        let Some(l) = list_mut(slot)? else {
            return Ok(0);
        };
        let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
        let mut removed = 0;
        if count >= 0 {
            let mut i = 0;
            while i < l.len() && removed < limit {
                if &l.get(i).expect("in range")[..] == a[3] {
                    l.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = l.len();
            while i > 0 && removed < limit {
                i -= 1;
                if &l.get(i).expect("in range")[..] == a[3] {
                    l.remove(i);
                    removed += 1;
                }
            }
        }
        Ok::<_, CmdError>(removed)
    })?;
    if removed > 0 {
        ctx.notify_emptied(LIST, "lrem", a[1]);
    }
    ctx.out.int(removed as i64);
    Ok(())
}

pub fn ltrim(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (start, end) = (int(a[2])?, int(a[3])?);
    let now = ctx.now_ms;
    let trimmed = ctx.db().write(a[1], now, |slot| {
        let Some(l) = list_mut(slot)? else { return Ok(false) };
        let r = super::args::clamp_range(start, end, l.len());
        l.retain_range(r);
        Ok::<_, CmdError>(true)
    })?;
    if trimmed {
        ctx.notify_emptied(LIST, "ltrim", a[1]);
    }
    ctx.out.ok();
    Ok(())
}

pub fn lpos(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<usize>, 0usize);
    let mut i = 3;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(CmdError::Syntax);
        }
        let v = int(a[i + 1])?;
        if is(a[i], "rank") {
            if v == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
            if v == i64::MIN {
                return Err(CmdError::err("value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
            }
            rank = v;
        } else if is(a[i], "count") {
            if v < 0 {
                return Err(CmdError::err("COUNT can't be negative"));
            }
            count = Some(v as usize);
        } else if is(a[i], "maxlen") {
            if v < 0 {
                return Err(CmdError::err("MAXLEN can't be negative"));
            }
            maxlen = v as usize;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let found = ctx
        .db()
        .read(a[1], ctx.now_ms, ctx.touch, |e| {
            let l = as_list(&e.value)?;
            let want = match count {
                Some(0) => usize::MAX,
                Some(c) => c,
                None => 1,
            };
            let mut skip = rank.unsigned_abs() - 1;
            let mut hits = Vec::new();
            let n = l.len();
            let limit = if maxlen == 0 { n } else { maxlen.min(n) };
            for step in 0..limit {
                let idx = if rank > 0 { step } else { n - 1 - step };
                if &l.get(idx).expect("in range")[..] == a[2] {
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    hits.push(idx as i64);
                    if hits.len() >= want {
                        break;
                    }
                }
            }
            Ok::<_, CmdError>(hits)
        })
        .transpose()?;
    ctx.looked_up(a[1], found.is_some());
    let found = found.unwrap_or_default();
    match count {
        Some(_) => {
            ctx.out.array(found.len());
            found.iter().for_each(|&i| ctx.out.int(i));
        }
        None => match found.first() {
            Some(&i) => ctx.out.int(i),
            None => ctx.out.null(),
        },
    }
    Ok(())
}

fn side(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "left") {
        Ok(true)
    } else if is(arg, "right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Moves one element; None if the source is missing or empty. Its events
/// as Redis orders them: the push (after `new` for a new destination), the
/// pop, `del` when the source was emptied.
fn lmove_once(ctx: &Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) -> Result<Option<Elem>, CmdError> {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let ok = db.read(src, now, false, |e| as_list(&e.value).map(|_| ()));
    match ok {
        None => return Ok(None),
        Some(r) => r?,
    }
    if let Some(r) = db.read(dst, now, false, |e| as_list(&e.value).map(|_| ())) {
        r?;
    }
    let moved = if src == dst {
        // A rotation: the list is never empty, nor new.
        db.write(src, now, |slot| {
            let l = list_mut(slot).ok()??;
            let e = l.pop(from_left)?;
            l.push(&e, to_left);
            Some(e)
        })
    } else {
        let Some(mut popped) = pop_n(db, src, now, from_left, 1)? else {
            return Ok(None);
        };
        let Some(e) = popped.pop() else {
            return Ok(None);
        };
        db.write(dst, now, |slot| {
            let Value::List(l) = slot.value_or_insert(|| Value::List(Box::default())) else { unreachable!("checked list") };
            l.push(&e, to_left);
        });
        Some(e)
    };
    if moved.is_some() {
        ctx.notify(LIST, if to_left { "lpush" } else { "rpush" }, dst);
        popped_events(ctx, src, from_left);
    }
    Ok(moved)
}

pub fn lmove(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (from, to) = (side(a[3])?, side(a[4])?);
    let e = lmove_once(ctx, a[1], a[2], from, to)?;
    ctx.out.bulk_opt(e.as_deref());
    Ok(())
}

pub fn rpoplpush(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let e = lmove_once(ctx, a[1], a[2], false, true)?;
    ctx.out.bulk_opt(e.as_deref());
    Ok(())
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` (LMPOP) or `... MIN|MAX` (ZMPOP)
/// starting at `at`; returns (keys, where-argument, count).
/// The keys, the LEFT/RIGHT (or MIN/MAX) argument and the count of an MPOP.
pub type MpopArgs<'a> = (Vec<&'a [u8]>, &'a [u8], usize);

pub fn parse_mpop<'a>(a: &[&'a [u8]], at: usize) -> Result<MpopArgs<'a>, CmdError> {
    let numkeys = match crate::protocol::parse::parse_i64(a[at]) {
        Some(n) if n > 0 => n as usize,
        _ => return Err(CmdError::err("numkeys should be greater than 0")),
    };
    let where_idx = at + numkeys + 1;
    if where_idx >= a.len() {
        return Err(CmdError::Syntax);
    }
    let keys = a[at + 1..where_idx].to_vec();
    let mut count = None;
    let mut j = where_idx + 1;
    while j < a.len() {
        if count.is_none() && is(a[j], "count") && j + 1 < a.len() {
            count = match crate::protocol::parse::parse_i64(a[j + 1]) {
                Some(n) if n > 0 => Some(n as usize),
                _ => return Err(CmdError::err("count should be greater than 0")),
            };
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((keys, a[where_idx], count.unwrap_or(1)))
}

/// Pops from the first non-empty list of `keys`.
type Popped = Option<(Vec<u8>, Vec<Elem>)>;

fn mpop(ctx: &Ctx, keys: &[&[u8]], front: bool, count: usize) -> Result<Popped, CmdError> {
    for k in keys {
        if let Some(v) = pop_n(ctx.db(), k, ctx.now_ms, front, count)?
            && !v.is_empty()
        {
            popped_events(ctx, k, front);
            return Ok(Some((k.to_vec(), v)));
        }
    }
    Ok(None)
}

fn reply_key_elems(ctx: &mut Ctx, key: &[u8], elems: &[Elem]) {
    ctx.out.array(2);
    ctx.out.bulk(key);
    ctx.out.bulks(elems.iter().map(|e| &e[..]));
}

pub fn lmpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (keys, wh, count) = parse_mpop(a, 1)?;
    let front = side(wh)?;
    match mpop(ctx, &keys, front, count)? {
        Some((k, v)) => reply_key_elems(ctx, &k, &v),
        None => ctx.out.null_array(),
    }
    Ok(())
}

/// Asks the connection to wait for `keys` until the timeout, then retry.
pub fn block_on(ctx: &mut Ctx, keys: &[&[u8]], timeout: u64) {
    let (tenant, deadline_ms) = (ctx.space_tenant(), (timeout > 0).then(|| ctx.now_ms + timeout));
    ctx.client.block = Some(BlockSpec { tenant, keys: keys.iter().map(|k| k.to_vec()).collect(), deadline_ms, retry: None });
}

fn bpop_generic(ctx: &mut Ctx, a: &[&[u8]], front: bool) -> CmdResult {
    let timeout = timeout_ms(a[a.len() - 1])?;
    let keys = &a[1..a.len() - 1];
    for k in keys {
        if let Some(r) = ctx.db().read(k, ctx.now_ms, false, |e| as_list(&e.value).map(|_| ())) {
            r?;
        }
    }
    match mpop(ctx, keys, front, 1)? {
        Some((k, v)) => {
            ctx.out.array(2);
            ctx.out.bulk(&k);
            ctx.out.bulk(&v[0]);
        }
        None if ctx.in_exec => ctx.out.null_array(),
        None => block_on(ctx, keys, timeout),
    }
    Ok(())
}

pub fn blpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, a, true)
}

pub fn brpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bpop_generic(ctx, a, false)
}

pub fn blmpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let timeout = timeout_ms(a[1])?;
    let (keys, wh, count) = parse_mpop(a, 2)?;
    let front = side(wh)?;
    match mpop(ctx, &keys, front, count)? {
        Some((k, v)) => reply_key_elems(ctx, &k, &v),
        None if ctx.in_exec => ctx.out.null_array(),
        None => block_on(ctx, &keys, timeout),
    }
    Ok(())
}

fn blmove_generic(ctx: &mut Ctx, src: &[u8], dst: &[u8], from: bool, to: bool, timeout: &[u8]) -> CmdResult {
    let timeout = timeout_ms(timeout)?;
    match lmove_once(ctx, src, dst, from, to)? {
        Some(e) => ctx.out.bulk(&e),
        None if ctx.in_exec => ctx.out.null(),
        None => block_on(ctx, &[src], timeout),
    }
    Ok(())
}

pub fn blmove(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (from, to) = (side(a[3])?, side(a[4])?);
    blmove_generic(ctx, a[1], a[2], from, to, a[5])
}

pub fn brpoplpush(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    blmove_generic(ctx, a[1], a[2], false, true, a[3])
}
