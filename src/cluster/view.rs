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
    /// The etcd revision the watch (or the last full read) has delivered.
    pub revision: i64,
    /// Tenants this node deleted itself (at these revisions) that the watch
    /// has not yet caught up with: an older put still on its way must not
    /// bring them back.
    deleted_ahead: BTreeMap<String, i64>,
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
        let mut fresh = View { revision, ..View::default() };
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

    /// Applies one change the watch delivered (in revision order); unknown
    /// keys and values that do not parse are ignored (another version's
    /// records, or somebody else's keys).
    pub fn apply(&mut self, change: Change<'_>) {
        let revision = match change {
            Change::Put { revision, .. } | Change::Delete { revision, .. } => revision,
        };
        self.change(change);
        self.revision = self.revision.max(revision);
        let seen = self.revision;
        self.deleted_ahead.retain(|_, r| *r > seen);
    }

    /// Applies a change this node's own transaction made, as soon as etcd
    /// confirmed it: the watch brings the same change a moment later, and
    /// anything older it still brings is not applied over it.
    pub fn apply_own(&mut self, change: Change<'_>) {
        if let Change::Delete { key, revision } = change
            && let Some(Key::Tenant(id)) = Key::parse(key)
        {
            self.deleted_ahead.insert(id.to_string(), revision);
        }
        self.change(change);
    }

    fn change(&mut self, change: Change<'_>) {
        match change {
            Change::Put { key, value, revision } => match Key::parse(key) {
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
                    let newer = self.tenants.get(id).is_some_and(|l| l.revision > revision)
                        || self.deleted_ahead.get(id).is_some_and(|r| *r > revision);
                    if let Ok(record) = serde_json::from_slice::<TenantRecord>(value)
                        && !newer
                    {
                        self.tenants.insert(id.to_string(), Located { record, revision });
                    }
                }
                None => {}
            },
            Change::Delete { key, revision } => {
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
                    Some(Key::Tenant(id)) if self.tenants.get(id).is_none_or(|l| l.revision <= revision) => {
                        self.tenants.remove(id);
                    }
                    Some(Key::Member(_) | Key::Tenant(_)) | None => {}
                }
            }
        }
    }

    /// The live node with the most free memory (ties: the smallest id): where
    /// a new tenant goes unless told.
    pub fn roomiest(&self) -> Option<String> {
        let live = self.nodes.iter().filter(|(_, n)| n.alive);
        live.max_by(|a, b| a.1.info.memory_free.cmp(&b.1.info.memory_free).then(b.0.cmp(a.0))).map(|(id, _)| id.clone())
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
    fn new_tenants_go_to_the_live_node_with_most_room() {
        let mut v = View::default();
        assert_eq!(v.roomiest(), None);
        for (id, free, rev) in [("n1", 50, 2), ("n2", 90, 3), ("n3", 90, 4), ("n4", 500, 5)] {
            let info = NodeInfo { addr: format!("{id}:1"), memory_used: 0, memory_free: free };
            v.apply(Change::Put { key: node_key(id).as_bytes(), value: &json(&info), revision: rev });
        }
        assert_eq!(v.roomiest().as_deref(), Some("n4"));
        // Dead: never chosen. A tie goes to the smaller id.
        v.apply(Change::Delete { key: node_key("n4").as_bytes(), revision: 6 });
        assert_eq!(v.roomiest().as_deref(), Some("n2"));
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

    #[test]
    fn own_changes_are_not_undone_by_older_events() {
        let mut v = View::default();
        let k = tenant_key("acme");
        let rec = |owner: &str, epoch| json(&TenantRecord { owner: owner.into(), epoch, state: TenantState::Active });
        // Ours, confirmed at 12, before the watch delivered 10 and 11.
        v.apply_own(Change::Put { key: k.as_bytes(), value: &rec("n2", 2), revision: 12 });
        v.apply(Change::Put { key: k.as_bytes(), value: &rec("n1", 1), revision: 10 });
        v.apply(Change::Delete { key: k.as_bytes(), revision: 11 });
        assert_eq!(v.tenants["acme"].record.owner, "n2");
        v.apply(Change::Put { key: k.as_bytes(), value: &rec("n2", 2), revision: 12 });
        assert_eq!((v.tenants["acme"].revision, v.revision), (12, 12));
        // Our delete at 14 stays deleted while an older put arrives.
        v.apply_own(Change::Delete { key: k.as_bytes(), revision: 14 });
        v.apply(Change::Put { key: k.as_bytes(), value: &rec("n3", 3), revision: 13 });
        assert!(v.tenants.is_empty());
        v.apply(Change::Delete { key: k.as_bytes(), revision: 14 });
        assert!(v.deleted_ahead.is_empty(), "forgotten once the watch caught up");
        // A later create by anyone shows.
        v.apply(Change::Put { key: k.as_bytes(), value: &rec("n1", 1), revision: 15 });
        assert_eq!(v.tenants["acme"].record.owner, "n1");
    }
}
