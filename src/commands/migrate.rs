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
use super::{CmdError, CmdResult, Ctx};
use crate::persist::record::Record;
use crate::persist::transfer;
use crate::protocol::Out;
use crate::server::client::{Deferred, DeferredReply};
use crate::server::peer::Peer;
use crate::server::state::ServerState;
use crate::tenancy::Tenant;
use crate::tenancy::tenant::Moved;

const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// TENANT.MIGRATE <id> <host:port> [AUTH <password>] [TIMEOUT <ms>].
pub fn migrate(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = ctx.state.tenants.get_tenant(&String::from_utf8_lossy(a[1])).map_err(|e| CmdError::msg(e.to_string()))?;
    if t.moved().is_some() {
        return Err(CmdError::err(format!("tenant '{}' has already moved", t.id())));
    }
    let to = String::from_utf8_lossy(a[2]).into_owned();
    let (mut auth, mut timeout_ms) = (None, DEFAULT_TIMEOUT_MS);
    let mut i = 3;
    while i < a.len() {
        match (lower(a[i]).as_str(), a.get(i + 1)) {
            ("auth", Some(pw)) => auth = Some(String::from_utf8_lossy(pw).into_owned()),
            ("timeout", Some(ms)) => timeout_ms = u64::try_from(int(ms)?).map_err(|_| CmdError::err("TIMEOUT must be positive"))?,
            _ => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    ctx.client.deferred = Some(run(ctx.state.arc(), t, Moved { addr: to, auth }, Duration::from_millis(timeout_ms.max(1))));
    Ok(())
}

/// What a finished move reports.
struct Report {
    keys: u64,
    bytes: u64,
    duration_ms: u64,
    write_pause_ms: u64,
}

fn run(state: Arc<ServerState>, t: Arc<Tenant>, to: Moved, timeout: Duration) -> Deferred {
    Box::pin(async move {
        let started = Instant::now();
        let result = move_tenant(&state, &t, &to, timeout).await;
        // Whatever happened, held writes go on: forwarded when it moved,
        // here when it did not.
        t.space.pause.unpause();
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

async fn move_tenant(state: &Arc<ServerState>, t: &Arc<Tenant>, to: &Moved, timeout: Duration) -> Result<Report, (&'static str, String)> {
    let started = Instant::now();
    let id = t.id().to_string();
    let mut peer = Peer::connect(&to.addr, to.auth.as_deref(), timeout).await.map_err(|e| ("connect", e.to_string()))?;
    // With the log on, its tap carries the writes made after the copy, and
    // writes wait only for the last of them; without it, for the whole move.
    let aof = state.persistence().map(|p| p.aof.clone());
    let mut paused = None;
    if aof.is_none() {
        t.space.pause.pause(u64::MAX, false, state.now_ms());
        paused = Some(Instant::now());
    }
    let tap = Tap(aof.clone());
    let (st, tt, a) = (state.clone(), t.clone(), aof.clone());
    let (stream, keys, tapping) = tokio::task::spawn_blocking(move || {
        let mut tapping = false;
        let stream = transfer::export_at_cut(&st, &tt, || tapping = a.as_ref().is_some_and(|a| a.start_tap()));
        (stream, tt.space.keys() as u64, tapping)
    })
    .await
    .map_err(|e| ("copy", e.to_string()))?;
    if aof.is_some() && !tapping {
        return Err(("copy", "another tenant's move is in progress on this node".into()));
    }
    peer.expect_ok(&[b"TENANT.IMPORT", &stream], timeout).await.map_err(|e| ("import", e.to_string()))?;
    let mut sent = stream.len() as u64;
    let result = async {
        if let Some(aof) = &aof {
            // Catch up while writes go on, until a round brings little.
            for _ in 0..CATCH_UP_ROUNDS {
                let n = send_writes(&mut peer, &id, aof.drain_tap(), timeout).await?;
                sent += n;
                if n < CATCH_UP_DONE {
                    break;
                }
            }
            // Then hold writes, let those running finish (they log before
            // they release the lock), and send the last of them.
            t.space.pause.pause(u64::MAX, false, state.now_ms());
            paused = Some(Instant::now());
            drop(t.space.lock_exclusive());
            sent += send_writes(&mut peer, &id, aof.drain_tap(), timeout).await?;
        }
        peer.expect_ok(&[b"TENANT.IMPORT", id.as_bytes(), b"COMMIT"], timeout).await.map_err(|e| ("commit", e.to_string()))?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // The target discards what it imported (best effort: a target that
        // cannot be reached holds an invisible copy nobody can connect to).
        let _ = peer.call(&[b"TENANT.IMPORT", id.as_bytes(), b"ABORT"], timeout).await;
        return Err(e);
    }
    cut_over(state, t, to);
    drop(tap);
    Ok(Report {
        keys,
        bytes: sent,
        duration_ms: started.elapsed().as_millis() as u64,
        write_pause_ms: paused.map_or(0, |p| p.elapsed().as_millis() as u64),
    })
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

/// Sends the tenant's writes among `tapped` (TENANT.APPLY); the bytes sent.
async fn send_writes(peer: &mut Peer, id: &str, tapped: Vec<u8>, timeout: Duration) -> Result<u64, (&'static str, String)> {
    let Some(writes) = transfer::writes_of(tapped, id).map_err(|e| ("catch-up", e.to_string()))? else { return Ok(0) };
    peer.expect_ok(&[b"TENANT.APPLY", id.as_bytes(), &writes], timeout).await.map_err(|e| ("catch-up", e.to_string()))?;
    Ok(writes.len() as u64)
}

/// The target owns the tenant now: here it is marked moved (under its
/// space's exclusive lock, so no command of it runs on half of it), its
/// data goes, and the log says it is gone, so a restart does not bring it
/// back as the owner.
fn cut_over(state: &ServerState, t: &Tenant, to: &Moved) {
    let _alone = t.space.lock_exclusive();
    t.set_moved(to.clone());
    t.space.clear();
    if let Some(p) = state.persistence() {
        p.log(&Record::TenantDelete(t.id().to_string()));
    }
}

/// TENANT.IMPORT <stream>: creates the tenant a move streams here (nobody
/// may connect as it yet), makes it durable (a compaction that includes
/// it), then replies OK. TENANT.IMPORT <id> COMMIT makes it this node's
/// (durably); TENANT.IMPORT <id> ABORT discards it.
pub fn import(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    if a.len() == 3 {
        return finish_import(ctx, a[1], a[2]);
    }
    if a.len() != 2 {
        return Err(CmdError::Syntax);
    }
    let stream = a[1].to_vec();
    let state = ctx.state.arc();
    ctx.client.deferred = Some(Box::pin(async move {
        let st = state.clone();
        let imported = tokio::task::spawn_blocking(move || transfer::import(&st, &stream).map(|t| t.id().to_string())).await;
        let result = match imported {
            Ok(Ok(id)) => transfer::make_durable(&state).await.map(|()| id),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let reply: DeferredReply = Box::new(move |out: &mut Out| match result {
            Ok(id) => {
                tracing::info!(tenant = %id, "tenant imported");
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
        if let Ok(t) = ctx.state.tenants.delete_tenant(t.id()) {
            t.space.clear();
        }
        if let Some(p) = ctx.state.persistence() {
            p.log(&Record::TenantDelete(t.id().to_string()));
        }
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
        ctx.client.persist_seq = p.log_tenant(&t, false);
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
