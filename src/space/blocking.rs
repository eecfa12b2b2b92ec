//! Clients blocked on keys (BLPOP and friends) and their wake-ups.
//!
//! A blocked connection registers a `Notify` under each key it waits for and
//! retries its command when woken. Writes signal the keys they touched; with
//! nobody blocked that costs one relaxed load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// (database, key)
type WaitKey = (usize, Vec<u8>);

#[derive(Debug, Default)]
pub struct Blocking {
    waiting: AtomicUsize,
    waiters: Mutex<HashMap<WaitKey, Vec<Arc<Notify>>>>,
}

impl Blocking {
    pub fn register(&self, db: usize, keys: &[Vec<u8>], n: &Arc<Notify>) {
        let mut w = self.waiters.lock();
        for k in keys {
            w.entry((db, k.clone())).or_default().push(n.clone());
        }
        self.waiting.fetch_add(1, Relaxed);
    }

    pub fn unregister(&self, db: usize, keys: &[Vec<u8>], n: &Arc<Notify>) {
        let mut w = self.waiters.lock();
        for k in keys {
            let key = (db, k.clone());
            if let Some(list) = w.get_mut(&key) {
                list.retain(|x| !Arc::ptr_eq(x, n));
                if list.is_empty() {
                    w.remove(&key);
                }
            }
        }
        self.waiting.fetch_sub(1, Relaxed);
    }

    /// Whether any client is blocked at all (the cheap pre-check).
    pub fn any(&self) -> bool {
        self.waiting.load(Relaxed) > 0
    }

    /// Wakes everybody waiting on `key` in `db`; they retry in wake order.
    pub fn signal(&self, db: usize, key: &[u8]) {
        if !self.any() {
            return;
        }
        if let Some(list) = self.waiters.lock().get(&(db, key.to_vec())) {
            list.iter().for_each(|n| n.notify_one());
        }
    }

    /// Wakes everybody (after SWAPDB, any key may have become ready).
    pub fn signal_all(&self) {
        if self.any() {
            self.waiters.lock().values().flatten().for_each(|n| n.notify_one());
        }
    }

    pub fn blocked_clients(&self) -> usize {
        self.waiting.load(Relaxed)
    }
}
