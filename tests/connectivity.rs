//! `netpol-guard connectivity` as a reviewer runs it: the real binary over a small shop's
//! manifests before and after a change (`tests/data/connectivity/shop`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
}

fn shop(state: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/connectivity/shop")
        .join(state)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "netpol-guard-connectivity-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn list_shows_every_allowed_connection_with_resolved_ports() {
    let out = run(&["connectivity", "list", &shop("before")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with("connections"))
        .map(|l| {
            l.split("  ")
                .filter(|f| !f.is_empty())
                .map(str::trim)
                .collect()
        })
        .collect();
    let want: Vec<Vec<&str>> = [
        // web's egress rule names 9000; api admits web on its `http` port, 9000
        ["shop/web", "shop/api", "TCP 9000"],
        // db admits every tier=back pod on `pg`; only api's egress reaches it
        ["shop/api", "shop/db", "TCP 5432"],
        // 0.0.0.0/0 covers the scraper's pod IP, so it reaches web's `http`
        ["monitoring/scraper", "shop/web", "TCP 8080"],
        ["monitoring/scraper", "shop/api", "TCP 9100"],
        ["monitoring/scraper", "monitoring/scraper", "All"],
        ["monitoring/scraper", "0.0.0.0/0", "All"],
        ["monitoring/scraper", "::/0", "All"],
        ["0.0.0.0/0", "shop/web", "TCP 8080"],
        ["0.0.0.0/0", "monitoring/scraper", "All"],
        ["::/0", "monitoring/scraper", "All"],
    ]
    .iter()
    .map(|r| r.to_vec())
    .collect();
    assert_eq!(lines, want, "{text}");
    assert!(text.ends_with("10 connections\n"), "{text}");
}

#[test]
fn list_formats_carry_the_same_connections() {
    let json: Value = serde_json::from_slice(
        &run(&["connectivity", "list", "--format", "json", &shop("before")]).stdout,
    )
    .expect("JSON");
    let connections = json["connections"].as_array().expect("connections");
    assert_eq!(connections.len(), 10);
    assert_eq!(connections[0]["src"], "shop/web");
    assert_eq!(
        connections[0]["byProtocol"]["TCP"][0],
        serde_json::json!([9000, 9000])
    );
    let csv = stdout(&run(&[
        "connectivity",
        "list",
        "--format",
        "csv",
        &shop("before"),
    ]));
    assert_eq!(csv.lines().next(), Some("src,dst,ports"));
    assert_eq!(csv.lines().count(), 11);
    let md = stdout(&run(&[
        "connectivity",
        "list",
        "--format",
        "markdown",
        &shop("before"),
    ]));
    assert!(
        md.contains("| `shop/web` | `shop/api` | TCP 9000 |"),
        "{md}"
    );
    let mermaid = stdout(&run(&[
        "connectivity",
        "list",
        "--format",
        "mermaid",
        &shop("before"),
    ]));
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(
        mermaid.matches(" --> ").count() + mermaid.matches("-->|").count(),
        10,
        "{mermaid}"
    );
    let dot = stdout(&run(&[
        "connectivity",
        "list",
        "--format",
        "dot",
        &shop("before"),
    ]));
    assert_eq!(dot.matches(" -> ").count(), 10, "{dot}");
    assert!(
        dot.contains("subgraph cluster_1 {\n    label=\"shop\";"),
        "{dot}"
    );
}

/// Every DOT output is parsed by Graphviz itself (CI installs it; elsewhere the test says
/// when it is skipped).
#[test]
fn graphviz_parses_every_dot_output() {
    if Command::new("dot").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Graphviz's dot"
        );
        eprintln!("SKIPPED: Graphviz `dot` is not installed");
        return;
    }
    let outputs = [
        run(&["connectivity", "list", "--format", "dot", &shop("before")]),
        run(&["connectivity", "list", "--format", "dot", &shop("after")]),
        run(&[
            "connectivity",
            "diff",
            "--format",
            "dot",
            "--base",
            &shop("before"),
            "--head",
            &shop("after"),
        ]),
    ];
    for out in outputs {
        let dir = temp_dir("dot");
        let file = dir.join("graph.dot");
        std::fs::write(&file, &out.stdout).expect("write");
        let svg = Command::new("dot")
            .arg("-Tsvg")
            .arg(&file)
            .output()
            .expect("dot runs");
        assert!(
            svg.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&svg.stderr),
            stdout(&out)
        );
        assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    }
}

const SHOP_CHANGES: &str = "\
~ 0.0.0.0/0 -> shop/web: +TCP 8443
- monitoring/scraper -> shop/api: TCP 9100
~ monitoring/scraper -> shop/web: +TCP 8443
+ shop/report -> shop/db: TCP 5432
1 added, 1 removed, 2 changed
";

#[test]
fn diff_shows_exactly_the_added_removed_and_changed_connections() {
    let args = [
        "connectivity",
        "diff",
        "--base",
        &shop("before"),
        "--head",
        &shop("after"),
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), SHOP_CHANGES);
    let failing = |on: &str| run(&[&args[..], &["--fail-on", on]].concat()).status.code();
    assert_eq!(failing("removed"), Some(1), "the scraper lost 9100");
    assert_eq!(failing("added"), Some(1));
    assert_eq!(failing("any"), Some(1));
    // no change: nothing to show, nothing fails
    let same = run(&[
        "connectivity",
        "diff",
        "--base",
        &shop("before"),
        "--head",
        &shop("before"),
        "--fail-on",
        "any",
    ]);
    assert_eq!(same.status.code(), Some(0));
    assert_eq!(stdout(&same), "0 added, 0 removed, 0 changed\n");
    // the pull-request comment
    let md = stdout(&run(&[&args[..], &["--format", "markdown"]].concat()));
    assert!(
        md.starts_with("### Connectivity changes\n\n1 added, 1 removed, 2 changed\n"),
        "{md}"
    );
    assert!(
        md.contains("| ➖ removed | `monitoring/scraper` | `shop/api` | TCP 9100 |"),
        "{md}"
    );
    let json: Value =
        serde_json::from_slice(&run(&[&args[..], &["--format", "json"]].concat()).stdout)
            .expect("JSON");
    assert_eq!(
        (
            json["added"].as_u64(),
            json["removed"].as_u64(),
            json["changed"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
    // the reversed change: removed and added swap
    let back = run(&[
        "connectivity",
        "diff",
        "--base",
        &shop("after"),
        "--head",
        &shop("before"),
    ]);
    assert!(stdout(&back).ends_with("1 added, 1 removed, 2 changed\n"));
    assert!(stdout(&back).contains("+ monitoring/scraper -> shop/api: TCP 9100"));
    // --focus keeps the connections of one workload
    let focused = run(&[&args[..], &["--focus", "report"]].concat());
    assert_eq!(
        stdout(&focused),
        "+ shop/report -> shop/db: TCP 5432\n1 added, 0 removed, 0 changed\n"
    );
}

#[test]
fn diff_reads_the_base_from_a_git_revision() {
    let repo = temp_dir("git");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    };
    let copy = |state: &str| {
        for file in ["workloads.yaml", "policies.yaml"] {
            std::fs::copy(
                Path::new(&shop(state)).join(file),
                repo.join("deploy").join(file),
            )
            .expect("copy");
        }
    };
    std::fs::create_dir_all(repo.join("deploy")).expect("dir");
    git(&["init", "-q"]);
    copy("before");
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qm",
        "before",
    ]);
    copy("after");
    let head = repo.join("deploy").display().to_string();
    let out = run(&["connectivity", "diff", "--base", "HEAD", "--head", &head]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), SHOP_CHANGES);
    let bad = run(&[
        "connectivity",
        "diff",
        "--base",
        "no-such-branch",
        "--head",
        &head,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("not a directory, and not a git revision"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn explain_names_the_admitting_rules_or_the_side_that_denies() {
    let files = shop("after");
    let explain =
        |args: &[&str]| run(&[&["connectivity", "explain", "-f", &files][..], args].concat());
    let allowed = explain(&["web", "shop/api", "9000/TCP"]);
    assert_eq!(allowed.status.code(), Some(0));
    assert_eq!(
        stdout(&allowed),
        "shop/web -> shop/api on 9000/TCP: allowed\n  \
         egress of shop/web: isolated by shop/default-deny, shop/dns, shop/web; admitted by shop/web spec.egress[0].to[0] on TCP 9000\n  \
         ingress of shop/api: isolated by shop/api, shop/default-deny; admitted by shop/api spec.ingress[0].from[0] on TCP 9000\n"
    );
    // denied by the destination only: the source is open
    let denied = explain(&["monitoring/scraper", "api", "9100/TCP"]);
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(
        stdout(&denied),
        "monitoring/scraper -> shop/api on 9100/TCP: denied\n  \
         ingress of shop/api: isolated by shop/api, shop/default-deny; no rule of them admits monitoring/scraper\n"
    );
    // a port the admitting rule does not name
    let port = explain(&["web", "api", "9100"]);
    assert_eq!(port.status.code(), Some(1));
    assert!(stdout(&port).contains("egress of shop/web: isolated by shop/default-deny, shop/dns, shop/web; no rule admits shop/api on that port, only: shop/web spec.egress[0].to[0] on TCP 9000"), "{}", stdout(&port));
    // an address
    let address = explain(&["203.0.113.7", "web", "8443"]);
    assert_eq!(address.status.code(), Some(0), "{}", stdout(&address));
    assert!(
        stdout(&address).contains("admitted by shop/web spec.ingress[0].from[0] on TCP 8080,8443")
    );
    let json: Value =
        serde_json::from_slice(&explain(&["report", "db", "--format", "json"]).stdout)
            .expect("JSON");
    assert_eq!(json["allowed"], true);
    assert_eq!(json["ports"], "TCP 5432");
    assert_eq!(
        json["egress"]["admittedBy"][0]["path"],
        "spec.egress[0].to[0]"
    );
    // what cannot be judged
    let unknown = explain(&["nothing", "web"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no workload \"nothing\" in the input"),
        "{}",
        stderr(&unknown)
    );
    let bad_port = explain(&["web", "api", "80/ICMP"]);
    assert_eq!(bad_port.status.code(), Some(2));
}

#[test]
fn unreadable_documents_are_named_and_fail_with_2() {
    let dir = temp_dir("broken");
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: c}]}\n---\nkind: [broken\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {template: {metadata: {labels: {app: 1}}}}\n",
    )
    .expect("write");
    let out = run(&["connectivity", "list", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("app.yaml:7 (document 2): invalid YAML"),
        "{err}"
    );
    assert!(
        err.contains("(document 3): spec.template.metadata.labels"),
        "{err}"
    );
    // what could be read is still listed
    assert!(
        stdout(&out).contains("default/ok      default/ok      All"),
        "{}",
        stdout(&out)
    );
}

/// The README's picture is the tool's own output for the shop after the change.
#[test]
fn the_readme_picture_is_the_tools_output() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed =
        std::fs::read_to_string(root.join("docs/connectivity-shop.dot")).expect("dot file");
    let now = stdout(&run(&[
        "connectivity",
        "list",
        "--format",
        "dot",
        &shop("after"),
    ]));
    assert_eq!(
        committed, now,
        "regenerate: netpol-guard connectivity list tests/data/connectivity/shop/after --format dot > docs/connectivity-shop.dot && dot -Tsvg docs/connectivity-shop.dot > docs/connectivity-shop.svg"
    );
    let svg = std::fs::read_to_string(root.join("docs/connectivity-shop.svg")).expect("svg");
    for node in [
        "web",
        "api",
        "db",
        "report",
        "scraper",
        "0.0.0.0/0",
        "TCP 8080,8443",
    ] {
        assert!(
            svg.contains(&format!(">{node}<")),
            "the SVG is drawn from the DOT file: {node}"
        );
    }
}

/// `explain` with a port asks the policy layers of the input first: an Admin-tier allow
/// decides the side it applies to before NetworkPolicy, an Admin deny denies whatever
/// NetworkPolicy says, and the JSON keeps NetworkPolicy's own answer beside the tiers'.
#[test]
fn explain_asks_the_policy_layers_before_network_policy() {
    let dir = temp_dir("layers");
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {containers: [{name: c, image: x}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}\nspec: {containers: [{name: c, image: x}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-egress, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Egress]}\n";
    let anp = |name: &str, priority: u32, action: &str| {
        format!(
            "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {{priority: {priority}, subject: {{namespaces: {{}}}}, egress: [{{name: dns, action: {action}, to: [{{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: kube-system}}}}}}], ports: [{{portNumber: {{protocol: UDP, port: 53}}}}]}}]}}\n"
        )
    };
    let file = dir.join("all.yaml");
    std::fs::write(&file, format!("{pods}{}", anp("allow-dns", 10, "Allow"))).unwrap();
    let path = file.display().to_string();
    let explain = |port: &str, json: bool| {
        let mut args = vec![
            "connectivity",
            "explain",
            "-f",
            &path,
            "shop/web",
            "kube-system/coredns",
            port,
        ];
        if json {
            args.extend(["--format", "json"]);
        }
        run(&args)
    };
    // NetworkPolicy alone denies it; the Admin allow decides the egress side
    let out = explain("53/UDP", false);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("shop/web -> kube-system/coredns on 53/UDP: allowed"),
        "{text}"
    );
    assert!(
        text.contains(
            "egress of shop/web: allowed by AdminNetworkPolicy allow-dns, priority 10 (rule dns)"
        ),
        "{text}"
    );
    assert!(
        text.contains("what NetworkPolicy alone says:") && text.contains("53/UDP: denied"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&explain("53/UDP", true))).unwrap();
    assert_eq!(v["allowed"], true);
    assert_eq!(v["networkPolicyAllows"], false);
    assert_eq!(v["layers"]["egress"]["decision"], "allowed");
    assert_eq!(v["layers"]["ingress"]["decision"], "networkpolicy");
    // another port: the layers say nothing, NetworkPolicy denies
    assert_eq!(explain("53/TCP", false).status.code(), Some(1));
    // a deny at an earlier priority wins
    std::fs::write(
        &file,
        format!(
            "{pods}{}{}",
            anp("allow-dns", 10, "Allow"),
            anp("no-dns", 1, "Deny")
        ),
    )
    .unwrap();
    let out = explain("53/UDP", false);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("denied by AdminNetworkPolicy no-dns, priority 1 (rule dns)"),
        "{}",
        stdout(&out)
    );
    // the listing says it applies NetworkPolicy only
    let out = run(&["connectivity", "list", &path]);
    assert!(
        stderr(&out).contains("the listing and the diff apply NetworkPolicy only"),
        "{}",
        stderr(&out)
    );
}
