//! Write Ferrite policies in Rust.
//!
//! A policy is a type that implements [`Policy`] (built from the tenant's
//! CONFIG blob) and any of [`EvictionPolicy`], [`QuotaPolicy`] and
//! [`BillingPolicy`]; [`export_policy!`] turns it into a module Ferrite can
//! load. Hooks you do not list are not exported, and Ferrite keeps its native
//! behaviour for them. Every trait method has a default that means "native".
//!
//! The logic is plain Rust over plain types, so it is unit-tested natively
//! with `cargo test`; only the exports and the host imports are wasm-only.
//!
//! ```
//! use ferrite_guest_sdk::*;
//!
//! /// Evicts the biggest candidate, but never a key starting with `keep:`.
//! struct Biggest;
//!
//! impl Policy for Biggest {
//!     fn init(_config: &[u8]) -> Result<Self, String> {
//!         Ok(Biggest)
//!     }
//! }
//!
//! impl EvictionPolicy for Biggest {
//!     fn choose(&mut self, input: &EvictInput) -> Vec<u32> {
//!         let best = input
//!             .candidates
//!             .iter()
//!             .enumerate()
//!             .filter(|(_, c)| !c.key.starts_with(b"keep:"))
//!             .max_by_key(|(_, c)| c.size);
//!         best.map(|(i, _)| vec![i as u32]).unwrap_or_default()
//!     }
//! }
//!
//! export_policy!(Biggest: EvictionPolicy);
//!
//! // Natively, the same code runs under `cargo test`:
//! let c = |key: &'static [u8], size| Candidate { key: key.into(), db: 0, key_type: KeyType::String, size, idle_ms: 0, lfu: 0, ttl_ms: None };
//! let input = EvictInput {
//!     tenant: "acme".into(),
//!     usage: Usage::default(),
//!     limits: Limits::default(),
//!     to_free: 1,
//!     candidates: vec![c(b"keep:a", 900), c(b"b", 10), c(b"c", 50)],
//! };
//! assert_eq!(Biggest::init(b"").unwrap().choose(&input), vec![2]);
//! ```
//!
//! Build a policy crate (`crate-type = ["cdylib", "rlib"]`,
//! `#![cfg_attr(target_arch = "wasm32", no_std)]`) with
//! `cargo build --release --target wasm32-unknown-unknown -p <crate>` and
//! upload `target/wasm32-unknown-unknown/release/<crate>.wasm` with
//! `redis-cli -x TENANT.UPDATE <tenant> POLICY < <crate>.wasm`.

#![no_std]
extern crate alloc;
// Natively (policy unit tests) the host imports are replaced with std-backed stand-ins.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

pub mod config;
#[doc(hidden)]
pub mod ffi;
#[doc(hidden)]
pub mod heap;

pub use alloc::string::{String, ToString};
pub use alloc::vec::Vec;
pub use alloc::{format, vec};
pub use ferrite_policy_abi::{
    ABI_VERSION, BillingInput, Candidate, CommandClass, EvictInput, KeyType, Limits, LineItem, QuotaDecision, QuotaInput, Resource, Usage,
    UsageDelta,
};

/// A policy instance, made once per load from the tenant's CONFIG blob
/// (empty when none was given). An `Err` refuses the upload with its message.
pub trait Policy: Sized {
    fn init(config: &[u8]) -> Result<Self, String>;
}

/// Picks eviction victims among keys the host sampled.
pub trait EvictionPolicy {
    /// Indexes into `input.candidates`, evicted in that order until the
    /// tenant is under its limit. An empty answer means none of these may
    /// go: the host samples again, and refuses the write if it runs out of
    /// time. The default evicts the longest idle candidate (LRU).
    fn choose(&mut self, input: &EvictInput) -> Vec<u32> {
        let oldest = input.candidates.iter().enumerate().max_by_key(|(_, c)| c.idle_ms);
        oldest.map(|(i, _)| vec![i as u32]).unwrap_or_default()
    }
}

/// Judges commands near or over a tenant's limits.
pub trait QuotaPolicy {
    /// Called for a command that would cross a limit (`input.resource` says
    /// which) or while usage is above the warning threshold. The default
    /// keeps the host's decision.
    fn decide(&mut self, input: &QuotaInput) -> QuotaDecision {
        let _ = input;
        QuotaDecision::Native
    }
}

/// Prices a tenant's usage, once per billing interval.
pub trait BillingPolicy {
    /// Line items for the usage in `input.delta`; the host adds them to the
    /// tenant's ledger. The default bills nothing.
    fn bill(&mut self, input: &BillingInput) -> Vec<LineItem> {
        let _ = input;
        Vec::new()
    }
}

/// Log levels for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Writes a line to the host's log, tagged with the tenant. The host caps
/// the length and the rate; natively this does nothing.
pub fn log(level: Level, message: &str) {
    ffi::host_log(level as i32, message);
}

/// The host's clock in milliseconds since the Unix epoch (natively: the
/// value of [`set_mock_now`], for tests).
pub fn now_ms() -> u64 {
    ffi::host_now()
}

/// Sets what [`now_ms`] returns in native tests.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_mock_now(ms: u64) {
    ffi::MOCK_NOW.with(|n| n.set(ms));
}

/// Exports a policy type and the hooks it implements:
/// `export_policy!(MyPolicy: EvictionPolicy, QuotaPolicy, BillingPolicy);`
/// (any non-empty subset). Expands to nothing except on wasm32.
#[macro_export]
macro_rules! export_policy {
    ($ty:ty : $($hook:ident),+ $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            static STATE: $crate::ffi::State<$ty> = $crate::ffi::State::new();

            #[unsafe(no_mangle)]
            pub extern "C" fn ferrite_abi_version() -> i32 {
                $crate::ABI_VERSION as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn ferrite_alloc(len: i32) -> i32 {
                $crate::ffi::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn ferrite_init(ptr: i32, len: i32) -> i32 {
                $crate::ffi::init::<$ty>(&STATE, ptr, len)
            }

            $($crate::__export_hook!($hook, $ty, STATE);)+
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_hook {
    (EvictionPolicy, $ty:ty, $state:ident) => {
        $crate::__hook_fn!(ferrite_evict, $ty, $state, |p: &mut $ty, input: $crate::EvictInput<'_>| $crate::ffi::EvictOutput {
            victims: <$ty as $crate::EvictionPolicy>::choose(p, &input),
        });
    };
    (QuotaPolicy, $ty:ty, $state:ident) => {
        $crate::__hook_fn!(ferrite_quota, $ty, $state, |p: &mut $ty, input: $crate::QuotaInput| {
            <$ty as $crate::QuotaPolicy>::decide(p, &input)
        });
    };
    (BillingPolicy, $ty:ty, $state:ident) => {
        $crate::__hook_fn!(ferrite_bill, $ty, $state, |p: &mut $ty, input: $crate::BillingInput| {
            <$ty as $crate::BillingPolicy>::bill(p, &input)
        });
    };
    ($other:ident, $ty:ty, $state:ident) => {
        compile_error!(concat!("unknown hook `", stringify!($other), "`: use EvictionPolicy, QuotaPolicy or BillingPolicy"));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __hook_fn {
    ($name:ident, $ty:ty, $state:ident, $decide:expr) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(ptr: i32, len: i32) -> i64 {
            $crate::ffi::hook(&$state, ptr, len, |p: &mut $ty, bytes, out| $crate::ffi::decide(p, bytes, out, $decide))
        }
    };
}
