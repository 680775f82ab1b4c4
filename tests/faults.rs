//! Faults around the API server, against the in-memory API server: unreachable, failing
//! with 500/429, slow, watches ending with 410 Gone, the Lease deleted or taken, replicas
//! starting together, a stop in the middle of reconciling. Admission keeps answering from
//! the last snapshot, `netpol_guard_cache_synced` tells the truth, the controller backs off
//! and resumes, companions are never duplicated, deleted or half applied, and only the
//! Lease holder writes.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fake_api::{FakeApi, namespace};
use common::replica::{
    LEASE, LEASE_NAMESPACE, Replica, assert_writes_only_by_the_holder, replica, replica_with,
};
use common::{PATIENCE, eventually};
use netpol_guard::admission::{self, Endpoint};
use netpol_guard::kubernetes::leader;
use serde_json::{Value, json};

const COMPANIONS: [&str; 2] = ["netpol-guard-allow-dns", "netpol-guard-default-deny"];

/// The production timing scaled down: renew every 2 s, fence 1 s before the 4 s expiry.
fn quick() -> leader::Timing {
    leader::Timing {
        duration: 4,
        renew_ahead: 2,
        fence_margin: 1,
        confirm_every: Duration::from_millis(500),
    }
}

/// A policy of `shop` that restricts egress without DNS.
fn web_to_db() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-to-db", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]},
    })
}

/// Whether the replica's admission judges `web_to_db` covered by the allow-DNS companion
/// (it is when its snapshot holds the companion), answering without the API server.
fn admits_web_to_db_unpatched(r: &Replica) -> bool {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
                    "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
                    "name": "web-to-db", "namespace": "shop", "operation": "CREATE",
                    "userInfo": {"username": "alice"}, "object": web_to_db()}});
    let body = serde_json::to_vec(&review).unwrap();
    let reviewed = admission::review(&r.state.snapshot(), Endpoint::Mutate, &body);
    let response = reviewed.response;
    assert_eq!(response.uid, "u-1");
    response.allowed && response.patch.is_none()
}

fn deletes(api: &FakeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with("DELETE") && r.contains("/networkpolicies/"))
        .count()
}

/// One cluster with companions in `shop`, led by replica `a`.
async fn started(api: &FakeApi) -> Replica {
    api.put("namespaces", namespace("shop"));
    let a = replica_with(api, "replica-a", quick());
    eventually("companions in shop", PATIENCE, async || {
        api.names("networkpolicies", "shop") == COMPANIONS
    })
    .await;
    eventually("a synced with the companions", PATIENCE, async || {
        a.synced() && admits_web_to_db_unpatched(&a)
    })
    .await;
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_leaves_admission_on_the_last_snapshot_and_the_controller_resumes()
 {
    let api = FakeApi::new();
    let a = started(&api).await;

    // the API server goes away as a real one shuts down: new connections are refused while
    // the open watches stay silent (only the cache's probe of the server can tell)
    a.faults.down.store(true, Ordering::SeqCst);
    eventually("cache_synced tells the outage", PATIENCE, async || {
        !a.synced()
    })
    .await;
    api.end_watches();
    // admission answers from the last snapshot, which still holds the companion
    assert!(admits_web_to_db_unpatched(&a));
    let ready = a.state.is_ready();
    // meanwhile the cluster changes
    api.put("namespaces", namespace("later"));
    let refused_before = a.faults.failed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refused = a.faults.failed() - refused_before;
    // the watches and the controller back off instead of spinning
    assert!(refused > 0, "nothing retried");
    // with the quick cache timing the watches start over at 0.5, 1.5, 3.5 s (each a list
    // of every watched resource, ~60 requests in all); a retry without backoff against an
    // in-memory server makes thousands
    assert!(refused < 150, "{refused} requests in 5 s: no backoff");
    assert_eq!(a.state.is_ready(), ready, "readiness follows the outage");
    assert!(admits_web_to_db_unpatched(&a));

    // it comes back: the cache catches up and the controller resumes
    a.faults.down.store(false, Ordering::SeqCst);
    eventually("cache_synced again", PATIENCE, async || a.synced()).await;
    eventually("companions in later", PATIENCE, async || {
        api.names("networkpolicies", "later") == COMPANIONS
    })
    .await;
    eventually("the cache sees later", PATIENCE, async || {
        a.state
            .snapshot()
            .inventory
            .namespace_labels("later")
            .is_some()
    })
    .await;
    assert_eq!(api.names("networkpolicies", "shop"), COMPANIONS);
    assert_eq!(deletes(&api), 0, "a companion was deleted");
    assert_writes_only_by_the_holder(&[&a]);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_throttling_and_slow_answers_delay_but_never_break_anything() {
    let api = FakeApi::new();
    let a = started(&api).await;

    for (fault, status) in [("500", (500, None)), ("429", (429, Some(1)))] {
        a.faults.set_status(Some(status));
        api.end_watches();
        api.put("namespaces", namespace(&format!("during-{fault}")));
        let before = a.faults.failed();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let failed = a.faults.failed() - before;
        // the quick cache timing relists every watched resource at 0.5, 1.5 and 3.5 s;
        // retries without backoff against an in-memory server would make thousands
        assert!(
            failed > 0 && failed < 150,
            "{fault}: {failed} failed requests in 4 s"
        );
        assert!(admits_web_to_db_unpatched(&a), "{fault}");
        a.faults.set_status(None);
        eventually("companions after the fault", PATIENCE, async || {
            api.names("networkpolicies", &format!("during-{fault}")) == COMPANIONS
        })
        .await;
    }

    // every answer takes 2 s: admission does not wait for any of them
    a.faults.set_delay(Duration::from_secs(2));
    api.put("namespaces", namespace("slow"));
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert!(admits_web_to_db_unpatched(&a));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "admission waited"
    );
    eventually("companions while slow", PATIENCE, async || {
        api.names("networkpolicies", "slow") == COMPANIONS
    })
    .await;
    a.faults.set_delay(Duration::ZERO);
    assert_eq!(api.names("networkpolicies", "shop"), COMPANIONS);
    assert_eq!(deletes(&api), 0, "a companion was deleted");
    assert_writes_only_by_the_holder(&[&a]);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_that_end_with_410_gone_list_again_and_miss_nothing() {
    let api = FakeApi::new();
    let a = started(&api).await;
    api.put("networkpolicies", web_to_db());
    eventually("the cache holds web-to-db", PATIENCE, async || {
        a.state.snapshot().inventory.policies_in("shop").len() == 3
    })
    .await;

    // the watches drop while the cluster changes, and the history is compacted before
    // they come back: resuming from their resourceVersion gets 410 Gone
    a.faults.down.store(true, Ordering::SeqCst);
    api.end_watches();
    api.delete("networkpolicies", "shop", "web-to-db");
    api.put("namespaces", namespace("after-gone"));
    api.compact();
    api.clear_requests();
    a.faults.down.store(false, Ordering::SeqCst);

    eventually(
        "the relisted cache lost web-to-db and found after-gone",
        PATIENCE,
        async || {
            let inv = a.state.snapshot().inventory;
            inv.policies_in("shop").len() == 2 && inv.namespace_labels("after-gone").is_some()
        },
    )
    .await;
    eventually("companions in after-gone", PATIENCE, async || {
        api.names("networkpolicies", "after-gone") == COMPANIONS
    })
    .await;
    assert!(a.synced());
    let requests = api.requests();
    assert!(
        requests.iter().any(
            |r| r.starts_with("GET /apis/networking.k8s.io/v1/networkpolicies?")
                && !r.contains("watch=true")
        ),
        "no relist of policies after 410: {requests:#?}"
    );
    assert_eq!(deletes(&api), 0);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_elect_one_and_a_deleted_or_stolen_lease_moves_safely() {
    let api = FakeApi::new();
    for ns in ["shop", "payments"] {
        api.put("namespaces", namespace(ns));
    }
    // three replicas at once
    let replicas = [
        replica_with(&api, "replica-a", quick()),
        replica_with(&api, "replica-b", quick()),
        replica_with(&api, "replica-c", quick()),
    ];
    let leaders = |rs: &[Replica]| rs.iter().filter(|r| r.leads()).count();
    eventually("one leader", PATIENCE, async || leaders(&replicas) == 1).await;
    eventually("companions", PATIENCE, async || {
        api.names("networkpolicies", "payments") == COMPANIONS
    })
    .await;

    let all: Vec<&Replica> = replicas.iter().collect();
    assert_writes_only_by_the_holder(&all);
    // someone deletes the Lease or overwrites its holder: the leader notices at its next
    // confirmation (500 ms here) and its reconciles are cut off half a fence margin later;
    // writes in that window are the price of an overwritten Lease, those after it are not
    let forget_the_window = || async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        for r in &replicas {
            r.faults.clear_writes();
        }
    };

    // the Lease object is deleted: the holder stops, and exactly one replica leads again
    api.delete("leases", LEASE_NAMESPACE, LEASE);
    forget_the_window().await;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        assert!(leaders(&replicas) <= 1, "two replicas reconciling");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("one leader after the deletion", PATIENCE, async || {
        leaders(&replicas) == 1
    })
    .await;
    assert!(api.get("leases", LEASE_NAMESPACE, LEASE).is_some());

    // another identity takes the Lease (fresh, for 4 s): nobody here reconciles meanwhile
    let mut lease = api.get("leases", LEASE_NAMESPACE, LEASE).unwrap();
    lease["spec"]["holderIdentity"] = json!("intruder");
    lease["spec"]["renewTime"] = now_micro();
    lease["spec"]["leaseDurationSeconds"] = json!(4);
    assert_writes_only_by_the_holder(&all);
    api.put("leases", lease);
    eventually("our leader stops", PATIENCE, async || {
        leaders(&replicas) == 0
    })
    .await;
    forget_the_window().await;
    api.put("namespaces", namespace("while-stolen"));
    // the intruder never renews: after its Lease expires one of ours takes over
    eventually("one of ours leads again", PATIENCE, async || {
        leaders(&replicas) == 1
    })
    .await;
    eventually("companions after the takeover", PATIENCE, async || {
        api.names("networkpolicies", "while-stolen") == COMPANIONS
    })
    .await;
    assert_writes_only_by_the_holder(&all);
    assert_eq!(deletes(&api), 0);
    for r in replicas {
        r.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_reconciling_never_leaves_default_deny_without_dns() {
    let api = FakeApi::new();
    for i in 0..20 {
        api.put("namespaces", namespace(&format!("ns-{i}")));
    }
    // every answer is slow, so the stop lands in the middle of reconciles
    let a = replica(&api, "replica-a");
    a.faults.set_delay(Duration::from_millis(150));
    eventually("some companions written", PATIENCE, async || {
        (0..20).any(|i| !api.names("networkpolicies", &format!("ns-{i}")).is_empty())
    })
    .await;
    a.shutdown().await;
    let mut complete = 0;
    for i in 0..20 {
        let names = api.names("networkpolicies", &format!("ns-{i}"));
        assert!(
            names.is_empty() || names == COMPANIONS[..1] || names == COMPANIONS,
            "ns-{i} holds {names:?}: default-deny without the DNS allowance"
        );
        complete += usize::from(names == COMPANIONS);
    }
    assert!(complete < 20, "the stop came too late to test anything");
}

/// Now, as a Lease's `renewTime`.
fn now_micro() -> Value {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    serde_json::to_value(now).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_while_reconciled_is_left_alone_without_an_error_loop() {
    let api = FakeApi::new();
    let a = started(&api).await;
    api.put("namespaces", namespace("doomed"));
    eventually("companions in doomed", PATIENCE, async || {
        api.names("networkpolicies", "doomed") == COMPANIONS
    })
    .await;

    // the namespace starts finalizing while a companion goes missing: the reconcile that
    // follows still sees the old namespace (its event is not there yet), and the API server
    // refuses the write
    api.start_deleting_quietly("doomed");
    api.delete("networkpolicies", "doomed", "netpol-guard-default-deny");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors = a
        .state
        .metrics
        .render()
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"netpol_guard_companion_reconciles_total{result="error"} "#)
                .map(|v| v.parse::<u64>().unwrap())
        })
        .unwrap();
    assert_eq!(
        errors, 0,
        "a finalizing namespace counted as a failed reconcile"
    );
    api.clear_requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("/namespaces/doomed/") && !r.starts_with("GET"))
        .collect();
    assert!(writes.is_empty(), "still writing into doomed: {writes:?}");

    // the event arrives; the namespace controller deletes what is left, then the namespace
    let mut doomed = api.get("namespaces", "", "doomed").unwrap();
    doomed["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    api.put("namespaces", doomed);
    api.delete("networkpolicies", "doomed", "netpol-guard-allow-dns");
    api.delete("namespaces", "", "doomed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(api.names("networkpolicies", "doomed").is_empty());
    assert_eq!(api.names("networkpolicies", "shop"), COMPANIONS);
    a.shutdown().await;
}
