//! DUMP and RESTORE: a key's value as a Redis 7.0 payload, and back.
//!
//! RESTORE checks what Redis checks in Redis's order (options, an existing
//! key, the TTL, the payload's envelope, then its body), and decodes the
//! whole value before anything is touched: a payload that fails leaves the
//! old key as it was. A tenant's payload is decoded within the memory it
//! has left (the arguments were admitted before the handler ran, but LZF
//! lets a small payload stand for a large value), so a value that would
//! take the tenant past its limit is refused before it is built.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is};
use super::{CmdError, CmdResult, Ctx, keys};
use crate::store::Entry;
use crate::store::dump::{self, DumpError, Limits};
use crate::tenancy::TenantError;

pub fn dump(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    // A clone shares a big collection's storage: the encoding runs after
    // the shard's lock is released.
    let value = ctx.db().read(a[1], ctx.now_ms, ctx.touch, |e| e.value.clone());
    ctx.looked_up(a[1], value.is_some());
    match value {
        Some(v) => ctx.out.bulk(&dump::encode(&v)),
        None => ctx.out.null(),
    }
    Ok(())
}

/// RESTORE's options after the payload.
#[derive(Default)]
struct Options {
    replace: bool,
    absttl: bool,
    idle_secs: Option<u64>,
    freq: Option<u8>,
}

/// Left to right as Redis reads them: IDLETIME and FREQ each need a value
/// and exclude each other; the first bad value is the error.
fn parse_options(args: &[&[u8]]) -> Result<Options, CmdError> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is(args[i], "replace") {
            o.replace = true;
        } else if is(args[i], "absttl") {
            o.absttl = true;
        } else if is(args[i], "idletime") && has_value && o.freq.is_none() {
            let n = int(args[i + 1])?;
            if n < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            o.idle_secs = Some(n as u64);
            i += 1;
        } else if is(args[i], "freq") && has_value && o.idle_secs.is_none() {
            let n = int(args[i + 1])?;
            o.freq = Some(u8::try_from(n).map_err(|_| CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"))?);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    Ok(o)
}

fn busy() -> CmdError {
    CmdError::msg("BUSYKEY Target key name already exists.")
}

/// What the payload may decode to: strings up to proto-max-bulk-len, and
/// for a tenant no more than the memory it has left.
fn limits(ctx: &Ctx) -> Limits {
    let max_bulk = usize::try_from(ctx.state.proto_max_bulk_len.load(Relaxed)).unwrap_or(usize::MAX);
    let room = ctx.client.tenant.as_ref().map_or(u64::MAX, |t| t.limits().memory_bytes.saturating_sub(t.memory_used()));
    Limits { max_bulk, max_decoded: usize::try_from(room).unwrap_or(usize::MAX) }
}

fn decode_error(ctx: &Ctx, e: DumpError) -> CmdError {
    match (e, &ctx.client.tenant) {
        (DumpError::TooLarge, Some(t)) => {
            t.metrics.refuse(crate::tenancy::tenant::Refusal::Memory);
            let limit = t.limits().memory_bytes;
            CmdError::msg(TenantError::Oom { id: t.id().into(), used: t.memory_used(), limit }.to_string())
        }
        (DumpError::TooLarge, None) => CmdError::msg("OOM command not allowed when used memory > 'maxmemory'."),
        (e, _) => CmdError::msg(e.to_string()),
    }
}

pub fn restore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let o = parse_options(&a[4..])?;
    let (db, now) = (ctx.db(), ctx.now_ms);
    if !o.replace && db.contains(a[1], now) {
        return Err(busy());
    }
    let ttl = int(a[2])?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let value = dump::decode(a[3], limits(ctx)).map_err(|e| decode_error(ctx, e))?;
    // 0 is no expiry; Redis adds a relative TTL to now without checking
    // for overflow (a wrapped time is in the past).
    let expire_at = match ttl {
        0 => None,
        t if o.absttl => Some(t),
        t => Some(t.wrapping_add(now as i64)),
    };
    let lfu = keys::lfu_policy(ctx);
    let changed = db.write(a[1], now, |slot| {
        if slot.exists() && !o.replace {
            return Err(busy());
        }
        // REPLACE deletes the old key first: the restored one is new.
        let deleted = slot.remove().is_some();
        if expire_at.is_some_and(|at| at <= now as i64) {
            // Already expired: nothing is created, the old key goes.
            return Ok(deleted.then_some("del"));
        }
        let mut entry = Entry::new(value, now);
        entry.set_access(now, lfu, o.idle_secs, o.freq);
        entry.set_expire(expire_at.map(|at| at as u64));
        slot.put(entry);
        Ok(Some("restore"))
    })?;
    if let Some(event) = changed {
        ctx.notify(super::notify::GENERIC, event, a[1]);
    }
    ctx.client.unchanged = changed.is_none();
    ctx.out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Result<Options, CmdError> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        parse_options(&a)
    }

    #[test]
    fn options_parse_as_redis_reads_them() {
        let o = opts(&["REPLACE", "absttl", "replace", "IDLETIME", "5", "idletime", "7"]).unwrap();
        assert!(o.replace && o.absttl && o.idle_secs == Some(7) && o.freq.is_none());
        assert_eq!(opts(&["FREQ", "255"]).unwrap().freq, Some(255));
        assert_eq!(opts(&["IDLETIME", "1", "FREQ", "1"]).err(), Some(CmdError::Syntax));
        assert_eq!(opts(&["FREQ", "1", "IDLETIME", "1"]).err(), Some(CmdError::Syntax));
        assert_eq!(opts(&["IDLETIME"]).err(), Some(CmdError::Syntax));
        assert_eq!(opts(&["nope"]).err(), Some(CmdError::Syntax));
        assert_eq!(opts(&["IDLETIME", "x"]).err(), Some(CmdError::NotInteger));
        assert_eq!(opts(&["IDLETIME", "-1"]).err(), Some(CmdError::err("Invalid IDLETIME value, must be >= 0")));
        assert_eq!(opts(&["FREQ", "256"]).err(), Some(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255")));
        assert_eq!(opts(&["FREQ", "-1"]).err(), Some(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255")));
        // The first bad value wins over a later syntax error.
        assert_eq!(opts(&["FREQ", "300", "bogus"]).err(), Some(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255")));
    }
}
