//! Entry points for the coverage-guided fuzz targets (`tests/fuzz`), compiled only with
//! `--cfg fuzzing`. Each takes untrusted bytes the way the guard receives them and asserts
//! what must hold for any input besides "no panic".

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use k8s_openapi::api::networking::v1::{IPBlock, NetworkPolicy, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;

use crate::admission::{self, Endpoint};
use crate::config::Config;
use crate::guard::{Identity, Snapshot};
use crate::netpol::cluster::Inventory;
use crate::netpol::index::{Entry, Lookup};
use crate::netpol::ipblock::Block;
use crate::netpol::ipblock::IpFamilies;
use crate::netpol::policy::Subject;
use crate::netpol::ports::{PortTarget, Protocol, port_allows, port_problems};
use crate::netpol::selector::{Labels, Selector};
use crate::offline::check::{self, Scope};
use crate::offline::manifest::Manifest;
use crate::offline::report::{self, Format};
use crate::rules;

const CONTEXT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: shop}
spec:
  podSelector: {matchLabels: {to-dns: allowed}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"#;

/// A snapshot with a namespace, a label-composed DNS policy and pods, for reviews.
static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let mut inventory = Inventory::new();
    let mut labels = Labels::new();
    labels.insert("kubernetes.io/metadata.name".into(), "shop".into());
    inventory.insert_namespace("shop", labels);
    if let Ok(policy) = serde_yaml_ng::from_str::<NetworkPolicy>(CONTEXT) {
        inventory.insert_policy("shop", Arc::new(policy));
    }
    let pod = |app: &str| -> Labels { [("app".to_string(), app.to_string())].into() };
    inventory.insert_pod("shop", "web-1", pod("web"));
    inventory.insert_pod("shop", "db-1", pod("db"));
    inventory.mark_pods_complete(true);
    let identity = Identity {
        namespace: "netpol-guard".into(),
        service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
    };
    Snapshot::new(
        Arc::new(Config::default()),
        Arc::new(inventory),
        Arc::new(identity),
    )
});

/// An AdmissionReview body: decoded, decided and encoded on both endpoints. The answer is
/// always an AdmissionReview, and echoes the request's uid whenever the body has one.
pub fn review(data: &[u8]) {
    let uid = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["request"]["uid"].as_str().map(str::to_string));
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let reviewed = admission::review(&SNAPSHOT, endpoint, data);
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&reviewed.body) else {
            panic!("the answer is not JSON");
        };
        assert_eq!(answer["kind"], "AdmissionReview");
        if let (Some(uid), false) = (&uid, reviewed.bad_request) {
            assert_eq!(answer["response"]["uid"].as_str(), Some(uid.as_str()));
        }
    }
}

/// A manifest file: loaded, checked, reported as text and annotations, and fixed;
/// a fixed file must check clean of the findings it fixed.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let manifests = [Manifest::parse("fuzz.yaml", &text)];
    let config = Config::default();
    // the JSON and SARIF formats are serde's serialization of the same report: rendering
    // them would halve the executions for no code of ours
    let report = check::analyze_scoped(
        &manifests,
        &config,
        "default",
        Scope::All,
        IpFamilies::Unknown,
    );
    for format in [Format::Text, Format::Github] {
        let _ = report::render(&report, format);
    }
    let missing = check::missing_dns(
        &manifests,
        &config,
        "default",
        Scope::All,
        IpFamilies::Unknown,
    );
    let name = |m: &check::Missing| format!("{}/{}", m.namespace, m.name);
    for fix in crate::offline::fix::fix_files(&manifests, &missing) {
        // every policy lacking DNS is either fixed or named as not fixed
        assert_eq!(fix.applied.len() + fix.refused.len(), missing.len());
        if fix.applied.is_empty() {
            continue;
        }
        let again = [Manifest::parse("fuzz.yaml", &fix.fixed)];
        let left = check::missing_dns(&again, &config, "default", Scope::All, IpFamilies::Unknown);
        // a name given to one policy only identifies it (twins are told apart by position)
        for fixed in &fix.applied {
            let twins = missing.iter().filter(|m| &name(m) == fixed).count();
            assert!(
                twins > 1 || !left.iter().any(|m| &name(m) == fixed),
                "{fixed} still lacks DNS after its fix"
            );
        }
    }
}

/// A configuration file: parsed; when valid, usable as a rule context.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_yaml(text) else {
        return;
    };
    let inventory = Inventory::new();
    let ctx = config.rule_context(&inventory);
    let policy = NetworkPolicy::default();
    let _ = rules::evaluate(&ctx, &Subject::new(&policy, "default"));
}

/// Two selectors, pod labels, ipBlocks and ports, as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModelInput {
    a: LabelSelector,
    b: LabelSelector,
    labels: BTreeMap<String, String>,
    blocks: Vec<IPBlock>,
    ips: Vec<IpAddr>,
    ports: Vec<NetworkPolicyPort>,
    target: (u16, Option<String>, bool),
}

/// The selector, CIDR and port model: what `implies`, `disjoint`, `pins` and the lookups
/// claim must agree with `matches` on the given labels.
pub fn model(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<ModelInput>(data) else {
        return;
    };
    if let (Ok(a), Ok(b)) = (Selector::parse(&input.a), Selector::parse(&input.b)) {
        let labels = &input.labels;
        let (in_a, in_b) = (a.matches(labels), b.matches(labels));
        if a.implies(&b) {
            assert!(!in_a || in_b, "a implies b, yet the labels match a only");
        }
        if a.disjoint(&b) {
            assert!(!(in_a && in_b), "disjoint selectors both match");
        }
        if a.selects_nothing() {
            assert!(!in_a, "a selector that selects nothing matched");
        }
        if in_a {
            for (key, value) in a.pins() {
                assert_eq!(labels.get(key).map(String::as_str), Some(value));
            }
        }
        let policy = NetworkPolicy::default();
        let entries: Vec<Entry<'_>> = [&input.a, &input.b]
            .into_iter()
            .map(|s| Entry {
                subject: Subject::new(&policy, "default"),
                selector: Selector::parse(s).ok(),
                label_selector: s,
            })
            .collect();
        let lookup = Lookup::new(&entries, 0..entries.len());
        if in_b {
            assert!(lookup.may_match(labels).contains(&1));
        }
        if a.implies(&b) {
            assert!(lookup.may_be_implied_by(&a).contains(&1));
        }
        if !a.disjoint(&b) {
            assert!(lookup.may_overlap(&a).contains(&1));
        }
    }
    for block in &input.blocks {
        if let Ok(parsed) = Block::parse(block) {
            for ip in &input.ips {
                let _ = parsed.contains(*ip);
            }
            let _ = parsed.is_everything();
        }
    }
    let (number, name, udp) = input.target;
    let target = PortTarget {
        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
        number: i32::from(number),
        name: name.as_deref(),
    };
    for port in &input.ports {
        let _ = port_problems(port);
        let _ = port_allows(port, &target);
    }
}
