//! This server as one node of many: it joins the tenant directory
//! (`crate::cluster`) and keeps its own tenants and their records agreeing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::state::ServerState;
use crate::cluster::{DirError, Directory, TenantState};
use crate::config::Config;
use crate::tenancy::tenant::Moved;

/// Starts this node's part in the tenant directory and waits a little for
/// its first read, so a node that just started already knows the others; a
/// node whose etcd does not answer starts anyway and joins when it does.
pub(super) async fn join(state: &Arc<ServerState>, config: &Config, listening: SocketAddr) -> std::io::Result<()> {
    let c = &config.cluster;
    if c.advertise.is_empty() && listening.ip().is_unspecified() {
        // Other nodes cannot reach "0.0.0.0": the address must be told.
        return Err(std::io::Error::other(format!(
            "listening on {listening}: set [cluster] advertise to where other nodes reach this one"
        )));
    }
    let addr = if c.advertise.is_empty() { listening.to_string() } else { c.advertise.clone() };
    let settings = crate::cluster::Settings { node_id: c.node_id.clone(), addr, endpoints: c.etcd.clone() };
    let weak = Arc::downgrade(state);
    let memory = Box::new(move || weak.upgrade().map_or((0, 0), |s| memory_figures(&s)));
    let dir = crate::cluster::Directory::start(settings, memory);
    if !dir.wait_ready(Duration::from_secs(5)).await {
        tracing::warn!("tenant directory not read yet (etcd at {} does not answer); serving meanwhile", c.etcd.join(", "));
    }
    tokio::spawn(reconcile_on_changes(Arc::downgrade(state), dir.changes(), Arc::downgrade(&dir)));
    let _ = state.cluster.set(dir);
    Ok(())
}

/// What this node publishes of its memory: used, and what it may still
/// take (`maxmemory` less used, or the machine's available memory).
fn memory_figures(state: &ServerState) -> (u64, u64) {
    let used = state.used_memory() as u64;
    let free = match state.maxmemory.load(Relaxed) {
        0 => available_memory().unwrap_or(0),
        max => max.saturating_sub(used),
    };
    (used, free)
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// After every change to the view: `reconcile`.
/// (Holds neither strongly: a server dropped as in a crash takes its
/// directory with it.)
async fn reconcile_on_changes(
    state: std::sync::Weak<ServerState>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    dir: std::sync::Weak<Directory>,
) {
    while changes.changed().await.is_ok() {
        let (Some(state), Some(dir)) = (state.upgrade(), dir.upgrade()) else { return };
        if dir.loaded() {
            reconcile(&state, &dir).await;
        }
    }
}

/// Makes this node's tenants agree with their records: a tenant with no
/// record (made before this node joined, or while etcd did not answer) is
/// recorded as this node's; one whose record names another owner (this
/// node died between a move's cut-over and its note of it) is cut over as
/// the move would have: its clients forward to that owner, its data goes. Tenants moving in or out are the move's business.
async fn reconcile(state: &Arc<ServerState>, dir: &Directory) {
    for t in state.tenants.list() {
        if t.importing.load(Relaxed) || t.migration.lock().is_some() || t.is_moved() {
            continue;
        }
        match dir.locate(t.id()) {
            None if dir.reachable().is_ok() => match dir.create_tenant(t.id(), dir.node_id()).await {
                Ok(_) => tracing::info!(tenant = %t.id(), "recorded this node's tenant in the directory"),
                Err(DirError::Exists { .. }) => {}
                Err(e) => tracing::warn!(tenant = %t.id(), "cannot record this node's tenant: {e}"),
            },
            // (Not while the record says "moving": a target that just
            // committed may see it before the cut-over reaches its view.)
            Some((l, Some(owner))) if l.record.owner != dir.node_id() && l.record.state != TenantState::Moving => {
                tracing::warn!(tenant = %t.id(), owner = %l.record.owner, "the directory gives this tenant to another node; forwarding its clients there");
                // As a move's cut-over: what is here is not the tenant's
                // data any more, and the log says so for restarts. (On the
                // blocking pool: it waits for the tenant's running command.)
                let to = Moved { addr: owner.info.addr, auth: state.peer_auth() };
                let (state, t) = (state.clone(), t.clone());
                let _ = tokio::task::spawn_blocking(move || crate::commands::cut_over(&state, &t, &to)).await;
            }
            _ => {}
        }
    }
}
