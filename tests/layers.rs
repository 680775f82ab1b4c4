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
const CORE: &[&str] = &[
    "netpol",
    "connectivity",
    "rules",
    "guard",
    "config",
    "audit",
];

/// The edges of `src/`, each a folder, and the edges each must not import: the codec and the
/// shared runtime know no transport, `check` over files knows no process, the webhook knows
/// no command line. `cli` is the top and may import any of them.
const SEPARATE: &[(&str, &[&str])] = &[
    (
        "admission",
        &["webhook", "kubernetes", "offline", "runtime", "cli"],
    ),
    (
        "runtime",
        &["webhook", "kubernetes", "admission", "offline", "cli"],
    ),
    ("kubernetes", &["webhook", "admission", "offline", "cli"]),
    (
        "offline",
        &["webhook", "kubernetes", "admission", "runtime", "cli"],
    ),
    ("webhook", &["offline", "cli"]),
];

/// The top-level entries of `src/` besides `lib.rs` and `main.rs`: one folder per edge, and
/// the fuzzing entry points.
const EDGES: &[&str] = &[
    "admission",
    "cli",
    "fuzzing",
    "kubernetes",
    "offline",
    "runtime",
    "webhook",
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

/// The paths a `crate::` path names, groups expanded: `crate::a::b::C` names `a::b::C`,
/// `crate::{a, b::{c, d}}` names `a`, `b::c` and `b::d`.
fn paths_after_crate(rest: &str) -> Vec<String> {
    let ident_len = |s: &str| {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
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
        return items.into_iter().flat_map(paths_after_crate).collect();
    }
    let n = ident_len(rest);
    if n == 0 {
        return Vec::new();
    }
    let (head, tail) = rest.split_at(n);
    match tail.strip_prefix("::") {
        Some(tail) => {
            let below = paths_after_crate(tail);
            if below.is_empty() {
                vec![head.to_string()]
            } else {
                below.into_iter().map(|b| format!("{head}::{b}")).collect()
            }
        }
        None => vec![head.to_string()],
    }
}

/// The module a source file is: `webhook/serve.rs` is `webhook::serve`, `webhook/mod.rs`
/// is `webhook`; `None` for the crate roots.
fn module_of(relative: &Path) -> Option<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "main" || only == "lib" => None,
        _ => Some(parts.join("::")),
    }
}

/// Each module (file) under the given source folders, and the modules its code names: a
/// named path counts as the longest module that begins it (`crate::webhook::router::Limits`
/// is `webhook::router`).
fn module_imports(srcs: &[PathBuf]) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    for src in srcs {
        let mut found = Vec::new();
        rust_files(src, &mut found);
        files.extend(found.into_iter().filter_map(|f| {
            let module = module_of(f.strip_prefix(src).unwrap())?;
            Some((module, f))
        }));
    }
    let known: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|candidate| known.contains(candidate))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code = production_code(&text);
        let entry = graph.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            for path in paths_after_crate(&code[i + "crate::".len()..]) {
                if let Some(used) = resolve(&path).filter(|u| u != module) {
                    entry.insert(used);
                }
            }
        }
    }
    graph
}

/// The same graph with each module cut to its top level (`webhook::serve` is `webhook`).
fn top_level(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, uses) in graph {
        let entry = out.entry(top(module)).or_default();
        entry.extend(uses.iter().map(|u| top(u)).filter(|u| *u != top(module)));
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The edges: the binary crate's `src/`, by top-level module.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    top_level(&module_imports(&[root().join("src")]))
}

/// The core crate's modules, by top-level module.
fn core_imports() -> BTreeMap<String, BTreeSet<String>> {
    top_level(&module_imports(&[
        root().join("crates/netpol-guard-core/src")
    ]))
}

#[test]
fn grouped_imports_are_read() {
    assert_eq!(paths_after_crate("netpol::x;"), ["netpol::x"]);
    assert_eq!(
        paths_after_crate("{check, netpol::{a, b::C}, rules::Severity};"),
        ["check", "netpol::a", "netpol::b::C", "rules::Severity"]
    );
    assert_eq!(
        module_of(Path::new("webhook/mod.rs")).as_deref(),
        Some("webhook")
    );
    assert_eq!(
        module_of(Path::new("webhook/serve.rs")).as_deref(),
        Some("webhook::serve")
    );
    assert_eq!(module_of(Path::new("lib.rs")), None);
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
fn src_holds_one_folder_per_edge() {
    let graph = imports();
    assert_eq!(
        graph.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        EDGES.iter().copied().collect::<BTreeSet<_>>(),
        "the top level of src/ (a new module goes into the edge it belongs to)"
    );
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
    // file by file, across both crates (the binary names the core's modules as its own)
    let graph = module_imports(&[
        root().join("crates/netpol-guard-core/src"),
        root().join("src"),
    ]);
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
    assert!(graph.len() >= 50, "found only {:?}", graph.keys());
}
