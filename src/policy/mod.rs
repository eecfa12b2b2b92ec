//! WebAssembly policy modules: per-tenant eviction, quota and billing logic
//! that operators upload, run by wasmtime in a sandbox.
//!
//! The layer is called and calls nothing: tenancy hands it bytes in the
//! shared ABI's encoding ([`ferrite_policy_abi`]) and gets bytes (or a
//! fallback) back. It knows no keyspaces, commands or sockets.
//!
//! - [`engine`]: the process's one `Engine` and `Linker` (host functions
//!   `log` and `now_ms`), and the epoch ticker that backs every deadline.
//! - [`module`]: validation and compilation of an upload into an
//!   `InstancePre` (size cap, imports, exports, signatures).
//! - [`instance`]: one `Store` + instance per tenant policy, created at upload;
//!   a call runs under fuel, `StoreLimits` and an epoch deadline, and a trap
//!   becomes a typed [`CallError`].
//! - [`slot`]: a tenant's policy: atomic swap, rollback, statistics, and the
//!   failure budget that disables a misbehaving module.

pub mod config;
pub mod engine;
pub mod instance;
pub mod module;
pub mod slot;

pub use config::PolicyConfig;
pub use instance::CallError;
pub use module::{Hook, PolicyModule};
pub use slot::{PolicyInfo, PolicySlot};

/// Why an upload was refused. The text is what the client sees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("policy module is {size} bytes, over the limit of {max} ([policy] max_module_bytes)")]
    TooLarge { size: usize, max: u64 },
    #[error("policy module is not a WebAssembly core module (it must start with \\0asm version 1)")]
    NotWasm,
    #[error("policy module is invalid: {0}")]
    Invalid(String),
    #[error("policy module imports {0}, which Ferrite does not provide (only ferrite.log and ferrite.now_ms)")]
    ForbiddenImport(String),
    #[error("policy module's {what} '{name}' has the wrong type: expected {expected}")]
    WrongType { what: &'static str, name: String, expected: &'static str },
    #[error("policy module lacks the required export '{0}'")]
    MissingExport(&'static str),
    #[error("policy module exports no hook (ferrite_evict, ferrite_quota or ferrite_bill)")]
    NoHooks,
    #[error("policy module speaks ABI version {found}; this server speaks version {expected}")]
    AbiVersion { found: i32, expected: u32 },
    #[error("policy module refused its CONFIG{0}")]
    InitRefused(String),
    #[error("policy module failed to start: {0}")]
    Start(String),
    #[error("no previous policy to roll back to")]
    NoPrevious,
}
