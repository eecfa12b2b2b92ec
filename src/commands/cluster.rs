//! TENANT.NODES and TENANT.LOCATE: the tenant directory as this node knows
//! it (`crate::cluster`). They read the node's view, never etcd, so they
//! answer while etcd is unreachable, with what the node last knew.

use super::{CmdError, CmdResult, Ctx};
use crate::cluster::Directory;

fn directory(ctx: &Ctx) -> Result<std::sync::Arc<Directory>, CmdError> {
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
