//! Kustomize patch files in a repository: a strategic-merge or JSON 6902 patch of a
//! NetworkPolicy is a fragment (no `podSelector`, or a list of operations), not an object
//! the API server would store, so `check` must not judge it as one. A file is a patch when a
//! kustomization names it in `patches`, `patchesStrategicMerge` or `patchesJson6902`. The
//! kustomizations looked at are those in the directories of the files read and above them,
//! and every kustomization among the files read (an overlay that patches from a sibling
//! directory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// The names kustomize reads a kustomization from.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// How far above a file its kustomization is looked for.
const MAX_ANCESTORS: usize = 16;

/// The kustomization patch files among `files`: each (as given) with the kustomization that
/// names it.
pub(crate) fn patches(files: &[PathBuf]) -> BTreeMap<PathBuf, PathBuf> {
    let mut kustomizations: BTreeSet<PathBuf> = BTreeSet::new();
    // each directory is looked at once, however many files it and those below it hold
    let mut seen: BTreeSet<&Path> = BTreeSet::new();
    for file in files {
        if is_kustomization(file) {
            kustomizations.insert(normal(file));
        }
        for dir in file.ancestors().skip(1).take(MAX_ANCESTORS) {
            if !seen.insert(dir) {
                break;
            }
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            for name in KUSTOMIZATION_FILES {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    kustomizations.insert(normal(&candidate));
                }
            }
            if dir.join(".git").exists() {
                break;
            }
        }
    }
    let mut named: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for kustomization in &kustomizations {
        let base = kustomization.parent().unwrap_or(Path::new("."));
        for patch in patch_paths(kustomization) {
            named
                .entry(identity(&base.join(patch)))
                .or_insert_with(|| kustomization.clone());
        }
    }
    files
        .iter()
        .filter_map(|f| named.get(&identity(f)).map(|k| (f.clone(), k.clone())))
        .collect()
}

/// Whether a file is a kustomization by its name.
pub(crate) fn is_kustomization(file: &Path) -> bool {
    file.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| KUSTOMIZATION_FILES.contains(&n))
}

/// The patch files a kustomization names (relative to its directory). Inline patches (a
/// `patch:` text, or a `patchesStrategicMerge` entry that is YAML itself) name no file.
fn patch_paths(kustomization: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(kustomization) else {
        return Vec::new();
    };
    let Ok(doc) = serde_yaml_ng::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let entries = |key: &str| {
        doc.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for entry in entries("patchesStrategicMerge") {
        if let Some(path) = entry.as_str().filter(|p| !p.contains('\n')) {
            out.push(path.trim().to_string());
        }
    }
    for key in ["patches", "patchesJson6902"] {
        for entry in entries(key) {
            if let Some(path) = entry.get("path").and_then(Value::as_str) {
                out.push(path.to_string());
            }
        }
    }
    out
}

/// A path without `.` components and with `..` folded where it can be, so that the same
/// file written two ways compares equal.
pub(crate) fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// What identifies a file whichever way it was named: its canonical path, or (for one
/// that cannot be resolved) its normal form.
pub(crate) fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| normal(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).unwrap_or(());
        std::fs::write(&path, text).unwrap_or(());
        path
    }

    #[test]
    fn patches_are_the_files_a_kustomization_names() {
        let dir =
            std::env::temp_dir().join(format!("netpol-guard-kustomize-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let overlay_patch = write(&dir, "overlays/prod/np-patch.yaml", "kind: NetworkPolicy\n");
        let smp = write(&dir, "overlays/prod/smp.yaml", "- op: add\n");
        let sibling = write(&dir, "patches/shared.yaml", "kind: NetworkPolicy\n");
        let json6902 = write(&dir, "overlays/prod/ops.yaml", "- op: remove\n");
        let resource = write(&dir, "base/netpol.yaml", "kind: NetworkPolicy\n");
        write(
            &dir,
            "base/kustomization.yaml",
            "resources: [netpol.yaml]\n",
        );
        let kustomization = write(
            &dir,
            "overlays/prod/kustomization.yaml",
            "resources: [../../base]\npatches:\n  - path: np-patch.yaml\n  - path: ../../patches/shared.yaml\n  - patch: |-\n      - op: add\npatchesStrategicMerge:\n  - smp.yaml\n  - |-\n    kind: NetworkPolicy\npatchesJson6902:\n  - target: {kind: NetworkPolicy, name: web}\n    path: ./ops.yaml\n",
        );
        // the overlay's patches, found from the patch's own directory
        let found = patches(&[
            overlay_patch.clone(),
            smp.clone(),
            json6902.clone(),
            resource.clone(),
        ]);
        assert_eq!(
            found.keys().cloned().collect::<Vec<_>>(),
            vec![overlay_patch.clone(), json6902.clone(), smp.clone()]
        );
        assert!(found.values().all(|k| normal(k) == normal(&kustomization)));
        // a patch in a sibling directory is found through the kustomization among the files
        assert!(patches(std::slice::from_ref(&sibling)).is_empty());
        let found = patches(&[sibling.clone(), kustomization]);
        assert!(found.contains_key(&sibling), "{found:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn normal_forms() {
        assert_eq!(normal(Path::new("./a/./b.yaml")), PathBuf::from("a/b.yaml"));
        assert_eq!(normal(Path::new("a/../b.yaml")), PathBuf::from("b.yaml"));
        assert_eq!(normal(Path::new("../b.yaml")), PathBuf::from("../b.yaml"));
        assert_eq!(normal(Path::new("./")), PathBuf::from("."));
    }
}
