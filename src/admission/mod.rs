//! The AdmissionReview codec: an `admission.k8s.io/v1` body in, the guard's decision
//! ([`crate::guard`]) in the middle, an AdmissionResponse out. This module decodes and
//! encodes; it decides nothing, and it knows no HTTP (the server hands it the body).

mod objects;

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use objects::{NamespaceObject, PolicyObject};
use serde::Deserialize;
use serde_json::Value;

use crate::guard::{self, Request, Snapshot, Verdict};
use crate::rules::{Finding, Severity};

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
pub fn review(snapshot: &Snapshot, endpoint: Endpoint, body: &[u8]) -> Reviewed {
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
                    return network_policy(snapshot, endpoint, req);
                }
            }
            ("", "Namespace") => {
                if let Ok(req) = decode::<NamespaceObject>(body) {
                    return namespace(snapshot, endpoint, &req);
                }
            }
            _ => {}
        }
    }
    careful_review(snapshot, endpoint, body)
}

/// Routes by a first look at the body, so every failure can still echo the uid.
fn careful_review(snapshot: &Snapshot, endpoint: Endpoint, body: &[u8]) -> Reviewed {
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
    let kind = request.kind.as_ref();
    match kind.map(|k| (k.group.as_str(), k.kind.as_str())) {
        Some(("networking.k8s.io", "NetworkPolicy")) => match decode::<PolicyObject>(body) {
            Ok(req) => network_policy(snapshot, endpoint, req),
            Err(e) => invalid(Some(uid), e, false),
        },
        Some(("", "Namespace")) => match decode::<NamespaceObject>(body) {
            Ok(req) => namespace(snapshot, endpoint, &req),
            Err(e) => invalid(Some(uid), e, false),
        },
        _ => other_kind(kind, body, uid),
    }
}

/// A webhook configuration that sends other kinds is a misconfiguration: admit (this
/// guard has nothing to say about them) and say so.
fn other_kind(kind: Option<&PeekKind>, body: &[u8], uid: String) -> Reviewed {
    match decode::<DynamicObject>(body) {
        Ok(req) => {
            let what = kind.map_or_else(
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
    let Some(uid) = peek_uid(body) else {
        return invalid(None, "the body has no AdmissionReview request uid", true);
    };
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.clone();
    response.allowed = true;
    response.result = Default::default();
    let mut reviewed = invalid(Some(uid), "", false);
    reviewed.review = response.into_review();
    reviewed.decision = Decision::Allowed;
    reviewed
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

fn operation(op: &Operation) -> guard::Operation {
    match op {
        Operation::Create => guard::Operation::Create,
        Operation::Update => guard::Operation::Update,
        Operation::Delete => guard::Operation::Delete,
        Operation::Connect => guard::Operation::Connect,
    }
}

/// The guard's view of a request: who, what, and the objects.
fn facts<'a, K: Resource, T>(
    req: &'a AdmissionRequest<K>,
    object: Option<&'a T>,
    old_metadata: Option<&'a ObjectMeta>,
    object_name: Option<&'a str>,
) -> Request<'a, T> {
    let name = Some(req.name.as_str())
        .filter(|n| !n.is_empty())
        .or(object_name)
        .unwrap_or_default();
    Request {
        operation: operation(&req.operation),
        namespace: req.namespace.as_deref().unwrap_or_default(),
        name,
        user: req.user_info.username.as_deref().unwrap_or_default(),
        groups: req.user_info.groups.as_deref().unwrap_or_default(),
        object,
        old_metadata,
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
        operation: operation(&req.operation).as_str(),
        uid: req.uid.clone(),
        namespace: req.namespace.clone().unwrap_or_default(),
        name: req.name.clone(),
        dry_run: req.dry_run,
        findings,
    }
}

/// Encodes the guard's verdict as the response to `req`.
fn encode<K: Resource>(
    req: &AdmissionRequest<K>,
    kind: &'static str,
    verdict: Verdict,
) -> Reviewed {
    let response = AdmissionResponse::from(req);
    match verdict {
        Verdict::Allow { findings } => {
            let response = with_findings(response, &findings);
            finish(req, response, Decision::Allowed, kind, findings)
        }
        Verdict::Deny { message, findings } => {
            let response = deny(with_findings(response, &findings), message);
            finish(req, response, Decision::Denied, kind, findings)
        }
        Verdict::Patch(patch) => match response.clone().with_patch(patch) {
            Ok(patched) => finish(req, patched, Decision::Mutated, kind, Vec::new()),
            Err(e) => {
                let failed = deny(
                    response,
                    format!("netpol-guard could not encode its patch: {e}"),
                );
                finish(req, failed, Decision::Error, kind, Vec::new())
            }
        },
    }
}

/// Warn-level findings as admission warnings (kubectl prints them), every finding as an
/// audit annotation.
fn with_findings(mut response: AdmissionResponse, findings: &[Finding]) -> AdmissionResponse {
    response.audit_annotations = audit_annotations(findings);
    let warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .map(|f| format!("netpol-guard {} at {}: {}", f.rule, f.path, f.message))
        .collect();
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

fn deny(response: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".to_string();
    response
}

fn audit_annotations(findings: &[Finding]) -> HashMap<String, String> {
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

fn network_policy(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    mut req: AdmissionRequest<PolicyObject>,
) -> Reviewed {
    let object = req.object.take().map(NetworkPolicy::from);
    let old = req.old_object.as_ref().map(|o| &o.metadata);
    let object_name = object.as_ref().and_then(|o| o.metadata.name.as_deref());
    let facts = facts(&req, object.as_ref(), old, object_name);
    let verdict = match endpoint {
        Endpoint::Validate => guard::policy::validate(snapshot, &facts),
        Endpoint::Mutate => guard::policy::mutate(snapshot, &facts),
    };
    encode(&req, "NetworkPolicy", verdict)
}

fn namespace(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    req: &AdmissionRequest<NamespaceObject>,
) -> Reviewed {
    let object = req.object.as_ref().map(|o| &o.metadata);
    let old = req.old_object.as_ref().map(|o| &o.metadata);
    let facts = facts(req, object, old, object.and_then(|o| o.name.as_deref()));
    let verdict = match endpoint {
        Endpoint::Validate => guard::namespace::validate(snapshot, &facts),
        Endpoint::Mutate => guard::namespace::mutate(snapshot, &facts),
    };
    encode(req, "Namespace", verdict)
}
