//! Tenancy's side of the policy hooks: a tenant's state becomes the ABI's
//! question, the module's answer becomes a decision. Each function returns
//! the native choice when the tenant has no module for the hook or the call
//! fails (the policy layer counts the failure).

use std::sync::atomic::Ordering::Relaxed;

use ferrite_policy_abi::{self as abi, Wire};

use super::billing::LineItem;
use super::tenant::Tenant;
use crate::policy::{Hook, PolicyConfig};
use crate::store::keyspace::Sample;
use crate::store::value::ValueType;

pub use abi::{CommandClass, QuotaDecision, Resource};

fn usage_and_limits(t: &Tenant) -> (abi::Usage, abi::Limits) {
    let u = t.get_usage();
    let l = u.limits;
    (
        abi::Usage {
            memory_bytes: u.memory_used,
            keys: u.keys,
            ops_per_second: t.ops_rate.load(Relaxed),
            connections: u.connections,
            databases: u.databases,
        },
        abi::Limits {
            memory_bytes: l.memory_bytes,
            keys: l.max_keys,
            ops_per_second: l.ops_per_second,
            connections: l.max_connections,
            databases: l.max_databases,
        },
    )
}

fn key_type(t: ValueType) -> abi::KeyType {
    match t {
        ValueType::String => abi::KeyType::String,
        ValueType::List => abi::KeyType::List,
        ValueType::Set => abi::KeyType::Set,
        ValueType::ZSet => abi::KeyType::ZSet,
        ValueType::Stream => abi::KeyType::Stream,
        ValueType::Hash => abi::KeyType::Hash,
    }
}

/// A policy is asked to free what is over the limit plus room for about
/// this many of the candidates, so one decision (a sampling and a call)
/// serves several writes while the module still ranks the batch.
pub const EVICT_HEADROOM_KEYS: u64 = 4;

/// Encodes the eviction question for a batch of sampled keys, straight from
/// the samples (no intermediate list).
pub fn evict_input(w: &mut abi::Writer, t: &Tenant, samples: &[(usize, Sample)], now_ms: u64, limit: u64) {
    let (usage, limits) = usage_and_limits(t);
    let candidates = samples.iter().map(|(db, s)| abi::Candidate {
        key: (&s.key[..]).into(),
        db: *db as u32,
        key_type: key_type(s.kind),
        size: s.bytes as u64,
        idle_ms: s.idle_secs.saturating_mul(1000),
        lfu: s.lfu,
        ttl_ms: s.expire_at.map(|at| at.saturating_sub(now_ms)),
    });
    // A native round evicts exactly enough, as Redis does; see EVICT_HEADROOM_KEYS.
    let mean = samples.iter().map(|(_, s)| s.bytes as u64).sum::<u64>() / samples.len().max(1) as u64;
    let to_free = usage.memory_bytes.saturating_sub(limit) + EVICT_HEADROOM_KEYS * mean.max(1);
    w.buf.reserve(128 + t.id().len() + samples.iter().map(|(_, s)| s.key.len() + 34).sum::<usize>());
    abi::EvictInput::encode_from(w, t.id(), &usage, &limits, to_free, candidates);
}

/// The module's victims among `samples` (indexes, in order), or `None` to
/// let the native policy choose. Out-of-range or repeated indexes make the
/// answer unusable (a failed call), not partly obeyed.
pub fn choose_victims(t: &Tenant, cfg: &PolicyConfig, samples: &[(usize, Sample)], now_ms: u64, limit: u64) -> Option<Vec<usize>> {
    if !t.policy.has(Hook::Evict) {
        return None;
    }
    t.policy.call(
        Hook::Evict,
        |w| evict_input(w, t, samples, now_ms, limit),
        cfg,
        |out| {
            let victims = abi::EvictOutput::from_bytes(out).map_err(|e| format!("eviction answer does not decode: {e}"))?.victims;
            // At most POOL_SIZE (16) candidates: one bit each.
            let mut seen = 0u64;
            let mut chosen = Vec::with_capacity(victims.len());
            for v in victims {
                if v as usize >= samples.len().min(64) {
                    return Err(format!("victim {v} is not one of the {} candidates", samples.len()));
                }
                if seen & (1 << v) != 0 {
                    return Err(format!("victim {v} named twice"));
                }
                seen |= 1 << v;
                chosen.push(v as usize);
            }
            Ok(chosen)
        },
    )
}

/// Asks the quota hook about a command; `Native` without one.
pub fn quota(t: &Tenant, cfg: &PolicyConfig, command: &str, class: CommandClass, resource: Resource) -> QuotaDecision {
    if !t.policy.has(Hook::Quota) {
        return QuotaDecision::Native;
    }
    let (usage, limits) = usage_and_limits(t);
    let input = abi::QuotaInput { tenant: t.id().into(), command: command.into(), class, resource, usage, limits };
    t.policy
        .call(
            Hook::Quota,
            |w| input.encode(w),
            cfg,
            |out| abi::QuotaDecision::from_bytes(out).map_err(|e| format!("quota answer does not decode: {e}")),
        )
        .unwrap_or(QuotaDecision::Native)
}

/// Runs the billing hook when an interval is over and books its line items.
/// Amounts must be finite and not negative, or the whole answer is refused.
pub fn bill(t: &Tenant, cfg: &PolicyConfig, now_ms: u64) {
    if !t.policy.has(Hook::Bill) {
        return;
    }
    let Some(delta) = t.ledger.interval(t, now_ms, cfg.billing_interval_ms) else { return };
    let (usage, _) = usage_and_limits(t);
    let tier = t.profile().tier.name().to_string();
    let input = abi::BillingInput { tenant: t.id().into(), tier: tier.into(), now_ms, delta, usage };
    let items = t.policy.call(
        Hook::Bill,
        |w| input.encode(w),
        cfg,
        |out| {
            let items = Vec::<abi::LineItem>::from_bytes(out).map_err(|e| format!("billing answer does not decode: {e}"))?;
            match items.iter().find(|i| !(i.amount.is_finite() && i.quantity.is_finite() && i.amount >= 0.0)) {
                Some(i) => Err(format!("line item '{}' has an invalid amount {} or quantity {}", i.name, i.amount, i.quantity)),
                None => Ok(items),
            }
        },
    );
    if let Some(items) = items {
        t.ledger.add(items.into_iter().map(|i| LineItem { name: i.name, quantity: i.quantity, unit: i.unit, amount: i.amount }));
    }
}
