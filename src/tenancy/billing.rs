//! Usage metering and the bill for the current period, priced by
//! `[tenancy.billing]`.
//!
//! Operations and bandwidth come from the tenant's counters (relative to the
//! start of the period); memory is integrated over time as byte-seconds by a
//! once-a-second tick, so a tenant pays for what it held and for how long.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

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
    /// Operations counted at the last tick, for the tenant's ops rate.
    ops_last: AtomicU64,
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
    /// Its state, for a tenant's move to another node.
    pub fn state(&self) -> [u64; 6] {
        [&self.period_start_ms, &self.ops_base, &self.bandwidth_base, &self.byte_seconds, &self.last_tick_ms, &self.ops_last]
            .map(|a| a.load(Relaxed))
    }

    /// Takes up a moved tenant's state (see [`Meter::state`]).
    pub fn restore(&self, s: [u64; 6]) {
        let fields = [&self.period_start_ms, &self.ops_base, &self.bandwidth_base, &self.byte_seconds, &self.last_tick_ms, &self.ops_last];
        fields.iter().zip(s).for_each(|(a, v)| a.store(v, Relaxed));
    }

    pub fn start(&self, now_ms: u64) {
        self.period_start_ms.store(now_ms, Relaxed);
        self.last_tick_ms.store(now_ms, Relaxed);
    }

    /// Adds the memory held since the last tick, and rolls the period over
    /// when it has run its length.
    pub fn tick(&self, t: &Tenant, cfg: &BillingConfig, now_ms: u64) {
        let last = self.last_tick_ms.swap(now_ms, Relaxed);
        let ops = ops_of(t);
        let ops_before = self.ops_last.swap(ops, Relaxed);
        if now_ms > last {
            t.ops_rate.store(ops.saturating_sub(ops_before) * 1000 / (now_ms - last), Relaxed);
        }
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
            t.ledger.clear();
        }
    }

    /// Memory held this period, integrated over time.
    pub fn byte_seconds(&self) -> u64 {
        self.byte_seconds.load(Relaxed)
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
        // A billing policy's ledger replaces the native price list.
        let ledger = t.ledger.items();
        let items = if t.ledger.in_use() { ledger } else { items };
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

/// The counters a billing interval is measured between.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    at_ms: u64,
    reads: u64,
    writes: u64,
    bytes_in: u64,
    bytes_out: u64,
    byte_seconds: u64,
    evicted: u64,
}

impl Mark {
    fn of(t: &Tenant, now_ms: u64) -> Mark {
        let m = &t.metrics;
        Mark {
            at_ms: now_ms,
            reads: m.reads.load(Relaxed),
            writes: m.writes.load(Relaxed),
            bytes_in: m.bytes_in.load(Relaxed),
            bytes_out: m.bytes_out.load(Relaxed),
            byte_seconds: t.meter.byte_seconds(),
            evicted: m.evicted.load(Relaxed),
        }
    }
}

/// Line items a billing policy returned this period, added up by name and
/// unit, and where its last interval ended.
#[derive(Debug, Default)]
pub struct Ledger {
    items: Mutex<Vec<LineItem>>,
    mark: Mutex<Option<Mark>>,
}

impl Ledger {
    /// Whether a billing policy has started keeping this period's bill.
    pub fn in_use(&self) -> bool {
        self.mark.lock().is_some()
    }

    pub fn items(&self) -> Vec<LineItem> {
        self.items.lock().clone()
    }

    /// A moved tenant's line items, in place of these.
    pub fn restore(&self, items: Vec<LineItem>) {
        *self.items.lock() = items;
    }

    pub fn add(&self, new: impl IntoIterator<Item = LineItem>) {
        let mut items = self.items.lock();
        for n in new {
            match items.iter_mut().find(|i| i.name == n.name && i.unit == n.unit) {
                Some(i) => {
                    i.quantity += n.quantity;
                    i.amount += n.amount;
                }
                None => items.push(n),
            }
        }
    }

    /// A new period (or no billing policy any more): an empty ledger.
    pub fn clear(&self) {
        self.items.lock().clear();
        *self.mark.lock() = None;
    }

    /// Starts measuring intervals now, unless already measuring.
    pub fn begin(&self, t: &Tenant, now_ms: u64) {
        self.mark.lock().get_or_insert_with(|| Mark::of(t, now_ms));
    }

    /// The usage since the last interval ended, when at least `interval_ms`
    /// has passed; without a mark, the first call only sets it.
    pub fn interval(&self, t: &Tenant, now_ms: u64, interval_ms: u64) -> Option<ferrite_policy_abi::UsageDelta> {
        let mut mark = self.mark.lock();
        let Some(last) = *mark else {
            *mark = Some(Mark::of(t, now_ms));
            return None;
        };
        if now_ms.saturating_sub(last.at_ms) < interval_ms {
            return None;
        }
        let now = Mark::of(t, now_ms);
        *mark = Some(now);
        Some(ferrite_policy_abi::UsageDelta {
            interval_ms: now.at_ms - last.at_ms,
            reads: now.reads.saturating_sub(last.reads),
            writes: now.writes.saturating_sub(last.writes),
            bytes_in: now.bytes_in.saturating_sub(last.bytes_in),
            bytes_out: now.bytes_out.saturating_sub(last.bytes_out),
            memory_byte_seconds: now.byte_seconds.saturating_sub(last.byte_seconds),
            evictions: now.evicted.saturating_sub(last.evicted),
        })
    }
}
