//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, PFDEBUG, PFSELFTEST. Values are
//! strings in Redis's exact sparse/dense layout (`store::hll`), so they
//! move between Redis and Ferrite with GET/SET and count the same.

use super::notify::STRING;
use super::strings::as_str;
use super::{CmdError, CmdResult, Ctx};
use crate::store::hll;
use crate::store::value::StrBytes;
use crate::store::{Slot, Value};

/// The sparse size limit in force for the caller (its tenant's own
/// `hll-sparse-max-bytes` when it set one).
fn sparse_max(ctx: &Ctx) -> usize {
    let i = crate::tuning::HLL_SPARSE_MAX_BYTES;
    let tenant = ctx.client.tenant.as_ref().and_then(|t| t.tuning.lock().as_ref().map(|t| t.get(i)));
    tenant.unwrap_or_else(|| ctx.state.config.read().tuning.get(i)).max(0) as usize
}

/// The HLL at a value: a string that has the HLL header.
fn hll_bytes(v: &Value) -> Result<&[u8], CmdError> {
    let s = as_str(v)?;
    if !hll::is_valid(s) {
        return Err(CmdError::msg(hll::WRONGTYPE_ERR));
    }
    Ok(s)
}

fn invalid(_: hll::Invalid) -> CmdError {
    CmdError::msg(hll::INVALIDOBJ_ERR)
}

/// Runs `f` on the HLL stored at the slot as a byte vector (no copy: an
/// HLL is past the string's inline size) and puts it back.
fn with_hll<R>(slot: &mut Slot, f: impl FnOnce(&mut Vec<u8>) -> R) -> Result<R, CmdError> {
    let Some(Value::Str(s, raw)) = slot.value_mut() else { return Err(CmdError::WrongType) };
    let mut v = std::mem::take(s).into_vec();
    let r = f(&mut v);
    *s = StrBytes::from_vec(v);
    *raw = true;
    Ok(r)
}

pub fn pfadd(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (now, max) = (ctx.now_ms, sparse_max(ctx));
    let updated = ctx.db().write(a[1], now, |slot| -> Result<bool, CmdError> {
        let created = match slot.value() {
            Some(v) => {
                hll_bytes(v)?;
                false
            }
            None => {
                slot.set(Value::Str(StrBytes::from_vec(hll::new()), true));
                true
            }
        };
        let changed = with_hll(slot, |v| a[2..].iter().try_fold(false, |any, e| hll::add(v, e, max).map(|c| any | c)))?.map_err(invalid)?;
        Ok(created || changed)
    })?;
    if updated {
        ctx.notify(STRING, "pfadd", a[1]);
    }
    ctx.reply_changed(updated as usize);
    Ok(())
}

pub fn pfcount(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let now = ctx.now_ms;
    if a.len() == 2 {
        // One key: the count is cached in the value, and a valid one is
        // read under the shard's read lock. Writing a new one changes the
        // key (WATCH, tracking); answering from a valid one does not, as
        // in Redis.
        let cached = ctx.db().read(a[1], now, ctx.touch, |e| hll::cached_count(hll_bytes(&e.value)?).map_err(invalid));
        ctx.looked_up(a[1], cached.is_some());
        let n = match cached.transpose()? {
            None => 0,
            Some(Some(n)) => n,
            Some(None) => ctx.db().write(a[1], now, |slot| -> Result<u64, CmdError> {
                // Taken, or changed, since the read: counted as it is now.
                let Some(v) = slot.value() else { return Ok(0) };
                if let Some(n) = hll::cached_count(hll_bytes(v)?).map_err(invalid)? {
                    return Ok(n);
                }
                with_hll(slot, |v| hll::count(v))?.map(|(n, _)| n).map_err(invalid)
            })?,
        };
        ctx.out.int(n as i64);
        return Ok(());
    }
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(a.len() - 1);
    for k in &a[1..] {
        let v =
            ctx.db().read(k, now, ctx.touch, |e| hll_bytes(&e.value).and_then(|h| hll::validate(h).map(|_| h.to_vec()).map_err(invalid)));
        ctx.looked_up(k, v.is_some());
        if let Some(v) = v.transpose()? {
            values.push(v);
        }
    }
    let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
    ctx.out.int(hll::count_union(&refs).map_err(invalid)? as i64);
    Ok(())
}

pub fn pfmerge(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (now, max) = (ctx.now_ms, sparse_max(ctx));
    let read = |k: &[u8]| -> Result<Option<Vec<u8>>, CmdError> {
        let v = ctx.db().read(k, now, false, |e| hll_bytes(&e.value).and_then(|h| hll::validate(h).map(|_| h.to_vec()).map_err(invalid)));
        ctx.looked_up(k, v.is_some());
        v.transpose()
    };
    let dest = read(a[1])?;
    let mut sources = Vec::with_capacity(a.len() - 2);
    for k in &a[2..] {
        sources.extend(read(k)?);
    }
    let refs: Vec<&[u8]> = sources.iter().map(|v| v.as_slice()).collect();
    let merged = hll::merge(dest.as_deref(), &refs, max).map_err(invalid)?;
    ctx.db().write(a[1], now, |slot| {
        // An existing destination keeps its TTL, as Redis changes it in place.
        match slot.value_mut() {
            Some(Value::Str(s, raw)) => {
                *s = StrBytes::from_vec(merged);
                *raw = true;
            }
            _ => drop(slot.set(Value::Str(StrBytes::from_vec(merged), true))),
        }
    });
    // Redis announces a merge as a mass PFADD.
    ctx.notify(STRING, "pfadd", a[1]);
    ctx.out.ok();
    Ok(())
}

pub fn pfdebug(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = super::args::lower(a[1]);
    let now = ctx.now_ms;
    let arity = || CmdError::Arity("pfdebug".into());
    enum Reply {
        Registers(Vec<u8>),
        Bulk(String),
        Status(String),
        Int(i64),
    }
    let reply = ctx.db().write(a[2], now, |slot| -> Result<Reply, CmdError> {
        let v = slot.value().ok_or_else(|| CmdError::err("The specified key does not exist"))?;
        hll_bytes(v)?;
        match sub.as_str() {
            "getreg" | "decode" | "encoding" | "todense" if a.len() != 3 => Err(arity()),
            "getreg" => {
                with_hll(slot, hll::to_dense)?.map_err(invalid)?;
                with_hll(slot, |v| hll::debug_getreg(v))?.map(Reply::Registers).map_err(invalid)
            }
            "decode" => {
                let v = as_str(slot.value().expect("checked"))?;
                if !hll::is_sparse(v) {
                    return Err(CmdError::err("HLL encoding is not sparse"));
                }
                hll::debug_decode(v).map(Reply::Bulk).map_err(invalid)
            }
            "encoding" => hll::encoding_name(as_str(slot.value().expect("checked"))?).map(|e| Reply::Status(e.into())).map_err(invalid),
            "todense" => with_hll(slot, hll::to_dense)?.map(|c| Reply::Int(c as i64)).map_err(invalid),
            _ => Err(CmdError::err(format!("Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(a[1])))),
        }
    })?;
    match reply {
        Reply::Registers(r) => {
            ctx.out.array(r.len());
            r.iter().for_each(|&x| ctx.out.int(x as i64));
        }
        Reply::Bulk(s) => ctx.out.bulk(s.as_bytes()),
        Reply::Status(s) => ctx.out.simple(&s),
        Reply::Int(n) => ctx.out.int(n),
    }
    Ok(())
}

pub fn pfselftest(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    hll::selftest().map_err(|e| CmdError::msg(format!("TESTFAILED {e}")))?;
    ctx.out.ok();
    Ok(())
}
