//! Wire behaviour on malformed and hostile input, byte for byte as Redis 7.0
//! (see shared/reference/redis-protocol-and-errors.md).

mod common;

use common::{Raw, bulk, err, start, start_with};
use ferrite::protocol::Frame;

fn pong() -> Frame {
    Frame::Simple("PONG".into())
}

#[test]
fn ignored_requests_keep_the_connection_open() {
    let h = start();
    for input in [&b"\r\n"[..], b"*-10\r\n", b"*0\r\n"] {
        let mut c = Raw::connect(h.addr);
        c.send(input);
        c.send(b"PING\r\n");
        assert_eq!(c.read(), pong(), "after {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn protocol_errors_reply_then_close() {
    let h = start();
    let big_count = format!("*{}\r\n", "1".repeat(70 * 1024));
    let big_bulk = format!("*1\r\n${}\r\n", "1".repeat(70 * 1024));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"*3000000000\r\n".to_vec(), "ERR Protocol error: invalid multibulk length"),
        (b"*abc\r\n".to_vec(), "ERR Protocol error: invalid multibulk length"),
        (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n".to_vec(), "ERR Protocol error: expected '$', got 'f'"),
        (b"*1\r\n$-10\r\n".to_vec(), "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$blabla\r\n".to_vec(), "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$536870913\r\n".to_vec(), "ERR Protocol error: invalid bulk length"),
        (b"set \"foo bar\r\n".to_vec(), "ERR Protocol error: unbalanced quotes in request"),
        (vec![b'a'; 70 * 1024], "ERR Protocol error: too big inline request"),
        (big_count.into_bytes(), "ERR Protocol error: invalid multibulk length"),
        (big_bulk.into_bytes(), "ERR Protocol error: invalid bulk length"),
    ];
    for (input, expected) in cases {
        let mut c = Raw::connect(h.addr);
        c.send(&input);
        assert_eq!(c.read(), err(expected));
        assert!(c.is_closed(), "closed after {expected}");
    }
}

#[test]
fn count_lines_over_64k_without_newline() {
    let h = start();
    for (prefix, expected) in
        [(b'*', "ERR Protocol error: too big mbulk count string"), (b'$', "ERR Protocol error: too big bulk count string")]
    {
        let mut c = Raw::connect(h.addr);
        let mut input = if prefix == b'*' { b"*".to_vec() } else { b"*1\r\n$".to_vec() };
        input.extend(std::iter::repeat_n(b'1', 70 * 1024));
        c.send(&input);
        assert_eq!(c.read(), err(expected));
        assert!(c.is_closed());
    }
}

#[test]
fn inline_commands_and_lf_only() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    c.send(b"PING\n");
    assert_eq!(c.read(), pong());
    c.send(b"set k \"a b\"\r\nget k\r\n");
    assert_eq!(c.read(), Frame::Simple("OK".into()));
    assert_eq!(c.read(), bulk("a b"));
}

#[test]
fn pipelined_batch_and_large_arguments() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    let big = "x".repeat(3 * 1024 * 1024);
    let mut batch = Vec::new();
    batch.extend(common::encode([&b"SET"[..], b"big", big.as_bytes()].into_iter()));
    for i in 0..100 {
        batch.extend(common::encode([&b"INCR"[..], b"n"].into_iter()));
        let _ = i;
    }
    batch.extend(common::encode([&b"STRLEN"[..], b"big"].into_iter()));
    c.send(&batch);
    assert_eq!(c.read(), Frame::Simple("OK".into()));
    for i in 1..=100 {
        assert_eq!(c.read(), Frame::Integer(i));
    }
    assert_eq!(c.read(), Frame::Integer(big.len() as i64));
}

#[test]
fn unauthenticated_limits_when_a_password_is_set() {
    let mut cfg = common::config();
    cfg.server.requirepass = Some("secret".into());
    let h = start_with(cfg);
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["GET", "k"]), err("NOAUTH Authentication required."));
    let eleven: Vec<&str> = std::iter::repeat_n("x", 11).collect();
    c.send(&common::encode(eleven.iter().map(|s| s.as_bytes())));
    assert_eq!(c.read(), err("ERR Protocol error: unauthenticated multibulk length"));
    assert!(c.is_closed());
    let mut c = Raw::connect(h.addr);
    let long = "y".repeat(16385);
    c.send(&common::encode([&b"AUTH"[..], long.as_bytes()].into_iter()));
    assert_eq!(c.read(), err("ERR Protocol error: unauthenticated bulk length"));
    assert!(c.is_closed());
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["AUTH", "wrong"]), err("WRONGPASS invalid username-password pair or user is disabled."));
    assert_eq!(c.cmd(&["AUTH", "secret"]), Frame::Simple("OK".into()));
    let ok_long = "z".repeat(20000);
    assert_eq!(c.cmd(&["SET", "k", &ok_long]), Frame::Simple("OK".into()));
}

#[test]
fn query_buffer_limit_closes_without_reply() {
    let mut cfg = common::config();
    cfg.server.client_query_buffer_limit = 1024 * 1024;
    let h = start_with(cfg);
    let mut c = Raw::connect(h.addr);
    let header = format!("*1\r\n${}\r\n", 4 * 1024 * 1024);
    c.send(header.as_bytes());
    let chunk = vec![b'a'; 256 * 1024];
    let mut closed = false;
    for _ in 0..16 {
        if std::io::Write::write_all(&mut c.stream, &chunk).is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed || c.try_read().is_none(), "no reply, connection closed");
}

#[test]
fn max_clients_is_refused_with_the_redis_error() {
    let mut cfg = common::config();
    cfg.server.maxclients = 1;
    let h = start_with(cfg);
    let mut first = Raw::connect(h.addr);
    assert_eq!(first.cmd(&["PING"]), pong());
    let mut second = Raw::connect(h.addr);
    assert_eq!(second.read(), err("ERR max number of clients reached"));
}

#[test]
fn hello_switches_protocol() {
    let h = start();
    let mut c = Raw::connect(h.addr);
    assert_eq!(c.cmd(&["HELLO", "4"]), err("NOPROTO unsupported protocol version"));
    let Frame::Map(m) = c.cmd(&["HELLO", "3"]) else { panic!("map") };
    assert!(m.contains(&(bulk("proto"), Frame::Integer(3))));
    assert_eq!(c.cmd(&["GET", "missing"]), Frame::Null);
    c.cmd(&["HSET", "h", "a", "1"]);
    assert_eq!(c.cmd(&["HGETALL", "h"]), Frame::Map(vec![(bulk("a"), bulk("1"))]));
    c.cmd(&["ZADD", "z", "1.5", "m"]);
    assert_eq!(c.cmd(&["ZSCORE", "z", "m"]), Frame::Double("1.5".into()));
}
