//! Usage metering and the bill for the current period, priced by
//! `[tenancy.billing]`.
//!
//! Operations and bandwidth come from the tenant's counters (relative to the
//! start of the period); memory is integrated over time as byte-seconds by a
//! once-a-second tick, so a tenant pays for what it held and for how long.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Deserialize;

use super::tenant::Tenant;

/// `[tenancy.billing]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    pub currency: String,
    /// Length of a billing period; a new one starts when it is over.
    pub period_days: u64,
    pub price_per_million_ops: f64,
    pub price_per_gb_hour: f64,
    pub price_per_gb_bandwidth: f64,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            currency: "USD".into(),
            period_days: 30,
            price_per_million_ops: 0.20,
            price_per_gb_hour: 0.01,
            price_per_gb_bandwidth: 0.05,
        }
    }
}

/// What a tenant has used since its period began.
#[derive(Debug, Default)]
pub struct Meter {
    period_start_ms: AtomicU64,
    ops_base: AtomicU64,
    bandwidth_base: AtomicU64,
    byte_seconds: AtomicU64,
    last_tick_ms: AtomicU64,
}

/// One priced line of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    pub name: String,
    pub quantity: f64,
    pub unit: String,
    pub amount: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invoice {
    pub period_start_ms: u64,
    pub ops: u64,
    pub memory_gb_hours: f64,
    pub bandwidth_bytes: u64,
    pub items: Vec<LineItem>,
    pub total: f64,
    pub currency: String,
}

const GB: f64 = (1u64 << 30) as f64;

fn ops_of(t: &Tenant) -> u64 {
    t.metrics.reads.load(Relaxed) + t.metrics.writes.load(Relaxed)
}

fn bandwidth_of(t: &Tenant) -> u64 {
    t.metrics.bytes_in.load(Relaxed) + t.metrics.bytes_out.load(Relaxed)
}

impl Meter {
    pub fn start(&self, now_ms: u64) {
        self.period_start_ms.store(now_ms, Relaxed);
        self.last_tick_ms.store(now_ms, Relaxed);
    }

    /// Adds the memory held since the last tick, and rolls the period over
    /// when it has run its length.
    pub fn tick(&self, t: &Tenant, cfg: &BillingConfig, now_ms: u64) {
        let last = self.last_tick_ms.swap(now_ms, Relaxed);
        let secs = now_ms.saturating_sub(last) / 1000;
        let rem = now_ms.saturating_sub(last) % 1000;
        // Keep the sub-second remainder for the next tick.
        self.last_tick_ms.fetch_sub(rem, Relaxed);
        if secs > 0 {
            self.byte_seconds.fetch_add(t.memory_used().saturating_mul(secs), Relaxed);
        }
        let period_ms = cfg.period_days.max(1) * 86_400_000;
        if now_ms.saturating_sub(self.period_start_ms.load(Relaxed)) >= period_ms {
            self.period_start_ms.store(now_ms, Relaxed);
            self.ops_base.store(ops_of(t), Relaxed);
            self.bandwidth_base.store(bandwidth_of(t), Relaxed);
            self.byte_seconds.store(0, Relaxed);
        }
    }

    pub fn invoice(&self, t: &Tenant, cfg: &BillingConfig) -> Invoice {
        let ops = ops_of(t).saturating_sub(self.ops_base.load(Relaxed));
        let bandwidth_bytes = bandwidth_of(t).saturating_sub(self.bandwidth_base.load(Relaxed));
        let memory_gb_hours = self.byte_seconds.load(Relaxed) as f64 / GB / 3600.0;
        let items = vec![
            LineItem {
                name: "operations".into(),
                quantity: ops as f64 / 1e6,
                unit: "million ops".into(),
                amount: ops as f64 / 1e6 * cfg.price_per_million_ops,
            },
            LineItem {
                name: "memory".into(),
                quantity: memory_gb_hours,
                unit: "GB-hours".into(),
                amount: memory_gb_hours * cfg.price_per_gb_hour,
            },
            LineItem {
                name: "bandwidth".into(),
                quantity: bandwidth_bytes as f64 / GB,
                unit: "GB".into(),
                amount: bandwidth_bytes as f64 / GB * cfg.price_per_gb_bandwidth,
            },
        ];
        let total = items.iter().map(|i| i.amount).sum();
        Invoice {
            period_start_ms: self.period_start_ms.load(Relaxed),
            ops,
            memory_gb_hours,
            bandwidth_bytes,
            items,
            total,
            currency: cfg.currency.clone(),
        }
    }
}
