//! Where a command's keys are in its arguments, from Redis 7.0's key
//! specifications (`redis_meta`): a begin search (an index, or a keyword
//! searched from a position) and a find-keys rule (a range, or a key
//! count), with flags saying how each key is used. Where a spec cannot say
//! (SORT's BY/GET/STORE, a key count of 0, options whose flags vary) Redis
//! falls back on a per-command function; so does [`keys`], with the same
//! answers. CLIENT TRACKING and COMMAND GETKEYS read keys from here.
//!
//! Dispatch itself (locking, `__tenant:` rewriting, quotas) reads the
//! table's legacy positions (`CommandSpec::key_indexes`), which a unit test
//! checks against the ranges these specifications give.

use smallvec::SmallVec;

use super::CommandSpec;
use super::args::is;
use super::command::{Meta, meta_for};

/// Key-spec flags, in the order Redis replies with them.
pub mod kf {
    pub const RO: u16 = 1;
    pub const RW: u16 = 1 << 1;
    pub const OW: u16 = 1 << 2;
    pub const RM: u16 = 1 << 3;
    pub const ACCESS: u16 = 1 << 4;
    pub const UPDATE: u16 = 1 << 5;
    pub const INSERT: u16 = 1 << 6;
    pub const DELETE: u16 = 1 << 7;
    pub const NOT_KEY: u16 = 1 << 8;
    pub const INCOMPLETE: u16 = 1 << 9;
    pub const VARIABLE_FLAGS: u16 = 1 << 10;

    pub const NAMES: &[(u16, &str)] = &[
        (RO, "RO"),
        (RW, "RW"),
        (OW, "OW"),
        (RM, "RM"),
        (ACCESS, "access"),
        (UPDATE, "update"),
        (INSERT, "insert"),
        (DELETE, "delete"),
        (NOT_KEY, "not_key"),
        (INCOMPLETE, "incomplete"),
        (VARIABLE_FLAGS, "variable_flags"),
    ];
}

/// Where the search for a spec's keys begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// At this argument index.
    Index(i32),
    /// After `keyword`, searched from `startfrom` (negative: from the end, backwards).
    Keyword(&'static str, i32),
    Unknown,
}

/// Which arguments from the beginning are keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Find {
    /// `lastkey` (relative to the beginning; negative: from the end), `step`,
    /// and `limit` (with lastkey -1: a 1/limit share of what remains).
    Range(i32, i32, i32),
    /// `keynumidx` (where the count is), `firstkey` (both relative to the
    /// beginning), `step`.
    Keynum(i32, i32, i32),
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub flags: u16,
    pub begin: Begin,
    pub find: Find,
}

pub const fn ks(flags: u16, begin: Begin, find: Find) -> KeySpec {
    KeySpec { flags, begin, find }
}

/// A key's argument index and its key-spec flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub pos: usize,
    pub flags: u16,
}

pub type Keys = SmallVec<[Key; 8]>;
pub type Positions = SmallVec<[usize; 8]>;

/// The indexes of `argv` that are keys (`argv[0]` is the command name; a
/// container's subcommand is found from `argv[1]`). Arguments that do not
/// parse give no keys, as COMMAND GETKEYS finds none in them. A command
/// Redis does not have (TENANT.*) uses the table's positions.
pub fn positions(spec: &CommandSpec, argv: &[&[u8]]) -> Positions {
    match meta_for(spec, argv) {
        Some(m) => keys(m, argv).iter().map(|k| k.pos).collect(),
        None => spec.key_indexes(argv.len()).collect(),
    }
}

/// Redis's `getKeysFromCommandWithSpecs`: the specs when they are complete
/// and their flags fixed, else the command's own key function.
pub fn keys(meta: &Meta, argv: &[&[u8]]) -> Keys {
    let has_keyspec = meta.keys.iter().any(|k| k.flags & kf::NOT_KEY == 0);
    let variable = meta.keys.iter().any(|k| k.flags & kf::VARIABLE_FLAGS != 0);
    if has_keyspec
        && !variable
        && let Some(k) = from_specs(meta.keys, meta.arity, argv)
    {
        return k;
    }
    if meta.getkeys { by_function(meta.name, argv) } else { Keys::new() }
}

/// Whether COMMAND GETKEYS may find keys in the command at all.
pub fn has_keys(meta: &Meta) -> bool {
    meta.getkeys || meta.keys.iter().any(|k| k.flags & kf::NOT_KEY == 0)
}

/// Redis's `getKeysUsingKeySpecs` (NOT_KEY specs skipped): None when a
/// spec is unknown, incomplete or does not fit the arguments.
fn from_specs(specs: &[KeySpec], arity: i32, argv: &[&[u8]]) -> Option<Keys> {
    let argc = argv.len() as i64;
    let mut out = Keys::new();
    for spec in specs.iter().filter(|s| s.flags & kf::NOT_KEY == 0) {
        let first = match spec.begin {
            Begin::Index(i) => i as i64,
            Begin::Keyword(word, from) => {
                let from = from as i64;
                // As Redis searches: never the last argument going forward,
                // never the first going backward.
                let found = if from > 0 {
                    (from..argc - 1).find(|&i| is(argv[i as usize], word))
                } else {
                    (2..=(argc + from).min(argc - 1)).rev().find(|&i| is(argv[i as usize], word))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
            Begin::Unknown => return None,
        };
        let (last, step) = match spec.find {
            Find::Range(lastkey, step, limit) => {
                let last = match (lastkey as i64, limit as i64) {
                    (l, _) if l >= 0 => first + l,
                    (l, 0) => argc + l,
                    (l, limit) => first + ((argc - first) / limit + l),
                };
                (last, step as i64)
            }
            Find::Keynum(idx, firstkey, step) => {
                let at = first + idx as i64;
                if idx as i64 >= argc || at >= argc {
                    return None;
                }
                let n = std::str::from_utf8(argv[at as usize]).ok().and_then(|s| s.parse::<i64>().ok()).filter(|&n| n >= 0)?;
                let first = first + firstkey as i64;
                let last = first + n - 1;
                if last >= argc || last < first || first >= argc {
                    return None;
                }
                push_range(&mut out, first, last, step as i64, argc, arity, spec.flags);
                if spec.flags & kf::INCOMPLETE != 0 {
                    return None;
                }
                continue;
            }
            Find::Unknown => return None,
        };
        if last >= argc || last < first || first >= argc {
            return None;
        }
        push_range(&mut out, first, last, step, argc, arity, spec.flags);
        if spec.flags & kf::INCOMPLETE != 0 {
            return None;
        }
    }
    Some(out)
}

fn push_range(out: &mut Keys, first: i64, last: i64, step: i64, argc: i64, arity: i32, flags: u16) {
    let mut i = first;
    while i <= last {
        if i < argc || arity >= 0 {
            out.push(Key { pos: i as usize, flags });
        }
        i += step.max(1);
    }
}

/// Redis's per-command key functions, for what the specs cannot say.
fn by_function(name: &str, argv: &[&[u8]]) -> Keys {
    use kf::*;
    let one = |pos, flags| Keys::from_slice(&[Key { pos, flags }]);
    match name {
        "sort" => sort(argv),
        "sort_ro" => one(1, RO | ACCESS),
        "set" => {
            let get = argv.iter().skip(3).any(|a| is(a, "get"));
            one(1, if get { RW | ACCESS | UPDATE } else { OW | UPDATE })
        }
        "bitfield" => one(1, if bitfield_readonly(argv) { RO | ACCESS } else { RW | ACCESS | UPDATE }),
        "georadius" | "georadiusbymember" => {
            let mut k = one(1, 0);
            let mut store = None;
            let mut i = 5;
            while i < argv.len() {
                if (is(argv[i], "store") || is(argv[i], "storedist")) && i + 1 < argv.len() {
                    store = Some(i + 1);
                    i += 1;
                }
                i += 1;
            }
            k.extend(store.map(|pos| Key { pos, flags: 0 }));
            k
        }
        "xread" | "xreadgroup" => xread(argv),
        "zunionstore" | "zinterstore" | "zdiffstore" => counted(argv, Some(1), 2, 3),
        "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop" | "bzmpop" => counted(argv, None, 2, 3),
        "zunion" | "zinter" | "zdiff" | "sintercard" | "zintercard" | "lmpop" | "zmpop" => counted(argv, None, 1, 2),
        _ => Keys::new(),
    }
}

/// Redis's `genericGetKeys`: a count (as `atoi` reads it) of keys from
/// `first`, then the store key.
fn counted(argv: &[&[u8]], store: Option<usize>, count_at: usize, first: usize) -> Keys {
    let num = argv.get(count_at).map_or(0, |a| atoi(a));
    let mut k = Keys::new();
    if num < 1 || num > (argv.len() as i64 - first as i64) {
        return k;
    }
    k.extend((0..num as usize).map(|i| Key { pos: first + i, flags: 0 }));
    k.extend(store.map(|pos| Key { pos, flags: 0 }));
    k
}

/// C's `atoi`: leading blanks, a sign, digits; anything else ends it.
fn atoi(a: &[u8]) -> i64 {
    let s = a.iter().skip_while(|c| c.is_ascii_whitespace()).copied().collect::<Vec<u8>>();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    let n = digits.iter().take_while(|c| c.is_ascii_digit()).fold(0i64, |n, c| n.saturating_mul(10).saturating_add((c - b'0') as i64));
    if neg { -n } else { n }
}

/// SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]:
/// the key, and the last STORE's destination (Redis's `sortGetKeys`).
fn sort(argv: &[&[u8]]) -> Keys {
    use kf::*;
    let mut k = Keys::from_slice(&[Key { pos: 1, flags: RO | ACCESS }]);
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        if is(argv[i], "limit") {
            i += 2;
        } else if is(argv[i], "get") || is(argv[i], "by") {
            i += 1;
        } else if is(argv[i], "store") && i + 1 < argv.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    k.extend(store.map(|pos| Key { pos, flags: OW | UPDATE }));
    k
}

/// BITFIELD is read-only while it only GETs (Redis's `bitfieldGetKeys`).
fn bitfield_readonly(argv: &[&[u8]]) -> bool {
    let mut i = 2;
    while i < argv.len() {
        let rem = argv.len() - i - 1;
        if is(argv[i], "get") && rem >= 2 {
            i += 2;
        } else if is(argv[i], "overflow") && rem >= 1 {
            i += 1;
        } else {
            return false;
        }
        i += 1;
    }
    true
}

/// XREAD/XREADGROUP ... STREAMS k1 k2 ... id1 id2 ...: the first half after
/// the keyword, options before it skipped (Redis's `xreadGetKeys`).
fn xread(argv: &[&[u8]]) -> Keys {
    let mut i = 1;
    let mut at = None;
    while i < argv.len() {
        let a = argv[i];
        if is(a, "block") || is(a, "count") {
            i += 1;
        } else if is(a, "group") {
            i += 2;
        } else if is(a, "noack") {
        } else if is(a, "streams") {
            at = Some(i);
            break;
        } else {
            break;
        }
        i += 1;
    }
    let Some(at) = at else { return Keys::new() };
    let rest = argv.len() - at - 1;
    if rest == 0 || !rest.is_multiple_of(2) {
        return Keys::new();
    }
    (at + 1..at + 1 + rest / 2).map(|pos| Key { pos, flags: 0 }).collect()
}

/// Redis's legacy (first, last, step) from key specs
/// (`populateCommandLegacyRangeSpec`), and whether the keys are movable.
pub fn legacy_range(specs: &[KeySpec]) -> ((i32, i32, i32), bool) {
    if let [KeySpec { flags, begin: Begin::Index(pos), find: Find::Range(last, step, _) }] = specs {
        let last = if *last >= 0 { last + pos } else { *last };
        return ((*pos, last, *step), flags & kf::INCOMPLETE != 0);
    }
    let (mut first, mut last, mut prev, mut movable) = (i32::MAX, 0i32, 0i32, false);
    for s in specs {
        let (Begin::Index(pos), Find::Range(l, step, _)) = (s.begin, s.find) else {
            movable = true;
            continue;
        };
        if step != 1 || (prev != 0 && prev != pos - 1) {
            movable = true;
            continue;
        }
        movable |= s.flags & kf::INCOMPLETE != 0;
        first = first.min(pos);
        let abs = if l >= 0 { l + pos } else { l };
        last = (last as u32).max(abs as u32) as i32;
        prev = last;
    }
    if first == i32::MAX {
        return ((0, 0, 0), !specs.is_empty());
    }
    ((first, last, 1), movable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::lookup;

    fn keys_of(cmd: &str) -> Vec<String> {
        let argv: Vec<&[u8]> = cmd.split(' ').map(|s| s.as_bytes()).collect();
        let (_, spec) = lookup(argv[0]).expect("a command");
        positions(spec, &argv).into_iter().map(|i| String::from_utf8_lossy(argv[i]).into_owned()).collect()
    }

    #[test]
    fn keys_of_commands_whose_keys_move() {
        assert_eq!(keys_of("get k"), ["k"]);
        assert_eq!(keys_of("mset a 1 b 2"), ["a", "b"]);
        assert_eq!(keys_of("zunion 2 a b WITHSCORES"), ["a", "b"]);
        assert_eq!(keys_of("zunionstore d 2 a b"), ["d", "a", "b"]);
        assert_eq!(keys_of("eval x 1 k arg"), ["k"]);
        assert_eq!(keys_of("eval x 0"), Vec::<String>::new());
        assert_eq!(keys_of("eval x 5 k"), Vec::<String>::new());
        assert_eq!(keys_of("blmpop 0 2 a b LEFT"), ["a", "b"]);
        assert_eq!(keys_of("sort k BY w:* LIMIT 0 5 GET h:* STORE dst"), ["k", "dst"]);
        assert_eq!(keys_of("georadius g 1 2 3 km STORE d"), ["g", "d"]);
        assert_eq!(keys_of("xread COUNT 2 STREAMS s1 s2 0 0"), ["s1", "s2"]);
        assert_eq!(keys_of("xreadgroup GROUP g c STREAMS s >"), ["s"]);
        // Redis's spec takes half of what follows STREAMS, rounded down.
        assert_eq!(keys_of("xread STREAMS s1 s2 0"), ["s1"]);
        assert_eq!(keys_of("xread STREAMS s1 s2"), ["s1"]);
        assert_eq!(keys_of("object encoding k"), ["k"]);
        assert_eq!(keys_of("memory usage k SAMPLES 5"), ["k"]);
        assert_eq!(keys_of("xgroup create s g $"), ["s"]);
        assert_eq!(keys_of("client list"), Vec::<String>::new());
        assert_eq!(keys_of("spublish ch m"), Vec::<String>::new());
        assert_eq!(keys_of("georadius g 1 2 3 km STORE d STOREDIST e"), ["g", "d", "e"]);
        assert_eq!(keys_of("sort k STORE"), ["k"]);
    }

    #[test]
    fn legacy_ranges() {
        use kf::*;
        assert_eq!(legacy_range(&[ks(RO, Begin::Index(1), Find::Range(0, 1, 0))]), ((1, 1, 1), false));
        assert_eq!(legacy_range(&[ks(OW, Begin::Index(1), Find::Range(-1, 2, 0))]), ((1, -1, 2), false));
        let zstore = [ks(OW, Begin::Index(1), Find::Range(0, 1, 0)), ks(RO, Begin::Index(2), Find::Keynum(0, 1, 1))];
        assert_eq!(legacy_range(&zstore), ((1, 1, 1), true));
        let lmove = [ks(RW, Begin::Index(1), Find::Range(0, 1, 0)), ks(RW, Begin::Index(2), Find::Range(0, 1, 0))];
        assert_eq!(legacy_range(&lmove), ((1, 2, 1), false));
        assert_eq!(legacy_range(&[]), ((0, 0, 0), false));
    }
}
