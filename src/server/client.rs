//! Clients: each connection's private state, and the registry of shared
//! client descriptions that `CLIENT LIST/KILL/INFO` read.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Instant;

use parking_lot::Mutex;

use crate::space::Space;
use crate::tenancy::Tenant;
use tokio::sync::Notify;

use crate::space::pubsub::{MessageReceiver, MessageSender, new_channel};

/// What other clients may see of a connection (CLIENT LIST) or do to it (KILL).
#[derive(Debug)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    pub last_active_ms: AtomicU64,
    /// Index into the command table of the last command run.
    pub last_cmd: AtomicUsize,
    pub subs: AtomicUsize,
    pub psubs: AtomicUsize,
    /// Shard channels (SSUBSCRIBE), CLIENT LIST's `ssub`.
    pub ssubs: AtomicUsize,
    /// -1 outside MULTI, else the number of queued commands, stored +1.
    pub multi: AtomicUsize,
    /// The tenant whose context the connection is in, for CLIENT LIST/KILL.
    pub tenant: Mutex<Option<String>>,
    /// True once AUTH bound the connection to that tenant (its user); an
    /// admin visiting with TENANT.USE is not one of the tenant's clients.
    pub bound: AtomicBool,
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    pub killed: AtomicBool,
    /// Wakes the connection's main loop (see [`ClientInfo::stop_signal`]).
    pub kill_waker: atomic_waker::AtomicWaker,
    /// Wakes the waits inside a command (blocking, offloaded, paused, writing).
    pub kill: Notify,
    /// Whether it waits in a blocking command, and how CLIENT UNBLOCK asked
    /// it to stop (see [`Unblock`]).
    pub unblock: std::sync::atomic::AtomicU8,
    /// Wakes it from that wait.
    pub unblocked: Notify,
    /// Its message queue, for clients that name it as their CLIENT
    /// TRACKING REDIRECT target.
    pub queue: std::sync::OnceLock<MessageSender>,
    /// CLIENT TRACKING as CLIENT LIST shows it: [`tracking`] flags, and
    /// the redirect target's id (0: none).
    pub tracking: std::sync::atomic::AtomicU8,
    pub redirect: AtomicU64,
}

/// CLIENT TRACKING's flags in [`ClientInfo::tracking`].
pub mod tracking {
    pub const ON: u8 = 1;
    pub const BCAST: u8 = 2;
}

/// A client's place in a blocking command, as CLIENT UNBLOCK sees it.
pub mod unblock {
    pub const NOT_BLOCKED: u8 = 0;
    pub const BLOCKED: u8 = 1;
    /// Unblocked: reply as if the timeout had passed.
    pub const AS_TIMEOUT: u8 = 2;
    /// Unblocked: reply with Redis's UNBLOCKED error.
    pub const AS_ERROR: u8 = 3;
}

/// CLIENT REPLY: whether the client's replies are sent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// CLIENT REPLY SKIP ran: the next command's reply is dropped.
    SkipNext,
    /// This command's reply is dropped.
    Skip,
}

impl ClientInfo {
    pub fn request_kill(&self) {
        self.killed.store(true, SeqCst);
        self.kill_waker.wake();
        self.kill.notify_one();
    }

    /// Resolves once the client is killed or `also` holds, where `also`
    /// is a flag whose setter then wakes this client (a tenant's move:
    /// [`ClientRegistry::wake_tenant`]). The connection's loop makes it
    /// anew on every pass, so it costs a load and a waker registration,
    /// where a `Notify` wait takes a lock to join the waiters and again to
    /// leave them.
    pub fn stop_signal<'a>(&'a self, also: impl Fn() -> bool + 'a) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| crate::wake::poll_until(&self.kill_waker, cx, || self.killed.load(SeqCst) || also()))
    }

    /// The user it authenticated as: its tenant, or Redis's `default`.
    pub fn user(&self) -> String {
        let tenant = self.tenant.lock().clone().filter(|_| self.bound.load(Relaxed));
        tenant.unwrap_or_else(|| "default".into())
    }

    /// The client as a receiver of messages (a redirect target), while
    /// it is connected.
    pub fn subscriber(self: &Arc<Self>) -> Option<crate::space::pubsub::Subscriber> {
        let tx = self.queue.get()?.clone();
        let info = self.clone();
        Some(crate::space::pubsub::Subscriber { id: self.id, tx, kill: Arc::new(move || info.request_kill()) })
    }

    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }
}

/// All connected clients by id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, Arc<ClientInfo>>>,
}

impl ClientRegistry {
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::default(),
            lib_name: Mutex::default(),
            lib_ver: Mutex::default(),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            last_active_ms: AtomicU64::new(0),
            last_cmd: AtomicUsize::new(usize::MAX),
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            ssubs: AtomicUsize::new(0),
            multi: AtomicUsize::new(0),
            tenant: Mutex::new(None),
            bound: AtomicBool::new(false),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill_waker: atomic_waker::AtomicWaker::new(),
            kill: Notify::new(),
            unblock: std::sync::atomic::AtomicU8::new(unblock::NOT_BLOCKED),
            unblocked: Notify::new(),
            queue: std::sync::OnceLock::new(),
            tracking: std::sync::atomic::AtomicU8::new(0),
            redirect: AtomicU64::new(0),
        });
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot, sorted by id.
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        let mut v: Vec<_> = self.clients.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// Wakes the main loop of every client in tenant `id`'s context, so
    /// that it sees the tenant moved (see [`ClientInfo::stop_signal`]).
    pub fn wake_tenant(&self, id: &str) {
        for c in self.clients.lock().values() {
            if c.tenant.lock().as_deref() == Some(id) {
                c.kill_waker.wake();
            }
        }
    }

    pub fn kill_all(&self) {
        for c in self.clients.lock().values() {
            c.request_kill();
        }
    }
}

/// A command queued by MULTI.
pub type QueuedCommand = Vec<Vec<u8>>;

/// A WATCHed key, with the space it lives in: a tenant's (`Some`, kept
/// alive) or the global one. An admin watching `__tenant:x:k` watches in
/// tenant x's space, and must unwatch there.
#[derive(Clone)]
pub struct Watched {
    pub tenant: Option<Arc<Tenant>>,
    /// The keyspace's physical index in its space (see `Space::physical`).
    pub db: usize,
    pub key: Vec<u8>,
}

/// Why a command asked its connection to wait.
#[derive(Clone)]
pub struct BlockSpec {
    /// The space the keys are in (an admin's `BLPOP __tenant:x:q` waits in
    /// tenant x's): a tenant's, or the global one.
    pub tenant: Option<Arc<Tenant>>,
    pub keys: Vec<Vec<u8>>,
    /// Absolute deadline in Unix ms, or None to wait forever.
    pub deadline_ms: Option<u64>,
    /// What to run when woken, if not the command itself (XREAD's `$`
    /// means the last ID when the command arrived, not when it retries).
    pub retry: Option<Vec<Vec<u8>>>,
}

/// One connection's own state. Owned by its task; commands see it through `Ctx`.
pub struct ClientState {
    pub info: Arc<ClientInfo>,
    pub db: usize,
    pub authenticated: bool,
    pub multi: Option<Vec<QueuedCommand>>,
    pub multi_error: bool,
    pub watch_dirty: Arc<AtomicBool>,
    pub watched: Vec<Watched>,
    pub channels: HashSet<Vec<u8>>,
    pub patterns: HashSet<Vec<u8>>,
    /// Shard channels (SSUBSCRIBE), in the client's space.
    pub shard_channels: HashSet<Vec<u8>>,
    pub msg_tx: MessageSender,
    /// Set by a blocking command that found nothing to pop.
    pub block: Option<BlockSpec>,
    /// CLIENT REPLY's setting.
    pub reply: ReplyMode,
    /// Set by QUIT: close once the reply is written.
    pub close_after_reply: bool,
    /// The tenant context, if any (AUTH as a tenant, or an admin's TENANT.USE).
    pub tenant: Option<Arc<Tenant>>,
    /// Set when the tenant's rate limit refused a command: how long the
    /// connection should stop reading.
    pub throttled_ms: Option<u64>,
    /// Operations taken ahead from the tenant's rate limiter (see
    /// `Tenant::check_operation_drawing`).
    pub ops_credit: u32,
    /// What its writes may add before the tenant's usage is read again.
    pub write_credit: crate::tenancy::tenant::WriteCredit,
    /// True when AUTH bound the connection to its tenant for its lifetime;
    /// such a connection is not an admin.
    pub bound: bool,
    /// Set by a command whose work runs off the event loop (a policy
    /// upload): the connection awaits it, then writes its reply.
    pub deferred: Option<Deferred>,
    /// Replaying the log at start-up: no quotas, no eviction, no logging.
    pub loading: bool,
    /// The last log record this client's commands wrote; under
    /// `appendfsync always` replies wait until it is durable.
    pub persist_seq: u64,
    /// Inside EXEC: the write commands logged so far, logged together at the end.
    pub tx_records: Vec<crate::persist::Record>,
    /// Set by a command whose effect is random (SPOP): what to log instead of it.
    pub propagate: Option<Vec<Vec<u8>>>,
    /// Set by a write that changed nothing (SADD of members already there):
    /// it is not logged. See `Ctx::reply_changed`.
    pub unchanged: bool,
    /// True while this client's Lua script runs (its commands come from it).
    pub in_script: bool,
    /// The running script declared `allow-oom`: its writes skip the
    /// server's `maxmemory` check (a tenant's own limit still holds).
    pub script_allow_oom: bool,
    /// Bytes of the commands queued by MULTI.
    pub multi_bytes: usize,
    /// Set by a command that must wait before it can run (an AUTH past its
    /// failure budget): the connection drops its reply, pauses this long,
    /// then runs the same request again.
    pub retry_after_ms: Option<u64>,
    /// True while a blocked command runs again after a wake-up: Redis
    /// serves a woken client without read lookups of its own, so no key
    /// misses are announced then.
    pub woken: bool,
    /// Whether a long (SLOW) command may ask to run on the blocking pool,
    /// and whether one did: see [`Offload`].
    pub offload: Offload,
    /// CLIENT TRACKING is on (its state is in the space's `tracking`).
    pub tracking: bool,
    /// Its options, while on.
    pub tracking_mode: crate::space::tracking::Mode,
    /// CLIENT MAINT_NOTIFICATIONS ON: a RESP3 client told (a `MOVING`
    /// push) where its tenant went, so it may reconnect there itself.
    pub maint_notifications: bool,
    /// Set by dispatch when the client's tenant has moved (see
    /// `TENANT.MIGRATE`): the request was not run; the connection forwards
    /// it, and everything after it, to the tenant's new node.
    pub forward: bool,
    /// Set by AUTH (or HELLO AUTH) naming a tenant another node owns: the
    /// request was not run here; the connection asks the owner (see
    /// `connection::route`).
    pub route: Option<Route>,
    /// How many nodes this connection's client passed through before this
    /// one (TENANT.HOPS, sent by the node that routed it here).
    pub hops: u8,
    /// MONITOR ran: the client is in its space's (or, for the admin, the
    /// global) list of monitors.
    pub monitor: bool,
    /// CLIENT CACHING YES/NO was given for the next command (or MULTI).
    pub caching: bool,
    /// A script of this client ran a read: its declared keys are tracked.
    pub script_read: bool,
    /// Bytes this connection holds that its tenant is charged for (see
    /// [`ClientState::charge`]); returned when it leaves the tenant or closes.
    charged: u64,
}

/// A long command's way off the event loop: the connection sets `Allowed`
/// before running a request; dispatch, meeting a SLOW command, sets `Wanted`
/// and runs nothing; the connection then runs that request again on the
/// blocking pool (where it is `Off`), its space marked busy meanwhile.
/// `Wait` is the same for an operator's command that must wait for a busy
/// tenant's lock: its own (global) space is not marked busy, or every
/// connection not yet authenticated would wait with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offload {
    Off,
    Allowed,
    Wanted,
    Wait,
}

/// Where an AUTH goes when its tenant lives on another node.
#[derive(Debug, Clone)]
pub struct Route {
    pub tenant: String,
    /// The node's id (or, for a tenant moved without a directory, its address).
    pub node: String,
    pub addr: String,
    /// This node's admin password there.
    pub auth: Option<String>,
}

/// Writes a deferred command's reply.
pub type DeferredReply = Box<dyn FnOnce(&mut crate::protocol::Out) + Send>;
/// Work a command handed off; resolves to its reply.
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = DeferredReply> + Send>>;

impl Drop for ClientState {
    fn drop(&mut self) {
        self.charge(0);
    }
}

impl ClientState {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> (ClientState, MessageReceiver) {
        let (tx, rx) = new_channel();
        let state = ClientState {
            info,
            db: 0,
            authenticated,
            multi: None,
            multi_error: false,
            watch_dirty: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            channels: HashSet::new(),
            patterns: HashSet::new(),
            shard_channels: HashSet::new(),
            msg_tx: tx,
            block: None,
            reply: ReplyMode::On,
            close_after_reply: false,
            deferred: None,
            route: None,
            hops: 0,
            loading: false,
            persist_seq: 0,
            tx_records: Vec::new(),
            propagate: None,
            unchanged: false,
            in_script: false,
            script_allow_oom: false,
            multi_bytes: 0,
            retry_after_ms: None,
            woken: false,
            offload: Offload::Off,
            tracking: false,
            tracking_mode: Default::default(),
            monitor: false,
            forward: false,
            maint_notifications: false,
            caching: false,
            script_read: false,
            charged: 0,
            tenant: None,
            throttled_ms: None,
            ops_credit: 0,
            write_credit: Default::default(),
            bound: false,
        };
        (state, rx)
    }

    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// Channels, patterns and shard channels: non-zero is Redis's pub/sub
    /// mode (`CLIENT_PUBSUB`).
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The namespace the client works in.
    pub fn space<'a>(&'a self, global: &'a Space) -> &'a Space {
        self.tenant.as_ref().map_or(global, |t| &t.space)
    }

    /// Admins may manage tenants and enter any tenant's context.
    pub fn is_admin(&self) -> bool {
        !self.bound
    }

    /// Charges the tenant (if any) for `total` bytes this connection holds,
    /// in place of what it was charged before.
    pub fn charge(&mut self, total: u64) {
        // Most batches leave it unchanged: no read-modify-write on a line
        // all the tenant's connections share.
        if total == self.charged {
            return;
        }
        if let Some(t) = &self.tenant {
            t.charge_clients(total as i64 - self.charged as i64);
            self.charged = total;
        }
    }

    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// What the connection holds besides its buffers: queued MULTI
    /// commands, subscription names and watched keys (each of those held
    /// twice: here and in the space's registry or the keyspace's watchers).
    pub fn held_bytes(&self) -> u64 {
        if self.watched.is_empty() && self.subscriptions() == 0 {
            return self.multi_bytes as u64;
        }
        let names = self.channels.iter().chain(&self.patterns).chain(&self.shard_channels).map(|c| 2 * c.len() + 48).sum::<usize>();
        let watched = self.watched.iter().map(|w| 2 * w.key.len() + 64).sum::<usize>();
        (self.multi_bytes + names + watched) as u64
    }

    /// Moves the connection into a tenant's context (or back to global).
    /// The caller has dropped watches and subscriptions of the old space.
    pub fn enter(&mut self, tenant: Option<Arc<Tenant>>) {
        self.charge(0);
        *self.info.tenant.lock() = tenant.as_ref().map(|t| t.id().to_string());
        self.tenant = tenant;
        self.ops_credit = 0;
        self.write_credit = Default::default();
        self.set_db(0);
    }

    pub fn set_db(&mut self, db: usize) {
        self.db = db;
        self.info.db.store(db, Relaxed);
    }
}
