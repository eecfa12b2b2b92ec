//! Keyspace notifications beyond one connection's script: blocked clients
//! served by another connection's write (the same command sequence against
//! `redis-server` and Ferrite, with a subscriber on each, must deliver the
//! same messages), and what Redis has no counterpart for: events scoped to
//! the tenant they happen in, a tenant's own setting, evictions (native and
//! chosen by a WASM policy) and the server default from the configuration.
//! `tests/differential/notifications.redis` covers every command family.

mod common;
#[allow(dead_code)]
#[path = "common/policies.rs"]
mod policies;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Raw, RedisServer, bulk, config, err, login, ok, start, start_with, tenant};
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

/// The channel a subscriber also listens to, so that a marker published
/// after the commands tells it has received everything before.
const END: &str = "__end__";

/// A connection subscribed to `patterns` (and the end marker).
fn subscriber(addr: SocketAddr, auth: Option<&str>, patterns: &[&str]) -> Raw {
    let mut s = Raw::connect(addr);
    if let Some(id) = auth {
        assert_eq!(s.cmd(&["AUTH", id, "pw"]), ok());
    }
    assert!(matches!(s.cmd(&["SUBSCRIBE", END]), Frame::Array(_)));
    for p in patterns {
        assert!(matches!(s.cmd(&["PSUBSCRIBE", p]), Frame::Array(_)));
    }
    s
}

/// `(channel, message)` of each message `sub` received before the end
/// marker that `publisher` publishes now (in the subscriber's space).
fn received(publisher: &mut Raw, sub: &mut Raw) -> Vec<(String, String)> {
    assert!(matches!(publisher.cmd(&["PUBLISH", END, "end"]), Frame::Integer(_)));
    let mut got = Vec::new();
    loop {
        let Frame::Array(v) = sub.read() else { panic!("a message") };
        let text = |f: &Frame| match f {
            Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("bulk: {other}"),
        };
        let n = v.len();
        let (channel, message) = (text(&v[n - 2]), text(&v[n - 1]));
        if channel == END {
            return got;
        }
        got.push((channel, message));
    }
}

fn events(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(c, m)| (c.to_string(), m.to_string())).collect()
}

/// Sends a command without reading its reply (a client that blocks).
fn send(c: &mut Raw, args: &[&str]) {
    c.send(&common::encode(args.iter().map(|a| a.as_bytes())));
}

/// The same session against one server: a client blocks, another's write
/// serves it; returns what a subscriber to every event received.
fn blocked_session(addr: SocketAddr) -> Vec<(String, String)> {
    let mut admin = Raw::connect(addr);
    admin.cmd(&["FLUSHALL"]);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEAnm"]), ok());
    let mut sub = subscriber(addr, None, &["__key*__:*"]);
    let (mut blocked, mut writer) = (Raw::connect(addr), Raw::connect(addr));
    let pause = || std::thread::sleep(Duration::from_millis(100));
    let steps: &[(&[&str], &[&str])] = &[
        (&["BLPOP", "l", "5"], &["RPUSH", "l", "a", "b"]),
        (&["BRPOP", "one", "5"], &["LPUSH", "one", "x"]),
        (&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"], &["RPUSH", "src", "x"]),
        (&["BLMPOP", "5", "2", "m1", "m2", "LEFT", "COUNT", "3"], &["RPUSH", "m2", "a", "b"]),
        (&["BZPOPMIN", "z", "5"], &["ZADD", "z", "1", "a", "2", "b"]),
        (&["BZMPOP", "5", "1", "z2", "MAX", "COUNT", "5"], &["ZADD", "z2", "1", "a"]),
        (&["XREAD", "BLOCK", "5000", "STREAMS", "nope", "s", "0", "$"], &["XADD", "s", "1-1", "f", "v"]),
    ];
    for (block, write) in steps {
        send(&mut blocked, block);
        pause();
        assert!(!matches!(writer.cmd(write), Frame::Error(_)), "{write:?}");
        assert!(!matches!(blocked.read(), Frame::Error(_)), "{block:?}");
    }
    // A consumer group read woken by XADD creates its consumer when served.
    assert_eq!(writer.cmd(&["XGROUP", "CREATE", "s", "g", "$"]), ok());
    send(&mut blocked, &["XREADGROUP", "GROUP", "g", "c", "BLOCK", "5000", "STREAMS", "s", ">"]);
    pause();
    writer.cmd(&["XADD", "s", "2-1", "f", "v"]);
    assert!(matches!(blocked.read(), Frame::Array(_)));
    let got = received(&mut admin, &mut sub);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]), ok());
    got
}

#[test]
fn blocked_clients_served_by_a_write_notify_as_in_redis() {
    let redis = RedisServer::start();
    let ferrite = start();
    let expected = blocked_session(redis.addr);
    assert!(expected.iter().any(|(c, _)| c == "__keyevent@0__:lpop"), "{expected:?}");
    assert_eq!(blocked_session(ferrite.addr), expected);
}

fn keyspace(db: usize, key: &str, event: &str) -> (String, String) {
    (format!("__keyspace@{db}__:{key}"), event.to_string())
}

/// A server whose default is KEA, its admin, and tenants `a` and `b`.
fn two_tenants() -> (ServerHandle, Raw, Raw, Raw) {
    let h = start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]), ok());
    let (a, b) = (tenant(&h, "a", &[]), tenant(&h, "b", &[]));
    (h, admin, a, b)
}

#[test]
fn events_stay_in_the_tenant_that_made_them() {
    let (h, mut admin, mut a, mut b) = two_tenants();
    let all = ["__key*__:*"];
    let (mut sub_a, mut sub_b) = (subscriber(h.addr, Some("a"), &all), subscriber(h.addr, Some("b"), &all));
    let mut sub_admin = subscriber(h.addr, None, &all);

    assert_eq!(a.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(a.cmd(&["SELECT", "2"]), ok());
    assert_eq!(a.cmd(&["RPUSH", "l", "x"]), Frame::Integer(1));
    // An operator's write to the tenant's key happens in the tenant's space.
    assert_eq!(admin.cmd(&["DEL", "__tenant:a:k"]), Frame::Integer(1));
    assert_eq!(
        received(&mut a, &mut sub_a),
        events(&[
            ("__keyspace@0__:k", "set"),
            ("__keyevent@0__:set", "k"),
            ("__keyspace@2__:l", "rpush"),
            ("__keyevent@2__:rpush", "l"),
            ("__keyspace@0__:k", "del"),
            ("__keyevent@0__:del", "k"),
        ])
    );
    assert_eq!(received(&mut b, &mut sub_b), vec![], "tenant b hears nothing of a");
    assert_eq!(received(&mut admin, &mut sub_admin), vec![], "nor does the admin's global space");

    // The admin's own writes stay in the global space.
    assert_eq!(admin.cmd(&["SET", "g", "1"]), ok());
    assert_eq!(received(&mut admin, &mut sub_admin), vec![keyspace(0, "g", "set"), ("__keyevent@0__:set".into(), "g".into())]);
    assert_eq!(received(&mut a, &mut sub_a), vec![]);
    assert_eq!(received(&mut b, &mut sub_b), vec![]);

    // A key expiring in tenant b (lazily, or by the active cycle) is b's event.
    assert_eq!(b.cmd(&["SET", "t", "1", "PX", "1"]), ok());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.cmd(&["GET", "t"]), Frame::Null);
    let got = received(&mut b, &mut sub_b);
    assert!(got.contains(&keyspace(0, "t", "expired")), "{got:?}");
    assert_eq!(received(&mut a, &mut sub_a), vec![]);
    assert_eq!(received(&mut admin, &mut sub_admin), vec![]);
}

#[test]
fn a_tenant_sets_its_own_classes_and_only_its_own() {
    let (h, mut admin, mut a, mut b) = two_tenants();
    let get = |c: &mut Raw| c.cmd(&["CONFIG", "GET", "notify-keyspace-events"]);
    let pair = |v: &str| Frame::Array(vec![bulk("notify-keyspace-events"), bulk(v)]);
    // Without a setting of its own a tenant reads (and follows) the default.
    assert_eq!(get(&mut a), pair("AKE"));
    assert_eq!(a.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kl"]), ok());
    assert_eq!(get(&mut a), pair("lK"));
    assert_eq!(get(&mut b), pair("AKE"));
    assert_eq!(get(&mut admin), pair("AKE"));
    // The same parameter with an encoding one: both or neither.
    assert_eq!(
        a.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEy", "hash-max-listpack-entries", "5"]),
        err(
            "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        )
    );
    assert_eq!(get(&mut a), pair("lK"));
    // Other server parameters stay the admin's.
    assert_eq!(
        a.cmd(&["CONFIG", "SET", "notify-keyspace-events", "", "maxmemory", "1"]),
        err("NOPERM tenant 'a' has no permissions to run the 'config' command")
    );
    let (mut sub_a, mut sub_b) = (subscriber(h.addr, Some("a"), &["__key*__:*"]), subscriber(h.addr, Some("b"), &["__key*__:*"]));
    for c in [&mut a, &mut b] {
        assert_eq!(c.cmd(&["SET", "s", "1"]), ok());
        assert_eq!(c.cmd(&["RPUSH", "l", "x"]), Frame::Integer(1));
    }
    assert_eq!(received(&mut a, &mut sub_a), vec![keyspace(0, "l", "rpush")]);
    assert_eq!(received(&mut b, &mut sub_b).len(), 4, "b keeps the default KEA");

    // The operator's TENANT.UPDATE ... NOTIFY, and DEFAULT to follow the server again.
    assert_eq!(admin.cmd(&["TENANT.UPDATE", "b", "NOTIFY", "Ex"]), ok());
    assert_eq!(get(&mut b), pair("xE"));
    let Frame::Array(info) = admin.cmd(&["TENANT.INFO", "b"]) else { panic!("info") };
    assert!(info.windows(2).any(|w| w[0] == bulk("notify") && w[1] == bulk("xE")), "{info:?}");
    assert_eq!(b.cmd(&["SET", "s", "2", "PX", "1"]), ok());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(b.cmd(&["GET", "s"]), Frame::Null);
    assert_eq!(received(&mut b, &mut sub_b), vec![("__keyevent@0__:expired".into(), "s".into())]);
    assert!(matches!(admin.cmd(&["TENANT.UPDATE", "b", "NOTIFY", "Kq"]), Frame::Error(e) if e.contains("Invalid event class")));
    assert_eq!(admin.cmd(&["TENANT.UPDATE", "b", "NOTIFY", "DEFAULT"]), ok());
    assert_eq!(admin.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kg"]), ok());
    assert_eq!(get(&mut b), pair("gK"));
    assert_eq!(get(&mut a), pair("lK"), "a keeps its own");
    assert_eq!(b.cmd(&["DEL", "l"]), Frame::Integer(1));
    assert_eq!(received(&mut b, &mut sub_b), vec![keyspace(0, "l", "del")]);
    // TENANT.CREATE takes NOTIFY too.
    let mut c = tenant(&h, "c", &["NOTIFY", "E$"]);
    assert_eq!(get(&mut c), pair("$E"));
}

/// Writes 100-byte values until `n` keys were written; the write that makes
/// room evicts.
fn fill(c: &mut Raw, prefix: &str, n: usize) {
    let value = "v".repeat(100);
    for i in 0..n {
        assert_eq!(c.cmd(&["SET", &format!("{prefix}{i}"), &value]), ok());
    }
}

/// The keys named by `evicted` events, after checking each is gone.
fn evicted_keys(c: &mut Raw, got: &[(String, String)]) -> Vec<String> {
    let keys: Vec<String> = got.iter().filter(|(ch, _)| ch == "__keyevent@0__:evicted").map(|(_, k)| k.clone()).collect();
    for k in &keys {
        assert_eq!(c.cmd(&["EXISTS", k]), Frame::Integer(0), "{k} was evicted");
    }
    keys
}

fn evicted_stat(admin: &mut Raw, id: &str) -> usize {
    let Frame::Array(v) = admin.cmd(&["TENANT.STATS", id]) else { panic!("stats") };
    let i = v.iter().position(|f| f == &bulk("evicted")).expect("evicted");
    match &v[i + 1] {
        Frame::Integer(n) => *n as usize,
        other => panic!("{other}"),
    }
}

#[test]
fn evictions_announce_themselves_in_their_tenant() {
    let h = start();
    let mut admin = Raw::connect(h.addr);
    for t in ["lru", "wasm"] {
        assert_eq!(admin.cmd(&["TENANT.CREATE", t, "PASSWORD", "pw", "MEMORY", "40000", "EVICTION", "allkeys-lru", "NOTIFY", "Ee"]), ok());
    }
    // The victims of this one are chosen by its WASM policy.
    let module = policies::wasm("protect-prefix");
    let args: Vec<&[u8]> = vec![b"TENANT.UPDATE", b"wasm", b"POLICY", &module, b"CONFIG", b"protect=session:"];
    admin.send(&common::encode(args.into_iter()));
    assert_eq!(admin.read(), ok());
    let mut other = tenant(&h, "other", &["NOTIFY", "KEA"]);
    let mut sub_other = subscriber(h.addr, Some("other"), &["__key*__:*"]);
    for t in ["lru", "wasm"] {
        let mut c = login(&h, t);
        let mut sub = subscriber(h.addr, Some(t), &["__key*__:*"]);
        fill(&mut c, "session:", 20);
        fill(&mut c, "cache:", 500);
        let got = received(&mut c, &mut sub);
        let keys = evicted_keys(&mut c, &got);
        assert!(keys.len() > 100, "{t}: {} evictions announced", keys.len());
        assert_eq!(keys.len(), evicted_stat(&mut admin, t), "{t}: every eviction, and only those");
        assert!(got.iter().all(|(ch, _)| ch == "__keyevent@0__:evicted"), "{t}: class e alone");
        if t == "wasm" {
            assert!(keys.iter().all(|k| k.starts_with("cache:")), "the module's choices");
        }
    }
    assert_eq!(received(&mut other, &mut sub_other), vec![]);
}

#[test]
fn the_server_default_can_come_from_the_config_file() {
    let mut c = config();
    c.server.notify_keyspace_events = ferrite::space::notify::parse(b"KEA").unwrap();
    let h = start_with(c);
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "GET", "notify-keyspace-events"]), Frame::Array(vec![bulk("notify-keyspace-events"), bulk("AKE")]));
    let mut sub = subscriber(h.addr, None, &["__keyevent@0__:*"]);
    assert_eq!(admin.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(received(&mut admin, &mut sub), vec![("__keyevent@0__:set".into(), "k".into())]);
    let file = ferrite::config::Config::from_toml("[server]\nnotify-keyspace-events = \"Elg\"\n").unwrap();
    assert_eq!(ferrite::space::notify::format(file.server.notify_keyspace_events), "glE");
    let bad = ferrite::config::Config::from_toml("[server]\nnotify-keyspace-events = \"Q\"\n").unwrap_err().to_string();
    assert!(bad.contains("Invalid event class"), "{bad}");
}
