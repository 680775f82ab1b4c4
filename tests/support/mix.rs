//! The request mix of the load benchmark, shared with the criterion benchmark of
//! `admission::review` and the end-to-end harness.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::review::Review;

/// One request of the mix.
#[derive(Clone)]
pub struct Req {
    pub path: &'static str,
    pub body: Bytes,
}

/// The review for request number `uid` of the mix (a GitOps controller applying it).
pub fn review(uid: usize, kind: &str, operation: &str, object: &Value, old: &Value) -> Vec<u8> {
    let kind = if kind == "NetworkPolicy" {
        "NetworkPolicy"
    } else {
        "Namespace"
    };
    let operation = if operation == "UPDATE" {
        "UPDATE"
    } else {
        "CREATE"
    };
    Review {
        uid: format!("00000000-0000-4000-8000-{uid:012}"),
        old: old.clone(),
        ..Review::from_controller(kind, operation, object.clone())
    }
    .body()
}

/// A NetworkPolicy as the API server holds it (with managedFields, as in real reviews).
pub fn policy(name: &str, with_dns: bool, padding: usize) -> Value {
    let mut egress = vec![
        json!({"to": [{"podSelector": {"matchLabels": {"app": "api"}}}],
                                 "ports": [{"port": 8080, "protocol": "TCP"}]}),
    ];
    if with_dns {
        egress.push(json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}));
    }
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name, "namespace": "shop", "uid": "0c7f7a3e-6d0b-4a55-8d7e-5f3c2b1a0e99",
            "resourceVersion": "123456", "generation": 3, "creationTimestamp": "2026-11-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"},
            "annotations": {"note": "x".repeat(padding)},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                               "apiVersion": "networking.k8s.io/v1", "time": "2026-11-01T10:00:00Z",
                               "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:egress": {}, "f:podSelector": {}, "f:policyTypes": {}}}}]
        },
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
                              "ports": [{"port": 8080}]}],
                 "egress": egress}
    })
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"team": "shop", "kubernetes.io/metadata.name": name}},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// The request mix, in the proportions it is sent (20 slots).
pub fn mix() -> Vec<Req> {
    let with_dns = policy("web", true, 200);
    let without = policy("web", false, 200);
    let ns = namespace("team-a");
    let mut out = Vec::new();
    let mut add = |n: usize, path: &'static str, body: Vec<u8>| {
        for _ in 0..n {
            out.push(Req {
                path,
                body: Bytes::from(body.clone()),
            });
        }
    };
    // NetworkPolicy CREATE with DNS: admitted (validate) and untouched (mutate)
    add(
        4,
        "/validate?timeout=10s",
        review(1, "NetworkPolicy", "CREATE", &with_dns, &Value::Null),
    );
    add(
        2,
        "/mutate?timeout=10s",
        review(2, "NetworkPolicy", "CREATE", &with_dns, &Value::Null),
    );
    // without DNS: the deny case (validate) and the mutate case (mutate)
    add(
        3,
        "/validate?timeout=10s",
        review(3, "NetworkPolicy", "CREATE", &without, &Value::Null),
    );
    add(
        3,
        "/mutate?timeout=10s",
        review(4, "NetworkPolicy", "CREATE", &without, &Value::Null),
    );
    // UPDATE with old and new object
    add(
        4,
        "/validate?timeout=10s",
        review(5, "NetworkPolicy", "UPDATE", &with_dns, &without),
    );
    // Namespace CREATE
    add(
        2,
        "/mutate?timeout=10s",
        review(6, "Namespace", "CREATE", &ns, &Value::Null),
    );
    add(
        2,
        "/validate?timeout=10s",
        review(7, "Namespace", "CREATE", &ns, &Value::Null),
    );
    out
}

/// The worst case: an UPDATE whose two objects fill the 7 MiB limit.
pub fn worst_case() -> Req {
    let half = (7 * 1024 * 1024 - 64 * 1024) / 2;
    let new = policy("big", false, half - 2048);
    let old = policy("big", true, half - 2048);
    let body = review(9, "NetworkPolicy", "UPDATE", &new, &old);
    assert!(body.len() < 7 * 1024 * 1024, "{}", body.len());
    Req {
        path: "/validate?timeout=10s",
        body: Bytes::from(body),
    }
}
