//! What one scrape reports, read from the server's state at one point:
//! relaxed atomic loads and short locks (a tenant's limits, its ledger, the
//! registry's read lock while its tenants are listed), never a keyspace's
//! or a space's execution lock, so clients do not wait for a scrape.

use std::sync::atomic::Ordering::Relaxed;

use crate::commands::COMMANDS;
use crate::policy::slot::PolicyCounters;
use crate::server::ServerState;
use crate::tenancy::Tenant;
use crate::tenancy::alerts::Resource;
use crate::tenancy::tenant::Refusal;

/// The server's own series.
#[derive(Debug)]
pub struct ServerRow {
    pub uptime_secs: u64,
    pub start_time_secs: u64,
    pub process_id: u32,
    pub run_id: String,
    pub tcp_port: u16,
    pub maxmemory_policy: String,
    pub connected_clients: u64,
    pub blocked_clients: u64,
    pub maxclients: u64,
    pub commands_processed: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub evicted_keys: u64,
    /// Every space's, tenants' included.
    pub expired_keys: u64,
    pub error_replies: u64,
    pub memory_used: u64,
    pub memory_rss: u64,
    pub maxmemory: u64,
    pub pubsub_channels: u64,
    pub pubsub_patterns: u64,
    /// The global context's databases: (index, keys, keys with a TTL).
    pub dbs: Vec<(usize, u64, u64)>,
    /// Per command with calls: (name, calls, microseconds, rejected, failed).
    pub commands: Vec<(&'static str, u64, u64, u64, u64)>,
    pub errors: Vec<(Box<str>, u64)>,
    /// None when the log is off.
    pub persistence: Option<PersistRow>,
    pub tenants: u64,
}

/// The log and its compactions.
#[derive(Debug)]
pub struct PersistRow {
    pub rewriting: bool,
    pub last_compaction_ok: bool,
    pub last_write_ok: bool,
    /// Seconds, or None before the first one.
    pub last_duration: Option<f64>,
    pub current_duration: Option<f64>,
    pub changes: u64,
    pub last_save_secs: u64,
    pub size: u64,
    pub base_size: u64,
    pub compactions: u64,
    pub failures_in_a_row: u64,
}

/// One tenant's series.
#[derive(Debug)]
pub struct TenantRow {
    pub id: String,
    pub tier: String,
    pub state: &'static str,
    /// (used, limit) per [`Resource::ALL`].
    pub usage: [(u64, u64); 4],
    /// Alert events per [`Resource::ALL`].
    pub alerts: [u64; 4],
    pub commands: [(&'static str, u64); 4],
    /// Per [`Refusal::ALL`].
    pub refused: [u64; 6],
    pub evicted_native: u64,
    pub evicted_policy: u64,
    pub expired: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub policy: Option<PolicyCounters>,
    pub billing: Option<Billing>,
}

/// The current period's meters.
#[derive(Debug)]
pub struct Billing {
    pub period_start_secs: u64,
    pub ops: u64,
    pub byte_seconds: u64,
    pub bandwidth_bytes: u64,
    pub amount: f64,
}

pub fn server(state: &ServerState, tenants: &[std::sync::Arc<Tenant>]) -> ServerRow {
    let (cfg, st) = (state.config.read().clone(), &state.stats);
    let spaces = || std::iter::once(&state.global).chain(tenants.iter().map(|t| &t.space));
    let global = &state.global;
    let commands = COMMANDS
        .iter()
        .zip(&state.command_stats)
        .filter_map(|(spec, cs)| {
            let ((calls, usec), rejected, failed) = (cs.calls.get(), cs.rejected.get(), cs.failed.get());
            (calls + rejected > 0).then_some((spec.name, calls, usec, rejected, failed))
        })
        .collect();
    ServerRow {
        uptime_secs: state.started.elapsed().as_secs(),
        start_time_secs: state.started_secs(),
        process_id: std::process::id(),
        run_id: state.run_id.clone(),
        tcp_port: cfg.port,
        maxmemory_policy: cfg.maxmemory_policy.clone(),
        connected_clients: state.clients.len() as u64,
        blocked_clients: spaces().map(|s| s.blocking.blocked_clients() as u64).sum(),
        maxclients: cfg.maxclients,
        commands_processed: st.commands_processed.get(),
        connections_received: st.connections_received.get(),
        rejected_connections: st.rejected_connections.get(),
        net_input_bytes: st.net_input_bytes.get(),
        net_output_bytes: st.net_output_bytes.get(),
        keyspace_hits: st.keyspace_hits.get(),
        keyspace_misses: st.keyspace_misses.get(),
        evicted_keys: st.evicted_keys.get(),
        expired_keys: spaces().flat_map(|s| s.existing().map(|(_, d)| d.expired_count())).sum(),
        error_replies: st.total_error_replies.get(),
        memory_used: state.used_memory() as u64,
        memory_rss: crate::commands::rss_bytes(),
        maxmemory: cfg.maxmemory,
        pubsub_channels: global.pubsub.channel_count() as u64,
        pubsub_patterns: global.pubsub.numpat() as u64,
        dbs: global.existing().filter(|(_, d)| !d.is_empty()).map(|(i, d)| (i, d.len() as u64, d.volatile_len() as u64)).collect(),
        commands,
        errors: state.error_kinds.snapshot(),
        persistence: state.persistence().map(|p| PersistRow {
            rewriting: p.rewriting.load(Relaxed),
            last_compaction_ok: p.last_save_ok.load(Relaxed),
            last_write_ok: p.aof.write_ok.load(Relaxed),
            last_duration: p.stats.last_ms.lock().map(|ms| ms as f64 / 1000.0),
            current_duration: p.stats.started.lock().map(|t| t.elapsed().as_secs_f64()),
            changes: p.changes(),
            last_save_secs: p.last_save.load(Relaxed),
            size: p.data_size(),
            base_size: p.base_size.load(Relaxed),
            compactions: p.stats.completed.load(Relaxed),
            failures_in_a_row: p.stats.failures_in_a_row.load(Relaxed),
        }),
        tenants: tenants.len() as u64,
    }
}

/// At most `max` of `all`, the biggest by memory, in id order: (memory,
/// tenant) pairs are made for every tenant (one relaxed sum each), the
/// rest only for those kept.
pub fn biggest(all: Vec<std::sync::Arc<Tenant>>, max: usize) -> Vec<std::sync::Arc<Tenant>> {
    if all.len() <= max {
        return all;
    }
    let mut sized: Vec<(u64, std::sync::Arc<Tenant>)> = all.into_iter().map(|t| (t.memory_used(), t)).collect();
    if max > 0 {
        sized.select_nth_unstable_by(max - 1, |a, b| b.0.cmp(&a.0).then_with(|| a.1.id().cmp(b.1.id())));
    }
    sized.truncate(max);
    let mut kept: Vec<_> = sized.into_iter().map(|(_, t)| t).collect();
    kept.sort_by(|a, b| a.id().cmp(b.id()));
    kept
}

pub fn tenant(t: &Tenant, billing: Option<&crate::tenancy::billing::BillingConfig>) -> TenantRow {
    let m = &t.metrics;
    let g = |x: &std::sync::atomic::AtomicU64| x.load(Relaxed);
    let evicted = g(&m.evicted);
    let evicted_policy = g(&m.evicted_by_policy).min(evicted);
    TenantRow {
        id: t.id().to_string(),
        tier: t.tier_name(),
        state: if t.migration.lock().is_some() { "migrating" } else { t.state().name() },
        usage: t.alert_usage(),
        alerts: Resource::ALL.map(|r| t.alerts.fired(r)),
        commands: [("read", g(&m.reads)), ("write", g(&m.writes)), ("admin", g(&m.admin)), ("other", g(&m.other))],
        refused: Refusal::ALL.map(|r| m.refused(r)),
        evicted_native: evicted - evicted_policy,
        evicted_policy,
        expired: t.space.existing().map(|(_, d)| d.expired_count()).sum(),
        hits: g(&m.hits),
        misses: g(&m.misses),
        bytes_in: g(&m.bytes_in),
        bytes_out: g(&m.bytes_out),
        policy: t.policy.counters(),
        billing: billing.map(|cfg| {
            let inv = t.meter.invoice(t, cfg);
            Billing {
                period_start_secs: inv.period_start_ms / 1000,
                ops: inv.ops,
                byte_seconds: t.meter.byte_seconds(),
                bandwidth_bytes: inv.bandwidth_bytes,
                amount: inv.total,
            }
        }),
    }
}
