//! TENANT.* : managing tenants and entering their context.
//!
//! Each subcommand is its own table entry (`tenant.create`, `tenant.info`,
//! ...), so permissions come from the table: management entries carry the
//! `admin` flag, which a tenant-bound connection is refused by dispatch. The
//! space form (`TENANT CREATE ...`) is rewritten to the dotted one before
//! lookup. Read-only entries let a tenant see its own record only.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::args::{is, lower};
use super::keys::help_reply;
use super::{CmdError, CmdResult, Ctx};
use crate::config::parse_size;
use crate::policy::slot::Prepared;
use crate::policy::{PolicyError, PolicyModule};
use crate::protocol::Out;
use crate::server::client::{Deferred, DeferredReply};
use crate::server::state::ServerState;
use crate::store::glob;
use crate::tenancy::alerts::Thresholds;
use crate::tenancy::tenant::{Refusal, percent};
use crate::tenancy::{Tenant, TenantError, TenantLimits, TenantState, TenantTier, Usage};

/// Eviction policies a tenant may choose: the product page's and Redis's names.
pub const EVICTION_POLICIES: &[&str] = &[
    "noeviction",
    "lru",
    "lfu",
    "ttl",
    "random",
    "volatile-lru",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

fn terr(e: TenantError) -> CmdError {
    CmdError::msg(e.to_string())
}

/// The tenant a read-only subcommand is about: the named one (a bound
/// connection may only name its own) or the current context's.
fn target(ctx: &Ctx, arg: Option<&[u8]>) -> Result<Arc<Tenant>, CmdError> {
    match arg {
        Some(id) => {
            let id = String::from_utf8_lossy(id);
            if let (true, Some(own)) = (ctx.client.bound, ctx.client.tenant.as_ref())
                && own.id() != id
            {
                return Err(CmdError::msg(format!("NOPERM tenant '{}' may only see its own record", own.id())));
            }
            ctx.state.tenants.get_tenant(&id).map_err(terr)
        }
        None => ctx.client.tenant.clone().ok_or_else(|| CmdError::err("no tenant selected: name one, or enter one with TENANT.USE")),
    }
}

fn named(ctx: &Ctx, id: &[u8]) -> Result<Arc<Tenant>, CmdError> {
    ctx.state.tenants.get_tenant(&String::from_utf8_lossy(id)).map_err(terr)
}

fn count(a: &[u8]) -> Result<u64, CmdError> {
    super::args::uint(a, CmdError::NotInteger)
}

/// Options shared by CREATE and UPDATE.
#[derive(Default)]
struct Options {
    name: Option<String>,
    tier: Option<TenantTier>,
    memory: Option<u64>,
    keys: Option<u64>,
    ops: Option<u64>,
    connections: Option<u64>,
    databases: Option<u64>,
    password: Option<Vec<u8>>,
    eviction: Option<String>,
    state: Option<TenantState>,
    policy: Option<PolicyArg>,
    config: Option<Vec<u8>>,
    /// NOTIFY: the tenant's own `notify-keyspace-events` (`Some(None)`:
    /// DEFAULT, back to the server's).
    notify: Option<Option<u32>>,
    /// ALERTS: its own quota alert thresholds (`Some(None)`: DEFAULT).
    alerts: Option<Option<Thresholds>>,
}

/// `POLICY <wasm-bytes> | NONE | ROLLBACK`.
enum PolicyArg {
    Module(Vec<u8>),
    Remove,
    Rollback,
}

fn parse_options(a: &[&[u8]]) -> Result<Options, CmdError> {
    let mut o = Options::default();
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in a.chunks(2) {
        let v = pair[1];
        let text = String::from_utf8_lossy(v).into_owned();
        match lower(pair[0]).as_str() {
            "name" => o.name = Some(text),
            "tier" => o.tier = Some(TenantTier::parse(&text)),
            "memory" => o.memory = Some(parse_size(&text).map_err(|e| CmdError::err(format!("invalid MEMORY: {e}")))?),
            "keys" => o.keys = Some(count(v)?),
            "ops" => o.ops = Some(count(v)?.max(1)),
            "connections" => o.connections = Some(count(v)?),
            "databases" => o.databases = Some(count(v)?),
            "password" => o.password = Some(v.to_vec()),
            "policy" if is(v, "none") => o.policy = Some(PolicyArg::Remove),
            "policy" if is(v, "rollback") => o.policy = Some(PolicyArg::Rollback),
            "policy" => o.policy = Some(PolicyArg::Module(v.to_vec())),
            "config" => o.config = Some(v.to_vec()),
            "alerts" if is(v, "default") => o.alerts = Some(None),
            "alerts" => {
                let t = Thresholds::parse(&text).map_err(|e| CmdError::err(format!("invalid ALERTS '{text}': {e}, or DEFAULT")))?;
                o.alerts = Some(Some(t));
            }
            "notify" if is(v, "default") => o.notify = Some(None),
            "notify" => {
                let flags = crate::space::notify::parse(v)
                    .ok_or_else(|| CmdError::err(format!("invalid NOTIFY: {} (or DEFAULT)", crate::space::notify::BAD_CLASS)))?;
                o.notify = Some(Some(flags));
            }
            "state" => {
                o.state = Some(
                    TenantState::parse(&text)
                        .ok_or_else(|| CmdError::err(format!("unknown state '{text}'; use active, suspended, migrating or archived")))?,
                )
            }
            "eviction" => {
                let p = text.to_ascii_lowercase();
                if !EVICTION_POLICIES.contains(&p.as_str()) {
                    return Err(CmdError::err(format!("unknown eviction policy '{text}'; use one of {}", EVICTION_POLICIES.join(", "))));
                }
                o.eviction = Some(p);
            }
            _ => return Err(CmdError::err(format!("unknown TENANT option '{}'", String::from_utf8_lossy(pair[0])))),
        }
    }
    Ok(o)
}

/// Explicit limits override the tier's (or the current) ones.
fn apply_limits(base: TenantLimits, o: &Options, max_dbs: usize) -> Result<TenantLimits, CmdError> {
    let mut l = base;
    l.memory_bytes = o.memory.unwrap_or(l.memory_bytes);
    l.max_keys = o.keys.unwrap_or(l.max_keys);
    l.ops_per_second = o.ops.unwrap_or(l.ops_per_second);
    l.max_connections = o.connections.unwrap_or(l.max_connections);
    l.max_databases = o.databases.unwrap_or(l.max_databases);
    if l.max_databases == 0 || l.max_databases as usize > max_dbs {
        return Err(CmdError::err(format!("DATABASES must be between 1 and {max_dbs}")));
    }
    Ok(l)
}

pub fn create(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if ctx.state.directory().is_some() {
        return super::cluster_admin::create(ctx, a);
    }
    create_here(ctx, a)?;
    ctx.out.ok();
    Ok(())
}

/// Creates the tenant on this node (TENANT.CREATE's arguments, without NODE).
pub(super) fn create_here(ctx: &mut Ctx, a: &[&[u8]]) -> Result<Arc<Tenant>, CmdError> {
    let id = String::from_utf8_lossy(a[1]).into_owned();
    let o = parse_options(&a[2..])?;
    if o.state.is_some() {
        return Err(CmdError::err("a new tenant starts active; change its STATE with TENANT.UPDATE"));
    }
    if o.policy.is_some() || o.config.is_some() {
        return Err(CmdError::err("create the tenant first, then upload its policy with TENANT.UPDATE <id> POLICY <wasm-bytes>"));
    }
    let m = &ctx.state.tenants;
    let base = match &o.tier {
        Some(t) => m.tier_limits(t).map_err(terr)?,
        None => m.config().default_limits,
    };
    let limits = apply_limits(base, &o, m.config().databases)?;
    let tier = o.tier.clone().unwrap_or(TenantTier::Free);
    let eviction = o.eviction.as_deref().unwrap_or("noeviction");
    let t = m.create_with(&id, o.name.as_deref(), tier, limits, o.password.as_deref(), eviction).map_err(terr)?;
    if let Some(n) = o.notify {
        t.space.events.set_own(n);
    }
    if let Some(a) = o.alerts {
        t.alerts.set_own(a);
    }
    persist_tenant(ctx, &t, false);
    tracing::info!(tenant = %id, "tenant created");
    Ok(t)
}

/// TENANT.UPDATE. With a new POLICY module, everything is checked first,
/// the module is compiled off the event loop, and only when it loads are
/// the other options applied and the module swapped in: the reply reports
/// all or nothing.
pub fn update(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = named(ctx, a[1])?;
    let mut o = parse_options(&a[2..])?;
    let m = &ctx.state.tenants;
    // Changing the tier re-applies its limits; explicit options win.
    let base = match &o.tier {
        Some(tier) => m.tier_limits(tier).map_err(terr)?,
        None => t.limits(),
    };
    let limits = apply_limits(base, &o, m.config().databases)?;
    if let Some(s) = o.state
        && !t.state().can_become(s)
    {
        return Err(terr(TenantError::InvalidTransition { id: t.id().into(), from: t.state(), to: s }));
    }
    let cfg = &ctx.state.policy;
    let keep = cfg.keep_versions;
    let policy_changed = o.policy.is_some() || o.config.is_some();
    match (o.policy.take(), o.config.take()) {
        (None, None) => apply_update(&t, o, limits),
        (Some(PolicyArg::Module(bytes)), config) => {
            ctx.client.deferred = Some(upload(ctx.state.arc(), t, bytes, config.unwrap_or_default(), (o, limits), ctx.now_ms));
            return Ok(());
        }
        (Some(PolicyArg::Remove), None) => {
            apply_update(&t, o, limits);
            t.remove_policy(keep);
        }
        (Some(PolicyArg::Rollback), None) => {
            let p = Prepared::new(t.policy.previous().map_err(perr)?, t.id(), cfg).map_err(perr)?;
            apply_update(&t, o, limits);
            t.restore_policy(p, ctx.now_ms);
        }
        (None, Some(config)) => {
            let module = t.policy.module().ok_or_else(|| CmdError::err("the tenant has no policy to configure: upload one with POLICY"))?;
            let p = Prepared::new(Arc::new(module.with_config(&config)), t.id(), cfg).map_err(perr)?;
            apply_update(&t, o, limits);
            t.install_policy(p, ctx.now_ms, keep);
        }
        (Some(_), Some(_)) => return Err(CmdError::err("CONFIG goes with a new POLICY module (or alone, to reconfigure the current one)")),
    }
    persist_tenant(ctx, &t, policy_changed);
    ctx.out.ok();
    Ok(())
}

/// Logs the tenant's record (and its policy, when that changed).
fn persist_tenant(ctx: &mut Ctx, t: &Tenant, policy_changed: bool) {
    if let Some(p) = ctx.state.persistence() {
        ctx.client.persist_seq = p.log_tenant(t, policy_changed);
    }
}

fn perr(e: PolicyError) -> CmdError {
    CmdError::err(e.to_string())
}

/// Compiles and instantiates an uploaded module on the blocking pool, then
/// (back on the connection) applies the update and swaps the module in.
/// (`now_ms` is the command's start: compilation takes a few milliseconds.)
fn upload(
    state: Arc<ServerState>,
    t: Arc<Tenant>,
    bytes: Vec<u8>,
    config: Vec<u8>,
    update: (Options, TenantLimits),
    now_ms: u64,
) -> Deferred {
    Box::pin(async move {
        let id = t.id().to_string();
        let cfg = state.policy.clone();
        let keep = cfg.keep_versions;
        let built = tokio::task::spawn_blocking(move || {
            let module = PolicyModule::compile(&bytes, &config, &cfg)?;
            Prepared::new(Arc::new(module), &id, &cfg)
        })
        .await;
        let reply: DeferredReply = Box::new(move |out: &mut Out| match built {
            Ok(Ok(p)) => {
                let hash = p.module.hash.clone();
                // Under the shared lock, like any command: a compaction's cut
                // sees the new module and its log record together.
                let _g = t.space.exec_lock.read();
                apply_update(&t, update.0, update.1);
                t.install_policy(p, now_ms, keep);
                // (The connection holds this reply until the record is as
                // durable as `appendfsync` promises: see `Conn::run`.)
                if let Some(persist) = state.persistence() {
                    persist.log_tenant(&t, true);
                }
                tracing::info!(tenant = %t.id(), %hash, "policy installed");
                out.ok();
            }
            Ok(Err(e)) => out.error(&format!("ERR {e}")),
            Err(e) => out.error(&format!("ERR policy upload failed: {e}")),
        });
        reply
    })
}

/// Applies TENANT.UPDATE's options (already validated).
fn apply_update(t: &Tenant, o: Options, limits: TenantLimits) {
    if let Some(n) = o.notify {
        t.space.events.set_own(n);
    }
    if let Some(a) = o.alerts {
        t.alerts.set_own(a);
    }
    if let Some(s) = o.state {
        // Checked by the caller; a concurrent change loses to the newer one.
        let _ = t.set_state(s);
    }
    t.set_limits(limits);
    let hash = o.password.as_deref().map(crate::tenancy::tenant::PasswordHash::new);
    t.update_profile(|p| {
        if let Some(n) = &o.name {
            p.name = n.clone();
        }
        if let Some(tier) = &o.tier {
            p.tier = tier.clone();
        }
        if let Some(e) = &o.eviction {
            p.eviction = e.clone();
        }
        if hash.is_some() {
            p.password = hash;
        }
    });
}

pub fn delete(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if ctx.state.directory().is_some() {
        return super::cluster_admin::delete(ctx, a);
    }
    delete_here(ctx, a[1])?;
    ctx.out.ok();
    Ok(())
}

/// Deletes the tenant from this node: its data, its clients, its profile.
pub(super) fn delete_here(ctx: &mut Ctx, id: &[u8]) -> CmdResult {
    let t = remove_tenant(ctx.state, &String::from_utf8_lossy(id), ctx.client.id()).map_err(terr)?;
    if let Some(p) = ctx.state.persistence() {
        ctx.client.persist_seq = p.aof.seq();
    }
    if ctx.client.tenant.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, &t)) {
        super::cleanup_client(ctx);
        ctx.client.enter(None);
    }
    Ok(())
}

/// Removes a tenant from this node (logged), closes its connections other
/// than `keep`'s and frees its data.
pub(super) fn remove_tenant(state: &ServerState, id: &str, keep: u64) -> Result<Arc<Tenant>, TenantError> {
    let t = state.tenants.delete_tenant(id)?;
    if let Some(p) = state.persistence() {
        p.log(&crate::persist::Record::TenantDelete(t.id().to_string()));
    }
    for c in state.clients.all() {
        if c.tenant.lock().as_deref() == Some(t.id()) && c.id != keep {
            c.request_kill();
        }
    }
    t.space.clear();
    tracing::info!(tenant = %t.id(), "tenant deleted");
    Ok(t)
}

pub fn list(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 1 && is(a[1], "local") {
        let with_memory = a.len() > 2 && is(a[2], "withmemory");
        let rest = &a[1 + 1 + with_memory as usize..];
        let tenants = list_here(ctx, rest)?;
        if with_memory {
            ctx.out.array(tenants.len() * 2);
            for t in &tenants {
                ctx.out.bulk(t.id().as_bytes());
                ctx.out.int(t.get_usage().memory_used.min(i64::MAX as u64) as i64);
            }
        } else {
            ctx.out.bulks(tenants.iter().map(|t| t.id().as_bytes()));
        }
        return Ok(());
    }
    if ctx.state.directory().is_some() {
        return super::cluster_admin::list(ctx, a);
    }
    let tenants = list_here(ctx, &a[1..])?;
    ctx.out.bulks(tenants.iter().map(|t| t.id().as_bytes()));
    Ok(())
}

/// This node's own tenants (not those moved away), filtered as
/// `[FILTER state|tier|name <value>]` asks.
pub(super) fn list_here(ctx: &mut Ctx, a: &[&[u8]]) -> Result<Vec<Arc<Tenant>>, CmdError> {
    let filter = match a.len() {
        0 => None,
        3 if is(a[0], "filter") => Some((lower(a[1]), a[2])),
        _ => return Err(CmdError::Syntax),
    };
    let mut ids = Vec::new();
    for t in ctx.state.tenants.list() {
        let keep = match &filter {
            None => true,
            Some((k, v)) if k == "state" => t.state().name().as_bytes().eq_ignore_ascii_case(v),
            Some((k, v)) if k == "tier" => t.profile().tier.name().as_bytes().eq_ignore_ascii_case(v),
            Some((k, v)) if k == "name" => glob::matches(v, t.profile().name.as_bytes(), true),
            Some(_) => return Err(CmdError::err("FILTER takes state, tier or name")),
        };
        // In a cluster each tenant is listed by its owner only.
        let elsewhere = ctx.state.directory().is_some() && (t.is_moved() || t.importing.load(Relaxed));
        if keep && !elsewhere {
            ids.push(t);
        }
    }
    Ok(ids)
}

/// Field/value pairs as a flat array (RESP2) or a map (RESP3).
enum V {
    S(String),
    I(u64),
}

fn reply_fields(out: &mut Out, fields: &[(&str, V)]) {
    out.map(fields.len());
    for (k, v) in fields {
        out.bulk(k.as_bytes());
        match v {
            V::S(s) => out.bulk(s.as_bytes()),
            V::I(n) => out.int(*n as i64),
        }
    }
}

pub fn info(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() > 2 {
        return Err(CmdError::Arity("tenant.info".into()));
    }
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = target(ctx, a.get(1).copied())?;
    let (p, u) = (t.profile(), t.get_usage());
    // A move in progress: its phase, what it has sent, what it has yet to.
    let moving = t.migration.lock().clone();
    let state = match (&moving, t.is_moved()) {
        (Some(_), _) => "migrating".into(),
        (None, true) => "moved".into(),
        (None, false) => t.state().name().into(),
    };
    let (phase, sent, lag) =
        moving.as_ref().map_or(("", 0, 0), |m| (*m.phase.lock(), m.bytes_sent.load(Relaxed), m.lag_bytes.load(Relaxed)));
    let fields = [
        ("id", V::S(t.id().into())),
        ("name", V::S(p.name)),
        ("tier", V::S(p.tier.name().into())),
        ("state", V::S(state)),
        // The node that serves it, in a cluster ("" on a single node).
        ("owner", V::S(ctx.state.directory().map(|d| d.node_id().to_string()).unwrap_or_default())),
        // Where it went, once TENANT.MIGRATE moved it ("" while it is here).
        ("moved_to", V::S(t.moved().map(|m| m.addr).unwrap_or_default())),
        ("migration_to", V::S(moving.as_ref().map(|m| m.to.clone()).unwrap_or_default())),
        ("migration_phase", V::S(phase.into())),
        ("migration_bytes_sent", V::I(sent)),
        ("migration_lag_bytes", V::I(lag)),
        ("memory_used", V::I(u.memory_used)),
        ("memory_limit", V::I(u.limits.memory_bytes)),
        ("memory_peak", V::I(t.metrics.memory_peak.load(Relaxed))),
        // Part of memory_used: what its connections hold (buffers, MULTI
        // queues, subscriptions, queued messages).
        ("memory_clients", V::I(t.client_memory())),
        ("keys", V::I(u.keys)),
        ("key_limit", V::I(u.limits.max_keys)),
        ("ops_limit", V::I(u.limits.ops_per_second)),
        ("ops", V::I(t.metrics.reads.load(Relaxed) + t.metrics.writes.load(Relaxed))),
        ("connections", V::I(u.connections)),
        ("connection_limit", V::I(u.limits.max_connections)),
        ("databases", V::I(u.databases)),
        ("database_limit", V::I(u.limits.max_databases)),
        ("eviction", V::S(p.eviction)),
        ("created_at", V::I(t.created_at())),
        ("policy", V::S(t.policy.info().state.into())),
        // Its own notify-keyspace-events, or "default" (the server's).
        ("notify", V::S(t.space.events.own().map_or_else(|| "default".into(), crate::space::notify::format))),
        // Its own alert thresholds, or "default"; then those in effect.
        ("alerts", V::S(t.alerts.own().map_or_else(|| "default".into(), |a| a.to_string()))),
        ("alert_thresholds", V::S(t.alerts.effective(ctx.state.tenants.default_alerts()).to_string())),
    ];
    reply_fields(ctx.out, &fields);
    Ok(())
}

/// TENANT.POLICY [<id>]: the tenant's policy module and how it has fared.
pub fn policy(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    if a.len() > 2 {
        return Err(CmdError::Arity("tenant.policy".into()));
    }
    let t = target(ctx, a.get(1).copied())?;
    let i = t.policy.info();
    let c = i.counters;
    let fields = [
        ("state", V::S(i.state.into())),
        ("hash", V::S(i.hash)),
        ("size", V::I(i.size)),
        ("hooks", V::S(i.hooks)),
        ("config_bytes", V::I(i.config_bytes)),
        ("loaded_at", V::I(i.loaded_at_ms / 1000)),
        ("calls", V::I(c.calls)),
        ("fuel_used", V::I(c.fuel_used)),
        ("traps", V::I(c.traps)),
        ("out_of_fuel", V::I(c.out_of_fuel)),
        ("timeouts", V::I(c.timeouts)),
        ("bad_returns", V::I(c.bad_returns)),
        ("fallbacks", V::I(c.fallbacks())),
        ("logs_dropped", V::I(i.logs_dropped)),
        ("versions_kept", V::I(i.versions_kept)),
        ("disabled_reason", V::S(i.disabled_reason)),
        ("last_error", V::S(i.last_error)),
    ];
    reply_fields(ctx.out, &fields);
    Ok(())
}

pub fn use_(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = named(ctx, a[1])?;
    super::cleanup_client(ctx);
    ctx.client.enter(Some(t));
    ctx.out.ok();
    Ok(())
}

pub fn current(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let id = ctx.client.tenant.as_ref().map(|t| t.id().to_string());
    ctx.out.bulk_opt(id.as_deref().map(str::as_bytes));
    Ok(())
}

pub fn exit(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    super::cleanup_client(ctx);
    ctx.client.enter(None);
    ctx.out.ok();
    Ok(())
}

pub fn limits_set(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = named(ctx, a[1])?;
    let o = parse_options(&a[2..])?;
    let other = o.name.is_some() || o.tier.is_some() || o.password.is_some() || o.eviction.is_some() || o.state.is_some();
    if other || o.policy.is_some() || o.config.is_some() || o.alerts.is_some() {
        return Err(CmdError::err("TENANT.LIMITS.SET takes MEMORY, KEYS, OPS, CONNECTIONS or DATABASES"));
    }
    let l = apply_limits(t.limits(), &o, ctx.state.tenants.config().databases)?;
    t.set_limits(l);
    persist_tenant(ctx, &t, false);
    ctx.out.ok();
    Ok(())
}

pub fn limits_get(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = target(ctx, a.get(1).copied())?;
    let l = t.limits();
    let fields = [
        ("memory", V::I(l.memory_bytes)),
        ("keys", V::I(l.max_keys)),
        ("ops", V::I(l.ops_per_second)),
        ("connections", V::I(l.max_connections)),
        ("databases", V::I(l.max_databases)),
    ];
    reply_fields(ctx.out, &fields);
    Ok(())
}

pub fn quota(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = target(ctx, a.get(1).copied())?;
    let u: Usage = t.get_usage();
    let rows = [
        ("memory", u.memory_used, u.limits.memory_bytes),
        ("keys", u.keys, u.limits.max_keys),
        ("connections", u.connections, u.limits.max_connections),
        ("databases", u.databases, u.limits.max_databases),
    ];
    let out = &mut *ctx.out;
    out.map(rows.len());
    for (name, used, limit) in rows {
        out.bulk(name.as_bytes());
        out.map(3);
        out.bulk(b"used");
        out.int(used as i64);
        out.bulk(b"limit");
        out.int(limit as i64);
        out.bulk(b"percent");
        out.bulk(format!("{:.2}", percent(used, limit)).as_bytes());
    }
    Ok(())
}

fn set_state(ctx: &mut Ctx, id: &[u8], to: TenantState) -> CmdResult {
    let t = named(ctx, id)?;
    t.set_state(to).map_err(terr)?;
    persist_tenant(ctx, &t, false);
    ctx.out.ok();
    Ok(())
}

pub fn suspend(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    set_state(ctx, a[1], TenantState::Suspended)
}

pub fn activate(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    set_state(ctx, a[1], TenantState::Active)
}

pub fn stats(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    if !ctx.state.tenants.config().metrics_enabled {
        return Err(CmdError::err("tenant metrics are disabled ([tenancy] metrics_enabled = false)"));
    }
    let t = target(ctx, a.get(1).copied())?;
    let m = &t.metrics;
    let g = |x: &std::sync::atomic::AtomicU64| V::I(x.load(Relaxed));
    let expired: u64 = t.space.existing().map(|(_, d)| d.expired_count()).sum();
    let fields = [
        ("commands_read", g(&m.reads)),
        ("commands_write", g(&m.writes)),
        ("commands_admin", g(&m.admin)),
        ("keyspace_hits", g(&m.hits)),
        ("keyspace_misses", g(&m.misses)),
        ("bytes_in", g(&m.bytes_in)),
        ("bytes_out", g(&m.bytes_out)),
        ("memory_used", V::I(t.memory_used())),
        ("memory_peak", g(&m.memory_peak)),
        ("keys", V::I(t.keys())),
        ("connections", g(&m.connections)),
        ("connections_peak", g(&m.connections_peak)),
        ("rate_limited", g(&m.rate_limited)),
        ("quota_rejected", g(&m.quota_rejected)),
        ("refused_memory", V::I(m.refused(Refusal::Memory))),
        ("refused_keys", V::I(m.refused(Refusal::Keys))),
        ("refused_connections", V::I(m.refused(Refusal::Connections))),
        ("refused_state", V::I(m.refused(Refusal::State))),
        ("refused_policy", V::I(m.refused(Refusal::Policy))),
        ("evicted", g(&m.evicted)),
        ("evicted_by_policy", g(&m.evicted_by_policy)),
        ("expired", V::I(expired)),
    ];
    reply_fields(ctx.out, &fields);
    Ok(())
}

pub fn billing(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    if !ctx.state.tenants.config().billing_enabled {
        return Err(CmdError::err("billing is disabled ([tenancy] billing_enabled = false)"));
    }
    let t = target(ctx, a.get(1).copied())?;
    let cfg = &ctx.state.tenants.config().billing;
    let inv = t.meter.invoice(&t, cfg);
    let money = |x: f64| format!("{x:.6}");
    let out = &mut *ctx.out;
    out.map(8);
    out.bulk(b"tenant");
    out.bulk(t.id().as_bytes());
    out.bulk(b"currency");
    out.bulk(inv.currency.as_bytes());
    out.bulk(b"period_start");
    out.int((inv.period_start_ms / 1000) as i64);
    out.bulk(b"ops");
    out.int(inv.ops as i64);
    out.bulk(b"memory_gb_hours");
    out.bulk(format!("{:.9}", inv.memory_gb_hours).as_bytes());
    out.bulk(b"bandwidth_bytes");
    out.int(inv.bandwidth_bytes as i64);
    out.bulk(b"items");
    out.array(inv.items.len());
    for i in &inv.items {
        out.array(4);
        out.bulk(i.name.as_bytes());
        out.bulk(format!("{:.9}", i.quantity).as_bytes());
        out.bulk(i.unit.as_bytes());
        out.bulk(money(i.amount).as_bytes());
    }
    out.bulk(b"total");
    out.bulk(money(inv.total).as_bytes());
    Ok(())
}

/// `TENANT` alone or with an unknown subcommand (known ones are rewritten
/// to their dotted entries before lookup).
pub fn tenant(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if is(a[1], "help") {
        help_reply(
            ctx,
            &[
                "TENANT <subcommand> [<arg> ...] (also written TENANT.<SUBCOMMAND>). Subcommands are:",
                "CREATE <id> [NAME n] [TIER t] [MEMORY m] [KEYS k] [OPS r] [CONNECTIONS c] [DATABASES d] [PASSWORD p] [EVICTION policy] [NOTIFY flags|DEFAULT] [ALERTS p1,p2,...|NONE|DEFAULT] [NODE <node-id>]",
                "UPDATE <id> [same options] [POLICY <wasm-bytes>|NONE|ROLLBACK] [CONFIG <bytes>]",
                "POLICY [<id>]",
                "DELETE <id>",
                "LIST [LOCAL [WITHMEMORY]] [FILTER state|tier|name <value>]",
                "INFO [<id>]",
                "USE <id> / CURRENT / EXIT",
                "LIMITS SET <id> MEMORY|KEYS|OPS|CONNECTIONS|DATABASES <value>",
                "LIMITS GET [<id>]",
                "QUOTA [<id>]",
                "SUSPEND <id> / ACTIVATE <id>",
                "STATS [<id>]",
                "BILLING [<id>]",
                "MIGRATE <id> <host:port>|<node-id> [AUTH <password>] [TIMEOUT <ms>] [MAXPAUSE <ms>] / MIGRATE <id> ABORT",
                "NODES / LOCATE <id> / REBALANCE [DRY-RUN] (a cluster's tenant directory)",
            ],
        );
        return Ok(());
    }
    Err(CmdError::UnknownSubcommand { cmd: "TENANT".into(), sub: String::from_utf8_lossy(a[1]).into() })
}
