//! Ferrite: a Redis-compatible, multi-tenant key-value server.
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. Layers, bottom up:
//! [`protocol`] (frames), [`store`] (keyspaces and values), [`commands`] (the
//! command table and its families), [`server`] (connections and their context).
//!
//! Running a server in-process (as the integration tests do):
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let mut config = ferrite::config::Config::default();
//! config.server.port = 0; // any free port
//! config.persistence.appendonly = false; // no data directory
//! let server = ferrite::server::start_background(config).unwrap();
//! let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
//! conn.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
//! let mut reply = [0u8; 7];
//! conn.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply, b"+PONG\r\n");
//! ```

pub mod cluster;
pub mod commands;
pub mod config;
pub mod exporter;
pub mod metrics;
pub mod persist;
pub mod policy;
pub mod protocol;
pub mod script;
pub mod server;
pub mod space;
pub mod store;
pub mod tenancy;
pub mod tuning;
pub mod wake;
pub mod worker;
