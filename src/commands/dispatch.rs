//! From an argument vector to a reply: lookup, arity, authentication,
//! subscribed-context and MULTI rules, locking, then the handler.
//!
//! The order of checks follows Redis's `processCommand`, so the same bad
//! request gets the same error here as there.

use std::time::Instant;

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
    let start = Instant::now();
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
    if spec.has(WRITE) && state.blocking.any() {
        for i in spec.key_indexes(argv.len()) {
            state.blocking.signal(ctx.client.db, argv[i]);
        }
    }
    let stats = &state.command_stats[idx];
    stats.calls.record(start.elapsed().as_micros() as u64);
    state.stats.commands_processed.incr();
    if let Err(e) = result {
        stats.failed.incr();
        state.stats.total_error_replies.incr();
        ctx.out.error(&e.to_string());
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
    ctx.out.error(&err.to_string());
}

fn unknown_command(argv: &[&[u8]]) -> CmdError {
    let mut args = String::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(room).collect();
        args.push_str(&format!("'{s}' "));
    }
    let name: String = String::from_utf8_lossy(argv[0]).chars().take(128).collect();
    CmdError::UnknownCommand { name, args }
}
