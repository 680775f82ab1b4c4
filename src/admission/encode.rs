//! Encoding: the guard's verdict as an AdmissionResponse (warnings, audit annotations,
//! denial status, base64 patch), and the answers for bodies that never became a review.

use std::collections::{BTreeMap, HashMap};

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, Resource};
use serde_json::Value;

use super::{Decision, Reviewed};
use crate::guard::{self, Verdict};
use crate::rules::{Finding, Severity};

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

pub(super) fn invalid(
    uid: Option<String>,
    message: impl Into<String>,
    bad_request: bool,
) -> Reviewed {
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

pub(super) fn finish<K: Resource>(
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
pub(super) fn encode<K: Resource>(
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

pub(super) fn operation(op: &Operation) -> guard::Operation {
    match op {
        Operation::Create => guard::Operation::Create,
        Operation::Update => guard::Operation::Update,
        Operation::Delete => guard::Operation::Delete,
        Operation::Connect => guard::Operation::Connect,
    }
}
