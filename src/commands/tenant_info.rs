//! INFO's `# Tenant` section: what a tenant may see of itself without
//! admin rights (its limits, its usage against them, why it was refused,
//! its alert thresholds). Field names start with `tenant_` because clients
//! merge INFO's sections into one map (`used_memory` is already Memory's).

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::tenancy::Tenant;
use crate::tenancy::alerts::{Resource, Thresholds};
use crate::tenancy::tenant::{Refusal, percent};

pub fn section(t: &Tenant, default_alerts: Thresholds, out: &mut String) {
    let m = &t.metrics;
    let state = if t.migration.lock().is_some() { "migrating" } else { t.state().name() };
    let _ = write!(out, "# Tenant\r\ntenant_id:{}\r\ntenant_tier:{}\r\ntenant_state:{state}\r\n", t.id(), t.tier_name());
    // (used, limit) per Resource::ALL, then the databases.
    let names = ["memory_used", "keys", "ops_per_sec", "connections"];
    let limits = ["memory_limit", "key_limit", "ops_limit", "connection_limit"];
    for (i, (used, limit)) in t.alert_usage().into_iter().enumerate() {
        let pct = percent(used, limit);
        let _ = write!(out, "tenant_{}:{used}\r\ntenant_{}:{limit}\r\ntenant_{}_perc:{pct:.2}%\r\n", names[i], limits[i], names[i]);
    }
    let l = t.limits();
    let _ = write!(out, "tenant_databases:{}\r\ntenant_database_limit:{}\r\n", t.space.existing().count(), l.max_databases);
    let _ = write!(
        out,
        "tenant_commands_read:{}\r\ntenant_commands_write:{}\r\ntenant_evicted_keys:{}\r\n",
        m.reads.load(Relaxed),
        m.writes.load(Relaxed),
        m.evicted.load(Relaxed)
    );
    for r in Refusal::ALL {
        let _ = write!(out, "tenant_refused_{}:{}\r\n", r.name(), m.refused(r));
    }
    let _ = write!(out, "tenant_alert_thresholds:{}\r\n", t.alerts.effective(default_alerts));
    for r in Resource::ALL {
        let _ = write!(out, "tenant_alerts_{}:{}\r\n", r.name(), t.alerts.fired(r));
    }
}
