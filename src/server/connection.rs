//! One client connection: read, parse in place, run, reply in one write.
//!
//! The loop reads into a single `BytesMut`, runs every complete request in it
//! (a pipelined batch) with one notion of "now", appends all replies to one
//! output buffer and writes that once. It also delivers pub/sub messages,
//! parks the client while a blocking command waits, and obeys CLIENT KILL,
//! SHUTDOWN and the idle timeout.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use smallvec::SmallVec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::client::{BlockSpec, ClientInfo, ClientState, Offload, ReplyMode, unblock};
use super::socket::Socket;
use super::state::ServerState;
use crate::commands::{Ctx, execute};
use crate::protocol::{Argv, Limits, Out, parse_request};
use crate::space::pubsub::{Kind, Message, MessageReceiver};
use crate::tenancy::Tenant;

const READ_CHUNK: usize = 16 * 1024;
/// A batch writes what it has once its replies pass this, before running
/// more requests: a client that pipelines big reads and never reads the
/// replies is held by the socket, not by the server's memory.
const FLUSH_AT: usize = 64 * 1024;
/// Buffers that grew past this are given back when idle.
const KEEP_CAPACITY: usize = 256 * 1024;

/// What a batch left the connection to do next.
enum Next {
    Continue,
    /// The replies so far are big enough to write before the rest runs.
    Flush,
    /// A long command to run on the blocking pool.
    /// The request, and whether its space is marked busy meanwhile.
    Offload(Vec<Vec<u8>>, bool),
    /// A long command of this connection's space is running elsewhere: wait
    /// for it (without blocking the worker on the space's lock).
    SpaceBusy,
    Block(BlockSpec, Vec<Vec<u8>>),
    /// The tenant hit its rate limit: stop reading this connection for a
    /// while, so a client that ignores the error cannot make the server
    /// spend its time refusing it (and slow every other tenant).
    Pause(Duration),
    /// A command's work runs elsewhere; its reply comes when it is done,
    /// before any later request of this client runs.
    Await(super::client::Deferred),
    /// The client's tenant has moved to another node: from the request not
    /// yet run on, everything goes there and back (see `forward`).
    Forward,
    /// AUTH as a tenant another node owns: ask it (see `route`).
    Route(super::client::Route, Vec<Vec<u8>>),
    Close,
}

struct Conn {
    state: Arc<ServerState>,
    socket: Socket,
    client: ClientState,
    messages: MessageReceiver,
    inbuf: BytesMut,
    out: Out,
    argv: Argv,
    wake: Arc<Notify>,
}

/// The most a connection may hold unsent: its class's hard
/// `client-output-buffer-limit` (0: none) and, for a tenant's connection,
/// never more than the tenant's whole memory limit.
fn output_limit(state: &ServerState, client: &ClientState) -> usize {
    let hard = state.output_limits.hard(client.subscriptions() > 0);
    let hard = if hard == 0 { u64::MAX } else { hard };
    let quota = client.tenant.as_ref().map_or(u64::MAX, |t| t.memory_limit());
    hard.min(quota).try_into().unwrap_or(usize::MAX)
}

/// Runs a command; a panic in its handler is caught here, logged, answered
/// with an error, and ends the connection (false) rather than the process.
/// What the connection registered is released by `Conn`'s `Drop`.
fn execute_contained(ctx: &mut Ctx, args: &[&[u8]]) -> bool {
    let run = std::panic::AssertUnwindSafe(|| execute(ctx, args));
    match std::panic::catch_unwind(run) {
        Ok(()) => true,
        Err(panic) => {
            let why = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(|s| s.as_str())).unwrap_or("?");
            let name = String::from_utf8_lossy(&args[0][..args[0].len().min(64)]);
            tracing::error!(client = ctx.client.id(), command = %name, "command panicked: {why}; closing the connection");
            ctx.client.block = None;
            ctx.client.deferred = None;
            ctx.out.error("ERR internal error while running the command; the connection is closed");
            false
        }
    }
}

fn same_tenant(a: &Option<Arc<Tenant>>, b: &Option<Arc<Tenant>>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    }
}

/// Serves one accepted connection until it closes or is killed.
pub async fn serve(state: Arc<ServerState>, socket: TcpStream, info: Arc<ClientInfo>) {
    let socket = match Socket::new(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot register connection: {e}");
            state.clients.unregister(info.id);
            return;
        }
    };
    let authenticated = state.config.read().requirepass.is_none();
    let mut conn = Conn::new(&state, socket, &info, authenticated, BytesMut::with_capacity(READ_CHUNK));
    if let Err(e) = conn.run().await {
        tracing::debug!(client = info.id, "connection ended: {e}");
    }
}

/// A client socket handed over by the node its tenant moved from (see
/// `handover`): `setup` (the requests that recreate its state: TENANT.BIND,
/// SELECT, HELLO, subscriptions, a MULTI in progress) runs first with its
/// replies dropped; unless that leaves the connection bound to `tenant`,
/// nothing is adopted (and the descriptor is closed, the old node serving
/// the client on).
pub fn adopt(state: &Arc<ServerState>, socket: std::net::TcpStream, setup: &[u8], tenant: &str) -> Option<Adopted> {
    socket.set_nonblocking(true).ok()?;
    let (peer, local) = (socket.peer_addr().ok()?, socket.local_addr().ok()?);
    let socket = Socket::new(TcpStream::from_std(socket).ok()?).ok()?;
    let info = state.clients.register(peer, local);
    // Authenticated as the admin (the old node proved it knows the
    // password) until the setup's TENANT.BIND makes it the tenant's.
    let mut conn = Conn::new(state, socket, &info, true, BytesMut::from(setup));
    loop {
        match conn.run_batch() {
            Next::Continue => break,
            Next::Flush => conn.out.buf.clear(),
            _ => return None,
        }
    }
    conn.out.buf.clear();
    let bound = conn.client.bound && conn.client.tenant.as_ref().is_some_and(|t| t.id() == tenant);
    (bound && conn.inbuf.is_empty()).then_some(Adopted(conn))
}

/// A connection taken over from another node, ready to serve.
pub struct Adopted(Conn);

impl Adopted {
    /// Runs `input` (what the old node had read and not run) as the
    /// client's own requests, then serves it as any connection.
    pub async fn serve(self, input: Vec<u8>) {
        let mut conn = self.0;
        conn.inbuf.extend_from_slice(&input);
        let id = conn.client.id();
        let served = async {
            if conn.on_input(0).await? {
                conn.run().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        if let Err(e) = served.await {
            tracing::debug!(client = id, "connection ended: {e}");
        }
    }
}

/// Whatever ends the connection (its loop returning, a panic unwinding the
/// task, the runtime shutting down), what it registered is released here.
impl Drop for Conn {
    fn drop(&mut self) {
        self.cleanup();
        self.state.clients.unregister(self.client.id());
    }
}

impl Conn {
    fn new(state: &Arc<ServerState>, socket: Socket, info: &Arc<ClientInfo>, authenticated: bool, inbuf: BytesMut) -> Conn {
        let (client, messages) = ClientState::new(info.clone(), authenticated);
        let _ = info.queue.set(client.msg_tx.clone());
        Conn {
            state: state.clone(),
            socket,
            client,
            messages,
            inbuf,
            out: Out::new(false),
            argv: Argv::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            if self.client.info.killed.load(Relaxed) {
                return Ok(());
            }
            if self.tenant_moved() {
                return self.forward().await;
            }
            let tenant = self.client.tenant.as_deref().filter(|_| self.client.bound);
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            let idle = self.idle_timeout();
            let subscribed = self.client.subscriptions() > 0;
            tokio::select! {
                // Killed (checked above), or a subscriber's (or any idle
                // client's) tenant moved: it goes on at the new node.
                _ = self.client.info.stop_signal(|| tenant.is_some_and(|t| t.is_moved())) => {}
                r = self.socket.read_into(&mut self.inbuf) => {
                    let n = r?;
                    if n == 0 {
                        return Ok(());
                    }
                    if !self.on_input(n).await? {
                        return Ok(());
                    }
                }
                // Subscribers' messages, and CLIENT TRACKING's invalidations
                // (for this client, or as another's redirect target).
                Some(m) = self.messages.recv() => {
                    self.deliver(m);
                    while let Some(m) = self.messages.try_recv() {
                        self.deliver(m);
                    }
                    self.recharge(true);
                    self.flush().await?;
                }
                // Lazy: a sleep made when there is no timeout would still
                // read the clock on every pass.
                _ = async { tokio::time::sleep(idle.expect("guarded")).await }, if idle.is_some() && !subscribed => return Ok(()),
            }
        }
    }

    /// `client-query-buffer-limit`; a tenant's query buffer counts against
    /// its memory, so it can never hold more than its whole limit.
    fn query_limit(&self) -> usize {
        let quota = self.client.tenant.as_ref().map_or(u64::MAX, |t| t.memory_limit());
        self.state.query_buffer_limit.load(Relaxed).min(quota) as usize
    }

    fn idle_timeout(&self) -> Option<Duration> {
        let t = self.state.idle_timeout.load(Relaxed);
        (t > 0).then(|| Duration::from_secs(t))
    }

    /// Handles newly read bytes; false means close the connection.
    async fn on_input(&mut self, read: usize) -> std::io::Result<bool> {
        self.state.stats.net_input_bytes.add(read as u64);
        if let Some(t) = &self.client.tenant {
            t.metrics.bytes_in.fetch_add(read as u64, Relaxed);
        }
        if self.inbuf.len() > self.query_limit() {
            tracing::warn!(client = self.client.id(), "closing client that exceeded the query buffer limit");
            return Ok(false);
        }
        loop {
            // The requests about to run are admitted on what they add; their
            // bytes must not count twice, as input and as growth.
            self.recharge(false);
            let next = self.run_batch();
            self.recharge(true);
            match next {
                Next::Continue => {
                    self.flush().await?;
                    self.recharge(true);
                    return Ok(true);
                }
                Next::Flush => self.flush().await?,
                Next::Offload(argv, mark_busy) => {
                    self.flush().await?;
                    if !self.run_offloaded(argv, mark_busy).await {
                        self.flush().await?;
                        return Ok(false);
                    }
                }
                Next::SpaceBusy => {
                    self.flush().await?;
                    let tenant = self.client.tenant.clone();
                    let space = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
                    // Woken when the space is idle, or now and then to see
                    // whether its script has run long enough for BUSY.
                    tokio::select! {
                        _ = space.until_idle() => {}
                        _ = tokio::time::sleep(Duration::from_millis(100)), if space.scripts.running_for(self.state.now_ms()).is_some() => {}
                        _ = self.client.info.kill.notified() => return Ok(false),
                    }
                }
                Next::Close => {
                    self.flush().await?;
                    return Ok(false);
                }
                Next::Forward => {
                    self.forward().await?;
                    return Ok(false);
                }
                Next::Route(route, request) => {
                    if self.route(route, request).await? {
                        return Ok(false);
                    }
                }
                Next::Block(spec, argv) => {
                    self.flush().await?;
                    if !self.wait_blocked(spec, argv).await? {
                        return Ok(false);
                    }
                }
                Next::Await(work) => {
                    self.flush().await?;
                    tokio::select! {
                        reply = work => reply(&mut self.out),
                        _ = self.client.info.kill.notified() => return Ok(false),
                    }
                    // Work done off the connection (a policy upload) may have
                    // logged: its reply waits like any write's (see `flush`).
                    if let Some(p) = self.state.persistence() {
                        self.client.persist_seq = self.client.persist_seq.max(p.aof.seq());
                    }
                }
                Next::Pause(d) => {
                    self.flush().await?;
                    let tenant = self.client.tenant.clone();
                    let own = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = self.state.global.pause.resumed() => {}
                        _ = own.pause.resumed() => {}
                        _ = self.client.info.kill.notified() => return Ok(false),
                    }
                }
            }
        }
    }

    /// Runs every complete request in the input buffer.
    fn run_batch(&mut self) -> Next {
        let now = self.state.now_ms();
        self.client.info.last_active_ms.store(now, Relaxed);
        let max_bulk_len = self.state.proto_max_bulk_len.load(Relaxed) as i64;
        // Held for the whole batch so the space stays alive; refreshed when a
        // command (AUTH, TENANT.USE, TENANT.EXIT, RESET) changes the context.
        let mut tenant = self.client.tenant.clone();
        loop {
            if !same_tenant(&tenant, &self.client.tenant) {
                tenant = self.client.tenant.clone();
            }
            if self.tenant_moved() {
                return Next::Forward;
            }
            let space = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
            let limits = Limits { max_bulk_len, unauthenticated: !self.client.authenticated };
            let consumed = match parse_request(&self.inbuf, &limits, &mut self.argv) {
                Ok(None) => break,
                Ok(Some(n)) => n,
                Err(e) => {
                    self.out.error(&format!("ERR {e}"));
                    return Next::Close;
                }
            };
            if space.busy() && !self.argv.is_empty() {
                let args: SmallVec<[&[u8]; 8]> = self.argv.iter(&self.inbuf).collect();
                if !crate::commands::scripting::kills_script(&args) {
                    // Past busy-reply-threshold a script's neighbours get
                    // BUSY instead of waiting, as in Redis.
                    let threshold = self.state.config.read().busy_reply_threshold;
                    if space.scripts.running_for(now).is_some_and(|ms| ms >= threshold) {
                        let function = space.scripts.running_function().is_some();
                        self.out.error(if function { crate::script::BUSY_FUNCTION } else { crate::script::BUSY_SCRIPT });
                        drop(args);
                        self.inbuf.advance(consumed);
                        continue;
                    }
                    return Next::SpaceBusy;
                }
            }
            if !self.argv.is_empty() {
                let args: SmallVec<[&[u8]; 8]> = self.argv.iter(&self.inbuf).collect();
                let touch = !self.client.info.no_touch.load(Relaxed);
                self.out.limit = output_limit(&self.state, &self.client);
                self.client.offload = Offload::Allowed;
                let mark = self.out.buf.len();
                let mut ctx =
                    Ctx { state: &self.state, client: &mut self.client, out: &mut self.out, now_ms: now, in_exec: false, touch, space };
                if !execute_contained(&mut ctx, &args) {
                    drop(args);
                    self.inbuf.advance(consumed);
                    return Next::Close;
                }
                if ctx.out.over_limit() {
                    ctx.output_overflow(mark);
                }
                if std::mem::take(&mut self.client.forward) {
                    // Not run here and not consumed: it goes to the new node.
                    self.out.buf.truncate(mark);
                    return Next::Forward;
                }
                if let Some(route) = self.client.route.take() {
                    self.out.buf.truncate(mark);
                    let owned = args.iter().map(|a| a.to_vec()).collect();
                    drop(args);
                    self.inbuf.advance(consumed);
                    return Next::Route(route, owned);
                }
                apply_reply_mode(&mut self.client, &mut self.out, mark);
                if self.client.tracking {
                    // Invalidations this command caused follow its reply, as in Redis.
                    let subscribed = self.client.subscriptions() > 0;
                    while let Some(m) = self.messages.try_recv() {
                        deliver(&mut self.out, subscribed, m);
                    }
                }
                let offload = std::mem::replace(&mut self.client.offload, Offload::Off);
                if matches!(offload, Offload::Wanted | Offload::Wait) {
                    let owned = args.iter().map(|a| a.to_vec()).collect();
                    drop(args);
                    self.inbuf.advance(consumed);
                    return Next::Offload(owned, offload == Offload::Wanted);
                }
                if let Some(ms) = self.client.retry_after_ms.take() {
                    // Not consumed: the same request runs after the pause.
                    self.out.buf.truncate(mark);
                    return Next::Pause(Duration::from_millis(ms));
                }
                if let Some(mut spec) = self.client.block.take() {
                    let owned = spec.retry.take().unwrap_or_else(|| args.iter().map(|a| a.to_vec()).collect());
                    drop(args);
                    self.inbuf.advance(consumed);
                    return Next::Block(spec, owned);
                }
                if let Some(work) = self.client.deferred.take() {
                    drop(args);
                    self.inbuf.advance(consumed);
                    return Next::Await(work);
                }
            }
            self.inbuf.advance(consumed);
            if self.client.close_after_reply {
                return Next::Close;
            }
            if let Some(ms) = self.client.throttled_ms.take() {
                return Next::Pause(Duration::from_millis(ms));
            }
            if self.out.buf.len() > FLUSH_AT {
                return Next::Flush;
            }
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY {
            self.inbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        Next::Continue
    }

    /// Parks a blocked command until its keys are signalled, it times out or
    /// the client goes away; then replies. False means close.
    async fn wait_blocked(&mut self, spec: BlockSpec, argv: Vec<Vec<u8>>) -> std::io::Result<bool> {
        let db = self.client.db;
        let state = self.state.clone();
        let space = spec.tenant.as_deref().map_or(&state.global, |t| &t.space);
        space.blocking.register(db, &spec.keys, &self.wake);
        self.client.info.unblock.store(unblock::BLOCKED, Relaxed);
        let result = self.block_loop(&spec, &argv).await;
        self.client.info.unblock.store(unblock::NOT_BLOCKED, Relaxed);
        space.blocking.unregister(db, &spec.keys, &self.wake);
        result
    }

    async fn block_loop(&mut self, spec: &BlockSpec, argv: &[Vec<u8>]) -> std::io::Result<bool> {
        loop {
            // A read into a full buffer would read nothing, which means EOF.
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            let remaining = spec.deadline_ms.map(|d| Duration::from_millis(d.saturating_sub(self.state.now_ms())));
            let moving = self.client.tenant.clone().filter(|_| self.client.bound);
            if moving.as_ref().is_some_and(|t| t.is_moved()) {
                // Its tenant moved: the wait goes on at the new node, with
                // what is left of its timeout.
                let again = with_timeout(argv, remaining.map(|d| d.as_millis() as u64));
                self.forward_with(Some(again)).await?;
                return Ok(false);
            }
            tokio::select! {
                _ = async { moving.as_ref().expect("guarded").moved_signal.notified().await }, if moving.is_some() => {}
                _ = self.wake.notified() => {
                    let tenant = self.client.tenant.clone();
                    tenant.as_deref().map_or(&self.state.global, |t| &t.space).until_idle().await;
                    let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
                    let touch = !self.client.info.no_touch.load(Relaxed);
                    let tenant = self.client.tenant.clone();
                    let space = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
                    let mut ctx = Ctx { state: &self.state, client: &mut self.client, out: &mut self.out, now_ms: self.state.now_ms(), in_exec: false, touch, space };
                    ctx.client.woken = true;
                    let ran = execute_contained(&mut ctx, &args);
                    ctx.client.woken = false;
                    if !ran {
                        return Ok(false);
                    }
                    if self.client.block.take().is_none() {
                        return Ok(true);
                    }
                }
                _ = tokio::time::sleep(remaining.unwrap_or(Duration::MAX)), if remaining.is_some() => {
                    self.out.null_array();
                    return Ok(true);
                }
                _ = self.client.info.kill.notified() => return Ok(false),
                _ = self.client.info.unblocked.notified() => {
                    // (A wake-up left from an earlier wait changes nothing.)
                    match self.client.info.unblock.load(Relaxed) {
                        unblock::AS_TIMEOUT => self.out.null_array(),
                        unblock::AS_ERROR => self.out.error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                        _ => continue,
                    }
                    return Ok(true);
                }
                r = self.socket.read_into(&mut self.inbuf) => {
                    // Pipelined requests wait for the blocked one, up to the
                    // query buffer limit; EOF ends it.
                    if r? == 0 || self.inbuf.len() > self.query_limit() {
                        return Ok(false);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, m: Message) {
        deliver(&mut self.out, self.client.subscriptions() > 0, m);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.buf.is_empty() {
            return Ok(());
        }
        // Under `appendfsync always` a write is acknowledged once it is on disk.
        if self.client.persist_seq > 0
            && let Some(p) = self.state.persistence()
            && p.aof.acks_after_fsync()
        {
            // The log could not be written: these replies would acknowledge
            // writes that may never reach the disk. Close without them, so the
            // client treats them as unknown (as when Redis exits on this error).
            if !p.aof.durable(std::mem::take(&mut self.client.persist_seq)).await {
                return Err(std::io::Error::other("append-only log write failed under appendfsync always"));
            }
        }
        self.state.stats.net_output_bytes.add(self.out.buf.len() as u64);
        if let Some(t) = &self.client.tenant {
            t.metrics.bytes_out.fetch_add(self.out.buf.len() as u64, Relaxed);
        }
        // Nearly always the socket takes it all at once. A client that does
        // not read is still killable (CLIENT KILL, an output limit, SHUTDOWN)
        // while the rest waits for the socket.
        let written = self.socket.write_now(&self.out.buf)?;
        if written < self.out.buf.len() {
            tokio::select! {
                r = self.socket.write_all(&self.out.buf[written..]) => r?,
                _ = self.client.info.kill.notified() => return Err(std::io::Error::other("killed while writing")),
            }
        }
        self.out.buf.clear();
        if self.out.buf.capacity() > KEEP_CAPACITY {
            self.out.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        Ok(())
    }

    /// Runs a long command on the blocking pool: the connection's state and
    /// output go with it and come back with its reply, while this worker
    /// serves other connections (other tenants' above all). The space is
    /// marked busy meanwhile, so its other connections wait instead of
    /// blocking a worker on its lock. False means close.
    async fn run_offloaded(&mut self, argv: Vec<Vec<u8>>, mark_busy: bool) -> bool {
        let tenant = self.client.tenant.clone();
        let space = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
        let _busy = mark_busy.then(|| space.offload());
        let (state, owner) = (self.state.clone(), tenant.clone());
        let placeholder = ClientState::new(self.client.info.clone(), false).0;
        let mut client = std::mem::replace(&mut self.client, placeholder);
        let mut out = std::mem::take(&mut self.out);
        let touch = !client.info.no_touch.load(Relaxed);
        let work = tokio::task::spawn_blocking(move || {
            let space = owner.as_deref().map_or(&state.global, |t| &t.space);
            let args: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
            let now_ms = state.now_ms();
            let mark = out.buf.len();
            let mut ctx = Ctx { state: &state, client: &mut client, out: &mut out, now_ms, in_exec: false, touch, space };
            let ok = execute_contained(&mut ctx, &args);
            if ctx.out.over_limit() {
                ctx.output_overflow(mark);
            }
            apply_reply_mode(&mut client, &mut out, mark);
            (client, out, ok)
        });
        let (client, out, ok) = work.await.expect("handler panics are contained");
        self.client = client;
        self.out = out;
        ok && !self.client.close_after_reply
    }

    /// Whether this is one of a tenant's own connections and the tenant
    /// has moved (one relaxed load).
    fn tenant_moved(&self) -> bool {
        self.client.bound && self.client.tenant.as_ref().is_some_and(|t| t.is_moved())
    }

    /// The client's tenant lives on another node now: this connection
    /// becomes a pipe to a connection there that has the tenant's identity
    /// (TENANT.BIND) and this one's state (database, protocol, name,
    /// subscriptions, a MULTI in progress). Replies come back through here;
    /// the client sees nothing. Returns when either side closes.
    async fn forward(&mut self) -> std::io::Result<()> {
        self.forward_with(None).await
    }

    /// [`Conn::forward`], sending `pending` (a blocked command, its timeout
    /// what is left of it) first: its reply is the client's.
    async fn forward_with(&mut self, pending: Option<Vec<Vec<u8>>>) -> std::io::Result<()> {
        self.flush().await?;
        let t = self.client.tenant.clone().expect("a moved tenant's connection");
        let to = self.forward_target(&t);
        self.moving_push(&to.addr).await?;
        self.forward_to(t.id(), &to, pending, None).await
    }

    /// Where a moved tenant's clients go: in a cluster, its owner as the
    /// directory has it (it may have moved on since it left here); else
    /// where it went from here.
    fn forward_target(&self, t: &Tenant) -> crate::tenancy::tenant::Moved {
        if let Some(Ok((_, addr))) = self.state.directory().and_then(|d| d.elsewhere(t.id())) {
            return crate::tenancy::tenant::Moved { addr, auth: self.state.peer_auth() };
        }
        t.moved().expect("moved")
    }

    /// Serves the client through the tenant's node `to`: hands its socket
    /// over when that node runs on this machine, else relays both ways over
    /// `peer` (a connection already serving as the tenant there) or a new one
    /// given this one's identity and state. Returns when either side closes.
    async fn forward_to(
        &mut self,
        id: &str,
        to: &crate::tenancy::tenant::Moved,
        pending: Option<Vec<Vec<u8>>>,
        peer: Option<super::peer::Peer>,
    ) -> std::io::Result<()> {
        if self.hand_over(id, to, pending.as_ref()).await {
            return Ok(());
        }
        let mut peer = match peer {
            Some(p) => p,
            None => forwarding_connection(to, self.handover_requests(id)).await?,
        };
        tracing::debug!(client = self.client.id(), tenant = %id, to = %to.addr, "forwarding");
        let early = peer.take_buffered();
        if !early.is_empty() {
            self.socket.write_all(&early).await?;
        }
        let (mut up_read, mut up_write) = peer.stream.into_split();
        if let Some(request) = pending {
            let args: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
            up_write.write_all(&super::peer::encode(&args)).await?;
        }
        up_write.write_all(&self.inbuf).await?;
        self.inbuf.clear();
        let mut down = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
                self.inbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                r = self.socket.read_into(&mut self.inbuf) => {
                    if r? == 0 {
                        return Ok(());
                    }
                    up_write.write_all(&self.inbuf).await?;
                    self.inbuf.clear();
                }
                r = up_read.read_buf(&mut down) => {
                    if r? == 0 {
                        return Ok(());
                    }
                    self.socket.write_all(&down).await?;
                    down.clear();
                }
                _ = self.client.info.kill.notified() => return Ok(()),
            }
        }
    }

    /// AUTH (or HELLO ... AUTH) as a tenant that node `route.node` owns: the
    /// request goes there, on a connection of this node's, and the owner's
    /// reply is the client's. Accepted, the client is served through the
    /// owner from then on (true: this connection is done); refused, it goes
    /// on here as it was.
    async fn route(&mut self, route: super::client::Route, request: Vec<Vec<u8>>) -> std::io::Result<bool> {
        self.flush().await?;
        let name = self.client.info.name.lock().clone();
        let setup = OwnerSetup { auth: route.auth.clone(), hops: self.client.hops + 1, resp3: self.out.resp3, name };
        let asked = tokio::time::timeout(FORWARD_TIMEOUT, ask_owner(&route, setup, &request)).await;
        let (peer, reply, accepted) = match asked {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return self.route_failed(&route, &e.to_string()),
            Err(_) => return self.route_failed(&route, "no answer in time"),
        };
        self.socket.write_all(&reply).await?;
        if !accepted {
            return Ok(false);
        }
        // What the owner's connection is now: the tenant's database 0, and
        // HELLO's protocol and name.
        self.client.db = 0;
        if request[0].eq_ignore_ascii_case(b"hello") {
            let args: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
            self.out.resp3 = args.get(1).is_some_and(|v| *v == b"3");
            if let Some(i) = args.iter().position(|a| a.eq_ignore_ascii_case(b"setname")) {
                *self.client.info.name.lock() = String::from_utf8_lossy(args.get(i + 1).copied().unwrap_or_default()).into_owned();
            }
        }
        tracing::debug!(client = self.client.id(), tenant = %route.tenant, node = %route.node, "routing to the tenant's node");
        let to = crate::tenancy::tenant::Moved { addr: route.addr.clone(), auth: route.auth.clone() };
        self.forward_to(&route.tenant, &to, None, Some(peer)).await?;
        Ok(true)
    }

    fn route_failed(&mut self, route: &super::client::Route, why: &str) -> std::io::Result<bool> {
        self.out.error(&format!(
            "CLUSTERDOWN tenant '{}' lives on node '{}' ({}), which cannot be reached now: {why}",
            route.tenant, route.node, route.addr
        ));
        Ok(false)
    }

    /// Where the tenant went, for a RESP3 client that opted in and
    /// reconnects itself (as Redis Enterprise's smart client handoff):
    /// MOVING <seq> <secs> <addr>.
    async fn moving_push(&mut self, addr: &str) -> std::io::Result<()> {
        if self.client.maint_notifications && self.out.resp3 {
            self.out.push(4);
            self.out.bulk(b"MOVING");
            self.out.int(1);
            self.out.int(0);
            self.out.bulk(addr.as_bytes());
            self.flush().await?;
        }
        Ok(())
    }

    /// When the tenant's new node runs on this machine, hands it the client's
    /// socket itself (see `handover`); true once this connection must stop
    /// serving the client (taken over, or perhaps taken: never both read it).
    async fn hand_over(&mut self, id: &str, to: &crate::tenancy::tenant::Moved, pending: Option<&Vec<Vec<u8>>>) -> bool {
        let Some(port) = super::handover::local_port(&to.addr) else { return false };
        let encode = |request: &Vec<Vec<u8>>| {
            let args: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
            super::peer::encode(&args)
        };
        let setup = self.handover_requests(id).iter().flat_map(encode).collect();
        let mut input = pending.map(encode).unwrap_or_default();
        input.extend_from_slice(&self.inbuf);
        let h = super::handover::Handover { auth: to.auth.as_deref().unwrap_or(""), tenant: id, setup, input };
        match super::handover::send(port, self.socket.raw_fd(), &h).await {
            super::handover::Outcome::NotTaken => false,
            outcome => {
                tracing::debug!(client = self.client.id(), tenant = id, to = %to.addr, ?outcome, "handed the client's socket over");
                self.inbuf.clear();
                true
            }
        }
    }

    /// The requests that give a fresh connection on the tenant's new node
    /// this one's identity and state.
    fn handover_requests(&self, id: &str) -> Vec<Vec<Vec<u8>>> {
        let word = |s: &str| s.as_bytes().to_vec();
        let mut v = vec![vec![word("TENANT.BIND"), word(id)]];
        if self.client.db != 0 {
            v.push(vec![word("SELECT"), self.client.db.to_string().into_bytes()]);
        }
        if self.out.resp3 {
            v.push(vec![word("HELLO"), word("3")]);
        }
        let name = self.client.info.name.lock().clone();
        if !name.is_empty() {
            v.push(vec![word("CLIENT"), word("SETNAME"), name.into_bytes()]);
        }
        for (verb, names) in
            [("SUBSCRIBE", &self.client.channels), ("PSUBSCRIBE", &self.client.patterns), ("SSUBSCRIBE", &self.client.shard_channels)]
        {
            if !names.is_empty() {
                let mut r = vec![word(verb)];
                r.extend(names.iter().cloned());
                v.push(r);
            }
        }
        if let Some(queued) = &self.client.multi {
            v.push(vec![word("MULTI")]);
            v.extend(queued.iter().cloned());
        }
        v
    }

    /// Charges the tenant for what this connection holds now: unparsed
    /// input, unsent replies, its MULTI queue, subscriptions and queued
    /// messages. (Buffers' spare capacity is not charged: it is bounded by
    /// `KEEP_CAPACITY` once idle, and a tenant with a 20 KB quota must still
    /// be able to connect.)
    fn recharge(&mut self, with_input: bool) {
        if self.client.tenant.is_some() {
            let input = if with_input { self.inbuf.len() } else { 0 };
            let buffers = input + self.out.buf.len() + self.messages.pending.bytes();
            self.client.charge(buffers as u64 + self.client.held_bytes());
        }
    }

    /// Releases what the client held in shared registries.
    fn cleanup(&mut self) {
        let mut sink = Out::default();
        let tenant = self.client.tenant.clone();
        let space = tenant.as_deref().map_or(&self.state.global, |t| &t.space);
        let mut ctx = Ctx { state: &self.state, client: &mut self.client, out: &mut sink, now_ms: 0, in_exec: false, touch: false, space };
        crate::commands::cleanup_client(&mut ctx);
        if let (Some(t), true) = (&tenant, self.client.bound) {
            t.disconnect();
        }
    }
}

/// Writes a queued message as its receiver's protocol renders it.
fn deliver(out: &mut Out, subscribed: bool, m: Message) {
    match m.kind {
        Kind::Publish | Kind::Shard => {
            match &m.pattern {
                Some(p) => {
                    out.push(4);
                    out.bulk(b"pmessage");
                    out.bulk(p);
                }
                None => {
                    out.push(3);
                    out.bulk(if m.kind == Kind::Shard { b"smessage" } else { b"message" });
                }
            }
            out.bulk(&m.channel);
            out.bulk(&m.payload);
        }
        Kind::Invalidate => {
            // RESP3 clients get a push; a RESP2 client only as another's
            // redirect target in pub/sub mode, as a message (Redis's rule).
            if out.resp3 {
                out.push(2);
                out.bulk(b"invalidate");
            } else if subscribed {
                out.push(3);
                out.bulk(b"message");
                out.bulk(crate::space::tracking::CHANNEL);
            } else {
                return;
            }
            if m.payload.is_empty() {
                out.null();
            } else {
                out.buf.extend_from_slice(&m.payload);
            }
        }
        Kind::Monitor => out.buf.extend_from_slice(&m.payload),
        Kind::RedirectBroken => {
            if out.resp3 {
                out.push(2);
                out.bulk(b"tracking-redir-broken");
                out.buf.extend_from_slice(b":");
                out.buf.extend_from_slice(&m.payload);
                out.buf.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// How long forwarding waits for the tenant's new node to answer its setup.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A blocking command again with `remaining_ms` as its timeout (None:
/// forever): the last argument of BLPOP and its kind, the first of BLMPOP
/// and BZMPOP, XREAD's and XREADGROUP's BLOCK.
fn with_timeout(argv: &[Vec<u8>], remaining_ms: Option<u64>) -> Vec<Vec<u8>> {
    let mut v = argv.to_vec();
    let name = String::from_utf8_lossy(&v[0]).to_ascii_lowercase();
    // 0 means forever; a deadline just reached still waits a moment.
    let ms = remaining_ms.map_or(0, |ms| ms.max(1));
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000).into_bytes();
    match name.as_str() {
        "blmpop" | "bzmpop" if v.len() > 1 => v[1] = secs,
        "xread" | "xreadgroup" => {
            if let Some(i) = v.iter().position(|a| a.eq_ignore_ascii_case(b"block")).filter(|i| i + 1 < v.len()) {
                v[i + 1] = ms.to_string().into_bytes();
            }
        }
        _ => {
            if let Some(last) = v.last_mut() {
                *last = secs;
            }
        }
    }
    v
}

/// Replies a handover request gets: one per channel for the subscribes.
fn replies_to(args: &[&[u8]]) -> usize {
    let subscribe = ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"].iter().any(|w| args[0].eq_ignore_ascii_case(w.as_bytes()));
    if subscribe { args.len() - 1 } else { 1 }
}

/// CLIENT REPLY: drops the reply just written (from `mark`) when replies
/// are off or this one is skipped, and moves SKIP on to the next command.
fn apply_reply_mode(client: &mut ClientState, out: &mut Out, mark: usize) {
    match client.reply {
        ReplyMode::On => {}
        ReplyMode::Off => out.buf.truncate(mark),
        ReplyMode::Skip => {
            out.buf.truncate(mark);
            client.reply = ReplyMode::On;
        }
        ReplyMode::SkipNext => client.reply = ReplyMode::Skip,
    }
}

/// What a routed client's connection on its tenant's owner starts with.
struct OwnerSetup {
    /// This node's (admin) password there.
    auth: Option<String>,
    /// Nodes the client will have passed through.
    hops: u8,
    resp3: bool,
    name: String,
}

/// Opens a connection to the owner as this node (its admin), says how many
/// hops the client has made, gives it the client's protocol and name, then
/// sends the request: that connection, the reply as it came, and whether it
/// was accepted.
async fn ask_owner(
    route: &super::client::Route,
    setup: OwnerSetup,
    request: &[Vec<u8>],
) -> std::io::Result<(super::peer::Peer, BytesMut, bool)> {
    // HELLO carries its own protocol.
    let resp3 = setup.resp3 && !request[0].eq_ignore_ascii_case(b"hello");
    let hops = setup.hops.to_string();
    let mut peer = super::peer::Peer::open(&route.addr, setup.auth.as_deref(), Some(hops.as_bytes()), resp3, FORWARD_TIMEOUT).await?;
    if !setup.name.is_empty() {
        peer.expect_ok(&[b"CLIENT", b"SETNAME", setup.name.as_bytes()], FORWARD_TIMEOUT).await?;
    }
    let args: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
    let (frame, raw) = peer.ask_raw(&args, FORWARD_TIMEOUT).await?;
    Ok((peer, raw, !matches!(frame, crate::protocol::Frame::Error(_))))
}

/// A connection to `to` given the tenant's identity and a connection's
/// state by `setup` (TENANT.BIND, SELECT, ...; see `handover_requests`).
async fn forwarding_connection(to: &crate::tenancy::tenant::Moved, setup: Vec<Vec<Vec<u8>>>) -> std::io::Result<super::peer::Peer> {
    let mut peer = super::peer::Peer::connect(&to.addr, to.auth.as_deref(), FORWARD_TIMEOUT).await?;
    for request in setup {
        let args: Vec<&[u8]> = request.iter().map(|a| a.as_slice()).collect();
        let expected = replies_to(&args);
        peer.stream.write_all(&super::peer::encode(&args)).await?;
        for _ in 0..expected {
            if let crate::protocol::Frame::Error(e) =
                tokio::time::timeout(FORWARD_TIMEOUT, peer.read()).await.map_err(std::io::Error::other)??
            {
                return Err(std::io::Error::other(format!("forwarding to {}: {e}", to.addr)));
            }
        }
    }
    Ok(peer)
}
