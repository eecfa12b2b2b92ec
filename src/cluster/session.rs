//! The background task: one session with etcd at a time. A session grants
//! a lease, registers the node under it, reads the directory, then renews
//! the lease, publishes the node's memory and applies the watch's events
//! until anything fails; then the next session starts over (a new lease:
//! the node registers again), so a restarted etcd sees every node again.

use std::future::Future;
use std::sync::Arc;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp, WatchOptions, WatchStream};

use super::records::{self, MemberInfo, NodeInfo};
use super::view::Change;
use super::{RETRY, RPC_TIMEOUT, Shared, TICK, json};

/// The largest response accepted from etcd (a whole directory read; a
/// watch response, which etcd splits at its request limit when asked).
const MAX_MESSAGE: usize = 64 << 20;

/// Sessions, one after another, until the directory stops.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    // The lease of the last session: a new session may take its entry over.
    let mut last_lease = None;
    let mut last_why = String::new();
    loop {
        let loads = *shared.loads.borrow();
        let why = session(&shared, &mut last_lease).await;
        *shared.link.lock() = Err(why.clone());
        if *shared.loads.borrow() != loads {
            // This session had registered: its end is news whatever the reason.
            last_why.clear();
        }
        if *stop.borrow() {
            return;
        }
        // Once per reason, not every half second while etcd is down.
        if why != last_why {
            tracing::warn!(node = %shared.settings.node_id, "tenant directory: {why}; trying again every {} ms", RETRY.as_millis());
        }
        last_why = why;
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the directory is asked to stop. (Its own function so the
/// flag's read guard is gone before any arm's body awaits.)
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One etcd request, bounded in time.
pub(super) async fn rpc<T>(f: impl Future<Output = Result<T, etcd_client::Error>>) -> Result<T, String> {
    match tokio::time::timeout(RPC_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer from etcd within {} ms", RPC_TIMEOUT.as_millis())),
    }
}

/// Runs until something fails or the directory stops; returns why.
async fn session(shared: &Shared, last_lease: &mut Option<i64>) -> String {
    let s = &shared.settings;
    // HTTP/2 pings find a dead etcd within seconds even when no request is
    // in flight (the watch and keep-alive streams would otherwise wait). A
    // member cut off from its cluster's leader refuses requests and ends
    // watches instead of serving a stale directory.
    let options = ConnectOptions::new()
        .with_connect_timeout(RPC_TIMEOUT)
        .with_keep_alive(TICK, RPC_TIMEOUT)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    let mut client = match rpc(Client::connect(&s.endpoints, Some(options))).await {
        Ok(c) => c,
        Err(e) => return format!("cannot connect to etcd at {}: {e}", s.endpoints.join(", ")),
    };
    let lease = match rpc(client.lease_grant(super::LEASE_TTL_SECS, None)).await {
        Ok(l) => l.id(),
        Err(e) => return format!("cannot reach etcd: {e}"),
    };
    if let Err(e) = register(shared, &mut client, lease, *last_lease).await {
        let _ = rpc(client.lease_revoke(lease)).await;
        return e;
    }
    *last_lease = Some(lease);
    let (mut keeper, mut acks) = match rpc(client.lease_keep_alive(lease)).await {
        Ok(k) => k,
        Err(e) => return format!("cannot keep the lease alive: {e}"),
    };
    let mut watch = match load(shared, &mut client).await {
        Ok(w) => w,
        Err(e) => return e,
    };
    *shared.link.lock() = Ok(client.clone());
    shared.loads.send_modify(|n| *n += 1);
    tracing::info!(node = %s.node_id, lease, "registered in the tenant directory");
    let mut stop = shared.stop.subscribe();
    let mut tick = tokio::time::interval(TICK);
    let mut published = NodeInfo::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = keeper.keep_alive().await {
                    return format!("lease keep-alive failed: {e}");
                }
                // Published only when it changed: each put is an event every
                // other node applies.
                let info = node_info(shared);
                if info != published {
                    let put = client.put(records::node_key(&s.node_id), json(&info), Some(PutOptions::new().with_lease(lease)));
                    if let Err(e) = rpc(put).await {
                        return format!("cannot publish this node's entry: {e}");
                    }
                    published = info;
                }
            }
            ack = acks.message() => match ack {
                Ok(Some(a)) if a.ttl() > 0 => {}
                Ok(Some(_)) => return "the lease expired (etcd did not hear from this node in time)".into(),
                Ok(None) => return "etcd closed the lease keep-alive stream".into(),
                Err(e) => return format!("lease keep-alive stream failed: {e}"),
            },
            msg = watch.message() => match msg {
                Ok(Some(r)) if r.canceled() => {
                    // Compacted past what we had read (or cancelled by etcd):
                    // read everything again and watch from there.
                    tracing::info!(compact_revision = r.compact_revision(), reason = r.cancel_reason(), "directory watch cancelled; reading it again");
                    watch = match load(shared, &mut client).await {
                        Ok(w) => w,
                        Err(e) => return e,
                    };
                }
                Ok(Some(r)) => {
                    let mut view = shared.view.write();
                    for ev in r.events() {
                        let Some(kv) = ev.kv() else { continue };
                        view.apply(match ev.event_type() {
                            EventType::Put => Change::Put { key: kv.key(), value: kv.value(), revision: kv.mod_revision() },
                            EventType::Delete => Change::Delete { key: kv.key(), revision: kv.mod_revision() },
                        });
                    }
                    drop(view);
                    shared.changes.send_modify(|n| *n += 1);
                }
                Ok(None) => return "etcd closed the directory watch".into(),
                Err(e) => return format!("directory watch failed: {e}"),
            },
            _ = stopped(&mut stop) => {
                // Leaving: the others see this node dead now, not in a TTL.
                let _ = rpc(client.lease_revoke(lease)).await;
                return "stopped".into();
            }
        }
    }
}

/// Puts the member entry and the leased node entry, unless another live
/// process holds this node id (its entry under a lease that is not ours):
/// two processes must never answer as one node.
async fn register(shared: &Shared, client: &mut Client, lease: i64, last_lease: Option<i64>) -> Result<(), String> {
    let s = &shared.settings;
    let key = records::node_key(&s.node_id);
    let puts = [
        TxnOp::put(records::member_key(&s.node_id), json(&MemberInfo { addr: s.addr.clone() }), None),
        TxnOp::put(key.clone(), json(&node_info(shared)), Some(PutOptions::new().with_lease(lease))),
    ];
    // Free, or still under this process's previous lease (etcd kept it
    // across its own restart, or the session broke before it expired).
    let mut conditions = vec![Compare::version(key.clone(), CompareOp::Equal, 0)];
    conditions.extend(last_lease.map(|l| Compare::lease(key.clone(), CompareOp::Equal, l)));
    for condition in conditions {
        let txn = Txn::new().when([condition]).and_then(puts.clone());
        match rpc(client.txn(txn)).await {
            Ok(r) if r.succeeded() => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot register: {e}")),
        }
    }
    Err(format!("node id '{}' is registered by another live process; waiting for its lease to expire", s.node_id))
}

/// Reads the whole directory into the view, then watches it from the
/// revision read.
async fn load(shared: &Shared, client: &mut Client) -> Result<WatchStream, String> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let r =
        rpc(kv.get(records::ROOT, Some(GetOptions::new().with_prefix()))).await.map_err(|e| format!("cannot read the directory: {e}"))?;
    let revision = r.header().map_or(0, |h| h.revision());
    shared.view.write().reload(r.kvs().iter().map(|kv| (kv.key(), kv.value(), kv.mod_revision())), revision);
    shared.changes.send_modify(|n| *n += 1);
    // Fragments: etcd sends a watcher that fell behind many revisions in one
    // response otherwise, past any fixed limit (a burst of 600 writes of 32 KB
    // made one of 4.5 MB, over gRPC's default 4 MB, and ended every node's
    // session).
    let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1).with_fragment();
    let mut watch = client.watch_client().max_decoding_message_size(MAX_MESSAGE);
    rpc(watch.watch(records::ROOT, Some(options))).await.map_err(|e| format!("cannot watch the directory: {e}"))
}

fn node_info(shared: &Shared) -> NodeInfo {
    let (memory_used, memory_free) = (shared.memory)();
    NodeInfo { addr: shared.settings.addr.clone(), memory_used, memory_free }
}
