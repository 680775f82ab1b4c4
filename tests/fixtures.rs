//! The fixture corpus: every manifest in `policies/` with its expected findings, read from
//! `policies/index.yaml`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netpol_guard::config::Config;
use netpol_guard::netpol::IpFamilies;
use netpol_guard::offline::check::{Scope, analyze_scoped};
use netpol_guard::offline::manifest::Manifest;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    fixtures: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    file: String,
    #[serde(default)]
    config: Option<String>,
    expect: Vec<Expected>,
    /// Input errors the file must produce, each matched by a substring of its message.
    #[serde(default)]
    errors: Vec<String>,
    /// The cluster's IP families (`ipv4`, `ipv6`, `dual`); unknown when absent, as for
    /// `netpol-guard check` without `--ip-families`.
    #[serde(default, rename = "ipFamilies")]
    ip_families: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    name: String,
    /// When given, the finding must have this severity (a finding that depends on what
    /// the manifest cannot show is at most `warn`).
    #[serde(default)]
    severity: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn index() -> Index {
    let text = std::fs::read_to_string(root().join("index.yaml")).expect("policies/index.yaml");
    serde_yaml_ng::from_str(&text).expect("index parses")
}

#[test]
fn every_fixture_yields_exactly_its_expected_findings() {
    let mut failures = Vec::new();
    for fixture in index().fixtures {
        let path = root().join(&fixture.file);
        let text = std::fs::read_to_string(&path).expect("fixture readable");
        let config = match &fixture.config {
            Some(yaml) => Config::from_yaml(yaml).expect("fixture config"),
            None => Config::default(),
        };
        let families = fixture
            .ip_families
            .as_deref()
            .map_or(IpFamilies::Unknown, |f| {
                IpFamilies::parse(f).unwrap_or_else(|| panic!("ipFamilies {f}"))
            });
        let report = analyze_scoped(
            &[Manifest::parse(fixture.file.clone(), &text)],
            &config,
            "default",
            Scope::All,
            families,
        );
        let messages: Vec<&str> = report.problems.iter().map(|p| p.message.as_str()).collect();
        let errors_match = messages.len() == fixture.errors.len()
            && fixture
                .errors
                .iter()
                .zip(&messages)
                .all(|(want, got)| got.contains(want.as_str()));
        if !errors_match {
            failures.push(format!(
                "{}:\n  want errors {:?}\n  got  {messages:?}",
                fixture.file, fixture.errors
            ));
        }
        let mut got: Vec<Expected> = report
            .findings()
            .map(|(o, f)| Expected {
                rule: f.rule.to_string(),
                name: o.name.clone(),
                severity: Some(f.severity.to_string()),
            })
            .collect();
        // severities are compared where the index gives them
        let mut want = fixture.expect.clone();
        let severities_given = want.iter().any(|w| w.severity.is_some());
        if !severities_given {
            got.iter_mut().for_each(|g| g.severity = None);
        }
        got.sort();
        want.sort();
        if got != want {
            failures.push(format!(
                "{}:\n  want {want:?}\n  got  {got:?}",
                fixture.file
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_manifest_in_policies_is_indexed() {
    let indexed: BTreeSet<String> = index().fixtures.into_iter().map(|f| f.file).collect();
    let mut on_disk = BTreeSet::new();
    let mut stack = vec![root()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") && !path.ends_with("index.yaml")
            {
                let rel = path.strip_prefix(root()).expect("under root");
                on_disk.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let missing: Vec<_> = on_disk.difference(&indexed).collect();
    let stale: Vec<_> = indexed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not indexed: {missing:?}; indexed but absent: {stale:?}"
    );
    assert!(
        on_disk.len() >= 70,
        "the corpus shrank to {} files",
        on_disk.len()
    );
}

#[test]
fn the_corpus_exercises_every_rule() {
    let fired: BTreeSet<String> = index()
        .fixtures
        .into_iter()
        .flat_map(|f| f.expect)
        .map(|e| e.rule)
        .collect();
    // needs the cluster's whole namespace list, which only the webhook's cache has; its
    // tables are in crates/netpol-guard-core/src/rules/labels.rs and tests/admission.rs
    let cluster_only = ["namespace-selector-matches-nothing"];
    let missing: Vec<&str> = netpol_guard::rules::CATALOG
        .iter()
        // admission rules judge requests, not manifests: tests/admission.rs has their tables
        .filter(|r| matches!(r.check, netpol_guard::rules::Check::Policy(_)))
        .map(|r| r.id)
        .filter(|id| !fired.contains(*id) && !cluster_only.contains(id))
        .collect();
    assert!(missing.is_empty(), "no fixture triggers {missing:?}");
}
