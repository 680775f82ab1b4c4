//! Every answer the webhook gives for the fixture corpus, held against a recorded file
//! (`tests/data/answers.jsonl`): each NetworkPolicy and Namespace of `policies/` as a CREATE
//! on both endpoints, an UPDATE and a DELETE, once on an empty cluster and once on a cluster
//! that holds every fixture, plus bodies that never become reviews. A change of any verdict,
//! message, warning, annotation or patch shows here as a diff of one line.
//!
//! The answers are compared as JSON values (key order is not part of an answer) with the
//! patch decoded from base64. After an intended change, record again with
//! `NETPOL_GUARD_RECORD_ANSWERS=1 cargo test --test answers` and read the diff.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol_guard::admission::{self, Endpoint};
use netpol_guard::config::Config;
use netpol_guard::guard::{Identity, Snapshot};
use netpol_guard::netpol::cluster::Inventory;
type Labels = std::collections::BTreeMap<String, String>;
use serde_json::{Value, json};

use common::Review;

const RECORDED: &str = "tests/data/answers.jsonl";

/// Every NetworkPolicy and Namespace of the fixture corpus: (kind, object).
fn fixture_objects() -> Vec<(&'static str, Value)> {
    common::corpus::fixture_objects()
        .into_iter()
        .map(|(kind, _, object)| (kind, object))
        .collect()
}

fn identity() -> Arc<Identity> {
    Arc::new(Identity {
        namespace: "netpol-guard".into(),
        service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
    })
}

/// A cluster holding every fixture policy and the namespaces they live in.
fn cluster_of(objects: &[(&str, Value)]) -> Inventory {
    let mut inventory = Inventory::new();
    let mut namespaces = std::collections::BTreeSet::new();
    for (kind, object) in objects {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match *kind {
            "NetworkPolicy" => {
                if namespaces.insert(namespace.to_string()) {
                    inventory.insert_namespace(namespace, Labels::new());
                }
                let policy: NetworkPolicy = serde_json::from_value(object.clone()).unwrap();
                inventory.insert_policy(namespace, Arc::new(policy));
            }
            _ => {
                let labels: Labels = serde_json::from_value(object["metadata"]["labels"].clone())
                    .unwrap_or_default();
                namespaces.insert(name.to_string());
                inventory.insert_namespace(name, labels);
            }
        }
    }
    // as a synced cache holds them
    inventory.mark_namespaces_complete();
    inventory
}

/// The review bodies of one object: CREATE, UPDATE (of itself with a label added) and
/// DELETE, as a GitOps controller's writes arrive.
fn bodies(kind: &'static str, object: &Value) -> Vec<(&'static str, Vec<u8>)> {
    let mut old = object.clone();
    old["metadata"]["labels"]["revision"] = json!("1");
    let update = Review {
        old: old.clone(),
        ..Review::from_controller(kind, "UPDATE", object.clone())
    };
    let delete = Review {
        old: object.clone(),
        ..Review::from_controller(kind, "DELETE", Value::Null)
    };
    vec![
        (
            "CREATE",
            Review::from_controller(kind, "CREATE", object.clone()).body(),
        ),
        ("UPDATE", update.body()),
        ("DELETE", delete.body()),
    ]
}

/// Bodies that are not (usable) AdmissionReviews.
fn odd_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let policy = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "p", "namespace": "shop"},
                        "spec": {"podSelector": {}, "policyTypes": ["Egress"]}});
    let mut v1beta1 = Review::policy("CREATE", policy.clone()).json();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_uid = Review::policy("CREATE", policy.clone()).json();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut bad_port = Review::policy("CREATE", policy.clone()).json();
    bad_port["request"]["object"]["spec"]["ingress"] = json!([{"ports": [{"port": {}}]}]);
    let mut pod = Review::policy("CREATE", json!({"metadata": {"name": "x"}})).json();
    pod["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    let no_object = Review::policy("CREATE", Value::Null).json();
    let no_old = Review::namespace("DELETE", Value::Null).json();
    let escaped = Review::policy(
        "CREATE",
        json!({"metadata": {"name": "caf\u{e9}\"\\", "namespace": "shop"},
               "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}),
    )
    .json();
    let to_bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    vec![
        ("not json", b"{\"apiVersion\": ".to_vec()),
        ("not an object", b"[1, 2]".to_vec()),
        ("v1beta1", to_bytes(v1beta1)),
        ("no uid", to_bytes(no_uid)),
        ("bad port", to_bytes(bad_port)),
        ("pod", to_bytes(pod)),
        ("no object", to_bytes(no_object)),
        ("no oldObject", to_bytes(no_old)),
        ("escaped name", to_bytes(escaped)),
    ]
}

/// An answer as a comparable value: the patch decoded, the HTTP outcome beside it.
fn answer(snapshot: &Snapshot, endpoint: Endpoint, body: &[u8]) -> Value {
    let reviewed = admission::review(snapshot, endpoint, body);
    let mut json: Value = serde_json::from_slice(&reviewed.body).expect("an answer is JSON");
    if let Some(patch) = json["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("the patch is base64");
        json["response"]["patch"] = serde_json::from_slice(&bytes).expect("the patch is JSON");
    }
    json!({
        "answer": json,
        "bad_request": reviewed.bad_request,
        "decision": reviewed.decision.as_str(),
        "kind": reviewed.kind,
        "operation": reviewed.operation,
        "uid": reviewed.uid,
        "namespace": reviewed.namespace,
        "name": reviewed.name,
        "findings": reviewed.findings.iter().map(|f| f.rule).collect::<Vec<_>>(),
    })
}

/// Every answer, keyed `cluster | kind namespace/name | operation | endpoint`.
fn answers() -> BTreeMap<String, Value> {
    let objects = fixture_objects();
    assert!(objects.len() >= 100, "{} fixture objects", objects.len());
    let config = Arc::new(Config::default());
    let clusters = [
        ("empty", Inventory::new()),
        ("fixtures", cluster_of(&objects)),
    ];
    let mut out = BTreeMap::new();
    for (cluster, inventory) in clusters {
        let snapshot = Snapshot::new(config.clone(), Arc::new(inventory), identity());
        for (n, (kind, object)) in objects.iter().enumerate() {
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            for (operation, body) in bodies(kind, object) {
                for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                    let key = format!(
                        "{cluster} | {n:03} {kind} {namespace}/{name} | {operation} | {}",
                        endpoint.as_str()
                    );
                    out.insert(key, answer(&snapshot, endpoint, &body));
                }
            }
        }
        for (what, body) in odd_bodies() {
            for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                let key = format!("{cluster} | odd {what} | {}", endpoint.as_str());
                out.insert(key, answer(&snapshot, endpoint, &body));
            }
        }
    }
    out
}

#[test]
fn every_answer_is_the_recorded_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED);
    let answers = answers();
    if std::env::var_os("NETPOL_GUARD_RECORD_ANSWERS").is_some() {
        let mut text = String::new();
        for (key, value) in &answers {
            text.push_str(&serde_json::to_string(&json!({"key": key, "answer": value})).unwrap());
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        eprintln!("recorded {} answers in {RECORDED}", answers.len());
        return;
    }
    let recorded: BTreeMap<String, Value> = std::fs::read_to_string(&path)
        .expect("the recorded answers (NETPOL_GUARD_RECORD_ANSWERS=1 to record)")
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["key"].as_str().unwrap().to_string(), v["answer"].clone())
        })
        .collect();
    let mut differences = Vec::new();
    for (key, value) in &answers {
        match recorded.get(key) {
            Some(r) if r == value => {}
            Some(r) => differences.push(format!("{key}\n  recorded: {r}\n  now:      {value}")),
            None => differences.push(format!("{key}: not recorded")),
        }
    }
    differences.extend(
        recorded
            .keys()
            .filter(|k| !answers.contains_key(*k))
            .map(|k| format!("{k}: recorded, no longer answered")),
    );
    assert!(
        differences.is_empty(),
        "{} of {} answers differ:\n{}",
        differences.len(),
        answers.len(),
        differences
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{} answers as recorded", answers.len());
}
