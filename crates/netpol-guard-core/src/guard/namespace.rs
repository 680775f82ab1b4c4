//! Namespace decisions: only administrators may opt a namespace out of the companions
//! (`namespace-exempt-label-protected`), and the mutating webhook stamps each namespace
//! with what the guard does there (`namespace-stamp`).

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::companions::{EXEMPT_LABEL, exemption};
use super::{Operation, Request, Snapshot, Verdict};
use crate::rules::{EXEMPT_LABEL_PROTECTED, Finding, Level, NAMESPACE_STAMP, Severity};

/// The namespace label that shows what the guard does in a namespace.
pub const COMPANIONS_LABEL: &str = "netpol-guard.io/companions";

const KIND: &str = "Namespace";

fn label(meta: Option<&ObjectMeta>, key: &str) -> Option<String> {
    meta.and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get(key))
        .cloned()
}

/// The namespace being written, unless the request deletes it.
fn written<'a>(req: &Request<'a, ObjectMeta>) -> Option<&'a ObjectMeta> {
    req.object.filter(|_| req.operation != Operation::Delete)
}

/// The labels that decide whether a namespace is exempt: the opt-out label, and every key
/// `companions.namespaceSelector` reads (removing such a label opts a namespace out just
/// as well).
fn deciding_labels(snapshot: &Snapshot) -> Vec<&str> {
    let mut keys = vec![EXEMPT_LABEL];
    if let Some(selector) = &snapshot.config.companions.namespace_selector {
        keys.extend(crate::netpol::selector::keys(selector).map(|(k, _)| k));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Refuses a change of a label that decides exemption by anyone but an administrator.
pub fn validate(snapshot: &Snapshot, req: &Request<'_, ObjectMeta>) -> Verdict {
    let Some(ns) = written(req) else {
        return Verdict::allow();
    };
    if snapshot.is_admin(req) {
        return Verdict::allow();
    }
    let findings: Vec<Finding> = deciding_labels(snapshot)
        .into_iter()
        .filter_map(|key| {
            let before = label(req.old_metadata, key);
            let after = label(Some(ns), key);
            (before != after).then(|| changed_label(snapshot, key, before, after))
        })
        .collect();
    if findings.is_empty() {
        return Verdict::allow();
    }
    Verdict::from_findings(KIND, req.name, (findings, Vec::new()), "")
}

fn changed_label(
    snapshot: &Snapshot,
    key: &str,
    before: Option<String>,
    after: Option<String>,
) -> Finding {
    let why = if key == EXEMPT_LABEL {
        String::new()
    } else {
        " (companions.namespaceSelector reads it, so it decides whether the namespace gets \
         companions)"
            .to_string()
    };
    Finding {
        rule: EXEMPT_LABEL_PROTECTED.id,
        severity: Severity::Deny,
        condition: None,
        path: format!("metadata.labels.{key}"),
        message: format!(
            "only members of {} or the guard's service account may set, change or remove \
             the label {key}{why} ({} -> {})",
            snapshot.config.admin_groups.join(", "),
            before.as_deref().unwrap_or("unset"),
            after.as_deref().unwrap_or("unset"),
        ),
        fix: format!("leave {key} as it was, or ask a cluster administrator to change it"),
    }
}

/// Stamps the namespace `netpol-guard.io/companions: enabled|exempt`, unless it already
/// says so or the stamp is switched off.
pub fn mutate(snapshot: &Snapshot, req: &Request<'_, ObjectMeta>) -> Verdict {
    let Some(ns) = written(req) else {
        return Verdict::allow();
    };
    if snapshot.config.level(&NAMESPACE_STAMP) == Level::Off {
        return Verdict::allow();
    }
    let name = ns.name.as_deref().unwrap_or(req.name);
    let exempt = exemption(
        &snapshot.config,
        &snapshot.identity.namespace,
        name,
        ns.labels.as_ref(),
    )
    .is_some();
    let stamp = if exempt { "exempt" } else { "enabled" };
    if label(Some(ns), COMPANIONS_LABEL).as_deref() == Some(stamp) {
        return Verdict::allow();
    }
    Verdict::Patch {
        patch: label_patch(ns.labels.is_some(), COMPANIONS_LABEL, stamp),
        notice: None,
    }
}

/// Sets one label, creating `metadata.labels` when the object has none.
fn label_patch(has_labels: bool, key: &str, value: &str) -> Patch {
    let op = if has_labels {
        // `add` on an existing member replaces it
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels", key]),
            value: Value::String(value.to_string()),
        })
    } else {
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels"]),
            value: serde_json::json!({ key: value }),
        })
    };
    Patch(vec![op])
}
