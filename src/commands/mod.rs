//! Commands: one registration table, and the families that implement it.
//!
//! [`table::COMMANDS`] lists every command once with its arity, flags and key
//! positions. Dispatch ([`dispatch::execute`]), `COMMAND`, `INFO
//! commandstats`, transactions, blocking wake-ups and tenant admission
//! all read it, so there is one source of truth for what a command is.
//!
//! A handler is a plain function of a [`Ctx`] (the server state, the calling
//! client's state and its output buffer) and the argument slices. It writes
//! its reply to `ctx.out` and returns `Err` instead when the command fails;
//! it never touches a socket, so handlers are tested without one.

mod admission;
pub mod args;
pub mod dispatch;
pub mod error;
pub mod table;

mod bitmaps;
mod cluster;
mod cluster_admin;
pub mod command;
mod connection;
pub use connection::{REDIS_VERSION, is_admin_password};
mod dump;
mod functions;
mod geo;
mod hashes;
mod hyperloglog;
mod introspection;
mod keys;
pub mod keyspec;
mod lists;
mod memory;
mod migrate;
mod migrate_directory;
pub mod notify;
mod pubsub;
#[rustfmt::skip]
mod redis_meta;
pub mod scripting;
mod server;
pub use server::rss_bytes;
mod sets;
mod sort;
mod stream_groups;
mod streams;
mod strings;
mod summaries;
mod tenant;
mod tenant_info;
mod tracking;
mod transactions;
mod zsets;

pub use dispatch::execute;
pub use error::{CmdError, CmdResult};
pub use migrate::cut_over;
pub use table::{COMMANDS, lookup};

use crate::protocol::Out;
use crate::server::client::ClientState;
use crate::server::state::ServerState;
use crate::space::Space;
use crate::store::Keyspace;

/// A handler: the context and the full argument vector (name included).
pub type Handler = fn(&mut Ctx, &[&[u8]]) -> CmdResult;

/// Command flags, as `COMMAND INFO` reports them.
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    pub const NO_MULTI: u32 = 1 << 11;
    pub const MOVABLEKEYS: u32 = 1 << 12;
    /// Runs right away even inside MULTI (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET).
    pub const TX_CONTROL: u32 = 1 << 13;
    /// Allowed while a RESP2 client is subscribed.
    pub const SUB_CONTEXT: u32 = 1 << 14;
    /// Needs the whole server to itself (multi-key atomicity, flushes).
    pub const EXCLUSIVE: u32 = 1 << 15;
    /// A tenant-management command (refused when tenancy is disabled).
    pub const TENANCY: u32 = 1 << 16;
    /// Not DENYOOM in Redis, but can add memory (RENAME to a longer name,
    /// SMOVE into another set): admitted against quotas like DENYOOM.
    pub const GROWS: u32 = 1 << 17;
    /// Can run long on big inputs (KEYS, LCS, set algebra): the connection
    /// runs it on the blocking pool, so other tenants keep their workers.
    pub const SLOW: u32 = 1 << 18;
    /// Never takes its space's lock (SCRIPT: it must reach a running
    /// script, which holds the lock, to kill it).
    pub const UNLOCKED: u32 = 1 << 19;
    /// Redis's may-replicate (PUBLISH, PFCOUNT, EVAL): not a write, but
    /// refused in read-only scripts as writes are.
    pub const MAY_REPLICATE: u32 = 1 << 20;
    /// The command's channels are what Redis declares as its keys, with
    /// the `not_key` key-spec flag (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH: a
    /// cluster routes them by the channel's slot). COMMAND reports them at
    /// Redis's positions (`CommandSpec::reported_keys`), while the entry's
    /// own positions stay 0: dispatch must never rewrite a `__tenant:`
    /// prefix in a channel name (the subscription would land in another
    /// space than the one its client unsubscribes from), lock on it, or
    /// count it against key quotas. Not a Redis command flag.
    pub const NOT_KEY: u32 = 1 << 21;
    /// Stores more than its arguments (padding, copies of other keys): its
    /// growth is worked out by name (`admission::growth`). Set by the table
    /// from `admission::WRITES_BEYOND_ARGS`, never by hand.
    pub const BEYOND_ARGS: u32 = 1 << 22;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (MAY_REPLICATE, "may_replicate"),
    ];
}

/// How a tenant's command is admitted (see `admission`). Every table entry
/// has one; a command's subcommands share its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantClass {
    /// Reads or writes keys: state, rate limit, and for writes the quotas.
    Data,
    /// PUBLISH, SUBSCRIBE, PUBSUB: state and rate limit.
    PubSub,
    /// PING, ECHO, SELECT, CLIENT: state and rate limit.
    Connection,
    /// AUTH, HELLO, QUIT, RESET: what a client needs to log in or leave;
    /// failed AUTHs are throttled instead.
    Session,
    /// INFO, COMMAND, TIME...: state and rate limit.
    Server,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH: state and rate limit.
    Transaction,
    /// A tenant reading its own record (TENANT.INFO...): state and rate limit.
    Tenancy,
    /// Refused to tenants; an admin inside a tenant is not rate limited.
    Admin,
}

/// One entry of the command table.
pub struct CommandSpec {
    /// Lowercase name.
    pub name: &'static str,
    pub class: TenantClass,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    pub flags: u32,
    /// Legacy key positions: first, last (negative from the end), step; 0 for keyless.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub handler: Handler,
}

impl CommandSpec {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        if a >= 0 { argc == a as usize } else { argc >= (-a) as usize }
    }

    /// Indexes of the key arguments in a call with `argc` arguments.
    pub fn key_indexes(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 { argc as i64 + self.last_key as i64 } else { self.last_key as i64 };
        let step = self.step.max(1) as usize;
        let end = if first == 0 { 0 } else { (last.max(0) as usize).min(argc.saturating_sub(1)) + 1 };
        (first..end.max(first)).step_by(step)
    }

    /// Key positions as `COMMAND` reports them: the table's, or for a
    /// `NOT_KEY` command Redis's (argument 1 is the channel; a variadic
    /// command's channels are all its arguments).
    pub fn reported_keys(&self) -> (i32, i32, i32) {
        if self.has(flags::NOT_KEY) { (1, if self.arity < 0 { -1 } else { 1 }, 1) } else { (self.first_key, self.last_key, self.step) }
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        flags::NAMES.iter().filter(|(f, _)| self.flags & f != 0).map(|(_, n)| *n).collect()
    }
}

/// What a command runs against: the server, the calling client, its output.
pub struct Ctx<'a> {
    pub state: &'a ServerState,
    pub client: &'a mut ClientState,
    pub out: &'a mut Out,
    /// The command's notion of now (Unix ms), fixed for its whole run.
    pub now_ms: u64,
    /// True inside EXEC: blocking commands must not block.
    pub in_exec: bool,
    /// False under CLIENT NO-TOUCH: reads leave LRU/LFU stamps alone.
    pub touch: bool,
    /// The client's namespace (its tenant's, or the global one), resolved by
    /// the connection, which keeps the tenant alive while the command runs.
    pub space: &'a Space,
}

impl<'a> Ctx<'a> {
    /// The client's selected database. The reference outlives the borrow of
    /// `self`, so a handler can hold it while writing to `self.out`.
    pub fn db(&self) -> &'a Keyspace {
        self.space().db(self.client.db)
    }

    /// The namespace the client works in.
    pub fn space(&self) -> &'a Space {
        self.space
    }

    /// The tenant whose space the command runs in (None: the global space),
    /// which may differ from the client's own for an admin's `__tenant:`
    /// command.
    pub fn space_tenant(&self) -> Option<std::sync::Arc<crate::tenancy::Tenant>> {
        self.space.owner().and_then(|id| self.state.tenants.get_tenant(id).ok())
    }

    /// Writes a *STORE result to `dest` (keyspace event `event` of `class`),
    /// or deletes `dest` (`del`) when there is none (Redis's rule for SORT,
    /// GEO*STORE and BITOP), wakes clients blocked on it when it is a
    /// collection (a string readies no blocking pop, as in Redis), and
    /// leaves the command unlogged when it changed nothing.
    pub fn store_or_delete(&mut self, dest: &[u8], value: Option<crate::store::Value>, class: u32, event: &str) {
        let (now, db) = (self.now_ms, self.client.db);
        let ready = value.as_ref().is_some_and(|v| !matches!(v, crate::store::Value::Str(..)));
        let stored = value.is_some();
        let changed = self.db().write(dest, now, |slot| match value {
            Some(v) => {
                slot.set(v);
                true
            }
            None => slot.remove().is_some(),
        });
        match (stored, changed) {
            (true, _) => self.notify(class, event, dest),
            (false, true) => self.notify(notify::GENERIC, "del", dest),
            _ => {}
        }
        if ready {
            self.space().blocking.signal(db, dest);
        }
        self.client.unchanged = !changed;
    }

    /// Replies with a write's count of members or keys affected; zero means
    /// the command changed nothing, and (as Redis propagates only what made
    /// the dataset dirty) it is not logged.
    /// This client as a receiver of messages (pub/sub, MONITOR, CLIENT
    /// TRACKING): its queue, and how to disconnect it if it lags.
    pub fn subscriber(&self) -> crate::space::pubsub::Subscriber {
        let info = self.client.info.clone();
        crate::space::pubsub::Subscriber {
            id: self.client.id(),
            tx: self.client.msg_tx.clone(),
            kill: std::sync::Arc::new(move || info.request_kill()),
        }
    }

    pub fn reply_changed(&mut self, n: usize) {
        self.client.unchanged = n == 0;
        self.out.int(n as i64);
    }

    /// Admits `bytes` more that this connection will hold for its tenant (a
    /// MULTI queue entry, subscription names, watched keys) and charges them
    /// at once, so the next such command sees them; refused with OOM when
    /// they would take the tenant past its memory limit.
    pub fn hold(&mut self, bytes: u64) -> Result<(), CmdError> {
        let Some(t) = self.client.tenant.clone() else { return Ok(()) };
        let limit = t.limits().memory_bytes;
        if t.memory_used() + bytes > limit {
            t.metrics.refuse(crate::tenancy::tenant::Refusal::Memory);
            let e = crate::tenancy::TenantError::Oom { id: t.id().into(), used: t.memory_used(), limit };
            return Err(CmdError::msg(e.to_string()));
        }
        let held = self.client.charged() + bytes;
        self.client.charge(held);
        Ok(())
    }

    /// Ends a reply of random members (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER):
    /// `done` is None for a missing key (a null without a count, else an
    /// empty array), false when the reply stopped at the output limit.
    pub fn end_random_reply(&mut self, done: Option<bool>, single: bool, mark: usize) {
        match done {
            None if single => self.out.null(),
            None => self.out.array(0),
            Some(true) => {}
            Some(false) => self.output_overflow(mark),
        }
    }

    /// The reply begun at `mark` passed the connection's output limit: it is
    /// dropped and the connection closed, as Redis closes a client over its
    /// `client-output-buffer-limit`.
    pub fn output_overflow(&mut self, mark: usize) {
        self.out.buf.truncate(mark);
        self.client.close_after_reply = true;
        self.state.stats.client_output_limit_disconnections.incr();
        tracing::warn!(client = self.client.id(), limit = self.out.limit, "client closed for overcoming of output buffer limits");
    }
}

/// How many databases the client may SELECT: the space's, capped by its
/// tenant's DATABASES limit.
pub fn databases_allowed(ctx: &Ctx) -> usize {
    let n = ctx.space().databases();
    ctx.client.tenant.as_ref().map_or(n, |t| n.min(t.limits().max_databases as usize))
}

/// Drops a departing client's subscriptions and watches.
pub fn cleanup_client(ctx: &mut Ctx) {
    pubsub::unsubscribe_all(ctx);
    transactions::unwatch_all(ctx);
    tracking::disable(ctx);
    introspection::stop_monitoring(ctx);
}
