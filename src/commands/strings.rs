//! Strings: GET/SET and friends, counters, ranges, LCS.

use super::args::{float, int, is};
use super::notify::{GENERIC, STRING};
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::parse::parse_i64;
use crate::store::{Entry, Slot, Value};

/// The string at `v`, or WRONGTYPE.
pub fn as_str(v: &Value) -> Result<&[u8], CmdError> {
    match v {
        Value::Str(s, _) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

pub fn get(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], ctx.now_ms, ctx.touch, |e| as_str(&e.value).map(|s| out.bulk(s)));
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

/// How a write treats an existing expiry.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Ttl {
    Clear,
    Keep,
    At(u64),
}

/// Parses an expiry option value into an absolute time, as SET/GETEX do.
pub fn expire_arg(opt: &[u8], v: &[u8], now: u64, cmd: &str) -> Result<u64, CmdError> {
    let n = int(v)?;
    let bad = || CmdError::InvalidExpire(cmd.to_string());
    if n <= 0 {
        return Err(bad());
    }
    let ms = if is(opt, "ex") || is(opt, "exat") { n.checked_mul(1000).ok_or_else(bad)? } else { n };
    let at = if is(opt, "ex") || is(opt, "px") { ms.checked_add(now as i64).ok_or_else(bad)? } else { ms };
    Ok(at as u64)
}

pub fn set(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx, mut get, mut ttl) = (false, false, false, Ttl::Clear);
    let mut i = 3;
    let mut have_expire = false;
    while i < a.len() {
        let o = a[i];
        if is(o, "nx") && !xx {
            nx = true;
        } else if is(o, "xx") && !nx {
            xx = true;
        } else if is(o, "get") {
            get = true;
        } else if is(o, "keepttl") && !have_expire {
            have_expire = true;
            ttl = Ttl::Keep;
        } else if (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat")) && !have_expire && i + 1 < a.len() {
            have_expire = true;
            ttl = Ttl::At(expire_arg(o, a[i + 1], ctx.now_ms, "set")?);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let now = ctx.now_ms;
    // GET reads first: a missing key is a miss before the write's events.
    if get {
        read_before_write(ctx, a[1]);
    }
    // (stored, the old value when GET was asked: Some(None) for a missing key)
    type SetOutcome = (bool, Option<Option<Vec<u8>>>);
    let old = ctx.db().write(a[1], now, |slot| -> Result<SetOutcome, CmdError> {
        let old = if get { Some(slot.value().map(as_str).transpose()?.map(|s| s.to_vec())) } else { None };
        if (nx && slot.exists()) || (xx && !slot.exists()) {
            return Ok((false, old));
        }
        store_string(slot, a[2], ttl);
        Ok((true, old))
    })?;
    if old.0 {
        set_events(ctx, a[1], matches!(ttl, Ttl::At(_)));
    }
    match old {
        (_, Some(prev)) => ctx.out.bulk_opt(prev.as_deref()),
        (true, None) => ctx.out.ok(),
        (false, None) => ctx.out.null(),
    }
    Ok(())
}

/// SET's events: `set`, then `expire` when it gave the key an expiry.
#[inline]
fn set_events(ctx: &Ctx, key: &[u8], expires: bool) {
    ctx.notify(STRING, "set", key);
    if expires {
        ctx.notify(GENERIC, "expire", key);
    }
}

/// A command that reads `key` before writing it (SET ... GET, GETSET)
/// counts that read and reports a miss first, as Redis's read lookup does.
fn read_before_write(ctx: &Ctx, key: &[u8]) {
    ctx.looked_up(key, ctx.db().contains(key, ctx.now_ms));
}

/// Stores a string at the slot, replacing any value, with the expiry rule.
pub fn store_string(slot: &mut Slot, v: &[u8], ttl: Ttl) {
    let keep = match (ttl, slot.entry()) {
        (Ttl::Keep, Some(e)) => e.expire_at(),
        (Ttl::At(at), _) => Some(at),
        _ => None,
    };
    match slot.entry_mut() {
        Some(e) => {
            match &mut e.value {
                Value::Str(s, raw) => {
                    s.clear();
                    s.extend_from_slice(v);
                    if !s.spilled() || s.capacity() > s.len() * 2 {
                        s.shrink_to_fit();
                    }
                    *raw = false;
                }
                other => *other = Value::string(v),
            }
            e.set_expire(keep);
        }
        None => {
            let mut e = Entry::new(Value::string(v), slot.now_ms());
            e.set_expire(keep);
            slot.put(e);
        }
    }
}

pub fn setnx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let done = ctx.db().write(a[1], now, |slot| {
        if slot.exists() {
            return false;
        }
        store_string(slot, a[2], Ttl::Clear);
        true
    });
    if done {
        ctx.notify(STRING, "set", a[1]);
    }
    ctx.out.int(done as i64);
    Ok(())
}

fn setex_generic(ctx: &mut Ctx, a: &[&[u8]], unit: &[u8], name: &str) -> CmdResult {
    let at = expire_arg(unit, a[2], ctx.now_ms, name)?;
    let now = ctx.now_ms;
    ctx.db().write(a[1], now, |slot| store_string(slot, a[3], Ttl::At(at)));
    set_events(ctx, a[1], true);
    ctx.out.ok();
    Ok(())
}

pub fn setex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setex_generic(ctx, a, b"ex", "setex")
}

pub fn psetex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    setex_generic(ctx, a, b"px", "psetex")
}

pub fn mget(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (db, now) = (ctx.db(), ctx.now_ms);
    ctx.out.array(a.len() - 1);
    for k in &a[1..] {
        let out = &mut *ctx.out;
        let found = db.read(k, now, ctx.touch, |e| match &e.value {
            Value::Str(s, _) => out.bulk(s),
            _ => out.null(),
        });
        ctx.looked_up(k, found.is_some());
        if found.is_none() {
            ctx.out.null();
        }
    }
    Ok(())
}

fn mset_generic(ctx: &mut Ctx, a: &[&[u8]], nx: bool) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(CmdError::Arity(if nx { "msetnx" } else { "mset" }.into()));
    }
    let (db, now) = (ctx.db(), ctx.now_ms);
    if nx && a[1..].chunks(2).any(|kv| db.contains(kv[0], now)) {
        ctx.out.int(0);
        return Ok(());
    }
    for kv in a[1..].chunks(2) {
        db.write(kv[0], now, |slot| store_string(slot, kv[1], Ttl::Clear));
        ctx.notify(STRING, "set", kv[0]);
    }
    if nx {
        ctx.out.int(1)
    } else {
        ctx.out.ok()
    }
    Ok(())
}

pub fn mset(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, a, false)
}

pub fn msetnx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    mset_generic(ctx, a, true)
}

pub fn getset(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    read_before_write(ctx, a[1]);
    let old = ctx.db().write(a[1], now, |slot| {
        let old = slot.value().map(as_str).transpose()?.map(|s| s.to_vec());
        store_string(slot, a[2], Ttl::Clear);
        Ok::<_, CmdError>(old)
    })?;
    ctx.notify(STRING, "set", a[1]);
    ctx.out.bulk_opt(old.as_deref());
    Ok(())
}

pub fn getdel(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let old = ctx.db().write(a[1], now, |slot| {
        let old = slot.value().map(as_str).transpose()?.map(|s| s.to_vec());
        if old.is_some() {
            slot.remove();
        }
        Ok::<_, CmdError>(old)
    })?;
    ctx.looked_up(a[1], old.is_some());
    if old.is_some() {
        ctx.notify(GENERIC, "del", a[1]);
    }
    ctx.out.bulk_opt(old.as_deref());
    Ok(())
}

pub fn getex(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut change: Option<Option<u64>> = None;
    let mut i = 2;
    while i < a.len() {
        let o = a[i];
        if is(o, "persist") && change.is_none() {
            change = Some(None);
        } else if (is(o, "ex") || is(o, "px") || is(o, "exat") || is(o, "pxat")) && change.is_none() && i + 1 < a.len() {
            change = Some(Some(expire_arg(o, a[i + 1], ctx.now_ms, "getex")?));
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let now = ctx.now_ms;
    let val = ctx.db().write(a[1], now, |slot| {
        let Some(v) = slot.value() else {
            return Ok(None);
        };
        let v = as_str(v)?.to_vec();
        let event = match change {
            Some(Some(at)) if at <= now => {
                slot.remove();
                Some("del")
            }
            Some(Some(at)) => {
                slot.entry_mut().expect("exists").set_expire(Some(at));
                Some("expire")
            }
            // PERSIST of a key without an expiry changes nothing.
            Some(None) if slot.entry().is_some_and(|e| e.expire_at().is_some()) => {
                slot.entry_mut().expect("exists").set_expire(None);
                Some("persist")
            }
            _ => None,
        };
        Ok::<_, CmdError>(Some((v, event)))
    })?;
    ctx.looked_up(a[1], val.is_some());
    if let Some((_, Some(event))) = &val {
        ctx.notify(GENERIC, event, a[1]);
    }
    ctx.out.bulk_opt(val.as_ref().map(|(v, _)| &v[..]));
    Ok(())
}

fn max_len(ctx: &Ctx) -> usize {
    ctx.state.config.read().proto_max_bulk_len as usize
}

pub fn append(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (now, max) = (ctx.now_ms, max_len(ctx));
    let len = ctx.db().write(a[1], now, |slot| {
        if let Some(v) = slot.value() {
            let cur = as_str(v)?.len();
            if cur + a[2].len() > max {
                return Err(CmdError::StringTooLong);
            }
        }
        match slot.value_mut() {
            Some(Value::Str(s, raw)) => {
                s.extend_from_slice(a[2]);
                *raw = true;
                Ok(s.len())
            }
            _ => {
                slot.set(Value::string(a[2]));
                Ok(a[2].len())
            }
        }
    })?;
    ctx.notify(STRING, "append", a[1]);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn strlen(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let len = ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| as_str(&e.value).map(|s| s.len()));
    ctx.looked_up(a[1], len.is_some());
    let len = len.transpose()?;
    ctx.out.int(len.unwrap_or(0) as i64);
    Ok(())
}

/// Adds `delta` to the integer at `key`, creating it at 0.
fn incr_by(ctx: &mut Ctx, key: &[u8], delta: i64) -> CmdResult {
    let now = ctx.now_ms;
    let n = ctx.db().write(key, now, |slot| {
        let cur = match slot.value() {
            None => 0,
            Some(v) => parse_i64(as_str(v)?).ok_or(CmdError::NotInteger)?,
        };
        let new = cur.checked_add(delta).ok_or(CmdError::Overflow)?;
        let mut buf = itoa::Buffer::new();
        let text = buf.format(new).as_bytes();
        match slot.value_mut() {
            Some(Value::Str(s, raw)) => {
                s.clear();
                s.extend_from_slice(text);
                *raw = false;
            }
            _ => {
                slot.set(Value::string(text));
            }
        }
        Ok::<_, CmdError>(new)
    })?;
    ctx.notify(STRING, "incrby", key);
    ctx.out.int(n);
    Ok(())
}

pub fn incr(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    incr_by(ctx, a[1], 1)
}

pub fn decr(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    incr_by(ctx, a[1], -1)
}

pub fn incrby(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    incr_by(ctx, a[1], int(a[2])?)
}

pub fn decrby(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let d = int(a[2])?;
    if d == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_by(ctx, a[1], -d)
}

pub fn incrbyfloat(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    float(a[2])?;
    let now = ctx.now_ms;
    let text = ctx.db().write(a[1], now, |slot| {
        let cur: Vec<u8> = match slot.value() {
            None => b"0".to_vec(),
            Some(v) => as_str(v)?.to_vec(),
        };
        let text = add_floats(&cur, a[2])?;
        let keep = slot.entry().and_then(|e| e.expire_at());
        store_string(slot, text.as_bytes(), keep.map_or(Ttl::Clear, Ttl::At));
        Ok::<_, CmdError>(text)
    })?;
    ctx.notify(STRING, "incrbyfloat", a[1]);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

/// `a + b` formatted like Redis's long-double `%.17Lf` with trailing zeros
/// removed. Plain decimals are added exactly (which is what the long double
/// arithmetic rounds back to for them); anything else goes through f64.
pub fn add_floats(a: &[u8], b: &[u8]) -> Result<String, CmdError> {
    let x = float(a)?;
    let y = float(b)?;
    let sum = x + y;
    if !sum.is_finite() {
        return Err(CmdError::err("increment would produce NaN or Infinity"));
    }
    if let (Some(p), Some(q)) = (Decimal::parse(a), Decimal::parse(b))
        && let Some(s) = p.add(&q)
    {
        return Ok(s.to_string());
    }
    Ok(human_double(sum))
}

/// `%.17f` without trailing zeros, as Redis's `LD_STR_HUMAN`.
pub fn human_double(v: f64) -> String {
    let mut s = format!("{:.17}", v);
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" { "0".into() } else { s }
}

/// A small exact decimal: `mantissa * 10^-scale`.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    m: i128,
    scale: u32,
}

impl Decimal {
    fn parse(s: &[u8]) -> Option<Decimal> {
        let s = std::str::from_utf8(s).ok()?;
        let (neg, body) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
            return None;
        }
        if int.len() + frac.len() > 30 || frac.len() > 17 {
            return None;
        }
        let digits = format!("{int}{frac}");
        let m: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        Some(Decimal { m: if neg { -m } else { m }, scale: frac.len() as u32 })
    }

    fn add(&self, o: &Decimal) -> Option<Decimal> {
        let scale = self.scale.max(o.scale);
        let a = self.m.checked_mul(10i128.pow(scale - self.scale))?;
        let b = o.m.checked_mul(10i128.pow(scale - o.scale))?;
        Some(Decimal { m: a.checked_add(b)?, scale })
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let neg = self.m < 0;
        let digits = self.m.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = if digits.len() <= scale { format!("{}{}", "0".repeat(scale - digits.len() + 1), digits) } else { digits };
        let (int, frac) = padded.split_at(padded.len() - scale);
        let frac = frac.trim_end_matches('0');
        let zero = int.bytes().all(|c| c == b'0') && frac.is_empty();
        if neg && !zero {
            f.write_str("-")?;
        }
        f.write_str(int)?;
        if !frac.is_empty() {
            write!(f, ".{frac}")?;
        }
        Ok(())
    }
}

pub fn getrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (start, end) = (int(a[2])?, int(a[3])?);
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[1], ctx.now_ms, ctx.touch, |e| {
        let s = as_str(&e.value)?;
        out.bulk(string_range(s, start, end));
        Ok::<_, CmdError>(())
    });
    match found {
        Some(r) => {
            ctx.keyhit();
            r
        }
        None => {
            ctx.keymiss(a[1]);
            ctx.out.bulk(b"");
            Ok(())
        }
    }
}

/// GETRANGE's clamping (which differs from lists' for negative ends).
fn string_range(s: &[u8], mut start: i64, mut end: i64) -> &[u8] {
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return b"";
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        return b"";
    }
    &s[start as usize..=end as usize]
}

pub fn setrange(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let offset = int(a[2])?;
    if offset < 0 {
        return Err(CmdError::OutOfRange("offset"));
    }
    let (now, max) = (ctx.now_ms, max_len(ctx));
    let v = a[3];
    let len = ctx.db().write(a[1], now, |slot| {
        let cur = match slot.value() {
            Some(val) => as_str(val)?.len(),
            None if v.is_empty() => return Ok(0),
            None => 0,
        };
        if v.is_empty() {
            return Ok(cur);
        }
        if offset as usize + v.len() > max {
            return Err(CmdError::StringTooLong);
        }
        if !slot.exists() {
            slot.set(Value::string(b""));
        }
        let Some(Value::Str(s, raw)) = slot.value_mut() else { unreachable!("checked string") };
        let end = offset as usize + v.len();
        if s.len() < end {
            s.resize(end, 0);
        }
        s[offset as usize..end].copy_from_slice(v);
        *raw = true;
        Ok::<_, CmdError>(s.len())
    })?;
    if !v.is_empty() {
        ctx.notify(STRING, "setrange", a[1]);
    }
    ctx.out.int(len as i64);
    Ok(())
}

pub fn lcs(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut getlen, mut getidx, mut withmatchlen, mut minmatchlen) = (false, false, false, 0i64);
    let mut i = 3;
    while i < a.len() {
        if is(a[i], "len") {
            getlen = true;
        } else if is(a[i], "idx") {
            getidx = true;
        } else if is(a[i], "withmatchlen") {
            withmatchlen = true;
        } else if is(a[i], "minmatchlen") && i + 1 < a.len() {
            minmatchlen = int(a[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let fetch = |k: &[u8]| -> Result<Vec<u8>, CmdError> {
        let found = ctx.db().read(k, ctx.now_ms, ctx.touch, |e| as_str(&e.value).map(|s| s.to_vec()));
        ctx.looked_up(k, found.is_some());
        match found {
            None => Ok(Vec::new()),
            Some(Ok(v)) => Ok(v),
            Some(Err(_)) => Err(CmdError::err("The specified keys must contain string values")),
        }
    };
    let (x, y) = (fetch(a[1])?, fetch(a[2])?);
    if getidx && getlen {
        return Err(CmdError::err("If you want both the length and indexes, please just use IDX."));
    }
    if (x.len() as u64 + 1) * (y.len() as u64 + 1) > max_len(ctx) as u64 / 4 {
        return Err(CmdError::err("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"));
    }
    if getlen {
        // The length alone needs two rows of the table, not all of it.
        ctx.out.int(lcs_len(&x, &y) as i64);
        return Ok(());
    }
    // The table is memory the tenant makes the server hold: it must fit
    // what is left of the tenant's limit.
    if let Some(t) = &ctx.client.tenant {
        let room = t.limits().memory_bytes.saturating_sub(t.memory_used());
        if (x.len() as u64 + 1) * (y.len() as u64 + 1) * 4 > room {
            return Err(CmdError::err("Insufficient memory, transient memory for LCS exceeds the tenant's free memory"));
        }
    }
    lcs_reply(ctx, &x, &y, getidx, withmatchlen, minmatchlen as usize);
    Ok(())
}

/// Redis's LCS: the dynamic-programming table, then a walk back from the end
/// that builds the string and the matched ranges (last match first).
fn lcs_reply(ctx: &mut Ctx, x: &[u8], y: &[u8], getidx: bool, withlen: bool, minlen: usize) {
    let (al, bl) = (x.len(), y.len());
    let w = bl + 1;
    let mut t = vec![0u32; (al + 1) * w];
    for i in 1..=al {
        for j in 1..=bl {
            t[i * w + j] = if x[i - 1] == y[j - 1] { t[(i - 1) * w + j - 1] + 1 } else { t[(i - 1) * w + j].max(t[i * w + j - 1]) };
        }
    }
    let total = t[al * w + bl] as usize;
    let mut result = vec![0u8; total];
    let mut ranges: Vec<[usize; 5]> = Vec::new();
    let (mut i, mut j, mut idx) = (al, bl, total);
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (al, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if x[i - 1] == y[j - 1] {
            result[idx - 1] = x[i - 1];
            if a_start == al {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1
            } else {
                j -= 1
            }
            if a_start != al {
                emit = true;
            }
        }
        if emit {
            let mlen = a_end - a_start + 1;
            if minlen == 0 || mlen >= minlen {
                ranges.push([a_start, a_end, b_start, b_end, mlen]);
            }
            a_start = al;
        }
    }
    let out = &mut *ctx.out;
    if getidx {
        out.map(2);
        out.bulk(b"matches");
        out.array(ranges.len());
        for r in &ranges {
            out.array(2 + withlen as usize);
            out.array(2);
            out.int(r[0] as i64);
            out.int(r[1] as i64);
            out.array(2);
            out.int(r[2] as i64);
            out.int(r[3] as i64);
            if withlen {
                out.int(r[4] as i64);
            }
        }
        out.bulk(b"len");
        out.int(total as i64);
    } else {
        out.bulk(&result);
    }
}

/// The length of the longest common subsequence, from two rows of the
/// dynamic-programming table.
fn lcs_len(x: &[u8], y: &[u8]) -> u32 {
    let (mut prev, mut row) = (vec![0u32; y.len() + 1], vec![0u32; y.len() + 1]);
    for &a in x {
        for (j, &b) in y.iter().enumerate() {
            row[j + 1] = if a == b { prev[j] + 1 } else { prev[j + 1].max(row[j]) };
        }
        std::mem::swap(&mut prev, &mut row);
    }
    prev[y.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_sums_read_like_redis() {
        assert_eq!(add_floats(b"0.1", b"0.2").unwrap(), "0.3");
        assert_eq!(add_floats(b"10.50", b"0.1").unwrap(), "10.6");
        assert_eq!(add_floats(b"5", b"-5").unwrap(), "0");
        assert_eq!(add_floats(b"3.0e3", b"200").unwrap(), "3200");
        assert!(add_floats(b"1", b"inf").is_err());
    }

    #[test]
    fn getrange_clamps() {
        assert_eq!(string_range(b"Hello World", 0, 3), b"Hell");
        assert_eq!(string_range(b"Hello World", -3, -1), b"rld");
        assert_eq!(string_range(b"Hello World", 5, 3), b"");
        assert_eq!(string_range(b"Hello World", 0, -100), b"H");
    }
}
