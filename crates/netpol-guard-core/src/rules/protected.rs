//! Isolation inside the namespaces the cluster itself runs on.

use super::Context;
use super::{Check, Hit, Rule, Severity};
use crate::netpol::coverage::{Candidates, PodsOutcome, describe_examples, pods_outcome};
use crate::netpol::dns::Reach;
use crate::netpol::index::{Lookup, NamespacePolicies};
use crate::netpol::ipblock::Everywhere;
use crate::netpol::openness::rules_open_everything;
use crate::netpol::policy::{Direction, RuleView, Subject};
use crate::netpol::selector;
use crate::netpol::selector::Selector;
use crate::netpol::tiers::{Namespaces, Pods, opens_everything};

pub(super) const DENY_ALL: Rule = Rule {
    id: "protected-namespace-deny-all",
    default_severity: Severity::Deny,
    summary: "A policy selects every pod of a protected namespace and restricts a direction.",
    check: Check::Policy(deny_all),
};

pub(super) const ISOLATION: Rule = Rule {
    id: "protected-namespace-isolation",
    default_severity: Severity::Warn,
    summary: "A policy isolates some pods of a protected namespace.",
    check: Check::Policy(isolation),
};

/// What a policy in a protected namespace restricts.
#[derive(Debug, Default)]
struct Restricted {
    /// "Ingress", "Egress" or "Ingress and Egress".
    directions: String,
    /// Existing pods left restricted, for the message.
    pods: Option<String>,
    /// Set when other policies of the namespace may open the direction for these pods,
    /// depending on pod labels no existing pod shows.
    condition: Option<String>,
}

/// The directions a policy restricts, if it is in a protected namespace and selects every
/// pod (`all_pods`) or some pods (`!all_pods`). A direction is restricted when it is
/// isolated and the rules that apply to these pods (this policy's, and those of every
/// policy of the namespace that selects them all) do not admit everything on every port.
/// For a policy over every pod, the pods decide next (see [`pods_outcome`]): other
/// policies may open the direction pod by pod.
fn restricted(ctx: &Context<'_>, subject: &Subject<'_>, all_pods: bool) -> Option<Restricted> {
    if !ctx.is_protected(subject.namespace) || subject.selects_all_pods() != all_pods {
        return None;
    }
    let own_selector = subject.pod_selector();
    let own = Selector::parse(&own_selector).ok();
    let prepared = ctx.policies.namespace(subject.namespace);
    let set = covering_set(&prepared, subject, own.as_ref());
    let mut found = Restricted::default();
    let mut dirs = Vec::new();
    let layers = ctx.inventory.layers();
    let pods = Pods {
        namespaces: Namespaces::One {
            name: subject.namespace,
            labels: ctx.inventory.namespace_labels(subject.namespace),
        },
        pods: &own_selector,
    };
    for d in Direction::BOTH {
        if !subject.isolates(d) {
            continue;
        }
        // a layer above NetworkPolicy that admits everything in this direction for these
        // pods: NetworkPolicy restricts nothing there
        if !layers.is_empty()
            && opens_everything(
                layers,
                &pods,
                d == Direction::Egress,
                ctx.inventory.ip_families(),
            )
        {
            continue;
        }
        match opening(ctx, &set, d) {
            Everywhere::Yes => continue,
            // open or locked out by the cluster's IP families alone: a warning naming them
            Everywhere::Depends(why) => {
                found.condition = found.condition.or(Some(why));
                dirs.push(d.policy_type());
                continue;
            }
            Everywhere::No => {}
        }
        if let (true, Some(own)) = (all_pods, &own)
            && served_pod_by_pod(ctx, &prepared, subject, own, d, &mut found)
        {
            continue;
        }
        dirs.push(d.policy_type());
    }
    if dirs.is_empty() {
        return None;
    }
    found.directions = dirs.join(" and ");
    // certain for the pods in view: a named pod outweighs labels no pod shows
    if found.pods.is_some() {
        found.condition = None;
    }
    Some(found)
}

/// Whether the rules of `set` admit every peer on every port in direction `d`.
fn opening(ctx: &Context<'_>, set: &[&Subject<'_>], d: Direction) -> Everywhere {
    let rules: Vec<RuleView<'_>> = set.iter().flat_map(|s| s.rules(d)).collect();
    rules_open_everything(
        &rules,
        ctx.dns.ip_block_matches_pods(),
        ctx.inventory.ip_families(),
    )
}

/// The policy and those of its namespace that select every pod it selects: their rules
/// add to its own.
fn covering_set<'p, 's>(
    prepared: &'p NamespacePolicies<'s>,
    subject: &'p Subject<'s>,
    own: Option<&Selector>,
) -> Vec<&'p Subject<'s>> {
    let entries = &prepared.entries;
    let mut set = vec![subject];
    set.extend(
        (0..entries.len())
            .filter(|&i| !prepared.is_itself(i, subject))
            .filter(|&i| {
                own.zip(entries[i].selector.as_ref())
                    .is_some_and(|(own, broad)| own.implies(broad))
            })
            .map(|i| &entries[i].subject),
    );
    set
}

/// For a policy over every pod whose own rules do not open direction `d`: whether the
/// other policies open it for every pod there is, pod by pod. Records the unserved pods or
/// the condition in `found`.
fn served_pod_by_pod(
    ctx: &Context<'_>,
    prepared: &NamespacePolicies<'_>,
    subject: &Subject<'_>,
    own: &Selector,
    d: Direction,
    found: &mut Restricted,
) -> bool {
    let entries = &prepared.entries;
    let lookup = Lookup::new(
        entries,
        (0..entries.len()).filter(|&i| entries[i].subject.isolates(d)),
    );
    let candidates = Candidates {
        policies: prepared,
        lookup: &lookup,
    };
    let judge = |ids: &[usize]| {
        let set: Vec<&Subject<'_>> = std::iter::once(subject)
            .chain(ids.iter().map(|&i| &entries[i].subject))
            .collect();
        if opening(ctx, &set, d) == Everywhere::Yes {
            Reach::Yes
        } else {
            Reach::No
        }
    };
    match pods_outcome(ctx.inventory, subject, own, candidates, judge) {
        PodsOutcome::Served { .. } => return true,
        PodsOutcome::Unserved { examples, total } => {
            found.pods = Some(describe_examples(&examples, total));
        }
        outcome @ PodsOutcome::IfAlsoMatched { .. } => {
            let what = format!("all {} traffic", d.policy_type());
            if found.condition.is_none() {
                found.condition = outcome.condition(subject, &what);
            }
        }
        PodsOutcome::Depends(_) | PodsOutcome::Nobody => {}
    }
    false
}

fn deny_all(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let Some(found) = restricted(ctx, subject, true) else {
        return Vec::new();
    };
    let dirs = &found.directions;
    let pods = found
        .pods
        .as_ref()
        .map_or_else(String::new, |p| format!(" (no policy opens it for {p})"));
    let hit = Hit::new(
        "spec.podSelector",
        format!(
            "selects every pod in the protected namespace {} and restricts {dirs}{pods}: DNS, \
             the CNI, metrics and controllers there lose traffic and the cluster can go down",
            subject.namespace,
        ),
        "set spec.podSelector.matchLabels to the pods you mean to isolate and allow everything \
         they need (the DNS pods need ingress on UDP and TCP 53 from every namespace)",
    );
    vec![match found.condition {
        Some(condition) => {
            let mut hit = hit.depends(condition.clone());
            // the condition is said where a warning shows it, unless the message says it
            if !hit.message.contains(&condition) {
                hit.message = format!(
                    "{}; this depends on what the guard cannot see: {condition}",
                    hit.message
                );
            }
            hit
        }
        None => hit,
    }]
}

fn isolation(ctx: &Context<'_>, subject: &Subject<'_>) -> Vec<Hit> {
    let Some(Restricted {
        directions: dirs, ..
    }) = restricted(ctx, subject, false)
    else {
        return Vec::new();
    };
    vec![Hit::new(
        "spec.podSelector",
        format!(
            "isolates {dirs} for {} in the protected namespace {}",
            selector::describe_pods(&subject.pod_selector()),
            subject.namespace
        ),
        "make sure the rules admit everything these system pods need (DNS, the API server, \
         kubelet probes, metrics scrapes) before applying",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{Setup, run, run_with, table};

    /// The layers above NetworkPolicy: an Admin allow of all egress (with no pass before it)
    /// leaves a kube-system default-deny restricting ingress only; a Cilium `all`
    /// allow opens both directions; nothing opens ingress in the Admin tier.
    #[test]
    fn layers_that_admit_everything_open_a_direction() {
        const DEFAULT_DENY: &str = "metadata: {name: default-deny, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}";
        const EGRESS_ONLY: &str = "metadata: {name: default-deny, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Egress]}";
        let anp_all_egress = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: open}, spec: {priority: 1, subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}, egress: [{name: all, action: Allow, to: [{networks: ['0.0.0.0/0']}]}]}}";
        let anp_pass_first = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: open}, spec: {priority: 1, subject: {namespaces: {}}, egress: [{name: p, action: Pass, to: [{namespaces: {}}]}, {name: all, action: Allow, to: [{networks: ['0.0.0.0/0']}]}]}}";
        let anp_other_ns = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: open}, spec: {priority: 1, subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}, egress: [{name: all, action: Allow, to: [{networks: ['0.0.0.0/0']}]}]}}";
        let anp_deny_first = "{apiVersion: policy.networking.k8s.io/v1alpha1, kind: AdminNetworkPolicy, metadata: {name: open}, spec: {priority: 1, subject: {namespaces: {}}, egress: [{name: d, action: Deny, to: [{networks: ['203.0.113.0/24']}]}, {name: all, action: Allow, to: [{networks: ['0.0.0.0/0']}]}]}}";
        let ccnp_all = "{apiVersion: cilium.io/v2, kind: CiliumClusterwideNetworkPolicy, metadata: {name: all}, spec: {endpointSelector: {}, ingress: [{fromEntities: [all]}], egress: [{toEntities: [all]}]}}";
        let ccnp_all_and_deny = "{apiVersion: cilium.io/v2, kind: CiliumClusterwideNetworkPolicy, metadata: {name: all}, spec: {endpointSelector: {}, egress: [{toEntities: [all]}], egressDeny: [{toEntities: [world]}]}}";
        let cases: &[(&str, &[&str], &str)] = &[
            (DEFAULT_DENY, &[], "Ingress and Egress"),
            (DEFAULT_DENY, &[anp_all_egress], "Ingress"),
            (EGRESS_ONLY, &[anp_all_egress], ""),
            (DEFAULT_DENY, &[anp_pass_first], "Ingress and Egress"),
            (DEFAULT_DENY, &[anp_other_ns], "Ingress and Egress"),
            (DEFAULT_DENY, &[ccnp_all], ""),
            // what the deny takes is lost with or without the NetworkPolicy
            (DEFAULT_DENY, &[ccnp_all_and_deny], "Ingress"),
            (DEFAULT_DENY, &[anp_deny_first], "Ingress"),
        ];
        for (i, (yaml, others, want)) in cases.iter().enumerate() {
            let hits = run(&DENY_ALL, yaml, others);
            let got = hits.first().map_or("", |h| {
                if h.message.contains("restricts Ingress and Egress") {
                    "Ingress and Egress"
                } else if h.message.contains("restricts Ingress") {
                    "Ingress"
                } else {
                    "other"
                }
            });
            assert_eq!(got, *want, "case {i}: {hits:#?}");
        }
    }

    #[test]
    fn deny_all_table() {
        table(
            &DENY_ALL,
            &[
                // must fire
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
                    &["spec.podSelector"],
                ),
                // no spec: selects all, isolates ingress
                (
                    "metadata: {name: d, namespace: kube-system}",
                    &["spec.podSelector"],
                ),
                (
                    "metadata: {name: d, namespace: kube-public}\nspec: {policyTypes: [Egress]}",
                    &["spec.podSelector"],
                ),
                (
                    "metadata: {name: d, namespace: kube-node-lease}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {}}]}]}",
                    &["spec.podSelector"],
                ),
                // ingress allowed fully, egress restricted
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}]}",
                    &["spec.podSelector"],
                ),
                // must not fire
                (
                    "metadata: {name: d, namespace: default}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}",
                    &[],
                ),
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {matchLabels: {app: x}}, policyTypes: [Ingress]}",
                    &[],
                ),
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}, ingress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}], egress: [{}]}",
                    &[],
                ),
            ],
        );
    }

    #[test]
    fn deny_all_with_other_policies_and_pods() {
        let deny = "metadata: {name: deny, namespace: kube-system}\nspec: {podSelector: {}, policyTypes: [Ingress]}";
        let open_for = |labels: &str| {
            format!(
                "kind: NetworkPolicy\nmetadata: {{name: open, namespace: kube-system}}\nspec: {{podSelector: {{matchLabels: {labels}}}, ingress: [{{}}]}}"
            )
        };
        let pod = |name: &str, labels: &str| {
            format!(
                "kind: Pod\nmetadata: {{name: {name}, namespace: kube-system, labels: {labels}}}"
            )
        };
        let open_system = open_for("{tier: system}");
        let dns = pod("coredns-1", "{k8s-app: kube-dns, tier: system}");
        let metrics = pod("metrics-server-1", "{k8s-app: metrics-server}");
        // (context, hits, whether the hit depends on pod labels)
        let cases: Vec<(Vec<&str>, usize, bool)> = vec![
            (vec![], 1, false),
            // other policies open ingress for some labels, no pod in view: depends
            (vec![&open_system], 1, true),
            // every existing pod opened: clean
            (vec![&open_system, &dns], 0, false),
            // one existing pod left closed: certain
            (vec![&open_system, &dns, &metrics], 1, false),
        ];
        for (others, n, depends) in cases {
            let hits = run(&DENY_ALL, deny, &others);
            assert_eq!(hits.len(), n, "{others:?}: {hits:?}");
            if let Some(h) = hits.first() {
                assert_eq!(h.condition.is_some(), depends, "{others:?}: {h:?}");
            }
        }
        let hits = run(&DENY_ALL, deny, &[&open_system, &dns, &metrics]);
        assert!(
            hits[0]
                .message
                .contains("no policy opens it for pod metrics-server-1"),
            "{}",
            hits[0].message
        );
    }

    #[test]
    fn every_address_is_both_families_unless_the_cluster_has_one() {
        use crate::netpol::ipblock::IpFamilies::{self, *};
        let ks = |from: &str| {
            format!(
                "metadata: {{name: p, namespace: kube-system}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress], ingress: [{{from: [{from}]}}]}}"
            )
        };
        let v6 = ks("{ipBlock: {cidr: '::/0'}}");
        let v4 = ks("{ipBlock: {cidr: 0.0.0.0/0}}");
        let both = ks("{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: '::/0'}}");
        // (policy, families, expected: None = no finding, Some(conditional))
        let cases: [(&str, IpFamilies, Option<bool>); 10] = [
            // ::/0 admits no IPv4 peer: an IPv4 kube-system is locked out; a dual-stack one
            // loses its IPv4 traffic, which breaks it if its Services and DNS use IPv4
            (&v6, V4, Some(false)),
            (&v6, Dual, Some(true)),
            (&v6, V6, None),
            (&v6, Unknown, Some(true)),
            (&v4, V4, None),
            (&v4, V6, Some(false)),
            (&v4, Dual, Some(true)),
            (&v4, Unknown, Some(true)),
            (&both, Unknown, None),
            (&both, Dual, None),
        ];
        for (yaml, families, want) in cases {
            let setup = Setup {
                families,
                ..Setup::default()
            };
            let hits = run_with(&DENY_ALL, yaml, &[], &setup);
            let got = hits.first().map(|h| h.condition.is_some());
            assert_eq!(got, want, "{yaml} in {families:?}: {hits:#?}");
            if want == Some(true) {
                let why = hits[0].condition.as_deref().unwrap_or_default();
                let named = if families == Dual {
                    "dual-stack"
                } else {
                    "--ip-families"
                };
                assert!(why.contains(named), "{why}");
            }
        }
    }

    #[test]
    fn deny_all_means_restricts() {
        let ks =
            |spec: &str| format!("metadata: {{name: p, namespace: kube-system}}\nspec: {spec}");
        let cases: &[(&str, bool)] = &[
            ("{podSelector: {}, ingress: [{}]}", false),
            (
                "{podSelector: {}, ingress: [{ports: [{protocol: TCP, port: 1, endPort: 65535}, {protocol: UDP, port: 1, endPort: 65535}, {protocol: SCTP, port: 1, endPort: 65535}]}]}",
                false,
            ),
            (
                "{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 1, endPort: 100}, {protocol: UDP}]}, {ports: [{port: 101, endPort: 65535}, {protocol: SCTP}]}]}",
                false,
            ),
            (
                "{podSelector: {}, ingress: [{ports: [{port: 1, endPort: 65535}]}]}",
                true,
            ),
            (
                "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
                true,
            ),
            (
                "{podSelector: {}, policyTypes: [Ingress, Egress], ingress: [{}]}",
                true,
            ),
        ];
        for (spec, want) in cases {
            let hits = crate::rules::testing::run(&DENY_ALL, &ks(spec), &[]);
            assert_eq!(!hits.is_empty(), *want, "{spec}");
        }
        // additivity: an allow-all sibling selecting the same pods makes a deny-all restrict
        // nothing; one that selects fewer pods does not
        let deny = ks("{podSelector: {}, policyTypes: [Ingress]}");
        let open_all = "kind: NetworkPolicy\nmetadata: {name: open, namespace: kube-system}\nspec: {podSelector: {}, ingress: [{}]}";
        let open_some = "kind: NetworkPolicy\nmetadata: {name: open, namespace: kube-system}\nspec: {podSelector: {matchLabels: {app: x}}, ingress: [{}]}";
        let open_elsewhere = "kind: NetworkPolicy\nmetadata: {name: open, namespace: default}\nspec: {podSelector: {}, ingress: [{}]}";
        assert!(crate::rules::testing::run(&DENY_ALL, &deny, &[open_all]).is_empty());
        assert_eq!(
            crate::rules::testing::run(&DENY_ALL, &deny, &[open_some]).len(),
            1
        );
        assert_eq!(
            crate::rules::testing::run(&DENY_ALL, &deny, &[open_elsewhere]).len(),
            1
        );
    }

    #[test]
    fn protected_namespaces_are_configurable() {
        let config = Setup {
            protected: vec!["platform".into()],
            ..Setup::default()
        };
        let yaml = "metadata: {name: d, namespace: platform}\nspec: {podSelector: {}}";
        assert_eq!(run_with(&DENY_ALL, yaml, &[], &config).len(), 1);
        let yaml = "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}}";
        assert!(run_with(&DENY_ALL, yaml, &[], &config).is_empty());
    }

    #[test]
    fn isolation_table() {
        table(
            &ISOLATION,
            &[
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {matchLabels: {app: x}}, policyTypes: [Ingress]}",
                    &["spec.podSelector"],
                ),
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {matchLabels: {app: x}}, ingress: [{ports: [{port: 53}]}]}",
                    &["spec.podSelector"],
                ),
                // selects all: that is the deny-all rule's business
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {}}",
                    &[],
                ),
                (
                    "metadata: {name: d, namespace: kube-system}\nspec: {podSelector: {matchLabels: {app: x}}, ingress: [{}]}",
                    &[],
                ),
                (
                    "metadata: {name: d, namespace: apps}\nspec: {podSelector: {matchLabels: {app: x}}}",
                    &[],
                ),
            ],
        );
    }
}
