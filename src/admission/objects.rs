//! The objects of an AdmissionReview as the guard reads them: the metadata fields the rules
//! use (name, namespace, labels, annotations) and the NetworkPolicy spec in full. Everything
//! else, above all `managedFields` (a JSON tree per field manager), is skipped while
//! parsing instead of being built and dropped: decoding it was the largest single cost of a
//! review. The types plug into kube's `AdmissionReview<T>` like the k8s-openapi ones.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// The metadata fields the guard reads; unknown fields are skipped without allocation.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

fn lean_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = Option::<LeanMeta>::deserialize(d)?.unwrap_or_default();
    Ok(ObjectMeta {
        name: m.name,
        generate_name: m.generate_name,
        namespace: m.namespace,
        labels: m.labels,
        annotations: m.annotations,
        ..ObjectMeta::default()
    })
}

/// A NetworkPolicy under review.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PolicyObject {
    #[serde(default, deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<NetworkPolicySpec>,
}

impl From<PolicyObject> for NetworkPolicy {
    fn from(p: PolicyObject) -> Self {
        NetworkPolicy {
            metadata: p.metadata,
            spec: p.spec,
        }
    }
}

/// The metadata of an object and nothing else: what the guard reads of a stored object.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct MetadataOnly {
    #[serde(default, deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
}

/// A Namespace under review (its metadata is all the guard reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct NamespaceObject {
    #[serde(default, deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
}

impl k8s_openapi::Resource for PolicyObject {
    const API_VERSION: &'static str = <NetworkPolicy as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <NetworkPolicy as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <NetworkPolicy as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <NetworkPolicy as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str =
        <NetworkPolicy as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for PolicyObject {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

type Ns = k8s_openapi::api::core::v1::Namespace;

impl k8s_openapi::Resource for NamespaceObject {
    const API_VERSION: &'static str = <Ns as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Ns as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Ns as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Ns as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Ns as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::Metadata for NamespaceObject {
    type Ty = ObjectMeta;
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_rules_use_and_skips_the_rest() {
        let json = r#"{
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "shop", "uid": "x", "resourceVersion": "1",
                         "labels": {"a": "b"}, "annotations": {"netpol-guard.io/dns": "skip"},
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:egress": {}}}}]},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"]}
        }"#;
        let p: NetworkPolicy = serde_json::from_str::<PolicyObject>(json)
            .expect("decodes")
            .into();
        let full: NetworkPolicy = serde_json::from_str(json).expect("full decode");
        assert_eq!(p.spec, full.spec);
        assert_eq!(p.metadata.name, full.metadata.name);
        assert_eq!(p.metadata.namespace, full.metadata.namespace);
        assert_eq!(p.metadata.labels, full.metadata.labels);
        assert_eq!(p.metadata.annotations, full.metadata.annotations);
        assert!(p.metadata.managed_fields.is_none());
        // absent and null metadata and spec stay absent, as in the full types
        let bare: PolicyObject = serde_json::from_str(r#"{"metadata": null}"#).expect("decodes");
        assert!(bare.metadata.annotations.is_none() && bare.spec.is_none());
    }
}
