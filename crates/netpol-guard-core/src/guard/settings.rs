//! The guard's settings as plain data: protected namespaces, the DNS target, rule levels,
//! who administers exemptions, what mutation may change, and the companion policies.
//! [`crate::config`] reads them from YAML (the serde shape is this one); the decisions of
//! this layer take them as they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::netpol::cluster::Inventory;
use crate::netpol::dns::{DnsConfig, DnsTarget};
use crate::netpol::selector::Labels;
use crate::rules::{self, Context, Level, Rule};

/// The rule configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Namespaces whose isolation can take the cluster down.
    pub protected_namespaces: Vec<String>,
    /// Where cluster DNS lives.
    pub dns: DnsConfig,
    /// Severity overrides by rule id.
    pub rules: BTreeMap<String, Level>,
    /// Groups whose members may set or remove the namespace opt-out label.
    pub admin_groups: Vec<String>,
    /// What the mutating webhook may change.
    pub mutation: MutationConfig,
    /// The policies the guard keeps in every namespace that is not exempt.
    pub companions: CompanionsConfig,
    /// Which policy layers around NetworkPolicy the guard reads and judges.
    pub layers: LayersConfig,
}

/// The policy layer families the guard reads (the cluster cache, `check`) and judges (the
/// webhook). A family turned off is ignored everywhere, as if its CRDs were absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LayersConfig {
    /// AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy.
    pub network_policy_api: bool,
    /// CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy.
    pub cilium: bool,
    /// The policies of CNIs whose semantics the guard does not read (Calico's
    /// GlobalNetworkPolicy and NetworkPolicy, Antrea's ClusterNetworkPolicy and
    /// NetworkPolicy): where one exists, a verdict it could change is a warning naming it.
    pub other_cnis: bool,
}

impl Default for LayersConfig {
    fn default() -> Self {
        Self {
            network_policy_api: true,
            cilium: true,
            other_cnis: true,
        }
    }
}

impl LayersConfig {
    /// Whether the guard reads objects of `kind`.
    pub fn reads(&self, kind: crate::netpol::layers::LayerKind) -> bool {
        if kind.is_cilium() {
            self.cilium
        } else {
            self.network_policy_api
        }
    }
}

/// The companion policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CompanionsConfig {
    /// Isolates every pod of the namespace.
    pub default_deny: DefaultDenyCompanion,
    /// Lets every pod of the namespace reach cluster DNS (the `dns` target).
    pub allow_dns: AllowDnsCompanion,
    /// Only namespaces whose labels match get companions (absent: every namespace), e.g. to
    /// roll them out team by team. Protected and exempt namespaces never get them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
}

/// The default-deny companion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultDenyCompanion {
    pub enabled: bool,
    pub name: String,
    /// Which directions it isolates.
    pub policy_types: Vec<PolicyType>,
}

/// The allow-DNS companion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AllowDnsCompanion {
    pub enabled: bool,
    pub name: String,
}

/// A NetworkPolicy `policyTypes` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    Ingress,
    Egress,
}

impl PolicyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        }
    }
}

impl Default for DefaultDenyCompanion {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "netpol-guard-default-deny".into(),
            policy_types: vec![PolicyType::Ingress, PolicyType::Egress],
        }
    }
}

impl Default for AllowDnsCompanion {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "netpol-guard-allow-dns".into(),
        }
    }
}

/// How GitOps-managed objects are treated by the mutating webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GitOpsMode {
    /// Do not mutate; validation denies with the fix to commit to the source.
    Deny,
    /// Mutate like any other object (the GitOps tool will see drift).
    Mutate,
}

/// Mutation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MutationConfig {
    /// What to do with objects a GitOps tool manages.
    pub gitops: GitOpsMode,
    /// Labels whose presence marks an object as GitOps-managed.
    pub gitops_labels: Vec<String>,
    /// Annotations whose presence marks an object as GitOps-managed.
    pub gitops_annotations: Vec<String>,
}

impl Default for MutationConfig {
    fn default() -> Self {
        Self {
            gitops: GitOpsMode::Deny,
            // Argo CD (annotation and label tracking) and Flux (kustomize and helm controllers)
            gitops_labels: [
                "argocd.argoproj.io/instance",
                "kustomize.toolkit.fluxcd.io/name",
                "helm.toolkit.fluxcd.io/name",
            ]
            .map(String::from)
            .to_vec(),
            gitops_annotations: ["argocd.argoproj.io/tracking-id"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            protected_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            dns: DnsConfig::default(),
            rules: BTreeMap::new(),
            admin_groups: vec!["system:masters".to_string()],
            mutation: MutationConfig::default(),
            companions: CompanionsConfig::default(),
            layers: LayersConfig::default(),
        }
    }
}

impl Config {
    /// The rules' view of these settings, in a cluster context.
    pub fn rule_context<'a>(&'a self, inventory: &'a Inventory) -> Context<'a> {
        let dns = Arc::new(DnsTarget::new(&self.dns, inventory));
        self.rule_context_with(inventory, dns)
    }

    /// The same, with a DNS target resolved beforehand from these settings and `inventory`.
    pub fn rule_context_with<'a>(
        &'a self,
        inventory: &'a Inventory,
        dns: Arc<DnsTarget>,
    ) -> Context<'a> {
        Context::new(&self.rules, &self.protected_namespaces, inventory, dns)
    }

    /// The level a rule runs at: the configured override, or the rule's default.
    pub fn level(&self, rule: &Rule) -> Level {
        rules::level(&self.rules, rule)
    }

    /// Whether an object with these labels and annotations is managed by a GitOps tool.
    pub fn is_gitops_managed(&self, labels: Option<&Labels>, annotations: Option<&Labels>) -> bool {
        let has = |map: Option<&Labels>, keys: &[String]| {
            map.is_some_and(|m| keys.iter().any(|k| m.contains_key(k)))
        };
        has(labels, &self.mutation.gitops_labels)
            || has(annotations, &self.mutation.gitops_annotations)
    }

    /// Whether a namespace is protected.
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.iter().any(|n| n == namespace)
    }
}
