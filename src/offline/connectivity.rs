//! `netpol-guard connectivity` over files: the engine's input read from manifests (or from a
//! git revision of them), and the listing, the diff and the explanation rendered as text,
//! JSON, CSV, Markdown, Mermaid or DOT.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::connectivity::{Connectivity, Explanation, Input, Node, PortSet, Side, workload};
use crate::netpol::layers::Layers;
use crate::netpol::ports::Protocol;
use crate::offline::check::Problem;
use crate::offline::manifest::{self, Manifest, Object};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Csv,
    Markdown,
    Mermaid,
    Dot,
}

/// The engine's input, and what could not be read.
#[derive(Debug, Default)]
pub struct Loaded {
    pub input: Input,
    /// The policy layer objects of the input (AdminNetworkPolicy, Cilium, ...): `explain`
    /// asks them; the listing does not.
    pub layers: Layers,
    pub problems: Vec<Problem>,
    /// Workloads on the node's network (`hostNetwork: true`), which NetworkPolicy does not
    /// police: left out of the listing.
    pub host_network: Vec<String>,
}

/// Reads the policies, namespaces and workloads of manifests. Documents that cannot be
/// read are problems (named by file and document); every other kind is passed over.
pub fn input_of(manifests: &[Manifest], default_namespace: &str) -> Loaded {
    let mut loaded = Loaded {
        input: Input {
            default_namespace: default_namespace.to_string(),
            ..Input::default()
        },
        ..Loaded::default()
    };
    for m in manifests.iter().filter(|m| m.patch_of.is_none()) {
        for doc in &m.docs {
            let problem = |message: String| Problem {
                file: m.file.clone(),
                document: Some(doc.index),
                line: Some(doc.line),
                message,
            };
            let value = match &doc.parsed {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(e) => {
                    loaded.problems.push(Problem {
                        line: e.line.or(Some(doc.line)),
                        ..problem(e.message.clone())
                    });
                    continue;
                }
            };
            let items =
                manifest::list_items(value).map_or_else(|| vec![value], |i| i.iter().collect());
            for item in items {
                if let Err(message) = read_object(item, &mut loaded) {
                    loaded.problems.push(problem(message));
                }
            }
        }
    }
    workload::drop_owned(&mut loaded.input.workloads);
    loaded
}

fn read_object(value: &Value, loaded: &mut Loaded) -> Result<(), String> {
    let default_namespace = loaded.input.default_namespace.clone();
    if let Some(w) = workload::of_object(value, &default_namespace) {
        let w = w?;
        if w.host_network {
            loaded.host_network.push(w.id());
        } else {
            loaded.input.workloads.push(w);
        }
        return Ok(());
    }
    match manifest::decode(value)?.object {
        Object::NetworkPolicy(policy) => loaded.input.policies.push(*policy),
        Object::Namespace(namespace) => {
            let name = namespace.metadata.name.clone().unwrap_or_default();
            let labels = namespace.metadata.labels.clone().unwrap_or_default();
            loaded.input.namespaces.insert(name, labels);
        }
        Object::Layer(layer) => loaded.layers.insert(*layer),
        Object::Unread {
            kind,
            namespace,
            name,
        } => loaded.layers.insert_unread(kind, &namespace, &name),
        Object::Other { .. } => {}
    }
    Ok(())
}

/// The manifests of a directory as they are at a git revision: every `*.yaml`, `*.yml`
/// and `*.json` file under `dir` at `revision` (hidden folders skipped), named
/// `REVISION:PATH`.
pub fn at_revision(revision: &str, dir: &Path) -> anyhow::Result<Vec<Manifest>> {
    use anyhow::Context as _;
    let git = |args: &[&str]| -> anyhow::Result<Vec<u8>> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .context("running git")?;
        if !out.status.success() {
            anyhow::bail!(
                "git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    };
    let listing = git(&["ls-tree", "-r", "-z", "--name-only", revision, "--", "."])?;
    let mut manifests = Vec::new();
    for path in listing.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).to_string();
        let manifest_file = Path::new(&path)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        let hidden = path.split('/').any(|part| part.starts_with('.'));
        if !manifest_file || hidden {
            continue;
        }
        let text = git(&["show", &format!("{revision}:./{path}")])?;
        let text = String::from_utf8_lossy(&text);
        manifests.push(Manifest::parse(format!("{revision}:{path}"), &text));
    }
    Ok(manifests)
}

/// Whether a workload or address group matches `--focus` (`namespace/name` or `name`).
fn focused(name: &str, focus: &[String]) -> bool {
    focus.is_empty()
        || focus
            .iter()
            .any(|f| f == name || name.split_once('/').is_some_and(|(_, n)| n == f))
}

/// One allowed connection, by the names of its ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub src: String,
    pub dst: String,
    pub ports: PortSet,
    /// Whether each end is a workload (else an address group).
    pub workloads: (bool, bool),
}

/// The connections, named, kept to those that touch a focused workload.
pub fn rows(connectivity: &Connectivity<'_>, focus: &[String]) -> Vec<Row> {
    connectivity
        .connections
        .iter()
        .map(|c| Row {
            src: connectivity.name(c.src),
            dst: connectivity.name(c.dst),
            ports: (*c.ports).clone(),
            workloads: (
                matches!(c.src, Node::Workload(_)),
                matches!(c.dst, Node::Workload(_)),
            ),
        })
        .filter(|r| focused(&r.src, focus) || focused(&r.dst, focus))
        .collect()
}

/// A connection that differs between two inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub src: String,
    pub dst: String,
    /// `None`: not allowed at all.
    pub before: Option<PortSet>,
    pub after: Option<PortSet>,
    pub workloads: (bool, bool),
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        }
    }

    /// The ports allowed before and not after.
    pub fn lost(&self) -> PortSet {
        let before = self.before.clone().unwrap_or_default();
        before.minus(self.after.as_ref().unwrap_or(&PortSet::none()))
    }

    /// The ports allowed after and not before.
    pub fn gained(&self) -> PortSet {
        let after = self.after.clone().unwrap_or_default();
        after.minus(self.before.as_ref().unwrap_or(&PortSet::none()))
    }
}

/// What changed from `base` to `head` (both computed over the same address groups).
pub fn diff(base: &[Row], head: &[Row]) -> Vec<Change> {
    let key = |r: &Row| (r.src.clone(), r.dst.clone());
    let mut pairs: BTreeMap<(String, String), Change> = BTreeMap::new();
    for r in base {
        pairs.insert(
            key(r),
            Change {
                src: r.src.clone(),
                dst: r.dst.clone(),
                before: Some(r.ports.clone()),
                after: None,
                workloads: r.workloads,
            },
        );
    }
    for r in head {
        pairs
            .entry(key(r))
            .or_insert_with(|| Change {
                src: r.src.clone(),
                dst: r.dst.clone(),
                before: None,
                after: None,
                workloads: r.workloads,
            })
            .after = Some(r.ports.clone());
    }
    pairs
        .into_values()
        .filter(|c| c.before != c.after)
        .collect()
}

fn ports_json(ports: &PortSet) -> Value {
    let mut out = serde_json::Map::new();
    for protocol in crate::connectivity::ports::PROTOCOLS {
        let ranges = ports.ranges(protocol);
        if !ranges.is_empty() {
            out.insert(protocol.as_str().into(), json!(ranges));
        }
    }
    Value::Object(out)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A Markdown table cell (pipes escaped).
fn md_cell(text: &str) -> String {
    format!("`{}`", text.replace('|', "\\|"))
}

/// A DOT string literal.
fn dot_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A Mermaid label (quotes become their entity).
fn mermaid_label(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "#quot;"))
}

/// An edge of a picture: its ends, label, and style (`None` for a plain listing).
struct Edge<'a> {
    src: &'a str,
    dst: &'a str,
    src_workload: bool,
    dst_workload: bool,
    label: String,
    change: Option<&'static str>,
}

/// Nodes of a picture by name, numbered in first-seen order.
fn nodes<'a>(edges: &[Edge<'a>]) -> Vec<(&'a str, bool)> {
    let mut seen: Vec<(&str, bool)> = Vec::new();
    for e in edges {
        for (name, workload) in [(e.src, e.src_workload), (e.dst, e.dst_workload)] {
            if !seen.iter().any(|(n, _)| *n == name) {
                seen.push((name, workload));
            }
        }
    }
    seen
}

fn mermaid(edges: &[Edge<'_>]) -> String {
    let nodes = nodes(edges);
    let id = |name: &str| nodes.iter().position(|(n, _)| *n == name).unwrap_or(0);
    let mut out = String::from("flowchart LR\n");
    for (i, (name, workload)) in nodes.iter().enumerate() {
        let label = mermaid_label(name);
        if *workload {
            let _ = writeln!(out, "  n{i}[{label}]");
        } else {
            let _ = writeln!(out, "  n{i}([{label}])");
        }
    }
    for (i, e) in edges.iter().enumerate() {
        let arrow = if e.change == Some("removed") {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(
            out,
            "  n{} {arrow}|{}| n{}",
            id(e.src),
            mermaid_label(&e.label),
            id(e.dst)
        );
        let color = match e.change {
            Some("added") => Some("green"),
            Some("removed") => Some("red"),
            Some(_) => Some("orange"),
            None => None,
        };
        if let Some(color) = color {
            let _ = writeln!(out, "  linkStyle {i} stroke:{color}");
        }
    }
    out
}

fn dot(edges: &[Edge<'_>]) -> String {
    let nodes = nodes(edges);
    let mut out = String::from(
        "digraph connectivity {\n  rankdir=LR;\n  graph [fontname=\"Helvetica\"];\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    // workloads grouped by namespace, address groups outside
    let mut namespaces: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, workload) in &nodes {
        if *workload {
            let ns = name.split_once('/').map_or("", |(ns, _)| ns);
            namespaces.entry(ns).or_default().push(name);
        } else {
            let _ = writeln!(out, "  {} [shape=ellipse];", dot_string(name));
        }
    }
    for (i, (ns, members)) in namespaces.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};",
            dot_string(ns)
        );
        for name in members {
            let short = name.split_once('/').map_or(*name, |(_, n)| n);
            let _ = writeln!(
                out,
                "    {} [label={}];",
                dot_string(name),
                dot_string(short)
            );
        }
        out.push_str("  }\n");
    }
    for e in edges {
        let style = match e.change {
            Some("added") => ", color=green, fontcolor=green",
            Some("removed") => ", color=red, fontcolor=red, style=dashed",
            Some(_) => ", color=orange, fontcolor=orange",
            None => "",
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{style}];",
            dot_string(e.src),
            dot_string(e.dst),
            dot_string(&e.label)
        );
    }
    out.push_str("}\n");
    out
}

/// The listing in a format.
pub fn render_list(rows: &[Row], format: Format) -> String {
    let edges = || -> Vec<Edge<'_>> {
        rows.iter()
            .map(|r| Edge {
                src: &r.src,
                dst: &r.dst,
                src_workload: r.workloads.0,
                dst_workload: r.workloads.1,
                label: r.ports.to_string(),
                change: None,
            })
            .collect()
    };
    match format {
        Format::Text => {
            let width = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0).max(6);
            let (a, b) = (width(|r| r.src.len()), width(|r| r.dst.len()).max(11));
            let mut out = format!("{:a$}  {:b$}  PORTS\n", "SOURCE", "DESTINATION");
            for r in rows {
                let _ = writeln!(out, "{:a$}  {:b$}  {}", r.src, r.dst, r.ports);
            }
            let _ = writeln!(out, "{} connections", rows.len());
            out
        }
        Format::Json => {
            let connections: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({"src": r.src, "dst": r.dst, "ports": r.ports.to_string(), "byProtocol": ports_json(&r.ports)})
                })
                .collect();
            format!("{}\n", json!({"connections": connections}))
        }
        Format::Csv => {
            let mut out = String::from("src,dst,ports\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "{},{},{}",
                    csv_field(&r.src),
                    csv_field(&r.dst),
                    csv_field(&r.ports.to_string())
                );
            }
            out
        }
        Format::Markdown => {
            let mut out = String::from("| source | destination | ports |\n| --- | --- | --- |\n");
            for r in rows {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} |",
                    md_cell(&r.src),
                    md_cell(&r.dst),
                    r.ports
                );
            }
            out
        }
        Format::Mermaid => mermaid(&edges()),
        Format::Dot => dot(&edges()),
    }
}

/// The diff in a format.
pub fn render_diff(changes: &[Change], format: Format) -> String {
    let describe = |c: &Change| -> String {
        match (&c.before, &c.after) {
            (None, Some(after)) => after.to_string(),
            (Some(before), None) => before.to_string(),
            _ => {
                let mut parts = Vec::new();
                let (gained, lost) = (c.gained(), c.lost());
                if !gained.is_empty() {
                    parts.push(format!("+{gained}"));
                }
                if !lost.is_empty() {
                    parts.push(format!("-{lost}"));
                }
                parts.join(" ")
            }
        }
    };
    let count = |kind: &str| changes.iter().filter(|c| c.kind() == kind).count();
    let summary = format!(
        "{} added, {} removed, {} changed",
        count("added"),
        count("removed"),
        count("changed")
    );
    let edges = || -> Vec<Edge<'_>> {
        changes
            .iter()
            .map(|c| Edge {
                src: &c.src,
                dst: &c.dst,
                src_workload: c.workloads.0,
                dst_workload: c.workloads.1,
                label: describe(c),
                change: Some(c.kind()),
            })
            .collect()
    };
    match format {
        Format::Text => {
            let mut out = String::new();
            for c in changes {
                let sign = match c.kind() {
                    "added" => '+',
                    "removed" => '-',
                    _ => '~',
                };
                let _ = writeln!(out, "{sign} {} -> {}: {}", c.src, c.dst, describe(c));
            }
            let _ = writeln!(out, "{summary}");
            out
        }
        Format::Json => {
            let items: Vec<Value> = changes
                .iter()
                .map(|c| {
                    json!({
                        "change": c.kind(), "src": c.src, "dst": c.dst,
                        "before": c.before.as_ref().map(ToString::to_string),
                        "after": c.after.as_ref().map(ToString::to_string),
                        "gained": ports_json(&c.gained()), "lost": ports_json(&c.lost()),
                    })
                })
                .collect();
            format!(
                "{}\n",
                json!({"added": count("added"), "removed": count("removed"), "changed": count("changed"), "changes": items})
            )
        }
        Format::Csv => {
            let mut out = String::from("change,src,dst,before,after\n");
            for c in changes {
                let show =
                    |p: &Option<PortSet>| p.as_ref().map(ToString::to_string).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{}",
                    c.kind(),
                    csv_field(&c.src),
                    csv_field(&c.dst),
                    csv_field(&show(&c.before)),
                    csv_field(&show(&c.after))
                );
            }
            out
        }
        Format::Markdown => {
            let mut out = format!("### Connectivity changes\n\n{summary}\n");
            if changes.is_empty() {
                return out;
            }
            out.push_str("\n| | source | destination | ports |\n| --- | --- | --- | --- |\n");
            for c in changes {
                let mark = match c.kind() {
                    "added" => "➕ added",
                    "removed" => "➖ removed",
                    _ => "✏️ changed",
                };
                let _ = writeln!(
                    out,
                    "| {mark} | {} | {} | {} |",
                    md_cell(&c.src),
                    md_cell(&c.dst),
                    describe(c).replace('|', "\\|")
                );
            }
            out
        }
        Format::Mermaid => mermaid(&edges()),
        Format::Dot => dot(&edges()),
    }
}

/// `80/TCP`, `53/udp`, `8080` (TCP).
pub fn parse_port(text: &str) -> Result<(Protocol, u16), String> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "TCP"));
    let protocol = match protocol.to_ascii_uppercase().as_str() {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => {
            return Err(format!(
                "{other:?} is not TCP, UDP or SCTP (write PORT/PROTOCOL, e.g. 53/UDP)"
            ));
        }
    };
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok((protocol, n)),
        _ => Err(format!(
            "{port:?} is not a port number 1-65535 (write PORT/PROTOCOL, e.g. 443/TCP)"
        )),
    }
}

fn side_text(
    out: &mut String,
    label: &str,
    side: &Side,
    other: &str,
    probe: Option<(Protocol, u16)>,
) {
    match side {
        Side::Open => {
            let _ = writeln!(
                out,
                "  {label}: no policy isolates it, everything is allowed"
            );
        }
        Side::Isolated {
            policies,
            admissions,
        } => {
            let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
            let _ = write!(out, "  {label}: isolated by {}", names.join(", "));
            let fitting: Vec<_> = admissions
                .iter()
                .filter(|a| probe.is_none_or(|(p, n)| a.ports.contains(p, n)))
                .collect();
            match (fitting.first(), admissions.first()) {
                (Some(a), _) => {
                    let _ = writeln!(out, "; admitted by {} {} on {}", a.policy, a.path, a.ports);
                }
                (None, Some(_)) => {
                    let others: Vec<String> = admissions
                        .iter()
                        .map(|a| format!("{} {} on {}", a.policy, a.path, a.ports))
                        .collect();
                    let _ = writeln!(
                        out,
                        "; no rule admits {other} on that port, only: {}",
                        others.join("; ")
                    );
                }
                (None, None) => {
                    let _ = writeln!(out, "; no rule of them admits {other}");
                }
            }
        }
    }
}

fn side_json(side: &Side) -> Value {
    match side {
        Side::Open => json!({"isolated": false}),
        Side::Isolated {
            policies,
            admissions,
        } => json!({
            "isolated": true,
            "policies": policies.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "admittedBy": admissions.iter().map(|a| json!({"policy": a.policy.to_string(), "path": a.path, "ports": a.ports.to_string()})).collect::<Vec<_>>(),
        }),
    }
}

/// The explanation of one connection: the verdict, then only the sides that decide it (the
/// side that denies, or both admitting rules).
pub fn render_explain(
    src: &str,
    dst: &str,
    explanation: &Explanation,
    probe: Option<(Protocol, u16)>,
    format: Format,
) -> String {
    let allowed = match probe {
        Some((p, n)) => explanation.allows(p, n),
        None => !explanation.allowed.is_empty(),
    };
    if format == Format::Json {
        return format!(
            "{}\n",
            json!({
                "src": src, "dst": dst,
                "probe": probe.map(|(p, n)| format!("{n}/{p}")),
                "allowed": allowed,
                "ports": explanation.allowed.to_string(),
                "egress": side_json(&explanation.egress),
                "ingress": side_json(&explanation.ingress),
            })
        );
    }
    let on = probe.map_or_else(String::new, |(p, n)| format!(" on {n}/{p}"));
    let mut out = if allowed {
        match probe {
            Some(_) => format!("{src} -> {dst}{on}: allowed\n"),
            None => format!("{src} -> {dst}: allowed on {}\n", explanation.allowed),
        }
    } else {
        format!("{src} -> {dst}{on}: denied\n")
    };
    let decides = |side: &Side| -> bool {
        if allowed {
            return true;
        }
        let ports = side.ports();
        match probe {
            Some((p, n)) => !ports.contains(p, n),
            None => ports.is_empty(),
        }
    };
    let sides = [
        (format!("egress of {src}"), &explanation.egress, dst),
        (format!("ingress of {dst}"), &explanation.ingress, src),
    ];
    let mut shown = 0;
    for (label, side, other) in &sides {
        if decides(side) {
            side_text(&mut out, label, side, other, probe);
            shown += 1;
        }
    }
    if shown == 0 {
        // each side allows some port, but none in common
        for (label, side, other) in &sides {
            side_text(&mut out, label, side, other, probe);
        }
        out.push_str("  the two sides allow no port in common\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_protocol_defaulting_to_tcp() {
        assert_eq!(parse_port("53/UDP"), Ok((Protocol::Udp, 53)));
        assert_eq!(parse_port("443"), Ok((Protocol::Tcp, 443)));
        assert_eq!(parse_port("9/sctp"), Ok((Protocol::Sctp, 9)));
        assert!(parse_port("0/TCP").is_err());
        assert!(
            parse_port("80/ICMP")
                .unwrap_err()
                .contains("TCP, UDP or SCTP")
        );
        assert!(parse_port("http").is_err());
    }

    #[test]
    fn fields_are_escaped_for_each_format() {
        assert_eq!(csv_field("TCP 80,443"), "\"TCP 80,443\"");
        assert_eq!(csv_field("a/b"), "a/b");
        assert_eq!(dot_string("a\"b\\"), "\"a\\\"b\\\\\"");
        assert_eq!(mermaid_label("a\"b"), "\"a#quot;b\"");
        assert_eq!(md_cell("a|b"), "`a\\|b`");
    }
}
