//! Cluster DNS: every pod whose egress is restricted must still reach the DNS pods, on UDP
//! and on TCP 53, through a peer that really selects them.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::coverage::describe_examples;
use crate::netpol::dns::Coverage;
use crate::netpol::ipblock::Block;
use crate::netpol::peer::PeerKind;
use crate::netpol::policy::{Direction, RuleView, Subject};
use crate::netpol::ports::{Protocol, port_problems};
use crate::netpol::selector;

/// Annotation that exempts a policy from the DNS rules and the DNS injection.
pub const DNS_ANNOTATION: &str = "netpol-guard.io/dns";

pub const EGRESS_MISSING_DNS: Rule = Rule {
    id: "egress-missing-dns",
    default_severity: Severity::Deny,
    summary: "Egress is restricted and no rule (of this or a covering policy) allows DNS on UDP 53 to the DNS pods.",
    check: Check::Policy(missing_dns),
};

pub const DNS_TCP_MISSING: Rule = Rule {
    id: "dns-tcp-missing",
    default_severity: Severity::Warn,
    summary: "DNS is allowed on UDP 53 but not on TCP 53 (large answers and some resolvers use TCP).",
    check: Check::Policy(tcp_missing),
};

pub const DNS_PEER_OR_SPLIT: Rule = Rule {
    id: "dns-peer-or-split",
    default_severity: Severity::Warn,
    summary: "A DNS rule lists `namespaceSelector` and `podSelector` as separate peers (OR) where one peer (AND) was meant.",
    check: Check::Policy(or_split),
};

pub const DNS_PEER_TOO_BROAD: Rule = Rule {
    id: "dns-peer-too-broad",
    default_severity: Severity::Warn,
    summary: "Port 53 is allowed to whole namespaces or to every destination instead of the DNS pods.",
    check: Check::Policy(too_broad),
};

/// Whether the policy opted out of DNS handling with `netpol-guard.io/dns: skip`.
pub fn dns_skipped(subject: &Subject<'_>) -> bool {
    subject
        .policy
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DNS_ANNOTATION))
        .is_some_and(|v| v == "skip")
}

/// Whether the DNS rules judge this policy: egress isolated, not opted out, and its egress
/// ports valid (the API server rejects a policy with an invalid port: `port-invalid` says
/// so, and a DNS rule written with `port: "53"` is not "missing").
fn dns_judged(subject: &Subject<'_>) -> bool {
    subject.isolates(Direction::Egress)
        && !dns_skipped(subject)
        && subject
            .written_rules(Direction::Egress)
            .iter()
            .all(|r| r.ports.iter().all(|p| port_problems(p).is_empty()))
}

/// Whether `egress-missing-dns` applies with certainty: judged, and no UDP DNS from the
/// policy itself or a covering policy (nothing that may reach it either).
pub fn needs_dns_allowance(ctx: &Context<'_>, subject: &Subject<'_>) -> bool {
    dns_judged(subject) && ctx.dns_reach(subject, Protocol::Udp).is_missing()
}

fn egress_path(subject: &Subject<'_>) -> &'static str {
    if subject.spec.egress.is_some() {
        "spec.egress"
    } else {
        "spec.policyTypes"
    }
}

fn missing_dns(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    if !dns_judged(subject) {
        return Vec::new();
    }
    match ctx.dns_reach(subject, Protocol::Udp) {
        Coverage::Missing { examples, pods } => {
            vec![missing_dns_hit(ctx, subject, &examples, pods)]
        }
        Coverage::Depends { condition, policy } => {
            vec![depends_dns_hit(ctx, subject, condition, policy)]
        }
        Coverage::Composed { condition, policy } => {
            vec![composed_dns_hit(ctx, subject, condition, &policy)]
        }
        Coverage::LayerDenied(by) => vec![layer_denied_hit(subject, &by)],
        Coverage::LayerDepends(condition) => vec![layer_depends_hit(ctx, subject, condition)],
        Coverage::Itself | Coverage::Policy(_) | Coverage::Pods(_) | Coverage::Layer(_) => {
            Vec::new()
        }
    }
}

/// A layer above NetworkPolicy denies DNS to these pods: whatever this policy allows, its
/// pods' lookups fail, so it is refused with the object that decides.
fn layer_denied_hit(subject: &Subject<'_>, by: &str) -> Hit {
    Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {}, and DNS on UDP 53 to the DNS pods is denied for these pods \
             by {by}, which no NetworkPolicy can override: every name lookup of these pods will \
             time out",
            selector::describe_pods(&subject.pod_selector()),
        ),
        format!(
            "ask the cluster administrators to allow DNS for these pods in {by} (an Allow or \
             Pass rule for the DNS pods on port 53, before the deny), or annotate the policy \
             with `{DNS_ANNOTATION}: skip` if these pods must have no DNS"
        ),
    )
}

/// Whether DNS works depends on a layer rule the guard cannot judge for certain.
fn layer_depends_hit(ctx: &Context<'_>, subject: &Subject<'_>, condition: String) -> Hit {
    Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {}; whether these pods reach DNS on UDP 53 depends on the \
             policy layers: {condition}",
            selector::describe_pods(&subject.pod_selector()),
        ),
        format!(
            "to be independent of the layers, add this rule to spec.egress:\n{}",
            ctx.dns.allowance_yaml()
        ),
    )
    .depends(condition)
}

/// DNS reachable only through a rule whose reach the guard cannot see (an ipBlock that may
/// hold the DNS pods' IPs): admitted, with the condition named.
fn depends_dns_hit(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
    condition: String,
    policy: Option<String>,
) -> Hit {
    let by = policy.map_or_else(String::new, |p| format!(" (by policy {p})"));
    Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {}; DNS on UDP 53 is allowed only through an ipBlock{by}, so \
             name lookups work only if {condition}",
            selector::describe_pods(&subject.pod_selector()),
        ),
        format!(
            "to be independent of pod IPs and the CNI, add this rule to spec.egress:\n{}",
            ctx.dns.allowance_yaml()
        ),
    )
    .depends(condition)
}

/// A policy set composed by pod labels: DNS comes from another policy keyed on its own
/// label, and no existing pod shows whether this policy's pods carry it.
fn composed_dns_hit(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
    condition: String,
    policy: &str,
) -> Hit {
    Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {} without a DNS rule of its own: {condition}",
            selector::describe_pods(&subject.pod_selector()),
        ),
        format!(
            "label these pods so that policy {policy} selects them too, or add this rule to \
             spec.egress:\n{}",
            ctx.dns.allowance_yaml()
        ),
    )
    .depends(condition)
}

fn missing_dns_hit(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
    examples: &[String],
    pods: usize,
) -> Hit {
    let who = if pods == 0 {
        selector::describe_pods(&subject.pod_selector())
    } else {
        format!(
            "{} ({})",
            selector::describe_pods(&subject.pod_selector()),
            describe_examples(examples, pods)
        )
    };
    let tcp_only = !ctx.dns_reach(subject, Protocol::Tcp).is_missing();
    let lost = lost_dns_connections(ctx, subject, examples, pods);
    let target = format!(
        "the DNS pods ({} in namespaces {})",
        selector::describe(&selector::from_labels(ctx.dns.pod_labels())),
        selector::describe(&selector::from_labels(ctx.dns.namespace_labels()))
    );
    Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {who} but {} allows DNS on UDP 53 to {target}{}: every name \
             lookup of these pods will time out{lost}",
            "no rule of this policy or of a policy selecting the same pods",
            if tcp_only {
                " (only TCP 53 is allowed)"
            } else {
                ""
            },
        ),
        format!(
            "add this rule to spec.egress:\n{}or annotate the policy with `{DNS_ANNOTATION}: skip` \
             if these pods must have no egress at all",
            ctx.dns.allowance_yaml()
        ),
    )
}

/// The concrete connections the policy cuts, when the cluster's pods are known: up to
/// three of the pods it leaves without DNS, to the DNS pods the cache knows, on the UDP port.
/// Empty when either side is not known by name.
fn lost_dns_connections(
    ctx: &Context<'_>,
    subject: &Subject<'_>,
    examples: &[String],
    pods: usize,
) -> String {
    let Some(dns_namespace) = ctx.dns.namespace() else {
        return String::new();
    };
    let dns_selector = selector::from_labels(ctx.dns.pod_labels());
    let dns_pods: Vec<&str> = ctx
        .inventory
        .pods_in(dns_namespace)
        .filter(|(_, labels)| selector::matches(&dns_selector, labels))
        .map(|(name, _)| name)
        .collect();
    let (Some(first), false) = (dns_pods.first(), examples.is_empty()) else {
        return String::new();
    };
    let to = match dns_pods.len() {
        1 => format!("{dns_namespace}/{first}"),
        2 => format!("{dns_namespace}/{first} and 1 other DNS pod"),
        n => format!("{dns_namespace}/{first} and {} other DNS pods", n - 1),
    };
    let port = ctx.dns.port_number(Protocol::Udp).unwrap_or(53);
    let from: Vec<String> = examples
        .iter()
        .map(|pod| format!("{}/{pod}", subject.namespace))
        .collect();
    let more = pods.saturating_sub(examples.len());
    let more = if more == 0 {
        String::new()
    } else {
        format!(" (and {more} more pods)")
    };
    format!(
        "; connections lost: {} -> {to} on UDP {port}{more}",
        from.join(", ")
    )
}

fn tcp_missing(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    if !dns_judged(subject) {
        return Vec::new();
    }
    let udp = ctx.dns_reach(subject, Protocol::Udp);
    if !udp.is_certain() || !ctx.dns_reach(subject, Protocol::Tcp).is_missing() {
        return Vec::new();
    }
    let (path, where_) = match &udp {
        Coverage::Policy(name) => (egress_path(subject).to_string(), format!("policy {name}")),
        Coverage::Pods(_) => (
            egress_path(subject).to_string(),
            "the policies selecting these pods".to_string(),
        ),
        Coverage::Layer(by) => (egress_path(subject).to_string(), by.clone()),
        _ => {
            let rule = subject
                .rules(Direction::Egress)
                .into_iter()
                .find(|r| ctx.dns.rule_allows(subject.namespace, r, Protocol::Udp));
            (
                rule.map_or_else(|| egress_path(subject).to_string(), |r| r.path()),
                "this policy".to_string(),
            )
        }
    };
    let port = ctx.dns.port_number(Protocol::Tcp).unwrap_or(53);
    vec![Hit::new(
        path,
        format!(
            "{where_} allows DNS on UDP but not on TCP {port}: answers larger than 512 bytes \
             (and resolvers that prefer TCP) fail"
        ),
        format!("add this entry to the ports of the DNS rule:\n- protocol: TCP\n  port: {port}"),
    )]
}

fn or_split(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for rule in subject.rules(Direction::Egress) {
        let Some((ns_peer, pod_peer)) = split_peers(ctx, &rule) else {
            continue;
        };
        let opened = if rule.ports.is_empty() {
            "every port"
        } else {
            "port 53"
        };
        // the peer that was meant: both selectors in one item
        let merged = NetworkPolicyPeer {
            namespace_selector: rule.peers[ns_peer].namespace_selector.clone(),
            pod_selector: rule.peers[pod_peer].pod_selector.clone(),
            ip_block: None,
        };
        hits.push(Hit::new(
            format!("{}.to", rule.path()),
            format!(
                "to[{ns_peer}] (namespaceSelector) and to[{pod_peer}] (podSelector) are separate \
                 peers, which Kubernetes ORs: {opened} opens to every pod of the selected \
                 namespaces, and the podSelector alone only matches pods of {}",
                subject.namespace
            ),
            format!(
                "merge them into one peer (no dash before podSelector):\n{}",
                serde_yaml_ng::to_string(&[merged]).unwrap_or_default()
            ),
        ));
    }
    hits
}

/// A rule for DNS (it names a DNS port, or has no ports) whose peers hold a
/// namespaceSelector-only peer and a separate podSelector-only peer that selects the DNS
/// pods: the AND written as OR.
fn split_peers(ctx: &Context<'_>, rule: &RuleView<'_>) -> Option<(usize, usize)> {
    if !(rule.ports.is_empty() || ctx.dns.is_dns_rule(rule)) {
        return None;
    }
    let ns_peer = rule
        .peers
        .iter()
        .position(|p| matches!(PeerKind::of(p), PeerKind::Namespaces { pods: None, .. }))?;
    let pod_peer = rule.peers.iter().position(|p| match PeerKind::of(p) {
        PeerKind::OwnNamespace { pods } => {
            !selector::is_empty(pods) && ctx.dns.selects_dns_pods(pods)
        }
        _ => false,
    })?;
    Some((ns_peer, pod_peer))
}

fn too_broad(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for rule in subject.rules(Direction::Egress) {
        if !ctx.dns.is_dns_rule(&rule) || split_peers(ctx, &rule).is_some() {
            continue;
        }
        if rule.peers.is_empty() {
            hits.push(Hit::new(
                rule.path(),
                "allows port 53 to every destination, in and outside the cluster, instead of the \
                 cluster DNS pods",
                broad_fix(ctx, &rule, "give the rule a `to` with the DNS pods"),
            ));
            continue;
        }
        // one finding per rule: its whole-destination peers are one cause
        let wholes: Vec<(usize, Whole)> = rule
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| whole_destination(p).map(|w| (i, w)))
            .collect();
        let Some(first) = wholes.first().map(|(i, _)| *i) else {
            continue;
        };
        let only_namespaces = wholes
            .iter()
            .all(|(_, w)| matches!(w, Whole::Namespaces(_)));
        let fix = if only_namespaces && !has_other_ports(ctx, &rule) {
            format!(
                "add `podSelector: {{matchLabels: {{{}}}}}` to {} (same item, no dash)",
                ctx.dns
                    .pod_labels()
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if wholes.len() == 1 {
                    "this peer"
                } else {
                    "each of these peers"
                }
            )
        } else {
            broad_fix(ctx, &rule, "replace these peers with the DNS pods")
        };
        let what: Vec<String> = wholes
            .into_iter()
            .map(|(i, w)| match w {
                Whole::Addresses(s) | Whole::Namespaces(s) => format!("{s} (to[{i}])"),
            })
            .collect();
        hits.push(Hit::new(
            rule.peer_path(first),
            format!(
                "allows port 53 to {} instead of the DNS pods",
                what.join(" and ")
            ),
            fix,
        ));
    }
    hits
}

/// A peer that stands for a whole class of destinations.
enum Whole {
    /// Every address of a family (`0.0.0.0/0`, `::/0`), the DNS pods' among them.
    Addresses(String),
    /// Every pod of some namespaces.
    Namespaces(String),
}

fn whole_destination(peer: &NetworkPolicyPeer) -> Option<Whole> {
    match PeerKind::of(peer) {
        PeerKind::Namespaces { namespaces, pods } => {
            pods.is_none_or(selector::is_empty).then(|| {
                Whole::Namespaces(if selector::is_empty(namespaces) {
                    "every pod of every namespace".to_string()
                } else {
                    format!(
                        "every pod of the namespaces {}",
                        selector::describe(namespaces)
                    )
                })
            })
        }
        PeerKind::IpBlock(block) => Block::parse(block)
            .ok()
            .filter(Block::is_everything)
            .map(|b| Whole::Addresses(format!("every address ({})", b.cidr))),
        _ => None,
    }
}

/// Whether the rule also opens ports other than DNS (a chart's webhook egress: 443, 6443
/// and 53 with no `to`).
fn has_other_ports(ctx: &Context<'_>, rule: &RuleView<'_>) -> bool {
    rule.ports.iter().any(|p| !ctx.dns.is_dns_port(p))
}

/// How to confine DNS to the DNS pods. When the rule also carries other ports, narrowing
/// its peers would confine those ports to the DNS pods too and break the workload: the DNS
/// entries move to a rule of their own instead, and the other ports keep their destinations.
fn broad_fix(ctx: &Context<'_>, rule: &RuleView<'_>, dns_only: &str) -> String {
    if !has_other_ports(ctx, rule) {
        return format!("{dns_only}:\n{}", ctx.dns.allowance_yaml());
    }
    let moved: Vec<String> = rule
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| ctx.dns.is_dns_port(p))
        .map(|(i, _)| rule.port_path(i))
        .collect();
    format!(
        "remove {} from {} (its other ports keep their destinations) and add this rule of its \
         own to spec.egress:\n{}",
        moved.join(", "),
        rule.path(),
        ctx.dns.allowance_yaml()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{Setup, run, run_with, table, table_with_context};

    const GOOD_DNS: &str = "{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}";

    fn egress(rules: &str) -> String {
        format!(
            "metadata: {{name: p, namespace: apps}}\nspec: {{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Egress], egress: [{rules}]}}"
        )
    }

    #[test]
    fn dns_through_ip_blocks() {
        // (egress rules, matches pods, expected: None = no finding, Some(conditional))
        let cases: &[(&str, bool, Option<bool>)] = &[
            (
                "{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                None,
            ),
            // in this IPv4 cluster ::/0 holds no DNS pod (the families table is below)
            (
                "{to: [{ipBlock: {cidr: '::/0'}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                Some(false),
            ),
            ("{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}", true, None),
            (
                "{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                Some(true),
            ),
            (
                "{to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                Some(true),
            ),
            (
                "{to: [{ipBlock: {cidr: 'fd00::/8'}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                Some(true),
            ),
            (
                "{to: [{ipBlock: {cidr: 8.8.8.8/32}}], ports: [{port: 53, protocol: UDP}]}",
                true,
                Some(false),
            ),
            (
                "{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 443}]}",
                true,
                Some(false),
            ),
            // a CNI that keeps CIDR rules off cluster endpoints
            (
                "{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 53, protocol: UDP}]}",
                false,
                Some(false),
            ),
            (
                "{to: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 53, protocol: UDP}]}",
                false,
                Some(false),
            ),
        ];
        for (rules, matches_pods, want) in cases {
            let mut setup = Setup::default();
            setup.dns.ip_block_matches_pods = *matches_pods;
            let yaml = egress(rules);
            let hits = run_with(&EGRESS_MISSING_DNS, &yaml, &[], &setup);
            let got = hits.first().map(|h| h.condition.is_some());
            assert_eq!(
                got, *want,
                "{rules} (ipBlockMatchesPods {matches_pods}): {hits:#?}"
            );
            if let Some(h) = hits.first().filter(|h| h.condition.is_some()) {
                assert!(h.message.contains("only if"), "{}", h.message);
            }
            // nothing is injected unless DNS is certainly missing
            let inventory = crate::netpol::cluster::Inventory::of_families(setup.families);
            let p = crate::netpol::policy::tests::policy(&yaml);
            let needs = needs_dns_allowance(&setup.context(&inventory), &Subject::new(&p, "apps"));
            assert_eq!(needs, *want == Some(false), "{rules}");
        }
        // the rules beside it still see the ipBlock rule
        let udp_only =
            egress("{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 53, protocol: UDP}]}");
        assert_eq!(run(&DNS_TCP_MISSING, &udp_only, &[]).len(), 1);
        assert_eq!(run(&DNS_PEER_TOO_BROAD, &udp_only, &[]).len(), 1);
    }

    #[test]
    fn whole_family_blocks_reach_dns_by_the_clusters_ip_families() {
        use crate::netpol::ipblock::IpFamilies::{self, *};
        let v4 = "{to: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 53, protocol: UDP}]}";
        let v6 = "{to: [{ipBlock: {cidr: '::/0'}}], ports: [{port: 53, protocol: UDP}]}";
        let both = "{to: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}], ports: [{port: 53, protocol: UDP}]}";
        // (rules, families, expected: None = no finding, Some(conditional))
        let cases: &[(&str, IpFamilies, Option<bool>)] = &[
            (v4, V4, None),
            (v4, V6, Some(false)),
            (v4, Dual, Some(true)),
            (v4, Unknown, Some(true)),
            (v6, V6, None),
            (v6, V4, Some(false)),
            (v6, Dual, Some(true)),
            (v6, Unknown, Some(true)),
            (both, Unknown, None),
            (both, Dual, None),
            (both, V4, None),
        ];
        for (rules, families, want) in cases {
            let setup = Setup {
                families: *families,
                ..Setup::default()
            };
            let hits = run_with(&EGRESS_MISSING_DNS, &egress(rules), &[], &setup);
            let got = hits.first().map(|h| h.condition.is_some());
            assert_eq!(got, *want, "{rules} in {families:?}: {hits:#?}");
            if *families == Unknown && *want == Some(true) {
                assert!(
                    hits[0].message.contains("--ip-families"),
                    "{}",
                    hits[0].message
                );
            }
        }
    }

    #[test]
    fn fixes_have_real_line_breaks_and_keep_other_ports() {
        let tcp = run(
            &DNS_TCP_MISSING,
            &egress("{ports: [{port: 53, protocol: UDP}]}"),
            &[],
        );
        assert!(
            tcp[0].fix.contains("\n- protocol: TCP\n  port: 53"),
            "{}",
            tcp[0].fix
        );
        assert!(!tcp[0].fix.contains("\\n"), "{}", tcp[0].fix);
        // a webhook's egress: 443, 6443 and 53 with no `to`
        let mixed = egress(
            "{ports: [{port: 443}, {port: 6443}, {port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}",
        );
        let hits = run(&DNS_PEER_TOO_BROAD, &mixed, &[]);
        assert_eq!(hits.len(), 1);
        let fix = &hits[0].fix;
        assert!(
            fix.contains(
                "remove spec.egress[0].ports[2], spec.egress[0].ports[3] from spec.egress[0]"
            ),
            "{fix}"
        );
        assert!(fix.contains("k8s-app: kube-dns"), "{fix}");
        assert!(!fix.contains("add `podSelector"), "{fix}");
        // whole namespaces with other ports: the same, never a podSelector on the shared peer
        let ns = egress(
            "{to: [{namespaceSelector: {}}], ports: [{port: 443}, {port: 53, protocol: UDP}]}",
        );
        let hits = run(&DNS_PEER_TOO_BROAD, &ns, &[]);
        assert!(
            hits[0].fix.starts_with("remove spec.egress[0].ports[1]"),
            "{}",
            hits[0].fix
        );
        // v4 and v6 everywhere in one rule: one cause, one finding
        let both = egress(
            "{to: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}], ports: [{port: 53, protocol: UDP}]}",
        );
        assert_eq!(run(&DNS_PEER_TOO_BROAD, &both, &[]).len(), 1);
    }

    #[test]
    fn missing_dns_table() {
        let cases: Vec<(String, &[&str])> = vec![
            // must fire
            ("metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}".into(), &["spec.policyTypes"]),
            (egress("{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}"), &["spec.egress"]),
            // the seeds' mistake: `name: kube-system` matches no namespace
            (egress("{to: [{namespaceSelector: {matchLabels: {name: kube-system}}}], ports: [{port: 53, protocol: UDP}]}"), &["spec.egress"]),
            // TCP only counts as missing
            (egress("{ports: [{port: 53, protocol: TCP}]}"), &["spec.egress"]),
            (egress("{ports: [{port: 53}]}"), &["spec.egress"]),
            // podSelector alone is the policy's own namespace, not kube-system
            (egress("{to: [{podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}"), &["spec.egress"]),
            // named port with the wrong protocol
            (egress("{ports: [{port: dns, protocol: TCP}]}"), &["spec.egress"]),
            // endPort range that stops short
            (egress("{ports: [{port: 1, endPort: 52, protocol: UDP}]}"), &["spec.egress"]),
            // DNS pods matched with NotIn that excludes them
            (egress("{to: [{namespaceSelector: {}, podSelector: {matchExpressions: [{key: k8s-app, operator: NotIn, values: [kube-dns]}]}}]}"), &["spec.egress"]),
            // implicit policyTypes [Ingress, Egress] from the egress section
            ("metadata: {name: p}\nspec: {podSelector: {}, egress: [{to: [{podSelector: {}}]}]}".into(), &["spec.egress"]),
            // must not fire
            (egress(GOOD_DNS), &[]),
            (egress("{ports: [{port: 53, protocol: UDP}]}"), &[]),
            (egress("{}"), &[]),
            (egress("{to: [{namespaceSelector: {}}]}"), &[]),
            (egress("{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: dns, protocol: UDP}]}"), &[]),
            (egress("{to: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [kube-system, x]}]}, podSelector: {matchExpressions: [{key: k8s-app, operator: Exists}]}}], ports: [{port: 50, endPort: 60, protocol: UDP}]}"), &[]),
            // egress not isolated: policyTypes [Ingress], or egress: [] without policyTypes
            ("metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Ingress]}".into(), &[]),
            ("metadata: {name: p}\nspec: {podSelector: {}, egress: []}".into(), &[]),
            // opted out
            ("metadata: {name: p, annotations: {netpol-guard.io/dns: skip}}\nspec: {podSelector: {}, policyTypes: [Egress]}".into(), &[]),
        ];
        for (i, (yaml, want)) in cases.iter().enumerate() {
            let paths: Vec<String> = run(&EGRESS_MISSING_DNS, yaml, &[])
                .into_iter()
                .map(|h| h.path)
                .collect();
            assert_eq!(&paths, want, "case {i}: {yaml}");
        }
    }

    /// The layers above NetworkPolicy decide DNS first: an Admin or Cilium allow means no
    /// finding and no patch, a deny is refused naming the object, a rule that may apply is
    /// a warning with its condition.
    #[test]
    fn layers_decide_dns_before_network_policy() {
        const ANP_ALLOW: &str = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: allow-dns}, spec: {priority: 10, subject: {namespaces: {}}, egress: [{name: dns, action: Allow, to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{portNumber: {protocol: UDP, port: 53}}, {portNumber: {protocol: TCP, port: 53}}]}]}}";
        const ANP_DENY: &str = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: no-cluster-dns}, spec: {priority: 5, subject: {namespaces: {}}, egress: [{name: cluster-dns, action: Deny, to: [{namespaces: {}}], ports: [{portNumber: {protocol: UDP, port: 53}}]}]}}";
        const ANP_TEAM: &str = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: team-dns}, spec: {priority: 10, subject: {namespaces: {matchLabels: {team: a}}}, egress: [{name: dns, action: Allow, to: [{namespaces: {}}]}]}}";
        const ANP_PASS: &str = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: pass}, spec: {priority: 1, subject: {namespaces: {}}, egress: [{name: p, action: Pass, to: [{namespaces: {}}]}]}}";
        const CCNP_ALLOW: &str = "{apiVersion: cilium.io/v2, kind: CiliumClusterwideNetworkPolicy, metadata: {name: dns}, spec: {endpointSelector: {}, enableDefaultDeny: {egress: false}, egress: [{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]}]}}";
        const BANP_ALLOW: &str = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: BaselineAdminNetworkPolicy, metadata: {name: default}, spec: {subject: {namespaces: {}}, egress: [{name: dns, action: Allow, to: [{namespaces: {}}]}]}}";
        const CALICO_GNP: &str = "{apiVersion: crd.projectcalico.org/v1, kind: GlobalNetworkPolicy, metadata: {name: allow-dns}, spec: {order: 10}}";
        const CALICO_NP_ELSEWHERE: &str = "{apiVersion: crd.projectcalico.org/v1, kind: NetworkPolicy, metadata: {name: dns, namespace: shop}, spec: {}}";
        const CALICO_NP_HERE: &str = "{apiVersion: projectcalico.org/v3, kind: NetworkPolicy, metadata: {name: dns, namespace: apps}, spec: {}}";
        const TEAM_NS: &str =
            "{apiVersion: v1, kind: Namespace, metadata: {name: apps, labels: {team: a}}}";
        let no_dns = egress("{to: [{podSelector: {}}]}");
        // (policy, context, want: "" none, "deny", "warn"; a word the message must hold)
        let cases: &[(&str, &[&str], &str, &str)] = &[
            (&no_dns, &[], "deny", "no rule"),
            (&no_dns, &[ANP_ALLOW], "", ""),
            (&no_dns, &[CCNP_ALLOW], "", ""),
            (
                &no_dns,
                &[ANP_ALLOW, ANP_DENY],
                "deny",
                "AdminNetworkPolicy no-cluster-dns, priority 5 (rule cluster-dns)",
            ),
            // a policy that allows DNS itself is still refused under an Admin deny
            (
                &egress(GOOD_DNS),
                &[ANP_DENY],
                "deny",
                "no NetworkPolicy can override",
            ),
            // the Admin tier passes: NetworkPolicy decides as without layers
            (&no_dns, &[ANP_PASS, ANP_ALLOW], "deny", "no rule"),
            (&egress(GOOD_DNS), &[ANP_PASS], "", ""),
            // a subject label the guard cannot see: warned with the condition
            (&no_dns, &[ANP_TEAM], "warn", "team=a"),
            (&no_dns, &[ANP_TEAM, TEAM_NS], "", ""),
            // a Baseline allow does not rescue pods a NetworkPolicy isolates
            (&no_dns, &[BANP_ALLOW], "deny", "no rule"),
            // another CNI's policy the guard does not read may allow DNS first: a warning
            (
                &no_dns,
                &[CALICO_GNP],
                "warn",
                "only if Calico GlobalNetworkPolicy allow-dns, a policy of another CNI",
            ),
            (&no_dns, &[CALICO_NP_ELSEWHERE], "deny", "no rule"),
            (
                &no_dns,
                &[CALICO_NP_HERE],
                "warn",
                "Calico NetworkPolicy apps/dns",
            ),
            (
                &egress(GOOD_DNS),
                &[ANP_DENY, CALICO_GNP],
                "warn",
                "unless Calico GlobalNetworkPolicy allow-dns, a policy of another CNI",
            ),
            (&egress(GOOD_DNS), &[CALICO_GNP], "", ""),
        ];
        for (i, (yaml, others, want, says)) in cases.iter().enumerate() {
            let hits = run(&EGRESS_MISSING_DNS, yaml, others);
            let got = match hits.first() {
                None => "",
                Some(h) if h.condition.is_some() => "warn",
                Some(_) => "deny",
            };
            assert_eq!(got, *want, "case {i}: {hits:#?}");
            if let Some(h) = hits.first() {
                assert!(h.message.contains(says), "case {i}: {}", h.message);
            }
            // the DNS injection follows the same answer: only a certain miss is patched
            let inventory_docs: Vec<&str> = others.to_vec();
            let patched = crate::rules::testing::needs_allowance(yaml, &inventory_docs);
            assert_eq!(
                patched,
                *want == "deny" && says == &"no rule",
                "case {i}: patch"
            );
        }
    }

    #[test]
    fn message_names_tcp_only_and_fix_has_the_rule() {
        let hits = run(
            &EGRESS_MISSING_DNS,
            &egress("{ports: [{port: 53, protocol: TCP}]}"),
            &[],
        );
        assert!(
            hits[0].message.contains("only TCP 53"),
            "{}",
            hits[0].message
        );
        assert!(hits[0].fix.contains("k8s-app: kube-dns"), "{}", hits[0].fix);
        assert!(
            hits[0]
                .fix
                .contains("kubernetes.io/metadata.name: kube-system"),
            "{}",
            hits[0].fix
        );
        assert!(hits[0].fix.contains("protocol: UDP"), "{}", hits[0].fix);
    }

    #[test]
    fn covered_by_a_broader_policy_of_the_namespace() {
        let allow_dns_all = format!(
            "kind: NetworkPolicy\nmetadata: {{name: allow-dns, namespace: apps}}\nspec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{GOOD_DNS}]}}"
        );
        let allow_dns_web = format!(
            "kind: NetworkPolicy\nmetadata: {{name: allow-dns-web, namespace: apps}}\nspec: {{podSelector: {{matchLabels: {{app: web}}}}, egress: [{GOOD_DNS}]}}"
        );
        let allow_dns_db = format!(
            "kind: NetworkPolicy\nmetadata: {{name: allow-dns-db, namespace: apps}}\nspec: {{podSelector: {{matchLabels: {{app: db}}}}, egress: [{GOOD_DNS}]}}"
        );
        let other_ns = allow_dns_all.replace("namespace: apps", "namespace: other");
        // allows DNS only under ignored egress rules
        let ingress_only = allow_dns_all.replace("policyTypes: [Egress]", "policyTypes: [Ingress]");
        let subject = egress("{to: [{podSelector: {matchLabels: {app: db}}}]}");
        let subject_web_tier = "metadata: {name: p, namespace: apps}\nspec: {podSelector: {matchLabels: {app: web, tier: front}}, policyTypes: [Egress]}";
        let cases: Vec<(&str, &str, bool)> = vec![
            (&allow_dns_all, &subject, false),
            (&allow_dns_web, &subject, false),
            (&allow_dns_web, subject_web_tier, false),
            (&allow_dns_db, &subject, true),
            (&other_ns, &subject, true),
            (&ingress_only, &subject, true),
        ];
        for (other, subject, fires) in cases {
            let hits = run(&EGRESS_MISSING_DNS, subject, &[other]);
            assert_eq!(!hits.is_empty(), fires, "{subject}\nwith\n{other}");
        }
        // a policy does not cover itself through its stored older version
        let stored_self = allow_dns_web.replace("allow-dns-web", "p");
        assert_eq!(run(&EGRESS_MISSING_DNS, &subject, &[&stored_self]).len(), 1);
    }

    /// Certain (no condition), depends (a condition naming the other policy) or clean.
    fn verdict(hits: &[Hit]) -> &'static str {
        match hits {
            [] => "clean",
            [h] if h.condition.is_some() => "depends",
            [_] => "certain",
            _ => "several",
        }
    }

    #[test]
    fn label_composed_policy_sets_table() {
        // DNS in its own policy keyed on its own pod label, as label-composed sets write it
        let dns_by_label = format!(
            "kind: NetworkPolicy\nmetadata: {{name: allow-dns, namespace: apps}}\nspec: {{podSelector: {{matchLabels: {{to-dns: allowed}}}}, policyTypes: [Egress], egress: [{GOOD_DNS}]}}"
        );
        let dns_for_db = dns_by_label.replace("to-dns: allowed", "app: db");
        let dns_except_web = dns_by_label.replace(
            "{matchLabels: {to-dns: allowed}}",
            "{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}",
        );
        let pod = |name: &str, labels: &str| {
            format!("kind: Pod\nmetadata: {{name: {name}, namespace: apps, labels: {labels}}}")
        };
        let web_dns = pod("web-1", "{app: web, to-dns: allowed}");
        let web_plain = pod("web-2", "{app: web}");
        let other = pod("db-1", "{app: db, to-dns: allowed}");
        let subject =
            egress("{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}");
        let cases: Vec<(&str, Vec<&str>, &str)> = vec![
            // offline or no pod selected yet: it depends on the pods' labels
            ("no pods known", vec![&dns_by_label], "depends"),
            (
                "pods known, none selected",
                vec![&dns_by_label, &other],
                "depends",
            ),
            // disjoint selectors or nobody with DNS: certain
            ("DNS only for app=db", vec![&dns_for_db], "certain"),
            (
                "DNS for every app but web",
                vec![&dns_except_web],
                "certain",
            ),
            ("no DNS policy", vec![], "certain"),
            // the pods decide
            ("every pod labelled", vec![&dns_by_label, &web_dns], "clean"),
            (
                "one pod unlabelled",
                vec![&dns_by_label, &web_dns, &web_plain],
                "certain",
            ),
            ("pods, no DNS policy", vec![&web_dns], "certain"),
        ];
        for (what, others, want) in cases {
            let hits = run(&EGRESS_MISSING_DNS, &subject, &others);
            assert_eq!(verdict(&hits), want, "{what}: {hits:?}");
        }
        let hits = run(&EGRESS_MISSING_DNS, &subject, &[&dns_by_label]);
        assert_eq!(
            hits[0].condition.as_deref(),
            Some(
                "pods selected by p get DNS only if they also match to-dns=allowed (policy apps/allow-dns)"
            )
        );
        assert!(
            hits[0]
                .message
                .contains("without a DNS rule of its own: pods selected by p"),
            "{}",
            hits[0].message
        );
        // the certain finding names the pods left without DNS
        let hits = run(
            &EGRESS_MISSING_DNS,
            &subject,
            &[&dns_by_label, &web_dns, &web_plain],
        );
        assert!(
            hits[0].message.contains("(pod web-2)"),
            "{}",
            hits[0].message
        );
        let many: Vec<String> = (0..5)
            .map(|i| pod(&format!("web-{i}"), "{app: web}"))
            .collect();
        let mut others: Vec<&str> = many.iter().map(String::as_str).collect();
        others.push(&dns_by_label);
        let hits = run(&EGRESS_MISSING_DNS, &subject, &others);
        assert!(
            hits[0]
                .message
                .contains("(pods web-0, web-1, web-2 (and 2 more))"),
            "{}",
            hits[0].message
        );
        // with the DNS pods known too, the message names the connections it cuts
        assert!(
            !hits[0].message.contains("connections lost"),
            "no DNS pod known yet"
        );
        let coredns = |name: &str| {
            format!(
                "kind: Pod\nmetadata: {{name: {name}, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}"
            )
        };
        let (dns_a, dns_b) = (coredns("coredns-a"), coredns("coredns-b"));
        let not_dns = "kind: Pod\nmetadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}";
        let mut with_dns = others.clone();
        with_dns.extend([dns_a.as_str(), dns_b.as_str(), not_dns]);
        let hits = run(&EGRESS_MISSING_DNS, &subject, &with_dns);
        assert!(
            hits[0].message.ends_with(
                "; connections lost: apps/web-0, apps/web-1, apps/web-2 -> kube-system/coredns-a \
                 and 1 other DNS pod on UDP 53 (and 2 more pods)"
            ),
            "{}",
            hits[0].message
        );
        let one: Vec<&str> = vec![&dns_by_label, &web_plain, &dns_a];
        let hits = run(&EGRESS_MISSING_DNS, &subject, &one);
        assert!(
            hits[0]
                .message
                .ends_with("; connections lost: apps/web-2 -> kube-system/coredns-a on UDP 53"),
            "{}",
            hits[0].message
        );
    }

    #[test]
    fn name_label_works_where_the_namespace_really_has_it() {
        let subject = egress(
            "{to: [{namespaceSelector: {matchLabels: {name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}",
        );
        let labelled =
            "kind: Namespace\nmetadata: {name: kube-system, labels: {name: kube-system}}";
        assert_eq!(run(&EGRESS_MISSING_DNS, &subject, &[]).len(), 1);
        assert!(run(&EGRESS_MISSING_DNS, &subject, &[labelled]).is_empty());
    }

    #[test]
    fn node_local_dns_addresses_count() {
        let mut config = Setup::default();
        config.dns.ips = vec!["169.254.20.10".parse().expect("ip")];
        let subject = egress(
            "{to: [{ipBlock: {cidr: 169.254.20.10/32}}], ports: [{port: 53, protocol: UDP}]}",
        );
        assert!(run_with(&EGRESS_MISSING_DNS, &subject, &[], &config).is_empty());
        assert_eq!(run(&EGRESS_MISSING_DNS, &subject, &[]).len(), 1);
        // named ports do not resolve for addresses
        let named = egress(
            "{to: [{ipBlock: {cidr: 169.254.0.0/16}}], ports: [{port: dns, protocol: UDP}]}",
        );
        assert_eq!(run_with(&EGRESS_MISSING_DNS, &named, &[], &config).len(), 1);
    }

    #[test]
    fn tcp_missing_table() {
        table(
            &DNS_TCP_MISSING,
            &[
                (
                    &egress(
                        "{to: [{namespaceSelector: {}}], ports: [{port: 443}]}, {ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &["spec.egress[1]"],
                ),
                // all ports to every namespace includes TCP 53 to the DNS pods
                (
                    &egress(
                        "{to: [{namespaceSelector: {}}]}, {ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &[],
                ),
                (
                    &egress("{ports: [{port: dns, protocol: UDP}]}"),
                    &["spec.egress[0]"],
                ),
                (&egress(GOOD_DNS), &[]),
                // UDP missing entirely: egress-missing-dns reports it
                (&egress("{ports: [{port: 53}]}"), &[]),
                (&egress("{}"), &[]),
            ],
        );
        let udp_only = "kind: NetworkPolicy\nmetadata: {name: dns-udp, namespace: apps}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 53, protocol: UDP}]}]}";
        table_with_context(
            &DNS_TCP_MISSING,
            &[udp_only],
            &[(&egress("{to: [{podSelector: {}}]}"), &["spec.egress"])],
        );
    }

    #[test]
    fn or_split_table() {
        table(
            &DNS_PEER_OR_SPLIT,
            &[
                (
                    &egress(
                        "{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}, {podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &["spec.egress[0].to"],
                ),
                (
                    &egress(
                        "{to: [{podSelector: {matchLabels: {k8s-app: kube-dns}}}, {namespaceSelector: {}}], ports: [{port: dns, protocol: UDP}]}",
                    ),
                    &["spec.egress[0].to"],
                ),
                (&egress(GOOD_DNS), &[]),
                // not a DNS rule
                (
                    &egress(
                        "{to: [{namespaceSelector: {}}, {podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 443}]}",
                    ),
                    &[],
                ),
                // pod selector that is not the DNS pods
                (
                    &egress(
                        "{to: [{namespaceSelector: {}}, {podSelector: {matchLabels: {app: cache}}}], ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn too_broad_table() {
        table(
            &DNS_PEER_TOO_BROAD,
            &[
                (
                    &egress(
                        "{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &["spec.egress[0].to[0]"],
                ),
                (
                    &egress(
                        "{to: [{namespaceSelector: {}, podSelector: {}}], ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &["spec.egress[0].to[0]"],
                ),
                (
                    &egress("{ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]}"),
                    &["spec.egress[0]"],
                ),
                (&egress(GOOD_DNS), &[]),
                // the OR split is reported by its own rule
                (
                    &egress(
                        "{to: [{namespaceSelector: {}}, {podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}",
                    ),
                    &[],
                ),
                (
                    &egress("{to: [{namespaceSelector: {}}], ports: [{port: 443}]}"),
                    &[],
                ),
            ],
        );
        let hits = run(
            &DNS_PEER_TOO_BROAD,
            &egress("{to: [{namespaceSelector: {}}], ports: [{port: 53, protocol: UDP}]}"),
            &[],
        );
        assert!(
            hits[0].message.contains("every pod of every namespace"),
            "{}",
            hits[0].message
        );
    }
}
