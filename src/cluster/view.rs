//! The directory as this node last read it from etcd. Commands and routing
//! read this, never etcd: while etcd is unreachable the node goes on with
//! what it knew.

use std::collections::BTreeMap;

use super::records::{Key, MemberInfo, NodeInfo, TenantRecord};

/// A node this node knows of: alive while its leased entry exists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub info: NodeInfo,
    pub alive: bool,
}

/// A tenant's record with the etcd revision that last changed it (what a
/// transaction on it is conditioned on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub record: TenantRecord,
    pub revision: i64,
}

#[derive(Debug, Default)]
pub struct View {
    pub nodes: BTreeMap<String, Node>,
    pub tenants: BTreeMap<String, Located>,
    /// The etcd revision this view reflects.
    pub revision: i64,
}

/// One change read from etcd: a key put (with its value and revision) or
/// deleted.
pub enum Change<'a> {
    Put { key: &'a [u8], value: &'a [u8], revision: i64 },
    Delete { key: &'a [u8], revision: i64 },
}

impl View {
    /// Replaces what the view knows with a full read of the directory at
    /// `revision`. Nodes it knew that are gone stay, as dead.
    pub fn reload<'a>(&mut self, kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8], i64)>, revision: i64) {
        let mut fresh = View { nodes: BTreeMap::new(), tenants: BTreeMap::new(), revision };
        for (key, value, rev) in kvs {
            fresh.apply(Change::Put { key, value, revision: rev });
        }
        for (id, mut node) in std::mem::take(&mut self.nodes) {
            node.alive = false;
            fresh.nodes.entry(id).or_insert(node);
        }
        fresh.revision = revision;
        *self = fresh;
    }

    /// Applies one change; unknown keys and values that do not parse are
    /// ignored (another version's records, or somebody else's keys).
    pub fn apply(&mut self, change: Change<'_>) {
        match change {
            Change::Put { key, value, revision } => {
                self.revision = self.revision.max(revision);
                match Key::parse(key) {
                    Some(Key::Node(id)) => {
                        if let Ok(info) = serde_json::from_slice::<NodeInfo>(value) {
                            self.nodes.insert(id.to_string(), Node { info, alive: true });
                        }
                    }
                    Some(Key::Member(id)) => {
                        if let Ok(m) = serde_json::from_slice::<MemberInfo>(value) {
                            let node = self.nodes.entry(id.to_string()).or_default();
                            if !node.alive {
                                node.info.addr = m.addr;
                            }
                        }
                    }
                    Some(Key::Tenant(id)) => {
                        if let Ok(record) = serde_json::from_slice::<TenantRecord>(value) {
                            self.tenants.insert(id.to_string(), Located { record, revision });
                        }
                    }
                    None => {}
                }
            }
            Change::Delete { key, revision } => {
                self.revision = self.revision.max(revision);
                match Key::parse(key) {
                    // The lease expired (or was revoked): dead, but known.
                    Some(Key::Node(id)) => {
                        if let Some(n) = self.nodes.get_mut(id) {
                            n.alive = false;
                            n.info.memory_used = 0;
                            n.info.memory_free = 0;
                        }
                    }
                    // A member removed: forgotten, unless it is alive.
                    Some(Key::Member(id)) if self.nodes.get(id).is_some_and(|n| !n.alive) => {
                        self.nodes.remove(id);
                    }
                    Some(Key::Tenant(id)) => {
                        self.tenants.remove(id);
                    }
                    Some(Key::Member(_)) | None => {}
                }
            }
        }
    }

    /// Tenants whose record names `node` as owner.
    pub fn tenants_of(&self, node: &str) -> usize {
        self.tenants.values().filter(|l| l.record.owner == node).count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::{TenantState, member_key, node_key, tenant_key};
    use super::*;

    fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    #[test]
    fn nodes_die_and_stay_known() {
        let mut v = View::default();
        let info = NodeInfo { addr: "127.0.0.1:7001".into(), memory_used: 10, memory_free: 90 };
        let (nk, mk) = (node_key("n1"), member_key("n1"));
        let (ni, mi) = (json(&info), json(&MemberInfo { addr: info.addr.clone() }));
        v.apply(Change::Put { key: mk.as_bytes(), value: &mi, revision: 2 });
        v.apply(Change::Put { key: nk.as_bytes(), value: &ni, revision: 3 });
        assert!(v.nodes["n1"].alive);
        v.apply(Change::Delete { key: nk.as_bytes(), revision: 4 });
        assert!(!v.nodes["n1"].alive);
        assert_eq!(v.nodes["n1"].info.addr, "127.0.0.1:7001");
        assert_eq!(v.revision, 4);
        // A full read that lacks it (its member entry removed meanwhile)
        // still remembers it, dead.
        v.reload(std::iter::empty(), 9);
        assert!(!v.nodes["n1"].alive);
        assert_eq!(v.revision, 9);
    }

    #[test]
    fn tenant_records_carry_their_revision() {
        let mut v = View::default();
        let r = TenantRecord { owner: "n1".into(), epoch: 1, state: TenantState::Active };
        let k = tenant_key("acme");
        v.apply(Change::Put { key: k.as_bytes(), value: &json(&r), revision: 7 });
        assert_eq!(v.tenants["acme"], Located { record: r, revision: 7 });
        assert_eq!(v.tenants_of("n1"), 1);
        v.apply(Change::Put { key: k.as_bytes(), value: b"not json", revision: 8 });
        assert_eq!(v.tenants["acme"].revision, 7);
        v.apply(Change::Delete { key: k.as_bytes(), revision: 9 });
        assert!(v.tenants.is_empty());
    }
}
