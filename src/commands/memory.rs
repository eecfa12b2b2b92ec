//! MEMORY USAGE / STATS / DOCTOR / MALLOC-STATS / PURGE / HELP. A tenant
//! sees its own memory (its keys, connections, scripts, tracking table)
//! against its own limit; the admin sees the server's.

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, lower};
use super::keys::help_reply;
use super::{CmdError, CmdResult, Ctx};

const HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

pub fn memory(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    let exact = |n: usize| if a.len() == n { Ok(()) } else { Err(CmdError::Arity(format!("memory|{sub}"))) };
    match sub.as_str() {
        "usage" => usage(ctx, a)?,
        "stats" => {
            exact(2)?;
            stats(ctx);
        }
        "doctor" => {
            exact(2)?;
            let report = doctor(ctx);
            ctx.out.verbatim(report.as_bytes());
        }
        "malloc-stats" => {
            exact(2)?;
            ctx.out.verbatim(b"Stats not supported for the current allocator\n");
        }
        "purge" => {
            exact(2)?;
            ctx.out.ok();
        }
        "help" => {
            exact(2)?;
            help_reply(ctx, HELP);
        }
        _ => return Err(CmdError::UnknownSubcommand { cmd: "MEMORY".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    }
    Ok(())
}

/// MEMORY USAGE key [SAMPLES n]: the key's accounted bytes (exact, so
/// SAMPLES is checked and otherwise not needed).
fn usage(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() < 3 {
        return Err(CmdError::Arity("memory|usage".into()));
    }
    let mut i = 3;
    while i < a.len() {
        if is(a[i], "samples") && i + 1 < a.len() {
            if int(a[i + 1])? < 0 {
                return Err(CmdError::Syntax);
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    match ctx.db().sample_one(a[2], ctx.now_ms) {
        Some(b) => ctx.out.int(b as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

/// What MEMORY STATS and DOCTOR report, for the caller's view.
struct Figures {
    peak: u64,
    total: u64,
    clients: u64,
    scripts: u64,
    functions: u64,
    tracking: u64,
    keys: u64,
    dataset: u64,
    rss: u64,
    dbs: Vec<(usize, u64, u64)>,
}

fn figures(ctx: &Ctx) -> Figures {
    let space = ctx.space();
    let (scripts, functions) = space.scripts.bytes_by_kind();
    let dbs = space.existing().filter(|(_, d)| !d.is_empty()).map(|(i, d)| (i, d.len() as u64, d.volatile_len() as u64)).collect();
    let dataset = space.used_bytes() as u64;
    let keys = space.keys() as u64;
    let tracking = space.tracking.bytes() as u64;
    match &ctx.client.tenant {
        Some(t) => {
            let total = t.memory_used();
            let peak = t.metrics.memory_peak.load(Relaxed).max(total);
            Figures { peak, total, clients: t.client_memory(), scripts, functions, tracking, keys, dataset, rss: total, dbs }
        }
        None => {
            let total = ctx.state.used_memory() as u64;
            let clients = ctx.state.tenants.list().iter().map(|t| t.client_memory()).sum();
            let rss = super::server::rss_bytes();
            Figures { peak: total, total, clients, scripts, functions, tracking, keys, dataset, rss, dbs }
        }
    }
}

/// MEMORY STATS: Redis's fields in Redis's order (those about replicas,
/// clusters and the allocator's pages are 0 or the figures they stand for).
fn stats(ctx: &mut Ctx) {
    let f = figures(ctx);
    let overhead = f.clients + f.scripts + f.functions + f.tracking;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let fields: Vec<(&str, Option<f64>, i64)> = vec![
        ("peak.allocated", None, f.peak as i64),
        ("total.allocated", None, f.total as i64),
        ("startup.allocated", None, 0),
        ("replication.backlog", None, 0),
        ("clients.slaves", None, 0),
        ("clients.normal", None, f.clients as i64),
        ("cluster.links", None, 0),
        ("aof.buffer", None, 0),
        ("lua.caches", None, f.scripts as i64),
        ("functions.caches", None, f.functions as i64),
    ];
    let tail: Vec<(&str, Option<f64>, i64)> = vec![
        ("overhead.total", None, overhead as i64),
        ("keys.count", None, f.keys as i64),
        ("keys.bytes-per-key", None, f.dataset.checked_div(f.keys).unwrap_or(0) as i64),
        ("dataset.bytes", None, f.dataset as i64),
        ("dataset.percentage", Some(100.0 * ratio(f.dataset, f.total)), 0),
        ("peak.percentage", Some(100.0 * ratio(f.total, f.peak)), 0),
        ("allocator.allocated", None, f.total as i64),
        ("allocator.active", None, f.total as i64),
        ("allocator.resident", None, f.rss as i64),
        ("allocator-fragmentation.ratio", Some(1.0), 0),
        ("allocator-fragmentation.bytes", None, 0),
        ("allocator-rss.ratio", Some(ratio(f.rss, f.total)), 0),
        ("allocator-rss.bytes", None, f.rss as i64 - f.total as i64),
        ("rss-overhead.ratio", Some(1.0), 0),
        ("rss-overhead.bytes", None, 0),
        ("fragmentation", Some(ratio(f.rss, f.total)), 0),
        ("fragmentation.bytes", None, f.rss as i64 - f.total as i64),
    ];
    let out = &mut *ctx.out;
    out.map(fields.len() + f.dbs.len() + tail.len());
    let field = |out: &mut crate::protocol::Out, (name, double, n): (&str, Option<f64>, i64)| {
        out.bulk(name.as_bytes());
        match double {
            Some(d) => out.double(d),
            None => out.int(n),
        }
    };
    fields.into_iter().for_each(|x| field(out, x));
    for (i, keys, volatile) in &f.dbs {
        // Per key, a table slot and an entry's pointers, as Redis counts
        // its dictionaries' overhead.
        out.bulk(format!("db.{i}").as_bytes());
        out.map(3);
        out.bulk(b"overhead.hashtable.main");
        out.int((keys * 24) as i64);
        out.bulk(b"overhead.hashtable.expires");
        out.int((volatile * 24) as i64);
        out.bulk(b"overhead.hashtable.slot-to-keys");
        out.int(0);
    }
    tail.into_iter().for_each(|x| field(out, x));
}

/// MEMORY DOCTOR: a short report in our own words.
fn doctor(ctx: &Ctx) -> String {
    let f = figures(ctx);
    let limit = ctx.client.tenant.as_ref().map(|t| t.limits().memory_bytes).filter(|l| *l > 0);
    let mut notes = Vec::new();
    if f.total < 1024 * 1024 && limit.is_none_or(|l| f.total * 2 < l) {
        return "Memory use is small; there is nothing to report yet.\n".into();
    }
    if let Some(l) = limit {
        let pct = 100 * f.total / l;
        if pct >= 90 {
            notes.push(format!("* Memory is at {pct}% of the tenant's limit: writes will soon be refused or keys evicted."));
        }
    }
    if f.total > 0 && f.clients * 4 > f.total {
        notes.push("* Connections hold over a quarter of the memory (unread replies, pipelined input, queued messages).".into());
    }
    if f.peak > f.total.saturating_mul(3) / 2 {
        notes.push("* The peak was more than 150% of what is used now.".into());
    }
    if f.tracking * 10 > f.total && f.tracking > 0 {
        notes.push("* The CLIENT TRACKING table holds over a tenth of the memory.".into());
    }
    if notes.is_empty() {
        return "No memory problems found.\n".into();
    }
    format!("Memory notes:\n\n{}\n", notes.join("\n"))
}
