//! What is known of the cluster around a policy: the other NetworkPolicies and the
//! namespaces' labels. `check` fills it from the other manifests of its input; the webhook
//! fills it from a cache of the cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::selector::Labels;

/// The label Kubernetes puts on every namespace, holding its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Known policies by namespace, and known namespace labels.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    policies: BTreeMap<String, Vec<Arc<NetworkPolicy>>>,
    namespaces: BTreeMap<String, Labels>,
    /// Whether `namespaces` is every namespace of the cluster (a synced cache), not just
    /// the ones some manifests mention.
    namespaces_complete: bool,
}

impl Inventory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a policy as living in `namespace`.
    pub fn insert_policy(&mut self, namespace: &str, policy: Arc<NetworkPolicy>) {
        self.policies
            .entry(namespace.to_string())
            .or_default()
            .push(policy);
    }

    /// Records a namespace; its `kubernetes.io/metadata.name` label is added as the API
    /// server does.
    pub fn insert_namespace(&mut self, name: &str, mut labels: Labels) {
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), name.to_string());
        self.namespaces.insert(name.to_string(), labels);
    }

    /// The known policies of a namespace.
    pub fn policies_in(&self, namespace: &str) -> &[Arc<NetworkPolicy>] {
        self.policies.get(namespace).map_or(&[], Vec::as_slice)
    }

    /// The known labels of a namespace.
    pub fn namespace_labels(&self, namespace: &str) -> Option<&Labels> {
        self.namespaces.get(namespace)
    }

    /// Declares the known namespaces to be all the cluster has.
    pub fn mark_namespaces_complete(&mut self) {
        self.namespaces_complete = true;
    }

    /// Whether the known namespaces are all the cluster has.
    pub fn knows_all_namespaces(&self) -> bool {
        self.namespaces_complete
    }

    /// Every known namespace with its labels.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.namespaces.iter().map(|(n, l)| (n.as_str(), l))
    }
}
