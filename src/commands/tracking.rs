//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO, and what dispatch
//! calls to remember the keys a tracking client reads.
//!
//! The state lives in the client's space (`space::tracking`): a tenant's
//! clients are told only of its own keys, and REDIRECT reaches only a
//! client the caller could see in CLIENT LIST.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is};
use super::connection::visible_clients;
use super::flags::READONLY;
use super::{CmdError, CmdResult, CommandSpec, Ctx, keyspec};
use crate::server::client::tracking as flag;
use crate::space::tracking::{Mode, key_cost};

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN]
/// [OPTOUT] [NOLOOP], with Redis's checks in Redis's order.
pub fn client_tracking(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut mode = Mode::default();
    let mut redirect = None;
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut i = 3;
    while i < a.len() {
        let more = i + 1 < a.len();
        if is(a[i], "redirect") && more {
            i += 1;
            if redirect.is_some() {
                return Err(CmdError::err("A client can only redirect to a single other client"));
            }
            let id = int(a[i])?;
            let target = visible_clients(ctx).into_iter().find(|c| c.id as i64 == id);
            let target = target.and_then(|c| c.subscriber());
            redirect = Some(target.ok_or_else(|| CmdError::err("The client ID you want redirect to does not exist"))?);
        } else if is(a[i], "bcast") {
            mode.bcast = true;
        } else if is(a[i], "optin") {
            mode.optin = true;
        } else if is(a[i], "optout") {
            mode.optout = true;
        } else if is(a[i], "noloop") {
            mode.noloop = true;
        } else if is(a[i], "prefix") && more {
            i += 1;
            prefixes.push(a[i]);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if is(a[2], "on") {
        if !mode.bcast && !prefixes.is_empty() {
            return Err(CmdError::err("PREFIX option requires BCAST mode to be enabled"));
        }
        let tracking = &ctx.space().tracking;
        tracking.check(ctx.client.id(), mode, &prefixes).map_err(CmdError::err)?;
        admit_prefixes(ctx, &prefixes)?;
        tracking.enable(ctx.subscriber(), redirect, mode, &prefixes);
        let info = &ctx.client.info;
        info.tracking.store(flag::ON | if mode.bcast { flag::BCAST } else { 0 }, Relaxed);
        info.redirect.store(tracking.info(ctx.client.id()).map_or(0, |t| t.redirect), Relaxed);
        ctx.client.tracking = true;
        ctx.client.tracking_mode = mode;
    } else if is(a[2], "off") {
        disable(ctx);
    } else {
        return Err(CmdError::Syntax);
    }
    ctx.out.ok();
    Ok(())
}

/// A tenant's BCAST prefixes are its memory, within the table's tenth of
/// its limit (every write of the tenant is compared with each of them).
fn admit_prefixes(ctx: &Ctx, prefixes: &[&[u8]]) -> CmdResult {
    let Some(t) = &ctx.client.tenant else { return Ok(()) };
    let adds: u64 = prefixes.iter().map(|p| key_cost(p) as u64).sum();
    let limit = t.limits().memory_bytes;
    if t.memory_used() + adds > limit || ctx.space().tracking.bytes() as u64 + adds > table_budget(t) as u64 {
        t.metrics.refuse(crate::tenancy::tenant::Refusal::Memory);
        let e = crate::tenancy::TenantError::Oom { id: t.id().into(), used: t.memory_used(), limit };
        return Err(CmdError::msg(e.to_string()));
    }
    Ok(())
}

/// The most a tenant's tracking table may hold: a tenth of its memory.
fn table_budget(t: &crate::tenancy::Tenant) -> usize {
    (t.limits().memory_bytes / 10) as usize
}

/// Turns the client's tracking off (CLIENT TRACKING OFF, RESET, leaving
/// its space, disconnecting).
pub fn disable(ctx: &mut Ctx) {
    if ctx.client.tracking {
        ctx.space().tracking.disable(ctx.client.id());
        ctx.client.tracking = false;
        ctx.client.caching = false;
        ctx.client.info.tracking.store(0, Relaxed);
        ctx.client.info.redirect.store(0, Relaxed);
    }
}

/// CLIENT CACHING YES|NO: whether the next command's reads are tracked, in
/// OPTIN or OPTOUT mode.
pub fn client_caching(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mode = ctx.client.tracking.then_some(ctx.client.tracking_mode);
    let Some(mode) = mode else {
        return Err(CmdError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    if is(a[2], "yes") {
        if !mode.optin {
            return Err(CmdError::err("CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."));
        }
    } else if is(a[2], "no") {
        if !mode.optout {
            return Err(CmdError::err("CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    ctx.client.caching = true;
    ctx.out.ok();
    Ok(())
}

/// CLIENT GETREDIR: -1 without tracking, else the redirect target (0: none).
pub fn client_getredir(ctx: &mut Ctx) -> CmdResult {
    let info = ctx.client.tracking.then(|| ctx.space().tracking.info(ctx.client.id())).flatten();
    ctx.out.int(info.map_or(-1, |t| t.redirect as i64));
    Ok(())
}

/// CLIENT TRACKINGINFO: flags, redirect, prefixes, as Redis lists them.
pub fn client_trackinginfo(ctx: &mut Ctx) -> CmdResult {
    let info = ctx.client.tracking.then(|| ctx.space().tracking.info(ctx.client.id())).flatten();
    let mut flags = vec![if info.is_some() { "on" } else { "off" }];
    let caching = ctx.client.caching;
    if let Some(t) = &info {
        let m = t.mode;
        let named = [
            (m.bcast, "bcast"),
            (m.optin, "optin"),
            (m.optin && caching, "caching-yes"),
            (m.optout, "optout"),
            (m.optout && caching, "caching-no"),
            (m.noloop, "noloop"),
            (t.broken, "broken_redirect"),
        ];
        flags.extend(named.iter().filter(|(on, _)| *on).map(|(_, n)| *n));
    }
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    ctx.out.set(flags.len());
    for f in flags {
        ctx.out.bulk(f.as_bytes());
    }
    ctx.out.bulk(b"redirect");
    ctx.out.int(info.as_ref().map_or(-1, |t| t.redirect as i64));
    ctx.out.bulk(b"prefixes");
    let prefixes = info.map(|t| t.prefixes).unwrap_or_default();
    ctx.out.array(prefixes.len());
    for p in prefixes {
        ctx.out.bulk(&p);
    }
    Ok(())
}

/// After a command of a tracking client: remembers the keys a read gave it
/// (per OPTIN/OPTOUT and CACHING); a read inside a script marks the run,
/// whose declared keys are remembered when it ends (as Redis does).
pub fn after_command(ctx: &mut Ctx, spec: &CommandSpec, argv: &[&[u8]]) {
    let script = spec.group == "scripting";
    if ctx.client.in_script {
        if spec.has(READONLY) {
            ctx.client.script_read = true;
        }
        return;
    }
    let read = if script { std::mem::take(&mut ctx.client.script_read) } else { spec.has(READONLY) };
    if !read || spec.group == "pubsub" {
        return;
    }
    let m = ctx.client.tracking_mode;
    if m.bcast || (m.optin && !ctx.client.caching) || (m.optout && ctx.client.caching) {
        return;
    }
    let keys = keyspec::positions(spec, argv);
    if keys.is_empty() {
        return;
    }
    // A tenant's table counts against its memory (`Tenant::memory_used`).
    let max_bytes = ctx.client.tenant.as_deref().map_or(usize::MAX, table_budget);
    let how = ctx.space().events.delivery(ctx.now_ms);
    let max_keys = match ctx.state.thresholds.tracking_max_keys.load(Relaxed) {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    ctx.space().tracking.remember(ctx.client.id(), keys.iter().map(|&i| argv[i]), max_keys, max_bytes, how);
}
