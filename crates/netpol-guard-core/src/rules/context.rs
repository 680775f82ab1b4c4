//! What a rule may consult besides the policy itself: the configured levels, the protected
//! namespaces, what is known of the cluster, and the resolved DNS target. A borrowed view,
//! so the settings layer above hands it out without copying.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::netpol::cluster::Inventory;
use crate::netpol::dns::{DnsCoverage, DnsTarget};
use crate::netpol::index::PolicyIndex;

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
    /// The inventory's policies, prepared once for every subject judged in this context.
    pub policies: Arc<PolicyIndex<'a>>,
    /// Which pods reach DNS, each stored policy judged once.
    pub dns_coverage: Arc<DnsCoverage<'a>>,
}

impl<'a> Context<'a> {
    /// A context for one analysis: keep it for all the subjects judged against the same
    /// inventory, so that what is prepared about its policies is prepared once.
    pub fn new(
        levels: &'a BTreeMap<String, Level>,
        protected_namespaces: &'a [String],
        inventory: &'a Inventory,
        dns: Arc<DnsTarget>,
    ) -> Self {
        let policies = Arc::new(PolicyIndex::new(inventory));
        let dns_coverage = Arc::new(DnsCoverage::new(dns.clone(), policies.clone()));
        Self {
            levels,
            protected_namespaces,
            inventory,
            dns,
            policies,
            dns_coverage,
        }
    }
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
