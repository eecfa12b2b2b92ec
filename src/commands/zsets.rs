//! Sorted sets: ranges by rank, score and lex; pops; set algebra.

use super::args::{clamp_range, float, int, is, lower, parse_f64, random_args, reply_random, timeout_ms};
use super::hashes::{scan_indexed, scan_missing, scan_parts};
use super::lists::{block_on, parse_mpop};
use super::notify::ZSET;
use super::sets::parse_card_args;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::Out;
use crate::store::zset::{LexBound, ScoreBound};
use crate::store::{Keyspace, Slot, Value, ZSetValue};

pub fn as_zset(v: &Value) -> Result<&ZSetValue, CmdError> {
    match v {
        Value::ZSet(z) => Ok(z),
        _ => Err(CmdError::WrongType),
    }
}

fn zset_mut<'s>(slot: &'s mut Slot, create: bool) -> Result<Option<&'s mut ZSetValue>, CmdError> {
    match slot.value() {
        Some(Value::ZSet(_)) => {}
        Some(_) => return Err(CmdError::WrongType),
        None if !create => return Ok(None),
        None => {
            slot.set(Value::ZSet(Box::default()));
        }
    }
    match slot.value_mut() {
        Some(Value::ZSet(z)) => Ok(Some(z)),
        _ => unreachable!("checked zset"),
    }
}

/// Reads the sorted set at `key` (a miss is a `keymiss`).
fn with_zset<R>(ctx: &Ctx, key: &[u8], f: impl FnOnce(&ZSetValue) -> R) -> Result<Option<R>, CmdError> {
    let r = ctx.db().read(key, ctx.now_ms, ctx.touch, |e| as_zset(&e.value).map(f)).transpose();
    ctx.looked_up(key, !matches!(r, Ok(None)));
    r
}

type Scored = Vec<(Vec<u8>, f64)>;

fn reply_scored(out: &mut Out, items: &[(Vec<u8>, f64)], withscores: bool) {
    if withscores && out.resp3 {
        out.array(items.len());
        for (m, s) in items {
            out.array(2);
            out.bulk(m);
            out.double(*s);
        }
    } else {
        out.array(items.len() * if withscores { 2 } else { 1 });
        for (m, s) in items {
            out.bulk(m);
            if withscores {
                out.double(*s);
            }
        }
    }
}

pub fn zadd(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut i = 2;
    while i < a.len() {
        // Compared in place: the first score ends the options, and ZADD
        // should not allocate to find that out.
        let flag = match a[i] {
            o if is(o, "nx") => &mut nx,
            o if is(o, "xx") => &mut xx,
            o if is(o, "gt") => &mut gt,
            o if is(o, "lt") => &mut lt,
            o if is(o, "ch") => &mut ch,
            o if is(o, "incr") => &mut incr,
            _ => break,
        };
        *flag = true;
        i += 1;
    }
    let pairs = &a[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::err("XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::err("GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && pairs.len() > 2 {
        return Err(CmdError::err("INCR option supports a single increment-element pair"));
    }
    // All parsed before any is applied (one bad score changes nothing), on
    // the stack for the usual few pairs.
    let scores: smallvec::SmallVec<[f64; 8]> = pairs.chunks(2).map(|p| float(p[0])).collect::<Result<_, _>>()?;
    let now = ctx.now_ms;
    let r = ctx.db().write(a[1], now, |slot| {
        if !slot.exists() && xx {
            return Ok((0, 0, None));
        }
        let z = zset_mut(slot, true)?.expect("created");
        let (mut added, mut changed, mut last) = (0, 0, None);
        for (p, &score) in pairs.chunks(2).zip(&scores) {
            let (cur, new) = z.upsert(p[1], |cur| {
                let new = if incr { cur.unwrap_or(0.0) + score } else { score };
                if new.is_nan() {
                    return Err(CmdError::err("resulting score is not a number (NaN)"));
                }
                Ok(match cur {
                    None if xx => None,
                    Some(_) if nx => None,
                    Some(c) if (gt && new <= c) || (lt && new >= c) => None,
                    _ => Some(new),
                })
            })?;
            match (cur, new) {
                (_, None) => {}
                (None, Some(n)) => {
                    added += 1;
                    last = Some(n);
                }
                (Some(c), Some(n)) => {
                    changed += (c != n) as i64;
                    last = Some(n);
                }
            }
        }
        Ok::<_, CmdError>((added, changed, last))
    })?;
    if r.0 + r.1 > 0 {
        ctx.notify(ZSET, if incr { "zincr" } else { "zadd" }, a[1]);
    }
    if incr {
        match r.2 {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(r.0 + if ch { r.1 } else { 0 });
    }
    Ok(())
}

pub fn zincrby(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let args: Vec<&[u8]> = vec![b"zadd", a[1], b"incr", a[2], a[3]];
    zadd(ctx, &args)
}

pub fn zrem(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let Some(z) = zset_mut(slot, false)? else {
            return Ok(0);
        };
        Ok::<_, CmdError>(a[2..].iter().filter(|m| z.remove(m).is_some()).count())
    })?;
    if n > 0 {
        ctx.notify_emptied(ZSET, "zrem", a[1]);
    }
    ctx.reply_changed(n);
    Ok(())
}

pub fn zcard(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = with_zset(ctx, a[1], |z| z.len())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn zscore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    match with_zset(ctx, a[1], |z| z.score(a[2]))?.flatten() {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zmscore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let scores =
        with_zset(ctx, a[1], |z| a[2..].iter().map(|m| z.score(m)).collect::<Vec<_>>())?.unwrap_or_else(|| vec![None; a.len() - 2]);
    ctx.out.array(scores.len());
    for s in scores {
        match s {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn rank_generic(ctx: &mut Ctx, a: &[&[u8]], rev: bool) -> CmdResult {
    let r = with_zset(ctx, a[1], |z| z.rank(a[2]).map(|r| if rev { z.len() - 1 - r } else { r }))?.flatten();
    match r {
        Some(r) => ctx.out.int(r as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zrank(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, a, false)
}

pub fn zrevrank(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    rank_generic(ctx, a, true)
}

pub fn parse_score_bound(a: &[u8]) -> Result<ScoreBound, CmdError> {
    let (exclusive, rest) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let value = parse_f64(rest).ok_or(CmdError::MinMaxNotFloat)?;
    Ok(ScoreBound { value, exclusive })
}

pub fn parse_lex_bound(a: &[u8]) -> Result<LexBound, CmdError> {
    match a {
        b"-" => Ok(LexBound::NegInf),
        b"+" => Ok(LexBound::PosInf),
        [b'[', rest @ ..] => Ok(LexBound::Incl(rest.to_vec())),
        [b'(', rest @ ..] => Ok(LexBound::Excl(rest.to_vec())),
        _ => Err(CmdError::LexRange),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed range request, shared by ZRANGE and its older spellings.
struct RangeSpec<'a> {
    by: By,
    rev: bool,
    min: &'a [u8],
    max: &'a [u8],
    limit: Option<(i64, i64)>,
    withscores: bool,
}

fn collect_range(z: &ZSetValue, r: &RangeSpec) -> Result<Scored, CmdError> {
    let own = |(m, s): (&[u8], f64)| (m.to_vec(), s);
    let (offset, count) = r.limit.unwrap_or((0, -1));
    if offset < 0 {
        return Ok(Vec::new());
    }
    let take = if count < 0 { usize::MAX } else { count as usize };
    let page = |it: Box<dyn Iterator<Item = (&[u8], f64)> + '_>| it.skip(offset as usize).take(take).map(own).collect();
    Ok(match r.by {
        By::Rank => {
            let (start, end) = (int(r.min)?, int(r.max)?);
            match clamp_range(start, end, z.len()) {
                None => Vec::new(),
                Some((s, e)) if r.rev => z.by_rank(z.len() - 1 - e, z.len() - 1 - s).rev().map(own).collect(),
                Some((s, e)) => z.by_rank(s, e).map(own).collect(),
            }
        }
        By::Score => {
            let (min, max) = (parse_score_bound(r.min)?, parse_score_bound(r.max)?);
            if r.rev { page(Box::new(z.range_by_score(min, max).rev())) } else { page(Box::new(z.range_by_score(min, max))) }
        }
        By::Lex => {
            let (min, max) = (parse_lex_bound(r.min)?, parse_lex_bound(r.max)?);
            if r.rev { page(Box::new(z.range_by_lex(&min, &max).rev())) } else { page(z.range_by_lex(&min, &max)) }
        }
    })
}

/// Parses options after `key min max`, from index `from`.
fn parse_range_opts<'a>(a: &[&'a [u8]], from: usize, mut spec: RangeSpec<'a>, unified: bool) -> Result<RangeSpec<'a>, CmdError> {
    let mut i = from;
    while i < a.len() {
        let o = lower(a[i]);
        match o.as_str() {
            "withscores" if spec.by != By::Lex || unified => spec.withscores = true,
            "limit" if i + 2 < a.len() => {
                spec.limit = Some((int(a[i + 1])?, int(a[i + 2])?));
                i += 2;
            }
            "byscore" if unified && spec.by == By::Rank => spec.by = By::Score,
            "bylex" if unified && spec.by == By::Rank => spec.by = By::Lex,
            "rev" if unified => spec.rev = true,
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    if spec.limit.is_some() && spec.by == By::Rank {
        return Err(CmdError::err("syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
    }
    if spec.withscores && spec.by == By::Lex {
        return Err(CmdError::err("syntax error, WITHSCORES not supported in combination with BYLEX"));
    }
    if spec.rev && spec.by != By::Rank {
        std::mem::swap(&mut spec.min, &mut spec.max);
    }
    Ok(spec)
}

fn range_reply(ctx: &mut Ctx, key: &[u8], spec: RangeSpec) -> CmdResult {
    let items = match with_zset(ctx, key, |z| collect_range(z, &spec))? {
        Some(r) => r?,
        None => {
            // Bounds are validated even for a missing key.
            collect_range(&ZSetValue::default(), &spec)?
        }
    };
    reply_scored(ctx.out, &items, spec.withscores);
    Ok(())
}

fn spec<'a>(by: By, rev: bool, min: &'a [u8], max: &'a [u8]) -> RangeSpec<'a> {
    RangeSpec { by, rev, min, max, limit: None, withscores: false }
}

pub fn zrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Rank, false, a[2], a[3]), true)?;
    range_reply(ctx, a[1], s)
}

pub fn zrevrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Rank, true, a[2], a[3]), false)?;
    range_reply(ctx, a[1], s)
}

pub fn zrangebyscore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Score, false, a[2], a[3]), false)?;
    range_reply(ctx, a[1], s)
}

pub fn zrevrangebyscore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Score, true, a[3], a[2]), false)?;
    range_reply(ctx, a[1], RangeSpec { min: a[3], max: a[2], ..s })
}

pub fn zrangebylex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Lex, false, a[2], a[3]), false)?;
    range_reply(ctx, a[1], s)
}

pub fn zrevrangebylex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 4, spec(By::Lex, true, a[3], a[2]), false)?;
    range_reply(ctx, a[1], RangeSpec { min: a[3], max: a[2], ..s })
}

pub fn zrangestore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let s = parse_range_opts(a, 5, spec(By::Rank, false, a[3], a[4]), true)?;
    if s.withscores {
        return Err(CmdError::Syntax);
    }
    let items = match with_zset(ctx, a[2], |z| collect_range(z, &s))? {
        Some(r) => r?,
        None => collect_range(&ZSetValue::default(), &s)?,
    };
    store_scored(ctx, a[1], &items, "zrangestore");
    ctx.out.int(items.len() as i64);
    Ok(())
}

/// Stores a *STORE result (`event` on it), or deletes `dst` when the
/// result is empty.
fn store_scored(ctx: &mut Ctx, dst: &[u8], items: &[(Vec<u8>, f64)], event: &str) {
    let value = (!items.is_empty()).then(|| {
        let mut z = ZSetValue::default();
        items.iter().for_each(|(m, s)| {
            z.insert(m, *s);
        });
        Value::ZSet(Box::new(z))
    });
    ctx.store_or_delete(dst, value, ZSET, event);
}

fn count_generic(ctx: &mut Ctx, a: &[&[u8]], by: By) -> CmdResult {
    let s = spec(by, false, a[2], a[3]);
    let n = match with_zset(ctx, a[1], |z| collect_range(z, &s).map(|v| v.len()))? {
        Some(r) => r?,
        None => collect_range(&ZSetValue::default(), &s)?.len(),
    };
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zcount(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    count_generic(ctx, a, By::Score)
}

pub fn zlexcount(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    count_generic(ctx, a, By::Lex)
}

fn remrange_generic(ctx: &mut Ctx, a: &[&[u8]], by: By) -> CmdResult {
    let s = spec(by, false, a[2], a[3]);
    if by != By::Rank {
        collect_range(&ZSetValue::default(), &s)?;
    } else {
        int(a[2])?;
        int(a[3])?;
    }
    let now = ctx.now_ms;
    let n = ctx.db().write(a[1], now, |slot| {
        let Some(z) = zset_mut(slot, false)? else {
            return Ok(0);
        };
        let victims = collect_range(z, &s)?;
        victims.iter().for_each(|(m, _)| {
            z.remove(m);
        });
        Ok::<_, CmdError>(victims.len())
    })?;
    if n > 0 {
        let event = match by {
            By::Rank => "zremrangebyrank",
            By::Score => "zremrangebyscore",
            By::Lex => "zremrangebylex",
        };
        ctx.notify_emptied(ZSET, event, a[1]);
    }
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zremrangebyrank(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    remrange_generic(ctx, a, By::Rank)
}

pub fn zremrangebyscore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    remrange_generic(ctx, a, By::Score)
}

pub fn zremrangebylex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    remrange_generic(ctx, a, By::Lex)
}

/// Pops up to `n` lowest (or highest) members; None if the key is missing.
fn pop_n(db: &Keyspace, key: &[u8], now: u64, max: bool, n: usize) -> Result<Option<Scored>, CmdError> {
    db.write(key, now, |slot| {
        let Some(z) = zset_mut(slot, false)? else {
            return Ok(None);
        };
        let picked: Scored = if max {
            z.iter().rev().take(n).map(|(m, s)| (m.to_vec(), s)).collect()
        } else {
            z.iter().take(n).map(|(m, s)| (m.to_vec(), s)).collect()
        };
        picked.iter().for_each(|(m, _)| {
            z.remove(m);
        });
        Ok(Some(picked))
    })
}

/// A pop's events: `zpopmin`/`zpopmax`, then `del` when it took the last member.
fn popped_events(ctx: &Ctx, key: &[u8], max: bool) {
    ctx.notify_emptied(ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
}

fn zpop_generic(ctx: &mut Ctx, a: &[&[u8]], max: bool) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = a.get(2).map(|c| super::lists::positive_count(c)).transpose()?;
    let items = pop_n(ctx.db(), a[1], ctx.now_ms, max, count.unwrap_or(1))?.unwrap_or_default();
    if !items.is_empty() {
        popped_events(ctx, a[1], max);
    }
    if count.is_none() && ctx.out.resp3 {
        // Without COUNT, RESP3 gets the single pair flat.
        ctx.out.array(items.len() * 2);
        for (m, s) in &items {
            ctx.out.bulk(m);
            ctx.out.double(*s);
        }
    } else {
        reply_scored(ctx.out, &items, true);
    }
    Ok(())
}

pub fn zpopmin(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, a, false)
}

pub fn zpopmax(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    zpop_generic(ctx, a, true)
}

fn first_nonempty(ctx: &Ctx, keys: &[&[u8]], max: bool, count: usize) -> Result<Option<(Vec<u8>, Scored)>, CmdError> {
    for k in keys {
        if let Some(r) = ctx.db().read(k, ctx.now_ms, false, |e| as_zset(&e.value).map(|_| ())) {
            r?;
        }
    }
    for k in keys {
        if let Some(v) = pop_n(ctx.db(), k, ctx.now_ms, max, count)?
            && !v.is_empty()
        {
            popped_events(ctx, k, max);
            return Ok(Some((k.to_vec(), v)));
        }
    }
    Ok(None)
}

fn bzpop_generic(ctx: &mut Ctx, a: &[&[u8]], max: bool) -> CmdResult {
    let timeout = timeout_ms(a[a.len() - 1])?;
    let keys = &a[1..a.len() - 1];
    match first_nonempty(ctx, keys, max, 1)? {
        Some((k, v)) => {
            ctx.out.array(3);
            ctx.out.bulk(&k);
            ctx.out.bulk(&v[0].0);
            ctx.out.double(v[0].1);
        }
        None if ctx.in_exec => ctx.out.null_array(),
        None => block_on(ctx, keys, timeout),
    }
    Ok(())
}

pub fn bzpopmin(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, a, false)
}

pub fn bzpopmax(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    bzpop_generic(ctx, a, true)
}

fn min_max(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "min") {
        Ok(false)
    } else if is(a, "max") {
        Ok(true)
    } else {
        Err(CmdError::Syntax)
    }
}

fn reply_mpop(ctx: &mut Ctx, key: &[u8], items: &[(Vec<u8>, f64)]) {
    ctx.out.array(2);
    ctx.out.bulk(key);
    ctx.out.array(items.len());
    for (m, s) in items {
        ctx.out.array(2);
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
}

pub fn zmpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (keys, wh, count) = parse_mpop(a, 1)?;
    let max = min_max(wh)?;
    match first_nonempty(ctx, &keys, max, count)? {
        Some((k, v)) => reply_mpop(ctx, &k, &v),
        None => ctx.out.null_array(),
    }
    Ok(())
}

pub fn bzmpop(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let timeout = timeout_ms(a[1])?;
    let (keys, wh, count) = parse_mpop(a, 2)?;
    let max = min_max(wh)?;
    match first_nonempty(ctx, &keys, max, count)? {
        Some((k, v)) => reply_mpop(ctx, &k, &v),
        None if ctx.in_exec => ctx.out.null_array(),
        None => block_on(ctx, &keys, timeout),
    }
    Ok(())
}

pub fn zrandmember(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (withscores, count) = random_args(a, "withscores")?;
    let (db, mark) = (ctx.db(), ctx.out.buf.len());
    let out = &mut *ctx.out;
    let done = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let z = as_zset(&e.value)?;
        Ok::<_, CmdError>(reply_random(out, z.len(), count, withscores, |out, i, with| {
            if let Some((m, score)) = z.by_rank(i, i).next() {
                out.bulk(m);
                if with {
                    out.double(score);
                }
            }
        }))
    });
    ctx.looked_up(a[1], done.is_some());
    let done = done.transpose()?;
    ctx.end_random_reply(done, count.is_none(), mark);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(agg: Aggregate, a: f64, b: f64) -> f64 {
    match agg {
        Aggregate::Sum => {
            let s = a + b;
            if s.is_nan() { 0.0 } else { s }
        }
        Aggregate::Min => a.min(b),
        Aggregate::Max => a.max(b),
    }
}

/// Reads a zset or a plain set (members score 1) for the set operations.
fn load_scored(ctx: &Ctx, key: &[u8]) -> Result<Option<Scored>, CmdError> {
    let r = ctx
        .db()
        .read(key, ctx.now_ms, ctx.touch, |e| match &e.value {
            Value::ZSet(z) => Ok(z.iter().map(|(m, s)| (m.to_vec(), s)).collect()),
            Value::Set(s) => Ok(s.members().into_iter().map(|m| (m.to_vec(), 1.0)).collect()),
            _ => Err(CmdError::WrongType),
        })
        .transpose();
    ctx.looked_up(key, !matches!(r, Ok(None)));
    r
}

/// ZUNION/ZINTER/ZDIFF and their STORE forms; `at` is the numkeys index.
fn setop(ctx: &mut Ctx, a: &[&[u8]], at: usize, op: SetOp, store: Option<&[u8]>) -> CmdResult {
    let name = lower(a[0]);
    let numkeys = int(a[at])?;
    if numkeys < 1 {
        return Err(CmdError::err(format!("at least 1 input key is needed for '{name}' command")));
    }
    let numkeys = numkeys as usize;
    if at + numkeys >= a.len() {
        return Err(CmdError::Syntax);
    }
    let keys = &a[at + 1..at + 1 + numkeys];
    let mut weights = vec![1.0; numkeys];
    let (mut agg, mut withscores) = (Aggregate::Sum, false);
    let mut i = at + 1 + numkeys;
    while i < a.len() {
        let o = lower(a[i]);
        if o == "weights" && op != SetOp::Diff && i + numkeys < a.len() {
            for (w, arg) in weights.iter_mut().zip(&a[i + 1..=i + numkeys]) {
                *w = parse_f64(arg).ok_or(CmdError::err("weight value is not a float"))?;
            }
            i += numkeys;
        } else if o == "aggregate" && op != SetOp::Diff && i + 1 < a.len() {
            agg = match lower(a[i + 1]).as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => return Err(CmdError::Syntax),
            };
            i += 1;
        } else if o == "withscores" && store.is_none() {
            withscores = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let mut inputs = Vec::with_capacity(numkeys);
    for k in keys {
        inputs.push(load_scored(ctx, k)?);
    }
    let result = combine(inputs, &weights, agg, op);
    match store {
        Some(dst) => {
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_scored(ctx, dst, &result, event);
            ctx.out.int(result.len() as i64);
        }
        None => reply_scored(ctx.out, &result, withscores),
    }
    Ok(())
}

fn combine(inputs: Vec<Option<Scored>>, weights: &[f64], agg: Aggregate, op: SetOp) -> Scored {
    use std::collections::HashMap;
    let weigh = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() { 0.0 } else { v }
    };
    let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
    match op {
        SetOp::Union => {
            for (input, &w) in inputs.into_iter().zip(weights) {
                for (m, s) in input.unwrap_or_default() {
                    let v = weigh(s, w);
                    acc.entry(m).and_modify(|cur| *cur = aggregate(agg, *cur, v)).or_insert(v);
                }
            }
        }
        SetOp::Inter => {
            if inputs.iter().any(|i| i.is_none()) {
                return Vec::new();
            }
            let mut it = inputs.into_iter().zip(weights).map(|(i, &w)| (i.unwrap_or_default(), w));
            if let Some((first, w)) = it.next() {
                acc = first.into_iter().map(|(m, s)| (m, weigh(s, w))).collect();
            }
            for (input, w) in it {
                let map: HashMap<Vec<u8>, f64> = input.into_iter().collect();
                acc.retain(|m, _| map.contains_key(m));
                for (m, cur) in acc.iter_mut() {
                    *cur = aggregate(agg, *cur, weigh(map[m], w));
                }
            }
        }
        SetOp::Diff => {
            let mut it = inputs.into_iter();
            acc = it.next().flatten().unwrap_or_default().into_iter().collect();
            for input in it.flatten() {
                for (m, _) in input {
                    acc.remove(&m);
                }
            }
        }
    }
    let mut v: Scored = acc.into_iter().collect();
    v.sort_by(|x, y| x.1.partial_cmp(&y.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| x.0.cmp(&y.0)));
    v
}

pub fn zunion(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 1, SetOp::Union, None)
}

pub fn zinter(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 1, SetOp::Inter, None)
}

pub fn zdiff(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 1, SetOp::Diff, None)
}

pub fn zunionstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 2, SetOp::Union, Some(a[1]))
}

pub fn zinterstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 2, SetOp::Inter, Some(a[1]))
}

pub fn zdiffstore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setop(ctx, a, 2, SetOp::Diff, Some(a[1]))
}

pub fn zintercard(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    match int(a[1]) {
        Ok(n) if n < 1 => {
            return Err(CmdError::err("at least 1 input key is needed for 'zintercard' command"));
        }
        Ok(n) if n as usize > a.len() - 2 => return Err(CmdError::Syntax),
        _ => {}
    }
    let (keys, limit) = parse_card_args(a)?;
    let mut inputs = Vec::new();
    for k in &keys {
        inputs.push(load_scored(ctx, k)?);
    }
    let n = combine(inputs, &vec![1.0; keys.len()], Aggregate::Sum, SetOp::Inter).len();
    ctx.out.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// ZSCAN: a small sorted set in one reply, in score order (as Redis's
/// listpack is); a big one through the cursor walk HSCAN uses, which misses
/// no member present throughout the scan.
pub fn zscan(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    super::keys::parse_scan(a, 3, false)?;
    let (db, now, touch) = (ctx.db(), ctx.now_ms, ctx.touch);
    let scanned = db.read(a[1], now, touch, |e| {
        let z = as_zset(&e.value)?;
        if z.is_big() {
            return scan_parts(ctx, a, |cursor, count, emit| {
                z.scan(cursor, count, |m, s| emit(&[m, crate::protocol::reply::format_double(*s).as_bytes()]))
            });
        }
        let item = |i: usize| z.by_rank(i, i).next().map(|(m, s)| vec![m.to_vec(), crate::protocol::reply::format_double(s).into_bytes()]);
        scan_indexed(ctx, a, z.len(), true, &item)
    });
    if scanned.is_some() {
        ctx.keyhit();
    }
    scanned.unwrap_or_else(|| scan_missing(ctx, a))
}
