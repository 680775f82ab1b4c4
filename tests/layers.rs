//! The direction of the house. Cargo keeps the pure core (`crates/netpol-guard-core`) free of
//! the edges; this test keeps what Cargo cannot: inside the core every layer imports only the
//! layers below it, the edges of `src/` do not import each other where they must not, and no
//! two modules import each other through any path.
//!
//! Read from the source text (`crate::module` paths, grouped ones `crate::{a, b::c}` too,
//! outside `#[cfg(test)]` modules), so a new upward import fails here before it settles in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pure core, bottom up (the modules of `crates/netpol-guard-core/src`).
const CORE: &[&str] = &["netpol", "rules", "guard", "config", "audit"];

/// Edges that must not reach other edges: (module, modules it must not import).
const SEPARATE: &[(&str, &[&str])] = &[
    (
        "admission",
        &["server", "serve", "kubernetes", "check", "cli"],
    ),
    (
        "state",
        &["server", "serve", "kubernetes", "admission", "check", "cli"],
    ),
    (
        "metrics",
        &["server", "serve", "kubernetes", "admission", "state"],
    ),
    (
        "kubernetes",
        &["server", "serve", "admission", "check", "cli"],
    ),
    ("check", &["server", "serve", "kubernetes", "admission"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its test modules and comments (docs may link anywhere).
fn production_code(text: &str) -> String {
    let end = text
        .find("#[cfg(test)]\nmod tests")
        .or_else(|| text.find("#[cfg(test)]\npub(crate) mod tests"))
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a `crate::` path names: `crate::a::b` names `a`,
/// `crate::{a, b::{c, d}}` names `a` and `b`.
fn named_after_crate(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = rest.strip_prefix('{') else {
        return vec![ident(rest)];
    };
    // the items of the group, split on commas at its own depth
    let (mut depth, mut items, mut start) = (0usize, Vec::new(), 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
        .into_iter()
        .map(ident)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Top-level module of each file under `src`, and the top-level modules its code names.
fn imports_in(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = production_code(&text);
        let code = code.as_str();
        let entry = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            for name in named_after_crate(&code[i + "crate::".len()..]) {
                if !name.is_empty() && name != module {
                    entry.insert(name);
                }
            }
        }
    }
    graph
}

/// The edges: the binary crate's `src/`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    imports_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The core crate's modules.
fn core_imports() -> BTreeMap<String, BTreeSet<String>> {
    imports_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/netpol-guard-core/src"))
}

#[test]
fn grouped_imports_are_read() {
    assert_eq!(named_after_crate("netpol::x;"), ["netpol"]);
    assert_eq!(
        named_after_crate("{check, netpol::{a, b}, rules::Severity};"),
        ["check", "netpol", "rules"]
    );
}

#[test]
fn the_core_imports_only_downwards_and_never_an_edge() {
    let graph = core_imports();
    assert_eq!(
        graph.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        CORE.iter().copied().collect::<BTreeSet<_>>(),
        "the core crate's modules"
    );
    for (rank, module) in CORE.iter().enumerate() {
        let uses = graph.get(*module).expect("core module exists");
        for used in uses {
            let allowed = CORE[..rank].contains(&used.as_str());
            assert!(
                allowed,
                "{module} imports {used}: the core imports only the layers below it ({:?})",
                &CORE[..rank]
            );
        }
    }
}

#[test]
fn edges_stay_apart() {
    let graph = imports();
    for (module, forbidden) in SEPARATE {
        let uses = graph.get(*module).expect("module exists");
        for f in *forbidden {
            assert!(!uses.contains(*f), "{module} imports {f}");
        }
    }
}

#[test]
fn no_import_cycle_among_the_modules_of_src() {
    let mut graph = imports();
    graph.extend(core_imports());
    // depth-first search with colours; a grey node reached again closes a cycle
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) {
        colour.insert(node, 1);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            match colour.get(next.as_str()) {
                Some(1) => panic!("import cycle: {} -> {next}", path.join(" -> ")),
                Some(_) => {}
                None => visit(next, graph, colour, path),
            }
        }
        path.pop();
        colour.insert(node, 2);
    }
    let mut colour = BTreeMap::new();
    for node in graph.keys() {
        if !colour.contains_key(node.as_str()) {
            visit(node, &graph, &mut colour, &mut Vec::new());
        }
    }
    assert!(graph.len() >= 15, "found only {:?}", graph.keys());
}
