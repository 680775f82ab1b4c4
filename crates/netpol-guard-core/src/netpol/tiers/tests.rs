//! The tiers' interplay, one table: which layer decides DNS for the pods of a policy in
//! namespace `apps`, and how.

use super::*;
use crate::netpol::cluster::Inventory;
use crate::netpol::dns::DnsConfig;
use crate::netpol::layers::{Group, Layers, decode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

const ALLOW_DNS_ALL: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: allow-dns}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress:
  - name: dns
    action: Allow
    to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]
    ports: [{portNumber: {protocol: UDP, port: 53}}, {portNumber: {protocol: TCP, port: 53}}]";

const DENY_DNS_ALL: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-dns}
spec:
  priority: 5
  subject: {namespaces: {}}
  egress:
  - name: cluster-dns
    action: Deny
    to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]";

const PASS_DNS: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: pass-dns}
spec:
  priority: 1
  subject: {namespaces: {}}
  egress:
  - {name: pass, action: Pass, to: [{namespaces: {}}], ports: [{portNumber: {protocol: UDP, port: 53}}]}";

const TEAM_ALLOW: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: team-dns}
spec:
  priority: 20
  subject: {namespaces: {matchLabels: {team: a}}}
  egress:
  - {name: dns, action: Allow, to: [{namespaces: {}}]}";

const SAME_PRIORITY_DENY: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: tie-deny}
spec:
  priority: 10
  subject: {namespaces: {}}
  egress:
  - {name: no, action: Deny, to: [{namespaces: {}}]}";

const BANP_DENY: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - {name: deny-all, action: Deny, to: [{networks: [0.0.0.0/0]}]}";

const BANP_INGRESS_DENY: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - {name: deny-all, action: Deny, from: [{namespaces: {}}]}";

const CCNP_DNS: &str = "
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: dns-visibility}
spec:
  endpointSelector: {}
  enableDefaultDeny: {egress: false}
  egress:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}}]
    toPorts: [{ports: [{port: '53', protocol: ANY}], rules: {dns: [{matchPattern: '*'}]}}]";

const CCNP_DENY_DNS: &str = "
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: no-dns}
spec:
  endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: apps}}
  egressDeny:
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system}}]";

const CNP_OTHER_NS: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: other, namespace: shop}
spec:
  endpointSelector: {}
  egress:
  - toEntities: [cluster]";

const CNP_OWN_NS: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: own, namespace: apps}
spec:
  endpointSelector: {}
  egress:
  - toEntities: [cluster]";

const ANP_INGRESS_DENY: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: shield-dns}
spec:
  priority: 3
  subject: {pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}
  ingress:
  - {name: outsiders, action: Deny, from: [{namespaces: {}}]}";

const UNREAD_PEER: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: odd}
spec:
  priority: 2
  subject: {namespaces: {}}
  egress:
  - {name: new-peer, action: Deny, to: [{futurePeer: {}}]}";

const NETWORKS_ALLOW: &str = "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: anywhere}
spec:
  priority: 30
  subject: {namespaces: {}}
  egress:
  - {name: all, action: Allow, to: [{networks: [0.0.0.0/0]}]}";

fn layers(docs: &[&str]) -> Layers {
    let mut layers = Layers::new();
    for doc in docs {
        let value: serde_json::Value = serde_yaml_ng::from_str(doc).expect("yaml");
        layers.insert(decode::layer(&value).expect("layer"));
    }
    layers
}

/// The answer in short: `allowed NAME`, `denied NAME`, `depends`, `open`, `open maybe NAME`.
fn short(say: &Say) -> String {
    match say {
        Say::Allowed(by) => format!("allowed {}", by.name),
        Say::Denied(by) => format!("denied {}", by.name),
        Say::Depends(_) => "depends".into(),
        Say::Open(None) => "open".into(),
        Say::Open(Some(m)) => format!("open maybe {}", m.by.name),
    }
}

#[test]
fn tiers_decide_dns_in_their_order() {
    // (layers, namespace labels known?, pod selector, isolated by NetworkPolicy?, protocol, want)
    let team_a = Labels::from([
        (
            "kubernetes.io/metadata.name".to_string(),
            "apps".to_string(),
        ),
        ("team".to_string(), "a".to_string()),
    ]);
    let team_b = Labels::from([
        (
            "kubernetes.io/metadata.name".to_string(),
            "apps".to_string(),
        ),
        ("team".to_string(), "b".to_string()),
    ]);
    let udp = Protocol::Udp;
    let tcp = Protocol::Tcp;
    let np = Isolated::ByNetworkPolicy;
    let free = Isolated::No;
    type Case<'a> = (
        &'a [&'a str],
        Option<&'a Labels>,
        Isolated,
        Protocol,
        &'a str,
    );
    let cases: &[Case<'_>] = &[
        (&[], None, np, udp, "open"),
        // Admin allow for every namespace: final, whatever NetworkPolicy says
        (&[ALLOW_DNS_ALL], None, np, udp, "allowed allow-dns"),
        (&[ALLOW_DNS_ALL], None, np, tcp, "allowed allow-dns"),
        // the deny has the lower priority number: it wins
        (
            &[ALLOW_DNS_ALL, DENY_DNS_ALL],
            None,
            np,
            udp,
            "denied deny-dns",
        ),
        // a Pass before them hands UDP to NetworkPolicy; TCP still meets the deny
        (
            &[PASS_DNS, ALLOW_DNS_ALL, DENY_DNS_ALL],
            None,
            np,
            udp,
            "open",
        ),
        (
            &[PASS_DNS, ALLOW_DNS_ALL, DENY_DNS_ALL],
            None,
            np,
            tcp,
            "denied deny-dns",
        ),
        // a subject on a label the guard cannot see for this namespace: a condition
        (&[TEAM_ALLOW], None, np, udp, "open maybe team-dns"),
        (&[TEAM_ALLOW], Some(&team_a), np, udp, "allowed team-dns"),
        (&[TEAM_ALLOW], Some(&team_b), np, udp, "open"),
        // a maybe-allow before a certain deny that disagrees: depends
        (
            &[TEAM_ALLOW, {
                "
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: late-deny}
spec:
  priority: 50
  subject: {namespaces: {}}
  egress:
  - {name: no, action: Deny, to: [{namespaces: {}}]}"
            }],
            None,
            np,
            udp,
            "depends",
        ),
        // two objects at one priority that disagree (#222)
        (
            &[ALLOW_DNS_ALL, SAME_PRIORITY_DENY],
            None,
            np,
            udp,
            "depends",
        ),
        // Baseline: silent for pods a NetworkPolicy isolates, decides for the others
        (&[BANP_DENY], None, np, udp, "open"),
        (&[BANP_DENY], None, free, udp, "denied default"),
        // an Admin allow comes before the Baseline deny
        (
            &[BANP_DENY, ALLOW_DNS_ALL],
            None,
            free,
            udp,
            "allowed allow-dns",
        ),
        // Cilium: allows add up, denies win
        (&[CCNP_DNS], None, np, udp, "allowed dns-visibility"),
        (&[CCNP_DNS, CCNP_DENY_DNS], None, np, udp, "denied no-dns"),
        (&[CNP_OTHER_NS], None, np, udp, "open"),
        (&[CNP_OWN_NS], None, np, udp, "allowed own"),
        // the DNS pods' ingress denied by the Admin tier: broken from either side
        (
            &[ALLOW_DNS_ALL, ANP_INGRESS_DENY],
            None,
            np,
            udp,
            "denied shield-dns",
        ),
        // a peer the guard does not read, in a deny: a condition, never a certainty
        (&[UNREAD_PEER], None, np, udp, "open maybe odd"),
        (&[UNREAD_PEER, ALLOW_DNS_ALL], None, np, udp, "depends"),
        // a Baseline deny of the DNS pods' ingress (no NetworkPolicy isolates them)
        (&[BANP_INGRESS_DENY], None, np, udp, "denied default"),
        (
            &[BANP_INGRESS_DENY, ALLOW_DNS_ALL],
            None,
            np,
            udp,
            "denied default",
        ),
        // networks 0.0.0.0/0 holds the DNS pods in an IPv4 cluster
        (&[NETWORKS_ALLOW], None, np, udp, "allowed anywhere"),
    ];
    let config = DnsConfig::default();
    let inventory = Inventory::of_families(crate::netpol::ipblock::IpFamilies::V4);
    let target = DnsTarget::new(&config, &inventory);
    let all = LabelSelector::default();
    for (i, (docs, labels, isolated, protocol, want)) in cases.iter().enumerate() {
        let layers = layers(docs);
        let pods = Pods {
            namespaces: Namespaces::One {
                name: "apps",
                labels: *labels,
            },
            pods: &all,
        };
        let say = dns(
            &layers,
            &pods,
            &target,
            *protocol,
            (*isolated, Isolated::No),
        );
        assert_eq!(short(&say), *want, "case {i}: {say:?}");
    }
}

#[test]
fn the_deciding_rule_is_named() {
    let config = DnsConfig::default();
    let inventory = Inventory::new();
    let target = DnsTarget::new(&config, &inventory);
    let all = LabelSelector::default();
    let pods = Pods {
        namespaces: Namespaces::One {
            name: "apps",
            labels: None,
        },
        pods: &all,
    };
    let say = dns(
        &layers(&[DENY_DNS_ALL]),
        &pods,
        &target,
        Protocol::Udp,
        (Isolated::ByNetworkPolicy, Isolated::No),
    );
    let Say::Denied(by) = say else {
        panic!("{say:?}")
    };
    assert_eq!(
        by.text,
        "AdminNetworkPolicy deny-dns, priority 5 (rule cluster-dns)"
    );
}

#[test]
fn a_group_holds_pods_by_proof_only() {
    let sel = |yaml: &str| -> LabelSelector { serde_yaml_ng::from_str(yaml).expect("selector") };
    let group = Group {
        namespaces: sel("{matchLabels: {team: a}}"),
        pods: sel("{matchLabels: {app: web}}"),
    };
    let narrower = sel("{matchLabels: {team: a, env: prod}}");
    let web = sel("{matchLabels: {app: web, tier: front}}");
    let db = sel("{matchLabels: {app: db}}");
    let any = LabelSelector::default();
    let at = |ns: &LabelSelector, pods: &LabelSelector| {
        holds(
            &group,
            &Pods {
                namespaces: Namespaces::Selected(ns),
                pods,
            },
        )
    };
    assert_eq!(at(&narrower, &web), Reach::Yes);
    assert_eq!(at(&narrower, &db), Reach::No);
    assert!(matches!(at(&any, &web), Reach::Maybe(_)));
}
