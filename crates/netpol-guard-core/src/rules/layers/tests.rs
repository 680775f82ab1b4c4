//! One table per layer rule: objects that must and must not trigger it.

use super::*;
use crate::rules::testing::run_layer;

fn anp(name: &str, priority: i32, subject: &str, rules: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{priority: {priority}, subject: {subject}, {rules}}}"
    )
}

fn banp(rules: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec: {{subject: {{namespaces: {{}}}}, {rules}}}"
    )
}

fn cnp(namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: c, namespace: {namespace}}}\nspec: {spec}"
    )
}

fn ccnp(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {spec}"
    )
}

const ALL: &str = "{namespaces: {}}";
const NOT_SYSTEM: &str = "{namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-public, kube-node-lease]}]}}";
const DNS_TO: &str = "{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}";

/// (object, context, expected: the hit paths, with `?` after one that is conditional)
type Case = (String, Vec<String>, Vec<&'static str>);

fn check(rule: &Rule, cases: &[Case]) {
    for (i, (yaml, others, want)) in cases.iter().enumerate() {
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let hits = run_layer(rule, yaml, &others);
        let got: Vec<String> = hits
            .iter()
            .map(|h| {
                if h.condition.is_some() {
                    format!("{}?", h.path)
                } else {
                    h.path.clone()
                }
            })
            .collect();
        assert_eq!(got, *want, "{} case {i}:\n{yaml}\n{hits:#?}", rule.id);
        for h in &hits {
            assert!(!h.message.is_empty() && !h.fix.is_empty(), "{h:?}");
        }
    }
}

#[test]
fn layer_denies_dns_table() {
    let deny_all_dns = anp(
        "lockdown",
        5,
        ALL,
        "egress: [{name: no-dns, action: Deny, to: [{namespaces: {}}], ports: [{portNumber: {protocol: UDP, port: 53}}]}]",
    );
    let cases: Vec<Case> = vec![
        (deny_all_dns.clone(), vec![], vec!["spec.egress[0]"]),
        // every address: the DNS pods' too, in an IPv4 cluster
        (
            anp(
                "no-out",
                5,
                ALL,
                "egress: [{name: out, action: Deny, to: [{networks: [0.0.0.0/0]}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        // an Allow for DNS before the deny: fine
        (
            anp(
                "ordered",
                5,
                ALL,
                &format!(
                    "egress: [{{name: dns, action: Allow, to: [{DNS_TO}]}}, {{name: rest, action: Deny, to: [{{namespaces: {{}}}}]}}]"
                ),
            ),
            vec![],
            vec![],
        ),
        // an earlier-priority object allows DNS: the deny never sees it
        (
            deny_all_dns.clone(),
            vec![anp(
                "dns-first",
                1,
                ALL,
                &format!("egress: [{{name: dns, action: Allow, to: [{DNS_TO}]}}]"),
            )],
            vec![],
        ),
        // a Pass before it hands DNS to NetworkPolicy
        (
            anp(
                "passes",
                5,
                ALL,
                "egress: [{name: dns, action: Pass, to: [{namespaces: {}}], ports: [{portNumber: {protocol: UDP, port: 53}}]}, {name: rest, action: Deny, to: [{namespaces: {}}]}]",
            ),
            vec![],
            vec![],
        ),
        // the deny's subject on a label the guard may not see: still every such pod
        (
            anp(
                "team",
                5,
                "{namespaces: {matchLabels: {team: a}}}",
                "egress: [{name: d, action: Deny, to: [{namespaces: {}}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        // a deny of other ports, or of other pods
        (
            anp(
                "web",
                5,
                ALL,
                "egress: [{name: d, action: Deny, to: [{namespaces: {}}], ports: [{portNumber: {protocol: TCP, port: 80}}]}]",
            ),
            vec![],
            vec![],
        ),
        (
            anp(
                "other",
                5,
                ALL,
                "egress: [{name: d, action: Deny, to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}]}]",
            ),
            vec![],
            vec![],
        ),
        // a peer the guard does not read: a warning
        (
            anp(
                "odd",
                5,
                ALL,
                "egress: [{name: d, action: Deny, to: [{futurePeer: {}}]}]",
            ),
            vec![],
            vec!["spec.egress[0]?"],
        ),
        // Baseline: the pods no NetworkPolicy isolates lose DNS, if there are any
        (
            banp("egress: [{name: d, action: Deny, to: [{namespaces: {}}]}]"),
            vec![],
            vec!["spec.egress[0]?"],
        ),
        // Cilium: a deny wins over every allow
        (
            ccnp(
                "no-dns",
                "{endpointSelector: {}, egressDeny: [{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system}}]}]}",
            ),
            vec![],
            vec!["spec.egressDeny[0]"],
        ),
        // meant: annotated
        (
            deny_all_dns.replace(
                "metadata: {name: lockdown}",
                "metadata: {name: lockdown, annotations: {netpol-guard.io/dns: skip}}",
            ),
            vec![],
            vec![],
        ),
    ];
    check(&LAYER_DENIES_DNS, &cases);
}

#[test]
fn the_dns_fix_applied_clears_the_finding() {
    for kind_yaml in [
        anp("lockdown", 5, ALL, "egress: [{name: no-dns, action: Deny, to: [{namespaces: {}}]}]"),
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: lockdown}\nspec: {tier: Admin, priority: 5, subject: {namespaces: {}}, egress: [{name: no-dns, action: Deny, to: [{namespaces: {}}]}]}".to_string(),
    ] {
        let hits = run_layer(&LAYER_DENIES_DNS, &kind_yaml, &[]);
        assert_eq!(hits.len(), 1, "{kind_yaml}");
        let fix = &hits[0].fix;
        let start = fix.find("- name:").expect("a rule in the fix");
        let end = fix.find("or annotate").expect("the alternative");
        let rule: serde_json::Value = serde_yaml_ng::from_str::<Vec<serde_json::Value>>(&fix[start..end])
            .expect("the fix parses")
            .remove(0);
        let mut object: serde_json::Value = serde_yaml_ng::from_str(&kind_yaml).expect("yaml");
        object["spec"]["egress"]
            .as_array_mut()
            .expect("egress")
            .insert(0, rule);
        let fixed = serde_yaml_ng::to_string(&object).expect("yaml");
        assert_eq!(run_layer(&LAYER_DENIES_DNS, &fixed, &[]), vec![], "{fixed}");
    }
}

#[test]
fn layer_denies_dns_ingress_table() {
    let shield = |from: &str| {
        anp(
            "shield",
            3,
            "{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}",
            &format!("ingress: [{{name: outsiders, action: Deny, from: [{from}]}}]"),
        )
    };
    let cases: Vec<Case> = vec![
        (shield("{namespaces: {}}"), vec![], vec!["spec.ingress[0]"]),
        (
            shield("{namespaces: {matchLabels: {team: a}}}"),
            vec![],
            vec!["spec.ingress[0]"],
        ),
        // a subject that leaves the DNS pods out
        (
            anp(
                "web",
                3,
                "{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}",
                "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]",
            ),
            vec![],
            vec![],
        ),
        // an earlier allow from everyone on the DNS port
        (
            shield("{namespaces: {}}"),
            vec![anp(
                "dns-in",
                1,
                "{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}",
                "ingress: [{name: dns, action: Allow, from: [{namespaces: {}}]}]",
            )],
            vec![],
        ),
    ];
    check(&LAYER_DENIES_DNS_INGRESS, &cases);
}

#[test]
fn layer_protected_namespace_deny_table() {
    let system = "{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}";
    let cases: Vec<Case> = vec![
        (
            anp(
                "a",
                1,
                ALL,
                "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]",
            ),
            vec![],
            vec!["spec.ingress[0]"],
        ),
        (
            anp(
                "a",
                1,
                system,
                "egress: [{name: d, action: Deny, to: [{networks: ['0.0.0.0/0']}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        // an earlier allow: conditional
        (
            anp(
                "a",
                1,
                system,
                "egress: [{name: ok, action: Allow, to: [{namespaces: {}}]}, {name: d, action: Deny, to: [{networks: ['0.0.0.0/0']}]}]",
            ),
            vec![],
            vec!["spec.egress[1]?"],
        ),
        // protected namespaces left out, or a deny of some ports only
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]",
            ),
            vec![],
            vec![],
        ),
        (
            anp(
                "a",
                1,
                ALL,
                "ingress: [{name: d, action: Deny, from: [{namespaces: {}}], ports: [{portNumber: {protocol: TCP, port: 22}}]}]",
            ),
            vec![],
            vec![],
        ),
        // a label kube-system does not carry (its labels known)
        (
            anp(
                "a",
                1,
                "{namespaces: {matchLabels: {team: a}}}",
                "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]",
            ),
            vec!["{apiVersion: v1, kind: Namespace, metadata: {name: kube-system}}".to_string()],
            vec![],
        ),
        // an earlier-priority object may allow what kube-system needs: a warning
        (
            anp("a", 5, ALL, "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]"),
            vec![anp("system", 1, system, "ingress: [{name: ok, action: Allow, from: [{namespaces: {}}]}]")],
            vec!["spec.ingress[0]?"],
        ),
        // a later one does not
        (
            anp("a", 5, ALL, "ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]"),
            vec![anp("system", 9, system, "ingress: [{name: ok, action: Allow, from: [{namespaces: {}}]}]")],
            vec!["spec.ingress[0]"],
        ),
        // a Baseline deny, where NetworkPolicies of kube-system isolate its pods
        (
            banp("ingress: [{name: d, action: Deny, from: [{namespaces: {}}]}]"),
            vec!["{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: dns, namespace: kube-system}, spec: {podSelector: {}, ingress: [{}]}}".to_string()],
            vec!["spec.ingress[0]?"],
        ),
        // Cilium's clusterwide deny of the world for every endpoint
        (
            ccnp(
                "x",
                "{endpointSelector: {}, egressDeny: [{toEntities: [all]}]}",
            ),
            vec![],
            vec!["spec.egressDeny[0]"],
        ),
    ];
    check(&LAYER_PROTECTED_NAMESPACE_DENY, &cases);
}

#[test]
fn layer_denies_api_server_table() {
    let cases: Vec<Case> = vec![
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{networks: ['0.0.0.0/0']}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        (
            ccnp(
                "x",
                "{endpointSelector: {}, egressDeny: [{toEntities: [kube-apiserver]}]}",
            ),
            vec![],
            vec!["spec.egressDeny[0]"],
        ),
        // nodes: only where the control plane runs there
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{nodes: {}}]}]",
            ),
            vec![],
            vec!["spec.egress[0]?"],
        ),
        // not the API server's port, or not every address
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{networks: ['0.0.0.0/0']}], ports: [{portNumber: {protocol: TCP, port: 25}}]}]",
            ),
            vec![],
            vec![],
        ),
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{networks: ['203.0.113.0/24']}]}]",
            ),
            vec![],
            vec![],
        ),
        // Cilium's world is outside the cluster: not the API server
        (
            ccnp(
                "x",
                "{endpointSelector: {}, egressDeny: [{toEntities: [world]}]}",
            ),
            vec![],
            vec![],
        ),
    ];
    check(&LAYER_DENIES_API_SERVER, &cases);
}

#[test]
fn layer_priority_conflict_table() {
    let deny = anp(
        "b",
        10,
        ALL,
        "egress: [{name: d, action: Deny, to: [{namespaces: {}}]}]",
    );
    let allow = anp(
        "a",
        10,
        ALL,
        "egress: [{name: ok, action: Allow, to: [{namespaces: {}}]}]",
    );
    let cases: Vec<Case> = vec![
        (allow.clone(), vec![deny.clone()], vec!["spec.egress[0]"]),
        // another priority, the same action, disjoint subjects
        (
            allow.replace("priority: 10", "priority: 11"),
            vec![deny.clone()],
            vec![],
        ),
        (
            allow.clone(),
            vec![deny.replace("action: Deny", "action: Allow")],
            vec![],
        ),
        (
            anp(
                "a",
                10,
                "{namespaces: {matchLabels: {team: a}}}",
                "egress: [{name: ok, action: Allow, to: [{namespaces: {}}]}]",
            ),
            vec![anp(
                "b",
                10,
                "{namespaces: {matchLabels: {team: b}}}",
                "egress: [{name: d, action: Deny, to: [{namespaces: {}}]}]",
            )],
            vec![],
        ),
        // its own stored version is not a conflict
        (
            allow.clone(),
            vec![allow.replace("action: Allow", "action: Deny")],
            vec![],
        ),
    ];
    check(&LAYER_PRIORITY_CONFLICT, &cases);
}

#[test]
fn layer_priority_out_of_range_table() {
    let cases: Vec<Case> = vec![
        (
            anp("a", 100, ALL, "egress: []"),
            vec![],
            vec!["spec.priority"],
        ),
        (anp("a", 99, ALL, "egress: []"), vec![], vec![]),
        (anp("a", 0, ALL, "egress: []"), vec![], vec![]),
        (banp("egress: []"), vec![], vec![]),
    ];
    check(&LAYER_PRIORITY_OUT_OF_RANGE, &cases);
}

#[test]
fn layer_networks_match_pods_table() {
    let cases: Vec<Case> = vec![
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{networks: ['0.0.0.0/0']}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Allow, to: [{networks: ['10.0.0.0/8']}]}]",
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Deny, to: [{networks: ['203.0.113.0/24']}]}]",
            ),
            vec![],
            vec![],
        ),
        // Pass hands over, whatever it matches
        (
            anp(
                "a",
                1,
                NOT_SYSTEM,
                "egress: [{name: d, action: Pass, to: [{networks: ['0.0.0.0/0']}]}]",
            ),
            vec![],
            vec![],
        ),
    ];
    check(&LAYER_NETWORKS_MATCH_PODS, &cases);
}

#[test]
fn cilium_fqdn_without_dns_proxy_table() {
    let fqdn = "{toFQDNs: [{matchName: api.example.com}], toPorts: [{ports: [{port: '443'}]}]}";
    let proxy = "{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]}";
    let cases: Vec<Case> = vec![
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{fqdn}]}}"),
            ),
            vec![],
            vec!["spec.egress[0]"],
        ),
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{proxy}, {fqdn}]}}"),
            ),
            vec![],
            vec![],
        ),
        // a clusterwide policy gives every endpoint the proxy rule
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{fqdn}]}}"),
            ),
            vec![ccnp(
                "dns",
                &format!(
                    "{{endpointSelector: {{}}, enableDefaultDeny: {{egress: false}}, egress: [{proxy}]}}"
                ),
            )],
            vec![],
        ),
        // a proxy rule for other endpoints only
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{fqdn}]}}"),
            ),
            vec![ccnp(
                "dns",
                &format!(
                    "{{endpointSelector: {{matchLabels: {{app: other}}}}, egress: [{proxy}]}}"
                ),
            )],
            vec!["spec.egress[0]"],
        ),
    ];
    check(&CILIUM_FQDN_WITHOUT_DNS_PROXY, &cases);
}

#[test]
fn cilium_egress_missing_dns_table() {
    let web = "{toEndpoints: [{matchLabels: {app: db}}]}";
    let dns = "{toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}], toPorts: [{ports: [{port: '53', protocol: UDP}]}]}";
    let np_dns = "{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: dns, namespace: shop}, spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}]}]}}";
    let cases: Vec<Case> = vec![
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{web}]}}"),
            ),
            vec![],
            vec!["spec.egress"],
        ),
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{web}, {dns}]}}"),
            ),
            vec![],
            vec![],
        ),
        // not isolating: enableDefaultDeny off
        (
            cnp(
                "shop",
                &format!(
                    "{{endpointSelector: {{}}, enableDefaultDeny: {{egress: false}}, egress: [{web}]}}"
                ),
            ),
            vec![],
            vec![],
        ),
        // a NetworkPolicy of the namespace allows DNS to all its pods: allows add up
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{web}]}}"),
            ),
            vec![np_dns.to_string()],
            vec![],
        ),
        // a clusterwide DNS allow
        (
            cnp(
                "shop",
                &format!("{{endpointSelector: {{}}, egress: [{web}]}}"),
            ),
            vec![ccnp(
                "dns",
                &format!(
                    "{{endpointSelector: {{}}, enableDefaultDeny: {{egress: false}}, egress: [{dns}]}}"
                ),
            )],
            vec![],
        ),
        // an ingress-only policy
        (
            cnp(
                "shop",
                "{endpointSelector: {}, ingress: [{fromEndpoints: [{}]}]}",
            ),
            vec![],
            vec![],
        ),
    ];
    check(&CILIUM_EGRESS_MISSING_DNS, &cases);
}
