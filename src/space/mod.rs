//! A namespace: numbered databases, pub/sub channels and blocked clients.
//!
//! The global context is one `Space`; every tenant owns another. Whatever a
//! command can see or signal is reached through its client's space, so one
//! tenant's keys, channels and wake-ups cannot reach another's. Databases are
//! created on first use, so an idle space costs a few hundred bytes.

pub mod blocking;
pub mod pubsub;

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};

use crate::store::Keyspace;
pub use blocking::Blocking;
pub use pubsub::PubSub;

pub struct Space {
    /// The tenant this space belongs to (`None`: the global space); how the
    /// log names it.
    owner: Option<Box<str>>,
    dbs: Box<[OnceLock<Box<Keyspace>>]>,
    total: Option<Arc<AtomicI64>>,
    pub pubsub: PubSub,
    pub blocking: Blocking,
}

impl Space {
    pub fn new(databases: usize) -> Space {
        Self::with_total(databases, None)
    }

    /// A space whose databases add their bytes to a shared total.
    pub fn with_total(databases: usize, total: Option<Arc<AtomicI64>>) -> Space {
        Space {
            owner: None,
            dbs: (0..databases).map(|_| OnceLock::new()).collect(),
            total,
            pubsub: PubSub::default(),
            blocking: Blocking::default(),
        }
    }

    /// The same space, as the namespace of tenant `id`.
    pub fn owned_by(mut self, id: &str) -> Space {
        self.owner = Some(id.into());
        self
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// How many databases this space may address.
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    /// Database `i` (created on first use). Panics if `i` is out of range:
    /// callers validate indexes against [`Space::databases`].
    pub fn db(&self, i: usize) -> &Keyspace {
        self.dbs[i].get_or_init(|| Box::new(Keyspace::with_total(self.total.clone())))
    }

    /// Removes every key of every database (FLUSHALL, TENANT.DELETE).
    pub fn clear(&self) {
        self.existing().for_each(|(_, ks)| {
            ks.clear();
        });
    }

    /// The databases that exist, with their indexes.
    pub fn existing(&self) -> impl Iterator<Item = (usize, &Keyspace)> {
        self.dbs.iter().enumerate().filter_map(|(i, d)| d.get().map(|k| (i, &**k)))
    }

    pub fn used_bytes(&self) -> usize {
        self.existing().map(|(_, d)| d.used_bytes()).sum()
    }

    pub fn keys(&self) -> usize {
        self.existing().map(|(_, d)| d.len()).sum()
    }
}
