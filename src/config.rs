//! Configuration: TOML file, command-line overrides and `CONFIG GET/SET`.
//!
//! Every setting has one entry in [`PARAMS`] (its Redis name, how to read it
//! and how to set it) so that the file, the command line and `CONFIG SET`
//! validate values the same way. Unknown keys and bad values are errors that
//! name the key.

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid value for '{key}': {message}")]
    BadValue { key: String, message: String },
    #[error("unknown config key '{0}'")]
    UnknownKey(String),
}

/// The whole file. Each table rejects keys it does not know.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub tenancy: crate::tenancy::TenantConfig,
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
    #[serde(default)]
    pub persistence: crate::persist::PersistenceConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// `[metrics]`: the Prometheus endpoint.
    #[serde(default)]
    pub metrics: crate::exporter::MetricsConfig,
}

/// `[cluster]`: how nodes reach each other. `secret` is a password every
/// node accepts as its admin's (AUTH <secret>) and sends to another node
/// (TENANT.MIGRATE without AUTH, the forwarding connections), so nodes
/// need not know each other's `requirepass`.
///
/// `node_id` and `etcd` together make this node one of many sharing a
/// directory of tenants in etcd (`crate::cluster`); without them the node is
/// on its own and needs no etcd.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub secret: Option<String>,
    /// This node's name in the directory (letters, digits, `-`, `_`, `.`).
    pub node_id: String,
    /// Where the other nodes and clients reach this one (`host:port`);
    /// empty: the address the server listens on.
    pub advertise: String,
    /// etcd v3 endpoints (`http://127.0.0.1:2379`).
    pub etcd: Vec<String>,
}

impl ClusterConfig {
    /// Whether this node takes part in a directory.
    pub fn enabled(&self) -> bool {
        !self.node_id.is_empty()
    }

    /// Refuses half a cluster: a node id without etcd (or etcd without an
    /// id) would either never register or register as nobody.
    pub fn validate(&self) -> Result<(), String> {
        match (self.node_id.is_empty(), self.etcd.is_empty()) {
            (true, false) => return Err("etcd is set but node_id is not (set both, or neither)".into()),
            (false, true) => return Err("node_id is set but etcd is not (set both, or neither)".into()),
            _ => {}
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !self.node_id.chars().all(valid) || self.node_id.len() > 64 {
            return Err(format!("node_id '{}' must be at most 64 letters, digits, '-', '_' or '.'", self.node_id));
        }
        if let Some(e) = self.etcd.iter().find(|e| !(e.starts_with("http://") || e.starts_with("https://"))) {
            return Err(format!("etcd endpoint '{e}' must start with http:// or https://"));
        }
        if !self.advertise.is_empty() && self.advertise.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()) {
            return Err(format!("advertise '{}' must be host:port", self.advertise));
        }
        Ok(())
    }
}

/// `[server]`: Redis's own settings, under their Redis names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServerConfig {
    pub bind: String,
    pub port: u16,
    pub requirepass: Option<String>,
    pub maxclients: u64,
    pub databases: u64,
    #[serde(deserialize_with = "de_size")]
    pub proto_max_bulk_len: u64,
    #[serde(deserialize_with = "de_size")]
    pub client_query_buffer_limit: u64,
    /// Close idle clients after this many seconds (0: never).
    pub timeout: u64,
    /// How long a script runs before the tenant's other clients get BUSY
    /// (ms; Redis's `busy-reply-threshold`, alias `lua-time-limit`).
    #[serde(alias = "lua-time-limit")]
    pub busy_reply_threshold: u64,
    #[serde(deserialize_with = "de_size")]
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub maxmemory_samples: u64,
    pub lfu_log_factor: u64,
    pub lfu_decay_time: u64,
    /// Active expiry cycles per second.
    pub hz: u64,
    pub loglevel: String,
    pub tcp_keepalive: u64,
    /// Redis's `client-output-buffer-limit`, in its syntax:
    /// `"normal 0 0 0 pubsub 32mb 8mb 60"`.
    #[serde(deserialize_with = "de_output_limits")]
    pub client_output_buffer_limit: OutputLimits,
    /// The server's default `notify-keyspace-events` classes (Redis's
    /// letters in the file; a tenant may set its own).
    #[serde(deserialize_with = "de_notify")]
    pub notify_keyspace_events: u32,
    /// Worker threads; 0 picks one less than the cores (at least one), which
    /// leaves a core for the kernel's network work and co-located clients.
    pub threads: u64,
    /// SLOWLOG: commands at least this many microseconds long are logged
    /// (-1: none; 0: every command); each space keeps `slowlog-max-len`.
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    /// CLIENT TRACKING: keys a space's table keeps (0: no limit; a
    /// tenant's table is also kept within a tenth of its memory).
    pub tracking_table_max_keys: u64,
    /// LATENCY: events at least this many milliseconds long are sampled (0: off).
    pub latency_monitor_threshold: u64,
    /// Redis's encoding parameters, set only by CONFIG SET (see `tuning`).
    #[serde(skip)]
    pub tuning: crate::tuning::Tuning,
}

impl ServerConfig {
    /// The worker-thread count to run with.
    pub fn worker_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            n => n as usize,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1".into(),
            port: 6379,
            requirepass: None,
            maxclients: 10000,
            databases: 16,
            proto_max_bulk_len: 512 << 20,
            client_query_buffer_limit: 1 << 30,
            timeout: 0,
            busy_reply_threshold: 5000,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
            hz: 10,
            loglevel: "notice".into(),
            tcp_keepalive: 300,
            client_output_buffer_limit: OutputLimits::default(),
            notify_keyspace_events: 0,
            threads: 0,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            tracking_table_max_keys: 1_000_000,
            latency_monitor_threshold: 0,
            tuning: crate::tuning::Tuning::default(),
        }
    }
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

/// Parses `1024`, `64kb`, `512MB`, `4gb` (powers of 1024) or `1k`/`1m`/`1g`
/// (powers of 1000), as Redis's `memtoull` does.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size (try 512mb)"))?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return Err(format!("'{s}' has an unknown unit (use kb, mb, gb)")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("'{s}' is too large"))
}

/// One class of `client-output-buffer-limit`: a client is closed when its
/// pending output passes `hard`, or stays above `soft` for `soft_secs`
/// seconds (0 turns a limit off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// `client-output-buffer-limit` for Redis's three classes, with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    pub normal: ClassLimit,
    pub replica: ClassLimit,
    pub pubsub: ClassLimit,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            normal: ClassLimit { hard: 0, soft: 0, soft_secs: 0 },
            replica: ClassLimit { hard: 256 << 20, soft: 64 << 20, soft_secs: 60 },
            pubsub: ClassLimit { hard: 32 << 20, soft: 8 << 20, soft_secs: 60 },
        }
    }
}

impl OutputLimits {
    /// Applies `<class> <hard> <soft> <seconds>` groups, as `CONFIG SET`
    /// does: classes not named keep their limits; nothing changes on error.
    pub fn apply(&mut self, v: &str) -> Result<(), String> {
        let words: Vec<&str> = v.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".into());
        }
        let mut next = *self;
        for g in words.chunks(4) {
            let class = match g[0].to_ascii_lowercase().as_str() {
                "normal" => &mut next.normal,
                "replica" | "slave" => &mut next.replica,
                "pubsub" => &mut next.pubsub,
                _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
            };
            let size = |w: &str| {
                parse_size(w).map_err(|_| "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_string())
            };
            *class = ClassLimit { hard: size(g[1])?, soft: size(g[2])?, soft_secs: size(g[3])? };
        }
        *self = next;
        Ok(())
    }

    /// As `CONFIG GET` shows it (bytes, and Redis's `slave`).
    pub fn to_redis(&self) -> String {
        let c = |n: &str, l: ClassLimit| format!("{n} {} {} {}", l.hard, l.soft, l.soft_secs);
        format!("{} {} {}", c("normal", self.normal), c("slave", self.replica), c("pubsub", self.pubsub))
    }
}

fn de_output_limits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OutputLimits, D::Error> {
    let mut limits = OutputLimits::default();
    limits.apply(&String::deserialize(d)?).map_err(serde::de::Error::custom)?;
    Ok(limits)
}

fn de_notify<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let s = String::deserialize(d)?;
    crate::space::notify::parse(s.as_bytes()).ok_or_else(|| serde::de::Error::custom(crate::space::notify::BAD_CLASS))
}

pub const EVICTION_POLICIES: &[&str] =
    &["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"];

type Getter = fn(&ServerConfig) -> String;
type Setter = fn(&mut ServerConfig, &str) -> Result<(), String>;

/// One configuration parameter, as `CONFIG GET/SET` see it.
pub struct Param {
    pub name: &'static str,
    pub get: Getter,
    /// None: read-only at runtime (set in the file or on the command line).
    pub set: Option<Setter>,
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("argument couldn't be parsed into an integer: '{v}'"))
}

fn bounded(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let n: u64 = num(v)?;
    if n < lo || n > hi {
        return Err(format!("argument must be between {lo} and {hi} inclusive"));
    }
    Ok(n)
}

/// Redis's signed 64-bit parameters (`createLongLongConfig`), from `lo`
/// up, with its two errors.
fn long_long(v: &str, lo: i64) -> Result<i64, String> {
    let n: i64 = v.parse().map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if n < lo {
        return Err(format!("argument must be between {lo} and {} inclusive", i64::MAX));
    }
    Ok(n)
}

/// A Redis signed 64-bit parameter from 0 up, kept unsigned.
macro_rules! long_param {
    ($name:literal, $field:ident) => {
        Param {
            name: $name,
            get: |c| c.$field.to_string(),
            set: Some(|c, v| {
                c.$field = long_long(v, 0)? as u64;
                Ok(())
            }),
        }
    };
}

/// An integer parameter settable within `lo..=hi`.
macro_rules! int_param {
    ($name:literal, $field:ident, $lo:expr, $hi:expr) => {
        Param {
            name: $name,
            get: |c| c.$field.to_string(),
            set: Some(|c, v| {
                c.$field = bounded(v, $lo, $hi)?;
                Ok(())
            }),
        }
    };
}

/// A size parameter (`512mb`, `1gb`, bytes) settable within `lo..=hi`.
macro_rules! size_param {
    ($name:literal, $field:ident, $lo:expr, $hi:expr) => {
        Param {
            name: $name,
            get: |c| c.$field.to_string(),
            set: Some(|c, v| {
                let n = parse_size(v)?;
                let (lo, hi): (u64, u64) = ($lo, $hi);
                if !(lo..=hi).contains(&n) {
                    return Err(format!("argument must be between {lo} and {hi} inclusive"));
                }
                c.$field = n;
                Ok(())
            }),
        }
    };
}

/// The parameters Ferrite knows; anything else is an unknown key.
pub static PARAMS: &[Param] = &[
    Param { name: "bind", get: |c| c.bind.clone(), set: None },
    Param { name: "port", get: |c| c.port.to_string(), set: None },
    Param {
        name: "requirepass",
        get: |c| c.requirepass.clone().unwrap_or_default(),
        set: Some(|c, v| {
            c.requirepass = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        }),
    },
    int_param!("maxclients", maxclients, 1, 1_000_000),
    Param { name: "databases", get: |c| c.databases.to_string(), set: None },
    Param { name: "threads", get: |c| c.threads.to_string(), set: None },
    size_param!("proto-max-bulk-len", proto_max_bulk_len, 1 << 20, 1 << 40),
    size_param!("client-query-buffer-limit", client_query_buffer_limit, 1 << 20, 1 << 40),
    int_param!("timeout", timeout, 0, i32::MAX as u64),
    int_param!("busy-reply-threshold", busy_reply_threshold, 0, i64::MAX as u64),
    int_param!("lua-time-limit", busy_reply_threshold, 0, i64::MAX as u64),
    size_param!("maxmemory", maxmemory, 0, u64::MAX),
    Param {
        name: "maxmemory-policy",
        get: |c| c.maxmemory_policy.clone(),
        set: Some(|c, v| {
            let v = v.to_ascii_lowercase();
            if !EVICTION_POLICIES.contains(&v.as_str()) {
                return Err("argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction".into());
            }
            c.maxmemory_policy = v;
            Ok(())
        }),
    },
    int_param!("maxmemory-samples", maxmemory_samples, 1, 64),
    int_param!("lfu-log-factor", lfu_log_factor, 0, i32::MAX as u64),
    int_param!("lfu-decay-time", lfu_decay_time, 0, i32::MAX as u64),
    int_param!("hz", hz, 1, 500),
    Param {
        name: "loglevel",
        get: |c| c.loglevel.clone(),
        set: Some(|c, v| {
            let v = v.to_ascii_lowercase();
            if !["debug", "verbose", "notice", "warning", "nothing"].contains(&v.as_str()) {
                return Err("argument(s) must be one of the following: debug, verbose, notice, warning, nothing".into());
            }
            c.loglevel = v;
            Ok(())
        }),
    },
    int_param!("tcp-keepalive", tcp_keepalive, 0, i32::MAX as u64),
    Param {
        name: "client-output-buffer-limit",
        get: |c| c.client_output_buffer_limit.to_redis(),
        set: Some(|c, v| c.client_output_buffer_limit.apply(v)),
    },
    // Redis's RDB save points. Ferrite logs every write instead and compacts
    // by size (`auto-aof-rewrite-*`, see `persist::settings`), so it has
    // none: it reads as Redis's "no save points" and accepts only that.
    Param {
        name: "save",
        get: |_| String::new(),
        set: Some(|_, v| {
            if v.is_empty() {
                Ok(())
            } else {
                Err("Ferrite has no save points: it logs every write (appendonly) and compacts by size".into())
            }
        }),
    },
    Param {
        name: "notify-keyspace-events",
        get: |c| crate::space::notify::format(c.notify_keyspace_events),
        set: Some(|c, v| {
            c.notify_keyspace_events = crate::space::notify::parse(v.as_bytes()).ok_or(crate::space::notify::BAD_CLASS)?;
            Ok(())
        }),
    },
    Param {
        name: "slowlog-log-slower-than",
        get: |c| c.slowlog_log_slower_than.to_string(),
        set: Some(|c, v| {
            c.slowlog_log_slower_than = long_long(v, -1)?;
            Ok(())
        }),
    },
    long_param!("slowlog-max-len", slowlog_max_len),
    long_param!("latency-monitor-threshold", latency_monitor_threshold),
    long_param!("tracking-table-max-keys", tracking_table_max_keys),
];

pub fn param(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: p.clone(), source })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: p, message },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse { path: "<string>".into(), message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values serde cannot: ranges and enumerations, by running each
    /// through its `CONFIG SET` validator.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.tenancy.validate().map_err(|message| ConfigError::BadValue { key: "tenancy".into(), message })?;
        self.policy.validate().map_err(|message| ConfigError::BadValue { key: "policy".into(), message })?;
        self.metrics.validate().map_err(|message| ConfigError::BadValue { key: "metrics".into(), message })?;
        self.cluster.validate().map_err(|message| ConfigError::BadValue { key: "cluster".into(), message })?;
        if self.persistence.dir.as_os_str().is_empty() {
            return Err(ConfigError::BadValue { key: "persistence.dir".into(), message: "must not be empty".into() });
        }
        let mut scratch = self.server.clone();
        for p in PARAMS {
            if let Some(set) = p.set {
                let v = (p.get)(&self.server);
                set(&mut scratch, &v).map_err(|message| ConfigError::BadValue { key: p.name.into(), message })?;
            }
        }
        if self.server.threads > 256 {
            return Err(ConfigError::BadValue { key: "threads".into(), message: "must be between 0 (auto) and 256".into() });
        }
        if !(1..=1024).contains(&self.server.databases) {
            return Err(ConfigError::BadValue { key: "databases".into(), message: "must be between 1 and 1024".into() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("4gb"), Ok(4 << 30));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let e = Config::from_toml("[server]\nprot = 1\n").unwrap_err().to_string();
        assert!(e.contains("prot"), "{e}");
        let e = Config::from_toml("[server]\nmaxmemory-policy = \"sometimes\"\n").unwrap_err().to_string();
        assert!(e.contains("maxmemory-policy"), "{e}");
        let e = Config::from_toml("[nonsense]\n").unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
        let e = Config::from_toml("[tenancy.default_limits]\nmemory = 5\n").unwrap_err().to_string();
        assert!(e.contains("memory"), "{e}");
        let e = Config::from_toml("[tenancy]\nisolation_enabled = false\n").unwrap_err().to_string();
        assert!(e.contains("isolation_enabled"), "{e}");
        let c = Config::from_toml(
            "[tenancy]\nmax_tenants = 7\n[tenancy.default_limits]\nmemory_bytes = 1024\nmax_keys = 2\nops_per_second = 3\nmax_connections = 4\nmax_databases = 5\n[tenancy.tiers.gold]\nmemory_bytes = 1\nmax_keys = 1\nops_per_second = 1\nmax_connections = 1\nmax_databases = 1\n[tenancy.billing]\nprice_per_gb_hour = 2.5\n",
        )
        .unwrap();
        assert_eq!(c.tenancy.max_tenants, 7);
        assert_eq!(c.tenancy.default_limits.max_databases, 5);
        assert!(c.tenancy.tiers.contains_key("gold"));
        assert_eq!(c.tenancy.billing.price_per_gb_hour, 2.5);
        let e = Config::from_toml("[server]\nclient-output-buffer-limit = \"pubsub 1mb\"\n").unwrap_err().to_string();
        assert!(e.contains("buffer limit"), "{e}");
        let c = Config::from_toml("[server]\nclient-output-buffer-limit = \"pubsub 1mb 512kb 5\"\n").unwrap();
        assert_eq!(c.server.client_output_buffer_limit.to_redis(), "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 5");
        let c = Config::from_toml("[server]\nport = 7000\nproto-max-bulk-len = \"16mb\"\n").unwrap();
        assert_eq!((c.server.port, c.server.proto_max_bulk_len), (7000, 16 << 20));
    }

    #[test]
    fn cluster_needs_both_node_id_and_etcd() {
        let e = Config::from_toml("[cluster]\nnode_id = \"n1\"\n").unwrap_err().to_string();
        assert!(e.contains("cluster") && e.contains("etcd"), "{e}");
        let e = Config::from_toml("[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n").unwrap_err().to_string();
        assert!(e.contains("node_id"), "{e}");
        let e = Config::from_toml("[cluster]\nnode_id = \"n/1\"\netcd = [\"http://127.0.0.1:2379\"]\n").unwrap_err().to_string();
        assert!(e.contains("node_id"), "{e}");
        let c = Config::from_toml(
            "[cluster]\nnode_id = \"n1\"\nadvertise = \"127.0.0.1:7001\"\netcd = [\"http://127.0.0.1:2379\"]\nsecret = \"s\"\n",
        )
        .unwrap();
        assert!(c.cluster.enabled());
        assert_eq!(c.cluster.advertise, "127.0.0.1:7001");
        // Off by default: a single node needs no etcd.
        assert!(!Config::from_toml("[cluster]\nsecret = \"s\"\n").unwrap().cluster.enabled());
    }
}
