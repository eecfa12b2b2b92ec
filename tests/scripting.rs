//! Lua scripts in a tenant (issue 14): a script sees only its tenant's
//! keys, its commands count against the tenant's quotas, a long script
//! holds up neither other tenants nor (past the threshold) its own tenant's
//! other clients without a BUSY reply, SCRIPT KILL stops it, and its
//! effects survive a restart as one record.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, bulk, encode, login, ok, tenant};
use ferrite::protocol::Frame;

fn is_error(f: &Frame, prefix: &str) -> bool {
    matches!(f, Frame::Error(e) if e.starts_with(prefix))
}

#[test]
fn a_script_sees_only_its_tenants_keys_and_scripts() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    assert_eq!(a.cmd(&["SET", "k", "from-a"]), ok());
    assert_eq!(b.cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", "k"]), Frame::Null);
    assert_eq!(a.cmd(&["EVAL", "return redis.call('get', KEYS[1])", "1", "k"]), bulk("from-a"));
    // The global context's key of the same name is not the tenant's either.
    assert_eq!(Raw::connect(h.addr).cmd(&["SET", "k", "global"]), ok());
    assert_eq!(a.cmd(&["EVAL", "return redis.call('get', 'k')", "0"]), bulk("from-a"));
    // Scripts cached by one tenant are not another's.
    let Frame::Bulk(sha) = a.cmd(&["SCRIPT", "LOAD", "return 'mine'"]) else { panic!("sha") };
    let sha = String::from_utf8(sha).unwrap();
    assert_eq!(a.cmd(&["EVALSHA", &sha, "0"]), bulk("mine"));
    assert!(is_error(&b.cmd(&["EVALSHA", &sha, "0"]), "NOSCRIPT"));
    assert_eq!(b.cmd(&["SCRIPT", "EXISTS", &sha]), Frame::Array(vec![Frame::Integer(0)]));
    // Admin commands stay refused inside a tenant's script.
    let reply = a.cmd(&["EVAL", "return redis.call('config', 'set', 'maxmemory', '1')", "0"]);
    assert!(is_error(&reply, "ERR This Redis command is not allowed from script"), "{reply}");
    let reply = a.cmd(&["EVAL", "return redis.call('tenant.list')", "0"]);
    assert!(matches!(&reply, Frame::Error(_)), "{reply}");
    // redis.acl_check_cmd answers for the tenant: its data commands yes, the admin's no.
    let check = "return {redis.acl_check_cmd('get', 'k'), redis.acl_check_cmd('tenant.list')}";
    assert_eq!(a.cmd(&["EVAL", check, "0"]), Frame::Array(vec![Frame::Integer(1), Frame::Null]));
}

#[test]
fn a_scripts_writes_count_against_the_tenants_quotas() {
    let h = common::start();
    let mut t = tenant(&h, "small", &["MEMORY", "1mb", "KEYS", "5"]);
    let fill = "for i = 1, 100 do redis.call('set', 'k' .. i, 'v') end return 1";
    let reply = t.cmd(&["EVAL", fill, "0"]);
    assert!(matches!(&reply, Frame::Error(e) if e.contains("key limit")), "{reply}");
    let Frame::Integer(keys) = t.cmd(&["DBSIZE"]) else { panic!("dbsize") };
    assert_eq!(keys, 5, "the script stopped at the key limit");
    // A value past the tenant's memory: refused, by the tenant's quota or
    // by its Lua heap's cap, and the tenant stays within its limit.
    let big = "redis.call('del', 'k1') return redis.call('set', 'big', string.rep('x', 2 * 1024 * 1024))";
    let reply = t.cmd(&["EVAL", big, "0"]);
    assert!(matches!(&reply, Frame::Error(e) if e.starts_with("OOM") || e.contains("memory")), "{reply}");
    assert_eq!(t.cmd(&["EXISTS", "big"]), Frame::Integer(0));
}

/// `allow-oom` lifts the server's `maxmemory` for a script, never the
/// tenant's own limit.
#[test]
fn allow_oom_does_not_lift_the_tenants_limit() {
    let h = common::start();
    let mut t = tenant(&h, "full", &["MEMORY", "4mb"]);
    let mb = "x".repeat(1024 * 1024);
    for k in ["a", "b", "c"] {
        assert_eq!(t.cmd(&["SET", k, &mb]), common::ok());
    }
    assert_eq!(t.cmd(&["SET", "half", &mb[..mb.len() / 2]]), common::ok());
    let past = "#!lua flags=allow-oom\nreturn redis.call('set', KEYS[1], string.rep('x', 600 * 1024))";
    let reply = t.cmd(&["EVAL", past, "1", "d"]);
    assert!(matches!(&reply, Frame::Error(e) if e.starts_with("OOM")), "{reply}");
    assert_eq!(t.cmd(&["EXISTS", "d"]), Frame::Integer(0));
}

/// Cached scripts and the Lua heap are memory the tenant holds: new bodies
/// are refused once they would take it past its limit.
#[test]
fn cached_scripts_count_against_the_tenants_memory() {
    let h = common::start();
    let mut t = tenant(&h, "loader", &["MEMORY", "2mb"]);
    let mut refused = None;
    for i in 0..40 {
        // Mostly a comment: the cache keeps it all, Lua's heap nothing of it.
        let body = format!("-- {}\nreturn {i}", "x".repeat(100 << 10));
        match t.cmd(&["SCRIPT", "LOAD", &body]) {
            Frame::Bulk(_) => {}
            Frame::Error(e) => {
                refused = Some(e);
                break;
            }
            other => panic!("{other}"),
        }
    }
    let e = refused.expect("the cache stopped growing");
    assert!(e.starts_with("OOM"), "{e}");
    let field = |name: &str| {
        let Frame::Array(v) = Raw::connect(h.addr).cmd(&["TENANT.INFO", "loader"]) else { panic!("info") };
        let i = v.iter().position(|x| x == &bulk(name)).unwrap();
        match &v[i + 1] {
            Frame::Integer(n) => *n,
            other => panic!("{other}"),
        }
    };
    assert!(field("memory_used") <= field("memory_limit"), "the tenant stayed within its limit");
}

/// Twenty GETs of `x` (set to 1), each answered within 100 ms.
fn served_at_once(calm: &mut common::Raw) {
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(calm.cmd(&["GET", "x"]), bulk("1"));
        assert!(t.elapsed() < Duration::from_millis(100), "another tenant waited {:?}", t.elapsed());
    }
}

/// One worker thread: a script that kept it would stop every other client.
fn one_worker() -> ferrite::server::ServerHandle {
    let mut c = common::config();
    c.server.threads = 1;
    common::start_with(c)
}

#[test]
fn a_long_script_holds_up_no_other_tenant_and_script_kill_stops_it() {
    let h = one_worker();
    let mut busy = tenant(&h, "busy", &[]);
    let mut calm = tenant(&h, "calm", &[]);
    assert_eq!(calm.cmd(&["SET", "x", "1"]), ok());
    busy.send(&encode([b"EVAL".as_slice(), b"while true do end", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(200));
    // Another tenant is served at once, however long the script runs.
    served_at_once(&mut calm);
    // The tenant's own other client may kill it.
    let mut killer = login(&h, "busy");
    assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), ok());
    let reply = busy.read();
    assert!(is_error(&reply, "ERR Script killed by user with SCRIPT KILL..."), "{reply}");
    assert!(is_error(&killer.cmd(&["SCRIPT", "KILL"]), "NOTBUSY"));
    assert_eq!(busy.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn script_errors_and_conversions_match_redis_words() {
    let h = common::start();
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["EVAL", "return {1, 'two', {3}, true, false, 3.99, nil, 5}", "0"]), {
        Frame::Array(vec![
            Frame::Integer(1),
            bulk("two"),
            Frame::Array(vec![Frame::Integer(3)]),
            Frame::Integer(1),
            Frame::Null,
            Frame::Integer(3),
        ])
    });
    let reply = c.cmd(&["EVAL", "return x", "0"]);
    assert!(
        matches!(&reply, Frame::Error(e) if e.starts_with("ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: ")),
        "{reply}"
    );
    let reply = c.cmd(&["EVAL", "x = 1", "0"]);
    assert!(matches!(&reply, Frame::Error(e) if e.contains("Attempt to modify a readonly table")), "{reply}");
    assert_eq!(c.cmd(&["EVAL", "return redis.pcall('nosuch')", "0"]), Frame::Error("ERR Unknown Redis command called from script".into()));
    assert_eq!(
        c.cmd(&["EVAL", "local ok, e = pcall(redis.call, 'nosuch') return e", "0"]),
        bulk("ERR Unknown Redis command called from script")
    );
    assert_eq!(c.cmd(&["EVAL", "return redis.error_reply('MY err')", "0"]), Frame::Error("MY err".into()));
    assert_eq!(c.cmd(&["EVAL", "return redis.status_reply('FINE')", "0"]), Frame::Simple("FINE".into()));
}

/// A script's writes are logged as one record of their effects: after a
/// restart the data is there, and the script never ran again.
#[test]
fn a_scripts_effects_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("ferrite-scripts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = common::config();
    cfg.persistence.appendonly = true;
    cfg.persistence.dir = dir.clone();
    let h = common::start_with(cfg.clone());
    let mut c = Raw::connect(h.addr);
    // math.random makes the value differ on each run: only effects replay.
    let script =
        "math.randomseed(tonumber(ARGV[1])) local v = math.random(1000000) redis.call('set', 'r', v) redis.call('incr', 'n') return v";
    let Frame::Integer(v) = c.cmd(&["EVAL", script, "0", "7"]) else { panic!("a number") };
    drop(c);
    drop(h);
    let h = common::start_with(cfg);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["GET", "r"]), bulk(&v.to_string()));
    assert_eq!(c.cmd(&["GET", "n"]), bulk("1"));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Shutting down stops a script that would never return (as SHUTDOWN
/// NOSAVE does in Redis), instead of waiting for it forever.
#[test]
fn the_server_stops_while_a_script_runs() {
    let h = common::start();
    let mut c = Raw::connect(h.addr);
    c.send(&encode([b"EVAL".as_slice(), b"while true do end", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(100));
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(h);
        let _ = done.send(());
    });
    assert!(stopped.recv_timeout(Duration::from_secs(10)).is_ok(), "the server did not stop");
}

#[test]
fn a_script_of_few_instructions_but_slow_commands_holds_up_no_other_tenant() {
    let h = one_worker();
    let mut busy = tenant(&h, "busy", &["OPS", "1000000", "MEMORY", "100mb"]);
    let mut calm = tenant(&h, "calm", &[]);
    assert_eq!(calm.cmd(&["SET", "x", "1"]), ok());
    assert_eq!(busy.cmd(&["EVAL", "for i = 1, 5000 do redis.call('SET', 'k' .. i, i) end", "0"]), Frame::Null);
    // A few hundred Lua instructions in all: the instruction hook alone
    // would never see this run.
    busy.send(&encode([b"EVAL".as_slice(), b"for i = 1, 100 do redis.call('KEYS', '*') end", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(100));
    served_at_once(&mut calm);
    assert_eq!(busy.read(), Frame::Null);
}

#[test]
fn past_busy_reply_threshold_the_tenants_other_clients_get_busy() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "busy-reply-threshold", "200"]), ok());
    assert_eq!(admin.cmd(&["CONFIG", "GET", "lua-time-limit"]), Frame::Array(vec![bulk("lua-time-limit"), bulk("200")]));
    let mut busy = tenant(&h, "busy", &[]);
    let mut neighbour = login(&h, "busy");
    busy.send(&encode([b"EVAL".as_slice(), b"while true do end", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(50));
    // Before the threshold the tenant's other client waits; past it, BUSY.
    let t = Instant::now();
    let reply = neighbour.cmd(&["GET", "x"]);
    assert_eq!(reply, Frame::Error(ferrite::script::BUSY_SCRIPT.into()));
    assert!(t.elapsed() >= Duration::from_millis(100), "answered after {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(2), "answered after {:?}", t.elapsed());
    assert_eq!(neighbour.cmd(&["SCRIPT", "KILL"]), ok());
    assert!(is_error(&busy.read(), "ERR Script killed"));
}
