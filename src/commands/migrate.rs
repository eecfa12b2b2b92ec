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

use super::args::{int, lower};
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
    let mut peer = Peer::connect(&to.addr, to.auth.as_deref(), timeout).await.map_err(|e| ("connect", e.to_string()))?;
    // From here the tenant's own writes wait (its reads go on).
    t.space.pause.pause(u64::MAX, false, state.now_ms());
    let paused = Instant::now();
    let (st, tt) = (state.clone(), t.clone());
    let (stream, keys) = tokio::task::spawn_blocking(move || (transfer::export(&st, &tt), tt.space.keys() as u64))
        .await
        .map_err(|e| ("copy", e.to_string()))?;
    peer.expect_ok(&[b"TENANT.IMPORT", &stream], timeout).await.map_err(|e| ("import", e.to_string()))?;
    cut_over(state, t, to);
    Ok(Report {
        keys,
        bytes: stream.len() as u64,
        duration_ms: started.elapsed().as_millis() as u64,
        write_pause_ms: paused.elapsed().as_millis() as u64,
    })
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

/// TENANT.IMPORT <stream>: creates the tenant a move streams here, makes
/// it durable (a compaction that includes it), then replies OK.
pub fn import(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
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

/// TENANT.BIND <id>: this (admin) connection becomes one of the tenant's
/// own, as if it had authenticated as the tenant; what a node forwarding
/// the tenant's clients here opens for each of them.
pub fn bind(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let t = ctx.state.tenants.get_tenant(&String::from_utf8_lossy(a[1])).map_err(|e| CmdError::msg(e.to_string()))?;
    super::connection::bind(ctx, Some(t))?;
    ctx.out.ok();
    Ok(())
}
