//! Peer semantics: which pods a `from`/`to` entry stands for.
//!
//! - `podSelector` alone: pods of the policy's own namespace.
//! - `namespaceSelector` alone: every pod of the matching namespaces.
//! - both in one peer: pods matching `podSelector` in namespaces matching `namespaceSelector`
//!   (AND). Separate list items are separate peers (OR).
//! - `ipBlock`: addresses, evaluated with [`super::ipblock::Block`].

use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::selector::{self, Labels};

/// What kind of peer an entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeerKind<'a> {
    /// Pods of the policy's own namespace.
    OwnNamespace { pods: &'a LabelSelector },
    /// Pods (all of them when `pods` is `None`) of the namespaces matching `namespaces`.
    Namespaces {
        namespaces: &'a LabelSelector,
        pods: Option<&'a LabelSelector>,
    },
    /// An address range.
    IpBlock(&'a IPBlock),
    /// A peer with no field set; the API server rejects it.
    Empty,
}

impl<'a> PeerKind<'a> {
    pub(crate) fn of(peer: &'a NetworkPolicyPeer) -> Self {
        match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
            (Some(block), _, _) => Self::IpBlock(block),
            (None, Some(namespaces), pods) => Self::Namespaces {
                namespaces,
                pods: pods.as_ref(),
            },
            (None, None, Some(pods)) => Self::OwnNamespace { pods },
            (None, None, None) => Self::Empty,
        }
    }
}

/// A pod as far as selectors can see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pod<'a> {
    /// The pod's namespace, when known.
    pub namespace: Option<&'a str>,
    pub namespace_labels: &'a Labels,
    pub labels: &'a Labels,
}

/// Whether a peer of a policy in `policy_namespace` selects `pod`.
pub(crate) fn selects_pod(peer: &NetworkPolicyPeer, policy_namespace: &str, pod: &Pod<'_>) -> bool {
    match PeerKind::of(peer) {
        // a peer with only podSelector means: pods of this policy's namespace
        PeerKind::OwnNamespace { pods } => {
            pod.namespace == Some(policy_namespace) && selector::matches(pods, pod.labels)
        }
        // namespaceSelector and podSelector in one peer: both must match (AND)
        PeerKind::Namespaces { namespaces, pods } => {
            selector::matches(namespaces, pod.namespace_labels)
                && pods.is_none_or(|p| selector::matches(p, pod.labels))
        }
        PeerKind::IpBlock(_) | PeerKind::Empty => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::selector::tests::labels;

    fn peer(yaml: &str) -> NetworkPolicyPeer {
        serde_yaml_ng::from_str(yaml).expect("peer")
    }

    #[test]
    fn peer_semantics_table() {
        let ks = labels(&[("kubernetes.io/metadata.name", "kube-system")]);
        let dns = labels(&[("k8s-app", "kube-dns")]);
        let other = labels(&[("app", "web")]);
        let dns_pod = Pod {
            namespace: Some("kube-system"),
            namespace_labels: &ks,
            labels: &dns,
        };
        let web_pod = Pod {
            namespace: Some("kube-system"),
            namespace_labels: &ks,
            labels: &other,
        };
        // (peer, policy namespace, pod, expected)
        let cases = [
            // podSelector only: the policy's own namespace, not "any namespace"
            (
                "podSelector: {matchLabels: {k8s-app: kube-dns}}",
                "default",
                dns_pod,
                false,
            ),
            (
                "podSelector: {matchLabels: {k8s-app: kube-dns}}",
                "kube-system",
                dns_pod,
                true,
            ),
            ("podSelector: {}", "kube-system", web_pod, true),
            // namespaceSelector only: every pod there
            (
                "namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}",
                "default",
                web_pod,
                true,
            ),
            ("namespaceSelector: {}", "default", web_pod, true),
            (
                "namespaceSelector: {matchLabels: {name: kube-system}}",
                "default",
                dns_pod,
                false,
            ),
            // both: AND
            (
                "{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}",
                "default",
                dns_pod,
                true,
            ),
            (
                "{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}",
                "default",
                web_pod,
                false,
            ),
            (
                "{namespaceSelector: {matchLabels: {name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}",
                "default",
                dns_pod,
                false,
            ),
            ("ipBlock: {cidr: 0.0.0.0/0}", "default", dns_pod, false),
            ("{}", "default", dns_pod, false),
        ];
        for (yaml, ns, pod, want) in cases {
            assert_eq!(selects_pod(&peer(yaml), ns, &pod), want, "{yaml} from {ns}");
        }
    }
}
