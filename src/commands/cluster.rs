//! TENANT.NODES and TENANT.LOCATE: the tenant directory as this node knows
//! it (`crate::cluster`). They read the node's view, never etcd, so they
//! answer while etcd is unreachable, with what the node last knew.

use super::{CmdError, CmdResult, Ctx};
use crate::cluster::Directory;
use crate::server::client::Route;
use crate::tenancy::Tenant;

/// This node's directory, or the error for a node on its own.
pub(super) fn directory(ctx: &Ctx) -> Result<std::sync::Arc<Directory>, CmdError> {
    ctx.state
        .cluster
        .get()
        .cloned()
        .ok_or_else(|| CmdError::err("this node is not part of a cluster ([cluster] node_id and etcd are not set)"))
}

/// TENANT.NODES: every node known, each as a map: id, address, alive,
/// tenants (in the directory), memory_used, memory_free.
pub fn nodes(ctx: &mut Ctx, _a: &[&[u8]]) -> CmdResult {
    let nodes = directory(ctx)?.nodes();
    ctx.out.array(nodes.len());
    for n in nodes {
        ctx.out.map(6);
        ctx.out.bulk(b"id");
        ctx.out.bulk(n.id.as_bytes());
        ctx.out.bulk(b"address");
        ctx.out.bulk(n.addr.as_bytes());
        ctx.out.bulk(b"alive");
        ctx.out.int(n.alive as i64);
        ctx.out.bulk(b"tenants");
        ctx.out.int(n.tenants as i64);
        ctx.out.bulk(b"memory_used");
        ctx.out.int(n.memory_used.min(i64::MAX as u64) as i64);
        ctx.out.bulk(b"memory_free");
        ctx.out.int(n.memory_free.min(i64::MAX as u64) as i64);
    }
    Ok(())
}

/// TENANT.LOCATE <id>: the node that owns the tenant and its address.
pub fn locate(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let id = String::from_utf8_lossy(a[1]);
    let Some((located, owner)) = directory(ctx)?.locate(&id) else {
        return Err(CmdError::err(format!("tenant '{id}' is not in the directory")));
    };
    ctx.out.array(2);
    ctx.out.bulk(located.record.owner.as_bytes());
    ctx.out.bulk_opt(owner.as_ref().map(|n| n.info.addr.as_bytes()));
    Ok(())
}

/// At most this many nodes pass a client on before one serves it: a node
/// with a stale view sends it to the old owner, which sends it on once.
pub const MAX_HOPS: u8 = 2;

/// AUTH as a tenant this node does not have: when the directory names
/// another owner, the request goes there (true; the connection does it, see
/// `server::connection`). A dead owner is an error naming it; no record,
/// false (the usual WRONGPASS).
pub fn route_to_owner(ctx: &mut Ctx, user: &[u8]) -> Result<bool, CmdError> {
    let Some(dir) = ctx.state.directory() else { return Ok(false) };
    let Ok(id) = std::str::from_utf8(user) else { return Ok(false) };
    let Some(owner) = dir.elsewhere(id) else { return Ok(false) };
    let (node, addr) = owner.map_err(|node| down(id, &node))?;
    let auth = ctx.state.peer_auth();
    set_route(ctx, Route { tenant: id.to_string(), node, addr, auth })
}

/// AUTH as a tenant that has moved away from this node: its password is
/// its new node's to check (it may have changed there, or the tenant may
/// be gone), so the request goes there as for a tenant this node never had:
/// to its owner in the directory, else to where it went from here.
pub fn route_moved(ctx: &mut Ctx, t: &Tenant) -> Result<bool, CmdError> {
    let Some(moved) = t.moved() else { return Ok(false) };
    let id = t.id().to_string();
    let route = match ctx.state.directory().and_then(|d| d.elsewhere(&id)) {
        Some(Ok((node, addr))) => Route { tenant: id, node, addr, auth: ctx.state.peer_auth() },
        Some(Err(node)) => return Err(down(&id, &node)),
        None => Route { tenant: id, node: moved.addr.clone(), addr: moved.addr, auth: moved.auth },
    };
    set_route(ctx, route)
}

/// What a request that already passed [`MAX_HOPS`] nodes gets.
pub(super) fn too_many_hops(what: &str) -> CmdError {
    CmdError::msg(format!("TRYAGAIN {what} is not reachable within {MAX_HOPS} hops (the nodes' views of the directory disagree for now)"))
}

pub(super) fn down(id: &str, node: &str) -> CmdError {
    CmdError::msg(format!("CLUSTERDOWN tenant '{id}' lives on node '{node}', which is down; try again when it is back"))
}

/// Marks the AUTH being run as one to send to `route` (the connection
/// does), unless it cannot go: inside MULTI or a script, past the hop limit,
/// or from a subscribed connection.
fn set_route(ctx: &mut Ctx, route: Route) -> Result<bool, CmdError> {
    let (id, node) = (&route.tenant, &route.node);
    if ctx.in_exec || ctx.client.in_script {
        return Err(CmdError::err(format!("tenant '{id}' lives on node '{node}': authenticate as it outside MULTI and scripts")));
    }
    if ctx.client.hops >= MAX_HOPS {
        return Err(too_many_hops(&format!("tenant '{id}'")));
    }
    if ctx.client.subscriptions() > 0 {
        return Err(CmdError::err(format!("tenant '{id}' lives on node '{node}': unsubscribe before authenticating as it")));
    }
    ctx.client.route = Some(route);
    Ok(true)
}

/// TENANT.HOPS <n>: sent by a node that routes a client here (admin only):
/// how many nodes it passed through.
pub fn hops(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let n = super::args::uint(a[1], CmdError::NotInteger)?;
    ctx.client.hops = n.min(u8::MAX as u64) as u8;
    ctx.out.ok();
    Ok(())
}
