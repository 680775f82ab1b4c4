//! Encoding: the guard's verdict written straight into the AdmissionResponse the API server
//! reads (warnings, audit annotations, denial status, base64 patch), and the answers for
//! bodies that never became a review. The wire types are this module's own: kube's
//! serialization goes through a flattened map and writes `patch`, Go's `[]byte`, as an array
//! of numbers (kube-rs issue #1781), where the API documents base64.

use std::collections::BTreeMap;

use serde::Serialize;

use super::lean::{Decoded, operation};
use super::{Decision, Reviewed};
use crate::guard::{self, Verdict};
use crate::rules::suppress::Suppressed;
use crate::rules::{Finding, Severity};

/// The AdmissionReview the API server reads back.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a Response,
}

/// An AdmissionResponse, field for field as `admission.k8s.io/v1` has it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's uid, echoed.
    pub uid: String,
    pub allowed: bool,
    pub status: Status,
    /// A JSONPatch (RFC 6902), written base64.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "base64")]
    pub patch: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Keys the API server prefixes with the webhook's name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// Shown by kubectl.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The `status` of a response (a `metav1.Status`): empty when allowed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

fn base64<S: serde::Serializer>(patch: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
    let bytes = patch.as_deref().unwrap_or_default();
    serializer.collect_str(&base64::display::Base64Display::new(
        bytes,
        &base64::engine::general_purpose::STANDARD,
    ))
}

impl Response {
    /// Admits the request `uid`.
    pub(super) fn admitting(uid: &str) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: true,
            ..Self::default()
        }
    }

    /// Refuses with `message` (403 Forbidden), keeping the warnings and annotations.
    fn denying(self, message: String) -> Self {
        Self {
            allowed: false,
            status: Status {
                status: None,
                code: 403,
                message,
                reason: "Forbidden",
            },
            ..self
        }
    }

    /// Refuses a request that is not a usable review (`InvalidRequest`, 400).
    fn refusing(uid: Option<&str>, message: String) -> Self {
        Self {
            uid: uid.unwrap_or_default().to_string(),
            allowed: false,
            status: Status {
                status: Some("Failure"),
                code: 400,
                message,
                reason: "InvalidRequest",
            },
            ..Self::default()
        }
    }

    /// The AdmissionReview body for the API server.
    pub(super) fn to_json(&self) -> Vec<u8> {
        let answer = Answer {
            api_version: super::REVIEW_API_VERSION,
            kind: "AdmissionReview",
            response: self,
        };
        let mut out = Vec::with_capacity(256);
        // plain structs of strings, numbers and string-keyed maps: writing to a Vec cannot fail
        if serde_json::to_writer(&mut out, &answer).is_err() {
            out.clear();
        }
        out
    }
}

pub(super) fn invalid(
    uid: Option<String>,
    message: impl Into<String>,
    bad_request: bool,
) -> Reviewed {
    let response = Response::refusing(uid.as_deref(), message.into());
    unrouted(response, Decision::Invalid, bad_request)
}

/// The answer to a body that never became a judged request: no kind, operation or object.
fn unrouted(response: Response, decision: Decision, bad_request: bool) -> Reviewed {
    Reviewed {
        body: response.to_json(),
        uid: response.uid.clone(),
        response,
        bad_request,
        decision,
        kind: "unknown",
        operation: "unknown",
        namespace: String::new(),
        name: String::new(),
        dry_run: false,
        findings: Vec::new(),
    }
}

/// A review that could not be finished (timeout, internal failure): not allowed (500),
/// with the request's uid when the body has one.
pub(super) fn failed(uid: Option<String>, message: &str) -> Reviewed {
    let mut response = Response::refusing(uid.as_deref(), message.to_string());
    response.status.code = 500;
    response.status.reason = "InternalError";
    unrouted(response, Decision::Error, false)
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

impl<'a, K: kube::core::Resource> From<&'a kube::core::admission::AdmissionRequest<K>>
    for Origin<'a>
{
    fn from(req: &'a kube::core::admission::AdmissionRequest<K>) -> Self {
        Self {
            uid: &req.uid,
            operation: operation(&req.operation),
            namespace: req.namespace.as_deref().unwrap_or_default(),
            name: &req.name,
            dry_run: req.dry_run,
        }
    }
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

pub(super) fn finish(
    origin: Origin<'_>,
    response: Response,
    decision: Decision,
    kind: &'static str,
    findings: Vec<Finding>,
) -> Reviewed {
    Reviewed {
        body: response.to_json(),
        response,
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

/// A kind the guard does not review, sent by a misconfigured webhook: admitted (the guard has
/// nothing to say about it), with a warning that says so.
pub(super) fn unreviewed(origin: Origin<'_>, what: &str) -> Reviewed {
    let response = Response {
        warnings: vec![format!(
            "netpol-guard does not review {what}: check the webhook configuration's rules"
        )],
        ..Response::admitting(origin.uid)
    };
    finish(origin, response, Decision::Allowed, "other", Vec::new())
}

/// A reviewed kind whose object the guard cannot read: admitted, with a warning that says
/// why and that no verdict knows it.
pub(super) fn unreadable(origin: Origin<'_>, kind: &'static str, reason: &str) -> Reviewed {
    let response = Response {
        warnings: vec![format!(
            "netpol-guard cannot read this {kind} ({reason}): admitted unjudged, and no verdict \
             takes it into account"
        )],
        ..Response::admitting(origin.uid)
    };
    finish(origin, response, Decision::Allowed, kind, Vec::new())
}

/// The benchmark baseline's answer: admits `uid`, nothing decided.
pub(super) fn admitted(uid: &str) -> Reviewed {
    unrouted(Response::admitting(uid), Decision::Allowed, false)
}

/// Encodes the guard's verdict as the response to the request `origin`.
pub(super) fn encode(origin: Origin<'_>, kind: &'static str, verdict: Verdict) -> Reviewed {
    let response = Response::admitting(origin.uid);
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
            let response = with_findings(response, object, &findings, &suppressed).denying(message);
            finish(origin, response, Decision::Denied, kind, findings)
        }
        Verdict::Patch { patch, notice } => match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                let warnings = notice
                    .map(|n| warning(n.rule, object, &n.path, &n.message))
                    .into_iter()
                    .collect();
                let patched = Response {
                    patch: Some(bytes),
                    patch_type: Some("JSONPatch"),
                    warnings,
                    ..response
                };
                finish(origin, patched, Decision::Mutated, kind, Vec::new())
            }
            Err(e) => {
                let failed =
                    response.denying(format!("netpol-guard could not encode its patch: {e}"));
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
    mut response: Response,
    object: ObjectName<'_>,
    findings: &[Finding],
    suppressed: &[Suppressed],
) -> Response {
    response.audit_annotations = audit_annotations(findings, suppressed);
    response.warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warn)
        .map(|f| warning(f.rule, object, &f.path, &f.message))
        .collect();
    response
}

fn audit_annotations(findings: &[Finding], suppressed: &[Suppressed]) -> BTreeMap<String, String> {
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
