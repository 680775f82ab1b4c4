//! Decoding: a body becomes the request the guard reads, decoded once. NetworkPolicy and
//! Namespace reviews are the common case and decode straight into the guard's view; a body
//! that does not (another version, broken JSON, another kind) goes the careful way, which
//! takes a first look (enough to echo the uid whatever else is wrong) and says precisely
//! what is wrong, decoding again only on that error path.

use kube::core::admission::{AdmissionRequest, AdmissionReview};
use kube::core::{DynamicObject, Resource};
use serde::Deserialize;

use super::encode::{self, invalid};
use super::lean::{Decoded, LeanReview};
use super::objects::{NamespaceObject, PolicyObject};
use super::{REVIEW_API_VERSION, Reviewed};
use crate::netpol::layers::LayerKind;

/// A decoded request, by what the guard does with it.
pub(super) enum Incoming<'a> {
    Policy(Decoded<'a, PolicyObject>),
    Namespace(Decoded<'a, NamespaceObject>),
    /// An object of a policy layer kind, at the version the guard reads.
    Layer(AdmissionRequest<DynamicObject>, LayerKind),
    /// A kind the guard does not review (a misconfigured webhook), and its name.
    Other(AdmissionRequest<DynamicObject>, String),
}

/// Why a body is not a review the guard can judge: what the answer says (400 invalid).
#[derive(Debug)]
pub(super) struct Refusal {
    pub uid: Option<String>,
    pub message: String,
    /// Not an AdmissionReview at all (HTTP 400), rather than an unusable one.
    pub bad_request: bool,
}

fn refuse(uid: Option<String>, message: impl Into<String>, bad_request: bool) -> Refusal {
    Refusal {
        uid,
        message: message.into(),
        bad_request,
    }
}

/// The request of an AdmissionReview body, or why it cannot be judged.
pub(super) fn incoming(body: &[u8]) -> Result<Incoming<'_>, Refusal> {
    if let Ok(review) = serde_json::from_slice::<LeanReview>(body)
        && review.api_version.as_deref() == Some(REVIEW_API_VERSION)
        && review.kind.as_deref() == Some("AdmissionReview")
        && let Some(request) = review.request
    {
        match (request.kind.group.as_ref(), request.kind.kind.as_ref()) {
            ("networking.k8s.io", "NetworkPolicy") => {
                if let Some(decoded) = request.decoded() {
                    return Ok(Incoming::Policy(decoded));
                }
            }
            ("", "Namespace") => {
                if let Some(decoded) = request.decoded() {
                    return Ok(Incoming::Namespace(decoded));
                }
            }
            _ => {}
        }
    }
    careful(body)
}

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

/// A body the common path could not decode: a first look at it, so every failure can still
/// echo the uid, and the precise reason. A NetworkPolicy or Namespace review reaching here
/// does not decode as the guard reads it; the reason comes from kube's full types.
fn careful(body: &[u8]) -> Result<Incoming<'_>, Refusal> {
    let peek: Peek = serde_json::from_slice(body).map_err(|e| {
        refuse(
            None,
            format!(
                "the body is not an AdmissionReview: {}",
                json_error_at::<Peek>(body, &e)
            ),
            true,
        )
    })?;
    let uid = peek.request.as_ref().and_then(|r| r.uid.clone());
    if peek.api_version.as_deref() != Some(REVIEW_API_VERSION)
        || peek.kind.as_deref() != Some("AdmissionReview")
    {
        return Err(refuse(
            uid,
            format!(
                "expected kind AdmissionReview in {REVIEW_API_VERSION}, got {} in {}",
                peek.kind.as_deref().unwrap_or("no kind"),
                peek.api_version.as_deref().unwrap_or("no apiVersion")
            ),
            false,
        ));
    }
    let Some(request) = &peek.request else {
        return Err(refuse(None, "the AdmissionReview has no request", true));
    };
    let Some(uid) = uid else {
        return Err(refuse(None, "the AdmissionReview request has no uid", true));
    };
    let kind = request.kind.as_ref();
    match kind.map(|k| (k.group.as_str(), k.kind.as_str())) {
        Some(("networking.k8s.io", "NetworkPolicy")) => {
            Err(refuse(Some(uid), why_not::<PolicyObject>(body), false))
        }
        Some(("", "Namespace")) => Err(refuse(Some(uid), why_not::<NamespaceObject>(body), false)),
        _ => match decode::<DynamicObject>(body) {
            Ok(req) => {
                let layer = kind
                    .and_then(|k| LayerKind::of(&format!("{}/{}", k.group, k.version), &k.kind));
                if let Some(layer) = layer {
                    return Ok(Incoming::Layer(req, layer));
                }
                let what = kind.map_or_else(|| "an unknown kind".to_string(), ToString::to_string);
                Ok(Incoming::Other(req, what))
            }
            Err(e) => Err(refuse(Some(uid), e, false)),
        },
    }
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
    match peek_uid(body) {
        Some(uid) => encode::admitted(&uid),
        None => invalid(None, "the body has no AdmissionReview request uid", true),
    }
}

/// A review that could not be finished (timeout, internal failure): not allowed, with the
/// request's uid when the body has one.
pub fn failed(body: &[u8], message: &str) -> Reviewed {
    encode::failed(peek_uid(body), message)
}
