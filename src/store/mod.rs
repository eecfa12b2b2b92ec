//! Storage: keyspaces, values, expiry, byte accounting and sampling.
//!
//! A [`Keyspace`] is one numbered database: a lock-striped hash table of
//! [`Entry`]s that keeps an exact running total of the bytes it holds. It knows
//! nothing of sockets, clients or tenants; callers pass the current time in,
//! which is also how tests control it.

pub mod clock;
pub mod dump;
pub mod encode;
pub mod geo;
pub mod glob;
pub mod hll;
pub mod keyspace;
pub mod listpack;
pub mod parts;
pub mod sorted;
pub mod stream;
pub mod value;
pub mod zset;

pub use keyspace::{Entry, Keyspace, Slot};
pub use value::{Elem, HashValue, ListValue, SetValue, Value, ValueType};
pub use zset::ZSetValue;
