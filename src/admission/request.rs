//! An AdmissionReview request as the guard reads it, decoded in one pass with the strings
//! borrowed from the body where they have no escapes.
//!
//! What a decision reads: the uid, the kind (to route), the operation, name and namespace,
//! the requester (username and groups, for the companion and namespace guards), `dryRun`,
//! the object, and the stored object's **metadata** (an UPDATE or DELETE of a companion
//! policy, and the namespace guard, look at the old labels and annotations; no rule reads
//! the old spec). Not decoded at all, only skipped over: `options`, `requestKind`,
//! `requestResource`, the sub-resources, `userInfo.uid` and `userInfo.extra`, the old
//! object's spec and status, and every object's `managedFields`.
//!
//! A body this cannot decode goes the careful way ([`super::decode`]), which decodes it with
//! kube's full types to say precisely what is wrong.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::Operation;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::objects::{MetadataOnly, NamespaceObject, PolicyObject};
use crate::guard::Request;

/// The envelope.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LeanReview<'a> {
    #[serde(borrow)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub request: Option<LeanRequest<'a>>,
}

/// The request, its objects still undecoded (their type depends on `kind`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LeanRequest<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: GroupKind<'a>,
    /// Required as in the API (and in kube's types), though not read.
    #[allow(dead_code)]
    resource: serde::de::IgnoredAny,
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    pub operation: Operation,
    pub user_info: User,
    #[serde(default, borrow)]
    object: Option<&'a RawValue>,
    #[serde(default, borrow)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct GroupKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// The requester: what the companion and namespace guards compare.
#[derive(Debug, Default, Deserialize)]
pub(super) struct User {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// A request with its objects decoded as `T`, the stored one as metadata only.
#[derive(Debug)]
pub(super) struct Decoded<'a, T> {
    pub request: LeanRequest<'a>,
    pub object: Option<T>,
    pub old_metadata: Option<ObjectMeta>,
}

/// An object type of a review.
pub(super) trait Reviewable: Sized + for<'de> Deserialize<'de> {}
impl Reviewable for PolicyObject {}
impl Reviewable for NamespaceObject {}

impl<'a> LeanRequest<'a> {
    /// Decodes the objects, `None` when either does not decode as its kind.
    pub fn decoded<T: Reviewable>(self) -> Option<Decoded<'a, T>> {
        let object = match self.object {
            // `null` is `None` already
            Some(raw) => Some(serde_json::from_str::<T>(raw.get()).ok()?),
            None => None,
        };
        let old_metadata = match self.old_object {
            Some(raw) => Some(
                serde_json::from_str::<MetadataOnly>(raw.get())
                    .ok()?
                    .metadata,
            ),
            None => None,
        };
        Some(Decoded {
            request: self,
            object,
            old_metadata,
        })
    }
}

impl<T> Decoded<'_, T> {
    /// The request's namespace, empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        self.request.namespace.as_deref().unwrap_or_default()
    }

    /// The guard's view of the request, with `object` as the written object.
    pub fn facts<'b, U>(
        &'b self,
        object: Option<&'b U>,
        object_name: Option<&'b str>,
    ) -> Request<'b, U> {
        let r = &self.request;
        let name = Some(r.name.as_ref())
            .filter(|n| !n.is_empty())
            .or(object_name)
            .unwrap_or_default();
        Request {
            operation: super::encode::operation(&r.operation),
            namespace: self.namespace(),
            name,
            user: r.user_info.username.as_deref().unwrap_or_default(),
            groups: r.user_info.groups.as_deref().unwrap_or_default(),
            object,
            old_metadata: self.old_metadata.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(old_spec: &str, options: &str) -> String {
        format!(
            r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{
              "uid": "u\"1", "kind": {{"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"}},
              "resource": {{"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"}},
              "requestKind": {{"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"}},
              "name": "web", "namespace": "shop", "operation": "UPDATE",
              "userInfo": {{"username": "alice", "groups": ["dev"], "uid": "x", "extra": {{"a": ["b"]}}}},
              "object": {{"metadata": {{"name": "web", "labels": {{"a": "b"}}, "managedFields": [{{"manager": "m"}}]}},
                          "spec": {{"podSelector": {{}}, "policyTypes": ["Egress"]}}}},
              "oldObject": {{"metadata": {{"name": "web", "annotations": {{"x": "y"}}}}, "spec": {old_spec}}},
              "dryRun": true, "options": {options}}}}}"#
        )
    }

    #[test]
    fn reads_what_decisions_use_and_only_skips_the_rest() {
        let text = body(r#"{"podSelector": {}}"#, r#"{"kind": "UpdateOptions"}"#);
        let review: LeanReview = serde_json::from_str(&text).expect("decodes");
        let d = review
            .request
            .expect("request")
            .decoded::<PolicyObject>()
            .expect("objects decode");
        assert_eq!(d.request.uid, "u\"1");
        assert!(matches!(d.request.uid, Cow::Owned(_)), "escaped: copied");
        assert!(
            matches!(d.request.name, Cow::Borrowed("web")),
            "plain: borrowed"
        );
        assert_eq!(d.namespace(), "shop");
        assert!(d.request.dry_run);
        let facts = d.facts::<()>(None, None);
        assert_eq!(
            (facts.user, facts.groups),
            ("alice", &["dev".to_string()][..])
        );
        let object = d.object.as_ref().expect("object");
        assert_eq!(object.metadata.labels.as_ref().map(|l| l.len()), Some(1));
        assert!(object.spec.is_some());
        let old = d.old_metadata.as_ref().expect("old metadata");
        assert_eq!(old.annotations.as_ref().map(|a| a["x"].as_str()), Some("y"));
    }

    #[test]
    fn what_no_decision_reads_is_not_decoded() {
        // an old spec and options no rule reads: not decoded, so not refused
        let text = body(r#"{"podSelector": 5}"#, "[1, 2]");
        let review: LeanReview = serde_json::from_str(&text).expect("decodes");
        assert!(
            review
                .request
                .expect("request")
                .decoded::<PolicyObject>()
                .is_some()
        );
        // the object under review is decoded in full: a bad spec fails
        let bad = text.replace(
            r#""spec": {"podSelector": {}"#,
            r#""spec": {"podSelector": 5"#,
        );
        let review: LeanReview = serde_json::from_str(&bad).expect("decodes");
        assert!(
            review
                .request
                .expect("request")
                .decoded::<PolicyObject>()
                .is_none()
        );
    }
}
