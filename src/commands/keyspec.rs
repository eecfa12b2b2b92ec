//! Where a command's keys are in its arguments: the table's fixed
//! positions, or for `MOVABLEKEYS` entries the rule Redis's key
//! specifications give (a key count, a keyword, an option naming a
//! destination). CLIENT TRACKING and COMMAND GETKEYS read keys from here.

use smallvec::SmallVec;

use super::CommandSpec;
use super::args::is;
use super::flags::MOVABLEKEYS;

pub type Positions = SmallVec<[usize; 8]>;

/// The indexes of `argv` that are keys (`argv[0]` is the command name).
/// Arguments that do not parse (a key count that is not a number or runs
/// past the end) give the keys found before them, or none.
pub fn positions(spec: &CommandSpec, argv: &[&[u8]]) -> Positions {
    if !spec.has(MOVABLEKEYS) {
        return spec.key_indexes(argv.len()).collect();
    }
    match spec.name {
        "lmpop" | "zmpop" | "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" => counted(argv, 1),
        "blmpop" | "bzmpop" | "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro" => counted(argv, 2),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut p = counted(argv, 2);
            if !p.is_empty() {
                p.insert(0, 1);
            }
            p
        }
        "sort" => sort(argv),
        "georadius" | "georadiusbymember" => with_store(argv, 1, &["store", "storedist"]),
        "xread" | "xreadgroup" => streams(argv),
        _ => Positions::new(),
    }
}

/// `numkeys` at `at`, then that many keys.
fn counted(argv: &[&[u8]], at: usize) -> Positions {
    let n = argv.get(at).and_then(|a| std::str::from_utf8(a).ok()).and_then(|s| s.parse::<usize>().ok());
    match n {
        Some(n) if n > 0 && at + n < argv.len() => (at + 1..=at + n).collect(),
        _ => Positions::new(),
    }
}

/// SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]:
/// the key, and the last STORE's destination (as Redis's `sortGetKeys`).
fn sort(argv: &[&[u8]]) -> Positions {
    let mut p = Positions::new();
    if argv.len() < 2 {
        return p;
    }
    p.push(1);
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let skip = if is(argv[i], "limit") {
            2
        } else if is(argv[i], "get") || is(argv[i], "by") {
            1
        } else if is(argv[i], "store") {
            if i + 1 < argv.len() {
                store = Some(i + 1);
            }
            1
        } else {
            0
        };
        i += skip + 1;
    }
    p.extend(store);
    p
}

/// The key at `first`, and the argument after the last of `options`.
fn with_store(argv: &[&[u8]], first: usize, options: &[&str]) -> Positions {
    let mut p = Positions::new();
    if argv.len() <= first {
        return p;
    }
    p.push(first);
    let store = (first + 1..argv.len().saturating_sub(1)).rev().find(|&i| options.iter().any(|o| is(argv[i], o)));
    p.extend(store.map(|i| i + 1));
    p
}

/// XREAD/XREADGROUP ... STREAMS k1 k2 ... id1 id2 ...: the first half after
/// the keyword.
fn streams(argv: &[&[u8]]) -> Positions {
    let Some(at) = argv.iter().position(|a| is(a, "streams")) else { return Positions::new() };
    let rest = argv.len() - at - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Positions::new();
    }
    (at + 1..at + 1 + rest / 2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lookup;

    fn keys(cmd: &str) -> Vec<String> {
        let argv: Vec<&[u8]> = cmd.split(' ').map(|s| s.as_bytes()).collect();
        let (_, spec) = lookup(argv[0]).expect("a command");
        positions(spec, &argv).into_iter().map(|i| String::from_utf8_lossy(argv[i]).into_owned()).collect()
    }

    #[test]
    fn keys_of_commands_whose_keys_move() {
        assert_eq!(keys("get k"), ["k"]);
        assert_eq!(keys("mset a 1 b 2"), ["a", "b"]);
        assert_eq!(keys("zunion 2 a b WITHSCORES"), ["a", "b"]);
        assert_eq!(keys("zunionstore d 2 a b"), ["d", "a", "b"]);
        assert_eq!(keys("eval x 1 k arg"), ["k"]);
        assert_eq!(keys("eval x 0"), Vec::<String>::new());
        assert_eq!(keys("eval x 5 k"), Vec::<String>::new());
        assert_eq!(keys("blmpop 0 2 a b LEFT"), ["a", "b"]);
        assert_eq!(keys("sort k BY w:* LIMIT 0 5 GET h:* STORE dst"), ["k", "dst"]);
        assert_eq!(keys("georadius g 1 2 3 km STORE d"), ["g", "d"]);
        assert_eq!(keys("xread COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
        assert_eq!(keys("xreadgroup GROUP g c STREAMS s >"), ["s"]);
        assert_eq!(keys("xread STREAMS s1 s2 0"), Vec::<String>::new());
    }
}
