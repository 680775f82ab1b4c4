//! The NetworkPolicy semantic model: pure functions that answer questions about policies
//! exactly as Kubernetes would. No I/O, no async, no clock.

pub mod cluster;
pub mod dns;
pub mod ipblock;
pub mod peer;
pub mod policy;
pub mod ports;
pub mod selector;

use crate::config::Config;
use cluster::Inventory;
use dns::DnsTarget;

/// Everything an analysis may consult besides the policy itself.
#[derive(Debug)]
pub struct Context<'a> {
    pub config: &'a Config,
    pub inventory: &'a Inventory,
    pub dns: DnsTarget,
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Config, inventory: &'a Inventory) -> Self {
        Self {
            config,
            inventory,
            dns: DnsTarget::new(&config.dns, inventory),
        }
    }
}
