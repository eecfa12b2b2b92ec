//! `[policy]`: the sandbox's limits, shared by every tenant's module.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Fuel (about one unit per wasm instruction) a single hook call may burn.
    pub fuel_per_call: u64,
    /// Linear memory a module may grow to, in bytes.
    pub memory_limit_bytes: u64,
    /// Wall-clock backstop per call (fuel does not count time in host calls).
    pub timeout_ms: u64,
    /// Largest module accepted by an upload.
    pub max_module_bytes: u64,
    /// Consecutive failed calls after which a module is disabled.
    pub max_failures: u32,
    /// How often the billing hook runs.
    pub billing_interval_ms: u64,
    /// Log lines a module may write per call, and per second.
    pub log_lines_per_call: u32,
    pub log_lines_per_second: u32,
    /// Longest log line kept; the rest is cut.
    pub log_line_bytes: u32,
    /// Earlier versions kept for POLICY ROLLBACK.
    pub keep_versions: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            fuel_per_call: 5_000_000,
            memory_limit_bytes: 16 << 20,
            timeout_ms: 50,
            max_module_bytes: 4 << 20,
            max_failures: 5,
            billing_interval_ms: 60_000,
            log_lines_per_call: 8,
            log_lines_per_second: 20,
            log_line_bytes: 1024,
            keep_versions: 2,
        }
    }
}

impl PolicyConfig {
    /// Refuses settings that cannot work; names the key.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(&str, bool); 6] = [
            ("fuel_per_call", self.fuel_per_call >= 1000),
            ("memory_limit_bytes", self.memory_limit_bytes >= 64 << 10),
            ("timeout_ms", self.timeout_ms >= 1),
            ("max_module_bytes", self.max_module_bytes >= 8),
            ("max_failures", self.max_failures >= 1),
            ("billing_interval_ms", self.billing_interval_ms >= 100),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((key, _)) => Err(format!(
                "[policy] {key} is out of range (fuel_per_call >= 1000, memory_limit_bytes >= 65536, timeout_ms >= 1, max_module_bytes >= 8, max_failures >= 1, billing_interval_ms >= 100)"
            )),
            None => Ok(()),
        }
    }
}
