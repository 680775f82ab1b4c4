//! The lean decoder, written by hand: an AdmissionReview request as the guard reads it,
//! decoded in one pass with the strings borrowed from the body where they have no escapes.
//! It halved what a review costs against decoding kube's full types (the request mix 336 →
//! 170 µs, docs/perf-history.md), so it stays, with the careful path behind it.
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
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::Operation;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::objects::{MetadataOnly, NamespaceObject, PolicyObject};
use crate::guard::{self, Request};

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

/// The request. The object is decoded as what `kind` says when `kind` comes first, as the
/// API server writes it (Go encodes struct fields in order); otherwise it is kept raw and
/// decoded once the kind is known. The stored object is read as metadata only.
#[derive(Debug)]
pub(super) struct LeanRequest<'a> {
    pub uid: Cow<'a, str>,
    pub kind: GroupKind<'a>,
    pub name: Cow<'a, str>,
    pub namespace: Option<Cow<'a, str>>,
    pub operation: Operation,
    pub user_info: User,
    object: Option<Object<'a>>,
    old_metadata: Option<ObjectMeta>,
    pub dry_run: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct GroupKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

impl GroupKind<'_> {
    fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }
}

/// The requester: what the companion and namespace guards compare.
#[derive(Debug, Default, Deserialize)]
pub(super) struct User {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// The object of a request, as far as it is decoded.
#[derive(Debug)]
pub(super) enum Object<'a> {
    Policy(PolicyObject),
    Namespace(NamespaceObject),
    Raw(&'a RawValue),
}

/// A string borrowed from the body unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// The request's fields the guard reads; the others are skipped.
enum Field {
    Uid,
    Kind,
    Resource,
    Name,
    Namespace,
    Operation,
    UserInfo,
    Object,
    OldObject,
    DryRun,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "uid" => Field::Uid,
                    "kind" => Field::Kind,
                    "resource" => Field::Resource,
                    "name" => Field::Name,
                    "namespace" => Field::Namespace,
                    "operation" => Field::Operation,
                    "userInfo" => Field::UserInfo,
                    "object" => Field::Object,
                    "oldObject" => Field::OldObject,
                    "dryRun" => Field::DryRun,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LeanRequest<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RequestVisitor(PhantomData))
    }
}

struct RequestVisitor<'a>(PhantomData<&'a ()>);

/// Sets a field once: a second occurrence is an error, as in serde's derived decoders.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}

impl<'de: 'a, 'a> Visitor<'de> for RequestVisitor<'a> {
    type Value = LeanRequest<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AdmissionReview request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut uid, mut kind, mut resource) = (None, None::<GroupKind<'a>>, None);
        let (mut name, mut namespace, mut operation) = (None, None, None);
        let (mut user, mut object, mut old, mut dry_run) = (None, None, None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => once(&mut uid, map.next_value::<Text>()?.0, "uid")?,
                Field::Kind => once(&mut kind, map.next_value()?, "kind")?,
                Field::Resource => {
                    once(&mut resource, map.next_value::<IgnoredAny>()?, "resource")?
                }
                Field::Name => once(&mut name, map.next_value::<Text>()?, "name")?,
                Field::Namespace => once(
                    &mut namespace,
                    map.next_value::<Option<Text>>()?,
                    "namespace",
                )?,
                Field::Operation => once(&mut operation, map.next_value()?, "operation")?,
                Field::UserInfo => once(&mut user, map.next_value()?, "userInfo")?,
                Field::Object => {
                    let value = match &kind {
                        Some(k) if k.is("networking.k8s.io", "NetworkPolicy") => map
                            .next_value::<Option<PolicyObject>>()?
                            .map(Object::Policy),
                        Some(k) if k.is("", "Namespace") => map
                            .next_value::<Option<NamespaceObject>>()?
                            .map(Object::Namespace),
                        _ => map.next_value::<Option<&RawValue>>()?.map(Object::Raw),
                    };
                    once(&mut object, value, "object")?;
                }
                Field::OldObject => {
                    let value = map.next_value::<Option<MetadataOnly>>()?;
                    once(&mut old, value.map(|o| o.metadata), "oldObject")?;
                }
                Field::DryRun => once(&mut dry_run, map.next_value()?, "dryRun")?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        // required as in the API (and kube's types): uid, kind, resource, operation, userInfo
        resource.ok_or_else(|| de::Error::missing_field("resource"))?;
        Ok(LeanRequest {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            name: name.map(|t| t.0).unwrap_or_default(),
            namespace: namespace.flatten().map(|t| t.0),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            user_info: user.ok_or_else(|| de::Error::missing_field("userInfo"))?,
            object: object.flatten(),
            old_metadata: old.flatten(),
            dry_run: dry_run.unwrap_or(false),
        })
    }
}

/// A request with its object decoded as `T`, the stored one as metadata only.
#[derive(Debug)]
pub(super) struct Decoded<'a, T> {
    pub request: LeanRequest<'a>,
    pub object: Option<T>,
    pub old_metadata: Option<ObjectMeta>,
}

/// An object type of a review.
pub(super) trait Reviewable: Sized + for<'de> Deserialize<'de> {
    /// The object if it was decoded as this type already.
    fn decoded(object: Object<'_>) -> Option<Self>;
}

impl Reviewable for PolicyObject {
    fn decoded(object: Object<'_>) -> Option<Self> {
        match object {
            Object::Policy(p) => Some(p),
            _ => None,
        }
    }
}

impl Reviewable for NamespaceObject {
    fn decoded(object: Object<'_>) -> Option<Self> {
        match object {
            Object::Namespace(n) => Some(n),
            _ => None,
        }
    }
}

impl<'a> LeanRequest<'a> {
    /// The request with its object as `T`, `None` when it does not decode as one.
    pub(super) fn decoded<T: Reviewable>(mut self) -> Option<Decoded<'a, T>> {
        let object = match self.object.take() {
            // `kind` came after the object: decoded now
            Some(Object::Raw(raw)) => Some(serde_json::from_str::<T>(raw.get()).ok()?),
            Some(object) => Some(T::decoded(object)?),
            None => None,
        };
        let old_metadata = self.old_metadata.take();
        Some(Decoded {
            request: self,
            object,
            old_metadata,
        })
    }
}

impl<T> Decoded<'_, T> {
    /// The request's namespace, empty for cluster-scoped objects.
    pub(super) fn namespace(&self) -> &str {
        self.request.namespace.as_deref().unwrap_or_default()
    }

    /// The guard's view of the request, with `object` as the written object.
    pub(super) fn facts<'b, U>(
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
            operation: operation(&r.operation),
            namespace: self.namespace(),
            name,
            user: r.user_info.username.as_deref().unwrap_or_default(),
            groups: r.user_info.groups.as_deref().unwrap_or_default(),
            object,
            old_metadata: self.old_metadata.as_ref(),
        }
    }
}

/// The guard's name for an admission operation.
pub(super) fn operation(op: &Operation) -> guard::Operation {
    match op {
        Operation::Create => guard::Operation::Create,
        Operation::Update => guard::Operation::Update,
        Operation::Delete => guard::Operation::Delete,
        Operation::Connect => guard::Operation::Connect,
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
        assert!(serde_json::from_str::<LeanReview>(&bad).is_err());
    }

    #[test]
    fn an_object_before_its_kind_is_decoded_once_the_kind_is_known() {
        let request = |spec: &str| {
            format!(
                r#"{{"object": {{"metadata": {{"name": "web"}}, "spec": {spec}}},
                    "uid": "u", "operation": "CREATE", "userInfo": {{}},
                    "kind": {{"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"}},
                    "resource": {{"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"}}}}"#
            )
        };
        let text = request(r#"{"podSelector": {}, "policyTypes": ["Egress"]}"#);
        let req: LeanRequest = serde_json::from_str(&text).expect("decodes");
        assert!(matches!(req.object, Some(Object::Raw(_))));
        let d = req.decoded::<PolicyObject>().expect("the object decodes");
        assert_eq!(
            d.object.and_then(|o| o.metadata.name).as_deref(),
            Some("web")
        );
        let bad = request(r#"{"podSelector": 5}"#);
        let req: LeanRequest = serde_json::from_str(&bad).expect("decodes");
        assert!(req.decoded::<PolicyObject>().is_none());
        // a field twice is refused, as by serde's derived decoders
        let twice = text.replace(r#""uid": "u","#, r#""uid": "u", "uid": "v","#);
        assert!(serde_json::from_str::<LeanRequest>(&twice).is_err());
    }
}
