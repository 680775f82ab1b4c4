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
use netpol_guard::check::analyze;
use netpol_guard::config::Config;
use netpol_guard::manifest::{self, Manifest, Object};
use netpol_guard::netpol::Context;
use netpol_guard::netpol::cluster::Inventory;
use netpol_guard::netpol::policy::Subject;
use netpol_guard::rules;

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

criterion_group!(benches, bench);
criterion_main!(benches);
