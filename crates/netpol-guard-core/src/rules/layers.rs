//! Writes of the policy layers themselves: AdminNetworkPolicy, BaselineAdminNetworkPolicy,
//! ClusterNetworkPolicy and Cilium's policies are cluster-wide (or above every
//! NetworkPolicy of a namespace), so one mistake there breaks more than any NetworkPolicy
//! can. Each object is judged among the layers already known, with its stored version
//! replaced by the one under review.

use std::fmt::Write as _;

use ipnet::IpNet;

use super::{Check, Context, Hit, Rule, Severity};
use crate::netpol::dns::POD_RANGES;
use crate::netpol::layers::{Action, Group, LayerKind, LayerPolicy, LayerRule, Peer, Tier};
use crate::netpol::ports::Protocol;
use crate::netpol::reach::Reach;
use crate::netpol::selector::{self, Labels, Selector};
use crate::netpol::tiers::{self, Isolated, Maybe, Namespaces, Pods, Say};

/// The annotation that says an object's DNS denials are meant.
const DNS_ANNOTATION: &str = super::dns::DNS_ANNOTATION;

pub const LAYER_DENIES_DNS: Rule = Rule {
    id: "layer-denies-dns",
    default_severity: Severity::Deny,
    summary: "A policy layer object denies its pods DNS on UDP 53 to the DNS pods, which no NetworkPolicy can allow again.",
    check: Check::Layer(denies_dns),
};

pub const LAYER_DENIES_DNS_INGRESS: Rule = Rule {
    id: "layer-denies-dns-ingress",
    default_severity: Severity::Deny,
    summary: "A policy layer object denies the DNS pods' ingress on the DNS port from other pods.",
    check: Check::Layer(denies_dns_ingress),
};

pub const LAYER_PROTECTED_NAMESPACE_DENY: Rule = Rule {
    id: "layer-protected-namespace-deny",
    default_severity: Severity::Deny,
    summary: "A policy layer object denies all ingress or all egress of pods in a protected namespace (kube-system).",
    check: Check::Layer(protected_namespace_deny),
};

pub const LAYER_DENIES_API_SERVER: Rule = Rule {
    id: "layer-denies-api-server",
    default_severity: Severity::Warn,
    summary: "A policy layer object denies its pods egress to every address (or Cilium's kube-apiserver entity): they lose the API server.",
    check: Check::Layer(denies_api_server),
};

pub const LAYER_PRIORITY_CONFLICT: Rule = Rule {
    id: "layer-priority-conflict",
    default_severity: Severity::Warn,
    summary: "Two Admin-tier objects share a priority, may select the same pods and traffic, and disagree: the implementation picks the winner.",
    check: Check::Layer(priority_conflict),
};

pub const LAYER_PRIORITY_OUT_OF_RANGE: Rule = Rule {
    id: "layer-priority-out-of-range",
    default_severity: Severity::Warn,
    summary: "An Admin-tier priority above 99: OVN-Kubernetes (OpenShift) ignores such objects.",
    check: Check::Layer(priority_out_of_range),
};

pub const LAYER_NETWORKS_MATCH_PODS: Rule = Rule {
    id: "layer-networks-match-pods",
    default_severity: Severity::Warn,
    summary: "A `networks` peer holds pod addresses (0.0.0.0/0, private ranges): it matches traffic between pods too, not only external traffic.",
    check: Check::Layer(networks_match_pods),
};

pub const CILIUM_FQDN_WITHOUT_DNS_PROXY: Rule = Rule {
    id: "cilium-fqdn-without-dns-proxy",
    default_severity: Severity::Warn,
    summary: "A Cilium `toFQDNs` rule whose pods have no DNS rule (`toPorts[].rules.dns`): the proxy never sees the lookups, so the names allow nothing.",
    check: Check::Layer(fqdn_without_dns_proxy),
};

pub const CILIUM_EGRESS_MISSING_DNS: Rule = Rule {
    id: "cilium-egress-missing-dns",
    default_severity: Severity::Deny,
    summary: "A CiliumNetworkPolicy isolates egress of its pods and nothing (it, another Cilium policy, a NetworkPolicy, a layer) allows them DNS.",
    check: Check::Layer(cilium_missing_dns),
};

/// The implementation with the narrowest Admin-tier priority range: OVN-Kubernetes.
const OVN_MAX_PRIORITY: i32 = 99;

/// Which tiers speak for an object's own pods: Baseline rules only reach pods that no
/// NetworkPolicy isolates.
fn isolation_of(policy: &LayerPolicy) -> Isolated {
    if policy.tier == Tier::Baseline {
        Isolated::No
    } else {
        Isolated::ByNetworkPolicy
    }
}

/// Whether a NetworkPolicy isolates the DNS pods' ingress (then Baseline has no say there).
fn dns_isolation(ctx: &Context<'_>) -> Isolated {
    if ctx.dns.ingress_isolated(ctx.inventory) {
        Isolated::ByNetworkPolicy
    } else {
        Isolated::No
    }
}

fn rule_at<'p>(policy: &'p LayerPolicy, egress: bool, name: &str) -> Option<&'p LayerRule> {
    policy.rules(egress).iter().find(|r| r.name == name)
}

fn denies_dns(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    let Some(subject) = policy.subject.as_ref().filter(|_| !policy.dns_skip) else {
        return Vec::new();
    };
    let layers = ctx.inventory.layers().with(policy);
    let pods = Pods::of(subject);
    let say = tiers::dns(
        &layers,
        &pods,
        &ctx.dns,
        Protocol::Udp,
        (isolation_of(policy), dns_isolation(ctx)),
    );
    let (by, condition) = match say {
        Say::Denied(by) if by.is(policy) => (by, None),
        Say::Open(Some(Maybe {
            action: Action::Deny,
            by,
            condition,
        })) if by.is(policy) => (by, Some(condition)),
        _ => return Vec::new(),
    };
    let Some(rule) = rule_at(policy, true, &by.rule) else {
        return Vec::new();
    };
    let whom = if policy.tier == Tier::Baseline {
        format!("{} that no NetworkPolicy isolates", subject.describe())
    } else {
        subject.describe()
    };
    let hit = Hit::new(
        rule.path.clone(),
        format!(
            "denies DNS on UDP 53 to the DNS pods for {whom}, and no NetworkPolicy can allow it \
             again: every name lookup of these pods will time out"
        ),
        format!(
            "put this rule before {} (rules decide in order):\n{}or annotate the object with \
             `{DNS_ANNOTATION}: skip` if these pods must have no DNS",
            rule.path,
            dns_allow_rule(ctx, policy.kind)
        ),
    );
    // a Baseline rule reaches only pods no NetworkPolicy isolates, and which pods those are
    // (the guard's own default-deny companions isolate every pod where they run) is not known
    let condition = condition.or_else(|| {
        (policy.tier == Tier::Baseline).then(|| {
            "some of these pods are not isolated by any NetworkPolicy (a namespace without \
             policies or companions)"
                .to_string()
        })
    });
    vec![match condition {
        Some(c) => hit.depends(c),
        None => hit,
    }]
}

fn denies_dns_ingress(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    if policy.dns_skip {
        return Vec::new();
    }
    let layers = ctx.inventory.layers().with(policy);
    let mut hits = Vec::new();
    for rule in policy.ingress.iter().filter(|r| r.action == Action::Deny) {
        let groups = rule.peers.iter().filter_map(|p| match p {
            Peer::Pods(g) => Some(g.clone()),
            Peer::Anything => Some(Group::everything()),
            _ => None,
        });
        for group in groups {
            let say = tiers::dns(
                &layers,
                &Pods::of(&group),
                &ctx.dns,
                Protocol::Udp,
                (Isolated::ByNetworkPolicy, dns_isolation(ctx)),
            );
            if matches!(&say, Say::Denied(by) if by.is(policy) && by.rule == rule.name) {
                hits.push(Hit::new(
                    rule.path.clone(),
                    format!(
                        "denies the DNS pods' ingress on the DNS port from {}: their name \
                         lookups time out whatever their NetworkPolicies allow",
                        group.describe()
                    ),
                    format!(
                        "narrow {}'s subject so that it leaves out the DNS pods ({} in namespace \
                         {}), or give it a port list without the DNS port",
                        rule.path,
                        selector::describe(&selector::from_labels(ctx.dns.pod_labels())),
                        ctx.dns.namespace().unwrap_or("kube-system"),
                    ),
                ));
                break;
            }
        }
    }
    hits
}

/// Whether the subject holds pods of a protected namespace: the namespace, as far as its
/// labels are known, is selected.
fn protected_namespace_in(ctx: &Context<'_>, subject: &Group) -> Option<String> {
    let Ok(ns) = Selector::parse(&subject.namespaces) else {
        return None;
    };
    let pods_possible = Selector::parse(&subject.pods).is_ok_and(|p| !p.selects_nothing());
    ctx.protected_namespaces
        .iter()
        .find(|name| {
            let only_name = Labels::from([(
                crate::netpol::cluster::NAMESPACE_NAME_LABEL.to_string(),
                name.to_string(),
            )]);
            match ctx.inventory.namespace_labels(name) {
                Some(all) => ns.matches(all),
                None => ns.matches_known(&only_name) == Some(true),
            }
        })
        .filter(|_| pods_possible)
        .cloned()
}

/// Whether a rule matches every connection of its direction that a namespace's pods need
/// (every port, and peers covering every pod or address).
fn matches_everything(rule: &LayerRule) -> bool {
    rule.ports.is_none()
        && rule.peers.iter().any(|p| match p {
            Peer::Anything => true,
            Peer::Pods(g) => selector::is_empty(&g.namespaces) && selector::is_empty(&g.pods),
            Peer::Networks(nets) | Peer::CiliumCidrs(nets) => {
                nets.iter().any(|n| n.prefix_len() == 0)
            }
            _ => false,
        })
}

fn protected_namespace_deny(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    let Some(subject) = &policy.subject else {
        return Vec::new();
    };
    let Some(namespace) = protected_namespace_in(ctx, subject) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for egress in [false, true] {
        let rules = policy.rules(egress);
        let Some(at) = rules
            .iter()
            .position(|r| r.action == Action::Deny && matches_everything(r))
        else {
            continue;
        };
        let rule = &rules[at];
        let earlier: Vec<&str> = rules[..at]
            .iter()
            .filter(|r| r.action != Action::Deny)
            .map(|r| r.name.as_str())
            .collect();
        let direction = if egress { "egress" } else { "ingress" };
        let hit = Hit::new(
            rule.path.clone(),
            format!(
                "denies all {direction} of pods in the protected namespace {namespace}: DNS, the \
                 CNI and the controllers there stop, and the cluster with them"
            ),
            format!(
                "leave the protected namespaces out of the subject, e.g. add to its namespace \
                 selector:\nmatchExpressions:\n- key: kubernetes.io/metadata.name\n  operator: \
                 NotIn\n  values: [{}]",
                ctx.protected_namespaces.join(", ")
            ),
        );
        let before = decided_before(ctx, policy, &namespace, egress);
        hits.push(match (earlier.is_empty(), before) {
            (true, None) => hit,
            (false, _) => hit.depends(format!(
                "the earlier rules {} do not admit what {namespace} needs",
                earlier.join(", ")
            )),
            (true, Some(before)) => hit.depends(before),
        });
    }
    hits
}

/// What may decide `namespace`'s traffic of a direction before `policy` does: an Admin-tier
/// object of a lower priority number with a rule that may allow or pass it, or, for the
/// Baseline tier, any Admin-tier allow or pass and the namespace's own NetworkPolicies
/// (NetworkPolicy is final for the pods it isolates).
fn decided_before(
    ctx: &Context<'_>,
    policy: &LayerPolicy,
    namespace: &str,
    egress: bool,
) -> Option<String> {
    let scope = Namespaces::One {
        name: namespace,
        labels: ctx.inventory.namespace_labels(namespace),
    };
    let earlier = ctx
        .inventory
        .layers()
        .near(namespace, ctx.inventory.namespace_labels(namespace));
    let first = earlier.iter().find(|other| {
        let same = other.kind == policy.kind && other.name == policy.name;
        let before = match policy.tier {
            Tier::Admin => other.tier == Tier::Admin && other.priority < policy.priority,
            Tier::Baseline => other.tier == Tier::Admin,
            Tier::Cilium => false,
        };
        !same
            && before
            && other
                .subject
                .as_ref()
                .is_some_and(|g| crate::netpol::tiers::holds_namespaces(g, &scope) != Reach::No)
            && other.rules(egress).iter().any(|r| r.action != Action::Deny)
    });
    if let Some(other) = first {
        return Some(format!(
            "{} (earlier) does not admit or pass on what {namespace} needs",
            other.describe()
        ));
    }
    let policies = ctx.inventory.policies_in(namespace);
    (policy.tier == Tier::Baseline && !policies.is_empty()).then(|| {
        format!(
            "no NetworkPolicy of {namespace} isolates its pods (NetworkPolicy is final for the \
             pods it isolates, and then this Baseline object has no say there; {} of them are \
             known)",
            policies.len()
        )
    })
}

fn denies_api_server(_ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    if policy.subject.is_none() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for (at, rule) in policy.egress.iter().enumerate() {
        if rule.action != Action::Deny {
            continue;
        }
        let allowed_before = policy.egress[..at].iter().any(|r| r.action != Action::Deny);
        let on_api_port = rule.ports.as_ref().is_none_or(|ports| {
            ports.iter().any(|p| match p {
                crate::netpol::layers::PortMatch::Range {
                    protocol: Protocol::Tcp,
                    start,
                    end,
                } => (*start..=*end).contains(&443) || (*start..=*end).contains(&6443),
                _ => false,
            })
        });
        if !on_api_port {
            continue;
        }
        let everywhere = rule.peers.iter().any(|p| match p {
            Peer::Anything => true,
            Peer::Entity(e) => e == "kube-apiserver",
            Peer::Networks(nets) | Peer::CiliumCidrs(nets) => {
                nets.iter().any(|n| n.prefix_len() == 0)
            }
            _ => false,
        });
        let nodes = rule.peers.contains(&Peer::Nodes);
        let condition = if everywhere && !allowed_before {
            None
        } else if everywhere {
            Some("the earlier rules do not admit the API server".to_string())
        } else if nodes {
            Some("the control plane runs on the cluster's nodes".to_string())
        } else {
            continue;
        };
        let hit = Hit::new(
            rule.path.clone(),
            format!(
                "denies {} egress to the API server: operators, controllers and anything \
                 using a service account token there fail",
                policy
                    .subject
                    .as_ref()
                    .map(Group::describe)
                    .unwrap_or_default()
            ),
            "put an Allow rule for the API server (its addresses on TCP 443 and 6443, or \
             Cilium's kube-apiserver entity) before this one",
        );
        hits.push(match condition {
            Some(c) => hit.depends(c),
            None => hit,
        });
    }
    hits
}

fn groups_may_overlap(a: &Group, b: &Group) -> bool {
    let disjoint = |x, y| match (Selector::parse(x), Selector::parse(y)) {
        (Ok(x), Ok(y)) => x.disjoint(&y),
        _ => true,
    };
    !disjoint(&a.namespaces, &b.namespaces) && !disjoint(&a.pods, &b.pods)
}

fn peers_may_overlap(a: &Peer, b: &Peer) -> bool {
    match (a, b) {
        (Peer::Anything, _) | (_, Peer::Anything) => true,
        (Peer::Pods(x), Peer::Pods(y)) => groups_may_overlap(x, y),
        (Peer::Networks(x), Peer::Networks(y)) => x
            .iter()
            .any(|n| y.iter().any(|m| n.contains(m) || m.contains(n))),
        (Peer::Nodes, Peer::Nodes) => true,
        (Peer::Unread(_), _) | (_, Peer::Unread(_)) => true,
        _ => false,
    }
}

fn priority_conflict(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    let (Tier::Admin, Some(subject)) = (policy.tier, &policy.subject) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for other in ctx.inventory.layers().tier(Tier::Admin) {
        let same = other.kind == policy.kind && other.name == policy.name;
        let Some(theirs) = other.subject.as_ref().filter(|_| !same) else {
            continue;
        };
        if other.priority != policy.priority || !groups_may_overlap(subject, theirs) {
            continue;
        }
        let clash = [false, true].into_iter().find_map(|egress| {
            policy.rules(egress).iter().find_map(|mine| {
                other
                    .rules(egress)
                    .iter()
                    .find(|r| {
                        r.action != mine.action
                            && mine
                                .peers
                                .iter()
                                .any(|p| r.peers.iter().any(|q| peers_may_overlap(p, q)))
                    })
                    .map(|r| (mine, r))
            })
        });
        if let Some((mine, theirs)) = clash {
            hits.push(Hit::new(
                mine.path.clone(),
                format!(
                    "{} ({}) shares priority {} with {} whose {} ({}) may match the same \
                     traffic: which one wins is up to the implementation (network-policy-api \
                     #222)",
                    mine.name,
                    mine.action.as_str(),
                    policy.priority,
                    other.describe(),
                    theirs.name,
                    theirs.action.as_str()
                ),
                format!(
                    "give one of the two objects its own priority (lower numbers decide first), \
                     e.g. spec.priority: {}",
                    policy.priority.saturating_sub(1).max(0)
                ),
            ));
        }
    }
    hits
}

fn priority_out_of_range(_ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    if policy.tier != Tier::Admin || policy.kind.is_cilium() || policy.priority <= OVN_MAX_PRIORITY
    {
        return Vec::new();
    }
    vec![Hit::new(
        "spec.priority",
        format!(
            "priority {} is above {OVN_MAX_PRIORITY}: OVN-Kubernetes (OpenShift) implements 0-{OVN_MAX_PRIORITY} \
             only and does not apply this object",
            policy.priority
        ),
        format!("use a priority from 0 to {OVN_MAX_PRIORITY} (lower numbers decide first)"),
    )]
}

fn holds_pod_addresses(net: &IpNet) -> bool {
    net.prefix_len() == 0
        || POD_RANGES
            .iter()
            .filter_map(|r| r.parse::<IpNet>().ok())
            .any(|r| r.contains(net) || net.contains(&r))
}

fn networks_match_pods(_ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    if policy.kind.is_cilium() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for rule in policy.ingress.iter().chain(&policy.egress) {
        if rule.action == Action::Pass {
            continue;
        }
        let pods_too: Vec<String> = rule
            .peers
            .iter()
            .filter_map(|p| match p {
                Peer::Networks(nets) => Some(nets),
                _ => None,
            })
            .flatten()
            .filter(|n| holds_pod_addresses(n))
            .map(ToString::to_string)
            .collect();
        if pods_too.is_empty() {
            continue;
        }
        hits.push(Hit::new(
            rule.path.clone(),
            format!(
                "`networks` {} holds pod addresses: this {} rule matches traffic between pods \
                 of the cluster as well, not only external traffic",
                pods_too.join(", "),
                rule.action.as_str()
            ),
            "write pod traffic with `namespaces`/`pods` peers and keep `networks` to the \
             external ranges (leave out the cluster's pod and service CIDRs)",
        ));
    }
    hits
}

fn fqdn_without_dns_proxy(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    let Some(subject) = &policy.subject else {
        return Vec::new();
    };
    let Some(rule) = policy
        .egress
        .iter()
        .find(|r| r.action == Action::Allow && r.peers.iter().any(|p| matches!(p, Peer::Fqdns(_))))
    else {
        return Vec::new();
    };
    let layers = ctx.inventory.layers().with(policy);
    let pods = Pods::of(subject);
    let proxied = layers.tier(Tier::Cilium).any(|p| {
        p.subject
            .as_ref()
            .is_some_and(|g| tiers::holds(g, &pods) == crate::netpol::coverage::Reach::Yes)
            && p.egress
                .iter()
                .any(|r| r.action == Action::Allow && r.dns_proxy)
    });
    if proxied {
        return Vec::new();
    }
    vec![Hit::new(
        rule.path.clone(),
        "toFQDNs allows names, but no Cilium rule for these pods sends their DNS lookups \
         through the DNS proxy (toPorts[].rules.dns), so the names resolve to no allowed \
         address and the rule allows nothing",
        format!(
            "add this rule to the policy's egress (or to a clusterwide policy for all pods):\n{}",
            cilium_dns_rule(ctx)
        ),
    )]
}

fn cilium_missing_dns(ctx: &Context<'_>, policy: &LayerPolicy) -> Vec<Hit> {
    let (LayerKind::CiliumNetworkPolicy, Some(subject), Some(namespace)) =
        (policy.kind, &policy.subject, &policy.namespace)
    else {
        return Vec::new();
    };
    if !policy.isolation.egress || policy.dns_skip {
        return Vec::new();
    }
    let layers = ctx.inventory.layers().with(policy);
    let pods = tiers::Pods {
        namespaces: tiers::Namespaces::One {
            name: namespace,
            labels: ctx.inventory.namespace_labels(namespace),
        },
        pods: &subject.pods,
    };
    match tiers::dns(
        &layers,
        &pods,
        &ctx.dns,
        Protocol::Udp,
        (Isolated::ByNetworkPolicy, dns_isolation(ctx)),
    ) {
        Say::Open(None) => {}
        // allowed, denied by another object (that object's finding), or a condition
        _ => return Vec::new(),
    }
    // a NetworkPolicy of the namespace that selects all of these pods and allows DNS
    if network_policy_allows_dns(ctx, namespace, &subject.pods) {
        return Vec::new();
    }
    vec![Hit::new(
        "spec.egress",
        format!(
            "isolates egress of {} in {namespace} but no rule (of this policy, another Cilium \
             policy, a NetworkPolicy or an Admin-tier object) allows DNS to the DNS pods: every \
             name lookup of these pods will time out",
            selector::describe_pods(&subject.pods)
        ),
        format!("add this rule to spec.egress:\n{}", cilium_dns_rule(ctx)),
    )]
}

/// Whether a NetworkPolicy of `namespace` that selects every pod of `pods` allows DNS.
fn network_policy_allows_dns(
    ctx: &Context<'_>,
    namespace: &str,
    pods: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> bool {
    let Ok(narrow) = Selector::parse(pods) else {
        return false;
    };
    ctx.inventory.policies_in(namespace).iter().any(|p| {
        let subject = crate::netpol::policy::Subject::new(p, namespace);
        let broad = subject.pod_selector();
        Selector::parse(&broad).is_ok_and(|b| narrow.implies(&b))
            && ctx.dns.policy_allows(&subject, Protocol::Udp)
    })
}

/// The DNS allowance written in the kind's own API.
fn dns_allow_rule(ctx: &Context<'_>, kind: LayerKind) -> String {
    if kind.is_cilium() {
        return cilium_dns_rule(ctx);
    }
    let labels = |l: &Labels| {
        l.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let udp = ctx.dns.port_number(Protocol::Udp).unwrap_or(53);
    let tcp = ctx.dns.port_number(Protocol::Tcp).unwrap_or(53);
    let mut out = String::new();
    let accept = if kind == LayerKind::ClusterNetworkPolicy {
        "Accept"
    } else {
        "Allow"
    };
    let _ = writeln!(out, "- name: allow-cluster-dns\n  action: {accept}\n  to:");
    let _ = writeln!(
        out,
        "  - pods:\n      namespaceSelector: {{matchLabels: {{{}}}}}\n      podSelector: {{matchLabels: {{{}}}}}",
        labels(ctx.dns.namespace_labels()),
        labels(ctx.dns.pod_labels())
    );
    if kind == LayerKind::ClusterNetworkPolicy {
        let _ = writeln!(
            out,
            "  protocols:\n  - udp: {{destinationPort: {{number: {udp}}}}}\n  - tcp: {{destinationPort: {{number: {tcp}}}}}"
        );
    } else {
        let _ = writeln!(
            out,
            "  ports:\n  - portNumber: {{protocol: UDP, port: {udp}}}\n  - portNumber: {{protocol: TCP, port: {tcp}}}"
        );
    }
    out
}

fn cilium_dns_rule(ctx: &Context<'_>) -> String {
    let mut labels: Vec<String> = ctx
        .dns
        .pod_labels()
        .iter()
        .map(|(k, v)| format!("k8s:{k}: {v}"))
        .collect();
    labels.insert(
        0,
        format!(
            "k8s:io.kubernetes.pod.namespace: {}",
            ctx.dns.namespace().unwrap_or("kube-system")
        ),
    );
    let port = ctx.dns.port_number(Protocol::Udp).unwrap_or(53);
    format!(
        "- toEndpoints:\n  - matchLabels: {{{}}}\n  toPorts:\n  - ports: [{{port: \"{port}\", protocol: ANY}}]\n    rules:\n      dns: [{{matchPattern: \"*\"}}]\n",
        labels.join(", ")
    )
}

#[cfg(test)]
mod tests;
