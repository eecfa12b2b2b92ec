//! Introspection: SLOWLOG, LATENCY, and what dispatch records for them.
//!
//! Both are scoped as a tenant's other views are: a tenant-bound connection
//! logs into, reads and resets its own tenant's space's slowlog and latency
//! events; every admin connection logs into the global space's (an admin
//! inside a tenant with TENANT.USE reads and resets that tenant's, to debug
//! it, but its own commands never land there).

use super::args::lower;
use super::flags::ADMIN;
use super::keys::help_reply;
use super::{CmdError, CmdResult, CommandSpec, Ctx};
use crate::space::Space;
use crate::space::monitor::Source;
use crate::space::slowlog::{Entry, logged_argv};

/// Checks a container command's subcommand as Redis does before running
/// it (unknown, then its arity); returns it lowercased.
fn subcommand(cmd: &str, a: &[&[u8]], subs: &[(&str, i32)]) -> Result<String, CmdError> {
    let sub = lower(a[1]);
    let Some(&(name, arity)) = subs.iter().find(|(n, _)| *n == sub) else {
        return Err(CmdError::UnknownSubcommand { cmd: cmd.to_uppercase(), sub: String::from_utf8_lossy(a[1]).into() });
    };
    let ok = if arity >= 0 { a.len() == arity as usize } else { a.len() >= (-arity) as usize };
    if !ok {
        return Err(CmdError::Arity(format!("{cmd}|{name}")));
    }
    Ok(sub)
}

/// Redis's reply to a subcommand's bad arguments past its arity.
fn syntax(cmd: &str, a: &[&[u8]]) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(&a[1][..a[1].len().min(128)]),
        cmd.to_uppercase()
    ))
}

/// The space whose slow commands a connection's commands are logged in:
/// its tenant's for a tenant-bound connection, the global one for an admin
/// wherever it is.
fn logging_space<'a>(ctx: &Ctx<'a>) -> &'a Space {
    if ctx.client.bound { ctx.space() } else { &ctx.state.global }
}

/// Called by dispatch for a command at least as long as the lowest
/// threshold (see `Thresholds::interesting`): logs it where it belongs.
/// Replay is never logged, nor a blocking command still waiting (it is,
/// with its last run's time, once served), nor EXEC (its commands are,
/// one by one, as Redis's `skip_slowlog`).
#[cold]
pub fn record(ctx: &Ctx, spec: &CommandSpec, argv: &[&[u8]], us: u64) {
    if ctx.client.loading || ctx.client.block.is_some() {
        return;
    }
    let th = &ctx.state.thresholds;
    if let Some(ms) = th.latency_ms(us) {
        let event = if spec.has(super::flags::FAST) { "fast-command" } else { "command" };
        logging_space(ctx).latency.add(event, ctx.now_ms / 1000, ms);
    }
    if spec.name != "exec" && th.slow(us) {
        let info = &ctx.client.info;
        let entry = Entry {
            id: 0,
            time: ctx.now_ms / 1000,
            duration_us: us,
            argv: logged_argv(spec.name, argv, spec.has(super::flags::TENANCY)),
            addr: info.addr.to_string(),
            name: info.name.lock().clone(),
        };
        logging_space(ctx).slowlog.push(entry, th.slowlog_max_len.load(std::sync::atomic::Ordering::Relaxed));
    }
}

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

/// SLOWLOG GET [count] | LEN | RESET | HELP, on the caller's space's log.
pub fn slowlog(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = subcommand("slowlog", a, &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)])?;
    let log = &ctx.space().slowlog;
    match sub.as_str() {
        "help" => help_reply(ctx, SLOWLOG_HELP),
        "len" => ctx.out.int(log.len() as i64),
        "reset" => {
            log.reset();
            ctx.out.ok();
        }
        _ => {
            if a.len() > 3 {
                return Err(syntax("slowlog", a));
            }
            let bad = || CmdError::err("count should be greater than or equal to -1");
            let count = match a.get(2) {
                None => 10,
                Some(c) => match super::args::int(c).map_err(|_| bad())? {
                    -1 => usize::MAX,
                    n if n < -1 => return Err(bad()),
                    n => usize::try_from(n).unwrap_or(usize::MAX),
                },
            };
            let entries = log.newest(count);
            let out = &mut *ctx.out;
            out.array(entries.len());
            for e in entries {
                out.array(6);
                out.int(e.id as i64);
                out.int(e.time as i64);
                out.int(e.duration_us as i64);
                out.array(e.argv.len());
                e.argv.iter().for_each(|x| out.bulk(x));
                out.bulk(e.addr.as_bytes());
                out.bulk(e.name.as_bytes());
            }
        }
    }
    Ok(())
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

/// LATENCY LATEST | HISTORY event | RESET [event...] | DOCTOR | HELP, on
/// the caller's space's events (a tenant's own commands; the admin's
/// global ones).
pub fn latency(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = subcommand("latency", a, &[("doctor", 2), ("help", 2), ("histogram", -2), ("history", 3), ("latest", 2), ("reset", -2)])?;
    if sub == "histogram" {
        return histogram(ctx, &a[2..]);
    }
    let events = &ctx.space().latency;
    let out = &mut *ctx.out;
    match sub.as_str() {
        "help" => help_reply(ctx, LATENCY_HELP),
        "latest" => {
            let all = events.all();
            out.array(all.len());
            for (name, s) in all {
                let (time, ms) = s.latest();
                out.array(4);
                out.bulk(name.as_bytes());
                out.int(time as i64);
                out.int(ms as i64);
                out.int(s.max as i64);
            }
        }
        "history" => {
            let samples: Vec<(u64, u64)> = events.get(a[2]).map(|s| s.samples().collect()).unwrap_or_default();
            out.array(samples.len());
            for (time, ms) in samples {
                out.array(2);
                out.int(time as i64);
                out.int(ms as i64);
            }
        }
        "reset" if a.len() == 2 => out.int(events.reset(None) as i64),
        "reset" => out.int(a[2..].iter().map(|e| events.reset(Some(e))).sum::<usize>() as i64),
        _ => {
            let report = doctor(ctx);
            ctx.out.verbatim(report.as_bytes());
        }
    }
    Ok(())
}

/// LATENCY DOCTOR: Redis's report of the events sampled (average, mean
/// deviation, period, worst) and what to look at for command latency.
fn doctor(ctx: &Ctx) -> String {
    use std::fmt::Write as _;
    let th = &ctx.state.thresholds;
    let threshold = th.latency_ms.load(std::sync::atomic::Ordering::Relaxed);
    let slowlog = th.slowlog_us.load(std::sync::atomic::Ordering::Relaxed);
    let all = ctx.space().latency.all();
    if all.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    if all.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".into();
    }
    let now = ctx.now_ms / 1000;
    let mut r =
        String::from("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
    let (mut commands, mut fast) = (false, false);
    for (i, (name, s)) in all.iter().enumerate() {
        let v: Vec<(u64, u64)> = s.samples().collect();
        let n = v.len().max(1) as u64;
        let avg = v.iter().map(|x| x.1).sum::<u64>() / n;
        let mad = v.iter().map(|x| x.1.abs_diff(avg)).sum::<u64>() / n;
        let oldest = v.iter().map(|x| x.0).min().unwrap_or(now);
        let period = now.saturating_sub(oldest).max(1);
        let _ = writeln!(
            r,
            "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            i + 1,
            v.len(),
            period as f64 / n as f64,
            s.max
        );
        commands |= *name == "command";
        fast |= *name == "fast-command";
    }
    r.push_str("\nI have a few advices for you:\n\n");
    if commands && slowlog < 0 {
        let _ = writeln!(
            r,
            "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log with 'CONFIG SET slowlog-log-slower-than {}'.",
            threshold * 1000
        );
    } else if commands && (slowlog / 1000) as u64 > threshold {
        let _ = writeln!(
            r,
            "- The Slow Log only logs commands slower than the latency monitor threshold: try 'CONFIG SET slowlog-log-slower-than {}'.",
            threshold * 1000
        );
    }
    if commands {
        r.push_str("- Check your Slow Log (SLOWLOG GET) for the commands that are too slow to execute.\n");
    }
    if fast {
        r.push_str("- Fast commands were slow: the system did not give the server CPU time for long periods. Lower the system load, or check for noisy neighbours.\n");
    }
    if commands {
        r.push_str("- Deleting, expiring or evicting large objects is a blocking operation: fragment very large objects that are often deleted, expired or evicted into smaller ones.\n");
    }
    r
}

/// The monitors a client joins or leaves: its tenant's if it is bound to
/// one, else the admin's (which see every space).
fn monitors_of<'a>(ctx: &'a Ctx) -> &'a crate::space::monitor::Monitors {
    match (&ctx.client.tenant, ctx.client.bound) {
        (Some(t), true) => &t.space.monitors,
        _ => &ctx.state.global.monitors,
    }
}

/// MONITOR: from now on the client gets a line for every command of its
/// tenant's clients (the admin: of every client, tagged with its tenant).
pub fn monitor(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    if ctx.in_exec {
        return Err(CmdError::err("MONITOR isn't allowed for DENY BLOCKING client"));
    }
    if ctx.client.monitor {
        return Ok(());
    }
    monitors_of(ctx).add(ctx.subscriber());
    ctx.client.monitor = true;
    ctx.out.ok();
    Ok(())
}

/// Leaves the monitors (RESET, disconnect, leaving its context).
pub fn stop_monitoring(ctx: &mut Ctx) {
    if std::mem::take(&mut ctx.client.monitor) {
        monitors_of(ctx).remove(ctx.client.id());
    }
}

/// Scripts are shown before the commands they run, as in Redis (EXEC
/// after its transaction's).
pub fn fed_before(spec: &CommandSpec) -> bool {
    matches!(spec.name, "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro")
}

/// Shows a command that ran (`sent` as the client sent it) to the admin's
/// monitors and, for a tenant's own client, to the tenant's. Admin
/// commands are never shown, as in Redis.
pub fn feed_monitors(ctx: &Ctx, spec: &CommandSpec, sent: &[&[u8]]) {
    let global = &ctx.state.global.monitors;
    let own = ctx.client.bound && ctx.space.owner().is_some() && ctx.space.monitors.any();
    if !(global.any() || own) || spec.has(ADMIN) || ctx.client.loading || ctx.client.woken {
        return;
    }
    let addr = (!ctx.client.in_script).then_some(ctx.client.info.addr);
    let how = ctx.state.global.events.delivery(ctx.now_ms);
    if global.any() {
        global.feed(&Source { db: ctx.client.db, addr, tenant: ctx.space.owner() }, sent, how);
    }
    if own {
        ctx.space.monitors.feed(&Source { db: ctx.client.db, addr, tenant: None }, sent, how);
    }
}

/// The commands with calls, and their counters: every one, or those named
/// (unknown names skipped). Per-command counters are server-wide, so a
/// tenant gets none.
fn commands_with_calls<'a>(ctx: &'a Ctx, names: &[&[u8]]) -> Vec<(&'static str, &'a crate::metrics::CallCounter)> {
    if ctx.client.tenant.is_some() {
        return Vec::new();
    }
    let stats = super::COMMANDS.iter().zip(&ctx.state.command_stats);
    let named = |s: &CommandSpec| names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case(s.name.as_bytes()));
    stats.filter(|(s, c)| named(s) && c.calls.get().0 > 0).map(|(s, c)| (s.name, &c.calls)).collect()
}

/// LATENCY HISTOGRAM [command ...]: each command's calls and cumulative
/// counts by power-of-two microseconds, as Redis replies.
fn histogram(ctx: &mut Ctx, names: &[&[u8]]) -> CmdResult {
    let rows: Vec<_> = commands_with_calls(ctx, names).into_iter().map(|(n, c)| (n, c.get().0, c.histogram())).collect();
    let out = &mut *ctx.out;
    out.map(rows.len());
    for (name, calls, h) in rows {
        out.bulk(name.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.int(calls as i64);
        out.bulk(b"histogram_usec");
        let buckets = crate::metrics::cumulative_usec(&h);
        out.map(buckets.len());
        for (usec, n) in buckets {
            out.int(usec as i64);
            out.int(n as i64);
        }
    }
    Ok(())
}

/// INFO latencystats: p50, p99 and p99.9 of each command's latency.
pub fn info_latencystats(ctx: &Ctx, t: &mut String) {
    use std::fmt::Write as _;
    t.push_str("# Latencystats\r\n");
    for (name, calls) in commands_with_calls(ctx, &[]) {
        let h = calls.histogram();
        let p = |f| crate::metrics::percentile_usec(&h, f);
        let _ = write!(t, "latency_percentiles_usec_{name}:p50={:.3},p99={:.3},p99.9={:.3}\r\n", p(0.5), p(0.99), p(0.999));
    }
}

/// INFO errorstats: error replies by kind (server-wide, so a tenant gets
/// the header only).
pub fn info_errorstats(ctx: &Ctx, t: &mut String) {
    use std::fmt::Write as _;
    t.push_str("# Errorstats\r\n");
    if ctx.client.tenant.is_none() {
        for (kind, n) in ctx.state.error_kinds.snapshot() {
            let _ = write!(t, "errorstat_{kind}:count={n}\r\n");
        }
    }
}
