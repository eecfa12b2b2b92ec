//! Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN, FUNCTION, DEBUG.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, lower};
use super::connection::REDIS_VERSION;
use super::keys::help_reply;
use super::table::COMMANDS;
use super::{CmdError, CmdResult, CommandSpec, Ctx};
use crate::config::{PARAMS, param};
use crate::persist::settings::{SETTINGS, setting};
use crate::persist::snapshot::StartError;
use crate::server::state::ExitSave;
use crate::space::notify;
use crate::store::glob;

/// `tenant` is Ferrite's own: a tenant's connection (or an operator's inside
/// TENANT.USE) sees its limits, usage and refusals; others get nothing.
const DEFAULT_SECTIONS: &[&str] =
    &["server", "clients", "memory", "persistence", "stats", "replication", "errorstats", "keyspace", "tenant"];
const ALL_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "commandstats",
    "errorstats",
    "latencystats",
    "keyspace",
    "tenant",
];

pub fn info(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let mut wanted: Vec<String> = a[1..].iter().map(|s| lower(s)).collect();
    if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
        wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
    }
    if wanted.iter().any(|w| w == "all" || w == "everything") {
        wanted.extend(ALL_SECTIONS.iter().map(|s| s.to_string()));
    }
    let mut text = String::new();
    for section in ALL_SECTIONS {
        if wanted.iter().any(|w| w == section) {
            let mut s = String::new();
            info_section(ctx, section, &mut s);
            // A section with nothing to say (`tenant` outside a tenant) leaves no blank line.
            if !text.is_empty() && !s.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str(&s);
        }
    }
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}

/// Resident set size from /proc, in bytes (0 where unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2}G", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2}M", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.2}K", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

fn info_section(ctx: &Ctx, section: &str, t: &mut String) {
    let s = ctx.state;
    let cfg = s.config.read().clone();
    let st = &s.stats;
    let tenant = ctx.client.tenant.is_some();
    match section {
        "server" => {
            let up = s.started.elapsed().as_secs();
            let _ = write!(
                t,
                "# Server\r\nredis_version:{REDIS_VERSION}\r\nferrite_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\nrun_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nexecutable:ferrite\r\nconfig_file:\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH,
                // The process is every tenant's: a tenant sees neither it nor its run.
                if tenant { 0 } else { std::process::id() },
                if tenant { "0000000000000000000000000000000000000000" } else { &s.run_id },
                cfg.port,
                up / 86400,
                cfg.hz,
                cfg.hz
            );
        }
        "clients" => {
            let clients = super::connection::visible_clients(ctx);
            let maxclients = ctx.client.tenant.as_ref().map_or(cfg.maxclients, |t| t.limits().max_connections);
            let _ = write!(
                t,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\ntracking_clients:{}\r\npubsub_clients:{}\r\n",
                clients.len(),
                maxclients,
                ctx.space().blocking.blocked_clients(),
                ctx.space().tracking.counts().0,
                clients.iter().filter(|c| c.subs.load(Relaxed) + c.psubs.load(Relaxed) + c.ssubs.load(Relaxed) > 0).count()
            );
        }
        "memory" => {
            // A tenant sees its own memory against its own limit.
            let (used, maxmemory, policy) = match &ctx.client.tenant {
                Some(tn) => (tn.memory_used(), tn.limits().memory_bytes, tn.profile().eviction),
                None => (s.used_memory() as u64, cfg.maxmemory, cfg.maxmemory_policy.clone()),
            };
            // The process's RSS is every tenant's together.
            let rss = if tenant { used } else { rss_bytes() };
            let _ = write!(
                t,
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nmem_allocator:mimalloc\r\n",
                human_bytes(used),
                human_bytes(rss),
                maxmemory,
                human_bytes(maxmemory),
                policy
            );
        }
        "persistence" => persistence_section(ctx, t),
        "stats" => {
            let expired: u64 = ctx.space().existing().map(|(_, d)| d.expired_count()).sum();
            // A tenant's counters are its own; the server's would reveal others' traffic.
            let tracking = ctx.space().tracking.counts();
            let v = match &ctx.client.tenant {
                Some(tn) => {
                    let m = &tn.metrics;
                    let g = |x: &std::sync::atomic::AtomicU64| x.load(Relaxed);
                    [
                        g(&m.connections_total),
                        g(&m.reads) + g(&m.writes) + g(&m.admin),
                        g(&m.bytes_in),
                        g(&m.bytes_out),
                        g(&m.connections_refused),
                        g(&m.evicted),
                        g(&m.hits),
                        g(&m.misses),
                        g(&m.rate_limited) + g(&m.quota_rejected),
                    ]
                }
                None => [
                    st.connections_received.get(),
                    st.commands_processed.get(),
                    st.net_input_bytes.get(),
                    st.net_output_bytes.get(),
                    st.rejected_connections.get(),
                    st.evicted_keys.get(),
                    st.keyspace_hits.get(),
                    st.keyspace_misses.get(),
                    st.total_error_replies.get(),
                ],
            };
            let _ = write!(
                t,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{expired}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\ntotal_error_replies:{}\r\n",
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                v[6],
                v[7],
                ctx.space().pubsub.channels(None).len(),
                ctx.space().pubsub.numpat(),
                ctx.space().pubsub.shard_channels(None).len(),
                tracking.1,
                tracking.2,
                tracking.3,
                v[8]
            );
        }
        "replication" => t.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
        // Per-command counters are server-wide; a tenant gets the header only.
        "commandstats" if ctx.client.tenant.is_some() => t.push_str("# Commandstats\r\n"),
        "commandstats" => {
            t.push_str("# Commandstats\r\n");
            for (spec, cs) in COMMANDS.iter().zip(&s.command_stats) {
                let (calls, usec) = cs.calls.get();
                let (rej, fail) = (cs.rejected.get(), cs.failed.get());
                if calls + rej > 0 {
                    let per = if calls > 0 { usec as f64 / calls as f64 } else { 0.0 };
                    let _ = write!(
                        t,
                        "cmdstat_{}:calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={rej},failed_calls={fail}\r\n",
                        spec.name
                    );
                }
            }
        }
        "errorstats" => super::introspection::info_errorstats(ctx, t),
        "tenant" => {
            if let Some(tn) = &ctx.client.tenant {
                super::tenant_info::section(tn, s.tenants.default_alerts(), t);
            }
        }
        "latencystats" => super::introspection::info_latencystats(ctx, t),
        "keyspace" => {
            t.push_str("# Keyspace\r\n");
            for (i, d) in ctx.space().existing() {
                if !d.is_empty() {
                    let _ = write!(t, "db{i}:keys={},expires={},avg_ttl=0\r\n", d.len(), d.volatile_len());
                }
            }
        }
        _ => {}
    }
}

pub fn config(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let sub = lower(a[1]);
    match sub.as_str() {
        "get" => {
            if a.len() < 3 {
                return Err(CmdError::Arity("config|get".into()));
            }
            let cfg = ctx.state.config.read().clone();
            let (persistence, persist_cfg) = (ctx.state.persistence().map(|p| &**p), &ctx.state.persist_config);
            let wanted = |name: &str| a[2..].iter().any(|pat| glob::matches(pat, name.as_bytes(), true));
            let mut pairs: Vec<(&str, String)> = Vec::new();
            // A tenant sees the encoding parameters and its keyspace
            // events only: its own values.
            let tenant = ctx.client.tenant.clone().filter(|_| ctx.client.bound);
            let tuning = tenant.as_ref().and_then(|t| t.tuning.lock().clone()).unwrap_or_else(|| cfg.tuning.clone());
            match &tenant {
                None => {
                    for p in PARAMS.iter().filter(|p| wanted(p.name)) {
                        pairs.push((p.name, (p.get)(&cfg)));
                    }
                    for s in SETTINGS.iter().filter(|s| wanted(s.name)) {
                        pairs.push((s.name, (s.get)(persistence, persist_cfg)));
                    }
                }
                Some(t) if wanted(NOTIFY) => pairs.push((NOTIFY, notify::format(t.space.events.flags()))),
                Some(_) => {}
            }
            for (name, i) in crate::tuning::names().filter(|(n, _)| wanted(n)) {
                pairs.push((name, tuning.get(i).to_string()));
            }
            ctx.out.map(pairs.len());
            for (k, v) in pairs {
                ctx.out.bulk(k.as_bytes());
                ctx.out.bulk(v.as_bytes());
            }
        }
        "set" => {
            if a.len() < 4 || a.len() % 2 == 1 {
                return Err(CmdError::Arity("config|set".into()));
            }
            // Every value is checked before any applies: all or nothing, as Redis.
            if let Some(t) = ctx.client.tenant.clone().filter(|_| ctx.client.bound) {
                return set_tenant_tuning(ctx, &t, a);
            }
            let mut cfg = ctx.state.config.read().clone();
            let persistence = ctx.state.persistence().map(|p| &**p);
            let mut persist_sets = Vec::new();
            for pair in a[2..].chunks(2) {
                let name = String::from_utf8_lossy(pair[0]).into_owned();
                let value = String::from_utf8_lossy(pair[1]).into_owned();
                let failed = |m: String| CmdError::err(format!("CONFIG SET failed (possibly related to argument '{name}') - {m}"));
                let immutable = || failed("can't set immutable config".into());
                if let Some(i) = crate::tuning::find(&name) {
                    cfg.tuning.set(i, &value).map_err(failed)?;
                    continue;
                }
                if let Some(s) = setting(&name) {
                    (s.check.ok_or_else(immutable)?)(persistence, &value).map_err(failed)?;
                    persist_sets.push((s, value));
                    continue;
                }
                let p = param(&name)
                    .ok_or_else(|| CmdError::err(format!("Unknown option or number of arguments for CONFIG SET - '{name}'")))?;
                (p.set.ok_or_else(immutable)?)(&mut cfg, &value).map_err(failed)?;
            }
            ctx.state.set_config(cfg);
            if let Some(p) = persistence {
                persist_sets.iter().for_each(|(s, v)| (s.apply)(p, v));
            }
            ctx.out.ok();
        }
        "resetstat" => {
            let st = &ctx.state.stats;
            for c in [
                &st.commands_processed,
                &st.connections_received,
                &st.keyspace_hits,
                &st.keyspace_misses,
                &st.rejected_connections,
                &st.total_error_replies,
                &st.evicted_keys,
                &st.net_input_bytes,
                &st.net_output_bytes,
            ] {
                c.reset();
            }
            for cs in &ctx.state.command_stats {
                cs.calls.reset();
                ctx.state.error_kinds.reset();
                cs.rejected.reset();
                cs.failed.reset();
            }
            ctx.out.ok();
        }
        "rewrite" => return Err(CmdError::err("The server is running without a config file")),
        "help" => help_reply(
            ctx,
            &[
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
                "HELP",
                "    Print this help.",
            ],
        ),
        _ => {
            return Err(CmdError::UnknownSubcommand { cmd: "CONFIG".into(), sub: String::from_utf8_lossy(a[1]).into() });
        }
    }
    Ok(())
}

use crate::tenancy::settings::NOTIFY;

/// A tenant's CONFIG SET (of encoding parameters and its keyspace events
/// only: see `admission::tenant_may_run`): all or nothing, into its own
/// copies, which no other tenant and not the server's default see.
fn set_tenant_tuning(ctx: &mut Ctx, t: &crate::tenancy::Tenant, a: &[&[u8]]) -> CmdResult {
    let mut tuning = t.tuning.lock().clone().unwrap_or_else(|| ctx.state.config.read().tuning.clone());
    let (mut events, mut tuned) = (None, false);
    for pair in a[2..].chunks(2) {
        let name = String::from_utf8_lossy(pair[0]);
        let failed = |m: &str| CmdError::err(format!("CONFIG SET failed (possibly related to argument '{name}') - {m}"));
        if name.eq_ignore_ascii_case(NOTIFY) {
            events = Some(notify::parse(pair[1]).ok_or_else(|| failed(notify::BAD_CLASS))?);
            continue;
        }
        let i = crate::tuning::find(&name).expect("admitted as an encoding parameter");
        tuning.set(i, &String::from_utf8_lossy(pair[1])).map_err(|m| failed(&m))?;
        tuned = true;
    }
    if tuned {
        *t.tuning.lock() = Some(tuning);
    }
    if events.is_some() {
        t.space.events.set_own(events);
    }
    // The tenant's settings are kept with it (the log, then snapshots).
    if let Some(p) = ctx.state.persistence() {
        let settings = t.own_settings();
        ctx.client.persist_seq = p.log(&crate::persist::Record::TenantSettings { tenant: t.id().to_string(), settings });
    }
    ctx.out.ok();
    Ok(())
}

pub fn time(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let micros = ctx.state.now_ms() * 1000
        + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_micros() % 1000).unwrap_or(0)) as u64;
    ctx.out.array(2);
    ctx.out.bulk((micros / 1_000_000).to_string().as_bytes());
    ctx.out.bulk((micros % 1_000_000).to_string().as_bytes());
    Ok(())
}

/// `INFO persistence` with Redis 7.0's fields in its order. Ferrite does
/// not fork, so the copy-on-write and fork fields are 0; a compaction is
/// both Redis's BGSAVE and its BGREWRITEAOF, so their fields agree.
fn persistence_section(ctx: &Ctx, t: &mut String) {
    let p = ctx.state.persistence();
    // The log and its sizes hold every tenant's writes: a tenant sees the
    // settings and statuses, not the server's traffic.
    let tenant = ctx.client.tenant.is_some();
    let status = |ok: bool| if ok { "ok" } else { "err" };
    let changes = p.filter(|_| !tenant).map_or(0, |p| p.changes());
    let rewriting = p.is_some_and(|p| p.rewriting.load(Relaxed)) as u8;
    let last_save = p.map_or_else(|| ctx.state.started_secs(), |p| p.last_save.load(Relaxed));
    let saved_ok = status(p.is_none_or(|p| p.last_save_ok.load(Relaxed)));
    let write_ok = status(p.is_none_or(|p| p.aof.write_ok.load(Relaxed)));
    let (last_secs, current_secs) = p.map_or((-1, -1), |p| (p.stats.last_secs(), p.stats.current_secs()));
    let completed = p.map_or(0, |p| p.stats.completed.load(Relaxed));
    let failures = p.map_or(0, |p| p.stats.failures_in_a_row.load(Relaxed));
    let (loaded, expired) = p.map_or((0, 0), |p| (p.loaded_keys, p.loaded_expired));
    let _ = write!(
        t,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\n\
         current_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\n\
         rdb_changes_since_last_save:{changes}\r\nrdb_bgsave_in_progress:{rewriting}\r\nrdb_last_save_time:{last_save}\r\n\
         rdb_last_bgsave_status:{saved_ok}\r\nrdb_last_bgsave_time_sec:{last_secs}\r\nrdb_current_bgsave_time_sec:{current_secs}\r\n\
         rdb_saves:{completed}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{expired}\r\nrdb_last_load_keys_loaded:{loaded}\r\n\
         aof_enabled:{}\r\naof_rewrite_in_progress:{rewriting}\r\naof_rewrite_scheduled:0\r\n\
         aof_last_rewrite_time_sec:{last_secs}\r\naof_current_rewrite_time_sec:{current_secs}\r\n\
         aof_last_bgrewrite_status:{saved_ok}\r\naof_rewrites:{completed}\r\naof_rewrites_consecutive_failures:{failures}\r\n\
         aof_last_write_status:{write_ok}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        p.is_some() as u8
    );
    if let Some(p) = p {
        let _ = write!(
            t,
            "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\n\
             aof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\naof_fsync:{}\r\naof_generation:{}\r\n",
            if tenant { 0 } else { p.data_size() },
            if tenant { 0 } else { p.base_size.load(Relaxed) },
            if tenant { 0 } else { p.aof.buffered() },
            p.aof.fsync().name(),
            p.aof.generation(),
        );
    }
}

/// BGSAVE and BGREWRITEAOF: both compact (snapshot plus the log since).
fn background(ctx: &mut Ctx, started: &str, busy: &str) -> CmdResult {
    match crate::persist::snapshot::start(&ctx.state.arc()) {
        Ok(()) => {
            ctx.out.simple(started);
            Ok(())
        }
        Err(StartError::Busy) => Err(CmdError::err(busy)),
        Err(e) => Err(CmdError::err(e.to_string())),
    }
}

pub fn bgsave(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 2 || a.get(1).is_some_and(|x| !x.eq_ignore_ascii_case(b"schedule")) {
        return Err(CmdError::Syntax);
    }
    background(ctx, "Background saving started", "Background save already in progress")
}

pub fn bgrewriteaof(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    background(ctx, "Background append only file rewriting started", "Background append only file rewriting already in progress")
}

/// SAVE: a compaction the client waits for (off the event loop, unlike
/// Redis's, so other clients are not blocked meanwhile).
pub fn save(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let state = ctx.state.arc();
    ctx.state.persistence().ok_or_else(|| CmdError::err("persistence is off ([persistence] appendonly = false)"))?;
    ctx.client.deferred = Some(Box::pin(async move {
        let p = state.persistence().expect("checked above").clone();
        let done = p.done.notified();
        let started = crate::persist::snapshot::start(&state);
        let reply: crate::server::client::DeferredReply = match started {
            Err(StartError::Busy) => Box::new(|out| out.error("ERR Background save already in progress")),
            Err(e) => Box::new(move |out| out.error(&format!("ERR {e}"))),
            Ok(()) => {
                done.await;
                let ok = p.last_save_ok.load(Relaxed);
                Box::new(move |out| if ok { out.ok() } else { out.error("ERR saving failed: see the server log") })
            }
        };
        reply
    }));
    Ok(())
}

pub fn lastsave(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let secs = ctx.state.persistence().map_or_else(|| ctx.state.started_secs(), |p| p.last_save.load(Relaxed));
    ctx.out.int(secs as i64);
    Ok(())
}

pub fn shutdown(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let (mut nosave, mut save, mut abort) = (false, false, false);
    for o in &a[1..] {
        match lower(o).as_str() {
            "nosave" => nosave = true,
            "save" => save = true,
            "now" | "force" => {}
            "abort" => abort = true,
            _ => return Err(CmdError::Syntax),
        }
    }
    // Redis's illegal combinations.
    if (nosave && save) || (abort && a.len() > 2) {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    let exit = match (save, nosave) {
        (true, _) => ExitSave::Always,
        (_, true) => ExitSave::Never,
        _ => ExitSave::IfChanged,
    };
    tracing::warn!("User requested shutdown...");
    ctx.state.request_shutdown_saving(exit);
    ctx.client.close_after_reply = true;
    Ok(())
}

/// DEBUG: only what test harnesses use, plus JUMP to move the server's
/// clock forward (injected time for expiry tests).
pub fn debug(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    match lower(a[1]).as_str() {
        "log" => {
            tracing::info!("DEBUG LOG: {}", String::from_utf8_lossy(a.get(2).copied().unwrap_or(b"")));
            ctx.out.ok();
        }
        "jump" if a.len() == 3 => {
            ctx.state.clock.advance(int(a[2])?);
            ctx.out.ok();
        }
        "sleep" if a.len() == 3 => {
            let secs = super::args::float(a[2])?.clamp(0.0, 10.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            ctx.out.ok();
        }
        _ => {
            return Err(CmdError::UnknownSubcommand { cmd: "DEBUG".into(), sub: String::from_utf8_lossy(a[1]).into() });
        }
    }
    Ok(())
}

/// Redis 7.0's ACL categories, in its order (`ACL CAT`).
const ACL_CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A command's ACL categories, derived from its table entry: its group
/// where Redis has a category of that name (Redis has none for the server
/// group, and Ferrite's tenancy commands are not Redis's), read or write,
/// fast or slow, admin and dangerous, blocking.
pub(super) fn acl_categories(spec: &CommandSpec) -> Vec<String> {
    use super::flags::*;
    let group = match spec.group {
        "sorted_set" => Some("sortedset"),
        "generic" => Some("keyspace"),
        "transactions" => Some("transaction"),
        g => Some(g).filter(|g| ACL_CATEGORIES.contains(g)),
    };
    let mut v: Vec<String> = group.map(|g| format!("@{g}")).into_iter().collect();
    if spec.has(WRITE) {
        v.push("@write".into());
    } else if spec.has(READONLY) {
        v.push("@read".into());
    }
    v.push(if spec.has(FAST) { "@fast".into() } else { "@slow".into() });
    if spec.has(ADMIN) {
        v.push("@admin".into());
        v.push("@dangerous".into());
    }
    if spec.has(BLOCKING) {
        v.push("@blocking".into());
    }
    v
}

/// ROLE: Ferrite has no replication, so a master with no replicas.
pub fn role(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    ctx.out.array(3);
    ctx.out.bulk(b"master");
    ctx.out.int(0);
    ctx.out.array(0);
    Ok(())
}

/// WAIT numreplicas timeout: no replica ever acknowledges, so 0 at once
/// (the arguments are read as Redis reads them).
pub fn wait(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    int(a[1])?;
    super::streams::block_ms(a[2])?;
    ctx.out.int(0);
    Ok(())
}

/// The users a client may see, sorted by name as Redis lists them: the
/// operator (Redis's `default`) sees `default` and every tenant; a
/// tenant's connection sees only its own user, never another tenant's id.
fn acl_users(ctx: &Ctx) -> Vec<(String, Option<std::sync::Arc<crate::tenancy::Tenant>>)> {
    if let (true, Some(t)) = (ctx.client.bound, &ctx.client.tenant) {
        return vec![(t.id().to_string(), Some(t.clone()))];
    }
    let mut users: Vec<_> = ctx.state.tenants.list().into_iter().map(|t| (t.id().to_string(), Some(t))).collect();
    users.push(("default".into(), None));
    users.sort_by(|a, b| a.0.cmp(&b.0));
    users
}

/// One ACL LIST line, in Redis's configuration format. `default` is the
/// operator: `nopass`, or `#` and the SHA-256 of `requirepass`, as Redis
/// shows a password. A tenant may run everything but admin commands, on
/// its own keys and channels. Its password is kept salted, which is not
/// Redis's `#` form (a line with it would set a password nothing matches),
/// so no password is shown at all; never the password itself.
fn acl_line(ctx: &Ctx, name: &str, tenant: Option<&crate::tenancy::Tenant>) -> String {
    match tenant {
        Some(_) => format!("user {name} on ~* &* +@all -@admin"),
        None => match ctx.state.config.read().requirepass.as_deref() {
            None => "user default on nopass ~* &* +@all".into(),
            Some(p) => {
                use sha2::{Digest, Sha256};
                let hex: String = Sha256::digest(p.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
                format!("user default on #{hex} ~* &* +@all")
            }
        },
    }
}

/// ACL: WHOAMI (a tenant's connection is its tenant's user; everyone
/// else Redis's `default`), CAT, LIST and USERS (tenants as users) and HELP.
pub fn acl(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    match (lower(a[1]).as_str(), a.len()) {
        ("whoami", 2) => {
            let user = ctx.client.info.user();
            ctx.out.bulk(user.as_bytes());
        }
        ("cat", 2) => ctx.out.bulks(ACL_CATEGORIES.iter().map(|c| c.as_bytes())),
        ("cat", 3) => {
            let wanted = lower(a[2]);
            if !ACL_CATEGORIES.contains(&wanted.as_str()) {
                let name = String::from_utf8_lossy(&a[2][..a[2].len().min(128)]).into_owned();
                return Err(CmdError::err(format!("Unknown category '{name}'")));
            }
            // As COMMAND LIST FILTERBY ACLCAT: subcommands by their own categories.
            let tag = format!("@{wanted}");
            let names: Vec<&str> = super::command::entries().filter(|c| super::command::in_category(c, &tag)).map(|c| c.name).collect();
            ctx.out.bulks(names.iter().map(|n| n.as_bytes()));
        }
        ("cat", _) => {
            return Err(CmdError::err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                String::from_utf8_lossy(a[1])
            )));
        }
        ("users", 2) => {
            let users = acl_users(ctx);
            ctx.out.bulks(users.iter().map(|(n, _)| n.as_bytes()));
        }
        ("list", 2) => {
            let lines: Vec<String> = acl_users(ctx).iter().map(|(n, t)| acl_line(ctx, n, t.as_deref())).collect();
            ctx.out.bulks(lines.iter().map(|l| l.as_bytes()));
        }
        ("help", 2) => help_reply(
            ctx,
            &[
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "LIST",
                "    Show users details in config file format.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Prints this help.",
            ],
        ),
        ("whoami" | "help" | "list" | "users", _) => return Err(CmdError::Arity(format!("acl|{}", lower(a[1])))),
        _ => return Err(CmdError::UnknownSubcommand { cmd: "ACL".into(), sub: String::from_utf8_lossy(a[1]).into() }),
    }
    Ok(())
}

/// LOLWUT [VERSION v]: Redis 7.0 draws its art, then its version. Ferrite
/// is not Redis: a line, then its own version. VERSION must be an integer,
/// as Redis requires; anything after it is ignored.
pub fn lolwut(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() >= 3 && a[1].eq_ignore_ascii_case(b"version") {
        int(a[2])?;
    }
    let text = format!("No art here: this is not Redis.\nFerrite ver. {}\n", env!("CARGO_PKG_VERSION"));
    ctx.out.verbatim(text.as_bytes());
    Ok(())
}
