//! The AdmissionReview codec: an `admission.k8s.io/v1` body in, the guard's decision
//! ([`crate::guard`]) in the middle, an AdmissionResponse out. This module decodes and
//! encodes; it decides nothing, and it knows no HTTP (the server hands it the body).

mod decode;
mod encode;
mod objects;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, Operation};
use objects::{NamespaceObject, PolicyObject};

use crate::guard::{self, Snapshot};
use crate::rules::Finding;
pub use decode::{baseline, failed};
use decode::{careful_review, decode, facts};
use encode::encode;
pub use encode::to_json;

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

/// The objects an operation must carry, as the API server always sends them: CREATE and
/// UPDATE the object, UPDATE and DELETE the stored one. A review without them cannot be
/// judged (a DELETE without `oldObject` could be a companion's), so it is refused as invalid
/// rather than admitted.
fn incomplete<K: kube::core::Resource>(req: &AdmissionRequest<K>) -> Option<Reviewed> {
    let needs_object = matches!(req.operation, Operation::Create | Operation::Update);
    let needs_old = matches!(req.operation, Operation::Update | Operation::Delete);
    let missing = if needs_object && req.object.is_none() {
        "object"
    } else if needs_old && req.old_object.is_none() {
        "oldObject"
    } else {
        return None;
    };
    Some(encode::invalid(
        Some(req.uid.clone()),
        format!(
            "the AdmissionReview request for {} has no {missing}",
            encode::operation(&req.operation).as_str()
        ),
        false,
    ))
}

fn network_policy(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    mut req: AdmissionRequest<PolicyObject>,
) -> Reviewed {
    if let Some(refused) = incomplete(&req) {
        return refused;
    }
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
    if let Some(refused) = incomplete(req) {
        return refused;
    }
    let object = req.object.as_ref().map(|o| &o.metadata);
    let old = req.old_object.as_ref().map(|o| &o.metadata);
    let facts = facts(req, object, old, object.and_then(|o| o.name.as_deref()));
    let verdict = match endpoint {
        Endpoint::Validate => guard::namespace::validate(snapshot, &facts),
        Endpoint::Mutate => guard::namespace::mutate(snapshot, &facts),
    };
    encode(req, "Namespace", verdict)
}
