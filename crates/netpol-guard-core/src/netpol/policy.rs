//! The shape of one NetworkPolicy as Kubernetes reads it: which directions it isolates,
//! which rules count, and whether a rule lets everything through.

use std::borrow::Cow;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The namespace kubectl assumes for a manifest without `metadata.namespace`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A traffic direction of a NetworkPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The `policyTypes` value.
    pub fn policy_type(self) -> &'static str {
        match self {
            Self::Ingress => "Ingress",
            Self::Egress => "Egress",
        }
    }

    /// The field under `spec` holding the rules.
    pub fn field(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }

    /// The field of a rule holding its peers.
    pub fn peers_field(self) -> &'static str {
        match self {
            Self::Ingress => "from",
            Self::Egress => "to",
        }
    }
}

/// The effective `policyTypes` of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyTypes {
    pub ingress: bool,
    pub egress: bool,
    /// Whether `policyTypes` was written (non-empty) rather than defaulted.
    pub explicit: bool,
}

impl PolicyTypes {
    /// Applies the API server's defaulting: an absent or empty `policyTypes` becomes
    /// `[Ingress]`, plus `Egress` when the policy has at least one egress rule. Note that
    /// `egress: []` counts as no egress rules (`len(spec.Egress) != 0` upstream).
    pub fn of(spec: &NetworkPolicySpec) -> Self {
        match spec.policy_types.as_deref() {
            Some(types) if !types.is_empty() => Self {
                ingress: types.iter().any(|t| t == "Ingress"),
                egress: types.iter().any(|t| t == "Egress"),
                explicit: true,
            },
            _ => Self {
                ingress: true,
                egress: spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
                explicit: false,
            },
        }
    }

    pub fn has(self, direction: Direction) -> bool {
        match direction {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }
}

/// One ingress or egress rule, seen the same way for both directions.
#[derive(Debug, Clone, Copy)]
pub struct RuleView<'a> {
    pub direction: Direction,
    pub index: usize,
    /// Empty means every peer (`from`/`to` missing or `[]`).
    pub peers: &'a [NetworkPolicyPeer],
    /// Empty means every port and protocol (`ports` missing or `[]`).
    pub ports: &'a [NetworkPolicyPort],
}

impl RuleView<'_> {
    /// `spec.egress[1]`
    pub fn path(&self) -> String {
        format!("spec.{}[{}]", self.direction.field(), self.index)
    }

    /// `spec.egress[1].to[0]`
    pub fn peer_path(&self, peer: usize) -> String {
        format!("{}.{}[{peer}]", self.path(), self.direction.peers_field())
    }

    /// `spec.egress[1].ports[0]`
    pub fn port_path(&self, port: usize) -> String {
        format!("{}.ports[{port}]", self.path())
    }

    /// A rule without peers and without ports admits all traffic of its direction.
    pub fn allows_all(&self) -> bool {
        self.peers.is_empty() && self.ports.is_empty()
    }
}

/// One peer of one rule.
#[derive(Debug, Clone, Copy)]
pub struct PeerView<'a> {
    pub rule: RuleView<'a>,
    /// Its position in the rule's `from`/`to`.
    pub index: usize,
    pub peer: &'a NetworkPolicyPeer,
}

impl PeerView<'_> {
    /// `spec.egress[1].to[0]`
    pub fn path(&self) -> String {
        self.rule.peer_path(self.index)
    }
}

/// The peers of some rules, in order.
fn peers_of<'a>(rules: Vec<RuleView<'a>>) -> impl Iterator<Item = PeerView<'a>> {
    rules.into_iter().flat_map(|rule| {
        rule.peers
            .iter()
            .enumerate()
            .map(move |(index, peer)| PeerView { rule, index, peer })
    })
}

/// A rule's peers and ports as slices (missing is empty).
fn slices<'r>(
    peers: &'r Option<Vec<NetworkPolicyPeer>>,
    ports: &'r Option<Vec<NetworkPolicyPort>>,
) -> (&'r [NetworkPolicyPeer], &'r [NetworkPolicyPort]) {
    (
        peers.as_deref().unwrap_or_default(),
        ports.as_deref().unwrap_or_default(),
    )
}

/// A NetworkPolicy under analysis, with the defaults Kubernetes applies made explicit.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub policy: &'a NetworkPolicy,
    pub spec: Cow<'a, NetworkPolicySpec>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub types: PolicyTypes,
}

impl<'a> Subject<'a> {
    /// Wraps a policy; `namespace` is used when the object does not name one.
    pub fn new(policy: &'a NetworkPolicy, fallback_namespace: &'a str) -> Self {
        // A missing spec is an empty spec: it selects every pod and isolates ingress.
        let spec = match &policy.spec {
            Some(spec) => Cow::Borrowed(spec),
            None => Cow::Owned(NetworkPolicySpec::default()),
        };
        let types = PolicyTypes::of(&spec);
        Self {
            policy,
            namespace: policy
                .metadata
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(fallback_namespace),
            name: policy.metadata.name.as_deref().unwrap_or(""),
            spec,
            types,
        }
    }

    /// The selector of the pods this policy applies to (missing means all pods).
    pub fn pod_selector(&self) -> Cow<'_, LabelSelector> {
        match &self.spec.pod_selector {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(LabelSelector::default()),
        }
    }

    /// Whether the policy selects every pod of its namespace.
    pub fn selects_all_pods(&self) -> bool {
        self.spec
            .pod_selector
            .as_ref()
            .is_none_or(super::selector::is_empty)
    }

    /// Every rule written for a direction, whether or not `policyTypes` lets it count.
    pub fn written_rules(&self, direction: Direction) -> Vec<RuleView<'_>> {
        let view = |index: usize, (peers, ports)| RuleView {
            direction,
            index,
            peers,
            ports,
        };
        // ingress names its peers `from`, egress `to`
        match direction {
            Direction::Ingress => self
                .spec
                .ingress
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, r)| view(i, slices(&r.from, &r.ports)))
                .collect(),
            Direction::Egress => self
                .spec
                .egress
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, r)| view(i, slices(&r.to, &r.ports)))
                .collect(),
        }
    }

    /// Every peer written in the policy, ingress first, whether or not its rules count.
    pub fn written_peers(&self) -> impl Iterator<Item = PeerView<'_>> {
        Direction::BOTH
            .into_iter()
            .flat_map(|d| peers_of(self.written_rules(d)))
    }

    /// The peers of the rules Kubernetes enforces for a direction.
    pub fn peers(&self, direction: Direction) -> impl Iterator<Item = PeerView<'_>> {
        peers_of(self.rules(direction))
    }

    /// The rules Kubernetes enforces for a direction: none unless the direction is in the
    /// effective `policyTypes`.
    pub fn rules(&self, direction: Direction) -> Vec<RuleView<'_>> {
        if self.types.has(direction) {
            self.written_rules(direction)
        } else {
            Vec::new()
        }
    }

    /// Whether the policy isolates the selected pods in this direction.
    pub fn isolates(&self, direction: Direction) -> bool {
        self.types.has(direction)
    }

    /// Whether the policy's rules admit all traffic in this direction.
    pub fn allows_all(&self, direction: Direction) -> bool {
        self.rules(direction).iter().any(RuleView::allows_all)
    }

    /// Isolated and not fully re-opened: traffic in this direction is restricted.
    pub fn restricts(&self, direction: Direction) -> bool {
        self.isolates(direction) && !self.allows_all(direction)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a NetworkPolicy from YAML for tests.
    pub(crate) fn policy(yaml: &str) -> NetworkPolicy {
        serde_yaml_ng::from_str(yaml).expect("test policy must parse")
    }

    #[test]
    fn policy_types_defaulting() {
        // (spec yaml, ingress, egress, explicit)
        let cases = [
            ("podSelector: {}", true, false, false),
            ("podSelector: {}\negress: [{}]", true, true, false),
            // egress: [] is "no egress rules": Egress is not added.
            ("podSelector: {}\negress: []", true, false, false),
            (
                "podSelector: {}\npolicyTypes: []\negress: [{}]",
                true,
                true,
                false,
            ),
            ("podSelector: {}\npolicyTypes: [Egress]", false, true, true),
            (
                "podSelector: {}\npolicyTypes: [Ingress]\negress: [{}]",
                true,
                false,
                true,
            ),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]",
                true,
                true,
                true,
            ),
        ];
        for (spec, ingress, egress, explicit) in cases {
            let spec: NetworkPolicySpec = serde_yaml_ng::from_str(spec).expect("spec");
            assert_eq!(
                PolicyTypes::of(&spec),
                PolicyTypes {
                    ingress,
                    egress,
                    explicit
                },
                "{spec:?}"
            );
        }
    }

    #[test]
    fn isolation_and_allow_all() {
        let p = policy(
            "metadata: {name: a}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n  egress:\n  - {}\n",
        );
        let s = Subject::new(&p, DEFAULT_NAMESPACE);
        assert_eq!(s.namespace, "default");
        assert!(s.isolates(Direction::Egress) && s.allows_all(Direction::Egress));
        assert!(!s.restricts(Direction::Egress));
        assert!(s.restricts(Direction::Ingress));

        // Rules under a direction missing from policyTypes do not count.
        let p = policy(
            "metadata: {name: a, namespace: x}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  egress:\n  - {}\n",
        );
        let s = Subject::new(&p, DEFAULT_NAMESPACE);
        assert_eq!(s.namespace, "x");
        assert!(!s.isolates(Direction::Egress));
        assert!(s.rules(Direction::Egress).is_empty());
        assert_eq!(s.written_rules(Direction::Egress).len(), 1);

        // A rule with ports is not allow-all even without peers.
        let p = policy(
            "metadata: {name: a}\nspec:\n  ingress:\n  - from: []\n    ports: [{port: 80}]\n",
        );
        let s = Subject::new(&p, DEFAULT_NAMESPACE);
        assert!(s.restricts(Direction::Ingress));
        assert!(s.selects_all_pods());

        // No spec at all: every pod, ingress isolated.
        let p = policy("metadata: {name: a}\n");
        let s = Subject::new(&p, DEFAULT_NAMESPACE);
        assert!(s.selects_all_pods() && s.restricts(Direction::Ingress));
    }
}
