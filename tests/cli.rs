//! `netpol-guard check` as CI pipelines run it: the real binary, its exit codes and outputs.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(rel)
        .display()
        .to_string()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("binary runs")
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).expect("stdout is JSON")
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-guard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write temp file");
    path
}

/// A fresh directory of its own.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-guard-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const MISSING_DNS: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-egress
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector:
        matchLabels: {app: api}
";

#[test]
fn exit_codes_follow_the_worst_verdict() {
    // (args, exit code)
    let cases: Vec<(Vec<String>, i32)> = vec![
        (vec![fixture("recipes/np-01-web-deny-all.yaml")], 0),
        // warnings alone do not fail
        (vec![fixture("examples/05-deny-from-certain-pods.yaml")], 0),
        (vec![fixture("broken/kube-system-default-deny.yaml")], 1),
        (
            vec![
                fixture("recipes/np-01-web-deny-all.yaml"),
                fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
            ],
            1,
        ),
        (vec!["/nonexistent/netpol.yaml".into()], 2),
        (vec!["--format".into(), "xml".into(), fixture("recipes")], 2),
        (vec![], 2),
    ];
    for (args, code) in cases {
        let mut full = vec!["check".to_string()];
        full.extend(args.clone());
        let out = bin().args(&full).output().expect("runs");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}\n{}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn text_report_groups_findings_by_object_and_sums_up() {
    let out = run(&["check", &fixture("broken/kube-system-default-deny.yaml")]);
    let text = stdout(&out);
    assert!(
        text.contains("NetworkPolicy kube-system/default-deny-all"),
        "{text}"
    );
    assert!(
        text.contains("deny  protected-namespace-deny-all  at spec.podSelector"),
        "{text}"
    );
    assert!(
        text.contains("warn  protected-namespace-isolation"),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
    assert!(
        text.contains(
            "checked 2 NetworkPolicies and 0 Namespaces in 1 file: 2 deny, 1 warn, 0 errors"
        ),
        "{text}"
    );
}

#[test]
fn json_findings_carry_every_field() {
    let out = run(&[
        "check",
        "--format",
        "json",
        &fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let findings = v["findings"].as_array().expect("findings");
    let rules: Vec<&str> = findings
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "egress-missing-dns",
            "dns-peer-too-broad",
            "namespace-selector-name-label"
        ]
    );
    let f = &findings[0];
    assert_eq!(f["severity"], "deny");
    assert_eq!(f["kind"], "NetworkPolicy");
    assert_eq!(f["namespace"], "team-a");
    assert_eq!(f["name"], "default-deny");
    assert_eq!(f["path"], "spec.egress");
    assert!(
        f["file"]
            .as_str()
            .unwrap()
            .ends_with("kyverno-add-networkpolicy-dns.yaml")
    );
    assert!(f["message"].as_str().unwrap().contains("UDP 53"));
    assert!(f["fix"].as_str().unwrap().contains("k8s-app: kube-dns"));
    assert_eq!(findings[1]["severity"], "warn");
    assert_eq!(v["summary"]["deny"], 1);
    assert_eq!(v["summary"]["warn"], 2);
    assert_eq!(v["summary"]["exitCode"], 1);
}

#[test]
fn sarif_is_2_1_0_with_rules_and_levels() {
    let out = run(&[
        "check",
        "--format",
        "sarif",
        &fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "netpol-guard");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), netpol_guard::rules::CATALOG.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(".yaml")
        );
        assert!(loc["region"]["startColumn"].as_u64().is_some(), "{loc}");
    }
    // each result at its own field's line and column, not the document's first line
    let region = |rule: &str| {
        let r = results.iter().find(|r| r["ruleId"] == rule).unwrap();
        let region = &r["locations"][0]["physicalLocation"]["region"];
        (
            region["startLine"].as_u64().unwrap(),
            region["startColumn"].as_u64().unwrap(),
        )
    };
    assert_eq!(region("egress-missing-dns"), (15, 3));
    assert_eq!(region("dns-peer-too-broad"), (17, 7));
    assert_eq!(region("namespace-selector-name-label"), (19, 11));
    assert_eq!(results[0]["level"], "error");
    assert_eq!(results[1]["level"], "warning");
}

#[test]
fn findings_point_at_their_field_in_multi_document_and_list_files() {
    // comments, a first document, then a List whose second item has the mistake
    let text = "# header comment\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n\
---\n\
# the list\n\
apiVersion: v1\nkind: List\nitems:\n\
- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: fine, namespace: shop}\n  spec: {podSelector: {}}\n\
- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: bad, namespace: shop}\n  spec:\n    podSelector: {}\n    ingress:\n    - from:\n      - namespaceSelector:\n          matchLabels: {name: monitoring}\n";
    let path = temp_file("list.yaml", text);
    let out = run(&["check", "--format", "json", path.to_str().unwrap()]);
    let v = json(&out);
    let finding = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "namespace-selector-name-label")
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    // line 22 of the file: `          matchLabels: {name: monitoring}`, the key `name` in column 25
    assert_eq!(
        text.lines().nth(21).unwrap().trim(),
        "matchLabels: {name: monitoring}"
    );
    assert_eq!(
        (finding["line"].as_u64(), finding["column"].as_u64()),
        (Some(22), Some(25))
    );
    // text says it too; GitHub annotations carry it
    let out = run(&["check", path.to_str().unwrap()]);
    assert!(
        stdout(&out).contains("(line 22, column 25)"),
        "{}",
        stdout(&out)
    );
    let out = run(&["check", "--format", "github", path.to_str().unwrap()]);
    let annotation = stdout(&out)
        .lines()
        .find(|l| l.contains("namespace-selector-name-label"))
        .map(String::from)
        .unwrap_or_default();
    assert!(annotation.starts_with("::warning file="), "{annotation}");
    assert!(
        annotation.contains(",line=22,col=25,title=netpol-guard namespace-selector-name-label::"),
        "{annotation}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn github_annotations_escape_and_fail_like_the_other_formats() {
    let out = run(&[
        "check",
        "--format",
        "github",
        &fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("::error ")).count(),
        1
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("::warning ")).count(),
        2
    );
    // one line per annotation: the message's line breaks are escaped
    assert!(
        lines
            .iter()
            .filter(|l| l.starts_with("::"))
            .all(|l| l.contains("%0A"))
    );
    assert!(lines.last().unwrap().starts_with("checked 1 NetworkPolicy"));
}

#[test]
fn malformed_document_is_reported_and_the_others_still_checked() {
    let path = temp_file(
        "mixed.yaml",
        &format!(
            "{MISSING_DNS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: broken\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: typed}}\nspec: {{policyTypes: Egress}}\n"
        ),
    );
    let out = run(&["check", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let v = json(&out);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["document"], 2);
    assert!(errors[0]["file"].as_str().unwrap().ends_with("mixed.yaml"));
    assert!(errors[0]["line"].as_u64().unwrap() >= 15, "{errors:?}");
    assert_eq!(errors[1]["document"], 3);
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.policyTypes"),
        "{errors:?}"
    );
    // the good document was still judged
    assert_eq!(v["findings"][0]["rule"], "egress-missing-dns");
    assert_eq!(v["findings"][0]["name"], "web-egress");
}

#[test]
fn stdin_and_default_namespace() {
    let policy = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: lockdown}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";
    let out = run_stdin(&["check", "--format", "json", "-"], policy);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["summary"]["networkPolicies"], 1);
    // the same manifest applied to kube-system locks the cluster out
    let out = run_stdin(
        &[
            "check",
            "--format",
            "json",
            "--namespace",
            "kube-system",
            "-",
        ],
        policy,
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["findings"][0]["rule"], "protected-namespace-deny-all");
    assert_eq!(v["findings"][0]["namespace"], "kube-system");
    assert_eq!(v["findings"][0]["file"], "-");
}

#[test]
fn fix_injects_dns_and_the_fixed_output_passes() {
    let input = format!(
        "# a comment\n{MISSING_DNS}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kept}}  # keep me\n"
    );
    let out = run_stdin(&["check", "--fix", "-"], &input);
    // the report (stderr) judges the fixed manifests and lists the fix
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("fixed -: NetworkPolicy "), "{stderr}");
    let fixed = stdout(&out);
    // only lines were added: every line of the input is there, in order
    let mut rest = fixed.lines();
    for line in input.lines() {
        assert!(rest.any(|l| l == line), "{line:?} lost in\n{fixed}");
    }
    assert!(fixed.starts_with("# a comment\n"));
    assert!(fixed.ends_with("metadata: {name: kept}  # keep me\n"));
    let docs: Vec<Value> = fixed
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).expect("fixed output parses"))
        .collect();
    assert_eq!(docs.len(), 2);
    let egress = docs[0]["spec"]["egress"].as_array().unwrap();
    assert_eq!(egress.len(), 2);
    assert_eq!(
        egress[1]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(egress[1]["ports"][1]["protocol"], "TCP");
    // the fixed output is clean, and fixing it again changes nothing
    let again = run_stdin(&["check", "--fix", "-"], &fixed);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(stdout(&again), fixed);
}

#[test]
fn fix_edits_keep_comments_anchors_flow_style_and_crlf_and_write_or_diff() {
    let block = "# team policies\r\napiVersion: networking.k8s.io/v1\r\nkind: NetworkPolicy\r\nmetadata:\r\n  name: web  # the web tier\r\n  namespace: shop\r\n  labels: &common {team: shop}\r\nspec:\r\n  podSelector:\r\n    matchLabels: *common\r\n  policyTypes: [Egress]\r\n  egress:\r\n    - to:\r\n        - podSelector: {matchLabels: {app: db}}\r\n      ports: [{port: 5432}]\r\n\r\n# trailing comment\r\n";
    let flow = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: api, namespace: shop}\nspec: {podSelector: {matchLabels: {app: api}}, policyTypes: [Egress], egress: [{to: [{podSelector: {}}], ports: [{port: 443}]}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: batch, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: batch}}\n  policyTypes:\n  - Egress\n";
    let dir = temp_dir("fix-edits");
    let (a, b) = (dir.join("block.yaml"), dir.join("flow.yaml"));
    std::fs::write(&a, block).unwrap();
    std::fs::write(&b, flow).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    // several files: --write or --diff must say what to do with them
    assert_eq!(run(&["check", "--fix", a, b]).status.code(), Some(2));
    // --diff: one unified diff per file, nothing written
    let out = run(&["check", "--fix", "--diff", a, b]);
    let diff = stdout(&out);
    assert!(
        diff.contains(&format!("--- a/{a}")) && diff.contains(&format!("+++ b/{b}")),
        "{diff}"
    );
    assert_eq!(std::fs::read_to_string(a).unwrap(), block);
    // --write: in place; only additions, CRLF kept, comments and anchors untouched
    let out = run(&["check", "--fix", "--write", a, b]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["shop/web", "shop/api", "shop/batch"] {
        assert!(
            stderr.contains(&format!("NetworkPolicy {name} (egress-missing-dns")),
            "{stderr}"
        );
    }
    let fixed_block = std::fs::read_to_string(a).unwrap();
    assert!(
        !fixed_block.replace("\r\n", "").contains('\n'),
        "LF crept in: {fixed_block:?}"
    );
    assert!(fixed_block.starts_with(&block[..block.find("\r\n\r\n# trailing").unwrap()]));
    assert!(fixed_block.ends_with("\r\n\r\n# trailing comment\r\n"));
    // the new item is indented like its sibling
    assert!(
        fixed_block.contains("      ports: [{port: 5432}]\r\n    - ports:\r\n"),
        "{fixed_block}"
    );
    let fixed_flow = std::fs::read_to_string(b).unwrap();
    let first = fixed_flow.lines().nth(3).unwrap();
    assert!(
        first.starts_with("spec: {podSelector: {matchLabels: {app: api}}")
            && first.ends_with("]}]}"),
        "{first}"
    );
    assert!(
        fixed_flow.contains("  - Egress\n  egress:\n  - ports:\n"),
        "{fixed_flow}"
    );
    // clean now, and a second --fix changes nothing
    assert_eq!(run(&["check", a, b]).status.code(), Some(0));
    let again = run(&["check", "--fix", "--write", a, b]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(a).unwrap(), fixed_block);
    assert_eq!(std::fs::read_to_string(b).unwrap(), fixed_flow);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("fixed "));
}

#[test]
fn fix_keeps_unparsable_documents() {
    let out = run_stdin(
        &["check", "--fix", "-"],
        &format!(
            "key: [unclosed\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\n{MISSING_DNS}"
        ),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).starts_with("key: [unclosed\n---\n"),
        "{}",
        stdout(&out)
    );
    // the policy beside it is still fixed
    assert!(
        stdout(&out).contains("k8s-app: kube-dns"),
        "{}",
        stdout(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: -:2 (document 1): invalid YAML"));
}

/// Found by fuzzing: two documents with the same namespace and name, one editable, one
/// not. Each is accounted for by its own position: one fixed, the other named as not fixed,
/// and the fixed file still reports the one left.
#[test]
fn fix_accounts_for_each_of_two_policies_with_one_name() {
    let policy = |egress: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: twin, namespace: shop}}\n\
             spec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:{egress}\n"
        )
    };
    let text = format!(
        "{}---\n{}",
        policy(" null"),
        policy("\n  - to: [{podSelector: {matchLabels: {app: db}}}]")
    );
    let out = run_stdin(&["check", "--fix", "-"], &text);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fixed -: NetworkPolicy shop/twin"), "{err}");
    assert!(
        err.contains("not fixed -: NetworkPolicy shop/twin"),
        "{err}"
    );
    let fixed = stdout(&out);
    let again = run_stdin(&["check", "--format", "json", "-"], &fixed);
    let report = json(&again);
    let missing: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "egress-missing-dns")
        .collect();
    assert_eq!(missing.len(), 1, "{report:#}");
    assert_eq!(missing[0]["document"], 1, "{report:#}");
}

/// Found by fuzzing: a file whose lines end with a bare CR (YAML reads them as line ends)
/// is checked, and its policies are named as not fixed instead of edited at wrong lines.
#[test]
fn fix_leaves_files_with_bare_cr_line_ends_alone() {
    let text = MISSING_DNS.replace('\n', "\r");
    let out = run_stdin(&["check", "--fix", "-"], &text);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), text, "the file was changed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not fixed -:") && err.contains("bare CR"),
        "{err}"
    );
}

#[test]
fn directories_are_searched_recursively() {
    let out = run(&["check", "--format", "json", &fixture("")]);
    let v = json(&out);
    let yaml_files = walk(Path::new(&fixture(""))).len();
    assert_eq!(v["summary"]["files"], yaml_files);
    // the one seed manifest with a field the API server would drop, and the one written in
    // a removed API version
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unknown field spec.egress[0].podSelector"))
    );
    assert!(messages.iter().any(|m| m.contains("extensions/v1beta1")));
    assert_eq!(out.status.code(), Some(2));
    // index.yaml is no Kubernetes object: skipped and counted, not an error
    assert_eq!(
        v["summary"]["skipped"]["documents without apiVersion and kind"],
        1
    );
    assert_eq!(
        v["summary"]["skipped"]["Calico NetworkPolicy (not read: verdicts it could change are warnings that name it)"],
        1
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn config_file_dns_targets_count_as_dns() {
    let policy = temp_file(
        "to-unbound.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: to-unbound, namespace: shop}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: dns-cache}}, podSelector: {matchLabels: {app: unbound}}}]\n    ports: [{port: 5300, protocol: UDP}, {port: 5300, protocol: TCP}]\n",
    );
    let rules = |out: &std::process::Output| -> Vec<String> {
        json(out)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let out = run(&["check", "--format", "json", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(rules(&out), ["egress-missing-dns"]);
    let config = temp_file(
        "targets.yaml",
        "dns:\n  targets:\n    - namespaceLabels: {kubernetes.io/metadata.name: dns-cache}\n      podLabels: {app: unbound}\n      ports: [{name: dns, port: 5300, protocol: UDP}, {name: dns-tcp, port: 5300, protocol: TCP}]\n",
    );
    let out = run(&[
        "check",
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(rules(&out).is_empty(), "{:?}", rules(&out));
    let bad = temp_file(
        "bad-target.yaml",
        "dns:\n  targets: [{namespaceLabels: {a: b}, podLabels: {}, ports: []}]\n",
    );
    let out = run(&[
        "check",
        "--config",
        bad.to_str().unwrap(),
        policy.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dns.targets[0].podLabels"));
}

#[test]
fn config_file_changes_severities_and_bad_config_is_exit_2() {
    let config = temp_file("config.yaml", "rules:\n  egress-missing-dns: warn\n");
    let out = run(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        &fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let off = temp_file("off.yaml", "rules:\n  egress-missing-dns: off\n");
    let out = run(&[
        "check",
        "--format",
        "json",
        "--config",
        off.to_str().unwrap(),
        &fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
    ]);
    assert_eq!(json(&out)["summary"]["deny"], 0);
    assert_eq!(json(&out)["summary"]["warn"], 2);
    let bad = temp_file("bad.yaml", "rules:\n  no-such-rule: deny\n");
    let out = run(&[
        "check",
        "--config",
        bad.to_str().unwrap(),
        &fixture("recipes"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-rule"));
}

/// The text between the catalog markers of a document.
fn catalog_block(doc: &str) -> &str {
    let start = doc
        .find("<!-- catalog: generated")
        .expect("the catalog's start marker");
    let start = start + doc[start..].find('\n').unwrap() + 1;
    let end = doc
        .find("<!-- catalog end -->")
        .expect("the catalog's end marker");
    &doc[start..end]
}

/// Regenerate with `NETPOL_GUARD_REGENERATE_DOCS=1 cargo test --test cli rules_`.
#[test]
fn rules_lists_the_catalog_and_the_docs_carry_it_generated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = stdout(&run(&["rules"]));
    let table = stdout(&run(&["rules", "--format", "markdown"]));
    for rule in netpol_guard::rules::CATALOG {
        assert!(listed.contains(rule.id), "{} not listed", rule.id);
        let row = format!("| [`{0}`](#{0}) | {1}", rule.id, rule.default_severity);
        assert!(table.contains(&row), "{row}");
    }
    // docs/rules.md links to its own sections, the README to docs/rules.md
    for (doc, link) in [("docs/rules.md", "](#"), ("README.md", "](docs/rules.md#")] {
        let path = root.join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        let wanted = table.replace("](#", link);
        if std::env::var_os("NETPOL_GUARD_REGENERATE_DOCS").is_some() {
            let block = catalog_block(&text);
            std::fs::write(&path, text.replacen(block, &wanted, 1)).unwrap();
            continue;
        }
        assert_eq!(
            catalog_block(&text),
            wanted,
            "{doc}'s catalog table is not `netpol-guard rules --format markdown` \
             (NETPOL_GUARD_REGENERATE_DOCS=1 cargo test --test cli rules_ rewrites it)"
        );
    }
    // every rule has its section: what triggers it and the fix
    let rules = std::fs::read_to_string(root.join("docs/rules.md")).unwrap();
    for rule in netpol_guard::rules::CATALOG {
        let start = rules
            .find(&format!("\n### {}\n", rule.id))
            .unwrap_or_else(|| panic!("docs/rules.md has no section for {}", rule.id));
        let rest = &rules[start + 5..];
        let section = &rest[..rest.find("\n### ").unwrap_or(rest.len())];
        let refuses = rule.id != "namespace-stamp";
        assert!(
            !refuses || (section.contains("Fix") && section.contains("rigger")),
            "the section of {} shows no trigger or no fix",
            rule.id
        );
    }
}

#[test]
fn serve_refuses_to_start_on_a_kubeconfig_it_cannot_use() {
    let missing = std::env::temp_dir().join("netpol-guard-no-such-kubeconfig");
    for extra in [&[][..], &["--controller", "on"][..]] {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--kubeconfig",
            missing.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = bin()
            .args(&args)
            .env(
                "NETPOL_GUARD_SELF_SIGNED_DIR",
                std::env::temp_dir().join("netpol-guard-cli-test"),
            )
            .output()
            .unwrap();
        assert!(!out.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("reading kubeconfig")
                && stderr.contains("netpol-guard-no-such-kubeconfig"),
            "{stderr}"
        );
    }
}

#[test]
fn scope_decides_which_files_cover_each_other_and_says_what_others_resolved() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monorepo");
    let dir = dir.to_str().unwrap();
    // all (the default): the platform folder's allow-dns covers the shop folder's policy, and
    // the finding it resolved is named with the covering policy and its file
    let out = run(&["check", "--format", "json", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["summary"]["deny"], 0);
    assert_eq!(v["summary"]["resolved"], 1);
    let resolved = &v["resolved"][0];
    assert_eq!(resolved["rule"], "egress-missing-dns");
    assert_eq!(resolved["name"], "web-egress");
    assert_eq!(resolved["resolvedBy"][0]["name"], "allow-dns");
    assert!(
        resolved["resolvedBy"][0]["file"]
            .as_str()
            .unwrap()
            .ends_with("platform/allow-dns.yaml"),
        "{resolved}"
    );
    let text = stdout(&run(&["check", dir]));
    assert!(
        text.contains("1 finding was resolved by policies in other files"),
        "{text}"
    );
    let sarif = json(&run(&["check", "--format", "sarif", dir]));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["kind"] == "pass"
                && r["message"]["text"].as_str().unwrap().contains("allow-dns")),
        "{results:?}"
    );
    // directory and file: each folder on its own, and the shop policy loses DNS
    for scope in ["directory", "file"] {
        let out = run(&["check", "--format", "json", "--scope", scope, dir]);
        assert_eq!(out.status.code(), Some(1), "{scope}");
        let v = json(&out);
        assert_eq!(v["findings"][0]["rule"], "egress-missing-dns", "{scope}");
        assert_eq!(v["summary"]["resolved"], 0, "{scope}");
    }
}

#[test]
fn no_silent_passes_on_empty_input_or_unrendered_templates() {
    let empty = std::env::temp_dir().join(format!("netpol-guard-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&["check", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("no input"), "{}", stdout(&out));
    let out = run(&["check", "--allow-empty", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    std::fs::remove_dir_all(&empty).unwrap();

    let template = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {{ include \"app.fullname\" . }}\n  namespace: {{ .Release.Namespace }}\nspec:\n  podSelector: {}\n";
    let out = run_stdin(&["check", "-"], template);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(
        text.contains("-:4 (document 1): this is an unrendered Helm or Go template"),
        "{text}"
    );
    assert!(
        text.contains("helm template RELEASE CHART | netpol-guard check -"),
        "{text}"
    );

    // alert templates in a PrometheusRule are its data: beside a clean policy, exit 0
    let rendered = "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: pods, namespace: shop}\nspec:\n  groups:\n  - name: pods\n    rules:\n    - alert: PodCrashLooping\n      expr: rate(kube_pod_container_status_restarts_total[5m]) > 0\n      annotations:\n        summary: Pod {{ $labels.namespace }}/{{ $labels.pod }} restarts\n        description: \"{{ $value }} restarts\"\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {}}]}]\n";
    let out = run_stdin(&["check", "--format", "json", "-"], rendered);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["summary"]["errors"], 0, "{v}");
    assert_eq!(
        v["summary"]["skipped"]["PrometheusRule (monitoring.coreos.com/v1)"], 1,
        "{v}"
    );
}

#[test]
fn fix_injects_only_where_dns_is_certainly_missing() {
    // invalid ports: the API server rejects the object, --fix does not dress it up
    let out = run(&["check", "--fix", &fixture("real-world/invalid-ports.yaml")]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("fixed "));
    assert_eq!(
        stdout(&out),
        std::fs::read_to_string(fixture("real-world/invalid-ports.yaml")).unwrap()
    );
    // DNS through a private range is conditional: no injection; the public resolver's
    // policy certainly lacks DNS: injected
    let out = run(&[
        "check",
        "--fix",
        &fixture("real-world/dns-through-private-cidr.yaml"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/egress-public-resolver (egress-missing-dns"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("/egress-cluster-range (egress-missing-dns"),
        "{stderr}"
    );
}

#[test]
fn dns_preset_openshift_recognizes_openshift_dns() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openshift-dns.yaml");
    let file = file.to_str().unwrap();
    // judged against kube-system's DNS, both policies lose DNS
    let out = run(&["check", "--format", "json", file]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let missing = |v: &Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "egress-missing-dns")
            .count()
    };
    assert_eq!(missing(&v), 2, "{v}");
    // against OpenShift's: both reach it (named ports, and 5353 to the DNS namespace)
    let out = run(&[
        "check",
        "--format",
        "json",
        "--dns-preset",
        "openshift",
        file,
    ]);
    let v = json(&out);
    assert_eq!(missing(&v), 0, "{v}");
    assert_eq!(out.status.code(), Some(0), "{v}");
}

#[test]
fn the_pre_commit_hook_runs_check_on_the_staged_files() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.pre-commit-hooks.yaml"
    ))
    .expect("hook file");
    let hooks: serde_json::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let hook = hooks
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == "netpol-guard-check")
        .expect("the hook");
    assert_eq!(hook["language"], "rust");
    let entry: Vec<&str> = hook["entry"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(entry, ["netpol-guard", "check"]);
    let files = regex_lite_match(hook["files"].as_str().unwrap());
    assert!(
        files("deploy/policy.yaml") && files("a.yml") && files("b.json") && !files("README.md")
    );
    // pre-commit runs: entry + args + the staged files
    let mut args: Vec<String> = entry[1..].iter().map(|s| s.to_string()).collect();
    args.extend(
        hook["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    // at the root of a repository holding only the staged file (this one's policies/ would
    // be its context: a cluster-wide allow-DNS layer there covers every policy)
    let repo = temp_dir("hook-staged-only");
    let staged = repo.join("policy.yaml");
    std::fs::copy(
        fixture("broken/kyverno-add-networkpolicy-dns.yaml"),
        &staged,
    )
    .unwrap();
    args.push(staged.display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let in_repo = |args: &[&str]| bin().args(args).current_dir(&repo).output().unwrap();
    assert_eq!(
        in_repo(&refs).status.code(),
        Some(1),
        "a deny finding fails the commit"
    );
    let values = temp_file("values.yaml", "replicaCount: 2\n");
    let mut args = refs[..refs.len() - 1].to_vec();
    args.push(values.to_str().unwrap());
    assert_eq!(
        in_repo(&args).status.code(),
        Some(0),
        "a file without policies passes"
    );
    // the hook passes --context . (pre-commit runs it at the repository's root)
    assert!(args.windows(2).any(|w| w == ["--context", "."]), "{args:?}");
}

/// A GitOps repository as pre-commit sees it: the hook's arguments, then the staged files,
/// run at the repository's root.
fn hook_run(repo: &Path, staged: &[&str]) -> Output {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.pre-commit-hooks.yaml"
    ))
    .unwrap();
    let hooks: Value = serde_yaml_ng::from_str(&text).unwrap();
    let hook = &hooks[0];
    let mut args: Vec<String> = vec!["check".into()];
    args.extend(
        hook["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    args.extend(staged.iter().map(|s| s.to_string()));
    bin().args(&args).current_dir(repo).output().unwrap()
}

#[test]
fn the_hook_judges_staged_files_with_the_repository_and_skips_kustomize_patches() {
    let repo = temp_dir("hook-repo");
    let monorepo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/monorepo");
    for rel in ["platform/allow-dns.yaml", "shop/web-egress.yaml"] {
        std::fs::create_dir_all(repo.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(monorepo.join(rel), repo.join(rel)).unwrap();
    }
    // only the egress policy is staged: the committed allow-dns covers it
    let out = hook_run(&repo, &["shop/web-egress.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("in 1 file (with 1 other file for context)"),
        "{text}"
    );
    assert!(
        text.contains("1 finding was resolved by policies in other files"),
        "{text}"
    );
    // judged alone (the hook without context), the same file is a false deny
    let alone = bin()
        .args(["check", "shop/web-egress.yaml"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(1), "{}", stdout(&alone));
    // a staged context file is judged once, not twice
    let out = hook_run(
        &repo,
        &["./shop/web-egress.yaml", "platform/allow-dns.yaml"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("in 2 files:"), "{}", stdout(&out));

    // a kustomize overlay's patches are fragments: skipped once, with what to do instead
    std::fs::create_dir_all(repo.join("shop/overlays/prod")).unwrap();
    std::fs::write(
        repo.join("shop/overlays/prod/kustomization.yaml"),
        "resources: [../..]\npatches:\n  - path: egress-patch.yaml\npatchesJson6902:\n  - target: {kind: NetworkPolicy, name: web-egress}\n    path: ops.yaml\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("shop/overlays/prod/egress-patch.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-egress}\nspec:\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/8}}]\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("shop/overlays/prod/ops.yaml"),
        "- op: add\n  path: /spec/egress/-\n  value: {to: [{ipBlock: {cidr: 10.1.0.0/16}}]}\n",
    )
    .unwrap();
    let out = hook_run(
        &repo,
        &[
            "shop/overlays/prod/egress-patch.yaml",
            "shop/overlays/prod/ops.yaml",
            "shop/overlays/prod/kustomization.yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(
        text.matches("documents of kustomize patches").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("skipped 2 documents of kustomize patches"),
        "{text}"
    );
    // the patch is no context either: the real policy is judged as it is
    let out = hook_run(&repo, &["shop/web-egress.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let _ = std::fs::remove_dir_all(&repo);
}

/// The hook's `files` pattern (`\.(ya?ml|json)$`) as a predicate.
fn regex_lite_match(pattern: &str) -> impl Fn(&str) -> bool {
    assert_eq!(pattern, r"\.(ya?ml|json)$");
    |path: &str| path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

#[test]
fn the_readme_quick_start_checks_run_as_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    // the CA is where serve writes it: the temp dir, which follows $TMPDIR
    assert!(readme.contains("curl --cacert \"${TMPDIR:-/tmp}/netpol-guard/ca.crt\""));
    assert!(!readme.contains("--cacert /tmp/"));
    // the binary is put on PATH before the first section that calls it by name
    let install = readme
        .find("cargo install --path .")
        .expect("how to install the binary");
    let first_call = readme
        .find("\nnetpol-guard certs")
        .expect("a section calls netpol-guard");
    assert!(
        install < first_call,
        "`cargo install --path .` comes after the first call"
    );
    for (folder, code) in [("recipes", 0), ("real-world", 2)] {
        let shown = format!("-- check policies/{folder}/");
        let line = readme
            .lines()
            .find(|l| l.contains(&shown))
            .unwrap_or_else(|| panic!("the quick start no longer shows policies/{folder}/"));
        assert!(line.contains(&format!("exit {code}")), "{line}");
        let out = run(&["check", &fixture(folder)]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "policies/{folder}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn yaml_bombs_deep_nesting_and_huge_inputs_end_in_a_clear_error() {
    // billion laughs: ten aliases of ten aliases ... (10^12 nodes if expanded)
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let out = run_stdin(&["check", "-"], &bomb);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("repetition limit exceeded"),
        "{}",
        stdout(&out)
    );
    // 100,000 nested brackets: refused before the (quadratic) scanner sees them
    let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let started = std::time::Instant::now();
    let out = run_stdin(&["check", "-"], &deep);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("nested deeper than 64 levels"),
        "{}",
        stdout(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // brackets in quotes and comments do not count
    let quoted = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: q}}\ndata: {{a: \"{}\"}}  # {}\n",
        "[".repeat(100),
        "{".repeat(100)
    );
    assert_eq!(run_stdin(&["check", "-"], &quoted).status.code(), Some(0));
    // more than 32 MiB: refused with the limit named
    let huge = temp_file("huge.yaml", &"# padding\n".repeat(3_400_000));
    let out = run(&["check", huge.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("larger than the 32 MiB"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn fail_on_namespace_flag_and_fix_diff_exit_codes() {
    // a warning alone passes by default and fails with --fail-on warn
    let udp_only = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]\n    ports: [{port: 53, protocol: UDP}]\n";
    let file = temp_file("udp-only.yaml", udp_only);
    let file = file.to_str().unwrap();
    assert_eq!(run(&["check", file]).status.code(), Some(0));
    assert_eq!(
        run(&["check", "--fail-on", "deny", file]).status.code(),
        Some(0)
    );
    let out = run(&["check", "--fail-on", "warn", file]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("dns-tcp-missing"));

    // -n: objects that name no namespace are judged as in NS (as kubectl apply -n puts them)
    let ingress_deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-in}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n";
    let file = temp_file("deny-in.yaml", ingress_deny);
    let file = file.to_str().unwrap();
    assert_eq!(run(&["check", file]).status.code(), Some(0));
    for flag in ["-n", "--namespace"] {
        let out = run(&["check", "--format", "json", flag, "kube-system", file]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", stdout(&out));
        let v = json(&out);
        assert_eq!(v["findings"][0]["rule"], "protected-namespace-deny-all");
        assert_eq!(v["findings"][0]["namespace"], "kube-system", "{v}");
    }

    // --fix --diff exits 1 when it has a diff, 0 when nothing needs fixing
    let missing = temp_file("missing-dns-diff.yaml", MISSING_DNS);
    let out = run(&["check", "--fix", "--diff", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("+    - port: 53") || stdout(&out).contains("+  - ports:"),
        "{}",
        stdout(&out)
    );
    let clean = temp_file("clean.yaml", udp_only);
    let out = run(&["check", "--fix", "--diff", clean.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn stdin_is_named_by_stdin_filename_and_rendered_documents_by_their_source() {
    // what a pull request's annotations need: a file of the repository, not `-`
    let out = run_stdin(
        &[
            "check",
            "--format",
            "github",
            "--stdin-filename",
            "deploy/shop.yaml",
            "-",
        ],
        MISSING_DNS,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("::error file=deploy/shop.yaml,line=")),
        "{text}"
    );
    let sarif = json(&run_stdin(
        &[
            "check",
            "--format",
            "sarif",
            "--stdin-filename",
            "deploy/shop.yaml",
            "-",
        ],
        MISSING_DNS,
    ));
    let location = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"];
    assert_eq!(
        location["artifactLocation"]["uri"], "deploy/shop.yaml",
        "{sarif}"
    );

    // helm template output: each document at its # Source:, lines counted from its start
    let rendered = format!(
        "---\n# Source: shop/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n# Source: shop/templates/networkpolicy.yaml\n{MISSING_DNS}"
    );
    let out = run_stdin(&["check", "--format", "json", "-"], &rendered);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let finding = &v["findings"][0];
    assert_eq!(finding["file"], "shop/templates/networkpolicy.yaml", "{v}");
    // spec.egress is on line 10 of the template (MISSING_DNS's own line)
    let own_line = MISSING_DNS
        .lines()
        .position(|l| l.starts_with("  egress:"))
        .unwrap()
        + 1;
    assert_eq!(finding["line"], own_line, "{v}");
    // kustomize's origin annotation names the file too
    let with_origin = MISSING_DNS.replace(
        "  name: web-egress\n",
        "  name: web-egress\n  annotations:\n    config.kubernetes.io/origin: |\n      path: apps/shop/netpol.yaml\n",
    );
    let v = json(&run_stdin(
        &["check", "--format", "json", "-"],
        &with_origin,
    ));
    assert_eq!(v["findings"][0]["file"], "apps/shop/netpol.yaml", "{v}");
}

/// `serve --kubeconfig` on a developer's machine reads the cluster for its verdicts and
/// writes nothing: the companions controller stays off unless asked for.
#[test]
fn serve_with_a_kubeconfig_keeps_the_controller_off_unless_asked() {
    use std::io::BufRead;
    let dir = temp_dir("kubeconfig-local");
    // an API server nobody listens on: the cache keeps retrying, the process serves
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9', insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    for (extra, want) in [
        (
            &[][..],
            "companions controller off: outside a cluster it runs only with --controller on",
        ),
        (
            &["--controller", "dry-run"][..],
            "companions controller in dry run",
        ),
    ] {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut child = bin()
            .args(&args)
            .env("NETPOL_GUARD_SELF_SIGNED_DIR", dir.join("ca"))
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let found = loop {
            match rx.recv_timeout(std::time::Duration::from_secs(20)) {
                Ok(line) if line.contains(want) => break true,
                Ok(line) => seen.push(line),
                Err(_) => break false,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(found, "{extra:?}: no {want:?} in:\n{}", seen.join("\n"));
        assert!(
            !seen.iter().any(|l| l.contains("companion created")),
            "{seen:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acknowledged_findings_are_listed_as_suppressed_never_silent() {
    let file = fixture("real-world/acknowledged-patterns.yaml");
    let out = run(&["check", "--format", "json", &file]);
    // the protected namespace's lockout stands whatever the manifest says
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["summary"]["suppressed"], 1, "{v}");
    let gateway = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == "public-gateway")
        .count();
    assert_eq!(gateway, 0, "{v}");
    let sarif = json(&run(&["check", "--format", "sarif", &file]));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let suppressed: Vec<&Value> = results
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1, "{results:?}");
    assert_eq!(suppressed[0]["ruleId"], "ingress-from-anywhere");
    assert_eq!(suppressed[0]["suppressions"][0]["kind"], "inSource");
    assert!(
        suppressed[0]["suppressions"][0]["justification"]
            .as_str()
            .unwrap()
            .contains("internet-facing gateway")
    );
    let text = stdout(&run(&["check", &file]));
    assert!(
        text.contains("suppressed  ingress-from-anywhere")
            && text.contains("1 finding acknowledged by netpol-guard.io/ignore"),
        "{text}"
    );
}

#[test]
fn completions_man_pages_and_version_are_generated() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        for word in ["connectivity", "check", "--fail-on"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = run(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    let page = stdout(&run(&["man"]));
    assert!(page.contains(".TH netpol-guard 1"), "{page}");
    for sub in ["serve", "check", "audit", "connectivity", "completions"] {
        assert!(
            page.contains(&format!("netpol\\-guard\\-{sub}(1)")),
            "the page lists {sub}"
        );
    }
    let dir = temp_dir("man");
    let out = run(&["man", "--out", &dir.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    for page in [
        "netpol-guard.1",
        "netpol-guard-check.1",
        "netpol-guard-connectivity.1",
        "netpol-guard-serve.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).expect(page);
        assert!(
            text.starts_with(".ie") && text.contains(".SH SYNOPSIS"),
            "{page}"
        );
    }
    let check_page = std::fs::read_to_string(dir.join("netpol-guard-check.1")).expect("page");
    assert!(
        check_page.contains("\\-\\-fail\\-on"),
        "the subcommand page lists its flags"
    );
    // the version names the revision it was built from
    let version = stdout(&run(&["--version"]));
    let (name, revision) = version.trim().split_once(" (").expect("VERSION (REVISION)");
    assert_eq!(name, format!("netpol-guard {}", env!("CARGO_PKG_VERSION")));
    assert!(revision.ends_with(')') && revision.len() > 1, "{version}");
}
