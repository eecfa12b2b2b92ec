//! The directory's part in a tenant's move by node id (`TENANT.MIGRATE <id>
//! <node-id>` in a cluster): the record says `moving` while the copy runs;
//! the cut-over is the transaction that gives the tenant to the target,
//! conditioned on the record being as the move left it, so no other change
//! (another move, a delete) can interleave; a COMMIT the target then refuses
//! takes it back.

use std::time::Duration;

use crate::cluster::{DirError, Directory, Located, TenantRecord, TenantState};

/// Between two reads of a record whose change went unanswered.
const SETTLE_RETRY: Duration = Duration::from_millis(200);

/// Marks this node's tenant as moving; the record as it is then.
pub async fn mark_moving(dir: &Directory, id: &str) -> Result<Located, String> {
    let (l, _) = dir.locate(id).ok_or_else(|| format!("tenant '{id}' is not in the directory"))?;
    if l.record.owner != dir.node_id() {
        return Err(format!("the directory gives tenant '{id}' to node '{}'", l.record.owner));
    }
    let record = TenantRecord { state: TenantState::Moving, ..l.record.clone() };
    let revision = dir.update_tenant(id, &l, record.clone()).await.map_err(|e| e.to_string())?;
    Ok(Located { record, revision })
}

/// A failed move: the record says active again (best effort: if etcd does
/// not answer, it stays `moving`, owned by this node, which changes nothing
/// for routing).
pub async fn mark_active(dir: &Directory, id: &str) {
    let Some((l, _)) = dir.locate(id) else { return };
    if l.record.owner == dir.node_id() && l.record.state == TenantState::Moving {
        let record = TenantRecord { state: TenantState::Active, ..l.record.clone() };
        if let Err(e) = dir.update_tenant(id, &l, record).await {
            tracing::warn!(tenant = %id, "the directory still says the tenant is moving: {e}");
        }
    }
}

/// The cut-over: the tenant is `node`'s from this transaction on. Its
/// record as it is then.
pub async fn give(dir: &Directory, id: &str, moving: &Located, node: &str) -> Result<Located, String> {
    match dir.move_tenant(id, moving, node).await {
        Ok(revision) => {
            let record = TenantRecord { owner: node.to_string(), epoch: moving.record.epoch + 1, state: TenantState::Active };
            Ok(Located { record, revision })
        }
        Err(DirError::Unknown(why)) => settle(dir, id, node, &why).await,
        Err(e) => Err(e.to_string()),
    }
}

/// How taking a tenant back went.
pub enum TakeBack {
    Done,
    /// etcd did not answer: try again.
    Retry(String),
    /// Somebody else changed the record meanwhile: it is not the move's to
    /// take back.
    Lost(String),
}

/// The target refused the COMMIT after the directory gave it the tenant:
/// this node takes it back (one epoch more).
pub async fn take_back(dir: &Directory, id: &str, owned: &Located) -> TakeBack {
    let record = TenantRecord { owner: dir.node_id().to_string(), epoch: owned.record.epoch, state: TenantState::Active };
    match dir.update_tenant(id, owned, record).await {
        Ok(_) => TakeBack::Done,
        Err(e @ (DirError::Unreachable(_) | DirError::Unknown(_))) => match dir.read_tenant(id).await {
            Ok(Some(l)) if l.record.owner == dir.node_id() => TakeBack::Done,
            Ok(Some(l)) if l.revision == owned.revision => TakeBack::Retry(e.to_string()),
            Ok(_) => TakeBack::Lost(format!("the directory record changed meanwhile ({e})")),
            Err(_) => TakeBack::Retry(e.to_string()),
        },
        Err(e) => TakeBack::Lost(e.to_string()),
    }
}

/// A change whose answer was lost: reads the record until etcd answers and
/// says whether it is `node`'s. The tenant's writes stay held meanwhile: on
/// either answer someone must serve all of it, and until then nobody knows
/// who.
async fn settle(dir: &Directory, id: &str, node: &str, why: &str) -> Result<Located, String> {
    tracing::warn!(tenant = %id, "the directory did not confirm the tenant's cut-over ({why}); reading it until etcd answers");
    loop {
        match dir.read_tenant(id).await {
            Ok(Some(l)) if l.record.owner == node => return Ok(l),
            Ok(_) => return Err(format!("the directory did not take the change ({why})")),
            Err(_) => tokio::time::sleep(SETTLE_RETRY).await,
        }
    }
}
