//! Keyspace events from command handlers: `ctx.notify(class, event, key)`.
//!
//! Handlers call these where Redis 7.0 calls `notifyKeyspaceEvent`, with
//! its event names and in its order; `new` and `expired` come from the
//! keyspace itself (`store::keyspace::Observer`, installed by the space),
//! `evicted` from eviction (`admission`). Everything is published in the
//! command's space, so a tenant's events reach its own subscribers only
//! (see `space::notify`).

pub use crate::space::notify::{GENERIC, HASH, KEY_MISS, LIST, SET, STREAM, STRING, ZSET};

use super::Ctx;

impl Ctx<'_> {
    /// Publishes `event` of `class` on `key` in the client's database.
    #[inline(always)]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        self.space.notify(self.client.db, class, event, key, self.now_ms);
    }

    /// Publishes `event` of `class` on `key` in database `db` of the space.
    #[inline]
    pub fn notify_in(&self, db: usize, class: u32, event: &str, key: &[u8]) {
        self.space.notify(db, class, event, key, self.now_ms);
    }

    /// Whether an event of `class` would be published now: for the rare
    /// event that needs a lookup of its own to be told (a key miss before
    /// a write).
    pub fn wants(&self, class: u32) -> bool {
        self.space.events.wants(&self.space.pubsub, class)
    }

    /// A read found no `key` (Redis's `keymiss`, class `m`); not when a
    /// woken blocked command runs again (Redis serves it without a lookup).
    #[inline]
    pub fn keymiss(&self, key: &[u8]) {
        if !self.client.woken {
            self.notify(KEY_MISS, "keymiss", key);
        }
    }

    /// `event` of `class` on `key`, then `del` when the write left no key
    /// (it emptied a collection, which the keyspace then removed), as Redis
    /// follows a removal that empties a collection. The key is looked up
    /// only when `del` would be published.
    pub fn notify_emptied(&self, class: u32, event: &str, key: &[u8]) {
        self.notify(class, event, key);
        if self.wants(GENERIC) && !self.db().contains(key, self.now_ms) {
            self.notify(GENERIC, "del", key);
        }
    }
}
