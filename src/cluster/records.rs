//! What the directory keeps in etcd: its keys and the JSON of its values.
//!
//! `/ferrite/nodes/<id>`: a live node (under its lease, so it disappears
//! within the lease's TTL when the node dies): address and memory.
//! `/ferrite/members/<id>`: a node that ever registered (no lease), so a node
//! that starts while another is down still knows of it, as dead.
//! `/ferrite/tenants/<id>`: a tenant's record: owner, epoch, state. Every
//! change to one is a transaction conditioned on its revision.

use serde::{Deserialize, Serialize};

pub const ROOT: &str = "/ferrite/";
pub const NODES: &str = "/ferrite/nodes/";
pub const MEMBERS: &str = "/ferrite/members/";
pub const TENANTS: &str = "/ferrite/tenants/";

pub fn node_key(id: &str) -> String {
    format!("{NODES}{id}")
}

pub fn member_key(id: &str) -> String {
    format!("{MEMBERS}{id}")
}

pub fn tenant_key(id: &str) -> String {
    format!("{TENANTS}{id}")
}

/// A live node's entry, refreshed about every second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub addr: String,
    pub memory_used: u64,
    /// What it may still take: `maxmemory` less what it holds, or the
    /// machine's available memory when it has no `maxmemory`.
    pub memory_free: u64,
}

/// A member's permanent entry: where it was last reachable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub addr: String,
}

/// Where a tenant lives. `epoch` grows by one with every change of owner,
/// so a node can tell an older record from a newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub owner: String,
    pub epoch: u64,
    pub state: TenantState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Served by its owner.
    Active,
    /// Its owner is copying it to another node.
    Moving,
}

impl TenantState {
    pub fn name(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Moving => "moving",
        }
    }
}

/// What a key under [`ROOT`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Node(&'a str),
    Member(&'a str),
    Tenant(&'a str),
}

impl<'a> Key<'a> {
    /// None for keys the directory does not use (left alone).
    pub fn parse(key: &'a [u8]) -> Option<Key<'a>> {
        let key = std::str::from_utf8(key).ok()?;
        let name = |prefix: &str| key.strip_prefix(prefix).filter(|n| !n.is_empty() && !n.contains('/'));
        if let Some(n) = name(NODES) {
            Some(Key::Node(n))
        } else if let Some(n) = name(MEMBERS) {
            Some(Key::Member(n))
        } else {
            name(TENANTS).map(Key::Tenant)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(Key::parse(node_key("n1").as_bytes()), Some(Key::Node("n1")));
        assert_eq!(Key::parse(member_key("n1").as_bytes()), Some(Key::Member("n1")));
        assert_eq!(Key::parse(tenant_key("acme").as_bytes()), Some(Key::Tenant("acme")));
        assert_eq!(Key::parse(b"/ferrite/nodes/"), None);
        assert_eq!(Key::parse(b"/ferrite/other/x"), None);
    }

    #[test]
    fn records_are_json() {
        let r = TenantRecord { owner: "n2".into(), epoch: 3, state: TenantState::Moving };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"owner":"n2","epoch":3,"state":"moving"}"#);
        assert_eq!(serde_json::from_str::<TenantRecord>(&text).unwrap(), r);
    }
}
