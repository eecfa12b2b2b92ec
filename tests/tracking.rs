//! CLIENT TRACKING (issue 14, item 4): the same requests give the same
//! replies and invalidation pushes as redis-server 7.0 (compared as whole
//! streams, RESP3 and RESP2, one connection or a redirect target), and a
//! tenant's tracking never hears of another tenant's keys, never
//! redirects to another tenant's client, and pays for its table.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Raw, RedisServer, encode, login, ok, tenant};
use ferrite::protocol::Frame;

/// Sends `commands` one at a time (after HELLO `proto`, whose reply names
/// the server and is dropped), then a PING, and returns every frame up to
/// its PONG. One at a time, because Redis sends BCAST invalidations once
/// per event-loop turn: after a whole pipelined batch.
fn stream(addr: SocketAddr, proto: &str, commands: &[&[&str]]) -> Vec<Frame> {
    let mut c = Raw::connect(addr);
    c.cmd(&["HELLO", proto]);
    let mut out = Vec::new();
    for cmd in commands.iter().chain([&["PING"][..]].iter()) {
        c.send(&encode(cmd.iter().map(|a| a.as_bytes())));
        loop {
            match c.read() {
                Frame::Simple(s) if s == "PONG" => return out,
                f @ Frame::Push(_) => out.push(f),
                f => {
                    out.push(f);
                    break;
                }
            }
        }
    }
    unreachable!("PING answers")
}

fn flushall(addr: SocketAddr) {
    assert_eq!(Raw::connect(addr).cmd(&["FLUSHALL"]), ok());
}

const SCRIPTS: &[&[&[&str]]] = &[
    // The default mode: a read key is invalidated once, by any write.
    &[&["CLIENT", "TRACKING", "ON"], &["GET", "k"], &["SET", "k", "1"], &["SET", "k", "2"], &["GET", "k"], &["DEL", "k"], &["DEL", "k"]],
    &[&["CLIENT", "TRACKING", "ON"], &["MGET", "a", "b", "c"], &["MSET", "a", "1", "b", "2"], &["INCR", "c"], &["INCR", "c"]],
    &[
        &["CLIENT", "TRACKING", "ON"],
        &["SET", "s", "x"],
        &["STRLEN", "s"],
        &["APPEND", "s", "y"],
        &["EXISTS", "s"],
        &["EXPIRE", "s", "100"],
    ],
    &[&["CLIENT", "TRACKING", "ON"], &["HSET", "h", "f", "v"], &["HGET", "h", "f"], &["HDEL", "h", "nope"], &["HDEL", "h", "f"]],
    &[
        &["CLIENT", "TRACKING", "ON"],
        &["GET", "r"],
        &["SET", "r", "1"],
        &["GET", "r"],
        &["RENAME", "r", "r2"],
        &["GET", "r2"],
        &["RENAME", "r2", "r"],
    ],
    // NOLOOP: the client's own writes are not reported.
    &[&["CLIENT", "TRACKING", "ON", "NOLOOP"], &["GET", "k"], &["SET", "k", "1"], &["GET", "k"]],
    // OPTIN / OPTOUT and CACHING.
    &[
        &["CLIENT", "TRACKING", "ON", "OPTIN"],
        &["GET", "a"],
        &["SET", "a", "1"],
        &["CLIENT", "CACHING", "YES"],
        &["GET", "a"],
        &["SET", "a", "2"],
        &["CLIENT", "CACHING", "YES"],
        &["CLIENT", "TRACKINGINFO"],
        &["MULTI"],
        &["GET", "a"],
        &["GET", "b"],
        &["EXEC"],
        &["CLIENT", "TRACKINGINFO"],
        &["MSET", "a", "3", "b", "4"],
    ],
    &[
        &["CLIENT", "TRACKING", "ON", "OPTOUT"],
        &["CLIENT", "CACHING", "NO"],
        &["GET", "a"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["SET", "a", "2"],
        &["CLIENT", "CACHING", "NO"],
        &["CLIENT", "TRACKINGINFO"],
    ],
    // BCAST: every change under a prefix, one message per prefix and command.
    &[
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "job:"],
        &["MSET", "user:2", "a", "user:1", "b", "other", "c", "job:1", "d"],
        &["SET", "other", "e"],
        &["DEL", "user:1", "user:9"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "use"],
        &["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "ab"],
    ],
    &[&["CLIENT", "TRACKING", "ON", "BCAST", "NOLOOP"], &["SET", "x", "1"], &["CLIENT", "TRACKINGINFO"]],
    &[&["CLIENT", "TRACKING", "ON", "BCAST"], &["SET", "x", "1"], &["MULTI"], &["SET", "y", "1"], &["SET", "z", "1"], &["EXEC"]],
    // Flushes invalidate everything with a null.
    &[&["CLIENT", "TRACKING", "ON"], &["GET", "k"], &["FLUSHDB"], &["SET", "k", "1"], &["FLUSHALL"]],
    &[&["CLIENT", "TRACKING", "ON", "BCAST"], &["FLUSHALL"]],
    // Scripts: a read inside one tracks the keys it declared.
    &[
        &["CLIENT", "TRACKING", "ON"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "e1"],
        &["EVAL", "return 1", "1", "e2"],
        &["EVAL_RO", "return redis.call('get', 'e3')", "1", "e4"],
        &["MSET", "e1", "1", "e2", "2", "e3", "3", "e4", "4"],
    ],
    // Off, and what TRACKINGINFO and GETREDIR say.
    &[
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKINGINFO"],
        &["CLIENT", "TRACKING", "ON"],
        &["CLIENT", "GETREDIR"],
        &["CLIENT", "TRACKINGINFO"],
        &["GET", "k"],
        &["CLIENT", "TRACKING", "OFF"],
        &["SET", "k", "1"],
        &["CLIENT", "TRACKINGINFO"],
    ],
    // Errors, in Redis's order and words.
    &[
        &["CLIENT", "TRACKING"],
        &["CLIENT", "TRACKING", "MAYBE"],
        &["CLIENT", "TRACKING", "ON", "BOGUS"],
        &["CLIENT", "TRACKING", "ON", "PREFIX"],
        &["CLIENT", "TRACKING", "ON", "PREFIX", "a"],
        &["CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"],
        &["CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"],
        &["CLIENT", "TRACKING", "ON", "REDIRECT", "999999"],
        &["CLIENT", "TRACKING", "ON", "REDIRECT", "x"],
        &["CLIENT", "TRACKING", "OFF", "BOGUS"],
        &["CLIENT", "CACHING", "YES"],
        &["CLIENT", "CACHING"],
        &["CLIENT", "GETREDIR", "x"],
        &["CLIENT", "TRACKINGINFO", "x"],
        &["CLIENT", "TRACKING", "ON", "OPTIN"],
        &["CLIENT", "CACHING", "NO"],
        &["CLIENT", "CACHING", "MAYBE"],
        &["CLIENT", "TRACKING", "ON", "OPTOUT"],
        &["CLIENT", "TRACKING", "ON", "BCAST"],
        &["CLIENT", "TRACKING", "OFF"],
        &["CLIENT", "TRACKING", "ON"],
        &["CLIENT", "CACHING", "YES"],
        &["CLIENT", "TRACKING", "ON", "BCAST"],
    ],
];

#[test]
fn tracking_replies_and_pushes_match_redis() {
    let redis = RedisServer::start();
    let h = common::start();
    for proto in ["3", "2"] {
        for (i, script) in SCRIPTS.iter().enumerate() {
            let (want, got) = (stream(redis.addr, proto, script), stream(h.addr, proto, script));
            assert_eq!(got, want, "RESP{proto} script {i}: {script:?}");
            flushall(redis.addr);
            flushall(h.addr);
        }
    }
}

/// Client `target` takes invalidations for `tracker`, which reads `k`
/// and then sees it changed by a third client; returns what the target
/// got, then what the tracker got after the target went away and `k`
/// changed again.
fn redirected(addr: SocketAddr, target_proto: &str) -> (Vec<Frame>, Vec<Frame>) {
    let mut target = Raw::connect(addr);
    target.cmd(&["HELLO", target_proto]);
    let Frame::Integer(id) = target.cmd(&["CLIENT", "ID"]) else { panic!("an id") };
    let subscribed = target.cmd(&["SUBSCRIBE", "__redis__:invalidate"]);
    let mut tracker = Raw::connect(addr);
    tracker.cmd(&["HELLO", "3"]);
    let id = id.to_string();
    let mut got = vec![subscribed, tracker.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &id])];
    got.push(tracker.cmd(&["GET", "k"]));
    let redir = tracker.cmd(&["CLIENT", "GETREDIR"]);
    got.push(Frame::Boolean(matches!(redir, Frame::Integer(n) if n.to_string() == id)));
    let mut writer = Raw::connect(addr);
    assert_eq!(writer.cmd(&["SET", "k", "1"]), ok());
    got.push(target.read());
    assert_eq!(writer.cmd(&["FLUSHALL"]), ok());
    got.push(target.read());
    drop(target);
    std::thread::sleep(Duration::from_millis(100));
    tracker.cmd(&["GET", "k"]);
    assert_eq!(writer.cmd(&["SET", "k", "2"]), ok());
    let mut after = vec![tracker.read(), tracker.cmd(&["CLIENT", "TRACKINGINFO"])];
    // Redis keeps the client's id in the message; the ids differ by server.
    if let Frame::Push(items) = &mut after[0] {
        assert_eq!(items.get(1), Some(&Frame::Integer(id.parse().unwrap())));
        items[1] = Frame::Integer(0);
    }
    if let Frame::Map(m) = &mut after[1] {
        m[1].1 = Frame::Integer(0);
    }
    (got, after)
}

#[test]
fn redirected_invalidations_match_redis() {
    let redis = RedisServer::start();
    let h = common::start();
    for proto in ["2", "3"] {
        let (want, got) = (redirected(redis.addr, proto), redirected(h.addr, proto));
        assert_eq!(got, want, "target in RESP{proto}");
    }
}

fn resp3(mut c: Raw) -> Raw {
    assert!(matches!(c.cmd(&["HELLO", "3"]), Frame::Map(_)));
    c
}

#[test]
fn a_tenant_tracks_only_its_own_keys_and_clients() {
    let h = common::start();
    let mut a = resp3(tenant(&h, "a", &[]));
    let mut b = resp3(tenant(&h, "b", &[]));
    let mut admin = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON"]), ok());
    assert_eq!(a.cmd(&["GET", "k"]), Frame::Null);
    // Another tenant's key of the same name, the global one, a flush
    // elsewhere: nothing for a.
    assert_eq!(b.cmd(&["SET", "k", "1"]), ok());
    assert_eq!(admin.cmd(&["SET", "k", "1"]), ok());
    assert_eq!(b.cmd(&["FLUSHALL"]), ok());
    // A redirect to another tenant's client, or the admin's, is refused.
    let Frame::Integer(b_id) = b.cmd(&["CLIENT", "ID"]) else { panic!() };
    let Frame::Integer(admin_id) = admin.cmd(&["CLIENT", "ID"]) else { panic!() };
    for id in [b_id, admin_id] {
        let reply = a.cmd(&["CLIENT", "TRACKING", "ON", "REDIRECT", &id.to_string()]);
        assert_eq!(reply, Frame::Error("ERR The client ID you want redirect to does not exist".into()));
    }
    // Its own key changed by another of its clients, or by the admin
    // addressing it: a hears, in that order.
    let mut a2 = login(&h, "a");
    assert_eq!(a2.cmd(&["SET", "k", "2"]), ok());
    let push = Frame::Push(vec![Frame::Bulk(b"invalidate".to_vec()), Frame::Array(vec![Frame::Bulk(b"k".to_vec())])]);
    assert_eq!(a.read(), push);
    assert_eq!(a.cmd(&["GET", "k"]), Frame::Bulk(b"2".to_vec()));
    assert_eq!(admin.cmd(&["SET", "__tenant:a:k", "3"]), ok());
    assert_eq!(a.read(), push);
    assert_eq!(a.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

fn memory_used(admin: &mut Raw, id: &str) -> u64 {
    let Frame::Map(m) = admin.cmd(&["HELLO", "3"]) else { panic!() };
    drop(m);
    let info = admin.cmd(&["TENANT.INFO", id]);
    let Frame::Map(fields) = info else { panic!("a map: {info:?}") };
    let used = fields.iter().find(|(k, _)| *k == Frame::Bulk(b"memory_used".to_vec())).map(|(_, v)| v.clone());
    match used {
        Some(Frame::Integer(n)) => n as u64,
        other => panic!("memory_used: {other:?}"),
    }
}

#[test]
fn a_tenants_tracking_table_is_its_memory_and_stays_bounded() {
    let h = common::start();
    let mut a = resp3(tenant(&h, "a", &["MEMORY", "1mb", "OPS", "1000000"]));
    let mut admin = Raw::connect(h.addr);
    let before = memory_used(&mut admin, "a");
    assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON"]), ok());
    // Reads of keys that do not exist are tracked too (as in Redis): a
    // hostile client could grow the table without storing anything.
    let name = "x".repeat(200);
    let mut batch = Vec::new();
    for i in 0..5000 {
        batch.extend(encode([b"GET".as_slice(), format!("{name}{i}").as_bytes()].into_iter()));
    }
    a.send(&batch);
    let mut pushes = 0;
    let mut nulls = 0;
    while nulls < 5000 {
        match a.read() {
            Frame::Null => nulls += 1,
            Frame::Push(_) => pushes += 1,
            f => panic!("unexpected {f:?}"),
        }
    }
    a.send(&encode([b"PING".as_slice()].into_iter()));
    loop {
        match a.read() {
            Frame::Push(_) => pushes += 1,
            Frame::Simple(s) if s == "PONG" => break,
            f => panic!("unexpected {f:?}"),
        }
    }
    let after = memory_used(&mut admin, "a");
    let grew = after.saturating_sub(before);
    // 5000 keys of 200 bytes would be over 1 MB; the table keeps a tenth
    // of the limit and invalidates what it drops.
    assert!(grew > 50_000, "the table is charged: grew {grew}");
    assert!(grew <= 1024 * 1024 / 10 + 4096, "bounded: grew {grew}");
    assert!(pushes > 0, "dropped keys are invalidated");
    assert_eq!(a.cmd(&["CLIENT", "TRACKING", "OFF"]), ok());
    // Turning tracking off frees the table once nobody tracks.
    let freed = memory_used(&mut admin, "a");
    assert!(freed < before + 4096, "freed: {freed} vs {before}");
}

#[test]
fn a_tenants_bcast_prefixes_are_bounded_by_its_memory() {
    let h = common::start();
    let mut a = resp3(tenant(&h, "a", &["MEMORY", "100kb"]));
    let names: Vec<String> = (0..200).map(|i| format!("{i:03}{}", "p".repeat(100))).collect();
    let mut cmd = vec!["CLIENT", "TRACKING", "ON", "BCAST"];
    for n in &names {
        cmd.extend(["PREFIX", n.as_str()]);
    }
    let Frame::Error(e) = a.cmd(&cmd) else { panic!("refused") };
    assert!(e.starts_with("OOM"), "{e}");
    assert!(!a.cmd(&["CLIENT", "TRACKINGINFO"]).to_string().contains("bcast"));
    // A few are fine.
    assert_eq!(a.cmd(&["CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", &names[0], "PREFIX", &names[1]]), ok());
}

/// `tracking-table-max-keys`: past it, keys leave the table with an
/// invalidation to whoever cached them.
#[test]
fn the_table_keeps_at_most_tracking_table_max_keys() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "tracking-table-max-keys", "10"]), ok());
    let mut c = Raw::connect(h.addr);
    c.cmd(&["HELLO", "3"]);
    assert_eq!(c.cmd(&["CLIENT", "TRACKING", "ON"]), ok());
    let mut pushes = 0;
    for i in 0..50 {
        c.send(&encode([b"GET".as_slice(), format!("k{i}").as_bytes()].into_iter()));
        loop {
            match c.read() {
                Frame::Push(_) => pushes += 1,
                Frame::Null => break,
                f => panic!("unexpected {f:?}"),
            }
        }
    }
    c.send(&encode([b"PING".as_slice()].into_iter()));
    while c.read() != Frame::Simple("PONG".into()) {
        pushes += 1;
    }
    assert_eq!(pushes, 40);
    let Frame::Verbatim(info) = c.cmd(&["INFO", "stats"]) else { panic!() };
    assert!(String::from_utf8_lossy(&info).contains("tracking_total_keys:10\r\n"));
}
