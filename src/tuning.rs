//! Redis's encoding parameters (`hash-max-listpack-entries`, its
//! `hash-max-ziplist-entries` alias, `list-max-listpack-size`, ...). Clients
//! and test suites set them at start-up, so CONFIG GET/SET must take them
//! with Redis's names, defaults, bounds and errors; Ferrite keeps and
//! reports them (its own encodings do not depend on them). A tenant may set
//! them too: its values are its own, and no other tenant sees them.

/// One parameter: its names (the second is the pre-7.0 alias), default
/// and bounds, and whether it takes memory units (`4kb`).
pub struct Tunable {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub memory: bool,
}

const LONG: i64 = i64::MAX;
const INT: i64 = i32::MAX as i64;

macro_rules! tunable {
    ($name:literal, $alias:expr, $default:expr, $min:expr, $max:expr, $memory:expr) => {
        Tunable { name: $name, alias: $alias, default: $default, min: $min, max: $max, memory: $memory }
    };
}

/// Redis 7.0's encoding parameters and their defaults.
pub static TUNABLES: &[Tunable] = &[
    tunable!("hash-max-listpack-entries", Some("hash-max-ziplist-entries"), 512, 0, LONG, false),
    tunable!("hash-max-listpack-value", Some("hash-max-ziplist-value"), 64, 0, LONG, false),
    tunable!("list-max-listpack-size", Some("list-max-ziplist-size"), -2, i32::MIN as i64, INT, false),
    tunable!("list-compress-depth", None, 0, 0, INT, false),
    tunable!("set-max-intset-entries", None, 512, 0, LONG, false),
    tunable!("zset-max-listpack-entries", Some("zset-max-ziplist-entries"), 128, 0, LONG, false),
    tunable!("zset-max-listpack-value", Some("zset-max-ziplist-value"), 64, 0, LONG, false),
    tunable!("stream-node-max-bytes", None, 4096, 0, LONG, true),
    tunable!("stream-node-max-entries", None, 100, 0, LONG, false),
    tunable!("hll-sparse-max-bytes", None, 3000, 0, LONG, true),
    tunable!("active-defrag-max-scan-fields", None, 1000, 1, LONG, false),
];

/// Where the parameters the server reads on a hot path (XADD, PFADD) are in
/// `TUNABLES`, so no request looks them up by name.
pub const STREAM_NODE_MAX_BYTES: usize = 7;
pub const STREAM_NODE_MAX_ENTRIES: usize = 8;
pub const HLL_SPARSE_MAX_BYTES: usize = 9;

/// The index of the parameter named `name` (either of its names).
pub fn find(name: &str) -> Option<usize> {
    TUNABLES.iter().position(|t| t.name.eq_ignore_ascii_case(name) || t.alias.is_some_and(|a| a.eq_ignore_ascii_case(name)))
}

/// Every name a CONFIG GET pattern can match, with the parameter it names.
pub fn names() -> impl Iterator<Item = (&'static str, usize)> {
    TUNABLES.iter().enumerate().flat_map(|(i, t)| std::iter::once((t.name, i)).chain(t.alias.map(|a| (a, i))))
}

/// A set of values, one per parameter (the server's, or a tenant's own).
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning(Vec<i64>);

impl Default for Tuning {
    fn default() -> Self {
        Tuning(TUNABLES.iter().map(|t| t.default).collect())
    }
}

impl Tuning {
    pub fn get(&self, i: usize) -> i64 {
        self.0[i]
    }

    /// Sets parameter `i` from CONFIG SET's text; the error is Redis's
    /// text after `CONFIG SET failed (...) - `.
    pub fn set(&mut self, i: usize, value: &str) -> Result<(), String> {
        self.0[i] = parse(&TUNABLES[i], value)?;
        Ok(())
    }
}

fn parse(t: &Tunable, v: &str) -> Result<i64, String> {
    let n = if t.memory {
        crate::config::parse_size(v).ok().and_then(|n| i64::try_from(n).ok()).ok_or("argument must be a memory value")?
    } else {
        v.parse::<i64>().map_err(|_| "argument couldn't be parsed into an integer")?
    };
    if n < t.min || n > t.max {
        return Err(format!("argument must be between {} and {} inclusive", t.min, t.max));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_share_a_value_and_bounds_hold() {
        let mut t = Tuning::default();
        let i = find("HASH-MAX-ZIPLIST-ENTRIES").unwrap();
        assert_eq!(Some(i), find("hash-max-listpack-entries"));
        t.set(i, "10").unwrap();
        assert_eq!(t.get(i), 10);
        assert!(t.set(i, "-1").unwrap_err().contains("between 0 and"));
        assert!(t.set(i, "x").unwrap_err().contains("parsed"));
        let mem = find("stream-node-max-bytes").unwrap();
        t.set(mem, "4kb").unwrap();
        assert_eq!(t.get(mem), 4096);
    }

    #[test]
    fn the_hot_path_indexes_name_their_parameters() {
        assert_eq!(find("stream-node-max-bytes"), Some(STREAM_NODE_MAX_BYTES));
        assert_eq!(find("stream-node-max-entries"), Some(STREAM_NODE_MAX_ENTRIES));
        assert_eq!(find("hll-sparse-max-bytes"), Some(HLL_SPARSE_MAX_BYTES));
    }
}
