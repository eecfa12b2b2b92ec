//! The contract between Ferrite and a WASM policy module, in one place so the
//! host and the guest SDK cannot disagree about it.
//!
//! A module talks to the host through a handful of exports and two imports
//! (names below). Every hook takes one input buffer and returns one output
//! buffer, both in this crate's little-endian encoding: `u8`/`u32`/`u64`/`i64`
//! /`f64` fixed-width, byte strings as a `u32` length then the bytes, lists as
//! a `u32` count then the items. The host checks [`ABI_VERSION`] at upload;
//! a module built against another version is refused, not guessed at.
//!
//! Calling convention of a hook export `fn(ptr: i32, len: i32) -> i64`: the
//! host has copied the input to `ptr`, memory it got from [`EXPORT_ALLOC`].
//! A buffer `ferrite_alloc(n)` returned stays the guest's input buffer,
//! valid for up to `n` bytes, until the next `ferrite_alloc` call: the host
//! reuses it call after call and asks again only for a larger input. The result is `(out_ptr << 32) | out_len`
//! pointing into the guest's memory; the guest keeps that buffer alive until
//! its next hook call. A negative result means the guest failed.
//!
//! `no_std` + `alloc`, so the guest SDK can use it on `wasm32-unknown-unknown`.

#![no_std]
extern crate alloc;

mod codec;
mod types;

pub use codec::{DecodeError, Reader, Writer};
pub use types::*;

/// Bumped on any incompatible change to the names, signatures or encodings.
pub const ABI_VERSION: u32 = 1;

/// Module name of the host functions a guest may import.
pub const IMPORT_MODULE: &str = "ferrite";
/// `log(level: i32, ptr: i32, len: i32)`: a UTF-8 message; levels below.
pub const IMPORT_LOG: &str = "log";
/// `now_ms() -> i64`: the host's wall clock, milliseconds since the epoch.
pub const IMPORT_NOW: &str = "now_ms";

/// `memory`: the guest's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// `ferrite_abi_version() -> i32`.
pub const EXPORT_VERSION: &str = "ferrite_abi_version";
/// `ferrite_alloc(len: i32) -> i32`: room for an input buffer (0 on failure).
pub const EXPORT_ALLOC: &str = "ferrite_alloc";
/// `ferrite_init(ptr: i32, len: i32) -> i32`: the CONFIG blob, once per
/// load; 0 accepts it, anything else refuses the upload. Optional.
pub const EXPORT_INIT: &str = "ferrite_init";
/// Hook: [`EvictInput`] in, [`EvictOutput`] out.
pub const EXPORT_EVICT: &str = "ferrite_evict";
/// Hook: [`QuotaInput`] in, [`QuotaDecision`] out.
pub const EXPORT_QUOTA: &str = "ferrite_quota";
/// Hook: [`BillingInput`] in, a list of [`LineItem`] out.
pub const EXPORT_BILL: &str = "ferrite_bill";

/// Log levels of [`IMPORT_LOG`].
pub const LOG_ERROR: i32 = 1;
pub const LOG_WARN: i32 = 2;
pub const LOG_INFO: i32 = 3;
pub const LOG_DEBUG: i32 = 4;

/// Packs a guest buffer into a hook's return value.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((ptr as u64) << 32 | len as u64) as i64
}

/// Splits a hook's return value; `None` for the failure values.
pub fn unpack(v: i64) -> Option<(u32, u32)> {
    (v >= 0).then_some(((v as u64 >> 32) as u32, v as u32))
}
