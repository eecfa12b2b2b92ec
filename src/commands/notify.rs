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

    /// A read found no `key`: Redis's `keymiss` event (class `m`), and a
    /// keyspace miss in INFO and the tenant's statistics; neither when a
    /// woken blocked command runs again (Redis serves it without a lookup).
    #[inline]
    pub fn keymiss(&self, key: &[u8]) {
        if !self.client.woken {
            self.count_lookup(false);
            self.notify(KEY_MISS, "keymiss", key);
        }
    }

    /// A read found its key (of any type: a WRONGTYPE reply is a hit too):
    /// a keyspace hit, as Redis's `lookupKeyRead` counts one.
    #[inline]
    pub fn keyhit(&self) {
        if !self.client.woken {
            self.count_lookup(true);
        }
    }

    /// [`Ctx::keyhit`] or [`Ctx::keymiss`], by whether the read found `key`.
    #[inline]
    pub fn looked_up(&self, key: &[u8], found: bool) {
        if found { self.keyhit() } else { self.keymiss(key) }
    }

    /// A miss Redis counts without announcing it (OBJECT's lookups).
    pub fn quiet_miss(&self) {
        self.count_lookup(false);
    }

    /// INFO's `keyspace_hits`/`keyspace_misses`, and the tenant's own.
    fn count_lookup(&self, hit: bool) {
        let stats = &self.state.stats;
        if hit { &stats.keyspace_hits } else { &stats.keyspace_misses }.incr();
        if let Some(t) = &self.client.tenant {
            let m = &t.metrics;
            if hit { &m.hits } else { &m.misses }.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
