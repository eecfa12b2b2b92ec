//! Per-tenant eviction, after Redis's `evict.c`: sample a few keys from each
//! of the tenant's databases into a small pool of the best candidates, evict
//! the best, repeat until the tenant is under its memory limit or a time
//! budget runs out. Only the tenant's own space is ever sampled.

use std::time::Duration;

use parking_lot::Mutex;

use super::hooks;
use super::tenant::Tenant;
use crate::policy::{Hook, PolicyConfig};
use crate::space::Space;
use crate::store::Keyspace;
use crate::store::keyspace::Sample;

/// Candidates kept between rounds, as Redis's EVPOOL_SIZE.
pub const POOL_SIZE: usize = 16;
/// Give up evicting after this long and refuse the write instead.
pub const TIME_BUDGET: Duration = Duration::from_micros(500);

/// What to evict first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    Lru {
        volatile: bool,
    },
    Lfu {
        volatile: bool,
    },
    Random {
        volatile: bool,
    },
    /// Soonest expiry first (keys with a TTL only).
    Ttl,
}

impl Policy {
    /// Maps the product page's and Redis's policy names.
    pub fn parse(name: &str) -> Option<Policy> {
        Some(match name {
            "noeviction" => Policy::NoEviction,
            "lru" | "allkeys-lru" => Policy::Lru { volatile: false },
            "volatile-lru" => Policy::Lru { volatile: true },
            "lfu" | "allkeys-lfu" => Policy::Lfu { volatile: false },
            "volatile-lfu" => Policy::Lfu { volatile: true },
            "random" | "allkeys-random" => Policy::Random { volatile: false },
            "volatile-random" => Policy::Random { volatile: true },
            "ttl" | "volatile-ttl" => Policy::Ttl,
            _ => return None,
        })
    }

    fn volatile_only(self) -> bool {
        matches!(self, Policy::Lru { volatile: true } | Policy::Lfu { volatile: true } | Policy::Random { volatile: true } | Policy::Ttl)
    }

    /// Higher is a better victim: idle time, 255 - LFU counter, or how soon
    /// the key expires.
    pub fn score<K>(self, s: &Sample<K>) -> u64 {
        match self {
            Policy::Lru { .. } => s.idle_secs,
            Policy::Lfu { .. } => 255 - s.lfu as u64,
            Policy::Ttl => u64::MAX - s.expire_at.unwrap_or(u64::MAX),
            Policy::Random { .. } => fastrand::u64(..),
            Policy::NoEviction => 0,
        }
    }
}

/// A candidate in the pool.
#[derive(Debug, Clone)]
struct Candidate {
    score: u64,
    db: usize,
    /// Compared before the key: checking each sample against the pool's 16
    /// keys byte by byte was 7% of a write at the memory limit.
    hash: u64,
    key: Vec<u8>,
}

/// Hashes keys for the pool's duplicate check (any fixed seeds will do).
static POOL_HASH: ahash::RandomState = ahash::RandomState::with_seeds(1, 2, 3, 4);

/// The tenant's persistent pool of best candidates.
#[derive(Debug, Default)]
pub struct EvictionPool {
    pool: Mutex<Vec<Candidate>>,
}

impl EvictionPool {
    /// Samples each database and keeps the best [`POOL_SIZE`] candidates,
    /// best first. As in Redis's `evictionPoolPopulate`, a sample no better
    /// than the worst of a full pool is dropped before its key is copied.
    fn fill(&self, space: &Space, policy: Policy, samples: usize, now_ms: u64) {
        let mut pool = self.pool.lock();
        for (db, ks) in space.existing() {
            ks.sample_each(samples, now_ms, policy.volatile_only(), |s| {
                let score = policy.score(&s);
                if pool.len() >= POOL_SIZE && pool.last().is_some_and(|worst| score <= worst.score) {
                    return;
                }
                let hash = POOL_HASH.hash_one(s.key);
                if pool.iter().any(|c| c.hash == hash && c.db == db && c.key == s.key) {
                    return;
                }
                // After the equals, so that earlier samples win ties.
                let at = pool.partition_point(|c| c.score >= score);
                pool.insert(at, Candidate { score, db, hash, key: s.key.to_vec() });
                pool.truncate(POOL_SIZE);
            });
        }
    }

    fn best(&self) -> Option<Candidate> {
        let mut pool = self.pool.lock();
        if pool.is_empty() { None } else { Some(pool.remove(0)) }
    }
}

/// Picks victims among sampled `(db, key)` candidates: a tenant's WASM
/// policy. `None` lets the native policy choose this round; an empty list
/// means none of these may go.
pub type Chooser<'a> = &'a mut dyn FnMut(&[(usize, Sample)]) -> Option<Vec<usize>>;

/// Removes a chosen victim (its database's keyspace, the database's index,
/// the key) and says whether it was still there. The server's hook logs the
/// removal as a DEL, holding the log's tail across both so that a concurrent
/// write to the same key is logged after it; [`remove_only`] just removes.
pub type Remove<'a> = &'a mut dyn FnMut(&Keyspace, usize, &[u8]) -> bool;

/// A [`Remove`] hook for evictions nobody logs.
pub fn remove_only(now_ms: u64) -> impl FnMut(&Keyspace, usize, &[u8]) -> bool {
    move |ks, _, key| ks.remove(key, now_ms).is_some()
}

/// Who else takes part in an eviction: a WASM policy choosing victims (if
/// any), and whoever must hear of each removal.
pub struct EvictHooks<'a> {
    pub chooser: Option<Chooser<'a>>,
    pub remove: Remove<'a>,
}

/// Evicts keys of `space` by `policy` (or by `chooser` when it answers)
/// while `over()` says so. `Ok(n)` when it got under with `n` evictions,
/// `Err(n)` when it gave up after `n` (nothing evictable, noeviction, or the
/// time budget ran out).
pub fn evict(
    space: &Space,
    pool: &EvictionPool,
    policy: Policy,
    samples: usize,
    now_ms: u64,
    mut over: impl FnMut() -> bool,
    hooks: EvictHooks<'_>,
) -> Result<usize, usize> {
    let EvictHooks { mut chooser, remove } = hooks;
    // The TSC clock: this runs on every write at the memory limit.
    let start = quanta::Instant::now();
    let mut evicted = 0;
    while over() {
        if start.elapsed() > TIME_BUDGET {
            return Err(evicted);
        }
        let chosen = match chooser.as_mut() {
            Some(choose) => {
                let candidates = sample_all(space, now_ms);
                if candidates.is_empty() {
                    return Err(evicted);
                }
                choose(&candidates).map(|victims| (candidates, victims))
            }
            None => None,
        };
        match chosen {
            Some((candidates, victims)) => {
                // All of them: the module sized its answer to what it was asked to free.
                for i in victims {
                    let (db, s) = &candidates[i];
                    if remove(space.db(*db), *db, &s.key) {
                        evicted += 1;
                    }
                }
            }
            None if policy == Policy::NoEviction => return Err(evicted),
            None => {
                if !evict_one_native(space, pool, policy, samples, now_ms, remove) {
                    return Err(evicted);
                }
                evicted += 1;
            }
        }
    }
    Ok(evicted)
}

/// One round of Redis's algorithm: refill the pool, evict its best.
fn evict_one_native(space: &Space, pool: &EvictionPool, policy: Policy, samples: usize, now_ms: u64, remove: Remove<'_>) -> bool {
    pool.fill(space, policy, samples, now_ms);
    while let Some(c) = pool.best() {
        // The candidate may have gone since it was sampled.
        if remove(space.db(c.db), c.db, &c.key) {
            return true;
        }
    }
    false
}

/// Up to [`POOL_SIZE`] keys sampled across the space's databases, for a
/// policy to choose from in one call.
fn sample_all(space: &Space, now_ms: u64) -> Vec<(usize, Sample)> {
    let dbs: Vec<_> = space.existing().collect();
    let per_db = (POOL_SIZE / dbs.len().max(1)).max(1);
    let mut out = Vec::with_capacity(POOL_SIZE);
    for (db, ks) in dbs {
        out.extend(ks.sample(per_db, now_ms, false).into_iter().map(|s| (db, s)));
    }
    out.truncate(POOL_SIZE);
    out
}

/// Evicts the tenant's keys while `over()`: by its WASM policy when it has
/// an eviction hook (falling back round by round to its native policy when
/// the module fails), else by its native policy alone.
pub fn evict_tenant(
    tenant: &Tenant,
    samples: usize,
    now_ms: u64,
    policies: &PolicyConfig,
    over: impl FnMut() -> bool,
    remove: Remove<'_>,
) -> Result<usize, usize> {
    use std::cell::Cell;
    use std::sync::atomic::Ordering::Relaxed;
    let policy = tenant.eviction_policy();
    let limit = tenant.limits().memory_bytes;
    // Whether the module chose this round's victims, and how many of them went.
    let (by_module, chosen) = (Cell::new(false), Cell::new(0u64));
    let mut choose = |c: &[(usize, Sample)]| {
        let victims = hooks::choose_victims(tenant, policies, c, now_ms, limit);
        by_module.set(victims.is_some());
        victims
    };
    let mut removal = |ks: &Keyspace, db: usize, key: &[u8]| {
        let gone = remove(ks, db, key);
        chosen.set(chosen.get() + (gone && by_module.get()) as u64);
        gone
    };
    let chooser: Option<Chooser<'_>> = if tenant.policy.has(Hook::Evict) { Some(&mut choose) } else { None };
    let r = evict(&tenant.space, &tenant.eviction_pool, policy, samples, now_ms, over, EvictHooks { chooser, remove: &mut removal });
    let n = match r {
        Ok(n) | Err(n) => n,
    };
    tenant.metrics.evicted.fetch_add(n as u64, Relaxed);
    tenant.metrics.evicted_by_policy.fetch_add(chosen.get(), Relaxed);
    r
}
