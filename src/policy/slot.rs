//! A tenant's policy: which module is active, the versions kept for
//! rollback, per-load statistics, and the failure budget.
//!
//! Swapping is an `Arc` replacement under a short write lock: a decision in
//! flight holds its own `Arc` and finishes on the module it started with.
//! The hooks of the active, enabled module are mirrored in one atomic byte,
//! so a tenant without a policy pays one relaxed load per decision point.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};

use super::instance::{CallError, PolicyInstance};
use super::module::{Hook, PolicyModule};
use super::{PolicyConfig, PolicyError};

/// A module instantiated for a tenant, ready to be installed.
pub struct Prepared {
    pub module: Arc<PolicyModule>,
    pub instance: PolicyInstance,
}

impl Prepared {
    /// Compiles (if needed) and instantiates; slow, so off the event loop.
    pub fn new(module: Arc<PolicyModule>, tenant: &str, cfg: &PolicyConfig) -> Result<Prepared, PolicyError> {
        let instance = PolicyInstance::new(&module, tenant.into(), cfg)?;
        Ok(Prepared { module, instance })
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    fuel: AtomicU64,
    traps: AtomicU64,
    out_of_fuel: AtomicU64,
    timeouts: AtomicU64,
    bad_returns: AtomicU64,
    consecutive: AtomicU32,
}

struct Active {
    module: Arc<PolicyModule>,
    /// `None` after a trap poisoned it; made again on the next call.
    instance: Mutex<Option<PolicyInstance>>,
    loaded_at_ms: u64,
    counters: Counters,
    disabled: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl Active {
    fn counters(&self) -> PolicyCounters {
        let (c, g) = (&self.counters, |x: &AtomicU64| x.load(Relaxed));
        PolicyCounters {
            disabled: self.disabled.lock().is_some(),
            calls: g(&c.calls),
            fuel_used: g(&c.fuel),
            traps: g(&c.traps),
            out_of_fuel: g(&c.out_of_fuel),
            timeouts: g(&c.timeouts),
            bad_returns: g(&c.bad_returns),
        }
    }

    fn new(p: Prepared, now_ms: u64) -> Active {
        Active {
            module: p.module,
            instance: Mutex::new(Some(p.instance)),
            loaded_at_ms: now_ms,
            counters: Counters::default(),
            disabled: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }
}

/// What a swap replaced. Dropping a module or an instance unmaps its code
/// and memory (milliseconds for a large one), so inside a runtime that
/// happens on the blocking pool rather than on the connection's thread.
pub struct Retired {
    active: Option<Arc<Active>>,
    modules: Vec<Arc<PolicyModule>>,
}

impl Drop for Retired {
    fn drop(&mut self) {
        let (active, modules) = (self.active.take(), std::mem::take(&mut self.modules));
        if (active.is_some() || !modules.is_empty())
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn_blocking(move || drop((active, modules)));
        }
    }
}

/// The active module's counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyCounters {
    pub disabled: bool,
    pub calls: u64,
    pub fuel_used: u64,
    pub traps: u64,
    pub out_of_fuel: u64,
    pub timeouts: u64,
    pub bad_returns: u64,
}

impl PolicyCounters {
    /// Calls whose native decision stood instead (TENANT.POLICY's `fallbacks`).
    pub fn fallbacks(&self) -> u64 {
        self.traps + self.out_of_fuel + self.timeouts + self.bad_returns
    }
}

/// What TENANT.POLICY shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyInfo {
    /// `none`, `active` or `disabled`.
    pub state: &'static str,
    pub hash: String,
    pub size: u64,
    pub hooks: String,
    pub config_bytes: u64,
    pub loaded_at_ms: u64,
    pub counters: PolicyCounters,
    pub logs_dropped: u64,
    pub versions_kept: u64,
    pub disabled_reason: String,
    pub last_error: String,
}

pub struct PolicySlot {
    tenant: Arc<str>,
    active: RwLock<Option<Arc<Active>>>,
    history: Mutex<Vec<Arc<PolicyModule>>>,
    hooks: AtomicU8,
}

impl PolicySlot {
    pub fn new(tenant: &str) -> PolicySlot {
        PolicySlot { tenant: tenant.into(), active: RwLock::new(None), history: Mutex::new(Vec::new()), hooks: AtomicU8::new(0) }
    }

    /// Whether an enabled module implements `hook`: the hot-path check.
    #[inline]
    pub fn has(&self, hook: Hook) -> bool {
        self.hooks.load(Relaxed) & hook.bit() != 0
    }

    /// Makes `p` the active module; the one it replaces is kept for rollback.
    pub fn install(&self, p: Prepared, now_ms: u64, keep: usize) -> Retired {
        let hooks = p.module.hooks;
        let old = self.active.write().replace(Arc::new(Active::new(p, now_ms)));
        self.hooks.store(hooks, Relaxed);
        self.retire(old, keep)
    }

    /// Keeps the replaced module for rollback, up to `keep` versions.
    fn retire(&self, old: Option<Arc<Active>>, keep: usize) -> Retired {
        let mut modules = Vec::new();
        if let Some(old) = &old {
            let mut h = self.history.lock();
            h.push(old.module.clone());
            let excess = h.len().saturating_sub(keep.max(1));
            modules.extend(h.drain(..excess));
        }
        Retired { active: old, modules }
    }

    /// POLICY NONE: native behaviour from the next decision on.
    pub fn remove(&self, keep: usize) -> Retired {
        self.hooks.store(0, Relaxed);
        let old = self.active.write().take();
        self.retire(old, keep)
    }

    /// The most recently replaced module, to be made active again.
    pub fn previous(&self) -> Result<Arc<PolicyModule>, PolicyError> {
        self.history.lock().last().cloned().ok_or(PolicyError::NoPrevious)
    }

    /// POLICY ROLLBACK, once `previous()` has been instantiated: the
    /// current module is dropped rather than kept, so rollbacks walk back.
    pub fn restore(&self, p: Prepared, now_ms: u64) -> Retired {
        {
            let mut h = self.history.lock();
            if h.last().is_some_and(|m| Arc::ptr_eq(m, &p.module)) {
                h.pop();
            }
        }
        let hooks = p.module.hooks;
        let old = self.active.write().replace(Arc::new(Active::new(p, now_ms)));
        self.hooks.store(hooks, Relaxed);
        Retired { active: old, modules: Vec::new() }
    }

    /// The active module, for persistence and info.
    pub fn module(&self) -> Option<Arc<PolicyModule>> {
        self.active.read().as_ref().map(|a| a.module.clone())
    }

    /// Runs `hook` on the question `encode` writes and decodes its answer
    /// with `decode`; `None` means "decide natively" (no such hook, disabled, or the call failed, which is counted).
    pub fn call<T>(
        &self,
        hook: Hook,
        encode: impl FnOnce(&mut ferrite_policy_abi::Writer),
        cfg: &PolicyConfig,
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        if !self.has(hook) {
            return None;
        }
        let active = self.active.read().clone()?;
        let c = &active.counters;
        c.calls.fetch_add(1, Relaxed);
        let result = {
            let mut slot = active.instance.lock();
            let outcome = match slot.as_mut() {
                Some(inst) => inst.call(hook, encode, cfg, decode),
                None => match PolicyInstance::new(&active.module, self.tenant.clone(), cfg) {
                    Ok(inst) => slot.insert(inst).call(hook, encode, cfg, decode),
                    Err(e) => Err(CallError::Trap(format!("could not restart: {e}"))),
                },
            };
            if let Err(e) = &outcome
                && e.poisons_instance()
            {
                *slot = None;
            }
            outcome
        };
        let decoded = result.map(|(value, fuel)| {
            c.fuel.fetch_add(fuel, Relaxed);
            value
        });
        match decoded {
            Ok(v) => {
                c.consecutive.store(0, Relaxed);
                Some(v)
            }
            Err(e) => {
                self.failed(&active, hook, e, cfg);
                None
            }
        }
    }

    fn failed(&self, active: &Active, hook: Hook, e: CallError, cfg: &PolicyConfig) {
        let c = &active.counters;
        match e {
            CallError::OutOfFuel(_) => &c.out_of_fuel,
            CallError::Timeout(_) => &c.timeouts,
            CallError::Trap(_) => &c.traps,
            CallError::BadReturn(_) => &c.bad_returns,
        }
        .fetch_add(1, Relaxed);
        let msg = format!("{} hook {e}", hook.name());
        tracing::warn!(tenant = %self.tenant, "policy {msg}; the native decision stands");
        let n = c.consecutive.fetch_add(1, Relaxed) + 1;
        if n >= cfg.max_failures {
            let reason = format!("disabled after {n} consecutive failures; last: {msg}");
            tracing::error!(tenant = %self.tenant, "policy {reason}");
            self.hooks.store(0, Relaxed);
            *active.disabled.lock() = Some(reason);
        }
        *active.last_error.lock() = Some(msg);
    }

    /// The active module's counters (None without one): relaxed loads under
    /// the slot's read lock, never the instance's, which a call holds.
    pub fn counters(&self) -> Option<PolicyCounters> {
        self.active.read().as_deref().map(Active::counters)
    }

    pub fn info(&self) -> PolicyInfo {
        let versions_kept = self.history.lock().len() as u64;
        let Some(a) = self.active.read().clone() else {
            return PolicyInfo { state: "none", versions_kept, ..PolicyInfo::default() };
        };
        let disabled = a.disabled.lock().clone();
        PolicyInfo {
            state: if disabled.is_some() { "disabled" } else { "active" },
            hash: a.module.hash.clone(),
            size: a.module.bytes.len() as u64,
            hooks: a.module.hook_names(),
            config_bytes: a.module.config.len() as u64,
            loaded_at_ms: a.loaded_at_ms,
            counters: a.counters(),
            logs_dropped: a.instance.lock().as_ref().map_or(0, |i| i.logs_dropped()),
            versions_kept,
            disabled_reason: disabled.unwrap_or_default(),
            last_error: a.last_error.lock().clone().unwrap_or_default(),
        }
    }
}
