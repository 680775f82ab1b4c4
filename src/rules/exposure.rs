//! Rules that open more than their authors likely meant.

use std::net::IpAddr;

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::ipblock::Block;
use crate::netpol::policy::{Direction, Subject};
use crate::netpol::ports::{PortTarget, Protocol, ports_allow};

pub const EGRESS_TO_METADATA_ENDPOINT: Rule = Rule {
    id: "egress-to-metadata-endpoint",
    default_severity: Severity::Warn,
    summary: "Egress to an `ipBlock` that holds the cloud metadata endpoint (169.254.169.254, fd00:ec2::254).",
    check: Check::Policy(metadata),
};

pub const INGRESS_FROM_ANYWHERE: Rule = Rule {
    id: "ingress-from-anywhere",
    default_severity: Severity::Warn,
    summary: "Ingress from 0.0.0.0/0 or ::/0 on all ports.",
    check: Check::Policy(anywhere),
};

pub const ALLOW_ALL_RULE: Rule = Rule {
    id: "allow-all-rule",
    default_severity: Severity::Warn,
    summary: "An empty rule `{}` that opens its direction completely.",
    check: Check::Policy(allow_all),
};

/// The instance metadata service of the large clouds (IPv4, and AWS's IPv6 address).
const METADATA_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

fn metadata(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    // the metadata service listens on HTTP
    let http = PortTarget {
        protocol: Protocol::Tcp,
        number: 80,
        name: None,
    };
    let mut hits = Vec::new();
    for rule in subject.rules(Direction::Egress) {
        if !ports_allow(rule.ports, &http) {
            continue;
        }
        for (i, peer) in rule.peers.iter().enumerate() {
            let Some(Ok(block)) = peer.ip_block.as_ref().map(Block::parse) else {
                continue;
            };
            if let Some(ip) = METADATA_ADDRESSES.iter().find(|ip| block.contains(**ip)) {
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                hits.push(Hit::new(
                    format!("{}.ipBlock", rule.peer_path(i)),
                    format!(
                        "cidr {} includes the cloud metadata endpoint {ip}, which hands out node \
                         credentials to any pod that can reach it",
                        block.cidr
                    ),
                    format!("add `except: [{ip}/{prefix}]` to this ipBlock"),
                ));
            }
        }
    }
    hits
}

fn anywhere(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for rule in subject.rules(Direction::Ingress) {
        if !rule.ports.is_empty() {
            continue;
        }
        for (i, peer) in rule.peers.iter().enumerate() {
            let Some(Ok(block)) = peer.ip_block.as_ref().map(Block::parse) else {
                continue;
            };
            if block.is_everything() {
                hits.push(Hit::new(
                    format!("{}.ipBlock", rule.peer_path(i)),
                    format!(
                        "admits ingress from every address ({}) on every port and protocol",
                        block.cidr
                    ),
                    format!(
                        "list the ports the pods serve in {}.ports, and narrow cidr to the \
                         clients that need them",
                        rule.path()
                    ),
                ));
            }
        }
    }
    hits
}

fn allow_all(_: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    Direction::BOTH
        .into_iter()
        .flat_map(|d| subject.rules(d))
        .filter(|r| r.allows_all())
        .map(|r| {
            Hit::new(
                r.path(),
                format!(
                    "an empty {} rule admits all {} traffic from everywhere on every port, so this \
                     policy does not restrict {} at all",
                    r.direction.field(),
                    r.direction.field(),
                    r.direction.field()
                ),
                format!(
                    "list the peers in {path}.{} and the ports in {path}.ports that are really needed",
                    r.direction.peers_field(),
                    path = r.path()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::table;

    #[test]
    fn metadata_table() {
        table(
            &EGRESS_TO_METADATA_ENDPOINT,
            &[
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 169.254.0.0/16}}], ports: [{port: 80}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 'fd00::/8'}}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 1, endPort: 1024}]}]}",
                    &["spec.egress[0].to[0].ipBlock"],
                ),
                // excepted, other ports, other ranges, ignored direction
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 80, protocol: UDP}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Ingress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn anywhere_table() {
        table(
            &INGRESS_FROM_ANYWHERE,
            &[
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
                    &["spec.ingress[0].from[0].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: '::/0'}}]}]}",
                    &["spec.ingress[0].from[1].ipBlock"],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {ingress: [{from: [{ipBlock: {cidr: 203.0.113.0/24}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Egress], ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn allow_all_table() {
        table(
            &ALLOW_ALL_RULE,
            &[
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{}]}",
                    &["spec.ingress[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, egress: [{to: [{podSelector: {}}]}, {to: [], ports: []}]}",
                    &["spec.egress[1]"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{from: []}], egress: [{}]}",
                    &["spec.ingress[0]", "spec.egress[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: [{}]}",
                    &[],
                ),
            ],
        );
    }
}
