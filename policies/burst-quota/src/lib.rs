//! Quota: tenants named in CONFIG may go over a limit by `overage_percent`
//! for up to `burst_seconds` at a time; everyone else, and a burst that is
//! used up, is refused with this policy's own message.
//!
//! CONFIG: `tenants=acme,globex; overage_percent=50; burst_seconds=60`.
//! Build: `cargo build --release --target wasm32-unknown-unknown -p burst-quota`

#![cfg_attr(target_arch = "wasm32", no_std)]

use ferrite_guest_sdk::*;

pub struct BurstQuota {
    tenants: Vec<String>,
    overage_percent: u64,
    burst_ms: u64,
    /// When the current burst began (host clock), if one is running.
    burst_started: Option<u64>,
}

impl Policy for BurstQuota {
    fn init(config: &[u8]) -> Result<Self, String> {
        let mut p = BurstQuota { tenants: Vec::new(), overage_percent: 20, burst_ms: 60_000, burst_started: None };
        for (k, v) in config::pairs(config)? {
            match k.as_str() {
                "tenants" => p.tenants = config::list(&v),
                "overage_percent" => p.overage_percent = config::number(&k, &v)?,
                "burst_seconds" => p.burst_ms = config::number::<u64>(&k, &v)?.saturating_mul(1000),
                _ => return Err(format!("unknown CONFIG key '{k}' (expected tenants, overage_percent, burst_seconds)")),
            }
        }
        Ok(p)
    }
}

fn used_and_limit(q: &QuotaInput) -> (u64, u64, &'static str) {
    match q.resource {
        Resource::Keys => (q.usage.keys, q.limits.keys, "keys"),
        Resource::Ops => (q.usage.ops_per_second, q.limits.ops_per_second, "ops/sec"),
        Resource::Memory | Resource::Threshold => (q.usage.memory_bytes, q.limits.memory_bytes, "memory"),
    }
}

impl QuotaPolicy for BurstQuota {
    fn decide(&mut self, q: &QuotaInput) -> QuotaDecision {
        if q.resource == Resource::Threshold {
            // Back under the limit: the next crossing starts a fresh burst.
            if q.usage.memory_bytes < q.limits.memory_bytes && q.usage.keys < q.limits.keys {
                self.burst_started = None;
            }
            return QuotaDecision::Native;
        }
        let (used, limit, what) = used_and_limit(q);
        if !self.tenants.iter().any(|t| q.tenant == t.as_str()) {
            return QuotaDecision::Deny(format!(
                "QUOTA tenant '{}' reached its {what} limit ({limit}) and has no burst allowance",
                q.tenant
            ));
        }
        let ceiling = limit.saturating_mul(100 + self.overage_percent) / 100;
        let now = now_ms();
        let started = *self.burst_started.get_or_insert(now);
        if used < ceiling && now.saturating_sub(started) < self.burst_ms {
            return QuotaDecision::Allow;
        }
        QuotaDecision::Deny(format!(
            "QUOTA tenant '{}' used its burst: {what} {used} of {limit} (+{}% for {} s allowed)",
            q.tenant,
            self.overage_percent,
            self.burst_ms / 1000
        ))
    }
}

export_policy!(BurstQuota: QuotaPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(p: &mut BurstQuota, tenant: &str, resource: Resource, memory: u64) -> QuotaDecision {
        p.decide(&QuotaInput {
            tenant: tenant.into(),
            command: "set".into(),
            class: CommandClass::Write,
            resource,
            usage: Usage { memory_bytes: memory, keys: 1, ..Usage::default() },
            limits: Limits { memory_bytes: 1000, keys: 100, ..Limits::default() },
        })
    }

    #[test]
    fn chosen_tenants_burst_up_to_the_overage_then_are_denied() {
        let mut p = BurstQuota::init(b"tenants=acme; overage_percent=50; burst_seconds=10").unwrap();
        set_mock_now(1_000);
        assert_eq!(ask(&mut p, "acme", Resource::Memory, 1000), QuotaDecision::Allow);
        assert_eq!(ask(&mut p, "acme", Resource::Memory, 1499), QuotaDecision::Allow);
        assert!(matches!(ask(&mut p, "acme", Resource::Memory, 1500), QuotaDecision::Deny(m) if m.contains("used its burst")));
        assert!(matches!(ask(&mut p, "other", Resource::Memory, 1000), QuotaDecision::Deny(m) if m.contains("no burst allowance")));
    }

    #[test]
    fn a_burst_lasts_burst_seconds_and_rearms_under_the_limit() {
        let mut p = BurstQuota::init(b"tenants=acme; overage_percent=50; burst_seconds=10").unwrap();
        set_mock_now(1_000);
        assert_eq!(ask(&mut p, "acme", Resource::Memory, 1100), QuotaDecision::Allow);
        set_mock_now(11_000);
        assert!(matches!(ask(&mut p, "acme", Resource::Memory, 1100), QuotaDecision::Deny(_)));
        assert_eq!(ask(&mut p, "acme", Resource::Threshold, 900), QuotaDecision::Native);
        assert_eq!(ask(&mut p, "acme", Resource::Memory, 1100), QuotaDecision::Allow);
    }
}
