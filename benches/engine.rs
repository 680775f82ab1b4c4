//! Engine throughput over the fixture corpus (`policies/`): policies judged per second.
//!
//! `evaluate`: the rule catalog over pre-decoded policies, each with its file as context
//! (what the webhook does per request once the object is decoded).
//! `analyze`: decode from parsed documents plus evaluate (what `check` does per file).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol_guard::admission::{self, Endpoint};
use netpol_guard::config::Config;
use netpol_guard::guard::{Identity, Snapshot as Engine};
use netpol_guard::netpol::cluster::Inventory;
use netpol_guard::netpol::policy::Subject;
use netpol_guard::offline::check::analyze;
use netpol_guard::offline::manifest::{self, Manifest, Object};
use netpol_guard::rules;

use netpol_guard_testkit::mix;

// the allocator the binary uses (src/main.rs)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> Vec<Manifest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (manifests, problems) = netpol_guard::offline::check::load(&[root.display().to_string()]);
    assert!(problems.is_empty(), "{problems:?}");
    manifests
}

/// Each file's policies with the file's inventory.
fn decoded(manifests: &[Manifest]) -> Vec<(Inventory, Vec<Arc<NetworkPolicy>>)> {
    manifests
        .iter()
        .map(|m| {
            let mut inventory = Inventory::new();
            let mut policies = Vec::new();
            for value in m
                .docs
                .iter()
                .filter_map(|d| d.parsed.as_ref().ok().cloned().flatten())
            {
                let items = manifest::list_items(&value)
                    .cloned()
                    .unwrap_or_else(|| vec![value.clone()]);
                for item in items {
                    match manifest::decode(&item) {
                        Ok(manifest::Decoded {
                            object: Object::NetworkPolicy(p),
                            ..
                        }) => {
                            let p: Arc<NetworkPolicy> = Arc::from(p);
                            let ns = p.metadata.namespace.clone().unwrap_or("default".into());
                            inventory.insert_policy(&ns, p.clone());
                            policies.push(p);
                        }
                        Ok(manifest::Decoded {
                            object: Object::Namespace(n),
                            ..
                        }) => inventory.insert_namespace(
                            n.metadata.name.as_deref().unwrap_or(""),
                            n.metadata.labels.clone().unwrap_or_default(),
                        ),
                        _ => {}
                    }
                }
            }
            (inventory, policies)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = Config::default();
    let manifests = corpus();
    let files = decoded(&manifests);
    let count: usize = files.iter().map(|(_, p)| p.len()).sum();
    assert!(count >= 90, "corpus has {count} policies");

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            let mut findings = 0;
            for (inventory, policies) in &files {
                let ctx = config.rule_context(inventory);
                for p in policies {
                    findings += rules::evaluate(&ctx, &Subject::new(p, "default")).len();
                }
            }
            std::hint::black_box(findings)
        })
    });
    group.bench_function("analyze", |b| {
        b.iter(|| {
            let mut findings = 0;
            for m in &manifests {
                findings += analyze(std::slice::from_ref(m), &config, "default")
                    .count(rules::Severity::Deny);
            }
            std::hint::black_box(findings)
        })
    });
    group.finish();
}

/// The load benchmark's request mix, each with the endpoint it goes to.
fn mix_by_endpoint() -> Vec<(Endpoint, mix::Req)> {
    mix::mix()
        .into_iter()
        .map(|r| {
            let endpoint = if r.path.starts_with("/mutate") {
                Endpoint::Mutate
            } else {
                Endpoint::Validate
            };
            (endpoint, r)
        })
        .collect()
}

/// `admission::review` over the load benchmark's request mix: decoding, rules, patches and
/// the response, without the transport. `baseline` is what `--baseline` does per request.
fn admission_mix(c: &mut Criterion) {
    let engine = Engine::new(
        Arc::new(Config::default()),
        Arc::new(Inventory::new()),
        Arc::new(Identity {
            namespace: "netpol-guard".into(),
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
        }),
    );
    let requests = mix_by_endpoint();
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("review+encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (endpoint, r) in &requests {
                let reviewed = admission::review(&engine, *endpoint, &r.body);
                bytes += reviewed.body.len();
            }
            std::hint::black_box(bytes)
        })
    });
    group.bench_function("baseline+encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (_, r) in &requests {
                let reviewed = admission::baseline(&r.body);
                bytes += reviewed.body.len();
            }
            std::hint::black_box(bytes)
        })
    });
    group.finish();
    let big = mix::worst_case();
    let mut group = c.benchmark_group("admission-worst-case");
    group.sample_size(10);
    group.bench_function("7MiB-update", |b| {
        b.iter(|| {
            std::hint::black_box(admission::review(&engine, Endpoint::Validate, &big.body).decision)
        })
    });
    group.finish();
}

/// A cluster as the cache holds it: 1000 namespaces with 10 policies each plus the two
/// companions (12,000 policies), `shop`, `kube-system` and `ingress-nginx` among them.
fn synthetic_cluster() -> (
    Vec<Arc<NetworkPolicy>>,
    Vec<Arc<k8s_openapi::api::core::v1::Namespace>>,
) {
    let config = Config::default();
    let mut policies = Vec::new();
    let mut namespaces = Vec::new();
    for n in 0..1000 {
        // the namespaces the mix's policies name are there, as in a real cluster
        let name = match n {
            0 => "shop".to_string(),
            1 => "kube-system".to_string(),
            2 => "ingress-nginx".to_string(),
            n => format!("team-{n}"),
        };
        let mut ns = k8s_openapi::api::core::v1::Namespace::default();
        ns.metadata.name = Some(name.clone());
        ns.metadata.labels = Some([("team".to_string(), format!("t{}", n % 50))].into());
        namespaces.push(Arc::new(ns));
        for i in 0..10 {
            let mut value = mix::policy(&format!("app-{i}"), i % 2 == 0, 0);
            value["metadata"]["namespace"] = serde_json::json!(name);
            value["spec"]["podSelector"]["matchLabels"]["app"] =
                serde_json::json!(format!("app-{i}"));
            policies.push(Arc::new(serde_json::from_value(value).unwrap()));
        }
        for companion in netpol_guard::guard::companions::desired(&config, &name, "uid") {
            policies.push(Arc::new(companion));
        }
    }
    (policies, namespaces)
}

/// The cluster cache: what one publish costs, and what a review costs against a cache of
/// 12,000 policies next to the empty one (same mix, same run).
fn cluster_cache(c: &mut Criterion) {
    use netpol_guard::kubernetes::cache;
    let identity = Arc::new(Identity {
        namespace: "netpol-guard".into(),
        service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
    });
    let config = Arc::new(Config::default());
    let (policies, namespaces) = synthetic_cluster();
    let mut group = c.benchmark_group("cache");
    group.sample_size(20);
    group.throughput(Throughput::Elements(policies.len() as u64));
    group.bench_function("publish-12k-policies-1k-namespaces", |b| {
        b.iter(|| {
            let inventory = cache::inventory(&policies, &namespaces);
            std::hint::black_box(Engine::new(
                config.clone(),
                Arc::new(inventory),
                identity.clone(),
            ))
        })
    });
    group.finish();

    let empty = Engine::new(config.clone(), Arc::new(Inventory::new()), identity.clone());
    let cached = Engine::new(
        config,
        Arc::new(cache::inventory(&policies, &namespaces)),
        identity,
    );
    let requests = mix_by_endpoint();
    let mut group = c.benchmark_group("admission-cluster");
    group.throughput(Throughput::Elements(requests.len() as u64));
    for (name, engine) in [("empty-cache", &empty), ("cache-12k-policies", &cached)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut bytes = 0;
                for (endpoint, r) in &requests {
                    let reviewed = admission::review(engine, *endpoint, &r.body);
                    bytes += reviewed.body.len();
                }
                std::hint::black_box(bytes)
            })
        });
    }
    group.finish();
}

/// `n` policies in one namespace, half of them with their own DNS rule, the others relying
/// on one allow-DNS policy keyed on a pod label: every policy judged against all the others.
fn crowded(n: usize) -> Inventory {
    let mut inventory = Inventory::new();
    inventory.insert_namespace(
        "big",
        [("kubernetes.io/metadata.name".to_string(), "big".to_string())].into(),
    );
    let dns_rule = serde_json::json!({
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    });
    let policy = |name: String, selector: serde_json::Value, egress: Vec<serde_json::Value>| {
        let value = serde_json::json!({
            "metadata": {"name": name, "namespace": "big"},
            "spec": {"podSelector": selector, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"port": 8080}]}], "egress": egress}
        });
        Arc::new(serde_json::from_value::<NetworkPolicy>(value).unwrap())
    };
    inventory.insert_policy(
        "big",
        policy(
            "allow-dns".into(),
            serde_json::json!({"matchLabels": {"to-dns": "allowed"}}),
            vec![dns_rule.clone()],
        ),
    );
    for i in 0..n {
        let mut egress = vec![
            serde_json::json!({"to": [{"podSelector": {"matchLabels": {"app": format!("a{}", (i + 3) % n)}}}]}),
        ];
        if i % 2 == 0 {
            egress.push(dns_rule.clone());
        }
        let selector = serde_json::json!({"matchLabels": {"app": format!("a{i}"), "tier": format!("t{}", i % 7)}});
        inventory.insert_policy("big", policy(format!("p{i}"), selector, egress));
    }
    inventory
}

/// The audit of one namespace of n policies: near-linear in n (policies per second stay
/// about the same as n grows), where judging each policy against every other was quadratic.
fn crowded_namespace(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("one-namespace-audit");
    group.sample_size(10);
    for n in [1_000, 4_000, 16_000] {
        let inventory = crowded(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}-policies"), |b| {
            b.iter(|| {
                let audit = netpol_guard::audit::audit(&inventory, &config, "netpol-guard", None);
                std::hint::black_box(audit.results.len())
            })
        });
    }
    group.finish();
}

/// `n` AdminNetworkPolicies, each for the namespaces of one team (none of the mix's
/// namespaces carries a team label, so every review walks them all), with a DNS allow, a
/// pass and a deny: what the policy layers add to a review.
fn layered(n: usize) -> Inventory {
    let mut inventory = Inventory::new();
    for ns in [
        "shop",
        "payments",
        "kube-system",
        "default",
        "team-a",
        "monitoring",
    ] {
        inventory.insert_namespace(ns, Default::default());
    }
    inventory.mark_namespaces_complete();
    for i in 0..n {
        let object = serde_json::json!({
            "apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "AdminNetworkPolicy",
            "metadata": {"name": format!("team-{i}")},
            "spec": {
                "priority": i % 1000,
                "subject": {"namespaces": {"matchLabels": {"team": format!("t{i}")}}},
                "egress": [
                    {"name": "dns", "action": "Allow",
                     "to": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                     "ports": [{"portNumber": {"protocol": "UDP", "port": 53}}]},
                    {"name": "internal", "action": "Pass", "to": [{"namespaces": {}}]},
                    {"name": "rest", "action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}
                ],
                "ingress": [{"name": "monitoring", "action": "Allow",
                             "from": [{"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
            }
        });
        let layer = netpol_guard::netpol::layers::decode::layer(&object).unwrap();
        inventory.layers_mut().insert(layer);
    }
    inventory
}

/// The request mix of `admission` with 0, 100 and 1,000 AdminNetworkPolicies in the cache.
fn policy_layers(c: &mut Criterion) {
    let identity = Arc::new(Identity {
        namespace: "netpol-guard".into(),
        service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
    });
    let requests = mix_by_endpoint();
    let mut group = c.benchmark_group("admission-layers");
    group.throughput(Throughput::Elements(requests.len() as u64));
    for n in [0, 100, 1_000] {
        let engine = Engine::new(
            Arc::new(Config::default()),
            Arc::new(layered(n)),
            identity.clone(),
        );
        group.bench_function(format!("{n}-anps"), |b| {
            b.iter(|| {
                let mut bytes = 0;
                for (endpoint, r) in &requests {
                    bytes += admission::review(&engine, *endpoint, &r.body).body.len();
                }
                std::hint::black_box(bytes)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench,
    admission_mix,
    cluster_cache,
    crowded_namespace,
    policy_layers
);
criterion_main!(benches);
