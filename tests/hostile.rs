//! A hostile tenant against one server (issue 12): what it sends cannot
//! crash the process, leak its connection slots, hold memory outside its
//! quota or stall other tenants.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, bulk, encode, info_field, login, ok, tenant};
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

fn int(f: &Frame) -> i64 {
    match f {
        Frame::Integer(n) => *n,
        other => panic!("integer: {other}"),
    }
}

fn nth(f: Frame, i: usize) -> Frame {
    match f {
        Frame::Array(mut v) => v.swap_remove(i),
        other => panic!("array: {other}"),
    }
}

/// A field of TENANT.INFO (a flat array of names and values in RESP2).
fn tenant_field(h: &ServerHandle, id: &str, name: &str) -> i64 {
    let Frame::Array(v) = Raw::connect(h.addr).cmd(&["TENANT.INFO", id]) else { panic!("array") };
    let i = v.iter().position(|x| x == &bulk(name)).unwrap_or_else(|| panic!("no {name}"));
    int(&v[i + 1])
}

/// This process's resident memory (the server runs in it).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Polls `f` until it holds (10 s at most).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn huge_random_counts_neither_crash_nor_leak_connection_slots() {
    let h = common::start();
    let mut t = tenant(&h, "rnd", &["CONNECTIONS", "3", "MEMORY", "1mb"]);
    assert_eq!(int(&t.cmd(&["SADD", "s", "a", "b"])), 2);
    assert_eq!(int(&t.cmd(&["HSET", "h", "a", "1", "b", "2"])), 2);
    assert_eq!(int(&t.cmd(&["ZADD", "z", "1", "a", "2", "b"])), 2);
    assert_eq!(
        t.cmd(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        Frame::Error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807".into())
    );
    assert_eq!(t.cmd(&["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"]), Frame::Error("ERR value is out of range".into()));
    assert_eq!(t.cmd(&["ZRANDMEMBER", "z", "4611686018427387904", "WITHSCORES"]), Frame::Error("ERR value is out of range".into()));
    // Several times the connection limit: every slot must come back.
    for round in 0..3 {
        for cmd in [
            &["SRANDMEMBER", "s", "-1000000000000000"][..],
            &["SRANDMEMBER", "s", "-9223372036854775807"],
            &["HRANDFIELD", "h", "-9223372036854775807"],
            &["HRANDFIELD", "h", "-4611686018427387903", "WITHVALUES"],
            &["ZRANDMEMBER", "z", "-4611686018427387903", "WITHSCORES"],
        ] {
            let mut c = login(&h, "rnd");
            c.send(&encode(cmd.iter().map(|a| a.as_bytes())));
            // The reply passes the tenant's output limit: the connection is
            // closed, as Redis closes a client over its output buffer limit.
            assert!(c.is_closed(), "round {round}: {cmd:?}");
        }
    }
    eventually("the closed connections' slots are returned", || tenant_field(&h, "rnd", "connections") == 1);
    let mut c = login(&h, "rnd");
    let Frame::Array(picked) = c.cmd(&["SRANDMEMBER", "s", "-5"]) else { panic!("array") };
    assert_eq!(picked.len(), 5);
    assert_eq!(t.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn pathological_glob_patterns_answer_quickly() {
    let h = common::start();
    let mut t = tenant(&h, "glob", &[]);
    let key = "a".repeat(37);
    assert_eq!(t.cmd(&["SET", &key, "v"]), ok());
    assert_eq!(int(&t.cmd(&["SADD", "s", &key])), 1);
    let pattern = format!("{}b", "a*".repeat(14));
    let start = Instant::now();
    assert_eq!(t.cmd(&["KEYS", &pattern]), Frame::Array(vec![]));
    assert_eq!(t.cmd(&["SSCAN", "s", "0", "MATCH", &pattern]), Frame::Array(vec![bulk("0"), Frame::Array(vec![])]));
    let mut sub = login(&h, "glob");
    assert!(matches!(sub.cmd(&["PSUBSCRIBE", &pattern]), Frame::Array(_)));
    assert_eq!(int(&t.cmd(&["PUBLISH", &key, "m"])), 0);
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
}

#[test]
fn unread_replies_wait_in_the_socket_not_in_the_server() {
    let h = common::start();
    let mut t = tenant(&h, "reader", &["MEMORY", "8mb"]);
    let value = "v".repeat(1 << 20);
    assert_eq!(t.cmd(&["SET", "big", &value]), ok());
    let mut lazy = login(&h, "reader");
    let get = encode([b"GET".as_slice(), b"big"].into_iter());
    let before = resident_bytes();
    lazy.send(&get.repeat(60));
    // While the replies are unread the server holds a few of them at most
    // (it held all 60 MB): the rest of the requests wait, unparsed, behind a
    // full socket, and what it holds counts against the tenant.
    std::thread::sleep(Duration::from_millis(500));
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 24 << 20, "the process grew by {} MB", grown >> 20);
    assert!(tenant_field(&h, "reader", "memory_used") < 8 << 20);
    for _ in 0..60 {
        assert_eq!(lazy.read(), Frame::Bulk(value.as_bytes().to_vec()));
    }
}

#[test]
fn a_multi_queue_counts_against_the_tenants_memory() {
    let h = common::start();
    let mut t = tenant(&h, "queue", &["MEMORY", "1mb"]);
    let value = "v".repeat(300 * 1024);
    assert_eq!(t.cmd(&["MULTI"]), ok());
    let replies: Vec<Frame> = (0..5).map(|i| t.cmd(&["SET", &format!("k{i}"), &value])).collect();
    assert_eq!(replies[0], Frame::Simple("QUEUED".into()));
    assert!(matches!(&replies[4], Frame::Error(e) if e.starts_with("OOM")), "{:?}", replies[4]);
    // The queue shows in TENANT.INFO as the connections' memory.
    assert!(tenant_field(&h, "queue", "memory_clients") > 600 * 1024);
    assert!(matches!(t.cmd(&["EXEC"]), Frame::Error(e) if e.starts_with("EXECABORT")));
    eventually("the queue's bytes are returned", || tenant_field(&h, "queue", "memory_used") < 300 * 1024);
    assert_eq!(tenant_field(&h, "queue", "memory_clients"), 0);
}

#[test]
fn a_subscriber_that_never_reads_is_disconnected_by_bytes() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 4mb 1mb 60"]), ok());
    let mut publisher = tenant(&h, "chat", &[]);
    let mut sub = login(&h, "chat");
    assert!(matches!(sub.cmd(&["SUBSCRIBE", "room"]), Frame::Array(_)));
    let payload = "p".repeat(1 << 20);
    // Socket buffers take some; the queue takes the rest up to 4 MB.
    let mut delivered = 0;
    for _ in 0..64 {
        delivered += int(&publisher.cmd(&["PUBLISH", "room", &payload]));
    }
    assert!(delivered < 64, "every message was queued for a subscriber that reads nothing");
    eventually("the subscriber is gone", || int(&nth(publisher.cmd(&["PUBSUB", "NUMSUB", "room"]), 1)) == 0);
}

/// A connection's writes well below the tenant's limits are admitted on
/// a credit instead of a look at the usage each time: every connection
/// spending its whole credit together must still stay within the limit.
#[test]
fn write_credits_of_every_connection_stay_within_the_memory_limit() {
    let h = common::start();
    let limit = 1 << 20;
    let mut conns = vec![tenant(&h, "crowd", &["MEMORY", "1mb", "CONNECTIONS", "8"])];
    conns.extend((1..8).map(|_| login(&h, "crowd")));
    // Big enough that a credit runs out on bytes before keys.
    let value = "v".repeat(4000);
    let mut full = [false; 8];
    // In turns, so each connection takes its credit early and spends it
    // while the others spend theirs.
    for i in 0.. {
        if full.iter().all(|f| *f) {
            break;
        }
        assert!(i < 10_000, "no OOM after {i} rounds");
        for (c, conn) in conns.iter_mut().enumerate() {
            if full[c] {
                continue;
            }
            match conn.cmd(&["SET", &format!("k{c}:{i}"), &value]) {
                Frame::Simple(_) => {}
                Frame::Error(e) if e.starts_with("OOM") => full[c] = true,
                other => panic!("{other}"),
            }
        }
    }
    let used = tenant_field(&h, "crowd", "memory_used");
    assert!(used <= limit, "{used} bytes used, past the {limit} limit");
}

/// A credit taken early, then left unspent while another connection
/// fills the tenant to its limit, covers nothing afterwards.
#[test]
fn a_credit_taken_early_covers_nothing_once_another_connection_fills_the_tenant() {
    let h = common::start();
    let limit = 1 << 20;
    let mut early = tenant(&h, "fill", &["MEMORY", "1mb", "CONNECTIONS", "2"]);
    let mut filler = login(&h, "fill");
    let until_oom = |c: &mut Raw, prefix: &str, value: &str| {
        for i in 0..2000 {
            match c.cmd(&["SET", &format!("{prefix}:{i}"), value]) {
                Frame::Simple(_) => {}
                Frame::Error(e) if e.starts_with("OOM") => return,
                other => panic!("{other}"),
            }
        }
        panic!("no OOM");
    };
    assert_eq!(early.cmd(&["SET", "early", "v"]), ok());
    until_oom(&mut filler, "fill", &"f".repeat(4000));
    until_oom(&mut early, "late", &"l".repeat(1000));
    let used = tenant_field(&h, "fill", "memory_used");
    assert!(used <= limit, "{used} bytes used, past the {limit} limit");
    // The same with the tenant filled by what a connection holds (a MULTI
    // queue), not by its databases.
    assert_eq!(early.cmd(&["FLUSHALL"]), ok());
    assert_eq!(early.cmd(&["SET", "early", "v"]), ok());
    assert_eq!(filler.cmd(&["MULTI"]), ok());
    until_oom(&mut filler, "queued", &"q".repeat(4000));
    until_oom(&mut early, "late", &"l".repeat(1000));
    let used = tenant_field(&h, "fill", "memory_used");
    assert!(used <= limit, "{used} bytes used with a queue held, past the {limit} limit");
}

#[test]
fn writes_are_admitted_on_what_they_would_add() {
    let h = common::start();
    let mut t = tenant(&h, "small", &["MEMORY", "1mb", "KEYS", "3"]);
    let oom = |f: Frame| matches!(&f, Frame::Error(e) if e.starts_with("OOM")) || panic!("not OOM: {f}");
    // The request itself must fit the query buffer, which for a tenant is
    // at most its memory limit: fill part of the limit first.
    assert_eq!(t.cmd(&["SET", "filler", &"f".repeat(400 << 10)]), ok());
    let big = "x".repeat(700 << 10);
    assert!(oom(t.cmd(&["SET", "big", &big])));
    assert!(oom(t.cmd(&["SETRANGE", "k", "400000000", "x"])));
    assert!(oom(t.cmd(&["SETBIT", "k", "4294967295", "1"])));
    assert!(oom(t.cmd(&["BITFIELD", "k", "GET", "u8", "0", "SET", "i64", "#67108863", "1"])));
    assert_eq!(nth(t.cmd(&["BITFIELD", "k", "GET", "u8", "4294967200"]), 0), Frame::Integer(0));
    assert_eq!(int(&t.cmd(&["SADD", "src", "m"])), 1);
    assert!(oom(t.cmd(&["SMOVE", "src", &big, "m"])));
    assert_eq!(t.cmd(&["DEL", "filler"]), Frame::Integer(1));
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(t.cmd(&["SET", "filler", &"f".repeat(400 << 10)]), ok());
    assert!(oom(t.cmd(&["RENAME", "k", &big])));
    assert!(oom(t.cmd(&["APPEND", "k", &big])));
    assert!(oom(t.cmd(&["RPUSH", "list", &big])));
    // COPY into another database creates a key there: the key limit holds.
    // k, src and filler: at the key limit.
    assert!(matches!(t.cmd(&["COPY", "k", "k", "DB", "1"]), Frame::Error(e) if e.contains("key limit")));
    assert_eq!(t.cmd(&["DEL", "filler"]), Frame::Integer(1));
    // A set's copy made by SUNIONSTORE counts what it copies: half the
    // limit in one set leaves no room for its copy.
    let members: Vec<String> = (0..2000).map(|i| format!("member-{i:0>250}")).collect();
    let mut sadd = vec!["SADD", "src"];
    sadd.extend(members.iter().map(|m| m.as_str()));
    assert_eq!(int(&t.cmd(&sadd)), 2000);
    assert!(oom(t.cmd(&["SUNIONSTORE", "copy", "src"])));
    let limit = tenant_field(&h, "small", "memory_limit");
    assert!(tenant_field(&h, "small", "memory_used") <= limit);
}

#[test]
fn the_rate_limit_and_state_apply_to_every_command() {
    let h = common::start();
    let mut t = tenant(&h, "chatty", &["OPS", "10"]);
    for cmd in [&["PING"][..], &["ECHO", "x"], &["PUBLISH", "c", "m"], &["INFO"], &["CLIENT", "LIST"], &["COMMAND", "COUNT"]] {
        // Past the burst, each is refused (and the connection paused).
        let refused = (0..40).map(|_| t.cmd(cmd)).filter(|f| matches!(f, Frame::Error(e) if e.contains("rate limit"))).count();
        assert!(refused > 0, "{cmd:?} was never rate limited");
    }
    // MULTI queueing is admitted too: a flood of QUEUEDs is refused as well.
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["TENANT.SUSPEND", "chatty"]), ok());
    let mut s = login(&h, "chatty");
    for cmd in [&["PING"][..], &["PUBLISH", "c", "m"], &["SUBSCRIBE", "c"], &["INFO"], &["CLIENT", "LIST"], &["MULTI"]] {
        assert!(matches!(s.cmd(cmd), Frame::Error(e) if e.contains("suspended")), "{cmd:?}");
    }
}

#[test]
fn failed_auths_are_throttled_per_tenant() {
    let h = common::start();
    drop(tenant(&h, "vault", &[]));
    let mut c = Raw::connect(h.addr);
    let guess = encode([b"AUTH".as_slice(), b"vault", b"guess"].into_iter());
    let start = Instant::now();
    // 25 wrong guesses span at least three one-second windows of ten.
    c.send(&guess.repeat(25));
    for _ in 0..25 {
        assert!(matches!(c.read(), Frame::Error(e) if e.starts_with("WRONGPASS")));
    }
    assert!(start.elapsed() >= Duration::from_secs(1), "25 guesses in {:?}", start.elapsed());
    // The right password still works (once the window allows a check).
    assert_eq!(c.cmd(&["AUTH", "vault", "pw"]), ok());
}

#[test]
fn a_tenant_sees_and_kills_only_its_own_connections() {
    let h = common::start();
    let mut a = tenant(&h, "a", &[]);
    drop(tenant(&h, "b", &[]));
    let mut b = login(&h, "b");
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CLIENT", "SETNAME", "operator"]), ok());
    assert_eq!(admin.cmd(&["TENANT.USE", "a"]), ok());
    let Frame::Integer(admin_id) = admin.cmd(&["CLIENT", "ID"]) else { panic!("id") };
    let Frame::Bulk(list) = a.cmd(&["CLIENT", "LIST"]) else { panic!("list") };
    let list = String::from_utf8(list).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(!list.contains("operator") && list.contains("user=a"), "{list}");
    assert_eq!(int(&a.cmd(&["CLIENT", "KILL", "ID", &admin_id.to_string()])), 0);
    assert_eq!(admin.cmd(&["PING"]), Frame::Simple("PONG".into()));
    // From the global context, USER filters by the tenant a client logged in as.
    let mut global = Raw::connect(h.addr);
    assert_eq!(global.cmd(&["CLIENT", "KILL", "USER", "nobody"]), Frame::Error("ERR No such user 'nobody'".into()));
    assert_eq!(int(&global.cmd(&["CLIENT", "KILL", "USER", "b"])), 1);
    assert!(b.is_closed());
    assert_eq!(a.cmd(&["PING"]), Frame::Simple("PONG".into()));
}

#[test]
fn a_tenants_info_shows_nothing_of_the_server() {
    let h = common::start();
    let mut t = tenant(&h, "quiet", &[]);
    let Frame::Bulk(info) = t.cmd(&["INFO", "all"]) else { panic!("info") };
    let info = String::from_utf8(info).unwrap();
    let field = |name: &str| info_field(&info, name);
    assert_eq!(field("process_id").as_deref(), Some("0"));
    assert_eq!(field("run_id").as_deref(), Some("0000000000000000000000000000000000000000"));
    assert_eq!(field("used_memory_rss"), field("used_memory"));
    assert_eq!(field("rdb_changes_since_last_save").as_deref(), Some("0"));
}

#[test]
fn a_blocked_client_may_keep_pipelining() {
    let h = common::start();
    let mut t = tenant(&h, "jobs", &["OPS", "1000000"]);
    let mut worker = login(&h, "jobs");
    let ping = encode([b"PING".as_slice()].into_iter());
    let mut batch = encode([b"BLPOP".as_slice(), b"q", b"0"].into_iter());
    batch.extend(ping.repeat(10_000)); // 140 KB behind the blocked request
    worker.send(&batch);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(int(&t.cmd(&["RPUSH", "q", "job"])), 1);
    assert_eq!(worker.read(), Frame::Array(vec![bulk("q"), bulk("job")]));
    for _ in 0..10_000 {
        assert_eq!(worker.read(), Frame::Simple("PONG".into()));
    }
}

#[test]
fn lowering_databases_reaches_connections_already_in_a_higher_one() {
    let h = common::start();
    let mut t = tenant(&h, "dbs", &["DATABASES", "4"]);
    assert_eq!(t.cmd(&["SELECT", "3"]), ok());
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(Raw::connect(h.addr).cmd(&["TENANT.UPDATE", "dbs", "DATABASES", "2"]), ok());
    assert!(matches!(t.cmd(&["GET", "k"]), Frame::Error(e) if e.contains("DB index is out of range")));
    assert_eq!(t.cmd(&["SELECT", "1"]), ok());
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Null);
}

#[test]
fn object_freq_reads_the_tenants_own_policy() {
    let h = common::start();
    let mut t = tenant(&h, "lfu", &["EVICTION", "allkeys-lfu"]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    assert!(matches!(t.cmd(&["OBJECT", "FREQ", "k"]), Frame::Integer(_)));
    assert!(matches!(t.cmd(&["OBJECT", "IDLETIME", "k"]), Frame::Error(e) if e.contains("LRU maxmemory policy is not selected")));
}

#[test]
fn an_admins_watch_and_blocking_pop_of_tenant_keys_live_in_the_tenants_space() {
    let h = common::start();
    let mut t = tenant(&h, "x", &[]);
    let mut admin = Raw::connect(h.addr);
    // UNWATCH must remove the watch from the tenant's space: a later write
    // there would otherwise doom an unrelated transaction.
    assert_eq!(admin.cmd(&["WATCH", "__tenant:x:k"]), ok());
    assert_eq!(admin.cmd(&["UNWATCH"]), ok());
    assert_eq!(t.cmd(&["SET", "k", "1"]), ok());
    assert_eq!(admin.cmd(&["MULTI"]), ok());
    assert_eq!(admin.cmd(&["SET", "global", "1"]), Frame::Simple("QUEUED".into()));
    assert_eq!(admin.cmd(&["EXEC"]), Frame::Array(vec![ok()]));
    // A watched tenant key still dooms the EXEC when the tenant writes it.
    assert_eq!(admin.cmd(&["WATCH", "__tenant:x:k"]), ok());
    assert_eq!(t.cmd(&["SET", "k", "2"]), ok());
    assert_eq!(admin.cmd(&["MULTI"]), ok());
    assert_eq!(admin.cmd(&["SET", "global", "2"]), Frame::Simple("QUEUED".into()));
    assert_eq!(admin.cmd(&["EXEC"]), Frame::Null);
    // BLPOP of a tenant's list wakes when the tenant pushes.
    admin.send(&encode([b"BLPOP".as_slice(), b"__tenant:x:q", b"5"].into_iter()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(int(&t.cmd(&["RPUSH", "q", "job"])), 1);
    let start = Instant::now();
    // (Replies name an addressed key as the tenant does, as when the list
    // already had an element.)
    assert_eq!(admin.read(), Frame::Array(vec![bulk("q"), bulk("job")]));
    assert!(start.elapsed() < Duration::from_secs(2), "woke only at the timeout");
}

/// Names a connection holds for its tenant (subscriptions, watched keys):
/// four of 200 KB pass a 1 MB limit at the fourth.
fn held_names_count_against_memory(id: &str, cmd: &str, first_reply_ok: fn(&Frame) -> bool) {
    let h = common::start();
    let mut t = tenant(&h, id, &["MEMORY", "1mb"]);
    let name = |i: usize| format!("{i}{}", "n".repeat(200 << 10));
    let replies: Vec<Frame> = (0..4).map(|i| t.cmd(&[cmd, &name(i)])).collect();
    assert!(first_reply_ok(&replies[0]), "{cmd}: {:?}", replies[0]);
    assert!(matches!(&replies[3], Frame::Error(e) if e.starts_with("OOM")), "{cmd}: {:?}", replies[3]);
    assert!(tenant_field(&h, id, "memory_used") <= 1 << 20);
}

#[test]
fn subscriptions_count_against_the_tenants_memory() {
    held_names_count_against_memory("subs", "SUBSCRIBE", |f| matches!(f, Frame::Array(_)));
}

#[test]
fn watched_keys_count_against_the_tenants_memory() {
    held_names_count_against_memory("watcher", "WATCH", |f| f == &ok());
}

#[test]
fn lcs_holds_its_table_within_the_tenants_memory() {
    let h = common::start();
    let mut t = tenant(&h, "lcs", &["MEMORY", "1mb"]);
    assert_eq!(t.cmd(&["SET", "x", &"ab".repeat(2000)]), ok());
    assert_eq!(t.cmd(&["SET", "y", &"ba".repeat(2000)]), ok());
    // The table of 4,001 x 4,001 cells is 64 MB: far past what the tenant has.
    assert!(matches!(t.cmd(&["LCS", "x", "y"]), Frame::Error(e) if e.contains("Insufficient memory")));
    assert!(matches!(t.cmd(&["LCS", "x", "y", "IDX"]), Frame::Error(e) if e.contains("Insufficient memory")));
    // The length alone needs two rows.
    assert_eq!(int(&t.cmd(&["LCS", "x", "y", "LEN"])), 3999);
}

#[test]
fn one_tenant_holding_its_lock_stops_no_other_tenant() {
    let h = common::start();
    let mut calm = tenant(&h, "calm", &[]);
    let mut busy = tenant(&h, "busy", &[]);
    assert_eq!(int(&busy.cmd(&["SADD", "s1", "a", "b"])), 2);
    assert_eq!(int(&busy.cmd(&["SADD", "s2", "c"])), 1);
    // As a long EXEC, FLUSHALL or set algebra of "busy" would.
    // Two EXECs of a long command: one per worker thread of the test server.
    let mut transactions: Vec<Raw> = (0..2).map(|_| login(&h, "busy")).collect();
    for t in &mut transactions {
        assert_eq!(t.cmd(&["MULTI"]), ok());
        assert_eq!(t.cmd(&["SUNION", "s1", "s2"]), Frame::Simple("QUEUED".into()));
    }
    let tenant_busy = h.state.tenants.get_tenant("busy").unwrap();
    let held = tenant_busy.space.exec_lock.write();
    let marked_busy = tenant_busy.space.offload();
    for t in &mut transactions {
        t.send(&encode([b"EXEC".as_slice()].into_iter()));
    }
    // The operator reaching into the busy tenant waits off the workers too.
    let mut operators: Vec<Raw> = (0..2).map(|_| Raw::connect(h.addr)).collect();
    for o in &mut operators {
        o.send(&encode([b"SCARD".as_slice(), b"__tenant:busy:s1"].into_iter()));
    }
    // Long commands of "busy" wait for its lock off the worker threads (the
    // test server has two): before, they waited on them, and so did everyone.
    let mut waiting: Vec<Raw> = (0..3).map(|_| login(&h, "busy")).collect();
    waiting[0].send(&encode([b"KEYS".as_slice(), b"*"].into_iter()));
    waiting[1].send(&encode([b"SUNIONSTORE".as_slice(), b"d", b"s1", b"s2"].into_iter()));
    waiting[2].send(&encode([b"SINTER".as_slice(), b"s1", b"s2"].into_iter()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(calm.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(calm.cmd(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(calm.cmd(&["KEYS", "*"]).sorted(), Frame::Array(vec![bulk("a"), bulk("b"), bulk("k")]));
    drop(held);
    drop(marked_busy);
    for o in &mut operators {
        assert_eq!(int(&o.read()), 2);
    }
    assert!(matches!(waiting[0].read(), Frame::Array(v) if v.len() >= 2));
    assert_eq!(int(&waiting[1].read()), 3);
    assert_eq!(waiting[2].read(), Frame::Array(vec![]));
    for t in &mut transactions {
        assert!(matches!(nth(t.read(), 0), Frame::Array(v) if v.len() == 3));
    }
}

#[test]
fn sort_reads_only_the_tenants_keys_and_stores_within_its_memory() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["MSET", "w_a", "1", "w_b", "2", "v_a", "global"]), ok());
    let mut t = tenant(&h, "sorter", &["MEMORY", "2mb"]);
    assert_eq!(int(&t.cmd(&["RPUSH", "l", "a", "b"])), 2);
    assert_eq!(t.cmd(&["MSET", "w_a", "9", "w_b", "5", "v_b", "mine"]), ok());
    assert_eq!(t.cmd(&["SORT", "l", "BY", "w_*", "GET", "v_*"]), Frame::Array(vec![bulk("mine"), Frame::Null]));
    // GET of one 600 KB value for each of 20 elements would store 12 MB.
    assert_eq!(t.cmd(&["SET", "big_x", &"x".repeat(600 << 10)]), ok());
    let mut push = vec!["RPUSH", "many"];
    push.extend(std::iter::repeat_n("x", 20));
    assert_eq!(int(&t.cmd(&push)), 20);
    let stored = t.cmd(&["SORT", "many", "BY", "nosort", "GET", "big_*", "STORE", "copy"]);
    assert!(matches!(&stored, Frame::Error(e) if e.starts_with("OOM")), "{stored}");
    assert_eq!(int(&t.cmd(&["EXISTS", "copy"])), 0);
    assert!(tenant_field(&h, "sorter", "memory_used") <= tenant_field(&h, "sorter", "memory_limit"));
}

#[test]
fn a_tenant_tunes_its_own_encoding_parameters_and_nothing_else() {
    let h = common::start();
    let mut a = tenant(&h, "tuner", &[]);
    let mut b = tenant(&h, "other", &[]);
    let get = |c: &mut Raw, name: &str| c.cmd(&["CONFIG", "GET", name]);
    assert_eq!(a.cmd(&["CONFIG", "SET", "hash-max-ziplist-entries", "64", "zset-max-ziplist-value", "32"]), ok());
    assert_eq!(get(&mut a, "hash-max-listpack-entries"), Frame::Array(vec![bulk("hash-max-listpack-entries"), bulk("64")]));
    assert_eq!(get(&mut b, "hash-max-listpack-entries"), Frame::Array(vec![bulk("hash-max-listpack-entries"), bulk("512")]));
    let mut admin = Raw::connect(h.addr);
    assert_eq!(get(&mut admin, "zset-max-listpack-value"), Frame::Array(vec![bulk("zset-max-listpack-value"), bulk("64")]));
    // The server's own settings stay the operator's: neither set nor shown.
    assert!(matches!(a.cmd(&["CONFIG", "SET", "maxmemory", "1"]), Frame::Error(e) if e.starts_with("NOPERM")));
    assert!(
        matches!(a.cmd(&["CONFIG", "SET", "hash-max-ziplist-entries", "1", "maxmemory", "1"]), Frame::Error(e) if e.starts_with("NOPERM"))
    );
    assert_eq!(get(&mut a, "maxmemory"), Frame::Array(vec![]));
    assert!(matches!(a.cmd(&["CONFIG", "RESETSTAT"]), Frame::Error(e) if e.starts_with("NOPERM")));
    assert_eq!(get(&mut a, "hash-max-listpack-entries"), Frame::Array(vec![bulk("hash-max-listpack-entries"), bulk("64")]));
}

#[test]
fn a_tenants_streams_and_their_groups_count_against_its_memory() {
    let h = common::start();
    let mut t = tenant(&h, "streamer", &["MEMORY", "1mb"]);
    let value = "v".repeat(1000);
    let mut refused = false;
    for i in 1..5000 {
        match t.cmd(&["XADD", "s", &format!("{i}-0"), "f", &value]) {
            Frame::Bulk(_) => {}
            Frame::Error(e) if e.starts_with("OOM") => {
                refused = true;
                break;
            }
            other => panic!("{other}"),
        }
    }
    assert!(refused, "the stream stopped at the tenant's limit");
    let used = tenant_field(&h, "streamer", "memory_used");
    assert!(used <= tenant_field(&h, "streamer", "memory_limit"));
    // Trimming gives the memory back.
    assert!(int(&t.cmd(&["XTRIM", "s", "MAXLEN", "0"])) > 500);
    assert!(tenant_field(&h, "streamer", "memory_used") < used / 4);
}
