//! Admission: whether a tenant's command may run, decided before it runs
//! (or is queued by MULTI) from its table entry.
//!
//! Every command a tenant sends is admitted by its class
//! ([`TenantClass`]): the tenant's state, then its rate limit. Writes that
//! can add memory (DENYOOM, GROWS) are admitted on what they would add, so
//! no command takes a tenant past its memory or key limit; when the whole
//! server is over `maxmemory`, the writer evicts its own keys by its own
//! policy or is refused, and no other tenant loses anything.

use std::sync::atomic::Ordering::Relaxed;

use super::error::CmdError;
use super::flags::*;
use super::{CommandSpec, Ctx, TenantClass};
use crate::persist;
use crate::store::Keyspace;
use crate::tenancy::eviction::{EvictHooks, Policy, evict, evict_tenant};
use crate::tenancy::hooks::{self, CommandClass, QuotaDecision, Resource};
use crate::tenancy::tenant::{Refusal, WARN_PERCENT};
use crate::tenancy::{OperationType, Tenant, TenantError, TenantLimits};

/// What an argument or a new key costs besides its bytes (entry, vector
/// and table overhead): an upper bound, as admission must be.
const ARG_OVERHEAD: u64 = 64;

/// Admits a tenant's command by its class: the tenant's state, then its
/// rate limit (a quota policy may overrule a rate refusal). Session
/// commands (AUTH, HELLO, QUIT, RESET) pass: a client needs them to log in
/// or leave, and failed AUTHs are throttled on their own.
#[inline(always)]
pub fn admit(ctx: &mut Ctx, spec: &CommandSpec) -> Result<(), TenantError> {
    let Some(t) = ctx.client.tenant.as_deref() else { return Ok(()) };
    // The common case, straight through: a data command of an active
    // tenant, on an operation its connection already took from the limiter.
    if spec.class == TenantClass::Data && !spec.has(ADMIN) && !spec.has(TENANCY) && t.take_held_operation(&mut ctx.client.ops_credit) {
        let counter = if spec.has(WRITE) { &t.metrics.writes } else { &t.metrics.reads };
        counter.fetch_add(1, Relaxed);
        return Ok(());
    }
    admit_by_class(ctx, spec)
}

/// [`admit`] for every command.
#[inline(never)]
fn admit_by_class(ctx: &mut Ctx, spec: &CommandSpec) -> Result<(), TenantError> {
    let Some(t) = ctx.client.tenant.as_deref() else { return Ok(()) };
    let op = match spec.class {
        TenantClass::Session => return Ok(()),
        TenantClass::Admin => OperationType::Admin,
        TenantClass::Data if spec.has(WRITE) => OperationType::Write,
        TenantClass::Data => OperationType::Read,
        TenantClass::PubSub | TenantClass::Connection | TenantClass::Server | TenantClass::Transaction | TenantClass::Tenancy => {
            OperationType::Other
        }
    };
    let admin = spec.has(ADMIN) || spec.has(TENANCY);
    if admin {
        t.metrics.admin.fetch_add(1, Relaxed);
    }
    if let Err(e) = t.check_operation_drawing(op, &mut ctx.client.ops_credit) {
        policy_overrules(ctx, spec, op, e)?;
    }
    let Some(t) = ctx.client.tenant.as_deref() else { return Ok(()) };
    match op {
        OperationType::Write => t.metrics.writes.fetch_add(1, Relaxed),
        OperationType::Read => t.metrics.reads.fetch_add(1, Relaxed),
        OperationType::Other if !admin => t.metrics.other.fetch_add(1, Relaxed),
        OperationType::Other | OperationType::Admin => 0,
    };
    Ok(())
}

/// A refusal by the tenant's state or rate limit; a quota policy may let
/// a rate-limited command through (`Ok`).
#[cold]
#[inline(never)]
fn policy_overrules(ctx: &mut Ctx, spec: &CommandSpec, op: OperationType, e: TenantError) -> Result<(), TenantError> {
    // Cloned only here: the tenant's count of references is a line all
    // its connections share.
    let t = ctx.client.tenant.clone().expect("a tenant's refusal");
    let class = if op == OperationType::Write { CommandClass::Write } else { CommandClass::Read };
    match (&e, ask(ctx, &t, spec, class, Resource::Ops)) {
        (TenantError::RateLimited { .. }, QuotaDecision::Allow) => Ok(()),
        (TenantError::RateLimited { .. }, QuotaDecision::Deny(m)) => Err(TenantError::PolicyDenied(m)),
        _ => Err(e),
    }
}

/// The part of an admin command a tenant may run: CONFIG GET (which shows
/// a tenant the encoding parameters and `notify-keyspace-events` alone)
/// and CONFIG SET of those, which set the tenant's own copy (see `tuning`,
/// `space::notify`); SLOWLOG and LATENCY, which a tenant runs on its own space's log and events.
pub fn tenant_may_run(spec: &CommandSpec, argv: &[&[u8]]) -> bool {
    match (spec.name, argv.get(1)) {
        ("config", Some(sub)) if sub.eq_ignore_ascii_case(b"get") => true,
        ("config", Some(sub)) if sub.eq_ignore_ascii_case(b"set") => argv[2..].chunks(2).all(|pair| {
            pair[0].eq_ignore_ascii_case(b"notify-keyspace-events") || crate::tuning::find(&String::from_utf8_lossy(pair[0])).is_some()
        }),
        // Its own space's log only: see `introspection`.
        ("slowlog" | "latency", _) => true,
        // Its own clients' commands only: see `introspection::monitor`.
        ("monitor", _) => true,
        _ => false,
    }
}

/// Whether a write can add memory, and so is admitted against quotas.
pub fn grows(spec: &CommandSpec) -> bool {
    spec.has(DENYOOM) || spec.has(GROWS)
}

/// A tenant's memory and key limits, for a write that can add memory,
/// checked on what it would add (see [`growth`]). A quota policy, when the
/// tenant has one, judges every crossing of a limit and every write above
/// the warning threshold.
#[inline]
pub fn admit_write(ctx: &mut Ctx, spec: &CommandSpec, argv: &[&[u8]], adds: u64) -> Result<(), TenantError> {
    let Some(t) = ctx.client.tenant.as_deref() else { return Ok(()) };
    // Well under both limits (almost every write): nothing to decide. A
    // write adds at most one key per argument.
    match t.stays_below_warning(adds, argv.len() as u64, &mut ctx.client.write_credit, ctx.client.bound) {
        Ok(()) => Ok(()),
        Err(usage) => admit_near_limits(ctx, spec, argv, adds, usage),
    }
}

/// Whether `used` is past the share of `limit` where a quota policy judges
/// every write.
fn near(used: u64, limit: u64) -> bool {
    used.saturating_mul(100) >= limit.saturating_mul(WARN_PERCENT)
}

/// [`admit_write`] for a write that would cross a limit or comes near one:
/// the limits, the tenant's eviction and its quota policy decide.
#[cold]
#[inline(never)]
fn admit_near_limits(ctx: &mut Ctx, spec: &CommandSpec, argv: &[&[u8]], adds: u64, (used, keys): (u64, u64)) -> Result<(), TenantError> {
    let Some(t) = ctx.client.tenant.clone() else { return Ok(()) };
    let TenantLimits { memory_bytes: memory_limit, max_keys: keys_limit, .. } = t.limits();
    let t = &*t;
    let over_memory = used.saturating_add(adds) > memory_limit;
    if over_memory && !policy_allows(ctx, t, spec, Resource::Memory)? && !make_room(ctx, t, memory_limit.saturating_sub(adds)) {
        t.metrics.refuse(Refusal::Memory);
        return Err(TenantError::Oom { id: t.id().into(), used: t.memory_used(), limit: memory_limit });
    }
    // Only near the limit is it worth counting which keys are new.
    let mut over_keys = false;
    if keys + argv.len() as u64 > keys_limit {
        let new = new_keys(ctx, spec, argv);
        over_keys = keys + new > keys_limit;
        if over_keys && !policy_allows(ctx, t, spec, Resource::Keys)? {
            t.metrics.refuse(Refusal::Keys);
            return Err(TenantError::KeyLimit { id: t.id().into(), keys, limit: keys_limit });
        }
    }
    if !over_memory && !over_keys && (near(used, memory_limit) || near(keys, keys_limit)) {
        // Above the threshold the policy may refuse (or slow) a write the
        // limits would still let through.
        policy_allows(ctx, t, spec, Resource::Threshold)?;
    }
    Ok(())
}

/// The writes that store more than their arguments, each with an arm in
/// [`growth`]: the table marks them `BEYOND_ARGS`, so every other write
/// skips the comparison of names.
pub const WRITES_BEYOND_ARGS: &[&str] = &[
    "setrange",
    "setbit",
    "bitfield",
    "pfadd",
    "pfmerge",
    "bitop",
    "sort",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
    "copy",
    "sunionstore",
    "sinterstore",
    "sdiffstore",
    "zunionstore",
    "zinterstore",
    "zdiffstore",
    "zrangestore",
];

/// `BEYOND_ARGS` for a name in [`WRITES_BEYOND_ARGS`] (for the table's
/// constant entries).
pub const fn beyond_args_flag(name: &str) -> u32 {
    let mut i = 0;
    while i < WRITES_BEYOND_ARGS.len() {
        if name.eq_ignore_ascii_case(WRITES_BEYOND_ARGS[i]) {
            return BEYOND_ARGS;
        }
        i += 1;
    }
    0
}

/// An upper bound of the bytes a write can add: its arguments (every byte
/// it stores comes from them) plus, for commands that write beyond their
/// arguments, what they copy or pad (COPY, the *STORE family, SETRANGE's
/// offset).
#[inline]
pub fn growth(ctx: &Ctx, spec: &CommandSpec, argv: &[&[u8]]) -> u64 {
    let args: u64 = argv[1..].iter().map(|a| a.len() as u64 + ARG_OVERHEAD).sum();
    if !spec.has(BEYOND_ARGS) {
        return args;
    }
    args.saturating_add(growth_beyond_args(ctx, spec, argv))
}

/// What a `BEYOND_ARGS` write can add besides its arguments.
#[inline(never)]
fn growth_beyond_args(ctx: &Ctx, spec: &CommandSpec, argv: &[&[u8]]) -> u64 {
    let (db, now) = (ctx.db(), ctx.now_ms);
    let stored = |keys: &[&[u8]]| keys.iter().filter_map(|k| db.sample_one(k, now)).map(|n| n as u64).sum::<u64>();
    match spec.name {
        "setrange" => crate::protocol::parse::parse_i64(argv[2]).map_or(0, |o| o.max(0) as u64),
        "setbit" | "bitfield" => super::bitmaps::padded_bytes(spec.name, argv),
        // An HLL can turn dense (12 KB) whatever the arguments.
        "pfadd" | "pfmerge" => crate::store::hll::DENSE_LEN as u64,
        "bitop" => stored(&argv[3..]),
        "sort" => super::sort::store_key(argv).map_or(0, |_| stored(&argv[1..2])),
        "georadius" | "georadiusbymember" => super::geo::store_key(argv).map_or(0, |_| stored(&argv[1..2])),
        "geosearchstore" => stored(&argv[2..3]),
        "copy" => stored(&argv[1..2]),
        "sunionstore" | "sinterstore" | "sdiffstore" | "zunionstore" | "zinterstore" | "zdiffstore" | "zrangestore" => stored(&argv[2..]),
        _ => 0,
    }
}

/// The keys a write would create: its key arguments that do not exist (for
/// COPY ... DB n, in the target database).
fn new_keys(ctx: &Ctx, spec: &CommandSpec, argv: &[&[u8]]) -> u64 {
    let now = ctx.now_ms;
    if spec.name == "copy" {
        let target = argv.iter().position(|a| a.eq_ignore_ascii_case(b"db")).and_then(|i| argv.get(i + 1));
        let db = target.and_then(|d| crate::protocol::parse::parse_i64(d)).map_or(ctx.client.db, |d| d.max(0) as usize);
        let db = db.min(ctx.space().databases().saturating_sub(1));
        return (!ctx.space().db(db).contains(argv[2], now)) as u64;
    }
    let movable = match spec.name {
        "sort" => Some(super::sort::store_key(argv)),
        "georadius" | "georadiusbymember" => Some(super::geo::store_key(argv)),
        _ => None,
    };
    if let Some(dest) = movable {
        return dest.is_some_and(|k| !ctx.db().contains(k, now)) as u64;
    }
    spec.key_indexes(argv.len()).filter(|&i| !ctx.db().contains(argv[i], now)).count() as u64
}

/// Asks the tenant's quota policy (if any) about `resource`. A throttle is
/// applied here (the connection pauses after this reply) and otherwise
/// leaves the native decision standing.
fn ask(ctx: &mut Ctx, t: &Tenant, spec: &CommandSpec, class: CommandClass, resource: Resource) -> QuotaDecision {
    match hooks::quota(t, &ctx.state.policy, spec.name, class, resource) {
        QuotaDecision::Throttle { ms } => {
            ctx.client.throttled_ms = Some((ms as u64).clamp(1, 1000));
            QuotaDecision::Native
        }
        QuotaDecision::Deny(m) => QuotaDecision::Deny(error_line(&m)),
        d => d,
    }
}

/// For a write crossing `resource`: `Ok(true)` when the policy grants it
/// anyway, `Ok(false)` for the native decision, `Err` for the policy's refusal.
fn policy_allows(ctx: &mut Ctx, t: &Tenant, spec: &CommandSpec, resource: Resource) -> Result<bool, TenantError> {
    match ask(ctx, t, spec, CommandClass::Write, resource) {
        QuotaDecision::Allow => Ok(resource != Resource::Threshold),
        QuotaDecision::Deny(m) => {
            t.metrics.refuse(Refusal::Policy);
            Err(TenantError::PolicyDenied(m))
        }
        _ => Ok(false),
    }
}

/// A policy's message as one RESP error line: no CR/LF, and an error code
/// (`ERR`) unless it starts with an upper-case word of its own.
fn error_line(m: &str) -> String {
    let clean: String = m.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).take(512).collect();
    let code = clean.split(' ').next().unwrap_or("");
    if !code.is_empty() && code.len() < clean.len() && code.bytes().all(|b| b.is_ascii_uppercase()) {
        clean
    } else {
        format!("ERR {clean}")
    }
}

/// Evicts by the tenant's policy until it is under `limit`; false if the
/// policy is noeviction or nothing more could go.
fn make_room(ctx: &Ctx, t: &Tenant, limit: u64) -> bool {
    let samples = ctx.state.config.read().maxmemory_samples as usize;
    let r = evict_tenant(t, samples, ctx.now_ms, &ctx.state.policy, || t.memory_used() > limit, &mut remove_logged(ctx, &t.space));
    let (Ok(n) | Err(n)) = r;
    ctx.state.stats.evicted_keys.add(n as u64);
    r.is_ok()
}

/// The server-wide `maxmemory` guard, for a write that would add `adds`:
/// when every space together would hold more, the writer makes room in its
/// own space (a tenant by its own policy, the global context by
/// `maxmemory-policy`) or the write is refused. Other tenants keep
/// everything: one under its limit never pays for another's writes.
#[inline]
pub fn maxmemory_guard(ctx: &Ctx, adds: u64) -> Result<(), CmdError> {
    let max = ctx.state.maxmemory.load(Relaxed);
    if max == 0 || ctx.client.loading || (ctx.state.used_memory() as u64).saturating_add(adds) <= max {
        return Ok(());
    }
    make_server_room(ctx, adds, max)
}

/// [`maxmemory_guard`] once the server is over `maxmemory`.
#[cold]
#[inline(never)]
fn make_server_room(ctx: &Ctx, adds: u64, max: u64) -> Result<(), CmdError> {
    let state = ctx.state;
    let over = || (state.used_memory() as u64).saturating_add(adds) > max;
    let samples = state.config.read().maxmemory_samples as usize;
    let (Ok(n) | Err(n)) = match &ctx.client.tenant {
        Some(t) => evict_tenant(t, samples, ctx.now_ms, &state.policy, over, &mut remove_logged(ctx, &t.space)),
        None => {
            let policy = Policy::parse(&state.config.read().maxmemory_policy).unwrap_or(Policy::NoEviction);
            let hooks = EvictHooks { chooser: None, remove: &mut remove_logged(ctx, &state.global) };
            evict(&state.global, &state.global_eviction, policy, samples, ctx.now_ms, over, hooks)
        }
    };
    state.stats.evicted_keys.add(n as u64);
    if over() { Err(CmdError::msg("OOM command not allowed when used memory > 'maxmemory'.")) } else { Ok(()) }
}

/// Removes an evicted key and logs it as a DEL in its space: which keys went
/// was the sampler's choice, and replay must make the same one. The space's
/// write order is held across both (see `Space::write_order`), and only per
/// key: a WASM policy choosing victims runs without it. Every eviction,
/// whoever chose the victim (the native policy or the tenant's module), is
/// announced in the space as Redis's `evicted` event.
fn remove_logged<'a>(ctx: &'a Ctx, space: &'a crate::space::Space) -> impl FnMut(&Keyspace, usize, &[u8]) -> bool + 'a {
    move |ks, db, key| {
        let gone = match ctx.state.persistence().filter(|_| !ctx.client.loading) {
            None => ks.remove(key, ctx.now_ms).is_some(),
            Some(p) => {
                let _order = space.write_order.lock();
                let gone = ks.remove(key, ctx.now_ms).is_some();
                if gone {
                    persist::log_command(&mut p.aof.tail(), ctx.now_ms, space.owner(), db, &[b"DEL", key]);
                }
                gone
            }
        };
        if gone {
            space.notify(db, crate::space::notify::EVICTED, "evicted", key, ctx.now_ms);
        }
        gone
    }
}
