//! The fixture corpus (`policies/`) as the API server would hold its objects; shared by the
//! end-to-end harness and the recorded answers.

use std::path::Path;

use netpol_guard::offline::manifest::{self, Object};
use serde_json::{Value, json};

/// Every NetworkPolicy and Namespace object of the fixture corpus, as the API server would
/// hold them: (kind, namespace, object).
pub(crate) fn fixture_objects() -> Vec<(&'static str, String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (manifests, problems) = netpol_guard::offline::check::load(&[root.display().to_string()]);
    assert!(problems.is_empty(), "{problems:?}");
    let mut out = Vec::new();
    // the layer fixtures' policies mean what they do beside their layer objects, which
    // tests/admission.rs and the fixture index judge together
    let layers = root.join("layers").display().to_string();
    let docs = manifests
        .iter()
        .filter(|m| !m.file.starts_with(&layers))
        .flat_map(|m| &m.docs);
    for doc in docs.filter_map(|d| d.parsed.as_ref().ok().cloned().flatten()) {
        let items = manifest::list_items(&doc)
            .cloned()
            .unwrap_or_else(|| vec![doc.clone()]);
        for mut item in items {
            let kind = match manifest::decode(&item).map(|d| d.object) {
                Ok(Object::NetworkPolicy(_)) => "NetworkPolicy",
                Ok(Object::Namespace(_)) => "Namespace",
                _ => continue,
            };
            // the API server fills in the request's namespace
            let namespace = item["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            if kind == "NetworkPolicy" {
                item["metadata"]["namespace"] = json!(namespace);
            }
            out.push((kind, namespace, item));
        }
    }
    out
}
