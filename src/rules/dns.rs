//! Cluster DNS: every pod whose egress is restricted must still reach the DNS pods, on UDP
//! and on TCP 53, through a peer that really selects them.

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::dns::{Coverage, coverage};
use crate::netpol::peer::PeerKind;
use crate::netpol::policy::{Direction, RuleView, Subject};
use crate::netpol::ports::Protocol;
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

/// Whether `egress-missing-dns` applies: egress isolated, not opted out, and no UDP DNS
/// from the policy itself or a covering policy.
pub fn needs_dns_allowance(ctx: &Context<'_>, subject: &Subject<'_>) -> bool {
    subject.isolates(Direction::Egress)
        && !dns_skipped(subject)
        && coverage(&ctx.dns, ctx.inventory, subject, Protocol::Udp).is_missing()
}

fn egress_path(subject: &Subject<'_>) -> &'static str {
    if subject.spec.egress.is_some() {
        "spec.egress"
    } else {
        "spec.policyTypes"
    }
}

fn missing_dns(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    if !needs_dns_allowance(ctx, subject) {
        return Vec::new();
    }
    let tcp_only = !coverage(&ctx.dns, ctx.inventory, subject, Protocol::Tcp).is_missing();
    let target = format!(
        "the DNS pods ({} in namespaces {})",
        selector::describe(&selector::from_labels(ctx.dns.pod_labels())),
        selector::describe(&selector::from_labels(ctx.dns.namespace_labels()))
    );
    vec![Hit::new(
        egress_path(subject),
        format!(
            "restricts egress of {} but {} allows DNS on UDP 53 to {target}{}: every name \
             lookup of these pods will time out",
            selector::describe_pods(&subject.pod_selector()),
            "no rule of this policy or of a policy covering the same pods",
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
    )]
}

fn tcp_missing(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    if !subject.isolates(Direction::Egress) || dns_skipped(subject) {
        return Vec::new();
    }
    let udp = coverage(&ctx.dns, ctx.inventory, subject, Protocol::Udp);
    if udp.is_missing() || !coverage(&ctx.dns, ctx.inventory, subject, Protocol::Tcp).is_missing() {
        return Vec::new();
    }
    let (path, where_) = match &udp {
        Coverage::Policy(name) => (egress_path(subject).to_string(), format!("policy {name}")),
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
        format!("add `- protocol: TCP\\n  port: {port}` to the ports of the DNS rule"),
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
                format!(
                    "give the rule a `to` with the DNS pods:\n{}",
                    ctx.dns.allowance_yaml()
                ),
            ));
            continue;
        }
        for (i, peer) in rule.peers.iter().enumerate() {
            let whole = match PeerKind::of(peer) {
                PeerKind::Namespaces { namespaces, pods } => {
                    pods.is_none_or(selector::is_empty).then(|| {
                        if selector::is_empty(namespaces) {
                            "every pod of every namespace".to_string()
                        } else {
                            format!(
                                "every pod of the namespaces {}",
                                selector::describe(namespaces)
                            )
                        }
                    })
                }
                _ => None,
            };
            if let Some(whole) = whole {
                hits.push(Hit::new(
                    rule.peer_path(i),
                    format!("allows port 53 to {whole} instead of the DNS pods"),
                    format!(
                        "add `podSelector: {{matchLabels: {{{}}}}}` to this peer (same item, no dash)",
                        ctx.dns
                            .pod_labels()
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    hits
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
