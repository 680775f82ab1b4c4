//! Rules that open more than their authors likely meant.

use std::net::IpAddr;

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::ipblock::Block;
use crate::netpol::ipblock::Everywhere;
use crate::netpol::openness::{rule_opens_everything, rules_open_everything};
use crate::netpol::policy::{Direction, RuleView, Subject};
use crate::netpol::ports::{PortTarget, Protocol, ports_allow};
use crate::netpol::selector::{self, Selector};

pub(super) const EGRESS_TO_METADATA_ENDPOINT: Rule = Rule {
    id: "egress-to-metadata-endpoint",
    default_severity: Severity::Warn,
    summary: "Egress on HTTP to the cloud metadata endpoint (169.254.169.254, fd00:ec2::254): an `ipBlock` that holds it, or a rule with no `to`.",
    check: Check::Policy(metadata),
};

pub(super) const INGRESS_FROM_ANYWHERE: Rule = Rule {
    id: "ingress-from-anywhere",
    default_severity: Severity::Warn,
    summary: "Ingress from 0.0.0.0/0 or ::/0 on all ports.",
    check: Check::Policy(anywhere),
};

pub(super) const ALLOW_ALL_RULE: Rule = Rule {
    id: "allow-all-rule",
    default_severity: Severity::Warn,
    summary: "A rule that admits everything hides a mistake: it voids the other rules of its policy, or cancels another policy's isolation of the same pods.",
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
        // no `to`: every destination, the metadata endpoint among them
        if rule.peers.is_empty() {
            hits.push(Hit::new(
                rule.path(),
                "has no `to`, so it allows HTTP to every destination, the cloud metadata \
                 endpoint 169.254.169.254 among them, which hands out node credentials to any \
                 pod that can reach it",
                format!(
                    "list the destinations in {}.to, e.g. `ipBlock: {{cidr: 0.0.0.0/0, except: \
                     [169.254.169.254/32]}}`",
                    rule.path()
                ),
            ));
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
        // one finding per rule: 0.0.0.0/0 beside ::/0 is one cause
        let wide: Vec<(usize, String)> = rule
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, peer)| {
                let block = Block::parse(peer.ip_block.as_ref()?).ok()?;
                block.is_everything().then(|| (i, block.cidr.to_string()))
            })
            .collect();
        let Some((first, _)) = wide.first() else {
            continue;
        };
        let cidrs: Vec<&str> = wide.iter().map(|(_, c)| c.as_str()).collect();
        hits.push(Hit::new(
            format!("{}.ipBlock", rule.peer_path(*first)),
            format!(
                "admits ingress from every address ({}) on every port and protocol",
                cidrs.join(", ")
            ),
            format!(
                "list the ports the pods serve in {}.ports, and narrow cidr to the clients that \
                 need them",
                rule.path()
            ),
        ));
    }
    hits
}

/// `from everywhere` or `to everywhere`.
fn everywhere(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "from everywhere",
        Direction::Egress => "to everywhere",
    }
}

/// An allow-everything rule is deliberate in an allow-all policy; it hides a mistake only
/// when it voids the other rules of its own policy and direction, or when it cancels the
/// isolation another policy of the namespace sets for the same pods.
fn allow_all(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let ipm = ctx.dns.ip_block_matches_pods();
    let families = ctx.inventory.ip_families();
    let mut hits = Vec::new();
    for direction in Direction::BOTH {
        let rules = subject.rules(direction);
        let Some(wide) = rules
            .iter()
            .find(|r| rule_opens_everything(r, ipm, families))
        else {
            continue;
        };
        let others: Vec<String> = rules
            .iter()
            .filter(|r| r.index != wide.index)
            .map(RuleView::path)
            .collect();
        if !others.is_empty() {
            hits.push(voided_rules(wide, &others));
        } else if let Some(isolating) = cancelled_isolation(ctx, subject, direction) {
            hits.push(cancelled_hit(subject, wide, &isolating));
        }
    }
    hits
}

fn voided_rules(wide: &RuleView<'_>, others: &[String]) -> Hit {
    let dir = wide.direction.field();
    Hit::new(
        wide.path(),
        format!(
            "admits all {dir} traffic {} on every port, so {} of this policy have no effect",
            everywhere(wide.direction),
            others.join(", ")
        ),
        format!(
            "if all {dir} is intended, delete the other {dir} rules; otherwise narrow {} to \
             the peers and ports really needed",
            wide.path()
        ),
    )
}

/// Another policy of the namespace that isolates this direction for pods this policy
/// also selects (it selects all of them) and does not itself open everything.
fn cancelled_isolation(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
    direction: Direction,
) -> Option<String> {
    let selector = subject.pod_selector();
    let mine = Selector::parse(&selector).ok()?;
    let ipm = ctx.dns.ip_block_matches_pods();
    let families = ctx.inventory.ip_families();
    ctx.inventory
        .policies_in(subject.namespace)
        .iter()
        .map(|p| Subject::new(p, subject.namespace))
        .filter(|o| subject.name.is_empty() || o.name != subject.name)
        .find(|o| {
            o.isolates(direction)
                && rules_open_everything(&o.rules(direction), ipm, families) != Everywhere::Yes
                && Selector::parse(&o.pod_selector()).is_ok_and(|theirs| theirs.implies(&mine))
        })
        .map(|o| o.name.to_string())
}

fn cancelled_hit(subject: &Subject<'_>, wide: &RuleView<'_>, isolating: &str) -> Hit {
    let dir = wide.direction.field();
    Hit::new(
        wide.path(),
        format!(
            "admits all {dir} traffic {} on every port for {}, which cancels the {dir} \
             isolation that policy {isolating} sets for them (policies add up)",
            everywhere(wide.direction),
            selector::describe_pods(&subject.pod_selector()),
        ),
        format!(
            "if these pods need no {dir} isolation, say so in {isolating}'s podSelector; \
             otherwise list the peers and ports really needed in {}",
            wide.path()
        ),
    )
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
                // no `to`: every destination
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Egress], egress: [{}]}",
                    &["spec.egress[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Egress], egress: [{ports: [{port: 80}, {port: 443}]}]}",
                    &["spec.egress[0]"],
                ),
                (
                    "metadata: {name: a}\nspec: {policyTypes: [Egress], egress: [{ports: [{port: 443}]}]}",
                    &[],
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
                // deliberate allow-all policies are not findings on their own
                (
                    "metadata: {name: allow-all-egress}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{from: []}], egress: [{}]}",
                    &[],
                ),
                // an allow-everything rule voids the other rules of its direction
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, egress: [{to: [{podSelector: {}}]}, {to: [], ports: []}]}",
                    &["spec.egress[1]"],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}], ports: [{port: 80}]}, {ports: [{port: 1, endPort: 65535}, {protocol: UDP}, {protocol: SCTP}]}]}",
                    &["spec.ingress[1]"],
                ),
                // not everything: ports, peers, an ignored direction
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}, {from: [{podSelector: {}}]}]}",
                    &[],
                ),
                (
                    "metadata: {name: a}\nspec: {podSelector: {}, policyTypes: [Ingress], egress: [{}, {to: [{podSelector: {}}]}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn allow_all_that_cancels_another_policys_isolation() {
        let deny = "kind: NetworkPolicy\nmetadata: {name: default-deny, namespace: default}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}";
        let web_deny = "kind: NetworkPolicy\nmetadata: {name: web-deny, namespace: default}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress]}";
        let all_egress = "metadata: {name: allow-all-egress}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}";
        let hits = crate::rules::testing::run(&ALLOW_ALL_RULE, all_egress, &[deny]);
        assert_eq!(hits.len(), 1, "{hits:#?}");
        assert_eq!(hits[0].path, "spec.egress[0]");
        assert!(
            hits[0].message.contains("to everywhere"),
            "{}",
            hits[0].message
        );
        assert!(
            hits[0].message.contains("default-deny"),
            "{}",
            hits[0].message
        );
        assert!(!hits[0].fix.contains("policyTypes"), "{}", hits[0].fix);
        // it selects all of web-deny's pods too
        assert_eq!(
            crate::rules::testing::run(&ALLOW_ALL_RULE, all_egress, &[web_deny]).len(),
            1
        );
        // opening some pods (an egress gateway) inside a namespace-wide default-deny is
        // deliberate: the default-deny still isolates every other pod
        let web_all = "metadata: {name: web-all}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{}]}";
        assert!(crate::rules::testing::run(&ALLOW_ALL_RULE, web_all, &[deny]).is_empty());
        assert_eq!(
            crate::rules::testing::run(&ALLOW_ALL_RULE, web_all, &[web_deny]).len(),
            1
        );
        let other = "kind: NetworkPolicy\nmetadata: {name: db-deny, namespace: default}\nspec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Egress]}";
        assert!(crate::rules::testing::run(&ALLOW_ALL_RULE, web_all, &[other]).is_empty());
        // ingress isolation is not cancelled by an egress allow-all
        let ingress_deny = "kind: NetworkPolicy\nmetadata: {name: deny-in, namespace: default}\nspec: {podSelector: {}}";
        assert!(
            crate::rules::testing::run(&ALLOW_ALL_RULE, all_egress, &[ingress_deny]).is_empty()
        );
    }
}
