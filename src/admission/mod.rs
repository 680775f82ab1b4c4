//! The AdmissionReview codec: an `admission.k8s.io/v1` body in, the guard's decision
//! ([`crate::guard`]) in the middle, an AdmissionResponse out. This module decodes and
//! encodes; it decides nothing, and it knows no HTTP (the server hands it the body).

mod decode;
mod encode;
mod lean;
mod objects;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use kube::core::admission::Operation;
use lean::Decoded;
use objects::{NamespaceObject, PolicyObject};

use crate::guard::{self, Snapshot};
pub use crate::guard::{Decision, Endpoint};
use crate::netpol::layers::{self, LayerKind};
use crate::rules::Finding;
use decode::Incoming;
pub use decode::{baseline, failed};
use encode::{Origin, encode};
pub use encode::{Response, Status};

/// The API version this webhook speaks.
const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// A finished review.
#[derive(Debug)]
pub struct Reviewed {
    /// The AdmissionReview to send back, encoded.
    pub body: Vec<u8>,
    /// What `body` says.
    pub response: Response,
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

/// Reviews one AdmissionReview body: decoded once, dispatched on its kind here and nowhere
/// else, decided by the guard, and encoded from the verdict.
pub fn review(snapshot: &Snapshot, endpoint: Endpoint, body: &[u8]) -> Reviewed {
    match decode::incoming(body) {
        Ok(Incoming::Policy(req)) => network_policy(snapshot, endpoint, req),
        Ok(Incoming::Namespace(req)) => namespace(snapshot, endpoint, &req),
        Ok(Incoming::Layer(req, kind)) => layer(snapshot, endpoint, &req, kind),
        Ok(Incoming::Other(req, what)) => encode::unreviewed((&req).into(), &what),
        Err(refusal) => encode::invalid(refusal.uid, refusal.message, refusal.bad_request),
    }
}

/// The objects an operation must carry, as the API server always sends them: CREATE and
/// UPDATE the object, UPDATE and DELETE the stored one. A review without them cannot be
/// judged (a DELETE without `oldObject` could be a companion's), so it is refused as invalid
/// rather than admitted.
fn incomplete<T>(req: &Decoded<'_, T>) -> Option<Reviewed> {
    let operation = &req.request.operation;
    let needs_object = matches!(operation, Operation::Create | Operation::Update);
    let needs_old = matches!(operation, Operation::Update | Operation::Delete);
    let missing = if needs_object && req.object.is_none() {
        "object"
    } else if needs_old && req.old_metadata.is_none() {
        "oldObject"
    } else {
        return None;
    };
    Some(encode::invalid(
        Some(req.request.uid.to_string()),
        format!(
            "the AdmissionReview request for {} has no {missing}",
            lean::operation(operation).as_str()
        ),
        false,
    ))
}

fn network_policy(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    mut req: Decoded<'_, PolicyObject>,
) -> Reviewed {
    if let Some(refused) = incomplete(&req) {
        return refused;
    }
    let object = req.object.take().map(NetworkPolicy::from);
    let object_name = object.as_ref().and_then(|o| o.metadata.name.as_deref());
    let facts = req.facts(object.as_ref(), object_name);
    let verdict = match endpoint {
        Endpoint::Validate => guard::policy::validate(snapshot, &facts),
        Endpoint::Mutate => guard::policy::mutate(snapshot, &facts),
    };
    encode(Origin::of(&req), "NetworkPolicy", verdict)
}

fn namespace(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    req: &Decoded<'_, NamespaceObject>,
) -> Reviewed {
    if let Some(refused) = incomplete(req) {
        return refused;
    }
    let object = req.object.as_ref().map(|o| &o.metadata);
    let facts = req.facts(object, object.and_then(|o| o.name.as_deref()));
    let verdict = match endpoint {
        Endpoint::Validate => guard::namespace::validate(snapshot, &facts),
        Endpoint::Mutate => guard::namespace::mutate(snapshot, &facts),
    };
    encode(Origin::of(req), "Namespace", verdict)
}

/// A write of a policy layer object: judged on `/validate` among the snapshot's layers,
/// never mutated. An object the guard cannot read (a shape the CRD let through) is admitted
/// with a warning saying so: its verdicts cannot know it, and refusing would be a guess.
fn layer(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    req: &AdmissionRequest<DynamicObject>,
    kind: LayerKind,
) -> Reviewed {
    let origin: Origin<'_> = req.into();
    if !snapshot.config.layers.reads(kind) {
        let what = format!("{} (its family is off in `layers`)", kind.as_str());
        return encode::unreviewed(origin, &what);
    }
    let operation = lean::operation(&req.operation);
    if matches!(
        operation,
        guard::Operation::Create | guard::Operation::Update
    ) && req.object.is_none()
    {
        return encode::invalid(
            Some(req.uid.clone()),
            format!(
                "the AdmissionReview request for {} has no object",
                operation.as_str()
            ),
            false,
        );
    }
    if endpoint == Endpoint::Mutate || operation == guard::Operation::Delete {
        return encode(origin, kind.as_str(), guard::Verdict::allow());
    }
    let decoded = req.object.as_ref().map(|o| {
        serde_json::to_value(o)
            .map_err(|e| e.to_string())
            .and_then(|v| layers::decode::layer(&v).map_err(|e| e.to_string()))
    });
    let object = match decoded {
        Some(Ok(object)) => object,
        Some(Err(reason)) => return encode::unreadable(origin, kind.as_str(), &reason),
        None => return encode(origin, kind.as_str(), guard::Verdict::allow()),
    };
    let groups: &[String] = req.user_info.groups.as_deref().unwrap_or_default();
    let facts = guard::Request {
        operation,
        namespace: origin.namespace,
        name: &req.name,
        user: req.user_info.username.as_deref().unwrap_or_default(),
        groups,
        object: Some(&object),
        old_metadata: None,
    };
    let verdict = guard::layers::validate(snapshot, &facts);
    encode(origin, kind.as_str(), verdict)
}
