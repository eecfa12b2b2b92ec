//! TENANT.MIGRATE between two servers (issue 15): the tenant arrives whole,
//! its clients connected to the source go on through it without an error
//! (each acknowledged write is on the target), subscribers keep hearing
//! their channels, new connections to the source are forwarded, and a
//! failed move leaves the tenant where it was.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use common::{Raw, login, ok, tenant};
use ferrite::protocol::Frame;

fn field(map: &Frame, name: &str) -> Option<Frame> {
    match map {
        Frame::Map(m) => m.iter().find(|(k, _)| *k == Frame::Bulk(name.as_bytes().to_vec())).map(|(_, v)| v.clone()),
        Frame::Array(v) => v.chunks(2).find(|p| p[0] == Frame::Bulk(name.as_bytes().to_vec())).map(|p| p[1].clone()),
        _ => None,
    }
}

/// Between nodes on one machine the old node hands each client's socket to
/// the new one; addressed by name (as between machines) it relays.
#[test]
fn a_tenant_moves_while_its_clients_work_through_the_source() {
    clients_work_through_a_move(true);
}

#[test]
fn a_tenant_moves_while_its_clients_work_through_the_source_relayed() {
    clients_work_through_a_move(false);
}

/// The target as TENANT.MIGRATE names it: its loopback address (the
/// socket handover applies) or by host name (the old node relays).
fn target_of(b: &ferrite::server::ServerHandle, handover: bool) -> String {
    if handover { b.addr.to_string() } else { format!("localhost:{}", b.addr.port()) }
}

/// Whether the new node serves a client on a socket the old node handed it
/// (its connection's local address is the old node's).
fn handed_over(b: &ferrite::server::ServerHandle, a: &ferrite::server::ServerHandle) -> bool {
    Raw::connect(b.addr).cmd(&["CLIENT", "LIST"]).to_string().contains(&format!("laddr={}", a.addr))
}

fn clients_work_through_a_move(handover: bool) {
    let a = common::start();
    let b = common::start();
    let mut t = tenant(&a, "acme", &["OPS", "1000000"]);
    for i in 0..1000 {
        assert_eq!(t.cmd(&["SET", &format!("k{i}"), &i.to_string()]), ok());
    }
    assert_eq!(t.cmd(&["SELECT", "2"]), ok());
    assert_eq!(t.cmd(&["SET", "in-db-2", "yes"]), ok());
    // A subscriber and a writer, both connected to the source.
    let mut sub = login(&a, "acme");
    sub.cmd(&["SUBSCRIBE", "news"]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (addr, stop, acked) = (a.addr, stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut w = Raw::connect(addr);
            assert_eq!(w.cmd(&["AUTH", "acme", "pw"]), ok());
            while !stop.load(SeqCst) {
                match w.cmd(&["INCR", "counter"]) {
                    Frame::Integer(n) => acked.store(n as u64, SeqCst),
                    other => panic!("a client saw {other}"),
                }
            }
        })
    };
    // A RESP3 client that asked to hear of moves.
    let mut smart = login(&a, "acme");
    assert!(matches!(smart.cmd(&["HELLO", "3"]), Frame::Map(_)));
    assert_eq!(smart.cmd(&["CLIENT", "MAINT_NOTIFICATIONS", "ON"]), ok());
    std::thread::sleep(Duration::from_millis(100));
    let target = target_of(&b, handover);
    let report = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &target]);
    let moving =
        Frame::Push(vec![Frame::Bulk(b"MOVING".to_vec()), Frame::Integer(1), Frame::Integer(0), Frame::Bulk(target.clone().into_bytes())]);
    assert_eq!(smart.read(), moving);
    assert_eq!(smart.cmd(&["GET", "k1"]), Frame::Bulk(b"1".to_vec()), "and it still works through the old node");
    assert_eq!(field(&report, "keys"), Some(Frame::Integer(1002)), "{report}");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, SeqCst);
    writer.join().expect("the writer never saw an error");
    // Every acknowledged INCR is on the target.
    let mut direct = login(&b, "acme");
    let Frame::Bulk(n) = direct.cmd(&["GET", "counter"]) else { panic!("a counter") };
    assert_eq!(String::from_utf8(n).unwrap().parse::<u64>().unwrap(), acked.load(SeqCst));
    assert_eq!(direct.cmd(&["GET", "k999"]), Frame::Bulk(b"999".to_vec()));
    // The connection that was in database 2 still is, through the source.
    assert_eq!(t.cmd(&["GET", "in-db-2"]), Frame::Bulk(b"yes".to_vec()));
    // The subscriber hears a message published on the target.
    assert_eq!(direct.cmd(&["PUBLISH", "news", "moved"]), Frame::Integer(1));
    assert_eq!(
        sub.read(),
        Frame::Array(vec![Frame::Bulk(b"message".to_vec()), Frame::Bulk(b"news".to_vec()), Frame::Bulk(b"moved".to_vec())])
    );
    // A new connection to the source is forwarded too.
    let mut late = login(&a, "acme");
    assert_eq!(late.cmd(&["GET", "k1"]), Frame::Bulk(b"1".to_vec()));
    // The source says where it went and holds none of its data.
    let info = Raw::connect(a.addr).cmd(&["TENANT.INFO", "acme"]);
    assert_eq!(field(&info, "moved_to"), Some(Frame::Bulk(target.into_bytes())));
    assert_eq!(field(&info, "keys"), Some(Frame::Integer(0)));
    assert_eq!(handed_over(&b, &a), handover, "{}", Raw::connect(b.addr).cmd(&["CLIENT", "LIST"]));
    if handover {
        // The old node is out of the way: its clients go on without it.
        drop(a);
        assert_eq!(late.cmd(&["GET", "k1"]), Frame::Bulk(b"1".to_vec()));
        assert_eq!(t.cmd(&["GET", "in-db-2"]), Frame::Bulk(b"yes".to_vec()));
    }
}

#[test]
fn a_move_to_nowhere_leaves_the_tenant_working_here() {
    let a = common::start();
    let mut t = tenant(&a, "acme", &[]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let nowhere = format!("127.0.0.1:{}", common::free_port());
    let Frame::Error(e) = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &nowhere, "TIMEOUT", "500"]) else { panic!("fails") };
    assert!(e.contains("'connect'"), "{e}");
    assert_eq!(t.cmd(&["SET", "k", "w"]), ok(), "writes go on here");
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Bulk(b"w".to_vec()));
}

#[test]
fn a_move_the_target_refuses_leaves_the_tenant_whole() {
    let a = common::start();
    let b = common::start();
    let mut t = tenant(&a, "acme", &[]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    // The target already has a tenant of that id.
    let _other = tenant(&b, "acme", &[]);
    let Frame::Error(e) = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &b.addr.to_string()]) else { panic!("fails") };
    assert!(e.contains("'copy'") && e.contains("already exists"), "{e}");
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()));
    assert_eq!(t.cmd(&["SET", "k", "w"]), ok());
}

fn data_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrite-migration-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn persistent(dir: &std::path::Path) -> ferrite::server::ServerHandle {
    let mut c = common::config();
    c.persistence.appendonly = true;
    c.persistence.dir = dir.into();
    ferrite::server::start_background(c).expect("server starts")
}

/// With the log on, the move streams the writes made during the copy and
/// holds writes only for the last of them; afterwards the target has the
/// tenant durably and the source, restarted, no longer has it.
#[test]
fn with_the_log_on_writes_go_on_during_the_copy_and_the_move_is_durable() {
    let (da, db) = (data_dir("a"), data_dir("b"));
    let mut a = persistent(&da);
    let mut b = persistent(&db);
    let mut t = tenant(&a, "acme", &["OPS", "1000000", "MEMORY", "200mb", "KEYS", "1000000"]);
    let value = "v".repeat(100);
    let mut batch = Vec::new();
    for i in 0..100_000 {
        batch.extend(common::encode([b"SET".as_slice(), format!("k{i}").as_bytes(), value.as_bytes()].into_iter()));
    }
    t.send(&batch);
    for _ in 0..100_000 {
        assert_eq!(t.read(), ok());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (addr, stop, acked) = (a.addr, stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut w = login_at(addr);
            let mut listed = 0;
            while !stop.load(SeqCst) {
                match w.cmd(&["RPUSH", "log", "x"]) {
                    Frame::Integer(n) => {
                        listed = n as u64;
                        acked.store(listed, SeqCst);
                    }
                    other => panic!("a client saw {other}"),
                }
            }
            listed
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let report = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &b.addr.to_string()]);
    eprintln!("move: {report}");
    let Some(Frame::Integer(pause)) = field(&report, "write_pause_ms") else { panic!("{report}") };
    let Some(Frame::Integer(took)) = field(&report, "duration_ms") else { panic!("{report}") };
    assert!(pause < took || took == 0, "writes waited only for the end: {report}");
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, SeqCst);
    let listed = writer.join().expect("the writer never saw an error");
    let mut direct = login(&b, "acme");
    assert_eq!(direct.cmd(&["LLEN", "log"]), Frame::Integer(listed as i64), "every acknowledged RPUSH is there");
    assert_eq!(direct.cmd(&["DBSIZE"]), Frame::Integer(100_001));
    // Restarts. The source, compacted (its snapshot must not hold the
    // tenant as its own) and restarted, still forwards the tenant's
    // connections; the target keeps it.
    compact(a.addr);
    a.shutdown();
    let a = persistent(&da);
    let info = Raw::connect(a.addr).cmd(&["TENANT.INFO", "acme"]);
    assert_eq!(field(&info, "state"), Some(Frame::Bulk(b"moved".to_vec())), "{info}");
    assert_eq!(field(&info, "moved_to"), Some(Frame::Bulk(b.addr.to_string().into_bytes())), "{info}");
    assert_eq!(login_at(a.addr).cmd(&["LLEN", "log"]), Frame::Integer(listed as i64), "forwarded after a restart");
    b.shutdown();
    let b = persistent(&db);
    let mut again = login(&b, "acme");
    assert_eq!(again.cmd(&["LLEN", "log"]), Frame::Integer(listed as i64));
    assert_eq!(again.cmd(&["GET", "k99999"]), Frame::Bulk(value.into_bytes()));
    drop(a);
    let _ = (std::fs::remove_dir_all(&da), std::fs::remove_dir_all(&db));
}

/// BGREWRITEAOF, waited for.
fn compact(addr: std::net::SocketAddr) {
    let mut c = Raw::connect(addr);
    assert_eq!(c.cmd(&["BGREWRITEAOF"]), Frame::Simple("Background append only file rewriting started".into()));
    while c.cmd(&["INFO", "persistence"]).to_string().contains("aof_rewrite_in_progress:1") {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A target that restarts before the move commits does not come back as
/// the tenant's owner (its source still is): the copy it was importing,
/// logged or compacted, is discarded, for good.
#[test]
fn an_import_never_committed_is_discarded_when_the_target_restarts() {
    for compacted in [false, true] {
        let a = common::start();
        let db = data_dir(if compacted { "uncommitted-compacted" } else { "uncommitted" });
        let mut b = persistent(&db);
        let mut t = tenant(&a, "acme", &[]);
        assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
        let source = a.state.tenants.get_tenant("acme").unwrap();
        let imported = ferrite::persist::transfer::import(&b.state, &ferrite::persist::transfer::export(&a.state, &source));
        assert!(imported.is_ok_and(|t| t.importing.load(SeqCst)));
        if compacted {
            compact(b.addr);
        }
        for _ in 0..2 {
            b.shutdown();
            b = persistent(&db);
            assert!(b.state.tenants.get_tenant("acme").is_err(), "compacted: {compacted}");
        }
        drop(b);
        let _ = std::fs::remove_dir_all(&db);
    }
}

fn login_at(addr: std::net::SocketAddr) -> Raw {
    let mut w = Raw::connect(addr);
    assert_eq!(w.cmd(&["AUTH", "acme", "pw"]), ok());
    w
}

/// A client blocked in BLPOP and one in the middle of MULTI when the
/// tenant moves both finish on the new node, through the old one.
#[test]
fn a_blocked_pop_and_an_open_transaction_continue_on_the_new_node() {
    blocked_pop_and_transaction_through_a_move(true);
}

#[test]
fn a_blocked_pop_and_an_open_transaction_continue_on_the_new_node_relayed() {
    blocked_pop_and_transaction_through_a_move(false);
}

fn blocked_pop_and_transaction_through_a_move(handover: bool) {
    let a = common::start();
    let b = common::start();
    let mut t = tenant(&a, "acme", &["OPS", "1000000"]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let mut blocked = login(&a, "acme");
    blocked.send(&common::encode([b"BLPOP".as_slice(), b"queue", b"30"].into_iter()));
    let mut tx = login(&a, "acme");
    assert_eq!(tx.cmd(&["MULTI"]), ok());
    assert_eq!(tx.cmd(&["INCR", "n"]), Frame::Simple("QUEUED".into()));
    std::thread::sleep(Duration::from_millis(100));
    let report = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &target_of(&b, handover)]);
    assert!(field(&report, "keys").is_some(), "{report}");
    assert_eq!(tx.cmd(&["INCR", "n"]), Frame::Simple("QUEUED".into()));
    assert_eq!(tx.cmd(&["EXEC"]), Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)]));
    let mut direct = login(&b, "acme");
    assert_eq!(direct.cmd(&["RPUSH", "queue", "job"]), Frame::Integer(1));
    assert_eq!(blocked.read(), Frame::Array(vec![Frame::Bulk(b"queue".to_vec()), Frame::Bulk(b"job".to_vec())]));
    assert_eq!(direct.cmd(&["GET", "n"]), Frame::Bulk(b"2".to_vec()));
    assert_eq!(handed_over(&b, &a), handover);
}

/// A tenant moved away can be moved back.
#[test]
fn a_tenant_moves_there_and_back() {
    let a = common::start();
    let b = common::start();
    let mut t = tenant(&a, "acme", &[]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let there = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &b.addr.to_string()]);
    assert!(field(&there, "keys").is_some(), "{there}");
    let back = Raw::connect(b.addr).cmd(&["TENANT.MIGRATE", "acme", &a.addr.to_string()]);
    assert!(field(&back, "keys").is_some(), "{back}");
    assert_eq!(login(&a, "acme").cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()));
}

/// A stand-in target node: answers TENANT.IMPORT's copy with OK after
/// `import_delay`, each TENANT.APPLY with 1 after `apply_delay`, COMMIT and
/// ABORT with OK; returns the requests' names it saw when the source hangs up.
fn fake_target(import_delay: Duration, apply_delay: Duration) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    dying_target(import_delay, apply_delay, None)
}

/// [`fake_target`] that dies (closes the connection without a reply) on
/// the first request whose name (or IMPORT's COMMIT/ABORT) is `die_at`.
fn dying_target(
    import_delay: Duration,
    apply_delay: Duration,
    die_at: Option<&'static str>,
) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut seen = Vec::new();
        let line = |r: &mut BufReader<std::net::TcpStream>| -> Option<String> {
            let mut l = String::new();
            (r.read_line(&mut l).ok()? > 0).then(|| l.trim_end().to_string())
        };
        while let Some(head) = line(&mut r) {
            let n: usize = head[1..].parse().unwrap();
            let mut args = Vec::new();
            for _ in 0..n {
                let len: usize = line(&mut r).unwrap()[1..].parse().unwrap();
                let mut buf = vec![0; len + 2];
                r.read_exact(&mut buf).unwrap();
                buf.truncate(len);
                args.push(buf);
            }
            let name = String::from_utf8_lossy(&args[0]).to_uppercase();
            let reply: &[u8] = match (name.as_str(), args.len()) {
                ("TENANT.IMPORT", 2) => {
                    std::thread::sleep(import_delay);
                    b"+OK\r\n"
                }
                ("TENANT.APPLY", _) => {
                    std::thread::sleep(apply_delay);
                    b":1\r\n"
                }
                _ => b"+OK\r\n",
            };
            let what = if args.len() == 3 && name == "TENANT.IMPORT" { String::from_utf8_lossy(&args[2]).to_uppercase() } else { name };
            if die_at == Some(what.as_str()) {
                seen.push(format!("died at {what}"));
                break;
            }
            seen.push(what);
            if out.write_all(reply).is_err() {
                break;
            }
        }
        seen
    });
    (addr, handle)
}

#[test]
fn a_move_in_progress_shows_its_phase_and_abort_stops_it() {
    let a = common::start();
    let mut t = tenant(&a, "acme", &[]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let (target, seen) = fake_target(Duration::from_secs(30), Duration::ZERO);
    let mut admin = Raw::connect(a.addr);
    admin.send(&common::encode([b"TENANT.MIGRATE".as_slice(), b"acme", target.to_string().as_bytes()].into_iter()));
    let mut info = Raw::connect(a.addr);
    let mut phase = None;
    for _ in 0..200 {
        let i = info.cmd(&["TENANT.INFO", "acme"]);
        if field(&i, "migration_phase") == Some(Frame::Bulk(b"copy".to_vec())) {
            assert_eq!(field(&i, "state"), Some(Frame::Bulk(b"migrating".to_vec())));
            assert_eq!(field(&i, "migration_to"), Some(Frame::Bulk(target.to_string().into_bytes())));
            phase = Some(i);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(phase.is_some(), "the move reached its copy");
    assert_eq!(info.cmd(&["TENANT.MIGRATE", "acme", "ABORT"]), ok());
    let Frame::Error(e) = admin.read() else { panic!("the move fails") };
    assert!(e.contains("'copy'") && e.contains("aborted"), "{e}");
    // The tenant is active here again, writes included, and nothing moves.
    let i = info.cmd(&["TENANT.INFO", "acme"]);
    assert_eq!(field(&i, "state"), Some(Frame::Bulk(b"active".to_vec())));
    assert_eq!(t.cmd(&["SET", "k", "w"]), ok());
    assert_eq!(info.cmd(&["TENANT.MIGRATE", "acme", "ABORT"]), Frame::Error("ERR no move of tenant 'acme' is in progress".into()));
    drop(admin);
    let _ = seen;
}

/// MAXPAUSE: when the last writes take longer to cross than allowed, the
/// move is abandoned and the target told to discard its copy.
#[test]
fn a_move_whose_pause_would_pass_maxpause_is_abandoned() {
    let da = data_dir("maxpause");
    let a = persistent(&da);
    let mut t = tenant(&a, "acme", &["OPS", "1000000"]);
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addr, stop) = (a.addr, stop.clone());
        std::thread::spawn(move || {
            let mut w = login_at(addr);
            while !stop.load(SeqCst) {
                assert!(matches!(w.cmd(&["INCR", "n"]), Frame::Integer(_)));
            }
        })
    };
    // Writes go on all along: the copy's import takes a while, so the tap
    // has writes for every round, and each round takes 300 ms to apply.
    let mut probe = login(&a, "acme");
    while !matches!(probe.cmd(&["GET", "n"]), Frame::Bulk(n) if n.len() > 2) {}
    let (target, seen) = fake_target(Duration::from_millis(200), Duration::from_millis(300));
    let reply = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &target.to_string(), "MAXPAUSE", "100"]);
    stop.store(true, SeqCst);
    writer.join().unwrap();
    let Frame::Error(e) = reply else { panic!("abandoned: {reply}") };
    assert!(e.contains("MAXPAUSE"), "{e}");
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()), "still here");
    assert_eq!(t.cmd(&["SET", "k", "w"]), ok());
    let seen = seen.join().unwrap();
    assert!(seen.contains(&"ABORT".to_string()) && !seen.contains(&"COMMIT".to_string()), "{seen:?}");
    let _ = std::fs::remove_dir_all(&da);
}

/// The target dies at each step of a move in turn: every time the move
/// fails naming that step, and the tenant stays whole on the source, every
/// acknowledged write included, and takes writes again.
#[test]
fn a_target_dying_at_any_step_leaves_the_tenant_whole_on_the_source() {
    for (die_at, phase) in [("TENANT.IMPORT", "copy"), ("TENANT.APPLY", "catch-up"), ("COMMIT", "commit")] {
        let dir = data_dir(&format!("die-{phase}"));
        let a = persistent(&dir);
        let mut t = tenant(&a, "acme", &["OPS", "1000000"]);
        for i in 0..100 {
            assert_eq!(t.cmd(&["SET", &format!("k{i}"), "v"]), ok());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let writer = {
            let (addr, stop, acked) = (a.addr, stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut w = login_at(addr);
                while !stop.load(SeqCst) {
                    match w.cmd(&["INCR", "n"]) {
                        Frame::Integer(n) => acked.store(n as u64, SeqCst),
                        other => panic!("a client saw {other}"),
                    }
                }
            })
        };
        let mut probe = login(&a, "acme");
        while !matches!(probe.cmd(&["GET", "n"]), Frame::Bulk(n) if n.len() > 2) {}
        let (target, seen) = dying_target(Duration::from_millis(100), Duration::from_millis(50), Some(die_at));
        let reply = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &target.to_string(), "TIMEOUT", "5000"]);
        let Frame::Error(e) = reply else { panic!("{die_at}: the move fails: {reply}") };
        assert!(e.contains(&format!("'{phase}'")), "{die_at}: {e}");
        let seen = seen.join().unwrap();
        assert!(seen.last().is_some_and(|l| l.contains(die_at)), "{seen:?}");
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, SeqCst);
        writer.join().expect("the writer never saw an error");
        let Frame::Bulk(n) = probe.cmd(&["GET", "n"]) else { panic!() };
        assert_eq!(String::from_utf8(n).unwrap().parse::<u64>().unwrap(), acked.load(SeqCst), "{die_at}");
        assert_eq!(probe.cmd(&["DBSIZE"]), Frame::Integer(101), "{die_at}");
        assert_eq!(probe.cmd(&["INCR", "n"]), Frame::Integer(acked.load(SeqCst) as i64 + 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Nodes that share a `[cluster] secret` move tenants without knowing each
/// other's admin password, and forward with it too.
#[test]
fn nodes_sharing_a_cluster_secret_move_tenants_between_them() {
    let node = |requirepass: &str| {
        let mut c = common::config();
        c.server.requirepass = Some(requirepass.into());
        c.cluster.secret = Some("shared".into());
        ferrite::server::start_background(c).expect("server starts")
    };
    let (a, b) = (node("admin-a"), node("admin-b"));
    let mut admin = Raw::connect(a.addr);
    assert_eq!(admin.cmd(&["AUTH", "admin-a"]), ok());
    assert_eq!(admin.cmd(&["TENANT.CREATE", "acme", "PASSWORD", "pw"]), ok());
    let mut t = login(&a, "acme");
    assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
    let report = admin.cmd(&["TENANT.MIGRATE", "acme", &b.addr.to_string()]);
    assert!(field(&report, "keys").is_some(), "{report}");
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()), "forwarded with the secret");
    // The secret is an admin password on each node; a wrong one is not.
    assert_eq!(Raw::connect(b.addr).cmd(&["AUTH", "shared"]), ok());
    assert!(matches!(Raw::connect(b.addr).cmd(&["AUTH", "nope"]), Frame::Error(_)));
}

/// The socket handover takes a client only from someone who knows the
/// node's admin password, and only into a state bound to an existing
/// tenant; refused, the descriptor is closed there and the client untouched.
#[test]
fn a_socket_handover_needs_the_admin_password_and_a_tenant() {
    use sendfd::SendWithFd;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::linux::net::SocketAddrExt;
    let mut c = common::config();
    c.server.requirepass = Some("admin-pw".into());
    let b = ferrite::server::start_background(c).expect("server starts");
    let mut admin = Raw::connect(b.addr);
    assert_eq!(admin.cmd(&["AUTH", "admin-pw"]), ok());
    assert_eq!(admin.cmd(&["TENANT.CREATE", "acme", "PASSWORD", "pw"]), ok());
    let hand = |pass: &str, tenant: &str, client: &std::net::TcpStream| -> u8 {
        let name = ferrite::server::handover::name_for(b.addr.port());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let mut unix = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
        let setup = common::encode([b"TENANT.BIND".as_slice(), tenant.as_bytes()].into_iter());
        let mut w = ferrite_policy_abi::Writer::with_capacity(64);
        w.str(pass).str(tenant).bytes(&setup).bytes(b"");
        let mut message = (w.buf.len() as u32).to_le_bytes().to_vec();
        message.extend_from_slice(&w.buf);
        let sent = unix.send_with_fd(&message, &[client.as_raw_fd()]).unwrap();
        unix.write_all(&message[sent..]).unwrap();
        let mut answer = [0u8];
        unix.read_exact(&mut answer).unwrap();
        answer[0]
    };
    // A client of a stand-in old node, whose end of the connection is
    // handed over (and then let go of, as the old node does).
    let old_node = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = Raw::connect(old_node.local_addr().unwrap());
    let (served, _) = old_node.accept().unwrap();
    assert_eq!(hand("wrong", "acme", &served), b'-', "a wrong password");
    assert_eq!(hand("admin-pw", "nobody", &served), b'-', "no such tenant");
    assert_eq!(hand("admin-pw", "acme", &served), b'+');
    drop(served);
    // Now served by the node as the tenant, without having authenticated.
    assert_eq!(client.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(login(&b, "acme").cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()));
}
