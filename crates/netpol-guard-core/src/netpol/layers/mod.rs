//! The policy layers around NetworkPolicy: AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (`policy.networking.k8s.io/v1alpha1`), their successor
//! ClusterNetworkPolicy (`v1alpha2`), and Cilium's CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy (`cilium.io/v2`).
//!
//! Real clusters decide a connection in tiers: the Admin tier first (by priority, then rule
//! order; `Allow`/`Accept` and `Deny` are final, `Pass` hands over), then NetworkPolicy
//! (final for the pods it isolates), then the Baseline tier for the pods no NetworkPolicy
//! isolates. Cilium's allows add up with NetworkPolicy's, and its deny rules win over every
//! allow. The objects are decoded at the edge of the core ([`decode`]) into the types here;
//! `netpol::tiers` answers the connectivity questions the verdicts ask.

pub mod decode;
pub(crate) mod scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use imbl::OrdMap;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::ports::Protocol;
use super::selector::{self, Labels};

/// A kind of policy layer object the guard reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LayerKind {
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    ClusterNetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl LayerKind {
    /// Every kind, in the order they are listed.
    pub const ALL: [LayerKind; 5] = [
        Self::AdminNetworkPolicy,
        Self::BaselineAdminNetworkPolicy,
        Self::ClusterNetworkPolicy,
        Self::CiliumNetworkPolicy,
        Self::CiliumClusterwideNetworkPolicy,
    ];

    /// The kind's name, as in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminNetworkPolicy => "AdminNetworkPolicy",
            Self::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            Self::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Self::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Self::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }

    /// The API group.
    pub fn group(self) -> &'static str {
        if self.is_cilium() {
            "cilium.io"
        } else {
            "policy.networking.k8s.io"
        }
    }

    /// The one version of the group the guard reads.
    pub fn version(self) -> &'static str {
        match self {
            Self::AdminNetworkPolicy | Self::BaselineAdminNetworkPolicy => "v1alpha1",
            Self::ClusterNetworkPolicy => "v1alpha2",
            Self::CiliumNetworkPolicy | Self::CiliumClusterwideNetworkPolicy => "v2",
        }
    }

    /// The resource's plural name (RBAC, discovery, metric labels).
    pub fn plural(self) -> &'static str {
        match self {
            Self::AdminNetworkPolicy => "adminnetworkpolicies",
            Self::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
            Self::ClusterNetworkPolicy => "clusternetworkpolicies",
            Self::CiliumNetworkPolicy => "ciliumnetworkpolicies",
            Self::CiliumClusterwideNetworkPolicy => "ciliumclusterwidenetworkpolicies",
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self == Self::CiliumNetworkPolicy
    }

    /// Whether the kind is Cilium's.
    pub fn is_cilium(self) -> bool {
        matches!(
            self,
            Self::CiliumNetworkPolicy | Self::CiliumClusterwideNetworkPolicy
        )
    }

    /// The kind of `apiVersion`/`kind`, when it is one the guard reads at that version.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && api_version == format!("{}/{}", k.group(), k.version()))
    }

    /// Whether `kind` names a layer kind, at any version.
    pub fn named(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// A policy kind of another CNI that the guard does not read: where one of its objects
/// exists, a verdict it could change is a warning that names it, never a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnreadKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// How messages name it: "Calico GlobalNetworkPolicy".
    pub label: &'static str,
}

/// The kinds read as [`UnreadKind`]s: Calico's (its CRDs and its API server's v3 group) and
/// Antrea's native policies.
pub const UNREAD_KINDS: &[UnreadKind] = &[
    UnreadKind {
        group: "crd.projectcalico.org",
        version: "v1",
        kind: "GlobalNetworkPolicy",
        plural: "globalnetworkpolicies",
        namespaced: false,
        label: "Calico GlobalNetworkPolicy",
    },
    UnreadKind {
        group: "crd.projectcalico.org",
        version: "v1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
        label: "Calico NetworkPolicy",
    },
    UnreadKind {
        group: "projectcalico.org",
        version: "v3",
        kind: "GlobalNetworkPolicy",
        plural: "globalnetworkpolicies",
        namespaced: false,
        label: "Calico GlobalNetworkPolicy",
    },
    UnreadKind {
        group: "projectcalico.org",
        version: "v3",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
        label: "Calico NetworkPolicy",
    },
    UnreadKind {
        group: "crd.antrea.io",
        version: "v1beta1",
        kind: "ClusterNetworkPolicy",
        plural: "clusternetworkpolicies",
        namespaced: false,
        label: "Antrea ClusterNetworkPolicy",
    },
    UnreadKind {
        group: "crd.antrea.io",
        version: "v1beta1",
        kind: "NetworkPolicy",
        plural: "networkpolicies",
        namespaced: true,
        label: "Antrea NetworkPolicy",
    },
];

impl UnreadKind {
    /// The unread kind of `apiVersion`/`kind`, if it is one.
    pub fn of(api_version: &str, kind: &str) -> Option<&'static UnreadKind> {
        UNREAD_KINDS
            .iter()
            .find(|k| k.kind == kind && api_version == format!("{}/{}", k.group, k.version))
    }
}

/// The tier an object of the network-policy-api decides in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Before NetworkPolicy.
    Admin,
    /// Cilium's policies, beside NetworkPolicy.
    Cilium,
    /// After NetworkPolicy, for the pods it does not isolate.
    Baseline,
}

/// What a rule does with the connections it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `Allow` (v1alpha1), `Accept` (v1alpha2), or a Cilium allow rule.
    Allow,
    /// `Deny`, or a Cilium `ingressDeny`/`egressDeny` rule.
    Deny,
    /// `Pass`: the next tier decides.
    Pass,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "Allow",
            Self::Deny => "Deny",
            Self::Pass => "Pass",
        }
    }
}

/// A set of pods: those whose namespace matches `namespaces` and whose labels match
/// `pods`. Every subject and pod peer of every layer kind is written as one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub namespaces: LabelSelector,
    pub pods: LabelSelector,
}

impl Group {
    /// Every pod of the cluster.
    pub fn everything() -> Self {
        Self::default()
    }

    /// For messages: "pods app=web in namespaces team=a".
    pub fn describe(&self) -> String {
        let ns = if selector::is_empty(&self.namespaces) {
            "every namespace".to_string()
        } else {
            format!("namespaces {}", selector::describe(&self.namespaces))
        };
        format!("{} in {ns}", selector::describe_pods(&self.pods))
    }
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Peer {
    /// Pods (ANP `namespaces`/`pods`, Cilium `toEndpoints`, the `cluster` entity).
    Pods(Group),
    /// Every destination or source: a Cilium rule with ports only, or the `all` entity.
    Anything,
    /// Address ranges (`networks`); they match pod traffic too.
    Networks(Vec<IpNet>),
    /// Cilium CIDR peers (`toCIDR`, `toCIDRSet`): by default Cilium keeps them off the
    /// cluster's own endpoints.
    CiliumCidrs(Vec<IpNet>),
    /// Nodes (ANP `nodes`, Cilium `host`/`remote-node`).
    Nodes,
    /// A Cilium entity that is no pod: `world`, `kube-apiserver`, `health`, ...
    Entity(String),
    /// Domain names (Cilium `toFQDNs`, v1alpha2 `domainNames`).
    Fqdns(Vec<String>),
    /// A peer the guard does not read; what it matches is the condition.
    Unread(String),
}

/// One port entry of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// A port or a range of ports of one protocol.
    Range {
        protocol: Protocol,
        start: i32,
        end: i32,
    },
    /// A named container port.
    Named(String),
}

/// One rule, in the order the object lists it (the order decides within an object).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRule {
    /// Its `name`, or its position.
    pub name: String,
    /// Where it is: `spec.egress[1]`.
    pub path: String,
    pub action: Action,
    /// Empty matches nothing (an object's rule always lists its peers).
    pub peers: Vec<Peer>,
    /// `None`: every port and protocol.
    pub ports: Option<Vec<PortMatch>>,
    /// Cilium: the rule has an L7 DNS rule (`toPorts[].rules.dns`), which makes the DNS
    /// proxy see the lookups that `toFQDNs` needs.
    pub dns_proxy: bool,
}

/// Whether a Cilium policy isolates its endpoints in a direction
/// (`enableDefaultDeny`, default true when it has rules of that direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Isolation {
    pub ingress: bool,
    pub egress: bool,
}

/// One object of a policy layer, in the core's own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPolicy {
    pub kind: LayerKind,
    pub name: String,
    /// The namespace of a CiliumNetworkPolicy.
    pub namespace: Option<String>,
    pub tier: Tier,
    /// Lower is earlier; 0 where the kind has none.
    pub priority: i32,
    /// The pods it applies to; `None` when the guard cannot read the subject (it then
    /// applies to no pod the guard can name, and [`LayerPolicy::unread`] says why).
    pub subject: Option<Group>,
    pub ingress: Vec<LayerRule>,
    pub egress: Vec<LayerRule>,
    /// Cilium only.
    pub isolation: Isolation,
    /// The parts the guard could not read.
    pub unread: Vec<String>,
    /// Annotated `netpol-guard.io/dns: skip`: its DNS denials are meant.
    pub dns_skip: bool,
}

impl LayerPolicy {
    /// For messages: "AdminNetworkPolicy allow-dns, priority 10".
    pub fn describe(&self) -> String {
        let name = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        match self.kind {
            LayerKind::AdminNetworkPolicy | LayerKind::ClusterNetworkPolicy => {
                format!("{} {name}, priority {}", self.kind.as_str(), self.priority)
            }
            _ => format!("{} {name}", self.kind.as_str()),
        }
    }

    /// The object's rules of a direction.
    pub fn rules(&self, egress: bool) -> &[LayerRule] {
        if egress { &self.egress } else { &self.ingress }
    }

    fn key(&self) -> LayerKey {
        LayerKey {
            tier: self.tier,
            priority: self.priority,
            kind: self.kind,
            namespace: self.namespace.clone().unwrap_or_default(),
            name: self.name.clone(),
        }
    }
}

/// The stored objects' order: tier, then priority, then identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LayerKey {
    tier: Tier,
    priority: i32,
    kind: LayerKind,
    namespace: String,
    name: String,
}

/// The known objects of every layer, in precedence order. Persistent, like the rest of
/// the inventory: a snapshot costs a pointer clone.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    objects: OrdMap<LayerKey, Arc<LayerPolicy>>,
    /// Objects of kinds the guard does not read, by (label, namespace, name).
    unread: OrdMap<(&'static str, String, String), ()>,
    /// For each namespace asked about (with the labels it was asked with), the objects whose
    /// subject may hold pods there, in precedence order: built on first use and shared by the
    /// clones of this snapshot, replaced by a fresh one on every change.
    near: Arc<Mutex<Near>>,
}

/// Candidates by (namespace, the labels it was asked with).
type Near = HashMap<(String, Option<Labels>), Candidates>;

/// Objects in precedence order.
pub type Candidates = Arc<Vec<Arc<LayerPolicy>>>;

/// At most this many namespaces keep their candidates (beyond, they are computed per call).
const NEAR_NAMESPACES: usize = 10_000;

impl Layers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an object, replacing a stored one of the same kind, namespace and name
    /// (whatever its priority was).
    pub fn insert(&mut self, policy: LayerPolicy) {
        self.remove(policy.kind, policy.namespace.as_deref(), &policy.name);
        self.objects.insert(policy.key(), Arc::new(policy));
        self.changed();
    }

    /// Drops what was derived from the objects.
    fn changed(&mut self) {
        self.near = Arc::default();
    }

    /// The objects whose subject may hold pods of `namespace` (whose labels are `labels`
    /// when known), in precedence order.
    pub fn near(&self, namespace: &str, labels: Option<&Labels>) -> Candidates {
        let key = (namespace.to_string(), labels.cloned());
        let mut near = self.near.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = near.get(&key) {
            return found.clone();
        }
        let scope = scope::Namespaces::One {
            name: namespace,
            labels,
        };
        let found: Candidates = Arc::new(
            self.objects
                .values()
                .filter(|p| {
                    p.subject.as_ref().is_some_and(|g| {
                        scope::holds_namespaces(g, &scope) != crate::netpol::reach::Reach::No
                    })
                })
                .cloned()
                .collect(),
        );
        if near.len() < NEAR_NAMESPACES {
            near.insert(key, found.clone());
        }
        found
    }

    /// Every object, in precedence order, as candidates.
    pub fn all(&self) -> Candidates {
        Arc::new(self.objects.values().cloned().collect())
    }

    /// Forgets an object.
    pub fn remove(&mut self, kind: LayerKind, namespace: Option<&str>, name: &str) {
        let ns = namespace.unwrap_or_default();
        let stored: Vec<LayerKey> = (self.objects.keys())
            .filter(|k| k.kind == kind && k.namespace == ns && k.name == name)
            .cloned()
            .collect();
        for key in stored {
            self.objects.remove(&key);
        }
        self.changed();
    }

    /// Forgets every object of a kind (before a relist refills them, or when its CRD goes).
    pub fn clear(&mut self, kind: LayerKind) {
        self.objects = (self.objects.iter())
            .filter(|(k, _)| k.kind != kind)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.changed();
    }

    /// Every object, in precedence order.
    pub fn iter(&self) -> impl Iterator<Item = &LayerPolicy> {
        self.objects.values().map(AsRef::as_ref)
    }

    /// The objects of one tier, in precedence order.
    pub fn tier(&self, tier: Tier) -> impl Iterator<Item = &LayerPolicy> {
        self.iter().filter(move |p| p.tier == tier)
    }

    /// Whether no object is known, read or unread.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.unread.is_empty()
    }

    /// Records an object of a kind the guard does not read (`namespace` empty when
    /// cluster-scoped).
    pub fn insert_unread(&mut self, kind: &UnreadKind, namespace: &str, name: &str) {
        self.unread
            .insert((kind.label, namespace.to_string(), name.to_string()), ());
    }

    /// Forgets an unread object.
    pub fn remove_unread(&mut self, kind: &UnreadKind, namespace: &str, name: &str) {
        self.unread
            .remove(&(kind.label, namespace.to_string(), name.to_string()));
    }

    /// Forgets every unread object of a kind.
    pub fn clear_unread(&mut self, kind: &UnreadKind) {
        self.unread = (self.unread.iter())
            .filter(|((label, _, _), _)| *label != kind.label)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
    }

    /// How many unread objects are known.
    pub fn unread_count(&self) -> usize {
        self.unread.len()
    }

    /// The unread objects that may decide traffic of pods in `namespaces` (the cluster-scoped
    /// ones and those of these namespaces; `None` for namespaces means any), named for a
    /// condition: "Calico GlobalNetworkPolicy allow-dns (or one of 2 more such objects)".
    /// `None` when there is none.
    pub fn unread_for(&self, namespaces: Option<&[&str]>) -> Option<String> {
        let mut found = (self.unread.keys()).filter(|(_, ns, _)| {
            ns.is_empty() || namespaces.is_none_or(|list| list.contains(&ns.as_str()))
        });
        let (label, ns, name) = found.next()?;
        let more = found.count();
        let who = if ns.is_empty() {
            format!("{label} {name}")
        } else {
            format!("{label} {ns}/{name}")
        };
        Some(if more == 0 {
            who
        } else {
            format!("{who} (or one of {more} more such objects)")
        })
    }

    /// How many objects of a kind are known.
    pub fn count(&self, kind: LayerKind) -> usize {
        self.objects.keys().filter(|k| k.kind == kind).count()
    }

    /// A copy where `policy` replaces any stored version of itself: what the layers will
    /// be once a write under review is admitted.
    pub fn with(&self, policy: &LayerPolicy) -> Self {
        let mut next = self.clone();
        next.insert(policy.clone());
        next
    }
}
