//! The operator's tenant commands when this node is one of many
//! (`crate::cluster`): TENANT.CREATE places the tenant and records it in
//! the directory, TENANT.DELETE removes the record with the tenant,
//! TENANT.LIST and TENANT.INFO cover every node's tenants, and
//! TENANT.REBALANCE evens out the nodes' memory by moving tenants.
//!
//! A command about a tenant another node owns goes to that node (as its
//! admin, over a connection of this node's) and its reply comes back as it
//! was; a tenant whose owner is down gets an error naming the node.

use std::collections::BTreeMap;
use std::time::Duration;

use super::args::is;
use super::cluster::{MAX_HOPS, directory, down, too_many_hops};
use super::{CmdError, CmdResult, Ctx};
use crate::cluster::{DirError, Directory};
use crate::protocol::{Frame, Out};
use crate::server::client::DeferredReply;
use crate::server::peer::Peer;

/// How long another node may take to answer a forwarded command.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a move that TENANT.REBALANCE starts may take.
const MOVE_TIMEOUT: Duration = Duration::from_secs(120);

/// The address of the tenant's owner when that is another node (None: this
/// one, or no record); an error when the owner is down.
fn elsewhere(dir: &Directory, id: &str) -> Result<Option<(String, String)>, CmdError> {
    dir.elsewhere(id).transpose().map_err(|node| down(id, &node))
}

/// Sends `args` to `node` as its admin and replies with its answer as it
/// came. The request carries how many nodes it passed (TENANT.HOPS), so
/// nodes whose views disagree cannot pass it round for ever.
fn relay(ctx: &mut Ctx, node: String, addr: String, args: Vec<Vec<u8>>, timeout: Duration) -> CmdResult {
    if ctx.client.hops >= MAX_HOPS {
        return Err(too_many_hops(&format!("node '{node}'")));
    }
    let (auth, resp3, hops) = (ctx.state.peer_auth(), ctx.out.resp3, (ctx.client.hops + 1).to_string());
    ctx.client.deferred = Some(Box::pin(async move {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let answer = Peer::ask(&addr, auth.as_deref(), resp3, Some(hops.as_bytes()), &argv, timeout).await;
        let reply: DeferredReply = Box::new(move |out: &mut Out| match answer {
            Ok((_, raw)) => out.buf.extend_from_slice(&raw),
            Err(e) => out.error(&format!("ERR node '{node}' ({addr}) did not answer: {e}")),
        });
        reply
    }));
    Ok(())
}

/// These commands answer after a round trip to other nodes: not inside
/// MULTI or a script, whose replies must come in their place.
fn not_in_transaction(ctx: &Ctx, what: &str) -> CmdResult {
    if ctx.in_exec || ctx.client.in_script {
        return Err(CmdError::err(format!("{what} asks other nodes: run it outside MULTI and scripts")));
    }
    Ok(())
}

/// A deferred reply: OK, or the error.
fn ok_or_error(result: Result<(), String>) -> DeferredReply {
    Box::new(move |out: &mut Out| match result {
        Ok(()) => out.ok(),
        Err(e) => out.error(&format!("ERR {e}")),
    })
}

/// TENANT.CREATE's arguments without `NODE <id>`, and that node.
fn take_node<'a>(a: &[&'a [u8]]) -> (Vec<&'a [u8]>, Option<String>) {
    let mut rest = a[..2.min(a.len())].to_vec();
    let mut node = None;
    for pair in a[2..].chunks(2) {
        match pair {
            [k, v] if is(k, "node") => node = Some(String::from_utf8_lossy(v).into_owned()),
            _ => rest.extend_from_slice(pair),
        }
    }
    (rest, node)
}

/// TENANT.CREATE <id> ... [NODE <node-id>]: on the named node, else on the
/// live node with the most free memory. The owner creates it, then records
/// it in the directory (conditioned on no record of that id existing); a
/// refused record undoes the creation.
pub fn create(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    not_in_transaction(ctx, "TENANT.CREATE")?;
    let dir = directory(ctx)?;
    let (rest, node) = take_node(a);
    let id = String::from_utf8_lossy(a[1]).into_owned();
    if let Some((l, _)) = dir.locate(&id) {
        return Err(CmdError::err(format!("tenant '{id}' already exists (owner: node '{}')", l.record.owner)));
    }
    dir.reachable().map_err(|e| CmdError::err(format!("cannot create tenant '{id}': {e}")))?;
    let owner = match node {
        Some(n) => match dir.node(&n) {
            Some(info) if info.alive => n,
            Some(_) => return Err(CmdError::msg(format!("CLUSTERDOWN node '{n}' is down"))),
            None => return Err(CmdError::err(format!("no node '{n}' in the directory (see TENANT.NODES)"))),
        },
        None => dir.roomiest_node().unwrap_or_else(|| dir.node_id().to_string()),
    };
    if owner != dir.node_id() {
        let addr = dir.node(&owner).map(|n| n.info.addr).unwrap_or_default();
        let mut args: Vec<Vec<u8>> = rest.iter().map(|a| a.to_vec()).collect();
        args.extend([b"NODE".to_vec(), owner.clone().into_bytes()]);
        return relay(ctx, owner, addr, args, NODE_TIMEOUT);
    }
    let t = super::tenant::create_here(ctx, &rest)?;
    let (state, keep) = (ctx.state.arc(), ctx.client.id());
    ctx.client.deferred = Some(Box::pin(async move {
        let recorded = match dir.create_tenant(t.id(), dir.node_id()).await {
            Ok(_) => Ok(()),
            // Recorded meanwhile by this node's reconciler (see `server`).
            Err(DirError::Exists { owner, .. }) if owner == dir.node_id() => Ok(()),
            // It may be recorded: kept, and recorded by the reconciler once
            // etcd answers if it is not.
            Err(e @ DirError::Unknown(_)) => Err(format!("{e}; the tenant exists on this node")),
            Err(e) => {
                let _ = super::tenant::remove_tenant(&state, t.id(), keep);
                Err(e.to_string())
            }
        };
        let id = t.id();
        ok_or_error(recorded.map_err(|e| format!("cannot create tenant '{id}': {e}")))
    }));
    Ok(())
}

/// TENANT.DELETE <id>: by its owner, which deletes it, then its record.
pub fn delete(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    not_in_transaction(ctx, "TENANT.DELETE")?;
    let dir = directory(ctx)?;
    let id = String::from_utf8_lossy(a[1]).into_owned();
    let here = ctx.state.tenants.get_tenant(&id).is_ok_and(|t| !t.is_moved() && !t.importing.load(std::sync::atomic::Ordering::Relaxed));
    let record = dir.locate(&id).map(|(l, _)| l);
    if (!here || record.as_ref().is_some_and(|l| l.record.owner != dir.node_id()))
        && let Some((node, addr)) = elsewhere(&dir, &id)?
    {
        return relay(ctx, node, addr, a.iter().map(|x| x.to_vec()).collect(), NODE_TIMEOUT);
    }
    if record.is_some() {
        dir.reachable().map_err(|e| CmdError::err(format!("cannot delete tenant '{id}': {e}")))?;
    }
    // Gone here already (a delete whose record outlived it): the record goes.
    if here || record.is_none() {
        super::tenant::delete_here(ctx, a[1])?;
    }
    let Some(record) = record else {
        ctx.out.ok();
        return Ok(());
    };
    ctx.client.deferred = Some(Box::pin(async move {
        let removed = dir.delete_tenant(&id, &record).await;
        ok_or_error(removed.map_err(|e| format!("tenant '{id}' was deleted on this node, but its directory record remains: {e}")))
    }));
    Ok(())
}

/// TENANT.LIST [FILTER ...] on a cluster node: every tenant of every node,
/// as a map of tenant id to owner node. Without a filter this is the
/// directory (tenants of nodes that are down included); with one, each live
/// node answers for its own.
pub fn list(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let dir = directory(ctx)?;
    let me = dir.node_id().to_string();
    let own = super::tenant::list_here(ctx, &a[1..])?;
    let mut owners: BTreeMap<String, String> = own.iter().map(|t| (t.id().to_string(), me.clone())).collect();
    if a.len() == 1 {
        for (id, l) in dir.tenants() {
            owners.entry(id).or_insert(l.record.owner);
        }
        reply_owners(ctx.out, &owners);
        return Ok(());
    }
    not_in_transaction(ctx, "TENANT.LIST FILTER")?;
    let others: Vec<_> = dir.nodes().into_iter().filter(|n| n.alive && n.id != me).collect();
    let mut request: Vec<Vec<u8>> = vec![b"TENANT.LIST".to_vec(), b"LOCAL".to_vec()];
    request.extend(a[1..].iter().map(|x| x.to_vec()));
    let auth = ctx.state.peer_auth();
    ctx.client.deferred = Some(Box::pin(async move {
        let argv: Vec<&[u8]> = request.iter().map(|x| x.as_slice()).collect();
        let mut failed = None;
        for n in others {
            match Peer::ask(&n.addr, auth.as_deref(), false, None, &argv, NODE_TIMEOUT).await {
                Ok((Frame::Array(ids), _)) => {
                    for id in ids {
                        if let Frame::Bulk(id) = id {
                            owners.insert(String::from_utf8_lossy(&id).into_owned(), n.id.clone());
                        }
                    }
                }
                Ok((other, _)) => failed = Some(format!("node '{}' answered {other:?}", n.id)),
                Err(e) => failed = Some(format!("node '{}' ({}) did not answer: {e}", n.id, n.addr)),
            }
        }
        let reply: DeferredReply = Box::new(move |out: &mut Out| match failed {
            None => reply_owners(out, &owners),
            Some(e) => out.error(&format!("ERR {e}")),
        });
        reply
    }));
    Ok(())
}

fn reply_owners(out: &mut Out, owners: &BTreeMap<String, String>) {
    out.map(owners.len());
    for (id, owner) in owners {
        out.bulk(id.as_bytes());
        out.bulk(owner.as_bytes());
    }
}

/// An operator's command about tenant `a[1]` when another node owns it
/// (TENANT.INFO, UPDATE, SUSPEND, MIGRATE, ...): relayed there, and that
/// node's answer is the reply (true); false when this node answers itself.
pub fn relayed_to_owner(ctx: &mut Ctx, a: &[&[u8]]) -> Result<bool, CmdError> {
    let (Some(dir), Some(id)) = (ctx.state.directory().cloned(), a.get(1)) else { return Ok(false) };
    if ctx.client.bound {
        return Ok(false);
    }
    let id = String::from_utf8_lossy(id);
    if ctx.state.tenants.get_tenant(&id).is_ok_and(|t| !t.is_moved()) {
        return Ok(false);
    }
    let Some((node, addr)) = elsewhere(&dir, &id)? else { return Ok(false) };
    not_in_transaction(ctx, "a command about another node's tenant")?;
    let timeout = if is(a[0], "tenant.migrate") { MOVE_TIMEOUT } else { NODE_TIMEOUT };
    relay(ctx, node, addr, a.iter().map(|x| x.to_vec()).collect(), timeout)?;
    Ok(true)
}

/// One move of a rebalancing plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

/// A move must narrow the gap between the fullest and the emptiest node by
/// at least this much to be worth its pause.
const MIN_GAIN: u64 = 256 * 1024;
/// The most moves one plan makes.
const MAX_MOVES: usize = 64;

/// Plans moves that even out the live nodes' memory: while it narrows the
/// gap between the fullest and the emptiest node by at least [`MIN_GAIN`],
/// moves the fullest node's tenant whose size is nearest half that gap (and
/// that fits in the emptiest node's free memory) to the emptiest. `nodes`:
/// id and free memory; `tenants`: id, owner, bytes.
pub fn plan_moves(nodes: &[(String, u64)], tenants: &[(String, String, u64)]) -> Vec<Move> {
    let mut load: BTreeMap<&str, (u64, u64)> = nodes.iter().map(|(id, free)| (id.as_str(), (0, *free))).collect();
    let mut owner: Vec<(&str, &str, u64)> = Vec::new();
    for (id, node, bytes) in tenants {
        if let Some(l) = load.get_mut(node.as_str()) {
            l.0 += bytes;
            owner.push((id, node, *bytes));
        }
    }
    let mut moves = Vec::new();
    while moves.len() < MAX_MOVES && load.len() >= 2 {
        let (&full, &(full_load, _)) = load.iter().max_by_key(|(id, l)| (l.0, std::cmp::Reverse(**id))).expect("two nodes");
        let (&empty, &(empty_load, empty_free)) = load.iter().min_by_key(|(id, l)| (l.0, **id)).expect("two nodes");
        let gap = full_load - empty_load;
        let best = owner
            .iter_mut()
            .filter(|(_, node, bytes)| *node == full && *bytes > 0 && *bytes < gap && *bytes <= empty_free)
            .min_by_key(|(id, _, bytes)| (gap.abs_diff(2 * *bytes), *id));
        let Some(t) = best else { break };
        if gap - gap.abs_diff(2 * t.2) < MIN_GAIN {
            break;
        }
        moves.push(Move { tenant: t.0.to_string(), from: full.to_string(), to: empty.to_string(), bytes: t.2 });
        t.1 = empty;
        let bytes = t.2;
        load.get_mut(full).expect("known").0 -= bytes;
        let e = load.get_mut(empty).expect("known");
        e.0 += bytes;
        e.1 = e.1.saturating_sub(bytes);
    }
    moves
}

/// TENANT.REBALANCE [DRY-RUN]: asks every live node for its tenants' memory,
/// plans moves that even the nodes out (`plan_moves`) and, unless DRY-RUN,
/// carries them out one at a time (each a TENANT.MIGRATE by its owner).
/// Replies with the moves, each a map: tenant, from, to, bytes and, when
/// carried out, result ("ok" or the error).
pub fn rebalance(ctx: &mut Ctx, a: &[&[u8]]) -> CmdResult {
    let dir = directory(ctx)?;
    not_in_transaction(ctx, "TENANT.REBALANCE")?;
    let dry_run = match a.len() {
        1 => false,
        2 if is(a[1], "dry-run") => true,
        _ => return Err(CmdError::Syntax),
    };
    dir.reachable().map_err(|e| CmdError::err(format!("cannot rebalance: {e}")))?;
    let nodes: Vec<_> = dir.nodes().into_iter().filter(|n| n.alive).collect();
    let auth = ctx.state.peer_auth();
    ctx.client.deferred = Some(Box::pin(async move {
        let planned = plan(&nodes, auth.as_deref()).await;
        let mut results = Vec::new();
        if let (Ok(moves), false) = (&planned, dry_run) {
            let addr: BTreeMap<_, _> = nodes.iter().map(|n| (n.id.clone(), n.addr.clone())).collect();
            for m in moves {
                let request: [&[u8]; 3] = [b"TENANT.MIGRATE", m.tenant.as_bytes(), m.to.as_bytes()];
                let result = match Peer::ask(&addr[&m.from], auth.as_deref(), false, None, &request, MOVE_TIMEOUT).await {
                    Ok((Frame::Error(e), _)) => e,
                    Ok(_) => "ok".to_string(),
                    Err(e) => format!("node '{}' did not answer: {e}", m.from),
                };
                tracing::info!(tenant = %m.tenant, from = %m.from, to = %m.to, result = %result, "rebalance move");
                results.push(result);
            }
        }
        let reply: DeferredReply = Box::new(move |out: &mut Out| match planned {
            Ok(moves) => {
                out.array(moves.len());
                for (i, m) in moves.iter().enumerate() {
                    let result = results.get(i);
                    out.map(4 + result.is_some() as usize);
                    for (k, v) in [("tenant", &m.tenant), ("from", &m.from), ("to", &m.to)] {
                        out.bulk(k.as_bytes());
                        out.bulk(v.as_bytes());
                    }
                    out.bulk(b"bytes");
                    out.int(m.bytes.min(i64::MAX as u64) as i64);
                    if let Some(r) = result {
                        out.bulk(b"result");
                        out.bulk(r.as_bytes());
                    }
                }
            }
            Err(e) => out.error(&format!("ERR cannot rebalance: {e}")),
        });
        reply
    }));
    Ok(())
}

/// The live nodes' tenants and their sizes (TENANT.LIST LOCAL WITHMEMORY on
/// each), planned.
async fn plan(nodes: &[crate::cluster::NodeSummary], auth: Option<&str>) -> Result<Vec<Move>, String> {
    let mut tenants = Vec::new();
    for n in nodes {
        let request: [&[u8]; 3] = [b"TENANT.LIST", b"LOCAL", b"WITHMEMORY"];
        let answer = Peer::ask(&n.addr, auth, false, None, &request, NODE_TIMEOUT).await;
        let Ok((Frame::Array(items), _)) = answer else {
            return Err(format!("node '{}' ({}) did not list its tenants: {answer:?}", n.id, n.addr));
        };
        for pair in items.chunks(2) {
            if let [Frame::Bulk(id), Frame::Integer(bytes)] = pair {
                tenants.push((String::from_utf8_lossy(id).into_owned(), n.id.clone(), (*bytes).max(0) as u64));
            }
        }
    }
    let free: Vec<_> = nodes.iter().map(|n| (n.id.clone(), n.memory_free)).collect();
    Ok(plan_moves(&free, &tenants))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<(String, u64)> {
        ids.iter().map(|id| (id.to_string(), u64::MAX)).collect()
    }

    fn t(id: &str, node: &str, mb: u64) -> (String, String, u64) {
        (id.into(), node.into(), mb << 20)
    }

    #[test]
    fn moves_even_out_the_nodes() {
        let tenants = [t("a", "n1", 4), t("b", "n1", 4), t("c", "n1", 4), t("d", "n1", 4), t("e", "n2", 4)];
        let moves = plan_moves(&nodes(&["n1", "n2", "n3"]), &tenants);
        // 16/4/0 MB becomes 12/4/4, then 8/8/4; no 4 MB move narrows a 4 MB gap.
        let to: Vec<_> = moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["n3", "n2"], "{moves:?}");
        assert!(moves.iter().all(|m| m.from == "n1" && m.bytes == 4 << 20), "{moves:?}");
        assert!(plan_moves(&nodes(&["n1", "n2"]), &[t("a", "n1", 1), t("b", "n2", 1)]).is_empty(), "even already");
    }

    #[test]
    fn a_tenant_bigger_than_the_gap_or_the_room_stays() {
        // Moving the only tenant would just swap the imbalance.
        assert!(plan_moves(&nodes(&["n1", "n2"]), &[t("a", "n1", 8)]).is_empty());
        let small_room = vec![("n1".to_string(), u64::MAX), ("n2".to_string(), 1 << 20)];
        assert!(plan_moves(&small_room, &[t("a", "n1", 4), t("b", "n1", 4)]).is_empty());
        // Tenants of nodes not alive (not listed) are left alone.
        assert!(plan_moves(&nodes(&["n2"]), &[t("a", "n1", 4)]).is_empty());
    }
}
