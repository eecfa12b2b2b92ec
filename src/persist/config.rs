//! `[persistence]`, under Redis's names where Redis has one.

use serde::Deserialize;

/// When the log is fsynced, as Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before a write's reply is sent: nothing acknowledged is ever lost.
    Always,
    /// Once a second: a crash loses at most about a second of writes.
    Everysec,
    /// When the OS decides.
    No,
}

impl Fsync {
    pub const ALL: [Fsync; 3] = [Fsync::Always, Fsync::Everysec, Fsync::No];

    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }

    pub fn index(self) -> u8 {
        Fsync::ALL.iter().position(|f| *f == self).expect("in ALL") as u8
    }

    /// The policy `name` names (as the config file and `--appendfsync` spell it).
    pub fn from_name(name: &str) -> Option<Fsync> {
        Fsync::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PersistenceConfig {
    /// Log every change and restore it at start-up.
    pub appendonly: bool,
    /// Where the log and the snapshot live.
    pub dir: std::path::PathBuf,
    pub appendfsync: Fsync,
    /// Start even if the log's last record was cut short (it is dropped).
    pub aof_load_truncated: bool,
    /// Compact when snapshot and log together have grown this many percent
    /// since the last compaction...
    pub auto_aof_rewrite_percentage: u64,
    /// ...and are at least this big (bytes).
    pub auto_aof_rewrite_min_size: u64,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            appendonly: true,
            dir: "./data".into(),
            appendfsync: Fsync::Everysec,
            aof_load_truncated: true,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
        }
    }
}
