//! Generic key commands: existence, deletion, renaming, expiry, SCAN, OBJECT.

use super::args::{int, is, lower};
use super::notify::GENERIC;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::parse::parse_i64;
use crate::store::Value;

pub fn del(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let mut n = 0;
    for k in &a[1..] {
        if db.remove(k, now).is_some() {
            ctx.notify(GENERIC, "del", k);
            n += 1;
        }
    }
    ctx.reply_changed(n);
    Ok(())
}

pub fn exists(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = a[1..].iter().filter(|k| found(ctx, k, false)).count();
    ctx.out.int(n as i64);
    Ok(())
}

pub fn touch(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = a[1..].iter().filter(|k| found(ctx, k, true)).count();
    ctx.out.int(n as i64);
    Ok(())
}

/// Whether `key` exists (touching it if asked); a miss is a `keymiss`.
fn found(ctx: &Ctx, key: &[u8], touch: bool) -> bool {
    let hit = ctx.db().read(key, ctx.now_ms, touch, |_| ()).is_some();
    ctx.looked_up(key, hit);
    hit
}

pub fn type_(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = ctx.db().read(a[1], ctx.now_ms, false, |e| e.value.kind().name());
    ctx.looked_up(a[1], t.is_some());
    ctx.out.simple(t.unwrap_or("none"));
    Ok(())
}

pub fn keys(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let keys = ctx.db().keys(a[1], ctx.now_ms);
    ctx.out.bulks(keys.iter().map(|k| &k[..]));
    Ok(())
}

/// Options shared by SCAN, HSCAN, SSCAN and ZSCAN.
pub struct ScanOpts {
    pub cursor: u64,
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    /// TYPE filter, as a type name (an unknown name matches nothing).
    pub kind: Option<String>,
}

pub fn parse_scan(a: &[&[u8]], from: usize, allow_type: bool) -> Result<ScanOpts, CmdError> {
    let cursor = std::str::from_utf8(a[from - 1]).ok().and_then(|s| s.parse::<u64>().ok()).ok_or(CmdError::err("invalid cursor"))?;
    let mut o = ScanOpts { cursor, pattern: None, count: 10, kind: None };
    let mut i = from;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(CmdError::Syntax);
        }
        if is(a[i], "count") {
            let n = int(a[i + 1])?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            o.count = n as usize;
        } else if is(a[i], "match") {
            o.pattern = (a[i + 1] != b"*").then(|| a[i + 1].to_vec());
        } else if is(a[i], "type") && allow_type {
            o.kind = Some(lower(a[i + 1]));
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    Ok(o)
}

pub fn scan(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let o = parse_scan(a, 2, true)?;
    let mut keys = Vec::new();
    let next = ctx.db().scan(o.cursor, o.count, ctx.now_ms, |k, e| {
        let type_ok = o.kind.as_deref().is_none_or(|t| t == e.value.kind().name());
        if type_ok && o.pattern.as_deref().is_none_or(|p| crate::store::glob::matches(p, k, false)) {
            keys.push(k.to_vec());
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.bulks(keys.iter().map(|k| &k[..]));
    Ok(())
}

pub fn randomkey(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let k = ctx.db().sample(1, ctx.now_ms, false).pop().map(|s| s.key);
    ctx.out.bulk_opt(k.as_deref());
    Ok(())
}

fn rename_generic(ctx: &mut Ctx, a: &[&[u8]], nx: bool) -> CmdResult {
    let (db, now) = (ctx.db(), ctx.now_ms);
    if !db.contains(a[1], now) {
        return Err(CmdError::NoSuchKey);
    }
    if a[1] == a[2] {
        if nx {
            ctx.out.int(0)
        } else {
            ctx.out.ok()
        }
        return Ok(());
    }
    if nx && db.contains(a[2], now) {
        ctx.out.int(0);
        return Ok(());
    }
    let entry = db.remove(a[1], now).ok_or(CmdError::NoSuchKey)?;
    // Redis deletes the destination first, so it is a new key either way.
    db.write(a[2], now, |slot| {
        slot.remove();
        slot.put(entry)
    });
    ctx.notify(GENERIC, "rename_from", a[1]);
    ctx.notify(GENERIC, "rename_to", a[2]);
    if nx {
        ctx.out.int(1)
    } else {
        ctx.out.ok()
    }
    Ok(())
}

pub fn rename(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, a, false)
}

pub fn renamenx(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    rename_generic(ctx, a, true)
}

fn db_index(ctx: &Ctx, arg: &[u8]) -> Result<usize, CmdError> {
    let n = int(arg)?;
    if n < 0 || n as usize >= super::databases_allowed(ctx) {
        return Err(CmdError::DbIndex);
    }
    Ok(n as usize)
}

pub fn copy(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut target, mut replace) = (ctx.client.db, false);
    let mut i = 3;
    while i < a.len() {
        if is(a[i], "replace") {
            replace = true;
        } else if is(a[i], "db") && i + 1 < a.len() {
            target = db_index(ctx, a[i + 1])?;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if target == ctx.client.db && a[1] == a[2] {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let now = ctx.now_ms;
    let entry = ctx.db().read(a[1], now, false, |e| e.clone());
    ctx.looked_up(a[1], entry.is_some());
    let Some(entry) = entry else {
        ctx.out.int(0);
        return Ok(());
    };
    let dst = ctx.space().db(target);
    let done = dst.write(a[2], now, |slot| {
        if slot.exists() && !replace {
            return false;
        }
        // REPLACE deletes the old key first: the copy is a new key.
        slot.remove();
        slot.put(entry);
        true
    });
    if done {
        ctx.notify_in(target, GENERIC, "copy_to", a[2]);
    }
    ctx.out.int(done as i64);
    Ok(())
}

/// SWAPDB: two of the space's databases (a tenant's own) trade contents;
/// watchers of keys in either are flagged and blocked clients re-check.
pub fn swapdb(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let first = int(a[1]).map_err(|_| CmdError::err("invalid first DB index"))?;
    let second = int(a[2]).map_err(|_| CmdError::err("invalid second DB index"))?;
    let n = super::databases_allowed(ctx) as i64;
    if !(0..n).contains(&first) || !(0..n).contains(&second) {
        return Err(CmdError::DbIndex);
    }
    let (space, now) = (ctx.space(), ctx.now_ms);
    let (x, y) = (space.db(first as usize), space.db(second as usize));
    x.touch_watched_swapped(y, now);
    y.touch_watched_swapped(x, now);
    space.swap(first as usize, second as usize);
    space.blocking.signal_all();
    ctx.out.ok();
    Ok(())
}

pub fn move_(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let target = db_index(ctx, a[2])?;
    if target == ctx.client.db {
        return Err(CmdError::err("source and destination objects are the same"));
    }
    let now = ctx.now_ms;
    let src = ctx.db();
    let dst = ctx.space().db(target);
    if !src.contains(a[1], now) || dst.contains(a[1], now) {
        ctx.out.int(0);
        return Ok(());
    }
    if let Some(e) = src.remove(a[1], now) {
        dst.put(a[1], e, now);
    }
    ctx.notify(GENERIC, "move_from", a[1]);
    ctx.notify_in(target, GENERIC, "move_to", a[1]);
    ctx.out.int(1);
    Ok(())
}

/// EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT: `seconds` says the unit, `relative`
/// whether the argument is added to now.
fn expire_generic(ctx: &mut Ctx, a: &[&[u8]], seconds: bool, relative: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[3..] {
        match lower(o).as_str() {
            "nx" => nx = true,
            "xx" => xx = true,
            "gt" => gt = true,
            "lt" => lt = true,
            _ => {
                return Err(CmdError::err(format!("Unsupported option {}", String::from_utf8_lossy(o))));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::err("NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CmdError::err("GT and LT options at the same time are not compatible"));
    }
    let mut when = int(a[2])?;
    let bad = || CmdError::InvalidExpire(lower(a[0]));
    if seconds {
        when = when.checked_mul(1000).ok_or_else(bad)?;
    }
    let now = ctx.now_ms;
    if relative {
        when = when.checked_add(now as i64).ok_or_else(bad)?;
    }
    let done = ctx.db().write(a[1], now, |slot| {
        let cur = slot.entry().map(|e| e.expire_at())?;
        let refused = match cur {
            Some(c) => nx || (gt && when <= c as i64) || (lt && when >= c as i64),
            None => xx || gt,
        };
        if refused {
            return None;
        }
        if when <= now as i64 {
            slot.remove();
            Some("del")
        } else {
            slot.entry_mut().expect("exists").set_expire(Some(when as u64));
            Some("expire")
        }
    });
    if let Some(event) = done {
        ctx.notify(GENERIC, event, a[1]);
    }
    ctx.out.int(done.is_some() as i64);
    Ok(())
}

pub fn expire(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, a, true, true)
}

pub fn pexpire(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, a, false, true)
}

pub fn expireat(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, a, true, false)
}

pub fn pexpireat(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, a, false, false)
}

/// TTL-family replies: -2 missing, -1 persistent, else the value.
fn ttl_generic(ctx: &mut Ctx, key: &[u8], f: impl FnOnce(u64, u64) -> i64) -> CmdResult {
    let now = ctx.now_ms;
    let at = ctx.db().read(key, now, false, |e| e.expire_at());
    ctx.looked_up(key, at.is_some());
    let r = match at {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) => f(at, now),
    };
    ctx.out.int(r);
    Ok(())
}

pub fn ttl(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, a[1], |at, now| ((at.saturating_sub(now) + 500) / 1000) as i64)
}

pub fn pttl(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, a[1], |at, now| at.saturating_sub(now) as i64)
}

pub fn expiretime(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, a[1], |at, _| (at / 1000) as i64)
}

pub fn pexpiretime(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, a[1], |at, _| at as i64)
}

pub fn persist(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    let done = ctx.db().write(a[1], now, |slot| match slot.entry().map(|e| e.expire_at()) {
        Some(Some(_)) => {
            slot.entry_mut().expect("exists").set_expire(None);
            1
        }
        _ => 0,
    });
    if done == 1 {
        ctx.notify(GENERIC, "persist", a[1]);
    }
    ctx.out.int(done);
    Ok(())
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Print this help.",
];

pub fn help_reply(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l);
    }
}

pub fn object(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    if sub == "help" && a.len() == 2 {
        help_reply(ctx, OBJECT_HELP);
        return Ok(());
    }
    if !["encoding", "freq", "idletime", "refcount"].contains(&sub.as_str()) {
        return Err(CmdError::UnknownSubcommand { cmd: "OBJECT".into(), sub: String::from_utf8_lossy(a[1]).into() });
    }
    if a.len() != 3 {
        return Err(CmdError::Arity(format!("object|{sub}")));
    }
    let lfu = lfu_policy(ctx);
    if sub == "freq" && !lfu {
        return Err(CmdError::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    if sub == "idletime" && lfu {
        return Err(CmdError::err(
            "An LRU maxmemory policy is not selected, access time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    let now = ctx.now_ms;
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.read(a[2], now, false, |e| match sub.as_str() {
        "encoding" => out.bulk(e.value.encoding().as_bytes()),
        "freq" => out.int(e.lfu(now) as i64),
        "idletime" => out.int(e.idle_secs(now) as i64),
        _ => out.int(refcount(&e.value)),
    });
    // Redis's OBJECT counts its lookup without announcing a miss.
    match found {
        Some(_) => ctx.keyhit(),
        None => {
            ctx.quiet_miss();
            ctx.out.null();
        }
    }
    Ok(())
}

/// Whether keys are judged by access frequency rather than idle time. A
/// tenant's keys are evicted by its own policy, which says which.
pub fn lfu_policy(ctx: &Ctx) -> bool {
    match &ctx.client.tenant {
        Some(t) => t.profile().eviction.contains("lfu"),
        None => ctx.state.config.read().maxmemory_policy.contains("lfu"),
    }
}

/// Redis shares the integers 0..10000 between keys.
fn refcount(v: &Value) -> i64 {
    match v {
        Value::Str(s, false) if parse_i64(s).is_some_and(|n| (0..10000).contains(&n)) => i32::MAX as i64,
        _ => 1,
    }
}

pub fn dbsize(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    ctx.out.int(ctx.db().len() as i64);
    Ok(())
}

pub fn flushdb(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    flush_mode(a)?;
    ctx.db().clear();
    tell_trackers_of_flush(ctx);
    ctx.out.ok();
    Ok(())
}

pub fn flushall(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    flush_mode(a)?;
    ctx.space().clear();
    tell_trackers_of_flush(ctx);
    ctx.out.ok();
    Ok(())
}

/// Every tracking client of the space: all it cached is invalid (Redis
/// does this for FLUSHDB as for FLUSHALL).
fn tell_trackers_of_flush(ctx: &Ctx) {
    let space = ctx.space();
    space.tracking.flushed(space.events.delivery(ctx.now_ms));
}

fn flush_mode(a: &[&[u8]]) -> CmdResult {
    match a.len() {
        1 => Ok(()),
        2 if is(a[1], "async") || is(a[1], "sync") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}
