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

#[test]
fn a_tenant_moves_while_its_clients_work_through_the_source() {
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
    std::thread::sleep(Duration::from_millis(100));
    let target = b.addr.to_string();
    let report = Raw::connect(a.addr).cmd(&["TENANT.MIGRATE", "acme", &target]);
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
    assert!(e.contains("'import'") && e.contains("already exists"), "{e}");
    assert_eq!(t.cmd(&["GET", "k"]), Frame::Bulk(b"v".to_vec()));
    assert_eq!(t.cmd(&["SET", "k", "w"]), ok());
}
