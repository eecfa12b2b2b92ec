//! TENANT.MIGRATE (the source's side of a tenant's move), TENANT.IMPORT
//! (the target's) and TENANT.BIND (a forwarding connection taking the
//! tenant's identity on the target).
//!
//! The move: the tenant's writes are held (CLIENT PAUSE WRITE of its own
//! clients: they wait, nothing is refused), its records are streamed to
//! the target, which imports them and makes them durable before it says
//! OK; then the source marks the tenant moved, drops its data, logs that it
//! no longer has it, and releases the held writes, which its connections
//! now forward to the target (`server::connection`). A failure at any step
//! before the target's OK leaves the tenant active on the source.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::Ordering::Relaxed;

use super::args::{int, is, lower};
use super::migrate_directory as directory;
use super::{CmdError, CmdResult, Ctx};
use crate::persist::record::Record;
use crate::persist::transfer;
use crate::protocol::Out;
use crate::server::client::{Deferred, DeferredReply};
use crate::server::peer::{Peer, encode_head};
use crate::server::state::ServerState;
use crate::tenancy::Tenant;
use crate::tenancy::tenant::{Migration, Moved};
use tokio::io::AsyncWriteExt;

const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// TENANT.MIGRATE <id> <host:port> [AUTH <password>] [TIMEOUT <ms>].
pub fn migrate(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if super::cluster_admin::relayed_to_owner(ctx, a)? {
        return Ok(());
    }
    let t = ctx.state.tenants.get_tenant(&String::from_utf8_lossy(a[1])).map_err(|e| CmdError::msg(e.to_string()))?;
    if a.len() == 3 && is(a[2], "abort") {
        let Some(m) = t.migration.lock().clone() else {
            return Err(CmdError::err(format!("no move of tenant '{}' is in progress", t.id())));
        };
        m.abort.store(true, Relaxed);
        ctx.out.ok();
        return Ok(());
    }
    if t.moved().is_some() {
        return Err(CmdError::err(format!("tenant '{}' has already moved", t.id())));
    }
    let (to, to_node) = target_node(ctx, &String::from_utf8_lossy(a[2]))?;
    // Without AUTH, the shared `[cluster] secret` (when set) authenticates.
    let auth = if to_node.is_some() { ctx.state.peer_auth() } else { ctx.state.cluster_secret.clone() };
    let mut options = Options { auth, timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS), max_pause: None, to_node };
    let mut i = 3;
    while i < a.len() {
        let ms = |v: &[u8]| -> Result<Duration, CmdError> {
            let n = u64::try_from(int(v)?).map_err(|_| CmdError::err("TIMEOUT and MAXPAUSE must be positive"))?;
            Ok(Duration::from_millis(n.max(1)))
        };
        match (lower(a[i]).as_str(), a.get(i + 1)) {
            ("auth", Some(pw)) => options.auth = Some(String::from_utf8_lossy(pw).into_owned()),
            ("timeout", Some(v)) => options.timeout = ms(v)?,
            ("maxpause", Some(v)) => options.max_pause = Some(ms(v)?),
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    let progress = Arc::new(Migration { to: to.clone(), ..Migration::default() });
    {
        let mut current = t.migration.lock();
        if current.is_some() {
            return Err(CmdError::err(format!("a move of tenant '{}' is already in progress", t.id())));
        }
        *current = Some(progress.clone());
    }
    let to = Moved { addr: to, auth: options.auth.clone() };
    ctx.client.deferred = Some(run(ctx.state.arc(), t, to, options, progress));
    Ok(())
}

/// Where TENANT.MIGRATE's target is: its address, and its node id when the
/// directory knows it (by id, or by address). In a cluster a node id is
/// what an operator gives; an address no node has is moved to without the
/// directory (as on a single node).
fn target_node(ctx: &Ctx, to: &str) -> Result<(String, Option<String>), CmdError> {
    let Some(dir) = ctx.state.directory() else { return Ok((to.to_string(), None)) };
    let node = dir
        .node(to)
        .map(|n| (to.to_string(), n))
        .or_else(|| dir.nodes().into_iter().find(|n| n.addr == to).and_then(|n| dir.node(&n.id).map(|info| (n.id, info))));
    match node {
        Some((id, _)) if id == dir.node_id() => Err(CmdError::err(format!("node '{id}' is this node"))),
        Some((id, n)) if !n.alive => Err(CmdError::msg(format!("CLUSTERDOWN node '{id}' is down"))),
        Some((id, n)) => Ok((n.info.addr, Some(id))),
        None if to.contains(':') => Ok((to.to_string(), None)),
        None => Err(CmdError::err(format!("no node '{to}' in the directory (see TENANT.NODES)"))),
    }
}

/// TENANT.MIGRATE's options.
struct Options {
    /// The target's node id: the directory records the move.
    to_node: Option<String>,
    auth: Option<String>,
    timeout: Duration,
    /// The most the tenant's writes may be held; a longer last round
    /// abandons the move.
    max_pause: Option<Duration>,
}

/// What a finished move reports.
struct Report {
    keys: u64,
    bytes: u64,
    duration_ms: u64,
    write_pause_ms: u64,
}

fn run(state: Arc<ServerState>, t: Arc<Tenant>, to: Moved, options: Options, progress: Arc<Migration>) -> Deferred {
    Box::pin(async move {
        let started = Instant::now();
        let result = move_tenant(&state, &t, &to, &options, &progress).await;
        // Whatever happened, held writes go on: forwarded when it moved,
        // here when it did not.
        t.space.pause.unpause();
        *t.migration.lock() = None;
        let reply: DeferredReply = Box::new(move |out: &mut Out| match result {
            Ok(r) => {
                tracing::info!(tenant = %t.id(), to = %to.addr, keys = r.keys, bytes = r.bytes, pause_ms = r.write_pause_ms, "tenant moved");
                out.map(5);
                for (k, v) in [("keys", r.keys), ("bytes", r.bytes), ("duration_ms", r.duration_ms), ("write_pause_ms", r.write_pause_ms)] {
                    out.bulk(k.as_bytes());
                    out.int(v as i64);
                }
                out.bulk(b"forwarded_clients");
                out.int(t.metrics.connections.load(std::sync::atomic::Ordering::Relaxed) as i64);
            }
            Err((phase, why)) => {
                tracing::warn!(tenant = %t.id(), to = %to.addr, phase, "tenant move failed: {why}; it stays here");
                out.error(&format!("ERR tenant move failed in phase '{phase}' after {} ms: {why}", started.elapsed().as_millis()));
            }
        });
        reply
    })
}

async fn move_tenant(
    state: &Arc<ServerState>,
    t: &Arc<Tenant>,
    to: &Moved,
    options: &Options,
    progress: &Migration,
) -> Result<Report, (&'static str, String)> {
    let started = Instant::now();
    let id = t.id().to_string();
    let phase = |name: &'static str| enter_phase(progress, t, started, name);
    // In a cluster the record says "moving" while the copy runs, and the
    // cut-over is the directory's transaction giving the tenant to the target.
    let directory = options.to_node.as_ref().and_then(|node| state.directory().map(|d| (d.clone(), node.clone())));
    let mut moving = None;
    if let Some((dir, _)) = &directory {
        phase("directory")?;
        moving = Some(directory::mark_moving(dir, &id).await.map_err(|e| ("directory", e))?);
    }
    let result = copy_and_commit(state, t, to, options, progress, directory.as_ref().zip(moving.as_ref()), started).await;
    if let (Err(_), Some((dir, _))) = (&result, &directory) {
        directory::mark_active(dir, &id).await;
    }
    result
}

/// The move enters phase `name`, unless TENANT.MIGRATE ABORT asked it to stop.
fn enter_phase(progress: &Migration, t: &Tenant, started: Instant, name: &'static str) -> Result<(), (&'static str, String)> {
    if progress.abort.load(Relaxed) {
        return Err((name, "aborted (TENANT.MIGRATE ABORT)".into()));
    }
    *progress.phase.lock() = name;
    tracing::info!(tenant = %t.id(), phase = name, at_ms = started.elapsed().as_millis() as u64, "move phase");
    Ok(())
}

/// The copy, the catch-up, the last writes and the commit; in a cluster,
/// the directory's cut-over just before the commit.
async fn copy_and_commit(
    state: &Arc<ServerState>,
    t: &Arc<Tenant>,
    to: &Moved,
    options: &Options,
    progress: &Migration,
    directory: Option<(&(Arc<crate::cluster::Directory>, String), &crate::cluster::Located)>,
    started: Instant,
) -> Result<Report, (&'static str, String)> {
    let timeout = options.timeout;
    let id = t.id().to_string();
    let phase = |name: &'static str| enter_phase(progress, t, started, name);
    phase("connect")?;
    let connect = async { Peer::connect(&to.addr, to.auth.as_deref(), timeout).await.map_err(|e| ("connect", e.to_string())) };
    let mut peer = abortable(progress, "connect", connect).await?;
    // With the log on, its tap carries the writes made after the copy, and
    // writes wait only for the last of them; without it, for the whole move.
    let aof = state.persistence().map(|p| p.aof.clone());
    let mut paused = None;
    if aof.is_none() {
        t.space.pause.pause(u64::MAX, false, state.now_ms());
        paused = Some(Instant::now());
    }
    let tap = Tap(aof.clone());
    phase("copy")?;
    let keys = copy(state, t, &mut peer, aof.clone(), timeout, progress).await?;
    let result = async {
        if let Some(aof) = &aof {
            // Catch up while writes go on, until a round brings little.
            for _ in 0..CATCH_UP_ROUNDS {
                phase("catch-up")?;
                let n = abortable(progress, "catch-up", send_writes(&mut peer, &id, aof.drain_tap(), timeout)).await?;
                progress.bytes_sent.fetch_add(n, Relaxed);
                progress.lag_bytes.store(aof.tap_len() as u64, Relaxed);
                if n < CATCH_UP_DONE {
                    break;
                }
            }
            // Then hold writes, let those running finish (they log before
            // they release the lock), and send the last of them.
            phase("last-writes")?;
            t.space.pause.pause(u64::MAX, false, state.now_ms());
            paused = Some(Instant::now());
            drop(t.space.lock_exclusive());
            let last = abortable(progress, "last-writes", send_last_writes(&mut peer, t, aof.drain_tap(), timeout));
            let n = match options.max_pause {
                Some(max) => tokio::time::timeout(max, last)
                    .await
                    .map_err(|_| ("last-writes", format!("the write pause would pass MAXPAUSE ({} ms)", max.as_millis())))??,
                None => last.await?,
            };
            progress.bytes_sent.fetch_add(n, Relaxed);
            progress.lag_bytes.store(0, Relaxed);
        }
        match directory {
            None => {
                phase("commit")?;
                peer.expect_ok(&[b"TENANT.IMPORT", id.as_bytes(), b"COMMIT"], timeout).await.map_err(|e| ("commit", e.to_string()))?;
            }
            Some(((dir, node), moving)) => {
                phase("directory")?;
                let owned = directory::give(dir, &id, moving, node).await.map_err(|e| ("directory", e))?;
                // Decided: ABORT no longer applies; the target commits, or the
                // directory takes the tenant back.
                *progress.phase.lock() = "commit";
                commit_or_take_back(&mut peer, dir, &id, &owned, timeout).await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // The target discards what it imported (best effort: a target that
        // cannot be reached holds a copy nobody can connect to).
        let _ = peer.call(&[b"TENANT.IMPORT", id.as_bytes(), b"ABORT"], timeout).await;
        return Err(e);
    }
    cut_over(state, t, to);
    drop(tap);
    Ok(Report {
        keys,
        bytes: progress.bytes_sent.load(Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
        write_pause_ms: paused.map_or(0, |p| p.elapsed().as_millis() as u64),
    })
}

/// After the directory gave the tenant to the target: its COMMIT, or else
/// the record taken back (the move then fails and the target discards its
/// copy). The tenant's writes stay held until one of them works: whichever
/// it is, one node must serve every one of them.
async fn commit_or_take_back(
    peer: &mut Peer,
    dir: &crate::cluster::Directory,
    id: &str,
    owned: &crate::cluster::Located,
    timeout: Duration,
) -> Result<(), (&'static str, String)> {
    loop {
        let refused = match peer.expect_ok(&[b"TENANT.IMPORT", id.as_bytes(), b"COMMIT"], timeout).await {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        };
        match directory::take_back(dir, id, owned).await {
            directory::TakeBack::Done => return Err(("commit", refused)),
            directory::TakeBack::Lost(why) => return Err(("commit", format!("{refused}; and {why}"))),
            directory::TakeBack::Retry(why) => {
                tracing::warn!(tenant = %id, "the target did not commit ({refused}) and the directory still gives it the tenant ({why}); trying both again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Streams the tenant's copy to the target, piece by piece as the copy
/// makes them (the next is encoded while the target imports this one), and
/// starts the log's tap at the copy's instant; returns the entries copied.
async fn copy(
    state: &Arc<ServerState>,
    t: &Arc<Tenant>,
    peer: &mut Peer,
    aof: Option<Arc<crate::persist::aof::Aof>>,
    timeout: Duration,
    progress: &Migration,
) -> Result<u64, (&'static str, String)> {
    let failed = |e: String| ("copy", e);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let tapping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (st, tt, tap) = (state.clone(), t.clone(), tapping.clone());
    let exporter = tokio::task::spawn_blocking(move || {
        let at_cut = || tap.store(aof.as_ref().is_none_or(|a| a.start_tap()), Relaxed);
        transfer::export_at_cut(&st, &tt, at_cut, &mut |piece| tx.blocking_send(piece).is_ok())
    });
    let id = t.id().as_bytes();
    // One piece ahead: the next is on its way while the target imports
    // this one (the first, which creates the tenant, is answered first).
    let sent = async {
        let mut unanswered = 0;
        while let Some(piece) = rx.recv().await {
            let first = progress.bytes_sent.load(Relaxed) == 0;
            if first && !tapping.load(Relaxed) {
                return Err(failed("another tenant's move is in progress on this node".into()));
            }
            // The request up to its last argument, then the piece as it is
            // (not copied into one buffer with the rest), then the bulk's end.
            let head: &[&[u8]] = if first { &[b"TENANT.IMPORT"] } else { &[b"TENANT.IMPORT", id, b"DATA"] };
            let head = encode_head(head, piece.len());
            let write = async {
                peer.stream.write_all(&head).await?;
                peer.stream.write_all(&piece).await?;
                peer.stream.write_all(b"\r\n").await
            };
            abortable(progress, "copy", async { write.await.map_err(|e| failed(e.to_string())) }).await?;
            progress.bytes_sent.fetch_add(piece.len() as u64, Relaxed);
            unanswered += 1;
            while unanswered > usize::from(!first) {
                abortable(progress, "copy", answered(peer, timeout)).await?;
                unanswered -= 1;
            }
        }
        for _ in 0..unanswered {
            abortable(progress, "copy", answered(peer, timeout)).await?;
        }
        Ok(())
    }
    .await;
    // Stops the copy if it is still going (its sends fail), and waits for
    // it to let go of the keyspaces.
    drop(rx);
    let copied = exporter.await.map_err(|e| failed(e.to_string()))?;
    sent?;
    copied.map_err(|_| failed("the copy stopped".into()))
}

/// The target's answer to a piece of the copy: OK, or why not.
async fn answered(peer: &mut Peer, timeout: Duration) -> Result<(), (&'static str, String)> {
    match tokio::time::timeout(timeout, peer.read()).await {
        Ok(Ok(crate::protocol::Frame::Error(e))) => Err(("copy", e)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(("copy", e.to_string())),
        Err(_) => Err(("copy", "timed out".into())),
    }
}

/// `work`, or an error as soon as TENANT.MIGRATE ABORT asks (checked every
/// few milliseconds). Not for the commit: once sent, it may have happened.
async fn abortable<T>(
    progress: &Migration,
    phase: &'static str,
    work: impl std::future::Future<Output = Result<T, (&'static str, String)>>,
) -> Result<T, (&'static str, String)> {
    let asked = async {
        while !progress.abort.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        r = work => r,
        _ = asked => Err((phase, "aborted (TENANT.MIGRATE ABORT)".into())),
    }
}

/// Catch-up rounds before the final one, and the size under which a round
/// ends them.
const CATCH_UP_ROUNDS: usize = 20;
const CATCH_UP_DONE: u64 = 256 * 1024;

/// Stops the log's tap however the move ends.
struct Tap(Option<Arc<crate::persist::aof::Aof>>);

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(a) = &self.0 {
            a.stop_tap();
        }
    }
}

/// The last writes, and the tenant's statistics and bill as they are now
/// that its writes are held (the copy's were those at its cut).
async fn send_last_writes(peer: &mut Peer, t: &Tenant, tapped: Vec<u8>, timeout: Duration) -> Result<u64, (&'static str, String)> {
    let id = t.id();
    let mut writes =
        transfer::writes_of(tapped, id).map_err(|e| ("last-writes", e.to_string()))?.unwrap_or_else(|| transfer::TENANT_MAGIC.to_vec());
    Record::TenantStats { tenant: id.to_string(), counters: t.counters(), ledger: t.ledger.items() }.frame_into(&mut writes);
    peer.expect_ok(&[b"TENANT.APPLY", id.as_bytes(), &writes], timeout).await.map_err(|e| ("last-writes", e.to_string()))?;
    Ok(writes.len() as u64)
}

/// Sends the tenant's writes among `tapped` (TENANT.APPLY); the bytes sent.
async fn send_writes(peer: &mut Peer, id: &str, tapped: Vec<u8>, timeout: Duration) -> Result<u64, (&'static str, String)> {
    let Some(writes) = transfer::writes_of(tapped, id).map_err(|e| ("catch-up", e.to_string()))? else { return Ok(0) };
    peer.expect_ok(&[b"TENANT.APPLY", id.as_bytes(), &writes], timeout).await.map_err(|e| ("catch-up", e.to_string()))?;
    Ok(writes.len() as u64)
}

/// The target owns the tenant now: here it is marked moved (under its
/// space's exclusive lock, so no command of it runs on half of it), its
/// data goes, and the log says where it went, so a restart forwards its
/// connections instead of bringing it back as the owner.
pub fn cut_over(state: &ServerState, t: &Tenant, to: &Moved) {
    let _alone = t.space.lock_exclusive();
    t.set_moved(to.clone());
    state.clients.wake_tenant(t.id());
    t.space.clear();
    if let Some(p) = state.persistence() {
        p.log(&Record::Moved { tenant: t.id().to_string(), to: to.addr.clone() });
    }
}

/// TENANT.IMPORT <piece>: creates the tenant whose move streams here from
/// the first piece of its copy (nobody may connect as it yet);
/// TENANT.IMPORT <id> DATA <piece> adds the next. Each is logged as it is
/// applied; the reply to the last waits until the log holds it as durably
/// as `appendfsync` promises. TENANT.IMPORT <id> COMMIT makes the tenant
/// this node's (durably); TENANT.IMPORT <id> ABORT discards it.
pub fn import(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let into = match a.len() {
        2 => None,
        3 => return finish_import(ctx, a[1], a[2]),
        4 if is(a[2], "data") => Some(String::from_utf8_lossy(a[1]).into_owned()),
        _ => return Err(CmdError::Syntax),
    };
    let piece = a[a.len() - 1].to_vec();
    let state = ctx.state.arc();
    ctx.client.deferred = Some(Box::pin(async move {
        let st = state.clone();
        let imported = tokio::task::spawn_blocking(move || transfer::import_piece(&st, &piece, into.as_deref())).await;
        let result = match imported {
            Ok(Ok(p)) if p.complete => match state.persistence() {
                Some(persist) if !persist.aof.durable(p.seq).await => Err("the log cannot be written here".to_string()),
                _ => Ok(Some(p.tenant.id().to_string())),
            },
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let reply: DeferredReply = Box::new(move |out: &mut Out| match result {
            Ok(done) => {
                if let Some(id) = done {
                    tracing::info!(tenant = %id, "tenant imported");
                }
                out.ok();
            }
            Err(e) => out.error(&format!("ERR import failed: {e}")),
        });
        reply
    }));
    Ok(())
}

fn finish_import(ctx: &mut Ctx, id: &[u8], how: &[u8]) -> CmdResult {
    let t = ctx.state.tenants.get_tenant(&String::from_utf8_lossy(id)).map_err(|e| CmdError::msg(e.to_string()))?;
    if !t.importing.load(Relaxed) {
        return Err(CmdError::err(format!("tenant '{}' is not being imported", t.id())));
    }
    if is(how, "abort") {
        crate::persist::load::discard_import(ctx.state, &t);
        ctx.out.ok();
        return Ok(());
    }
    if !is(how, "commit") {
        return Err(CmdError::Syntax);
    }
    // The copy was made durable by its import, the writes since by the log
    // (TENANT.APPLY logs what it replays; the reply waits for the log as any
    // write's does): the tenant is this node's now.
    t.importing.store(false, Relaxed);
    if let Some(p) = ctx.state.persistence() {
        p.log_tenant(&t, false);
        ctx.client.persist_seq = p.log(&Record::Import { tenant: t.id().to_string(), open: false });
    }
    ctx.out.ok();
    Ok(())
}

/// TENANT.APPLY <id> <writes>: the writes a moving tenant made after its
/// copy, replayed into the imported tenant (not yet open here).
pub fn apply(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let id = String::from_utf8_lossy(a[1]).into_owned();
    let t = ctx.state.tenants.get_tenant(&id).map_err(|e| CmdError::msg(e.to_string()))?;
    if !t.importing.load(Relaxed) {
        return Err(CmdError::err(format!("tenant '{id}' is not being imported")));
    }
    let n = transfer::apply(ctx.state, &id, a[2]).map_err(|e| CmdError::err(format!("apply failed: {e}")))?;
    ctx.out.int(n as i64);
    Ok(())
}

/// TENANT.BIND <id>: this (admin) connection becomes one of the tenant's
/// own, as if it had authenticated as the tenant; what a node forwarding
/// the tenant's clients here opens for each of them.
pub fn bind(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = ctx.state.tenants.get_tenant(&String::from_utf8_lossy(a[1])).map_err(|e| CmdError::msg(e.to_string()))?;
    if t.importing.load(Relaxed) {
        return Err(CmdError::err(format!("tenant '{}' is being moved here and not open yet", t.id())));
    }
    super::connection::bind(ctx, Some(t))?;
    ctx.out.ok();
    Ok(())
}
