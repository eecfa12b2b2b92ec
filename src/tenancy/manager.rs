//! The tenant registry and the `[tenancy]` configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use crate::space::Space;

use parking_lot::RwLock;
use serde::Deserialize;

use super::alerts::{AlertEvent, Thresholds};
use super::billing::BillingConfig;
use super::tenant::{PasswordHash, Tenant, TenantProfile};
use super::tier::{TenantLimits, TenantTier};
use super::{TenantError, valid_id};

/// `[tenancy]`, as on the product page, plus custom tiers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    pub enabled: bool,
    pub max_tenants: usize,
    pub isolation_enabled: bool,
    pub metrics_enabled: bool,
    pub billing_enabled: bool,
    pub default_limits: TenantLimits,
    /// `[tenancy.tiers.<name>]`: custom tiers with their limits.
    pub tiers: BTreeMap<String, TenantLimits>,
    /// `[tenancy.billing]`: prices for TENANT.BILLING.
    pub billing: BillingConfig,
    /// `[[tenancy.tenants]]`: tenants that exist from start-up.
    pub tenants: Vec<TenantDef>,
    /// Quota alert thresholds (percent of each limit) of tenants without
    /// their own (`TENANT.UPDATE <id> ALERTS ...`); empty: no alerts.
    pub alerts: Vec<u64>,
    /// Databases each tenant may address at most (the server's `databases`).
    #[serde(skip)]
    pub databases: usize,
}

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            enabled: true,
            max_tenants: 10_000,
            isolation_enabled: true,
            metrics_enabled: true,
            billing_enabled: true,
            default_limits: TenantLimits::default(),
            tiers: BTreeMap::new(),
            billing: BillingConfig::default(),
            tenants: Vec::new(),
            alerts: Thresholds::default_set().iter().collect(),
            databases: 16,
        }
    }
}

impl TenantConfig {
    /// Refuses settings that cannot work; names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !self.isolation_enabled {
            return Err("tenancy.isolation_enabled: isolation cannot be turned off (every tenant has its own keyspaces)".into());
        }
        for (name, _) in self.tiers.iter() {
            if TenantTier::parse(name).builtin_limits().is_some() {
                return Err(format!("tenancy.tiers.{name}: a built-in tier cannot be redefined"));
            }
        }
        let b = &self.billing;
        if b.period_days == 0
            || [b.price_per_million_ops, b.price_per_gb_hour, b.price_per_gb_bandwidth].iter().any(|p| !p.is_finite() || *p < 0.0)
        {
            return Err("tenancy.billing: period_days must be at least 1 and prices non-negative".into());
        }
        let check = |what: &str, l: &TenantLimits| {
            if l.max_databases == 0 || l.max_databases > 1024 {
                return Err(format!("{what}.max_databases must be between 1 and 1024"));
            }
            if l.ops_per_second == 0 {
                return Err(format!("{what}.ops_per_second must be at least 1"));
            }
            Ok(())
        };
        check("tenancy.default_limits", &self.default_limits)?;
        Thresholds::from_percents(&self.alerts).map_err(|e| format!("tenancy.alerts: {e}"))?;
        // Each configured tenant must be creatable: try them on a scratch registry.
        let scratch = TenantManager::new(TenantConfig { tenants: Vec::new(), databases: 16, ..self.clone() });
        for (i, def) in self.tenants.iter().enumerate() {
            if let Some(e) = &def.eviction
                && super::eviction::Policy::parse(e).is_none()
            {
                return Err(format!("tenancy.tenants[{i}].eviction: unknown policy '{e}'"));
            }
            scratch.create_from_def(def).map_err(|e| format!("tenancy.tenants[{i}] ({}): {e}", def.id))?;
        }
        for (name, l) in &self.tiers {
            check(&format!("tenancy.tiers.{name}"), l)?;
        }
        Ok(())
    }
}

/// A tenant defined in the configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantDef {
    pub id: String,
    pub name: Option<String>,
    pub tier: Option<String>,
    pub password: Option<String>,
    pub eviction: Option<String>,
    /// Overrides of the tier's limits.
    pub limits: Option<LimitOverrides>,
    /// A WASM policy module to load at start-up (a file path).
    pub policy: Option<std::path::PathBuf>,
    /// The CONFIG blob handed to that module.
    pub policy_config: Option<String>,
}

/// Optional per-limit overrides (`[tenancy.tenants.limits]`).
#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub memory_bytes: Option<u64>,
    pub max_keys: Option<u64>,
    pub ops_per_second: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_databases: Option<u64>,
}

impl LimitOverrides {
    pub fn apply(&self, mut l: TenantLimits) -> TenantLimits {
        l.memory_bytes = self.memory_bytes.unwrap_or(l.memory_bytes);
        l.max_keys = self.max_keys.unwrap_or(l.max_keys);
        l.ops_per_second = self.ops_per_second.unwrap_or(l.ops_per_second);
        l.max_connections = self.max_connections.unwrap_or(l.max_connections);
        l.max_databases = self.max_databases.unwrap_or(l.max_databases);
        l
    }
}

pub struct TenantManager {
    config: TenantConfig,
    /// The server-wide byte total every tenant's databases add to.
    total: Option<Arc<AtomicI64>>,
    /// The server's keyspace-event defaults every tenant's space follows
    /// until it has its own.
    events: Arc<crate::space::notify::Defaults>,
    /// `alerts`, checked.
    alerts: Thresholds,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TenantManager {
    pub fn new(config: TenantConfig) -> TenantManager {
        Self::with_total(config, None, Arc::default())
    }

    /// A registry whose tenants add their bytes to the server's total and
    /// follow its keyspace-event defaults. Tenants defined in the
    /// configuration are created here; a definition that `validate`
    /// accepted cannot fail.
    pub fn with_total(config: TenantConfig, total: Option<Arc<AtomicI64>>, events: Arc<crate::space::notify::Defaults>) -> TenantManager {
        // `validate` refused a bad list; a registry built without it gets the default.
        let alerts = Thresholds::from_percents(&config.alerts).unwrap_or_else(|_| Thresholds::default_set());
        let m = TenantManager { config, total, events, alerts, tenants: RwLock::new(HashMap::new()) };
        for def in m.config.tenants.clone() {
            if let Err(e) = m.create_from_def(&def) {
                tracing::error!(tenant = %def.id, "configured tenant not created: {e}");
            }
        }
        m
    }

    /// Creates a tenant from its `[[tenancy.tenants]]` definition.
    pub fn create_from_def(&self, def: &TenantDef) -> Result<Arc<Tenant>, TenantError> {
        let tier = def.tier.as_deref().map(TenantTier::parse);
        let base = match &tier {
            Some(t) => self.tier_limits(t)?,
            None => self.config.default_limits,
        };
        let limits = def.limits.unwrap_or_default().apply(base);
        let eviction = def.eviction.as_deref().unwrap_or("noeviction");
        self.create_with(
            &def.id,
            def.name.as_deref(),
            tier.unwrap_or(TenantTier::Free),
            limits,
            def.password.as_deref().map(str::as_bytes),
            eviction,
        )
    }

    pub fn config(&self) -> &TenantConfig {
        &self.config
    }

    /// The limits a tier grants (custom tiers from the configuration).
    pub fn tier_limits(&self, tier: &TenantTier) -> Result<TenantLimits, TenantError> {
        match tier {
            TenantTier::Custom(name) => self.config.tiers.get(name).copied().ok_or_else(|| TenantError::UnknownTier(name.clone())),
            builtin => Ok(builtin.builtin_limits().expect("built-in tiers have limits")),
        }
    }

    /// Creates a tenant with its tier's limits (the default limits without a tier).
    pub fn create_tenant(&self, id: &str, name: Option<&str>, tier: Option<TenantTier>) -> Result<Arc<Tenant>, TenantError> {
        let limits = match &tier {
            Some(t) => self.tier_limits(t)?,
            None => self.config.default_limits,
        };
        self.create_with(id, name, tier.unwrap_or(TenantTier::Free), limits, None, "noeviction")
    }

    /// Creates a tenant with explicit limits, password and eviction policy.
    pub fn create_with(
        &self,
        id: &str,
        name: Option<&str>,
        tier: TenantTier,
        limits: TenantLimits,
        password: Option<&[u8]>,
        eviction: &str,
    ) -> Result<Arc<Tenant>, TenantError> {
        if !valid_id(id) {
            return Err(TenantError::InvalidId(id.to_string()));
        }
        let mut map = self.tenants.write();
        if map.contains_key(id) {
            return Err(TenantError::Exists(id.to_string()));
        }
        if map.len() >= self.config.max_tenants {
            return Err(TenantError::TooMany(self.config.max_tenants));
        }
        let profile = TenantProfile {
            name: name.unwrap_or(id).to_string(),
            tier,
            eviction: eviction.to_string(),
            password: password.map(PasswordHash::new),
        };
        // The space spans the server's databases; SELECT enforces the tenant's
        // own (changeable) database limit.
        let space = Space::with_total(self.config.databases, self.total.clone(), self.events.clone()).owned_by(id);
        let tenant = Arc::new(Tenant::new(id.to_string(), profile, limits, space, now_secs()));
        map.insert(id.to_string(), tenant.clone());
        Ok(tenant)
    }

    pub fn get_tenant(&self, id: &str) -> Result<Arc<Tenant>, TenantError> {
        self.tenants.read().get(id).cloned().ok_or_else(|| TenantError::NotFound(id.to_string()))
    }

    /// Removes a tenant from the registry; its data goes when the last
    /// reference (connections are disconnected by the caller) is dropped.
    pub fn delete_tenant(&self, id: &str) -> Result<Arc<Tenant>, TenantError> {
        let t = self.tenants.write().remove(id).ok_or_else(|| TenantError::NotFound(id.to_string()))?;
        let _ = t.set_state(super::TenantState::Deleting);
        Ok(t)
    }

    /// All tenants, sorted by id.
    pub fn list(&self) -> Vec<Arc<Tenant>> {
        let mut v: Vec<_> = self.tenants.read().values().cloned().collect();
        v.sort_by(|a, b| a.id().cmp(b.id()));
        v
    }

    pub fn len(&self) -> usize {
        self.tenants.read().len()
    }

    /// The once-a-second metering tick: memory held, period roll-over.
    pub fn tick(&self, now_ms: u64) {
        for t in self.tenants.read().values() {
            t.meter.tick(t, &self.config.billing, now_ms);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The thresholds of tenants that have none of their own.
    pub fn default_alerts(&self) -> Thresholds {
        self.alerts
    }

    /// Every tenant's quota crossings since the last sweep (see `alerts`).
    pub fn sweep_alerts(&self, now_ms: u64) -> Vec<AlertEvent> {
        self.tenants.read().values().flat_map(|t| t.sweep_alerts(self.alerts, now_ms)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::{OperationType, TenantState};

    #[test]
    fn ids_are_checked_and_unique() {
        let m = TenantManager::new(TenantConfig::default());
        for bad in ["", "a:b", "a*", "with space", "x".repeat(65).as_str(), "ü"] {
            assert!(matches!(m.create_tenant(bad, None, None), Err(TenantError::InvalidId(_))), "{bad:?}");
        }
        m.create_tenant("ok_id-1", None, None).unwrap();
        assert_eq!(m.create_tenant("ok_id-1", None, None).err(), Some(TenantError::Exists("ok_id-1".into())));
    }

    #[test]
    fn max_tenants_is_enforced() {
        let m = TenantManager::new(TenantConfig { max_tenants: 2, ..TenantConfig::default() });
        m.create_tenant("a", None, None).unwrap();
        m.create_tenant("b", None, None).unwrap();
        assert_eq!(m.create_tenant("c", None, None).err(), Some(TenantError::TooMany(2)));
    }

    #[test]
    fn tiers_set_limits_and_custom_tiers_come_from_config() {
        let mut cfg = TenantConfig::default();
        cfg.tiers.insert(
            "gold".into(),
            TenantLimits { memory_bytes: 1 << 30, max_keys: 5, ops_per_second: 7, max_connections: 3, max_databases: 2 },
        );
        let m = TenantManager::new(cfg);
        let t = m.create_tenant("a", None, Some(TenantTier::Free)).unwrap();
        assert_eq!(t.limits().memory_bytes, 64 << 20);
        assert_eq!(t.limits().ops_per_second, 100);
        let g = m.create_tenant("g", None, Some(TenantTier::parse("gold"))).unwrap();
        assert_eq!(g.limits().max_keys, 5);
        assert!(matches!(m.create_tenant("x", None, Some(TenantTier::parse("platinum"))), Err(TenantError::UnknownTier(_))));
    }

    #[test]
    fn states_gate_operations() {
        let m = TenantManager::new(TenantConfig::default());
        let t = m.create_tenant("s", None, None).unwrap();
        t.set_state(TenantState::Suspended).unwrap();
        assert!(matches!(t.check_operation(OperationType::Read), Err(TenantError::Suspended(_))));
        assert!(matches!(t.check_operation(OperationType::Other), Err(TenantError::Suspended(_))));
        assert!(t.check_operation(OperationType::Admin).is_ok());
        t.set_state(TenantState::Active).unwrap();
        t.set_state(TenantState::Archived).unwrap();
        assert!(t.check_operation(OperationType::Read).is_ok());
        assert!(matches!(t.check_operation(OperationType::Write), Err(TenantError::ReadOnly { .. })));
        assert!(matches!(t.set_state(TenantState::Migrating), Err(TenantError::InvalidTransition { .. })));
    }

    #[test]
    fn rate_limit_refuses_past_the_burst() {
        let m = TenantManager::new(TenantConfig::default());
        let t = m.create_tenant("r", None, None).unwrap();
        let mut l = t.limits();
        l.ops_per_second = 5;
        t.set_limits(l);
        let ok = (0..20).filter(|_| t.check_operation(OperationType::Read).is_ok()).count();
        assert!((5..=6).contains(&ok), "{ok} allowed");
        assert!(matches!(t.check_operation(OperationType::Read), Err(TenantError::RateLimited { limit: 5, .. })));
    }

    #[test]
    fn a_connection_drawing_batches_gets_no_more_than_the_burst() {
        let m = TenantManager::new(TenantConfig::default());
        let t = m.create_tenant("b", None, None).unwrap();
        let mut l = t.limits();
        l.ops_per_second = 50_000; // batches of 50
        t.set_limits(l);
        let (mut a, mut b) = (0, 0);
        let start = std::time::Instant::now();
        let ok = (0..60_000)
            .filter(|i| t.check_operation_drawing(OperationType::Read, if i % 2 == 0 { &mut a } else { &mut b }).is_ok())
            .count();
        // The burst (a second's worth) and what refilled while this ran;
        // the two connections hold at most a batch each unspent.
        let refilled = (start.elapsed().as_secs_f64() * 50_000.0) as usize;
        assert!(ok >= 50_000 - 100 && ok <= 50_000 + refilled + 100, "{ok} allowed, {refilled} refilled");
        assert!(a < 50 && b < 50);
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        let m = TenantManager::new(TenantConfig::default());
        let t = m.create_with("p", None, TenantTier::Free, TenantLimits::default(), Some(b"secret"), "noeviction").unwrap();
        assert!(t.check_password(b"secret"));
        assert!(!t.check_password(b"Secret"));
    }
}
