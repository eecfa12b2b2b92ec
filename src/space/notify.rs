//! Keyspace notifications, as Redis 7.0 publishes them, per space.
//!
//! `notify-keyspace-events` selects classes of events (Redis's flag letters
//! and bit values); an event of a selected class is published on
//! `__keyspace@<db>__:<key>` (the message is the event's name) when `K` is
//! set, and on `__keyevent@<db>__:<event>` (the message is the key) when `E`
//! is. Each space publishes into its own pub/sub registry only, so a
//! tenant's events reach its own subscribers and nobody else's, and `<db>`
//! is the space's own logical database.
//!
//! The admin's `CONFIG SET` sets the server's default ([`Defaults`]); a
//! tenant's own setting (its CONFIG SET, or TENANT.UPDATE ... NOTIFY)
//! overrides it for its space alone ([`Events`]). A command pays one or two
//! relaxed loads to learn that nothing is selected, and one more to learn
//! that nobody is subscribed before any channel name is formatted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::pubsub::{Delivery, PubSub};
use crate::config::ClassLimit;
use crate::store::keyspace::{Change, Observer};

/// Redis's classes (`server.h`'s `NOTIFY_*`, the same bits).
pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
/// `A`: every class but key misses and new keys.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's error for a letter that names no class.
pub const BAD_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// Parses a `notify-keyspace-events` value; None when a character names no
/// class.
pub fn parse(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0, |flags, c| {
        Some(
            flags
                | match c {
                    b'A' => ALL,
                    b'g' => GENERIC,
                    b'$' => STRING,
                    b'l' => LIST,
                    b's' => SET,
                    b'h' => HASH,
                    b'z' => ZSET,
                    b'x' => EXPIRED,
                    b'e' => EVICTED,
                    b'K' => KEYSPACE,
                    b'E' => KEYEVENT,
                    b't' => STREAM,
                    b'm' => KEY_MISS,
                    b'd' => MODULE,
                    b'n' => NEW,
                    _ => return None,
                },
        )
    })
}

/// The canonical form `CONFIG GET` shows: `A` (or the classes it covers in
/// Redis's order, `n` last), then `K`, `E`, `m`; so "KEA" reads back as
/// "AKE". As in Redis, `n` is not shown next to `A` (it is still set).
pub fn format(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        let classes = [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ];
        s.extend(classes.iter().filter(|(f, _)| flags & f != 0).map(|(_, c)| c));
    }
    for (f, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s
}

/// What every space of one server shares: the server's default classes
/// (the admin's `notify-keyspace-events`) and the pub/sub class of
/// `client-output-buffer-limit`, which events are delivered under as
/// PUBLISH's messages are.
#[derive(Debug, Default)]
pub struct Defaults {
    flags: AtomicU32,
    limit: [AtomicU64; 3],
}

impl Defaults {
    pub fn set(&self, flags: u32, limit: ClassLimit) {
        self.flags.store(flags, Relaxed);
        self.limit[0].store(limit.hard, Relaxed);
        self.limit[1].store(limit.soft, Relaxed);
        self.limit[2].store(limit.soft_secs, Relaxed);
    }

    pub fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    fn limit(&self) -> ClassLimit {
        ClassLimit { hard: self.limit[0].load(Relaxed), soft: self.limit[1].load(Relaxed), soft_secs: self.limit[2].load(Relaxed) }
    }
}

/// Set in [`Events::own`] when the space has a setting of its own.
const OWN: u32 = 1 << 31;

/// One space's selection: its own setting, or the server's default.
#[derive(Debug, Default)]
pub struct Events {
    own: AtomicU32,
    defaults: Arc<Defaults>,
}

impl Events {
    /// How messages to this space's clients are queued: the pub/sub class
    /// limit, at `now_ms`.
    pub fn delivery(&self, now_ms: u64) -> Delivery {
        Delivery { limit: self.defaults.limit(), now_ms }
    }

    pub fn new(defaults: Arc<Defaults>) -> Events {
        Events { own: AtomicU32::new(0), defaults }
    }

    /// The classes in effect: the space's own, or the server's default.
    #[inline(always)]
    pub fn flags(&self) -> u32 {
        let own = self.own.load(Relaxed);
        if own & OWN != 0 { own & !OWN } else { self.defaults.flags() }
    }

    /// Gives the space a setting of its own, or (None) returns it to the
    /// server's default.
    pub fn set_own(&self, flags: Option<u32>) {
        self.own.store(flags.map_or(0, |f| f | OWN), Relaxed);
    }

    /// The space's own setting, if it has one.
    pub fn own(&self) -> Option<u32> {
        let own = self.own.load(Relaxed);
        (own & OWN != 0).then_some(own & !OWN)
    }

    /// Whether an event of `class` would be published now (selected, on a
    /// channel kind, and anyone subscribed to `pubsub`).
    pub fn wants(&self, pubsub: &PubSub, class: u32) -> bool {
        let flags = self.flags();
        flags & class != 0 && flags & (KEYSPACE | KEYEVENT) != 0 && !pubsub.is_idle()
    }

    /// Publishes `event` of `class` on `key` of database `db`, when the
    /// class is selected, a channel kind is, and anyone is subscribed. A
    /// class not selected costs the caller two loads and a test, inline.
    #[inline(always)]
    pub fn emit(&self, pubsub: &PubSub, db: usize, class: u32, event: &str, key: &[u8], now_ms: u64) {
        let flags = self.flags();
        if flags & class != 0 {
            self.publish(pubsub, flags, db, event, key, now_ms);
        }
    }

    #[inline(never)]
    fn publish(&self, pubsub: &PubSub, flags: u32, db: usize, event: &str, key: &[u8], now_ms: u64) {
        if flags & (KEYSPACE | KEYEVENT) == 0 || pubsub.is_idle() {
            return;
        }
        let how = self.delivery(now_ms);
        let mut channel = Vec::with_capacity(24 + key.len().max(event.len()));
        if flags & KEYSPACE != 0 {
            channel.extend_from_slice(format!("__keyspace@{db}__:").as_bytes());
            channel.extend_from_slice(key);
            pubsub.publish(&channel, event.as_bytes(), how);
        }
        if flags & KEYEVENT != 0 {
            channel.clear();
            channel.extend_from_slice(format!("__keyevent@{db}__:{event}").as_bytes());
            pubsub.publish(&channel, key, how);
        }
    }
}

/// The observer a space installs on each of its keyspaces: `new` and
/// `expired` events, in the database the keyspace is now (SWAPDB moves it).
pub struct KeyspaceObserver {
    pub physical: usize,
    pub order: Arc<[AtomicUsize]>,
    pub pubsub: Arc<PubSub>,
    pub events: Arc<Events>,
    /// CLIENT TRACKING's table, told of every modified key.
    pub tracking: Arc<super::tracking::Tracking>,
}

impl KeyspaceObserver {
    fn class(change: Change) -> (u32, &'static str) {
        match change {
            Change::Created => (NEW, "new"),
            Change::Expired => (EXPIRED, "expired"),
            Change::Modified => (0, ""),
        }
    }
}

impl Observer for KeyspaceObserver {
    fn wants(&self, change: Change) -> bool {
        match change {
            Change::Modified => self.tracking.active(),
            _ => self.events.wants(&self.pubsub, Self::class(change).0),
        }
    }

    fn report(&self, change: Change, key: &[u8], now_ms: u64) {
        if change == Change::Modified {
            return self.tracking.modified(key, self.events.delivery(now_ms));
        }
        if !self.wants(change) {
            return;
        }
        let Some(db) = self.order.iter().position(|p| p.load(Relaxed) == self.physical) else { return };
        let (class, event) = Self::class(change);
        self.events.emit(&self.pubsub, db, class, event, key, now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_read_back_as_redis_writes_them() {
        for (set, get) in [
            ("KEA", "AKE"),
            ("", ""),
            ("Ex", "xE"),
            ("Kg$lshzxetd", "AK"),
            ("AKEmn", "AKEm"),
            ("gnK", "gnK"),
            ("nK", "nK"),
            ("Elsh", "lshE"),
            ("KEt", "tKE"),
            ("Kd", "dK"),
            ("mE", "Em"),
        ] {
            assert_eq!(format(parse(set.as_bytes()).unwrap()), get, "{set}");
        }
        assert_eq!(parse(b"KEA"), Some(ALL | KEYSPACE | KEYEVENT));
        assert_eq!(parse(b"KEy"), None);
        assert_eq!(parse(b"default"), None);
    }

    #[test]
    fn a_space_without_its_own_setting_follows_the_default() {
        let defaults = Arc::new(Defaults::default());
        let e = Events::new(defaults.clone());
        defaults.set(KEYSPACE | STRING, ClassLimit { hard: 0, soft: 0, soft_secs: 0 });
        assert_eq!(e.flags(), KEYSPACE | STRING);
        e.set_own(Some(0));
        assert_eq!((e.flags(), e.own()), (0, Some(0)));
        e.set_own(None);
        assert_eq!((e.flags(), e.own()), (KEYSPACE | STRING, None));
    }
}
