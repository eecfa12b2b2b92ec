//! The wire protocol: RESP2/RESP3 requests in, replies out.
//!
//! This layer knows bytes and frames, never commands: [`parse`] finds the
//! arguments of the next request inside the connection's read buffer without
//! copying them, [`reply`] appends encoded replies to the connection's write
//! buffer, and [`frame`] decodes replies back into a tree (used by tests, the
//! differential harness and anything that acts as a client).

pub mod frame;
pub mod parse;
pub mod reply;

pub use frame::Frame;
pub use parse::{Argv, Limits, ProtocolError, parse_request};
pub use reply::Out;
