//! Integration tests through a real client (the `redis` crate) for what a
//! single-connection differential script cannot show: blocking, pub/sub,
//! WATCH across clients, expiry with injected time, CLIENT, SHUTDOWN.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{Raw, bulk, client, start};
use ferrite::protocol::Frame;
use redis::Commands;

#[test]
fn basic_roundtrip_with_redis_crate() {
    let h = start();
    let mut c = client(&h);
    let _: () = c.set("k", "v").unwrap();
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "v");
    let n: i64 = c.incr("n", 5).unwrap();
    assert_eq!(n, 5);
    let _: () = c.rpush("l", &["a", "b", "c"]).unwrap();
    let l: Vec<String> = c.lrange("l", 0, -1).unwrap();
    assert_eq!(l, ["a", "b", "c"]);
}

#[test]
fn blpop_wakes_on_push_from_another_client() {
    let h = start();
    let addr = h.addr;
    let waiter = thread::spawn(move || {
        let mut c = Raw::connect(addr);
        let start = Instant::now();
        let r = c.cmd(&["BLPOP", "q", "5"]);
        (r, start.elapsed())
    });
    thread::sleep(Duration::from_millis(100));
    let mut c = client(&h);
    let _: () = c.rpush("q", "job").unwrap();
    let (reply, waited) = waiter.join().unwrap();
    assert_eq!(reply, Frame::Array(vec![bulk("q"), bulk("job")]));
    assert!(waited < Duration::from_secs(4));
    let len: i64 = c.llen("q").unwrap();
    assert_eq!(len, 0);
}

#[test]
fn blocking_timeout_replies_null_array() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let t = Instant::now();
    assert_eq!(c.cmd(&["BRPOP", "nothing", "0.2"]), Frame::Null);
    assert!(t.elapsed() >= Duration::from_millis(150));
    assert_eq!(c.cmd(&["BZPOPMIN", "nothing", "0.1"]), Frame::Null);
    assert_eq!(c.cmd(&["BLMOVE", "a", "b", "LEFT", "LEFT", "0.1"]), Frame::Null);
    // The connection keeps working afterwards.
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn three_blocked_clients_each_get_one_pushed_element() {
    let h = start();
    let addr = h.addr;
    let mut waiters = Vec::new();
    for i in 0..3 {
        waiters.push(thread::spawn(move || Raw::connect(addr).cmd(&["BLPOP", "q", "5"])));
        thread::sleep(Duration::from_millis(50 + i * 10));
    }
    let mut c = client(&h);
    let _: () = c.rpush("q", &["1", "2", "3"]).unwrap();
    let mut got: Vec<Frame> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
    got.sort_by_key(|f| f.to_string());
    assert_eq!(got.len(), 3);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &Frame::Array(vec![bulk("q"), bulk(&(i + 1).to_string())]));
    }
}

#[test]
fn bzpopmin_and_blmove_wake_up() {
    let h = start();
    let addr = h.addr;
    let z = thread::spawn(move || Raw::connect(addr).cmd(&["BZPOPMIN", "z", "5"]));
    let m = thread::spawn(move || Raw::connect(addr).cmd(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"]));
    thread::sleep(Duration::from_millis(100));
    let mut c = client(&h);
    let _: () = c.zadd("z", "m", 1.5).unwrap();
    let _: () = c.rpush("src", "x").unwrap();
    assert_eq!(z.join().unwrap(), Frame::Array(vec![bulk("z"), bulk("m"), bulk("1.5")]));
    assert_eq!(m.join().unwrap(), bulk("x"));
    let dst: Vec<String> = c.lrange("dst", 0, -1).unwrap();
    assert_eq!(dst, ["x"]);
}

#[test]
fn pubsub_delivers_to_channels_and_patterns() {
    let h = start();
    let mut sub = Raw::connect(h.addr);
    assert_eq!(sub.cmd(&["SUBSCRIBE", "news"]), Frame::Array(vec![bulk("subscribe"), bulk("news"), Frame::Integer(1)]));
    assert_eq!(sub.cmd(&["PSUBSCRIBE", "n*"]), Frame::Array(vec![bulk("psubscribe"), bulk("n*"), Frame::Integer(2)]));
    assert_eq!(
        sub.cmd(&["GET", "x"]),
        Frame::Error(
            "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context".into()
        )
    );
    let mut c = client(&h);
    let n: i64 = c.publish("news", "hello").unwrap();
    assert_eq!(n, 2);
    assert_eq!(sub.read(), Frame::Array(vec![bulk("message"), bulk("news"), bulk("hello")]));
    assert_eq!(sub.read(), Frame::Array(vec![bulk("pmessage"), bulk("n*"), bulk("news"), bulk("hello")]));
    let chans: Vec<String> = redis::cmd("PUBSUB").arg("CHANNELS").query(&mut c).unwrap();
    assert_eq!(chans, ["news"]);
}

#[test]
fn resp3_pubsub_uses_push_frames_and_allows_commands() {
    let h = start();
    let mut sub = Raw::connect(h.addr);
    sub.cmd(&["HELLO", "3"]);
    assert_eq!(sub.cmd(&["SUBSCRIBE", "c"]), Frame::Push(vec![bulk("subscribe"), bulk("c"), Frame::Integer(1)]));
    assert_eq!(sub.cmd(&["GET", "x"]), Frame::Null);
    let mut c = client(&h);
    let _: i64 = c.publish("c", "m").unwrap();
    assert_eq!(sub.read(), Frame::Push(vec![bulk("message"), bulk("c"), bulk("m")]));
}

#[test]
fn watch_aborts_exec_when_another_client_writes() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    let mut b = client(&h);
    a.cmd(&["SET", "k", "1"]);
    a.cmd(&["WATCH", "k"]);
    let _: () = b.set("k", "2").unwrap();
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "k", "3"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::Null);
    let v: String = b.get("k").unwrap();
    assert_eq!(v, "2");
    // Without interference the same transaction runs.
    a.cmd(&["WATCH", "k"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["SET", "k", "3"]);
    assert_eq!(a.cmd(&["EXEC"]), Frame::Array(vec![Frame::Simple("OK".into())]));
}

#[test]
fn expiry_with_injected_time_lazy_and_active() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    c.cmd(&["SET", "lazy", "v", "EX", "10"]);
    for i in 0..200 {
        c.cmd(&["SET", &format!("unread:{i}"), "v", "PX", "5000"]);
    }
    c.cmd(&["SET", "keep", "v"]);
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(202));
    // Move the server clock instead of sleeping.
    h.state.clock.advance(11_000);
    assert_eq!(c.cmd(&["GET", "lazy"]), Frame::Null);
    // The active cycle reclaims keys nobody reads.
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.state.global.db(0).len() > 1 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(1));
    assert_eq!(h.state.global.db(0).used_bytes(), h.state.global.db(0).sample_one(b"keep", h.state.now_ms()).unwrap());
}

#[test]
fn client_commands() {
    let h = start();
    let mut a = Raw::connect(h.addr);
    let mut b = Raw::connect(h.addr);
    let Frame::Integer(b_id) = b.cmd(&["CLIENT", "ID"]) else { panic!() };
    a.cmd(&["CLIENT", "SETNAME", "alpha"]);
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), bulk("alpha"));
    assert_eq!(a.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"]), Frame::Simple("OK".into()));
    assert_eq!(a.cmd(&["CLIENT", "NO-TOUCH", "on"]), Frame::Simple("OK".into()));
    let Frame::Bulk(list) = a.cmd(&["CLIENT", "LIST"]) else { panic!() };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.lines().count(), 2);
    assert!(list.contains("name=alpha") && list.contains("lib-name=mylib") && list.contains("cmd=client"), "{list}");
    assert_eq!(a.cmd(&["CLIENT", "KILL", "ID", &b_id.to_string()]), Frame::Integer(1));
    assert!(b.try_read().is_none());
}

#[test]
fn no_touch_leaves_idle_time_alone() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    c.cmd(&["SET", "k", "v"]);
    h.state.clock.advance(5_000);
    c.cmd(&["CLIENT", "NO-TOUCH", "on"]);
    c.cmd(&["GET", "k"]);
    let Frame::Integer(idle) = c.cmd(&["OBJECT", "IDLETIME", "k"]) else { panic!() };
    assert!(idle >= 5, "idle {idle}");
    c.cmd(&["CLIENT", "NO-TOUCH", "off"]);
    c.cmd(&["GET", "k"]);
    assert_eq!(c.cmd(&["OBJECT", "IDLETIME", "k"]), Frame::Integer(0));
}

#[test]
fn info_sections_and_commandstats() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["GET", "k"]);
    c.cmd(&["GET", "nope"]);
    let Frame::Bulk(info) = c.cmd(&["INFO", "all"]) else { panic!() };
    let info = String::from_utf8(info).unwrap();
    for needle in [
        "# Server",
        "redis_version:7.0.15",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "# Stats",
        "keyspace_hits:1",
        "keyspace_misses:1",
        "cmdstat_get:calls=2",
        "# Keyspace",
        "db0:keys=1,expires=0",
    ] {
        assert!(info.contains(needle), "missing {needle} in\n{info}");
    }
    assert_eq!(c.cmd(&["CONFIG", "GET", "port"]), Frame::Array(vec![bulk("port"), bulk(&h.addr.port().to_string())]));
}

#[test]
fn memory_usage_is_the_exact_accounting() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    c.cmd(&["SET", "k", &"x".repeat(100)]);
    let Frame::Integer(n) = c.cmd(&["MEMORY", "USAGE", "k"]) else { panic!() };
    assert_eq!(n as usize, h.state.used_memory());
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["DEL", "k", "h"]);
    assert_eq!(h.state.used_memory(), 0);
}

#[test]
fn shutdown_command_stops_the_server() {
    let mut h = start();
    let mut c = Raw::connect(h.addr);
    c.send(b"SHUTDOWN NOSAVE\r\n");
    assert!(c.try_read().is_none());
    h.shutdown();
    assert!(std::net::TcpStream::connect_timeout(&h.addr, Duration::from_millis(200)).is_err());
}

#[test]
fn quit_replies_then_closes() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["QUIT"]), Frame::Simple("OK".into()));
    assert!(c.is_closed());
}

#[test]
fn idle_timeout_closes_clients() {
    let mut cfg = common::config();
    cfg.server.timeout = 1;
    let h = common::start_with(cfg);
    let mut c = Raw::connect(h.addr);
    c.cmd(&["PING"]);
    let t = Instant::now();
    assert!(c.is_closed());
    assert!(t.elapsed() >= Duration::from_millis(800));
}

#[test]
fn config_file_errors_name_the_key() {
    let dir = std::env::temp_dir().join(format!("ferrite-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nport = 7000\nmaxclient = 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite")).arg("--config").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("maxclient"), "{stderr}");
}

#[test]
fn binary_runs_on_defaults_and_stops_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(["--port", &port.to_string(), "--appendonly", "no"])
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            up = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "server came up");
    assert_eq!(Raw::connect(addr).cmd(&["PING"]), Frame::Simple("PONG".into()));
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit, got {status}");
            break;
        }
        assert!(Instant::now() < deadline, "exited after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    }
}

/// ZSCAN of a big sorted set returns every member present throughout the
/// scan while members before the cursor (by score) are removed and new ones
/// scored below everything are added (a walk by rank skipped members then).
#[test]
fn zscan_misses_no_member_present_throughout() {
    let h = start();
    let mut c = client(&h);
    let members: Vec<(i64, String)> = (0..2000).map(|i| (i, format!("m{i}"))).collect();
    let _: () = c.zadd_multiple("z", &members).unwrap();
    let mut seen = std::collections::HashSet::new();
    let (mut cursor, mut step) = (0u64, 0);
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("ZSCAN").arg("z").arg(cursor).arg("COUNT").arg(50).query(&mut c).unwrap();
        seen.extend(found.into_iter().step_by(2));
        // The 20 lowest even members go, 10 new ones arrive below them all.
        let goners: Vec<String> = (0..20).map(|j| format!("m{}", 2 * (20 * step + j))).collect();
        let _: i64 = c.zrem("z", &goners).unwrap();
        let newcomers: Vec<(i64, String)> = (0..10).map(|j| (-1 - (step * 10 + j) as i64, format!("new{step}_{j}"))).collect();
        let _: i64 = c.zadd_multiple("z", &newcomers).unwrap();
        step += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        assert!(step < 1000, "the scan ends");
    }
    let gone_before_end = 2 * 20 * step;
    let missed: Vec<String> =
        (0..2000).filter(|&i| i % 2 == 1 || i >= gone_before_end).map(|i| format!("m{i}")).filter(|m| !seen.contains(m)).collect();
    assert!(missed.is_empty(), "{} members missed, e.g. {:?}", missed.len(), &missed[..missed.len().min(5)]);
}

/// SWAPDB flags the watchers of keys in either database (a WATCH made
/// before the swap still aborts its EXEC, and UNWATCH still finds it),
/// wakes clients blocked on keys the swap made ready, and in a tenant
/// swaps only that tenant's databases.
#[test]
fn swapdb_reaches_watchers_blocked_clients_and_stays_in_its_tenant() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let mut watcher = Raw::connect(h.addr);
    assert_eq!(watcher.cmd(&["WATCH", "w"]), common::ok());
    assert_eq!(c.cmd(&["SELECT", "1"]), common::ok());
    assert_eq!(c.cmd(&["SET", "w", "in-db-1"]), common::ok());
    assert_eq!(c.cmd(&["SWAPDB", "0", "1"]), common::ok());
    assert_eq!(watcher.cmd(&["MULTI"]), common::ok());
    assert_eq!(watcher.cmd(&["GET", "w"]), Frame::Simple("QUEUED".into()));
    assert_eq!(watcher.cmd(&["EXEC"]), Frame::Null, "the watched key changed value with the swap");
    // A WATCH across a swap is released cleanly, and a later one works.
    assert_eq!(watcher.cmd(&["WATCH", "w"]), common::ok());
    assert_eq!(c.cmd(&["SWAPDB", "0", "1"]), common::ok());
    assert_eq!(watcher.cmd(&["UNWATCH"]), common::ok());
    assert_eq!(watcher.cmd(&["MULTI"]), common::ok());
    watcher.cmd(&["GET", "w"]);
    assert_eq!(watcher.cmd(&["EXEC"]), Frame::Array(vec![Frame::Null]));
    let mut blocked = Raw::connect(h.addr);
    blocked.send(&common::encode([b"BLPOP".as_slice(), b"q", b"5"].into_iter()));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd(&["RPUSH", "q", "job"]), Frame::Integer(1));
    assert_eq!(c.cmd(&["SWAPDB", "0", "1"]), common::ok());
    assert_eq!(blocked.read(), Frame::Array(vec![bulk("q"), bulk("job")]));
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["TENANT.CREATE", "t", "PASSWORD", "pw", "DATABASES", "2"]), common::ok());
    let mut t = Raw::connect(h.addr);
    assert_eq!(t.cmd(&["AUTH", "t", "pw"]), common::ok());
    assert_eq!(t.cmd(&["SET", "mine", "1"]), common::ok());
    assert_eq!(t.cmd(&["SWAPDB", "0", "2"]), Frame::Error("ERR DB index is out of range".into()));
    assert_eq!(t.cmd(&["SWAPDB", "0", "1"]), common::ok());
    assert_eq!((t.cmd(&["EXISTS", "mine"]), admin.cmd(&["GET", "w"])), (Frame::Integer(0), bulk("in-db-1")));
    assert_eq!(t.cmd(&["SELECT", "1"]), common::ok());
    assert_eq!(t.cmd(&["GET", "mine"]), bulk("1"));
}

/// XREAD BLOCK with `$` gets the entry added after it blocked (not after
/// it was woken), XREADGROUP BLOCK with `>` gets it and records it pending,
/// and neither wakes for another tenant's stream of the same name.
#[test]
fn blocked_stream_reads_wake_on_xadd_in_their_own_tenant_only() {
    let h = start();
    let mut admin = Raw::connect(h.addr);
    for t in ["t1", "t2"] {
        assert_eq!(admin.cmd(&["TENANT.CREATE", t, "PASSWORD", "pw"]), common::ok());
    }
    let login = |t: &str| {
        let mut c = Raw::connect(h.addr);
        assert_eq!(c.cmd(&["AUTH", t, "pw"]), common::ok());
        c
    };
    let (mut w1, mut w2, mut writer1, mut writer2) = (login("t1"), login("t1"), login("t1"), login("t2"));
    assert_eq!(writer1.cmd(&["XADD", "s", "1-0", "old", "1"]), bulk("1-0"));
    assert_eq!(writer1.cmd(&["XGROUP", "CREATE", "s", "g", "$"]), common::ok());
    w1.send(&common::encode([b"XREAD".as_slice(), b"BLOCK", b"5000", b"STREAMS", b"s", b"$"].into_iter()));
    w2.send(&common::encode([b"XREADGROUP".as_slice(), b"GROUP", b"g", b"c", b"BLOCK", b"5000", b"STREAMS", b"s", b">"].into_iter()));
    thread::sleep(Duration::from_millis(150));
    // The other tenant's stream "s" is another stream.
    assert_eq!(writer2.cmd(&["XADD", "s", "5-0", "other", "tenant"]), bulk("5-0"));
    thread::sleep(Duration::from_millis(150));
    assert_eq!(writer1.cmd(&["XADD", "s", "2-0", "new", "2"]), bulk("2-0"));
    let entry = Frame::Array(vec![bulk("2-0"), Frame::Array(vec![bulk("new"), bulk("2")])]);
    let expect = Frame::Array(vec![Frame::Array(vec![bulk("s"), Frame::Array(vec![entry.clone()])])]);
    assert_eq!(w1.read(), expect);
    assert_eq!(w2.read(), expect);
    let Frame::Array(summary) = writer1.cmd(&["XPENDING", "s", "g"]) else { panic!("xpending") };
    assert_eq!(summary[0], Frame::Integer(1));
    // A blocked read times out with a null reply.
    let t = Instant::now();
    assert_eq!(w1.cmd(&["XREAD", "BLOCK", "100", "STREAMS", "s", "$"]), Frame::Null);
    assert!(t.elapsed() >= Duration::from_millis(90));
}
