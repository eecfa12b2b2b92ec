//! A scrape's [`Scrape`] in Prometheus's text format, through
//! `prometheus-client`'s collector API: each family's HELP and TYPE once,
//! then one sample per tenant (or per command, database, error kind), so
//! nothing is registered between scrapes and nothing is kept after one.
//!
//! Server series carry redis_exporter's names where they mean the same
//! (`redis_connected_clients`, `redis_commands_processed_total`, ...), so
//! its dashboards and alerts work; tenants' are `ferrite_tenant_*` with a
//! `tenant` label. Redis_exporter's `*_duration_sec` names would fail
//! promtool's lint (abbreviated units): compaction durations are
//! `ferrite_compaction_*_duration_seconds` instead.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::collect::{ServerRow, TenantRow};
use crate::tenancy::alerts::Resource;
use crate::tenancy::tenant::Refusal;

/// Everything one scrape reports.
#[derive(Debug)]
pub struct Scrape {
    pub server: ServerRow,
    pub tenants: Vec<TenantRow>,
    pub currency: String,
    /// Tenants left out by `max_tenants`.
    pub omitted: u64,
    pub scrapes: u64,
    pub last_scrape_secs: f64,
}

type Result = std::result::Result<(), std::fmt::Error>;

/// A value written as a gauge or a counter.
#[derive(Clone, Copy)]
enum V {
    U(u64),
    F(f64),
}

impl From<u64> for V {
    fn from(x: u64) -> V {
        V::U(x)
    }
}

impl From<f64> for V {
    fn from(x: f64) -> V {
        V::F(x)
    }
}

impl From<bool> for V {
    fn from(x: bool) -> V {
        V::U(x as u64)
    }
}

fn write(kind: MetricType, v: V, e: prometheus_client::encoding::MetricEncoder<'_>) -> Result {
    match (kind, v) {
        (MetricType::Counter, V::U(x)) => ConstCounter::new(x).encode(e),
        (MetricType::Counter, V::F(x)) => ConstCounter::new(x).encode(e),
        (_, V::U(x)) => ConstGauge::new(x).encode(e),
        (_, V::F(x)) => ConstGauge::new(x).encode(e),
    }
}

/// A counter's name is given without `_total`: the encoder adds it.
fn one(enc: &mut DescriptorEncoder, name: &str, help: &str, kind: MetricType, v: impl Into<V>) -> Result {
    let e = enc.encode_descriptor(name, help, None, kind)?;
    write(kind, v.into(), e)
}

/// A family with one label: a sample per `(label value, value)`.
fn family<'a>(
    enc: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    samples: impl Iterator<Item = (&'a str, V)>,
) -> Result {
    let mut e = enc.encode_descriptor(name, help, None, kind)?;
    for (value, v) in samples {
        write(kind, v, e.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// A per-tenant family with a second label: a sample per tenant and value
/// of that label.
fn tenant_split<'a, const N: usize>(
    enc: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    rows: &'a [TenantRow],
    label: &str,
    split: impl Fn(&'a TenantRow) -> [(&'static str, V); N],
) -> Result {
    let mut e = enc.encode_descriptor(name, help, None, kind)?;
    for r in rows {
        for (value, v) in split(r) {
            write(kind, v, e.encode_family(&[("tenant", r.id.as_str()), (label, value)])?)?;
        }
    }
    Ok(())
}

/// A family of per-tenant values read from one part of a row: name, help,
/// type and the reading.
type Reading<T> = (&'static str, &'static str, MetricType, fn(&T) -> V);

const G: MetricType = MetricType::Gauge;
const C: MetricType = MetricType::Counter;

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result {
        server(&mut enc, &self.server)?;
        one(&mut enc, "ferrite_tenants", "Tenants on this node", G, self.server.tenants)?;
        one(&mut enc, "ferrite_metrics_tenants_omitted", "Tenants left out of this scrape by [metrics] max_tenants", G, self.omitted)?;
        one(&mut enc, "ferrite_metrics_scrapes", "Scrapes of this endpoint", C, self.scrapes)?;
        one(&mut enc, "ferrite_metrics_last_scrape_duration_seconds", "How long the previous scrape took", G, self.last_scrape_secs)?;
        tenants(&mut enc, &self.tenants, &self.currency)
    }
}

fn server(enc: &mut DescriptorEncoder, s: &ServerRow) -> Result {
    let mut info = enc.encode_descriptor("redis_instance_info", "Information about the server", None, G)?;
    let port = s.tcp_port.to_string();
    let pid = s.process_id.to_string();
    let labels = [
        ("role", "master"),
        ("redis_version", crate::commands::REDIS_VERSION),
        ("ferrite_version", env!("CARGO_PKG_VERSION")),
        ("redis_mode", "standalone"),
        ("os", std::env::consts::OS),
        ("maxmemory_policy", s.maxmemory_policy.as_str()),
        ("tcp_port", port.as_str()),
        ("run_id", s.run_id.as_str()),
        ("process_id", pid.as_str()),
    ];
    write(G, V::U(1), info.encode_family(&labels)?)?;
    let scalars: [(&str, &str, MetricType, V); 21] = [
        ("redis_up", "Whether the server answers (always 1 from the server itself)", G, 1.into()),
        ("redis_uptime_in_seconds", "Seconds since the server started", G, s.uptime_secs.into()),
        ("redis_start_time_seconds", "Start time of the server, Unix seconds", G, s.start_time_secs.into()),
        ("redis_connected_clients", "Client connections", G, s.connected_clients.into()),
        ("redis_blocked_clients", "Clients blocked in a blocking command, every space", G, s.blocked_clients.into()),
        ("redis_config_maxclients", "maxclients", G, s.maxclients.into()),
        ("redis_commands_processed", "Commands processed", C, s.commands_processed.into()),
        ("redis_connections_received", "Connections accepted", C, s.connections_received.into()),
        ("redis_rejected_connections", "Connections refused over maxclients", C, s.rejected_connections.into()),
        ("redis_net_input_bytes", "Bytes read from clients", C, s.net_input_bytes.into()),
        ("redis_net_output_bytes", "Bytes written to clients", C, s.net_output_bytes.into()),
        ("redis_keyspace_hits", "Lookups that found their key", C, s.keyspace_hits.into()),
        ("redis_keyspace_misses", "Lookups that did not find their key", C, s.keyspace_misses.into()),
        ("redis_evicted_keys", "Keys evicted, every space", C, s.evicted_keys.into()),
        ("redis_expired_keys", "Keys expired, every space", C, s.expired_keys.into()),
        ("redis_total_error_replies", "Error replies sent", C, s.error_replies.into()),
        ("redis_memory_used_bytes", "Bytes held by every space", G, s.memory_used.into()),
        ("redis_memory_used_rss_bytes", "Resident set size of the process", G, s.memory_rss.into()),
        ("redis_memory_max_bytes", "maxmemory (0: none)", G, s.maxmemory.into()),
        ("redis_pubsub_channels", "Channels with subscribers, global context", G, s.pubsub_channels.into()),
        ("redis_pubsub_patterns", "Pattern subscriptions, global context", G, s.pubsub_patterns.into()),
    ];
    for (name, help, kind, v) in scalars {
        one(enc, name, help, kind, v)?;
    }
    let db = |i: usize| format!("db{i}");
    let names: Vec<String> = s.dbs.iter().map(|d| db(d.0)).collect();
    let dbs = || names.iter().map(String::as_str).zip(&s.dbs);
    family(enc, ("redis_db_keys", "Keys per database, global context", G), "db", dbs().map(|(n, d)| (n, d.1.into())))?;
    family(enc, ("redis_db_keys_expiring", "Keys with a TTL per database, global context", G), "db", dbs().map(|(n, d)| (n, d.2.into())))?;
    let cmds = || s.commands.iter();
    family(enc, ("redis_commands", "Calls per command", C), "cmd", cmds().map(|c| (c.0, c.1.into())))?;
    let secs = |usec: u64| V::F(usec as f64 / 1e6);
    family(enc, ("redis_commands_duration_seconds", "Time spent per command", C), "cmd", cmds().map(|c| (c.0, secs(c.2))))?;
    family(
        enc,
        ("redis_commands_rejected_calls", "Calls refused before running, per command", C),
        "cmd",
        cmds().map(|c| (c.0, c.3.into())),
    )?;
    family(enc, ("redis_commands_failed_calls", "Calls that failed, per command", C), "cmd", cmds().map(|c| (c.0, c.4.into())))?;
    family(enc, ("redis_errors", "Error replies per kind", C), "err", s.errors.iter().map(|(k, n)| (&**k, (*n).into())))?;
    persistence(enc, s)
}

/// redis_exporter's persistence series (statuses: 1 ok, 0 failing), and
/// compaction durations under lint-clean names. A compaction is both
/// Redis's BGSAVE and its BGREWRITEAOF, so both families report it.
fn persistence(enc: &mut DescriptorEncoder, s: &ServerRow) -> Result {
    one(enc, "redis_aof_enabled", "Whether the append-only log is on", G, s.persistence.is_some())?;
    let Some(p) = &s.persistence else { return Ok(()) };
    let secs = |d: Option<f64>| V::F(d.unwrap_or(-1.0));
    let rows: [(&str, &str, MetricType, V); 14] = [
        ("redis_aof_rewrite_in_progress", "Whether a compaction is running", G, p.rewriting.into()),
        ("redis_rdb_bgsave_in_progress", "Whether a compaction is running", G, p.rewriting.into()),
        ("redis_aof_last_bgrewrite_status", "Whether the last compaction succeeded", G, p.last_compaction_ok.into()),
        ("redis_rdb_last_bgsave_status", "Whether the last compaction succeeded", G, p.last_compaction_ok.into()),
        ("redis_aof_last_write_status", "Whether the last write to the log succeeded", G, p.last_write_ok.into()),
        ("redis_rdb_changes_since_last_save", "Records logged since the last snapshot", G, p.changes.into()),
        ("redis_rdb_last_save_timestamp_seconds", "When the last snapshot was written, Unix seconds", G, p.last_save_secs.into()),
        ("redis_aof_current_size_bytes", "Snapshot and log together", G, p.size.into()),
        ("redis_aof_base_size_bytes", "Snapshot and log after the last compaction", G, p.base_size.into()),
        ("ferrite_compactions", "Compactions completed", C, p.compactions.into()),
        ("ferrite_compaction_failures_in_a_row", "Compactions failed since the last success", G, p.failures_in_a_row.into()),
        ("ferrite_compaction_last_duration_seconds", "How long the last compaction took (-1: none yet)", G, secs(p.last_duration)),
        (
            "ferrite_compaction_current_duration_seconds",
            "How long the running compaction has taken (-1: none)",
            G,
            secs(p.current_duration),
        ),
        ("ferrite_compaction_in_progress", "Whether a compaction is running", G, p.rewriting.into()),
    ];
    for (name, help, kind, v) in rows {
        one(enc, name, help, kind, v)?;
    }
    Ok(())
}

/// Per-tenant families. Resources and limits come in pairs so dashboards
/// and alert rules divide one by the other.
fn tenants(enc: &mut DescriptorEncoder, rows: &[TenantRow], currency: &str) -> Result {
    let mut info = enc.encode_descriptor("ferrite_tenant_info", "A tenant's tier and state", None, G)?;
    for r in rows {
        write(G, V::U(1), info.encode_family(&[("tenant", r.id.as_str()), ("tier", r.tier.as_str()), ("state", r.state)])?)?;
    }
    let usage: [(&str, &str, &str, &str); 4] = [
        ("ferrite_tenant_memory_used_bytes", "Bytes the tenant holds", "ferrite_tenant_memory_limit_bytes", "Its memory limit"),
        ("ferrite_tenant_keys", "Keys the tenant holds", "ferrite_tenant_keys_limit", "Its key limit"),
        ("ferrite_tenant_ops_per_second", "Data commands in the last second", "ferrite_tenant_ops_limit_per_second", "Its rate limit"),
        ("ferrite_tenant_connections", "The tenant's connections", "ferrite_tenant_connections_limit", "Its connection limit"),
    ];
    for (i, (used, used_help, limit, limit_help)) in usage.into_iter().enumerate() {
        let col = |f: fn((u64, u64)) -> u64| rows.iter().map(move |r| (r.id.as_str(), V::U(f(r.usage[i]))));
        family(enc, (used, used_help, G), "tenant", col(|u| u.0))?;
        family(enc, (limit, limit_help, G), "tenant", col(|u| u.1))?;
    }
    let by_id = |f: fn(&TenantRow) -> V| rows.iter().map(move |r| (r.id.as_str(), f(r)));
    family(enc, ("ferrite_tenant_keyspace_hits", "Lookups that found their key", C), "tenant", by_id(|r| r.hits.into()))?;
    family(enc, ("ferrite_tenant_keyspace_misses", "Lookups that did not find their key", C), "tenant", by_id(|r| r.misses.into()))?;
    family(enc, ("ferrite_tenant_net_input_bytes", "Bytes read from its clients", C), "tenant", by_id(|r| r.bytes_in.into()))?;
    family(enc, ("ferrite_tenant_net_output_bytes", "Bytes written to its clients", C), "tenant", by_id(|r| r.bytes_out.into()))?;
    family(enc, ("ferrite_tenant_expired_keys", "Keys that expired", C), "tenant", by_id(|r| r.expired.into()))?;
    tenant_split(enc, ("ferrite_tenant_commands", "Commands by class", C), rows, "class", |r| r.commands.map(|(c, n)| (c, n.into())))?;
    let refused = |r: &TenantRow| std::array::from_fn::<_, 6, _>(|i| (Refusal::ALL[i].name(), r.refused[i].into()));
    tenant_split(enc, ("ferrite_tenant_refused", "Commands and connections refused, by reason", C), rows, "reason", refused)?;
    let evicted = |r: &TenantRow| [("native", r.evicted_native.into()), ("policy", r.evicted_policy.into())];
    tenant_split(enc, ("ferrite_tenant_evicted_keys", "Keys evicted, by who chose them", C), rows, "by", evicted)?;
    let alerts = |r: &TenantRow| std::array::from_fn::<_, 4, _>(|i| (Resource::ALL[i].name(), r.alerts[i].into()));
    tenant_split(enc, ("ferrite_tenant_quota_alerts", "Quota alert events published, by resource", C), rows, "resource", alerts)?;
    policies(enc, rows)?;
    billing(enc, rows, currency)
}

/// Only tenants with a policy module have these.
fn policies(enc: &mut DescriptorEncoder, rows: &[TenantRow]) -> Result {
    use crate::policy::slot::PolicyCounters as P;
    let with: Vec<(&str, &P)> = rows.iter().filter_map(|r| r.policy.as_ref().map(|p| (r.id.as_str(), p))).collect();
    let fams: [Reading<P>; 5] = [
        ("ferrite_tenant_policy_disabled", "Whether its policy module was disabled after failing", G, |p| p.disabled.into()),
        ("ferrite_tenant_policy_calls", "Calls into its policy module", C, |p| p.calls.into()),
        ("ferrite_tenant_policy_fuel_used", "Fuel its policy module burned", C, |p| p.fuel_used.into()),
        ("ferrite_tenant_policy_traps", "Calls that trapped", C, |p| p.traps.into()),
        ("ferrite_tenant_policy_fallbacks", "Calls whose native decision stood (traps, fuel, time, bad answers)", C, |p| {
            p.fallbacks().into()
        }),
    ];
    readings(enc, &with, &fams)
}

/// `fams` read from the part of the rows some tenants have (a policy, a bill).
fn readings<T>(enc: &mut DescriptorEncoder, rows: &[(&str, &T)], fams: &[Reading<T>]) -> Result {
    for &(name, help, kind, f) in fams {
        family(enc, (name, help, kind), "tenant", rows.iter().map(|(id, x)| (*id, f(x))))?;
    }
    Ok(())
}

/// The current period's meters: gauges, as a new period starts them over.
fn billing(enc: &mut DescriptorEncoder, rows: &[TenantRow], currency: &str) -> Result {
    use super::collect::Billing as B;
    let billed: Vec<(&str, &B)> = rows.iter().filter_map(|r| r.billing.as_ref().map(|b| (r.id.as_str(), b))).collect();
    let fams: [Reading<B>; 4] = [
        ("ferrite_tenant_billing_period_start_timestamp_seconds", "When its billing period began", G, |b| b.period_start_secs.into()),
        ("ferrite_tenant_billing_operations", "Operations this period", G, |b| b.ops.into()),
        ("ferrite_tenant_billing_memory_byte_seconds", "Memory held this period, integrated over time", G, |b| b.byte_seconds.into()),
        ("ferrite_tenant_billing_bandwidth_bytes", "Bytes in and out this period", G, |b| b.bandwidth_bytes.into()),
    ];
    readings(enc, &billed, &fams)?;
    let mut e = enc.encode_descriptor("ferrite_tenant_billing_amount", "Its bill so far this period", None, G)?;
    for (id, b) in &billed {
        write(G, V::F(b.amount), e.encode_family(&[("tenant", *id), ("currency", currency)])?)?;
    }
    Ok(())
}
