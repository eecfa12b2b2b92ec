//! Quota alerts: one event each time a tenant's memory, keys, ops rate or
//! connections cross one of its thresholds (80%, 90% and 100% of the limit
//! unless it has its own), and again only after the usage has fallen
//! [`HYSTERESIS`] points below that threshold and crossed it once more.
//!
//! The check is a sweep, once per metering tick (a second by default), not
//! a test on the command path: the hot path pays nothing, and a sweep costs
//! a few relaxed loads per tenant. A crossing shorter than a tick can go
//! unreported, which suits alerts meant to come *before* a limit is reached.
//! The server publishes what a sweep finds (see `server::meter_tenants`).

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use super::Tenant;

/// The admin (global) pub/sub channel events are published on.
pub const CHANNEL: &str = "__ferrite__:tenant-events";

/// Points below a threshold usage must fall before that threshold fires again.
pub const HYSTERESIS: u64 = 5;

/// At most this many thresholds per tenant.
pub const MAX_THRESHOLDS: usize = 8;

/// What a threshold is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Keys,
    Ops,
    Connections,
}

impl Resource {
    pub const ALL: [Resource; 4] = [Resource::Memory, Resource::Keys, Resource::Ops, Resource::Connections];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Keys => "keys",
            Resource::Ops => "ops",
            Resource::Connections => "connections",
        }
    }
}

/// Up to [`MAX_THRESHOLDS`] percentages (1-100), ascending and distinct,
/// one per byte from the lowest, so a tenant's set is one atomic word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Thresholds(u64);

impl Thresholds {
    pub const NONE: Thresholds = Thresholds(0);

    /// 80%, 90% and 100%.
    pub fn default_set() -> Thresholds {
        Thresholds::from_percents(&[80, 90, 100]).expect("valid")
    }

    pub fn from_percents(p: &[u64]) -> Result<Thresholds, String> {
        let mut v: Vec<u64> = p.to_vec();
        v.sort_unstable();
        v.dedup();
        if v.len() > MAX_THRESHOLDS || v.iter().any(|&x| !(1..=100).contains(&x)) {
            return Err(format!("use at most {MAX_THRESHOLDS} percentages from 1 to 100"));
        }
        Ok(Thresholds(v.iter().rev().fold(0, |acc, &x| (acc << 8) | x)))
    }

    /// `70,90`, or `none` for no alerts.
    pub fn parse(s: &str) -> Result<Thresholds, String> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Thresholds::NONE);
        }
        let p: Result<Vec<u64>, _> = s.split(',').map(|x| x.trim().parse::<u64>()).collect();
        p.map_err(|_| "use comma-separated percentages such as 80,90,100, or NONE".to_string()).and_then(|p| Self::from_percents(&p))
    }

    /// Ascending.
    pub fn iter(self) -> impl Iterator<Item = u64> {
        (0..MAX_THRESHOLDS).map(move |i| (self.0 >> (8 * i)) & 0xff).take_while(|&x| x > 0)
    }

    fn nth(self, i: usize) -> u64 {
        (self.0 >> (8 * i)) & 0xff
    }
}

impl fmt::Display for Thresholds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let parts: Vec<String> = self.iter().map(|x| x.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for Thresholds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thresholds({self})")
    }
}

/// `own` when the tenant follows the server's default thresholds.
const FOLLOW_DEFAULT: u64 = u64::MAX;

/// A tenant's thresholds and where each resource stands against them.
#[derive(Debug)]
pub struct AlertState {
    /// Its own thresholds, or [`FOLLOW_DEFAULT`].
    own: AtomicU64,
    /// Per resource: how many thresholds (from the lowest) have fired and
    /// not re-armed.
    levels: [AtomicU8; 4],
    /// Per resource: events published.
    fired: [AtomicU64; 4],
}

impl Default for AlertState {
    fn default() -> Self {
        AlertState { own: AtomicU64::new(FOLLOW_DEFAULT), levels: Default::default(), fired: Default::default() }
    }
}

impl AlertState {
    /// Its own thresholds (None: the server's).
    pub fn own(&self) -> Option<Thresholds> {
        let v = self.own.load(Relaxed);
        (v != FOLLOW_DEFAULT).then_some(Thresholds(v))
    }

    /// Sets (or, None, drops) its own thresholds. Every resource re-arms, so
    /// usage already above a new threshold is reported at the next sweep.
    pub fn set_own(&self, t: Option<Thresholds>) {
        self.own.store(t.map_or(FOLLOW_DEFAULT, |t| t.0), Relaxed);
        self.levels.iter().for_each(|l| l.store(0, Relaxed));
    }

    pub fn effective(&self, default: Thresholds) -> Thresholds {
        self.own().unwrap_or(default)
    }

    /// Events published for `r`.
    pub fn fired(&self, r: Resource) -> u64 {
        self.fired[r as usize].load(Relaxed)
    }
}

/// One crossing, as published (JSON) and logged.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub tenant: String,
    pub resource: Resource,
    pub used: u64,
    pub limit: u64,
    pub threshold: u64,
    /// Unix milliseconds.
    pub time_ms: u64,
}

impl AlertEvent {
    pub fn percent(&self) -> f64 {
        super::tenant::percent(self.used, self.limit)
    }

    /// `{"tenant":..,"resource":..,"used":..,"limit":..,"percent":..,"threshold":..,"time":..}`.
    /// Tenant ids are `[A-Za-z0-9_-]` and resources fixed words, so nothing
    /// needs escaping.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"tenant":"{}","resource":"{}","used":{},"limit":{},"percent":{:.2},"threshold":{},"time":{}}}"#,
            self.tenant,
            self.resource.name(),
            self.used,
            self.limit,
            self.percent(),
            self.threshold,
            self.time_ms
        )
    }
}

/// Where `used` of `limit` leaves a resource that had fired `level`
/// thresholds: the new level, and the threshold to report when it rose (the
/// highest one reached: one event even when a sweep finds several crossed).
pub fn step(level: usize, used: u64, limit: u64, t: Thresholds) -> (usize, Option<u64>) {
    if limit == 0 {
        return (0, None);
    }
    let pct = |x: u64| used.saturating_mul(100) >= limit.saturating_mul(x);
    let reached = t.iter().take_while(|&x| pct(x)).count();
    if reached > level {
        return (reached, Some(t.nth(reached - 1)));
    }
    let mut level = level.min(t.iter().count());
    while level > 0 && !pct(t.nth(level - 1).saturating_sub(HYSTERESIS)) {
        level -= 1;
    }
    // Just at (threshold - HYSTERESIS) still counts as above: re-arm strictly below.
    (level, None)
}

impl Tenant {
    /// (used, limit) of each resource, in [`Resource::ALL`]'s order: relaxed
    /// loads and the limits' read lock.
    pub fn alert_usage(&self) -> [(u64, u64); 4] {
        let l = self.limits();
        [
            (self.memory_used(), l.memory_bytes),
            (self.keys(), l.max_keys),
            (self.ops_rate.load(Relaxed), l.ops_per_second),
            (self.metrics.connections.load(Relaxed), l.max_connections),
        ]
    }

    /// Compares the tenant's usage with its thresholds; returns the
    /// crossings since the last sweep and counts them.
    pub fn sweep_alerts(&self, default: Thresholds, now_ms: u64) -> Vec<AlertEvent> {
        let a = &self.alerts;
        let t = a.effective(default);
        let mut out = Vec::new();
        for (r, (used, limit)) in Resource::ALL.into_iter().zip(self.alert_usage()) {
            let i = r as usize;
            let (level, fired) = step(a.levels[i].load(Relaxed) as usize, used, limit, t);
            a.levels[i].store(level as u8, Relaxed);
            if let Some(threshold) = fired {
                a.fired[i].fetch_add(1, Relaxed);
                out.push(AlertEvent { tenant: self.id().to_string(), resource: r, used, limit, threshold, time_ms: now_ms });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_sort_and_print() {
        assert_eq!(Thresholds::parse("90, 70").unwrap().to_string(), "70,90");
        assert_eq!(Thresholds::parse("NONE").unwrap(), Thresholds::NONE);
        assert_eq!(Thresholds::default_set().iter().collect::<Vec<_>>(), [80, 90, 100]);
        for bad in ["", "0", "101", "a", "1,2,3,4,5,6,7,8,9", "50,"] {
            assert!(Thresholds::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Thresholds::parse("1,2,3,4,5,6,7,100").unwrap().iter().count(), 8);
    }

    #[test]
    fn one_event_per_crossing_with_hysteresis() {
        let t = Thresholds::parse("80,90").unwrap();
        let run = |levels: &[u64]| {
            let mut level = 0;
            levels
                .iter()
                .filter_map(|&u| {
                    let (l, fired) = step(level, u, 100, t);
                    level = l;
                    fired
                })
                .collect::<Vec<_>>()
        };
        // Staying above fires once; a dip that is not below 75 does not re-arm.
        assert_eq!(run(&[50, 80, 85, 81, 76, 75, 82]), [80]);
        // Below 75 re-arms 80.
        assert_eq!(run(&[80, 74, 80]), [80, 80]);
        // Jumping past both reports the higher once; 85 keeps 90 fired, 84 re-arms it.
        assert_eq!(run(&[95, 85, 91, 84, 90]), [90, 90]);
        assert_eq!(run(&[0, 100]), [90]);
        // No limit, no alerts.
        assert_eq!(step(0, 5, 0, t), (0, None));
    }
}
