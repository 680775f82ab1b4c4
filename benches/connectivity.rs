//! `connectivity list` at scale: 1,000 workloads (50 namespaces of 20 Deployments) under 2,000
//! NetworkPolicies (40 a namespace: a default deny, a DNS allowance, and per workload an
//! ingress policy by tier, namespace labels and named ports, and an egress policy to the data
//! tier, other teams' namespaces and address blocks), written as manifest files.
//!
//! Each measurement runs in a child process of its own, one thread, so that its peak RSS is
//! its own: the **baseline** reads and decodes the manifests only (the floor any listing
//! pays); the **list** does what `netpol-guard connectivity list DIR` does (read, compile
//! the policies, compute every connection, render the text table).
//!
//! ```sh
//! cargo bench --bench connectivity              # 1,000 workloads x 2,000 policies, 3 runs each
//! cargo bench --bench connectivity -- --smoke   # a tenth of it, once (CI)
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use netpol_guard::connectivity::Network;
use netpol_guard::offline::check;
use netpol_guard::offline::connectivity::{Format, input_of, render_list, rows};
use netpol_guard_testkit::peak_rss_mib;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WORKLOADS_PER_NAMESPACE: usize = 20;

/// The manifests of `namespaces` namespaces, one file each.
fn generate(dir: &Path, namespaces: usize) {
    const TIERS: [&str; 3] = ["front", "back", "data"];
    for n in 0..namespaces {
        let team = format!("team-{}", n % 10);
        let env = if n % 2 == 0 { "prod" } else { "dev" };
        let mut y = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{n}, labels: {{team: {team}, env: {env}}}}}\n"
        );
        for w in 0..WORKLOADS_PER_NAMESPACE {
            let tier = TIERS[w % 3];
            let _ = write!(
                y,
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{w}, namespace: ns-{n}}}\nspec:\n  selector: {{matchLabels: {{app: app-{w}}}}}\n  template:\n    metadata: {{labels: {{app: app-{w}, tier: {tier}}}}}\n    spec:\n      containers:\n      - name: main\n        image: registry.example/app:1\n        ports: [{{name: http, containerPort: {}}}, {{name: metrics, containerPort: 9100}}]\n",
                8000 + w
            );
        }
        let _ = write!(
            y,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: ns-{n}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}\n\
             ---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: dns, namespace: ns-{n}}}\nspec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}, podSelector: {{matchLabels: {{k8s-app: kube-dns}}}}}}]\n    ports: [{{port: 53, protocol: UDP}}, {{port: 53, protocol: TCP}}]\n"
        );
        // 19 ingress and 19 egress policies: 40 a namespace with the two above
        for w in 0..WORKLOADS_PER_NAMESPACE - 1 {
            let upstream = TIERS[(w + 2) % 3];
            let _ = write!(
                y,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: app-{w}-in, namespace: ns-{n}}}\nspec:\n  podSelector: {{matchLabels: {{app: app-{w}}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{tier: {upstream}}}}}}}]\n    ports: [{{port: http}}]\n  - from:\n    - namespaceSelector: {{matchLabels: {{env: prod}}}}\n      podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [front, back]}}]}}\n    - namespaceSelector: {{matchLabels: {{team: {team}}}}}\n    ports: [{{port: http}}, {{port: metrics}}]\n  - from: [{{ipBlock: {{cidr: 10.{n}.0.0/16, except: [10.{n}.{w}.0/24]}}}}]\n    ports: [{{port: 443}}, {{port: 8000, endPort: 8100}}]\n\
                 ---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: app-{w}-out, namespace: ns-{n}}}\nspec:\n  podSelector: {{matchLabels: {{app: app-{w}}}}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{podSelector: {{matchLabels: {{tier: data}}}}}}]\n    ports: [{{port: http}}]\n  - to: [{{namespaceSelector: {{matchLabels: {{team: team-{}}}}}}}]\n  - to: [{{ipBlock: {{cidr: 0.0.0.0/0, except: [10.0.0.0/8, 169.254.169.254/32]}}}}]\n    ports: [{{port: 443}}]\n",
                (n + 1) % 10
            );
        }
        std::fs::write(dir.join(format!("ns-{n}.yaml")), y).expect("write manifests");
    }
}

/// One measurement, in this process (the child): prints `seconds peak_mib connections`.
fn child(mode: &str, dir: &str) {
    let start = Instant::now();
    let (manifests, problems) = check::load(&[dir.to_string()]);
    assert!(problems.is_empty(), "{problems:?}");
    let loaded = input_of(&manifests, "default");
    assert!(loaded.problems.is_empty());
    let mut connections = 0;
    if mode == "list" {
        let network = Network::new(&loaded.input);
        let listed = rows(&network.connectivity(), &[]);
        connections = listed.len();
        let text = render_list(&listed, Format::Text);
        std::hint::black_box(text);
    }
    println!(
        "{} {} {} {} {}",
        start.elapsed().as_secs_f64(),
        peak_rss_mib(),
        connections,
        loaded.input.workloads.len(),
        loaded.input.policies.len()
    );
}

fn measure(mode: &str, dir: &Path) -> (f64, f64, usize, usize, usize) {
    let out = Command::new(std::env::current_exe().expect("this bench"))
        .args(["--child", mode, &dir.display().to_string()])
        .output()
        .expect("child runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    (
        f[0].parse().unwrap(),
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let (namespaces, runs) = if smoke { (5, 1) } else { (50, 3) };
    let dir = std::env::temp_dir().join(format!(
        "netpol-guard-connectivity-bench-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    generate(&dir, namespaces);
    println!("| run | workloads | policies | phase | seconds | peak RSS MiB | connections |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for run in 1..=runs {
        for mode in ["baseline", "list"] {
            let (seconds, rss, connections, workloads, policies) = measure(mode, &dir);
            let phase = if mode == "list" {
                "list (read + compute + render)"
            } else {
                "baseline (read + decode only)"
            };
            println!(
                "| {run} | {workloads} | {policies} | {phase} | {seconds:.3} | {rss:.1} | {connections} |"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
