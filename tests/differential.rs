//! Differential tests: the same command scripts against Debian's
//! `redis-server` 7.0 (started here on a free loopback port) and Ferrite,
//! requiring identical replies.
//!
//! Scripts live in `tests/differential/*.redis`: `### name` starts a script,
//! every other non-blank line is one command in redis-cli syntax, optionally
//! prefixed by `!sort` (the reply's order is undefined, compare sorted) or
//! `!len` (random content, compare only the reply's length). Each script runs
//! on fresh connections after FLUSHALL. Generated scripts add an arity check
//! for every command in the table.
//!
//! Pub/sub messages (keyspace notifications) are compared through a second
//! connection per server: `!sub <command>` runs a command (PSUBSCRIBE ...)
//! on it, `!events` collects everything it received since and requires the
//! same messages in the same order, and `!sleep <ms>` waits (for expiry).

mod common;

use std::net::SocketAddr;

use common::{Raw, RedisServer, start};
use ferrite::commands::COMMANDS;
use ferrite::protocol::{Argv, Frame, Limits, parse_request};

#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Exact,
    Sorted,
    Len,
    /// Runs on the subscriber connection (replies compared exactly).
    Subscriber,
    /// Compares the messages the subscriber connection received so far.
    Events,
    /// Waits this many milliseconds.
    Sleep(u64),
    /// SLOWLOG GET: compares each entry's arguments and client name, and
    /// the kinds of the rest (ids, times, durations and ports differ).
    Slowlog,
    /// COMMAND INFO/DOCS: Redis's prose (summaries, complexity, history,
    /// key-spec notes) left out, subcommands (in hash order) sorted.
    Command,
}

struct Step {
    args: Vec<Vec<u8>>,
    compare: Compare,
    line: String,
}

struct Script {
    name: String,
    steps: Vec<Step>,
}

fn split(line: &str) -> Vec<Vec<u8>> {
    let mut argv = Argv::default();
    let input = format!("{line}\r\n");
    let limits = Limits { max_bulk_len: i64::MAX, unauthenticated: false };
    parse_request(input.as_bytes(), &limits, &mut argv).expect("script line parses").expect("complete line");
    argv.iter(input.as_bytes()).map(|a| a.to_vec()).collect()
}

fn load_scripts() -> Vec<Script> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut scripts: Vec<Script> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let file = f.file_stem().unwrap().to_string_lossy().to_string();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("//")) {
            if let Some(name) = line.strip_prefix("###") {
                scripts.push(Script { name: format!("{file}: {}", name.trim()), steps: Vec::new() });
                continue;
            }
            let (compare, cmd) = if let Some(r) = line.strip_prefix("!sort ") {
                (Compare::Sorted, r)
            } else if let Some(r) = line.strip_prefix("!len ") {
                (Compare::Len, r)
            } else if let Some(r) = line.strip_prefix("!slowlog ") {
                (Compare::Slowlog, r)
            } else if let Some(r) = line.strip_prefix("!cmd ") {
                (Compare::Command, r)
            } else if let Some(r) = line.strip_prefix("!sub ") {
                (Compare::Subscriber, r)
            } else if line == "!events" {
                (Compare::Events, "PUBLISH __events_end__ end")
            } else if let Some(ms) = line.strip_prefix("!sleep ") {
                (Compare::Sleep(ms.trim().parse().expect("!sleep <ms>")), "PING")
            } else {
                (Compare::Exact, line)
            };
            let script = scripts.last_mut().unwrap_or_else(|| panic!("{file}: command before the first ### header"));
            script.steps.push(Step { args: split(cmd), compare, line: line.to_string() });
        }
    }
    scripts
}

/// Commands whose bare call is not an arity error and would change or
/// describe the server itself rather than data.
const NOT_IN_ARITY_SWEEP: &[&str] = &[
    "shutdown",
    // Write files (Ferrite's tests run without a data directory); covered by tests/persistence.rs.
    "save",
    "bgsave",
    "bgrewriteaof",
    "lastsave",
    "debug",
    "info",
    "command",
    "hello",
    "quit",
    "reset",
    "time",
    "multi",
    "exec",
    "discard",
    "unwatch",
    "ping",
    "randomkey",
    "dbsize",
    "flushall",
    "flushdb",
    "unsubscribe",
    "punsubscribe",
    // Redis draws art; Ferrite, by design, does not (server_misc.redis has its errors).
    "lolwut",
];

/// One key of each type...
const TYPE_SETUP: &[(&str, &str)] =
    &[("string", "SET k v"), ("list", "RPUSH k a b"), ("hash", "HSET k f v"), ("set", "SADD k a b"), ("zset", "ZADD k 1 a 2 b")];

/// ...probed by commands of every family: WRONGTYPE where Redis says so,
/// the right answer elsewhere.
const TYPE_PROBES: &[&str] = &[
    "GET k",
    "STRLEN k",
    "APPEND k x",
    "INCR k",
    "INCRBYFLOAT k 1.5",
    "GETRANGE k 0 1",
    "SETRANGE k 0 x",
    "GETDEL k",
    "GETSET k x",
    "MGET k",
    "LLEN k",
    "LRANGE k 0 -1",
    "LPUSH k x",
    "RPOP k",
    "LINDEX k 0",
    "LMOVE k dst LEFT LEFT",
    "LPOS k a",
    "BLPOP k 0.01",
    "HGET k f",
    "HLEN k",
    "HGETALL k",
    "HSET k g w",
    "HINCRBY k n 1",
    "HKEYS k",
    "HDEL k f",
    "SCARD k",
    "SISMEMBER k a",
    "SADD k z",
    "!sort SMEMBERS k",
    "!sort SUNION k",
    "SREM k a",
    "!sort SRANDMEMBER k 10",
    "ZCARD k",
    "ZSCORE k a",
    "ZRANGE k 0 -1",
    "ZADD k 3 c",
    "ZRANK k a",
    "ZPOPMIN k",
    "!sort ZUNION 1 k",
    "ZINCRBY k 1 a",
    "TYPE k",
    "EXISTS k",
    "OBJECT ENCODING k",
    "TTL k",
    "RENAME k k2",
    "DEL k",
    "COPY k k3",
    "EXPIRE k 100",
];

fn generated_scripts() -> Vec<Script> {
    let mut v = Vec::new();
    for (t, setup) in TYPE_SETUP {
        for probe in TYPE_PROBES {
            let (compare, cmd) = match probe.strip_prefix("!sort ") {
                Some(c) => (Compare::Sorted, c),
                None => (Compare::Exact, *probe),
            };
            let steps = vec![
                Step { args: split(setup), compare: Compare::Exact, line: setup.to_string() },
                Step { args: split(cmd), compare, line: cmd.to_string() },
                Step { args: split("TYPE k"), compare: Compare::Exact, line: "TYPE k".into() },
            ];
            v.push(Script { name: format!("types: {cmd} on a {t}"), steps });
        }
    }
    // Ferrite's own commands (tenancy) have no Redis counterpart to compare with.
    for c in COMMANDS.iter().filter(|c| !NOT_IN_ARITY_SWEEP.contains(&c.name) && c.group != "tenancy") {
        let mut steps = vec![Step { args: vec![c.name.as_bytes().to_vec()], compare: Compare::Exact, line: c.name.into() }];
        if c.arity > 1 {
            let mut args = vec![c.name.as_bytes().to_vec()];
            args.extend((0..c.arity).map(|i| format!("x{i}").into_bytes()));
            steps.push(Step { line: format!("{} with too many arguments", c.name), args, compare: Compare::Exact });
        }
        v.push(Script { name: format!("arity: {}", c.name), steps });
    }
    // COMMAND INFO and DOCS of every entry Redis also has, subcommands
    // included. Containers whose subcommands differ are left out: CLIENT
    // has Ferrite's NO-TOUCH and SETINFO too, ACL and LATENCY lack some of
    // Redis's (users are tenants; no latency graph).
    let ours = ["client", "client|no-touch", "client|setinfo", "acl", "latency"];
    let subs = ferrite::commands::table::SUBCOMMANDS.iter();
    for c in COMMANDS.iter().chain(subs).filter(|c| c.group != "tenancy" && !ours.contains(&c.name)) {
        let steps =
            vec![step(&format!("COMMAND INFO {}", c.name), Compare::Command), step(&format!("COMMAND DOCS {}", c.name), Compare::Command)];
        v.push(Script { name: format!("command: {}", c.name), steps });
    }
    v
}

fn step(line: &str, compare: Compare) -> Step {
    Step { args: split(line), compare, line: line.chars().take(80).collect() }
}

/// One command adding `n` members (or elements) made by `member(i)`.
fn bulk_add(cmd: &str, n: usize, member: impl Fn(usize) -> String) -> Step {
    let mut args = split(cmd);
    args.extend((0..n).flat_map(|i| member(i).split(' ').map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>()));
    Step { args, compare: Compare::Exact, line: format!("{cmd} ... ({n} members)") }
}

/// Collections past the sizes where Ferrite splits them into shared parts
/// and chunks (4096 members), with ties in the scores and some members
/// removed, probed by rank, range, position and membership.
fn big_collection_scripts() -> Vec<Script> {
    const N: usize = 20_000;
    let probes = |setup: Step, lines: &[&str]| -> Vec<Step> {
        let probe = |l: &&str| match (l.strip_prefix("!sort "), l.strip_prefix("!len ")) {
            (Some(c), _) => step(c, Compare::Sorted),
            (_, Some(c)) => step(c, Compare::Len),
            _ => step(l, Compare::Exact),
        };
        std::iter::once(setup).chain(lines.iter().map(probe)).collect()
    };
    let zset = probes(
        bulk_add("ZADD z", N, |i| format!("{} m{i}", i % 997)),
        &[
            "ZREM z m5 m9000 m19999 nope",
            "ZCARD z",
            "ZRANK z m0",
            "ZRANK z m12345",
            "ZREVRANK z m777",
            "ZRANGEBYSCORE z 100 102 WITHSCORES",
            "ZRANGEBYSCORE z (100 (102",
            "ZREVRANGEBYSCORE z 996 (995 LIMIT 3 5",
            "ZRANGE z 9990 10010 WITHSCORES",
            "ZRANGE z -5 -1",
            "ZCOUNT z -inf 500",
            "ZCOUNT z (996 +inf",
            "ZADD z 5000.5 m3 -1 m4",
            "ZRANK z m3",
            "ZRANGE z 0 2 WITHSCORES",
            "ZPOPMAX z 3",
            "ZREVRANGE z 100 105 WITHSCORES",
            "ZRANGE z 12000 12003 REV",
        ],
    );
    // All scores equal: lex ranges are defined.
    let lex = probes(
        bulk_add("ZADD lex", N, |i| format!("0 m{i}")),
        &[
            "ZRANGEBYLEX lex [m1000 [m1005",
            "ZRANGEBYLEX lex (m1999 + LIMIT 0 4",
            "ZREVRANGEBYLEX lex [m3 - LIMIT 2 3",
            "ZRANGEBYLEX lex [z [a",
            "ZRANGEBYLEX lex (m5 (m5",
            "ZLEXCOUNT lex [m1 (m2",
            "ZREMRANGEBYLEX lex [m5 (m6",
            "ZCARD lex",
            "ZRANGEBYLEX lex [m5 [m6",
            "ZRANGE lex 100 103",
            "ZREVRANGE lex 100 103 WITHSCORES",
        ],
    );
    let list = probes(
        bulk_add("RPUSH l", N, |i| format!("e{i}")),
        &[
            "LINDEX l 12345",
            "LRANGE l 9995 10005",
            "LINSERT l BEFORE e15000 x",
            "LREM l 1 e7",
            "LSET l 4096 y",
            "LPOS l e19999",
            "LTRIM l 100 -100",
            "LLEN l",
            "LRANGE l 0 3",
            "LRANGE l -3 -1",
        ],
    );
    let hash = probes(
        bulk_add("HSET h", N, |i| format!("f{i} v{i}")),
        &["HDEL h f1 f4097 nope", "HLEN h", "HGET h f12345", "HEXISTS h f4097", "HINCRBY h n 5", "!sort HKEYS h", "!len HRANDFIELD h 7"],
    );
    let set = probes(
        bulk_add("SADD s", N, |i| format!("m{i}")),
        &[
            "SREM s m1 m4097 nope",
            "SCARD s",
            "SISMEMBER s m12345",
            "SISMEMBER s m4097",
            "!sort SMEMBERS s",
            "!len SRANDMEMBER s 9",
            "!len SPOP s 5",
            "SCARD s",
        ],
    );
    [("sorted set", zset), ("sorted set with equal scores", lex), ("list", list), ("hash", hash), ("set", set)]
        .into_iter()
        .map(|(t, steps)| Script { name: format!("big collections: a {t} of {N}"), steps })
        .collect()
}

fn replies_for(args: &[Vec<u8>]) -> usize {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    match name.as_str() {
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ssubscribe" | "sunsubscribe" => (args.len() - 1).max(1),
        _ => 1,
    }
}

fn normalise(f: Frame, c: Compare) -> Frame {
    match c {
        Compare::Exact | Compare::Subscriber | Compare::Events | Compare::Sleep(_) => f,
        Compare::Sorted => match f {
            Frame::Array(v) if v.len() == 2 && matches!(v[1], Frame::Array(_)) && matches!(v[0], Frame::Bulk(_)) => {
                // SCAN-style [cursor, items]: keep the cursor, sort the items.
                let mut it = v.into_iter();
                let cursor = it.next().unwrap();
                Frame::Array(vec![cursor, it.next().unwrap().sorted()])
            }
            other => other.sorted(),
        },
        Compare::Slowlog => match f {
            Frame::Array(entries) => Frame::Array(entries.into_iter().map(slowlog_entry).collect()),
            other => other,
        },
        Compare::Command => command_reply(f),
        Compare::Len => match f {
            Frame::Array(v) => Frame::Integer(v.len() as i64),
            Frame::Bulk(b) => Frame::Integer(b.len() as i64),
            Frame::Map(m) => Frame::Integer(m.len() as i64),
            other => other,
        },
    }
}

/// A COMMAND INFO or DOCS reply without Redis's prose, which Ferrite does
/// not copy (`summary`, `complexity`, `history`, `replaced_by`, key-spec
/// `notes`), and with subcommands sorted by name (Redis lists them in its
/// hash table's order). RESP2 maps are flat arrays of names and values.
fn command_reply(f: Frame) -> Frame {
    const PROSE: &[&[u8]] = &[b"summary", b"complexity", b"history", b"replaced_by", b"notes"];
    let is_field = |f: &Frame, names: &[&[u8]]| matches!(f, Frame::Bulk(b) if names.contains(&b.as_slice()));
    let sort_pairs = |v: Vec<Frame>| {
        let mut pairs: Vec<(Frame, Frame)> = Vec::new();
        let mut it = v.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        pairs.sort_by_key(|(k, _)| k.to_string());
        Frame::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
    };
    match f {
        Frame::Array(v) => {
            let looks_like_map = v.len() % 2 == 0 && v.iter().step_by(2).any(|k| is_field(k, PROSE) || is_field(k, &[b"group", b"flags"]));
            if looks_like_map {
                let mut out = Vec::new();
                let mut it = v.into_iter();
                while let (Some(k), Some(val)) = (it.next(), it.next()) {
                    if is_field(&k, PROSE) {
                        continue;
                    }
                    let val = match (is_field(&k, &[b"subcommands"]), val) {
                        (true, Frame::Array(s)) => sort_pairs(s.into_iter().map(command_reply).collect()),
                        (_, val) => command_reply(val),
                    };
                    out.extend([k, val]);
                }
                return Frame::Array(out);
            }
            let mut v: Vec<Frame> = v.into_iter().map(command_reply).collect();
            // A COMMAND INFO entry: its tenth field lists the subcommands.
            if v.len() == 10 && matches!(v[0], Frame::Bulk(_)) && matches!(v[1], Frame::Integer(_)) {
                let subs = std::mem::replace(&mut v[9], Frame::Null);
                v[9] = subs.sorted();
            }
            Frame::Array(v)
        }
        Frame::Map(m) => {
            let mut m: Vec<(Frame, Frame)> =
                m.into_iter().filter(|(k, _)| !is_field(k, PROSE)).map(|(k, v)| (k, command_reply(v))).collect();
            m.sort_by_key(|(k, _)| k.to_string());
            Frame::Map(m)
        }
        Frame::Set(v) => Frame::Set(v.into_iter().map(command_reply).collect()),
        other => other,
    }
}

/// A SLOWLOG entry with what differs between two servers replaced by its
/// kind: id, time and duration by 0, the client's address by `ip:port`.
fn slowlog_entry(e: Frame) -> Frame {
    let Frame::Array(v) = e else { return e };
    let kind = |f: &Frame| match f {
        Frame::Integer(_) => Frame::Integer(0),
        Frame::Bulk(b) if b.contains(&b':') => common::bulk("ip:port"),
        other => other.clone(),
    };
    Frame::Array(v.iter().enumerate().map(|(i, f)| if i == 3 || i == 5 { f.clone() } else { kind(f) }).collect())
}

/// Each server's subscriber connection, subscribed to the end marker
/// `!events` publishes after the messages it waits for.
fn subscribers(redis: SocketAddr, ferrite: SocketAddr) -> (Raw, Raw) {
    let mut conns = (Raw::connect(redis), Raw::connect(ferrite));
    for c in [&mut conns.0, &mut conns.1] {
        c.cmd(&["SUBSCRIBE", "__events_end__"]);
    }
    conns
}

/// The messages a subscriber received, up to the end marker.
fn messages_until_end(c: &mut Raw) -> Vec<Frame> {
    let mut got = Vec::new();
    loop {
        let m = c.read();
        if matches!(&m, Frame::Array(v) if v.get(1) == Some(&common::bulk("__events_end__"))) {
            return got;
        }
        got.push(m);
    }
}

fn run_script(s: &Script, redis: SocketAddr, ferrite: SocketAddr, failures: &mut Vec<String>) {
    let mut r = Raw::connect(redis);
    let mut f = Raw::connect(ferrite);
    r.cmd(&["FLUSHALL"]);
    f.cmd(&["FLUSHALL"]);
    let mut subs: Option<(Raw, Raw)> = None;
    for step in &s.steps {
        let bytes = common::encode(step.args.iter().map(|a| a.as_slice()));
        // Commands run on the main connections, or (`!sub`) the subscribers.
        let (cr, cf) = match step.compare {
            Compare::Sleep(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                continue;
            }
            Compare::Events => {
                let (rs, fs) = subs.get_or_insert_with(|| subscribers(redis, ferrite));
                r.cmd(&["PUBLISH", "__events_end__", "end"]);
                f.cmd(&["PUBLISH", "__events_end__", "end"]);
                let (a, b) = (messages_until_end(rs), messages_until_end(fs));
                if a != b {
                    // From the first difference on.
                    let same = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
                    let show = |v: &[Frame]| v[same..].iter().take(12).map(|m| format!("\n        {m}")).collect::<String>();
                    failures.push(format!(
                        "[{}] {}: the same {same} messages, then\n    redis:{}\n    ferrite:{}",
                        s.name,
                        step.line,
                        show(&a),
                        show(&b)
                    ));
                    return;
                }
                continue;
            }
            Compare::Subscriber => {
                let (rs, fs) = subs.get_or_insert_with(|| subscribers(redis, ferrite));
                (rs, fs)
            }
            _ => (&mut r, &mut f),
        };
        cr.send(&bytes);
        cf.send(&bytes);
        for _ in 0..replies_for(&step.args) {
            let (a, b) = (normalise(cr.read(), step.compare), normalise(cf.read(), step.compare));
            if a != b {
                failures.push(format!("[{}] {}\n    redis:   {a}\n    ferrite: {b}", s.name, step.line));
                return;
            }
        }
    }
}

#[test]
fn replies_match_redis() {
    let redis = RedisServer::start();
    let ferrite = start();
    let mut scripts = load_scripts();
    scripts.extend(generated_scripts());
    scripts.extend(big_collection_scripts());
    let mut failures = Vec::new();
    for s in &scripts {
        run_script(s, redis.addr, ferrite.addr, &mut failures);
    }
    assert!(failures.is_empty(), "{} of {} scripts differ:\n{}", failures.len(), scripts.len(), failures.join("\n"));
    assert!(scripts.len() >= 400, "only {} scripts", scripts.len());
}
