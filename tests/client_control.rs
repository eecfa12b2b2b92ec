//! CLIENT REPLY and CLIENT UNBLOCK (issue 14, item 4), against
//! redis-server: the same requests give the same bytes back (REPLY drops
//! replies, so these are compared as whole streams up to a final PING),
//! and a tenant unblocks only its own clients.

mod common;

use std::time::Duration;

use common::{Raw, RedisServer, bulk, encode, login, ok, tenant};
use ferrite::protocol::Frame;

/// Sends `commands` in one go and returns every reply up to the PONG of a
/// PING sent after them.
fn replies(addr: std::net::SocketAddr, commands: &[&[&str]]) -> Vec<Frame> {
    let mut c = Raw::connect(addr);
    let mut bytes = Vec::new();
    for cmd in commands.iter().chain([&["PING"][..]].iter()) {
        bytes.extend(encode(cmd.iter().map(|a| a.as_bytes())));
    }
    c.send(&bytes);
    let mut out = Vec::new();
    loop {
        let f = c.read();
        if f == Frame::Simple("PONG".into()) {
            return out;
        }
        out.push(f);
    }
}

#[test]
fn client_reply_drops_replies_as_redis_does() {
    let redis = RedisServer::start();
    let h = common::start();
    let scripts: &[&[&[&str]]] = &[
        &[&["CLIENT", "REPLY", "OFF"], &["SET", "a", "1"], &["GET", "a"], &["CLIENT", "REPLY", "ON"], &["GET", "a"]],
        &[&["SET", "b", "2"], &["CLIENT", "REPLY", "SKIP"], &["INCR", "b"], &["GET", "b"], &["INCR", "b"]],
        &[&["CLIENT", "REPLY", "OFF"], &["CLIENT", "REPLY", "SKIP"], &["SET", "c", "3"], &["CLIENT", "REPLY", "ON"], &["GET", "c"]],
        &[&["CLIENT", "REPLY", "SKIP"], &["CLIENT", "REPLY", "SKIP"], &["GET", "c"], &["GET", "c"]],
        &[&["CLIENT", "REPLY"], &["CLIENT", "REPLY", "MAYBE"], &["CLIENT", "REPLY", "ON", "EXTRA"]],
        &[&["CLIENT", "UNBLOCK", "999999"], &["CLIENT", "UNBLOCK", "999999", "ERROR"], &["CLIENT", "UNBLOCK", "999999", "BOGUS"]],
        &[&["CLIENT", "UNBLOCK", "x"], &["CLIENT", "UNBLOCK", "x", "BOGUS"], &["CLIENT", "UNBLOCK"]],
    ];
    for (i, script) in scripts.iter().enumerate() {
        let (want, got) = (replies(redis.addr, script), replies(h.addr, script));
        assert_eq!(got, want, "script {i}");
        // FLUSHALL between scripts, on both.
        assert_eq!(Raw::connect(redis.addr).cmd(&["FLUSHALL"]), ok());
        assert_eq!(Raw::connect(h.addr).cmd(&["FLUSHALL"]), ok());
    }
}

/// A blocked BLPOP, and the id of its connection.
fn blocked(h: &ferrite::server::ServerHandle, id: &str) -> (Raw, String) {
    let mut c = login(h, id);
    let Frame::Integer(n) = c.cmd(&["CLIENT", "ID"]) else { panic!("an id") };
    c.send(&encode([b"BLPOP".as_slice(), b"list", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(100));
    (c, n.to_string())
}

#[test]
fn client_unblock_ends_a_wait_and_reaches_only_the_tenants_own_clients() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    let _b = tenant(&h, "b", &[]);
    let (mut waiting, id) = blocked(&h, "a");
    // Another tenant cannot see, so cannot unblock, a's client.
    let mut b = login(&h, "b");
    assert_eq!(b.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(0));
    assert_eq!(a.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(1));
    assert_eq!(waiting.read(), Frame::Null, "answered as a timeout");
    assert_eq!(a.cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(0), "no longer blocked");
    // The connection goes on.
    assert_eq!(waiting.cmd(&["RPUSH", "other", "x"]), Frame::Integer(1));
    let (mut waiting, id) = blocked(&h, "a");
    assert_eq!(a.cmd(&["CLIENT", "UNBLOCK", &id, "ERROR"]), Frame::Integer(1));
    assert_eq!(waiting.read(), Frame::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()));
    assert_eq!(waiting.cmd(&["LPOP", "other"]), bulk("x"));
    // The admin reaches every client.
    let (mut waiting, id) = blocked(&h, "a");
    assert_eq!(Raw::connect(h.addr).cmd(&["CLIENT", "UNBLOCK", &id]), Frame::Integer(1));
    assert_eq!(waiting.read(), Frame::Null);
}

#[test]
fn acl_whoami_names_the_tenant() {
    let h = common::start();
    let mut t = tenant(&h, "acme", &[]);
    assert_eq!(t.cmd(&["ACL", "WHOAMI"]), bulk("acme"));
    assert_eq!(Raw::connect(h.addr).cmd(&["ACL", "WHOAMI"]), bulk("default"));
}
