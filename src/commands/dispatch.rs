//! From an argument vector to a reply: lookup, arity, authentication,
//! subscribed-context and MULTI rules, locking, then the handler.
//!
//! The order of checks follows Redis's `processCommand`, so the same bad
//! request gets the same error here as there.

use std::sync::atomic::Ordering::Relaxed;

use super::error::CmdError;
use super::flags::*;
use super::{CommandSpec, Ctx, TenantClass, admission, lookup};
use crate::persist::{self, Record};
use crate::server::client::Offload;
use crate::tenancy::TenantError;

/// Runs one command (or queues it inside MULTI) and writes its reply.
pub fn execute(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() >= 2 && argv[0].eq_ignore_ascii_case(b"tenant") {
        let (name, used) = tenant_subcommand(argv);
        if lookup(name.as_bytes()).is_some() {
            let mut dotted: Vec<&[u8]> = vec![name.as_bytes()];
            dotted.extend_from_slice(&argv[used..]);
            execute_table(ctx, &dotted);
            return forget_caching(ctx, argv);
        }
    }
    execute_table(ctx, argv);
    forget_caching(ctx, argv);
}

/// CLIENT CACHING applies to the next command, or the next transaction
/// (as Redis, any CLIENT subcommand in between keeps it).
fn forget_caching(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.client.caching && ctx.client.multi.is_none() && !argv[0].eq_ignore_ascii_case(b"client") {
        ctx.client.caching = false;
    }
}

/// `TENANT LIMITS SET x ...` names the entry `tenant.limits.set`; returns
/// the dotted name and how many arguments it took.
fn tenant_subcommand(argv: &[&[u8]]) -> (String, usize) {
    let sub = String::from_utf8_lossy(argv[1]).to_ascii_lowercase();
    if sub == "limits" && argv.len() >= 3 {
        (format!("tenant.limits.{}", String::from_utf8_lossy(argv[2]).to_ascii_lowercase()), 3)
    } else {
        (format!("tenant.{sub}"), 2)
    }
}

fn execute_table(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((idx, spec)) = lookup(argv[0]) else {
        return reject(ctx, None, unknown_command(argv));
    };
    if !spec.arity_ok(argv.len()) {
        return reject(ctx, Some(idx), CmdError::Arity(spec.name.to_string()));
    }
    if !ctx.client.authenticated && !spec.has(NO_AUTH) {
        return reject(ctx, Some(idx), CmdError::NoAuth);
    }
    if spec.has(TENANCY) && !ctx.state.tenants.config().enabled {
        return reject(ctx, Some(idx), CmdError::err("multi-tenancy is disabled ([tenancy] enabled = false)"));
    }
    if ctx.client.bound && spec.has(ADMIN) && !admission::tenant_may_run(spec, argv) {
        let id = ctx.client.tenant.as_ref().map_or("?", |t| t.id()).to_string();
        return reject(
            ctx,
            Some(idx),
            CmdError::msg(format!("NOPERM tenant '{id}' has no permissions to run the '{}' command", spec.name)),
        );
    }
    if ctx.client.subscriptions() > 0 && !ctx.out.resp3 && !spec.has(SUB_CONTEXT) {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        );
        return reject(ctx, Some(idx), CmdError::Msg(msg));
    }
    if ctx.client.offload == Offload::Allowed && runs_long(ctx, spec) {
        // The connection runs it again on the blocking pool.
        ctx.client.offload = Offload::Wanted;
        return;
    }
    if let Err(e) = admission::admit(ctx, spec) {
        return refuse(ctx, idx, e);
    }
    // A tenant's DATABASES limit lowered under a connection in a higher
    // database: its data commands stop there (database 0 always exists).
    if ctx.client.db > 0 && spec.class == TenantClass::Data && ctx.client.tenant.is_some() && ctx.client.db >= super::databases_allowed(ctx)
    {
        return reject(
            ctx,
            Some(idx),
            CmdError::err("DB index is out of range (the tenant's DATABASES limit is now lower; SELECT another)"),
        );
    }
    if let Some(ms) = paused(ctx, spec) {
        // Held, not refused: the same request runs when the pause ends.
        ctx.client.retry_after_ms = Some(ms);
        return;
    }
    if ctx.client.multi.is_some() && !spec.has(TX_CONTROL) {
        if spec.has(NO_MULTI) {
            return reject(ctx, Some(idx), CmdError::NotInMulti);
        }
        // A tenant's MULTI queue is memory it holds: past its limit the
        // command is refused (and dooms the EXEC) instead of queued.
        if let Err(e) = ctx.hold(queued_bytes(argv) as u64) {
            return reject(ctx, Some(idx), e);
        }
        return queue(ctx, argv);
    }
    run(ctx, idx, spec, argv);
}

/// CLIENT PAUSE: how long this command waits, if it must. The admin's
/// pause holds every client, a tenant's only the tenant's own; a WRITE
/// pause holds what may replicate (writes, PUBLISH, PFCOUNT, scripts, an
/// EXEC of any of them), as Redis's does.
fn paused(ctx: &Ctx, spec: &CommandSpec) -> Option<u64> {
    let write = || {
        let replicates = |s: &CommandSpec| s.has(WRITE) || s.has(MAY_REPLICATE);
        replicates(spec)
            || (spec.name == "exec"
                && ctx.client.multi.as_ref().is_some_and(|q| q.iter().any(|a| lookup(&a[0]).is_some_and(|(_, s)| replicates(s)))))
    };
    let global = &ctx.state.global.pause;
    let tenant = ctx.client.tenant.as_ref().filter(|_| ctx.client.bound).map(|t| &t.space.pause);
    let now = ctx.now_ms;
    let held = |p: &crate::space::pause::Pause| p.holds(now, false).or_else(|| p.holds(now, true).filter(|_| write()));
    held(global).or_else(|| tenant.and_then(held))
}

/// A long command, or an EXEC whose queue holds one: it runs on the
/// blocking pool (see `Offload`), never on a worker other tenants need.
/// Scripts are the exception where they can leave the worker mid-run.
/// Queued commands run inside EXEC, so they are never offloaded alone.
fn runs_long(ctx: &Ctx, spec: &CommandSpec) -> bool {
    match &ctx.client.multi {
        // A script hands its worker over itself if it lasts (on a
        // multi-threaded runtime), so short ones cost no thread switch.
        None => spec.has(SLOW) && !(spec.group == "scripting" && crate::worker::is_multi_thread_worker()),
        Some(queue) => spec.name == "exec" && queue.iter().any(|argv| lookup(&argv[0]).is_some_and(|(_, s)| s.has(SLOW))),
    }
}

/// What one queued command holds: its arguments and their vectors.
fn queued_bytes(argv: &[&[u8]]) -> usize {
    argv.iter().map(|a| a.len() + size_of::<Vec<u8>>()).sum::<usize>() + size_of::<Vec<Vec<u8>>>()
}

fn queue(ctx: &mut Ctx, argv: &[&[u8]]) {
    if let Some(q) = ctx.client.multi.as_mut() {
        q.push(argv.iter().map(|a| a.to_vec()).collect());
        ctx.client.info.multi.store(q.len() + 1, Relaxed);
        ctx.client.multi_bytes += queued_bytes(argv);
    }
    ctx.out.simple("QUEUED");
}

/// Runs a command that passed every check (also used by EXEC for queued ones).
pub fn run(ctx: &mut Ctx, idx: usize, spec: &'static CommandSpec, argv: &[&[u8]]) {
    if ctx.client.tenant.is_none() && spec.first_key > 0 && argv.get(spec.first_key as usize).is_some_and(|k| k.starts_with(TENANT_PREFIX))
    {
        return run_addressed(ctx, idx, spec, argv);
    }
    run_here(ctx, idx, spec, argv, argv);
}

/// Runs a logged command in the space its record names. Replay never reads
/// `__tenant:` prefixes: an admin's addressed command was logged in the
/// tenant's space with the prefix already stripped, and inside a tenant such
/// a key is a plain name of that tenant's own.
pub fn replay(ctx: &mut Ctx, idx: usize, spec: &'static CommandSpec, argv: &[&[u8]]) {
    run_here(ctx, idx, spec, argv, argv);
}

/// Runs a command in the context's own space; `sent` is the command as
/// the client sent it (`__tenant:` keys unstripped), for the slowlog.
fn run_here(ctx: &mut Ctx, idx: usize, spec: &'static CommandSpec, argv: &[&[u8]], sent: &[&[u8]]) {
    let state = ctx.state;
    ctx.client.info.last_cmd.store(idx, std::sync::atomic::Ordering::Relaxed);
    // The TSC-based clock costs a few ns where clock_gettime costs tens.
    let start = quanta::Instant::now();
    if let Some(e) = log_failing(ctx, spec) {
        return reject(ctx, Some(idx), CmdError::Msg(e));
    }
    // The space's lock (EXEC takes it itself; commands inside it run under
    // EXEC's) covers admission too: an eviction it makes is ordered with
    // the space's writes and a compaction's cut.
    let space = ctx.space();
    let guard = if ctx.in_exec || spec.has(TX_CONTROL) || spec.has(UNLOCKED) {
        None
    } else if needs_exclusive(spec, argv.len()) {
        Some(SpaceLock::Exclusive(space.lock_exclusive()))
    } else {
        Some(SpaceLock::Shared(space.lock_shared()))
    };
    // The tenant moved while this waited for its lock: the connection
    // forwards the request instead (checked under the lock that the move's
    // cut-over takes exclusively).
    if !ctx.in_exec
        && ctx.client.bound
        && let Some(t) = &ctx.client.tenant
    {
        if t.is_moved() {
            ctx.client.forward = true;
            return;
        }
        // A pause that began while this waited for the lock holds it too:
        // a tenant's move pauses its writes, then takes the lock once to
        // know every write it did not hold has been logged.
        let write = spec.has(WRITE) || spec.has(MAY_REPLICATE);
        if let Some(ms) = t.space.pause.holds(ctx.now_ms, write) {
            ctx.client.retry_after_ms = Some(ms);
            return;
        }
    }
    // Nothing to admit against without a tenant or a `maxmemory`.
    let bounded = ctx.client.tenant.is_some() || state.maxmemory.load(Relaxed) > 0;
    if bounded && admission::grows(spec) && !ctx.client.loading {
        let adds = admission::growth(ctx, spec, argv);
        if let Err(e) = admission::admit_write(ctx, spec, argv, adds) {
            return refuse(ctx, idx, e);
        }
        // A script that declared `allow-oom` writes past `maxmemory`.
        let allow_oom = ctx.client.in_script && ctx.client.script_allow_oom;
        if !allow_oom && let Err(e) = admission::maxmemory_guard(ctx, adds) {
            return reject(ctx, Some(idx), e);
        }
    }
    // A write's invalidations wait for its end (and go only if it changed
    // something); NOLOOP clients are not told of their own. A read's (a key
    // it found expired) go at once.
    let writes = spec.has(WRITE) || spec.has(MAY_REPLICATE);
    let writer = (writes && space.tracking.active()).then(|| crate::space::tracking::writer(ctx.client.id()));
    // MONITOR: scripts before what they run, the rest after.
    let monitored = state.global.monitors.any() || space.monitors.any();
    let before = monitored && super::introspection::fed_before(spec);
    if before {
        super::introspection::feed_monitors(ctx, spec, sent);
    }
    let (result, unchanged) = run_logged(ctx, spec, argv);
    if monitored && !before {
        super::introspection::feed_monitors(ctx, spec, sent);
    }
    drop(guard);
    if let Some(w) = writer {
        w.finish(!unchanged);
    }
    if ctx.client.tracking {
        super::tracking::after_command(ctx, spec, argv);
    }
    // BCAST clients hear of this command's changes together, after it (an
    // EXEC's or a script's, after the whole of it).
    let tracking = &ctx.space().tracking;
    if tracking.active() && !ctx.in_exec && !ctx.client.in_script {
        tracking.broadcast(ctx.space().events.delivery(ctx.now_ms));
    }
    // A write may make a key ready for blocked clients; a blocking command
    // that is itself still waiting wrote nothing (and must not wake the
    // others, or waiters would wake each other forever).
    let blocking = &ctx.space().blocking;
    if spec.has(WRITE) && blocking.any() && ctx.client.block.is_none() {
        for i in spec.key_indexes(argv.len()) {
            blocking.signal(ctx.client.db, argv[i]);
        }
    }
    let stats = &state.command_stats[idx];
    let ns = start.elapsed().as_nanos() as u64;
    stats.calls.record(ns);
    let us = ns / 1000;
    // SLOWLOG and LATENCY: one load and one compare unless it was slow.
    if state.thresholds.interesting(us) {
        super::introspection::record(ctx, spec, sent, us);
    }
    state.stats.commands_processed.incr();
    if let Err(e) = result {
        stats.failed.incr();
        error_reply(ctx, &e.to_bytes());
    }
}

/// A space's execution lock, held shared or exclusively.
enum SpaceLock<'a> {
    Shared(#[allow(dead_code)] parking_lot::RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] parking_lot::RwLockWriteGuard<'a, ()>),
}

/// While the log cannot be written, writes are refused with Redis's
/// `MISCONF` error, and so is PING, as Redis does, so that health checks
/// notice. Reads go on.
fn log_failing(ctx: &Ctx, spec: &CommandSpec) -> Option<String> {
    let p = ctx.state.persistence()?;
    let refused = !p.aof.write_ok.load(Relaxed) && (spec.has(WRITE) || spec.name == "ping") && !ctx.client.loading;
    refused.then(|| p.aof.write_error())
}

/// Runs the handler and logs a successful write, under the caller's lock:
/// a compaction's cut (which takes the lock exclusively) then sees every
/// change together with its record.
///
/// A write also holds its space's write order from before it runs until
/// its record is framed (`Space::write_order`): two writers of one key on
/// different threads are then logged in the order they wrote, and writers
/// of other spaces are not held up (the log's tail itself is held only to
/// append). In EXEC the exclusive lock already orders everything, and the
/// records are logged together.
/// Also says whether the command said it changed nothing.
fn run_logged(ctx: &mut Ctx, spec: &CommandSpec, argv: &[&[u8]]) -> (super::CmdResult, bool) {
    let state = ctx.state;
    let persistence = state.persistence().filter(|_| spec.has(WRITE) && !ctx.client.loading);
    let order = persistence.filter(|_| !ctx.in_exec).map(|_| ctx.space.write_order.lock());
    let r = (spec.handler)(ctx, argv);
    let instead = ctx.client.propagate.take();
    let unchanged = std::mem::take(&mut ctx.client.unchanged);
    if r.is_ok() && !unchanged && ctx.client.block.is_none() && persistence.is_some() {
        let args: Vec<&[u8]>;
        let logged = match &instead {
            Some(v) => {
                args = v.iter().map(|a| a.as_slice()).collect();
                &args[..]
            }
            None => argv,
        };
        let (now_ms, db) = (ctx.now_ms, ctx.client.db);
        match (&order, persistence) {
            (Some(_), Some(p)) => ctx.client.persist_seq = persist::log_command(&mut p.aof.tail(), now_ms, ctx.space.owner(), db, logged),
            _ => {
                let argv = logged.iter().map(|a| a.to_vec()).collect();
                ctx.client.tx_records.push(Record::Command { now_ms, space: ctx.space.owner().map(String::from), db: db as u32, argv });
            }
        }
    }
    (r, unchanged)
}

/// How the global context names a tenant's key: `__tenant:<id>:<key>`.
pub const TENANT_PREFIX: &[u8] = b"__tenant:";

/// Runs a global-context command whose keys are `__tenant:<id>:<key>` in that
/// tenant's space, with the prefix stripped. Every key must name the same
/// tenant; commands whose keys the table cannot locate are refused.
fn run_addressed(ctx: &mut Ctx, idx: usize, spec: &'static CommandSpec, argv: &[&[u8]]) {
    let addressed = (|| {
        if spec.has(MOVABLEKEYS) {
            return Err(CmdError::err(format!("'{}' cannot address __tenant: keys; enter the tenant with TENANT.USE", spec.name)));
        }
        let first = &argv[spec.first_key as usize][TENANT_PREFIX.len()..];
        let end = first.iter().position(|&b| b == b':').ok_or_else(|| CmdError::err("a tenant key is __tenant:<id>:<key>"))?;
        let id = String::from_utf8_lossy(&first[..end]).into_owned();
        let tenant = ctx.state.tenants.get_tenant(&id).map_err(|e| CmdError::msg(e.to_string()))?;
        let prefix_len = TENANT_PREFIX.len() + end + 1;
        let mut rewritten: Vec<&[u8]> = argv.to_vec();
        for i in spec.key_indexes(argv.len()) {
            let k = argv[i];
            if k.len() < prefix_len || k[..prefix_len] != argv[spec.first_key as usize][..prefix_len] {
                return Err(CmdError::err("all keys of a command must belong to the same tenant"));
            }
            rewritten[i] = &k[prefix_len..];
        }
        Ok((tenant, rewritten))
    })();
    match addressed {
        Err(e) => error_reply(ctx, &e.to_bytes()),
        Ok((tenant, rewritten)) => {
            if !ctx.in_exec && ctx.client.offload == Offload::Allowed && tenant.space.busy() {
                // The tenant's long command holds its lock: wait for it on
                // the blocking pool, not on a worker other tenants need.
                ctx.client.offload = Offload::Wait;
                return;
            }
            let mut inner = Ctx {
                state: ctx.state,
                client: &mut *ctx.client,
                out: &mut *ctx.out,
                now_ms: ctx.now_ms,
                in_exec: ctx.in_exec,
                touch: ctx.touch,
                space: &tenant.space,
            };
            // Inside the tenant a key named `__tenant:...` is just a name.
            // In the admin's EXEC (which holds the global space's lock, taken
            // before any tenant's), the command takes the tenant's own.
            let _g = inner.in_exec.then(|| tenant.space.lock_exclusive());
            run_here(&mut inner, idx, spec, &rewritten, argv);
        }
    }
}

/// Commands that touch several keys (or whole databases) run alone.
fn needs_exclusive(spec: &CommandSpec, argc: usize) -> bool {
    spec.has(EXCLUSIVE) || spec.has(MOVABLEKEYS) || spec.key_indexes(argc).nth(1).is_some()
}

/// Refuses a tenant's command; a refusal for its rate pauses the connection
/// for the retry time, at least 50 ms: a client that ignores the error gets
/// twenty turns a second at most, however fast it sends. Its rate is
/// unchanged (the limiter refills during the pause), but each turn
/// interleaves with other tenants' work on the same thread: at 10 ms, four
/// flooding connections raised a neighbour's p99 by a fifth
/// (benches/tenants.sh).
fn refuse(ctx: &mut Ctx, idx: usize, e: TenantError) {
    if let TenantError::RateLimited { retry_ms, .. } = e {
        ctx.client.throttled_ms = Some(retry_ms.clamp(50, 1000));
    }
    reject(ctx, Some(idx), CmdError::msg(e.to_string()));
}

/// Refuses a command before it runs; inside MULTI this also dooms the EXEC.
fn reject(ctx: &mut Ctx, idx: Option<usize>, err: CmdError) {
    if ctx.client.multi.is_some() {
        ctx.client.multi_error = true;
    }
    if let Some(i) = idx {
        ctx.state.command_stats[i].rejected.incr();
    }
    error_reply(ctx, &err.to_bytes());
}

/// Writes an error reply and counts it (INFO stats and errorstats).
fn error_reply(ctx: &mut Ctx, text: &[u8]) {
    count_error(ctx, text);
    ctx.out.error_bytes(text);
}

/// Counts an error reply (its text without the `-`).
pub fn count_error(ctx: &Ctx, text: &[u8]) {
    ctx.state.stats.total_error_replies.incr();
    ctx.state.error_kinds.count(text);
}

/// Redis formats these with `%.128s`: at most 128 bytes, cut at a NUL.
fn c_str(a: &[u8], max: usize) -> &[u8] {
    let a = &a[..a.len().min(max)];
    a.iter().position(|&b| b == 0).map_or(a, |n| &a[..n])
}

fn unknown_command(argv: &[&[u8]]) -> CmdError {
    let mut args = Vec::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push(b'\'');
        args.extend_from_slice(c_str(a, room));
        args.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(c_str(argv[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&args);
    CmdError::Raw(msg)
}
