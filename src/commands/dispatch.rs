//! From an argument vector to a reply: lookup, arity, authentication,
//! subscribed-context and MULTI rules, locking, then the handler.
//!
//! The order of checks follows Redis's `processCommand`, so the same bad
//! request gets the same error here as there.

use super::error::CmdError;
use super::flags::*;
use super::{CommandSpec, Ctx, lookup};

/// Runs one command (or queues it inside MULTI) and writes its reply.
pub fn execute(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((idx, spec)) = lookup(argv[0]) else {
        return reject(ctx, None, unknown_command(argv));
    };
    if !spec.arity_ok(argv.len()) {
        return reject(ctx, Some(idx), CmdError::Arity(spec.name.to_string()));
    }
    if !ctx.client.authenticated && !spec.has(NO_AUTH) {
        return reject(ctx, Some(idx), CmdError::NoAuth);
    }
    if ctx.client.subscriptions() > 0 && !ctx.client.resp3 && !spec.has(SUB_CONTEXT) {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        );
        return reject(ctx, Some(idx), CmdError::Msg(msg));
    }
    if ctx.client.multi.is_some() && !spec.has(TX_CONTROL) {
        if spec.has(NO_MULTI) {
            return reject(ctx, Some(idx), CmdError::NotInMulti);
        }
        let queued = argv.iter().map(|a| a.to_vec()).collect();
        if let Some(q) = ctx.client.multi.as_mut() {
            q.push(queued);
            ctx.client.info.multi.store(q.len() + 1, std::sync::atomic::Ordering::Relaxed);
        }
        ctx.out.simple("QUEUED");
        return;
    }
    run(ctx, idx, spec, argv);
}

/// Runs a command that passed every check (also used by EXEC for queued ones).
pub fn run(ctx: &mut Ctx, idx: usize, spec: &'static CommandSpec, argv: &[&[u8]]) {
    let state = ctx.state;
    ctx.client.info.last_cmd.store(idx, std::sync::atomic::Ordering::Relaxed);
    // The TSC-based clock costs a few ns where clock_gettime costs tens.
    let start = quanta::Instant::now();
    // EXEC takes the lock itself; commands inside it run under EXEC's.
    let result = if ctx.in_exec || spec.has(TX_CONTROL) {
        (spec.handler)(ctx, argv)
    } else if needs_exclusive(spec, argv.len()) {
        let _g = state.exec_lock.write();
        (spec.handler)(ctx, argv)
    } else {
        let _g = state.exec_lock.read();
        (spec.handler)(ctx, argv)
    };
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
    stats.calls.record(start.elapsed().as_micros() as u64);
    state.stats.commands_processed.incr();
    if let Err(e) = result {
        stats.failed.incr();
        state.stats.total_error_replies.incr();
        ctx.out.error_bytes(&e.to_bytes());
    }
}

/// Commands that touch several keys (or whole databases) run alone.
fn needs_exclusive(spec: &CommandSpec, argc: usize) -> bool {
    spec.has(EXCLUSIVE) || spec.has(MOVABLEKEYS) || spec.key_indexes(argc).nth(1).is_some()
}

/// Refuses a command before it runs; inside MULTI this also dooms the EXEC.
fn reject(ctx: &mut Ctx, idx: Option<usize>, err: CmdError) {
    if ctx.client.multi.is_some() {
        ctx.client.multi_error = true;
    }
    if let Some(i) = idx {
        ctx.state.command_stats[i].rejected.incr();
    }
    ctx.state.stats.total_error_replies.incr();
    ctx.out.error_bytes(&err.to_bytes());
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
