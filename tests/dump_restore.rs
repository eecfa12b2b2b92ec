//! DUMP and RESTORE between redis-server 7.0 and Ferrite, both ways, for
//! every type and encoding; a tenant restoring a value bigger than its
//! memory; and mutated payloads over the wire.

mod common;

use common::{Raw, RedisServer, encode, ok};
use ferrite::protocol::Frame;
use ferrite::store::Value;
use ferrite::store::dump;

fn call(c: &mut Raw, args: &[&[u8]]) -> Frame {
    c.send(&encode(args.iter().copied()));
    c.read()
}

fn cmd(c: &mut Raw, line: &str) -> Frame {
    c.cmd(&line.split(' ').collect::<Vec<_>>())
}

/// One command with many members: `prefix` then `member(i)` split on spaces.
fn many(c: &mut Raw, prefix: &str, n: usize, member: impl Fn(usize) -> String) -> Frame {
    let mut args: Vec<Vec<u8>> = prefix.split(' ').map(|s| s.as_bytes().to_vec()).collect();
    for i in 0..n {
        args.extend(member(i).split(' ').map(|s| s.as_bytes().to_vec()));
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    call(c, &refs)
}

fn bulk_bytes(f: Frame) -> Vec<u8> {
    match f {
        Frame::Bulk(b) => b,
        other => panic!("bulk: {other}"),
    }
}

/// A key built on redis-server, and the reads that must agree wherever it
/// goes (`!` first: compare sorted).
struct Case {
    key: &'static str,
    build: fn(&mut Raw),
    probes: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case { key: "s:int", build: |c| assert_eq!(cmd(c, "SET s:int 12345"), ok()), probes: &["GET", "STRLEN"] },
        Case { key: "s:big-int", build: |c| assert_eq!(cmd(c, "SET s:big-int -9223372036854775808"), ok()), probes: &["GET"] },
        Case { key: "s:emb", build: |c| assert_eq!(cmd(c, "SET s:emb hello"), ok()), probes: &["GET"] },
        Case {
            key: "s:raw",
            build: |c| {
                let v: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
                assert_eq!(call(c, &[b"SET", b"s:raw", &v]), ok());
            },
            probes: &["GET", "STRLEN"],
        },
        Case { key: "s:lzf", build: |c| assert_eq!(cmd(c, &format!("SET s:lzf {}", "abc".repeat(3000))), ok()), probes: &["GET"] },
        Case {
            key: "l:small",
            build: |c| assert_eq!(cmd(c, "RPUSH l:small a bb 1 -100 1000000"), Frame::Integer(5)),
            probes: &["LRANGE 0 -1"],
        },
        Case {
            key: "l:big",
            build: |c| assert_eq!(many(c, "RPUSH l:big", 5000, |i| format!("item:{i}:{}", "x".repeat(i % 50))), Frame::Integer(5000)),
            probes: &["LLEN", "LRANGE 0 -1"],
        },
        Case {
            key: "h:small",
            build: |c| assert_eq!(cmd(c, "HSET h:small name ferrite age 3 neg -5000 big 123456789012"), Frame::Integer(4)),
            probes: &["HGETALL", "HLEN"],
        },
        Case {
            key: "h:big",
            build: |c| assert_eq!(many(c, "HSET h:big", 1000, |i| format!("f{i} v{i}")), Frame::Integer(1000)),
            probes: &["HLEN", "!HGETALL", "HGET f777"],
        },
        Case {
            key: "h:long",
            build: |c| assert_eq!(cmd(c, &format!("HSET h:long a 1 long {}", "y".repeat(100))), Frame::Integer(2)),
            probes: &["!HGETALL"],
        },
        Case { key: "set:ints", build: |c| assert_eq!(cmd(c, "SADD set:ints 3 1 2 -7 70000"), Frame::Integer(5)), probes: &["SMEMBERS"] },
        Case {
            key: "set:bigints",
            build: |c| assert_eq!(many(c, "SADD set:bigints", 600, |i| (i * 3).to_string()), Frame::Integer(600)),
            probes: &["SCARD", "!SMEMBERS"],
        },
        Case {
            key: "set:strs",
            build: |c| assert_eq!(cmd(c, "SADD set:strs apple banana cherry"), Frame::Integer(3)),
            probes: &["!SMEMBERS"],
        },
        Case {
            key: "set:bigstrs",
            build: |c| assert_eq!(many(c, "SADD set:bigstrs", 700, |i| format!("m{i}")), Frame::Integer(700)),
            probes: &["SCARD", "!SMEMBERS"],
        },
        Case {
            key: "z:small",
            build: |c| assert_eq!(cmd(c, "ZADD z:small 1 a 2.5 b -3 c 0.1 d inf e -inf f 100000 g"), Frame::Integer(7)),
            probes: &["ZRANGE 0 -1 WITHSCORES"],
        },
        Case {
            key: "z:big",
            build: |c| assert_eq!(many(c, "ZADD z:big", 300, |i| format!("{} m{i}", i as f64 * 1.5 - 7.25)), Frame::Integer(300)),
            probes: &["ZCARD", "ZRANGE 0 -1 WITHSCORES"],
        },
        Case {
            key: "x:groups",
            build: |c| {
                for (i, id) in ["1-1", "1-2", "2-1", "3-1", "4-1", "5-5"].iter().enumerate() {
                    let reply = cmd(c, &format!("XADD x:groups {id} f v{i} n {i}"));
                    assert_eq!(reply, Frame::Bulk(id.as_bytes().to_vec()));
                }
                assert_eq!(cmd(c, "XDEL x:groups 1-2 3-1"), Frame::Integer(2));
                assert_eq!(cmd(c, "XGROUP CREATE x:groups g1 0"), ok());
                assert_eq!(cmd(c, "XGROUP CREATE x:groups g2 2-1"), ok());
                cmd(c, "XREADGROUP GROUP g1 alice COUNT 2 STREAMS x:groups >");
                cmd(c, "XREADGROUP GROUP g1 bob COUNT 1 STREAMS x:groups >");
                assert_eq!(cmd(c, "XACK x:groups g1 1-1"), Frame::Integer(1));
                cmd(c, "XCLAIM x:groups g1 bob 0 2-1 TIME 1700000000123 RETRYCOUNT 5");
            },
            probes: &["XRANGE - +", "XLEN", "XINFO GROUPS", "XPENDING g1", "XPENDING g2"],
        },
        Case {
            key: "x:big",
            build: |c| {
                for i in 0..250 {
                    cmd(c, &format!("XADD x:big {}-0 field value-{i} n {i}", 1000 + i));
                }
            },
            probes: &["XLEN", "XRANGE - +", "XREVRANGE + - COUNT 3"],
        },
        Case {
            key: "hll:sparse",
            build: |c| assert_eq!(cmd(c, "PFADD hll:sparse a b c d e"), Frame::Integer(1)),
            probes: &["PFCOUNT", "GET"],
        },
        Case {
            key: "hll:dense",
            build: |c| assert_eq!(many(c, "PFADD hll:dense", 5000, |i| format!("el-{i}")), Frame::Integer(1)),
            probes: &["PFCOUNT", "GET"],
        },
    ]
}

/// The probe's reply for `key` (`CMD [args]` becomes `CMD key [args]`).
fn probe(c: &mut Raw, key: &str, probe: &str) -> Frame {
    let (sorted, p) = match probe.strip_prefix('!') {
        Some(p) => (true, p),
        None => (false, probe),
    };
    let mut words: Vec<&str> = p.split(' ').collect();
    let sub = if words[0] == "XINFO" { 2 } else { 1 };
    words.insert(sub, key);
    let reply = c.cmd(&words);
    if sorted { reply.sorted() } else { reply }
}

/// What must agree about a key: its type, encoding and the case's reads.
fn describe(c: &mut Raw, key: &str, case: &Case) -> Vec<Frame> {
    let mut out = vec![c.cmd(&["TYPE", key]), c.cmd(&["OBJECT", "ENCODING", key])];
    out.extend(case.probes.iter().map(|p| probe(c, key, p)));
    out
}

#[test]
fn every_type_moves_between_redis_and_ferrite_both_ways() {
    let redis = RedisServer::start();
    let ferrite = common::start();
    let (mut r, mut f) = (Raw::connect(redis.addr), Raw::connect(ferrite.addr));
    for case in cases() {
        (case.build)(&mut r);
        let payload = bulk_bytes(r.cmd(&["DUMP", case.key]));
        // What RESTORE makes of it in Redis (an HLL was `raw`, its copy need not be).
        let copy = format!("copy:{}", case.key);
        assert_eq!(call(&mut r, &[b"RESTORE", copy.as_bytes(), b"0", &payload]), ok(), "{}", case.key);
        let want = describe(&mut r, &copy, &case);
        assert_eq!(call(&mut f, &[b"RESTORE", case.key.as_bytes(), b"0", &payload]), ok(), "{}", case.key);
        assert_eq!(describe(&mut f, case.key, &case), want, "{}: redis -> ferrite", case.key);
        let ours = bulk_bytes(f.cmd(&["DUMP", case.key]));
        let back = format!("back:{}", case.key);
        assert_eq!(call(&mut r, &[b"RESTORE", back.as_bytes(), b"0", &ours]), ok(), "{}", case.key);
        assert_eq!(describe(&mut r, &back, &case), want, "{}: ferrite -> redis", case.key);
    }
    // A missing key dumps as nil on both.
    assert_eq!(f.cmd(&["DUMP", "nope"]), r.cmd(&["DUMP", "nope"]));
}

#[test]
fn restored_ttl_and_idle_time_match_redis() {
    let redis = RedisServer::start();
    let ferrite = common::start();
    for addr in [redis.addr, ferrite.addr] {
        let mut c = Raw::connect(addr);
        assert_eq!(c.cmd(&["SET", "src", "hello"]), ok());
        let p = bulk_bytes(c.cmd(&["DUMP", "src"]));
        assert_eq!(call(&mut c, &[b"RESTORE", b"a", b"100000", &p, b"IDLETIME", b"1000"]), ok());
        let Frame::Integer(pttl) = c.cmd(&["PTTL", "a"]) else { panic!("pttl") };
        assert!((99_000..=100_000).contains(&pttl), "{pttl}");
        let Frame::Integer(idle) = c.cmd(&["OBJECT", "IDLETIME", "a"]) else { panic!("idle") };
        assert!((1000..=1001).contains(&idle), "{idle}");
        let future = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 50_000).to_string();
        assert_eq!(call(&mut c, &[b"RESTORE", b"b", future.as_bytes(), &p, b"ABSTTL"]), ok());
        let Frame::Integer(pttl) = c.cmd(&["PTTL", "b"]) else { panic!("pttl") };
        assert!((45_000..=50_000).contains(&pttl), "{pttl}");
    }
}

/// A tenant with 1 MB restores a 5 MB string that LZF shrinks to a few KB:
/// refused before it is built, and the tenant stays under its limit.
#[test]
fn a_tenant_cannot_restore_past_its_memory() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["TENANT.CREATE", "small", "PASSWORD", "pw", "MEMORY", "1mb"]), ok());
    let mut t = Raw::connect(h.addr);
    assert_eq!(t.cmd(&["AUTH", "small", "pw"]), ok());
    let big = dump::encode(&Value::string(&vec![b'z'; 5 << 20]));
    assert!(big.len() < 100 << 10, "{}", big.len());
    match call(&mut t, &[b"RESTORE", b"k", b"0", &big]) {
        Frame::Error(e) => assert!(e.starts_with("OOM"), "{e}"),
        other => panic!("restored: {other}"),
    }
    assert_eq!(t.cmd(&["EXISTS", "k"]), Frame::Integer(0));
    let small = dump::encode(&Value::string(&vec![b'z'; 100 << 10]));
    assert_eq!(call(&mut t, &[b"RESTORE", b"k", b"0", &small]), ok());
    assert_eq!(t.cmd(&["STRLEN", "k"]), Frame::Integer(100 << 10));
    let Frame::Array(info) = admin.cmd(&["TENANT.INFO", "small"]) else { panic!("info") };
    let at = info.iter().position(|x| x == &Frame::Bulk(b"memory_used".to_vec())).expect("memory_used");
    let Frame::Integer(used) = info[at + 1] else { panic!("used") };
    assert!(used <= 1 << 20, "{used}");
    // The same 5 MB payload is a valid one: redis-server restores it.
    let redis = RedisServer::start();
    let mut r = Raw::connect(redis.addr);
    assert_eq!(call(&mut r, &[b"RESTORE", b"k", b"0", &big]), ok());
    assert_eq!(r.cmd(&["STRLEN", "k"]), Frame::Integer(5 << 20));
}

/// Mutated payloads, resealed so the parser meets them, sent as RESTOREs:
/// every reply is OK or one of Redis's two payload errors, and the
/// connection stays.
#[test]
fn mutated_payloads_over_the_wire_get_errors_not_disconnects() {
    let h = common::start();
    let mut c = Raw::connect(h.addr);
    let mut seeds = Vec::new();
    for setup in [
        "RPUSH l a bb 1 -100 1000000",
        "HSET h name ferrite age 3 neg -5000",
        "SADD s 3 1 2 -7 300",
        "ZADD z 1 a 2.5 b -3 c inf d",
        "XADD x 1-1 a 1 b 2",
        "XADD x 1-2 a 3 b 4",
        "XGROUP CREATE x g 0",
        "XREADGROUP GROUP g c COUNT 1 STREAMS x >",
    ] {
        cmd(&mut c, setup);
    }
    for key in ["l", "h", "s", "z", "x"] {
        seeds.push(bulk_bytes(c.cmd(&["DUMP", key])));
    }
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut restored, mut refused) = (0, 0);
    for i in 0..3000 {
        let seed = &seeds[i % seeds.len()];
        let mut body = seed[..seed.len() - 10].to_vec();
        let at = rng.usize(..body.len());
        match rng.u8(..4) {
            0 => body[at] ^= 1 << rng.u8(..8),
            1 => body.truncate(at.max(1)),
            2 => body.insert(at, rng.u8(..)),
            _ => body[at] = rng.u8(..),
        }
        if i % 10 != 0 {
            dump::seal(&mut body);
        }
        match call(&mut c, &[b"RESTORE", b"target", b"0", &body, b"REPLACE"]) {
            Frame::Simple(s) if s == "OK" => restored += 1,
            Frame::Error(e) if e == "ERR Bad data format" || e == "ERR DUMP payload version or checksum are wrong" => refused += 1,
            other => panic!("unexpected reply {other}"),
        }
    }
    assert!(restored > 0 && refused > 1000, "{restored} restored, {refused} refused");
    assert_eq!(c.cmd(&["PING"]), Frame::Simple("PONG".into()));
}
