//! What a rule may consult besides the policy itself: the configured levels, the protected
//! namespaces, what is known of the cluster, and the resolved DNS target. A borrowed view,
//! so the settings layer above hands it out without copying.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::netpol::cluster::Inventory;
use crate::netpol::dns::DnsTarget;

use super::{Level, Rule};

/// Everything an analysis may consult besides the policy itself.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Level overrides by rule id.
    pub levels: &'a BTreeMap<String, Level>,
    /// Namespaces whose isolation can take the cluster down.
    pub protected_namespaces: &'a [String],
    pub inventory: &'a Inventory,
    /// Resolved from the DNS settings and `inventory`.
    pub dns: Arc<DnsTarget>,
}

impl Context<'_> {
    /// The level a rule runs at.
    pub fn level(&self, rule: &Rule) -> Level {
        super::level(self.levels, rule)
    }

    /// Whether a namespace is protected.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }
}
