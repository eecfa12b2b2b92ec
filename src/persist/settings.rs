//! The persistence settings under their Redis names, for `CONFIG GET` and
//! `CONFIG SET`: read from the running log when persistence is on (so
//! `appendonly` says what the server does), from the configuration when it
//! is off. What can change at runtime is `appendfsync` and the automatic
//! compaction thresholds; the rest is fixed until a restart.

use std::sync::atomic::Ordering::Relaxed;

use super::Persistence;
use super::config::{Fsync, PersistenceConfig};

/// Checks a value against the running persistence (`None`: it is off).
pub type Check = fn(Option<&Persistence>, &str) -> Result<(), String>;

pub struct Setting {
    pub name: &'static str,
    pub get: fn(Option<&Persistence>, &PersistenceConfig) -> String,
    /// Checks a value (`Err` is the reason); `None`: fixed until a restart.
    pub check: Option<Check>,
    /// Applies a checked value (only when persistence is on).
    pub apply: fn(&Persistence, &str),
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn on(p: Option<&Persistence>) -> Result<&Persistence, String> {
    p.ok_or_else(|| "persistence is off ([persistence] appendonly = false; restart with --appendonly yes)".into())
}

fn number(v: &str) -> Result<u64, String> {
    v.parse().map_err(|_| "argument couldn't be parsed into an integer".into())
}

fn nothing(_: &Persistence, _: &str) {}

pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "appendonly",
        get: |p, _| yes_no(p.is_some()),
        // Turning the log on or off at runtime is not supported: the value can
        // only be what it is (clients set it to be sure).
        check: Some(|p, v| match v.to_ascii_lowercase().as_str() {
            "yes" if p.is_some() => Ok(()),
            "no" if p.is_none() => Ok(()),
            "yes" | "no" => Err("turning the append-only log on or off needs a restart (--appendonly yes|no)".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        }),
        apply: nothing,
    },
    Setting {
        name: "appendfsync",
        get: |p, c| p.map_or(c.appendfsync, |p| p.aof.fsync()).name().into(),
        check: Some(|p, v| {
            Fsync::from_name(&v.to_ascii_lowercase()).ok_or("argument(s) must be one of the following: always, everysec, no")?;
            on(p).map(|_| ())
        }),
        apply: |p, v| p.aof.set_fsync(Fsync::from_name(&v.to_ascii_lowercase()).expect("checked")),
    },
    Setting {
        name: "auto-aof-rewrite-percentage",
        get: |p, c| p.map_or(c.auto_aof_rewrite_percentage, |p| p.auto_rewrite_percentage.load(Relaxed)).to_string(),
        check: Some(|p, v| number(v).and(on(p).map(|_| ()))),
        apply: |p, v| p.auto_rewrite_percentage.store(number(v).expect("checked"), Relaxed),
    },
    Setting {
        name: "auto-aof-rewrite-min-size",
        get: |p, c| p.map_or(c.auto_aof_rewrite_min_size, |p| p.auto_rewrite_min_size.load(Relaxed)).to_string(),
        check: Some(|p, v| number(v).and(on(p).map(|_| ()))),
        apply: |p, v| p.auto_rewrite_min_size.store(number(v).expect("checked"), Relaxed),
    },
    Setting { name: "aof-load-truncated", get: |_, c| yes_no(c.aof_load_truncated), check: None, apply: nothing },
    Setting { name: "dir", get: |_, c| c.dir.display().to_string(), check: None, apply: nothing },
];

pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}
