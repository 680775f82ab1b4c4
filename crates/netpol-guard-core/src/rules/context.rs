//! What a rule may consult besides the policy itself: the configured levels, the protected
//! namespaces, what is known of the cluster, and the resolved DNS target. A borrowed view,
//! so the settings layer above hands it out without copying.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::netpol::cluster::Inventory;
use crate::netpol::dns::{Coverage, DnsCoverage, DnsTarget};
use crate::netpol::index::PolicyIndex;
use crate::netpol::layers::Action;
use crate::netpol::policy::Subject;
use crate::netpol::ports::Protocol;
use crate::netpol::tiers::{self, Isolated, Namespaces, Pods, Say};

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
    /// Whether the pods selected by `subject` (whose egress it isolates) reach DNS on
    /// `protocol`: first as the policy layers decide (an Admin-tier or Cilium allow or deny
    /// is final, see [`tiers::dns`]), then through NetworkPolicy
    /// ([`DnsCoverage::of`]); another CNI's policy the guard does not read turns a miss into
    /// a condition.
    pub fn dns_reach(&self, subject: &Subject<'_>, protocol: Protocol) -> Coverage {
        let layers = self.inventory.layers();
        if layers.is_empty() {
            return self.dns_coverage.of(subject, protocol);
        }
        let selector = subject.pod_selector();
        let pods = Pods {
            namespaces: Namespaces::One {
                name: subject.namespace,
                labels: self.inventory.namespace_labels(subject.namespace),
            },
            pods: &selector,
        };
        let dns_isolated = if self.dns.ingress_isolated(self.inventory) {
            Isolated::ByNetworkPolicy
        } else {
            Isolated::No
        };
        let say = tiers::dns(
            layers,
            &pods,
            &self.dns,
            protocol,
            (Isolated::ByNetworkPolicy, dns_isolated),
        );
        let maybe = match say {
            Say::Allowed(by) => return Coverage::Layer(by.text),
            Say::Denied(by) => return Coverage::LayerDenied(by.text),
            Say::Depends(condition) => return Coverage::LayerDepends(condition),
            Say::Open(maybe) => maybe,
        };
        let policies = self.dns_coverage.of(subject, protocol);
        match maybe {
            Some(m)
                if (m.action == Action::Allow && policies.is_missing())
                    || (m.action == Action::Deny && !policies.is_missing()) =>
            {
                Coverage::LayerDepends(format!(
                    "whether {} ({}) applies to these pods: {}",
                    m.by,
                    m.action.as_str(),
                    m.condition
                ))
            }
            _ if policies.is_missing() => match tiers::unread(layers, &pods, &self.dns) {
                Some(other) => Coverage::LayerDepends(format!(
                    "no NetworkPolicy allows it; name lookups work only if {other}, a policy \
                     of another CNI that the guard does not read, allows DNS for these pods"
                )),
                None => policies,
            },
            _ => policies,
        }
    }

    /// The level a rule runs at.
    pub fn level(&self, rule: &Rule) -> Level {
        super::level(self.levels, rule)
    }

    /// Whether a namespace is protected.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }
}
