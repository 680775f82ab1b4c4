//! Can the pods of a policy reach cluster DNS?
//!
//! The DNS target is configuration ([`DnsConfig`]): the DNS namespace's
//! labels, the DNS pods' labels, their named ports, and extra addresses such as node-local
//! DNS. A rule reaches DNS on a protocol when one of its peers selects the DNS pods (or an
//! `ipBlock` holds a configured DNS address) and its ports admit the DNS port.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cluster::{Inventory, NAMESPACE_NAME_LABEL};
use super::coverage::{PodsOutcome, pods_outcome};
use super::ipblock::Block;
use super::peer::{self, PeerKind, Pod};
use super::policy::{Direction, RuleView, Subject};
use super::ports::{self, PortTarget, Protocol};
use super::selector::Labels;
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
}

/// One named container port of the DNS pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPort {
    pub name: String,
    pub port: i32,
    pub protocol: Protocol,
}

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
                ips: dns.ips.clone(),
                ip_block_matches_pods: dns.ip_block_matches_pods,
                ..DnsConfig::default()
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
                    ips: dns.ips.clone(),
                    ip_block_matches_pods: dns.ip_block_matches_pods,
                }
            }
        }
    }
}

/// Whether something reaches cluster DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Certainly, under the configured semantics.
    Yes,
    /// Only if this condition holds, which the guard cannot see (pod IPs, the CNI).
    Maybe(String),
    /// Certainly not.
    No,
}

impl Reach {
    /// The better of two answers: yes beats maybe beats no.
    pub(crate) fn or(self, other: impl FnOnce() -> Reach) -> Reach {
        match self {
            Reach::Yes => Reach::Yes,
            Reach::Maybe(c) => match other() {
                Reach::Yes => Reach::Yes,
                _ => Reach::Maybe(c),
            },
            Reach::No => other(),
        }
    }
}

/// Address ranges cluster pods are commonly given: RFC 1918, shared address space (RFC
/// 6598) and IPv6 unique local addresses. An `ipBlock` overlapping them may hold the DNS
/// pods; one outside them (a public resolver, link-local) does not.
const POD_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

fn overlaps(a: &ipnet::IpNet, b: &ipnet::IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The DNS endpoint set, resolved against what is known of the cluster.
#[derive(Debug, Clone)]
pub struct DnsTarget {
    /// The namespaces DNS may run in: (name if known, labels).
    namespaces: Vec<(Option<String>, Labels)>,
    /// The configured DNS namespace labels.
    namespace_labels: Labels,
    pod_labels: Labels,
    ports: Vec<DnsPort>,
    ips: Vec<IpAddr>,
    ip_block_matches_pods: bool,
    /// [`DnsTarget::allowance_rule`] as a YAML list item, rendered on first use.
    allowance_yaml: std::sync::OnceLock<String>,
}

impl DnsTarget {
    /// Resolves the configured DNS target. Known namespaces whose labels carry the
    /// configured DNS namespace labels contribute their full label sets, so a selector on a
    /// label the cluster really has (even `name`, if someone set it) is honoured.
    pub fn new(config: &DnsConfig, inventory: &Inventory) -> Self {
        let wanted = |labels: &Labels| {
            config
                .namespace_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        };
        let mut namespaces: Vec<(Option<String>, Labels)> = inventory
            .namespaces()
            .filter(|(_, labels)| wanted(labels))
            .map(|(name, labels)| (Some(name.to_string()), labels.clone()))
            .collect();
        if namespaces.is_empty() {
            namespaces.push((
                config.namespace_labels.get(NAMESPACE_NAME_LABEL).cloned(),
                config.namespace_labels.clone(),
            ));
        }
        Self {
            namespaces,
            namespace_labels: config.namespace_labels.clone(),
            pod_labels: config.pod_labels.clone(),
            ports: config.ports.clone(),
            ips: config.ips.clone(),
            ip_block_matches_pods: config.ip_block_matches_pods,
            allowance_yaml: std::sync::OnceLock::new(),
        }
    }

    /// The recommended DNS rule as a YAML list item, for fix messages.
    pub fn allowance_yaml(&self) -> &str {
        self.allowance_yaml
            .get_or_init(|| serde_yaml_ng::to_string(&[self.allowance_rule()]).unwrap_or_default())
    }

    /// Whether `ipBlock` peers match pod IPs (`dns.ipBlockMatchesPods`).
    pub fn ip_block_matches_pods(&self) -> bool {
        self.ip_block_matches_pods
    }

    /// The configured labels of the DNS pods.
    pub fn pod_labels(&self) -> &Labels {
        &self.pod_labels
    }

    /// The configured labels of the DNS namespace.
    pub fn namespace_labels(&self) -> &Labels {
        &self.namespace_labels
    }

    /// The configured DNS port names.
    pub fn port_names(&self) -> Vec<&str> {
        self.ports.iter().map(|p| p.name.as_str()).collect()
    }

    /// The DNS port number of a protocol, if one is configured.
    pub fn port_number(&self, protocol: Protocol) -> Option<i32> {
        self.ports
            .iter()
            .find(|p| p.protocol == protocol)
            .map(|p| p.port)
    }

    fn targets(&self, protocol: Protocol) -> impl Iterator<Item = PortTarget<'_>> {
        self.ports
            .iter()
            .filter(move |p| p.protocol == protocol)
            .map(move |p| PortTarget {
                protocol,
                number: p.port,
                name: Some(p.name.as_str()),
            })
    }

    fn pods(&self) -> impl Iterator<Item = Pod<'_>> {
        self.namespaces.iter().map(|(name, labels)| Pod {
            namespace: name.as_deref(),
            namespace_labels: labels,
            labels: &self.pod_labels,
        })
    }

    /// Whether a peer selects the DNS pods (by selectors; ipBlocks are addresses).
    pub fn peer_selects_dns_pods(&self, peer: &NetworkPolicyPeer, policy_namespace: &str) -> bool {
        self.pods()
            .any(|pod| peer::selects_pod(peer, policy_namespace, &pod))
    }

    /// Whether a pod selector matches the DNS pods.
    pub fn selects_dns_pods(&self, selector: &LabelSelector) -> bool {
        super::selector::matches(selector, &self.pod_labels)
    }

    fn ip_block_holds_dns(&self, block: &Block) -> bool {
        self.ips.iter().any(|ip| block.contains(*ip))
    }

    /// Whether an `ipBlock` reaches the DNS pods: a whole address family without `except`
    /// does (ipBlock matches pod IPs); a range that may hold pod IPs might.
    fn ip_block_reaches_pods(&self, block: &Block) -> Reach {
        if !self.ip_block_matches_pods {
            return Reach::No;
        }
        if block.is_everything() && block.except.is_empty() {
            return Reach::Yes;
        }
        let may_hold_pods = block.is_everything()
            || POD_RANGES
                .iter()
                .filter_map(|r| r.parse::<ipnet::IpNet>().ok())
                .any(|r| overlaps(&r, &block.cidr));
        if !may_hold_pods {
            return Reach::No;
        }
        let except = if block.except.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = block.except.iter().map(ToString::to_string).collect();
            format!(" and outside {}", list.join(", "))
        };
        Reach::Maybe(format!(
            "the DNS pods' IPs are inside {}{except} and the CNI applies ipBlock to pod \
             traffic (dns.ipBlockMatchesPods)",
            block.cidr
        ))
    }

    /// Whether one egress rule of a policy in `policy_namespace` admits DNS on `protocol`.
    pub fn rule_reach(
        &self,
        policy_namespace: &str,
        rule: &RuleView<'_>,
        protocol: Protocol,
    ) -> Reach {
        let by_pods = || {
            self.targets(protocol)
                .any(|t| ports::ports_allow(rule.ports, &t))
        };
        // Named ports do not resolve for plain addresses: only numbers count there.
        let by_address = || {
            self.targets(protocol)
                .any(|t| ports::ports_allow(rule.ports, &PortTarget { name: None, ..t }))
        };
        if rule.peers.is_empty() {
            let yes = by_pods() || (!self.ips.is_empty() && by_address());
            return if yes { Reach::Yes } else { Reach::No };
        }
        rule.peers.iter().fold(Reach::No, |best, peer| {
            best.or(|| match PeerKind::of(peer) {
                PeerKind::IpBlock(block) => match Block::parse(block) {
                    Ok(b) if self.ip_block_holds_dns(&b) && by_address() => Reach::Yes,
                    Ok(b) if by_pods() => self.ip_block_reaches_pods(&b),
                    _ => Reach::No,
                },
                _ if self.peer_selects_dns_pods(peer, policy_namespace) && by_pods() => Reach::Yes,
                _ => Reach::No,
            })
        })
    }

    /// Whether one egress rule certainly admits DNS on `protocol`.
    pub fn rule_allows(
        &self,
        policy_namespace: &str,
        rule: &RuleView<'_>,
        protocol: Protocol,
    ) -> bool {
        self.rule_reach(policy_namespace, rule, protocol) == Reach::Yes
    }

    /// Whether a policy's enforced egress rules admit DNS on `protocol`.
    pub fn policy_reach(&self, subject: &Subject<'_>, protocol: Protocol) -> Reach {
        subject
            .rules(Direction::Egress)
            .iter()
            .fold(Reach::No, |best, rule| {
                best.or(|| self.rule_reach(subject.namespace, rule, protocol))
            })
    }

    /// Whether a policy's enforced egress rules certainly admit DNS on `protocol`.
    pub fn policy_allows(&self, subject: &Subject<'_>, protocol: Protocol) -> bool {
        self.policy_reach(subject, protocol) == Reach::Yes
    }

    /// Whether a rule port names a DNS port (its number exactly, or a DNS port name).
    pub fn is_dns_port(&self, port: &NetworkPolicyPort) -> bool {
        let names = self.port_names();
        self.ports
            .iter()
            .any(|d| ports::names_port(port, d.port, &names))
    }

    /// Whether a rule is meant for DNS: it names the DNS port number or a DNS port name.
    pub fn is_dns_rule(&self, rule: &RuleView<'_>) -> bool {
        rule.ports.iter().any(|p| self.is_dns_port(p))
    }

    /// Whether a rule admits nothing but DNS ports (every port entry names one).
    pub fn is_dns_only_rule(&self, rule: &RuleView<'_>) -> bool {
        !rule.ports.is_empty() && rule.ports.iter().all(|p| self.is_dns_port(p))
    }

    /// The egress rule netpol-guard recommends and injects: every DNS port, to the DNS pods
    /// (namespace AND pod selector in one peer), plus each configured DNS address.
    pub fn allowance_rule(&self) -> NetworkPolicyEgressRule {
        // Select the namespace by the configured labels only, not every label it has.
        let mut to = vec![NetworkPolicyPeer {
            namespace_selector: Some(super::selector::from_labels(&self.namespace_labels)),
            pod_selector: Some(super::selector::from_labels(&self.pod_labels)),
            ip_block: None,
        }];
        to.extend(self.ips.iter().map(|ip| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: ipnet::IpNet::from(*ip).to_string(),
                except: None,
            }),
            ..Default::default()
        }));
        let mut ports: Vec<NetworkPolicyPort> = Vec::new();
        for p in &self.ports {
            ports.push(NetworkPolicyPort {
                port: Some(IntOrString::Int(p.port)),
                protocol: Some(p.protocol.as_str().to_string()),
                end_port: None,
            });
        }
        NetworkPolicyEgressRule {
            ports: Some(ports),
            to: Some(to),
        }
    }
}

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
}

impl Coverage {
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing { .. })
    }

    /// Whether DNS certainly works (itself, a covering policy, or every existing pod).
    pub fn is_certain(&self) -> bool {
        matches!(self, Self::Itself | Self::Policy(_) | Self::Pods(_))
    }
}

/// Whether the pods selected by `subject` can reach DNS on `protocol`: through its own
/// rules, a policy of its namespace that provably selects all of its pods, or, pod by pod,
/// the policies selecting each existing pod (see [`pods_outcome`]).
pub fn coverage(
    target: &DnsTarget,
    inventory: &Inventory,
    subject: &Subject<'_>,
    protocol: Protocol,
) -> Coverage {
    let mut depends = match target.policy_reach(subject, protocol) {
        Reach::Yes => return Coverage::Itself,
        Reach::Maybe(condition) => Some(Coverage::Depends {
            condition,
            policy: None,
        }),
        Reach::No => None,
    };
    for other in inventory.covering(subject) {
        match target.policy_reach(&other, protocol) {
            Reach::Yes => return Coverage::Policy(other.name.to_string()),
            Reach::Maybe(condition) if depends.is_none() => {
                depends = Some(Coverage::Depends {
                    condition,
                    policy: Some(other.name.to_string()),
                });
            }
            _ => {}
        }
    }
    let outcome = pods_outcome(inventory, subject, |set| {
        set.iter().fold(Reach::No, |best, s| {
            best.or(|| target.policy_reach(s, protocol))
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
        _ if depends.is_some() => depends.unwrap_or(Coverage::Missing {
            examples: Vec::new(),
            pods: 0,
        }),
        PodsOutcome::IfAlsoMatched { ref policy, .. } => Coverage::Composed {
            condition: outcome.condition(subject, "DNS").unwrap_or_default(),
            policy: policy.clone(),
        },
        PodsOutcome::Nobody => Coverage::Missing {
            examples: Vec::new(),
            pods: 0,
        },
    }
}
