//! One tenant: identity, tier, limits, state, its own namespace, metering.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use super::billing::{Ledger, Meter};
use super::eviction::EvictionPool;
use super::lifecycle::TenantState;
use super::tier::{TenantLimits, TenantTier};
use super::{OperationType, TenantError};
use crate::policy::slot::Prepared;
use crate::policy::{Hook, PolicySlot};
use crate::space::Space;

/// Per-tenant counters, all relaxed atomics.
#[derive(Debug, Default)]
pub struct TenantMetrics {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
    pub admin: AtomicU64,
    /// Neither data nor admin: PING, PUBLISH, INFO, CLIENT, MULTI...
    pub other: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub memory_peak: AtomicU64,
    pub connections: AtomicU64,
    pub connections_peak: AtomicU64,
    /// Connections accepted (AUTH as the tenant) and refused over the cap.
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Refusals over the memory or key limit, and by a quota policy
    /// (together; each also in its own counter below).
    pub quota_rejected: AtomicU64,
    pub evicted: AtomicU64,
    /// Of `evicted`, the victims a WASM policy chose.
    pub evicted_by_policy: AtomicU64,
    pub refused_memory: AtomicU64,
    pub refused_keys: AtomicU64,
    /// Commands refused for the tenant's state (suspended, archived, ...).
    pub refused_state: AtomicU64,
    /// Commands a quota policy refused.
    pub refused_policy: AtomicU64,
}

/// Why a tenant's command was refused, for its refusal counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Rate,
    Memory,
    Keys,
    Connections,
    State,
    Policy,
}

impl Refusal {
    pub const ALL: [Refusal; 6] = [Refusal::Rate, Refusal::Memory, Refusal::Keys, Refusal::Connections, Refusal::State, Refusal::Policy];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::Rate => "rate",
            Refusal::Memory => "memory",
            Refusal::Keys => "keys",
            Refusal::Connections => "connections",
            Refusal::State => "state",
            Refusal::Policy => "policy",
        }
    }
}

impl TenantMetrics {
    fn refusal_counter(&self, r: Refusal) -> &AtomicU64 {
        match r {
            Refusal::Rate => &self.rate_limited,
            Refusal::Memory => &self.refused_memory,
            Refusal::Keys => &self.refused_keys,
            Refusal::Connections => &self.connections_refused,
            Refusal::State => &self.refused_state,
            Refusal::Policy => &self.refused_policy,
        }
    }

    /// Counts a refusal; memory, key and policy refusals are also quota refusals.
    pub fn refuse(&self, r: Refusal) {
        self.refusal_counter(r).fetch_add(1, Relaxed);
        if matches!(r, Refusal::Memory | Refusal::Keys | Refusal::Policy) {
            self.quota_rejected.fetch_add(1, Relaxed);
        }
    }

    pub fn refused(&self, r: Refusal) -> u64 {
        self.refusal_counter(r).load(Relaxed)
    }
}

/// A point-in-time view of what a tenant uses against its limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub memory_used: u64,
    pub keys: u64,
    pub connections: u64,
    pub databases: u64,
    pub limits: TenantLimits,
}

/// `used` as a percentage of `limit` (0 for an unlimited 0).
pub fn percent(used: u64, limit: u64) -> f64 {
    if limit == 0 { 0.0 } else { used as f64 * 100.0 / limit as f64 }
}

impl Usage {
    pub fn memory_percent(&self) -> f64 {
        percent(self.memory_used, self.limits.memory_bytes)
    }

    pub fn keys_percent(&self) -> f64 {
        percent(self.keys, self.limits.max_keys)
    }

    pub fn connections_percent(&self) -> f64 {
        percent(self.connections, self.limits.max_connections)
    }
}

/// A salted SHA-256 of a password; never the password itself.
#[derive(Clone)]
pub struct PasswordHash {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl PasswordHash {
    /// The salt and the digest, for persistence.
    pub fn parts(&self) -> ([u8; 16], [u8; 32]) {
        (self.salt, self.hash)
    }

    pub fn from_parts(salt: [u8; 16], hash: [u8; 32]) -> PasswordHash {
        PasswordHash { salt, hash }
    }

    pub fn new(password: &[u8]) -> PasswordHash {
        let mut salt = [0u8; 16];
        salt.iter_mut().for_each(|b| *b = fastrand::u8(..));
        PasswordHash { salt, hash: Self::digest(&salt, password) }
    }

    fn digest(salt: &[u8; 16], password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(salt);
        h.update(password);
        h.finalize().into()
    }

    /// Compares in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        let d = Self::digest(&self.salt, password);
        d.iter().zip(&self.hash).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Descriptive fields that change rarely, behind one lock.
#[derive(Clone)]
pub struct TenantProfile {
    pub name: String,
    pub tier: TenantTier,
    pub eviction: String,
    pub password: Option<PasswordHash>,
}

/// Failed AUTHs allowed per second for one tenant (or for the admin and
/// unknown user names together) before further attempts wait.
pub const AUTH_FAILURES_PER_SECOND: u32 = 10;

/// Counts failed password checks per second; past
/// [`AUTH_FAILURES_PER_SECOND`] further checks wait for the next second, so
/// a password cannot be guessed at wire speed, however many connections try.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    second: AtomicU64,
    failures: std::sync::atomic::AtomicU32,
}

impl AuthThrottle {
    /// How long a check must wait now (None: it may run).
    pub fn wait_ms(&self, now_ms: u64) -> Option<u64> {
        let full = self.second.load(Relaxed) == now_ms / 1000 && self.failures.load(Relaxed) >= AUTH_FAILURES_PER_SECOND;
        full.then(|| 1000 - now_ms % 1000)
    }

    pub fn failed(&self, now_ms: u64) {
        let second = now_ms / 1000;
        if self.second.swap(second, Relaxed) != second {
            self.failures.store(0, Relaxed);
        }
        self.failures.fetch_add(1, Relaxed);
    }
}

pub struct Tenant {
    id: String,
    /// Failed AUTHs as this tenant.
    pub auth_throttle: AuthThrottle,
    profile: RwLock<TenantProfile>,
    limits: AtomicLimits,
    state: AtomicU8,
    created_at: AtomicU64,
    limiter: RwLock<DefaultDirectRateLimiter>,
    /// Memory recorded by embedders through [`Tenant::record_memory`], on top
    /// of the exact accounting of the tenant's own databases.
    external_memory: AtomicI64,
    external_keys: AtomicI64,
    /// What the tenant's connections hold: query and output buffers, MULTI
    /// queues, subscriptions, queued messages (see `server::connection`).
    client_memory: AtomicI64,
    /// The tenant's databases, channels and blocked clients.
    pub space: Space,
    pub metrics: TenantMetrics,
    pub eviction_pool: EvictionPool,
    pub meter: Meter,
    /// The tenant's WASM policy, if it has one.
    pub policy: PolicySlot,
    /// Line items a billing policy has added this period.
    pub ledger: Ledger,
    /// Operations in the last full second, updated by the metering tick.
    pub ops_rate: AtomicU64,
    /// Its alert thresholds and where its usage stands against them.
    pub alerts: super::alerts::AlertState,
    /// Encoding parameters this tenant set with CONFIG SET (its own copy).
    pub tuning: parking_lot::Mutex<Option<crate::tuning::Tuning>>,
    /// Set once the tenant has moved to another node (TENANT.MIGRATE):
    /// its connections are forwarded there.
    moved: parking_lot::Mutex<Option<Moved>>,
    is_moved: AtomicBool,
    /// Being moved here (TENANT.IMPORT until its COMMIT): nobody may
    /// connect as it yet.
    pub importing: AtomicBool,
    /// Entries imported so far, checked against the stream's end record.
    pub imported_entries: AtomicU64,
    /// Being moved away (TENANT.MIGRATE in progress).
    pub migration: parking_lot::Mutex<Option<Arc<Migration>>>,
    /// Woken when the tenant moves (connections waiting for messages).
    pub moved_signal: tokio::sync::Notify,
}

/// A move in progress, as TENANT.INFO shows it and TENANT.MIGRATE ABORT
/// stops it.
#[derive(Debug, Default)]
pub struct Migration {
    pub to: String,
    pub phase: parking_lot::Mutex<&'static str>,
    pub bytes_sent: AtomicU64,
    /// The tenant's writes logged here and not yet sent.
    pub lag_bytes: AtomicU64,
    pub abort: AtomicBool,
}

/// Where a moved tenant went, and how this node reaches it.
#[derive(Debug, Clone)]
pub struct Moved {
    pub addr: String,
    /// The other node's admin password, for the forwarding connections.
    pub auth: Option<String>,
}

/// Usage above this share of a limit lets a quota policy judge every write
/// (quota alerts have thresholds of their own: see `alerts`).
pub const WARN_PERCENT: u64 = 80;

/// The limits, each field its own atomic: every write of the tenant reads
/// two of them, and a lock's read-modify-write on a line all its
/// connections share cost more than the check. A reader racing
/// `TENANT.UPDATE` may see some fields old and some new, each valid alone.
struct AtomicLimits {
    memory_bytes: AtomicU64,
    max_keys: AtomicU64,
    ops_per_second: AtomicU64,
    max_connections: AtomicU64,
    max_databases: AtomicU64,
    /// The usage where a quota policy starts judging every write
    /// ([`WARN_PERCENT`] of the memory and key limits), worked out once.
    memory_warn: AtomicU64,
    keys_warn: AtomicU64,
    /// Counts every change of the limits, and every look at the usage
    /// that found it at the warning level: a [`WriteCredit`] granted
    /// before is void.
    epoch: AtomicU64,
    /// The memory held besides the databases (`Tenant::held_memory`) at
    /// the last look that found the usage below the warning level, plus
    /// one connection's share of the margin: a credit covers no write once
    /// the tenant holds more.
    held_cap: AtomicI64,
}

/// The most a connection's [`WriteCredit`] holds at once.
const CREDIT_BYTES: u64 = 256 << 10;
const CREDIT_KEYS: u64 = 256;

/// Bytes and keys a connection of the tenant may add without a look at
/// the tenant's usage, granted while the tenant is well below the warning
/// level of both limits and it has no quota policy (which judges every
/// write above that level). Each of the tenant's connections holds at
/// most one, of at most half the margin between the warning level and
/// the limit over the connection limit (all the margin for keys). Every
/// look at the usage that finds the warning level reached voids every
/// credit, so writes past that level are all looked at; what credits add
/// unlooked-at is at most half the margin, and what the tenant holds
/// besides its databases may grow by at most one connection's share of
/// the other half before credits stop covering writes. So the hard limits
/// hold whatever the connections do in between.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteCredit {
    bytes: u64,
    keys: u64,
    epoch: u64,
}

/// The least usage at or past `WARN_PERCENT` of `limit`.
fn warn_level(limit: u64) -> u64 {
    ((limit as u128 * WARN_PERCENT as u128).div_ceil(100)) as u64
}

impl AtomicLimits {
    fn new(l: TenantLimits) -> AtomicLimits {
        let a = AtomicLimits {
            memory_bytes: AtomicU64::new(0),
            max_keys: AtomicU64::new(0),
            ops_per_second: AtomicU64::new(0),
            max_connections: AtomicU64::new(0),
            max_databases: AtomicU64::new(0),
            memory_warn: AtomicU64::new(0),
            keys_warn: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            held_cap: AtomicI64::new(i64::MIN),
        };
        a.set(l);
        a
    }

    fn set(&self, l: TenantLimits) {
        self.memory_bytes.store(l.memory_bytes, Relaxed);
        self.max_keys.store(l.max_keys, Relaxed);
        self.ops_per_second.store(l.ops_per_second, Relaxed);
        self.max_connections.store(l.max_connections, Relaxed);
        self.max_databases.store(l.max_databases, Relaxed);
        self.memory_warn.store(warn_level(l.memory_bytes), Relaxed);
        self.keys_warn.store(warn_level(l.max_keys), Relaxed);
        // Release: a grant that sees the new epoch sees the new limits.
        self.epoch.fetch_add(1, Release);
    }

    /// The size of a connection's [`WriteCredit`] under these limits when
    /// `connections` may hold one each: (bytes, keys). The other half of
    /// the memory margin is `held_slack`'s.
    fn credit(&self, connections: u64) -> (u64, u64) {
        let share = |limit: &AtomicU64, warn: &AtomicU64, parts: u64, most: u64| {
            (limit.load(Relaxed).saturating_sub(warn.load(Relaxed)) / parts.max(1)).min(most)
        };
        let bytes = share(&self.memory_bytes, &self.memory_warn, connections.saturating_mul(2), CREDIT_BYTES);
        (bytes, share(&self.max_keys, &self.keys_warn, connections, CREDIT_KEYS))
    }

    fn get(&self) -> TenantLimits {
        TenantLimits {
            memory_bytes: self.memory_bytes.load(Relaxed),
            max_keys: self.max_keys.load(Relaxed),
            ops_per_second: self.ops_per_second.load(Relaxed),
            max_connections: self.max_connections.load(Relaxed),
            max_databases: self.max_databases.load(Relaxed),
        }
    }
}

fn limiter_for(ops: u64) -> DefaultDirectRateLimiter {
    let rate = NonZeroU32::new(ops.clamp(1, u32::MAX as u64) as u32).expect("clamped to at least 1");
    // A burst of one second's worth lets clients pipeline without being
    // refused for arriving together.
    RateLimiter::direct(Quota::per_second(rate).allow_burst(rate))
}

impl Tenant {
    pub fn new(id: String, profile: TenantProfile, limits: TenantLimits, space: Space, now_secs: u64) -> Tenant {
        Tenant {
            policy: PolicySlot::new(&id),
            ledger: Ledger::default(),
            id,
            profile: RwLock::new(profile),
            limiter: RwLock::new(limiter_for(limits.ops_per_second)),
            limits: AtomicLimits::new(limits),
            state: AtomicU8::new(TenantState::Active as u8),
            created_at: AtomicU64::new(now_secs),
            external_memory: AtomicI64::new(0),
            external_keys: AtomicI64::new(0),
            client_memory: AtomicI64::new(0),
            auth_throttle: AuthThrottle::default(),
            space,
            metrics: TenantMetrics::default(),
            eviction_pool: EvictionPool::default(),
            meter: {
                let m = Meter::default();
                m.start(now_secs * 1000);
                m
            },
            ops_rate: AtomicU64::new(0),
            alerts: Default::default(),
            tuning: parking_lot::Mutex::new(None),
            moved: parking_lot::Mutex::new(None),
            is_moved: AtomicBool::new(false),
            importing: AtomicBool::new(false),
            imported_entries: AtomicU64::new(0),
            migration: parking_lot::Mutex::new(None),
            moved_signal: tokio::sync::Notify::new(),
        }
    }

    /// The cumulative counters that move with the tenant, in one order.
    /// (Those added later follow the meter: see [`Tenant::counters`].)
    fn moving_counters(&self) -> [&AtomicU64; 13] {
        let m = &self.metrics;
        [
            &m.reads,
            &m.writes,
            &m.admin,
            &m.hits,
            &m.misses,
            &m.bytes_in,
            &m.bytes_out,
            &m.memory_peak,
            &m.connections_total,
            &m.connections_refused,
            &m.rate_limited,
            &m.quota_rejected,
            &m.evicted,
        ]
    }

    /// Counters added after the meter joined the list: an older node's
    /// list simply ends before them.
    fn later_counters(&self) -> [&AtomicU64; 6] {
        let m = &self.metrics;
        [&m.evicted_by_policy, &m.refused_memory, &m.refused_keys, &m.refused_state, &m.refused_policy, &m.other]
    }

    /// Its cumulative counters and billing meter, in [`Tenant::restore_counters`]'s order.
    pub fn counters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.moving_counters().iter().map(|a| a.load(Relaxed)).collect();
        v.extend(self.meter.state());
        v.extend(self.later_counters().iter().map(|a| a.load(Relaxed)));
        v
    }

    /// Takes up a moved tenant's counters and meter (see [`Tenant::counters`]);
    /// a list too short for the counters and meter is ignored, and the later
    /// counters it lacks (an older node's) start from 0.
    pub fn restore_counters(&self, v: &[u64]) {
        let counters = self.moving_counters();
        let base = counters.len() + 6;
        if v.len() < base {
            return;
        }
        counters.iter().zip(v).for_each(|(a, &x)| a.store(x, Relaxed));
        let mut meter = [0; 6];
        meter.copy_from_slice(&v[counters.len()..base]);
        self.meter.restore(meter);
        self.later_counters().iter().zip(v[base..].iter().chain(std::iter::repeat(&0))).for_each(|(a, &x)| a.store(x, Relaxed));
    }

    /// Whether the tenant has moved to another node (one relaxed load).
    #[inline]
    pub fn is_moved(&self) -> bool {
        self.is_moved.load(Relaxed)
    }

    /// Where the tenant went, once it has moved: one relaxed load before.
    #[inline]
    pub fn moved(&self) -> Option<Moved> {
        if !self.is_moved.load(Relaxed) {
            return None;
        }
        self.moved.lock().clone()
    }

    /// Records that the tenant now lives at `to` and wakes its waiting
    /// connections, which forward from now on.
    pub fn set_moved(&self, to: Moved) {
        *self.moved.lock() = Some(to);
        self.is_moved.store(true, Relaxed);
        self.moved_signal.notify_waiters();
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn profile(&self) -> TenantProfile {
        self.profile.read().clone()
    }

    /// Its tier's name, without cloning the rest of the profile.
    pub fn tier_name(&self) -> String {
        self.profile.read().tier.name().to_string()
    }

    /// The tenant's eviction policy, read in place: eviction asks on every
    /// write at the memory limit, and cloning the profile allocated thrice.
    pub fn eviction_policy(&self) -> super::eviction::Policy {
        super::eviction::Policy::parse(&self.profile.read().eviction).unwrap_or(super::eviction::Policy::NoEviction)
    }

    pub fn update_profile(&self, f: impl FnOnce(&mut TenantProfile)) {
        f(&mut self.profile.write());
    }

    pub fn limits(&self) -> TenantLimits {
        self.limits.get()
    }

    /// `limits().memory_bytes` alone (a connection's buffers are bounded
    /// by it on every command).
    pub fn memory_limit(&self) -> u64 {
        self.limits.memory_bytes.load(Relaxed)
    }

    /// Whether a write adding at most `bytes` and `keys` keeps the tenant
    /// below the warning level of both limits (and so below the limits):
    /// such a write needs no closer look. Most are covered by the
    /// connection's `credit`; the rest read the usage, and `may_hold` (a
    /// connection of the tenant's own, which its connection limit counts)
    /// takes a new credit then. Returns the usage it saw, for that look.
    #[inline]
    pub fn stays_below_warning(&self, bytes: u64, keys: u64, credit: &mut WriteCredit, may_hold: bool) -> Result<(), (u64, u64)> {
        if bytes <= credit.bytes
            && keys <= credit.keys
            && credit.epoch == self.limits.epoch.load(Relaxed)
            && self.held_memory() <= self.limits.held_cap.load(Relaxed)
            && !self.policy.has(Hook::Quota)
        {
            credit.bytes -= bytes;
            credit.keys -= keys;
            return Ok(());
        }
        self.stays_below_warning_now(bytes, keys, credit, may_hold)
    }

    /// [`Tenant::stays_below_warning`] on the usage read now.
    #[inline(never)]
    fn stays_below_warning_now(&self, bytes: u64, keys: u64, credit: &mut WriteCredit, may_hold: bool) -> Result<(), (u64, u64)> {
        // The epoch first (Acquire: the limits it was bumped for are seen).
        let epoch = self.limits.epoch.load(Acquire);
        *credit = WriteCredit::default();
        let (bytes_in_dbs, keys_in_dbs) = self.space.usage();
        let held_memory = self.held_memory();
        let (used, held) = (self.memory_with(bytes_in_dbs, held_memory), self.keys_of(keys_in_dbs));
        let (memory_warn, keys_warn) = (self.limits.memory_warn.load(Relaxed), self.limits.keys_warn.load(Relaxed));
        if used.saturating_add(bytes) >= memory_warn || held.saturating_add(keys) >= keys_warn {
            // From here every write is looked at: no credit covers one.
            self.limits.epoch.fetch_add(1, Relaxed);
            return Err((used, held));
        }
        // Connections past a lowered limit stay connected until they leave.
        let holders = self.limits.max_connections.load(Relaxed).max(self.metrics.connections.load(Relaxed));
        let (credit_bytes, credit_keys) = self.limits.credit(holders);
        self.limits.held_cap.store(held_memory.saturating_add(credit_bytes as i64), Relaxed);
        if may_hold
            && !self.policy.has(Hook::Quota)
            && used.saturating_add(bytes).saturating_add(credit_bytes) < memory_warn
            && held.saturating_add(keys).saturating_add(credit_keys) < keys_warn
        {
            *credit = WriteCredit { bytes: credit_bytes, keys: credit_keys, epoch };
        }
        Ok(())
    }

    /// Replaces the limits; takes effect for the next command.
    pub fn set_limits(&self, l: TenantLimits) {
        let rate_changed = self.limits.ops_per_second.load(Relaxed) != l.ops_per_second;
        self.limits.set(l);
        if rate_changed {
            *self.limiter.write() = limiter_for(l.ops_per_second);
        }
    }

    pub fn state(&self) -> TenantState {
        TenantState::from_u8(self.state.load(Relaxed))
    }

    pub fn set_state(&self, to: TenantState) -> Result<(), TenantError> {
        let from = self.state();
        if !from.can_become(to) {
            return Err(TenantError::InvalidTransition { id: self.id.clone(), from, to });
        }
        self.state.store(to as u8, Relaxed);
        Ok(())
    }

    pub fn created_at(&self) -> u64 {
        self.created_at.load(Relaxed)
    }

    /// Sets what persistence recorded: creation time and state, as they
    /// were (no transition rules apply to a restore).
    pub fn restore(&self, created_at: u64, state: TenantState) {
        self.created_at.store(created_at, Relaxed);
        self.state.store(state as u8, Relaxed);
    }

    pub fn check_password(&self, password: &[u8]) -> bool {
        self.profile.read().password.as_ref().is_some_and(|h| h.verify(password))
    }

    /// Whether an operation of this class may run now: the tenant's state,
    /// then its rate limit. Admin operations are not rate limited.
    pub fn check_operation(&self, op: OperationType) -> Result<(), TenantError> {
        self.check_operation_drawing(op, &mut 0)
    }

    /// [`Tenant::check_operation`] for a connection that keeps `credit`:
    /// operations it took from the rate limiter ahead, in batches of a
    /// millisecond's worth (at least 2,000 ops/s; one at a time below),
    /// so a busy tenant's connections do not all meet on the limiter's
    /// one atomic, and its clock, for every command. What a connection
    /// holds unspent is under a millisecond of the rate.
    pub fn check_operation_drawing(&self, op: OperationType, credit: &mut u32) -> Result<(), TenantError> {
        self.check_state(op)?;
        if op == OperationType::Admin {
            return Ok(());
        }
        if *credit > 0 {
            *credit -= 1;
            return Ok(());
        }
        self.draw_ops(credit)
    }

    /// [`Tenant::check_operation_drawing`]'s common case alone: an active
    /// tenant and an operation the connection took from the limiter
    /// already. False: the whole check decides.
    #[inline]
    pub fn take_held_operation(&self, credit: &mut u32) -> bool {
        if *credit > 0 && self.state.load(Relaxed) == TenantState::Active as u8 {
            *credit -= 1;
            return true;
        }
        false
    }

    /// Takes the next batch of operations from the rate limiter (see
    /// [`Tenant::check_operation_drawing`]), or one, or refuses.
    #[inline(never)]
    fn draw_ops(&self, credit: &mut u32) -> Result<(), TenantError> {
        let limiter = self.limiter.read();
        let batch = (self.limits.ops_per_second.load(Relaxed) / 1000).clamp(1, 1000) as u32;
        if let Some(n) = NonZeroU32::new(batch).filter(|n| n.get() > 1)
            && matches!(limiter.check_n(n), Ok(Ok(())))
        {
            *credit = batch - 1;
            return Ok(());
        }
        if let Err(not_until) = limiter.check() {
            self.metrics.refuse(Refusal::Rate);
            // The limiter's own clock: making a new one calibrates the TSC
            // (CPUID and all), which was a third of the server's CPU under a flood.
            let wait = not_until.wait_time_from(governor::clock::Clock::now(limiter.clock()));
            return Err(TenantError::RateLimited {
                id: self.id.clone(),
                limit: self.limits().ops_per_second,
                retry_ms: wait.as_millis() as u64 + 1,
            });
        }
        Ok(())
    }

    /// The state's part: what a suspended, deleting, archived or moving
    /// tenant may not do.
    #[inline]
    fn check_state(&self, op: OperationType) -> Result<(), TenantError> {
        match self.state() {
            TenantState::Active => Ok(()),
            state => self.check_other_state(state, op),
        }
    }

    #[cold]
    #[inline(never)]
    fn check_other_state(&self, state: TenantState, op: OperationType) -> Result<(), TenantError> {
        let refused = match (state, op) {
            (TenantState::Deleting, _) => Some(TenantError::Deleting(self.id.clone())),
            (TenantState::Suspended, OperationType::Read | OperationType::Write | OperationType::Other) => {
                Some(TenantError::Suspended(self.id.clone()))
            }
            (s @ (TenantState::Archived | TenantState::Migrating), OperationType::Write) => {
                Some(TenantError::ReadOnly { id: self.id.clone(), state: s })
            }
            _ => None,
        };
        match refused {
            Some(e) => {
                self.metrics.refuse(Refusal::State);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Adds bytes an embedder tracks outside Ferrite's own databases.
    pub fn record_memory(&self, bytes: i64) {
        self.external_memory.fetch_add(bytes, Relaxed);
    }

    pub fn record_keys(&self, keys: i64) {
        self.external_keys.fetch_add(keys, Relaxed);
    }

    /// Charges (or, negative, returns) bytes held by a connection.
    pub fn charge_clients(&self, bytes: i64) {
        self.client_memory.fetch_add(bytes, Relaxed);
    }

    /// Bytes the tenant's connections hold.
    pub fn client_memory(&self) -> u64 {
        self.client_memory.load(Relaxed).max(0) as u64
    }

    pub fn memory_used(&self) -> u64 {
        self.memory_of(self.space.used_bytes())
    }

    pub fn keys(&self) -> u64 {
        self.keys_of(self.space.keys())
    }

    /// The tenant's keys: its databases' `keys` and an embedder's own.
    /// What the tenant holds besides its databases: connections, scripts,
    /// tracking, slowlog, an embedder's own.
    #[inline]
    fn held_memory(&self) -> i64 {
        self.external_memory.load(Relaxed)
            + self.client_memory.load(Relaxed)
            + self.space.scripts.bytes() as i64
            + self.space.tracking.bytes() as i64
            + self.space.slowlog.bytes() as i64
    }

    fn keys_of(&self, keys: usize) -> u64 {
        (keys as i64 + self.external_keys.load(Relaxed)).max(0) as u64
    }

    /// The tenant's memory: its databases' `bytes` and what it holds
    /// besides (connections, scripts, tracking, slowlog, an embedder's
    /// own); the memory peak follows.
    fn memory_of(&self, bytes: usize) -> u64 {
        self.memory_with(bytes, self.held_memory())
    }

    /// [`Tenant::memory_of`] with what it holds besides already read.
    fn memory_with(&self, bytes: usize, held: i64) -> u64 {
        let used = (bytes as i64 + held).max(0) as u64;
        // A load first: the read-modify-write, on a line every connection
        // of the tenant shares, is needed only when the peak moves.
        if used > self.metrics.memory_peak.load(Relaxed) {
            self.metrics.memory_peak.fetch_max(used, Relaxed);
        }
        used
    }

    pub fn get_usage(&self) -> Usage {
        Usage {
            memory_used: self.memory_used(),
            keys: self.keys(),
            connections: self.metrics.connections.load(Relaxed),
            databases: self.space.existing().count() as u64,
            limits: self.limits(),
        }
    }

    /// Makes `p` the tenant's policy (the current one is kept for rollback);
    /// a billing hook starts its ledger from now.
    pub fn install_policy(&self, p: Prepared, now_ms: u64, keep: usize) {
        let bills = p.module.has(Hook::Bill);
        let _retired = self.policy.install(p, now_ms, keep);
        if bills {
            self.ledger.begin(self, now_ms);
        }
    }

    /// POLICY ROLLBACK with the previous module already instantiated.
    pub fn restore_policy(&self, p: Prepared, now_ms: u64) {
        let bills = p.module.has(Hook::Bill);
        let _retired = self.policy.restore(p, now_ms);
        if bills {
            self.ledger.begin(self, now_ms);
        }
    }

    /// POLICY NONE: native eviction, quotas and prices from now on.
    pub fn remove_policy(&self, keep: usize) {
        let _retired = self.policy.remove(keep);
        self.ledger.clear();
    }

    /// Counts a connection in, refusing it over the cap.
    pub fn connect(&self) -> Result<(), TenantError> {
        let limit = self.limits().max_connections;
        let now = self.metrics.connections.fetch_add(1, Relaxed) + 1;
        if now > limit {
            self.metrics.connections.fetch_sub(1, Relaxed);
            self.metrics.refuse(Refusal::Connections);
            return Err(TenantError::Connections { id: self.id.clone(), limit });
        }
        self.metrics.connections_peak.fetch_max(now, Relaxed);
        self.metrics.connections_total.fetch_add(1, Relaxed);
        Ok(())
    }

    pub fn disconnect(&self) {
        self.metrics.connections.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(limits: TenantLimits) -> Arc<Tenant> {
        let m = crate::tenancy::manager::TenantManager::new(Default::default());
        let t = m.create_tenant("t", None, None).unwrap();
        t.set_limits(limits);
        t
    }

    const MB: u64 = 1 << 20;

    fn limits(memory_bytes: u64, max_keys: u64, max_connections: u64) -> TenantLimits {
        TenantLimits { memory_bytes, max_keys, max_connections, ..TenantLimits::default() }
    }

    #[test]
    fn a_credit_covers_writes_until_the_limits_change_or_the_tenant_holds_more() {
        let t = tenant(limits(100 * MB, 1_000_000, 10));
        let mut credit = WriteCredit::default();
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        assert_eq!((credit.bytes, credit.keys), (CREDIT_BYTES, CREDIT_KEYS));
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        assert_eq!((credit.bytes, credit.keys), (CREDIT_BYTES - 100, CREDIT_KEYS - 1));
        // A little more held besides the databases: still covered.
        t.record_memory(1000);
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        assert_eq!(credit.bytes, CREDIT_BYTES - 200);
        // Held past the warning level: the next write is looked at.
        t.record_memory(90 * MB as i64);
        assert!(t.stays_below_warning(100, 1, &mut credit, true).is_err());
        t.record_memory(-90 * MB as i64);
        // A write the credit does not cover is looked at (and takes a new one).
        assert_eq!(t.stays_below_warning(CREDIT_BYTES, 1, &mut credit, true), Ok(()));
        assert_eq!(credit.bytes, CREDIT_BYTES);
        // New limits (the same ones, even) void it: a new credit, whole.
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        t.set_limits(limits(100 * MB, 1_000_000, 10));
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        assert_eq!(credit.bytes, CREDIT_BYTES);
    }

    #[test]
    fn a_look_that_finds_the_warning_level_voids_every_credit() {
        let t = tenant(limits(100 * MB, 1_000_000, 10));
        let (mut a, mut b) = (WriteCredit::default(), WriteCredit::default());
        assert_eq!(t.stays_below_warning(100, 1, &mut a, true), Ok(()));
        assert_eq!(t.stays_below_warning(100, 1, &mut a, true), Ok(()));
        assert_eq!(a.bytes, CREDIT_BYTES - 100);
        // Another connection's write would reach the warning level.
        assert!(t.stays_below_warning(80 * MB, 1, &mut b, true).is_err());
        // a's next write is looked at (a new credit, whole), not covered.
        assert_eq!(t.stays_below_warning(100, 1, &mut a, true), Ok(()));
        assert_eq!(a.bytes, CREDIT_BYTES);
    }

    #[test]
    fn every_connection_spending_its_whole_credit_stays_within_the_limits() {
        for (memory, keys, connections) in [(100 * MB, 1_000_000, 10), (1 << 20, 1000, 3), (64 << 30, u64::MAX, 1), (10_000, 10, 100)] {
            let t = tenant(limits(memory, keys, connections));
            let (credit_bytes, credit_keys) = t.limits.credit(connections);
            // Half the memory margin for credits; the other half for what
            // is held besides the databases (the cap is one credit more).
            assert!(connections * credit_bytes + credit_bytes <= memory - warn_level(memory), "{memory} {connections}");
            assert!(connections * credit_keys <= keys - warn_level(keys), "{keys} {connections}");
        }
        // More connections than a lowered limit allows: each credit shrinks.
        let t = tenant(limits(100 * MB, 1_000_000, 2));
        for _ in 0..5 {
            t.metrics.connections.fetch_add(1, Relaxed);
        }
        let mut credit = WriteCredit::default();
        t.stays_below_warning(1, 1, &mut credit, true).unwrap();
        assert!(5 * credit.bytes <= 10 * MB && 5 * credit.keys <= 200_000);
    }

    #[test]
    fn no_credit_for_a_visiting_admin_or_near_the_warning_level() {
        let t = tenant(limits(100 * MB, 1_000_000, 10));
        let mut credit = WriteCredit::default();
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, false), Ok(()));
        assert_eq!(credit.bytes, 0);
        t.record_memory((80 * MB - CREDIT_BYTES / 2) as i64);
        assert_eq!(t.stays_below_warning(100, 1, &mut credit, true), Ok(()));
        assert_eq!(credit.bytes, 0);
        // Too small a limit to share: every write (a key at least) is looked at.
        let t = tenant(limits(1000, 10, 100));
        assert_eq!(t.stays_below_warning(10, 1, &mut credit, true), Ok(()));
        assert_eq!((credit.bytes, credit.keys), (1, 0));
    }

    #[test]
    fn the_warning_level_is_the_least_usage_a_policy_judges() {
        // A policy judges a write once usage * 100 >= limit * WARN_PERCENT.
        let judged = |used: u64, limit: u64| used * 100 >= limit * WARN_PERCENT;
        for limit in [0, 1, 99, 100, 101, 1 << 20, 123_457] {
            let w = warn_level(limit);
            assert!(judged(w, limit), "limit {limit}");
            assert!(w == 0 || !judged(w - 1, limit), "limit {limit}");
        }
        assert_eq!(warn_level(u64::MAX), (u64::MAX as u128 * 80).div_ceil(100) as u64);
    }
}
