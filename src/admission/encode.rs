//! Encoding: the guard's verdict as an AdmissionResponse (warnings, audit annotations,
//! denial status, base64 patch), and the answers for bodies that never became a review.

use crate::rules::suppress::Suppressed;
use std::collections::{BTreeMap, HashMap};

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Resource};
use serde::Serialize;

use super::request::{Decoded, operation};
use super::{Decision, Reviewed};
use crate::guard::{self, Verdict};
use crate::rules::{Finding, Severity};

/// Serializes a review for the API server, written straight from the response (kube's own
/// serialization goes through a flattened map, and writes `patch`, Go's `[]byte`, as an
/// array of numbers, kube-rs issue #1781; the API documents base64).
pub fn to_json(review: &AdmissionReview<DynamicObject>) -> serde_json::Result<Vec<u8>> {
    let answer = Answer {
        api_version: super::REVIEW_API_VERSION,
        kind: "AdmissionReview",
        response: review.response.as_ref().map(|r| Response {
            uid: &r.uid,
            allowed: r.allowed,
            status: &r.result,
            patch: r.patch.as_deref().map(Base64),
            patch_type: r.patch.as_ref().map(|_| "JSONPatch"),
            audit_annotations: &r.audit_annotations,
            warnings: r.warnings.as_deref(),
        }),
    };
    let mut out = Vec::with_capacity(256);
    serde_json::to_writer(&mut out, &answer)?;
    Ok(out)
}

/// The AdmissionReview the API server reads back.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    api_version: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Response<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube::core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<Base64<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    audit_annotations: &'a HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

/// Bytes written as a base64 string.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&base64::display::Base64Display::new(
            self.0,
            &base64::engine::general_purpose::STANDARD,
        ))
    }
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

/// What an answer repeats of its request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Origin<'a> {
    pub uid: &'a str,
    pub operation: guard::Operation,
    pub namespace: &'a str,
    pub name: &'a str,
    pub dry_run: bool,
}

impl<'a> Origin<'a> {
    pub(super) fn of<T>(req: &'a Decoded<'_, T>) -> Self {
        let r = &req.request;
        Self {
            uid: &r.uid,
            operation: operation(&r.operation),
            namespace: req.namespace(),
            name: &r.name,
            dry_run: r.dry_run,
        }
    }
}

impl<'a, K: Resource> From<&'a AdmissionRequest<K>> for Origin<'a> {
    fn from(req: &'a AdmissionRequest<K>) -> Self {
        Self {
            uid: &req.uid,
            operation: operation(&req.operation),
            namespace: req.namespace.as_deref().unwrap_or_default(),
            name: &req.name,
            dry_run: req.dry_run,
        }
    }
}

/// An answer that admits the request `uid` (before a verdict is written into it).
pub(super) fn admitting(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_string();
    response.allowed = true;
    response.result = Default::default();
    response
}

pub(super) fn finish(
    origin: Origin<'_>,
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
        operation: origin.operation.as_str(),
        uid: origin.uid.to_string(),
        namespace: origin.namespace.to_string(),
        name: origin.name.to_string(),
        dry_run: origin.dry_run,
        findings,
    }
}

/// Encodes the guard's verdict as the response to the request `origin`.
pub(super) fn encode(origin: Origin<'_>, kind: &'static str, verdict: Verdict) -> Reviewed {
    let response = admitting(origin.uid);
    let object = ObjectName(kind, origin.namespace, origin.name);
    match verdict {
        Verdict::Allow {
            findings,
            suppressed,
        } => {
            let response = with_findings(response, object, &findings, &suppressed);
            finish(origin, response, Decision::Allowed, kind, findings)
        }
        Verdict::Deny {
            message,
            findings,
            suppressed,
        } => {
            let response = deny(
                with_findings(response, object, &findings, &suppressed),
                message,
            );
            finish(origin, response, Decision::Denied, kind, findings)
        }
        Verdict::Patch { patch, notice } => match response.clone().with_patch(patch) {
            Ok(mut patched) => {
                if let Some(n) = notice {
                    patched.warnings = Some(vec![warning(n.rule, object, &n.path, &n.message)]);
                }
                finish(origin, patched, Decision::Mutated, kind, Vec::new())
            }
            Err(e) => {
                let failed = deny(
                    response,
                    format!("netpol-guard could not encode its patch: {e}"),
                );
                finish(origin, failed, Decision::Error, kind, Vec::new())
            }
        },
    }
}

/// The object a request writes, as warnings name it: `NetworkPolicy shop/web`,
/// `Namespace lab` (kubectl prints the warnings of a multi-object apply one after another).
#[derive(Debug, Clone, Copy)]
struct ObjectName<'a>(&'a str, &'a str, &'a str);

impl std::fmt::Display for ObjectName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ObjectName(kind, namespace, name) = *self;
        let name = if name.is_empty() {
            "(generated name)"
        } else {
            name
        };
        if namespace.is_empty() {
            write!(f, "{kind} {name}")
        } else {
            write!(f, "{kind} {namespace}/{name}")
        }
    }
}

/// One admission warning: the rule, the object, the field, what.
fn warning(rule: &str, object: ObjectName<'_>, path: &str, message: &str) -> String {
    format!("netpol-guard {rule}: {object} at {path}: {message}")
}

/// Warn-level findings as admission warnings (kubectl prints them), every finding as an
/// audit annotation.
fn with_findings(
    mut response: AdmissionResponse,
    object: ObjectName<'_>,
    findings: &[Finding],
    suppressed: &[Suppressed],
) -> AdmissionResponse {
    response.audit_annotations = audit_annotations(findings, suppressed);
    let warnings: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .map(|f| warning(f.rule, object, &f.path, &f.message))
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

fn audit_annotations(findings: &[Finding], suppressed: &[Suppressed]) -> HashMap<String, String> {
    // The API server prefixes each key with the webhook's name, e.g.
    // `networkpolicies.validate.netpol-guard.io/egress-missing-dns`.
    let mut by_rule: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in findings {
        by_rule
            .entry(f.rule)
            .or_default()
            .push(format!("{} {}", f.severity, f.path));
    }
    // acknowledged by the policy's netpol-guard.io/ignore: in the audit log, never silent
    for s in suppressed {
        by_rule.entry(s.finding.rule).or_default().push(format!(
            "suppressed {} {} ({})",
            s.finding.severity, s.finding.path, s.reason
        ));
    }
    by_rule
        .into_iter()
        .map(|(rule, places)| (rule.to_string(), places.join("; ")))
        .collect()
}
