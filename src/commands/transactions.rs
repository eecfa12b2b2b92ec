//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! Queued commands run under the exclusive execution lock, so a transaction
//! is atomic with respect to every other client, and the WATCH check happens
//! under that same lock.

use std::sync::atomic::Ordering::Relaxed;

use super::dispatch::run;
use super::{CmdError, CmdResult, Ctx, lookup};
use crate::server::client::Watched;

pub fn multi(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.info.multi.store(1, Relaxed);
    ctx.out.ok();
    Ok(())
}

/// Forgets every watched key and the dirty flag.
pub fn unwatch_all(ctx: &mut Ctx) {
    for w in ctx.client.watched.drain(..) {
        let space = w.tenant.as_deref().map_or(&ctx.state.global, |t| &t.space);
        space.physical_db(w.db).unwatch(&w.key, &ctx.client.watch_dirty);
    }
    ctx.client.watch_dirty.store(false, Relaxed);
}

fn end_multi(ctx: &mut Ctx) {
    ctx.client.multi = None;
    ctx.client.multi_bytes = 0;
    ctx.client.multi_error = false;
    ctx.client.info.multi.store(0, Relaxed);
    unwatch_all(ctx);
}

pub fn exec(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let Some(queued) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    if ctx.client.multi_error {
        end_multi(ctx);
        return Err(CmdError::msg("EXECABORT Transaction discarded because of previous errors."));
    }
    let state = ctx.state;
    let guard = ctx.space().lock_exclusive();
    // The tenant moved before this got its lock: the transaction goes to
    // the new node whole (the connection sends MULTI and the queue again).
    if ctx.client.bound && ctx.client.tenant.as_ref().is_some_and(|t| t.is_moved()) {
        ctx.client.multi = Some(queued);
        ctx.client.forward = true;
        return Ok(());
    }
    if ctx.client.watch_dirty.load(Relaxed) {
        drop(guard);
        end_multi(ctx);
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(queued.len());
    ctx.in_exec = true;
    for cmd in &queued {
        let argv: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
        match lookup(argv[0]) {
            Some((idx, spec)) => run(ctx, idx, spec, &argv),
            None => ctx.out.error("ERR unknown command"),
        }
    }
    ctx.in_exec = false;
    // The transaction's writes reach the log as one record: all or nothing.
    let records = std::mem::take(&mut ctx.client.tx_records);
    if let (false, Some(p)) = (records.is_empty(), state.persistence()) {
        ctx.client.persist_seq = p.log(&crate::persist::Record::Batch(records));
    }
    drop(guard);
    end_multi(ctx);
    Ok(())
}

pub fn discard(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    end_multi(ctx);
    ctx.out.ok();
    Ok(())
}

pub fn watch(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    // Watched keys are held twice (the client's list, the keyspace's
    // watchers): memory the tenant holds (see `Ctx::hold`).
    ctx.hold(a[1..].iter().map(|k| 2 * k.len() as u64 + 64).sum())?;
    // The physical index: a SWAPDB later must not lose the registration.
    let (db, tenant) = (ctx.space().physical(ctx.client.db), ctx.space_tenant());
    let same_space = |w: &Watched| w.tenant.as_ref().map(|t| t.id()) == tenant.as_ref().map(|t| t.id());
    for k in &a[1..] {
        if ctx.client.watched.iter().any(|w| same_space(w) && w.db == db && w.key.as_slice() == *k) {
            continue;
        }
        ctx.space().physical_db(db).watch(k, ctx.client.watch_dirty.clone());
        ctx.client.watched.push(Watched { tenant: tenant.clone(), db, key: k.to_vec() });
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}
