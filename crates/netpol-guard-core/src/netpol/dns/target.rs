//! The DNS target resolved against what is known of the cluster: the DNS pods discovered
//! from the DNS Service and its EndpointSlices when the cache has them, the configured
//! ones otherwise, plus any further configured DNS pods and addresses.

use crate::netpol::ipblock::{Everywhere, IpFamilies};
use crate::netpol::openness::whole_families;
use std::net::IpAddr;
use std::sync::OnceLock;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::cluster::{Inventory, NAMESPACE_NAME_LABEL};
use super::super::ipblock::Block;
use super::super::peer::{self, PeerKind, Pod};
use super::super::policy::{Direction, RuleView, Subject};
use super::super::ports::{self, PortTarget, Protocol};
use super::super::selector::{self, Labels};
use super::{Discover, DnsConfig, DnsPort, Reach};

/// Address ranges cluster pods are commonly given: RFC 1918, shared address space (RFC
/// 6598) and IPv6 unique local addresses. An `ipBlock` overlapping them may hold the DNS
/// pods; one outside them (a public resolver, link-local) does not.
pub(crate) const POD_RANGES: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

fn overlaps(a: &ipnet::IpNet, b: &ipnet::IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The port a DNS Service serves on.
const DNS_SERVICE_PORT: i32 = 53;

/// Where the DNS target in use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsSource {
    /// The Service `namespace/name` and its EndpointSlices.
    Discovered(String),
    /// The configuration (`dns.*`).
    Configured,
}

impl DnsSource {
    /// `discovered` or `configured`, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Discovered(_) => "discovered",
            Self::Configured => "configured",
        }
    }
}

/// One set of DNS pods.
#[derive(Debug, Clone)]
struct Endpoint {
    /// The namespaces they may run in: (name if known, labels).
    namespaces: Vec<(Option<String>, Labels)>,
    /// The labels that select those namespaces (in the injected rule).
    namespace_labels: Labels,
    pod_labels: Labels,
    ports: Vec<DnsPort>,
    /// The pods' IPs, when discovered.
    pod_ips: Vec<IpAddr>,
    /// The cluster's IP families: which whole-family block holds the pods' addresses.
    families: IpFamilies,
}

impl Endpoint {
    /// Known namespaces carrying `namespace_labels` contribute their full label sets, so
    /// a selector on a label the cluster really has (even `name`, if someone set it) is
    /// honoured.
    fn resolve(
        namespace_labels: &Labels,
        pod_labels: &Labels,
        ports: Vec<DnsPort>,
        pod_ips: Vec<IpAddr>,
        inventory: &Inventory,
    ) -> Self {
        let mut namespaces: Vec<(Option<String>, Labels)> = inventory
            .namespaces_with(namespace_labels)
            .into_iter()
            .map(|(name, labels)| (Some(name.to_string()), labels.clone()))
            .collect();
        if namespaces.is_empty() {
            namespaces.push((
                namespace_labels.get(NAMESPACE_NAME_LABEL).cloned(),
                namespace_labels.clone(),
            ));
        }
        Self {
            namespaces,
            namespace_labels: namespace_labels.clone(),
            pod_labels: pod_labels.clone(),
            ports,
            pod_ips,
            families: inventory.ip_families(),
        }
    }

    /// The DNS pods of the Service `namespace/name`, if the cache knows it and it selects
    /// pods by labels. Its ports on 53 are the DNS ports; the pods' port numbers come from
    /// its EndpointSlices (or its numeric `targetPort`), their names from a named
    /// `targetPort` (the container port's name) or the Service port's name; the pod IPs
    /// from the slices' ready endpoints.
    fn discovered(service: &str, inventory: &Inventory) -> Option<Self> {
        let (namespace, name) = service.split_once('/')?;
        let (facts, slices) = inventory.service(namespace, name)?;
        if facts.selector.is_empty() {
            return None;
        }
        let mut ports: Vec<DnsPort> = facts
            .ports
            .iter()
            .filter(|p| p.port == DNS_SERVICE_PORT)
            .filter_map(|p| {
                let from_slice = slices
                    .iter()
                    .flat_map(|s| &s.ports)
                    .find(|sp| sp.name == p.name && sp.protocol == p.protocol)
                    .map(|sp| sp.port);
                Some(DnsPort {
                    name: p.target_name.clone().unwrap_or_else(|| p.name.clone()),
                    port: from_slice.or(p.target_number)?,
                    protocol: p.protocol,
                })
            })
            .collect();
        // in the Service's order, once each
        let mut seen = Vec::new();
        ports.retain(|p| {
            let new = !seen.contains(p);
            seen.push(p.clone());
            new
        });
        if !ports.iter().any(|p| p.protocol == Protocol::Udp) {
            return None;
        }
        let mut pod_ips: Vec<IpAddr> = slices.iter().flat_map(|s| s.addresses.clone()).collect();
        pod_ips.sort();
        pod_ips.dedup();
        let namespace_labels =
            Labels::from([(NAMESPACE_NAME_LABEL.to_string(), namespace.to_string())]);
        Some(Self::resolve(
            &namespace_labels,
            &facts.selector,
            ports,
            pod_ips,
            inventory,
        ))
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

    /// Whether a rule's ports admit these pods' DNS port on `protocol`.
    fn ports_allow(&self, rule: &RuleView<'_>, protocol: Protocol) -> bool {
        self.targets(protocol)
            .any(|t| ports::ports_allow(rule.ports, &t))
    }

    fn pods(&self) -> impl Iterator<Item = Pod<'_>> {
        self.namespaces.iter().map(|(name, labels)| Pod {
            namespace: name.as_deref(),
            namespace_labels: labels,
            labels: &self.pod_labels,
        })
    }

    fn selected_by(&self, peer: &NetworkPolicyPeer, policy_namespace: &str) -> bool {
        self.pods()
            .any(|pod| peer::selects_pod(peer, policy_namespace, &pod))
    }

    /// Whether a block of one whole family (`0.0.0.0/0` or `::/0`) holds the pods' addresses:
    /// certain in a cluster of one family (see [`IpFamilies::everywhere`]); in a dual-stack
    /// cluster, or where the families are unknown, that is the condition.
    fn whole_family_reach(&self, block: &Block) -> Reach {
        let (family, other) = if block.is_all_v4() {
            ("IPv4", "IPv6")
        } else {
            ("IPv6", "IPv4")
        };
        match self
            .families
            .everywhere(block.is_all_v4(), block.is_all_v6())
        {
            Everywhere::Yes => Reach::Yes,
            Everywhere::No => Reach::No,
            // said as a condition on the lookups, which the DNS messages complete
            Everywhere::Depends(_) if self.families == IpFamilies::Dual => Reach::Maybe(format!(
                "{} holds the DNS pods' {family} addresses only: in this dual-stack cluster \
                 lookups over {other} are not admitted",
                block.cidr
            )),
            Everywhere::Depends(_) => Reach::Maybe(format!(
                "{} holds the DNS pods' addresses only if they are {family} (the cluster's IP \
                 families are not known here: --ip-families ipv4|ipv6|dual decides)",
                block.cidr
            )),
        }
    }

    /// Whether an `ipBlock` reaches these pods. With their IPs in view: when it holds all
    /// of them. Otherwise a whole address family without `except` does; a range that may
    /// hold pod IPs might.
    fn ip_block_reach(&self, block: &Block) -> Reach {
        if !self.pod_ips.is_empty() {
            let inside = self
                .pod_ips
                .iter()
                .filter(|ip| block.contains(**ip))
                .count();
            return match inside {
                0 => Reach::No,
                n if n == self.pod_ips.len() => Reach::Yes,
                _ => Reach::Maybe(format!(
                    "the DNS pods outside {} are not the ones these pods' lookups reach \
                     (only {inside} of the {} DNS pod IPs are inside it)",
                    block.cidr,
                    self.pod_ips.len()
                )),
            };
        }
        if block.is_all_v4() || block.is_all_v6() {
            return self.whole_family_reach(block);
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
}

/// The DNS endpoint set, resolved against what is known of the cluster.
#[derive(Debug, Clone)]
pub struct DnsTarget {
    /// The DNS pods: the primary target (discovered or configured) first, then the
    /// further configured ones (`dns.targets`).
    endpoints: Vec<Endpoint>,
    ips: Vec<IpAddr>,
    ip_block_matches_pods: bool,
    source: DnsSource,
    /// [`DnsTarget::allowance_rule`] as a YAML list item, rendered on first use.
    allowance_yaml: OnceLock<String>,
}

impl DnsTarget {
    /// Resolves the DNS target: with `dns.discover: auto`, the first candidate Service the
    /// inventory knows (`dns.services`); otherwise, or until one is known, the configured
    /// DNS pods.
    pub fn new(config: &DnsConfig, inventory: &Inventory) -> Self {
        let discovered = match config.discover {
            Discover::Auto => config.services.iter().find_map(|service| {
                Endpoint::discovered(service, inventory)
                    .map(|e| (e, DnsSource::Discovered(service.clone())))
            }),
            Discover::Off => None,
        };
        let (primary, source) = discovered.unwrap_or_else(|| {
            let configured = Endpoint::resolve(
                &config.namespace_labels,
                &config.pod_labels,
                config.ports.clone(),
                Vec::new(),
                inventory,
            );
            (configured, DnsSource::Configured)
        });
        let further = config.targets.iter().map(|t| {
            Endpoint::resolve(
                &t.namespace_labels,
                &t.pod_labels,
                t.ports.clone(),
                Vec::new(),
                inventory,
            )
        });
        Self {
            endpoints: std::iter::once(primary).chain(further).collect(),
            ips: config.ips.clone(),
            ip_block_matches_pods: config.ip_block_matches_pods,
            source,
            allowance_yaml: OnceLock::new(),
        }
    }

    fn primary(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    /// Where the target in use comes from.
    pub fn source(&self) -> &DnsSource {
        &self.source
    }

    /// The namespace of the primary DNS pods, when known by name.
    pub fn namespace(&self) -> Option<&str> {
        self.primary()
            .namespace_labels
            .get(NAMESPACE_NAME_LABEL)
            .map(String::as_str)
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

    /// The labels of the primary DNS pods.
    pub fn pod_labels(&self) -> &Labels {
        &self.primary().pod_labels
    }

    /// The labels of the primary DNS pods' namespace.
    pub fn namespace_labels(&self) -> &Labels {
        &self.primary().namespace_labels
    }

    /// The primary DNS port number of a protocol.
    pub fn port_number(&self, protocol: Protocol) -> Option<i32> {
        self.primary()
            .ports
            .iter()
            .find(|p| p.protocol == protocol)
            .map(|p| p.port)
    }

    /// Whether a pod selector matches DNS pods.
    pub fn selects_dns_pods(&self, selector: &LabelSelector) -> bool {
        self.endpoints
            .iter()
            .any(|e| selector::matches(selector, &e.pod_labels))
    }

    /// Whether a peer of a policy in `policy_namespace` selects the primary DNS pods (the
    /// policy layers ask this of their subjects and peers, written as NetworkPolicy peers).
    pub fn peer_selects_dns_pods(&self, peer: &NetworkPolicyPeer, policy_namespace: &str) -> bool {
        self.primary().selected_by(peer, policy_namespace)
    }

    /// Whether a known NetworkPolicy isolates the primary DNS pods' ingress (then the
    /// Baseline tier has no say over who reaches them).
    pub fn ingress_isolated(&self, inventory: &Inventory) -> bool {
        let Some(namespace) = self.namespace() else {
            return false;
        };
        let labels = &self.primary().pod_labels;
        inventory.policies_in(namespace).iter().any(|p| {
            let subject = Subject::new(p, namespace);
            subject.isolates(Direction::Ingress)
                && selector::matches(&subject.pod_selector(), labels)
        })
    }

    /// The namespace of the primary DNS pods with its labels (all of them when the cluster's
    /// namespaces are known), when known by name.
    pub fn namespace_with_labels(&self) -> Option<(&str, &Labels)> {
        self.primary()
            .namespaces
            .iter()
            .find_map(|(name, labels)| Some((name.as_deref()?, labels)))
    }

    /// The primary DNS pods' ports of `protocol`, by number and name.
    pub fn port_targets(&self, protocol: Protocol) -> Vec<PortTarget<'_>> {
        self.primary().targets(protocol).collect()
    }

    /// Whether a rule's numeric ports admit a DNS port on `protocol` (named ports do not
    /// resolve for plain addresses).
    fn ports_allow_by_address(&self, rule: &RuleView<'_>, protocol: Protocol) -> bool {
        self.endpoints.iter().any(|e| {
            e.targets(protocol)
                .any(|t| ports::ports_allow(rule.ports, &PortTarget { name: None, ..t }))
        })
    }

    fn ip_block_reach(&self, rule: &RuleView<'_>, block: &Block, protocol: Protocol) -> Reach {
        if self.ips.iter().any(|ip| block.contains(*ip))
            && self.ports_allow_by_address(rule, protocol)
        {
            return Reach::Yes;
        }
        if !self.ip_block_matches_pods {
            return Reach::No;
        }
        self.endpoints
            .iter()
            .filter(|e| e.ports_allow(rule, protocol))
            .fold(Reach::No, |best, e| best.or(|| e.ip_block_reach(block)))
    }

    /// Whether one egress rule of a policy in `policy_namespace` admits DNS on `protocol`.
    pub fn rule_reach(
        &self,
        policy_namespace: &str,
        rule: &RuleView<'_>,
        protocol: Protocol,
    ) -> Reach {
        if rule.peers.is_empty() {
            let yes = self.endpoints.iter().any(|e| e.ports_allow(rule, protocol))
                || (!self.ips.is_empty() && self.ports_allow_by_address(rule, protocol));
            return if yes { Reach::Yes } else { Reach::No };
        }
        // 0.0.0.0/0 and ::/0 side by side hold every address, whatever the families
        if whole_families(rule.peers) == (true, true)
            && self.ip_block_matches_pods
            && self.endpoints.iter().any(|e| e.ports_allow(rule, protocol))
        {
            return Reach::Yes;
        }
        rule.peers.iter().fold(Reach::No, |best, peer| {
            best.or(|| match PeerKind::of(peer) {
                PeerKind::IpBlock(block) => match Block::parse(block) {
                    Ok(b) => self.ip_block_reach(rule, &b, protocol),
                    Err(_) => Reach::No,
                },
                _ if self.endpoints.iter().any(|e| {
                    e.selected_by(peer, policy_namespace) && e.ports_allow(rule, protocol)
                }) =>
                {
                    Reach::Yes
                }
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
        self.endpoints.iter().any(|e| {
            let names: Vec<&str> = e.ports.iter().map(|p| p.name.as_str()).collect();
            e.ports
                .iter()
                .any(|d| ports::names_port(port, d.port, &names))
        })
    }

    /// Whether a rule is meant for DNS: it names the DNS port number or a DNS port name.
    pub fn is_dns_rule(&self, rule: &RuleView<'_>) -> bool {
        rule.ports.iter().any(|p| self.is_dns_port(p))
    }

    /// Whether a rule admits nothing but DNS ports (every port entry names one).
    pub fn is_dns_only_rule(&self, rule: &RuleView<'_>) -> bool {
        !rule.ports.is_empty() && rule.ports.iter().all(|p| self.is_dns_port(p))
    }

    /// The egress rule netpol-guard recommends and injects: every port of the primary DNS
    /// pods, to those pods (namespace AND pod selector in one peer), plus each configured
    /// DNS address.
    pub fn allowance_rule(&self) -> NetworkPolicyEgressRule {
        let primary = self.primary();
        // Select the namespace by the target's labels only, not every label it has.
        let mut to = vec![NetworkPolicyPeer {
            namespace_selector: Some(selector::from_labels(&primary.namespace_labels)),
            pod_selector: Some(selector::from_labels(&primary.pod_labels)),
            ip_block: None,
        }];
        to.extend(self.ips.iter().map(|ip| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: ipnet::IpNet::from(*ip).to_string(),
                except: None,
            }),
            ..Default::default()
        }));
        let ports = primary
            .ports
            .iter()
            .map(|p| NetworkPolicyPort {
                port: Some(IntOrString::Int(p.port)),
                protocol: Some(p.protocol.as_str().to_string()),
                end_port: None,
            })
            .collect();
        NetworkPolicyEgressRule {
            ports: Some(ports),
            to: Some(to),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::cluster::{ServiceFacts, ServicePort, SliceFacts};
    use crate::netpol::dns::DnsEndpoint;
    use crate::netpol::policy::tests::policy;

    /// An OpenShift-shaped cluster: Service openshift-dns/dns-default on 53 (and metrics on
    /// 9154) with named target ports, its pods listening on 5353.
    fn openshift() -> Inventory {
        let mut inv = Inventory::new();
        inv.insert_namespace("openshift-dns", Labels::new());
        inv.insert_namespace("shop", Labels::new());
        let port = |name: &str, port, protocol, target: &str| ServicePort {
            name: name.into(),
            port,
            protocol,
            target_name: Some(target.into()),
            target_number: None,
        };
        inv.insert_service(
            "openshift-dns",
            "dns-default",
            ServiceFacts {
                selector: Labels::from([(
                    "dns.operator.openshift.io/daemonset-dns".into(),
                    "default".into(),
                )]),
                ports: vec![
                    port("dns", 53, Protocol::Udp, "dns"),
                    port("dns-tcp", 53, Protocol::Tcp, "dns-tcp"),
                    port("metrics", 9154, Protocol::Tcp, "metrics"),
                ],
            },
        );
        let slice_port = |name: &str, port, protocol| DnsPort {
            name: name.into(),
            port,
            protocol,
        };
        inv.insert_slice(
            "openshift-dns",
            "dns-default-x1",
            SliceFacts {
                service: "dns-default".into(),
                ports: vec![
                    slice_port("dns", 5353, Protocol::Udp),
                    slice_port("dns-tcp", 5353, Protocol::Tcp),
                    slice_port("metrics", 9154, Protocol::Tcp),
                ],
                addresses: vec![
                    "10.128.0.10".parse().expect("ip"),
                    "10.129.0.7".parse().expect("ip"),
                ],
            },
        );
        inv
    }

    fn egress(rule: &str) -> k8s_openapi::api::networking::v1::NetworkPolicy {
        policy(&format!(
            "metadata: {{name: p, namespace: shop}}\nspec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{rule}]}}"
        ))
    }

    fn reach(target: &DnsTarget, rule: &str) -> Reach {
        let p = egress(rule);
        target.policy_reach(&Subject::new(&p, "shop"), Protocol::Udp)
    }

    #[test]
    fn discovers_an_openshift_dns_service_and_its_slices() {
        let inv = openshift();
        let target = DnsTarget::new(&DnsConfig::default(), &inv);
        assert_eq!(
            target.source(),
            &DnsSource::Discovered("openshift-dns/dns-default".into())
        );
        assert_eq!(target.namespace(), Some("openshift-dns"));
        assert_eq!(target.port_number(Protocol::Udp), Some(5353));
        let ns = "namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: openshift-dns}}";
        let pods = "podSelector: {matchLabels: {dns.operator.openshift.io/daemonset-dns: default}}";
        let cases = [
            (format!("{{to: [{{{ns}, {pods}}}], ports: [{{port: 5353, protocol: UDP}}]}}"), Reach::Yes),
            (format!("{{to: [{{{ns}, {pods}}}], ports: [{{port: dns, protocol: UDP}}]}}"), Reach::Yes),
            // 53 is the Service's port, not the pods'
            (format!("{{to: [{{{ns}, {pods}}}], ports: [{{port: 53, protocol: UDP}}]}}"), Reach::No),
            // the metrics port is no DNS port
            (format!("{{to: [{{{ns}, {pods}}}], ports: [{{port: 9154, protocol: TCP}}]}}"), Reach::No),
            // an ipBlock holding every DNS pod IP: certain; none of them: certainly not
            ("{to: [{ipBlock: {cidr: 10.128.0.0/14}}], ports: [{port: 5353, protocol: UDP}]}".into(), Reach::Yes),
            ("{to: [{ipBlock: {cidr: 10.200.0.0/16}}], ports: [{port: 5353, protocol: UDP}]}".into(), Reach::No),
            // the old default target is not DNS here
            ("{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}".into(), Reach::No),
        ];
        for (rule, want) in cases {
            assert_eq!(reach(&target, &rule), want, "{rule}");
        }
        assert!(matches!(
            reach(
                &target,
                "{to: [{ipBlock: {cidr: 10.128.0.0/16}}], ports: [{port: 5353, protocol: UDP}]}"
            ),
            Reach::Maybe(_)
        ));
        // the injected rule targets the discovered pods on their own ports, not metrics
        let rule = serde_json::to_value(target.allowance_rule()).expect("json");
        assert_eq!(
            rule["ports"],
            serde_json::json!([{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}])
        );
        assert_eq!(
            rule["to"][0]["podSelector"]["matchLabels"]["dns.operator.openshift.io/daemonset-dns"],
            "default"
        );
    }

    #[test]
    fn falls_back_to_the_configured_target() {
        let inv = openshift();
        let off = DnsConfig {
            discover: Discover::Off,
            ..DnsConfig::default()
        };
        assert_eq!(DnsTarget::new(&off, &inv).source(), &DnsSource::Configured);
        let elsewhere = DnsConfig {
            services: vec!["kube-system/kube-dns".into()],
            ..DnsConfig::default()
        };
        let target = DnsTarget::new(&elsewhere, &inv);
        assert_eq!(target.source(), &DnsSource::Configured);
        assert_eq!(target.namespace(), Some("kube-system"));
        assert_eq!(target.port_number(Protocol::Udp), Some(53));
        // a Service without a selector (hand-made endpoints) cannot be selected by labels
        let mut bare = Inventory::new();
        bare.insert_service("kube-system", "kube-dns", ServiceFacts::default());
        assert_eq!(
            DnsTarget::new(&DnsConfig::default(), &bare).source(),
            &DnsSource::Configured
        );
    }

    #[test]
    fn further_targets_count_as_dns() {
        let config = DnsConfig {
            targets: vec![DnsEndpoint {
                namespace_labels: Labels::from([(NAMESPACE_NAME_LABEL.into(), "dns-cache".into())]),
                pod_labels: Labels::from([("app".into(), "unbound".into())]),
                ports: vec![DnsPort {
                    name: "dns".into(),
                    port: 5300,
                    protocol: Protocol::Udp,
                }],
            }],
            ..DnsConfig::default()
        };
        let target = DnsTarget::new(&config, &Inventory::new());
        let to = "{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dns-cache}}, podSelector: {matchLabels: {app: unbound}}}";
        assert_eq!(
            reach(
                &target,
                &format!("{{to: [{to}], ports: [{{port: 5300, protocol: UDP}}]}}")
            ),
            Reach::Yes
        );
        // each set of DNS pods on its own ports
        assert_eq!(
            reach(
                &target,
                &format!("{{to: [{to}], ports: [{{port: 53, protocol: UDP}}]}}")
            ),
            Reach::No
        );
        // the injected rule stays the primary target's
        assert_eq!(target.port_number(Protocol::Udp), Some(53));
    }
}
