//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: Lua scripts run in the
//! caller's space (a tenant's keys only), atomically within it (the
//! space's exclusive lock), handing their worker over when they run long
//! (see `script::watch`), and logged
//! by their effects: the writes a script made reach the log as one record,
//! so replay never runs Lua.

use super::args::{int, is, lower};
use super::dispatch::run;
use smallvec::SmallVec;

use super::flags::{ADMIN, WRITE};
use super::table::lookup;
use super::{CmdError, CmdResult, CommandSpec, Ctx, admission};
use crate::protocol::{Frame, Out};
use crate::script::{Host, Reply, Run, ScriptError};
use crate::server::client::Offload;

/// The Lua heap a space's scripts may use: a tenant's share of its own
/// memory limit (at least 1 MB), else 256 MB.
pub(super) fn memory_limit(ctx: &Ctx) -> usize {
    const MAX: u64 = 256 << 20;
    ctx.client.tenant.as_ref().map_or(MAX, |t| (t.limits().memory_bytes / 2).clamp(1 << 20, MAX)) as usize
}

/// Caches a script body for the caller's space. A new body is memory the
/// tenant holds: past its limit it is refused with OOM, not cached.
fn load_script(ctx: &Ctx, body: &[u8]) -> Result<String, CmdError> {
    let scripts = &ctx.space().scripts;
    if let Some(t) = &ctx.client.tenant
        && !scripts.exists(&crate::script::sha1_hex(body))
        // The cache keeps the body, and Lua its compiled constants.
        && t.memory_used().saturating_add(2 * body.len() as u64 + 1024) > t.limits().memory_bytes
    {
        return Err(CmdError::msg(format!("OOM the script would take tenant '{}' past its memory limit", t.id())));
    }
    scripts.load(body, memory_limit(ctx)).map_err(script_error)
}

/// Serves a running script's `redis.call`s with the caller's context.
pub(super) struct CommandHost<'c, 'a> {
    pub(super) ctx: &'c mut Ctx<'a>,
    pub(super) read_only: bool,
    /// Where the script's commands reply (reused: see `call`).
    pub(super) out: Out,
}

impl<'c, 'a> CommandHost<'c, 'a> {
    pub(super) fn new(ctx: &'c mut Ctx<'a>, read_only: bool) -> Self {
        CommandHost { ctx, read_only, out: Out::default() }
    }
}

impl Host for CommandHost<'_, '_> {
    fn call(&mut self, idx: usize, spec: &'static CommandSpec, argv: &[Vec<u8>], resp3: bool) -> Result<Frame, String> {
        if self.read_only && spec.has(WRITE) {
            return Err("ERR Write commands are not allowed from read-only scripts.".into());
        }
        let args: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| a.as_slice()).collect();
        let ctx = &mut *self.ctx;
        if ctx.client.bound && spec.has(ADMIN) && !admission::tenant_may_run(spec, &args) {
            let id = ctx.client.tenant.as_ref().map_or("?", |t| t.id()).to_string();
            return Err(format!("NOPERM tenant '{id}' has no permissions to run the '{}' command", spec.name));
        }
        // A script's commands count against the tenant's rate as any others.
        admission::admit(ctx, spec).map_err(|e| e.to_string())?;
        // One buffer for the run's replies (each is decoded at once).
        self.out.buf.clear();
        self.out.resp3 = resp3;
        let mut inner = super::Ctx {
            state: ctx.state,
            client: &mut *ctx.client,
            out: &mut self.out,
            now_ms: ctx.now_ms,
            in_exec: true,
            touch: ctx.touch,
            space: ctx.space,
        };
        run(&mut inner, idx, spec, &args);
        match Frame::decode(&self.out.buf) {
            Ok(Some((Frame::Error(e), _))) => Err(e),
            Ok(Some((f, _))) => Ok(f),
            _ => Err("ERR the command gave no reply".into()),
        }
    }

    fn may_run(&mut self, argv: &[Vec<u8>]) -> Option<bool> {
        let (_, spec) = lookup(&argv[0])?;
        let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
        Some(!(self.ctx.client.bound && spec.has(ADMIN) && !admission::tenant_may_run(spec, &args)))
    }

    fn begin(&mut self, allow_oom: bool, may_write: bool) -> Result<(), String> {
        let ctx = &mut *self.ctx;
        ctx.client.script_allow_oom = allow_oom;
        if !may_write || ctx.client.loading {
            return Ok(());
        }
        // A tenant's own limit first (no flag lifts it), then `maxmemory`
        // (which may evict to make room, as before any write).
        if let Some(t) = &ctx.client.tenant
            && t.memory_used() > t.limits().memory_bytes
        {
            let e = crate::tenancy::TenantError::Oom { id: t.id().into(), used: t.memory_used(), limit: t.limits().memory_bytes };
            return Err(e.to_string());
        }
        admission::maxmemory_guard(ctx, 0).map_err(|e| String::from_utf8_lossy(&e.to_bytes()).into_owned())
    }

    fn log(&mut self, level: i64, message: &str) {
        let space = self.ctx.space.owner().unwrap_or("-").to_string();
        match level {
            0 => tracing::debug!(space, "script: {message}"),
            1 | 2 => tracing::info!(space, "script: {message}"),
            _ => tracing::warn!(space, "script: {message}"),
        }
    }
}

/// A call's KEYS and ARGV.
type KeysAndArgs<'s, 'a> = (&'s [&'a [u8]], &'s [&'a [u8]]);

/// KEYS and ARGV of EVAL or FCALL: `n` keys after the third argument,
/// then the rest (slices of the request: nothing copied).
pub(super) fn split_keys<'s, 'a>(a: &'s [&'a [u8]], n: i64) -> Result<KeysAndArgs<'s, 'a>, CmdError> {
    if n > (a.len() - 3) as i64 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    if n < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    Ok(a[3..].split_at(n as usize))
}

pub(super) fn script_error(e: ScriptError) -> CmdError {
    CmdError::Msg(e.0)
}

fn eval_generic(ctx: &mut Ctx, a: &[&[u8]], by_sha: bool, read_only: bool) -> CmdResult {
    if by_sha && a[1].len() != 40 {
        return Err(CmdError::msg("NOSCRIPT No matching script. Please use EVAL."));
    }
    let (keys, args) = split_keys(a, int(a[2])?)?;
    // An unknown SHA is found missing by the run itself (one lookup); a
    // given one is lower-cased on the stack.
    let mut given = [0u8; 40];
    let sha: std::borrow::Cow<str> = if by_sha {
        given.copy_from_slice(a[1]);
        given.make_ascii_lowercase();
        std::str::from_utf8(&given).map_err(|_| CmdError::msg("NOSCRIPT No matching script. Please use EVAL."))?.into()
    } else {
        load_script(ctx, a[1])?.into()
    };
    let scripts = &ctx.space().scripts;
    let go = move |host: &mut CommandHost, run: Run, limit: usize, now: u64| scripts.run(&sha, keys, args, run, host, limit, now);
    run_and_reply(ctx, read_only, "NOSCRIPT No matching script. Please use EVAL.", go)
}

/// Runs a script or function (`go`) in the caller's context, logs its
/// writes as one record of their effects, and replies (`missing`: the
/// error when there was nothing to run). `go` gets the host serving its
/// commands, how it may act, its heap cap and the time.
pub(super) fn run_and_reply<F>(ctx: &mut Ctx, read_only: bool, missing: &str, go: F) -> CmdResult
where
    F: FnOnce(&mut CommandHost, Run, usize, u64) -> Result<Reply, Option<ScriptError>>,
{
    let limit = memory_limit(ctx);
    let (now, resp3, outer) = (ctx.now_ms, ctx.out.resp3, ctx.in_exec);
    // Read on a worker (not offloaded, see `runs_long`): the run hands the
    // worker over if it lasts.
    let on_worker = ctx.client.offload == Offload::Allowed && crate::worker::is_multi_thread_worker();
    ctx.in_exec = true;
    ctx.client.in_script = true;
    let result = {
        let mut host = CommandHost::new(ctx, read_only);
        go(&mut host, Run { read_only, resp3, on_worker }, limit, now)
    };
    ctx.in_exec = outer;
    ctx.client.in_script = false;
    ctx.client.script_allow_oom = false;
    if ctx.space.scripts.end_long() {
        ctx.space.wake_waiters();
    }
    // The script's writes reach the log as one record, whatever it returned
    // (inside EXEC, as part of the transaction's).
    if !outer {
        let records = std::mem::take(&mut ctx.client.tx_records);
        if let (false, Some(p)) = (records.is_empty(), ctx.state.persistence()) {
            ctx.client.persist_seq = p.log(&crate::persist::Record::Batch(records));
        }
    }
    // EVAL and FCALL are not logged themselves: their effects were, above.
    ctx.client.unchanged = true;
    match result {
        Ok(reply) => {
            let mark = ctx.out.buf.len();
            reply.write(ctx.out);
            // A script's error reply counts as an error (INFO), as in Redis.
            if ctx.out.buf.get(mark) == Some(&b'-') {
                let line = ctx.out.buf[mark + 1..].split(|&b| b == b'\r').next().unwrap_or_default().to_vec();
                super::dispatch::count_error(ctx, &line);
            }
            Ok(())
        }
        Err(None) => Err(CmdError::msg(missing)),
        Err(Some(e)) => Err(script_error(e)),
    }
}

pub fn eval(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, a, false, false)
}

pub fn eval_ro(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, a, false, true)
}

pub fn evalsha(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, a, true, false)
}

pub fn evalsha_ro(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    eval_generic(ctx, a, true, true)
}

/// Whether a request is SCRIPT KILL, which runs while the space's script
/// does (everything else of the space waits for it, or gets BUSY).
pub fn kills_script(argv: &[&[u8]]) -> bool {
    (argv.len() == 2 && is(argv[0], "script") && is(argv[1], "kill")) || super::functions::reaches_running_function(argv)
}

pub fn script(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    let scripts = &ctx.space().scripts;
    match (sub.as_str(), a.len()) {
        ("load", 3) => {
            let sha = load_script(ctx, a[2])?;
            ctx.out.bulk(sha.as_bytes());
        }
        ("exists", n) if n >= 3 => {
            ctx.out.array(n - 2);
            for s in &a[2..] {
                ctx.out.int(scripts.exists(&String::from_utf8_lossy(s)) as i64);
            }
        }
        ("flush", _) => {
            if a.len() > 3 || (a.len() == 3 && !is(a[2], "async") && !is(a[2], "sync")) {
                return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
            }
            scripts.flush();
            ctx.out.ok();
        }
        ("debug", 3) => {
            if is(a[2], "no") {
                ctx.out.ok();
            } else if is(a[2], "yes") || is(a[2], "sync") {
                return Err(CmdError::err("SCRIPT DEBUG is not supported: Ferrite has no Lua debugger"));
            } else {
                return Err(CmdError::err("Use SCRIPT DEBUG YES/SYNC/NO"));
            }
        }
        ("kill", 2) => {
            scripts.kill(true).map_err(script_error)?;
            ctx.out.ok();
        }
        ("help", 2) => super::keys::help_reply(
            ctx,
            &[
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ],
        ),
        ("load" | "exists" | "kill" | "help" | "debug", _) => return Err(CmdError::Arity(format!("script|{sub}"))),
        _ => return Err(CmdError::UnknownSubcommand { cmd: "SCRIPT".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    }
    Ok(())
}
