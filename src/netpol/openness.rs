//! Whether rules leave a direction wide open: every peer, on every port of every protocol.
//!
//! Computed semantically, not by the shape `{}`: `from` missing and `ports` listing TCP,
//! UDP and SCTP 1-65535 opens everything too, and so do rules that split the ports between
//! them. Rules are additive, so the question is asked of a set of rules, which may come
//! from several policies selecting the same pods.

use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ipblock::Block;
use super::peer::PeerKind;
use super::policy::RuleView;
use super::ports::Protocol;
use super::selector;

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
const MAX_PORT: i32 = 65535;

/// Whether a rule's peers stand for every source or destination. `ip_block_matches_pods`:
/// an `ipBlock` of a whole address family then also holds every pod.
pub fn peers_everything(peers: &[NetworkPolicyPeer], ip_block_matches_pods: bool) -> bool {
    if peers.is_empty() {
        return true;
    }
    let all_addresses = peers.iter().any(|p| match PeerKind::of(p) {
        PeerKind::IpBlock(block) => {
            Block::parse(block).is_ok_and(|b| b.is_everything() && b.except.is_empty())
        }
        _ => false,
    });
    let all_pods = peers.iter().any(|p| match PeerKind::of(p) {
        PeerKind::Namespaces { namespaces, pods } => {
            selector::is_empty(namespaces) && pods.is_none_or(selector::is_empty)
        }
        _ => false,
    });
    all_addresses && (all_pods || ip_block_matches_pods)
}

/// The port ranges of one protocol a port list admits (`None`: every port).
fn ranges(ports: &[NetworkPolicyPort], protocol: Protocol) -> Option<Vec<(i32, i32)>> {
    if ports.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for port in ports.iter().filter(|p| Protocol::of(p) == Some(protocol)) {
        match &port.port {
            None => return None,
            Some(IntOrString::Int(start)) => out.push((*start, port.end_port.unwrap_or(*start))),
            // a name opens only the ports that carry it: never a whole range
            Some(IntOrString::String(_)) => {}
        }
    }
    Some(out)
}

/// Whether the ranges cover 1-65535.
fn covers_all_ports(mut ranges: Vec<(i32, i32)>) -> bool {
    ranges.sort_unstable();
    let mut next = 1;
    for (start, end) in ranges {
        if start > next {
            return false;
        }
        next = next.max(end.saturating_add(1));
    }
    next > MAX_PORT
}

/// Whether these rules together admit every peer on every port of every protocol.
pub fn rules_open_everything<'a>(
    rules: impl IntoIterator<Item = &'a RuleView<'a>>,
    ip_block_matches_pods: bool,
) -> bool {
    let wide: Vec<&RuleView<'_>> = rules
        .into_iter()
        .filter(|r| peers_everything(r.peers, ip_block_matches_pods))
        .collect();
    PROTOCOLS.iter().all(|protocol| {
        let mut all = Vec::new();
        for rule in &wide {
            match ranges(rule.ports, *protocol) {
                None => return true,
                Some(r) => all.extend(r),
            }
        }
        covers_all_ports(all)
    })
}

/// Whether one rule by itself admits everything.
pub fn rule_opens_everything(rule: &RuleView<'_>, ip_block_matches_pods: bool) -> bool {
    rules_open_everything([rule], ip_block_matches_pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::policy::tests::policy;
    use crate::netpol::policy::{Direction, Subject};

    fn open(spec: &str) -> bool {
        let p = policy(&format!("metadata: {{name: a}}\nspec: {spec}"));
        let s = Subject::new(&p, "default");
        rules_open_everything(&s.rules(Direction::Ingress), true)
    }

    #[test]
    fn openness_table() {
        let cases = [
            ("{ingress: [{}]}", true),
            ("{ingress: [{from: [], ports: []}]}", true),
            // every port of every protocol, written out
            (
                "{ingress: [{ports: [{protocol: TCP, port: 1, endPort: 65535}, {protocol: UDP, port: 1, endPort: 65535}, {protocol: SCTP, port: 1, endPort: 65535}]}]}",
                true,
            ),
            // split over rules and ranges, protocol default TCP, port missing = all ports
            (
                "{ingress: [{ports: [{port: 1, endPort: 1000}]}, {ports: [{port: 1001, endPort: 65535}, {protocol: UDP}]}, {ports: [{protocol: SCTP}]}]}",
                true,
            ),
            // from everywhere: both address families, or one with ipBlock matching pods
            (
                "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}]}]}",
                true,
            ),
            ("{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}", true),
            // not everything
            ("{ingress: [{ports: [{port: 1, endPort: 65535}]}]}", false),
            (
                "{ingress: [{ports: [{port: 1, endPort: 65534}, {protocol: UDP}, {protocol: SCTP}]}]}",
                false,
            ),
            (
                "{ingress: [{ports: [{port: http}, {protocol: UDP}, {protocol: SCTP}]}]}",
                false,
            ),
            ("{ingress: [{from: [{namespaceSelector: {}}]}]}", false),
            (
                "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]}",
                false,
            ),
            ("{ingress: [{from: [{podSelector: {}}]}]}", false),
            ("{policyTypes: [Egress], ingress: [{}]}", false),
            ("{}", false),
        ];
        for (spec, want) in cases {
            assert_eq!(open(spec), want, "{spec}");
        }
        // a CNI that keeps CIDR rules off pods needs the pods too
        let p = policy(
            "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
        );
        let s = Subject::new(&p, "default");
        assert!(!rules_open_everything(&s.rules(Direction::Ingress), false));
    }
}
