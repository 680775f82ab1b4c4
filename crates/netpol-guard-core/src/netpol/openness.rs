//! Whether rules leave a direction wide open: every peer, on every port of every protocol.
//!
//! Computed semantically, not by the shape `{}`: `from` missing and `ports` listing TCP,
//! UDP and SCTP 1-65535 opens everything too, and so do rules that split the ports between
//! them. Rules are additive, so the question is asked of a set of rules, which may come
//! from several policies selecting the same pods.

use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ipblock::{Block, Everywhere, IpFamilies};
use super::peer::PeerKind;
use super::policy::RuleView;
use super::ports::Protocol;
use super::selector;

const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
const MAX_PORT: i32 = 65535;

/// Whether a rule's peers stand for every source or destination. `ip_block_matches_pods`:
/// an `ipBlock` of every address then also holds every pod. Every address takes both
/// families (`0.0.0.0/0` and `::/0`) unless the cluster has one family only.
pub(crate) fn peers_everything(
    peers: &[NetworkPolicyPeer],
    ip_block_matches_pods: bool,
    families: IpFamilies,
) -> Everywhere {
    if peers.is_empty() {
        return Everywhere::Yes;
    }
    let all_pods = peers.iter().any(|p| match PeerKind::of(p) {
        PeerKind::Namespaces { namespaces, pods } => {
            selector::is_empty(namespaces) && pods.is_none_or(selector::is_empty)
        }
        _ => false,
    });
    if !(all_pods || ip_block_matches_pods) {
        return Everywhere::No;
    }
    let (v4, v6) = whole_families(peers);
    families.everywhere(v4, v6)
}

/// Whether the peers hold an `ipBlock` of all of IPv4, and one of all of IPv6.
pub(crate) fn whole_families(peers: &[NetworkPolicyPeer]) -> (bool, bool) {
    peers
        .iter()
        .filter_map(|p| match PeerKind::of(p) {
            PeerKind::IpBlock(block) => Block::parse(block).ok(),
            _ => None,
        })
        .fold((false, false), |(v4, v6), b| {
            (v4 || b.is_all_v4(), v6 || b.is_all_v6())
        })
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

/// Whether these rules together admit every peer on every port of every protocol, in a
/// cluster of these IP families; where the families are unknown and decide, the condition.
pub(crate) fn rules_open_everything<'a>(
    rules: impl IntoIterator<Item = &'a RuleView<'a>>,
    ip_block_matches_pods: bool,
    families: IpFamilies,
) -> Everywhere {
    let rules: Vec<&RuleView<'_>> = rules.into_iter().collect();
    let open = |families| open_in(&rules, ip_block_matches_pods, families);
    // each family's traffic must be admitted whole, by any of the rules; which families
    // there are decides (see IpFamilies::everywhere)
    families.everywhere(open(IpFamilies::V4), open(IpFamilies::V6))
}

/// [`rules_open_everything`] for the traffic of one family (`V4` or `V6`).
fn open_in(rules: &[&RuleView<'_>], ip_block_matches_pods: bool, family: IpFamilies) -> bool {
    let wide: Vec<&RuleView<'_>> = rules
        .iter()
        .copied()
        .filter(|r| peers_everything(r.peers, ip_block_matches_pods, family) == Everywhere::Yes)
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

/// Whether one rule by itself admits everything, certainly.
pub(crate) fn rule_opens_everything(
    rule: &RuleView<'_>,
    ip_block_matches_pods: bool,
    families: IpFamilies,
) -> bool {
    rules_open_everything([rule], ip_block_matches_pods, families) == Everywhere::Yes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::policy::tests::policy;
    use crate::netpol::policy::{Direction, Subject};

    fn open_in(spec: &str, families: IpFamilies) -> Everywhere {
        let p = policy(&format!("metadata: {{name: a}}\nspec: {spec}"));
        let s = Subject::new(&p, "default");
        rules_open_everything(&s.rules(Direction::Ingress), true, families)
    }

    fn open(spec: &str) -> bool {
        open_in(spec, IpFamilies::V4) == Everywhere::Yes
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
            // from everywhere (in an IPv4 cluster): its family, with ipBlock matching pods
            (
                "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}]}]}",
                true,
            ),
            ("{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}", true),
            // ::/0 admits no IPv4 peer
            ("{ingress: [{from: [{ipBlock: {cidr: '::/0'}}]}]}", false),
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
        assert_eq!(
            rules_open_everything(&s.rules(Direction::Ingress), false, IpFamilies::V4),
            Everywhere::No
        );
    }

    #[test]
    fn one_family_is_everything_only_in_a_cluster_of_that_family() {
        use IpFamilies::*;
        let v6 = "{ingress: [{from: [{ipBlock: {cidr: '::/0'}}]}]}";
        let v4 = "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}";
        let both = "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}]}]}";
        // both families split over two rules still add up
        let split = "{ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}, {from: [{ipBlock: {cidr: '::/0'}}]}]}";
        let table = [
            (v6, V4, Some(false)),
            // dual-stack: half of the traffic, and which half matters is not known
            (v6, Dual, None),
            (v6, V6, Some(true)),
            (v6, Unknown, None),
            (v4, V4, Some(true)),
            (v4, Dual, None),
            (v4, V6, Some(false)),
            (v4, Unknown, None),
            (both, Dual, Some(true)),
            (both, Unknown, Some(true)),
            (split, Unknown, Some(true)),
            (split, Dual, Some(true)),
            ("{ingress: [{}]}", Unknown, Some(true)),
            (
                "{ingress: [{from: [{podSelector: {}}]}]}",
                Dual,
                Some(false),
            ),
        ];
        for (spec, families, want) in table {
            let got = open_in(spec, families);
            match want {
                Some(true) => assert_eq!(got, Everywhere::Yes, "{spec} {families:?}"),
                Some(false) => assert_eq!(got, Everywhere::No, "{spec} {families:?}"),
                None => {
                    let named = if families == Dual {
                        "dual-stack"
                    } else {
                        "--ip-families"
                    };
                    assert!(
                        matches!(&got, Everywhere::Depends(why) if why.contains(named)),
                        "{spec} {families:?}: {got:?}"
                    );
                }
            }
        }
    }
}
