//! Tiers and the limits they grant.

use std::fmt;

use serde::Deserialize;

/// What a tenant may use. Every field is a hard cap enforced on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    pub memory_bytes: u64,
    pub max_keys: u64,
    pub ops_per_second: u64,
    pub max_connections: u64,
    pub max_databases: u64,
}

impl Default for TenantLimits {
    /// The product page's `[tenancy.default_limits]`.
    fn default() -> Self {
        TenantLimits { memory_bytes: 256 << 20, max_keys: 100_000, ops_per_second: 1000, max_connections: 50, max_databases: 16 }
    }
}

/// A tenant's tier: the four built-in ones, or one defined in
/// `[tenancy.tiers.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantTier {
    Free,
    Basic,
    Pro,
    Enterprise,
    Custom(String),
}

impl TenantTier {
    pub fn name(&self) -> &str {
        match self {
            TenantTier::Free => "free",
            TenantTier::Basic => "basic",
            TenantTier::Pro => "pro",
            TenantTier::Enterprise => "enterprise",
            TenantTier::Custom(n) => n,
        }
    }

    /// Parses a tier name, case-insensitively; unknown names become custom
    /// tiers, which the manager accepts only if configured.
    pub fn parse(s: &str) -> TenantTier {
        match s.to_ascii_lowercase().as_str() {
            "free" => TenantTier::Free,
            "basic" => TenantTier::Basic,
            "pro" => TenantTier::Pro,
            "enterprise" => TenantTier::Enterprise,
            other => TenantTier::Custom(other.to_string()),
        }
    }

    /// The built-in tiers' limits, as the product page's table gives them.
    pub fn builtin_limits(&self) -> Option<TenantLimits> {
        const MB: u64 = 1 << 20;
        const GB: u64 = 1 << 30;
        let (memory_bytes, max_keys, ops_per_second, max_connections) = match self {
            TenantTier::Free => (64 * MB, 10_000, 100, 10),
            TenantTier::Basic => (512 * MB, 100_000, 1_000, 50),
            TenantTier::Pro => (4 * GB, 10_000_000, 50_000, 500),
            TenantTier::Enterprise => (64 * GB, 1_000_000_000, 1_000_000, 10_000),
            TenantTier::Custom(_) => return None,
        };
        Some(TenantLimits { memory_bytes, max_keys, ops_per_second, max_connections, max_databases: 16 })
    }
}

impl fmt::Display for TenantTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
