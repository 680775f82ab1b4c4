//! Audit: the findings of the policies already in the cluster, each judged with the full
//! cluster context (the other policies, the namespaces, the pods, the DNS target), plus a
//! summary per namespace. Pure: it reads an [`Inventory`] and the settings; `netpol-guard
//! audit` fills the inventory from one list of each resource, `serve` from its cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Serialize;

use crate::config::Config;
use crate::guard::companions;
use crate::netpol::cluster::Inventory;
use crate::netpol::dns::Coverage;
use crate::netpol::policy::Subject;
use crate::netpol::ports::Protocol;
use crate::rules::{self, Finding, Severity};

/// One existing policy and what the rules say about it.
#[derive(Debug, Clone)]
pub struct PolicyResult {
    pub policy: Arc<NetworkPolicy>,
    pub namespace: String,
    pub name: String,
    pub findings: Vec<Finding>,
    /// Findings the policy's `netpol-guard.io/ignore` annotation acknowledged.
    pub suppressed: Vec<crate::rules::suppress::Suppressed>,
}

/// What stands out in one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceSummary {
    pub policies: usize,
    pub deny: usize,
    pub warn: usize,
    /// Some existing pods are egress-isolated without DNS (a certain `egress-missing-dns`).
    pub pods_without_dns: bool,
    /// Companions the namespace should have and does not (empty when exempt or complete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_companions: Vec<String>,
    /// A protected namespace with a policy that isolates its pods.
    pub protected_isolated: bool,
}

impl NamespaceSummary {
    /// Whether anything here needs attention.
    pub fn notable(&self) -> bool {
        self.deny > 0
            || self.pods_without_dns
            || !self.missing_companions.is_empty()
            || self.protected_isolated
    }
}

/// The outcome of an audit.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Every audited policy, by namespace and name.
    pub results: Vec<PolicyResult>,
    pub namespaces: BTreeMap<String, NamespaceSummary>,
}

impl Audit {
    /// How many findings of each (rule, severity).
    pub fn counts(&self) -> BTreeMap<(&'static str, Severity), usize> {
        let mut counts = BTreeMap::new();
        for f in self.results.iter().flat_map(|r| &r.findings) {
            *counts.entry((f.rule, f.severity)).or_default() += 1;
        }
        counts
    }
}

/// Audits every policy of `namespace` (all namespaces when `None`) that `inventory` holds,
/// in the guard's namespace `guard_namespace` (exempt from companions).
pub fn audit(
    inventory: &Inventory,
    config: &Config,
    guard_namespace: &str,
    namespace: Option<&str>,
) -> Audit {
    let ctx = config.rule_context(inventory);
    let mut out = Audit::default();
    let namespaces: Vec<String> = match namespace {
        Some(ns) => vec![ns.to_string()],
        None => inventory.namespaces().map(|(n, _)| n.to_string()).collect(),
    };
    for ns in namespaces {
        let mut summary = NamespaceSummary::default();
        for policy in inventory.policies_in(&ns) {
            let subject = Subject::new(policy, &ns);
            let (findings, suppressed) = rules::evaluate_all(&ctx, &subject);
            summary.policies += 1;
            for f in &findings {
                match f.severity {
                    Severity::Deny => summary.deny += 1,
                    Severity::Warn => summary.warn += 1,
                }
                summary.protected_isolated |= f.rule.starts_with("protected-namespace-");
            }
            // certain, and about pods that exist
            summary.pods_without_dns |= findings
                .iter()
                .any(|f| f.rule == rules::dns::EGRESS_MISSING_DNS.id && f.condition.is_none())
                && matches!(
                    ctx.dns_reach(&subject, Protocol::Udp),
                    Coverage::Missing { pods: 1.., .. }
                );
            out.results.push(PolicyResult {
                policy: policy.clone(),
                namespace: ns.clone(),
                name: subject.name.to_string(),
                findings,
                suppressed,
            });
        }
        summary.missing_companions = missing_companions(inventory, config, guard_namespace, &ns);
        out.namespaces.insert(ns, summary);
    }
    out
}

/// The enabled companions a namespace should have (not exempt) and does not.
fn missing_companions(
    inventory: &Inventory,
    config: &Config,
    guard_namespace: &str,
    namespace: &str,
) -> Vec<String> {
    let labels = inventory.namespace_labels(namespace);
    // the controller leaves terminating namespaces alone
    if inventory.is_terminating(namespace)
        || companions::exemption(config, guard_namespace, namespace, labels).is_some()
    {
        return Vec::new();
    }
    let present = |name: &str| {
        inventory
            .policies_in(namespace)
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name))
    };
    companions::slots(config)
        .into_iter()
        .filter(|s| s.enabled && !present(s.name))
        .map(|s| s.name.to_string())
        .collect()
}
