//! Can the pods of a policy reach cluster DNS?
//!
//! The DNS target is configuration ([`DnsConfig`]): the DNS namespace's labels, the DNS
//! pods' labels, their named ports, further DNS pods and addresses such as node-local DNS;
//! in a cluster it is discovered from the DNS Service and its EndpointSlices
//! ([`DnsTarget`]). A rule reaches DNS on a protocol when one of its peers selects DNS pods
//! (or an `ipBlock` holds a DNS address) and its ports admit their DNS port.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

pub use super::coverage::Reach;
use super::coverage::{Candidates, PodsOutcome, pods_outcome};
use super::index::{Lookup, NamespacePolicies, PolicyIndex};
use super::policy::Subject;
use super::ports::Protocol;
use super::selector::Labels;
use super::selector::Selector;
use serde::{Deserialize, Serialize};

/// The cluster DNS service as NetworkPolicy peers can see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Labels of the namespace the DNS pods run in.
    pub namespace_labels: Labels,
    /// Labels of the DNS pods.
    pub pod_labels: Labels,
    /// The DNS pods' container ports, with their names (named rule ports resolve to them).
    pub ports: Vec<DnsPort>,
    /// Further DNS addresses pods talk to, e.g. node-local DNS `169.254.20.10`.
    pub ips: Vec<IpAddr>,
    /// Whether `ipBlock` peers match pod IPs, as the Kubernetes API defines them and as
    /// most CNIs (Calico, Antrea, kube-router, OVN-Kubernetes) enforce them. Cilium by
    /// default keeps CIDR rules off cluster endpoints: there `ipBlock: 0.0.0.0/0` does not
    /// reach the DNS pods, and this must be `false`.
    pub ip_block_matches_pods: bool,
    /// Whether the webhook reads the DNS Service and its EndpointSlices from the cluster
    /// (`auto`) or uses the settings above only (`off`).
    pub discover: Discover,
    /// The Services discovery looks for, as `namespace/name`, first found wins.
    pub services: Vec<String>,
    /// Further DNS pods that count as DNS besides the target above (a second resolver).
    pub targets: Vec<DnsEndpoint>,
}

/// Whether the DNS target is read from the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discover {
    /// From the first candidate Service found; the configured target until then.
    #[default]
    Auto,
    /// The configured target only.
    Off,
}

/// One more set of DNS pods: where they run, their labels and their container ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsEndpoint {
    pub namespace_labels: Labels,
    pub pod_labels: Labels,
    pub ports: Vec<DnsPort>,
}

/// The DNS Services of well-known distributions, in the order discovery tries them.
pub const DEFAULT_DNS_SERVICES: &[&str] = &["kube-system/kube-dns", "openshift-dns/dns-default"];

/// One named container port of the DNS pods.
pub type DnsPort = super::ports::NamedPort;

impl Default for DnsConfig {
    fn default() -> Self {
        let labels = |k: &str, v: &str| Labels::from([(k.to_string(), v.to_string())]);
        Self {
            namespace_labels: labels("kubernetes.io/metadata.name", "kube-system"),
            pod_labels: labels("k8s-app", "kube-dns"),
            // as CoreDNS declares them
            ports: vec![
                DnsPort {
                    name: "dns".into(),
                    port: 53,
                    protocol: Protocol::Udp,
                },
                DnsPort {
                    name: "dns-tcp".into(),
                    port: 53,
                    protocol: Protocol::Tcp,
                },
            ],
            ips: Vec::new(),
            ip_block_matches_pods: true,
            discover: Discover::Auto,
            services: DEFAULT_DNS_SERVICES
                .iter()
                .map(ToString::to_string)
                .collect(),
            targets: Vec::new(),
        }
    }
}

/// Where well-known distributions run cluster DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsPreset {
    /// CoreDNS or kube-dns: `kube-system`, pods `k8s-app: kube-dns`, ports `dns`/`dns-tcp` 53.
    Kubernetes,
    /// OpenShift: `openshift-dns`, pods `dns.operator.openshift.io/daemonset-dns: default`,
    /// container ports `dns`/`dns-tcp` on 5353 (the Service maps 53 to them; policies see the
    /// pods' ports).
    Openshift,
}

impl DnsPreset {
    /// The DNS settings of the preset (addresses and ipBlock semantics left as they were).
    pub fn apply(self, dns: &DnsConfig) -> DnsConfig {
        match self {
            Self::Kubernetes => DnsConfig {
                namespace_labels: DnsConfig::default().namespace_labels,
                pod_labels: DnsConfig::default().pod_labels,
                ports: DnsConfig::default().ports,
                ..dns.clone()
            },
            Self::Openshift => {
                let labels = |k: &str, v: &str| Labels::from([(k.to_string(), v.to_string())]);
                let port = |name: &str, protocol| DnsPort {
                    name: name.into(),
                    port: 5353,
                    protocol,
                };
                DnsConfig {
                    namespace_labels: labels("kubernetes.io/metadata.name", "openshift-dns"),
                    pod_labels: labels("dns.operator.openshift.io/daemonset-dns", "default"),
                    ports: vec![port("dns", Protocol::Udp), port("dns-tcp", Protocol::Tcp)],
                    ..dns.clone()
                }
            }
        }
    }
}

mod target;

pub(crate) use target::POD_RANGES;
pub use target::{DnsSource, DnsTarget};

/// Who lets a policy's pods reach DNS on a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// The policy's own rules.
    Itself,
    /// Another policy of the namespace that selects every pod this one selects.
    Policy(String),
    /// Every existing pod the policy selects is covered by the policies selecting it.
    Pods(usize),
    /// DNS only under a condition the guard cannot see: a rule whose reach depends on pod
    /// IPs or the CNI (an ipBlock), and the policy that has it when it is another one.
    Depends {
        condition: String,
        policy: Option<String>,
    },
    /// No existing pod is selected yet, and another policy of the namespace allows DNS to
    /// pods of a selector that may overlap: DNS only if the pods also match it.
    Composed { condition: String, policy: String },
    /// Nobody: the existing pods left without DNS (the first few names and how many), or
    /// none when no pod is known and no policy of the namespace allows DNS to anyone.
    Missing { examples: Vec<String>, pods: usize },
    /// A policy layer above NetworkPolicy allows it, for every pod of the policy: the
    /// deciding rule, "AdminNetworkPolicy allow-dns, priority 10 (rule dns)".
    Layer(String),
    /// A policy layer denies it, which no NetworkPolicy can override: the deciding rule.
    LayerDenied(String),
    /// A policy layer may decide it: the condition.
    LayerDepends(String),
}

impl Coverage {
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }

    /// Whether DNS certainly works (itself, a covering policy, or every existing pod).
    pub fn is_certain(&self) -> bool {
        matches!(
            self,
            Self::Itself | Self::Policy(_) | Self::Pods(_) | Self::Layer(_)
        )
    }
}

/// The policies of a namespace that reach DNS on a protocol (for certain or under a
/// condition): each policy judged once per analysis, not once per subject.
#[derive(Debug)]
struct Givers {
    /// By position in the namespace's entries; `Reach::No` for the others.
    reach: Vec<Reach>,
    lookup: Lookup,
}

/// DNS coverage questions over one inventory and DNS target, for one analysis (a review,
/// a `check` or audit run): what each stored policy reaches is computed once.
#[derive(Debug)]
pub struct DnsCoverage<'a> {
    target: Arc<DnsTarget>,
    policies: Arc<PolicyIndex<'a>>,
    givers: Mutex<HashMap<(String, Protocol), Arc<Givers>>>,
}

impl<'a> DnsCoverage<'a> {
    pub fn new(target: Arc<DnsTarget>, policies: Arc<PolicyIndex<'a>>) -> Self {
        Self {
            target,
            policies,
            givers: Mutex::new(HashMap::new()),
        }
    }

    fn givers(
        &self,
        namespace: &str,
        prepared: &NamespacePolicies<'_>,
        protocol: Protocol,
    ) -> Arc<Givers> {
        let key = (namespace.to_string(), protocol);
        let mut map = self.givers.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key)
            .or_insert_with(|| {
                let reach: Vec<Reach> = prepared
                    .entries
                    .iter()
                    .map(|e| self.target.policy_reach(&e.subject, protocol))
                    .collect();
                let giving = reach.iter().enumerate().filter(|(_, r)| **r != Reach::No);
                let lookup = Lookup::new(&prepared.entries, giving.map(|(i, _)| i));
                Arc::new(Givers { reach, lookup })
            })
            .clone()
    }

    /// Whether NetworkPolicy lets the pods selected by `subject` reach DNS on `protocol`:
    /// through its own rules, a policy of its namespace that provably selects all of its
    /// pods, or, pod by pod, the policies selecting each existing pod (see [`pods_outcome`]).
    pub fn of(&self, subject: &Subject<'_>, protocol: Protocol) -> Coverage {
        let own_reach = self.target.policy_reach(subject, protocol);
        let mut depends = match &own_reach {
            Reach::Yes => return Coverage::Itself,
            Reach::Maybe(condition) => Some(Coverage::Depends {
                condition: condition.clone(),
                policy: None,
            }),
            Reach::No => None,
        };
        let missing = Coverage::Missing {
            examples: Vec::new(),
            pods: 0,
        };
        let own_selector = subject.pod_selector();
        let Ok(own) = Selector::parse(&own_selector) else {
            return depends.unwrap_or(missing);
        };
        let prepared = self.policies.namespace(subject.namespace);
        let givers = self.givers(subject.namespace, &prepared, protocol);
        for i in givers.lookup.may_be_implied_by(&own) {
            let entry = &prepared.entries[i];
            if prepared.is_itself(i, subject)
                || !entry.selector.as_ref().is_some_and(|s| own.implies(s))
            {
                continue;
            }
            match &givers.reach[i] {
                Reach::Yes => return Coverage::Policy(entry.subject.name.to_string()),
                Reach::Maybe(condition) if depends.is_none() => {
                    depends = Some(Coverage::Depends {
                        condition: condition.clone(),
                        policy: Some(entry.subject.name.to_string()),
                    });
                }
                _ => {}
            }
        }
        let candidates = Candidates {
            policies: &prepared,
            lookup: &givers.lookup,
        };
        let inventory = self.policies.inventory();
        let outcome = pods_outcome(inventory, subject, &own, candidates, |ids| {
            ids.iter().fold(own_reach.clone(), |best, &i| {
                best.or(|| givers.reach[i].clone())
            })
        });
        match outcome {
            PodsOutcome::Served { pods } => Coverage::Pods(pods),
            PodsOutcome::Unserved { examples, total } => Coverage::Missing {
                examples,
                pods: total,
            },
            PodsOutcome::Depends(condition) => Coverage::Depends {
                condition,
                policy: None,
            },
            // an ipBlock of its own (or of a covering policy) speaks before pod labels
            _ if depends.is_some() => depends.unwrap_or(missing),
            PodsOutcome::IfAlsoMatched { ref policy, .. } => Coverage::Composed {
                condition: outcome.condition(subject, "DNS").unwrap_or_default(),
                policy: policy.clone(),
            },
            PodsOutcome::Nobody => missing,
        }
    }
}
