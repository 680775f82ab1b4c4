//! Decoding: a first look at a body (enough to route it and to echo its uid whatever else
//! is wrong), the careful path for unusual bodies, and the guard's view of a request.

use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Resource};
use serde::Deserialize;

use super::encode::{admitting, finish, invalid};
use super::objects::{NamespaceObject, PolicyObject};
use super::request::{Decoded, LeanReview, Reviewable};
use super::{Decision, Endpoint, REVIEW_API_VERSION, Reviewed, namespace, network_policy};
use crate::guard::Snapshot;

/// A JSON error in words for the client: where it is, and what, without the names of this
/// program's internal types (`expected struct Peek`).
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "unreadable input".to_string(),
        Category::Syntax => "invalid JSON".to_string(),
        Category::Eof => "unexpected end of the body".to_string(),
        Category::Data => {
            // serde's message names the expected type; keep what the input had
            let text = e.to_string();
            let found = text
                .split(", expected")
                .next()
                .unwrap_or("a value of the wrong type")
                .to_string();
            found
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string()
        }
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// [`json_error`], led by the path of the field that failed to decode as `T` when the
/// error is about a value (`request.object.spec.ingress[0].ports[0].port: invalid type:
/// map ...`). The path is found by decoding again, on the error path only.
fn json_error_at<T: serde::de::DeserializeOwned>(body: &[u8], e: &serde_json::Error) -> String {
    let path = (e.classify() == serde_json::error::Category::Data)
        .then(|| {
            let mut de = serde_json::Deserializer::from_slice(body);
            serde_path_to_error::deserialize::<_, T>(&mut de)
                .err()
                .map(|e| e.path().to_string())
        })
        .flatten()
        .filter(|p| p != ".");
    match path {
        Some(path) => format!("{path}: {}", json_error(e)),
        None => json_error(e),
    }
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
    version: String,
    #[serde(default)]
    kind: String,
}

impl std::fmt::Display for PeekKind {
    /// `v1/Pod`, `apps/v1/Deployment`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}/", self.group)?;
        }
        write!(f, "{}/{}", self.version, self.kind)
    }
}

/// Routes by a first look at the body, so every failure can still echo the uid.
pub(super) fn careful_review(snapshot: &Snapshot, endpoint: Endpoint, body: &[u8]) -> Reviewed {
    let peek: Peek = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            return invalid(
                None,
                format!(
                    "the body is not an AdmissionReview: {}",
                    json_error_at::<Peek>(body, &e)
                ),
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
        Some(("networking.k8s.io", "NetworkPolicy")) => match lean::<PolicyObject>(body) {
            Some(req) => network_policy(snapshot, endpoint, req),
            None => invalid(Some(uid), why_not::<PolicyObject>(body), false),
        },
        Some(("", "Namespace")) => match lean::<NamespaceObject>(body) {
            Some(req) => namespace(snapshot, endpoint, &req),
            None => invalid(Some(uid), why_not::<NamespaceObject>(body), false),
        },
        _ => other_kind(kind, body, uid),
    }
}

/// The body as the guard reads it, objects decoded as `T`.
fn lean<T: Reviewable>(body: &[u8]) -> Option<Decoded<'_, T>> {
    serde_json::from_slice::<LeanReview>(body)
        .ok()?
        .request?
        .decoded()
}

/// Why a body of kind `T` does not decode, in the words of kube's full types (the lean
/// decoding skips what no decision reads, so it refuses no more than these do).
fn why_not<T>(body: &[u8]) -> String
where
    T: Resource + serde::de::DeserializeOwned,
{
    match decode::<T>(body) {
        Err(e) => e,
        Ok(_) => "cannot decode the AdmissionReview".to_string(),
    }
}

/// A webhook configuration that sends other kinds is a misconfiguration: admit (this
/// guard has nothing to say about them) and say so.
fn other_kind(kind: Option<&PeekKind>, body: &[u8], uid: String) -> Reviewed {
    match decode::<DynamicObject>(body) {
        Ok(req) => {
            let what = kind.map_or_else(|| "an unknown kind".to_string(), ToString::to_string);
            let mut response = AdmissionResponse::from(&req);
            response.warnings = Some(vec![format!(
                "netpol-guard does not review {what}: check the webhook configuration's rules"
            )]);
            finish(
                (&req).into(),
                response,
                Decision::Allowed,
                "other",
                Vec::new(),
            )
        }
        Err(e) => invalid(Some(uid), e, false),
    }
}

/// The request uid, if the body has one.
pub(super) fn peek_uid(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Peek>(body)
        .ok()
        .and_then(|p| p.request)
        .and_then(|r| r.uid)
}

pub(super) fn decode<K>(body: &[u8]) -> Result<AdmissionRequest<K>, String>
where
    K: Resource + serde::de::DeserializeOwned,
{
    let review: AdmissionReview<K> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "cannot decode the AdmissionReview: {}",
            json_error_at::<AdmissionReview<K>>(body, &e)
        )
    })?;
    review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())
}

/// The benchmark baseline: admits everything, decoding nothing but the uid. Same transport,
/// no rules, so load runs can show what the rules cost.
pub fn baseline(body: &[u8]) -> Reviewed {
    let Some(uid) = peek_uid(body) else {
        return invalid(None, "the body has no AdmissionReview request uid", true);
    };
    let response = admitting(&uid);
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
