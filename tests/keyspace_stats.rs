//! INFO's `keyspace_hits` and `keyspace_misses`, against `redis-server`:
//! every read command counts its key lookups as Redis's `lookupKeyRead`
//! does (a key of the wrong type is a hit), writes count none, and a
//! tenant's own counters (TENANT.STATS) move with the server's.

mod common;

use common::{Raw, RedisServer, field, info_field, start, tenant};
use ferrite::protocol::Frame;

/// Keys of every type, made before each command (`nx` never exists).
const SETUP: &[&[&str]] = &[
    &["FLUSHALL"],
    &["SET", "s", "hello"],
    &["HSET", "h", "f", "v"],
    &["RPUSH", "l", "3", "1", "2"],
    &["SADD", "set", "a", "b"],
    &["ZADD", "z", "1", "a", "2", "b"],
    &["XADD", "x", "1-1", "f", "v"],
    &["PFADD", "hll", "a", "b"],
    &["GEOADD", "g", "13.36", "38.11", "p"],
];

/// Read commands, each on a key that exists and on one that does not (and
/// some on a key of another type), and writes, which count nothing.
const COMMANDS: &[&[&str]] = &[
    &["GET", "s"],
    &["GET", "nx"],
    &["GET", "h"],
    &["STRLEN", "s"],
    &["STRLEN", "nx"],
    &["GETRANGE", "s", "0", "1"],
    &["GETRANGE", "nx", "0", "1"],
    &["MGET", "s", "nx", "h"],
    &["EXISTS", "s", "nx"],
    &["TYPE", "s"],
    &["TYPE", "nx"],
    &["TTL", "s"],
    &["PTTL", "nx"],
    &["OBJECT", "ENCODING", "s"],
    &["OBJECT", "ENCODING", "nx"],
    &["DUMP", "s"],
    &["DUMP", "nx"],
    &["TOUCH", "s", "nx"],
    &["HGET", "h", "f"],
    &["HGET", "nx", "f"],
    &["HGET", "s", "f"],
    &["HGETALL", "h"],
    &["HGETALL", "nx"],
    &["HLEN", "nx"],
    &["HEXISTS", "h", "f"],
    &["HMGET", "nx", "f", "g"],
    &["HSTRLEN", "h", "f"],
    &["HKEYS", "h"],
    &["HVALS", "nx"],
    &["LRANGE", "l", "0", "-1"],
    &["LRANGE", "nx", "0", "-1"],
    &["LLEN", "l"],
    &["LINDEX", "nx", "0"],
    &["LPOS", "l", "1"],
    &["SMEMBERS", "set"],
    &["SMEMBERS", "nx"],
    &["SCARD", "set"],
    &["SISMEMBER", "nx", "a"],
    &["SMISMEMBER", "set", "a"],
    &["SINTER", "set", "nx"],
    &["SUNION", "set", "nx"],
    &["ZSCORE", "z", "a"],
    &["ZSCORE", "nx", "a"],
    &["ZRANGE", "z", "0", "-1"],
    &["ZCARD", "nx"],
    &["ZRANK", "z", "b"],
    &["ZCOUNT", "z", "-inf", "+inf"],
    &["XRANGE", "x", "-", "+"],
    &["XRANGE", "nx", "-", "+"],
    &["XLEN", "x"],
    &["XREVRANGE", "nx", "+", "-"],
    &["GETBIT", "s", "1"],
    &["GETBIT", "nx", "1"],
    &["BITCOUNT", "s"],
    &["BITCOUNT", "nx"],
    &["BITPOS", "s", "1"],
    &["GEOPOS", "g", "p"],
    &["GEOPOS", "nx", "p"],
    &["GEODIST", "g", "p", "p"],
    &["SORT", "l"],
    &["SORT", "nx"],
    &["LCS", "s", "nx"],
    &["PFCOUNT", "hll"],
    &["PFCOUNT", "nx"],
    &["PFCOUNT", "hll", "nx"],
    &["PFMERGE", "hll", "nx"],
    &["SRANDMEMBER", "set"],
    &["SRANDMEMBER", "nx", "2"],
    &["HRANDFIELD", "h"],
    &["ZRANDMEMBER", "nx"],
    &["HSCAN", "h", "0"],
    &["SSCAN", "nx", "0"],
    &["ZSCAN", "z", "0"],
    &["ZUNION", "2", "z", "nx"],
    &["SINTERCARD", "2", "set", "nx"],
    &["GEOSEARCH", "g", "FROMLONLAT", "13", "38", "BYRADIUS", "200", "km"],
    &["GEOSEARCH", "nx", "FROMLONLAT", "13", "38", "BYRADIUS", "200", "km"],
    &["GEODIST", "nx", "p", "p"],
    &["XREAD", "STREAMS", "x", "nx", "0", "0"],
    &["XINFO", "STREAM", "x"],
    &["XINFO", "STREAM", "nx"],
    &["XACK", "nx", "g", "1-1"],
    &["XPENDING", "nx", "g"],
    &["SORT", "l", "BY", "nosort", "GET", "h->f"],
    &["COPY", "s", "s2"],
    &["COPY", "nx", "s2"],
    &["SET", "s", "v", "GET"],
    &["SET", "nx", "v", "GET"],
    &["GETSET", "s", "v"],
    &["BITOP", "AND", "dest", "s", "nx"],
    &["GETDEL", "s"],
    &["GETDEL", "nx"],
    &["GETEX", "s"],
    &["SET", "s", "v"],
    &["SET", "new", "v"],
    &["INCR", "nx"],
    &["LPUSH", "l", "x"],
    &["HSET", "h", "f", "w"],
    &["DEL", "s", "nx"],
    &["APPEND", "s", "x"],
    &["SETRANGE", "nx", "1", "x"],
];

/// (keyspace_hits, keyspace_misses) from INFO stats.
fn hits_and_misses(c: &mut Raw) -> (u64, u64) {
    let Frame::Bulk(info) = c.cmd(&["INFO", "stats"]) else { panic!("INFO stats") };
    let info = String::from_utf8(info).unwrap();
    let stat = |name: &str| info_field(&info, name).and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("no {name}"));
    (stat("keyspace_hits"), stat("keyspace_misses"))
}

/// What each command adds to (hits, misses) on the server at `c`.
fn counted(c: &mut Raw) -> Vec<(u64, u64)> {
    COMMANDS
        .iter()
        .map(|cmd| {
            for s in SETUP {
                c.cmd(s);
            }
            let before = hits_and_misses(c);
            c.cmd(cmd);
            let after = hits_and_misses(c);
            (after.0 - before.0, after.1 - before.1)
        })
        .collect()
}

#[test]
fn reads_count_hits_and_misses_as_redis_does() {
    let redis = RedisServer::start();
    let ferrite = start();
    let want = counted(&mut Raw::connect(redis.addr));
    let got = counted(&mut Raw::connect(ferrite.addr));
    let wrong: Vec<String> = COMMANDS
        .iter()
        .zip(want.iter().zip(&got))
        .filter(|(_, (w, g))| w != g)
        .map(|(c, (w, g))| format!("{}: redis {w:?}, ferrite {g:?}", c.join(" ")))
        .collect();
    assert!(wrong.is_empty(), "(hits, misses) differ:\n{}", wrong.join("\n"));
}

#[test]
fn a_tenants_reads_count_in_its_own_statistics() {
    let h = start();
    let mut t = tenant(&h, "stats", &[]);
    t.cmd(&["SET", "k", "v"]);
    t.cmd(&["RPUSH", "l", "a"]);
    for cmd in [&["LRANGE", "l", "0", "-1"][..], &["LRANGE", "nx", "0", "-1"], &["HGET", "nx", "f"], &["GET", "k"]] {
        t.cmd(cmd);
    }
    let mut admin = Raw::connect(h.addr);
    let stats = admin.cmd(&["TENANT.STATS", "stats"]);
    assert_eq!(field(&stats, "keyspace_hits"), Frame::Integer(2), "{stats:?}");
    assert_eq!(field(&stats, "keyspace_misses"), Frame::Integer(2), "{stats:?}");
    // The server's counters hold every space's lookups.
    assert_eq!(hits_and_misses(&mut admin), (2, 2));
}
