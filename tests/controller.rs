//! The companions controller against a fake API server, as kube-rs tests its controllers:
//! kube's `Client` over a `tower_test::mock::pair`, whose requests are answered by the
//! in-memory API server of `common::fake_api` (which also records them and insists on
//! server-side apply by `netpol-guard`, forced, and on delete preconditions being met).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::Request;
use common::fake_api::{FakeApi, Reply};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::client::Body;
use kube::runtime::controller::Action;
use netpol_guard::config::Config;
use netpol_guard::guard::companions;
use netpol_guard::kubernetes::controller::{self, Companions, RESYNC};
use netpol_guard::runtime::state::SharedState as AppState;
use serde_json::{Value, json};

const POLICIES: &str = "networkpolicies";

struct Harness {
    api: FakeApi,
    state: AppState,
    ctx: Arc<Companions>,
}

fn harness(config: Config) -> Harness {
    let (api, client) = fake_cluster();
    let state = common::state_with(config);
    let ctx = Companions::new(client, state.clone());
    let h = Harness { api, state, ctx };
    h.sync();
    h
}

/// The in-memory API server and a client of it.
fn fake_cluster() -> (FakeApi, kube::Client) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Reply>();
    let api = FakeApi::new();
    let served = api.clone();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            send.send_response(served.handle(req).await);
        }
    });
    (api, kube::Client::new(service, "default"))
}

impl Harness {
    /// Reconciles `ns` once the cluster cache has caught up with the API server.
    async fn reconcile(&self, ns: &Namespace) -> Action {
        self.sync();
        self.reconcile_on_the_view(ns).await
    }

    /// Reconciles `ns` against the view the cache last published, however old.
    async fn reconcile_on_the_view(&self, ns: &Namespace) -> Action {
        controller::reconcile(Arc::new(ns.clone()), self.ctx.clone())
            .await
            .expect("reconcile")
    }

    /// Publishes what the API server holds as the cluster cache's view (a synced cache).
    fn sync(&self) {
        let policies: Vec<Arc<NetworkPolicy>> = self
            .api
            .objects(POLICIES)
            .into_iter()
            .map(|o| Arc::new(serde_json::from_value(o).unwrap()))
            .collect();
        let namespaces: Vec<Arc<Namespace>> = self
            .api
            .objects("namespaces")
            .into_iter()
            .map(|o| Arc::new(serde_json::from_value(o).unwrap()))
            .collect();
        self.state
            .set_inventory(netpol_guard::kubernetes::cache::inventory(
                &policies,
                &namespaces,
            ));
    }

    fn names(&self, ns: &str) -> Vec<String> {
        self.api.names(POLICIES, ns)
    }

    fn requests(&self) -> Vec<String> {
        self.api.requests()
    }

    fn writes(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| !r.starts_with("GET "))
            .collect()
    }

    fn clear_requests(&self) {
        self.api.clear_requests();
    }

    fn put(&self, ns: &str, mut policy: Value) {
        policy["metadata"]["namespace"] = json!(ns);
        self.api.put(POLICIES, policy);
    }

    fn get(&self, ns: &str, name: &str) -> Option<Value> {
        self.api.get(POLICIES, ns, name)
    }

    fn delete(&self, ns: &str, name: &str) {
        self.api.delete(POLICIES, ns, name).expect("present");
    }

    /// The value of one series; absent series fail the test.
    fn metric(&self, series: &str) -> f64 {
        let value = common::metric(&self.state.metrics.render(), series);
        assert!(!value.is_nan(), "no series {series}");
        value
    }
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": format!("ns-uid-{name}"),
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
    }))
    .unwrap()
}

const ALLOW_DNS: &str = "netpol-guard-allow-dns";
const DEFAULT_DENY: &str = "netpol-guard-default-deny";

#[tokio::test]
async fn new_namespace_gets_both_companions_by_server_side_apply() {
    let h = harness(Config::default());
    let action = h.reconcile(&namespace("shop", &[])).await;
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(h.names("shop"), [ALLOW_DNS, DEFAULT_DENY]);
    // exactly what the engine wants, with the label and the owner reference
    for wanted in companions::desired(&Config::default(), "shop", "ns-uid-shop") {
        let name = wanted.metadata.name.clone().unwrap();
        let stored = h.get("shop", &name).unwrap();
        assert_eq!(
            stored["spec"],
            serde_json::to_value(&wanted.spec).unwrap(),
            "{name}"
        );
        assert_eq!(
            stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "netpol-guard"
        );
        let owner = &stored["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["name"], &owner["uid"]),
            (&json!("Namespace"), &json!("shop"), &json!("ns-uid-shop"))
        );
    }
    let deny = h.get("shop", DEFAULT_DENY).unwrap();
    assert_eq!(deny["spec"]["podSelector"], json!({}));
    assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let dns = h.get("shop", ALLOW_DNS).unwrap();
    let ports: Vec<(i64, &str)> = dns["spec"]["egress"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(53, "UDP"), (53, "TCP")]);
    // allow-DNS is applied before default-deny: DNS never breaks in between
    let writes = h.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes[0].contains(ALLOW_DNS) && writes[1].contains(DEFAULT_DENY));
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"applied\"}"),
        1.0
    );
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        0.0
    );

    // a second pass finds everything in place and writes nothing
    h.clear_requests();
    h.reconcile(&namespace("shop", &[])).await;
    assert!(h.writes().is_empty(), "{:?}", h.writes());
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"unchanged\"}"),
        1.0
    );
}

#[tokio::test]
async fn deleted_or_edited_companion_is_restored_and_counted() {
    let h = harness(Config::default());
    let shop = namespace("shop", &[]);
    h.reconcile(&shop).await;
    let original = h.get("shop", DEFAULT_DENY).unwrap();

    // a deletion (by an administrator: the webhook refuses everyone else)
    h.delete("shop", DEFAULT_DENY);
    h.clear_requests();
    h.reconcile(&shop).await;
    assert_eq!(
        h.get("shop", DEFAULT_DENY).unwrap()["spec"],
        original["spec"]
    );
    assert_eq!(h.writes().len(), 1, "{:?}", h.writes());
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        1.0
    );

    // an edit that opens the namespace up again
    let mut edited = original.clone();
    edited["spec"]["policyTypes"] = json!(["Ingress"]);
    h.put("shop", edited);
    h.reconcile(&shop).await;
    assert_eq!(
        h.get("shop", DEFAULT_DENY).unwrap()["spec"]["policyTypes"],
        json!(["Ingress", "Egress"])
    );
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        2.0
    );
    // the label removed is drift too: without it the webhook would not protect it
    let mut unlabelled = h.get("shop", ALLOW_DNS).unwrap();
    unlabelled["metadata"]["labels"] = json!({});
    h.put("shop", unlabelled);
    h.reconcile(&shop).await;
    assert_eq!(
        h.get("shop", ALLOW_DNS).unwrap()["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "netpol-guard"
    );
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        3.0
    );
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"applied\"}"),
        4.0
    );
}

#[tokio::test]
async fn exempt_namespace_gets_none_and_loses_existing_ones() {
    let h = harness(Config::default());
    // never had any: nothing written
    h.reconcile(&namespace("lab", &[("netpol-guard.io/exempt", "true")]))
        .await;
    assert!(h.names("lab").is_empty());
    assert!(h.writes().is_empty(), "{:?}", h.writes());

    // had companions, then was exempted: both removed, nothing else
    h.reconcile(&namespace("shop", &[])).await;
    let mut own = h.get("shop", DEFAULT_DENY).unwrap();
    own["metadata"]["name"] = json!("team-policy");
    own["metadata"]["labels"] = json!({"team": "shop"});
    h.put("shop", own);
    h.clear_requests();
    let action = h
        .reconcile(&namespace("shop", &[("netpol-guard.io/exempt", "true")]))
        .await;
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(h.names("shop"), ["team-policy"]);
    let writes = h.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(writes.iter().all(|w| w.starts_with("DELETE ")));
    // the default deny first: a removal cut short never leaves it without DNS
    assert!(writes[0].contains(DEFAULT_DENY), "{writes:?}");
    assert!(writes[1].contains(ALLOW_DNS), "{writes:?}");
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"removed\"}"),
        1.0
    );

    // a policy that only has a companion's name is not the guard's to delete
    let mut lookalike = h.get("shop", "team-policy").unwrap();
    lookalike["metadata"]["name"] = json!(ALLOW_DNS);
    h.put("lab", lookalike);
    h.clear_requests();
    h.reconcile(&namespace("lab", &[("netpol-guard.io/exempt", "true")]))
        .await;
    assert!(h.get("lab", ALLOW_DNS).is_some());
    assert!(h.writes().is_empty(), "{:?}", h.writes());
}

#[tokio::test]
async fn protected_guard_and_terminating_namespaces_are_never_touched() {
    let h = harness(Config::default());
    let mut terminating = namespace("leaving", &[]);
    terminating.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-21T00:00:00Z".parse().unwrap(),
        ));
    for ns in [
        namespace("kube-system", &[]),
        namespace("kube-public", &[]),
        namespace("kube-node-lease", &[("netpol-guard.io/exempt", "true")]),
        namespace("netpol-guard", &[]),
        terminating,
    ] {
        let action = h.reconcile(&ns).await;
        assert_eq!(action, Action::await_change());
    }
    // not even read
    assert!(h.requests().is_empty(), "{:?}", h.requests());
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"skipped\"}"),
        5.0
    );
}

#[tokio::test]
async fn configuration_decides_names_and_which_companions() {
    let h = harness(Config::default());
    let shop = namespace("shop", &[]);
    h.reconcile(&shop).await;
    // allow-DNS switched off and default-deny renamed, e.g. by a config reload
    h.state.set_config(
        Config::from_yaml(
            "companions:\n  allowDns: {enabled: false}\n  defaultDeny: {name: baseline-deny, policyTypes: [Ingress]}\n",
        )
        .unwrap(),
    );
    h.reconcile(&shop).await;
    // the disabled one is removed, and so is the default-deny under its old name
    assert_eq!(h.names("shop"), ["baseline-deny"]);
    assert_eq!(
        h.get("shop", "baseline-deny").unwrap()["spec"]["policyTypes"],
        json!(["Ingress"])
    );
}

#[tokio::test]
async fn api_errors_are_counted_and_retried() {
    let h = harness(Config::default());
    // a namespace without uid cannot own anything: an error, not a panic
    let mut ns = namespace("shop", &[]);
    ns.metadata.uid = None;
    let err = controller::reconcile(Arc::new(ns.clone()), h.ctx.clone())
        .await
        .expect_err("no uid");
    let action = controller::error_policy(Arc::new(ns), &err, h.ctx.clone());
    assert_eq!(action, Action::requeue(controller::RETRY));
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"error\"}"),
        1.0
    );
}

#[tokio::test]
async fn namespaces_outside_the_rollout_selector_get_none_and_lose_theirs() {
    let h = harness(Config::default());
    h.reconcile(&namespace("lab", &[])).await;
    assert_eq!(h.names("lab"), [ALLOW_DNS, DEFAULT_DENY]);
    h.state.set_config(
        Config::from_yaml("companions:\n  namespaceSelector: {matchLabels: {baseline: \"on\"}}\n")
            .unwrap(),
    );
    h.reconcile(&namespace("lab", &[])).await;
    assert!(h.names("lab").is_empty());
    h.reconcile(&namespace("shop", &[("baseline", "on")])).await;
    assert_eq!(h.names("shop"), [ALLOW_DNS, DEFAULT_DENY]);
}

#[tokio::test]
async fn a_plan_reads_the_cluster_and_writes_nothing() {
    use controller::PlannedAction::{Create, Remove, Restore};
    let (api, client) = fake_cluster();
    let ns = |name: &str, labels: &[(&str, &str)]| {
        serde_json::to_value(namespace(name, labels)).unwrap()
    };
    // shop: nothing yet; lab: exempt, with the companions it had; team: one edited;
    // kube-system and the guard's own namespace: never touched
    for (name, labels) in [
        ("shop", &[][..]),
        ("lab", &[("netpol-guard.io/exempt", "true")][..]),
        ("team", &[][..]),
        ("kube-system", &[][..]),
        ("netpol-guard", &[][..]),
    ] {
        api.put("namespaces", ns(name, labels));
    }
    for (namespace, uid) in [("lab", "ns-uid-lab"), ("team", "ns-uid-team")] {
        for wanted in companions::desired(&Config::default(), namespace, uid) {
            api.put(POLICIES, serde_json::to_value(&wanted).unwrap());
        }
    }
    let mut edited = api.get(POLICIES, "team", DEFAULT_DENY).unwrap();
    edited["spec"]["policyTypes"] = json!(["Ingress"]);
    api.put(POLICIES, edited);
    api.clear_requests();

    let planned = controller::plan(client, common::state_with(Config::default()))
        .await
        .expect("plan");
    let got: Vec<(String, String, controller::PlannedAction)> = planned
        .into_iter()
        .map(|p| (p.namespace, p.policy, p.action))
        .collect();
    let want = |ns: &str, policy: &str, action| (ns.to_string(), policy.to_string(), action);
    assert_eq!(
        got,
        vec![
            want("lab", DEFAULT_DENY, Remove),
            want("lab", ALLOW_DNS, Remove),
            want("shop", ALLOW_DNS, Create),
            want("shop", DEFAULT_DENY, Create),
            want("team", DEFAULT_DENY, Restore),
        ]
    );
    let writes: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET "))
        .collect();
    assert!(writes.is_empty(), "a plan wrote: {writes:?}");
    assert!(api.names(POLICIES, "shop").is_empty());
    assert_eq!(api.names(POLICIES, "lab"), [ALLOW_DNS, DEFAULT_DENY]);
}

#[tokio::test]
async fn a_cache_behind_the_api_server_never_counts_a_false_drift() {
    let h = harness(Config::default());
    let shop = namespace("shop", &[]);
    // the view the cache published before the companions existed
    h.reconcile(&shop).await;
    assert_eq!(h.names("shop"), [ALLOW_DNS, DEFAULT_DENY]);

    // reconciled again before the cache has seen its own writes: the view says both are
    // missing; the applies change nothing on the server (same uid and resourceVersion),
    // so nothing was restored
    h.clear_requests();
    h.reconcile_on_the_view(&shop).await;
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        0.0
    );
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"unchanged\"}"),
        1.0
    );
    assert_eq!(
        h.metric("netpol_guard_companion_reconciles_total{result=\"applied\"}"),
        1.0
    );

    // a real deletion seen through the same stale view is drift: the apply makes a new object
    h.delete("shop", DEFAULT_DENY);
    h.reconcile_on_the_view(&shop).await;
    assert!(h.get("shop", DEFAULT_DENY).is_some());
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        1.0
    );

    // and an edit made while the view still shows the companion as wanted is found at the
    // next view, as any drift is
    h.sync();
    let mut edited = h.get("shop", ALLOW_DNS).unwrap();
    edited["spec"]["egress"] = json!([]);
    h.put("shop", edited);
    h.clear_requests();
    h.reconcile_on_the_view(&shop).await;
    assert!(h.writes().is_empty(), "{:?}", h.writes());
    h.reconcile(&shop).await;
    assert_eq!(
        h.metric("netpol_guard_companion_drift_corrections_total"),
        2.0
    );
}

#[tokio::test]
async fn nothing_is_reconciled_before_the_cache_has_synced() {
    let (api, client) = fake_cluster();
    let state = common::state_with(Config::default());
    let ctx = Companions::new(client, state);
    let err = controller::reconcile(Arc::new(namespace("shop", &[])), ctx)
        .await
        .expect_err("an unsynced view cannot tell a missing companion");
    assert!(matches!(err, controller::Error::NotSynced), "{err}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}
