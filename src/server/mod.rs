//! The network server: accepting connections, background jobs, shutdown.
//!
//! [`Server::bind`] listens; [`Server::run`] accepts until shutdown. Each
//! connection is a task ([`connection`]) with its own [`client::ClientState`];
//! everything shared lives in [`state::ServerState`]. [`start_background`]
//! runs a whole server on its own runtime thread, which is how integration
//! tests start one on port 0.

pub mod client;
mod cluster_node;
pub mod connection;
pub mod handover;
pub mod peer;
pub mod socket;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::config::Config;
pub use state::ServerState;

pub struct Server {
    state: Arc<ServerState>,
    listener: TcpListener,
    /// The metrics endpoint's listener and `max_tenants`, when configured
    /// (a std listener: the endpoint runs on a runtime of its own).
    metrics: Option<(std::net::TcpListener, usize)>,
}

impl Server {
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let addr = format!("{}:{}", config.server.bind, config.server.port);
        let listener = TcpListener::bind(&addr).await?;
        let state = ServerState::new(config);
        load_configured_policies(&state, config)?;
        if config.persistence.appendonly {
            start_persistence(&state, &config.persistence)?;
        }
        let port = listener.local_addr()?.port();
        state.config.write().port = port;
        if config.cluster.enabled() {
            cluster_node::join(&state, config, listener.local_addr()?).await?;
        }
        let metrics = match config.metrics.addr() {
            Some(addr) => {
                let l =
                    std::net::TcpListener::bind(addr).map_err(|e| std::io::Error::new(e.kind(), format!("metrics.listen {addr}: {e}")))?;
                let _ = state.metrics_addr.set(l.local_addr()?);
                Some((l, config.metrics.max_tenants))
            }
            None => None,
        };
        Ok(Server { state, listener, metrics })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Accepts connections until shutdown is requested.
    pub async fn run(mut self) {
        let expiry = tokio::spawn(active_expiry(self.state.clone()));
        let metering = tokio::spawn(meter_tenants(self.state.clone()));
        let handovers = tokio::spawn(handover::listen(self.state.clone(), self.local_addr().port()));
        let exporter = match self.metrics.take().map(|(l, max)| crate::exporter::spawn(l, self.state.clone(), max)) {
            Some(Ok(thread)) => {
                tracing::info!(addr = %self.state.metrics_addr.get().expect("set with the listener"), "Serving metrics on /metrics");
                Some(thread)
            }
            Some(Err(e)) => {
                tracing::error!("metrics endpoint not started: {e}");
                None
            }
            None => None,
        };
        tracing::info!(addr = %self.local_addr(), "Ready to accept connections");
        loop {
            // Registered before the flag is read: a shutdown requested before
            // this loop began (a handle dropped right after its start) is not
            // missed, as `notify_waiters` wakes only those already waiting.
            let shutdown = self.state.shutdown.notified();
            tokio::pin!(shutdown);
            shutdown.as_mut().enable();
            if self.state.shutting_down.load(Relaxed) {
                break;
            }
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((socket, addr)) => self.accept(socket, addr).await,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = &mut shutdown => break,
            }
        }
        expiry.abort();
        metering.abort();
        handovers.abort();
        if let Some(thread) = exporter {
            // It stops on the same shutdown signal.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.state.clients.kill_all();
        if let Some(dir) = self.state.cluster.get() {
            dir.shutdown().await;
        }
        if let Some(p) = self.state.persistence() {
            crate::persist::snapshot::before_exit(&self.state, self.state.exit_save()).await;
            // Everything acknowledged reaches the disk before the process ends.
            p.aof.close();
        }
        tracing::info!("Ferrite is now ready to exit, bye bye...");
    }

    async fn accept(&self, mut socket: tokio::net::TcpStream, addr: SocketAddr) {
        let state = &self.state;
        state.stats.connections_received.incr();
        if state.clients.len() as u64 >= state.config.read().maxclients {
            state.stats.rejected_connections.incr();
            let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
            return;
        }
        let _ = socket.set_nodelay(true);
        let laddr = socket.local_addr().unwrap_or(addr);
        let info = state.clients.register(addr, laddr);
        tokio::spawn(connection::serve(state.clone(), socket, info));
    }
}

/// Reclaims expired keys nobody reads: each tick sweeps every database for
/// a bounded time, continuing while it keeps finding expired keys.
async fn active_expiry(state: Arc<ServerState>) {
    loop {
        let hz = state.config.read().hz.max(1);
        tokio::time::sleep(Duration::from_millis(1000 / hz)).await;
        let start = Instant::now();
        let now = state.now_ms();
        let tenants = state.tenants.list();
        let spaces = std::iter::once(&state.global).chain(tenants.iter().map(|t| &t.space));
        for space in spaces {
            for (_, db) in space.existing() {
                while db.volatile_len() > 0 && start.elapsed() < Duration::from_millis(2) {
                    let (_, deleted) = db.expire_step(now, 1024);
                    if deleted == 0 {
                        break;
                    }
                }
            }
            // BCAST clients hear of the keys that expired in this sweep.
            space.tracking.broadcast(space.events.delivery(now));
        }
    }
}

/// Integrates each tenant's memory over time, checks its quota alerts and
/// runs billing policies, once a second (or once per billing interval,
/// when that is shorter).
async fn meter_tenants(state: Arc<ServerState>) {
    let period = state.policy.billing_interval_ms.clamp(100, 1000);
    let mut tick = tokio::time::interval(Duration::from_millis(period));
    loop {
        tick.tick().await;
        let now = state.now_ms();
        state.tenants.tick(now);
        publish_alerts(&state, now);
        for t in state.tenants.list() {
            crate::tenancy::hooks::bill(&t, &state.policy, now);
        }
        if let Some(p) = state.persistence()
            && p.rewrite_due()
            && !p.rewriting.load(Relaxed)
        {
            tracing::info!("snapshot and log doubled since the last compaction; compacting");
            let _ = crate::persist::snapshot::start(&state);
        }
    }
}

/// Publishes the quota crossings the tick found on the admin's
/// `__ferrite__:tenant-events` channel (one JSON object each) and logs them.
fn publish_alerts(state: &ServerState, now_ms: u64) {
    use crate::tenancy::alerts::CHANNEL;
    for e in state.tenants.sweep_alerts(now_ms) {
        let (tenant, resource, percent) = (&e.tenant, e.resource.name(), format!("{:.2}", e.percent()));
        tracing::warn!(
            tenant,
            resource,
            used = e.used,
            limit = e.limit,
            percent,
            threshold = e.threshold,
            "tenant crossed a quota alert threshold"
        );
        let how = crate::space::pubsub::Delivery { limit: state.output_limits.pubsub(), now_ms };
        state.global.pubsub.publish(CHANNEL.as_bytes(), e.to_json().as_bytes(), how);
    }
}

/// Recovers the data directory into `state`, then opens the log for appending.
fn start_persistence(state: &Arc<ServerState>, cfg: &crate::persist::PersistenceConfig) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64};
    let started = Instant::now();
    let r =
        crate::persist::load::recover(state, cfg).map_err(|e| std::io::Error::other(format!("cannot load {}: {e}", cfg.dir.display())))?;
    let aof = crate::persist::aof::Aof::open(&cfg.dir, r.generation, cfg.appendfsync)?;
    tracing::info!(
        dir = %cfg.dir.display(),
        snapshot_entries = r.snapshot_entries,
        commands = r.commands,
        ms = started.elapsed().as_millis() as u64,
        "data loaded"
    );
    let snapshot = crate::persist::snapshot::file_size(&cfg.dir);
    let size = snapshot + aof.size.load(Relaxed);
    let p = crate::persist::Persistence {
        dir: cfg.dir.clone(),
        aof,
        rewriting: AtomicBool::new(false),
        epoch: AtomicU8::new(0),
        last_save: AtomicU64::new(r.snapshot_secs.unwrap_or(state.now_ms() / 1000)),
        last_save_ok: AtomicBool::new(true),
        saved_seq: AtomicU64::new(0),
        snapshot_size: AtomicU64::new(snapshot),
        base_size: AtomicU64::new(size),
        done: tokio::sync::Notify::new(),
        stats: Default::default(),
        auto_rewrite_percentage: AtomicU64::new(cfg.auto_aof_rewrite_percentage),
        auto_rewrite_min_size: AtomicU64::new(cfg.auto_aof_rewrite_min_size),
        loaded_keys: r.snapshot_entries - r.snapshot_expired,
        loaded_expired: r.snapshot_expired,
    };
    for id in r.discarded {
        p.log(&crate::persist::record::Record::TenantDelete(id));
    }
    let _ = state.persist.set(Arc::new(p));
    Ok(())
}

/// Loads the `policy` files of `[[tenancy.tenants]]` before serving; a
/// module that does not load stops start-up with the reason.
fn load_configured_policies(state: &ServerState, config: &Config) -> std::io::Result<()> {
    for (i, def) in config.tenancy.tenants.iter().enumerate() {
        let Some(path) = &def.policy else { continue };
        let fail = |e: String| std::io::Error::other(format!("tenancy.tenants[{i}].policy ({}): {e}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let blob = def.policy_config.as_deref().unwrap_or("").as_bytes();
        let module = crate::policy::PolicyModule::compile(&bytes, blob, &state.policy).map_err(|e| fail(e.to_string()))?;
        let prepared = crate::policy::slot::Prepared::new(Arc::new(module), &def.id, &state.policy).map_err(|e| fail(e.to_string()))?;
        let tenant = state.tenants.get_tenant(&def.id).map_err(|e| fail(e.to_string()))?;
        tenant.install_policy(prepared, state.now_ms(), state.policy.keep_versions);
        tracing::info!(tenant = %def.id, "policy loaded from {}", path.display());
    }
    Ok(())
}

/// A server running on its own thread and runtime; stops when dropped.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Where the metrics endpoint listens (None unless `[metrics] listen` is set).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.state.metrics_addr.get().copied()
    }

    /// Stops the server as `SHUTDOWN NOSAVE` would (tests read the log it
    /// leaves), unless a SHUTDOWN already chose otherwise.
    pub fn shutdown(&mut self) {
        if !self.state.shutting_down.load(Relaxed) {
            self.state.request_shutdown_saving(state::ExitSave::Never);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a server in the background (with `[server] threads` workers, two
/// unless set).
pub fn start_background(config: Config) -> std::io::Result<ServerHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    let workers = match config.server.threads {
        0 => 2,
        n => n as usize,
    };
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
        rt.block_on(async move {
            match Server::bind(&config).await {
                Ok(server) => {
                    let _ = tx.send(Ok((server.local_addr(), server.state())));
                    server.run().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
    });
    let (addr, state) = rx.recv().map_err(std::io::Error::other)??;
    Ok(ServerHandle { addr, state, thread: Some(thread) })
}
