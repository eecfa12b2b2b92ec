//! A command fuzzer: every command in the table, as a tenant, with extreme
//! integers, huge and negative counts, long and pathological patterns and
//! empty arguments. It fails on a panic (the server answers "internal
//! error"), a hang (a reply must come within the per-command deadline) or a
//! single allocation past the bound any command may make here.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use common::{Raw, encode, ok};
use ferrite::commands::COMMANDS;
use ferrite::commands::flags::BLOCKING;
use ferrite::protocol::Frame;

/// Counts the largest single allocation the process (server included) makes.
struct Measured;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Measured = Measured;

/// The tenant's memory limit: no reply, value or buffer may pass it, so
/// no single allocation needs more than a few times it.
const TENANT_MEMORY: usize = 4 << 20;
const ALLOCATION_BOUND: usize = 8 * TENANT_MEMORY;
const ROUNDS: usize = 12;

fn pool() -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = [
        "-9223372036854775808",
        "9223372036854775807",
        "-9223372036854775807",
        "4611686018427387904",
        "-1000000000000000",
        "1000000000000000",
        "4294967296",
        "-1",
        "0",
        "1",
        "3",
        "",
        "inf",
        "-inf",
        "nan",
        "1e308",
        "(1",
        "[a",
        "+",
        "-",
        "*",
        "$",
        "*?*?*[^a-",
        "\\",
        "s",
        "h",
        "z",
        "l",
        "str",
        "missing",
        "count",
        "withscores",
        "withvalues",
        "limit",
        "match",
        "rev",
        "byscore",
        "bylex",
        "ex",
        "px",
        "keepttl",
        "db",
        "weights",
        "aggregate",
        "left",
        "right",
        "before",
        "len",
        "idx",
        "minmatchlen",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    p.push(format!("{}b", "a*".repeat(40)).into_bytes());
    p.push(vec![b'x'; 100_000]);
    p
}

fn setup(c: &mut Raw) {
    for cmd in [
        &["FLUSHALL"][..],
        &["SADD", "s", "a", "b", "c"],
        &["HSET", "h", "a", "1", "b", "2"],
        &["ZADD", "z", "1", "a", "2", "b"],
        &["RPUSH", "l", "a", "b", "c"],
        &["SET", "str", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    ] {
        assert!(!matches!(c.cmd(cmd), Frame::Error(_)), "{cmd:?}");
    }
}

#[test]
fn every_command_survives_hostile_arguments() {
    let h = common::start();
    let mut admin = Raw::connect(h.addr);
    let memory = TENANT_MEMORY.to_string();
    assert_eq!(
        admin.cmd(&["TENANT.CREATE", "fuzz", "PASSWORD", "pw", "MEMORY", &memory, "OPS", "10000000", "CONNECTIONS", "100000"]),
        ok()
    );
    let login = || {
        let mut c = Raw::connect(h.addr);
        c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.cmd(&["AUTH", "fuzz", "pw"]), ok());
        c
    };
    let pool = pool();
    let mut rng = fastrand::Rng::with_seed(12);
    let mut c = login();
    setup(&mut c);
    let baseline = LARGEST.load(Relaxed);
    for spec in COMMANDS {
        if matches!(spec.name, "auth" | "hello") {
            continue; // their failures are throttled: covered by tests/hostile.rs
        }
        for _ in 0..ROUNDS {
            let min = spec.arity.unsigned_abs() as usize;
            let argc = if spec.arity < 0 { min + rng.usize(0..5) } else { min };
            let mut argv: Vec<Vec<u8>> = vec![spec.name.as_bytes().to_vec()];
            argv.extend((1..argc).map(|_| pool[rng.usize(..pool.len())].clone()));
            // A blocking command runs inside MULTI, where it never blocks.
            let blocking = spec.has(BLOCKING);
            if blocking {
                c.cmd(&["MULTI"]);
            }
            let shown: Vec<String> = argv.iter().map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned()).collect();
            eprintln!("{shown:?}");
            c.send(&encode(argv.iter().map(|a| a.as_slice())));
            let reply = c.try_read();
            let reply = if blocking && reply.is_some() { c.cmd(&["EXEC"]) } else { reply.unwrap_or(Frame::Null) };
            if let Frame::Error(e) = &reply {
                assert!(!e.contains("internal error"), "{shown:?} panicked: {e}");
            }
            let largest = LARGEST.load(Relaxed);
            assert!(largest <= baseline.max(ALLOCATION_BOUND), "{shown:?} allocated {largest} bytes at once");
            // Whatever the command did to the connection (closed it over its
            // output limit, subscribed it, changed its database), start over.
            c = login();
            setup(&mut c);
        }
    }
    assert_eq!(admin.cmd(&["PING"]), Frame::Simple("PONG".into()));
}
