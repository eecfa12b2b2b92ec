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
        &[
            &["CLIENT", "PAUSE"],
            &["CLIENT", "PAUSE", "x"],
            &["CLIENT", "PAUSE", "-1"],
            &["CLIENT", "PAUSE", "1.5"],
            &["CLIENT", "PAUSE", "10", "MAYBE"],
            &["CLIENT", "PAUSE", "10", "WRITE", "x"],
            &["CLIENT", "PAUSE", "0"],
            &["CLIENT", "PAUSE", "0", "WRITE"],
            &["CLIENT", "UNPAUSE", "x"],
            &["CLIENT", "UNPAUSE"],
            &["CLIENT", "LIST", "USER"],
        ],
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

/// Sends `args` and returns the reply with how long it took.
fn timed(c: &mut Raw, args: &[&str]) -> (Frame, Duration) {
    let start = std::time::Instant::now();
    let reply = c.cmd(args);
    (reply, start.elapsed())
}

#[test]
fn the_admins_write_pause_holds_writes_of_everyone_until_unpause() {
    let h = common::start();
    let mut t = tenant(&h, "a", &[]);
    let mut admin = Raw::connect(h.addr);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]), ok());
    // Reads run; a write waits, and runs once the admin unpauses.
    let (reply, took) = timed(&mut t, &["GET", "k"]);
    assert_eq!((reply, took < Duration::from_secs(1)), (bulk("v"), true));
    t.send(&encode([b"SET".as_slice(), b"k", b"w"].into_iter()));
    std::thread::sleep(Duration::from_millis(300));
    let mut other = login(&h, "a");
    assert_eq!(other.cmd(&["GET", "k"]), bulk("v"), "the held SET has not run");
    let (reply, took) = timed(&mut admin, &["CLIENT", "UNPAUSE"]);
    assert_eq!((reply, took < Duration::from_secs(1)), (ok(), true));
    assert_eq!(t.read(), ok());
    assert_eq!(other.cmd(&["GET", "k"]), bulk("w"));
}

#[test]
fn a_tenants_pause_holds_only_its_own_clients() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    let mut a2 = login(&h, "a");
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["TENANT.USE", "a"]), ok());
    assert_eq!(a.cmd(&["CLIENT", "PAUSE", "400"]), ok());
    // Other tenants and the admin (even inside the tenant) run at once.
    for c in [&mut b, &mut admin] {
        let (reply, took) = timed(c, &["PING"]);
        assert_eq!((reply, took < Duration::from_millis(200)), (Frame::Simple("PONG".into()), true));
    }
    // The tenant's own clients wait for the end of the pause.
    let (reply, took) = timed(&mut a2, &["PING"]);
    assert_eq!(reply, Frame::Simple("PONG".into()));
    assert!(took >= Duration::from_millis(250), "held for {took:?}");
    // An admin's UNPAUSE does not lift a tenant's pause, nor the reverse:
    // each acts on its own pause only.
    assert_eq!(a.cmd(&["CLIENT", "PAUSE", "60000", "WRITE"]), ok());
    assert_eq!(Raw::connect(h.addr).cmd(&["CLIENT", "UNPAUSE"]), ok());
    a2.send(&encode([b"SET".as_slice(), b"k", b"1"].into_iter()));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.cmd(&["CLIENT", "UNPAUSE"]), ok());
    assert_eq!(a2.read(), ok());
}

#[test]
fn client_list_filters_by_user() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    let _b = tenant(&h, "b", &[]);
    let mut admin = Raw::connect(h.addr);
    let lines = |f: Frame| f.to_string().lines().filter(|l| l.contains("id=")).count();
    assert_eq!(lines(admin.cmd(&["CLIENT", "LIST", "USER", "a"])), 1);
    // The admin's connection is the `default` user's (the ones that
    // created the tenants have closed).
    assert_eq!(lines(admin.cmd(&["CLIENT", "LIST", "USER", "default"])), 1);
    assert_eq!(lines(a.cmd(&["CLIENT", "LIST", "USER", "b"])), 0);
}
