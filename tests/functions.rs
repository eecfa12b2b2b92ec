//! Redis 7.0 functions in a tenant (issue 14): a tenant's libraries are its
//! own, survive a restart from the log and from a snapshot, count against
//! its memory, and a running function can be killed with FUNCTION KILL
//! while other tenants go on.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, bulk, encode, login, ok, tenant};
use ferrite::protocol::Frame;

const LIBRARY: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}";

fn is_error(f: &Frame, prefix: &str) -> bool {
    matches!(f, Frame::Error(e) if e.starts_with(prefix))
}

#[test]
fn a_tenants_libraries_are_its_own() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    assert_eq!(a.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    assert_eq!(a.cmd(&["FCALL", "bump", "1", "n", "5"]), Frame::Integer(5));
    assert_eq!(a.cmd(&["FCALL_RO", "peek", "1", "n"]), bulk("5"));
    // Another tenant and the admin see no library and no function.
    assert_eq!(b.cmd(&["FUNCTION", "LIST"]), Frame::Array(vec![]));
    assert_eq!(b.cmd(&["FCALL", "bump", "1", "n", "1"]), Frame::Error("ERR Function not found".into()));
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["FCALL", "bump", "1", "n", "1"]), Frame::Error("ERR Function not found".into()));
    // The same library name in another tenant is no clash.
    assert_eq!(b.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    assert_eq!(b.cmd(&["FCALL", "bump", "1", "n", "2"]), Frame::Integer(2));
    assert_eq!(a.cmd(&["GET", "n"]), bulk("5"));
    // A function's keys are the tenant's keys.
    assert_eq!(admin.cmd(&["GET", "n"]), Frame::Null);
}

#[test]
fn libraries_count_against_the_tenants_memory() {
    let h = common::start();
    let mut t = tenant(&h, "small", &["MEMORY", "100kb"]);
    let body = format!("#!lua name=big\nlocal pad = '{}'\nredis.register_function('f', function() return #pad end)", "x".repeat(60_000));
    let reply = t.cmd(&["FUNCTION", "LOAD", &body]);
    assert!(is_error(&reply, "OOM"), "{reply}");
    assert_eq!(t.cmd(&["FUNCTION", "LIST"]), Frame::Array(vec![]));
    let mut admin = Raw::connect(h.addr);
    let mut memory_used = || {
        let Frame::Array(v) = admin.cmd(&["TENANT.INFO", "small"]) else { panic!("info") };
        let i = v.iter().position(|x| x == &bulk("memory_used")).expect("a memory_used field");
        let Frame::Integer(n) = v[i + 1] else { panic!("a number") };
        n
    };
    let before = memory_used();
    assert_eq!(t.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    let after = memory_used();
    assert_ne!(before, after, "loading a library changed the tenant's memory");
    assert!(after >= before + LIBRARY.len() as i64, "the library's code counts: {before} -> {after}");
    assert_eq!(t.cmd(&["FUNCTION", "FLUSH"]), ok());
    assert!(memory_used() < after, "a flush gives it back");
}

#[test]
fn libraries_survive_a_restart_from_the_log_and_from_a_snapshot() {
    let dir = std::env::temp_dir().join(format!("ferrite-functions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = common::config();
    cfg.persistence.appendonly = true;
    cfg.persistence.dir = dir.clone();
    let h = common::start_with(cfg.clone());
    let mut t = tenant(&h, "fx", &[]);
    assert_eq!(t.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    assert_eq!(t.cmd(&["FCALL", "bump", "1", "n", "3"]), Frame::Integer(3));
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["FUNCTION", "LOAD", "#!lua name=g\nredis.register_function('g', function() return 'global' end)"]), bulk("g"));
    drop((t, admin));
    drop(h);
    // From the log.
    let h = common::start_with(cfg.clone());
    let mut t = login(&h, "fx");
    assert_eq!(t.cmd(&["FCALL", "bump", "1", "n", "1"]), Frame::Integer(4));
    assert_eq!(Raw::connect(h.addr).cmd(&["FCALL", "g", "0"]), bulk("global"));
    // From a snapshot: the log that loaded them is gone.
    assert_eq!(Raw::connect(h.addr).cmd(&["SAVE"]), ok());
    drop(t);
    drop(h);
    let h = common::start_with(cfg.clone());
    let mut t = login(&h, "fx");
    assert_eq!(t.cmd(&["FCALL_RO", "peek", "1", "n"]), bulk("4"));
    assert_eq!(Raw::connect(h.addr).cmd(&["FCALL", "g", "0"]), bulk("global"));
    // A deleted library stays deleted.
    assert_eq!(t.cmd(&["FUNCTION", "DELETE", "counters"]), ok());
    drop(t);
    drop(h);
    let h = common::start_with(cfg);
    assert_eq!(login(&h, "fx").cmd(&["FUNCTION", "LIST"]), Frame::Array(vec![]));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dump_and_restore_move_libraries_between_tenants() {
    let h = common::start();
    let mut a = tenant(&h, "from", &[]);
    let mut b = tenant(&h, "to", &[]);
    assert_eq!(a.cmd(&["FUNCTION", "LOAD", LIBRARY]), bulk("counters"));
    let Frame::Bulk(payload) = a.cmd(&["FUNCTION", "DUMP"]) else { panic!("a payload") };
    let restore = |c: &mut Raw, policy: &[u8]| {
        let mut args: Vec<&[u8]> = vec![b"FUNCTION", b"RESTORE", &payload];
        if !policy.is_empty() {
            args.push(policy);
        }
        c.send(&encode(args.into_iter()));
        c.read()
    };
    assert_eq!(restore(&mut b, b""), ok());
    assert_eq!(b.cmd(&["FCALL", "bump", "1", "k", "7"]), Frame::Integer(7));
    assert_eq!(restore(&mut b, b""), Frame::Error("ERR Library counters already exists".into()));
    assert_eq!(restore(&mut b, b"REPLACE"), ok());
    assert_eq!(b.cmd(&["FUNCTION", "LOAD", "#!lua name=other\nredis.register_function('o', function() return 1 end)"]), bulk("other"));
    assert_eq!(restore(&mut b, b"FLUSH"), ok());
    assert_eq!(b.cmd(&["FCALL", "o", "0"]), Frame::Error("ERR Function not found".into()));
    let mut corrupt = payload.clone();
    corrupt[3] ^= 0xff;
    b.send(&encode([b"FUNCTION".as_slice(), b"RESTORE", &corrupt].into_iter()));
    assert_eq!(b.read(), Frame::Error("ERR DUMP payload version or checksum are wrong".into()));
}

#[test]
fn function_kill_stops_a_running_function_and_no_other_tenant_waits() {
    let mut c = common::config();
    c.server.threads = 1;
    let h = common::start_with(c);
    let mut busy = tenant(&h, "busy", &[]);
    let mut calm = tenant(&h, "calm", &[]);
    assert_eq!(calm.cmd(&["SET", "x", "1"]), ok());
    assert_eq!(
        busy.cmd(&["FUNCTION", "LOAD", "#!lua name=spin\nredis.register_function('spin', function() while true do end end)"]),
        bulk("spin")
    );
    busy.send(&encode([b"FCALL".as_slice(), b"spin", b"0"].into_iter()));
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(calm.cmd(&["GET", "x"]), bulk("1"));
        assert!(t.elapsed() < Duration::from_millis(100), "another tenant waited {:?}", t.elapsed());
    }
    let mut killer = login(&h, "busy");
    let stats = killer.cmd(&["FUNCTION", "STATS"]);
    assert!(format!("{stats}").contains("spin"), "{stats}");
    assert_eq!(killer.cmd(&["SCRIPT", "KILL"]), Frame::Error(ferrite::script::BUSY_FUNCTION.into()));
    assert_eq!(killer.cmd(&["FUNCTION", "KILL"]), ok());
    let reply = busy.read();
    assert!(is_error(&reply, "ERR Script killed by user with SCRIPT KILL..."), "{reply}");
    assert!(is_error(&killer.cmd(&["FUNCTION", "KILL"]), "NOTBUSY"));
}

#[test]
fn a_library_whose_code_never_ends_times_out() {
    let h = common::start();
    let mut t = tenant(&h, "loop", &[]);
    let started = Instant::now();
    let reply = t.cmd(&["FUNCTION", "LOAD", "#!lua name=l\nwhile true do end"]);
    assert!(is_error(&reply, "ERR Error registering functions: ERR FUNCTION LOAD timeout"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(t.cmd(&["FUNCTION", "LIST"]), Frame::Array(vec![]));
}
