//! SLOWLOG: each space's own bounded log of slow commands, and the
//! thresholds dispatch compares a command's duration with.
//!
//! Dispatch times every command already (for `INFO commandstats`); past
//! that it does one relaxed load and one integer compare
//! ([`Thresholds::interesting`]), and only a command at least that long
//! takes the log's lock. A tenant's connections log into their tenant's
//! space, every admin connection into the global space's, so a tenant's
//! SLOWLOG shows its own commands only.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};

use parking_lot::Mutex;

use crate::config::ServerConfig;

/// Redis's `SLOWLOG_ENTRY_MAX_ARGC`: the 32nd logged argument says how many more there were.
pub const MAX_ARGC: usize = 32;
/// Redis's `SLOWLOG_ENTRY_MAX_STRING`: longer arguments are cut, saying how many bytes more.
pub const MAX_STRING: usize = 128;

/// What the per-command path reads, mirrored from the configuration.
#[derive(Debug)]
pub struct Thresholds {
    /// The smallest duration (µs) anything wants to hear of: the slowlog's
    /// threshold or the latency monitor's, whichever is lower (`u64::MAX`: none).
    from_us: AtomicU64,
    /// `slowlog-log-slower-than` (-1: off).
    pub slowlog_us: AtomicI64,
    /// `slowlog-max-len`.
    pub slowlog_max_len: AtomicU64,
    /// `latency-monitor-threshold` in ms (0: off).
    pub latency_ms: AtomicU64,
    /// `tracking-table-max-keys` (0: no limit).
    pub tracking_max_keys: AtomicU64,
}

impl Thresholds {
    pub fn new(cfg: &ServerConfig) -> Self {
        let t = Thresholds {
            from_us: AtomicU64::new(u64::MAX),
            slowlog_us: AtomicI64::new(-1),
            slowlog_max_len: AtomicU64::new(0),
            latency_ms: AtomicU64::new(0),
            tracking_max_keys: AtomicU64::new(0),
        };
        t.store(cfg);
        t
    }

    pub fn store(&self, cfg: &ServerConfig) {
        self.slowlog_us.store(cfg.slowlog_log_slower_than, Relaxed);
        self.slowlog_max_len.store(cfg.slowlog_max_len, Relaxed);
        self.latency_ms.store(cfg.latency_monitor_threshold, Relaxed);
        self.tracking_max_keys.store(cfg.tracking_table_max_keys, Relaxed);
        let slow = u64::try_from(cfg.slowlog_log_slower_than).unwrap_or(u64::MAX);
        let latency = match cfg.latency_monitor_threshold {
            0 => u64::MAX,
            ms => ms.saturating_mul(1000),
        };
        self.from_us.store(slow.min(latency), Relaxed);
    }

    /// Whether a command that took `us` microseconds is worth a look.
    #[inline]
    pub fn interesting(&self, us: u64) -> bool {
        us >= self.from_us.load(Relaxed)
    }

    /// The latency monitor's sample for a command that took `us`
    /// microseconds, in ms, if it takes one.
    pub fn latency_ms(&self, us: u64) -> Option<u64> {
        let t = self.latency_ms.load(Relaxed);
        (t > 0 && us / 1000 >= t).then_some(us / 1000)
    }

    /// Whether the slowlog takes a command that took `us` microseconds.
    pub fn slow(&self, us: u64) -> bool {
        let t = self.slowlog_us.load(Relaxed);
        t >= 0 && us >= t as u64
    }
}

/// One logged command, as SLOWLOG GET shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix seconds when it was logged.
    pub time: u64,
    pub duration_us: u64,
    /// At most [`MAX_ARGC`] arguments of at most [`MAX_STRING`] bytes
    /// (plus Redis's note of what was cut), secrets redacted.
    pub argv: Vec<Vec<u8>>,
    pub addr: String,
    pub name: String,
}

/// A space's slowlog: newest first, at most `slowlog-max-len` entries
/// (trimmed when one is added, as Redis does).
#[derive(Debug, Default)]
pub struct Slowlog {
    inner: Mutex<Inner>,
    /// What its entries hold: a tenant's slowlog is its memory.
    bytes: std::sync::atomic::AtomicUsize,
}

/// What an entry holds.
fn entry_bytes(e: &Entry) -> usize {
    e.argv.iter().map(|a| a.len() + 24).sum::<usize>() + e.addr.len() + e.name.len() + 96
}

#[derive(Debug, Default)]
struct Inner {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl Slowlog {
    /// Logs a command (its arguments already bounded and redacted, see
    /// [`logged_argv`]) and drops the oldest entries past `max_len`.
    pub fn push(&self, mut entry: Entry, max_len: u64) {
        let mut g = self.inner.lock();
        entry.id = g.next_id;
        g.next_id += 1;
        self.bytes.fetch_add(entry_bytes(&entry), Relaxed);
        g.entries.push_front(entry);
        let max = usize::try_from(max_len).unwrap_or(usize::MAX);
        while g.entries.len() > max {
            let dropped = g.entries.pop_back().expect("longer than max");
            self.bytes.fetch_sub(entry_bytes(&dropped), Relaxed);
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.inner.lock().entries.clear();
        self.bytes.store(0, Relaxed);
    }

    /// The newest `count` entries.
    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.inner.lock().entries.iter().take(count).cloned().collect()
    }
}

/// The redacted placeholder Redis logs instead of a secret.
pub const REDACTED: &[u8] = b"(redacted)";

/// Which arguments of a command are secrets: AUTH's (the password, and
/// the user name with it, as Redis), HELLO's `AUTH user pass`, and every
/// argument of a tenant-management command (passwords, limits, modules).
fn redacted(name: &str, argv: &[&[u8]], tenancy: bool) -> Vec<bool> {
    let mut r = vec![false; argv.len()];
    match name {
        _ if tenancy => r.iter_mut().skip(1).for_each(|x| *x = true),
        "auth" => {
            r[1] = true;
            if argv.len() == 3 {
                r[2] = true;
            }
        }
        "hello" => {
            // Redis redacts as it parses; this redacts every AUTH pair
            // whatever comes before it, so an error first never leaks one.
            let mut j = 1;
            while j < argv.len() {
                let more = argv.len() - 1 - j;
                if argv[j].eq_ignore_ascii_case(b"auth") && more >= 2 {
                    r[j + 1] = true;
                    r[j + 2] = true;
                    j += 2;
                } else if argv[j].eq_ignore_ascii_case(b"setname") && more >= 1 {
                    j += 1;
                }
                j += 1;
            }
        }
        _ => {}
    }
    r
}

/// The arguments a slowlog entry keeps: secrets redacted, at most
/// [`MAX_ARGC`] (the last saying how many more there were), each at most
/// [`MAX_STRING`] bytes (saying how many more there were), as Redis's
/// `slowlogCreateEntry`.
pub fn logged_argv(name: &str, argv: &[&[u8]], tenancy: bool) -> Vec<Vec<u8>> {
    let secret = redacted(name, argv, tenancy);
    let kept = argv.len().min(MAX_ARGC);
    (0..kept)
        .map(|j| {
            if kept != argv.len() && j == kept - 1 {
                format!("... ({} more arguments)", argv.len() - kept + 1).into_bytes()
            } else if secret[j] {
                REDACTED.to_vec()
            } else if argv[j].len() > MAX_STRING {
                let mut s = argv[j][..MAX_STRING].to_vec();
                s.extend_from_slice(format!("... ({} more bytes)", argv[j].len() - MAX_STRING).as_bytes());
                s
            } else {
                argv[j].to_vec()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry { id: 0, time: 0, duration_us: 0, argv: vec![], addr: String::new(), name: String::new() }
    }

    #[test]
    fn bounded_by_max_len_newest_first() {
        let log = Slowlog::default();
        for _ in 0..5 {
            log.push(entry(), 3);
        }
        assert_eq!(log.len(), 3);
        assert_eq!(log.newest(10).iter().map(|e| e.id).collect::<Vec<_>>(), vec![4, 3, 2]);
        log.reset();
        assert!(log.is_empty());
        log.push(entry(), 3);
        assert_eq!(log.newest(1)[0].id, 5);
    }

    #[test]
    fn arguments_cut_as_redis() {
        let long = [b'x'; 130];
        let args: Vec<&[u8]> = std::iter::once(&b"rpush"[..]).chain(std::iter::repeat_n(&long[..], 40)).collect();
        let v = logged_argv("rpush", &args, false);
        assert_eq!(v.len(), 32);
        assert_eq!(v[31], b"... (10 more arguments)");
        assert_eq!(v[1].len(), 128 + b"... (2 more bytes)".len());
        assert!(v[1].ends_with(b"... (2 more bytes)"));
    }

    #[test]
    fn secrets_redacted() {
        assert_eq!(logged_argv("auth", &[b"auth", b"pw"], false), vec![b"auth".to_vec(), REDACTED.to_vec()]);
        assert_eq!(logged_argv("auth", &[b"auth", b"u", b"pw"], false)[1..], [REDACTED.to_vec(), REDACTED.to_vec()]);
        let v = logged_argv("hello", &[b"hello", b"3", b"SETNAME", b"auth", b"AUTH", b"u", b"p"], false);
        assert_eq!(v[3], b"auth");
        assert_eq!(v[5..], [REDACTED.to_vec(), REDACTED.to_vec()]);
        let v = logged_argv("tenant.create", &[b"tenant.create", b"acme", b"PASSWORD", b"s"], true);
        assert!(v[1..].iter().all(|a| a == REDACTED));
    }

    #[test]
    fn thresholds() {
        let mut cfg = ServerConfig::default();
        let t = Thresholds::new(&cfg);
        assert!(!t.interesting(9_999) && t.interesting(10_000) && t.slow(10_000));
        cfg.slowlog_log_slower_than = -1;
        t.store(&cfg);
        assert!(!t.interesting(u64::MAX - 1));
        cfg.latency_monitor_threshold = 2;
        t.store(&cfg);
        assert!(t.interesting(2_000) && !t.slow(2_000));
    }
}
