//! Billing: operations priced per million in volume tiers (the price falls
//! as the period's volume grows), plus memory in GB-hours.
//!
//! CONFIG: `tiers=0:0.40,10:0.30,100:0.20` (from N million ops: price per
//! million) and `gb_hour=0.015`.
//! Build: `cargo build --release --target wasm32-unknown-unknown -p tiered-billing`

#![cfg_attr(target_arch = "wasm32", no_std)]

use ferrite_guest_sdk::*;

pub struct TieredBilling {
    /// (from this many ops, price per million), ascending.
    tiers: Vec<(u64, f64)>,
    gb_hour: f64,
    /// Ops billed so far, which decides the tier of the next ones.
    ops_so_far: u64,
}

const MILLION: u64 = 1_000_000;
const GB: f64 = (1u64 << 30) as f64;

impl Policy for TieredBilling {
    fn init(config: &[u8]) -> Result<Self, String> {
        let mut p = TieredBilling { tiers: vec![(0, 0.40), (10 * MILLION, 0.30), (100 * MILLION, 0.20)], gb_hour: 0.015, ops_so_far: 0 };
        for (k, v) in config::pairs(config)? {
            match k.as_str() {
                "tiers" => p.tiers = parse_tiers(&v)?,
                "gb_hour" => p.gb_hour = config::number(&k, &v)?,
                _ => return Err(format!("unknown CONFIG key '{k}' (expected tiers, gb_hour)")),
            }
        }
        Ok(p)
    }
}

fn parse_tiers(v: &str) -> Result<Vec<(u64, f64)>, String> {
    let mut tiers = Vec::new();
    for t in config::list(v) {
        let (from, price) = t.split_once(':').ok_or_else(|| format!("tier '{t}' is not <million ops>:<price>"))?;
        tiers.push((config::number::<u64>("tiers", from)?.saturating_mul(MILLION), config::number::<f64>("tiers", price)?));
    }
    tiers.sort_by_key(|t| t.0);
    if tiers.first().is_none_or(|t| t.0 != 0) {
        return Err("the first tier must start at 0".into());
    }
    Ok(tiers)
}

impl TieredBilling {
    /// Splits `ops` more operations across the tiers they fall in.
    fn price_ops(&mut self, ops: u64) -> Vec<LineItem> {
        let mut items = Vec::new();
        let (mut start, end) = (self.ops_so_far, self.ops_so_far + ops);
        for (i, &(from, price)) in self.tiers.iter().enumerate() {
            let upto = self.tiers.get(i + 1).map_or(u64::MAX, |t| t.0);
            if start >= upto || end <= from {
                continue;
            }
            let n = end.min(upto) - start.max(from);
            let millions = n as f64 / MILLION as f64;
            items.push(LineItem {
                name: format!("operations tier {}", i + 1),
                unit: "million ops".into(),
                quantity: millions,
                amount: millions * price,
            });
            start = end.min(upto);
        }
        self.ops_so_far = end;
        items
    }
}

impl BillingPolicy for TieredBilling {
    fn bill(&mut self, input: &BillingInput) -> Vec<LineItem> {
        let mut items = self.price_ops(input.delta.reads + input.delta.writes);
        let gb_hours = input.delta.memory_byte_seconds as f64 / GB / 3600.0;
        items.push(LineItem { name: "memory".into(), unit: "GB-hours".into(), quantity: gb_hours, amount: gb_hours * self.gb_hour });
        items
    }
}

export_policy!(TieredBilling: BillingPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    fn bill(p: &mut TieredBilling, ops: u64, byte_seconds: u64) -> Vec<LineItem> {
        let delta = UsageDelta { reads: ops, memory_byte_seconds: byte_seconds, ..UsageDelta::default() };
        p.bill(&BillingInput { tenant: "t".into(), tier: "pro".into(), now_ms: 0, delta, usage: Usage::default() })
    }

    #[test]
    fn volume_crossing_a_tier_is_split_between_the_two_prices() {
        let mut p = TieredBilling::init(b"tiers=0:1.0,2:0.5; gb_hour=2").unwrap();
        let items = bill(&mut p, 3 * MILLION, 0);
        assert_eq!(items[0], LineItem { name: "operations tier 1".into(), unit: "million ops".into(), quantity: 2.0, amount: 2.0 });
        assert_eq!(items[1], LineItem { name: "operations tier 2".into(), unit: "million ops".into(), quantity: 1.0, amount: 0.5 });
        // The period's volume carries over: the next million is all tier 2.
        let next = bill(&mut p, MILLION, 0);
        assert_eq!(next[0].name, "operations tier 2");
    }

    #[test]
    fn memory_is_priced_in_gb_hours() {
        let mut p = TieredBilling::init(b"gb_hour=2").unwrap();
        let items = bill(&mut p, 0, (1u64 << 30) * 3600);
        let mem = items.iter().find(|i| i.name == "memory").unwrap();
        assert_eq!((mem.quantity, mem.amount), (1.0, 2.0));
    }

    #[test]
    fn tiers_must_start_at_zero() {
        assert!(TieredBilling::init(b"tiers=5:1.0").is_err());
    }
}
