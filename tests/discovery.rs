//! Cluster verdicts that know the pods and the cluster's DNS, against the in-memory API
//! server of `common::fake_api`: the cache watches pods (metadata only) and the DNS
//! Service candidates with their EndpointSlices, and admission reads what it found.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Review;
use common::fake_api::{FakeApi, client, namespace};
use common::{PATIENCE, eventually};
use netpol_guard::admission::{Endpoint, review};
use netpol_guard::config::Config;
use netpol_guard::kubernetes::cache;
use netpol_guard::runtime::state::SharedState;
use serde_json::{Value, json};
use tokio::sync::watch;

fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "example"}]}})
}

/// A DNS Service on 53 whose pods listen on `pod_port` under the names dns/dns-tcp, with
/// one EndpointSlice holding `ips`.
fn dns_service(api: &FakeApi, ns: &str, name: &str, selector: Value, pod_port: i32, ips: &[&str]) {
    api.put(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"selector": selector, "ports": [
                   {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns-tcp"},
                   {"name": "metrics", "port": 9154, "protocol": "TCP", "targetPort": 9154}]}}),
    );
    api.put(
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                            "labels": {"kubernetes.io/service-name": name}},
               "addressType": "IPv4",
               "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
               "ports": [{"name": "dns", "port": pod_port, "protocol": "UDP"},
                         {"name": "dns-tcp", "port": pod_port, "protocol": "TCP"},
                         {"name": "metrics", "port": 9154, "protocol": "TCP"}]}),
    );
}

/// The cache of one replica.
struct Cache {
    state: SharedState,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(api: &FakeApi) -> Cache {
    let state = common::state_with(Config::default());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(cache::run(
        client(api),
        state.clone(),
        cache::Timing::default(),
        rx,
    ));
    Cache { state, stop, task }
}

impl Cache {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("cache stops")
            .unwrap();
    }
}

/// An egress policy of `ns` for `pods` with `egress` rules.
fn egress(ns: &str, name: &str, pods: Value, rules: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"podSelector": {"matchLabels": pods}, "policyTypes": ["Egress"], "egress": rules}})
}

/// DNS in a policy of its own, for the pods labelled `to-dns: allowed` (label-composed sets).
fn allow_dns_by_label(api: &FakeApi) {
    let dns_rule = json!([{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]);
    let policy = egress(
        "shop",
        "allow-to-dns",
        json!({"to-dns": "allowed"}),
        dns_rule,
    );
    api.put("networkpolicies", policy);
}

fn to_db() -> Value {
    json!([{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}])
}

/// (allowed, warnings, patch as JSON) of a CREATE on both endpoints.
fn verdict(state: &SharedState, object: &Value) -> (bool, Vec<String>, Option<Value>) {
    let body = Review::policy("CREATE", object.clone()).body();
    let snapshot = state.snapshot();
    let validated = review(&snapshot, Endpoint::Validate, &body).response;
    let mutated = review(&snapshot, Endpoint::Mutate, &body).response;
    assert!(mutated.allowed);
    let patch = mutated
        .patch
        .map(|p| serde_json::from_slice::<Value>(&p).unwrap());
    (validated.allowed, validated.warnings, patch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_decide_label_composed_policy_sets() {
    let api = FakeApi::new();
    for ns in ["shop", "kube-system"] {
        api.put("namespaces", namespace(ns));
    }
    dns_service(
        &api,
        "kube-system",
        "kube-dns",
        json!({"k8s-app": "kube-dns"}),
        53,
        &["10.96.0.10"],
    );
    allow_dns_by_label(&api);
    api.put(
        "pods",
        pod("shop", "web-1", json!({"app": "web", "to-dns": "allowed"})),
    );
    let cache = start(&api);
    eventually("pods known", PATIENCE, async || {
        let inv = cache.state.snapshot().inventory;
        inv.knows_all_pods() && inv.pod_count() == 1
    })
    .await;

    let web = egress("shop", "web-to-db", json!({"app": "web"}), to_db());
    // every existing pod it selects also gets DNS: clean, nothing injected
    let (allowed, warnings, patch) = verdict(&cache.state, &web);
    assert!(
        allowed && warnings.is_empty() && patch.is_none(),
        "{warnings:?} {patch:?}"
    );

    // a pod without the DNS label: certain, the pod is named, the allowance injected
    api.put("pods", pod("shop", "web-2", json!({"app": "web"})));
    eventually("second pod", PATIENCE, async || {
        cache.state.snapshot().inventory.pod_count() == 2
    })
    .await;
    let body = Review::policy("CREATE", web.clone()).body();
    let denied = review(&cache.state.snapshot(), Endpoint::Validate, &body).response;
    assert!(!denied.allowed);
    let message = denied.status.message;
    assert!(
        message.contains("egress-missing-dns") && message.contains("pod web-2"),
        "{message}"
    );
    let (_, _, patch) = verdict(&cache.state, &web);
    assert!(patch.is_some(), "certain: the allowance is injected");

    // no pod selected yet: depends on the labels they will have; admitted, not mutated
    let api_pods = egress("shop", "api-to-db", json!({"app": "api"}), to_db());
    let (allowed, warnings, patch) = verdict(&cache.state, &api_pods);
    assert!(allowed, "{warnings:?}");
    assert!(patch.is_none());
    assert!(
        warnings.iter().any(|w| w.contains(
            "pods selected by api-to-db get DNS only if they also match to-dns=allowed (policy shop/allow-to-dns)"
        )),
        "{warnings:?}"
    );

    // the pod goes away: clean again
    api.delete("pods", "shop", "web-2");
    eventually("pod gone", PATIENCE, async || {
        cache.state.snapshot().inventory.pod_count() == 1
    })
    .await;
    let (allowed, warnings, _) = verdict(&cache.state, &web);
    assert!(allowed && warnings.is_empty(), "{warnings:?}");
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_an_openshift_shaped_dns_service() {
    let api = FakeApi::new();
    for ns in ["shop", "openshift-dns"] {
        api.put("namespaces", namespace(ns));
    }
    let selector = json!({"dns.operator.openshift.io/daemonset-dns": "default"});
    dns_service(
        &api,
        "openshift-dns",
        "dns-default",
        selector,
        5353,
        &["10.128.0.10", "10.129.0.7"],
    );
    let cache = start(&api);
    eventually("the DNS Service discovered", PATIENCE, async || {
        cache.state.metrics.render().contains(
            r#"netpol_guard_dns_target_info{namespace="openshift-dns",source="discovered"} 1"#,
        ) as i64
            == 1
    })
    .await;
    let openshift_dns = json!([{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "openshift-dns"}},
                                        "podSelector": {"matchLabels": {"dns.operator.openshift.io/daemonset-dns": "default"}}}],
                                "ports": [{"port": "dns", "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}]}]);
    let (allowed, warnings, patch) = verdict(
        &cache.state,
        &egress(
            "shop",
            "openshift-style",
            json!({"app": "web"}),
            openshift_dns,
        ),
    );
    assert!(
        allowed && warnings.is_empty() && patch.is_none(),
        "{warnings:?}"
    );
    // DNS through an ipBlock holding every DNS pod: certain here
    let by_cidr = json!([{"to": [{"ipBlock": {"cidr": "10.128.0.0/14"}}], "ports": [{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}]}]);
    let (allowed, warnings, _) = verdict(
        &cache.state,
        &egress("shop", "cidr", json!({"app": "web"}), by_cidr),
    );
    assert!(allowed, "{warnings:?}");
    assert!(
        !warnings.iter().any(|w| w.contains("egress-missing-dns")),
        "{warnings:?}"
    );

    // the kube-system recipe allows nothing here; the injected rule is OpenShift's DNS
    let (allowed, _, patch) = verdict(
        &cache.state,
        &egress("shop", "web-to-db", json!({"app": "web"}), to_db()),
    );
    assert!(!allowed);
    let patch = patch.expect("injected");
    let rule = &patch[0]["value"];
    assert_eq!(
        rule["ports"],
        json!([{"port": 5353, "protocol": "UDP"}, {"port": 5353, "protocol": "TCP"}])
    );
    assert_eq!(
        rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "openshift-dns"
    );
    // the Service's metrics port is not DNS
    assert!(!rule.to_string().contains("9154"));

    // the Service goes away: back to the configured target
    api.delete("services", "openshift-dns", "dns-default");
    eventually("fallback", PATIENCE, async || {
        cache.state.metrics.render().contains(
            r#"netpol_guard_dns_target_info{namespace="kube-system",source="configured"} 1"#,
        ) as i64
            == 1
    })
    .await;
    cache.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rbac_for_pods_and_services_pods_are_unknown_and_dns_is_configured() {
    let api = FakeApi::new();
    for ns in ["shop", "kube-system"] {
        api.put("namespaces", namespace(ns));
    }
    allow_dns_by_label(&api);
    api.put("pods", pod("shop", "web-1", json!({"app": "web"})));
    for resource in ["pods", "services", "endpointslices"] {
        api.forbid(resource);
    }
    let cache = start(&api);
    eventually("cache synced", PATIENCE, async || {
        cache.state.metrics.cache.synced()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let snapshot = cache.state.snapshot();
    assert!(!snapshot.inventory.knows_all_pods());
    assert_eq!(
        cache.state.metrics.render().contains(
            r#"netpol_guard_dns_target_info{namespace="kube-system",source="configured"} 1"#
        ) as i64,
        1
    );
    // the pod that would make it certain is not visible: a warning, not a denial
    let (allowed, warnings, patch) = verdict(
        &cache.state,
        &egress("shop", "web-to-db", json!({"app": "web"}), to_db()),
    );
    assert!(allowed && patch.is_none(), "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("only if they also match to-dns=allowed")),
        "{warnings:?}"
    );
    cache.stop().await;
}

/// A kube-system policy whose only ingress peer is `::/0`: in an IPv4 or dual-stack cluster
/// it admits no IPv4 peer and locks kube-system out; the cluster's families come from the
/// `kubernetes` Service, and while they are unknown the verdict is a warning naming them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_services_ip_families_decide_what_a_whole_family_block_admits() {
    let api = FakeApi::new();
    api.put("namespaces", namespace("kube-system"));
    api.put("namespaces", namespace("default"));
    let v6_only = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "from-anywhere-v6", "namespace": "kube-system"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "::/0"}}]}]}});
    let cache = start(&api);
    eventually("synced", PATIENCE, async || {
        cache.state.metrics.cache.synced()
    })
    .await;

    // families unknown (no kubernetes Service): admitted, with the condition named
    let (allowed, warnings, _) = verdict(&cache.state, &v6_only);
    assert!(allowed, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("protected-namespace-deny-all")
                && w.contains("::/0")
                && w.contains("--ip-families")),
        "{warnings:?}"
    );

    let api_service = |families: Value| {
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "kubernetes", "namespace": "default"},
               "spec": {"ipFamilies": families, "ports": [{"name": "https", "port": 443}]}})
    };
    // an IPv4 cluster: locked out, certainly
    api.put("services", api_service(json!(["IPv4"])));
    eventually("IPv4 known", PATIENCE, async || {
        cache.state.snapshot().inventory.ip_families() == netpol_guard::netpol::IpFamilies::V4
    })
    .await;
    let body = Review::policy("CREATE", v6_only.clone()).body();
    let denied = review(&cache.state.snapshot(), Endpoint::Validate, &body).response;
    assert!(!denied.allowed);
    assert!(
        denied
            .status
            .message
            .contains("protected-namespace-deny-all"),
        "{}",
        denied.status.message
    );

    // an IPv6 cluster: ::/0 is every address
    api.put("services", api_service(json!(["IPv6"])));
    eventually("IPv6 known", PATIENCE, async || {
        cache.state.snapshot().inventory.ip_families() == netpol_guard::netpol::IpFamilies::V6
    })
    .await;
    let (allowed, warnings, _) = verdict(&cache.state, &v6_only);
    assert!(
        allowed && !warnings.iter().any(|w| w.contains("protected-namespace")),
        "{warnings:?}"
    );
    cache.stop().await;
}

fn anp(name: &str, priority: i32, action: &str) -> Value {
    json!({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
           "metadata": {"name": name},
           "spec": {"priority": priority, "subject": {"namespaces": {}},
                    "egress": [{"name": "dns", "action": action,
                                "to": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                                "ports": [{"portNumber": {"protocol": "UDP", "port": 53}},
                                          {"portNumber": {"protocol": "TCP", "port": 53}}]}]}})
}

fn cache_objects(state: &SharedState, resource: &str) -> f64 {
    let text = state.metrics.render();
    common::metric(
        &text,
        &format!(r#"netpol_guard_cache_objects{{resource="{resource}"}}"#),
    )
}

/// The cache watches AdminNetworkPolicies once discovery finds their CRD: an Admin DNS
/// allow admits an egress policy without DNS untouched, an Admin deny refuses it, and the
/// objects are forgotten when they are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_watches_admin_network_policies_that_discovery_finds() {
    let api = FakeApi::new();
    api.put("namespaces", namespace("shop"));
    api.put("namespaces", namespace("kube-system"));
    api.install_policy_layers(true);
    api.put("adminnetworkpolicies", anp("allow-dns", 10, "Allow"));
    let cache = start(&api);
    let no_dns = egress("shop", "web", json!({"app": "web"}), to_db());
    eventually("the cache sees it", PATIENCE, async || {
        cache_objects(&cache.state, "adminnetworkpolicies") == 1.0
    })
    .await;
    let (allowed, warnings, patch) = verdict(&cache.state, &no_dns);
    assert!(
        allowed && warnings.is_empty() && patch.is_none(),
        "{warnings:?} {patch:?}"
    );

    // a deny at an earlier priority: refused, nothing injected
    api.put("adminnetworkpolicies", anp("deny-dns", 1, "Deny"));
    eventually("the cache sees it", PATIENCE, async || {
        cache_objects(&cache.state, "adminnetworkpolicies") == 2.0
    })
    .await;
    let (allowed, _, patch) = verdict(&cache.state, &no_dns);
    assert!(!allowed && patch.is_none());

    // both deleted: NetworkPolicy alone decides again, and the patch comes back
    api.delete("adminnetworkpolicies", "", "deny-dns");
    api.delete("adminnetworkpolicies", "", "allow-dns");
    eventually("the cache sees it", PATIENCE, async || {
        cache_objects(&cache.state, "adminnetworkpolicies") == 0.0
    })
    .await;
    let (allowed, _, patch) = verdict(&cache.state, &no_dns);
    assert!(!allowed && patch.is_some());
    assert!(
        api.requests()
            .iter()
            .any(|r| r
                .starts_with("GET /apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies")),
        "watched"
    );
    cache.stop().await;
}

/// Without the CRDs nothing of them is requested but discovery: absent layers are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_layer_crds_are_not_watched() {
    let api = FakeApi::new();
    api.put("namespaces", namespace("shop"));
    let cache = start(&api);
    eventually("the cache sees it", PATIENCE, async || {
        cache.state.metrics.cache.synced()
    })
    .await;
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /apis/policy.networking.k8s.io/v1alpha1"),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("adminnetworkpolicies")),
        "{requests:?}"
    );
    cache.stop().await;
}
