//! The cluster cache at scale: 5,000 namespaces, 20,000 NetworkPolicies and 100,000 pods fed
//! to the cache as watch events, as the API server would list them.
//!
//! Reports the process's peak RSS once the cache is built and published, what publishing
//! one change costs (one watch event applied + a new snapshot in service), and review
//! latency at a fixed rate (open loop, measured from each review's scheduled time) against
//! the empty cache and against the full one while pod events keep arriving.
//!
//! ```sh
//! cargo bench --bench scale             # the full size, about a minute
//! cargo bench --bench scale -- --smoke  # a tenth of it, what CI runs
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::watcher::Event;
use netpol_guard::admission::{Endpoint, review};
use netpol_guard::config::Config;
use netpol_guard::kubernetes::cache::{Builder, Fact, Source, policy_fact};
use netpol_guard::runtime::state::{Shared, SharedState};
use netpol_guard_testkit::mix::mix;
use netpol_guard_testkit::peak_rss_mib;
use serde_json::json;

// the allocator the server binary runs with
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Size {
    namespaces: usize,
    policies_per_namespace: usize,
    pods_per_namespace: usize,
    reviews: usize,
}

fn labels(pairs: &[(&str, String)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A platform-shaped namespace: a label-composed policy set (DNS by label, one policy per
/// destination), and pods of a few deployments that carry the opt-in labels.
fn namespace_facts(i: usize, size: &Size) -> (Fact, Vec<Fact>, Vec<Fact>) {
    let ns = format!("team-{i:05}");
    let namespace = Fact::Namespace {
        name: ns.clone(),
        terminating: false,
        labels: labels(&[("team", format!("t{}", i % 50)), ("env", "prod".into())]),
    };
    let policy = |name: &str, spec: serde_json::Value| {
        let p: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .unwrap();
        policy_fact(p)
    };
    let dns = json!([{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                               "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                       "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]);
    let mut policies = vec![
        policy(
            "deny-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        policy(
            "allow-to-dns",
            json!({"podSelector": {"matchLabels": {"to-dns": "allowed"}}, "policyTypes": ["Egress"], "egress": dns}),
        ),
    ];
    for j in 2..size.policies_per_namespace {
        policies.push(policy(
            &format!("allow-to-db-{j}"),
            json!({"podSelector": {"matchLabels": {format!("to-db-{j}"): "allowed"}}, "policyTypes": ["Egress"],
                   "egress": [{"to": [{"podSelector": {"matchLabels": {"app": format!("db-{j}")}}}], "ports": [{"port": 5432}]}]}),
        ));
    }
    let pods = (0..size.pods_per_namespace)
        .map(|k| {
            let app = format!("app-{}", k % 4);
            Fact::Pod {
                namespace: ns.clone(),
                name: format!("{app}-7d9f8c6b5-{k:05x}"),
                labels: labels(&[
                    ("app", app),
                    ("pod-template-hash", "7d9f8c6b5".into()),
                    ("to-dns", "allowed".into()),
                    ("to-db-2", "allowed".into()),
                ]),
            }
        })
        .collect();
    (namespace, policies, pods)
}

fn list(builder: &mut Builder, source: &Source, facts: Vec<Fact>) {
    builder.apply(source, Event::Init);
    for fact in facts {
        builder.apply(source, Event::InitApply(fact));
    }
    builder.apply(source, Event::InitDone);
}

fn state() -> SharedState {
    Shared::new(
        Config::default(),
        netpol_guard::guard::Identity {
            namespace: "netpol-guard".into(),
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
        },
        netpol_guard::runtime::metrics::Metrics::new().unwrap(),
    )
}

/// CPU time of this process so far (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name
    (ticks(11) + ticks(12)) / 100.0
}

fn micros(h: &Histogram<u64>, q: f64) -> String {
    format!("{:.1}", h.value_at_quantile(q) as f64 / 1000.0)
}

/// Reviews of the request mix at `rate` per second, open loop; latency in ns from each
/// review's scheduled start.
fn paced_reviews(state: &SharedState, rate: u64, n: usize) -> Histogram<u64> {
    let requests = mix();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval * u32::try_from(i).unwrap();
        // sleep most of the way, spin the rest: the sleep's wake-up lag is not the guard's
        if let Some(wait) = due.checked_duration_since(Instant::now() + Duration::from_micros(300))
        {
            std::thread::sleep(wait);
        }
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let req = &requests[i % requests.len()];
        let endpoint = if req.path.contains("mutate") {
            Endpoint::Mutate
        } else {
            Endpoint::Validate
        };
        let reviewed = review(&state.snapshot(), endpoint, &req.body);
        std::hint::black_box(&reviewed);
        h.record(u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX))
            .unwrap();
    }
    h
}

/// Mean time per review, back to back.
fn cpu_per_review(state: &SharedState, n: usize) -> f64 {
    back_to_back(state, n.min(2_000));
    let t = Instant::now();
    back_to_back(state, n);
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// `n` reviews of the mix as fast as they go.
fn back_to_back(state: &SharedState, n: usize) {
    let requests = mix();
    for i in 0..n {
        let req = &requests[i % requests.len()];
        let endpoint = if req.path.contains("mutate") {
            Endpoint::Mutate
        } else {
            Endpoint::Validate
        };
        std::hint::black_box(review(&state.snapshot(), endpoint, &req.body));
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let size = if smoke {
        Size {
            namespaces: 500,
            policies_per_namespace: 4,
            pods_per_namespace: 20,
            reviews: 2_000,
        }
    } else {
        Size {
            namespaces: 5_000,
            policies_per_namespace: 4,
            pods_per_namespace: 20,
            reviews: 20_000,
        }
    };
    let rss_before = peak_rss_mib();

    // the empty cache first: review latency at 1k/s
    let state = state();
    let empty = paced_reviews(&state, 1000, size.reviews);
    let empty_cpu = cpu_per_review(&state, size.reviews);

    // the lists, as watch events
    let started = Instant::now();
    let mut builder = Builder::new();
    let (mut namespaces, mut policies, mut pods) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..size.namespaces {
        let (n, p, q) = namespace_facts(i, &size);
        namespaces.push(n);
        policies.extend(p);
        pods.extend(q);
    }
    let counts = (namespaces.len(), policies.len(), pods.len());
    list(&mut builder, &Source::Namespaces, namespaces);
    list(&mut builder, &Source::Policies, policies);
    list(&mut builder, &Source::Pods, pods);
    state.set_inventory(builder.snapshot());
    let built = started.elapsed();
    let rss_built = peak_rss_mib();

    // one change at a time: a pod relabelled, applied and published
    let mut publish = Histogram::<u64>::new(3).unwrap();
    for i in 0..2_000usize {
        let ns = format!("team-{:05}", i % size.namespaces);
        let fact = Fact::Pod {
            namespace: ns,
            name: format!("churn-{i}"),
            labels: labels(&[("app", "churn".into()), ("to-dns", "allowed".into())]),
        };
        let t = Instant::now();
        builder.apply(&Source::Pods, Event::Apply(fact));
        state.set_inventory(builder.snapshot());
        publish
            .record(u64::try_from(t.elapsed().as_nanos()).unwrap())
            .unwrap();
    }

    // a full audit of every policy with the whole cluster as context, and the reports
    let snapshot = state.snapshot();
    let cpu = cpu_seconds();
    let t = Instant::now();
    let audit =
        netpol_guard::audit::audit(&snapshot.inventory, &snapshot.config, "netpol-guard", None);
    let reports = netpol_guard::kubernetes::audit::report_fingerprints(&audit);
    let audit_wall = t.elapsed();
    let audit_cpu = cpu_seconds() - cpu;
    let audited = (
        audit.results.len(),
        audit
            .results
            .iter()
            .map(|r| r.findings.len())
            .sum::<usize>(),
        reports.len(),
    );
    // the periodic run on an unchanged cluster: the same reports, so nothing to write
    let again = netpol_guard::kubernetes::audit::report_fingerprints(&netpol_guard::audit::audit(
        &snapshot.inventory,
        &snapshot.config,
        "netpol-guard",
        None,
    ));
    let unchanged = again
        .iter()
        .filter(|(ns, r)| reports.get(*ns) == Some(*r))
        .count();
    drop((audit, again));
    let rss_audited = peak_rss_mib();

    if std::env::args().any(|a| a == "--profile") {
        // for `perf record`: reviews back to back against the full cache
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(5) {
            back_to_back(&state, 1000);
            n += 1000;
        }
        println!(
            "{:.1} µs per review",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        );
        return;
    }

    let full_cpu = cpu_per_review(&state, size.reviews);
    let quiet = paced_reviews(&state, 1000, size.reviews);

    // reviews at 1k/s against the full cache while pod events keep arriving (100/s)
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (state, stop) = (state.clone(), stop.clone());
        let namespaces = size.namespaces;
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let fact = Fact::Pod {
                    namespace: format!("team-{:05}", i % namespaces),
                    name: format!("live-{i}"),
                    labels: labels(&[("app", "live".into())]),
                };
                builder.apply(&Source::Pods, Event::Apply(fact));
                state.set_inventory(builder.snapshot());
                i += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let full = paced_reviews(&state, 1000, size.reviews);
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    let rss_end = peak_rss_mib();

    println!(
        "cluster: {} namespaces, {} policies, {} pods{}",
        counts.0,
        counts.1,
        counts.2,
        if smoke { " (smoke: a tenth)" } else { "" }
    );
    println!(
        "build from list events + first publish: {:.0} ms",
        built.as_secs_f64() * 1000.0
    );
    println!(
        "peak RSS: {rss_before:.1} MiB at start, {rss_built:.1} MiB with the cache built, {rss_end:.1} MiB at the end"
    );
    println!(
        "publish one change (apply + new snapshot), µs: p50 {} p99 {} max {}",
        micros(&publish, 0.5),
        micros(&publish, 0.99),
        micros(&publish, 1.0)
    );
    println!(
        "full audit: {} policies, {} findings, {} namespace reports: {:.0} ms wall, {:.2} s CPU, peak RSS after it {rss_audited:.1} MiB; a second run finds {unchanged} of {} reports unchanged",
        audited.0,
        audited.1,
        audited.2,
        audit_wall.as_secs_f64() * 1000.0,
        audit_cpu,
        reports.len()
    );
    println!(
        "review CPU, back to back (mix of 20, in process), µs per review: empty {empty_cpu:.1}, full {full_cpu:.1}"
    );
    println!("review latency at 1k/s (mix of 20, in process, from scheduled start), µs:");
    println!("| cache | p50 | p99 | p99.9 | max |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, h) in [
        ("empty", &empty),
        ("full", &quiet),
        ("full, 100 pod events/s", &full),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            micros(h, 0.5),
            micros(h, 0.99),
            micros(h, 0.999),
            micros(h, 1.0)
        );
    }
}
