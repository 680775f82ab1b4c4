//! The NetworkPolicy semantic model: pure functions that answer questions about policies
//! exactly as Kubernetes would. No I/O, no async, no clock.

pub mod cluster;
pub mod dns;
pub mod ipblock;
pub mod peer;
pub mod policy;
pub mod ports;
pub mod selector;

use std::sync::Arc;

use crate::config::Config;
use cluster::Inventory;
use dns::DnsTarget;

/// Everything an analysis may consult besides the policy itself.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub config: &'a Config,
    pub inventory: &'a Inventory,
    /// Derived from `config` and `inventory`; see [`Context::with_dns`].
    pub dns: Arc<DnsTarget>,
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Config, inventory: &'a Inventory) -> Self {
        let dns = Arc::new(DnsTarget::new(&config.dns, inventory));
        Self::with_dns(config, inventory, dns)
    }

    /// A context whose DNS target was resolved beforehand, from this same `config` and
    /// `inventory` (the webhook resolves it once per configuration and cluster snapshot).
    pub fn with_dns(config: &'a Config, inventory: &'a Inventory, dns: Arc<DnsTarget>) -> Self {
        Self {
            config,
            inventory,
            dns,
        }
    }
}
