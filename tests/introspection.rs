//! SLOWLOG and LATENCY scoped to their tenant: a tenant's connection sees
//! and resets only its own tenant's log and events; the admin's show the
//! global context's commands (an admin inside a tenant with TENANT.USE
//! reads the tenant's, and never adds its own there). Redis's replies are
//! compared in `tests/differential/slowlog.redis` and `latency.redis`.

mod common;

use common::{Raw, config, err, ok, start_with, tenant};
use ferrite::protocol::Frame;
use ferrite::server::ServerHandle;

/// A Lua loop long enough to pass a 50 ms threshold, even in a debug build.
const SLOW_SCRIPT: &str = "local i = 0 while i < 10000000 do i = i + 1 end return i";

fn server(slower_than: i64, latency_ms: u64) -> ServerHandle {
    let mut c = config();
    c.server.slowlog_log_slower_than = slower_than;
    c.server.latency_monitor_threshold = latency_ms;
    start_with(c)
}

/// Every argument of every entry of `c`'s SLOWLOG GET -1, entry by entry.
fn slowlog(c: &mut Raw) -> Vec<Vec<String>> {
    let Frame::Array(entries) = c.cmd(&["SLOWLOG", "GET", "-1"]) else { panic!("an array") };
    entries
        .into_iter()
        .map(|e| {
            let Frame::Array(fields) = e else { panic!("an entry") };
            assert_eq!(fields.len(), 6);
            let Frame::Array(argv) = &fields[3] else { panic!("arguments") };
            argv.iter()
                .map(|a| match a {
                    Frame::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("bulk: {other}"),
                })
                .collect()
        })
        .collect()
}

fn mentions(log: &[Vec<String>], word: &str) -> bool {
    log.iter().flatten().any(|a| a == word)
}

fn int(f: Frame) -> i64 {
    match f {
        Frame::Integer(n) => n,
        other => panic!("an integer: {other}"),
    }
}

#[test]
fn a_tenants_slowlog_holds_its_own_commands_only() {
    let h = server(0, 0);
    let mut admin = Raw::connect(h.addr);
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    assert_eq!(a.cmd(&["SET", "key-of-a", "1"]), ok());
    assert_eq!(b.cmd(&["SET", "key-of-b", "1"]), ok());
    assert_eq!(admin.cmd(&["SET", "key-of-admin", "1"]), ok());
    let (la, lb, lg) = (slowlog(&mut a), slowlog(&mut b), slowlog(&mut admin));
    assert!(mentions(&la, "key-of-a") && !mentions(&la, "key-of-b") && !mentions(&la, "key-of-admin"), "{la:?}");
    assert!(mentions(&lb, "key-of-b") && !mentions(&lb, "key-of-a") && !mentions(&lb, "key-of-admin"), "{lb:?}");
    assert!(mentions(&lg, "key-of-admin") && !mentions(&lg, "key-of-a") && !mentions(&lg, "key-of-b"), "{lg:?}");
    // The tenants were created and logged in on the admin's side: their
    // passwords never appear, nor the tenant management's arguments.
    assert!(!mentions(&lg, "pw") && !mentions(&lg, "PASSWORD"), "{lg:?}");
    assert!(lg.iter().any(|e| e[0].eq_ignore_ascii_case("tenant.create") && e[1..].iter().all(|x| x == "(redacted)")), "{lg:?}");
    assert!(lg.iter().any(|e| e == &["AUTH", "(redacted)", "(redacted)"]), "{lg:?}");

    // A tenant's RESET clears its own log only (the RESET itself is then
    // its one entry, as in Redis with a threshold of 0).
    let before_b = int(b.cmd(&["SLOWLOG", "LEN"]));
    let before_admin = int(admin.cmd(&["SLOWLOG", "LEN"]));
    assert_eq!(a.cmd(&["SLOWLOG", "RESET"]), ok());
    assert_eq!(int(a.cmd(&["SLOWLOG", "LEN"])), 1);
    assert_eq!(int(b.cmd(&["SLOWLOG", "LEN"])), before_b + 1);
    assert_eq!(int(admin.cmd(&["SLOWLOG", "LEN"])), before_admin + 1);
    // The admin's RESET clears the global log, not the tenants'.
    assert_eq!(admin.cmd(&["SLOWLOG", "RESET"]), ok());
    assert_eq!(int(a.cmd(&["SLOWLOG", "LEN"])), 2);
}

#[test]
fn the_admin_inside_a_tenant_reads_its_log_and_adds_nothing_to_it() {
    let h = server(0, 0);
    let mut admin = Raw::connect(h.addr);
    let mut a = tenant(&h, "a", &[]);
    assert_eq!(a.cmd(&["SET", "key-of-a", "1"]), ok());
    assert_eq!(admin.cmd(&["SET", "__tenant:a:addressed", "1"]), ok());
    assert_eq!(admin.cmd(&["TENANT.USE", "a"]), ok());
    assert_eq!(admin.cmd(&["SET", "visited", "1"]), ok());
    // Inside the tenant the admin reads the tenant's log...
    let seen = slowlog(&mut admin);
    assert!(mentions(&seen, "key-of-a"), "{seen:?}");
    // ...which holds none of the admin's commands, addressed or inside.
    let la = slowlog(&mut a);
    assert!(!mentions(&la, "visited") && !mentions(&la, "addressed") && !mentions(&la, "__tenant:a:addressed"), "{la:?}");
    assert_eq!(admin.cmd(&["TENANT.EXIT"]), ok());
    let lg = slowlog(&mut admin);
    assert!(mentions(&lg, "visited") && mentions(&lg, "__tenant:a:addressed") && !mentions(&lg, "key-of-a"), "{lg:?}");
}

#[test]
fn slowlog_thresholds_and_length_are_the_servers() {
    let h = server(-1, 0);
    let mut admin = Raw::connect(h.addr);
    let mut a = tenant(&h, "a", &[]);
    assert_eq!(a.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(int(a.cmd(&["SLOWLOG", "LEN"])), 0);
    // A tenant may not change them.
    let Frame::Error(e) = a.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]) else { panic!("refused") };
    assert!(e.starts_with("NOPERM"), "{e}");
    assert_eq!(admin.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "5"]), ok());
    for i in 0..20 {
        assert_eq!(a.cmd(&["SET", "k", &i.to_string()]), ok());
    }
    assert_eq!(int(a.cmd(&["SLOWLOG", "LEN"])), 5);
    let la = slowlog(&mut a);
    assert_eq!(la[0], ["SLOWLOG", "LEN"]);
    assert_eq!(la[1], ["SET", "k", "19"]);
    assert_eq!(a.cmd(&["SLOWLOG", "GET", "-2"]), err("ERR count should be greater than or equal to -1"));
}

fn memory_used(admin: &mut Raw, id: &str) -> i64 {
    let Frame::Array(fields) = admin.cmd(&["TENANT.INFO", id]) else { panic!("fields") };
    let at = fields.iter().position(|f| *f == Frame::Bulk(b"memory_used".to_vec())).expect("memory_used");
    int(fields[at + 1].clone())
}

/// What a tenant's slowlog holds is its memory, given back by SLOWLOG RESET.
#[test]
fn a_tenants_slowlog_is_its_memory() {
    let h = server(0, 0);
    let mut admin = Raw::connect(h.addr);
    assert_eq!(admin.cmd(&["CONFIG", "SET", "slowlog-max-len", "1000"]), ok());
    let mut a = tenant(&h, "a", &["OPS", "1000000"]);
    let before = memory_used(&mut admin, "a");
    let arg = "y".repeat(100);
    for i in 0..500 {
        assert_eq!(a.cmd(&["ECHO", &format!("{i}{arg}")]), Frame::Bulk(format!("{i}{arg}").into_bytes()));
    }
    let grown = memory_used(&mut admin, "a") - before;
    assert!(grown > 500 * 100, "the slowlog is charged: {grown}");
    assert_eq!(a.cmd(&["SLOWLOG", "RESET"]), ok());
    assert!(memory_used(&mut admin, "a") - before < 10_000, "and given back");
}

#[test]
fn a_tenants_latency_events_are_its_own() {
    let h = server(-1, 50);
    let mut admin = Raw::connect(h.addr);
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    assert_eq!(admin.cmd(&["LATENCY", "RESET"]), Frame::Integer(0));
    assert_eq!(a.cmd(&["EVAL", SLOW_SCRIPT, "0"]), Frame::Integer(10_000_000));
    let Frame::Array(latest) = a.cmd(&["LATENCY", "LATEST"]) else { panic!("an array") };
    assert_eq!(latest.len(), 1, "{latest:?}");
    let Frame::Array(event) = &latest[0] else { panic!("an event") };
    assert_eq!(event[0], Frame::Bulk(b"command".to_vec()));
    assert!(int(event[2].clone()) >= 50, "{event:?}");
    let Frame::Array(history) = a.cmd(&["LATENCY", "HISTORY", "command"]) else { panic!("an array") };
    assert_eq!(history.len(), 1);
    let text = |f: Frame| match f {
        Frame::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("a report: {other}"),
    };
    let report = text(a.cmd(&["LATENCY", "DOCTOR"]));
    assert!(report.contains("1. command: 1 latency spikes"), "{report}");
    let report = text(b.cmd(&["LATENCY", "DOCTOR"]));
    assert!(report.starts_with("Dave, no latency spike was observed"), "{report}");
    // Neither another tenant nor the admin sees it.
    assert_eq!(b.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
    assert_eq!(admin.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
    assert_eq!(b.cmd(&["LATENCY", "HISTORY", "command"]), Frame::Array(vec![]));
    // And only the tenant's RESET forgets it.
    assert_eq!(b.cmd(&["LATENCY", "RESET"]), Frame::Integer(0));
    assert_eq!(admin.cmd(&["LATENCY", "RESET"]), Frame::Integer(0));
    assert_eq!(a.cmd(&["LATENCY", "RESET", "command"]), Frame::Integer(1));
    assert_eq!(a.cmd(&["LATENCY", "LATEST"]), Frame::Array(vec![]));
}

/// What a MONITOR connection sees while `commands` run on another
/// connection (each waited for), with timestamps and ports blanked; a
/// final PING on the monitor's own connection marks the end.
fn monitored(addr: std::net::SocketAddr, commands: &[&[&str]]) -> Vec<String> {
    let mut monitor = Raw::connect(addr);
    assert_eq!(monitor.cmd(&["MONITOR"]), ok());
    let mut c = Raw::connect(addr);
    for cmd in commands {
        c.cmd(cmd);
    }
    c.cmd(&["ECHO", "end"]);
    let mut lines = Vec::new();
    loop {
        let Frame::Simple(line) = monitor.read() else { panic!("monitor lines are status replies") };
        let (_, rest) = line.split_once(' ').expect("a timestamp");
        let (source, args) = rest.split_once("] ").expect("a source");
        let source = source.split(' ').map(|w| if w.contains(':') { "addr" } else { w }).collect::<Vec<_>>().join(" ");
        if args == "\"ECHO\" \"end\"" {
            return lines;
        }
        lines.push(format!("{source}] {args}"));
    }
}

#[test]
fn monitor_lines_match_redis() {
    let redis = common::RedisServer::start();
    let h = common::start();
    let script: &[&[&str]] = &[
        &["SET", "k", "v with \"quotes\"\n"],
        &["GET", "k"],
        &["AUTH", "someone", "secret"],
        &["HELLO", "2", "AUTH", "someone", "secret"],
        &["CONFIG", "GET", "maxmemory"],
        &["EVAL", "redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])", "1", "e", "1"],
        &["MULTI"],
        &["INCR", "n"],
        &["EXEC"],
        &["SELECT", "2"],
        &["DEL", "x"],
        &["NOSUCHCOMMAND"],
    ];
    let (want, got) = (monitored(redis.addr, script), monitored(h.addr, script));
    assert_eq!(got, want);
}

#[test]
fn a_tenants_monitor_sees_its_own_clients_and_the_admins_sees_all_tagged() {
    let h = start_with(config());
    let mut a = tenant(&h, "a", &[]);
    let mut b = tenant(&h, "b", &[]);
    let mut a_monitor = common::login(&h, "a");
    assert_eq!(a_monitor.cmd(&["MONITOR"]), ok());
    let mut admin_monitor = Raw::connect(h.addr);
    assert_eq!(admin_monitor.cmd(&["MONITOR"]), ok());
    let mut admin = Raw::connect(h.addr);
    assert_eq!(b.cmd(&["SET", "b-key", "1"]), ok());
    assert_eq!(admin.cmd(&["SET", "__tenant:a:k", "1"]), ok());
    assert_eq!(a.cmd(&["SET", "a-key", "1"]), ok());
    let late = Raw::connect(h.addr).cmd(&["AUTH", "a", "pw"]);
    assert_eq!(late, ok());
    // The tenant's monitor: only its own client's command.
    let Frame::Simple(line) = a_monitor.read() else { panic!() };
    assert!(line.ends_with("\"SET\" \"a-key\" \"1\""), "{line}");
    assert!(!line.contains("tenant="), "{line}");
    assert_eq!(a_monitor.cmd(&["PING"]), Frame::Simple("PONG".into()), "nothing else was queued");
    // The admin's: everything, each tagged with its tenant; AUTH redacted.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let Frame::Simple(line) = admin_monitor.read() else { panic!() };
        seen.push(line.split_once(' ').unwrap().1.to_string());
    }
    assert!(seen[0].contains(" tenant=b] \"SET\" \"b-key\""), "{seen:?}");
    assert!(seen[1].contains(" tenant=a] \"SET\" \"__tenant:a:k\""), "{seen:?}");
    assert!(seen[2].contains(" tenant=a] \"SET\" \"a-key\""), "{seen:?}");
    assert!(seen[3].ends_with("] \"AUTH\" \"(redacted)\" \"(redacted)\""), "{seen:?}");
}

/// Runs the same commands on `addr` and returns LATENCY HISTOGRAM for
/// set/get (counts only: the timings differ) and INFO errorstats.
fn stats_after_commands(addr: std::net::SocketAddr) -> (Vec<(String, i64, i64)>, String, String) {
    let mut c = Raw::connect(addr);
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), ok());
    for i in 0..10 {
        c.cmd(&["SET", &format!("k{i}"), "v"]);
    }
    for _ in 0..5 {
        c.cmd(&["GET", "k1"]);
    }
    c.cmd(&["GET"]);
    c.cmd(&["LPUSH", "k1", "x"]);
    c.cmd(&["LPUSH", "k2", "x"]);
    c.cmd(&["NOSUCH"]);
    c.cmd(&["EVAL", "return redis.error_reply('MY:KIND went wrong')", "0"]);
    let Frame::Map(h) = ({
        c.cmd(&["HELLO", "3"]);
        c.cmd(&["LATENCY", "HISTOGRAM", "set", "GET", "nosuch"])
    }) else {
        panic!("a map")
    };
    let mut rows = Vec::new();
    for (name, v) in h {
        let Frame::Map(fields) = v else { panic!() };
        let Frame::Integer(calls) = fields[0].1 else { panic!() };
        let Frame::Map(buckets) = &fields[1].1 else { panic!() };
        let Some((_, Frame::Integer(last))) = buckets.last() else { panic!() };
        rows.push((name.to_string(), calls, *last));
    }
    rows.sort();
    let Frame::Verbatim(errors) = c.cmd(&["INFO", "errorstats"]) else { panic!() };
    let Frame::Verbatim(latency) = c.cmd(&["INFO", "latencystats"]) else { panic!() };
    (rows, String::from_utf8_lossy(&errors).into_owned(), String::from_utf8_lossy(&latency).into_owned())
}

#[test]
fn latency_histogram_errorstats_and_latencystats_match_redis() {
    let redis = common::RedisServer::start();
    let h = common::start();
    let (want, got) = (stats_after_commands(redis.addr), stats_after_commands(h.addr));
    assert_eq!(got.0, want.0, "LATENCY HISTOGRAM calls and totals");
    assert_eq!(got.1, want.1, "INFO errorstats");
    let percentiles = |text: &str| {
        let line = text.lines().find(|l| l.starts_with("latency_percentiles_usec_set:")).expect("a line for SET");
        line.split([':', ',']).skip(1).map(|kv| kv.split('=').next().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(percentiles(&got.2), percentiles(&want.2));
    // A tenant sees no server-wide counters.
    let mut t = tenant(&h, "t", &[]);
    let Frame::Bulk(text) = t.cmd(&["INFO", "errorstats"]) else { panic!() };
    assert_eq!(String::from_utf8_lossy(&text).trim(), "# Errorstats");
}

/// MEMORY STATS's field names (the db.N map's too) and each value's kind.
fn memory_stats_shape(addr: std::net::SocketAddr) -> Vec<String> {
    let mut c = Raw::connect(addr);
    c.cmd(&["HELLO", "3"]);
    c.cmd(&["SET", "a", "b"]);
    let Frame::Map(fields) = c.cmd(&["MEMORY", "STATS"]) else { panic!("a map") };
    let kind = |v: &Frame| match v {
        Frame::Integer(_) => "int".to_string(),
        Frame::Double(_) => "double".to_string(),
        Frame::Map(m) => format!("map{:?}", m.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    };
    fields.iter().map(|(k, v)| format!("{k}={}", kind(v))).collect()
}

#[test]
fn memory_subcommands_reply_as_redis_does() {
    let redis = common::RedisServer::start();
    let h = common::start();
    assert_eq!(memory_stats_shape(h.addr), memory_stats_shape(redis.addr));
    let script: &[&[&str]] = &[
        &["SET", "k", "v"],
        &["MEMORY", "USAGE", "nokey"],
        &["MEMORY", "USAGE", "k", "SAMPLES"],
        &["MEMORY", "USAGE", "k", "SAMPLES", "x"],
        &["MEMORY", "USAGE", "k", "SAMPLES", "-1"],
        &["MEMORY", "USAGE", "k", "BOGUS", "1"],
        &["MEMORY", "USAGE"],
        &["MEMORY", "STATS", "x"],
        &["MEMORY", "PURGE"],
        &["MEMORY", "DOCTOR", "x"],
        &["MEMORY", "HELP"],
        &["MEMORY", "NOPE"],
    ];
    let run = |addr| {
        let mut c = Raw::connect(addr);
        script.iter().map(|cmd| c.cmd(cmd)).collect::<Vec<_>>()
    };
    assert_eq!(run(h.addr), run(redis.addr));
    // A tenant's figures are its own: its keys and its memory.
    let mut t = tenant(&h, "t", &["MEMORY", "10mb"]);
    t.cmd(&["HELLO", "3"]);
    t.cmd(&["SET", "big", &"x".repeat(100_000)]);
    let Frame::Map(fields) = t.cmd(&["MEMORY", "STATS"]) else { panic!() };
    let get = |name: &str| fields.iter().find(|(k, _)| k.to_string().contains(name)).map(|(_, v)| v.clone());
    assert_eq!(get("keys.count"), Some(Frame::Integer(1)));
    let Some(Frame::Integer(total)) = get("total.allocated") else { panic!() };
    assert!((100_000..2_000_000).contains(&total), "{total}");
}
