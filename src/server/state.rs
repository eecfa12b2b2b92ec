//! State shared by every connection: databases, configuration, clients,
//! pub/sub, blocked clients and statistics.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use parking_lot::RwLock;
use tokio::sync::Notify;

use super::client::ClientRegistry;
use crate::commands::COMMANDS;
use crate::config::{ClassLimit, Config, OutputLimits, ServerConfig};
use crate::metrics::{CallCounter, Counter};
use crate::persist::Persistence;
use crate::policy::PolicyConfig;
use crate::space::Space;
use crate::store::clock::Clock;
use crate::tenancy::eviction::EvictionPool;
use crate::tenancy::{TenantConfig, TenantManager};

/// Per-command counters for `INFO commandstats`.
#[derive(Debug, Default)]
pub struct CommandStats {
    pub calls: CallCounter,
    pub rejected: Counter,
    pub failed: Counter,
}

/// Server-wide counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: Counter,
    pub commands_processed: Counter,
    pub rejected_connections: Counter,
    pub keyspace_hits: Counter,
    pub keyspace_misses: Counter,
    pub net_input_bytes: Counter,
    pub net_output_bytes: Counter,
    pub evicted_keys: Counter,
    pub total_error_replies: Counter,
    /// Clients closed for passing their output buffer limit.
    pub client_output_limit_disconnections: Counter,
}

pub struct ServerState {
    pub config: RwLock<ServerConfig>,
    /// `[cluster] secret`: also the admin's password, and what this node
    /// sends to another.
    pub cluster_secret: Option<String>,
    /// The tenant directory shared with other nodes, when `[cluster]`
    /// names this node and etcd.
    pub cluster: OnceLock<Arc<crate::cluster::Directory>>,
    /// The global (non-tenant) namespace.
    pub global: Space,
    pub tenants: TenantManager,
    /// `[policy]`: the WASM sandbox's limits.
    pub policy: PolicyConfig,
    /// `[persistence]` as configured (what `CONFIG GET` shows when it is off).
    pub persist_config: crate::persist::PersistenceConfig,
    /// The log and compaction, once recovery has run (absent when off).
    pub persist: OnceLock<Arc<Persistence>>,
    /// This state's own `Arc`, for work that outlives a command (compaction).
    me: OnceLock<Weak<ServerState>>,
    /// Bytes held by every space (global and tenants), exact.
    pub memory_total: Arc<AtomicI64>,
    /// `notify-keyspace-events` as every space without its own setting reads it.
    pub events: Arc<crate::space::notify::Defaults>,
    /// Settings the per-request path reads, mirrored from `config` so that
    /// path takes no lock: `maxmemory`, `proto-max-bulk-len`,
    /// `client-query-buffer-limit`, `timeout`.
    pub maxmemory: AtomicU64,
    pub proto_max_bulk_len: AtomicU64,
    pub query_buffer_limit: AtomicU64,
    pub idle_timeout: AtomicU64,
    pub output_limits: OutputLimitCells,
    /// `slowlog-*` and `latency-monitor-threshold`, for dispatch.
    pub thresholds: crate::space::slowlog::Thresholds,
    /// Failed AUTHs as the admin (`default`) or as users that name no tenant.
    pub auth_throttle: crate::tenancy::tenant::AuthThrottle,
    /// Eviction candidates of the global space (for `maxmemory`).
    pub global_eviction: EvictionPool,
    pub clock: Clock,
    pub clients: ClientRegistry,
    pub stats: Stats,
    /// Indexed like [`COMMANDS`].
    pub command_stats: Vec<CommandStats>,
    /// INFO errorstats: error replies by kind.
    pub error_kinds: crate::metrics::ErrorKinds,
    pub shutdown: Notify,
    pub shutting_down: AtomicBool,
    /// What the shutdown does with the data (SHUTDOWN's SAVE / NOSAVE).
    exit_save: parking_lot::Mutex<ExitSave>,
    pub started: Instant,
    pub run_id: String,
    /// Where the metrics endpoint listens, when `[metrics] listen` is set.
    pub metrics_addr: OnceLock<std::net::SocketAddr>,
}

/// `client-output-buffer-limit` as connections read it, without a lock: the
/// normal class's hard limit and the pub/sub class.
#[derive(Debug, Default)]
pub struct OutputLimitCells {
    normal_hard: AtomicU64,
    pubsub: [AtomicU64; 3],
}

impl OutputLimitCells {
    fn new(l: &OutputLimits) -> Self {
        let cells = OutputLimitCells::default();
        cells.store(l);
        cells
    }

    fn store(&self, l: &OutputLimits) {
        self.normal_hard.store(l.normal.hard, Relaxed);
        self.pubsub[0].store(l.pubsub.hard, Relaxed);
        self.pubsub[1].store(l.pubsub.soft, Relaxed);
        self.pubsub[2].store(l.pubsub.soft_secs, Relaxed);
    }

    pub fn pubsub(&self) -> ClassLimit {
        ClassLimit { hard: self.pubsub[0].load(Relaxed), soft: self.pubsub[1].load(Relaxed), soft_secs: self.pubsub[2].load(Relaxed) }
    }

    /// The hard limit of a connection's pending output (0: none).
    pub fn hard(&self, subscribed: bool) -> u64 {
        if subscribed { self.pubsub[0].load(Relaxed) } else { self.normal_hard.load(Relaxed) }
    }
}

/// Whether the server compacts its log on the way out, so the next start
/// loads a snapshot instead of replaying the log. As Redis saves on
/// shutdown (when it has save points), by default only when something
/// changed; `SHUTDOWN SAVE` always, `SHUTDOWN NOSAVE` never (the log alone
/// already holds every write, so nothing is lost either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitSave {
    IfChanged,
    Never,
    Always,
}

impl ServerState {
    pub fn new(config: &Config) -> Arc<ServerState> {
        let memory_total = Arc::new(AtomicI64::new(0));
        let run_id: String = (0..40).map(|_| fastrand::alphanumeric().to_ascii_lowercase()).collect();
        let events = Arc::new(crate::space::notify::Defaults::default());
        events.set(config.server.notify_keyspace_events, config.server.client_output_buffer_limit.pubsub);
        let state = Arc::new(ServerState {
            cluster_secret: config.cluster.secret.clone().filter(|s| !s.is_empty()),
            cluster: OnceLock::new(),
            global: Space::with_total(config.server.databases as usize, Some(memory_total.clone()), events.clone()),
            tenants: TenantManager::with_total(
                TenantConfig { databases: config.server.databases as usize, ..config.tenancy.clone() },
                Some(memory_total.clone()),
                events.clone(),
            ),
            events,
            memory_total,
            policy: config.policy.clone(),
            persist_config: config.persistence.clone(),
            persist: OnceLock::new(),
            me: OnceLock::new(),
            maxmemory: AtomicU64::new(config.server.maxmemory),
            proto_max_bulk_len: AtomicU64::new(config.server.proto_max_bulk_len),
            query_buffer_limit: AtomicU64::new(config.server.client_query_buffer_limit),
            idle_timeout: AtomicU64::new(config.server.timeout),
            output_limits: OutputLimitCells::new(&config.server.client_output_buffer_limit),
            thresholds: crate::space::slowlog::Thresholds::new(&config.server),
            auth_throttle: Default::default(),
            global_eviction: EvictionPool::default(),
            config: RwLock::new(config.server.clone()),
            clock: Clock::default(),
            clients: ClientRegistry::default(),
            stats: Stats::default(),
            command_stats: COMMANDS.iter().map(|_| CommandStats::default()).collect(),
            error_kinds: Default::default(),
            shutdown: Notify::new(),
            shutting_down: AtomicBool::new(false),
            exit_save: parking_lot::Mutex::new(ExitSave::IfChanged),
            started: Instant::now(),
            run_id,
            metrics_addr: OnceLock::new(),
        });
        let _ = state.me.set(Arc::downgrade(&state));
        state
    }

    /// Installs a new runtime configuration (CONFIG SET).
    pub fn set_config(&self, cfg: ServerConfig) {
        self.maxmemory.store(cfg.maxmemory, Relaxed);
        self.proto_max_bulk_len.store(cfg.proto_max_bulk_len, Relaxed);
        self.query_buffer_limit.store(cfg.client_query_buffer_limit, Relaxed);
        self.idle_timeout.store(cfg.timeout, Relaxed);
        self.output_limits.store(&cfg.client_output_buffer_limit);
        self.thresholds.store(&cfg);
        self.events.set(cfg.notify_keyspace_events, cfg.client_output_buffer_limit.pubsub);
        *self.config.write() = cfg;
    }

    /// Unix seconds when the server started.
    pub fn started_secs(&self) -> u64 {
        (self.now_ms() / 1000).saturating_sub(self.started.elapsed().as_secs())
    }

    /// The `Arc` this state lives in.
    pub fn arc(&self) -> Arc<ServerState> {
        self.me.get().and_then(Weak::upgrade).expect("ServerState::new registers itself")
    }

    /// The tenant directory, when this node is one of many.
    pub fn directory(&self) -> Option<&Arc<crate::cluster::Directory>> {
        self.cluster.get()
    }

    /// What this node authenticates with on another node (as its admin):
    /// the `[cluster] secret`, or else its own `requirepass` (nodes that
    /// share one), or nothing (nodes without passwords).
    pub fn peer_auth(&self) -> Option<String> {
        self.cluster_secret.clone().or_else(|| self.config.read().requirepass.clone())
    }

    pub fn persistence(&self) -> Option<&Arc<Persistence>> {
        self.persist.get()
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Stops the server; on the way out it compacts as `save` says.
    pub fn request_shutdown_saving(&self, save: ExitSave) {
        *self.exit_save.lock() = save;
        self.request_shutdown();
    }

    pub fn exit_save(&self) -> ExitSave {
        *self.exit_save.lock()
    }

    /// Asks the accept loop and every connection to stop.
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Relaxed);
        // A script that never returns would keep the runtime from stopping
        // (SHUTDOWN stops a running script in Redis too).
        self.global.scripts.abort();
        self.tenants.list().iter().for_each(|t| t.space.scripts.abort());
        self.shutdown.notify_waiters();
        self.clients.kill_all();
    }

    pub fn used_memory(&self) -> usize {
        self.memory_total.load(Relaxed).max(0) as usize
    }
}
