//! The admission endpoints with canned AdmissionReviews, through the router without a
//! socket: verdicts, patches, namespaces, malformed input, limits and metrics.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use http_body_util::BodyExt;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol_guard::config::Config;
use netpol_guard::guard::Identity;
use netpol_guard::runtime::metrics::Metrics;
use netpol_guard::runtime::state::{Shared, SharedState as AppState};
use netpol_guard::webhook::router::{self, Limits};
use serde_json::{Value, json};
use tower::ServiceExt;

use common::{Review, UID};

fn state() -> AppState {
    common::state_with(Config::default())
}

fn netpol(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    })
}

/// Egress isolated, DNS only through the `name: kube-system` label that does not exist.
fn missing_dns() -> Value {
    netpol(
        "web-egress",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"name": "kube-system"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}]}],
        }),
    )
}

fn udp_only_dns() -> Value {
    netpol(
        "web-egress",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}]}],
        }),
    )
}

async fn send_raw(
    router: Router,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

async fn send(state: &AppState, endpoint: &str, review: &Value) -> (StatusCode, Value) {
    send_to(router_of(state), endpoint, review).await
}

fn router_of(state: &AppState) -> axum::Router {
    router::admission_router(state.clone(), Limits::default())
}

async fn send_to(router: axum::Router, endpoint: &str, review: &Value) -> (StatusCode, Value) {
    let (status, body) = send_raw(
        router,
        &format!("/{endpoint}?timeout=10s"),
        "application/json",
        serde_json::to_vec(review).unwrap(),
    )
    .await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
    (status, value)
}

fn patch_of(response: &Value) -> Option<json_patch::Patch> {
    let encoded = response["response"]["patch"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch is base64");
    Some(serde_json::from_slice(&bytes).expect("patch is a JSON patch"))
}

async fn metrics_text(state: &AppState) -> String {
    let resp = router::metrics_router(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// `netpol_guard_admission_requests_total{endpoint, kind, operation, decision}`
fn requests(text: &str, endpoint: &str, kind: &str, operation: &str, decision: &str) -> f64 {
    common::metric(
        text,
        &format!(
            r#"netpol_guard_admission_requests_total{{decision="{decision}",endpoint="{endpoint}",kind="{kind}",operation="{operation}"}}"#
        ),
    )
}

#[tokio::test]
async fn the_canned_create_is_denied_with_rule_ids_fix_and_403() {
    let state = state();
    let body: Value = serde_json::from_str(include_str!("data/networkpolicy-create.json")).unwrap();
    let (status, resp) = send(&state, "validate", &body).await;
    assert_eq!(status, StatusCode::OK);
    let r = &resp["response"];
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["kind"], "AdmissionReview");
    assert_eq!(r["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("netpol-guard denied NetworkPolicy shop/web-egress:"),
        "{message}"
    );
    assert!(
        message.contains("[egress-missing-dns] spec.egress:"),
        "{message}"
    );
    assert!(
        message.contains("fix: add this rule to spec.egress:"),
        "{message}"
    );
    assert!(message.contains("k8s-app: kube-dns"), "{message}");
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with(
                "netpol-guard dns-peer-too-broad: NetworkPolicy shop/web-egress at spec.egress[0].to[0]: "
            )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("netpol-guard namespace-selector-name-label")),
        "{warnings:?}"
    );
    assert_eq!(
        r["auditAnnotations"]["egress-missing-dns"],
        "deny spec.egress"
    );
    assert!(
        r["auditAnnotations"]["dns-peer-too-broad"]
            .as_str()
            .unwrap()
            .starts_with("warn ")
    );

    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "NetworkPolicy", "CREATE", "denied"),
        1.0,
        "{text}"
    );
    assert_eq!(
        common::metric(
            &text,
            r#"netpol_guard_rule_findings_total{rule="egress-missing-dns",severity="deny"}"#
        ),
        1.0
    );
    assert_eq!(
        common::metric(
            &text,
            r#"netpol_guard_rule_findings_total{rule="dns-peer-too-broad",severity="warn"}"#
        ),
        1.0
    );
    assert_eq!(
        common::metric(
            &text,
            r#"netpol_guard_admission_duration_seconds_count{endpoint="validate"}"#
        ),
        1.0
    );
    assert!(text.contains(&format!(
        "netpol_guard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(text.contains(
        "netpol_guard_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.0001\"}"
    ));
    assert!(text.contains("process_resident_memory_bytes"));
    // the controller and cache series exist from the start, at 0 without a cluster
    for series in [
        "netpol_guard_leader 0",
        "netpol_guard_cache_synced 0",
        "netpol_guard_companion_drift_corrections_total 0",
        "netpol_guard_companion_reconciles_total{result=\"applied\"} 0",
        "netpol_guard_companion_reconciles_total{result=\"error\"} 0",
    ] {
        assert!(text.lines().any(|l| l == series), "no {series}");
    }
}

#[tokio::test]
async fn warnings_alone_admit() {
    let state = state();
    let (_, resp) = send(
        &state,
        "validate",
        &Review::policy("CREATE", udp_only_dns()).json(),
    )
    .await;
    let r = &resp["response"];
    assert_eq!(r["uid"], UID);
    assert_eq!(r["allowed"], true);
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].as_str().unwrap().starts_with(
        "netpol-guard dns-tcp-missing: NetworkPolicy shop/web-egress at spec.egress[0]: "
    ));
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "NetworkPolicy", "CREATE", "allowed"),
        1.0
    );
}

#[tokio::test]
async fn update_judges_the_new_object_and_delete_is_admitted() {
    let state = state();
    let mut fixing = Review::policy("UPDATE", udp_only_dns());
    fixing.old = missing_dns();
    let (_, resp) = send(&state, "validate", &fixing.json()).await;
    assert_eq!(resp["response"]["allowed"], true);

    let mut breaking = Review::policy("UPDATE", missing_dns());
    breaking.old = udp_only_dns();
    let (_, resp) = send(&state, "validate", &breaking.json()).await;
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["status"]["code"], 403);

    // DELETE carries only oldObject
    let mut delete = Review::policy("DELETE", Value::Null);
    delete.old = missing_dns();
    for endpoint in ["validate", "mutate"] {
        let (status, resp) = send(&state, endpoint, &delete.json()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(resp["response"]["uid"], UID);
        assert_eq!(resp["response"]["allowed"], true);
        assert!(resp["response"].get("patch").is_none());
    }
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "NetworkPolicy", "DELETE", "allowed"),
        1.0
    );
}

#[tokio::test]
async fn mutation_injects_dns_once_and_the_result_validates() {
    let state = state();
    let original = missing_dns();
    let (status, resp) = send(
        &state,
        "mutate",
        &Review::policy("CREATE", original.clone()).json(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    // kubectl says so: the stored object is not the one sent
    assert_eq!(
        resp["response"]["warnings"],
        json!([
            "netpol-guard egress-missing-dns: NetworkPolicy shop/web-egress at spec.egress: \
                no rule allowed DNS, so netpol-guard added one (UDP and TCP 53 to the DNS pods \
                k8s-app=kube-dns in kube-system) and annotated the policy \
                netpol-guard.io/injected: dns; put the rule in this object's source so the \
                next apply keeps it"
        ]),
        "{resp}"
    );
    let patch = patch_of(&resp).expect("a patch");
    let mut patched = original;
    json_patch::patch(&mut patched, &patch).unwrap();
    let typed: NetworkPolicy = serde_json::from_value(patched.clone()).unwrap();
    let egress = typed.spec.unwrap().egress.unwrap();
    assert_eq!(egress.len(), 2);
    assert_eq!(
        serde_json::to_value(&egress[1]).unwrap(),
        json!({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
               "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                       "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]})
    );
    assert_eq!(
        patched["metadata"]["annotations"]["netpol-guard.io/injected"],
        "dns"
    );

    // the mutated object passes validation (warnings from the original rule remain)
    let (_, resp) = send(
        &state,
        "validate",
        &Review::policy("CREATE", patched.clone()).json(),
    )
    .await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    // reinvocation: mutating the mutated object changes nothing
    let (_, resp) = send(&state, "mutate", &Review::policy("CREATE", patched).json()).await;
    assert!(resp["response"].get("patch").is_none(), "{resp}");
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "mutate", "NetworkPolicy", "CREATE", "mutated"),
        1.0
    );
}

#[tokio::test]
async fn dry_run_gets_the_same_verdict_and_patch() {
    let state = state();
    let mut plain = Review::policy("CREATE", missing_dns());
    let (_, wet_validate) = send(&state, "validate", &plain.json()).await;
    let (_, wet_mutate) = send(&state, "mutate", &plain.json()).await;
    plain.dry_run = true;
    let (_, dry_validate) = send(&state, "validate", &plain.json()).await;
    let (_, dry_mutate) = send(&state, "mutate", &plain.json()).await;
    assert_eq!(wet_validate, dry_validate);
    assert_eq!(wet_mutate, dry_mutate);
    assert_eq!(dry_validate["response"]["allowed"], false);
    assert!(patch_of(&dry_mutate).is_some());
}

#[tokio::test]
async fn gitops_managed_policies_are_denied_not_mutated_unless_configured() {
    let mut managed = missing_dns();
    managed["metadata"]["annotations"] = json!({"argocd.argoproj.io/tracking-id": "shop:networking.k8s.io/NetworkPolicy:shop/web-egress"});
    let review = Review::policy("CREATE", managed).json();

    let state = state();
    let (_, resp) = send(&state, "mutate", &review).await;
    assert_eq!(resp["response"]["allowed"], true);
    assert!(
        resp["response"].get("patch").is_none(),
        "GitOps objects are not mutated by default"
    );
    let (_, resp) = send(&state, "validate", &review).await;
    assert_eq!(resp["response"]["allowed"], false);
    let message = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("managed by a GitOps tool"), "{message}");
    assert!(message.contains("commit the fix"), "{message}");

    let mutate = Config::from_yaml("mutation:\n  gitops: mutate\n").unwrap();
    let (_, resp) = send(&common::state_with(mutate), "mutate", &review).await;
    assert!(patch_of(&resp).is_some());

    // Flux's label counts too
    let mut flux = missing_dns();
    flux["metadata"]["labels"] = json!({"kustomize.toolkit.fluxcd.io/name": "apps"});
    let (_, resp) = send(&state, "mutate", &Review::policy("CREATE", flux).json()).await;
    assert!(resp["response"].get("patch").is_none());
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// (operation, sub-resource, old labels, new labels, user, groups, allowed)
type LabelCase = (
    &'static str,
    Option<&'static str>,
    Value,
    Value,
    &'static str,
    Vec<&'static str>,
    bool,
);

#[tokio::test]
async fn only_admins_touch_the_exempt_label() {
    let state = state();
    let exempt = json!({"netpol-guard.io/exempt": "true"});
    let cases: Vec<LabelCase> = vec![
        (
            "CREATE",
            None,
            Value::Null,
            exempt.clone(),
            "alice",
            vec!["system:authenticated"],
            false,
        ),
        (
            "CREATE",
            None,
            Value::Null,
            exempt.clone(),
            "root",
            vec!["system:masters"],
            true,
        ),
        (
            "CREATE",
            None,
            Value::Null,
            exempt.clone(),
            "system:serviceaccount:netpol-guard:netpol-guard",
            vec![],
            true,
        ),
        (
            "CREATE",
            None,
            Value::Null,
            json!({"team": "a"}),
            "alice",
            vec![],
            true,
        ),
        (
            "UPDATE",
            None,
            json!({}),
            exempt.clone(),
            "alice",
            vec![],
            false,
        ),
        (
            "UPDATE",
            None,
            exempt.clone(),
            json!({}),
            "alice",
            vec![],
            false,
        ),
        (
            "UPDATE",
            None,
            exempt.clone(),
            json!({"netpol-guard.io/exempt": "false"}),
            "alice",
            vec![],
            false,
        ),
        (
            "UPDATE",
            None,
            exempt.clone(),
            json!({"netpol-guard.io/exempt": "true", "team": "b"}),
            "alice",
            vec![],
            true,
        ),
        // the status subresource can change labels too
        (
            "UPDATE",
            Some("status"),
            json!({}),
            exempt.clone(),
            "alice",
            vec![],
            false,
        ),
        (
            "UPDATE",
            Some("status"),
            json!({}),
            exempt.clone(),
            "root",
            vec!["system:masters"],
            true,
        ),
    ];
    for (i, (op, sub, old, new, user, groups, allowed)) in cases.into_iter().enumerate() {
        let mut review = Review::namespace(op, namespace("team-a", new));
        if !old.is_null() {
            review.old = namespace("team-a", old);
        }
        review.sub_resource = sub;
        review.user = user;
        review.groups = groups;
        let (status, resp) = send(&state, "validate", &review.json()).await;
        assert_eq!(status, StatusCode::OK);
        let r = &resp["response"];
        assert_eq!(r["uid"], UID);
        assert_eq!(r["allowed"], allowed, "case {i}: {resp}");
        if !allowed {
            assert_eq!(r["status"]["code"], 403);
            let message = r["status"]["message"].as_str().unwrap();
            assert!(message.contains("netpol-guard.io/exempt"), "{message}");
            assert!(
                message.contains("[namespace-exempt-label-protected]"),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn namespaces_are_stamped_with_what_the_guard_does() {
    let state = state();
    // (name, labels, expected stamp or None when already right)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("team-a", Value::Null, Some("enabled")),
        ("team-b", json!({"team": "b"}), Some("enabled")),
        (
            "team-c",
            json!({"netpol-guard.io/exempt": "true"}),
            Some("exempt"),
        ),
        ("kube-system", json!({}), Some("exempt")),
        ("netpol-guard", json!({}), Some("exempt")),
        (
            "team-d",
            json!({"netpol-guard.io/companions": "enabled"}),
            None,
        ),
        (
            "team-e",
            json!({"netpol-guard.io/companions": "exempt"}),
            Some("enabled"),
        ),
    ];
    for (name, labels, stamp) in cases {
        let mut object =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        if !labels.is_null() {
            object["metadata"]["labels"] = labels;
        }
        let (_, resp) = send(
            &state,
            "mutate",
            &Review::namespace("CREATE", object.clone()).json(),
        )
        .await;
        assert_eq!(resp["response"]["allowed"], true);
        match stamp {
            None => assert!(resp["response"].get("patch").is_none(), "{name}: {resp}"),
            Some(stamp) => {
                let mut patched = object;
                json_patch::patch(&mut patched, &patch_of(&resp).expect("patch")).unwrap();
                assert_eq!(
                    patched["metadata"]["labels"]["netpol-guard.io/companions"], stamp,
                    "{name}"
                );
                assert_eq!(patched["metadata"]["name"], name);
            }
        }
    }
}

#[tokio::test]
async fn undecodable_bodies_are_refused_never_allowed() {
    let state = state();
    let router = || router_of(&state);
    // not JSON: HTTP 400 with an invalid review
    let (status, body) = send_raw(
        router(),
        "/validate",
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 400);

    // wrong version: refused, uid echoed
    let mut old_version = Review::policy("CREATE", missing_dns()).json();
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (_, v) = send(&state, "validate", &old_version).await;
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("admission.k8s.io/v1")
    );

    // a NetworkPolicy the types cannot hold: refused, uid echoed
    let mut broken = Review::policy("CREATE", missing_dns()).json();
    broken["request"]["object"]["spec"]["egress"] = json!("everything");
    let (_, v) = send(&state, "validate", &broken).await;
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false);
    let (_, v) = send(&state, "mutate", &broken).await;
    assert_eq!(v["response"]["allowed"], false);

    // no request at all
    let (status, _) = send_raw(
        router(),
        "/mutate",
        "application/json",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // wrong content type
    let (status, _) = send_raw(router(), "/validate", "text/plain", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "unknown", "unknown", "invalid"),
        4.0,
        "{text}"
    );
}

#[tokio::test]
async fn other_kinds_are_admitted_with_a_warning() {
    let state = state();
    let mut review = Review::policy(
        "CREATE",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}),
    );
    review.kind = "Pod";
    let (_, v) = send(&state, "validate", &review.json()).await;
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], true);
    assert!(
        v["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("does not review v1/Pod")
    );
}

/// A NetworkPolicy of about `size` bytes (a long annotation), egress isolated without DNS.
fn large_policy(size: usize) -> Value {
    let mut p = missing_dns();
    p["metadata"]["annotations"] = json!({"note": "x".repeat(size)});
    p
}

#[tokio::test]
async fn size_limits_answer_413_and_big_updates_are_still_judged() {
    let state = state();
    // an UPDATE with two objects of 3 MiB each fits under the 7 MiB limit
    let mut update = Review::policy("UPDATE", large_policy(3 * 1024 * 1024));
    update.old = large_policy(3 * 1024 * 1024);
    let (status, v) = send(&state, "validate", &update.json()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[egress-missing-dns]")
    );

    let mut too_big = Review::policy("UPDATE", large_policy(4 * 1024 * 1024));
    too_big.old = large_policy(4 * 1024 * 1024);
    let (status, _) = send(&state, "validate", &too_big.json()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn an_expired_deadline_is_answered_at_once_and_refused() {
    let state = state();
    // big enough to be reviewed off the async workers, so the deadline can win the race
    let body = serde_json::to_vec(&Review::policy("CREATE", large_policy(2 * 1024 * 1024)).json())
        .unwrap();
    let (status, bytes) = send_raw(
        router_of(&state),
        "/validate?timeout=1ms",
        "application/json",
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 500);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("timeout")
    );
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "unknown", "unknown", "error"),
        1.0
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let state = state();
    let get = |path: &'static str| {
        let router = router::metrics_router(state.clone());
        async move {
            router
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(get("/healthz").await, StatusCode::OK);
    assert_eq!(get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready(true);
    assert_eq!(get("/readyz").await, StatusCode::OK);
}

#[tokio::test]
async fn baseline_mode_admits_everything_and_still_echoes_the_uid() {
    let state = Shared::new(
        Config::default(),
        Identity {
            namespace: "netpol-guard".into(),
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".into(),
        },
        Metrics::new().unwrap(),
    );
    let limits = Limits {
        baseline: true,
        ..Limits::default()
    };
    let router = || router::admission_router(state.clone(), limits.clone());
    let (status, v) = send_to(
        router(),
        "validate",
        &Review::policy("CREATE", missing_dns()).json(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none());
    let (status, _) = send_raw(router(), "/validate", "application/json", b"[]".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The cluster as the cache would publish it: namespaces `shop` (no companions) and
/// `covered` (the guard's companions), plus kube-system.
fn cached_cluster(state: &AppState) {
    use k8s_openapi::api::core::v1::Namespace;
    let config = Config::default();
    let ns = |name: &str| {
        let mut n = Namespace::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some([("team".to_string(), name.to_string())].into());
        std::sync::Arc::new(n)
    };
    let policies: Vec<_> =
        netpol_guard::guard::companions::desired(&config, "covered", "uid-covered")
            .into_iter()
            .map(std::sync::Arc::new)
            .collect();
    let namespaces = [ns("shop"), ns("covered"), ns("kube-system")];
    state.set_inventory(netpol_guard::kubernetes::cache::inventory(
        &policies,
        &namespaces,
    ));
}

/// An egress policy that allows only the app's database: no DNS of its own.
fn db_only(namespace: &str) -> Value {
    let mut p = netpol(
        "web-to-db",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                        "ports": [{"port": 5432}]}],
        }),
    );
    p["metadata"]["namespace"] = json!(namespace);
    p
}

fn rules_of(resp: &Value) -> Vec<String> {
    let mut rules: Vec<String> = resp["response"]["auditAnnotations"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    rules.sort();
    rules
}

#[tokio::test]
async fn cluster_cache_lets_the_allow_dns_companion_cover_other_policies() {
    let state = state();
    // before the cache has synced: judged alone, so denied and mutated everywhere
    for ns in ["shop", "covered"] {
        let review = Review::policy("CREATE", db_only(ns)).json();
        let (_, resp) = send(&state, "validate", &review).await;
        assert_eq!(resp["response"]["allowed"], false, "{ns}: {resp}");
        assert!(patch_of(&send(&state, "mutate", &review).await.1).is_some());
    }

    cached_cluster(&state);
    // no companion in shop: still denied, still mutated
    let review = Review::policy("CREATE", db_only("shop")).json();
    let (_, resp) = send(&state, "validate", &review).await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert!(rules_of(&resp).contains(&"egress-missing-dns".to_string()));
    let (_, mutated) = send(&state, "mutate", &review).await;
    assert!(patch_of(&mutated).is_some(), "{mutated}");

    // the allow-DNS companion selects every pod of `covered`: allowed untouched
    let review = Review::policy("CREATE", db_only("covered")).json();
    let (_, resp) = send(&state, "validate", &review).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert!(rules_of(&resp).is_empty(), "{resp}");
    let (_, mutated) = send(&state, "mutate", &review).await;
    assert_eq!(mutated["response"]["allowed"], true);
    assert!(patch_of(&mutated).is_none(), "{mutated}");
}

#[tokio::test]
async fn namespace_selector_matching_no_namespace_warns_once_the_cache_knows_them() {
    let state = state();
    let mut p = db_only("covered");
    p["spec"]["egress"][0]["to"] =
        json!([{"namespaceSelector": {"matchLabels": {"team": "payments"}}}]);
    let review = Review::policy("CREATE", p).json();
    let (_, resp) = send(&state, "validate", &review).await;
    assert!(!rules_of(&resp).contains(&"namespace-selector-matches-nothing".to_string()));

    cached_cluster(&state);
    let (_, resp) = send(&state, "validate", &review).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert_eq!(rules_of(&resp), ["namespace-selector-matches-nothing"]);
    let warnings = resp["response"]["warnings"].to_string();
    assert!(
        warnings.contains("spec.egress[0].to[0].namespaceSelector") && warnings.contains("of 3"),
        "{warnings}"
    );
    // a label some namespace has is fine
    let mut p = db_only("covered");
    p["spec"]["egress"][0]["to"] =
        json!([{"namespaceSelector": {"matchLabels": {"team": "shop"}}}]);
    let (_, resp) = send(&state, "validate", &Review::policy("CREATE", p).json()).await;
    assert!(rules_of(&resp).is_empty(), "{resp}");
}

fn companion(name: &str) -> Value {
    let wanted = netpol_guard::guard::companions::desired(&Config::default(), "shop", "uid-shop");
    let p = wanted
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap();
    serde_json::to_value(p).unwrap()
}

#[tokio::test]
async fn companions_are_protected_from_everyone_but_the_guard_and_admins() {
    let state = state();
    let deny = companion("netpol-guard-default-deny");
    let ordinary_delete = Review {
        old: deny.clone(),
        ..Review::policy("DELETE", Value::Null)
    };
    let (status, resp) = send(&state, "validate", &ordinary_delete.json()).await;
    assert_eq!(status, StatusCode::OK);
    let r = &resp["response"];
    assert_eq!(r["allowed"], false, "{resp}");
    assert_eq!(r["uid"], UID);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("[companion-protected]"), "{message}");
    assert!(
        message.contains("shop/netpol-guard-default-deny"),
        "{message}"
    );
    // the mutating webhook has nothing to add to a DELETE
    let (_, resp) = send(&state, "mutate", &ordinary_delete.json()).await;
    assert_eq!(resp["response"]["allowed"], true);

    // an edit that opens it up is refused the same way
    let mut opened = deny.clone();
    opened["spec"]["policyTypes"] = json!(["Ingress"]);
    let edit = Review {
        old: deny.clone(),
        ..Review::policy("UPDATE", opened.clone())
    };
    let (_, resp) = send(&state, "validate", &edit.json()).await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");

    // administrators, the guard itself and the namespace cleanup may
    for (user, groups) in [
        ("root", vec!["system:masters"]),
        ("system:serviceaccount:netpol-guard:netpol-guard", vec![]),
        (
            "system:serviceaccount:kube-system:namespace-controller",
            vec![],
        ),
        (
            "system:serviceaccount:kube-system:generic-garbage-collector",
            vec![],
        ),
    ] {
        let review = Review {
            user,
            groups: groups.clone(),
            ..Review {
                old: deny.clone(),
                ..Review::policy("DELETE", Value::Null)
            }
        };
        let (_, resp) = send(&state, "validate", &review.json()).await;
        assert_eq!(resp["response"]["allowed"], true, "{user}: {resp}");
    }
    // an ordinary policy is not protected
    let own = Review {
        old: db_only("shop"),
        ..Review::policy("DELETE", Value::Null)
    };
    let (_, resp) = send(&state, "validate", &own.json()).await;
    assert_eq!(resp["response"]["allowed"], true);
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "NetworkPolicy", "DELETE", "denied"),
        1.0
    );
}

#[tokio::test]
async fn the_guards_own_companion_writes_are_admitted_untouched() {
    let state = state();
    // default-deny isolates egress without DNS: anyone else's would be denied and mutated
    let deny = companion("netpol-guard-default-deny");
    let guard = Review {
        user: "system:serviceaccount:netpol-guard:netpol-guard",
        ..Review::policy("CREATE", deny.clone())
    };
    let (_, resp) = send(&state, "validate", &guard.json()).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    let (_, resp) = send(&state, "mutate", &guard.json()).await;
    assert!(patch_of(&resp).is_none(), "{resp}");
    let tenant = Review::policy("CREATE", deny);
    let (_, resp) = send(&state, "validate", &tenant.json()).await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
}

#[tokio::test]
async fn an_absurd_timeout_is_clamped_and_answered() {
    let state = state();
    let body = serde_json::to_vec(&Review::policy("CREATE", missing_dns()).json()).unwrap();
    for query in [
        "timeout=9999999999999999999s",
        "timeout=2562047h",
        "timeout=-5s",
        "timeout=%ZZ",
        "timeout=10s&timeout=20s",
    ] {
        let (status, bytes) = send_raw(
            router_of(&state),
            &format!("/validate?{query}"),
            "application/json",
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["response"]["uid"], UID, "{query}");
        assert_eq!(
            v["response"]["allowed"], false,
            "{query}: denied by the rules"
        );
    }
}

#[tokio::test]
async fn reviews_without_the_objects_their_operation_needs_are_refused_as_invalid() {
    let state = state();
    let cases = [
        // CREATE or UPDATE without an object: nothing to judge, never "allowed"
        Review::policy("CREATE", Value::Null),
        Review {
            old: missing_dns(),
            ..Review::policy("UPDATE", Value::Null)
        },
        // UPDATE or DELETE without the stored object: it could be a companion
        Review::policy("UPDATE", missing_dns()),
        Review::policy("DELETE", Value::Null),
        Review::namespace("CREATE", Value::Null),
    ];
    for review in cases {
        let mut json = review.json();
        // the name and namespace come from the request even when the objects are missing
        json["request"]["name"] = json!("netpol-guard-default-deny");
        json["request"]["namespace"] = json!("shop");
        for endpoint in ["validate", "mutate"] {
            let (status, resp) = send(&state, endpoint, &json).await;
            assert_eq!(status, StatusCode::OK);
            let r = &resp["response"];
            assert_eq!(r["uid"], UID);
            assert_eq!(
                r["allowed"], false,
                "{} {endpoint}: {resp}",
                review.operation
            );
            assert_eq!(r["status"]["code"], 400, "{resp}");
        }
    }
}

#[tokio::test]
async fn labels_the_rollout_selector_reads_are_protected_like_the_exempt_label() {
    let config = Config::from_yaml(
        "companions:\n  namespaceSelector: {matchLabels: {netpol-guard.io/baseline: \"on\"}}\n",
    )
    .unwrap();
    let state = common::state_with(config);
    let selected = json!({"netpol-guard.io/baseline": "on", "team": "a"});
    let cases = [
        // removing the label the selector reads opts the namespace out: refused
        (json!({"team": "a"}), "alice", vec![], false),
        (
            json!({"netpol-guard.io/baseline": "off", "team": "a"}),
            "alice",
            vec![],
            false,
        ),
        // other labels are anyone's
        (
            json!({"netpol-guard.io/baseline": "on", "team": "b"}),
            "alice",
            vec![],
            true,
        ),
        // administrators may
        (json!({"team": "a"}), "root", vec!["system:masters"], true),
    ];
    for (i, (new, user, groups, allowed)) in cases.into_iter().enumerate() {
        let review = Review {
            old: namespace("team-a", selected.clone()),
            user,
            groups,
            ..Review::namespace("UPDATE", namespace("team-a", new))
        };
        let (_, resp) = send(&state, "validate", &review.json()).await;
        assert_eq!(resp["response"]["allowed"], allowed, "case {i}: {resp}");
        if !allowed {
            let message = resp["response"]["status"]["message"].as_str().unwrap();
            assert!(
                message.contains(
                    "[namespace-exempt-label-protected] metadata.labels.netpol-guard.io/baseline"
                ),
                "{message}"
            );
        }
    }
}

#[tokio::test]
async fn error_answers_say_why_in_the_clients_terms() {
    let state = state();
    let (status, body) = send_raw(
        router_of(&state),
        "/validate",
        "application/json",
        b"[1, 2]".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("line 1 column"), "{text}");
    assert!(
        !text.contains("Peek"),
        "an internal type name leaked: {text}"
    );
    let (status, body) = send_raw(
        router_of(&state),
        "/nowhere",
        "application/json",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("POST /validate"));
    // a value of the wrong type is named by its field path
    let mut object = missing_dns();
    object["spec"]["ingress"] = json!([{"ports": [{"port": {"number": 80}}]}]);
    let (status, body) = send_raw(
        router_of(&state),
        "/validate",
        "application/json",
        serde_json::to_vec(&Review::policy("CREATE", object).json()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a review with a uid is answered");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("request.object.spec.ingress[0].ports[0].port: invalid type: map"),
        "{message}"
    );
    assert_eq!(answer["response"]["uid"], UID);
    let (_, body) = send_raw(
        router_of(&state),
        "/validate",
        "application/json",
        br#"{"apiVersion": "admission.k8s.io/v1", "request": {"uid": 7}}"#.to_vec(),
    )
    .await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("request.uid: invalid type: integer"),
        "{text}"
    );
    let get = router_of(&state)
        .oneshot(Request::get("/validate").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body = get.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("POST"));
    // the metrics port says why too
    for (request, status, says) in [
        (
            Request::get("/nowhere").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "GET /metrics",
        ),
        (
            Request::post("/metrics").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "GET",
        ),
    ] {
        let resp = router::metrics_router(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(says), "{body:?}");
    }
}

#[tokio::test]
async fn admission_series_exist_at_zero_before_the_first_review() {
    let state = state();
    let text = metrics_text(&state).await;
    for series in [
        r#"netpol_guard_admission_requests_total{decision="denied",endpoint="validate",kind="NetworkPolicy",operation="CREATE"} 0"#,
        r#"netpol_guard_admission_requests_total{decision="mutated",endpoint="mutate",kind="Namespace",operation="UPDATE"} 0"#,
        r#"netpol_guard_admission_duration_seconds_count{endpoint="mutate"} 0"#,
    ] {
        assert!(text.contains(series), "{series} missing");
    }
}

#[tokio::test]
async fn answers_during_the_drain_ask_clients_to_close_their_connection() {
    let state = state();
    let body = serde_json::to_vec(&Review::policy("CREATE", missing_dns()).json()).unwrap();
    let request = || {
        Request::post("/validate?timeout=5s")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap()
    };
    let open = router_of(&state).oneshot(request()).await.unwrap();
    assert!(open.headers().get("connection").is_none());
    state.start_draining();
    assert!(!state.is_ready());
    let closing = router_of(&state).oneshot(request()).await.unwrap();
    assert_eq!(closing.status(), StatusCode::OK);
    assert_eq!(closing.headers()["connection"], "close");
}

fn admin_network_policy(name: &str, priority: i32, egress: Value) -> Value {
    json!({
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"priority": priority, "subject": {"namespaces": {}}, "egress": egress},
    })
}

fn layer_review(operation: &'static str, object: Value) -> Review {
    let mut review = Review::policy(operation, object);
    review.kind = "AdminNetworkPolicy";
    review
}

#[tokio::test]
async fn layer_writes_that_deny_dns_are_refused_and_never_mutated() {
    let state = state();
    let lockdown = admin_network_policy(
        "lockdown",
        5,
        json!([{"name": "no-egress", "action": "Deny", "to": [{"namespaces": {}}]}]),
    );
    let (status, v) = send(
        &state,
        "validate",
        &layer_review("CREATE", lockdown.clone()).json(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["response"]["uid"], UID);
    assert_eq!(v["response"]["allowed"], false, "{v}");
    assert_eq!(v["response"]["status"]["code"], 403, "{v}");
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("layer-denies-dns"), "{message}");
    assert!(message.contains("spec.egress[0]"), "{message}");
    assert!(
        message.contains("layer-protected-namespace-deny"),
        "{message}"
    );
    // the mutating endpoint admits it untouched, DELETE is not judged
    let (_, m) = send(
        &state,
        "mutate",
        &layer_review("CREATE", lockdown.clone()).json(),
    )
    .await;
    assert_eq!(m["response"]["allowed"], true);
    assert!(patch_of(&m).is_none(), "{m}");
    let mut delete = layer_review("DELETE", Value::Null);
    delete.old = lockdown;
    let (_, d) = send(&state, "validate", &delete.json()).await;
    assert_eq!(d["response"]["allowed"], true, "{d}");
    let text = metrics_text(&state).await;
    assert_eq!(
        requests(&text, "validate", "AdminNetworkPolicy", "CREATE", "denied"),
        1.0,
        "{text}"
    );

    // with DNS allowed first, the same lockdown is admitted
    let ordered = admin_network_policy(
        "lockdown",
        5,
        json!([
            {"name": "dns", "action": "Allow", "to": [{"pods": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}}],
             "ports": [{"portNumber": {"protocol": "UDP", "port": 53}}]},
            {"name": "no-egress", "action": "Deny", "to": [{"namespaces": {
                "matchLabels": {"kubernetes.io/metadata.name": "shop"}}}]},
        ]),
    );
    let (_, v) = send(&state, "validate", &layer_review("UPDATE", ordered).json()).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
}

#[tokio::test]
async fn a_layer_version_the_guard_does_not_read_is_admitted_with_a_warning() {
    let state = state();
    let mut object = admin_network_policy("future", 5, json!([]));
    object["apiVersion"] = json!("policy.networking.k8s.io/v1beta1");
    let (_, v) = send(&state, "validate", &layer_review("CREATE", object).json()).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    let warning = v["response"]["warnings"][0].as_str().unwrap();
    assert!(warning.contains("v1beta1/AdminNetworkPolicy"), "{warning}");
}

#[tokio::test]
async fn an_admin_dns_allow_in_the_cache_admits_egress_policies_untouched() {
    let state = state();
    let allow = admin_network_policy(
        "allow-dns",
        10,
        json!([{"name": "dns", "action": "Allow", "to": [{"namespaces": {
            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]}]),
    );
    let mut inventory = netpol_guard::netpol::cluster::Inventory::new();
    inventory
        .layers_mut()
        .insert(netpol_guard::netpol::layers::decode::layer(&allow).unwrap());
    state.set_inventory(inventory);
    let review = Review::policy("CREATE", db_only("shop")).json();
    let (_, v) = send(&state, "validate", &review).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(rules_of(&v).is_empty(), "{v}");
    let (_, m) = send(&state, "mutate", &review).await;
    assert!(patch_of(&m).is_none(), "{m}");

    // an Admin deny at a lower priority number refuses it, naming the object
    let deny = admin_network_policy(
        "no-dns",
        1,
        json!([{"name": "dns", "action": "Deny", "to": [{"namespaces": {}}],
                "ports": [{"portNumber": {"protocol": "UDP", "port": 53}}]}]),
    );
    let mut inventory = netpol_guard::netpol::cluster::Inventory::new();
    for object in [allow, deny] {
        inventory
            .layers_mut()
            .insert(netpol_guard::netpol::layers::decode::layer(&object).unwrap());
    }
    state.set_inventory(inventory);
    let (_, v) = send(&state, "validate", &review).await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let message = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("AdminNetworkPolicy no-dns, priority 1 (rule dns)"),
        "{message}"
    );
    let (_, m) = send(&state, "mutate", &review).await;
    assert!(
        patch_of(&m).is_none(),
        "nothing is injected under a deny: {m}"
    );
}
