//! Ferrite: a Redis-compatible, multi-tenant key-value server.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. Layers, bottom up:
//! [`protocol`] (frames), [`store`] (keyspaces and values), [`commands`] (the
//! command table and its families), [`server`] (connections and their context).

pub mod commands;
pub mod config;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod store;
