//! The metrics exporter: an HTTP endpoint serving Prometheus's text format
//! (`[metrics] listen`, off unless configured), with the server's series
//! under redis_exporter's names and every tenant's usage against its limits,
//! refusals, evictions, policy health, quota alerts and billing meters.
//!
//! A scrape reads relaxed atomics and takes only short locks
//! ([`collect`]), on the endpoint's own thread (`http`), so no worker that
//! serves clients spends the time; one scrape runs at a time, and
//! `max_tenants` keeps it bounded (the biggest tenants by memory).

pub mod collect;
pub mod encode;
mod http;

use std::net::SocketAddr;

use serde::Deserialize;

pub use http::spawn;

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `ip:port` of the endpoint (`127.0.0.1:9121`); none: no endpoint.
    pub listen: Option<String>,
    /// Tenants a scrape reports at most: the biggest by memory (0: none,
    /// only the server's series).
    pub max_tenants: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: None, max_tenants: 10_000 }
    }
}

impl MetricsConfig {
    /// The endpoint's address, if it has one (`validate` checked it parses).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    pub fn validate(&self) -> Result<(), String> {
        match self.listen.as_deref().map(str::parse::<SocketAddr>) {
            Some(Err(e)) => Err(format!("metrics.listen: {e} (want ip:port, such as 127.0.0.1:9121)")),
            _ => Ok(()),
        }
    }
}

/// One scrape's text: everything [`collect`] reads, encoded. `scrapes` and
/// `last_secs` describe the endpoint itself; `capacity` is what the text is
/// expected to need.
pub fn render(state: &crate::server::ServerState, max_tenants: usize, scrapes: u64, last_secs: f64, capacity: usize) -> String {
    let all = state.tenants.list();
    let server = collect::server(state, &all);
    let total = all.len();
    let kept = collect::biggest(all, max_tenants);
    let cfg = state.tenants.config();
    let billing = cfg.billing_enabled.then_some(&cfg.billing);
    let tenants: Vec<_> = kept.iter().map(|t| collect::tenant(t, billing)).collect();
    let scrape = encode::Scrape {
        server,
        omitted: (total - tenants.len()) as u64,
        tenants,
        currency: cfg.billing.currency.clone(),
        scrapes,
        last_scrape_secs: last_secs,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::with_capacity(capacity);
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}
