//! Multi-tenancy: the registry of tenants, their tiers, limits, states and
//! metering.
//!
//! Each [`Tenant`] owns a [`crate::space::Space`] (its databases, channels
//! and blocked clients), so isolation holds by construction rather than by
//! key prefixes. The [`TenantManager`] is the registry; the command layer
//! binds connections to tenants and asks [`Tenant::check_operation`] before
//! running their commands.
//!
//! ```
//! use ferrite::tenancy::{OperationType, TenantConfig, TenantManager, TenantTier};
//!
//! let manager = TenantManager::new(TenantConfig::default());
//!
//! // Create tenant
//! let tenant = manager.create_tenant("acme-corp", Some("Acme Corporation"), Some(TenantTier::Pro)).unwrap();
//! assert_eq!(tenant.profile().tier, TenantTier::Pro);
//!
//! // Get tenant context for operations
//! let ctx = manager.get_tenant("acme-corp").unwrap();
//!
//! // Check operation is allowed
//! ctx.check_operation(OperationType::Write).unwrap();
//!
//! // Record resource usage
//! ctx.record_memory(1024);
//! ctx.record_keys(1);
//!
//! // Get usage stats
//! let usage = ctx.get_usage();
//! println!("Memory: {:.2}%", usage.memory_percent());
//! assert_eq!(usage.memory_used, 1024);
//! assert_eq!(usage.keys, 1);
//! ```

pub mod alerts;
pub mod billing;
pub mod eviction;
pub mod hooks;
pub mod image;
pub mod lifecycle;
pub mod manager;
pub mod settings;
pub mod tenant;
pub mod tier;

use thiserror::Error;

pub use lifecycle::TenantState;
pub use manager::{TenantConfig, TenantManager};
pub use tenant::{Tenant, Usage};
pub use tier::{TenantLimits, TenantTier};

/// The class of a command, for state checks, rate limits and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationType {
    Read,
    Write,
    /// Anything else a tenant sends (PING, PUBLISH, INFO, CLIENT, MULTI...):
    /// refused while suspended, rate limited like data.
    Other,
    Admin,
}

/// Why a tenant operation was refused. Each message names the tenant and the
/// numbers, and starts with a word clients understand (`OOM`, `NOPERM`,
/// `READONLY`, `ERR`).
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TenantError {
    #[error("ERR invalid tenant id '{0}': use 1-64 characters of A-Z a-z 0-9 _ -")]
    InvalidId(String),
    #[error("ERR tenant '{0}' already exists")]
    Exists(String),
    #[error("ERR no such tenant '{0}'")]
    NotFound(String),
    #[error("ERR tenant limit reached: max_tenants is {0}")]
    TooMany(usize),
    #[error("ERR unknown tier '{0}'")]
    UnknownTier(String),
    #[error("ERR tenant '{id}' cannot go from {from} to {to}")]
    InvalidTransition { id: String, from: TenantState, to: TenantState },
    #[error("ERR tenant '{0}' is suspended: data commands are refused until an operator runs TENANT.ACTIVATE")]
    Suspended(String),
    #[error("ERR tenant '{0}' is being deleted")]
    Deleting(String),
    #[error("READONLY tenant '{id}' is {state}: writes are refused")]
    ReadOnly { id: String, state: TenantState },
    #[error("ERR tenant '{id}' is over its rate limit of {limit} ops/sec; retry in {retry_ms} ms")]
    RateLimited { id: String, limit: u64, retry_ms: u64 },
    #[error("OOM tenant '{id}' is over its memory limit: {used} of {limit} bytes used")]
    Oom { id: String, used: u64, limit: u64 },
    #[error("ERR tenant '{id}' is at its key limit: {keys} of {limit} keys")]
    KeyLimit { id: String, keys: u64, limit: u64 },
    #[error("ERR tenant '{id}' is at its connection limit of {limit}")]
    Connections { id: String, limit: u64 },
    /// A quota policy's own refusal, sent as the policy wrote it.
    #[error("{0}")]
    PolicyDenied(String),
}

/// Tenant ids are 1-64 characters of `[A-Za-z0-9_-]`: no `:` or glob
/// characters, so an id can never reach into another tenant's names.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
