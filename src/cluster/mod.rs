//! Many nodes, one directory of tenants, kept in etcd v3.
//!
//! Between `server` and `tenancy`: the server starts a [`Directory`] when
//! `[cluster]` names this node and etcd; commands read its [`View`] (never
//! etcd itself), and tenant records change only through its transactions,
//! each conditioned on the revision the caller read, so two nodes never both
//! own a tenant. Without `[cluster] node_id` none of this runs.
//!
//! The node registers under a lease (`records::node_key`) that a background
//! task keeps alive; a node that dies disappears from the directory within
//! the lease's TTL. The same task reads the whole directory once, then
//! watches it (`session`), and starts over with a new session whenever etcd
//! stops answering, so a restarted etcd sees every node again without any
//! node restarting.

pub mod records;
mod session;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use parking_lot::{Mutex, RwLock};
use thiserror::Error;

pub use records::{NodeInfo, TenantRecord, TenantState};
pub use view::{Located, Node, View};

/// A lease's time to live: how long a dead node still looks alive.
pub const LEASE_TTL_SECS: i64 = 3;
/// How often the lease is renewed and the node's memory published.
const TICK: Duration = Duration::from_secs(1);
/// How long one etcd request may take before etcd counts as unreachable.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between two attempts to reach etcd again.
const RETRY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum DirError {
    /// Nothing was sent: this node has no session with etcd now.
    #[error("the tenant directory (etcd) is unreachable: {0}")]
    Unreachable(String),
    /// Sent, but no answer came: the change may or may not have been made;
    /// the watch brings the truth once etcd answers again.
    #[error("the tenant directory (etcd) did not confirm the change ({0}); its outcome is unknown until etcd answers")]
    Unknown(String),
    #[error("tenant '{id}' already exists in the directory (owner: node '{owner}')")]
    Exists { id: String, owner: String },
    #[error("tenant '{id}' changed in the directory meanwhile (owner now: node '{owner}')")]
    Changed { id: String, owner: String },
    #[error("tenant '{0}' is not in the directory")]
    NotFound(String),
}

/// What a node needs to take part.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node_id: String,
    /// Where others reach this node (`host:port`).
    pub addr: String,
    pub endpoints: Vec<String>,
}

/// The node's memory as it publishes it: (used, free).
pub type MemoryFn = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

/// One row of TENANT.NODES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSummary {
    pub id: String,
    pub addr: String,
    pub alive: bool,
    pub tenants: usize,
    pub memory_used: u64,
    pub memory_free: u64,
}

/// What the background task and the callers share.
struct Shared {
    settings: Settings,
    memory: MemoryFn,
    view: RwLock<View>,
    /// The client of the current session; None while etcd is unreachable,
    /// with why.
    link: Mutex<Result<Client, String>>,
    /// Sessions that have read the directory (0: none yet).
    loads: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever the view changes (a full read or a watch batch).
    changes: tokio::sync::watch::Sender<u64>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// This node's handle on the directory. Dropping it stops the background
/// task without revoking the lease (as a crash would); [`Directory::shutdown`]
/// leaves the directory at once.
pub struct Directory {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Directory {
    /// Starts registering and watching in the background (on the current
    /// tokio runtime); returns at once.
    pub fn start(settings: Settings, memory: MemoryFn) -> Arc<Directory> {
        let shared = Arc::new(Shared {
            settings,
            memory,
            view: RwLock::new(View::default()),
            link: Mutex::new(Err("not connected yet".into())),
            loads: tokio::sync::watch::Sender::new(0),
            changes: tokio::sync::watch::Sender::new(0),
            stop: tokio::sync::watch::Sender::new(false),
        });
        let task = tokio::spawn(session::run(shared.clone()));
        Arc::new(Directory { shared, task: Mutex::new(Some(task)) })
    }

    pub fn node_id(&self) -> &str {
        &self.shared.settings.node_id
    }

    pub fn addr(&self) -> &str {
        &self.shared.settings.addr
    }

    /// Waits until the directory has been read once (false after `limit`).
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let mut rx = self.shared.loads.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|n| *n > 0)).await.is_ok_and(|r| r.is_ok())
    }

    /// Changes to the view: the receiver sees a new value after each.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Whether the directory has been read at least once.
    pub fn loaded(&self) -> bool {
        *self.shared.loads.borrow() > 0
    }

    /// Whether this node has a session with etcd now; the error says why not.
    pub fn reachable(&self) -> Result<(), DirError> {
        self.client().map(|_| ())
    }

    /// Every node known, by id, with the tenants the directory gives it.
    pub fn nodes(&self) -> Vec<NodeSummary> {
        let v = self.shared.view.read();
        v.nodes
            .iter()
            .map(|(id, n)| NodeSummary {
                id: id.clone(),
                addr: n.info.addr.clone(),
                alive: n.alive,
                tenants: v.tenants_of(id),
                memory_used: n.info.memory_used,
                memory_free: n.info.memory_free,
            })
            .collect()
    }

    /// A tenant's record, and its owner as this node knows it.
    pub fn locate(&self, tenant: &str) -> Option<(Located, Option<Node>)> {
        let v = self.shared.view.read();
        let l = v.tenants.get(tenant)?.clone();
        let owner = v.nodes.get(&l.record.owner).cloned();
        Some((l, owner))
    }

    /// A node as this node knows it.
    pub fn node(&self, id: &str) -> Option<Node> {
        self.shared.view.read().nodes.get(id).cloned()
    }

    /// The live node with the most free memory (see [`View::roomiest`]).
    pub fn roomiest_node(&self) -> Option<String> {
        self.shared.view.read().roomiest()
    }

    /// Where a tenant lives when that is another node: `Ok((node, addr))`
    /// while that node is alive, `Err(node)` while it is down. None when
    /// this node owns it or it has no record.
    pub fn elsewhere(&self, tenant: &str) -> Option<Result<(String, String), String>> {
        let (located, owner) = self.locate(tenant)?;
        let node = located.record.owner;
        if node == self.node_id() {
            return None;
        }
        Some(match owner.filter(|n| n.alive) {
            Some(n) => Ok((node, n.info.addr)),
            None => Err(node),
        })
    }

    /// A tenant's record as etcd has it now (not the view): what a move
    /// whose cut-over went unanswered reads to learn how it ended.
    pub async fn read_tenant(&self, id: &str) -> Result<Option<Located>, DirError> {
        let mut client = self.client()?;
        let r = session::rpc(client.get(records::tenant_key(id), None)).await.map_err(DirError::Unreachable)?;
        Ok(r.kvs().first().and_then(|kv| {
            let record = serde_json::from_slice(kv.value()).ok()?;
            Some(Located { record, revision: kv.mod_revision() })
        }))
    }

    /// A copy of the whole view.
    pub fn tenants(&self) -> Vec<(String, Located)> {
        self.shared.view.read().tenants.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Records a new tenant owned by `owner`, only if no record of that id
    /// exists. Returns the record's revision.
    pub async fn create_tenant(&self, id: &str, owner: &str) -> Result<i64, DirError> {
        let record = TenantRecord { owner: owner.into(), epoch: 1, state: TenantState::Active };
        let key = records::tenant_key(id);
        let txn = Txn::new()
            .when([Compare::version(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), json(&record), None)])
            .or_else([TxnOp::get(key, None)]);
        self.transact(id, txn, record).await.map_err(|current| match current {
            Ok(Some(l)) => DirError::Exists { id: id.into(), owner: l.record.owner },
            // Refused, yet absent when read: deleted in between.
            Ok(None) => DirError::Changed { id: id.into(), owner: String::new() },
            Err(e) => e,
        })
    }

    /// Changes a tenant's record from `from` (as read, with its revision) to
    /// `to`, only if nobody changed it since. A change of owner is one epoch
    /// more. Returns the new revision.
    pub async fn update_tenant(&self, id: &str, from: &Located, mut to: TenantRecord) -> Result<i64, DirError> {
        to.epoch = if to.owner != from.record.owner { from.record.epoch + 1 } else { from.record.epoch };
        let key = records::tenant_key(id);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, from.revision)])
            .and_then([TxnOp::put(key.clone(), json(&to), None)])
            .or_else([TxnOp::get(key, None)]);
        self.transact(id, txn, to).await.map_err(|current| changed(id, current))
    }

    /// Moves a tenant to node `to` (the migration's cut-over).
    pub async fn move_tenant(&self, id: &str, from: &Located, to: &str) -> Result<i64, DirError> {
        let record = TenantRecord { owner: to.into(), epoch: from.record.epoch, state: TenantState::Active };
        self.update_tenant(id, from, record).await
    }

    /// Removes a tenant's record, only if nobody changed it since `from`.
    pub async fn delete_tenant(&self, id: &str, from: &Located) -> Result<(), DirError> {
        let key = records::tenant_key(id);
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, from.revision)])
            .and_then([TxnOp::delete(key.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client()?;
        let r = session::rpc(client.txn(txn)).await.map_err(DirError::Unknown)?;
        if r.succeeded() {
            let rev = r.header().map_or(0, |h| h.revision());
            self.shared.view.write().apply_own(view::Change::Delete { key: records::tenant_key(id).as_bytes(), revision: rev });
            self.shared.changes.send_modify(|n| *n += 1);
            return Ok(());
        }
        Err(changed(id, Ok(current(&r))))
    }

    /// Runs a conditional put of `record`; on success applies it to the view
    /// at once (the watch brings the same change a moment later), otherwise
    /// returns the record found instead.
    async fn transact(&self, id: &str, txn: Txn, record: TenantRecord) -> Result<i64, Result<Option<Located>, DirError>> {
        let mut client = self.client().map_err(Err)?;
        let r = session::rpc(client.txn(txn)).await.map_err(|e| Err(DirError::Unknown(e)))?;
        if !r.succeeded() {
            return Err(Ok(current(&r)));
        }
        let revision = r.header().map_or(0, |h| h.revision());
        let key = records::tenant_key(id);
        self.shared.view.write().apply_own(view::Change::Put { key: key.as_bytes(), value: &json(&record), revision });
        self.shared.changes.send_modify(|n| *n += 1);
        Ok(revision)
    }

    fn client(&self) -> Result<Client, DirError> {
        self.shared.link.lock().clone().map_err(DirError::Unreachable)
    }

    /// Leaves the directory: revokes the lease, so the others see this node
    /// dead at once, and stops the background task.
    pub async fn shutdown(&self) {
        self.shared.stop.send_replace(true);
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(RPC_TIMEOUT * 2, task).await;
        }
    }

    /// Stops the background task as a crash would: the lease is left to
    /// expire.
    pub fn abort(&self) {
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.abort();
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("settings", &self.shared.settings).finish()
    }
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

/// A failed transaction's `or_else` read: the record as it is now.
fn current(r: &etcd_client::TxnResponse) -> Option<Located> {
    r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().and_then(|kv| {
            let record = serde_json::from_slice(kv.value()).ok()?;
            Some(Located { record, revision: kv.mod_revision() })
        }),
        _ => None,
    })
}

fn changed(id: &str, current: Result<Option<Located>, DirError>) -> DirError {
    match current {
        Ok(Some(l)) => DirError::Changed { id: id.into(), owner: l.record.owner },
        Ok(None) => DirError::NotFound(id.into()),
        Err(e) => e,
    }
}
