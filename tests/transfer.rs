//! A tenant as one stream of records (issue 15's copy, `persist::transfer`):
//! exported from one server and imported into another, it arrives whole
//! (every type, TTLs, profile and password, own settings, functions), and a
//! damaged or foreign stream leaves nothing behind.

mod common;
#[path = "common/policies.rs"]
#[allow(dead_code)]
mod policies;

use common::{Raw, login, ok, tenant};
use ferrite::persist::record::Record;
use ferrite::persist::transfer::{self, TENANT_MAGIC};
use ferrite::protocol::Frame;

const LIB: &str = "#!lua name=lib\nredis.register_function('bump', function(k, a) return redis.call('incr', k[1]) end)";

/// Fills tenant `id` with one key of each type, some with TTLs, in two databases.
fn fill(c: &mut Raw) {
    let cmds: &[&[&str]] = &[
        &["SET", "s", "v"],
        &["SET", "ttl", "v", "PX", "600000"],
        &["RPUSH", "l", "a", "b", "c"],
        &["HSET", "h", "f", "1", "g", "2"],
        &["SADD", "set", "x", "y"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["PFADD", "hll", "a", "b", "c"],
        &["XADD", "st", "1-1", "f", "v"],
        &["GEOADD", "geo", "13.36", "38.11", "palermo"],
        &["SETBIT", "bits", "100", "1"],
        &["EXPIRE", "h", "900"],
        &["FUNCTION", "LOAD", LIB],
        &["CONFIG", "SET", "hash-max-listpack-entries", "7"],
        &["SELECT", "1"],
        &["SET", "other-db", "1"],
        &["SELECT", "0"],
    ];
    for cmd in cmds {
        let r = c.cmd(cmd);
        assert!(!matches!(r, Frame::Error(_)), "{cmd:?}: {r}");
    }
}

/// What a client sees of the tenant: each key's DUMP, TTL (to the second)
/// and the other database, functions and settings.
fn view(c: &mut Raw) -> Vec<String> {
    let mut seen = Vec::new();
    for k in ["s", "ttl", "l", "h", "set", "z", "hll", "st", "geo", "bits"] {
        seen.push(format!("{k} {} {}", c.cmd(&["DUMP", k]), c.cmd(&["TTL", k]).to_string().len()));
    }
    seen.push(c.cmd(&["DBSIZE"]).to_string());
    seen.push(c.cmd(&["FUNCTION", "LIST"]).to_string());
    seen.push(c.cmd(&["CONFIG", "GET", "hash-max-listpack-entries"]).to_string());
    assert_eq!(c.cmd(&["SELECT", "1"]), ok());
    seen.push(c.cmd(&["GET", "other-db"]).to_string());
    assert_eq!(c.cmd(&["SELECT", "0"]), ok());
    seen
}

#[test]
fn a_tenant_moves_whole_between_servers() {
    let a = common::start();
    let b = common::start();
    let mut src = tenant(&a, "acme", &["MEMORY", "20mb", "OPS", "50000"]);
    fill(&mut src);
    let before = view(&mut src);
    let stats = |addr| {
        let Frame::Array(v) = Raw::connect(addr).cmd(&["TENANT.STATS", "acme"]) else { panic!("fields") };
        let kept = ["commands_read", "commands_write", "keyspace_hits", "keyspace_misses", "bytes_in", "bytes_out", "memory_peak"];
        let pairs: Vec<(String, Frame)> = v.chunks(2).map(|p| (p[0].to_string(), p[1].clone())).collect();
        let got: Vec<String> =
            pairs.into_iter().filter(|(k, _)| kept.iter().any(|n| k.contains(n))).map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(got.len(), kept.len(), "{got:?}");
        got
    };
    let stats_before = stats(a.addr);
    let t = a.state.tenants.get_tenant("acme").unwrap();
    let pieces = transfer::export(&a.state, &t);
    let imported = transfer::import(&b.state, &pieces).expect("imports");
    assert_eq!(imported.id(), "acme");
    // Nobody may connect as it until the move commits.
    assert!(matches!(Raw::connect(b.addr).cmd(&["AUTH", "acme", "pw"]), Frame::Error(e) if e.contains("being moved")));
    imported.importing.store(false, std::sync::atomic::Ordering::Relaxed);
    // Its own password works there; its limits and data came along.
    // Its statistics and bill came along (compared before anything runs there).
    assert_eq!(stats(b.addr), stats_before);
    let mut dst = login(&b, "acme");
    assert_eq!(view(&mut dst), before);
    assert_eq!(dst.cmd(&["FCALL", "bump", "1", "n"]), Frame::Integer(1));
    let info = Raw::connect(b.addr).cmd(&["TENANT.INFO", "acme"]).to_string();
    assert!(info.contains("20971520") && info.contains("active"), "{info}");
    // Importing it again is refused: the tenant exists.
    let Err(again) = transfer::import(&b.state, &pieces) else { panic!("refused") };
    let again = again.to_string();
    assert!(again.contains("already exists"), "{again}");
}

#[test]
fn a_damaged_stream_leaves_no_tenant() {
    let a = common::start();
    let b = common::start();
    let mut src = tenant(&a, "acme", &[]);
    fill(&mut src);
    let t = a.state.tenants.get_tenant("acme").unwrap();
    let pieces = transfer::export(&a.state, &t);
    assert!(pieces.len() >= 2, "a profile, then entries");
    let last = pieces.len() - 1;
    // The last piece cut short, a byte flipped in the middle of the
    // entries, a piece missing, the end's count wrong: refused, nothing left.
    let mut damaged = Vec::new();
    let mut short = pieces.clone();
    let len = short[last].len();
    short[last].truncate(len - 10);
    damaged.push(short);
    let mut flipped = pieces.clone();
    let mid = flipped[1].len() / 2;
    flipped[1][mid] ^= 0x55;
    damaged.push(flipped);
    damaged.push(pieces[..last].to_vec());
    let mut recount = pieces.clone();
    recount[last] = TENANT_MAGIC.to_vec();
    Record::End { entries: 7 }.frame_into(&mut recount[last]);
    damaged.push(recount);
    for broken in damaged {
        assert!(transfer::import(&b.state, &broken).is_err());
        assert!(b.state.tenants.get_tenant("acme").is_err(), "no tenant left behind");
        assert!(matches!(Raw::connect(b.addr).cmd(&["AUTH", "acme", "pw"]), Frame::Error(_)));
    }
    assert!(transfer::import(&b.state, &pieces).is_ok(), "the whole stream still imports");
}

/// The tenant's WebAssembly policy and its CONFIG move with it, and run there.
#[test]
fn a_tenants_policy_module_moves_with_it() {
    let a = common::start();
    let b = common::start();
    let _t = tenant(&a, "shop", &[]);
    let wasm = policies::wasm("protect-prefix");
    let mut admin = Raw::connect(a.addr);
    let args: Vec<&[u8]> = vec![b"TENANT.UPDATE", b"shop", b"POLICY", &wasm, b"CONFIG", b"protect=session:"];
    admin.send(&common::encode(args.into_iter()));
    assert_eq!(admin.read(), ok());
    let before = admin.cmd(&["TENANT.POLICY", "shop"]).to_string();
    let t = a.state.tenants.get_tenant("shop").unwrap();
    let imported = transfer::import(&b.state, &transfer::export(&a.state, &t)).expect("imports");
    imported.importing.store(false, std::sync::atomic::Ordering::Relaxed);
    let after = Raw::connect(b.addr).cmd(&["TENANT.POLICY", "shop"]).to_string();
    let hash = |s: &str| s.split("hash").nth(1).map(|r| r.chars().take(80).collect::<String>());
    assert!(hash(&before).is_some(), "{before}");
    assert_eq!(hash(&after), hash(&before), "{after}");
}
