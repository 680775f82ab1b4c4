//! The Kubernetes side wired together, against the in-memory API server of
//! `common::fake_api`: the cluster cache (list + watch), the leader Lease and the companions
//! controller as `serve` runs them, and admission reading the cache.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::eventually;
use common::fake_api::FakeApi;
use common::replica::{Replica, replica, replica_with};
use netpol_guard::kubernetes::leader;
use serde_json::{Value, json};

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}})
}

const COMPANIONS: [&str; 2] = ["netpol-guard-allow-dns", "netpol-guard-default-deny"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_companions_everywhere_and_admission_sees_them() {
    let api = FakeApi::new();
    for ns in ["shop", "kube-system", "netpol-guard"] {
        api.put("namespaces", namespace(ns));
    }
    let a = replica(&api, "replica-a");
    eventually("companions in shop", Duration::from_secs(45), async || {
        api.names("networkpolicies", "shop") == COMPANIONS
    })
    .await;
    eventually("replica a leads", Duration::from_secs(45), async || {
        a.state.metrics.controller.is_leader()
    })
    .await;
    let b = replica(&api, "replica-b");
    eventually("both caches synced", Duration::from_secs(45), async || {
        a.state.metrics.cache.synced() && b.state.metrics.cache.synced()
    })
    .await;
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    // protected and guard namespaces are never given companions
    assert!(api.names("networkpolicies", "kube-system").is_empty());
    assert!(api.names("networkpolicies", "netpol-guard").is_empty());

    // a namespace created later gets its companions within seconds
    api.put("namespaces", namespace("payments"));
    eventually(
        "companions in payments",
        Duration::from_secs(45),
        async || api.names("networkpolicies", "payments") == COMPANIONS,
    )
    .await;

    // a deleted companion comes back, counted as drift by the leader
    api.delete("networkpolicies", "shop", "netpol-guard-default-deny");
    eventually(
        "default-deny restored",
        Duration::from_secs(45),
        async || {
            api.get("networkpolicies", "shop", "netpol-guard-default-deny")
                .is_some()
        },
    )
    .await;
    eventually("drift counted", Duration::from_secs(45), async || {
        a.state.metrics.controller.drift_corrections() == 1
    })
    .await;

    // the other replica reconciles nothing while the first holds the Lease
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.state.metrics.controller.is_leader());
    let reconciles = |r: &Replica| r.state.metrics.controller.reconciles();
    assert_eq!(reconciles(&b), 0);
    assert!(reconciles(&a) >= 4, "{}", reconciles(&a));

    // every replica's admission sees the allow-DNS companion through its cache
    let egress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-to-db", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]},
    });
    for replica in [&a, &b] {
        eventually(
            "cache holds the companions",
            Duration::from_secs(45),
            async || replica.state.snapshot().inventory.policies_in("shop").len() == 2,
        )
        .await;
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u-1", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
                        "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
                        "name": "web-to-db", "namespace": "shop", "operation": "CREATE",
                        "userInfo": {"username": "alice"}, "object": egress.clone()}});
        let body = serde_json::to_vec(&review).unwrap();
        for endpoint in [
            netpol_guard::admission::Endpoint::Validate,
            netpol_guard::admission::Endpoint::Mutate,
        ] {
            let reviewed =
                netpol_guard::admission::review(&replica.state.snapshot(), endpoint, &body);
            let response = reviewed.response;
            assert!(response.allowed, "{endpoint:?}: {:?}", response.status);
            assert!(
                response.patch.is_none(),
                "{endpoint:?} patched a covered policy"
            );
        }
    }

    // the leader goes away (releasing the Lease): the other one takes over and reconciles
    a.shutdown().await;
    eventually("replica b leads", Duration::from_secs(45), async || {
        b.state.metrics.controller.is_leader()
    })
    .await;
    api.put("namespaces", namespace("late"));
    eventually("companions in late", Duration::from_secs(45), async || {
        api.names("networkpolicies", "late") == COMPANIONS
    })
    .await;
    assert!(reconciles(&b) > 0);
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_another_takes_over() {
    let api = FakeApi::new();
    api.put("namespaces", namespace("shop"));
    let a = replica(&api, "replica-a");
    eventually("replica a leads", Duration::from_secs(45), async || {
        a.state.metrics.controller.is_leader()
    })
    .await;
    let b = replica(&api, "replica-b");
    eventually("b's cache synced", Duration::from_secs(45), async || {
        b.state.metrics.cache.synced()
    })
    .await;

    // a can no longer reach the Lease (but still everything else)
    a.faults.cut_leases.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let mut a_stopped = None;
    while !b.state.metrics.controller.is_leader() {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "replica b never took over"
        );
        let (la, lb) = (
            a.state.metrics.controller.is_leader(),
            b.state.metrics.controller.is_leader(),
        );
        assert!(!(la && lb), "two replicas reconciling");
        if !la && a_stopped.is_none() {
            a_stopped = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a_stopped = a_stopped.expect("a stopped before b started");
    assert!(
        a_stopped <= Duration::from_secs(12),
        "a kept reconciling {a_stopped:?} without renewing"
    );
    assert!(!a.state.metrics.controller.is_leader());
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    // the new leader works
    api.put("namespaces", namespace("after"));
    eventually("companions in after", Duration::from_secs(45), async || {
        api.names("networkpolicies", "after") == COMPANIONS
    })
    .await;
    b.shutdown().await;
    a.faults.cut_leases.store(false, Ordering::SeqCst);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_leader_keeps_reconciling_across_renewals() {
    // the production timing scaled down (renewal every 2 s, fence 1 s before expiry), so
    // that several renewals pass in a few seconds of real time: the Lease's timestamps are
    // wall-clock time, which a paused tokio clock would not move
    let timing = leader::Timing {
        duration: 4,
        renew_ahead: 2,
        fence_margin: 1,
        confirm_every: Duration::from_millis(500),
    };
    let api = FakeApi::new();
    api.put("namespaces", namespace("shop"));
    let a = replica_with(&api, "replica-a", timing);
    eventually("replica a leads", Duration::from_secs(45), async || {
        a.state.metrics.controller.is_leader()
    })
    .await;
    let started = tokio::time::Instant::now();
    // four renewal periods
    while started.elapsed() < Duration::from_secs(8) {
        assert!(
            a.state.metrics.controller.is_leader(),
            "the controller stopped at {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        a.state.metrics.controller.leader_transitions(),
        1,
        "flapping"
    );
    let lease = api
        .get("leases", "netpol-guard", "netpol-guard-controller")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    let state = a.state.clone();
    a.shutdown().await;
    assert_eq!(state.metrics.controller.leader_transitions(), 2);
}
