//! Admission decisions: an `admission.k8s.io/v1` AdmissionReview in, an AdmissionResponse
//! out. This module knows Kubernetes admission but no HTTP: the server hands it the body
//! and a snapshot of the engine state, and turns the outcome into an HTTP response.
//!
//! NetworkPolicies are judged by the same rule engine as `netpol-guard check`; the mutating
//! endpoint returns the engine's DNS allowance patch. Namespaces are guarded so that only
//! administrators can opt a namespace out, and stamped with what the guard will do there.

mod objects;

use std::collections::BTreeMap;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use objects::{NamespaceObject, PolicyObject};
use serde::Deserialize;
use serde_json::Value;

use crate::companions;
use crate::config::{Config, GitOpsMode};
use crate::mutate::dns_allowance_patch_in;
use crate::netpol::Context;
use crate::netpol::cluster::Inventory;
use crate::netpol::dns::DnsTarget;
use crate::netpol::policy::Subject;
use crate::rules::{self, Finding, Severity};

pub use crate::companions::EXEMPT_LABEL;
/// The namespace label that shows what the guard does in a namespace.
pub const COMPANIONS_LABEL: &str = "netpol-guard.io/companions";
/// Rule id of the namespace check (reported like the NetworkPolicy rules).
pub const EXEMPT_LABEL_RULE: &str = "namespace-exempt-label-protected";
/// Rule id of the companion protection.
pub const COMPANION_RULE: &str = "companion-protected";

/// The kube-controller-manager identities that delete a terminating namespace's objects
/// (and garbage-collect owned ones); refusing them would leave namespaces stuck deleting.
const NAMESPACE_CLEANERS: &[&str] = &[
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:kube-controller-manager",
];

/// The API version this webhook speaks.
const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// Which webhook endpoint a review came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Validate,
    Mutate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// The outcome of a review, as counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
    Mutated,
    Invalid,
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Mutated => "mutated",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// Deployment facts the admission logic needs besides the rule configuration.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The guard's own namespace (its namespace is never given companions).
    pub namespace: String,
    /// The guard's service account username, `system:serviceaccount:NS:NAME`.
    pub service_account: String,
}

/// A consistent snapshot of everything a review reads.
#[derive(Debug, Clone)]
pub struct Engine {
    pub config: Arc<Config>,
    pub inventory: Arc<Inventory>,
    /// Resolved from `config` and `inventory` (see [`Engine::new`]).
    pub dns: Arc<DnsTarget>,
    pub identity: Arc<Identity>,
}

impl Engine {
    /// An engine whose DNS target is resolved from `config` and `inventory`.
    pub fn new(config: Arc<Config>, inventory: Arc<Inventory>, identity: Arc<Identity>) -> Self {
        let dns = Arc::new(DnsTarget::new(&config.dns, &inventory));
        Self {
            config,
            inventory,
            dns,
            identity,
        }
    }
}

/// A finished review.
#[derive(Debug)]
pub struct Reviewed {
    /// The AdmissionReview to send back.
    pub review: AdmissionReview<DynamicObject>,
    /// Whether the body was unusable as an AdmissionReview (HTTP 400).
    pub bad_request: bool,
    pub decision: Decision,
    /// Bounded metric labels.
    pub kind: &'static str,
    pub operation: &'static str,
    /// For the request's log span.
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub dry_run: bool,
    pub findings: Vec<Finding>,
}

/// Serializes a review for the API server. kube's `AdmissionResponse` serializes `patch`
/// (Go `[]byte`) as an array of numbers (kube-rs issue #1781); the API documents base64,
/// so the patch is written as a base64 string here.
pub fn to_json(review: &AdmissionReview<DynamicObject>) -> serde_json::Result<Vec<u8>> {
    use base64::Engine as _;
    if review.response.as_ref().is_none_or(|r| r.patch.is_none()) {
        return serde_json::to_vec(review);
    }
    let mut value = serde_json::to_value(review)?;
    if let Some(patch) = review.response.as_ref().and_then(|r| r.patch.as_ref())
        && let Some(field) = value.pointer_mut("/response/patch")
    {
        *field = Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&value)
}

/// Just enough of a body to route it and to echo its uid whatever else is wrong.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Peek {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<PeekRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct PeekRequest {
    uid: Option<String>,
    kind: Option<PeekKind>,
}

#[derive(Debug, Default, Deserialize)]
struct PeekKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
}

/// Reviews one AdmissionReview body.
pub fn review(engine: &Engine, endpoint: Endpoint, body: &[u8]) -> Reviewed {
    // NetworkPolicy reviews are the common case: decode the body once, as one, and check
    // what it is afterwards. Namespaces decode again as theirs; anything unusual (another
    // version, a body that does not decode, other kinds) takes the careful path below.
    if let Ok(review) = serde_json::from_slice::<AdmissionReview<PolicyObject>>(body)
        && review.types.api_version == REVIEW_API_VERSION
        && review.types.kind == "AdmissionReview"
        && let Some(request) = &review.request
    {
        match (request.kind.group.as_str(), request.kind.kind.as_str()) {
            ("networking.k8s.io", "NetworkPolicy") => {
                if let Ok(req) = review.try_into() {
                    return network_policy(engine, endpoint, req);
                }
            }
            ("", "Namespace") => {
                if let Ok(req) = decode::<NamespaceObject>(body) {
                    return namespace(engine, endpoint, &req);
                }
            }
            _ => {}
        }
    }
    careful_review(engine, endpoint, body)
}

/// Routes by a first look at the body, so every failure can still echo the uid.
fn careful_review(engine: &Engine, endpoint: Endpoint, body: &[u8]) -> Reviewed {
    let peek: Peek = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            return invalid(
                None,
                format!("the body is not an AdmissionReview: {e}"),
                true,
            );
        }
    };
    let uid = peek.request.as_ref().and_then(|r| r.uid.clone());
    if peek.api_version.as_deref() != Some(REVIEW_API_VERSION)
        || peek.kind.as_deref() != Some("AdmissionReview")
    {
        return invalid(
            uid,
            format!(
                "expected kind AdmissionReview in {REVIEW_API_VERSION}, got {} in {}",
                peek.kind.as_deref().unwrap_or("no kind"),
                peek.api_version.as_deref().unwrap_or("no apiVersion")
            ),
            false,
        );
    }
    let Some(request) = &peek.request else {
        return invalid(None, "the AdmissionReview has no request", true);
    };
    let Some(uid) = uid else {
        return invalid(None, "the AdmissionReview request has no uid", true);
    };
    let kind = request
        .kind
        .as_ref()
        .map(|k| (k.group.as_str(), k.kind.as_str()));
    match kind {
        Some(("networking.k8s.io", "NetworkPolicy")) => match decode::<PolicyObject>(body) {
            Ok(req) => network_policy(engine, endpoint, req),
            Err(e) => invalid(Some(uid), e, false),
        },
        Some(("", "Namespace")) => match decode::<NamespaceObject>(body) {
            Ok(req) => namespace(engine, endpoint, &req),
            Err(e) => invalid(Some(uid), e, false),
        },
        // A webhook configuration that sends other kinds is a misconfiguration: admit (this
        // guard has nothing to say about them) and say so.
        _ => match decode::<DynamicObject>(body) {
            Ok(req) => {
                let what = request.kind.as_ref().map_or_else(
                    || "an unknown kind".to_string(),
                    |k| format!("{}/{}", k.group, k.kind),
                );
                let mut response = AdmissionResponse::from(&req);
                response.warnings = Some(vec![format!(
                    "netpol-guard does not review {what}: check the webhook configuration's rules"
                )]);
                finish(&req, response, Decision::Allowed, "other", Vec::new())
            }
            Err(e) => invalid(Some(uid), e, false),
        },
    }
}

/// The request uid, if the body has one.
fn peek_uid(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Peek>(body)
        .ok()
        .and_then(|p| p.request)
        .and_then(|r| r.uid)
}

/// The benchmark baseline: admits everything, decoding nothing but the uid. Same transport,
/// no rules, so load runs can show what the rules cost.
pub fn baseline(body: &[u8]) -> Reviewed {
    let uid = peek_uid(body);
    let Some(uid) = uid else {
        return invalid(None, "the body has no AdmissionReview request uid", true);
    };
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.clone();
    response.allowed = true;
    response.result = Default::default();
    Reviewed {
        review: response.into_review(),
        bad_request: false,
        decision: Decision::Allowed,
        kind: "unknown",
        operation: "unknown",
        uid,
        namespace: String::new(),
        name: String::new(),
        dry_run: false,
        findings: Vec::new(),
    }
}

/// A review that could not be finished (timeout, internal failure): not allowed, with the
/// request's uid when the body has one.
pub fn failed(body: &[u8], message: &str) -> Reviewed {
    let uid = peek_uid(body);
    let mut reviewed = invalid(uid, message, false);
    if let Some(response) = reviewed.review.response.as_mut() {
        response.result.code = 500;
        response.result.reason = "InternalError".to_string();
    }
    reviewed.decision = Decision::Error;
    reviewed
}

fn decode<K>(body: &[u8]) -> Result<AdmissionRequest<K>, String>
where
    K: Resource + serde::de::DeserializeOwned,
{
    let review: AdmissionReview<K> = serde_json::from_slice(body)
        .map_err(|e| format!("cannot decode the AdmissionReview: {e}"))?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())
}

fn invalid(uid: Option<String>, message: impl Into<String>, bad_request: bool) -> Reviewed {
    let message = message.into();
    let mut response = AdmissionResponse::invalid(&message);
    response.uid = uid.clone().unwrap_or_default();
    response.result.code = 400;
    Reviewed {
        review: response.into_review(),
        bad_request,
        decision: Decision::Invalid,
        kind: "unknown",
        operation: "unknown",
        uid: uid.unwrap_or_default(),
        namespace: String::new(),
        name: String::new(),
        dry_run: false,
        findings: Vec::new(),
    }
}

fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

fn finish<K: Resource>(
    req: &AdmissionRequest<K>,
    response: AdmissionResponse,
    decision: Decision,
    kind: &'static str,
    findings: Vec<Finding>,
) -> Reviewed {
    Reviewed {
        review: response.into_review(),
        bad_request: false,
        decision,
        kind,
        operation: operation_label(&req.operation),
        uid: req.uid.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: req.name.clone(),
        dry_run: req.dry_run,
        findings,
    }
}

fn deny(response: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".to_string();
    response
}

fn network_policy(
    engine: &Engine,
    endpoint: Endpoint,
    mut req: AdmissionRequest<PolicyObject>,
) -> Reviewed {
    const KIND: &str = "NetworkPolicy";
    let req = &mut req;
    let response = AdmissionResponse::from(&*req);
    let managed = |o: &Option<PolicyObject>| {
        o.as_ref()
            .is_some_and(|o| companions::is_managed(o.metadata.labels.as_ref()))
    };
    if (managed(&req.old_object) || managed(&req.object))
        && let Some(reviewed) = companion(engine, endpoint, req, response.clone())
    {
        return reviewed;
    }
    // DELETE carries only oldObject; nothing to judge in the object itself.
    let object = req.object.take().map(NetworkPolicy::from);
    let Some(policy) = object
        .as_ref()
        .filter(|_| req.operation != Operation::Delete)
    else {
        return finish(req, response, Decision::Allowed, KIND, Vec::new());
    };
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let subject = Subject::new(policy, namespace);
    let ctx = Context::with_dns(&engine.config, &engine.inventory, engine.dns.clone());
    let gitops = engine.config.is_gitops_managed(
        policy.metadata.labels.as_ref(),
        policy.metadata.annotations.as_ref(),
    );
    match endpoint {
        Endpoint::Mutate => {
            if gitops && engine.config.mutation.gitops == GitOpsMode::Deny {
                return finish(req, response, Decision::Allowed, KIND, Vec::new());
            }
            match dns_allowance_patch_in(&ctx, &subject)
                .map(|patch| response.clone().with_patch(patch))
            {
                Some(Ok(patched)) => finish(req, patched, Decision::Mutated, KIND, Vec::new()),
                Some(Err(e)) => {
                    let failed = deny(
                        response,
                        format!("netpol-guard could not encode its patch: {e}"),
                    );
                    finish(req, failed, Decision::Error, KIND, Vec::new())
                }
                None => finish(req, response, Decision::Allowed, KIND, Vec::new()),
            }
        }
        Endpoint::Validate => {
            let findings = rules::evaluate(&ctx, &subject);
            let mut response = response;
            response.audit_annotations = audit_annotations(&findings);
            let warnings: Vec<String> = findings
                .iter()
                .filter(|f| f.severity == Severity::Warn)
                .map(|f| format!("netpol-guard {} at {}: {}", f.rule, f.path, f.message))
                .collect();
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            let denied: Vec<&Finding> = findings
                .iter()
                .filter(|f| f.severity == Severity::Deny)
                .collect();
            if denied.is_empty() {
                return finish(req, response, Decision::Allowed, KIND, findings);
            }
            let message = deny_message(KIND, namespace, &req.name, &denied, gitops);
            finish(
                req,
                deny(response, message),
                Decision::Denied,
                KIND,
                findings,
            )
        }
    }
}

/// Writes to the guard's companion policies. The guard's own writes are admitted as they
/// are (the controller applies exactly what the engine wants); others may not change or
/// delete an existing companion unless they are administrators. `None`: review normally.
fn companion(
    engine: &Engine,
    endpoint: Endpoint,
    req: &AdmissionRequest<PolicyObject>,
    response: AdmissionResponse,
) -> Option<Reviewed> {
    const KIND: &str = "NetworkPolicy";
    let user = req.user_info.username.as_deref().unwrap_or_default();
    if user == engine.identity.service_account {
        return Some(finish(req, response, Decision::Allowed, KIND, Vec::new()));
    }
    let existing = req
        .old_object
        .as_ref()
        .is_some_and(|o| companions::is_managed(o.metadata.labels.as_ref()));
    let changes = matches!(req.operation, Operation::Update | Operation::Delete);
    if !existing || !changes || is_admin(engine, req) || NAMESPACE_CLEANERS.contains(&user) {
        return None;
    }
    if endpoint == Endpoint::Mutate {
        return Some(finish(req, response, Decision::Allowed, KIND, Vec::new()));
    }
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let verb = if req.operation == Operation::Delete {
        "delete"
    } else {
        "change"
    };
    let finding = Finding {
        rule: COMPANION_RULE,
        severity: Severity::Deny,
        path: format!("metadata.labels.{}", companions::MANAGED_BY_LABEL),
        message: format!(
            "{namespace}/{} is a companion policy netpol-guard keeps in every namespace; only \
             members of {} or the guard's service account may {verb} it",
            req.name,
            engine.config.admin_groups.join(", "),
        ),
        fix: format!(
            "add your own NetworkPolicy beside it (policies are additive), or ask a cluster \
             administrator to label the namespace {EXEMPT_LABEL}=true"
        ),
    };
    let message = deny_message(KIND, namespace, &req.name, &[&finding], false);
    let mut response = deny(response, message);
    response.audit_annotations = audit_annotations(std::slice::from_ref(&finding));
    Some(finish(req, response, Decision::Denied, KIND, vec![finding]))
}

/// One line per finding: rule id, field, what is wrong, the fix.
fn deny_message(
    kind: &str,
    namespace: &str,
    name: &str,
    denied: &[&Finding],
    gitops: bool,
) -> String {
    let object = if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    };
    let mut message = format!("netpol-guard denied {kind} {object}:");
    for f in denied {
        message.push_str(&format!(
            "\n[{}] {}: {}\nfix: {}",
            f.rule, f.path, f.message, f.fix
        ));
    }
    if gitops && denied.iter().any(|f| f.rule == "egress-missing-dns") {
        message.push_str(
            "\nThis object is managed by a GitOps tool, so netpol-guard does not inject the DNS \
             rule (the sync would revert it): commit the fix to its source.",
        );
    }
    message
}

fn audit_annotations(findings: &[Finding]) -> std::collections::HashMap<String, String> {
    // The API server prefixes each key with the webhook's name, e.g.
    // `networkpolicies.validate.netpol-guard.io/egress-missing-dns`.
    let mut by_rule: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in findings {
        by_rule
            .entry(f.rule)
            .or_default()
            .push(format!("{} {}", f.severity, f.path));
    }
    by_rule
        .into_iter()
        .map(|(rule, places)| (rule.to_string(), places.join("; ")))
        .collect()
}

fn namespace(
    engine: &Engine,
    endpoint: Endpoint,
    req: &AdmissionRequest<NamespaceObject>,
) -> Reviewed {
    const KIND: &str = "Namespace";
    let response = AdmissionResponse::from(req);
    let Some(ns) = req
        .object
        .as_ref()
        .filter(|_| req.operation != Operation::Delete)
    else {
        return finish(req, response, Decision::Allowed, KIND, Vec::new());
    };
    let label = |ns: Option<&NamespaceObject>, key: &str| {
        ns.and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(key))
            .cloned()
    };
    match endpoint {
        Endpoint::Validate => {
            let before = label(req.old_object.as_ref(), EXEMPT_LABEL);
            let after = label(Some(ns), EXEMPT_LABEL);
            if before == after || is_admin(engine, req) {
                return finish(req, response, Decision::Allowed, KIND, Vec::new());
            }
            let finding = Finding {
                rule: EXEMPT_LABEL_RULE,
                severity: Severity::Deny,
                path: format!("metadata.labels.{EXEMPT_LABEL}"),
                message: format!(
                    "only members of {} or the guard's service account may set, change or remove \
                     the label {EXEMPT_LABEL} ({} -> {})",
                    engine.config.admin_groups.join(", "),
                    before.as_deref().unwrap_or("unset"),
                    after.as_deref().unwrap_or("unset"),
                ),
                fix: format!(
                    "leave {EXEMPT_LABEL} as it was, or ask a cluster administrator to change it"
                ),
            };
            let message = deny_message(KIND, "", &req.name, &[&finding], false);
            let mut response = deny(response, message);
            response.audit_annotations = audit_annotations(std::slice::from_ref(&finding));
            finish(req, response, Decision::Denied, KIND, vec![finding])
        }
        Endpoint::Mutate => {
            let name = ns.metadata.name.as_deref().unwrap_or(&req.name);
            let exempt = companions::exemption(
                &engine.config,
                &engine.identity.namespace,
                name,
                ns.metadata.labels.as_ref(),
            )
            .is_some();
            let stamp = if exempt { "exempt" } else { "enabled" };
            if label(Some(ns), COMPANIONS_LABEL).as_deref() == Some(stamp) {
                return finish(req, response, Decision::Allowed, KIND, Vec::new());
            }
            let patch = label_patch(ns.metadata.labels.is_some(), COMPANIONS_LABEL, stamp);
            match response.clone().with_patch(patch) {
                Ok(patched) => finish(req, patched, Decision::Mutated, KIND, Vec::new()),
                Err(e) => {
                    let failed = deny(
                        response,
                        format!("netpol-guard could not encode its patch: {e}"),
                    );
                    finish(req, failed, Decision::Error, KIND, Vec::new())
                }
            }
        }
    }
}

fn is_admin<K: Resource>(engine: &Engine, req: &AdmissionRequest<K>) -> bool {
    let user = &req.user_info;
    user.username.as_deref() == Some(engine.identity.service_account.as_str())
        || user
            .groups
            .iter()
            .flatten()
            .any(|g| engine.config.admin_groups.contains(g))
}

/// Sets one label, creating `metadata.labels` when the object has none.
fn label_patch(has_labels: bool, key: &str, value: &str) -> Patch {
    let op = if has_labels {
        // `add` on an existing member replaces it
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels", key]),
            value: Value::String(value.to_string()),
        })
    } else {
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels"]),
            value: serde_json::json!({ key: value }),
        })
    };
    Patch(vec![op])
}
