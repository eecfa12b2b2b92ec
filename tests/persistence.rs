//! Durability: data of every type, TTLs, tenants and policies survive a
//! restart, through the log alone and through a compacted snapshot; a
//! SIGKILL loses nothing acknowledged under `always` and about a second at
//! most under `everysec`; truncated and corrupted files are handled as
//! Redis's `aof-load-truncated` does, or stop start-up with file and offset.

mod common;
#[path = "common/policies.rs"]
#[allow(dead_code)]
mod policies;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Process, Raw, bulk, encode, ok};
use ferrite::config::Config;
use ferrite::persist::Fsync;
use ferrite::protocol::Frame;
use ferrite::server::{ServerHandle, start_background};

fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrite-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(dir: &Path, fsync: Fsync) -> Config {
    let mut c = common::config();
    c.persistence.appendonly = true;
    c.persistence.dir = dir.into();
    c.persistence.appendfsync = fsync;
    c
}

fn start(dir: &Path) -> ServerHandle {
    start_background(config(dir, Fsync::Everysec)).expect("server starts")
}

fn strings(f: Frame) -> Vec<String> {
    let Frame::Array(v) = f else { panic!("array: {f}") };
    v.into_iter()
        .map(|x| match x {
            Frame::Bulk(b) => String::from_utf8(b).unwrap(),
            other => panic!("bulk: {other}"),
        })
        .collect()
}

fn field(f: &Frame, name: &str) -> Frame {
    let Frame::Array(v) = f else { panic!("array: {f}") };
    let i = v.iter().position(|x| x == &bulk(name)).unwrap_or_else(|| panic!("no {name} in {f}"));
    v[i + 1].clone()
}

/// Writes one of everything; `check` verifies it.
fn write_everything(h: &ServerHandle) {
    let mut c = Raw::connect(h.addr);
    for cmd in [
        &["SET", "str", "hello"][..],
        &["SET", "counter", "41"],
        &["INCR", "counter"],
        &["SET", "raw", "abc"],
        &["APPEND", "raw", "def"],
        &["RPUSH", "list", "a", "b", "c"],
        &["LPUSH", "list", "z"],
        &["HSET", "hash", "f1", "v1", "f2", "v2"],
        &["SADD", "ints", "1", "2", "3"],
        &["SADD", "words", "x", "y", "z", "w"],
        &["ZADD", "zset", "1.5", "m1", "-2", "m2"],
        &["SET", "ttl", "v", "EX", "1000"],
        &["SET", "gone", "v", "PX", "50"],
        &["SETBIT", "bits", "100", "1"],
        &["BITFIELD", "bits", "SET", "u8", "#0", "200"],
        &["SORT", "list", "ALPHA", "STORE", "sorted"],
        &["SELECT", "5"],
        &["SET", "five", "5"],
        &["SELECT", "6"],
        &["SET", "six", "6"],
        &["SWAPDB", "5", "6"],
        &["SELECT", "0"],
        &["XADD", "stream", "*", "a", "1"],
        &["XADD", "stream", "*", "b", "2"],
        &["XADD", "stream", "MAXLEN", "~", "10", "*", "c", "3"],
        &["XGROUP", "CREATE", "stream", "grp", "0"],
        &["XREADGROUP", "GROUP", "grp", "alice", "COUNT", "2", "STREAMS", "stream", ">"],
        &["XDEL", "stream", "0-1"],
        &["PFADD", "hll", "a", "b", "c"],
        &["GEOADD", "geo", "13.361389", "38.115556", "Palermo"],
        &["SELECT", "3"],
        &["SET", "in-db-3", "yes"],
    ] {
        assert!(!matches!(c.cmd(cmd), Frame::Error(_)), "{cmd:?}");
    }
    // SPOP's choice is random: the log must record which member went.
    c.cmd(&["SELECT", "0"]);
    // RESTORE is logged as it ran: its relative TTL replays at its time.
    let Frame::Bulk(payload) = c.cmd(&["DUMP", "list"]) else { panic!("dump") };
    c.send(&encode([b"RESTORE".as_slice(), b"restored", b"1000000", &payload, b"IDLETIME", b"10"].into_iter()));
    assert_eq!(c.read(), ok());
    let Frame::Bulk(popped) = c.cmd(&["SPOP", "words"]) else { panic!("spop") };
    c.cmd(&["SET", "popped", &String::from_utf8(popped).unwrap()]);
    let mut a = Raw::connect(h.addr);
    assert_eq!(
        a.cmd(&[
            "TENANT.CREATE",
            "acme",
            "OPS",
            "1234",
            "CONNECTIONS",
            "56",
            "DATABASES",
            "7",
            "NAME",
            "Acme Corp",
            "TIER",
            "pro",
            "MEMORY",
            "5mb",
            "KEYS",
            "77",
            "PASSWORD",
            "s3cret",
            "EVICTION",
            "allkeys-lru"
        ]),
        ok()
    );
    assert_eq!(a.cmd(&["TENANT.CREATE", "idle", "PASSWORD", "pw"]), ok());
    assert_eq!(a.cmd(&["TENANT.SUSPEND", "idle"]), ok());
    let wasm = policies::wasm("protect-prefix");
    a.send(&encode([b"TENANT.UPDATE".as_slice(), b"acme", b"CONFIG", b"protect=session:", b"POLICY", &wasm].into_iter()));
    assert_eq!(a.read(), ok());
    let mut t = Raw::connect(h.addr);
    assert_eq!(t.cmd(&["AUTH", "acme", "s3cret"]), ok());
    assert_eq!(t.cmd(&["SET", "tenant-key", "tenant-value"]), ok());
    assert_eq!(t.cmd(&["HSET", "session:1", "user", "u1"]), Frame::Integer(1));
    assert_eq!(a.cmd(&["TENANT.CREATE", "doomed"]), ok());
    assert_eq!(a.cmd(&["SET", "__tenant:doomed:k", "v"]), ok());
    assert_eq!(a.cmd(&["TENANT.DELETE", "doomed"]), ok());
    std::thread::sleep(Duration::from_millis(100));
}

fn check_everything(h: &ServerHandle) {
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["GET", "str"]), bulk("hello"));
    assert_eq!(c.cmd(&["GET", "counter"]), bulk("42"));
    assert_eq!((c.cmd(&["GET", "raw"]), c.cmd(&["OBJECT", "ENCODING", "raw"])), (bulk("abcdef"), bulk("raw")));
    assert_eq!(strings(c.cmd(&["LRANGE", "list", "0", "-1"])), ["z", "a", "b", "c"]);
    assert_eq!(strings(c.cmd(&["HGETALL", "hash"])), ["f1", "v1", "f2", "v2"]);
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "ints"]), bulk("intset"));
    assert_eq!(strings(c.cmd(&["SMEMBERS", "ints"])), ["1", "2", "3"]);
    let Frame::Bulk(popped) = c.cmd(&["GET", "popped"]) else { panic!("popped") };
    let mut words = strings(c.cmd(&["SMEMBERS", "words"]));
    words.push(String::from_utf8(popped).unwrap());
    words.sort();
    assert_eq!(words, ["w", "x", "y", "z"], "the same member is gone after the restart");
    assert_eq!(strings(c.cmd(&["ZRANGE", "zset", "0", "-1", "WITHSCORES"])), ["m2", "-2", "m1", "1.5"]);
    let Frame::Integer(ttl) = c.cmd(&["TTL", "ttl"]) else { panic!("ttl") };
    assert!((990..=1000).contains(&ttl), "TTL kept as an absolute time: {ttl}");
    assert_eq!(c.cmd(&["EXISTS", "gone"]), Frame::Integer(0), "expired keys stay expired");
    assert_eq!((c.cmd(&["GETBIT", "bits", "100"]), c.cmd(&["STRLEN", "bits"])), (Frame::Integer(1), Frame::Integer(13)));
    assert_eq!(c.cmd(&["BITFIELD_RO", "bits", "GET", "u8", "0"]), Frame::Array(vec![Frame::Integer(200)]));
    assert_eq!(strings(c.cmd(&["LRANGE", "sorted", "0", "-1"])), ["a", "b", "c", "z"]);
    assert_eq!(strings(c.cmd(&["LRANGE", "restored", "0", "-1"])), ["z", "a", "b", "c"]);
    let Frame::Integer(ttl) = c.cmd(&["TTL", "restored"]) else { panic!("ttl") };
    assert!((990..=1000).contains(&ttl), "RESTORE's TTL kept: {ttl}");
    let Frame::Array(entries) = c.cmd(&["XRANGE", "stream", "-", "+"]) else { panic!("xrange") };
    assert_eq!(entries.len(), 3, "three entries with the IDs they were given");
    assert_eq!(c.cmd(&["XLEN", "stream"]), Frame::Integer(3));
    let Frame::Array(pending) = c.cmd(&["XPENDING", "stream", "grp"]) else { panic!("xpending") };
    assert_eq!(pending[0], Frame::Integer(2), "the group's pending entries came back");
    assert_eq!(c.cmd(&["PFCOUNT", "hll"]), Frame::Integer(3));
    assert_eq!(c.cmd(&["GEOHASH", "geo", "Palermo"]), Frame::Array(vec![bulk("sqc8b49rny0")]));
    let Frame::Array(groups) = c.cmd(&["XINFO", "GROUPS", "stream"]) else { panic!("xinfo") };
    assert_eq!(field(&groups[0], "entries-read"), Frame::Integer(2), "the group's position came back");
    c.cmd(&["SELECT", "5"]);
    assert_eq!((c.cmd(&["GET", "six"]), c.cmd(&["GET", "five"])), (bulk("6"), Frame::Null), "SWAPDB replayed");
    c.cmd(&["SELECT", "6"]);
    assert_eq!(c.cmd(&["GET", "five"]), bulk("5"));
    c.cmd(&["SELECT", "3"]);
    assert_eq!(c.cmd(&["GET", "in-db-3"]), bulk("yes"));
    let mut a = Raw::connect(h.addr);
    assert_eq!(strings(a.cmd(&["TENANT.LIST"])), ["acme", "idle"]);
    let info = a.cmd(&["TENANT.INFO", "acme"]);
    for (k, v) in [
        ("name", bulk("Acme Corp")),
        ("tier", bulk("pro")),
        ("memory_limit", Frame::Integer(5 << 20)),
        ("key_limit", Frame::Integer(77)),
        ("ops_limit", Frame::Integer(1234)),
        ("connection_limit", Frame::Integer(56)),
        ("database_limit", Frame::Integer(7)),
        ("state", bulk("active")),
    ] {
        assert_eq!(field(&info, k), v, "{k}");
    }
    // Created before the first restart, not re-stamped by it.
    let Frame::Integer(created) = field(&info, "created_at") else { panic!("created_at") };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(created <= now && now - created < 120, "{created}");
    assert_eq!(field(&info, "eviction"), bulk("allkeys-lru"));
    assert_eq!(field(&a.cmd(&["TENANT.INFO", "idle"]), "state"), bulk("suspended"));
    let policy = a.cmd(&["TENANT.POLICY", "acme"]);
    assert_eq!((field(&policy, "state"), field(&policy, "hooks")), (bulk("active"), bulk("eviction")));
    assert_eq!(field(&policy, "config_bytes"), Frame::Integer("protect=session:".len() as i64));
    let mut t = Raw::connect(h.addr);
    assert_eq!(t.cmd(&["AUTH", "acme", "wrong"]), Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
    assert_eq!(t.cmd(&["AUTH", "acme", "s3cret"]), ok(), "the password (kept as a salted hash) still works");
    assert_eq!(t.cmd(&["GET", "tenant-key"]), bulk("tenant-value"));
    assert_eq!(t.cmd(&["HGET", "session:1", "user"]), bulk("u1"));
    assert_eq!(a.cmd(&["TENANT.INFO", "doomed"]), Frame::Error("ERR no such tenant 'doomed'".into()));
}

fn compact(h: &ServerHandle) {
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["SAVE"]), ok());
}

#[test]
fn everything_survives_a_restart_from_the_log_and_from_a_snapshot() {
    let dir = data_dir("round-trip");
    let h = start(&dir);
    write_everything(&h);
    check_everything(&h);
    drop(h);
    let h = start(&dir);
    check_everything(&h);
    // Compact: the snapshot alone now carries it all.
    compact(&h);
    let files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(files.contains(&"snapshot.fsnap".to_string()) && files.contains(&"appendonly.1.faof".to_string()), "{files:?}");
    assert!(!files.contains(&"appendonly.0.faof".to_string()), "the compacted log is gone: {files:?}");
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "after", "snapshot"]), ok());
    drop(h);
    let h = start(&dir);
    check_everything(&h);
    assert_eq!(Raw::connect(h.addr).cmd(&["GET", "after"]), bulk("snapshot"));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_compaction_under_concurrent_writes_loses_and_doubles_nothing() {
    let dir = data_dir("concurrent");
    let h = start(&dir);
    let addr = h.addr;
    let mut c = Raw::connect(addr);
    for i in 0..2000 {
        c.cmd(&["SET", &format!("k{i}"), "0"]);
    }
    // Writers keep incrementing every key while compactions run.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let counts = std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let stop = &stop;
                s.spawn(move || {
                    let mut c = Raw::connect(addr);
                    let mut n = vec![0u32; 2000];
                    let mut i = w;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let k = i % 2000;
                        assert!(matches!(c.cmd(&["INCR", &format!("k{k}")]), Frame::Integer(_)));
                        n[k] += 1;
                        i += 7;
                    }
                    n
                })
            })
            .collect();
        let mut a = Raw::connect(addr);
        for _ in 0..3 {
            assert_eq!(a.cmd(&["BGREWRITEAOF"]), Frame::Simple("Background append only file rewriting started".into()));
            while a.cmd(&["INFO", "persistence"]).to_string().contains("aof_rewrite_in_progress:1") {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writers.into_iter().map(|w| w.join().unwrap()).fold(vec![0u32; 2000], |mut acc, n| {
            acc.iter_mut().zip(n).for_each(|(a, b)| *a += b);
            acc
        })
    });
    drop(h);
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    for (i, n) in counts.iter().enumerate() {
        assert_eq!(c.cmd(&["GET", &format!("k{i}")]), bulk(&n.to_string()), "k{i}");
    }
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_bgsave_lastsave_and_info() {
    let dir = data_dir("commands");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    c.cmd(&["SET", "a", "1"]);
    let info = c.cmd(&["INFO", "persistence"]).to_string();
    assert!(
        info.contains("aof_enabled:1") && info.contains("rdb_changes_since_last_save:1") && info.contains("aof_fsync:everysec"),
        "{info}"
    );
    assert_eq!(c.cmd(&["SAVE"]), ok());
    let Frame::Integer(last) = c.cmd(&["LASTSAVE"]) else { panic!("lastsave") };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - 5..=now).contains(&last), "{last} vs {now}");
    assert!(c.cmd(&["INFO", "persistence"]).to_string().contains("rdb_changes_since_last_save:0"));
    assert_eq!(c.cmd(&["BGSAVE"]), Frame::Simple("Background saving started".into()));
    assert_eq!(c.cmd(&["BGSAVE", "NOW"]), Frame::Error("ERR syntax error".into()));
    drop(h);
    // Off, the commands say so.
    let h = common::start();
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["BGSAVE"]), Frame::Error("ERR persistence is off ([persistence] appendonly = false)".into()));
    assert!(c.cmd(&["INFO", "persistence"]).to_string().contains("aof_enabled:0"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A number from `INFO persistence`.
fn info_number(c: &mut Raw, name: &str) -> u64 {
    let Frame::Bulk(info) = c.cmd(&["INFO", "persistence"]) else { panic!("INFO is a bulk string") };
    let info = String::from_utf8(info).unwrap();
    let prefix = format!("{name}:");
    let line = info.split("\r\n").find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {name}"));
    line[prefix.len()..].parse().unwrap()
}

#[test]
fn writes_that_change_nothing_are_not_logged() {
    let dir = data_dir("unchanged");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    let changes = |c: &mut Raw| info_number(c, "rdb_changes_since_last_save");
    assert_eq!(c.cmd(&["SADD", "s", "a", "b"]), Frame::Integer(2));
    c.cmd(&["HSET", "h", "f", "v"]);
    c.cmd(&["ZADD", "z", "1", "m"]);
    let before = changes(&mut c);
    // As in Redis, none of these made the dataset dirty.
    for cmd in [
        &["SADD", "s", "a"][..],
        &["SREM", "s", "nope"],
        &["HDEL", "h", "nope"],
        &["ZREM", "z", "nope"],
        &["DEL", "missing"],
        &["UNLINK", "missing"],
    ] {
        assert_eq!(c.cmd(cmd), Frame::Integer(0), "{cmd:?}");
    }
    assert_eq!(changes(&mut c), before);
    assert_eq!(c.cmd(&["SADD", "s", "a", "c"]), Frame::Integer(1));
    assert_eq!(c.cmd(&["SREM", "s", "b"]), Frame::Integer(1));
    assert_eq!(changes(&mut c), before + 2);
    drop(h);
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    let mut members = strings(c.cmd(&["SMEMBERS", "s"]));
    members.sort();
    assert_eq!(members, ["a", "c"]);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_writers_of_one_key_replay_in_the_order_they_wrote() {
    // Four worker threads, four clients appending their own letter to one
    // key: APPEND is order-sensitive, so the string after a restart equals
    // the one before only if the log kept the order the appends ran in.
    let dir = data_dir("order");
    let mut cfg = config(&dir, Fsync::Everysec);
    cfg.server.threads = 4;
    let h = start_background(cfg.clone()).expect("server starts");
    let addr = h.addr;
    let writers: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|letter| {
            std::thread::spawn(move || {
                let mut c = Raw::connect(addr);
                for _ in 0..50 {
                    let batch: Vec<u8> = (0..20).flat_map(|_| encode(["APPEND", "k", letter].map(str::as_bytes).into_iter())).collect();
                    c.send(&batch);
                    (0..20).for_each(|_| {
                        c.read();
                    });
                    c.cmd(&["SET", "last", letter]);
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let mut c = Raw::connect(h.addr);
    let (k, last) = (c.cmd(&["GET", "k"]), c.cmd(&["GET", "last"]));
    let Frame::Bulk(written) = &k else { panic!("GET k: {k}") };
    assert_eq!(written.len(), 4000);
    drop(h);
    let h = start_background(cfg).expect("server restarts");
    let mut c = Raw::connect(h.addr);
    assert!(c.cmd(&["GET", "k"]) == k, "the appends replayed in another order");
    assert_eq!(c.cmd(&["GET", "last"]), last);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls `done` every 5 ms until it holds; fails the test with `what`
/// after `secs` seconds.
fn eventually(secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the writer has found the disk failing (PING answers MISCONF).
fn wait_for_misconf(c: &mut Raw) {
    eventually(5, "the failed write was never noticed", || matches!(c.cmd(&["PING"]), Frame::Error(_)));
}

/// Puts the server's log on a full disk (`/dev/full`); returns the log and
/// the file to put back.
fn fill_disk(h: &ServerHandle) -> (&ferrite::persist::aof::Aof, std::fs::File) {
    let aof = &h.state.persistence().expect("persistence is on").aof;
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
    (aof, aof.swap_file_for_tests(full))
}

#[test]
fn while_the_log_cannot_be_written_writes_and_ping_get_misconf_and_reads_go_on() {
    let dir = data_dir("misconf");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let (aof, good) = fill_disk(&h);
    // Acknowledged under everysec before the writer finds out.
    assert_eq!(c.cmd(&["SET", "k", "w"]), ok());
    wait_for_misconf(&mut c);
    for cmd in [&["SET", "k", "x"][..], &["DEL", "k"], &["PING"]] {
        assert_eq!(c.cmd(cmd), Frame::Error("MISCONF Errors writing to the AOF file: No space left on device".into()), "{cmd:?}");
    }
    assert_eq!(c.cmd(&["GET", "k"]), bulk("w"));
    assert!(c.cmd(&["INFO", "persistence"]).to_string().contains("aof_last_write_status:err"));
    // The disk recovers: the retried write lands and writes are accepted again.
    aof.swap_file_for_tests(good);
    eventually(5, "never recovered", || c.cmd(&["PING"]) == Frame::Simple("PONG".into()));
    assert_eq!(c.cmd(&["SET", "k2", "y"]), ok());
    drop(h);
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["MGET", "k", "k2"]), Frame::Array(vec![bulk("w"), bulk("y")]), "the write that failed at first was retried");
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn under_always_a_write_that_cannot_be_logged_is_never_acknowledged() {
    let dir = data_dir("always-full");
    let h = start_background(config(&dir, Fsync::Always)).expect("server starts");
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let (aof, good) = fill_disk(&h);
    // No +OK for this one: the connection closes instead (as when Redis
    // exits on this error), so the client knows the outcome is unknown.
    c.send(&encode(["SET", "k", "w"].map(str::as_bytes).into_iter()));
    assert_eq!(c.try_read(), None);
    // Everyone else is told why, and reads go on.
    let mut other = Raw::connect(h.addr);
    assert_eq!(other.cmd(&["SET", "k", "x"]), Frame::Error("MISCONF Errors writing to the AOF file: No space left on device".into()));
    assert_eq!(other.cmd(&["GET", "k"]), bulk("w"));
    aof.swap_file_for_tests(good);
    eventually(5, "never recovered", || other.cmd(&["SET", "k", "y"]) == ok());
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes k0..k9 through a server that then stops; returns its log file.
fn ten_keys_logged(dir: &Path) -> PathBuf {
    let h = start(dir);
    let mut c = Raw::connect(h.addr);
    for i in 0..10 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    drop(h);
    dir.join("appendonly.0.faof")
}

#[test]
fn a_truncated_last_record_is_dropped_and_the_log_trimmed() {
    let dir = data_dir("truncated");
    let f = ten_keys_logged(&dir);
    let len = std::fs::metadata(&f).unwrap().len();
    // A crash in the middle of writing the last record.
    std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(len - 3).unwrap();
    let mut strict = config(&dir, Fsync::Everysec);
    strict.persistence.aof_load_truncated = false;
    let e = start_background(strict).err().expect("refused").to_string();
    assert!(e.contains("appendonly.0.faof: truncated record at offset"), "{e}");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["DBSIZE"]), Frame::Integer(9), "all but the cut record");
    assert_eq!(c.cmd(&["SET", "k9", "again"]), ok());
    drop(h);
    let h = start(&dir);
    assert_eq!(Raw::connect(h.addr).cmd(&["GET", "k9"]), bulk("again"), "appends after the trim replay cleanly");
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corruption_stops_start_up_with_the_file_and_offset() {
    let dir = data_dir("corrupt");
    let f = ten_keys_logged(&dir);
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[16 + 8 + 3] ^= 0x55; // inside the first record's payload
    std::fs::write(&f, &bytes).unwrap();
    let e = start_background(config(&dir, Fsync::Everysec)).err().expect("refused").to_string();
    assert!(e.contains("appendonly.0.faof: corrupt at offset 16: checksum mismatch"), "{e}");
    // A damaged snapshot is refused too.
    let _ = std::fs::remove_dir_all(&dir);
    let h = start(&dir);
    Raw::connect(h.addr).cmd(&["SET", "a", "1"]);
    compact(&h);
    drop(h);
    let snap = dir.join("snapshot.fsnap");
    let mut bytes = std::fs::read(&snap).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x55;
    std::fs::write(&snap, &bytes).unwrap();
    let e = start_background(config(&dir, Fsync::Everysec)).err().expect("refused").to_string();
    assert!(e.contains("snapshot.fsnap: corrupt at offset"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a crash run saw: per tenant, the acknowledged counter values with
/// when each was acknowledged; when the server was killed; and the values
/// found after the restart.
struct Crash {
    acked: Vec<Vec<(u64, Instant)>>,
    killed: Instant,
    found: Vec<u64>,
}

/// Several tenants INCR their counters as fast as they can against the real
/// binary, which is killed with SIGKILL mid-stream, then restarted.
fn crash_under_load(fsync: &str, name: &str) -> Crash {
    let dir = data_dir(name);
    let port = common::free_port();
    let mut server = Process::ferrite(port, &dir, &["--appendfsync", fsync]);
    let addr = server.addr;
    let mut a = Raw::connect(addr);
    let tenants = ["t0", "t1", "t2", "t3"];
    for t in tenants {
        assert_eq!(a.cmd(&["TENANT.CREATE", t, "PASSWORD", "pw", "OPS", "1000000"]), ok());
    }
    let kill_at = Instant::now() + Duration::from_millis(1500);
    let acked: Vec<Vec<(u64, Instant)>> = std::thread::scope(|s| {
        let hs: Vec<_> = tenants
            .iter()
            .map(|t| {
                s.spawn(move || {
                    let mut c = Raw::connect(addr);
                    assert_eq!(c.cmd(&["AUTH", t, "pw"]), ok());
                    let mut acks = Vec::new();
                    c.send(&encode([b"INCR".as_slice(), b"counter"].into_iter()));
                    while let Some(Frame::Integer(n)) = c.try_read() {
                        acks.push((n as u64, Instant::now()));
                        c.send(&encode([b"INCR".as_slice(), b"counter"].into_iter()));
                    }
                    acks
                })
            })
            .collect();
        std::thread::sleep(kill_at - Instant::now());
        server.kill(); // SIGKILL
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let killed = Instant::now();
    let server = Process::ferrite(port, &dir, &["--appendfsync", fsync]);
    let mut found = Vec::new();
    for t in tenants {
        let mut c = Raw::connect(server.addr);
        assert_eq!(c.cmd(&["AUTH", t, "pw"]), ok());
        found.push(match c.cmd(&["GET", "counter"]) {
            Frame::Bulk(b) => String::from_utf8(b).unwrap().parse().unwrap(),
            Frame::Null => 0,
            other => panic!("{other}"),
        });
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Crash { acked, killed, found }
}

/// A tenant's key named `__tenant:<other>:...` is its own: after a SIGKILL
/// and a replay of the log it is still the writer's, and the other tenant's
/// keys are untouched (replay used to read the prefix as an admin address).
#[test]
fn replay_keeps_a_tenants_prefixed_keys_its_own() {
    let dir = data_dir("replay-prefix");
    let port = common::free_port();
    let mut server = Process::ferrite(port, &dir, &["--appendfsync", "always"]);
    let mut admin = Raw::connect(server.addr);
    for t in ["a", "b"] {
        assert_eq!(admin.cmd(&["TENANT.CREATE", t, "PASSWORD", "pw"]), ok());
    }
    let mut b = Raw::connect(server.addr);
    assert_eq!(b.cmd(&["AUTH", "b", "pw"]), ok());
    assert_eq!(b.cmd(&["SET", "balance", "100"]), ok());
    let mut a = Raw::connect(server.addr);
    assert_eq!(a.cmd(&["AUTH", "a", "pw"]), ok());
    assert_eq!(a.cmd(&["SET", "__tenant:b:balance", "0"]), ok());
    assert_eq!(a.cmd(&["RPUSH", "__tenant:b:jobs", "x"]), Frame::Integer(1));
    server.kill();
    let server = Process::ferrite(port, &dir, &["--appendfsync", "always"]);
    let mut b = Raw::connect(server.addr);
    assert_eq!(b.cmd(&["AUTH", "b", "pw"]), ok());
    assert_eq!(b.cmd(&["GET", "balance"]), bulk("100"));
    assert_eq!(b.cmd(&["EXISTS", "jobs"]), Frame::Integer(0));
    let mut a = Raw::connect(server.addr);
    assert_eq!(a.cmd(&["AUTH", "a", "pw"]), ok());
    assert_eq!(a.cmd(&["GET", "__tenant:b:balance"]), bulk("0"));
    assert_eq!(a.cmd(&["LRANGE", "__tenant:b:jobs", "0", "-1"]), Frame::Array(vec![bulk("x")]));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigkill_under_always_loses_no_acknowledged_write() {
    let Crash { acked, found, .. } = crash_under_load("always", "crash-always");
    for (acks, value) in acked.iter().zip(&found) {
        let last = acks.last().map_or(0, |a| a.0);
        assert!(last > 10, "the load ran: {last}");
        assert!(*value >= last, "acknowledged {last}, found {value}");
    }
}

#[test]
fn sigkill_under_everysec_loses_at_most_about_a_second() {
    let Crash { acked, killed, found } = crash_under_load("everysec", "crash-everysec");
    for (acks, value) in acked.iter().zip(&found) {
        assert!(acks.len() > 10, "the load ran");
        // Every acknowledged write that is missing was acknowledged in the
        // last ~second before the kill.
        if let Some((_, at)) = acks.iter().find(|(n, _)| n > value) {
            let lost_for = killed.duration_since(*at);
            assert!(lost_for <= Duration::from_millis(1500), "lost writes acknowledged {lost_for:?} before the kill");
        }
    }
}

/// The log files of `dir` and their sizes, oldest generation first.
fn logs(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".faof"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    v.sort_by_key(|(name, _)| name.split('.').nth(1).and_then(|g| g.parse::<u64>().ok()));
    v
}

/// A log holding no record: just its 16-byte magic.
const EMPTY_LOG: u64 = 16;

/// Writes a key, then sends `shutdown` and waits for the server to stop.
fn write_then(dir: &Path, shutdown: &str) {
    let mut h = start(dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "k", shutdown]), ok());
    c.send(format!("{shutdown}\r\n").as_bytes());
    assert!(c.try_read().is_none(), "{shutdown} closes without a reply");
    h.shutdown();
}

#[test]
fn shutdown_compacts_by_default_and_with_save_but_not_with_nosave() {
    let dir = data_dir("shutdown-save");
    write_then(&dir, "SHUTDOWN NOSAVE");
    assert!(!dir.join("snapshot.fsnap").exists());
    assert!(logs(&dir)[0].1 > EMPTY_LOG, "the write is in the log");

    // Plain SHUTDOWN (and SIGTERM): the log held something, so it is compacted
    // and the next start has nothing to replay.
    write_then(&dir, "SHUTDOWN");
    assert!(dir.join("snapshot.fsnap").exists());
    let after_default = logs(&dir);
    assert_eq!(after_default.len(), 1, "{after_default:?}");
    assert_eq!(after_default[0].1, EMPTY_LOG, "{after_default:?}");

    // SAVE compacts even when nothing changed since.
    let mut h = start(&dir);
    assert_eq!(Raw::connect(h.addr).cmd(&["GET", "k"]), bulk("SHUTDOWN"));
    let mut c = Raw::connect(h.addr);
    c.send(b"SHUTDOWN SAVE\r\n");
    assert!(c.try_read().is_none());
    h.shutdown();
    let after_save = logs(&dir);
    assert_ne!(after_save, after_default, "a new generation");
    assert_eq!(after_save[0].1, EMPTY_LOG);

    // And what was saved is what comes back.
    let h = start(&dir);
    assert_eq!(Raw::connect(h.addr).cmd(&["GET", "k"]), bulk("SHUTDOWN"));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shutdown_signal_compacts_like_shutdown_and_bad_flags_are_refused() {
    let dir = data_dir("shutdown-signal");
    let mut h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    for bad in [&["SHUTDOWN", "NOSAVE", "SAVE"][..], &["SHUTDOWN", "ABORT", "NOW"], &["SHUTDOWN", "LATER"]] {
        assert_eq!(c.cmd(bad), Frame::Error("ERR syntax error".into()), "{bad:?}");
    }
    assert_eq!(c.cmd(&["SHUTDOWN", "ABORT"]), Frame::Error("ERR No shutdown in progress.".into()));
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"), "still running");
    // What SIGTERM does (see main.rs).
    h.state.request_shutdown();
    h.shutdown();
    assert!(dir.join("snapshot.fsnap").exists());
    assert_eq!(logs(&dir).last().unwrap().1, EMPTY_LOG);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` keys of 64 hex digits each: values LZ4 cannot shrink much, so the
/// snapshot is about as big as the data.
fn write_hex_keys(c: &mut Raw, from: usize, n: usize) {
    let mut x: u64 = from as u64 + 1;
    for i in from..from + n {
        let v: String = (0..4)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                format!("{x:016x}")
            })
            .collect();
        assert_eq!(c.cmd(&["SET", &format!("key:{i}"), &v]), ok());
    }
}

/// Waits (up to 10 s) until `INFO persistence` shows `name` passing `ok`;
/// returns that value.
fn wait_for_info(c: &mut Raw, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
    let mut v = 0;
    eventually(10, &format!("{name} never got there"), || {
        v = info_number(c, name);
        ok(v)
    });
    v
}

#[test]
fn the_log_compacts_itself_when_snapshot_and_log_together_doubled() {
    let dir = data_dir("auto-compaction");
    let mut cfg = config(&dir, Fsync::Everysec);
    cfg.persistence.auto_aof_rewrite_min_size = 16 << 10;
    let h = start_background(cfg).expect("server starts");
    let p = h.state.persistence().unwrap().clone();
    let mut c = Raw::connect(h.addr);
    // About 100 KB of log: past the minimum, so the server compacts on its own.
    write_hex_keys(&mut c, 0, 1000);
    assert!(wait_for_info(&mut c, "aof_generation", |g| g >= 1) >= 1, "compacted on its own");
    assert_eq!(wait_for_info(&mut c, "aof_rewrite_in_progress", |r| r == 0), 0);
    let base = info_number(&mut c, "aof_base_size");
    assert!(base > 60_000, "the base counts the snapshot: {base}");
    let generation = info_number(&mut c, "aof_generation");
    // A third of the data rewritten: the log passes the minimum again but
    // snapshot and log together are far from double the base.
    write_hex_keys(&mut c, 0, 330);
    wait_for_info(&mut c, "aof_current_size", |size| size >= base + 30_000);
    assert!(!p.rewrite_due());
    assert_eq!(info_number(&mut c, "aof_generation"), generation, "no compaction for a third");
    // Past double: due (and the server compacts).
    write_hex_keys(&mut c, 1000, 1000);
    assert!(wait_for_info(&mut c, "aof_generation", |g| g > generation) > generation, "compacted past double");
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_shutdown_while_the_log_cannot_be_written_still_exits() {
    let dir = data_dir("shutdown-full");
    let mut h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let _keep = fill_disk(&h).1;
    assert_eq!(c.cmd(&["SET", "k", "w"]), ok());
    wait_for_misconf(&mut c);
    // A plain SHUTDOWN would compact; with the log failing it must not wait for that.
    c.send(b"SHUTDOWN\r\n");
    let (tx, rx) = std::sync::mpsc::channel();
    let stopper = std::thread::spawn(move || {
        h.shutdown();
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok(), "the server did not exit");
    stopper.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn info_persistence_has_redis_fields_and_counts_compactions_and_loaded_keys() {
    let dir = data_dir("info-fields");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    let Frame::Bulk(info) = c.cmd(&["INFO", "persistence"]) else { panic!("bulk") };
    let info = String::from_utf8(info).unwrap();
    let names: Vec<&str> = info.lines().skip(1).filter_map(|l| l.split(':').next()).collect();
    // Redis 7.0's fields, in its order (Ferrite adds aof_fsync and aof_generation after them).
    let redis = "loading async_loading current_cow_peak current_cow_size current_cow_size_age current_fork_perc \
        current_save_keys_processed current_save_keys_total rdb_changes_since_last_save rdb_bgsave_in_progress \
        rdb_last_save_time rdb_last_bgsave_status rdb_last_bgsave_time_sec rdb_current_bgsave_time_sec rdb_saves \
        rdb_last_cow_size rdb_last_load_keys_expired rdb_last_load_keys_loaded aof_enabled aof_rewrite_in_progress \
        aof_rewrite_scheduled aof_last_rewrite_time_sec aof_current_rewrite_time_sec aof_last_bgrewrite_status \
        aof_rewrites aof_rewrites_consecutive_failures aof_last_write_status aof_last_cow_size module_fork_in_progress \
        module_fork_last_cow_size aof_current_size aof_base_size aof_pending_rewrite aof_buffer_length \
        aof_pending_bio_fsync aof_delayed_fsync";
    assert_eq!(names[..names.len() - 2], redis.split_whitespace().collect::<Vec<_>>()[..]);
    assert_eq!(info_number(&mut c, "rdb_saves"), 0);
    assert!(info.contains("aof_last_rewrite_time_sec:-1"), "{info}");
    assert_eq!(c.cmd(&["SET", "kept", "v"]), ok());
    // Injected time instead of a sleep: this server's clock runs a second
    // behind, so "fleeting" is alive here and already expired for the next
    // server, whose clock is right.
    h.state.clock.advance(-1_000);
    assert_eq!(c.cmd(&["SET", "fleeting", "v", "PX", "500"]), ok());
    assert_eq!(c.cmd(&["SAVE"]), ok());
    assert_eq!((info_number(&mut c, "rdb_saves"), info_number(&mut c, "aof_rewrites")), (1, 1));
    assert_eq!(info_number(&mut c, "aof_rewrites_consecutive_failures"), 0);
    let Frame::Bulk(info) = c.cmd(&["INFO", "persistence"]) else { panic!("bulk") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("aof_last_rewrite_time_sec:0") && info.contains("aof_current_rewrite_time_sec:-1"), "{info}");
    drop(h);
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    assert_eq!(info_number(&mut c, "rdb_last_load_keys_loaded"), 1);
    assert_eq!(info_number(&mut c, "rdb_last_load_keys_expired"), 1);
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_get_and_set_see_and_change_the_running_persistence() {
    let dir = data_dir("config");
    let h = start(&dir);
    let mut c = Raw::connect(h.addr);
    let get = |c: &mut Raw, name: &str| match c.cmd(&["CONFIG", "GET", name]) {
        Frame::Array(v) if v.len() == 2 => v[1].clone(),
        other => panic!("{name}: {other}"),
    };
    assert_eq!(get(&mut c, "appendonly"), bulk("yes"));
    assert_eq!(get(&mut c, "appendfsync"), bulk("everysec"));
    assert_eq!(get(&mut c, "dir"), bulk(&dir.display().to_string()));
    assert_eq!(get(&mut c, "auto-aof-rewrite-percentage"), bulk("100"));
    // appendfsync switches at runtime: replies now wait for the disk.
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendfsync", "always"]), ok());
    assert_eq!(get(&mut c, "appendfsync"), bulk("always"));
    assert!(h.state.persistence().unwrap().aof.acks_after_fsync());
    assert!(c.cmd(&["INFO", "persistence"]).to_string().contains("aof_fsync:always"));
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let refused = |c: &mut Raw, args: &[&str]| match c.cmd(args) {
        Frame::Error(e) => e,
        other => panic!("{args:?} was accepted: {other}"),
    };
    assert!(refused(&mut c, &["CONFIG", "SET", "appendonly", "no"]).contains("needs a restart"));
    assert_eq!(c.cmd(&["CONFIG", "SET", "appendonly", "yes"]), ok(), "what it already is");
    assert!(refused(&mut c, &["CONFIG", "SET", "appendfsync", "sometimes"]).contains("always, everysec, no"));
    assert!(refused(&mut c, &["CONFIG", "SET", "dir", "/tmp"]).contains("can't set immutable config"));
    // All or nothing: a bad value anywhere leaves every setting as it was.
    let e = refused(&mut c, &["CONFIG", "SET", "auto-aof-rewrite-min-size", "1", "auto-aof-rewrite-percentage", "lots"]);
    assert!(e.contains("auto-aof-rewrite-percentage"), "{e}");
    assert_eq!(get(&mut c, "auto-aof-rewrite-min-size"), bulk(&(64u64 << 20).to_string()));
    assert_eq!(c.cmd(&["CONFIG", "SET", "auto-aof-rewrite-min-size", "1048576", "auto-aof-rewrite-percentage", "50"]), ok());
    assert_eq!(h.state.persistence().unwrap().auto_rewrite_percentage.load(std::sync::atomic::Ordering::Relaxed), 50);
    drop(h);

    // With persistence off the settings read as configured and cannot be changed.
    let mut off = config(&dir, Fsync::Everysec);
    off.persistence.appendonly = false;
    let h = start_background(off).expect("server starts");
    let mut c = Raw::connect(h.addr);
    assert_eq!(get(&mut c, "appendonly"), bulk("no"));
    assert_eq!(get(&mut c, "appendfsync"), bulk("everysec"));
    assert!(refused(&mut c, &["CONFIG", "SET", "appendfsync", "always"]).contains("persistence is off"));
    assert!(refused(&mut c, &["CONFIG", "SET", "appendonly", "yes"]).contains("needs a restart"));
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tenant's own CONFIG settings (keyspace events, encoding parameters)
/// and the operator's NOTIFY survive restarts from the log and from a
/// snapshot, and a return to the server's default does too.
#[test]
fn a_tenants_own_settings_survive_restarts() {
    let dir = data_dir("tenant-settings");
    let h = start(&dir);
    let mut a = Raw::connect(h.addr);
    assert_eq!(a.cmd(&["TENANT.CREATE", "own", "PASSWORD", "pw"]), ok());
    assert_eq!(a.cmd(&["TENANT.CREATE", "op", "PASSWORD", "pw", "NOTIFY", "Kx"]), ok());
    let login = |h: &ServerHandle, id: &str| {
        let mut c = Raw::connect(h.addr);
        assert_eq!(c.cmd(&["AUTH", id, "pw"]), ok());
        c
    };
    let mut t = login(&h, "own");
    assert_eq!(t.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Elg", "hash-max-listpack-entries", "7"]), ok());
    let get = |c: &mut Raw, name: &str| c.cmd(&["CONFIG", "GET", name]);
    let expect = |name: &str, value: &str| Frame::Array(vec![bulk(name), bulk(value)]);
    drop((t, a));
    drop(h);
    for restart in ["log", "snapshot"] {
        let h = start(&dir);
        let mut t = login(&h, "own");
        assert_eq!(get(&mut t, "notify-keyspace-events"), expect("notify-keyspace-events", "glE"), "after a restart from the {restart}");
        assert_eq!(get(&mut t, "hash-max-listpack-entries"), expect("hash-max-listpack-entries", "7"), "from the {restart}");
        let mut o = login(&h, "op");
        assert_eq!(get(&mut o, "notify-keyspace-events"), expect("notify-keyspace-events", "xK"), "from the {restart}");
        if restart == "log" {
            compact(&h);
        }
        drop((t, o));
        drop(h);
    }
    let h = start(&dir);
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.UPDATE", "op", "NOTIFY", "DEFAULT"]), ok());
    drop(h);
    let h = start(&dir);
    let mut o = login(&h, "op");
    assert_eq!(get(&mut o, "notify-keyspace-events"), expect("notify-keyspace-events", ""), "back to the server's default");
}
