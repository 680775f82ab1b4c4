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
use netpol_guard::admission::{self, Endpoint, Engine, Identity};
use netpol_guard::check::analyze;
use netpol_guard::config::Config;
use netpol_guard::manifest::{self, Manifest, Object};
use netpol_guard::netpol::Context;
use netpol_guard::netpol::cluster::Inventory;
use netpol_guard::netpol::policy::Subject;
use netpol_guard::rules;

mod mix;

// the allocator the binary uses (src/main.rs)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> Vec<Manifest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (manifests, problems) = netpol_guard::check::load(&[root.display().to_string()]);
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
                let ctx = Context::new(&config, inventory);
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
    let requests: Vec<(Endpoint, mix::Req)> = mix::mix()
        .into_iter()
        .map(|r| {
            let endpoint = if r.path.starts_with("/mutate") {
                Endpoint::Mutate
            } else {
                Endpoint::Validate
            };
            (endpoint, r)
        })
        .collect();
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("review+encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (endpoint, r) in &requests {
                let reviewed = admission::review(&engine, *endpoint, &r.body);
                bytes += admission::to_json(&reviewed.review).unwrap().len();
            }
            std::hint::black_box(bytes)
        })
    });
    group.bench_function("baseline+encode", |b| {
        b.iter(|| {
            let mut bytes = 0;
            for (_, r) in &requests {
                let reviewed = admission::baseline(&r.body);
                bytes += admission::to_json(&reviewed.review).unwrap().len();
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

criterion_group!(benches, bench, admission_mix);
criterion_main!(benches);
