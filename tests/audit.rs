//! The background audit against the in-memory API server of `common::fake_api`: findings of
//! the existing policies in metrics and PolicyReports, reports rewritten only when their
//! results change, removed where nothing is left to report, metrics only without the CRD.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::fake_api::{FakeApi, client, namespace};
use common::{PATIENCE, eventually};
use netpol_guard::config::Config;
use netpol_guard::kubernetes::{audit, cache};
use netpol_guard::runtime::state::SharedState;
use serde_json::{Value, json};
use tokio::sync::watch;

fn policy(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn web_egress(with_dns: bool) -> Value {
    let mut egress = vec![
        json!({"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}),
    ];
    if with_dns {
        egress.push(json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}));
    }
    policy(
        "shop",
        "web-egress",
        json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": egress}),
    )
}

/// A cluster with known broken policies: an egress policy without DNS in `shop`, a clean
/// ingress policy beside it, a deny-all in `kube-system`.
fn cluster() -> FakeApi {
    let api = FakeApi::new();
    for ns in ["shop", "kube-system", "netpol-guard"] {
        api.put("namespaces", namespace(ns));
    }
    api.put("networkpolicies", web_egress(false));
    api.put(
        "networkpolicies",
        policy(
            "shop",
            "web-ingress",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "gateway"}}}], "ports": [{"port": 8080}]}]}),
        ),
    );
    api.put(
        "networkpolicies",
        policy(
            "kube-system",
            "deny-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
    );
    api
}

/// The cache and the audit of a replica that leads.
struct Replica {
    state: SharedState,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start(api: &FakeApi) -> Replica {
    start_as(api, true)
}

fn start_as(api: &FakeApi, leading: bool) -> Replica {
    start_with(api, leading, audit::ReportApi::PolicyReport)
}

fn start_with(api: &FakeApi, leading: bool, report_api: audit::ReportApi) -> Replica {
    let state = common::state_with(Config::default());
    let (stop, rx) = watch::channel(false);
    let settings = audit::Settings {
        interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(100),
        reports: true,
        api: report_api,
    };
    let tasks = vec![
        tokio::spawn(cache::run(
            client(api),
            state.clone(),
            cache::Timing::default(),
            rx.clone(),
        )),
        tokio::spawn(audit::run(client(api), state.clone(), settings, rx)),
    ];
    state.set_leading(leading);
    Replica { state, stop, tasks }
}

impl Replica {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        for t in self.tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("stops")
                .unwrap();
        }
    }

    fn finding_gauge(&self, rule: &str, severity: &str) -> i64 {
        let severity = match severity {
            "deny" => netpol_guard::rules::Severity::Deny,
            "warn" => netpol_guard::rules::Severity::Warn,
            other => panic!("no severity {other}"),
        };
        self.state.metrics.audit.findings(rule, severity)
    }

    fn writes(&self, operation: &str) -> u64 {
        use netpol_guard::runtime::metrics::ReportWrite;
        let write = match operation {
            "apply" => ReportWrite::Apply,
            "delete" => ReportWrite::Delete,
            other => panic!("no report write {other}"),
        };
        self.state.metrics.audit.report_writes(write)
    }
}

/// (rule, result, policy name) of every result of a report.
fn results(report: &Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["resources"][0]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_become_metrics_and_policy_reports_that_follow_the_cluster() {
    let api = cluster();
    api.install_policy_reports();
    let replica = start(&api);
    eventually("the first audit and its reports", PATIENCE, async || {
        replica.state.metrics.audit.last_run() > 0.0
            && api.get("policyreports", "shop", "netpol-guard").is_some()
            && api
                .get("policyreports", "kube-system", "netpol-guard")
                .is_some()
    })
    .await;
    assert_eq!(replica.finding_gauge("egress-missing-dns", "deny"), 1);
    assert_eq!(
        replica.finding_gauge("protected-namespace-deny-all", "deny"),
        1
    );
    assert_eq!(
        replica.finding_gauge("allow-all-rule", "warn"),
        0,
        "series exist at zero"
    );
    assert!(replica.state.metrics.audit.last_run() > 0.0);

    let shop = api.get("policyreports", "shop", "netpol-guard").unwrap();
    assert_eq!(
        shop["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "netpol-guard"
    );
    let shop_results = results(&shop);
    assert!(
        shop_results.contains(&(
            "egress-missing-dns".into(),
            "fail".into(),
            "web-egress".into()
        )),
        "{shop_results:?}"
    );
    assert!(
        shop_results.contains(&("catalog".into(), "pass".into(), "web-ingress".into())),
        "{shop_results:?}"
    );
    assert_eq!(shop["summary"]["fail"], 1);
    assert_eq!(shop["summary"]["pass"], 1);
    let system = results(
        &api.get("policyreports", "kube-system", "netpol-guard")
            .unwrap(),
    );
    assert!(
        system.contains(&(
            "protected-namespace-deny-all".into(),
            "fail".into(),
            "deny-all".into()
        )),
        "{system:?}"
    );
    // no report where there is no policy
    assert!(
        api.get("policyreports", "netpol-guard", "netpol-guard")
            .is_none()
    );

    // a change that changes no result: the audit runs, nothing is written
    eventually("both writes counted", PATIENCE, async || {
        replica.writes("apply") == 2
    })
    .await;
    let applied = replica.writes("apply");
    let last = replica.state.metrics.audit.last_run();
    api.put("namespaces", namespace("payments"));
    eventually("another audit", PATIENCE, async || {
        replica.state.metrics.audit.last_run() > last
    })
    .await;
    assert_eq!(
        replica.writes("apply"),
        applied,
        "unchanged results were rewritten"
    );

    // fixing the policy updates its report
    api.put("networkpolicies", web_egress(true));
    // (the gauges are set once the run's writes are done)
    eventually("the fixed report and gauge", PATIENCE, async || {
        let shop = api.get("policyreports", "shop", "netpol-guard").unwrap();
        shop["summary"]["fail"] == 0 && replica.finding_gauge("egress-missing-dns", "deny") == 0
    })
    .await;
    let fixed = results(&api.get("policyreports", "shop", "netpol-guard").unwrap());
    assert!(
        !fixed
            .iter()
            .any(|(rule, _, _)| rule == "egress-missing-dns"),
        "{fixed:?}"
    );

    // nothing left to report in kube-system: its report goes
    api.delete("networkpolicies", "kube-system", "deny-all");
    eventually("the kube-system report removed", PATIENCE, async || {
        api.get("policyreports", "kube-system", "netpol-guard")
            .is_none()
    })
    .await;
    // (the counter follows the API's answer)
    eventually("the delete counted", PATIENCE, async || {
        replica.writes("delete") == 1
    })
    .await;

    // a finding the policy acknowledges is a `skip` result with its reason, not a warning
    api.put("namespaces", namespace("edge"));
    let mut gateway = policy(
        "edge",
        "public-gateway",
        json!({"podSelector": {"matchLabels": {"app": "gateway"}}, "policyTypes": ["Ingress"],
               "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]}]}),
    );
    gateway["metadata"]["annotations"] = json!({
        "netpol-guard.io/ignore": "ingress-from-anywhere",
        "netpol-guard.io/ignore-reason": "the internet-facing gateway",
    });
    api.put("networkpolicies", gateway);
    eventually("the edge report", PATIENCE, async || {
        api.get("policyreports", "edge", "netpol-guard").is_some()
    })
    .await;
    let edge = api.get("policyreports", "edge", "netpol-guard").unwrap();
    assert_eq!(
        results(&edge),
        [
            (
                "ingress-from-anywhere".into(),
                "skip".into(),
                "public-gateway".into()
            ),
            ("catalog".into(), "pass".into(), "public-gateway".into()),
        ],
        "{edge}"
    );
    assert_eq!(edge["summary"]["skip"], 1);
    assert_eq!(edge["summary"]["warn"], 0);
    assert!(
        edge["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the internet-facing gateway")
    );
    replica.stop().await;

    // a new leader (a restart) reads the reports back and rewrites none of them
    let next = start(&api);
    eventually("the new leader's audit", PATIENCE, async || {
        next.state.metrics.audit.last_run() > 0.0
    })
    .await;
    assert_eq!(next.writes("apply"), 0);
    assert_eq!(next.writes("delete"), 0);
    next.stop().await;
}

/// `--report-api openreports`: the same summary and results as an openreports.io/v1alpha1
/// Report, with the engine named once; every result carries its fix; no PolicyReport written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_reports_carry_the_same_results_and_each_fix() {
    let api = cluster();
    api.install_policy_reports();
    api.install_open_reports();
    let replica = start_with(&api, true, audit::ReportApi::OpenReports);
    eventually("the first audit's Reports", PATIENCE, async || {
        api.get("reports", "shop", "netpol-guard").is_some()
            && api.get("reports", "kube-system", "netpol-guard").is_some()
    })
    .await;
    let shop = api.get("reports", "shop", "netpol-guard").unwrap();
    assert_eq!(shop["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(shop["kind"], "Report");
    assert_eq!(shop["source"], "netpol-guard");
    assert_eq!(
        shop["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "netpol-guard"
    );
    let shown: Vec<(String, String, String)> = results(&shop);
    let want = [
        ("egress-missing-dns", "fail", "web-egress"),
        ("catalog", "pass", "web-ingress"),
    ];
    assert_eq!(
        shown,
        want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    assert_eq!(
        (
            shop["summary"]["fail"].as_u64(),
            shop["summary"]["pass"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let result = &shop["results"][0];
    assert_eq!(result["properties"]["path"], "spec.egress");
    let fix = result["properties"]["fix"].as_str().unwrap();
    assert!(fix.starts_with("add this rule to spec.egress:"), "{fix}");
    assert!(
        api.get("policyreports", "shop", "netpol-guard").is_none(),
        "one report API at a time"
    );
    // read back on the next leadership: nothing changed, nothing rewritten
    replica.stop().await;
    let next = start_with(&api, true, audit::ReportApi::OpenReports);
    eventually("the next leader's audit", PATIENCE, async || {
        next.state.metrics.audit.last_run() > 0.0
    })
    .await;
    assert_eq!(next.writes("apply"), 0, "the Reports read back match");
    next.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_only_metrics() {
    let api = cluster();
    let replica = start(&api);
    eventually("an audit", PATIENCE, async || {
        replica.state.metrics.audit.last_run() > 0.0
    })
    .await;
    assert_eq!(replica.finding_gauge("egress-missing-dns", "deny"), 1);
    let report_requests: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("policyreports"))
        .collect();
    assert!(
        report_requests.iter().all(|r| r.starts_with("GET ")),
        "{report_requests:?}"
    );
    assert_eq!(replica.writes("apply"), 0);
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_does_not_lead_stays_idle() {
    let api = cluster();
    api.install_policy_reports();
    let replica = start_as(&api, false);
    eventually("cache synced", PATIENCE, async || {
        replica.state.metrics.cache.synced()
    })
    .await;
    api.put("networkpolicies", web_egress(true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replica.state.metrics.audit.last_run(), 0.0);
    assert!(!api.requests().iter().any(|r| r.contains("policyreports")));
    // elected: it audits at once (the fixed policy leaves the deny-all in kube-system)
    replica.state.set_leading(true);
    eventually("an audit", PATIENCE, async || {
        replica.state.metrics.audit.last_run() > 0.0
    })
    .await;
    assert_eq!(
        replica.finding_gauge("protected-namespace-deny-all", "deny"),
        1
    );
    // not leading any more: idle, its gauges back at zero (dashboards sum over replicas)
    replica.state.set_leading(false);
    eventually("gauges cleared", PATIENCE, async || {
        replica.finding_gauge("protected-namespace-deny-all", "deny") == 0
    })
    .await;
    replica.stop().await;
}
