//! The tiers' answer to one connectivity question: can these pods reach the DNS pods on a
//! protocol?
//!
//! - The Admin tier is walked by priority (lower first), each object's rules in order; the
//!   first rule that matches decides: `Allow` and `Deny` are final, `Pass` hands the
//!   connection to NetworkPolicy. Two objects of the same priority that both match and
//!   disagree leave the answer to the implementation (network-policy-api #222).
//! - NetworkPolicy is final for the pods it isolates (the caller's coverage answers that).
//! - The Baseline tier speaks only for pods no NetworkPolicy isolates.
//! - Cilium's allows add up with NetworkPolicy's; a Cilium deny wins over every allow.
//!
//! A rule that may match (the guard cannot see whether a namespace carries a label, or a
//! peer it does not read) and would change the answer makes it depend on that condition:
//! the verdicts then warn, never refuse.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::layers::scope::and;
pub use super::layers::scope::{Namespaces, Pods, holds, holds_namespaces};
use super::layers::{
    Action, Group, LayerKind, LayerPolicy, LayerRule, Layers, Peer, PortMatch, Tier,
};
use crate::netpol::dns::DnsTarget;
use crate::netpol::ipblock::{Everywhere, IpFamilies};
use crate::netpol::policy::{Direction, RuleView};
use crate::netpol::ports::{self, Protocol};
use crate::netpol::reach::Reach;
use crate::netpol::selector::{self, Labels};
use ipnet::IpNet;

/// The rule that decides, or may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub kind: LayerKind,
    pub namespace: Option<String>,
    pub name: String,
    /// The rule's name (or path) within the object.
    pub rule: String,
    /// "AdminNetworkPolicy allow-dns, priority 10 (rule dns)".
    pub text: String,
}

impl By {
    fn new(policy: &LayerPolicy, rule: &LayerRule) -> Self {
        let rule_text = if rule.name == rule.path {
            rule.path.clone()
        } else {
            format!("rule {}", rule.name)
        };
        Self {
            kind: policy.kind,
            namespace: policy.namespace.clone(),
            name: policy.name.clone(),
            rule: rule.name.clone(),
            text: format!("{} ({rule_text})", policy.describe()),
        }
    }

    /// Whether it names this object.
    pub fn is(&self, policy: &LayerPolicy) -> bool {
        self.kind == policy.kind && self.namespace == policy.namespace && self.name == policy.name
    }
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A rule that may apply, with the condition under which it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maybe {
    pub action: Action,
    pub by: By,
    pub condition: String,
}

/// What the layers say of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    /// A layer allows it, whatever NetworkPolicy says.
    Allowed(By),
    /// A layer denies it, whatever NetworkPolicy says.
    Denied(By),
    /// The answer depends on this condition, which the guard cannot see.
    Depends(String),
    /// No layer decides: NetworkPolicy does, unless the rule in `maybe` applies.
    Open(Option<Maybe>),
}

impl Say {
    fn maybe(&self) -> Option<&Maybe> {
        match self {
            Self::Open(m) => m.as_ref(),
            _ => None,
        }
    }
}

/// Which tiers speak for the pods asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolated {
    /// A NetworkPolicy isolates them: Baseline has no say.
    ByNetworkPolicy,
    /// No NetworkPolicy does: Baseline decides after the Admin tier passes.
    No,
}

/// A group as the NetworkPolicy peer that selects the same pods.
fn as_peer(group: &Group) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(group.namespaces.clone()),
        pod_selector: Some(group.pods.clone()),
        ip_block: None,
    }
}

/// A rule's ports as NetworkPolicy ports (a named port for `protocol`).
fn as_ports(ports: &[PortMatch], protocol: Protocol) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| match p {
            PortMatch::Range {
                protocol,
                start,
                end,
            } => NetworkPolicyPort {
                protocol: Some(protocol.as_str().to_string()),
                port: Some(IntOrString::Int(*start)),
                end_port: (end > start).then_some(*end),
            },
            PortMatch::Named(name) => NetworkPolicyPort {
                protocol: Some(protocol.as_str().to_string()),
                port: Some(IntOrString::String(name.clone())),
                end_port: None,
            },
        })
        .collect()
}

/// Whether one egress rule's peers and ports reach the DNS pods on `protocol`.
fn egress_reaches_dns(rule: &LayerRule, dns: &DnsTarget, protocol: Protocol) -> Reach {
    let ports = match &rule.ports {
        // ports listed but none of them read: nothing is matched
        Some(list) if list.is_empty() => return Reach::No,
        Some(list) => as_ports(list, protocol),
        None => Vec::new(),
    };
    let mut reach = Reach::No;
    for peer in &rule.peers {
        let answer = match peer {
            Peer::Anything => dns.rule_reach("", &view(&[], &ports), protocol),
            Peer::Pods(g) => dns.rule_reach("", &view(&[as_peer(g)], &ports), protocol),
            Peer::Networks(nets) => {
                let blocks: Vec<NetworkPolicyPeer> = (nets.iter())
                    .map(|n| NetworkPolicyPeer {
                        ip_block: Some(IPBlock {
                            cidr: n.to_string(),
                            except: None,
                        }),
                        ..Default::default()
                    })
                    .collect();
                dns.rule_reach("", &view(&blocks, &ports), protocol)
            }
            // Cilium keeps CIDR rules off its own endpoints; nodes, entities and names are
            // not the DNS pods
            Peer::CiliumCidrs(_) | Peer::Nodes | Peer::Entity(_) | Peer::Fqdns(_) => Reach::No,
            Peer::Unread(what) => Reach::Maybe(format!("{what} selects the DNS pods")),
        };
        reach = reach.or(|| answer);
        if reach == Reach::Yes {
            break;
        }
    }
    reach
}

fn view<'a>(peers: &'a [NetworkPolicyPeer], ports: &'a [NetworkPolicyPort]) -> RuleView<'a> {
    RuleView {
        direction: Direction::Egress,
        index: 0,
        peers,
        ports,
    }
}

/// Whether one ingress rule (of a policy whose subject holds the DNS pods) admits `pods`
/// on the DNS port of `protocol`.
fn ingress_from(rule: &LayerRule, pods: &Pods<'_>, dns: &DnsTarget, protocol: Protocol) -> Reach {
    let on_dns_port = match &rule.ports {
        None => true,
        Some(list) => {
            let ports = as_ports(list, protocol);
            dns.port_targets(protocol)
                .iter()
                .any(|t| ports::ports_allow(&ports, t))
        }
    };
    if !on_dns_port {
        return Reach::No;
    }
    rule.peers.iter().fold(Reach::No, |best, peer| {
        best.or(|| match peer {
            Peer::Anything => Reach::Yes,
            Peer::Pods(g) => holds(g, pods),
            Peer::Networks(nets) => Reach::Maybe(format!(
                "the pods' addresses are inside {}",
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Peer::CiliumCidrs(_) | Peer::Nodes | Peer::Entity(_) | Peer::Fqdns(_) => Reach::No,
            Peer::Unread(what) => Reach::Maybe(format!("{what} holds these pods")),
        })
    })
}

/// Walks one tier of the network-policy-api (Admin or Baseline) in precedence order.
fn tier_walk<'l>(
    policies: impl Iterator<Item = &'l LayerPolicy>,
    egress: bool,
    applies: impl Fn(&LayerPolicy) -> Reach,
    matches: impl Fn(&LayerRule) -> Reach,
) -> Say {
    let mut maybe: Option<Maybe> = None;
    let mut priority = None;
    let mut decided: Vec<(Action, By)> = Vec::new();
    for policy in policies {
        if priority != Some(policy.priority) {
            if let Some(say) = settle(&decided, &maybe) {
                return say;
            }
            priority = Some(policy.priority);
        }
        let applies = applies(policy);
        if applies == Reach::No {
            continue;
        }
        for rule in policy.rules(egress) {
            match and(applies.clone(), || matches(rule)) {
                Reach::Yes => {
                    decided.push((rule.action, By::new(policy, rule)));
                    break;
                }
                Reach::Maybe(condition) if maybe.is_none() && rule.action != Action::Pass => {
                    maybe = Some(Maybe {
                        action: rule.action,
                        by: By::new(policy, rule),
                        condition,
                    });
                }
                _ => {}
            }
        }
    }
    settle(&decided, &maybe).unwrap_or(Say::Open(maybe))
}

/// The answer of the rules that matched at one priority, if any did.
fn settle(decided: &[(Action, By)], maybe: &Option<Maybe>) -> Option<Say> {
    let (action, by) = decided.first()?;
    if let Some((_, other)) = decided.iter().find(|(a, _)| a != action) {
        return Some(Say::Depends(format!(
            "which of {by} ({}) and {other} ({}) the implementation orders first: they share \
             priority and disagree (network-policy-api #222)",
            action.as_str(),
            decided
                .iter()
                .find(|(a, _)| a != action)
                .map_or("", |(a, _)| a.as_str()),
        )));
    }
    let final_say = match action {
        Action::Pass => return Some(Say::Open(maybe.clone())),
        Action::Allow => Say::Allowed(by.clone()),
        Action::Deny => Say::Denied(by.clone()),
    };
    Some(match maybe {
        Some(m) if m.action != *action => {
            Say::Depends(format!("whether {} applies first: {}", m.by, m.condition))
        }
        _ => final_say,
    })
}

/// Cilium: every policy's allows add up, any deny wins.
fn cilium_walk<'l>(
    policies: impl Iterator<Item = &'l LayerPolicy>,
    egress: bool,
    applies: impl Fn(&LayerPolicy) -> Reach,
    matches: impl Fn(&LayerRule) -> Reach,
) -> Say {
    let (mut allowed, mut denied) = (None, None);
    let (mut may_allow, mut may_deny) = (None, None);
    for policy in policies {
        let applies = applies(policy);
        if applies == Reach::No {
            continue;
        }
        for rule in policy.rules(egress) {
            let m = and(applies.clone(), || matches(rule));
            let (sure, maybe) = match rule.action {
                Action::Deny => (&mut denied, &mut may_deny),
                _ => (&mut allowed, &mut may_allow),
            };
            match m {
                Reach::Yes if sure.is_none() => *sure = Some(By::new(policy, rule)),
                Reach::Maybe(condition) if maybe.is_none() => {
                    *maybe = Some(Maybe {
                        action: rule.action,
                        by: By::new(policy, rule),
                        condition,
                    });
                }
                _ => {}
            }
        }
    }
    if let Some(by) = denied {
        return Say::Denied(by);
    }
    match (allowed, may_deny) {
        (Some(_), Some(m)) => Say::Depends(format!("whether {} applies: {}", m.by, m.condition)),
        (Some(by), None) => Say::Allowed(by),
        (None, m) => Say::Open(m.or(may_allow)),
    }
}

/// Whether a rule of `action` would give the same answer as `say`.
fn agrees(action: Action, say: &Say) -> bool {
    matches!(
        (action, say),
        (Action::Allow, Say::Allowed(_)) | (Action::Deny, Say::Denied(_))
    )
}

/// How the Admin (and, for pods no NetworkPolicy isolates, Baseline) tier and Cilium
/// answer a question in one direction.
fn tiers(
    candidates: &[Arc<LayerPolicy>],
    egress: bool,
    isolated: Isolated,
    applies: impl Fn(&LayerPolicy) -> Reach + Copy,
    matches: impl Fn(&LayerRule) -> Reach + Copy,
) -> Say {
    let tier = |t: Tier| {
        candidates
            .iter()
            .map(AsRef::as_ref)
            .filter(move |p| p.tier == t)
    };
    let admin = tier_walk(tier(Tier::Admin), egress, applies, matches);
    let Say::Open(admin_maybe) = admin else {
        return admin;
    };
    let cilium = cilium_walk(tier(Tier::Cilium), egress, applies, matches);
    let open = match cilium {
        Say::Open(m) => admin_maybe.or(m),
        decided => {
            return match admin_maybe {
                Some(m) if !agrees(m.action, &decided) => {
                    Say::Depends(format!("whether {} applies first: {}", m.by, m.condition))
                }
                _ => decided,
            };
        }
    };
    if isolated == Isolated::ByNetworkPolicy {
        return Say::Open(open);
    }
    match tier_walk(tier(Tier::Baseline), egress, applies, matches) {
        Say::Open(m) => Say::Open(open.or(m)),
        decided => match open {
            Some(m) if !agrees(m.action, &decided) => {
                Say::Depends(format!("whether {} applies first: {}", m.by, m.condition))
            }
            _ => decided,
        },
    }
}

/// Whether `pods` can reach the DNS pods on `protocol`, as far as the layers decide: their
/// egress (`isolated`: whether a NetworkPolicy isolates it), then the DNS pods' ingress from
/// them (`dns_isolated`: whether one isolates that; a deny there breaks DNS too).
pub fn dns(
    layers: &Layers,
    pods: &Pods<'_>,
    dns: &DnsTarget,
    protocol: Protocol,
    (isolated, dns_isolated): (Isolated, Isolated),
) -> Say {
    if layers.is_empty() {
        return Say::Open(None);
    }
    let from = |p: &LayerPolicy| p.subject.as_ref().map_or(Reach::No, |g| holds(g, pods));
    let near = match pods.namespaces {
        Namespaces::One { name, labels } => layers.near(name, labels),
        Namespaces::Selected(_) => layers.all(),
    };
    let egress = tiers(&near, true, isolated, from, |r| {
        egress_reaches_dns(r, dns, protocol)
    });
    let at_dns_namespace = match dns.namespace_with_labels() {
        Some((name, labels)) => layers.near(name, Some(labels)),
        None => layers.all(),
    };
    let at_dns = |p: &LayerPolicy| {
        let selected = p
            .subject
            .as_ref()
            .is_some_and(|g| dns.peer_selects_dns_pods(&as_peer(g), ""));
        if selected { Reach::Yes } else { Reach::No }
    };
    // only a deny of the DNS pods' ingress matters here: their allows were never in doubt
    let ingress = tiers(&at_dns_namespace, false, dns_isolated, at_dns, |r| {
        ingress_from(r, pods, dns, protocol)
    });
    let say = match (&ingress, egress) {
        (Say::Denied(by), _) => Say::Denied(by.clone()),
        (_, Say::Allowed(by)) => match ingress.maybe().filter(|m| m.action == Action::Deny) {
            Some(m) => Say::Depends(format!("whether {} applies: {}", m.by, m.condition)),
            None => Say::Allowed(by),
        },
        (_, Say::Open(m)) => Say::Open(m.or_else(|| {
            ingress
                .maybe()
                .filter(|m| m.action == Action::Deny)
                .cloned()
        })),
        (_, decided) => decided,
    };
    // a deny that a policy the guard does not read may come before
    match (say, unread(layers, pods, dns)) {
        (Say::Denied(by), Some(other)) => Say::Depends(format!(
            "{by} denies it, unless {other}, a policy of another CNI that the guard does not \
             read, decides first"
        )),
        (say, _) => say,
    }
}

/// The objects of kinds the guard does not read (Calico's, Antrea's) that may decide the
/// DNS traffic of `pods`: cluster-scoped ones, and those of the pods' and the DNS pods'
/// namespaces. Their presence makes a verdict they could change a condition.
pub fn unread(layers: &Layers, pods: &Pods<'_>, dns: &DnsTarget) -> Option<String> {
    if layers.unread_count() == 0 {
        return None;
    }
    match pods.namespaces {
        Namespaces::One { name, .. } => {
            let mut namespaces = vec![name];
            namespaces.extend(dns.namespace());
            layers.unread_for(Some(&namespaces))
        }
        Namespaces::Selected(_) => layers.unread_for(None),
    }
}

/// Whether a layer rule certainly matches every connection of its direction: every port,
/// and a peer that is everything (Cilium's `all`, a rule with ports only, or `networks`
/// holding every address of the cluster's families).
fn matches_every_connection(rule: &LayerRule, families: IpFamilies) -> bool {
    rule.ports.is_none()
        && rule.peers.iter().any(|p| match p {
            Peer::Anything => true,
            Peer::Networks(nets) => {
                let v4 = nets
                    .iter()
                    .any(|n| matches!(n, IpNet::V4(_)) && n.prefix_len() == 0);
                let v6 = nets
                    .iter()
                    .any(|n| matches!(n, IpNet::V6(_)) && n.prefix_len() == 0);
                families.everywhere(v4, v6) == Everywhere::Yes
            }
            _ => false,
        })
}

/// Whether NetworkPolicy certainly restricts nothing in a direction for `pods` because the
/// layers decide all of it: an Admin-tier allow of everything that applies to all of them
/// with no rule before it that may pass traffic on to NetworkPolicy (what earlier denies
/// take is lost with or without NetworkPolicy), or a Cilium allow of everything (allows add
/// up; Cilium's denies apply either way). The Admin tier's peers cannot name the nodes or the world on
/// ingress (kubelet probes, the API server's webhooks), so only egress is ever opened by
/// it; Cilium's `all` entity covers both directions.
pub fn opens_everything(
    layers: &Layers,
    pods: &Pods<'_>,
    egress: bool,
    families: IpFamilies,
) -> bool {
    let applies = |p: &LayerPolicy| p.subject.as_ref().map_or(Reach::No, |g| holds(g, pods));
    let admin_opens = egress && {
        let mut open = false;
        'walk: for policy in layers.tier(Tier::Admin) {
            let holds = applies(policy);
            if holds == Reach::No {
                continue;
            }
            for rule in policy.rules(egress) {
                let everything = matches_every_connection(rule, families);
                match rule.action {
                    Action::Allow if everything && holds == Reach::Yes => {
                        open = true;
                        break 'walk;
                    }
                    // what may pass first goes to NetworkPolicy, which then restricts it;
                    // what a deny takes is lost with or without NetworkPolicy
                    Action::Pass => break 'walk,
                    Action::Deny | Action::Allow => {}
                }
            }
        }
        open
    };
    if admin_opens {
        return true;
    }
    // Cilium's allows add up with NetworkPolicy's, and its denies apply with or without it
    layers.tier(Tier::Cilium).any(|p| {
        applies(p) == Reach::Yes
            && p.rules(egress)
                .iter()
                .any(|r| r.action == Action::Allow && matches_every_connection(r, families))
    })
}

/// One concrete pod, as a connection's end.
#[derive(Debug, Clone, Copy)]
pub struct Pod<'a> {
    pub namespace: &'a str,
    /// All the labels of its namespace (its name label among them).
    pub namespace_labels: &'a Labels,
    pub labels: &'a Labels,
    /// Its named container ports.
    pub ports: &'a [crate::netpol::ports::NamedPort],
    /// Its IPs, when known.
    pub ips: &'a [std::net::IpAddr],
}

impl Pod<'_> {
    /// Whether `group` holds this pod.
    fn in_group(&self, group: &Group) -> bool {
        selector::matches(&group.namespaces, self.namespace_labels)
            && selector::matches(&group.pods, self.labels)
    }

    /// Whether a peer of a rule holds this pod.
    fn in_peer(&self, peer: &Peer) -> Reach {
        match peer {
            Peer::Anything => Reach::Yes,
            Peer::Pods(g) if self.in_group(g) => Reach::Yes,
            Peer::Pods(_) => Reach::No,
            // `networks` match pod traffic too, by the pod's IPs
            Peer::Networks(nets) if self.ips.is_empty() => Reach::Maybe(format!(
                "the pod's IPs are inside {}",
                nets.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Peer::Networks(nets) => {
                if self
                    .ips
                    .iter()
                    .all(|ip| nets.iter().any(|n| n.contains(ip)))
                {
                    Reach::Yes
                } else {
                    Reach::No
                }
            }
            Peer::CiliumCidrs(_) | Peer::Nodes | Peer::Entity(_) | Peer::Fqdns(_) => Reach::No,
            Peer::Unread(what) => Reach::Maybe(format!("{what} holds the pod")),
        }
    }

    /// Whether a rule's ports admit `port`/`protocol` on this pod (the destination): as a
    /// NetworkPolicy port list would, a named port by this pod's container port of that number.
    fn admits(&self, ports: Option<&[PortMatch]>, port: i32, protocol: Protocol) -> bool {
        let list = match ports {
            None => return true,
            // ports listed but none of them read: nothing is matched
            Some([]) => return false,
            Some(list) => as_ports(list, protocol),
        };
        let name = (self.ports.iter())
            .find(|c| c.port == port && c.protocol == protocol)
            .map(|c| c.name.as_str());
        let target = ports::PortTarget {
            protocol,
            number: port,
            name,
        };
        ports::ports_allow(&list, &target)
    }
}

/// What the layers say of a connection from `src` to port `port`/`protocol` of `dst`, on
/// each side: its egress at `src` and its ingress at `dst` (`isolated`: whether a
/// NetworkPolicy isolates each side, so that Baseline has no say there). The connection
/// is denied if either side is; allowed by the layers only if both sides are, or one is
/// and the other is open.
pub fn between(
    layers: &Layers,
    (src, dst): (&Pod<'_>, &Pod<'_>),
    (port, protocol): (i32, Protocol),
    (src_isolated, dst_isolated): (Isolated, Isolated),
) -> (Say, Say) {
    if layers.is_empty() {
        return (Say::Open(None), Say::Open(None));
    }
    let holds = |pod: &Pod<'_>, p: &LayerPolicy| {
        if p.subject.as_ref().is_some_and(|g| pod.in_group(g)) {
            Reach::Yes
        } else {
            Reach::No
        }
    };
    let rule_to = |other: &Pod<'_>, r: &LayerRule| {
        if !dst.admits(r.ports.as_deref(), port, protocol) {
            return Reach::No;
        }
        r.peers
            .iter()
            .fold(Reach::No, |best, peer| best.or(|| other.in_peer(peer)))
    };
    let egress = tiers(
        &layers.near(src.namespace, Some(src.namespace_labels)),
        true,
        src_isolated,
        |p| holds(src, p),
        |r| rule_to(dst, r),
    );
    let ingress = tiers(
        &layers.near(dst.namespace, Some(dst.namespace_labels)),
        false,
        dst_isolated,
        |p| holds(dst, p),
        |r| rule_to(src, r),
    );
    (egress, ingress)
}

#[cfg(test)]
mod tests;
