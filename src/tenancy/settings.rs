//! A tenant's own settings (its `notify-keyspace-events`, its copy of the
//! encoding parameters and its quota alert thresholds) as name/value
//! pairs: what the log, a snapshot and a move keep of them, and how a
//! replay applies them again.

use super::Tenant;
use super::alerts::Thresholds;
use crate::space::notify;
use crate::tuning::{TUNABLES, Tuning};

/// The name of the one server parameter a tenant sets for itself besides
/// the encoding parameters.
pub const NOTIFY: &str = "notify-keyspace-events";

/// Its quota alert thresholds (`TENANT.UPDATE <id> ALERTS ...`); no
/// CONFIG parameter has this name.
pub const ALERTS: &str = "tenant-alerts";

impl Tenant {
    /// The settings the tenant has of its own (none: it follows the
    /// server's): its keyspace events, then every encoding parameter of
    /// its copy.
    pub fn own_settings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(flags) = self.space.events.own() {
            out.push((NOTIFY.to_string(), notify::format(flags)));
        }
        if let Some(t) = self.alerts.own() {
            out.push((ALERTS.to_string(), t.to_string()));
        }
        if let Some(tuning) = self.tuning.lock().as_ref() {
            out.extend(TUNABLES.iter().enumerate().map(|(i, t)| (t.name.to_string(), tuning.get(i).to_string())));
        }
        out
    }

    /// Makes `settings` (what `own_settings` gave) the tenant's own, and
    /// nothing else (replay): its copy of the encoding parameters starts
    /// from `server`'s. Err names the first it cannot apply; the others
    /// are applied.
    pub fn restore_settings(&self, settings: &[(String, String)], server: &Tuning) -> Result<(), String> {
        self.space.events.set_own(None);
        self.alerts.set_own(None);
        *self.tuning.lock() = None;
        let mut failed = None;
        for (name, value) in settings {
            let applied = if name.eq_ignore_ascii_case(NOTIFY) {
                notify::parse(value.as_bytes()).map(|f| self.space.events.set_own(Some(f))).ok_or_else(|| notify::BAD_CLASS.to_string())
            } else if name == ALERTS {
                Thresholds::parse(value).map(|t| self.alerts.set_own(Some(t)))
            } else if let Some(i) = crate::tuning::find(name) {
                self.tuning.lock().get_or_insert_with(|| server.clone()).set(i, value)
            } else {
                Err(format!("unknown parameter '{name}'"))
            };
            if let (Err(e), None) = (applied, &failed) {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
