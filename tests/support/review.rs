//! AdmissionReview v1 bodies as the API server sends them.

use serde_json::{Value, json};

/// The uid of a review unless a test gives another.
pub const UID: &str = "3e5b1c1a-8f0e-4c7e-9d55-0d6c2b7f1a10";

/// An AdmissionReview request; the fields are public so tests can say what differs.
#[derive(Debug, Clone)]
pub struct Review {
    pub uid: String,
    pub kind: &'static str,
    pub operation: &'static str,
    /// The object written (`null` on DELETE).
    pub object: Value,
    /// The stored object (UPDATE, DELETE).
    pub old: Value,
    pub user: &'static str,
    pub groups: Vec<&'static str>,
    pub dry_run: bool,
    pub sub_resource: Option<&'static str>,
    /// Send `options` (CreateOptions/UpdateOptions) as a real API server does.
    pub options: bool,
}

impl Review {
    /// A NetworkPolicy review by an ordinary user.
    pub fn policy(operation: &'static str, object: Value) -> Self {
        Self {
            uid: UID.to_string(),
            kind: "NetworkPolicy",
            operation,
            object,
            old: Value::Null,
            user: "alice",
            groups: vec!["system:authenticated"],
            dry_run: false,
            sub_resource: None,
            options: false,
        }
    }

    /// A Namespace review by an ordinary user.
    pub fn namespace(operation: &'static str, object: Value) -> Self {
        Self {
            kind: "Namespace",
            ..Self::policy(operation, object)
        }
    }

    /// The review of `object` as a GitOps controller's service account sends it, with the
    /// fields a real API server adds (requestKind, options): the load benchmark's shape.
    pub fn from_controller(kind: &'static str, operation: &'static str, object: Value) -> Self {
        Self {
            kind,
            user: "system:serviceaccount:argocd:argocd-application-controller",
            groups: vec![
                "system:serviceaccounts",
                "system:serviceaccounts:argocd",
                "system:authenticated",
            ],
            options: true,
            ..Self::policy(operation, object)
        }
    }

    /// The AdmissionReview as JSON; the request's name and namespace are the object's.
    pub fn json(&self) -> Value {
        let subject_kind = self.object["apiVersion"]
            .as_str()
            .or(self.old["apiVersion"].as_str());
        let (group, version, resource) = match (self.kind, subject_kind) {
            ("NetworkPolicy", _) => ("networking.k8s.io", "v1", "networkpolicies".to_string()),
            ("Namespace", _) => ("", "v1", "namespaces".to_string()),
            // a custom resource: group and version from its apiVersion, the plural from its kind
            (kind, Some(api_version)) if api_version.contains('/') => {
                let (group, version) = api_version.split_once('/').unwrap_or_default();
                let lower = kind.to_lowercase();
                let plural = match lower.strip_suffix('y') {
                    Some(stem) => format!("{stem}ies"),
                    None => format!("{lower}s"),
                };
                (group, version, plural)
            }
            _ => ("", "v1", "pods".to_string()),
        };
        let subject = if self.object.is_null() {
            &self.old
        } else {
            &self.object
        };
        let mut request = json!({
            "uid": self.uid,
            "kind": {"group": group, "version": version, "kind": self.kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": self.kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "subResource": self.sub_resource,
            "name": subject["metadata"]["name"],
            "namespace": subject["metadata"]["namespace"],
            "operation": self.operation,
            "userInfo": {"username": self.user, "groups": self.groups},
            "object": self.object,
            "oldObject": self.old,
            "dryRun": self.dry_run,
        });
        if self.options {
            let options = if self.operation == "UPDATE" {
                "UpdateOptions"
            } else {
                "CreateOptions"
            };
            request["options"] = json!({"apiVersion": "meta.k8s.io/v1", "kind": options,
                                        "fieldManager": "argocd-controller"});
            request["userInfo"]["uid"] = json!("5b5c4d2e-1c53-4a4e-9c1e-7d0f3e0b8a11");
        }
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        })
    }

    /// The body bytes.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json()).unwrap()
    }
}
