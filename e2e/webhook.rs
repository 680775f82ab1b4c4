//! End to end: the real `netpol-guard` binary behind TLS, with certificates made by
//! `netpol-guard certs`, and this test playing the API server: HTTPS verified with the
//! printed `caBundle`, AdmissionReview v1 with `?timeout=10s`, mutation first, the JSONPatch
//! applied with the json-patch crate, the result re-decoded as a NetworkPolicy and validated.
//!
//! Cluster mode (`e2e/cluster.sh`) is ignored unless asked for (`-- --ignored`), with `KUBECONFIG` set.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../tests/common/corpus.rs"]
mod corpus;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol_guard::config::Config;
use netpol_guard::netpol::cluster::Inventory;
use netpol_guard::netpol::policy::Subject;
use netpol_guard::rules::{self, Severity};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use netpol_guard_testkit as common;
use netpol_guard_testkit::{Review, client, eventually, get, metric, metrics, post, tls_connect};

const BIN: &str = env!("CARGO_BIN_EXE_netpol-guard");

struct Guard {
    child: common::KillOnDrop,
    addr: SocketAddr,
    metrics: SocketAddr,
    ca_pem: String,
    log: PathBuf,
}

fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpol-guard-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `netpol-guard certs`, then `netpol-guard serve` with those certificates.
async fn start(name: &str, extra: &[&str]) -> Guard {
    let dir = work_dir(name);
    let certs = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(&dir)
        .args(["--dns", "localhost", "--ip", "127.0.0.1", "--days", "2"])
        .output()
        .unwrap();
    assert!(
        certs.status.success(),
        "{}",
        String::from_utf8_lossy(&certs.stderr)
    );
    // what a webhook configuration's caBundle would hold
    let ca_bundle = String::from_utf8(certs.stdout).unwrap();
    let ca_pem = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(ca_bundle.trim())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ca_pem, std::fs::read_to_string(dir.join("ca.crt")).unwrap());

    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let metrics_addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let log = dir.join("serve.log");
    let child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--log-level", "debug"])
        .args([
            "--listen",
            &addr.to_string(),
            "--metrics-listen",
            &metrics_addr.to_string(),
        ])
        .arg("--tls-cert")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.join("tls.key"))
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let guard = Guard {
        child: common::KillOnDrop(child),
        addr,
        metrics: metrics_addr,
        ca_pem,
        log,
    };
    eventually(
        "the webhook to become ready",
        Duration::from_secs(10),
        || async { get(metrics_addr, "/readyz").await.0 == 200 },
    )
    .await;
    guard
}

/// A CREATE review as the API server sends it (the request's namespace is the object's).
fn review(uid: &str, kind: &str, object: &Value, dry_run: bool) -> Vec<u8> {
    let kind = if kind == "Namespace" {
        "Namespace"
    } else {
        "NetworkPolicy"
    };
    Review {
        uid: uid.to_string(),
        dry_run,
        ..Review::from_controller(kind, "CREATE", object.clone())
    }
    .body()
}

fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let encoded = response["response"]["patch"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_through_the_webhook_as_the_api_server_sends_it() {
    let guard = start("fixtures", &[]).await;
    let mut c = client(guard.addr, &guard.ca_pem).await.unwrap();
    let config = Config::default();
    let empty = Inventory::new();
    let ctx = config.rule_context(&empty);
    let (mut policies, mut mutated, mut denied, mut namespaces) = (0, 0, 0, 0);
    for (n, (kind, namespace, object)) in corpus::fixture_objects().into_iter().enumerate() {
        let uid = format!("00000000-0000-4000-8000-{n:012}");
        let (status, resp) = post(
            &mut c,
            "/mutate?timeout=10s",
            review(&uid, kind, &object, false),
        )
        .await;
        assert_eq!(status, 200, "{object}");
        assert_eq!(resp["response"]["uid"], uid.as_str());
        assert_eq!(
            resp["response"]["allowed"], true,
            "mutation never refuses: {resp}"
        );
        let mut stored = object.clone();
        if let Some(patch) = patch_of(&resp) {
            assert_eq!(resp["response"]["patchType"], "JSONPatch");
            json_patch::patch(&mut stored, &patch).unwrap();
            mutated += 1;
            // reinvocation changes nothing
            let (_, again) = post(
                &mut c,
                "/mutate?timeout=10s",
                review(&uid, kind, &stored, false),
            )
            .await;
            assert!(
                again["response"].get("patch").is_none(),
                "not idempotent: {again}"
            );
        }
        if kind == "Namespace" {
            namespaces += 1;
            assert!(
                stored["metadata"]["labels"]["netpol-guard.io/companions"].is_string(),
                "{stored}"
            );
            continue;
        }
        policies += 1;
        let typed: NetworkPolicy =
            serde_json::from_value(stored.clone()).expect("the patched object is a NetworkPolicy");

        let (status, resp) = post(
            &mut c,
            "/validate?timeout=10s",
            review(&uid, kind, &stored, false),
        )
        .await;
        assert_eq!(status, 200);
        let r = &resp["response"];
        assert_eq!(r["uid"], uid.as_str());
        // the webhook says what the engine says about the stored object
        let (findings, suppressed) = rules::evaluate_all(&ctx, &Subject::new(&typed, &namespace));
        let expected: BTreeSet<&str> = findings.iter().map(|f| f.rule).collect();
        let annotations = r["auditAnnotations"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let got: BTreeSet<&str> = annotations
            .iter()
            .filter(|(_, v)| !v.as_str().unwrap_or_default().starts_with("suppressed "))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(got, expected, "{object}");
        // what the policy acknowledged is in the audit log as suppressed, with its reason
        for s in &suppressed {
            let logged = annotations[s.finding.rule].as_str().unwrap_or_default();
            assert!(
                logged.starts_with("suppressed ") && logged.contains(&s.reason),
                "{logged} {object}"
            );
        }
        // what remains of egress-missing-dns after mutation is the conditional kind (DNS
        // through an ipBlock the guard cannot place), never a refusal
        assert!(
            !findings
                .iter()
                .any(|f| f.rule == "egress-missing-dns" && f.condition.is_none()),
            "mutation must have fixed DNS: {stored}"
        );
        let deny = findings.iter().any(|f| f.severity == Severity::Deny);
        assert_eq!(r["allowed"], !deny, "{resp}");
        if deny {
            denied += 1;
            assert_eq!(r["status"]["code"], 403);
        }
        // a server-side dry run gets the same answer
        let (_, dry) = post(
            &mut c,
            "/validate?timeout=10s",
            review(&uid, kind, &stored, true),
        )
        .await;
        assert_eq!(dry, resp);
    }
    eprintln!(
        "e2e: {policies} NetworkPolicies and {namespaces} Namespaces reviewed, {mutated} mutated, {denied} denied after mutation"
    );
    assert!(policies >= 90, "{policies} policies reviewed");
    assert!(namespaces >= 1);
    assert!(mutated >= 20, "{mutated} objects mutated");
    assert!(denied >= 5, "{denied} denied");
    let text = metrics(guard.metrics).await;
    assert_eq!(
        metric(
            &text,
            r#"netpol_guard_admission_requests_total{decision="mutated",endpoint="mutate",kind="NetworkPolicy",operation="CREATE"}"#
        ) + metric(
            &text,
            r#"netpol_guard_admission_requests_total{decision="mutated",endpoint="mutate",kind="Namespace",operation="CREATE"}"#
        ),
        mutated as f64
    );

    // JSON logs, one line per review, never the body
    let log = std::fs::read_to_string(&guard.log).unwrap();
    let reviews: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("every log line is JSON"))
        .filter(|v| v["message"] == "reviewed")
        .collect();
    assert!(reviews.len() >= policies * 3);
    let line = &reviews[0];
    for field in [
        "uid",
        "kind",
        "operation",
        "namespace",
        "name",
        "decision",
        "duration_ms",
    ] {
        assert!(!line[field].is_null(), "log line lacks {field}: {line}");
    }
    // a refusal names the rules, as ids
    let denial = reviews
        .iter()
        .find(|l| l["decision"] == "denied")
        .expect("a denial is logged");
    assert_eq!(denial["level"], "INFO", "{denial}");
    let ids = denial["rules"].as_str().unwrap_or_default();
    assert!(
        !ids.is_empty()
            && ids
                .split(',')
                .all(|id| rules::CATALOG.iter().any(|r| r.id == id)),
        "{denial}"
    );
    assert!(
        !log.contains("podSelector"),
        "a request body reached the log"
    );
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_finishes_in_flight_and_exits() {
    let mut guard = start("sigterm", &["--shutdown-delay", "1s"]).await;
    let object = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": {"name": "p", "namespace": "shop"},
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
    let body = review(
        "11111111-0000-4000-8000-000000000000",
        "NetworkPolicy",
        &object,
        false,
    );
    let mut in_flight = tls_connect(guard.addr, &guard.ca_pem).await.unwrap();
    let head = format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body[..10]).await.unwrap();

    signal(&guard.child.0, "TERM");
    let metrics_addr = guard.metrics;
    // generous: a loaded CI machine may take a while to deliver and handle the signal
    eventually("readiness off", Duration::from_secs(10), || async {
        get(metrics_addr, "/readyz").await.0 == 503
    })
    .await;
    assert_eq!(
        get(metrics_addr, "/healthz").await.0,
        200,
        "alive while draining"
    );
    in_flight.write_all(&body[10..]).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut in_flight, &mut response),
    )
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("11111111-0000-4000-8000-000000000000"));
    let status =
        wait_exit(&mut guard.child.0, Duration::from_secs(10)).expect("exits after draining");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let mut guard = start("second-signal", &["--shutdown-delay", "60s"]).await;
    signal(&guard.child.0, "TERM");
    let metrics_addr = guard.metrics;
    eventually("readiness off", Duration::from_secs(2), || async {
        get(metrics_addr, "/readyz").await.0 == 503
    })
    .await;
    signal(&guard.child.0, "INT");
    let status =
        wait_exit(&mut guard.child.0, Duration::from_secs(3)).expect("second signal exits at once");
    assert_eq!(status.code(), Some(130));
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Against a real API server: ignored by a plain `cargo test` (its summary counts it as
/// ignored), run with `cargo test --test e2e -- --ignored` and `KUBECONFIG` set.
#[test]
#[ignore = "needs a Kubernetes API server (KUBECONFIG)"]
fn cluster_mode() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "cluster mode needs KUBECONFIG: the API server to run e2e/cluster.sh against (see e2e/README.md)"
    );
    let status = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/cluster.sh"))
        .env("NETPOL_GUARD_BIN", BIN)
        .status()
        .unwrap();
    assert!(status.success(), "e2e/cluster.sh failed");
}
