//! Eviction: never evict keys under the protected prefixes named in CONFIG
//! (`protect=session:,auth:`); among the rest, evict the keys that hold the
//! most memory for the longest time (size x idle time), until enough is free.
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown -p protect-prefix`

#![cfg_attr(target_arch = "wasm32", no_std)]

use ferrite_guest_sdk::*;

pub struct ProtectPrefix {
    protected: Vec<Vec<u8>>,
}

impl Policy for ProtectPrefix {
    fn init(config: &[u8]) -> Result<Self, String> {
        let mut protected = Vec::new();
        for (k, v) in config::pairs(config)? {
            match k.as_str() {
                "protect" => protected.extend(config::list(&v).into_iter().map(String::into_bytes)),
                _ => return Err(format!("unknown CONFIG key '{k}' (expected protect)")),
            }
        }
        Ok(ProtectPrefix { protected })
    }
}

impl ProtectPrefix {
    fn is_protected(&self, key: &[u8]) -> bool {
        self.protected.iter().any(|p| key.starts_with(p))
    }
}

/// Bigger and longer idle is a better victim; +1 so a just-touched huge key
/// still ranks by size. Both factors are capped at 2^32 - 1 so the product
/// fits a u64: `saturating_mul` would be a 128-bit multiply, a libcall in wasm.
fn cost(c: &Candidate) -> u64 {
    let cap = |v: u64| v.min(u32::MAX as u64);
    cap(c.size) * cap(c.idle_ms.saturating_add(1))
}

impl EvictionPolicy for ProtectPrefix {
    fn choose(&mut self, input: &EvictInput) -> Vec<u32> {
        // (cost, index) of the keys that may go; usually one victim frees
        // enough, so picking the costliest repeatedly beats sorting them all.
        let mut open: Vec<(u64, u32)> = Vec::with_capacity(input.candidates.len());
        for (i, c) in input.candidates.iter().enumerate() {
            if !self.is_protected(&c.key) {
                open.push((cost(c), i as u32));
            }
        }
        let mut freed = 0;
        let mut victims = Vec::with_capacity(open.len());
        while freed < input.to_free && !open.is_empty() {
            // Highest cost first; the lowest index among equals.
            let mut best = 0;
            for (k, &(cost, i)) in open.iter().enumerate().skip(1) {
                let (best_cost, best_i) = open[best];
                if cost > best_cost || (cost == best_cost && i < best_i) {
                    best = k;
                }
            }
            let (_, i) = open.swap_remove(best);
            freed += input.candidates[i as usize].size;
            victims.push(i);
        }
        victims
    }
}

export_policy!(ProtectPrefix: EvictionPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: &'static str, size: u64, idle_ms: u64) -> Candidate<'static> {
        Candidate { key: key.as_bytes().into(), db: 0, key_type: KeyType::String, size, idle_ms, lfu: 5, ttl_ms: None }
    }

    fn input(to_free: u64, candidates: Vec<Candidate<'static>>) -> EvictInput<'static> {
        EvictInput { tenant: "t".into(), usage: Usage::default(), limits: Limits::default(), to_free, candidates }
    }

    #[test]
    fn protected_prefixes_are_never_chosen() {
        let mut p = ProtectPrefix::init(b"protect=session:,auth:").unwrap();
        let c = vec![cand("session:1", 1000, 1000), cand("auth:x", 900, 900), cand("cache:1", 10, 10)];
        assert_eq!(p.choose(&input(u64::MAX, c)), vec![2]);
        let all_protected = vec![cand("session:2", 5, 5)];
        assert!(p.choose(&input(1, all_protected)).is_empty());
    }

    #[test]
    fn the_largest_idle_keys_go_first_until_enough_is_free() {
        let mut p = ProtectPrefix::init(b"").unwrap();
        let c = vec![cand("small", 10, 100), cand("big-idle", 500, 100), cand("big-hot", 500, 0), cand("mid", 100, 100)];
        assert_eq!(p.choose(&input(1, c.clone())), vec![1]);
        assert_eq!(p.choose(&input(600, c)), vec![1, 3]);
    }

    #[test]
    fn unknown_config_is_refused() {
        assert!(ProtectPrefix::init(b"protec=x").err().unwrap().contains("protec"));
    }
}
