//! FUNCTION and FCALL: Redis 7.0's function libraries, each space's own
//! (a tenant's libraries, like its scripts, are its alone and count
//! against its memory). FUNCTION LOAD, DELETE, FLUSH and RESTORE are
//! logged as the commands they are, so a restart loads the libraries
//! again; a snapshot carries them as one FUNCTION RESTORE per space. FCALL
//! is logged by its effects, as EVAL is.

use std::time::Duration;

use super::args::{is, lower};
use super::scripting::{CommandHost, memory_limit, run_and_reply, script_error, split_keys};
use super::stream_groups::subcommand_syntax;
use super::{CmdError, CmdResult, Ctx};
use crate::protocol::parse::parse_i64;
use crate::script::Run;
use crate::server::client::Offload;
use crate::store::dump;

/// How long a library's code may run while it loads (Redis's limit).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether a request is FUNCTION KILL or FUNCTION STATS, which run while
/// the space's function does (as SCRIPT KILL does).
pub fn reaches_running_function(argv: &[&[u8]]) -> bool {
    argv.len() == 2 && is(argv[0], "function") && (is(argv[1], "kill") || is(argv[1], "stats"))
}

pub fn function(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    // Only what changes the libraries is logged.
    ctx.client.unchanged = true;
    let sub = lower(a[1]);
    match (sub.as_str(), a.len()) {
        ("load", n) if n >= 3 => load(ctx, a),
        ("delete", 3) => delete(ctx, a[2]),
        ("flush", _) => flush(ctx, a),
        ("list", _) => list(ctx, a),
        ("dump", 2) => dump_libraries(ctx),
        ("restore", n) if n >= 3 => restore(ctx, a),
        ("stats", 2) => stats(ctx),
        ("kill", 2) => {
            ctx.space().scripts.kill(false).map_err(script_error)?;
            ctx.out.ok();
            Ok(())
        }
        ("help", 2) => {
            super::keys::help_reply(ctx, HELP);
            Ok(())
        }
        ("load" | "delete" | "dump" | "restore" | "stats" | "kill" | "help", _) => Err(CmdError::Arity(format!("function|{sub}"))),
        _ => Err(CmdError::UnknownSubcommand { cmd: "FUNCTION".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    }
}

/// A library's code is memory its tenant holds: past its limit the load is
/// refused with OOM.
fn admit_code(ctx: &Ctx, bytes: usize) -> CmdResult {
    if let Some(t) = &ctx.client.tenant
        && t.memory_used().saturating_add(2 * bytes as u64 + 1024) > t.limits().memory_bytes
    {
        return Err(CmdError::msg(format!("OOM the library would take tenant '{}' past its memory limit", t.id())));
    }
    Ok(())
}

/// The time a library's code may run: none while the log is replayed
/// (what was accepted must load again).
fn load_timeout(ctx: &Ctx) -> Option<Duration> {
    (!ctx.client.loading).then_some(LOAD_TIMEOUT)
}

fn on_worker(ctx: &Ctx) -> bool {
    ctx.client.offload == Offload::Allowed && crate::worker::is_multi_thread_worker()
}

/// A load that ran long marked its space busy: the space's waiting
/// connections go on.
fn end_long(ctx: &Ctx) {
    if ctx.space.scripts.end_long() {
        ctx.space.wake_waiters();
    }
}

fn load(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut replace = false;
    for option in &a[2..a.len() - 1] {
        if !is(option, "replace") {
            return Err(CmdError::err(format!("Unknown option given: {}", String::from_utf8_lossy(option))));
        }
        replace = true;
    }
    let code = a[a.len() - 1];
    admit_code(ctx, code.len())?;
    let (limit, timeout, on_worker) = (memory_limit(ctx), load_timeout(ctx), on_worker(ctx));
    let scripts = &ctx.space().scripts;
    let mut host = CommandHost::new(ctx, true);
    let loaded = scripts.load_library(code, replace, limit, &mut host, timeout, on_worker);
    end_long(ctx);
    let name = loaded.map_err(script_error)?;
    ctx.out.bulk(name.as_bytes());
    ctx.client.unchanged = false;
    Ok(())
}

fn delete(ctx: &mut Ctx, name: &[u8]) -> CmdResult {
    if !ctx.space().scripts.delete_library(&String::from_utf8_lossy(name)) {
        return Err(CmdError::err("Library not found"));
    }
    ctx.out.ok();
    ctx.client.unchanged = false;
    Ok(())
}

fn flush(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 3 {
        return Err(subcommand_syntax(a[1], "FUNCTION"));
    }
    if a.len() == 3 && !is(a[2], "sync") && !is(a[2], "async") {
        return Err(CmdError::err("FUNCTION FLUSH only supports SYNC|ASYNC option"));
    }
    ctx.space().scripts.flush_functions();
    ctx.out.ok();
    ctx.client.unchanged = false;
    Ok(())
}

fn list(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < a.len() {
        if !with_code && is(a[i], "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(a[i], "libraryname") {
            if i + 1 >= a.len() {
                return Err(CmdError::err("library name argument was not given"));
            }
            i += 1;
            pattern = Some(a[i]);
        } else {
            return Err(CmdError::err(format!("Unknown argument {}", String::from_utf8_lossy(a[i]))));
        }
        i += 1;
    }
    let out = &mut *ctx.out;
    ctx.space.scripts.with_libraries(|libraries| {
        let chosen: Vec<_> =
            libraries.filter(|l| pattern.is_none_or(|p| crate::store::glob::matches(p, l.name.as_bytes(), false))).collect();
        out.array(chosen.len());
        for lib in chosen {
            out.map(if with_code { 4 } else { 3 });
            out.bulk(b"library_name");
            out.bulk(lib.name.as_bytes());
            out.bulk(b"engine");
            out.bulk(b"LUA");
            out.bulk(b"functions");
            out.array(lib.functions.len());
            for f in &lib.functions {
                out.map(3);
                out.bulk(b"name");
                out.bulk(f.name.as_bytes());
                out.bulk(b"description");
                match &f.description {
                    Some(d) => out.bulk(d),
                    None => out.null(),
                }
                out.bulk(b"flags");
                let names: Vec<_> = f.flag_names().collect();
                out.set(names.len());
                names.iter().for_each(|n| out.simple(n));
            }
            if with_code {
                out.bulk(b"library_code");
                out.bulk(&lib.code);
            }
        }
    });
    Ok(())
}

fn dump_libraries(ctx: &mut Ctx) -> CmdResult {
    let payload = ctx.space.scripts.dump_libraries().unwrap_or_else(|| dump::encode_functions(std::iter::empty()));
    ctx.out.bulk(&payload);
    Ok(())
}

fn restore(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 4 {
        return Err(subcommand_syntax(a[1], "FUNCTION"));
    }
    let policy = match a.get(3) {
        None => crate::script::Restore::Append,
        Some(p) if is(p, "append") => crate::script::Restore::Append,
        Some(p) if is(p, "replace") => crate::script::Restore::Replace,
        Some(p) if is(p, "flush") => crate::script::Restore::Flush,
        Some(_) => return Err(CmdError::err("Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.")),
    };
    let max_bulk = ctx.state.proto_max_bulk_len.load(std::sync::atomic::Ordering::Relaxed) as usize;
    let limits = dump::Limits { max_bulk, max_decoded: a[2].len().saturating_mul(64).max(1 << 20) };
    let codes = dump::decode_functions(a[2], limits).map_err(CmdError::err)?;
    admit_code(ctx, codes.iter().map(|c| c.len()).sum())?;
    let (limit, timeout, on_worker) = (memory_limit(ctx), load_timeout(ctx), on_worker(ctx));
    let scripts = &ctx.space().scripts;
    let mut host = CommandHost::new(ctx, true);
    let restored = scripts.restore_libraries(codes, policy, limit, &mut host, timeout, on_worker);
    end_long(ctx);
    restored.map_err(script_error)?;
    ctx.out.ok();
    ctx.client.unchanged = false;
    Ok(())
}

fn stats(ctx: &mut Ctx) -> CmdResult {
    let scripts = &ctx.space.scripts;
    if scripts.running_for(ctx.now_ms).is_some() && scripts.running_function().is_none() {
        return Err(CmdError::msg(crate::script::BUSY_SCRIPT));
    }
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match scripts.running_function() {
        None => out.null(),
        Some((name, command, started_ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            command.iter().for_each(|c| out.bulk(c));
            out.bulk(b"duration_ms");
            out.int(ctx.now_ms.saturating_sub(started_ms) as i64);
        }
    }
    let (libraries, functions) = scripts.library_counts();
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
    Ok(())
}

fn fcall_generic(ctx: &mut Ctx, a: &[&[u8]], read_only: bool) -> CmdResult {
    let scripts = &ctx.space().scripts;
    if !scripts.function_exists(&String::from_utf8_lossy(a[1])) {
        return Err(CmdError::err("Function not found"));
    }
    let n = parse_i64(a[2]).ok_or_else(|| CmdError::err("Bad number of keys provided"))?;
    let (keys, args) = split_keys(a, n)?;
    let go = |host: &mut CommandHost, run: Run, limit: usize, now: u64| scripts.call_function(a, keys, args, run, host, limit, now);
    run_and_reply(ctx, read_only, "ERR Function not found", go)
}

pub fn fcall(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    fcall_generic(ctx, a, false)
}

pub fn fcall_ro(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    fcall_generic(ctx, a, true)
}

const HELP: &[&str] = &[
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];
